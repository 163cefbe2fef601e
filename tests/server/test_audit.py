"""
Tests for L{jobmon.server.audit} and the hub's audit records.
"""

import errno
import json
import os
import xmlrpc.client

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.audit import AuditLog, _iso
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.metrics import Metrics
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.site import QuietSite
from tests.server.test_hub import FakeChannel

ALICE = Identity("/CN=Alice")
BOB = Identity("/CN=Bob")
ADMIN = Identity("/CN=Admin")


class AuditLogTests(SynchronousTestCase):
    """
    The audit file itself.
    """

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.clock = Clock()
        self.clock.advance(1795675255.25)

    def test_jsonLines(self):
        """
        Each record is one JSON line with a UTC time and the event.
        """
        log = AuditLog(os.path.join(self.dir, "a.jsonl"), self.clock)
        log.record("query", dn="/CN=Alice", job_id="j1", bytes=12)
        log.close()
        with open(os.path.join(self.dir, "a.jsonl")) as f:
            [line] = f.read().splitlines()
        entry = json.loads(line)
        self.assertEqual(entry["event"], "query")
        self.assertEqual(entry["time"], "2026-11-26T06:40:55.250Z")
        self.assertEqual(entry["job_id"], "j1")
        self.assertEqual(os.stat(os.path.join(self.dir, "a.jsonl")).st_mode & 0o777, 0o600)

    def test_rotationAndReadBack(self):
        """
        The file rotates past its size; reading back finds a job's records
        across the rotated files, oldest first, up to the limit.
        """
        log = AuditLog(os.path.join(self.dir, "a.jsonl"), self.clock, rotateBytes=400, keep=3)
        for i in range(30):
            log.record("query", job_id="j{}".format(i % 2), n=i)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "a.jsonl.1")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "a.jsonl.4")))
        records = log.read("j1", limit=3)
        self.assertEqual([r["n"] for r in records], [25, 27, 29])
        log.close()

    def test_fullDisk(self):
        """
        A full disk loses records, counted and logged once, and never
        raises.
        """
        log = AuditLog(os.path.join(self.dir, "a.jsonl"), self.clock)
        log.open()
        self.addCleanup(log.close)
        full = [True]
        realWrite = log._file.write

        def write(data):
            if full[0]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            realWrite(data)

        log._file.write = write
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for _ in range(3):
            log.record("query", job_id="j")
        self.assertEqual((log.written, log.lost), (0, 3))
        self.assertEqual(len(observer), 1)
        self.assertIn("records are being lost", observer[0]["log_format"])
        full[0] = False
        log.record("query", job_id="j")
        self.assertEqual((log.written, log.lost), (1, 3))
        self.assertEqual(len(observer), 2)


class IsoTimeTests(SynchronousTestCase):
    """
    L{_iso}: a record's time, ISO 8601 in UTC with milliseconds.
    """

    def test_times(self):
        """
        Times within one second and across seconds read as their own, the
        text of the second being reused only within it.
        """
        for now, text in [
            (1764748800.0, "2025-12-03T08:00:00.000Z"),
            (1764748800.9999, "2025-12-03T08:00:00.999Z"),
            (1764748801.25, "2025-12-03T08:00:01.250Z"),
            (1764748801.5, "2025-12-03T08:00:01.500Z"),
            (1700000000.001, "2023-11-14T22:13:20.001Z"),
            (1764748801.75, "2025-12-03T08:00:01.750Z"),
        ]:
            self.assertEqual(_iso(now), text)


class MemoryAudit:
    """
    Keeps records in a list.
    """

    def __init__(self):
        self.records = []

    def record(self, event, **fields):
        self.records.append(dict(fields, event=event))

    def read(self, jobId, limit):
        return [r for r in self.records if r.get("job_id") == jobId][-limit:]


class HubAuditTests(SynchronousTestCase):
    """
    What the hub records.
    """

    def setUp(self):
        self.clock = Clock()
        self.audit = MemoryAudit()
        self.hub = Hub(
            self.clock, MemoryJobRegistry(), MemoryRequestTable(), HubConfig(admins=[ADMIN.dn]),
            audit=self.audit, runInThread=lambda f, *a: defer.maybeDeferred(f, *a),
        )
        reply = self.hub.registerJob(ALICE, "j1", {"host": "wn", "wake": "tcp"})
        self.hub.channelHello(FakeChannel("j1"), ALICE, "j1", reply["wake"]["token"])

    def test_queryRecorded(self):
        """
        A query is recorded with caller, job, owner, op, arguments (no
        contents), outcome, bytes and duration.
        """
        d = self.hub.query(ALICE, "j1", {"op": "cat", "path": "log", "offset": 0})
        [item] = self.hub.getJobToDo(ALICE, "j1")
        self.clock.advance(0.5)
        self.hub.outputJobResult(ALICE, "j1", item["id"], {"data": b"secret bytes"})
        self.successResultOf(d)
        [entry] = [r for r in self.audit.records if r["event"] == "query"]
        self.assertEqual(entry["dn"], ALICE.dn)
        self.assertEqual(entry["owner"], ALICE.dn)
        self.assertEqual(entry["args"], {"path": "log", "offset": 0})
        self.assertEqual((entry["outcome"], entry["bytes"], entry["duration"]), ("ok", 12, 0.5))
        self.assertNotIn("secret", repr(self.audit.records))

    def test_failuresAndRefusals(self):
        """
        Failed queries record their outcome's word and fault code; refused
        ones (another user's job, a stranger's daemon call) are recorded as
        refusals.
        """
        d = self.hub.query(ALICE, "j1", {"op": "ls"})
        self.hub.unregisterJob(ALICE, "j1")
        self.failureResultOf(d, JobMonError)
        self.hub.registerJob(ALICE, "j1", {"host": "wn"})
        self.assertRaises(JobMonError, self.hub.query, BOB, "j1", {"op": "ls"})
        self.assertRaises(JobMonError, self.hub.getJobToDo, BOB, "j1")
        self.assertRaises(JobMonError, self.hub.registerJob, BOB, "j1", {})
        events = [(r["event"], r.get("outcome", r.get("code"))) for r in self.audit.records]
        self.assertIn(("query", "job-ended"), events)
        [failed] = [r for r in self.audit.records if r["event"] == "query"]
        self.assertEqual(failed["code"], errors.JOB_ENDED)
        self.assertIn(("refused", errors.NO_SUCH_JOB), events)
        # The stranger's daemon call: answered "no such job", audited as
        # reaching for Alice's job.
        [daemon] = [r for r in self.audit.records if r.get("method") == "daemon"]
        self.assertEqual((daemon["code"], daemon["owner"], daemon["reason"]),
                         (errors.NO_SUCH_JOB, ALICE.dn, "not the job's owner"))
        self.assertIn(("refused", errors.JOB_CONFLICT), events)
        self.assertIn(("register", None), [(r["event"], r.get("code")) for r in self.audit.records])
        self.assertIn("removed", [r["event"] for r in self.audit.records])

    def test_adminReadsBack(self):
        """
        Admins read a job's records back; others may not.
        """
        self.hub.query(ALICE, "j1", {"op": "ls"}).addErrback(lambda f: None)
        records = self.successResultOf(self.hub.auditLog(ADMIN, "j1", 10))
        self.assertIn("register", [r["event"] for r in records])
        e = self.assertRaises(JobMonError, self.hub.auditLog, ALICE, "j1", 10)
        self.assertEqual(e.code, errors.NOT_AUTHORIZED)


class OutcomeTests(SynchronousTestCase):
    """
    How the hub records the outcome of a query (in the audit log and the
    metrics), and which failed lookups are refusals.
    """

    def setUp(self):
        self.clock = Clock()
        self.audit = MemoryAudit()
        self.metrics = Metrics()
        self.hub = Hub(
            self.clock, MemoryJobRegistry(), MemoryRequestTable(), HubConfig(admins=[ADMIN.dn]),
            audit=self.audit, metrics=self.metrics,
            runInThread=lambda f, *a: defer.maybeDeferred(f, *a),
        )
        for jobId in ("1234.0", "77.0", "77.1"):
            reply = self.hub.registerJob(ALICE, jobId, {"host": "wn", "wake": "tcp"})
            self.hub.channelHello(FakeChannel(jobId), ALICE, jobId, reply["wake"]["token"])

    def sample(self, name, **labels):
        """
        A metric's value (0 if it has none yet).
        """
        return self.metrics.registry.get_sample_value(name, labels) or 0

    def refusals(self):
        """
        The refusals audited and counted.
        """
        audited = [r for r in self.audit.records if r["event"] == "refused"]
        counted = sum(
            s.value for m in self.metrics.registry.collect() if m.name == "jobmon_refusals"
            for s in m.samples if s.name == "jobmon_refusals_total"
        )
        return audited, counted

    def answer(self, jobId, result):
        """
        Post C{result} for the job's one pending request.
        """
        [item] = self.hub.getJobToDo(ALICE, jobId)
        self.hub.outputJobResult(ALICE, jobId, item["id"], result)

    def queryRecords(self):
        """
        The audited queries' job ids, outcomes and codes.
        """
        return [(r["job_id"], r["outcome"], r.get("code"))
                for r in self.audit.records if r["event"] == "query"]

    def test_prefixIsNoRefusal(self):
        """
        A query for a prefix of the caller's own job ids (C{jobmon-query}
        naming a job by a prefix, before it resolves it) is fault 404 but
        no refusal: nothing audited or counted as refused.
        """
        for prefix in ("1234", "77", "7"):
            e = self.assertRaises(JobMonError, self.hub.query, ALICE, prefix, {"op": "ls"})
            self.assertEqual(e.code, errors.NO_SUCH_JOB)
            self.assertEqual(e.message, "no job {} visible to you".format(prefix))
        self.assertEqual(self.refusals(), ([], 0))
        d = self.hub.query(ALICE, "1234.0", {"op": "ls"})
        self.answer("1234.0", {"entries": []})
        self.assertEqual(self.successResultOf(d), {"entries": []})
        self.assertEqual(self.queryRecords(), [("1234.0", "ok", None)])

    def test_otherIdsRefused(self):
        """
        Another user's prefix of the caller's jobs, or an id that starts
        none of her job ids, is refused (404): audited and counted as
        C{not-found}, whatever jobs others have.
        """
        reply = self.hub.registerJob(BOB, "55", {"host": "wn", "wake": "tcp"})
        self.hub.channelHello(FakeChannel("55"), BOB, "55", reply["wake"]["token"])
        for who, jobId in ((BOB, "1234"), (ALICE, "99"), (ALICE, "55")):
            e = self.assertRaises(JobMonError, self.hub.query, who, jobId, {"op": "ls"})
            self.assertEqual(e.code, errors.NO_SUCH_JOB)
            self.assertEqual(e.message, "no job {} visible to you".format(jobId))
        audited, counted = self.refusals()
        self.assertEqual([(r["job_id"], r["code"]) for r in audited],
                         [("1234", errors.NO_SUCH_JOB), ("99", errors.NO_SUCH_JOB),
                          ("55", errors.NO_SUCH_JOB)])
        self.assertEqual(counted, 3)
        self.assertEqual(self.sample("jobmon_refusals_total", reason="not-found"), 3)

    def test_prefixOfAnotherUsersJob(self):
        """
        An id that is another user's job but also a prefix of the caller's
        own job ids is the same fault 404 as any, and no refusal: she is
        naming her own job.
        """
        reply = self.hub.registerJob(BOB, "1234", {"host": "wn", "wake": "tcp"})
        self.hub.channelHello(FakeChannel("1234"), BOB, "1234", reply["wake"]["token"])
        e = self.assertRaises(JobMonError, self.hub.query, ALICE, "1234", {"op": "ls"})
        self.assertEqual((e.code, e.message), (errors.NO_SUCH_JOB, "no job 1234 visible to you"))
        self.assertEqual(self.refusals(), ([], 0))

    def test_clientCancelled(self):
        """
        A query whose client went away (the XML-RPC resource cancels it) is
        C{cancelled}, not a server error.
        """
        d = self.hub.query(ALICE, "1234.0", {"op": "follow", "path": "log"})
        self.clock.advance(2)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.queryRecords(), [("1234.0", "cancelled", None)])
        self.assertEqual(
            self.sample("jobmon_query_seconds_count", op="follow", outcome="cancelled"), 1
        )
        self.assertEqual(
            self.sample("jobmon_query_seconds_count", op="follow", outcome="500"), 0
        )

    def test_clientGoneThroughResource(self):
        """
        Through the real XML-RPC resource: a client that closes its
        connection while its query waits (Ctrl-C on C{tail -f}) leaves a
        C{cancelled} record.
        """
        resource = XMLRPCResource({"jobmon.query": self.hub.query}, lambda request: ALICE)
        root = Resource()
        root.putChild(b"RPC2", resource)
        site = QuietSite(root, timeout=None, requestDeadline=None)
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        body = xmlrpc.client.dumps(("1234.0", {"op": "follow", "path": "log"}), "jobmon.query")
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode())
        )
        self.assertEqual(self.hub.sizes()["requests"], 1)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.hub.sizes()["requests"], 0)
        self.assertEqual(self.queryRecords(), [("1234.0", "cancelled", None)])
        self.assertEqual(transport.value(), b"")

    def test_outcomeWords(self):
        """
        Failed queries are recorded with their outcome's word and their
        fault code; the metrics' labels are the words.
        """
        d = self.hub.query(ALICE, "1234.0", {"op": "ls"})
        self.answer("1234.0", {"error": {"code": errors.REMOTE_ERROR, "message": "boom"}})
        self.failureResultOf(d, JobMonError)
        d = self.hub.query(ALICE, "1234.0", {"op": "ls", "timeout": 5})
        self.clock.advance(5)
        self.failureResultOf(d, JobMonError)
        d = self.hub.query(ALICE, "1234.0", {"op": "ls"})
        self.hub.unregisterJob(ALICE, "1234.0")
        self.failureResultOf(d, JobMonError)
        self.assertEqual(self.queryRecords(), [
            ("1234.0", "daemon-error", errors.REMOTE_ERROR),
            ("1234.0", "timeout", errors.TIMEOUT),
            ("1234.0", "job-ended", errors.JOB_ENDED),
        ])
        for word in ("daemon-error", "timeout", "job-ended"):
            self.assertEqual(
                self.sample("jobmon_query_seconds_count", op="ls", outcome=word), 1
            )

"""
Tests for L{jobmon.server.audit} and the hub's audit records.
"""

import errno
import json
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.audit import AuditLog
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
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
        Failed queries record their fault code; refused ones (another user's
        job, a stranger's daemon call) are recorded as refusals.
        """
        d = self.hub.query(ALICE, "j1", {"op": "ls"})
        self.hub.unregisterJob(ALICE, "j1")
        self.failureResultOf(d, JobMonError)
        self.hub.registerJob(ALICE, "j1", {"host": "wn"})
        self.assertRaises(JobMonError, self.hub.query, BOB, "j1", {"op": "ls"})
        self.assertRaises(JobMonError, self.hub.getJobToDo, BOB, "j1")
        self.assertRaises(JobMonError, self.hub.registerJob, BOB, "j1", {})
        events = [(r["event"], r.get("outcome", r.get("code"))) for r in self.audit.records]
        self.assertIn(("query", errors.JOB_ENDED), events)
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

"""
Tests for requests and results on the TCP wake channel, hub side: requests
sent on a channel that takes them, results relayed as L{RawResult}s to the
audit, the job-owner field and the XML-RPC resource.
"""

import xmlrpc.client

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.relay import RawResult, encodeFragment
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from tests.server.test_hub import FakeChannel
from tests.server.test_hub_groups import Audit

ALICE = Identity("/DC=org/DC=test/CN=Alice")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")


class RequestChannel(FakeChannel):
    """
    A wake channel that takes requests; it records them, and refuses
    those whose op is C{"refuse"}.
    """

    requests = True

    def __init__(self, jobId=None):
        super().__init__(jobId)
        self.sent = []

    def request(self, requestId, request):
        if request["op"] == "ls" and request.get("path") == "refuse":
            return JobMonError(errors.TOO_LARGE, "the request is too large to send to the job")
        self.sent.append((requestId, request))
        return None


def raw(result, size=0):
    return RawResult(encodeFragment(result), size)


class RelayTests(SynchronousTestCase):
    """
    A L{Hub} whose job's channel takes requests.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        self.audit = Audit()
        self.hub = Hub(
            self.clock, self.registry, self.table,
            HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20, connectGrace=10),
            audit=self.audit, runInThread=lambda f, *a: defer.maybeDeferred(f, *a),
        )
        self.addCleanup(self.hub.stop)
        self.channel = self.connect("job.1")

    def connect(self, jobId, channel=None):
        reply = self.hub.registerJob(ALICE, jobId, {"host": "wn", "wake": "tcp"})
        channel = channel or RequestChannel()
        self.hub.channelHello(channel, ALICE, jobId, reply["wake"]["token"])
        channel.jobId = jobId
        return channel

    def queryRecords(self):
        return [r for r in self.audit.records if r["event"] == "query"]

    def test_requestOnChannel(self):
        """
        A query goes to the daemon on its channel, marked fetched: no wake
        line, nothing left for C{getJobToDo}.
        """
        d = self.hub.query(ALICE, "job.1", {"op": "stat", "path": "job.log"})
        [(rid, request)] = self.channel.sent
        self.assertEqual(request, {"op": "stat", "path": "job.log"})
        self.assertEqual(self.channel.wakes, 0)
        self.assertEqual(self.table.queued("job.1"), 0)
        self.assertEqual(self.hub.getJobToDo(ALICE, "job.1"), [])
        self.assertNoResult(d)
        result = raw({"size": 3})
        self.assertTrue(self.hub.channelResult(self.channel, rid, result=result))
        self.assertIs(self.successResultOf(d), result)
        self.assertEqual(len(self.table), 0)

    def test_queuedBeforeChannel(self):
        """
        Work queued while the channel was connecting is sent as requests as
        soon as it is bound.
        """
        reply = self.hub.registerJob(ALICE, "job.2", {"host": "wn", "wake": "tcp"})
        d = self.hub.query(ALICE, "job.2", {"op": "ls"})
        channel = RequestChannel("job.2")
        self.hub.channelHello(channel, ALICE, "job.2", reply["wake"]["token"])
        self.assertEqual(channel.sent, [])
        self.clock.advance(0)
        [(rid, request)] = channel.sent
        self.assertEqual(request, {"op": "ls"})
        self.hub.channelResult(channel, rid, result=raw({"entries": []}))
        self.assertEqual(self.successResultOf(d).parsed(), {"entries": []})

    def test_requestNotSent(self):
        """
        A request the channel cannot send fails at once with its error.
        """
        d = self.hub.query(ALICE, "job.1", {"op": "ls", "path": "refuse"})
        self.assertEqual(self.failureResultOf(d, JobMonError).value.code, errors.TOO_LARGE)
        self.assertEqual(len(self.table), 0)

    def test_auditSize(self):
        """
        The audit record of a relayed result counts the bytes the daemon's
        header gave.
        """
        d = self.hub.query(ALICE, "job.1", {"op": "cat", "path": "f"})
        [(rid, _)] = self.channel.sent
        self.hub.channelResult(self.channel, rid, result=raw({"data": b"abcd"}, size=4))
        self.successResultOf(d)
        [record] = self.queryRecords()
        self.assertEqual((record["outcome"], record["bytes"]), ("ok", 4))

    def test_jobOwnerForAdmin(self):
        """
        An admin querying another's job gets the result parsed, with the
        job's owner added.
        """
        d = self.hub.query(ADMIN, "job.1", {"op": "stat", "path": "f"})
        [(rid, _)] = self.channel.sent
        self.hub.channelResult(self.channel, rid, result=raw({"size": 3, "job_owner": "me"}))
        self.assertEqual(self.successResultOf(d), {"size": 3, "job_owner": ALICE.dn})

    def test_malformedForAdmin(self):
        """
        A relayed result that is not well-formed, which the server must
        parse for an admin, fails with the job's error.
        """
        d = self.hub.query(ADMIN, "job.1", {"op": "stat", "path": "f"})
        [(rid, _)] = self.channel.sent
        body = encodeFragment({"a": 1}).replace(b"<int>1</int>", b"<int>1</string>")
        self.hub.channelResult(self.channel, rid, result=RawResult(body, 0))
        failure = self.failureResultOf(d, JobMonError)
        self.assertEqual(failure.value.code, errors.REMOTE_ERROR)

    def test_errorsSanitised(self):
        """
        A daemon's error on the channel is sanitised as for
        C{outputJobResult}; the server's own errors pass as they are.
        """
        first = self.hub.query(ALICE, "job.1", {"op": "ls"})
        second = self.hub.query(ALICE, "job.1", {"op": "ls"})
        third = self.hub.query(ALICE, "job.1", {"op": "ls"})
        (r1, _), (r2, _), (r3, _) = self.channel.sent
        self.hub.channelResult(self.channel, r1, error={"code": errors.NOT_AUTHORIZED,
                                                        "message": "forged"})
        self.hub.channelResult(self.channel, r2, error="junk")
        self.hub.channelResult(self.channel, r3, error=JobMonError(errors.TOO_LARGE, "big"))
        self.assertEqual(self.failureResultOf(first, JobMonError).value.code,
                         errors.REMOTE_ERROR)
        self.assertEqual(self.failureResultOf(second, JobMonError).value.message,
                         "the job reported an error")
        self.assertEqual(self.failureResultOf(third, JobMonError).value.code, errors.TOO_LARGE)

    def test_onlyOwnJob(self):
        """
        A channel cannot answer another job's requests, and a channel that
        was replaced answers nothing.
        """
        other = self.connect("job.2")
        d = self.hub.query(ALICE, "job.2", {"op": "ls"})
        [(rid, _)] = other.sent
        self.assertFalse(self.hub.channelResult(self.channel, rid, result=raw({"a": 1})))
        unbound = RequestChannel("job.2")
        self.assertFalse(self.hub.channelResult(unbound, rid, result=raw({"a": 1})))
        self.assertNoResult(d)
        self.assertTrue(self.hub.channelResult(other, rid, result=raw({"a": 1})))
        self.assertEqual(self.successResultOf(d).parsed(), {"a": 1})

    def test_lostWithRequestsOut(self):
        """
        A channel lost while its requests run fails them: the job went away.
        """
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.channelLost(self.channel)
        self.assertEqual(self.failureResultOf(d, JobMonError).value.code, errors.JOB_GONE)
        self.assertEqual(len(self.table), 0)

    def test_resourceWraps(self):
        """
        The XML-RPC resource wraps a relayed result into a response without
        encoding it again; a client reads the daemon's struct.
        """
        resource = XMLRPCResource({}, lambda request: None)
        result = raw({"data": b"\x00<&>", "size": 4})
        body = resource._encode(result)
        self.assertEqual(body, result.response())
        (value,), _ = xmlrpc.client.loads(body, use_builtin_types=True)
        self.assertEqual(value, {"data": b"\x00<&>", "size": 4})

"""
Tests for L{jobmon.hub}: registration, authorization, the link from a query
to its result, timeouts and jobs that go away.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.hub import Hub, checkRequest
from jobmon.identity import Identity
from jobmon.pending import MemoryRequestTable
from jobmon.registry import MemoryJobRegistry

ALICE = Identity("/DC=org/DC=test/CN=Alice")
BOB = Identity("/DC=org/DC=test/CN=Bob")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")


class FakeChannel:
    """
    A wake channel that records what the hub asks of it.
    """

    def __init__(self, jobId=None):
        self.jobId = jobId
        self.wakes = 0
        self.closed = False

    def wake(self):
        self.wakes += 1

    def close(self):
        self.closed = True


class HubTestCase(SynchronousTestCase):
    """
    Drive a L{Hub} with a L{Clock} and fake wake channels.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        self.hub = Hub(
            self.clock,
            self.registry,
            self.table,
            admins=[ADMIN.dn],
            queryTimeout=30,
            keepalive=20,
            connectGrace=10,
        )
        self.hub.wakePort = 8444

    def register(self, who=ALICE, jobId="job.1", connect=True):
        """
        Register a job and, by default, bind a wake channel to it.
        """
        reply = self.hub.registerJob(who, jobId, {"host": "wn01", "wake": "tcp"})
        channel = FakeChannel()
        if connect:
            self.assertEqual(
                self.hub.channelHello(channel, who, jobId, reply["wake"]["token"]), 20
            )
            channel.jobId = jobId
        return reply, channel

    def assertFault(self, d, code):
        """
        Assert that C{d} failed with a L{JobMonError} of C{code}.
        """
        failure = self.failureResultOf(d, JobMonError)
        self.assertEqual(failure.value.code, code)
        return failure.value

    def test_registerReply(self):
        """
        The registration reply tells the daemon where and how to connect.
        """
        reply, _ = self.register(connect=False)
        self.assertEqual(reply["job_id"], "job.1")
        self.assertEqual(reply["wake"]["mode"], "tcp")
        self.assertEqual(reply["wake"]["port"], 8444)
        self.assertGreater(len(reply["wake"]["token"]), 20)
        self.assertEqual(reply["keepalive"], 20)

    def test_queryRoundTrip(self):
        """
        A query wakes the job; the daemon fetches the request and posts the
        result, which fires the user's Deferred.
        """
        _, channel = self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls", "path": "."})
        self.assertNoResult(d)
        self.assertEqual(channel.wakes, 1)
        [item] = self.hub.getJobToDo(ALICE, "job.1")
        self.assertEqual(item["request"], {"op": "ls", "path": "."})
        self.assertEqual(self.hub.getJobToDo(ALICE, "job.1"), [])
        self.assertTrue(
            self.hub.outputJobResult(ALICE, "job.1", item["id"], {"entries": []})
        )
        self.assertEqual(self.successResultOf(d), {"entries": []})
        self.assertEqual(len(self.table), 0)

    def test_remoteError(self):
        """
        An error result becomes a fault with the daemon's remote code.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "cat", "path": "nope"})
        [item] = self.hub.getJobToDo(ALICE, "job.1")
        self.hub.outputJobResult(
            ALICE,
            "job.1",
            item["id"],
            {"error": {"code": errors.NO_SUCH_FILE, "message": "no such file: 'nope'"}},
        )
        self.assertEqual(self.assertFault(d, errors.NO_SUCH_FILE).message, "no such file: 'nope'")

    def test_daemonCannotForgeServerCodes(self):
        """
        A daemon cannot make the user see a server-side fault such as "not
        authorized": codes outside the remote range become 1099.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        [item] = self.hub.getJobToDo(ALICE, "job.1")
        self.hub.outputJobResult(
            ALICE, "job.1", item["id"], {"error": {"code": 403, "message": "x"}}
        )
        self.assertFault(d, errors.REMOTE_ERROR)

    def test_queryBeforeChannel(self):
        """
        Work queued while the wake channel is still connecting waits for it
        and is announced as soon as it is up.
        """
        reply, _ = self.register(connect=False)
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        channel = FakeChannel("job.1")
        self.hub.channelHello(channel, ALICE, "job.1", reply["wake"]["token"])
        self.clock.advance(0)
        self.assertEqual(channel.wakes, 1)
        self.assertNoResult(d)

    def test_otherUserSeesNoJob(self):
        """
        Another user gets "no such job" for someone else's job, the same
        fault as for a job that does not exist, and does not see it listed.
        """
        self.register()
        self.assertRaises(JobMonError, self.hub.query, BOB, "job.1", {"op": "ls"})
        try:
            self.hub.query(BOB, "job.1", {"op": "ls"})
        except JobMonError as e:
            self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertEqual(self.hub.listJobs(BOB), [])
        self.assertEqual(len(self.table), 0)

    def test_adminMayQuery(self):
        """
        An admin sees and queries every job.
        """
        _, channel = self.register()
        [job] = self.hub.listJobs(ADMIN)
        self.assertEqual(job["owner"], ALICE.dn)
        d = self.hub.query(ADMIN, "job.1", {"op": "ls"})
        self.assertNoResult(d)
        self.assertEqual(channel.wakes, 1)

    def test_listJobsFields(self):
        """
        The owner sees her job with its host, mode, state, times and pending
        count.
        """
        self.clock.advance(100)
        self.register()
        self.hub.query(ALICE, "job.1", {"op": "ls"})
        [job] = self.hub.listJobs(ALICE)
        self.assertEqual(
            job,
            {
                "job_id": "job.1",
                "owner": ALICE.dn,
                "host": "wn01",
                "mode": "tcp",
                "state": "ready",
                "registered": 100.0,
                "last_seen": 100.0,
                "pending": 1,
            },
        )

    def test_onlyOwnerServesJob(self):
        """
        Only the owner's credential may fetch work, post results, unregister
        or bind a wake channel; the admin may not either.
        """
        reply, _ = self.register()
        for who in (BOB, ADMIN):
            for call in (
                lambda: self.hub.getJobToDo(who, "job.1"),
                lambda: self.hub.outputJobResult(who, "job.1", "x", {}),
                lambda: self.hub.unregisterJob(who, "job.1"),
                lambda: self.hub.channelHello(
                    FakeChannel(), who, "job.1", reply["wake"]["token"]
                ),
            ):
                e = self.assertRaises(JobMonError, call)
                self.assertEqual(e.code, errors.NOT_AUTHORIZED)

    def test_registerConflict(self):
        """
        Another DN cannot take over a registered job id.
        """
        self.register()
        e = self.assertRaises(
            JobMonError, self.hub.registerJob, BOB, "job.1", {"host": "x"}
        )
        self.assertEqual(e.code, errors.JOB_CONFLICT)

    def test_wrongToken(self):
        """
        A wake channel must present the current registration's token.
        """
        self.register(connect=False)
        e = self.assertRaises(
            JobMonError, self.hub.channelHello, FakeChannel(), ALICE, "job.1", "guess"
        )
        self.assertEqual(e.code, errors.NOT_AUTHORIZED)

    def test_channelLostFailsPending(self):
        """
        When the wake channel closes, the job is gone at once: queued and
        running queries fail with "job gone", and the tables are empty.
        """
        _, channel = self.register()
        queued = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.getJobToDo(ALICE, "job.1")
        running = queued
        queued = self.hub.query(ALICE, "job.1", {"op": "stat", "path": "x"})
        self.hub.channelLost(channel)
        self.assertFault(running, errors.JOB_GONE)
        self.assertFault(queued, errors.JOB_GONE)
        self.assertEqual(len(self.table), 0)
        self.assertEqual(len(self.registry), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unregisterFailsPending(self):
        """
        Unregistering fails pending queries at once.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.assertTrue(self.hub.unregisterJob(ALICE, "job.1"))
        self.assertFault(d, errors.JOB_GONE)
        self.assertEqual(self.hub.listJobs(ALICE), [])

    def test_timeout(self):
        """
        A job that never answers gives the timeout fault after the query
        timeout, and the request leaves the table.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.clock.advance(29.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertFault(d, errors.TIMEOUT)
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.hub.getJobToDo(ALICE, "job.1"), [])

    def test_shorterTimeout(self):
        """
        A request may ask for a shorter timeout, not a longer one.
        """
        self.register()
        short = self.hub.query(ALICE, "job.1", {"op": "ls", "timeout": 2})
        long = self.hub.query(ALICE, "job.1", {"op": "ls", "timeout": 1000})
        self.clock.advance(2.1)
        self.assertFault(short, errors.TIMEOUT)
        self.clock.advance(28)
        self.assertFault(long, errors.TIMEOUT)

    def test_lateResult(self):
        """
        A result that arrives after the timeout is dropped: the daemon is
        told nobody was waiting.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        [item] = self.hub.getJobToDo(ALICE, "job.1")
        self.clock.advance(31)
        self.assertFault(d, errors.TIMEOUT)
        self.assertFalse(self.hub.outputJobResult(ALICE, "job.1", item["id"], {}))

    def test_cancelWithdraws(self):
        """
        Cancelling a query (its client went away) removes it from the table.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.hub.getJobToDo(ALICE, "job.1"), [])

    def test_reRegisterKeepsQueue(self):
        """
        The same owner registering again replaces the registration: the old
        channel is closed, queued work waits for the new channel.
        """
        _, old = self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        reply, new = self.register()
        self.assertTrue(old.closed)
        # The old channel's close must not drop the new registration.
        self.hub.channelLost(old)
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual(new.wakes, 1)
        [item] = self.hub.getJobToDo(ALICE, "job.1")
        self.hub.outputJobResult(ALICE, "job.1", item["id"], {"ok": 1})
        self.assertEqual(self.successResultOf(d), {"ok": 1})

    def test_connectGrace(self):
        """
        A job that never connects its wake channel is dropped after the
        grace period, failing its queries.
        """
        self.register(connect=False)
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.clock.advance(10)
        self.assertFault(d, errors.JOB_GONE)
        self.assertEqual(len(self.registry), 0)

    def test_badRequests(self):
        """
        Malformed requests are refused before anything is queued.
        """
        self.register()
        for request, code in [
            ("ls", errors.BAD_REQUEST),
            ({}, errors.BAD_REQUEST),
            ({"op": "rm"}, errors.BAD_REQUEST),
            ({"op": "ls", "timeout": -1}, errors.BAD_REQUEST),
            ({"op": "ls", "timeout": True}, errors.BAD_REQUEST),
            ({"op": "ls", "path": "x" * 5000}, errors.TOO_LARGE),
            ({"op": "ls", "path": [[["deep"]]]}, errors.BAD_REQUEST),
        ]:
            e = self.assertRaises(JobMonError, self.hub.query, ALICE, "job.1", request)
            self.assertEqual(e.code, code, request)
        self.assertEqual(len(self.table), 0)

    def test_badJobIds(self):
        """
        Job ids with spaces, control characters or too long are refused.
        """
        for jobId in ["", "a b", "x\n", "é", "x" * 257, 12]:
            e = self.assertRaises(
                JobMonError, self.hub.registerJob, ALICE, jobId, {}
            )
            self.assertEqual(e.code, errors.BAD_REQUEST)

    def test_pendingLimit(self):
        """
        A job accepts a bounded number of pending requests.
        """
        self.hub.maxPendingPerJob = 2
        self.register()
        self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.query(ALICE, "job.1", {"op": "ls"})
        e = self.assertRaises(JobMonError, self.hub.query, ALICE, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)

    def test_stopFailsEverything(self):
        """
        Server shutdown fails pending queries with "unavailable" and closes
        channels.
        """
        _, channel = self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.stop()
        self.assertFault(d, errors.UNAVAILABLE)
        self.assertTrue(channel.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_whoami(self):
        """
        whoami reports the DN, admin status and proxy kind.
        """
        self.assertEqual(
            self.hub.whoami(Identity(ALICE.dn, proxy=True, limited=True)),
            {"dn": ALICE.dn, "admin": False, "proxy": True, "limited": True},
        )
        self.assertTrue(self.hub.whoami(ADMIN)["admin"])


class CheckRequestTests(SynchronousTestCase):
    """
    Tests for L{checkRequest}.
    """

    def test_timeoutStripped(self):
        """
        The server-side timeout is not forwarded to the daemon.
        """
        self.assertEqual(
            checkRequest({"op": "tail", "path": "x", "timeout": 5}),
            ({"op": "tail", "path": "x"}, 5),
        )

"""
Tests for L{jobmon.server.hub}: registration, authorization, the link from a query
to its result, timeouts and jobs that go away.
"""

from attrs import evolve
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jobmon import __version__, errors
from jobmon.errors import JobMonError
from jobmon.protocols.sealed import keyId
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import AdminList, Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.ratelimit import TokenBuckets
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.requests import checkRequest
from jobmon.server.wakes import IWake, sealedLookup, standardWakes

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
            HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20, connectGrace=10),
        )
        self.hub.wakePort = 8444

    def reconfigure(self, **changes):
        """
        Replace the hub by one whose configuration has C{changes}.
        """
        self.hub = Hub(
            self.clock, self.registry, self.table, evolve(self.hub.config, **changes)
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
        self.assertNotIn("sealed", reply["wake"])

    def test_registerReplySealed(self):
        """
        A hub whose wake port takes sealed channels offers them in the
        reply; the look-up of the wake port finds the registration's
        secret by its key id, and nothing for another key id, another job
        or a job of another mode.
        """
        self.hub.registrations.wakes["tcp"].sealed = True
        reply, _ = self.register(connect=False)
        self.assertEqual(reply["wake"]["sealed"], 1)
        token = reply["wake"]["token"]
        lookup = sealedLookup(self.registry)
        self.assertEqual(lookup("job.1", keyId(token)), token)
        self.assertIsNone(lookup("job.1", keyId(token + "x")))
        self.assertIsNone(lookup("job.2", keyId(token)))
        self.hub.registerJob(ALICE, "job.3", {"host": "wn01", "wake": "poll"})
        poll = self.registry.get("job.3").wakeSecret
        self.assertIsNone(lookup("job.3", keyId(poll)))

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
        e = self.assertRaises(JobMonError, self.hub.query, BOB, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertEqual(self.hub.listJobs(BOB), [])
        self.assertEqual(len(self.table), 0)

    def test_adminMayQuery(self):
        """
        An admin queries every job, and lists every job with C{all}; a user
        may not ask for all.
        """
        _, channel = self.register()
        self.assertEqual(self.hub.listJobs(ADMIN), [])
        [job] = self.hub.listJobs(ADMIN, {"all": True})
        self.assertEqual(job["owner"], ALICE.dn)
        e = self.assertRaises(JobMonError, self.hub.listJobs, ALICE, {"all": True})
        self.assertEqual(e.code, errors.NOT_AUTHORIZED)
        d = self.hub.query(ADMIN, "job.1", {"op": "ls"})
        self.assertNoResult(d)
        self.assertEqual(channel.wakes, 1)

    def test_ownerNamedToOthers(self):
        """
        A result that reaches someone other than the job's owner (an admin)
        names the owner in C{job_owner}; the owner's own results do not.
        """
        self.register()
        mine = self.hub.query(ALICE, "job.1", {"op": "ls"})
        theirs = self.hub.query(ADMIN, "job.1", {"op": "ls"})
        for item in self.hub.getJobToDo(ALICE, "job.1"):
            self.hub.outputJobResult(ALICE, "job.1", item["id"], {"entries": []})
        self.assertEqual(self.successResultOf(mine), {"entries": []})
        self.assertEqual(self.successResultOf(theirs),
                         {"entries": [], "job_owner": ALICE.dn})

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
                "batch": "",
                "mode": "tcp",
                "state": "ready",
                "registered": 100.0,
                "last_seen": 100.0,
                "pending": 1,
            },
        )

    def test_batchSystem(self):
        """
        The batch system the daemon reported is listed; anything but a
        string is not.
        """
        self.hub.registerJob(ALICE, "s1", {"host": "wn", "batch": "slurm"})
        self.hub.registerJob(ALICE, "s2", {"host": "wn", "batch": 7})
        jobs = {j["job_id"]: j["batch"] for j in self.hub.listJobs(ALICE)}
        self.assertEqual(jobs, {"s1": "slurm", "s2": ""})

    def test_listJobsPages(self):
        """
        Jobs come sorted by id, a page at a time; C{after} continues.
        """
        for i in range(5):
            self.register(jobId="j{}".format(i))
        first = self.hub.listJobs(ALICE, {"limit": 2})
        self.assertEqual([j["job_id"] for j in first], ["j0", "j1"])
        rest = self.hub.listJobs(ALICE, {"limit": 10, "after": "j1"})
        self.assertEqual([j["job_id"] for j in rest], ["j2", "j3", "j4"])
        for bad in ({"limit": 0}, {"limit": 10001}, {"limit": True}, {"after": 3}, "x"):
            e = self.assertRaises(JobMonError, self.hub.listJobs, ALICE, bad)
            self.assertEqual(e.code, errors.BAD_REQUEST)

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
                self.assertEqual(e.code, errors.NO_SUCH_JOB)

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
        self.assertEqual(e.code, errors.NO_SUCH_JOB)

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
        Unregistering fails pending queries at once: the job ended.
        """
        self.register()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.assertTrue(self.hub.unregisterJob(ALICE, "job.1"))
        self.assertFault(d, errors.JOB_ENDED)
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
        self.reconfigure(maxPendingPerJob=2)
        self.register()
        self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.query(ALICE, "job.1", {"op": "ls"})
        e = self.assertRaises(JobMonError, self.hub.query, ALICE, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)

    def test_rateLimit(self):
        """
        A user gets a burst of queries, then as many per second as the rate
        allows; another user is not affected.
        """
        self.reconfigure(queryRate=2.0, queryBurst=3, maxPendingPerJob=100)
        self.register()
        self.register(BOB, "job.2")
        # As the server's endpoint calls it: charged by the method limits.
        query = self.hub.limits.wrap("jobmon.query", self.hub.query)
        pending = [query(ALICE, "job.1", {"op": "ls"}) for _ in range(3)]
        e = self.assertRaises(JobMonError, query, ALICE, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertIn("at most 2 per second", e.message)
        pending.append(query(BOB, "job.2", {"op": "ls"}))
        self.clock.advance(0.5)
        pending.append(query(ALICE, "job.1", {"op": "ls"}))
        for d in pending:
            d.cancel()
            self.failureResultOf(d)
        self.hub.cleanup()
        self.clock.advance(10)
        self.hub.cleanup()
        self.assertEqual(self.hub.admission.buckets, {})

    def test_queryChargedOnce(self):
        """
        A query admitted through the method limits takes one token from
        one bucket of its user, not one there and one more in the hub.
        """
        self.reconfigure(queryRate=1e-9, queryBurst=4, maxPendingPerJob=100)
        self.register()
        takes = []
        realTake = TokenBuckets.take

        def take(buckets, key, *args, **kwargs):
            takes.append(key)
            return realTake(buckets, key, *args, **kwargs)

        self.patch(TokenBuckets, "take", take)
        query = self.hub.limits.wrap("jobmon.query", self.hub.query)
        pending = [query(ALICE, "job.1", {"op": "ls"}) for _ in range(4)]
        self.assertEqual(takes, [ALICE.dn] * 4)
        self.assertAlmostEqual(self.hub.admission.buckets[ALICE.dn][0], 0.0)
        e = self.assertRaises(JobMonError, query, ALICE, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)
        for d in pending:
            d.cancel()
            self.failureResultOf(d)

    def test_pendingPerUser(self):
        """
        A user may have a bounded number of queries pending at once, across
        her jobs; finished ones make room.
        """
        self.reconfigure(maxPendingPerUser=2)
        self.register()
        self.register(jobId="job.2")
        first = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.hub.query(ALICE, "job.2", {"op": "ls"}).addErrback(lambda f: None)
        e = self.assertRaises(JobMonError, self.hub.query, ALICE, "job.1", {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)
        first.cancel()
        self.failureResultOf(first)
        self.hub.query(ALICE, "job.1", {"op": "ls"}).addErrback(lambda f: None)

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

    def test_limitedProxyReadsOnly(self):
        """
        A limited proxy may read from a job but not run commands or send
        signals on it.
        """
        self.register()
        limited = Identity(ALICE.dn, proxy=True, limited=True)
        d = self.hub.query(limited, "job.1", {"op": "ps"})
        self.assertNoResult(d)
        for request in ({"op": "run", "name": "x"}, {"op": "signal", "signal": "TERM"}):
            e = self.assertRaises(JobMonError, self.hub.query, limited, "job.1", request)
            self.assertEqual(e.code, errors.NOT_AUTHORIZED)
            self.assertIn("limited proxy", e.message)
        self.assertEqual(len(self.table), 1)
        d.cancel()
        self.failureResultOf(d)

    def tokenIdentity(self, scopes, sub="alice-sub"):
        """
        An identity with a bearer token holding C{scopes}, granting what the
        WLCG default scopes grant.
        """
        from jobmon.server.tokens import DEFAULT_SCOPES, TokenInfo

        grants = frozenset(c for c, wanted in DEFAULT_SCOPES.items()
                           if set(wanted) & set(scopes))
        info = TokenInfo(
            issuer="https://iss.example", subject=sub, scopes=frozenset(scopes),
            grants=grants, expires=1e10,
            needs=tuple((c, tuple(w)) for c, w in DEFAULT_SCOPES.items()),
        )
        return Identity("https://iss.example#" + sub, token=info)

    def test_tokenScopes(self):
        """
        A token reads with compute.read, acts with compute.modify and serves
        its job with compute.create; each missing scope is a 403 naming it.
        """
        daemon = self.tokenIdentity(["compute.create"])
        reply = self.hub.registerJob(daemon, "job.t", {"host": "wn01", "wake": "tcp"})
        self.hub.channelHello(FakeChannel(), None, "job.t", reply["wake"]["token"])
        reader = self.tokenIdentity(["compute.read"])
        d = self.hub.query(reader, "job.t", {"op": "ps"})
        self.assertNoResult(d)
        for request in ({"op": "run", "name": "x"}, {"op": "signal", "signal": "TERM"}):
            e = self.assertRaises(JobMonError, self.hub.query, reader, "job.t", request)
            self.assertEqual(e.code, errors.NOT_AUTHORIZED)
            self.assertIn("compute.modify", e.message)
        actor = self.tokenIdentity(["compute.read", "compute.modify"])
        d2 = self.hub.query(actor, "job.t", {"op": "signal", "signal": "TERM"})
        self.assertNoResult(d2)
        # The daemon's token cannot read, the reader's cannot serve.
        e = self.assertRaises(JobMonError, self.hub.listJobs, daemon)
        self.assertIn("compute.read", e.message)
        e = self.assertRaises(JobMonError, self.hub.getJobToDo, reader, "job.t")
        self.assertEqual(e.code, errors.NOT_AUTHORIZED)
        self.assertIn("compute.create", e.message)
        e = self.assertRaises(JobMonError, self.hub.registerJob, reader, "job.u",
                              {"host": "wn01", "wake": "poll"})
        self.assertIn("register a job", e.message)
        self.assertEqual(len(self.hub.getJobToDo(daemon, "job.t")), 2)
        for pending in (d, d2):
            pending.cancel()
            self.failureResultOf(pending)

    def test_wakeChannelWithoutCertificate(self):
        """
        A wake channel without a certificate (a daemon with a token) binds
        by the registration's secret alone; a wrong secret is refused.
        """
        reply = self.hub.registerJob(ALICE, "job.1", {"host": "wn01", "wake": "tcp"})
        e = self.assertRaises(JobMonError, self.hub.channelHello, FakeChannel(), None,
                              "job.1", "0" * 32)
        self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertEqual(
            self.hub.channelHello(FakeChannel(), None, "job.1", reply["wake"]["token"]), 20)

    def test_whoamiToken(self):
        """
        whoami describes a token: issuer, subject, scopes, what they grant
        and when it expires.
        """
        me = self.hub.whoami(self.tokenIdentity(["compute.read", "x.y"]))
        self.assertEqual(me["dn"], "https://iss.example#alice-sub")
        self.assertEqual(me["token"], {
            "issuer": "https://iss.example", "subject": "alice-sub",
            "scopes": ["compute.read", "x.y"], "grants": ["read"], "expires": 10**10,
        })

    def test_whoami(self):
        """
        whoami reports the DN, admin status and proxy kind, and the
        server's version.
        """
        self.assertEqual(
            self.hub.whoami(Identity(ALICE.dn, proxy=True, limited=True)),
            {"dn": ALICE.dn, "admin": False, "proxy": True, "limited": True,
             "fqans": [], "server_version": __version__},
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


class FakeSender:
    """
    Records UDP wakes; drops the first C{self.lose} of them.
    """

    def __init__(self):
        self.sent = []
        self.lose = 0
        self.address = ("127.255.255.255", 9)

    def send(self, jobId, sequence, secret):
        if self.lose:
            self.lose -= 1
            return
        self.sent.append((jobId, sequence, secret))


class UDPModeTests(SynchronousTestCase):
    """
    UDP broadcast wakes: authenticated, repeated until fetched, jobs kept
    alive by re-registration and dropped by the cleanup cycle.
    """

    def setUp(self):
        self.clock = Clock()
        self.sender = FakeSender()
        self.newHub(queryTimeout=30)
        self.info = {"host": "wn01", "wake": "udp", "instance": "i1"}

    def newHub(self, queryTimeout):
        """
        Start a hub with UDP wakes and tables of its own, stopped at the
        end of the test.
        """
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        config = HubConfig(
            queryTimeout=queryTimeout, reregisterInterval=60, expireAfter=180, cleanupInterval=10
        )
        self.hub = Hub(
            self.clock,
            self.registry,
            self.table,
            config,
            wakes=standardWakes(
                self.clock, self.registry, self.table, config, udpSender=self.sender, udpPort=9999
            ),
        )
        self.hub.start()
        self.addCleanup(self.hub.stop)

    def test_registerReply(self):
        """
        The reply gives the UDP port, a secret and the re-registration
        interval; the job is ready at once.
        """
        reply = self.hub.registerJob(ALICE, "j", self.info)
        self.assertEqual(reply["wake"]["port"], 9999)
        self.assertEqual(len(bytes.fromhex(reply["wake"]["secret"])), 32)
        self.assertEqual(reply["reregister"], 60)
        self.assertEqual(self.hub.listJobs(ALICE)[0]["state"], "ready")

    def test_wakeCarriesSecret(self):
        """
        A query sends a wake with the registration's secret and a new
        sequence number.
        """
        reply = self.hub.registerJob(ALICE, "j", self.info)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.assertEqual(
            self.sender.sent, [("j", 1, bytes.fromhex(reply["wake"]["secret"]))]
        )
        d.cancel()
        self.failureResultOf(d)

    def test_lossyWakesStillComplete(self):
        """
        Lost wakes are repeated with backoff until the daemon fetches; the
        query then completes.
        """
        self.hub.registerJob(ALICE, "j", self.info)
        self.sender.lose = 3
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.assertEqual(self.sender.sent, [])
        for _ in range(20):
            self.clock.advance(0.25)
            if self.sender.sent:
                break
        [(jobId, sequence, _)] = self.sender.sent
        self.assertEqual(sequence, 4)
        self.assertLess(self.clock.seconds(), 0.25 + 0.5 + 1 + 2 + 0.01)
        [item] = self.hub.getJobToDo(ALICE, "j")
        self.hub.outputJobResult(ALICE, "j", item["id"], {"ok": True})
        self.assertEqual(self.successResultOf(d), {"ok": True})
        # Fetched: no more repeats.
        self.clock.advance(10)
        self.assertEqual(len(self.sender.sent), 1)

    def test_repeatsAreBounded(self):
        """
        A daemon that never fetches stops getting wakes after the query
        timeout, and the delay between repeats is capped.
        """
        self.hub.registerJob(ALICE, "j", self.info)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        times = []
        for _ in range(400):
            self.clock.advance(0.125)
            if len(self.sender.sent) > len(times):
                times.append(self.clock.seconds())
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLessEqual(max(gaps), 4.0)
        self.assertLessEqual(times[-1], 30.0)
        self.assertEqual(self.failureResultOf(d, JobMonError).value.code, errors.TIMEOUT)

    def test_reregistrationKeepsSecret(self):
        """
        The same daemon (same instance) re-registering keeps its secret and
        stays alive; another instance, once the first fell silent, gets a
        new secret.
        """
        first = self.hub.registerJob(ALICE, "j", self.info)
        self.clock.advance(50)
        again = self.hub.registerJob(ALICE, "j", self.info)
        self.assertEqual(first["wake"]["secret"], again["wake"]["secret"])
        self.assertEqual(self.hub.listJobs(ALICE)[0]["last_seen"], 50)
        self.clock.advance(90)
        other = self.hub.registerJob(ALICE, "j", dict(self.info, instance="i2"))
        self.assertNotEqual(first["wake"]["secret"], other["wake"]["secret"])

    def test_cleanupDropsSilentJob(self):
        """
        A job not re-registered within the limit is removed by the cleanup
        cycle; its pending query fails with "job gone" then, not at the
        query timeout, and the removal is logged with job, owner and last
        seen.
        """
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import globalLogPublisher

        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.newHub(queryTimeout=1000)
        self.hub.registerJob(ALICE, "j", self.info)
        self.clock.advance(170)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.clock.advance(10)
        self.assertNoResult(d)
        self.clock.advance(10)
        failure = self.failureResultOf(d, JobMonError)
        self.assertEqual(failure.value.code, errors.JOB_GONE)
        self.assertEqual(self.hub.listJobs(ALICE), [])
        [event] = [e for e in observer if e.get("why", "").startswith("not re-registered")]
        self.assertEqual((event["job_id"], event["owner"]), ("j", ALICE.dn))
        self.assertGreaterEqual(event["last_seen"], 180)

    def test_udpNotConfigured(self):
        """
        Without a broadcast address the server refuses UDP registrations
        with a clear fault.
        """
        hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable())
        e = self.assertRaises(JobMonError, hub.registerJob, ALICE, "j", self.info)
        self.assertEqual(e.code, errors.BAD_REQUEST)
        self.assertIn("tcp, poll", e.message)


class PollModeTests(SynchronousTestCase):
    """
    HTTPS long poll: C{waitForWork} returns as soon as work is queued.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        self.hub = Hub(
            self.clock, self.registry, self.table,
            HubConfig(queryTimeout=30, expireAfter=90, cleanupInterval=10, maxPoll=60),
        )
        self.hub.start()
        self.addCleanup(self.hub.stop)
        self.info = {"host": "wn01", "wake": "poll", "instance": "i1"}
        self.reply = self.hub.registerJob(ALICE, "j", self.info)

    def test_pollReturnsWork(self):
        """
        A pending poll fires with the work the moment a query arrives.
        """
        self.assertEqual(self.reply["wake"]["max_wait"], 60)
        poll = self.hub.waitForWork(ALICE, "j", 60)
        self.assertNoResult(poll)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        [item] = self.successResultOf(poll)
        self.assertEqual(item["request"], {"op": "ls"})
        self.hub.outputJobResult(ALICE, "j", item["id"], {"entries": []})
        self.assertEqual(self.successResultOf(d), {"entries": []})

    def test_queuedBeforePoll(self):
        """
        Work queued between polls is returned by the next poll at once.
        """
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        [item] = self.hub.waitForWork(ALICE, "j", 60)
        self.assertEqual(item["request"]["op"], "ls")
        d.cancel()
        self.failureResultOf(d)

    def test_pollTimesOut(self):
        """
        A poll with no work returns an empty list after its wait, capped by
        the server's maximum.
        """
        poll = self.hub.waitForWork(ALICE, "j", 1000)
        self.clock.advance(59)
        self.assertNoResult(poll)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(poll), [])

    def test_newerPollReplacesOlder(self):
        """
        A second poll ends the first (its connection may be dead).
        """
        first = self.hub.waitForWork(ALICE, "j", 60)
        second = self.hub.waitForWork(ALICE, "j", 60)
        self.assertEqual(self.successResultOf(first), [])
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.assertEqual(len(self.successResultOf(second)), 1)
        d.cancel()
        self.failureResultOf(d)

    def test_lapseDropsJob(self):
        """
        A job whose polls lapse for longer than the limit is gone; a pending
        poll keeps it alive.
        """
        poll = self.hub.waitForWork(ALICE, "j", 60)
        self.clock.advance(60)
        self.successResultOf(poll)
        poll = self.hub.waitForWork(ALICE, "j", 60)
        self.clock.advance(59)
        # Cancelled, as when the daemon's connection drops.
        poll.cancel()
        self.failureResultOf(poll)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.clock.advance(100)
        self.assertEqual(self.failureResultOf(d, JobMonError).value.code, errors.JOB_GONE)

    def test_unregisterEndsPoll(self):
        """
        Unregistering fails the pending poll, so the daemon learns it.
        """
        poll = self.hub.waitForWork(ALICE, "j", 60)
        self.hub.unregisterJob(ALICE, "j")
        self.assertEqual(self.failureResultOf(poll, JobMonError).value.code, errors.NO_SUCH_JOB)

    def test_badSeconds(self):
        """
        A negative or non-numeric wait is refused.
        """
        for seconds in (-1, "x", True, float("nan")):
            e = self.assertRaises(JobMonError, self.hub.waitForWork, ALICE, "j", seconds)
            self.assertEqual(e.code, errors.BAD_REQUEST)

    def test_onlyOwnerPolls(self):
        """
        Another identity cannot take a job's work by polling.
        """
        e = self.assertRaises(JobMonError, self.hub.waitForWork, BOB, "j", 1)
        self.assertEqual(e.code, errors.NO_SUCH_JOB)


class LeakTests(SynchronousTestCase):
    """
    After jobs in every mode come and go, with queries answered, timed out,
    cancelled and failed, every table of the hub is empty again.
    """

    def test_tablesReturnToEmpty(self):
        """
        Nothing is left behind: registry, requests, channels, polls, UDP
        retries and sequences, grace timers, per-user counts and rate
        buckets, and no timer but the cleanup cycle's.
        """
        clock = Clock()
        sender = FakeSender()
        registry, table = MemoryJobRegistry(), MemoryRequestTable()
        # Job ids stay reserved for less than a cleanup interval.
        config = HubConfig(expireAfter=30, cleanupInterval=5, queryTimeout=10, reserveFor=1)
        hub = Hub(clock, registry, table, config,
                  wakes=standardWakes(clock, registry, table, config, udpSender=sender, udpPort=9))
        hub.start()
        outcomes = []
        for round in range(3):
            tcp = hub.registerJob(ALICE, "t", {"wake": "tcp"})
            channel = FakeChannel("t")
            hub.channelHello(channel, ALICE, "t", tcp["wake"]["token"])
            hub.registerJob(BOB, "u", {"wake": "udp", "instance": "i"})
            # A second daemon refused: its holder's notice waits.
            self.assertRaises(JobMonError, hub.registerJob, BOB, "u",
                              {"wake": "udp", "instance": "rival"})
            hub.registerJob(ALICE, "p", {"wake": "poll", "instance": "i"})
            hub.registerJob(BOB, "never", {"wake": "tcp"})
            poll = hub.waitForWork(ALICE, "p", 60)
            answered = hub.query(ALICE, "t", {"op": "ls"})
            [item] = hub.getJobToDo(ALICE, "t")
            hub.outputJobResult(ALICE, "t", item["id"], {"entries": []})
            outcomes.append(self.successResultOf(answered))
            timedOut = hub.query(BOB, "u", {"op": "ls"})
            cancelled = hub.query(ALICE, "t", {"op": "ps"})
            cancelled.cancel()
            pollQuery = hub.query(ALICE, "p", {"op": "ls"})
            self.successResultOf(poll)
            clock.advance(11)
            self.failureResultOf(timedOut, JobMonError)
            self.failureResultOf(cancelled)
            self.failureResultOf(pollQuery, JobMonError)
            hub.channelLost(channel)
            hub.unregisterJob(ALICE, "p")
            clock.advance(40)
        # The ids' reservations lapse by the next cleanup.
        clock.advance(5)
        self.assertEqual(len(outcomes), 3)
        self.assertEqual(set(hub.sizes().values()), {0}, hub.sizes())
        [cycle] = clock.getDelayedCalls()
        hub.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class ConfigTests(SynchronousTestCase):
    """
    L{HubConfig}: the hub's settings in one value.
    """

    def test_defaults(self):
        """
        The defaults are those of a hub built with no settings: the
        server's documented defaults.
        """
        config = HubConfig()
        self.assertEqual(
            (config.admins, config.queryTimeout, config.keepalive, config.connectGrace,
             config.maxPendingPerJob, config.reregisterInterval, config.expireAfter,
             config.cleanupInterval, config.maxPoll, config.maxPendingPerUser,
             config.queryRate, config.queryBurst),
            (AdminList(), 30.0, 20, 30.0, 64, 60.0, 180.0, 10.0, 60.0, 256, 50.0, 200),
        )

    def test_frozen(self):
        """
        A configuration cannot change under a running hub; its admins are a
        set, whatever they were given as.
        """
        config = HubConfig(admins=[ADMIN.dn, ADMIN.dn])
        self.assertEqual(config.admins, AdminList([ADMIN.dn]))
        self.assertEqual(len(config.admins), 1)
        self.assertRaises(AttributeError, setattr, config, "queryTimeout", 1)


class WakeObjectTests(SynchronousTestCase):
    """
    The hub's wakes: one L{IWake} provider per mode.
    """

    def test_interface(self):
        """
        Every standard wake provides L{IWake}, and the hub offers their
        modes in order.
        """
        clock, registry, table = Clock(), MemoryJobRegistry(), MemoryRequestTable()
        config = HubConfig()
        wakes = standardWakes(clock, registry, table, config, udpSender=FakeSender(), udpPort=9)
        for wake in wakes:
            verifyObject(IWake, wake)
        hub = Hub(clock, registry, table, config, wakes=wakes)
        self.assertEqual(hub.modes, ("tcp", "udp", "poll"))
        self.assertEqual(Hub(clock, registry, table).modes, ("tcp", "poll"))

    def test_sizes(self):
        """
        The hub reports the size of every table it and its wakes keep, under
        the names the metrics read.
        """
        clock, registry, table = Clock(), MemoryJobRegistry(), MemoryRequestTable()
        config = HubConfig()
        wakes = standardWakes(clock, registry, table, config, udpSender=FakeSender(), udpPort=9)
        self.assertEqual(
            set(Hub(clock, registry, table, config, wakes=wakes).sizes()),
            {"jobs", "requests", "channels", "polls", "udp_retries", "udp_sequences",
             "udp_notices", "poll_notices", "grace_timers", "rivals", "claims",
             "users_pending", "rate_buckets", "limit_buckets"},
        )

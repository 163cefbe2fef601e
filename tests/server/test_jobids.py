"""
Tests for job ids and their owners (issue 13): an id stays reserved for
its owner after its job went, also across a server restart (from the
history database), so that nobody can squat it; the history updates only
the rows of the owner's own registration; what daemons report about
themselves reaches the logs escaped.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.claims import JobClaims, reserveFromHistory
from jobmon.server.history import History
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registrations import printable
from jobmon.server.registry import MemoryJobRegistry
from tests.server.test_history import HistoryHubMixin
from tests.server.test_hub import FakeChannel

ALICE = Identity("/DC=org/DC=test/CN=Alice")
BOB = Identity("/DC=org/DC=test/CN=Bob")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")
START = 1_800_000_000.0


def reserve(hub, opened):
    """
    Reserve the ids the hub's history knows, once C{opened} fires.
    """
    return reserveFromHistory(hub.registrations.claims, hub.history, hub.clock, opened)


def sync(f, *args):
    """
    The "database thread", at once.
    """
    return defer.maybeDeferred(f, *args)


class JobClaimsTests(SynchronousTestCase):
    """
    L{JobClaims}: which identity each recent job id is reserved for.
    """

    def test_reservedFor(self):
        """
        An id is its owner's for C{reserveFor} seconds after its job went,
        then nobody's; expired reservations are forgotten.
        """
        claims = JobClaims(reserveFor=60)
        claims.claim("j1", ALICE.dn, 100)
        self.assertEqual(claims.holder("j1", 159), ALICE.dn)
        self.assertIsNone(claims.holder("j1", 160))
        self.assertIsNone(claims.holder("j2", 100))
        claims.expire(159)
        self.assertEqual(len(claims), 1)
        claims.expire(160)
        self.assertEqual(len(claims), 0)

    def test_perOwnerCap(self):
        """
        One identity's many ids push out only her own oldest reservations,
        never another's.
        """
        claims = JobClaims(reserveFor=60, maxPerOwner=3)
        claims.claim("a", ALICE.dn, 1)
        for i in range(10):
            claims.claim("b{}".format(i), BOB.dn, 2 + i)
        self.assertEqual(claims.holder("a", 10), ALICE.dn)
        self.assertEqual([claims.holder("b{}".format(i), 10) for i in (6, 7, 8, 9)],
                         [None, BOB.dn, BOB.dn, BOB.dn])
        self.assertEqual(len(claims), 4)

    def test_loadNewestWins(self):
        """
        Loaded reservations: the latest registration of an id wins, and
        they expire in the order they end.
        """
        claims = JobClaims(reserveFor=60)
        claims.ready = False
        claims.load([("j1", BOB.dn, 50), ("j2", ALICE.dn, 90), ("j1", ALICE.dn, 10)])
        self.assertTrue(claims.ready)
        self.assertEqual(claims.holder("j1", 60), ALICE.dn)
        claims.expire(71)
        self.assertIsNone(claims.holder("j1", 60))
        self.assertEqual(claims.holder("j2", 71), ALICE.dn)


class ReservationTests(SynchronousTestCase):
    """
    The hub refuses another identity an id whose job went lately.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       HubConfig(admins=[ADMIN.dn], expireAfter=30, connectGrace=10,
                                 reserveFor=3600))
        self.hub.start()
        self.addCleanup(self.hub.stop)

    def conflict(self, who=BOB, jobId="alice.1"):
        """
        The registration C{who} is refused, as a L{JobMonError}.
        """
        e = self.assertRaises(JobMonError, self.hub.registerJob, who, jobId,
                              {"host": "wn", "wake": "tcp"})
        self.assertEqual(e.code, errors.JOB_CONFLICT)
        return e.message

    def test_everyWayOfGoing(self):
        """
        However the job went (its channel closed, its daemon unregistered
        it, it never connected, it stopped polling), its id stays its
        owner's: another identity gets the same 409 as while it was
        registered, and the owner registers it again.
        """
        def channelClosed():
            reply = self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "tcp"})
            channel = FakeChannel("alice.1")
            self.hub.channelHello(channel, ALICE, "alice.1", reply["wake"]["token"])
            live = self.conflict()
            self.hub.channelLost(channel)
            return live

        def unregistered():
            self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "poll"})
            live = self.conflict()
            self.hub.unregisterJob(ALICE, "alice.1")
            return live

        def neverConnected():
            self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "tcp"})
            live = self.conflict()
            self.clock.advance(11)
            return live

        def stoppedPolling():
            self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "poll"})
            live = self.conflict()
            self.clock.advance(45)
            return live

        for going in (channelClosed, unregistered, neverConnected, stoppedPolling):
            live = going()
            self.assertEqual(self.hub.listJobs(ALICE), [], going.__name__)
            self.assertEqual(self.conflict(), live, going.__name__)
            self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "poll"})
            self.hub.unregisterJob(ALICE, "alice.1")
        self.assertIn("job ids stay reserved for their owner", live)
        self.assertNotIn(ALICE.dn, live)

    def test_reservationLapses(self):
        """
        Once the reservation is over, another identity may register the
        id; the cleanup cycle forgets it.
        """
        self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "poll"})
        self.hub.unregisterJob(ALICE, "alice.1")
        self.clock.advance(3599)
        self.conflict()
        self.clock.advance(11)
        self.assertEqual(self.hub.sizes()["claims"], 0)
        self.hub.registerJob(BOB, "alice.1", {"host": "wn", "wake": "poll"})

    def test_refusalAudited(self):
        """
        The refusal of a reserved id is audited with the owner it is
        reserved for (for the admins), and logged as a warning.
        """
        records = []
        self.hub._audit = lambda event, **fields: records.append((event, fields))
        self.hub.registrations.record = self.hub._audit
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.hub.registerJob(ALICE, "alice.1", {"host": "wn", "wake": "poll"})
        self.hub.unregisterJob(ALICE, "alice.1")
        self.conflict()
        [(_, refused)] = [r for r in records if r[0] == "refused"]
        self.assertEqual((refused["owner"], refused["reason"], refused["dn"]),
                         (ALICE.dn, "reserved for another identity", BOB.dn))
        self.assertTrue([e for e in logged if e.get("reason") == "reserved for another identity"])


class RestartTests(SynchronousTestCase):
    """
    Reservations survive a server restart: the new server reads the owners
    of recent ids from the history, off the reactor, before it accepts a
    registration.
    """

    def setUp(self):
        self.path = self.mktemp() + ".sqlite3"
        self.clock = Clock()
        self.clock.advance(START)

    def server(self, runInThread=sync):
        """
        A history on the file and a hub that keeps it.
        """
        history = History(self.path, self.clock, runInThread=runInThread)
        hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                  HubConfig(admins=[ADMIN.dn], reserveFor=3600), history=history)
        return history, hub

    def killedWithAliceRegistered(self):
        """
        A first server where Alice registered C{alice.1}, then "killed":
        its history still has her job open.
        """
        history, hub = self.server()
        self.successResultOf(history.start())
        hub.registerJob(ALICE, "alice.1", {"host": "wn01", "wake": "poll"})
        self.successResultOf(history.stop())
        self.clock.advance(20)

    def test_squatterRefusedAfterRestart(self):
        """
        The issue's case: during a restart, Bob asks first for Alice's id.
        He is told to try again until the reservations are read, then
        refused; Alice registers it and an admin's query reaches her job.
        The row left open by the killed server ends "server restarted".
        """
        self.killedWithAliceRegistered()
        thread = []

        def held(f, *args):
            # The database thread, run when the test says.
            d = defer.Deferred()
            thread.append((f, args, d))
            return d

        def runThread():
            while thread:
                f, args, d = thread.pop(0)
                d.callback(f(*args))

        history, hub = self.server(held)
        loaded = reserve(hub, history.start())
        for who in (BOB, ALICE):
            e = self.assertRaises(JobMonError, hub.registerJob, who, "alice.1",
                                  {"host": "wn", "wake": "poll"})
            self.assertEqual(e.code, errors.UNAVAILABLE)
        runThread()
        self.successResultOf(loaded)
        e = self.assertRaises(JobMonError, hub.registerJob, BOB, "alice.1",
                              {"host": "evil", "wake": "poll"})
        self.assertEqual(e.code, errors.JOB_CONFLICT)
        hub.registerJob(ALICE, "alice.1", {"host": "wn01", "wake": "poll"})
        [job] = hub.listJobs(ADMIN, {"all": True})
        self.assertEqual((job["owner"], job["host"]), (ALICE.dn, "wn01"))
        mine = history.read(ALICE.dn)
        runThread()
        jobs = self.successResultOf(mine)["jobs"]
        self.assertEqual([(j["why"], j["ended"]) for j in jobs],
                         [("server restarted", START + 20), ("", 0.0)])
        hub.stop()
        d = history.stop()
        runThread()
        self.successResultOf(d)

    def test_reservedFromTheEnd(self):
        """
        An id whose job ended before the restart stays reserved for what
        is left of its time; one whose job was still registered, from the
        restart on.
        """
        history, hub = self.server()
        self.successResultOf(history.start())
        hub.registerJob(ALICE, "ended", {"wake": "poll"})
        hub.registerJob(ALICE, "open", {"wake": "poll"})
        hub.unregisterJob(ALICE, "ended")
        self.successResultOf(history.stop())
        self.clock.advance(3000)
        history, hub = self.server()
        self.successResultOf(reserve(hub, history.start()))
        for jobId in ("ended", "open"):
            self.assertRaises(JobMonError, hub.registerJob, BOB, jobId, {"wake": "poll"})
        self.clock.advance(601)
        hub.registrations.expire()
        hub.registerJob(BOB, "ended", {"wake": "poll"})
        self.assertRaises(JobMonError, hub.registerJob, BOB, "open", {"wake": "poll"})
        hub.stop()
        self.successResultOf(history.stop())

    def test_unreadableHistory(self):
        """
        A history that cannot be read does not keep the server from
        accepting registrations; the log says ids are not reserved.
        """
        history, hub = self.server()
        self.successResultOf(reserve(hub, defer.fail(OSError("disk on fire"))))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        hub.registerJob(BOB, "alice.1", {"wake": "poll"})
        hub.stop()


class HistoryOwnerTests(HistoryHubMixin, SynchronousTestCase):
    """
    Every history update is filtered by job id, owner and registration.
    """

    def tearDown(self):
        self.successResultOf(self.history.stop())

    def jobs(self, who=ALICE):
        return [(j["job_id"], j["why"], j["ended"])
                for j in self.successResultOf(self.history.read(who.dn))["jobs"]]

    def test_othersEventsLeaveRowOpen(self):
        """
        Another identity's registration or removal of the same id, and a
        removal of another registration, leave the owner's row open.
        """
        self.hub.registerJob(ALICE, "j1", {"host": "wn", "wake": "poll"})
        mine = self.hub.registry.get("j1").registration
        self.clock.advance(1)
        self.history.record("register", dn=BOB.dn, job_id="j1", host="x", mode="poll",
                            registration="b0b", replaces=mine)
        self.history.record("removed", job_id="j1", owner=BOB.dn, why="gone",
                            registration=mine)
        self.history.record("removed", job_id="j1", owner=ALICE.dn, why="gone",
                            registration="0ld")
        self.clock.advance(0)
        self.assertEqual(self.jobs(), [("j1", "", 0.0)])
        self.hub.unregisterJob(ALICE, "j1")
        self.clock.advance(0)
        self.assertEqual(self.jobs(), [("j1", "unregistered", 1001.0)])

    def test_registeredAgainClosesTheOneReplaced(self):
        """
        A second daemon of the owner taking the job over closes the row of
        the registration it replaced, and only that one.
        """
        self.hub.registerJob(ALICE, "j1", {"host": "wn", "wake": "poll", "instance": "a"})
        self.clock.advance(100)
        self.hub.registerJob(ALICE, "j1", {"host": "wn", "wake": "poll", "instance": "b"})
        self.clock.advance(0)
        self.assertEqual(self.jobs(), [("j1", "registered again", 1100.0), ("j1", "", 0.0)])


class PrintableTests(SynchronousTestCase):
    """
    What daemons say about themselves reaches the logs escaped and cut.
    """

    def test_printable(self):
        """
        Control characters, terminal escapes and backslashes are escaped;
        long values are cut; other text is kept.
        """
        self.assertEqual(printable("wn01.example.org", 255), "wn01.example.org")
        self.assertEqual(printable("wn\n01\x1b[31m\\", 255), "wn\\n01\\x1b[31m\\\\")
        self.assertEqual(printable("h\u202eost", 255), "h\\u202eost")
        self.assertEqual(printable("nœud", 255), "nœud")
        self.assertEqual(printable("x" * 300, 255), "x" * 255 + "...")

    def test_hostEscaped(self):
        """
        A registration's host and batch system reach the log, the audit
        and the listing escaped.
        """
        records = []
        hub = Hub(Clock(), MemoryJobRegistry(), MemoryRequestTable())
        hub._audit = lambda event, **fields: records.append((event, fields))
        hub.registrations.record = hub._audit
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        hub.registerJob(ALICE, "j1", {"host": "wn\nFAKE LINE", "batch": "s\x1b]0;x\x07",
                                      "wake": "poll"})
        [job] = hub.listJobs(ALICE)
        self.assertEqual((job["host"], job["batch"]), ("wn\\nFAKE LINE", "s\\x1b]0;x\\x07"))
        [(_, register)] = records
        self.assertEqual((register["host"], register["batch"]),
                         ("wn\\nFAKE LINE", "s\\x1b]0;x\\x07"))
        [line] = [e for e in logged if e.get("category") == "registration"]
        self.assertEqual(line["host"], "wn\\nFAKE LINE")
        hub.stop()

"""
Tests for L{jobmon.server.ratelimit}: every XML-RPC method charged to its
caller's rate, failures to authenticate to the caller's address, and the
cap and rate of new registrations per owner.
"""

from attrs import evolve
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.metrics import Metrics
from jobmon.server.options import Options
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.ratelimit import LimitsConfig, TokenBuckets, limitFailures
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.service import apiMethods
from tests.server.test_audit import MemoryAudit

ALICE = Identity("/CN=Alice")
BOB = Identity("/CN=Bob")


class TokenBucketsTests(SynchronousTestCase):
    """
    L{TokenBuckets}: a burst, then the rate.
    """

    def test_burstThenRate(self):
        """
        A key may take C{burst} calls at once; the next is refused with the
        time until one is allowed, and the allowance grows back at the rate.
        """
        clock = Clock()
        buckets = TokenBuckets(clock, rate=2.0, burst=3)
        self.assertEqual([buckets.take("a") for _ in range(3)], [0, 0, 0])
        self.assertAlmostEqual(buckets.take("a"), 0.5)
        self.assertEqual(buckets.take("b"), 0)
        clock.advance(0.5)
        self.assertEqual(buckets.take("a"), 0)
        clock.advance(10)
        buckets.forgetIdle()
        self.assertEqual(len(buckets), 0)

    def test_tableBounded(self):
        """
        Past C{maxKeys} keys, idle ones are forgotten, and new keys share
        one bucket while the others are busy.
        """
        clock = Clock()
        buckets = TokenBuckets(clock, rate=1.0, burst=1, maxKeys=2)
        buckets.take("a")
        buckets.take("b")
        self.assertEqual(buckets.take("c"), 0)
        self.assertGreater(buckets.take("d"), 0)
        self.assertEqual(len(buckets), 3)


class MethodLimitTests(SynchronousTestCase):
    """
    The server's XML-RPC methods, as the endpoint calls them
    (L{jobmon.server.service.apiMethods} wrapped by the hub's limits).
    """

    def setUp(self):
        self.clock = Clock()
        self.metrics = Metrics()
        self.audit = MemoryAudit()
        self.makeHub(LimitsConfig(userRate=1.0, userBurst=3, queryRate=1.0, queryBurst=4,
                                  daemonRate=10.0, daemonBurst=5))

    def makeHub(self, limits, **config):
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       HubConfig(limits=limits, **config), metrics=self.metrics,
                       audit=self.audit)
        self.methods = self.hub.limits.wrapAll(apiMethods(self.hub))

    def limited(self, limit):
        return self.metrics.registry.get_sample_value(
            "jobmon_rate_limited_total", {"limit": limit}) or 0

    def test_userMethods(self):
        """
        User methods share one bucket per identity: past it, fault 429 says
        the rate and when to retry; another identity is not affected; the
        allowance grows back.
        """
        for _ in range(2):
            self.methods["jobmon.whoami"](ALICE)
        self.methods["jobmon.listJobs"](ALICE)
        e = self.assertRaises(JobMonError, self.methods["jobmon.history"], ALICE)
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertEqual(
            e.message,
            "too many user calls: at most 1 per second (bursts of 3) for each identity; "
            "retry in 1.0 s",
        )
        self.methods["jobmon.whoami"](BOB)
        self.clock.advance(1)
        self.methods["jobmon.whoami"](ALICE)
        self.assertEqual(self.limited("user"), 1)
        [record] = [r for r in self.audit.records if r["event"] == "refused"]
        self.assertEqual((record["dn"], record["method"], record["code"]),
                         (ALICE.dn, "history", errors.TOO_MANY))

    def test_refusedQueriesCharged(self):
        """
        Every query call is charged, even one refused for a bad job id: a
        refusal is not free to repeat (each would write an audit record).
        """
        query = self.methods["jobmon.query"]
        for _ in range(4):
            e = self.assertRaises(JobMonError, query, ALICE, "x" * 1000, {"op": "ls"})
            self.assertEqual(e.code, errors.BAD_REQUEST)
        e = self.assertRaises(JobMonError, query, ALICE, "x" * 1000, {"op": "ls"})
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertIn("too many query calls", e.message)
        self.assertEqual(self.limited("query"), 1)

    def test_daemonMethods(self):
        """
        Daemon methods share one bucket per identity, calls refused for a
        job not owned included.
        """
        self.methods["jobmon.registerJob"](ALICE, "j1", {"wake": "poll"})
        self.methods["jobmon.getJobToDo"](ALICE, "j1")
        self.methods["jobmon.waitForWork"](ALICE, "j1", 0)
        self.methods["jobmon.outputJobResult"](ALICE, "j1", "r", {})
        self.assertRaises(JobMonError, self.methods["jobmon.getJobToDo"], ALICE, "nope")
        e = self.assertRaises(JobMonError, self.methods["jobmon.unregisterJob"], ALICE, "j1")
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertIn("too many job daemon calls: at most 10 per second", e.message)
        self.clock.advance(0.1)
        self.assertTrue(self.methods["jobmon.unregisterJob"](ALICE, "j1"))

    def test_everyMethodLimited(self):
        """
        Every method of the API is charged to some bucket.
        """
        self.makeHub(LimitsConfig(userBurst=1, queryBurst=1, daemonBurst=1, userRate=1e-9,
                                  queryRate=1e-9, daemonRate=1e-9))
        for name, method in self.methods.items():
            try:
                method(ALICE)
            except (JobMonError, TypeError):
                pass
            try:
                method(ALICE)
            except TypeError:
                pass
            except JobMonError as e:
                if e.code == errors.TOO_MANY:
                    continue
            self.fail("{} is not rate-limited".format(name))

    def test_refusalsLoggedOncePerMinute(self):
        """
        A caller refused again and again gets one log line a minute, which
        says how many were not logged.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for _ in range(3):
            self.methods["jobmon.whoami"](ALICE)
        for _ in range(10):
            self.assertRaises(JobMonError, self.methods["jobmon.whoami"], ALICE)
        lines = [e for e in observer if "limit" in e["log_format"]]
        self.assertEqual(len(lines), 1)
        self.clock.advance(61)
        for _ in range(70):
            try:
                self.methods["jobmon.whoami"](ALICE)
            except JobMonError:
                pass
        lines = [e for e in observer if "limit" in e["log_format"]]
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines[1]["more"], "; 9 more not logged")

    def test_signatureKept(self):
        """
        A wrapped method keeps its signature, which the endpoint checks
        the arguments against.
        """
        import inspect

        self.assertEqual(
            list(inspect.signature(self.methods["jobmon.waitForWork"]).parameters),
            ["identity", "jobId", "seconds", "token"],
        )

    def test_bucketsForgotten(self):
        """
        The cleanup cycle forgets the buckets that refilled.
        """
        self.methods["jobmon.whoami"](ALICE)
        self.methods["jobmon.registerJob"](ALICE, "j1", {"wake": "tcp"})
        self.assertEqual(self.hub.sizes()["limit_buckets"], 3)
        self.clock.advance(100)
        self.hub.cleanup()
        self.assertEqual(self.hub.sizes()["limit_buckets"], 0)


class _Request:
    """
    A request from C{host}.
    """

    def __init__(self, host):
        self.host = host

    def getClientAddress(self):
        return IPv4Address("TCP", self.host, 4321)


class AuthFailureTests(SynchronousTestCase):
    """
    L{limitFailures}: requests that fail to authenticate are charged to
    their address.
    """

    def setUp(self):
        self.clock = Clock()
        self.audit = MemoryAudit()
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       HubConfig(limits=LimitsConfig(authFailureRate=1.0, authFailureBurst=2)),
                       audit=self.audit)

        def identify(request):
            if request.host == "192.0.2.9":
                raise JobMonError(errors.NOT_AUTHENTICATED, "its signature does not verify")
            return ALICE

        self.identify = limitFailures(identify, self.hub.limits)

    def test_failuresThen429(self):
        """
        Past the burst, the address's failures are answered 429, saying
        when to retry; its allowance grows back.
        """
        bad = _Request("192.0.2.9")
        for _ in range(2):
            e = self.assertRaises(JobMonError, self.identify, bad)
            self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        e = self.assertRaises(JobMonError, self.identify, bad)
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertIn("could not be authenticated from your address", e.message)
        self.assertIn("retry in 1.0 s", e.message)
        [record] = [r for r in self.audit.records if r["event"] == "refused"]
        self.assertEqual((record["peer"], record["method"]), ("192.0.2.9", "authentication"))
        self.clock.advance(1)
        e = self.assertRaises(JobMonError, self.identify, bad)
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)

    def test_goodCallerNotLockedOut(self):
        """
        A caller that does authenticate is not refused for its address's
        failures (a shared login node).
        """
        self.assertEqual(self.identify(_Request("192.0.2.1")), ALICE)


class RegistrationLimitTests(SynchronousTestCase):
    """
    The cap on jobs registered per owner, and the rate of new
    registrations.
    """

    def setUp(self):
        self.clock = Clock()
        self.registry = MemoryJobRegistry()
        self.audit = MemoryAudit()
        self.hub = Hub(self.clock, self.registry, MemoryRequestTable(),
                       HubConfig(limits=LimitsConfig(maxJobsPerOwner=3, registrationRate=1.0,
                                                     registrationBurst=100)),
                       audit=self.audit)

    def register(self, who, jobId, instance="i"):
        return self.hub.registerJob(who, jobId, {"wake": "poll", "instance": instance})

    def test_capPerOwner(self):
        """
        An owner has at most C{maxJobsPerOwner} jobs registered: the next
        new one is refused with 429 saying so; her daemons still renew
        theirs; another owner is not affected; once a job goes, a new one
        may come.
        """
        for i in range(3):
            self.register(ALICE, "j{}".format(i))
        e = self.assertRaises(JobMonError, self.register, ALICE, "j3")
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertEqual(
            e.message,
            "you already have 3 jobs registered, the most this server allows for one "
            "identity: unregister some, or wait for them to end",
        )
        self.register(ALICE, "j0")
        self.register(BOB, "b0")
        self.assertEqual(self.registry.countOf(ALICE.dn), 3)
        self.hub.unregisterJob(ALICE, "j1")
        self.register(ALICE, "j3")
        self.assertEqual(self.registry.countOf(ALICE.dn), 3)
        self.assertIsNone(self.registry.get("j1"))

    def test_rate(self):
        """
        New registrations beyond the burst are refused with 429 and a
        retry hint, at the rate; renewals are not charged.
        """
        self.hub = Hub(self.clock, self.registry, MemoryRequestTable(),
                       HubConfig(limits=LimitsConfig(registrationRate=1.0,
                                                     registrationBurst=2)))
        self.register(ALICE, "j0")
        self.register(ALICE, "j1")
        for _ in range(5):
            self.register(ALICE, "j1")
        e = self.assertRaises(JobMonError, self.register, ALICE, "j2")
        self.assertEqual(e.code, errors.TOO_MANY)
        self.assertEqual(
            e.message,
            "too many new registrations: at most 1 per second (bursts of 2) for each "
            "identity; retry in 1.0 s",
        )
        self.register(BOB, "b0")
        self.clock.advance(1)
        self.register(ALICE, "j2")

    def test_registryCounts(self):
        """
        The registry counts each owner's jobs through puts, replacements
        and removals.
        """
        self.register(ALICE, "j0")
        record = self.registry.get("j0")
        self.registry.put(evolve(record, owner=BOB.dn))
        self.assertEqual((self.registry.countOf(ALICE.dn), self.registry.countOf(BOB.dn)),
                         (0, 1))
        self.registry.remove("j0")
        self.assertEqual(self.registry.countOf(BOB.dn), 0)
        self.assertEqual(self.registry._byOwner, {})


class OptionsTests(SynchronousTestCase):
    """
    The limits are server options.
    """

    def test_defaults(self):
        """
        The options' defaults are those of L{LimitsConfig}.
        """
        options = Options()
        options.parseOptions([])
        c = LimitsConfig()
        self.assertEqual(
            (options["user-rate"], options["user-burst"], options["daemon-rate"],
             options["daemon-burst"], options["auth-failure-rate"],
             options["auth-failure-burst"], options["max-jobs-per-owner"],
             options["registration-rate"], options["registration-burst"],
             options["query-rate"], options["query-burst"]),
            (c.userRate, c.userBurst, c.daemonRate, c.daemonBurst, c.authFailureRate,
             c.authFailureBurst, c.maxJobsPerOwner, c.registrationRate, c.registrationBurst,
             c.queryRate, c.queryBurst),
        )

    def test_wired(self):
        """
        L{jobmon.server.service.buildService} gives the hub the limits
        asked for, and the endpoint the limited methods.
        """
        from twisted.internet.testing import MemoryReactorClock

        from jobmon.server.service import buildService

        options = Options()
        options.parseOptions(["--user-rate", "2", "--daemon-burst", "7",
                              "--max-jobs-per-owner", "9", "--history", self.mktemp(),
                              "--audit-log", self.mktemp(), "--history-days", "3",
                              "--audit-refusal-budget", "1000"])
        service = buildService(options, MemoryReactorClock(), installSignal=False)
        limits = service.hub.config.limits
        self.assertEqual((limits.userRate, limits.daemonBurst, limits.maxJobsPerOwner),
                         (2.0, 7, 9))
        self.assertEqual(service.history.retentionDays, 3.0)
        self.assertEqual(service.audit.refusals.perHour, 1000)

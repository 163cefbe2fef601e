"""
Tests for L{jobmon.server.cluster.hub}: servers sharing jobs through a store
(L{MemoryStore} here; the end-to-end tests use a real Redis).
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.relay import RawResult
from jobmon.server.cluster.hub import ClusterHub
from jobmon.server.cluster.node import ClusterNode
from jobmon.server.cluster.store import MemoryStore
from jobmon.server.hub import HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable

ALICE = Identity("/DC=org/DC=test/CN=Alice")
BOB = Identity("/DC=org/DC=test/CN=Bob")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")


class FakeChannel:
    def __init__(self, jobId):
        self.jobId = jobId
        self.wakes = 0
        self.closed = False
        self.moved = 0
        self.notices = []

    def wake(self):
        self.wakes += 1

    def close(self):
        self.closed = True

    def notice(self, message):
        self.notices.append(message)

    def sendMoved(self):
        self.moved += 1


class FakeAudit:
    """
    An audit log in memory; records are stamped from a counter shared by
    every server, so that merged records keep their order.
    """

    stamps = iter(range(10 ** 9))

    def __init__(self):
        self.records = []

    def record(self, event, **fields):
        self.records.append(dict(fields, event=event, time=next(self.stamps)))

    def read(self, jobId, limit):
        return [r for r in self.records if r.get("job_id") == jobId][-limit:]


class FakeHistory(FakeAudit):
    """
    A history in memory: the queries and registrations of each user.
    """

    def read(self, dn, jobId=None, limit=100, current=()):
        def mine(event):
            return [r for r in self.records if r["event"] == event
                    and dn in (r.get("dn"), r.get("owner"))][-limit:]

        return defer.succeed({"jobs": mine("register"), "queries": mine("query")})


def keepFiles(hub):
    """
    Give C{hub} an audit log and a history (in memory).
    """
    hub.audit, hub.history = FakeAudit(), FakeHistory()
    hub._runInThread = lambda f, *args: defer.maybeDeferred(f, *args)
    return hub


class Cluster:
    """
    Servers named C{A}, C{B}, ... on one clock and one store.
    """

    def __init__(self, names="ABC", **config):
        self.clock = Clock()
        self.store = MemoryStore(self.clock)
        self.config = HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20,
                                connectGrace=10, **config)
        self.hubs = {}
        for name in names:
            self.add(name)

    def add(self, name):
        node = ClusterNode(self.clock, self.store, serverId=name)
        hub = ClusterHub(self.clock, node, MemoryRequestTable(), self.config)
        hub.wakePort = 8444
        hub.start()
        self.hubs[name] = hub
        return hub

    def __getitem__(self, name):
        return self.hubs[name]

    def kill(self, name):
        """
        The server dies (SIGKILL): no more heartbeats, nobody listening.
        """
        hub = self.hubs.pop(name)
        hub.node._loop.stop()
        hub._cleanup.stop()
        self.store._listeners.pop(name, None)
        return hub

    def beat(self, seconds=1.0, steps=1):
        for _ in range(steps):
            self.clock.advance(seconds)


class ClusterSetup(SynchronousTestCase):
    def setUp(self):
        self.cluster = Cluster()

    def register(self, server, who=ALICE, jobId="job.1", mode="tcp", instance="d1"):
        hub = self.cluster[server]
        reply = hub.registerJob(who, jobId, {"host": "wn01", "wake": mode,
                                             "instance": instance})
        if not isinstance(reply, dict):
            reply = self.successResultOf(reply)
        channel = None
        if mode == "tcp":
            channel = FakeChannel(jobId)
            hub.channelHello(channel, who, jobId, reply["wake"]["token"])
        return reply, channel

    def answer(self, server, jobId="job.1", result=None, who=ALICE):
        """
        The daemon on C{server} fetches its work and answers each request.
        """
        hub = self.cluster[server]
        items = hub.getJobToDo(who, jobId)
        for item in items:
            hub.outputJobResult(who, jobId, item["id"], result or {"entries": ["a"]})
        return items

    def assertFault(self, d, code):
        failure = self.failureResultOf(d, JobMonError)
        self.assertEqual(failure.value.code, code, failure.value.message)
        return failure.value


class ClusterTestCase(ClusterSetup):
    def test_recordShared(self):
        """
        A registration is written to the store: owner, holder, mode.
        """
        self.register("A")
        record = self.cluster.store.jobs["job.1"]
        self.assertEqual((record["owner"], record["server"], record["mode"]),
                         (ALICE.dn, "A", "tcp"))
        self.assertEqual(record["state"], "ready")

    def test_routedQuery(self):
        """
        A query at another server goes to the job's server, and the result
        comes back to the user.
        """
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls", "path": "."})
        self.assertNoResult(d)
        [item] = self.answer("A")
        self.assertEqual(item["request"], {"op": "ls", "path": "."})
        result = self.successResultOf(d)
        self.assertIsInstance(result, RawResult)
        self.assertEqual(result.parsed(), {"entries": ["a"]})
        self.assertEqual(len(self.cluster["A"].table), 0)

    def countReads(self):
        """
        Count the store's C{getJob} calls.
        """
        store, reads = self.cluster.store, []
        getJob = store.getJob

        def counted(jobId):
            reads.append(jobId)
            return getJob(jobId)

        store.getJob = counted
        return reads

    def test_routedReadsStoreOncePerSecond(self):
        """
        Sequential queries to a job held elsewhere read its record from the
        store once per L{hub.ROUTE_FOR} seconds, not once per query.
        """
        from jobmon.server.cluster import hub

        self.register("A")
        reads = self.countReads()
        for _ in range(3):
            d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
            self.answer("A")
            self.successResultOf(d)
        self.assertEqual(reads, ["job.1"])
        self.cluster.clock.advance(hub.ROUTE_FOR)
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.answer("A")
        self.successResultOf(d)
        self.assertEqual(reads, ["job.1", "job.1"])

    def test_staleRouteFollowsJob(self):
        """
        A query with a kept record naming a server that no longer holds the
        job (its daemon moved to another live server) goes where the job is
        now.
        """
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.answer("A")
        self.successResultOf(d)
        self.register("C")
        reads = self.countReads()
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.assertEqual(reads, ["job.1"])
        self.cluster.beat(0.25, 2)
        self.answer("C")
        self.successResultOf(d)

    def test_keptRouteNotForOthers(self):
        """
        A record kept for one user's query authorizes nobody else.
        """
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.answer("A")
        self.successResultOf(d)
        self.assertFault(self.cluster["B"].query(BOB, "job.1", {"op": "ls"}),
                         errors.NO_SUCH_JOB)

    def test_routedRemoteError(self):
        """
        The job's error comes back with its code.
        """
        self.register("A")
        d = self.cluster["C"].query(ALICE, "job.1", {"op": "cat", "path": "x"})
        self.answer("A", result={"error": {"code": errors.NO_SUCH_FILE, "message": "no x"}})
        self.assertEqual(self.assertFault(d, errors.NO_SUCH_FILE).message, "no x")

    def test_routedNotVisible(self):
        """
        Another user gets "no such job" from every server, and so does
        anyone for an id nobody registered.
        """
        self.register("A")
        self.assertFault(self.cluster["B"].query(BOB, "job.1", {"op": "ls"}),
                         errors.NO_SUCH_JOB)
        self.assertFault(self.cluster["B"].query(ALICE, "job.9", {"op": "ls"}),
                         errors.NO_SUCH_JOB)

    def test_routedPrefix(self):
        """
        A prefix of the caller's job held elsewhere is a prefix lookup.
        """
        from jobmon.prefixes import PrefixLookup
        self.register("A", jobId="12345.batch")
        read = []
        self.cluster.store.jobsOf = lambda owner: read.append(owner)
        self.failureResultOf(self.cluster["B"].query(ALICE, "123", {"op": "ls"}),
                             PrefixLookup)
        self.assertFault(self.cluster["B"].query(ALICE, "124", {"op": "ls"}),
                         errors.NO_SUCH_JOB)
        # The ids alone are read, not every record of the caller.
        self.assertEqual(read, [])

    def test_adminRouted(self):
        """
        An admin's routed query is told whose job answered.
        """
        self.register("A")
        d = self.cluster["B"].query(ADMIN, "job.1", {"op": "ls"})
        self.answer("A")
        self.assertEqual(self.successResultOf(d)["job_owner"], ALICE.dn)

    def test_ownershipClusterWide(self):
        """
        Another identity cannot take an id held on another server.
        """
        self.register("A")
        d = self.cluster["B"].registerJob(BOB, "job.1", {"host": "x", "wake": "tcp"})
        self.assertFault(d, errors.JOB_CONFLICT)
        self.assertEqual(self.cluster.store.jobs["job.1"]["server"], "A")

    def test_reservedClusterWide(self):
        """
        The id of a job that ended on one server stays its owner's on the
        others.
        """
        reply, _ = self.register("A")
        self.cluster["A"].unregisterJob(ALICE, "job.1", reply["wake"]["token"])
        self.assertNotIn("job.1", self.cluster.store.jobs)
        d = self.cluster["B"].registerJob(BOB, "job.1", {"host": "x", "wake": "tcp"})
        self.assertFault(d, errors.JOB_CONFLICT)
        _, _ = self.register("B")
        self.assertEqual(self.cluster.store.jobs["job.1"]["server"], "B")

    def test_listEverywhere(self):
        """
        C{listJobs} on any server shows the caller's jobs on every server,
        and which server holds each; C{all} every job for an admin.
        """
        self.register("A", jobId="job.1")
        self.register("B", jobId="job.2")
        self.register("C", who=BOB, jobId="job.3")
        rows = self.successResultOf(self.cluster["C"].listJobs(ALICE))
        self.assertEqual([(r["job_id"], r["server"]) for r in rows],
                         [("job.1", "A"), ("job.2", "B")])
        rows = self.successResultOf(self.cluster["A"].listJobs(ADMIN, {"all": True}))
        self.assertEqual([r["job_id"] for r in rows], ["job.1", "job.2", "job.3"])
        self.assertRaises(JobMonError, self.cluster["A"].listJobs, BOB, {"all": True})

    def test_killedServerJobMoves(self):
        """
        A query for a job whose server died waits while the job moves, and
        goes to the server it registers with.
        """
        self.register("A")
        self.cluster.kill("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.assertNoResult(d)
        self.cluster.beat(1.0, 6)
        self.assertNoResult(d)
        # The daemon lost its server and registers with C (same instance).
        self.register("C")
        self.cluster.beat(0.25, 2)
        self.answer("C")
        self.assertEqual(self.successResultOf(d).parsed(), {"entries": ["a"]})

    def test_inFlightReadRetried(self):
        """
        A read sent to a server that dies before it answers is asked again
        where the job goes.
        """
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.assertEqual(self.cluster["A"].table.pending("job.1"), 1)
        self.cluster.kill("A")
        self.cluster.beat(1.0, 6)
        self.assertNoResult(d)
        self.register("C")
        self.cluster.beat(0.25, 2)
        self.answer("C")
        self.successResultOf(d)

    def test_inFlightCommandNotRepeated(self):
        """
        A signal sent to a server that dies before it answers is not sent
        again: the user is told it may or may not have reached the job.
        """
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "signal", "signal": "TERM"})
        self.cluster.kill("A")
        self.cluster.beat(1.0, 6)
        error = self.assertFault(d, errors.UNAVAILABLE)
        self.assertIn("may or may not", error.message)

    def test_movingTimesOut(self):
        """
        A job that does not come back fails its query at the query's
        timeout, saying it was moving.
        """
        self.register("A")
        self.cluster.kill("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls", "timeout": 5})
        self.cluster.beat(1.0, 6)
        error = self.assertFault(d, errors.TIMEOUT)
        self.assertIn("moving", error.message)

    def test_cleanStopHandsOver(self):
        """
        A server that stops leaves the cluster at once, tells its daemons to
        move, and a pending read goes where the job registers again.
        """
        _, channel = self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.cluster["A"].stop()
        self.assertEqual(channel.moved, 1)
        self.assertTrue(channel.closed)
        self.assertNotIn("A", self.cluster.store._alive)
        self.register("C")
        self.cluster.beat(0.25, 4)
        self.answer("C")
        self.successResultOf(d)

    def test_takeOverFromLiveServer(self):
        """
        The same daemon registering with another server (it lost its path
        to the first) takes the job over: the first lets it go, and its
        pending reads follow the job.
        """
        _, channel = self.register("A")
        d = self.cluster["A"].query(ALICE, "job.1", {"op": "ls"})
        self.register("B")
        self.assertTrue(channel.closed)
        self.assertIsNone(self.cluster["A"].registry.get("job.1"))
        self.assertEqual(self.cluster.store.jobs["job.1"]["server"], "B")
        self.cluster.beat(0.25, 2)
        self.answer("B")
        self.successResultOf(d)

    def test_otherLiveDaemonRefused(self):
        """
        Another daemon for a job whose live daemon holds it on another server
        is refused, as on one server.
        """
        self.register("A")
        d = self.cluster["B"].registerJob(ALICE, "job.1", {"host": "wn02", "wake": "tcp",
                                                           "instance": "other"})
        self.assertFault(d, errors.JOB_CONFLICT)
        self.assertEqual(self.cluster.store.jobs["job.1"]["server"], "A")

    def test_storeDown(self):
        """
        With the store down, a server answers for its own jobs, registers
        new ones by itself, refuses the others clearly, and writes its jobs
        again once the store is back.
        """
        self.register("A")
        self.cluster.store.down = True
        self.cluster.beat()
        self.assertFalse(self.cluster["A"].node.available)
        d = self.cluster["A"].query(ALICE, "job.1", {"op": "ls"})
        self.answer("A")
        self.successResultOf(d)
        e = self.assertRaises(JobMonError, self.cluster["B"].query, ALICE, "job.1",
                              {"op": "ls"})
        self.assertEqual(e.code, errors.UNAVAILABLE)
        self.assertIn("store", e.message)
        self.register("B", jobId="job.2")
        # Redis restarted empty.
        self.cluster.store.jobs.clear()
        self.cluster.store.down = False
        self.cluster.beat()
        self.assertEqual(self.cluster.store.jobs["job.1"]["server"], "A")
        self.assertEqual(self.cluster.store.jobs["job.2"]["server"], "B")
        d = self.cluster["C"].query(ALICE, "job.2", {"op": "ls"})
        self.answer("B", jobId="job.2")
        self.successResultOf(d)

    def test_storeLostBeforeHeartbeat(self):
        """
        A listing through a server that has not noticed yet that the store
        is gone shows its own jobs, as once it has noticed, each with its
        server.
        """
        self.register("A", jobId="job.1")
        self.register("B", jobId="job.2")
        self.cluster.store.down = True
        self.assertTrue(self.cluster["A"].node.available)
        rows = self.successResultOf(self.cluster["A"].listJobs(ALICE))
        self.assertEqual([(r["job_id"], r["server"]) for r in rows], [("job.1", "A")])
        self.cluster.beat()
        self.assertFalse(self.cluster["A"].node.available)
        rows = self.cluster["A"].listJobs(ALICE)
        self.assertEqual([(r["job_id"], r["server"]) for r in rows], [("job.1", "A")])

    def test_answerLostWhileReconnecting(self):
        """
        A routed read whose answer came while its server did not listen
        (its store connection was being made again) is asked again once it
        listens, rather than waiting until its timeout.
        """
        self.register("A")
        store = self.cluster.store
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.assertEqual(self.cluster["A"].table.pending("job.1"), 1)
        # B's subscription is lost: A's answer goes nowhere.
        listener = store._listeners.pop("B")
        self.answer("A")
        self.assertNoResult(d)
        # Subscribed again: the store tells B.
        store._listeners["B"] = listener
        listener(None)
        self.cluster.beat(0.25, 2)
        self.assertNoResult(d)
        self.answer("A")
        self.assertEqual(self.successResultOf(d).parsed(), {"entries": ["a"]})

    def test_historyAndAuditEverywhere(self):
        """
        A query through B of a job on A is in the history read through C;
        the job's audit records read through C include A's and B's.
        """
        for hub in self.cluster.hubs.values():
            keepFiles(hub)
        self.register("A")
        d = self.cluster["B"].query(ALICE, "job.1", {"op": "ls"})
        self.answer("A")
        self.successResultOf(d)
        history = self.successResultOf(self.cluster["C"].historyOf(ALICE))
        self.assertEqual([(q["job_id"], q["op"]) for q in history["queries"]],
                         [("job.1", "ls")])
        self.assertEqual([j["job_id"] for j in history["jobs"]], ["job.1"])
        records = self.successResultOf(self.cluster["C"].auditLog(ADMIN, "job.1"))
        ofA = self.cluster["A"].audit.read("job.1", 100)
        ofB = self.cluster["B"].audit.read("job.1", 100)
        self.assertIn("register", [r["event"] for r in ofA])
        self.assertEqual([r["event"] for r in ofB], ["query"])
        self.assertEqual(records, sorted(ofA + ofB, key=lambda r: r["time"]))

    def test_historyOfServerJustJoined(self):
        """
        History and audit records are read also from a server that joined
        since the reader's last heartbeat.
        """
        for hub in self.cluster.hubs.values():
            keepFiles(hub)
        self.cluster.beat()
        d = keepFiles(self.cluster.add("D"))
        d._audit("query", dn=ALICE.dn, job_id="job.1", owner=ALICE.dn, op="ls")
        self.assertNotIn("D", self.cluster["A"].node.live)
        history = self.successResultOf(self.cluster["A"].historyOf(ALICE))
        self.assertEqual([q["op"] for q in history["queries"]], ["ls"])
        records = self.successResultOf(self.cluster["A"].auditLog(ADMIN, "job.1"))
        self.assertEqual([r["event"] for r in records], ["query"])

    def test_historyStoreDown(self):
        """
        With the store down, a server's history and audit log are its own.
        """
        for hub in self.cluster.hubs.values():
            keepFiles(hub)
        self.cluster["B"]._audit("query", dn=ALICE.dn, job_id="job.1", owner=ALICE.dn,
                                 op="ls")
        self.cluster["A"]._audit("query", dn=ALICE.dn, job_id="job.1", owner=ALICE.dn,
                                 op="cat")
        self.cluster.store.down = True
        self.cluster.beat()
        history = self.successResultOf(self.cluster["A"].historyOf(ALICE))
        self.assertEqual([q["op"] for q in history["queries"]], ["cat"])

    def test_orphansForgotten(self):
        """
        The leader forgets the jobs of a dead server that did not register
        again within the grace.
        """
        self.register("A", jobId="job.1")
        self.register("B", jobId="job.2")
        self.cluster.kill("A")
        self.cluster.beat(1.0, 10)
        self.assertIn("job.1", self.cluster.store.jobs)
        self.cluster.beat(1.0, int(self.cluster["B"].orphanGrace) + 2)
        self.assertNotIn("job.1", self.cluster.store.jobs)
        self.assertIn("job.2", self.cluster.store.jobs)

    def test_udpNudged(self):
        """
        The leader wakes the UDP jobs of a dead server, with their key and a
        sequence above any their server sent.
        """
        sent = []

        class Sender:
            def send(self, jobId, sequence, secret):
                sent.append((jobId, sequence, secret))

        for hub in self.cluster.hubs.values():
            from jobmon.server.wakes import UDPWake
            udp = UDPWake(self.cluster.clock, hub.registry, hub.table, Sender(), 9999)
            hub.registrations.wakes["udp"] = udp
        reply, _ = self.register("A", mode="udp")
        self.cluster.kill("A")
        self.cluster.beat(1.0, 5)
        self.assertTrue(sent)
        jobId, sequence, secret = sent[0]
        self.assertEqual(jobId, "job.1")
        self.assertEqual(secret.hex(), reply["wake"]["secret"])
        self.assertGreater(sequence, 1000)

    def test_slowSweepKeepsHeartbeat(self):
        """
        A cleanup that takes longer than a heartbeat's lifetime does not
        hold back the heartbeats: the server stays alive to the others, and
        the next cleanup waits until it is done.
        """
        from twisted.internet.defer import Deferred

        a = self.cluster["A"]
        sweeps = []

        def slowSweep():
            sweeps.append(Deferred())
            return sweeps[-1]

        a.node.onBeat = slowSweep
        self.cluster.beat(1.0, 6)
        self.assertIn("A", self.cluster["B"].node.live)
        self.assertEqual(len(sweeps), 1)
        sweeps[0].callback(None)
        self.cluster.beat(1.0, 1)
        self.assertEqual(len(sweeps), 2)

    def test_nudgeInBatches(self):
        """
        The leader reads the records of a dead server's jobs a batch at a
        time, not all at once.
        """
        from twisted.internet.defer import Deferred

        from jobmon.server.cluster import sweep
        from jobmon.server.wakes import UDPWake

        self.patch(sweep, "NUDGE_BATCH", 5)
        sent = []

        class Sender:
            def send(self, jobId, sequence, secret):
                sent.append(jobId)

        for hub in self.cluster.hubs.values():
            hub.registrations.wakes["udp"] = UDPWake(
                self.cluster.clock, hub.registry, hub.table, Sender(), 9999)
        for i in range(12):
            self.register("A", jobId="job.{}".format(i), mode="udp")
        store, clock = self.cluster.store, self.cluster.clock
        getJob, inFlight, most = store.getJob, [0], [0]

        def slowGetJob(jobId):
            inFlight[0] += 1
            most[0] = max(most[0], inFlight[0])
            d = Deferred()

            def fire():
                inFlight[0] -= 1
                getJob(jobId).chainDeferred(d)

            clock.callLater(0.01, fire)
            return d

        store.getJob = slowGetJob
        self.cluster.kill("A")
        for _ in range(1000):
            clock.advance(0.01)
        self.assertEqual(sorted(set(sent)), sorted("job.{}".format(i) for i in range(12)))
        self.assertEqual(most[0], 5)

    def test_oneLeader(self):
        """
        One server leads the cleanup at a time; another takes over when it
        dies.
        """
        self.cluster.beat()
        leaders = [n for n, hub in self.cluster.hubs.items() if hub.node.leading]
        self.assertEqual(len(leaders), 1)
        self.cluster.kill(leaders[0])
        self.cluster.beat(1.0, 6)
        self.assertEqual(len([h for h in self.cluster.hubs.values() if h.node.leading]), 1)


class ClusterReportsTests(ClusterSetup):
    """
    What a server of a cluster reports: metrics, C{/healthz}, history and
    audit from every server.
    """

    def test_gauges(self):
        """
        The metrics carry the cluster's gauges: the store up, live servers,
        jobs in the whole cluster, whether this server leads.
        """
        from jobmon.server.metrics import Metrics
        self.register("A", jobId="job.1")
        self.register("B", jobId="job.2")
        self.cluster.beat()
        hub = self.cluster["C"]
        metrics = Metrics()
        metrics.watch(hub)
        text = metrics.render().decode("utf-8")
        self.assertIn("jobmon_cluster_store_up 1.0", text)
        self.assertIn("jobmon_cluster_servers 3.0", text)
        self.assertIn("jobmon_cluster_jobs 2.0", text)
        self.assertIn("jobmon_cluster_leader", text)
        self.cluster.store.down = True
        self.cluster.beat()
        self.assertIn("jobmon_cluster_store_up 0.0", metrics.render().decode("utf-8"))

    def test_healthz(self):
        """
        C{/healthz} answers 503 naming the store while it cannot be
        reached, and ok once it is back.
        """
        from jobmon.server.health import MetricsSite
        from jobmon.server.metrics import Metrics, MetricsResource
        from tests.server.test_health import get
        hub = self.cluster["A"]
        site = MetricsSite(MetricsResource(Metrics(), hub))
        self.assertIn(b"200 OK", get(site, b"/healthz"))
        self.cluster.store.down = True
        self.cluster.beat()
        response = get(site, b"/healthz")
        self.assertIn(b"503", response)
        self.assertIn(b"cannot reach the cluster's store", response)
        self.cluster.store.down = False
        self.cluster.beat()
        self.assertIn(b"200 OK", get(site, b"/healthz"))

    def test_historyFromEveryServer(self):
        """
        A user's history read through one server holds what every live
        server keeps, newest last.
        """
        class FakeHistory:
            def __init__(self, rows):
                self.rows = rows

            def read(self, dn, jobId, limit, current):
                return {"jobs": [r for r in self.rows if r.get("registered")],
                        "queries": [r for r in self.rows if r.get("time")]}

            def record(self, event, **fields):
                pass

        self.cluster["A"].history = FakeHistory([{"registered": 1.0, "job_id": "a"},
                                                 {"time": 5.0, "job_id": "a"}])
        self.cluster["B"].history = FakeHistory([{"time": 3.0, "job_id": "b"}])
        self.cluster["C"].history = FakeHistory([{"registered": 2.0, "job_id": "c"}])
        self.cluster.beat()
        history = self.successResultOf(self.cluster["C"].historyOf(ALICE, {"limit": 10}))
        self.assertEqual([r["job_id"] for r in history["jobs"]], ["a", "c"])
        self.assertEqual([r["time"] for r in history["queries"]], [3.0, 5.0])
        history = self.successResultOf(self.cluster["C"].historyOf(ALICE, {"limit": 1}))
        self.assertEqual([r["time"] for r in history["queries"]], [5.0])

    def test_auditFromEveryServer(self):
        """
        A job's audit records read through one server come from every
        server, in time order; only admins may read them.
        """
        class FakeAudit:
            def __init__(self, records):
                self.records = records

            def read(self, jobId, limit):
                return [r for r in self.records if r["job_id"] == jobId][-limit:]

            def record(self, event, **fields):
                pass

        def inline(f, *args):
            return defer.maybeDeferred(f, *args)

        from twisted.internet import defer
        for name, times in (("A", [1.0, 4.0]), ("B", [2.0]), ("C", [3.0])):
            hub = self.cluster[name]
            hub.audit = FakeAudit([{"job_id": "job.1", "time": t, "server": name}
                                   for t in times])
            hub._runInThread = inline
        self.cluster.beat()
        records = self.successResultOf(self.cluster["C"].auditLog(ADMIN, "job.1", 3))
        self.assertEqual([(r["time"], r["server"]) for r in records],
                         [(2.0, "B"), (3.0, "C"), (4.0, "A")])
        self.assertRaises(JobMonError, self.cluster["C"].auditLog, ALICE, "job.1")

    def test_listWithoutStore(self):
        """
        With the store down, C{listJobs} shows this server's own jobs.
        """
        self.register("A", jobId="job.1")
        self.register("B", jobId="job.2")
        self.cluster.store.down = True
        self.cluster.beat()
        rows = self.cluster["A"].listJobs(ALICE)
        self.assertEqual([r["job_id"] for r in rows], ["job.1"])


class GoneTests(ClusterSetup):
    def test_endedThroughAnyServer(self):
        """
        A query through another server for a job that ended says when, to
        its owner; to anyone else the job does not exist.
        """
        reply, _ = self.register("A")
        self.cluster.clock.advance(5)
        self.cluster["A"].unregisterJob(ALICE, "job.1", reply["wake"]["token"])
        error = self.assertFault(self.cluster["B"].query(ALICE, "job.1", {"op": "ls"}),
                                 errors.JOB_ENDED)
        self.assertIn("ended at", error.message)
        self.assertFault(self.cluster["B"].query(BOB, "job.1", {"op": "ls"}),
                         errors.NO_SUCH_JOB)
        self.assertFault(self.cluster["B"].query(ADMIN, "job.1", {"op": "ls"}),
                         errors.JOB_ENDED)

    def test_forgottenWithItsServer(self):
        """
        A job whose server died and which did not come back is said to
        have gone with its server.
        """
        self.register("A")
        self.cluster.kill("A")
        self.cluster.beat(1.0, int(self.cluster["B"].orphanGrace) + 8)
        error = self.assertFault(self.cluster["C"].query(ALICE, "job.1", {"op": "ls"}),
                                 errors.JOB_GONE)
        self.assertIn("its server A stopped", error.message)


class StopTests(ClusterSetup):
    def test_udpWokenAtStop(self):
        """
        A server that stops wakes its UDP jobs, and refuses their fetch
        with 503: they register with another server at once.
        """
        sent = []

        class Sender:
            def send(self, jobId, sequence, secret):
                sent.append((jobId, sequence, secret))

        from jobmon.server.wakes import UDPWake
        hub = self.cluster["A"]
        hub.registrations.wakes["udp"] = UDPWake(self.cluster.clock, hub.registry,
                                                 hub.table, Sender(), 9999)
        reply, _ = self.register("A", mode="udp")
        hub.stop()
        self.assertEqual([(j, s.hex()) for j, _, s in sent],
                         [("job.1", reply["wake"]["secret"])])
        e = self.assertRaises(JobMonError, hub.getJobToDo, ALICE, "job.1")
        self.assertEqual(e.code, errors.UNAVAILABLE)

"""
End-to-end tests of a cluster: real C{twistd jobmon-server} processes
sharing jobs through a real C{redis-server} on 127.0.0.1, real daemons in
every wake mode spread over them, queried through every server.

The daemons are the real L{jobmon.worker.daemon.JobDaemon}s, built from the
same options as C{twistd jobmon-daemon}, run in this test's process (as in
C{tests/e2e/test_restart.py}): a daemon process per job would not fit a
small CI machine.
"""

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import JobMonClient
from jobmon.errors import JobMonError
from jobmon.worker.daemon import Options as DaemonOptions
from jobmon.worker.daemon import buildDaemon, loadStartup
from tests.redisproc import RedisProcess
from tests.support import (
    FaultAssertions,
    TestPKI,
    freeUDPPort,
    inThread,
    spawn,
    startDaemon,
    startServer,
)

MODES = ("tcp", "udp", "poll")
NAMES = ("a", "b", "c")


class ClusterBase(FaultAssertions, TestCase):
    """
    A Redis, a PKI and a work directory; servers started on demand, and
    daemons run in this process.

    @ivar servers: the servers started, by name.
    @ivar serverIds: their ids in the cluster, by name.
    @ivar placed: the server each job was started on, C{{job id: name}}.
    """

    timeout = 120

    def setUp(self):
        self.redis = RedisProcess(self)
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"hello\n")
        self.udpPort = freeUDPPort()
        self.servers = {}
        self.serverIds = {}
        self.placed = {}
        self._clients = {}

    def serverArgs(self, name, redis=None):
        """
        The arguments of server C{name} in this test's cluster.
        """
        return (
            "--redis", redis or self.redis.url(),
            "--audit-log", os.path.join(self.tpki.base, name + "-audit.jsonl"),
            "--history", os.path.join(self.tpki.base, name + "-history.sqlite3"),
            "--udp-broadcast", "127.255.255.255:{}".format(self.udpPort),
            "--reregister-interval", "5", "--cleanup-interval", "1",
            "--query-rate", "1000", "--query-burst", "1000",
            "--user-rate", "1000", "--user-burst", "1000",
        )

    async def startServer(self, name, *extra, redis=None):
        server = await startServer(self, self.tpki, *self.serverArgs(name, redis), *extra)
        self.servers[name] = server

        def keepOutput():
            # What the server said, for whoever looks into a failure.
            with open(os.path.join(self.tpki.base, name + "-output.log"), "wb") as f:
                f.write(bytes(server.proto.output))

        self.addCleanup(keepOutput)
        match = await server.proto.waitFor(r"joined the cluster as (\S+) through")
        self.serverIds[name] = match.group(1)
        return server

    async def startCluster(self, extra=None):
        """
        Start the servers of L{NAMES} side by side.

        @param extra: extra arguments, by server name.
        """
        extra = extra or {}
        await defer.gatherResults([
            Deferred.fromCoroutine(self.startServer(name, *extra.get(name, ())))
            for name in NAMES])

    def daemon(self, names, jobId, mode, who="alice"):
        """
        Start a daemon in this process for job C{jobId} in wake C{mode},
        with the servers C{names} (their URLs, or URLs themselves); it
        is stopped at the test's end.
        """
        options = DaemonOptions()
        args = []
        for name in names:
            args += ["--server", self.servers[name].url if name in self.servers else name]
        options.parseOptions(args + [
            "--job-id", jobId, "--wake", mode, "--workdir", self.workdir,
            "--proxy", self.tpki.proxies[who], "--ca-dir", self.tpki.caDir,
            "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
            "--job-pid", str(os.getpid()),
        ])
        daemon = buildDaemon(reactor, options, loadStartup(options))
        daemon.startService()
        self.addCleanup(lambda: defer.maybeDeferred(daemon.stopService).addTimeout(
            15, reactor))
        self.placed[jobId] = names[0]
        return daemon

    def startJobs(self, perMode=len(NAMES)):
        """
        Start C{perMode} daemons in each wake mode: C{MODE.I} on server
        C{NAMES[I % 3]}, so that each server holds a job in each mode.

        @return: the job ids.
        """
        jobIds = []
        for mode in MODES:
            for i in range(perMode):
                jobId = "{}.{}".format(mode, i)
                self.daemon([NAMES[i % len(NAMES)]], jobId, mode)
                jobIds.append(jobId)
        return jobIds

    def fetch(self, server, path):
        """
        C{path} on the metrics port of a server started with
        C{--metrics-port 0}: its status and text.
        """
        port = int(re.search(r"metrics on (\d+)", server.proto.output.decode()).group(1))
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:{}{}".format(port, path), timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def health(self, server):
        """
        C{/healthz} of a server started with C{--metrics-port 0}.
        """
        return self.fetch(server, "/healthz")

    async def waitForServers(self, limit=10):
        """
        Wait until every server (each started with C{--metrics-port 0})
        has seen every other one alive.
        """
        gauge = "jobmon_cluster_servers {:.1f}".format(len(self.servers))

        async def seen():
            for server in self.servers.values():
                status, text = await inThread(self.fetch, server, "/metrics")
                if gauge not in text.splitlines():
                    return False
            return True

        await self.waitUntil(seen, limit, "every server seeing the others")

    def client(self, name, who="alice"):
        """
        A client of server C{name} as C{who}, one for each (server, user):
        clients are not shared between threads at once by the tests.
        """
        key = (name, who)
        if key not in self._clients:
            c = JobMonClient(self.servers[name].url, proxy=self.tpki.proxies[who],
                             caDir=self.tpki.caDir, timeout=30)
            self.addCleanup(c.close)
            self._clients[key] = c
        return self._clients[key]

    async def waitUntil(self, check, limit, what, last=None):
        """
        Call C{check} (a coroutine function) until it returns true, at most
        C{limit} seconds.

        @param last: a callable returning what the failure message shows
            of the last try.
        @return: the seconds it took.
        """
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if await check():
                took = time.monotonic() - start
                # A last try that began in time but ended late does not count.
                self.assertLessEqual(took, limit, "{} took {:.1f} s".format(what, took))
                return took
            await deferLater(reactor, 0.1, lambda: None)
        self.fail("{} did not happen within {} s{}".format(
            what, limit, ": {}".format(last()) if last is not None else ""))

    async def listed(self, name, who="alice", everything=False):
        """
        The jobs listed through server C{name}: C{{job id: row}}.
        """
        rows = await inThread(self.client(name, who).listJobs, everything)
        return {row["job_id"]: row for row in rows}

    async def waitForJobs(self, jobIds, limit=20, where=None):
        """
        Wait until every one of C{jobIds} is listed ready through the first
        server, held by the server it was started on (or by any server
        if C{where} is C{False}).

        @return: the seconds it took.
        """
        where = self.placed if where is None else where

        async def ready():
            try:
                jobs = await self.listed(NAMES[0] if NAMES[0] in self.servers
                                         else sorted(self.servers)[0])
            except JobMonError:
                return False
            return all(
                jobId in jobs and jobs[jobId]["state"] == "ready"
                and (not where or jobs[jobId]["server"] == self.serverIds[where[jobId]])
                for jobId in jobIds)

        return await self.waitUntil(ready, limit, "the jobs' registration")

    async def cat(self, name, jobId, who="alice", timeout=10):
        """
        Read C{job.log} of C{jobId} through server C{name}.
        """
        result = await inThread(self.client(name, who).query, jobId,
                                {"op": "cat", "path": "job.log", "timeout": timeout})
        return result["data"]

    async def waitEverywhere(self, jobIds, limit):
        """
        Wait until every job answers through every server (a query that
        hangs, its answer lost, counts against C{limit} seconds).

        @return: the seconds it took.
        """
        failures = []

        async def everywhere():
            failures[:] = await self.catEverywhere(jobIds)
            return failures == []

        return await self.waitUntil(everywhere, limit, "every job answering everywhere",
                                    lambda: failures)

    async def catEverywhere(self, jobIds, names=None, timeout=10):
        """
        Read C{job.log} of each job through each server (each server's
        client in a thread of its own), each within C{timeout} seconds.

        @return: the failures, as C{(server, job id, code, message)}.
        """
        failures = []

        async def through(name):
            for jobId in jobIds:
                try:
                    data = await self.cat(name, jobId, timeout=timeout)
                except JobMonError as e:
                    failures.append((name, jobId, e.code, e.message))
                else:
                    if data != b"hello\n":
                        failures.append((name, jobId, None, data))

        await defer.gatherResults([Deferred.fromCoroutine(through(name))
                                   for name in (names or sorted(self.servers))])
        return failures


class RoutingTests(ClusterBase):
    """
    Three servers, jobs in each wake mode on each: every job is seen and
    queried through every server, by its owner only.
    """

    async def test_everyJobThroughEveryServer(self):
        """
        Each job answers a query through each server; each server lists
        every job of the caller with the server that holds it, and every
        job for an admin; another user sees none of them anywhere.
        """
        await self.startCluster()
        jobIds = self.startJobs()
        await self.waitForJobs(jobIds)
        self.assertEqual(await self.catEverywhere(jobIds), [])
        alice = self.tpki.dn("alice")
        for name in NAMES:
            for who, everything in (("alice", False), ("admin", True)):
                jobs = await self.listed(name, who, everything)
                self.assertEqual(sorted(jobs), sorted(jobIds), (name, who))
                for jobId, row in jobs.items():
                    self.assertEqual(
                        (row["server"], row["mode"], row["owner"], row["state"]),
                        (self.serverIds[self.placed[jobId]], jobId.split(".")[0], alice,
                         "ready"), (name, who, jobId))
            self.assertEqual(await self.listed(name, "bob"), {})
            for jobId in jobIds:
                await self.assertFault(errors.NO_SUCH_JOB, self.client(name, "bob").query,
                                       jobId, {"op": "cat", "path": "job.log"})

    async def test_ownershipClusterWide(self):
        """
        Nobody else can register a job id that its owner's job holds on
        another server, nor one reserved for her after her job ended
        there.
        """
        await self.startCluster()
        daemon = self.daemon(["a"], "job.1", "poll")
        await self.waitForJobs(["job.1"])
        for name in NAMES:
            bob = self.client(name, "bob")
            e = await self.assertFault(errors.JOB_CONFLICT, bob._call, "jobmon.registerJob",
                                       ("job.1", {"wake": "poll"}))
            self.assertIn("another identity", e.message)
        # Alice's job is untouched, and still hers, held by a.
        jobs = await self.listed("c")
        self.assertEqual(jobs["job.1"]["server"], self.serverIds["a"])
        self.assertEqual(await self.cat("b", "job.1"), b"hello\n")
        # Her job ends: its id stays hers, in the whole cluster.
        await daemon.stopService()

        async def gone():
            return "job.1" not in await self.listed("b")

        await self.waitUntil(gone, 10, "the end of job.1")
        for name in ("b", "c"):
            await self.assertFault(errors.JOB_CONFLICT, self.client(name, "bob")._call,
                                   "jobmon.registerJob", ("job.1", {"wake": "poll"}))


class StoreLossTests(ClusterBase):
    """
    The cluster's Redis goes away and comes back empty.
    """

    async def test_redisRestarted(self):
        """
        While Redis is down each server answers for its own jobs, refuses
        (503, naming the store) queries for the others' and says so on
        C{/healthz}; once Redis is back, empty, every job is queryable
        through every server again within 10 s; no server stopped.
        """
        # Re-registrations every 2 s: some happen while Redis is down.
        quick = ("--reregister-interval", "2")
        await self.startCluster({"a": ("--metrics-port", "0") + quick, "b": quick,
                                 "c": quick})
        jobIds = self.startJobs()
        await self.waitForJobs(jobIds)
        a = self.servers["a"]
        self.assertEqual(await inThread(self.health, a), (200, "ok\n"))
        self.redis.stop()

        async def unhealthy():
            return (await inThread(self.health, a))[0] == 503

        await self.waitUntil(unhealthy, 5, "/healthz saying 503")
        status, text = await inThread(self.health, a)
        self.assertIn("cluster's store", text)
        self.assertIn("127.0.0.1:{}".format(self.redis.port), text)
        for jobId in jobIds:
            own = self.placed[jobId]
            self.assertEqual(await self.cat(own, jobId), b"hello\n")
            for name in NAMES:
                if name != own:
                    e = await self.assertFault(errors.UNAVAILABLE, self.client(name).query,
                                               jobId, {"op": "cat", "path": "job.log"})
                    self.assertIn("store", e.message)
        # Each server lists its own jobs still.
        for name in NAMES:
            mine = sorted(j for j in jobIds if self.placed[j] == name)
            self.assertEqual(sorted(await self.listed(name)), mine)
        # A job registers meanwhile, with b alone.
        self.daemon(["b"], "late.1", "poll")

        async def registered():
            return "late.1" in await self.listed("b")

        await self.waitUntil(registered, 10, "a registration while Redis is down")
        # Every job keeps answering through its own server for over a
        # re-registration interval.
        down = time.monotonic()
        while time.monotonic() - down < 3:
            for jobId in jobIds + ["late.1"]:
                self.assertEqual(await self.cat(self.placed[jobId], jobId), b"hello\n")
        jobIds.append("late.1")
        self.redis.start()
        took = await self.waitEverywhere(jobIds, 10)
        print("every job answered through every server {:.1f} s after Redis came "
              "back".format(took))
        self.assertEqual(await inThread(self.health, a), (200, "ok\n"))
        jobs = await self.listed("b")
        self.assertEqual(sorted(jobs), sorted(jobIds))
        self.assertEqual([n for n, s in self.servers.items() if not s.proto.running], [])


    async def test_redisFrozen(self):
        """
        Redis frozen (SIGSTOP: connections open, no answer): each server
        notices, answers for its own jobs, says so on C{/healthz}; once
        Redis answers again, every job is queryable through every server
        within 10 s.
        """
        await self.startCluster({"a": ("--metrics-port", "0")})
        jobIds = self.startJobs()
        await self.waitForJobs(jobIds)
        a = self.servers["a"]
        self.redis.pause()

        async def unhealthy():
            return (await inThread(self.health, a))[0] == 503

        await self.waitUntil(unhealthy, 10, "/healthz saying 503")
        for jobId in jobIds:
            self.assertEqual(await self.cat(self.placed[jobId], jobId), b"hello\n")
        e = await self.assertFault(errors.UNAVAILABLE, self.client("b").query, "tcp.0",
                                   {"op": "cat", "path": "job.log"})
        self.assertIn("store", e.message)
        self.redis.resume()
        took = await self.waitEverywhere(jobIds, 10)
        print("every job answered through every server {:.1f} s after Redis "
              "woke".format(took))
        self.assertEqual(await inThread(self.health, a), (200, "ok\n"))
        self.assertEqual([n for n, s in self.servers.items() if not s.proto.running], [])


class PasswordTests(ClusterBase):
    """
    A Redis that demands a password.
    """

    async def failedStart(self, url):
        """
        Start a server on C{url}: it must exit at once, non-zero.

        @return: its output's lines.
        """
        args = ["-n", "--pidfile=", "jobmon-server", "--interface", "127.0.0.1",
                "--https-port", "0", "--wake-port", "0",
                "--hostcert", self.tpki.hostCert, "--hostkey", self.tpki.hostKey,
                "--ca-dir", self.tpki.caDir] + list(self.serverArgs("x", url))
        proto = spawn(self, "jobmon-server", args)
        code = await proto.whenEnded().addTimeout(20, reactor)
        output = proto.output.decode("utf-8", "replace")
        self.assertNotEqual(code, 0, output)
        return [line for line in output.splitlines() if line.strip()]

    async def test_password(self):
        """
        Without the password, or with a wrong one, the server does not
        start and says why in one line; with it, it joins the cluster.
        """
        secured = RedisProcess(self, password="s3cret-pw")
        missing, wrong = await defer.gatherResults([
            Deferred.fromCoroutine(self.failedStart(secured.url(password=url)))
            for url in ("", "wrong-pw")])
        self.assertEqual(len(missing), 1, missing)
        self.assertIn("NOAUTH", missing[0])
        self.assertIn("password", missing[0])
        self.assertEqual(len(wrong), 1, wrong)
        self.assertIn("WRONGPASS", wrong[0])
        self.assertNotIn("wrong-pw", wrong[0])
        await defer.gatherResults([
            Deferred.fromCoroutine(self.startServer(name, redis=secured.url()))
            for name in ("a", "b")])
        self.daemon(["a"], "job.1", "tcp")
        await self.waitForJobs(["job.1"])
        self.assertEqual(await self.cat("b", "job.1"), b"hello\n")


class HistoryTests(ClusterBase):
    """
    History and audit records are kept where they happen, and read from
    any server.
    """

    async def test_historyAndAuditFromAnyServer(self):
        """
        A query through b of a job on a is in the history read through c;
        the job's audit records read through c include a's (its
        registration) and b's (the query).
        """
        await self.startCluster()
        self.daemon(["a"], "job.1", "tcp")
        await self.waitForJobs(["job.1"])
        self.assertEqual(await self.cat("b", "job.1"), b"hello\n")
        history = await inThread(self.client("c").history)
        self.assertIn(("job.1", "cat", {"path": "job.log"}, "ok"),
                      [(q["job_id"], q["op"], q["args"], q["outcome"])
                       for q in history["queries"]], history)
        self.assertIn("job.1", [j["job_id"] for j in history["jobs"]])
        records = await inThread(self.client("c", "admin").auditLog, "job.1", 100)

        def kept(name):
            with open(os.path.join(self.tpki.base, name + "-audit.jsonl")) as f:
                return [json.loads(line) for line in f if '"job.1"' in line]

        fromA, fromB = kept("a"), kept("b")
        self.assertIn("register", [r["event"] for r in fromA])
        self.assertIn("query", [r["event"] for r in fromB])
        for record in fromA + fromB:
            self.assertIn(record, records)
        self.assertEqual(kept("c"), [])


class FailoverTests(ClusterBase):
    """
    Daemons given every server of the cluster (C{--server} repeated): a
    server that is killed or stops, and its jobs go on through the others.
    """

    MOVE_LIMIT = 30
    """Seconds every job of a killed server has to answer again through the
    others (15 s expected: the UDP ones wait for a re-registration, 5 s, or
    for the leader's nudge once the dead server's heartbeat lapsed, 5 s)."""

    def startSpreadJobs(self):
        """
        One job in each mode on each server, each daemon given its server
        first, then the others in turn.

        @return: the job ids.
        """
        jobIds = []
        for mode in MODES:
            for i, name in enumerate(NAMES):
                jobId = "{}.{}".format(mode, i)
                self.daemon(NAMES[i:] + NAMES[:i], jobId, mode)
                jobIds.append(jobId)
        return jobIds

    def freshClient(self, name):
        """
        A client of its own (for a call in a thread beside the others').
        """
        c = JobMonClient(self.servers[name].url, proxy=self.tpki.proxies["alice"],
                         caDir=self.tpki.caDir, timeout=30)
        self.addCleanup(c.close)
        return c

    async def waitAnswering(self, jobIds, names, limit, what):
        """
        Wait until every one of C{jobIds} answers through every server of
        C{names}; print and return how long it took.
        """
        failures = []

        async def everywhere():
            failures[:] = await self.catEverywhere(jobIds, names, timeout=5)
            return failures == []

        took = await self.waitUntil(everywhere, limit, what, lambda: failures)
        print("{}: {:.1f} s".format(what, took))
        return took

    async def startFailoverCluster(self):
        """
        Start the cluster and one job in each mode on each server; wait
        until each server has seen the others alive (the leader sees the
        one that goes die) and every job is registered.

        @return: the job ids.
        """
        await self.startCluster({name: ("--metrics-port", "0") for name in NAMES})
        jobIds = self.startSpreadJobs()
        await self.waitForServers()
        await self.waitForJobs(jobIds)
        return jobIds

    async def test_serverKilled(self):
        """
        A server holding a job in each mode is killed: every job answers
        again through the two others, within L{MOVE_LIMIT} seconds, and a
        query made meanwhile waits for its job and gets its answer.
        """
        jobIds = await self.startFailoverCluster()
        self.assertEqual(await self.catEverywhere(jobIds), [])
        moving = [j for j in jobIds if self.placed[j] == "a"]
        self.assertEqual(sorted(j.split(".")[0] for j in moving), sorted(MODES))
        self.servers["a"].proto.signal("KILL")
        await self.servers["a"].proto.whenEnded()
        killed = time.monotonic()
        # Queries made during the move, through each survivor: each waits.
        during = [inThread(self.freshClient(name).query, jobId,
                           {"op": "cat", "path": "job.log", "timeout": 25})
                  for jobId in moving for name in ("b", "c")]
        del self.servers["a"]
        await self.waitAnswering(jobIds, ["b", "c"], self.MOVE_LIMIT,
                                 "every job answering through the survivors after a kill")
        results = await defer.DeferredList(during, consumeErrors=True)
        for ok, result in results:
            self.assertTrue(ok, result)
            self.assertEqual(result["data"], b"hello\n")
        print("the queries made during the move answered within {:.1f} s".format(
            time.monotonic() - killed))
        jobs = await self.listed("c")
        self.assertEqual(sorted(jobs), sorted(jobIds))
        for jobId in moving:
            self.assertIn(jobs[jobId]["server"], (self.serverIds["b"], self.serverIds["c"]))
        self.assertEqual([n for n, s in self.servers.items() if not s.proto.running], [])

    async def test_serverStopped(self):
        """
        A server stopped cleanly (SIGTERM) hands its jobs over: each is
        registered with another server within a few seconds and answers
        there.
        """
        jobIds = await self.startFailoverCluster()
        moving = [j for j in jobIds if self.placed[j] == "a"]
        a = self.servers.pop("a").proto
        await a.stop()
        # A clean stop (twistd ends by its signal, once shut down).
        self.assertIn(b"Server Shut Down.", a.output)
        self.assertNotIn(b"Traceback", a.output)

        stopped = time.monotonic()
        moved = {}

        async def elsewhere():
            jobs = await self.listed("b")
            for jobId in moving:
                if (jobId not in moved and jobId in jobs and jobs[jobId]["state"] == "ready"
                        and jobs[jobId]["server"] != self.serverIds["a"]):
                    moved[jobId] = round(time.monotonic() - stopped, 1)
            return len(moved) == len(moving)

        took = await self.waitUntil(elsewhere, 4, "the stopped server's jobs registering "
                                    "elsewhere", lambda: moved)
        print("the stopped server's jobs registered elsewhere within {:.1f} s: {}".format(
            took, moved))
        await self.waitAnswering(jobIds, ["b", "c"], 10,
                                 "every job answering through the others after a stop")

    async def test_firstServerDead(self):
        """
        A daemon whose first server is dead (nothing listens) registers
        with the next one, and answers through every server.
        """
        await self.startCluster()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = "https://127.0.0.1:{}/RPC2".format(s.getsockname()[1])
        for mode in MODES:
            self.daemon([dead, "b", "c"], "job." + mode, mode)
        jobIds = ["job." + mode for mode in MODES]
        await self.waitForJobs(jobIds, where={j: "b" for j in jobIds})
        self.assertEqual(await self.catEverywhere(jobIds), [])


class RoutingSmokeTests(ClusterBase):
    async def test_queryThroughOtherServer(self):
        """
        A daemon process registered with a; alice reads through b, bob
        cannot.
        """
        a = await self.startServer("a")
        await self.startServer("b")
        await startDaemon(self, a, "job.1", self.workdir, self.tpki.proxies["alice"],
                          self.tpki.caDir)
        self.assertEqual(await self.cat("b", "job.1"), b"hello\n")
        jobs = await inThread(self.client("b").listJobs)
        self.assertEqual([(j["job_id"], j["state"]) for j in jobs], [("job.1", "ready")])
        await self.assertFault(errors.NO_SUCH_JOB, self.client("b", "bob").query, "job.1",
                               {"op": "ls"})

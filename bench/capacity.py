"""
Capacity of one JobMon server per wake mode: how many TCP wake connections
it holds and at what memory cost, how many UDP re-registrations per second it
serves, and how many pending HTTPS polls it holds.

Each part starts its own real server (C{twistd -n jobmon-server} on
127.0.0.1, throwaway PKI) and drives it with simulated job daemons, all
using alice's proxy.  The simulated daemons live in load generator processes
(this script with C{--worker}, one Twisted reactor each, driven over a pipe
with JSON lines), because one process cannot hold both ends of 20,000
connections under a per-process limit of 20,000 descriptors:

  1. C{tcp}: in steps (1000 by default) up to C{--tcp-jobs} (20,000, capped
     at the server's descriptor limit minus 100) simulated daemons each call
     C{jobmon.registerJob} (16 calls in flight over kept-alive HTTPS
     connections), then open a connection to the wake port as a real
     daemon does (sealed with the registration's key when the server
     offers it, else TLS; C{--wake-tls}: TLS always), send C{hello} and
     wait for C{welcome} (32 handshakes in flight).  The
     server's RSS (C{/proc/PID/status}) is read after each half-step, once
     the server is idle again.  Then, with every connection open: the
     server's idle CPU, its CPU with every daemon pinging once per the
     default keep-alive (20 s), 200 real queries to random jobs (each
     simulated daemon answers its wake with C{getJobToDo} and
     C{outputJobResult}), C{listJobs} (its count must be N), what happens at
     the server's descriptor limit (if the ramp was capped by it), and the
     memory left once every connection is closed.
  2. C{udp}: 5000 UDP jobs registered once, then registered again (same
     C{instance}: a refresh) as fast as possible for 15 s with K kept-alive
     HTTPS connections from P generator processes, for each C{PxK} of
     1x1, 1x4, 1x16, 1x32, 2x16 and 2x32.
  3. C{poll}: 5000 poll jobs, each with one C{waitForWork} call pending on
     its own HTTPS connection, then queries to some of them.

The round trip through a real daemon in each wake mode is
C{bench/roundtrip.py --wake tcp|udp|poll}; the memory of one TLS connection
by configuration is C{bench/tls_memory.py}.

Usage::

    .venv/bin/python bench/capacity.py [--quick] [--parts tcp,udp,poll]
        [--tcp-jobs 20000] [--wake-tls] [--no-fd-edge] [--max-minutes 40]
        [--json PATH]

C{--quick} is a smoke run (500 TCP, 500 UDP, 500 poll jobs, 3 s per UDP
run; about a minute).  The figures are printed as Markdown.

Every simulated daemon and the querier connect from 127.0.0.1 as one user:
the server's per-address connection limit and per-user query rate are
lifted with its options (L{LIMITS_LIFTED}), and the report says so.  This
script asks for a descriptor limit of 65,536 (children inherit it), which
only works with CAP_SYS_RESOURCE.  Every process started is stopped at the
end (SIGTERM, then SIGKILL), also on errors and Ctrl-C, and the whole run is
bounded in time (C{--max-minutes}).
"""

import argparse
import itertools
import json
import os
import random
import resource
import secrets
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)
from common import say  # noqa: E402
from twisted.internet import defer, reactor, ssl  # noqa: E402
from twisted.internet.defer import Deferred, DeferredSemaphore  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.protocol import Factory, ProcessProtocol  # noqa: E402
from twisted.internet.task import LoopingCall, deferLater  # noqa: E402
from twisted.logger import (  # noqa: E402
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.protocols.basic import LineReceiver  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool  # noqa: E402
from twisted.web.iweb import IPolicyForHTTPS  # noqa: E402
from zope.interface import implementer  # noqa: E402

from jobmon.certificates import caCertificates  # noqa: E402
from jobmon.protocols.sealed import VERSION as SEALED_VERSION  # noqa: E402
from jobmon.protocols.sealed import SealedClientEndpoint  # noqa: E402
from jobmon.protocols.wake import WakeClientProtocol  # noqa: E402
from jobmon.protocols.xmlrpc import XMLRPCClient  # noqa: E402
from jobmon.worker.tls import clientOptions, loadCredential  # noqa: E402

HOST = "127.0.0.1"
FD_LIMIT = 65536
"""The descriptor limit this script asks for (only root with
CAP_SYS_RESOURCE gets more than the hard limit)."""

FD_MARGIN = 100
"""Descriptors of the server left for its own use (listening sockets, log,
HTTPS connections) when the ramp is capped by its limit; also the number of
channels tried past that point."""

WORKER_CHANNELS = 9500
"""Most wake channels per load generator process."""

TARGET_TCP_CONNECTIONS = 20000
TARGET_TCP_KB_PER_CONNECTION = 24.0
TARGET_UDP_PER_SECOND = 2000.0

DEFAULT_KEEPALIVE = 20
"""The server's default keep-alive interval: the ping rate simulated."""

REGISTER_CONCURRENCY = 16
"""registerJob calls in flight while ramping up."""

CONNECT_CONCURRENCY = 32
"""TLS handshakes in flight while ramping up (the listen backlog is 50)."""

STAT_PATH = "job.log"
STAT_SIZE = 1048576.0

FULL = {
    "tcp_jobs": 20000, "tcp_step": 1000, "udp_jobs": 5000, "udp_seconds": 15.0,
    "poll_jobs": 5000, "poll_step": 1000, "queries": 200, "ping_seconds": 10.0,
    "fd_edge": True, "udp_runs": [(1, 1), (1, 4), (1, 16), (1, 32), (2, 16), (2, 32)],
}
QUICK = {
    "tcp_jobs": 500, "tcp_step": 250, "udp_jobs": 500, "udp_seconds": 3.0,
    "poll_jobs": 500, "poll_step": 250, "queries": 20, "ping_seconds": 2.0,
    "fd_edge": True, "udp_runs": [(1, 1), (1, 4), (1, 16), (1, 32), (2, 16)],
}

LIMITS_LIFTED = ["--max-per-peer", "1000000"] + common.QUERY_LIMITS_LIFTED
"""Server options of the benchmark: every simulated daemon and the querier
come from 127.0.0.1 as one user, which the per-address connection limit
and the per-user query rate are meant to stop (a real site's daemons come
from many addresses)."""


def sleep(seconds):
    """
    A Deferred that fires after C{seconds}.
    """
    return deferLater(reactor, seconds, lambda: None)


def raiseFdLimit(wanted=FD_LIMIT):
    """
    Raise this process's file descriptor limit (children inherit it).

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def background(seconds=2.0):
    """
    CPU used by the whole machine over C{seconds} while this benchmark's
    processes are idle, in percent of one CPU: other people's load.
    """
    b0 = common.machineCPU()[0]
    await sleep(seconds)
    return round(100.0 * (common.machineCPU()[0] - b0) / seconds, 1)


def othersCPU(busy0, busy1, elapsed, pids, generator=0.0):
    """
    Percent of one CPU used over C{elapsed} by neither the kernel's soft
    interrupts, the processes C{pids} (as C{(before, after)} CPU seconds),
    nor this process (C{generator} seconds).
    """
    ours = sum(after - before for before, after in pids)
    other = (busy1[0] - busy0[0]) - (busy1[2] - busy0[2]) - ours - generator
    return round(100.0 * other / elapsed, 1)


def fdLimit(pid):
    """
    The soft limit of open files of process C{pid}.
    """
    with open("/proc/{}/limits".format(pid)) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


# Process figures


MEMORY_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmData")
"""The figures of C{/proc/PID/status} read for a process (KiB)."""


def procStatus(pid):
    """
    L{common.procStatus} with L{MEMORY_KEYS}.
    """
    return common.procStatus(pid, MEMORY_KEYS)


async def settle(pid, quiet=0.02, interval=0.3, limit=20.0):
    """
    Wait until process C{pid} is idle: less than C{quiet} CPU seconds over
    C{interval}, for at most C{limit} seconds.
    """
    deadline = time.monotonic() + limit
    before = common.cpuSeconds(pid)
    while time.monotonic() < deadline:
        await sleep(interval)
        now = common.cpuSeconds(pid)
        if before is None or now is None or now - before < quiet:
            return
        before = now


async def bounded(limit, calls):
    """
    Run the zero-argument callables C{calls} (each returning a Deferred) with
    at most C{limit} in flight.

    @return: C{(results, failures)}: results in order (L{None} where a call
        failed) and the failures.
    """
    sem = DeferredSemaphore(limit)
    failures = []

    def wrap(fn):
        d = sem.run(fn)

        def failed(f):
            failures.append(f)
            return None

        d.addErrback(failed)
        return d

    results = await defer.gatherResults([wrap(fn) for fn in calls])
    return results, failures


class Server:
    """
    A real C{twistd -n jobmon-server} for one part of the benchmark, with
    L{LIMITS_LIFTED}.
    """

    def __init__(self, env, name, extra):
        self.name = name
        args = [common.TWISTD] + common.serverArgs(
            env.hostCert, env.hostKey, env.caDir) + LIMITS_LIFTED + list(extra)
        self.proc = common.Proc("jobmon-server ({})".format(name), args,
                                os.path.join(env.tmp, name + ".log"), cwd=env.tmp)
        match = self.proc.waitFor(common.SERVER_READY)
        self.ports = {"https": int(match.group(1)), "wake": int(match.group(2))}
        self.url = "https://{}:{}/RPC2".format(HOST, self.ports["https"])
        self.pid = self.proc.pid

    def status(self):
        """
        L{procStatus} of the server.
        """
        return procStatus(self.pid)

    def stop(self):
        """
        Stop the server.
        """
        self.proc.stop(timeout=30)


class Env:
    """
    The throwaway PKI and the client side shared by every part.
    """

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="jobmon-capacity-")
        thePKI, self.proxy = common.makePKI(self.tmp)
        self.caDir = thePKI.ca.hashedDir
        self.hostCert = thePKI.hostCertPath
        self.hostKey = thePKI.hostKeyPath
        self.tls = clientTLS(self.caDir, self.proxy)

    def rpc(self, url, connections):
        """
        An L{XMLRPCClient} for alice (see L{makeRPC}).
        """
        return makeRPC(self.tls, url, connections)

    def close(self):
        """
        Remove the temporary directory.
        """
        shutil.rmtree(self.tmp, ignore_errors=True)


def clientTLS(caDir, proxy):
    """
    The daemon's TLS client options for C{HOST}, made once from the CA
    directory and alice's proxy.
    """
    trust = ssl.trustRootFromCertificates(caCertificates(caDir))
    return clientOptions(HOST, trust, loadCredential(proxy))


@implementer(IPolicyForHTTPS)
class _FixedPolicy:
    """
    The same TLS client options for every connection.  The daemon's
    L{jobmon.worker.tls.CredentialPolicy} also watches the proxy file for a
    renewal, which a run of a few minutes does not need.
    """

    def __init__(self, tls):
        self.tls = tls

    def creatorForNetloc(self, hostname, port):
        return self.tls


def makeRPC(tls, url, connections):
    """
    The product's L{XMLRPCClient} (as a daemon makes it) whose pool keeps up
    to C{connections} HTTPS connections alive.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    pool.cachedConnectionTimeout = 3600
    agent = Agent(reactor, contextFactory=_FixedPolicy(tls), pool=pool, connectTimeout=30)
    return XMLRPCClient(agent, url, pool=pool)


def makeEndpoint(tls, port):
    """
    A TLS client endpoint to C{port} on 127.0.0.1 with the options C{tls}.
    """
    return wrapClientTLS(tls, TCP4ClientEndpoint(reactor, HOST, port, timeout=30))


# Simulated daemons
#
# A real daemon is a process of ~55 MB: 20,000 of them do not fit on one
# machine.  A simulated daemon is the wire side of one, with the product's
# own protocol classes (XMLRPCClient, WakeClientProtocol); instead of doing
# file operations it answers every request with a stat-like result naming
# its job.


def statResult(jobId, request):
    """
    What a simulated daemon answers to any request: a C{stat}-like struct
    naming the job, so that the querier can check who answered.
    """
    return {
        "path": str(request.get("path", ".")),
        "name": STAT_PATH,
        "type": "file",
        "size": STAT_SIZE,
        "mtime": 0.0,
        "mode": 0o644,
        "answered_by": jobId,
    }


class Counters:
    """
    Events of the simulated daemons.
    """

    def __init__(self):
        self.wakes = 0
        self.served = 0
        self.fetchErrors = 0
        self.pongs = 0
        self.lost = 0


class SimJob:
    """
    One simulated job daemon: its registration and its wake channel.
    """

    __slots__ = ("jobId", "instance", "token", "sealed", "channel", "rpc", "counters",
                 "fetching")

    def __init__(self, jobId, rpc, counters):
        self.jobId = jobId
        self.instance = secrets.token_hex(8)
        self.token = None
        self.sealed = False
        self.channel = None
        self.rpc = rpc
        self.counters = counters
        self.fetching = False

    def info(self, mode):
        """
        The C{info} struct of its registration.
        """
        return {"host": "sim", "wake": mode, "instance": self.instance, "pid": 1}

    async def register(self, mode):
        """
        Register (or register again), keeping the token.
        """
        reply = await self.rpc.call("jobmon.registerJob", self.jobId, self.info(mode))
        self.token = reply["wake"]["token"]
        self.sealed = reply["wake"].get("sealed") == SEALED_VERSION
        return reply

    def wake(self):
        """
        The server said work is queued: fetch it and answer.
        """
        self.counters.wakes += 1
        if self.fetching:
            return
        d = Deferred.fromCoroutine(self.fetch())
        d.addErrback(self._fetchFailed)

    def _fetchFailed(self, failure):
        self.counters.fetchErrors += 1
        say("fetch for {} failed: {}".format(self.jobId, failure.getErrorMessage()))

    async def fetch(self):
        """
        C{getJobToDo}, then C{outputJobResult} for each request.
        """
        self.fetching = True
        try:
            items = await self.rpc.call("jobmon.getJobToDo", self.jobId)
            await self.answer(items)
        finally:
            self.fetching = False

    async def answer(self, items):
        """
        Post a result for each fetched request.
        """
        for item in items:
            await self.rpc.call(
                "jobmon.outputJobResult", self.jobId, item["id"],
                statResult(self.jobId, item["request"]),
            )
            self.counters.served += 1


class SimWakeChannel(WakeClientProtocol):
    """
    The product's daemon end of the TCP wake channel for a simulated job;
    it counts the pongs it gets and the connections it loses, and pings
    only when told to (L{ping}): the server's keep-alive for the benchmark
    is an hour.
    """

    def __init__(self, job):
        super().__init__(job.jobId, job.token, job.wake, reactor)
        self.job = job

    def lineReceived(self, line):
        if b'"pong"' in line:
            self.job.counters.pongs += 1
        super().lineReceived(line)

    def ping(self):
        """
        Send a keep-alive ping.
        """
        self.send(b'{"type":"ping"}')

    def connectionLost(self, reason):
        self.job.counters.lost += 1
        if self.job.channel is self:
            self.job.channel = None
        super().connectionLost(reason)


class _ChannelFactory(Factory):
    noisy = False

    def __init__(self, job):
        self.job = job

    def buildProtocol(self, addr):
        p = SimWakeChannel(self.job)
        p.factory = self
        return p


async def connectChannel(endpoints_, job):
    """
    Open a job's wake channel and wait for the welcome: sealed when the
    registration offered it and C{endpoints_} has a plain endpoint, as the
    daemon does, else TLS.

    @param endpoints_: C{(tls, plain)}: the TLS endpoint of the wake port,
        and its plain TCP one or L{None} (TLS always).
    """
    tls, plain = endpoints_
    endpoint = tls
    if job.sealed and plain is not None:
        endpoint = SealedClientEndpoint(plain, job.jobId, job.token)
    protocol = await endpoint.connect(_ChannelFactory(job))
    d = protocol.welcomed
    d.addTimeout(60, reactor)
    job.channel = await d
    return job.channel


# Load generator processes
#
# One process cannot hold both ends of 20,000 connections under a
# per-process limit of 20,000 descriptors, so the simulated daemons live in
# worker processes (this script with --worker), driven over their standard
# input and output with one JSON object per line.


class Worker:
    """
    The simulated daemons of one worker process: the jobs it registered,
    their wake channels, and the re-registration load.
    """

    def __init__(self):
        self.rpc = None
        self.jobs = []
        self.pending = []
        self.counters = Counters()
        self.refreshRPC = None

    async def handle(self, message):
        """
        Run one command and return its reply (a dict).
        """
        cmd = message["cmd"]
        handler = getattr(self, "cmd_" + cmd, None)
        if handler is None:
            raise ValueError("unknown command {!r}".format(cmd))
        return await handler(**message.get("args", {}))

    async def cmd_init(self, url, wake_port, ca_dir, proxy, concurrency, wake_tls=False):
        self.url = url
        self.tls = clientTLS(ca_dir, proxy)
        self.rpc = makeRPC(self.tls, url, concurrency)
        self.concurrency = concurrency
        self.endpoint = None
        if wake_port:
            plain = TCP4ClientEndpoint(reactor, HOST, wake_port, timeout=30)
            self.endpoint = (makeEndpoint(self.tls, wake_port), None if wake_tls else plain)
        return {"pid": os.getpid(), "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}

    async def cmd_register(self, mode, start, count):
        batch = [SimJob("cap.{}.{:06d}".format(mode, i), self.rpc, self.counters)
                 for i in range(start, start + count)]
        t0 = time.monotonic()
        _, failed = await bounded(
            self.concurrency,
            [lambda j=j: Deferred.fromCoroutine(j.register(mode)) for j in batch])
        ok = [j for j in batch if j.token is not None]
        self.jobs.extend(ok)
        self.pending.extend(ok)
        return {"registered": len(ok), "failed": len(failed),
                "first_error": failed[0].getErrorMessage() if failed else None,
                "seconds": time.monotonic() - t0}

    async def cmd_connect(self, concurrency):
        batch, self.pending = self.pending, []
        t0 = time.monotonic()
        _, failed = await bounded(
            concurrency,
            [lambda j=j: Deferred.fromCoroutine(connectChannel(self.endpoint, j))
             for j in batch])
        return {"connected": len(batch) - len(failed), "failed": len(failed),
                "first_error": failed[0].getErrorMessage() if failed else None,
                "seconds": time.monotonic() - t0}

    async def cmd_status(self):
        c = self.counters
        return {"jobs": len(self.jobs),
                "open": sum(1 for j in self.jobs if j.channel is not None),
                "sealed": sum(1 for j in self.jobs if j.channel is not None
                              and getattr(j.channel.transport, "sealed", False)),
                "wakes": c.wakes, "served": c.served, "fetch_errors": c.fetchErrors,
                "pongs": c.pongs, "lost": c.lost}

    async def cmd_ping(self, per_second, seconds):
        """
        Ping the open channels round-robin at C{per_second}.
        """
        channels = [j for j in self.jobs if j.channel is not None]
        if not channels:
            return {"sent": 0, "pongs": 0}
        tick = 0.05
        perTick = max(1, int(round(per_second * tick)))
        position, sent = [0], [0]

        def send():
            for _ in range(perTick):
                job = channels[position[0] % len(channels)]
                position[0] += 1
                if job.channel is not None:
                    job.channel.ping()
                    sent[0] += 1

        pongs0 = self.counters.pongs
        g0 = time.process_time()
        loop = LoopingCall(send)
        loop.start(tick)
        try:
            await sleep(seconds)
        finally:
            loop.stop()
        cpu = time.process_time() - g0
        await sleep(0.5)
        return {"sent": sent[0], "pongs": self.counters.pongs - pongs0, "cpu": cpu}

    async def cmd_close(self, start=0, count=None):
        """
        Close the wake channels of jobs C{start} to C{start + count} (of
        this worker's list), all by default.
        """
        chosen = self.jobs[start:None if count is None else start + count]
        closed = 0
        for j in chosen:
            if j.channel is not None:
                j.channel.transport.loseConnection()
                closed += 1
        return {"closed": closed}

    async def cmd_refresh_open(self, k, mode):
        """
        Open K kept-alive connections for re-registrations and run them for
        a second, untimed.
        """
        if self.refreshRPC is not None:
            await self.refreshRPC.close()
        self.refreshRPC = makeRPC(self.tls, self.url, k)
        await self._refresh(k, mode, 1.0, [])
        return {"k": k}

    async def cmd_refresh(self, k, mode, seconds):
        """
        Re-register this worker's jobs in turn, K at a time, for C{seconds}.
        """
        latencies = []
        g0, t0 = time.process_time(), time.monotonic()
        changed, errors = await self._refresh(k, mode, seconds, latencies)
        return {"calls": len(latencies), "latencies_ms": [round(1000 * v, 3) for v in latencies],
                "seconds": time.monotonic() - t0, "cpu": time.process_time() - g0,
                "token_changed": changed, "errors": len(errors),
                "first_error": errors[0] if errors else None}

    async def cmd_refresh_close(self):
        if self.refreshRPC is not None:
            await self.refreshRPC.close()
            self.refreshRPC = None
        return {}

    async def _refresh(self, k, mode, seconds, latencies):
        rpc, jobs = self.refreshRPC, self.jobs
        position, changed, errors = [random.randrange(len(jobs))], [0], []
        stopAt = time.monotonic() + seconds

        async def one():
            while time.monotonic() < stopAt and len(errors) <= 100:
                job = jobs[position[0] % len(jobs)]
                position[0] += 1
                t0 = time.perf_counter()
                try:
                    reply = await rpc.call("jobmon.registerJob", job.jobId, job.info(mode))
                except Exception as e:
                    errors.append(str(e))
                    continue
                latencies.append(time.perf_counter() - t0)
                if reply["wake"]["token"] != job.token:
                    changed[0] += 1

        await defer.gatherResults([Deferred.fromCoroutine(one()) for _ in range(k)])
        return changed[0], errors


class WorkerCommands(LineReceiver):
    """
    The worker's side of the command pipe.
    """

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024

    def __init__(self, worker):
        self.worker = worker

    def lineReceived(self, line):
        message = json.loads(line)
        d = Deferred.fromCoroutine(self.worker.handle(message))
        d.addCallbacks(
            lambda reply: self._reply(message["id"], reply),
            lambda f: self._reply(message["id"], {"error": "{}: {}".format(
                f.type.__name__, f.getErrorMessage())}))

    def _reply(self, id, reply):
        reply["id"] = id
        self.sendLine(json.dumps(reply).encode("utf-8"))

    def connectionLost(self, reason):
        # The benchmark went away (or closed the pipe): stop.
        if reactor.running:
            reactor.stop()


def workerMain(maxMinutes):
    """
    Run as a worker process until the command pipe closes.
    """
    from twisted.internet import stdio

    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)
    stdio.StandardIO(WorkerCommands(Worker()))
    reactor.callLater(maxMinutes * 60, reactor.stop)
    reactor.run()
    return 0


class WorkerProcess(ProcessProtocol):
    """
    The benchmark's handle on one worker process.
    """

    def __init__(self, name):
        self.name = name
        self.buffer = b""
        self.waiting = {}
        self.ids = itertools.count(1)
        self.ended = Deferred()

    @classmethod
    def spawn(cls, name, maxMinutes):
        """
        Start a worker (this script with C{--worker}).
        """
        proto = cls(name)
        args = [sys.executable, os.path.abspath(__file__), "--worker",
                "--max-minutes", str(maxMinutes)]
        reactor.spawnProcess(proto, sys.executable, args, env=common.childEnv(),
                             path=common.ROOT, childFDs={0: "w", 1: "r", 2: 2})
        return proto

    def outReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            reply = json.loads(line)
            d = self.waiting.pop(reply.pop("id"), None)
            if d is None:
                continue
            if "error" in reply:
                d.errback(RuntimeError("{}: {}".format(self.name, reply["error"])))
            else:
                d.callback(reply)

    def processEnded(self, reason):
        waiting, self.waiting = self.waiting, {}
        for d in waiting.values():
            d.errback(RuntimeError("{} ended".format(self.name)))
        self.ended.callback(None)

    def command(self, cmd, **args):
        """
        Send a command; the Deferred fires with the reply.
        """
        id = next(self.ids)
        d = Deferred()
        self.waiting[id] = d
        self.transport.write(json.dumps({"id": id, "cmd": cmd, "args": args}).encode() + b"\n")
        return d

    async def stop(self):
        """
        Close the pipe; SIGTERM, then SIGKILL, if the worker does not end.
        """
        if self.ended.called:
            return
        try:
            self.transport.closeStdin()
        except Exception:
            pass
        for signal_, wait in ((None, 10), ("TERM", 5), ("KILL", 5)):
            if signal_ is not None and not self.ended.called:
                try:
                    self.transport.signalProcess(signal_)
                except Exception:
                    pass
            deadline = time.monotonic() + wait
            while not self.ended.called and time.monotonic() < deadline:
                await sleep(0.05)
            if self.ended.called:
                return


async def startWorkers(count, env, server, wakePort, concurrency, maxMinutes, wakeTLS=False):
    """
    Start C{count} workers and initialize them for C{server}.
    """
    workers = [WorkerProcess.spawn("worker {}".format(i), maxMinutes) for i in range(count)]
    try:
        await defer.gatherResults([w.command(
            "init", url=server.url, wake_port=wakePort, ca_dir=env.caDir, proxy=env.proxy,
            concurrency=concurrency, wake_tls=wakeTLS) for w in workers])
    except Exception:
        await stopWorkers(workers)
        raise
    return workers


async def stopWorkers(workers):
    """
    Stop every worker.
    """
    await defer.gatherResults([Deferred.fromCoroutine(w.stop()) for w in workers])


def split(start, count, parts):
    """
    Split C{count} jobs from C{start} into C{parts} contiguous ranges.
    """
    ranges, base = [], start
    for i in range(parts):
        n = count // parts + (1 if i < count % parts else 0)
        ranges.append((base, n))
        base += n
    return ranges


async def allOf(workers, cmd, **args):
    """
    Send the same command to every worker; return the replies.
    """
    return await defer.gatherResults([w.command(cmd, **args) for w in workers])


def checkReplies(replies, what):
    failed = sum(r.get("failed", 0) for r in replies)
    if failed:
        first = next(r["first_error"] for r in replies if r.get("failed"))
        raise RuntimeError("{} {} failed, first: {}".format(failed, what, first))


# Part 1: TCP wake channels


async def query(rpc, jobId):
    """
    Query one simulated job (C{stat job.log}) and check who answered.

    @return: the latency in seconds.
    """
    t0 = time.perf_counter()
    result = await rpc.call("jobmon.query", jobId, {"op": "stat", "path": STAT_PATH})
    elapsed = time.perf_counter() - t0
    if result.get("answered_by") != jobId or result.get("size") != STAT_SIZE:
        raise AssertionError("wrong answer for {}: {!r}".format(jobId, result))
    return elapsed


async def listJobs(rpc, mode):
    """
    C{listJobs} as alice: the count of jobs in C{mode}, of those ready, and
    the seconds the call took.
    """
    t0 = time.perf_counter()
    jobs = await rpc.call("jobmon.listJobs")
    elapsed = time.perf_counter() - t0
    mine = [j for j in jobs if j["mode"] == mode]
    return len(mine), sum(1 for j in mine if j["state"] == "ready"), elapsed


def kb(value):
    return round(value, 1) if value is not None else None


async def tcpPart(env, cfg):
    """
    Ramp up TCP wake channels; see the module docstring.
    """
    total, step = cfg["tcp_jobs"], cfg["tcp_step"]
    procs = max(1, -(-total // WORKER_CHANNELS))
    out = {"jobs_asked": total, "step": step, "steps": [], "procs": procs}
    server = Server(env, "tcp", [
        "--keepalive", "3600", "--connect-grace", "600", "--query-timeout", "30"])
    serverLimit = fdLimit(server.pid)
    out["server_fd_limit"] = serverLimit
    capped = total > serverLimit - FD_MARGIN
    if capped:
        total = serverLimit - FD_MARGIN
        say("tcp: the server's descriptor limit is {}: ramping to {} channels, then probing "
            "the limit".format(serverLimit, total))
    out["jobs"] = total
    rpc = env.rpc(server.url, 2)
    workers = []
    try:
        await rpc.call("jobmon.whoami")
        await settle(server.pid)
        out["background_cpu_percent"] = await background()
        base = server.status()
        out["idle"] = base
        say("tcp: server pid {} idle, RSS {} KiB; {} worker processes".format(
            server.pid, base["VmRSS"], procs))
        workers = await startWorkers(procs, env, server, server.ports["wake"],
                                     max(1, REGISTER_CONCURRENCY // procs), cfg["max_minutes"],
                                     wakeTLS=cfg["wake_tls"])
        cpu0, t0, busy0 = base["cpu"], time.monotonic(), common.machineCPU()
        workers0 = [common.cpuSeconds(w.transport.pid) for w in workers]
        self0 = time.process_time()
        done = 0
        while done < total:
            count = min(step, total - done)
            s0, c0 = time.monotonic(), common.cpuSeconds(server.pid)
            replies = await defer.gatherResults([
                w.command("register", mode="tcp", start=a, count=n)
                for w, (a, n) in zip(workers, split(done, count, procs))])
            s1, c1 = time.monotonic(), common.cpuSeconds(server.pid)
            checkReplies(replies, "registrations")
            await settle(server.pid)
            registered = server.status()
            s2, c2 = time.monotonic(), common.cpuSeconds(server.pid)
            replies = await allOf(workers, "connect",
                                  concurrency=max(1, CONNECT_CONCURRENCY // procs))
            s3, c3 = time.monotonic(), common.cpuSeconds(server.pid)
            checkReplies(replies, "wake connections")
            done += count
            await settle(server.pid)
            connected = server.status()
            previous = out["steps"][-1]["rss_kib"] if out["steps"] else base["VmRSS"]
            row = {
                "connections": done,
                "rss_kib": connected["VmRSS"],
                "rss_anon_kib": connected.get("RssAnon"),
                "hwm_kib": connected["VmHWM"],
                "fds": connected["fds"],
                "kib_per_connection": kb((connected["VmRSS"] - base["VmRSS"]) / done),
                "step_kib_per_registration": kb((registered["VmRSS"] - previous) / count),
                "step_kib_per_channel": kb((connected["VmRSS"] - registered["VmRSS"]) / count),
                "register_per_s": round(count / (s1 - s0), 1),
                "register_cpu_ms": round(1000.0 * (c1 - c0) / count, 3),
                "connect_per_s": round(count / (s3 - s2), 1),
                "connect_cpu_ms": round(1000.0 * (c3 - c2) / count, 3),
                "elapsed_s": round(time.monotonic() - t0, 1),
            }
            out["steps"].append(row)
            say("tcp: {connections} channels, RSS {rss_kib} KiB ({kib_per_connection} KiB "
                "each), {connect_per_s}/s".format(**row))
        out["ramp_seconds"] = round(time.monotonic() - t0, 1)
        final = server.status()
        out["ramp_generator_cpu_s"] = round(sum(
            common.cpuSeconds(w.transport.pid) - c for w, c in zip(workers, workers0)), 2)
        out["ramp_other_cpu_percent"] = othersCPU(
            busy0, common.machineCPU(), time.monotonic() - t0,
            [(cpu0, final["cpu"])] + [(c, common.cpuSeconds(w.transport.pid))
                                      for w, c in zip(workers, workers0)],
            time.process_time() - self0)
        out["final"] = final
        out["ramp_cpu_s"] = round(final["cpu"] - cpu0, 2)
        out["kib_per_connection"] = kb((final["VmRSS"] - base["VmRSS"]) / total)
        out["anon_kib_per_connection"] = kb((final["RssAnon"] - base["RssAnon"]) / total)

        # Idle with every channel open.
        c0, s0 = common.cpuSeconds(server.pid), time.monotonic()
        await sleep(cfg["ping_seconds"])
        out["idle_cpu_percent"] = round(
            100.0 * (common.cpuSeconds(server.pid) - c0) / (time.monotonic() - s0), 2)

        # Keep-alive pings at the default interval: N / 20 pings per second.
        rate = total / float(DEFAULT_KEEPALIVE)
        c0, s0 = common.cpuSeconds(server.pid), time.monotonic()
        replies = await allOf(workers, "ping", per_second=rate / procs,
                              seconds=cfg["ping_seconds"])
        elapsed = time.monotonic() - s0 - 0.5
        cpu = common.cpuSeconds(server.pid) - c0
        sent = sum(r["sent"] for r in replies)
        out["pings"] = {
            "pings_per_s": round(sent / elapsed, 1),
            "sent": sent,
            "pongs": sum(r["pongs"] for r in replies),
            "server_cpu_percent": round(100.0 * cpu / elapsed, 2),
            "server_cpu_ms_per_ping": round(1000.0 * cpu / max(1, sent), 4),
        }
        await settle(server.pid)

        # Real queries to random simulated jobs.
        latencies = []
        for _ in range(cfg["queries"]):
            latencies.append(await query(rpc, "cap.tcp.{:06d}".format(random.randrange(total))))
        out["queries"] = common.summarize(latencies)
        await settle(server.pid)
        out["after_queries"] = server.status()

        count, ready, seconds = await listJobs(rpc, "tcp")
        out["listJobs"] = {"count": count, "ready": ready, "seconds": round(seconds, 3)}
        statuses = await allOf(workers, "status")
        out["channels_open"] = sum(s["open"] for s in statuses)
        out["channels_sealed"] = sum(s["sealed"] for s in statuses)
        out["served"] = sum(s["served"] for s in statuses)
        out["fetch_errors"] = sum(s["fetch_errors"] for s in statuses)
        say("tcp: listJobs {} (ready {}), {} channels open ({} sealed), {} queries "
            "answered".format(count, ready, out["channels_open"], out["channels_sealed"],
                              out["served"]))
        await settle(server.pid)
        out["after_listjobs"] = server.status()

        if cfg["fd_edge"] and capped:
            out["fd_edge"] = await fdEdge(env, server, workers, rpc, total)

        # Close every channel; what does the server give back?
        c0, s0 = common.cpuSeconds(server.pid), time.monotonic()
        await allOf(workers, "close")
        await settle(server.pid, limit=60)
        closed = server.status()
        out["after_close"] = closed
        out["close_cpu_s"] = round(closed["cpu"] - c0, 2)
        out["close_seconds"] = round(time.monotonic() - s0, 1)
    finally:
        await rpc.close()
        await stopWorkers(workers)
        server.stop()
    return out


async def fdEdge(env, server, workers, rpc, total):
    """
    Push past the server's descriptor limit: register and connect up to
    L{FD_MARGIN} more jobs, see how many channels the server holds and
    whether it still serves calls (on a kept-alive connection, and on a
    new one), then release those extra channels and check that new
    connections work again.
    """
    extra = FD_MARGIN
    w = workers[-1]
    before = (await w.command("status"))["jobs"]
    reply = await w.command("register", mode="tcp", start=total, count=extra)
    connect = await w.command("connect", concurrency=8)
    await settle(server.pid)
    status = server.status()
    out = {
        "tried": extra,
        "registered": reply["registered"],
        "connected": connect["connected"],
        "connect_failed": connect["failed"],
        "first_error": connect["first_error"],
        "server_fds": status["fds"],
    }
    statuses = await allOf(workers, "status")
    out["channels_open"] = sum(s["open"] for s in statuses)
    try:
        await rpc.call("jobmon.whoami")
        out["kept_alive_call"] = "ok"
    except Exception as e:
        out["kept_alive_call"] = "failed: {}".format(e)
    out["new_connection_call"] = await newConnectionCall(env, server)
    # Free the channels opened here, and a few more.
    await w.command("close", start=before - 50, count=None)
    await settle(server.pid, limit=30)
    out["new_connection_after_release"] = await newConnectionCall(env, server)
    log = server.proc.text()
    out["server_log_emfile_lines"] = log.count("EMFILE")
    say("tcp: fd edge: {} of {} extra channels connected (server fds {}); kept-alive call {}, "
        "new connection {}, after release {}".format(
            out["connected"], extra, out["server_fds"], out["kept_alive_call"],
            out["new_connection_call"], out["new_connection_after_release"]))
    return out


async def newConnectionCall(env, server):
    """
    C{whoami} on a new connection, within 10 s: C{"ok"} or why it failed.
    """
    fresh = env.rpc(server.url, 1)
    try:
        d = fresh.callRemote("jobmon.whoami")
        d.addTimeout(10, reactor)
        await d
        return "ok"
    except Exception as e:
        return "failed: {}".format(e.__class__.__name__)
    finally:
        await fresh.close()


# Part 2: UDP re-registrations


async def udpPart(env, cfg):
    """
    Register UDP jobs once, then refresh them as fast as possible with K
    connections from P worker processes, for each (P, K).
    """
    total = cfg["udp_jobs"]
    port = common.freeUDPPort()
    server = Server(env, "udp", [
        "--udp-broadcast", "{}:{}".format(common.LOOPBACK_BROADCAST, port),
        "--reregister-interval", "3600", "--cleanup-interval", "3600"])
    out = {"jobs": total, "udp_port": port, "runs": []}
    runs = cfg["udp_runs"]
    maxProcs = max(p for p, _ in runs)
    rpc = env.rpc(server.url, 2)
    workers = []
    try:
        await rpc.call("jobmon.whoami")
        await settle(server.pid)
        out["background_cpu_percent"] = await background()
        base = server.status()
        out["idle"] = base
        workers = await startWorkers(maxProcs, env, server, None,
                                     max(1, REGISTER_CONCURRENCY // maxProcs),
                                     cfg["max_minutes"])
        s0, c0 = time.monotonic(), base["cpu"]
        replies = await defer.gatherResults([
            w.command("register", mode="udp", start=a, count=n)
            for w, (a, n) in zip(workers, split(0, total, maxProcs))])
        checkReplies(replies, "UDP registrations")
        elapsed = time.monotonic() - s0
        await settle(server.pid)
        registered = server.status()
        out["first_registration"] = {
            "per_s": round(total / elapsed, 1),
            "server_cpu_s_per_1000": round(1000.0 * (registered["cpu"] - c0) / total, 3),
            "kib_per_job": kb((registered["VmRSS"] - base["VmRSS"]) / total),
        }
        out["registered"] = registered
        say("udp: {} jobs registered ({}/s)".format(total, out["first_registration"]["per_s"]))
        for procs, k in runs:
            run = await refreshRun(server, workers[:procs], k, cfg["udp_seconds"])
            out["runs"].append(run)
            say("udp: P={procs} K={k}: {per_s}/s, server CPU {server_cpu_percent} %, "
                "p50 {p50_ms} ms, p99 {p99_ms} ms".format(**run))
        count, ready, seconds = await listJobs(rpc, "udp")
        out["listJobs"] = {"count": count, "ready": ready, "seconds": round(seconds, 3)}
        await settle(server.pid)
        out["final"] = server.status()
    finally:
        await rpc.close()
        await stopWorkers(workers)
        server.stop()
    return out


async def refreshRun(server, workers, k, seconds):
    """
    K connections in all, spread over the workers, refresh registrations
    for C{seconds} after an untimed second.
    """
    ks = [k // len(workers) + (1 if i < k % len(workers) else 0) for i in range(len(workers))]
    pairs = [(w, n) for w, n in zip(workers, ks) if n > 0]
    await defer.gatherResults([w.command("refresh_open", k=n, mode="udp") for w, n in pairs])
    await settle(server.pid, limit=5)
    c0, s0, sys0 = common.cpuSeconds(server.pid), time.monotonic(), common.machineCPU()
    replies = await defer.gatherResults([
        w.command("refresh", k=n, mode="udp", seconds=seconds) for w, n in pairs])
    elapsed = time.monotonic() - s0
    cpu = common.cpuSeconds(server.pid) - c0
    sys1 = common.machineCPU()
    busy, softirq = sys1[0] - sys0[0], sys1[2] - sys0[2]
    generator = sum(r["cpu"] for r in replies)
    await defer.gatherResults([w.command("refresh_close") for w, _ in pairs])
    latencies = [v / 1000.0 for r in replies for v in r["latencies_ms"]]
    n = len(latencies)
    summary = common.summarize(latencies)
    errors = sum(r["errors"] for r in replies)
    return {
        "procs": len(pairs),
        "k": k,
        "calls": n,
        "seconds": round(elapsed, 2),
        "per_s": round(n / elapsed, 1),
        "server_cpu_percent": round(100.0 * cpu / elapsed, 1),
        "server_cpu_s_per_1000": round(1000.0 * cpu / max(1, n), 3),
        "server_bound_per_s": round(n / cpu, 1) if cpu > 0 else None,
        "generator_cpu_percent": round(100.0 * generator / elapsed, 1),
        "machine_busy_percent": round(100.0 * busy / elapsed, 1),
        "softirq_percent": round(100.0 * softirq / elapsed, 1),
        "other_cpu_percent": round(100.0 * (busy - softirq - cpu - generator) / elapsed, 1),
        "p50_ms": summary["p50_ms"],
        "p90_ms": summary["p90_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "token_changed": sum(r["token_changed"] for r in replies),
        "errors": errors,
        "first_error": next((r["first_error"] for r in replies if r["errors"]), None),
    }


# Part 3: pending polls


async def serverFds(server, count, limit=60.0):
    """
    Wait until the server has at least C{count} descriptors open (one per
    accepted connection), for at most C{limit} seconds.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        fds = common.procStatus(server.pid, ())["fds"]
        if fds is not None and fds >= count:
            return
        await sleep(0.01)
    raise RuntimeError("the server did not accept the polls' connections in time")


def startPoll(pollRPC, job, seconds, state):
    """
    Start a simulated poll daemon's C{waitForWork} call; the results of
    work it returns are posted over the job's own client.  Each call in
    flight has an HTTPS connection of its own (the pool opens one when none
    is idle).
    """
    d = pollRPC.callRemote("jobmon.waitForWork", job.jobId, seconds)

    def returned(items):
        state["returned"] += 1
        return Deferred.fromCoroutine(job.answer(items))

    def failed(failure):
        # A poll that fails (the connection closed at the end of the run)
        # returns nothing.
        state["errors"] += 1

    d.addCallback(returned)
    d.addErrback(failed)
    return d


async def pollPart(env, cfg):
    """
    Poll jobs, each with a C{waitForWork} call pending on its own
    connection, in steps.
    """
    total, step = cfg["poll_jobs"], cfg["poll_step"]
    server = Server(env, "poll", [
        "--max-poll", "600", "--missed-registrations", "3", "--reregister-interval", "600",
        "--cleanup-interval", "3600"])
    out = {"jobs": total, "step": step, "steps": []}
    counters = Counters()
    rpc = env.rpc(server.url, REGISTER_CONCURRENCY)
    pollRPC = env.rpc(server.url, 1)
    jobs, state = [], {"returned": 0, "errors": 0}
    try:
        await rpc.call("jobmon.whoami")
        await settle(server.pid)
        base = server.status()
        out["idle"] = base
        t0 = time.monotonic()
        while len(jobs) < total:
            batch = [SimJob("cap.poll.{:06d}".format(i), rpc, counters)
                     for i in range(len(jobs), min(total, len(jobs) + step))]
            _, failed = await bounded(
                REGISTER_CONCURRENCY,
                [lambda j=j: Deferred.fromCoroutine(j.register("poll")) for j in batch])
            if failed:
                raise RuntimeError("{} poll registrations failed, first: {}".format(
                    len(failed), failed[0].getErrorMessage()))
            await settle(server.pid)
            registered = server.status()
            s0, c0 = time.monotonic(), common.cpuSeconds(server.pid)
            # CONNECT_CONCURRENCY new connections at a time, as in the TCP
            # part: the next ones start once the server has accepted these.
            for first in range(0, len(batch), CONNECT_CONCURRENCY):
                chunk = batch[first:first + CONNECT_CONCURRENCY]
                for job in chunk:
                    startPoll(pollRPC, job, 600.0, state)
                await serverFds(server, registered["fds"] + first + len(chunk))
            jobs.extend(batch)
            await settle(server.pid)
            pending = server.status()
            s1 = time.monotonic()
            n = len(jobs)
            if state["errors"] or state["returned"]:
                raise RuntimeError("{} polls failed and {} returned at {}".format(
                    state["errors"], state["returned"], n))
            row = {
                "polls": n,
                "rss_kib": pending["VmRSS"],
                "rss_anon_kib": pending.get("RssAnon"),
                "fds": pending["fds"],
                "kib_per_poll_job": kb((pending["VmRSS"] - base["VmRSS"]) / n),
                "step_kib_per_pending_poll": kb(
                    (pending["VmRSS"] - registered["VmRSS"]) / len(batch)),
                "connect_cpu_ms": round(1000.0 * (pending["cpu"] - c0) / len(batch), 3),
                "connect_per_s": round(len(batch) / (s1 - s0), 1),
                "elapsed_s": round(time.monotonic() - t0, 1),
            }
            out["steps"].append(row)
            say("poll: {polls} pending, RSS {rss_kib} KiB ({kib_per_poll_job} KiB per "
                "job)".format(**row))
        final = server.status()
        out["final"] = final
        out["kib_per_poll_job"] = kb((final["VmRSS"] - base["VmRSS"]) / total)
        count, ready, seconds = await listJobs(rpc, "poll")
        out["listJobs"] = {"count": count, "ready": ready, "seconds": round(seconds, 3)}
        # Real queries, each to a different job (a poll that returned is not
        # renewed by the simulation).
        latencies = []
        for job in random.sample(jobs, min(cfg["queries"], len(jobs))):
            latencies.append(await query(rpc, job.jobId))
        out["queries"] = common.summarize(latencies)
        out["still_pending"] = total - state["returned"] - state["errors"]
        out["poll_errors"] = state["errors"]
        say("poll: listJobs {} (ready {}), {} queries answered, {} polls pending".format(
            count, ready, counters.served, out["still_pending"]))
    finally:
        await rpc.close()
        server.stop()
        await pollRPC.close()
    return out


# Report


def report(doc):
    """
    The results as Markdown.
    """
    source = doc["machine"].get("source") or {}
    parts = ["Source: commit {}{}; server limits lifted for the benchmark: `{}`.".format(
        source.get("commit"), " with changes" if source.get("changed") else "",
        " ".join(doc["server_options"]))]
    tcp = doc.get("tcp")
    if tcp:
        rows = [[s["connections"], s["rss_kib"], s["rss_anon_kib"], s["kib_per_connection"],
                 s["step_kib_per_registration"], s["step_kib_per_channel"], s["register_per_s"],
                 s["register_cpu_ms"], s["connect_per_s"], s["connect_cpu_ms"], s["elapsed_s"]]
                for s in tcp["steps"]]
        idle = tcp["idle"]
        text = ("### TCP wake channels\n\nServer idle: RSS {} KiB (anon {} KiB).\n\n".format(
            idle["VmRSS"], idle["RssAnon"]))
        text += common.markdownTable(
            ["channels", "RSS KiB", "anon KiB", "KiB/channel (cumulative)",
             "step: KiB/registration", "step: KiB/channel", "registers/s", "server ms/register",
             "connects/s", "server ms/connect", "elapsed s"], rows)
        final = tcp["final"]
        text += ("\n\nServer descriptor limit {}; {} load generator process(es) using {} CPU s "
                 "during the ramp; other processes on the machine: {} % of a CPU before, {} % "
                 "during the ramp.".format(
                     tcp["server_fd_limit"], tcp["procs"], tcp.get("ramp_generator_cpu_s"),
                     tcp.get("background_cpu_percent"), tcp.get("ramp_other_cpu_percent")))
        if "channels_sealed" in tcp:
            text += "\n\nWake channels sealed (keyed by the registration): {} of {}{}.".format(
                tcp["channels_sealed"], tcp["channels_open"],
                " (--wake-tls)" if doc["config"].get("wake_tls") else "")
        text += (
            "\n\nAll {jobs} connected in {ramp} s; server CPU during the ramp {cpu} s; "
            "RSS {rss} KiB (peak {hwm} KiB): {per} KiB per job and channel "
            "(anon {anon} KiB). Target <= {target:g} KiB: {verdict}.".format(
                jobs=tcp["jobs"], ramp=tcp["ramp_seconds"], cpu=tcp["ramp_cpu_s"],
                rss=final["VmRSS"], hwm=final["VmHWM"], per=tcp["kib_per_connection"],
                anon=tcp["anon_kib_per_connection"], target=TARGET_TCP_KB_PER_CONNECTION,
                verdict="met" if tcp["kib_per_connection"] <= TARGET_TCP_KB_PER_CONNECTION
                and tcp["jobs"] >= TARGET_TCP_CONNECTIONS else (
                    "met per channel, but fewer than {} channels in this run".format(
                        TARGET_TCP_CONNECTIONS)
                    if tcp["kib_per_connection"] <= TARGET_TCP_KB_PER_CONNECTION
                    else "NOT met")))
        p = tcp["pings"]
        q = tcp["queries"]
        text += (
            "\n\nWith every channel open: idle server CPU {idle} %; pings at the default "
            "keep-alive ({rate}/s, {pongs} pongs back): server CPU {pcpu} % "
            "({ms} ms per ping). {nq} queries to random jobs: p50 {p50} ms, p99 {p99} ms, "
            "max {mx} ms. listJobs: {count} jobs ({ready} ready) in {ls} s. "
            "After closing every channel ({cs} s, server CPU {ccpu} s): RSS {after} KiB.".format(
                idle=tcp["idle_cpu_percent"], rate=p["pings_per_s"], pongs=p["pongs"],
                pcpu=p["server_cpu_percent"], ms=p["server_cpu_ms_per_ping"], nq=q["n"],
                p50=q["p50_ms"], p99=q["p99_ms"], mx=q["max_ms"],
                count=tcp["listJobs"]["count"], ready=tcp["listJobs"]["ready"],
                ls=tcp["listJobs"]["seconds"], cs=tcp["close_seconds"], ccpu=tcp["close_cpu_s"],
                after=tcp["after_close"]["VmRSS"]))
        edge = tcp.get("fd_edge")
        if edge:
            text += (
                "\n\nAt the descriptor limit: {connected} of {tried} more channels connected "
                "({failed} refused: {err}); {open} channels open, server fds {fds}. A call on a "
                "kept-alive connection: {kept}; on a new connection: {new}; after releasing "
                "channels: {after}. EMFILE lines in the server log: {emfile}.".format(
                    connected=edge["connected"], tried=edge["tried"],
                    failed=edge["connect_failed"], err=edge["first_error"],
                    open=edge["channels_open"], fds=edge["server_fds"],
                    kept=edge["kept_alive_call"], new=edge["new_connection_call"],
                    after=edge["new_connection_after_release"],
                    emfile=edge["server_log_emfile_lines"]))
        parts.append(text)
    udp = doc.get("udp")
    if udp:
        first = udp["first_registration"]
        text = ("### UDP re-registrations\n\n{} jobs registered first: {}/s, server {} CPU s "
                "per 1000, {} KiB per UDP job. Other processes on the machine before the "
                "runs: {} % of a CPU.\n\n".format(
                    udp["jobs"], first["per_s"], first["server_cpu_s_per_1000"],
                    first["kib_per_job"], udp.get("background_cpu_percent")))
        text += common.markdownTable(
            ["procs", "K connections", "calls", "re-registrations/s", "server CPU %",
             "server CPU s / 1000", "server-bound /s", "generator CPU %", "softirq %",
             "other CPU %",
             "p50 ms", "p99 ms", "max ms", "token changed", "errors"],
            [[r["procs"], r["k"], r["calls"], r["per_s"], r["server_cpu_percent"],
              r["server_cpu_s_per_1000"], r["server_bound_per_s"] or "-",
              r["generator_cpu_percent"], r["softirq_percent"], r["other_cpu_percent"],
              r["p50_ms"], r["p99_ms"], r["max_ms"],
              r["token_changed"], r["errors"]] for r in udp["runs"]])
        best = max(r["per_s"] for r in udp["runs"])
        text += "\n\nBest {:g}/s. Target >= {:g}/s: {}. listJobs: {} UDP jobs.".format(
            best, TARGET_UDP_PER_SECOND, "met" if best >= TARGET_UDP_PER_SECOND else "NOT met",
            udp["listJobs"]["count"])
        parts.append(text)
    poll = doc.get("poll")
    if poll:
        text = "### Pending polls\n\nServer idle: RSS {} KiB.\n\n".format(poll["idle"]["VmRSS"])
        text += common.markdownTable(
            ["pending polls", "RSS KiB", "anon KiB", "fds", "KiB/poll job (cumulative)",
             "step: KiB/pending poll", "connects/s", "server ms/connect", "elapsed s"],
            [[s["polls"], s["rss_kib"], s["rss_anon_kib"], s["fds"], s["kib_per_poll_job"],
              s["step_kib_per_pending_poll"], s["connect_per_s"], s["connect_cpu_ms"],
              s["elapsed_s"]] for s in poll["steps"]])
        q = poll["queries"]
        text += ("\n\n{} polls pending: {} KiB per poll job; listJobs {} ({} ready). {} queries "
                 "to distinct jobs: p50 {} ms, p99 {} ms.".format(
                     poll["jobs"], poll["kib_per_poll_job"], poll["listJobs"]["count"],
                     poll["listJobs"]["ready"], q["n"], q["p50_ms"], q["p99_ms"]))
        parts.append(text)
    return "\n\n".join(parts)


async def run(env, parts, cfg):
    """
    Run the chosen parts in turn.

    @return: their figures, by part.
    """
    doc = {}
    for name, part in (("tcp", tcpPart), ("udp", udpPart), ("poll", pollPart)):
        if name in parts:
            doc[name] = await part(env, cfg)
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--parts", default="tcp,udp,poll",
                        help="comma-separated subset of tcp,udp,poll (all)")
    parser.add_argument("--tcp-jobs", type=int, help="TCP channels (20000)")
    parser.add_argument("--wake-tls", action="store_true",
                        help="TCP daemons use TLS even where the server offers the sealed "
                             "wake channel")
    parser.add_argument("--no-fd-edge", dest="fd_edge", action="store_false", default=None,
                        help="do not probe the server's descriptor limit")
    parser.add_argument("--max-minutes", type=float, default=40.0,
                        help="stop everything after this long (40)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return workerMain(args.max_minutes)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("tcp_jobs", "fd_edge"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    cfg["max_minutes"] = args.max_minutes
    cfg["wake_tls"] = args.wake_tls
    parts = set(args.parts.split(","))
    if not parts <= {"tcp", "udp", "poll"}:
        parser.error("--parts: choose among tcp,udp,poll")
    if not (1 <= cfg["tcp_jobs"] <= 60000 and 0 < args.max_minutes <= 180):
        parser.error("--tcp-jobs must be 1..60000 and --max-minutes in (0, 180]")
    limit = raiseFdLimit()
    if "poll" in parts and limit < cfg["poll_jobs"] + 500:
        parser.error("the file descriptor limit is {}: too low for {} polls".format(
            limit, cfg["poll_jobs"]))
    common.installSignalHandlers()
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)

    document = {"benchmark": "capacity", "machine": common.machine(), "config": cfg,
                "fd_limit": limit, "server_options": LIMITS_LIFTED}
    started = time.monotonic()
    env = Env()
    try:
        outcome = []
        d = Deferred.fromCoroutine(run(env, parts, cfg))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())
        watchdog = reactor.callLater(args.max_minutes * 60, reactor.stop)
        reactor.run(installSignalHandlers=True)
        if watchdog.active():
            watchdog.cancel()
        if not outcome:
            raise SystemExit("capacity: stopped before the end (time limit or signal)")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        document.update(outcome[0])
    finally:
        common.Proc.stopAll()
        env.close()
    document["seconds"] = round(time.monotonic() - started, 1)
    common.emit(document, report(document), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
Capacity of one JobMon server per wake mode: how many TCP wake connections
it holds and at what memory cost, how many UDP re-registrations per second it
serves, how many pending HTTPS polls it holds, the round trip of a query in
each mode, and where a TCP channel's memory goes.

Each part starts its own real server (C{twistd -n jobmon-server} on
127.0.0.1, throwaway PKI) and drives it with simulated job daemons, all
using alice's proxy.  The simulated daemons live in load generator processes
(this script with C{--worker}, one Twisted reactor each, driven over a pipe
with JSON lines), because one process cannot hold both ends of 20,000
connections under a per-process limit of 20,000 descriptors:

  1. C{tcp}: in steps (1000 by default) up to C{--tcp-jobs} (20,000, capped
     at the server's descriptor limit minus 100) simulated daemons each call
     C{jobmon.registerJob} (16 calls in flight over kept-alive HTTPS
     connections), then open a TLS connection to the wake port, send
     C{hello} and wait for C{welcome} (32 handshakes in flight).  The
     server's RSS (C{/proc/PID/status}) is read after each half-step, once
     the server is idle again.  Then, with every connection open: the
     server's idle CPU, its CPU with every daemon pinging once per the
     default keep-alive (20 s), C{--queries} real queries to random jobs
     (each simulated daemon answers its wake with C{getJobToDo} and
     C{outputJobResult}), C{listJobs} (its count must be N), what happens at
     the server's descriptor limit (if the ramp was capped by it), and the
     memory left once every connection is closed.
  2. C{udp}: C{--udp-jobs} (5000) UDP jobs registered once, then registered
     again (same C{instance}: a refresh) as fast as possible for
     C{--udp-seconds} (15) with K kept-alive HTTPS connections from P
     generator processes, for each C{PxK} in C{--udp-runs}.
  3. C{poll}: C{--poll-jobs} (5000) poll jobs, each with one
     C{waitForWork} call pending on its own HTTPS connection (from this
     process), then queries to some of them.
  4. C{rt}: the round trip (C{whoami}, C{stat}) through a real job daemon in
     each mode, with L{roundtrip.measure}.  For UDP the server broadcasts to
     C{127.255.255.255:PORT} and the daemon runs under L{loopback_twistd},
     which binds its UDP socket to that address instead of every interface.
  5. C{diag}: C{--diag-jobs} (5000) channels against servers run under
     L{capacity_probe} (TLS wake port, plain TCP wake port, TLS with
     tracemalloc), comparing C heap, Python objects and RSS per registration
     and per channel; then L{tls_memory}'s per-configuration figures for one
     idle TLS connection.

Usage::

    .venv/bin/python bench/capacity.py [--quick] [--parts tcp,udp,poll,diag,rt]
        [--tcp-jobs 20000] [--tcp-step 1000] [--udp-jobs 5000]
        [--udp-seconds 15] [--udp-runs 1x1,1x4,1x16,1x32,2x16,2x32]
        [--poll-jobs 5000] [--diag-jobs 5000] [--queries 200] [-n 1000]
        [--py-spy] [--key-type ec|rsa] [--json PATH] [--keep]

C{--quick} is a smoke run (500 TCP, 500 UDP, 500 poll jobs, 3 s per run,
500 diagnosed channels, 100 round trips; about a minute).  The figures are
printed as Markdown.

Every simulated daemon and the querier connect from 127.0.0.1 as one user:
the server's per-address connection limit and per-user query rate (if this
version of the server has them) are lifted with its options, and the report
says so.  This script asks for a descriptor limit of 65,536 (children
inherit it), which only works with CAP_SYS_RESOURCE.  Every process started
is stopped at the end (SIGTERM, then SIGKILL), also on errors and Ctrl-C,
and the whole run is bounded in time (C{--max-minutes}).
"""

import argparse
import collections
import itertools
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xmlrpc.client  # noqa: E402

import common  # noqa: E402  (puts the repository root on sys.path)
from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.defer import Deferred, DeferredSemaphore  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener  # noqa: E402
from twisted.internet.protocol import Factory, ProcessProtocol  # noqa: E402
from twisted.internet.task import LoopingCall, deferLater  # noqa: E402
from twisted.logger import (  # noqa: E402
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.protocols.basic import LineOnlyReceiver, LineReceiver  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.web.client import (  # noqa: E402
    Agent,
    HTTP11ClientProtocol,
    HTTPConnectionPool,
    Request,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers  # noqa: E402
from zope.interface import implementer  # noqa: E402

from jobmon.errors import JobMonError  # noqa: E402
from jobmon.protocols.xmlrpc import XMLRPCClient, _BytesProducer, _CappedBody  # noqa: E402
from jobmon.worker.tls import CredentialPolicy  # noqa: E402

HOST = "127.0.0.1"
LOOPBACK_BROADCAST = "127.255.255.255"
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
TARGET_TCP_KB_PER_CONNECTION = 40.0
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
    "poll_jobs": 5000, "poll_step": 1000, "queries": 200, "n": 1000, "warmup": 100,
    "ping_seconds": 10.0, "pyspy_seconds": 10.0, "tcp_procs": None, "fd_edge": True,
    "udp_runs": "1x1,1x4,1x16,1x32,2x16,2x32", "diag_jobs": 5000,
    "tls_n": 2000,
}
QUICK = {
    "tcp_jobs": 500, "tcp_step": 250, "udp_jobs": 500, "udp_seconds": 3.0,
    "poll_jobs": 500, "poll_step": 250, "queries": 20, "n": 100, "warmup": 20,
    "ping_seconds": 2.0, "pyspy_seconds": 3.0, "tcp_procs": None, "fd_edge": True,
    "udp_runs": "1x1,1x4,1x16,1x32,2x16", "diag_jobs": 500,
    "tls_n": 300,
}


def say(message):
    """
    A progress line on stderr.
    """
    sys.stderr.write("capacity: {}\n".format(message))
    sys.stderr.flush()


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


def freeUDPPort():
    """
    A UDP port free on the loopback broadcast address (small race: it is
    released before the server takes it).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOOPBACK_BROADCAST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


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


BENCH_LIMITS = [
    ("max-per-peer", "1000000"),
    ("query-rate", "1000000"),
    ("query-burst", "1000000"),
]
"""Server limits raised for the benchmark, where the server has them: every
simulated daemon and the querier come from 127.0.0.1 as one user, which the
per-address connection limit and the per-user query rate are meant to stop
(a real site's daemons come from many addresses)."""


def gitCommit():
    """
    The commit of the source tree under test, with C{+changes} if JobMon's
    files differ from it (L{common.sourceVersion}).
    """
    source = common.sourceVersion()
    if source is None:
        return None
    return source["commit"] + ("+changes" if source["changed"] else "")


def limitOptions():
    """
    The command-line options that lift L{BENCH_LIMITS} on this version of
    the server (options it does not have are left out).
    """
    from jobmon.server.service import Options

    known = {p[0] for p in Options.optParameters}
    args = []
    for name, value in BENCH_LIMITS:
        if name in known:
            args += ["--" + name, value]
    return args


class Server:
    """
    A real C{twistd -n jobmon-server} for one part of the benchmark.
    """

    def __init__(self, env, name, extra, prefix=(), childEnv=None):
        self.name = name
        # The probe wrapper runs twistd itself and takes twistd's arguments.
        args = (list(prefix) if prefix else [common.TWISTD]) + common.serverArgs(
            env.hostCert, env.hostKey, env.caDir) + limitOptions() + list(extra)
        self.proc = common.Proc(
            "jobmon-server ({})".format(name), args, os.path.join(env.tmp, name + ".log"),
            env=common.childEnv(PYTHONUNBUFFERED="1", **(childEnv or {})), cwd=env.tmp,
        )
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

    def __init__(self, keyType="ec", keep=False):
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="jobmon-capacity-")
        thePKI, self.proxy = common.makePKI(self.tmp, keyType)
        self.caDir = thePKI.ca.hashedDir
        self.hostCert = thePKI.hostCertPath
        self.hostKey = thePKI.hostKeyPath
        self.policy = staticPolicy(self.caDir, self.proxy)

    def rpc(self, url, connections):
        """
        An L{XMLRPCClient} for alice (see L{makeRPC}).
        """
        return makeRPC(self.policy, url, connections)

    def endpoint(self, port):
        """
        A TLS client endpoint to C{port} with alice's proxy.
        """
        return makeEndpoint(self.policy, port)

    def close(self):
        """
        Remove the temporary directory (unless asked to keep it).
        """
        if self.keep:
            say("kept {}".format(self.tmp))
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def staticPolicy(caDir, proxy):
    """
    A L{CredentialPolicy} for C{HOST}, loaded once: a benchmark's files do
    not change while it runs.
    """
    policy = CredentialPolicy(reactor, caDir, proxy, hostnames=[HOST])
    policy.loadNow()
    return policy


def makeRPC(policy, url, connections):
    """
    An L{XMLRPCClient} whose pool keeps up to C{connections} HTTPS
    connections alive.
    """

    class QuietFactory(_HTTP11ClientFactory):
        noisy = False

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    pool.cachedConnectionTimeout = 3600
    pool._factory = QuietFactory
    agent = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=30)
    return XMLRPCClient(agent, url, pool=pool)


def makeEndpoint(policy, port):
    """
    A TLS client endpoint to C{port} on 127.0.0.1 with the policy's
    credential.
    """
    options = policy.creatorForNetloc(HOST.encode("ascii"), port)
    return wrapClientTLS(options, TCP4ClientEndpoint(reactor, HOST, port, timeout=30))


# Simulated daemons


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

    __slots__ = ("jobId", "instance", "token", "channel", "rpc", "counters", "fetching")

    def __init__(self, jobId, rpc, counters):
        self.jobId = jobId
        self.instance = secrets.token_hex(8)
        self.token = None
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


_PING = b'{"type":"ping"}'
_PONG = b'{"type":"pong"}'


class SimWakeChannel(LineOnlyReceiver):
    """
    A simulated daemon's end of the TCP wake channel: hello, then answer
    wakes and pings.  It pings only when told to (L{ping}).
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    def __init__(self, job):
        self.job = job
        self.welcomed = Deferred()

    def connectionMade(self):
        self.sendLine(json.dumps(
            {"type": "hello", "job_id": self.job.jobId, "token": self.job.token},
            separators=(",", ":")).encode("ascii"))

    def lineReceived(self, line):
        message = json.loads(line)
        kind = message.get("type")
        if kind == "wake":
            self.job.wake()
        elif kind == "pong":
            self.job.counters.pongs += 1
        elif kind == "ping":
            self.sendLine(_PONG)
        elif kind == "welcome":
            if not self.welcomed.called:
                self.job.channel = self
                self.welcomed.callback(self)
        elif kind == "error" and not self.welcomed.called:
            self.welcomed.errback(JobMonError(message.get("code", 400), message.get("message")))

    def ping(self):
        """
        Send a keep-alive ping.
        """
        self.sendLine(_PING)

    def connectionLost(self, reason):
        self.job.counters.lost += 1
        if self.job.channel is self:
            self.job.channel = None
        if not self.welcomed.called:
            self.welcomed.errback(reason)


class _ChannelFactory(Factory):
    noisy = False

    def __init__(self, job):
        self.job = job

    def buildProtocol(self, addr):
        return SimWakeChannel(self.job)


async def connectChannel(endpoint, job):
    """
    Open a job's wake channel and wait for the welcome.
    """
    protocol = await endpoint.connect(_ChannelFactory(job))
    d = protocol.welcomed
    d.addTimeout(60, reactor)
    return await d


@implementer(IHandshakeListener)
class PollConnection(HTTP11ClientProtocol):
    """
    An HTTPS connection of its own for one simulated poll daemon, which
    says when its TLS handshake is done.
    """

    def __init__(self):
        super().__init__()
        self.handshake = Deferred()

    def handshakeCompleted(self):
        if not self.handshake.called:
            self.handshake.callback(None)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if not self.handshake.called:
            self.handshake.errback(reason)


class _PollFactory(Factory):
    noisy = False
    protocol = PollConnection


class SimPoll:
    """
    One simulated poll daemon: a C{waitForWork} call pending on its own
    connection; when it returns work, the results are posted over the shared
    pool.
    """

    def __init__(self, job, port):
        self.job = job
        self.port = port
        self.connection = None
        self.error = None
        self.returned = Deferred()

    async def start(self, endpoint, seconds):
        """
        Connect, send the C{waitForWork} call, and return once the TLS
        handshake is done (the call is then on its way to the server).
        """
        self.connection = await endpoint.connect(_PollFactory())
        body = xmlrpc.client.dumps((self.job.jobId, seconds), "jobmon.waitForWork").encode()
        request = Request(
            b"POST", b"/RPC2",
            Headers({b"content-type": [b"text/xml"],
                     b"host": ["{}:{}".format(HOST, self.port).encode()]}),
            _BytesProducer(body), persistent=True,
        )
        responded = self.connection.request(request)
        responded.addCallback(self._response)
        responded.addErrback(self._failed)
        d = self.connection.handshake
        d.addTimeout(60, reactor)
        await d

    def _response(self, response):
        finished = Deferred()
        response.deliverBody(_CappedBody(finished, 16 * 1024 * 1024))
        finished.addCallback(self._body)
        return finished

    def _body(self, data):
        (items,), _ = xmlrpc.client.loads(data, use_builtin_types=True)
        d = Deferred.fromCoroutine(self.job.answer(items))
        d.addBoth(lambda r: self.returned.callback(len(items)) if not self.returned.called else r)
        return d

    def _failed(self, failure):
        # A poll that fails (the connection closed at the end of the run)
        # returns nothing; L{error} says why.
        self.error = failure
        if not self.returned.called:
            self.returned.callback(None)
        return None

    def close(self):
        """
        Drop the connection (the pending call is withdrawn).
        """
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.abortConnection()


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

    async def cmd_init(self, url, wake_port, ca_dir, proxy, concurrency, plain=False):
        self.url = url
        self.policy = staticPolicy(ca_dir, proxy)
        self.rpc = makeRPC(self.policy, url, concurrency)
        self.concurrency = concurrency
        self.endpoint = None
        if wake_port and plain:
            self.endpoint = TCP4ClientEndpoint(reactor, HOST, wake_port, timeout=30)
        elif wake_port:
            self.endpoint = makeEndpoint(self.policy, wake_port)
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
        self.refreshRPC = makeRPC(self.policy, self.url, k)
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

    async def cmd_exit(self):
        reactor.callLater(0.1, reactor.stop)
        return {}


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


async def startWorkers(count, env, server, wakePort, concurrency, maxMinutes, plain=False):
    """
    Start C{count} workers and initialize them for C{server}.
    """
    workers = [WorkerProcess.spawn("worker {}".format(i), maxMinutes) for i in range(count)]
    try:
        await defer.gatherResults([w.command(
            "init", url=server.url, wake_port=wakePort, ca_dir=env.caDir, proxy=env.proxy,
            concurrency=concurrency, plain=plain) for w in workers])
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


async def tcpPart(env, cfg, pyspy):
    """
    Ramp up TCP wake channels; see the module docstring.
    """
    total, step = cfg["tcp_jobs"], cfg["tcp_step"]
    procs = cfg["tcp_procs"] or max(1, -(-total // WORKER_CHANNELS))
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
    spy = None
    try:
        await rpc.call("jobmon.whoami")
        await settle(server.pid)
        out["background_cpu_percent"] = await background()
        base = server.status()
        out["idle"] = base
        say("tcp: server pid {} idle, RSS {} KiB; {} worker processes".format(
            server.pid, base["VmRSS"], procs))
        workers = await startWorkers(procs, env, server, server.ports["wake"],
                                     max(1, REGISTER_CONCURRENCY // procs), cfg["max_minutes"])
        cpu0, t0, busy0 = base["cpu"], time.monotonic(), common.machineCPU()
        workers0 = [common.cpuSeconds(w.transport.pid) for w in workers]
        self0 = time.process_time()
        done = 0
        while done < total:
            count = min(step, total - done)
            if pyspy and spy is None and done >= total // 2:
                spy = startPySpy(env, server, "tcp-ramp", cfg["pyspy_seconds"])
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
        if spy is not None:
            out["pyspy"] = finishPySpy(spy)
            spy = None

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
        out["served"] = sum(s["served"] for s in statuses)
        out["fetch_errors"] = sum(s["fetch_errors"] for s in statuses)
        say("tcp: listJobs {} (ready {}), {} channels open, {} queries answered".format(
            count, ready, out["channels_open"], out["served"]))
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
        if spy is not None:
            finishPySpy(spy)
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
    log = server.proc._text()
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


async def udpPart(env, cfg, runs, pyspy):
    """
    Register UDP jobs once, then refresh them as fast as possible with K
    connections from P worker processes, for each (P, K).
    """
    total = cfg["udp_jobs"]
    port = freeUDPPort()
    server = Server(env, "udp", [
        "--udp-broadcast", "{}:{}".format(LOOPBACK_BROADCAST, port),
        "--reregister-interval", "3600", "--cleanup-interval", "3600"])
    out = {"jobs": total, "udp_port": port, "runs": []}
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
        if pyspy:
            spy = startPySpy(env, server, "udp-refresh", cfg["pyspy_seconds"])
            run = await refreshRun(server, workers[:1], 16, cfg["pyspy_seconds"] + 1.0)
            run["note"] = "under py-spy (not a throughput figure)"
            out["pyspy_run"] = run
            out["pyspy"] = finishPySpy(spy)
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
    polls = []
    try:
        await rpc.call("jobmon.whoami")
        await settle(server.pid)
        base = server.status()
        out["idle"] = base
        endpoint = env.endpoint(server.ports["https"])
        t0 = time.monotonic()
        while len(polls) < total:
            batch = [SimJob("cap.poll.{:06d}".format(i), rpc, counters)
                     for i in range(len(polls), min(total, len(polls) + step))]
            _, failed = await bounded(
                REGISTER_CONCURRENCY,
                [lambda j=j: Deferred.fromCoroutine(j.register("poll")) for j in batch])
            if failed:
                raise RuntimeError("{} poll registrations failed, first: {}".format(
                    len(failed), failed[0].getErrorMessage()))
            await settle(server.pid)
            registered = server.status()
            sims = [SimPoll(j, server.ports["https"]) for j in batch]
            s0, c0 = time.monotonic(), common.cpuSeconds(server.pid)
            _, failed = await bounded(
                CONNECT_CONCURRENCY,
                [lambda p=p: Deferred.fromCoroutine(p.start(endpoint, 600.0)) for p in sims])
            polls.extend(sims)
            if failed:
                raise RuntimeError("{} polls failed at {}, first: {}".format(
                    len(failed), len(polls), failed[0].getErrorMessage()))
            await settle(server.pid)
            pending = server.status()
            s1 = time.monotonic()
            n = len(polls)
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
        for p in random.sample(polls, min(cfg["queries"], len(polls))):
            latencies.append(await query(rpc, p.job.jobId))
        out["queries"] = common.summarize(latencies)
        out["still_pending"] = sum(1 for p in polls if not p.returned.called)
        out["poll_errors"] = sum(1 for p in polls if p.error is not None)
        say("poll: listJobs {} (ready {}), {} queries answered, {} polls pending".format(
            count, ready, counters.served, out["still_pending"]))
    finally:
        await rpc.close()
        for p in polls:
            p.close()
        server.stop()
    return out


# Diagnosis: where a TCP channel's memory goes


def proxyDN(path):
    """
    The DN a server sees for the proxy file C{path}.
    """
    from cryptography import x509

    from jobmon.server.identity import identityFromChain

    with open(path, "rb") as f:
        certs = x509.load_pem_x509_certificates(f.read())
    return identityFromChain(certs).dn


async def probeDump(server, statsPath, label):
    """
    Ask a probed server for its memory figures (SIGUSR1) and return them.
    """
    def lines():
        try:
            with open(statsPath) as f:
                return f.read().splitlines()
        except OSError:
            return []

    before = len(lines())
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await sleep(0.1)
        got = lines()
        if len(got) > before:
            record = json.loads(got[before])
            record["label"] = label
            return record
    raise RuntimeError("the probed server did not dump its figures")


DIAG_VARIANTS = [
    ("tls", "-"),
    ("plain", "plainwake"),
    ("tls-tracemalloc", "tracemalloc"),
]
"""(name, capacity_probe variants) of the diagnostic runs."""

DIAG_METRICS = ("VmRSS", "RssAnon", "VmRSS_after_trim", "heap_in_use", "heap_free",
                "pymalloc_blocks", "gc_objects", "traced", "traced_small", "traced_large")


async def diagPart(env, cfg):
    """
    Ramp to C{diag_jobs} channels in one step against probed servers (TLS
    wake port, plain wake port, TLS with tracemalloc) and compare the
    memory figures per registration and per channel.
    """
    n = cfg["diag_jobs"]
    dn = proxyDN(env.proxy)
    out = {"jobs": n, "runs": {}}
    for name, variants in DIAG_VARIANTS:
        stats = os.path.join(env.tmp, "diag-{}.stats".format(name))
        server = Server(
            env, "diag-" + name, ["--keepalive", "3600", "--connect-grace", "600"],
            prefix=[sys.executable, os.path.join(common.BENCH, "capacity_probe.py"),
                    variants, stats, "--"],
            childEnv={"PROBE_DN": dn})
        rpc = env.rpc(server.url, 2)
        workers = []
        dumps = []
        try:
            await rpc.call("jobmon.whoami")
            workers = await startWorkers(1, env, server, server.ports["wake"],
                                         REGISTER_CONCURRENCY, cfg["max_minutes"],
                                         plain=(name == "plain"))
            await settle(server.pid)
            dumps.append(await probeDump(server, stats, "idle"))
            checkReplies(await allOf(workers, "register", mode="tcp", start=0, count=n),
                         "registrations")
            await settle(server.pid)
            dumps.append(await probeDump(server, stats, "registered"))
            checkReplies(await allOf(workers, "connect", concurrency=CONNECT_CONCURRENCY),
                         "wake connections")
            await settle(server.pid)
            dumps.append(await probeDump(server, stats, "connected"))
            await allOf(workers, "close")
            await settle(server.pid, limit=60)
            dumps.append(await probeDump(server, stats, "closed"))
        finally:
            await rpc.close()
            await stopWorkers(workers)
            server.stop()
        idle, registered, connected, closed = dumps

        def per(a, b):
            return {m: round((b[m] - a[m]) / n, 1) for m in DIAG_METRICS
                    if a.get(m) is not None and b.get(m) is not None}

        run = {
            "dumps": dumps,
            "per_registration": per(idle, registered),
            "per_channel": per(registered, connected),
            "per_job_after_close": per(idle, closed),
            "types_grown": connected.get("types_grown"),
            "lines_grown": connected.get("lines_grown"),
        }
        out["runs"][name] = run
        say("diag {}: per channel {} B RSS, {} B C heap in use, {} pymalloc blocks".format(
            name, round(1024 * run["per_channel"]["VmRSS"]),
            run["per_channel"].get("heap_in_use"), run["per_channel"].get("pymalloc_blocks")))
    return out


# Part 4: round trips through a real daemon, per mode


def rtWrapper(mode):
    """
    A L{common.BenchEnv} wrapper: the server's limits lifted as for the
    other parts; for UDP, the server broadcasts wakes to
    C{127.255.255.255:PORT} and the daemon runs under L{loopback_twistd}.
    """
    extra = limitOptions()
    if mode == "udp":
        extra += ["--udp-broadcast", "{}:{}".format(LOOPBACK_BROADCAST, freeUDPPort())]

    def wrapper(role, args, tmp):
        if role == "server":
            return [common.TWISTD] + args + extra
        if mode == "udp":
            return [sys.executable, os.path.join(common.BENCH, "loopback_twistd.py")] + args
        return [common.TWISTD] + args

    return wrapper


def roundTrips(cfg):
    """
    C{whoami} and C{stat} round trips through a real daemon in each wake
    mode (blocking: runs before the reactor).
    """
    import roundtrip

    results = {}
    common.WAKE_READY.setdefault("udp", r"listening for UDP wakes on port")
    for mode in ("tcp", "udp", "poll"):
        wrapper = rtWrapper(mode)

        say("round trips, {} wake".format(mode))
        with common.BenchEnv(wake=mode, wrapper=wrapper, quiet=True) as env:
            results[mode] = roundtrip.measure(
                env, cfg["n"], cfg["warmup"], ops=["whoami", "stat"], progress=False)
    return results


# py-spy


def startPySpy(env, server, label, seconds, rate=200):
    """
    Start C{py-spy record -f raw} on the server for C{seconds}.
    """
    out = os.path.join(env.tmp, label + ".pyspy")
    proc = common.startPySpy(server.pid, out, seconds, rate, "py-spy " + label)
    if proc is None:
        say("py-spy not found: no profile")
        return None
    return proc, out, label


def finishPySpy(spy):
    """
    Wait for py-spy and summarize its profile (categories, leaf functions
    and the JobMon or Twisted functions with the most samples below them).
    """
    if spy is None:
        return None
    import breakdown

    proc, out, label = spy
    try:
        proc.popen.wait(60)
    except Exception:
        pass
    proc.stop()
    if not os.path.exists(out):
        return {"error": proc.output()}
    summary = breakdown.summarizeProfile(out, top=15)
    summary["inclusive"] = inclusiveProfile(out)
    keep = os.path.join(common.BENCH, "out", "capacity-{}.pyspy.txt".format(label))
    try:
        shutil.copy(out, keep)
        summary["file"] = os.path.relpath(keep, common.ROOT)
    except OSError:
        pass
    return summary


_PLUMBING = (
    "twisted/scripts/", "twisted/application/", "twisted/internet/base.py",
    "epollreactor.py", "twisted/python/log.py", "twisted/python/context.py",
    "posixbase.py", "<module>", "twisted/internet/tcp.py", "twisted/protocols/policies.py",
    "twisted/internet/defer.py",
)
"""Frames on (nearly) every stack: left out of the inclusive profile."""


def inclusiveProfile(path, top=20):
    """
    Share of samples with each function anywhere on the stack, leaving out
    the reactor's own frames (L{_PLUMBING}).
    """
    counts = collections.Counter()
    total = 0
    for frames, count in common.pyspyStacks(path):
        total += count
        for frame in set(frames):
            if not any(p in frame for p in _PLUMBING):
                counts[frame] += count
    return [(k, round(100.0 * v / total, 1)) for k, v in counts.most_common(top)] if total else []


# Report


def report(doc):
    """
    The results as Markdown.
    """
    parts = ["Source: commit {}; server limits lifted for the benchmark: `{}`.".format(
        doc.get("commit"), " ".join(doc.get("server_options") or []) or "none")]
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
    rt = doc.get("rt")
    if rt:
        rows = []
        for mode in ("tcp", "udp", "poll"):
            r = rt.get(mode)
            if not r:
                continue
            for op in ("whoami", "stat"):
                s = r[op]
                rows.append([mode, op, s["n"], s["p50_ms"], s["p90_ms"], s["p99_ms"],
                             s["max_ms"], s["cpu_ms_per_query"].get("server", "-"),
                             s["cpu_ms_per_query"].get("daemon", "-") if op != "whoami" else "-"])
        parts.append("### Round trips per mode (real daemon)\n\n" + common.markdownTable(
            ["mode", "op", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "server CPU ms/q",
             "daemon CPU ms/q"], rows))
    diag = doc.get("diag")
    if diag:
        parts.append(diagReport(diag))
    for key in ("tcp", "udp"):
        prof = (doc.get(key) or {}).get("pyspy")
        if prof and prof.get("samples"):
            text = "### py-spy: server during {}\n\n".format(
                "the TCP ramp" if key == "tcp" else "UDP refreshes (K=16)")
            text += common.markdownTable(["category", "samples", "%"], prof["categories"])
            text += "\n\n" + common.markdownTable(["leaf function", "samples", "%"],
                                                   prof["leaves"])
            text += "\n\n" + common.markdownTable(["on the stack", "%"], prof["inclusive"])
            parts.append(text)
    return "\n\n".join(parts)


def diagReport(diag):
    """
    The memory diagnosis as Markdown.
    """
    n = diag["jobs"]
    rows = []
    for name, run in diag["runs"].items():
        for what in ("per_registration", "per_channel"):
            d = run[what]
            rows.append([name, what.replace("per_", ""), round(d["VmRSS"] * 1024),
                         round(d.get("heap_in_use", 0)), d.get("pymalloc_blocks", "-"),
                         d.get("gc_objects", "-"),
                         round(d["traced"]) if "traced" in d else "-"])
    text = ("### Where a TCP channel's memory goes\n\n{} jobs registered, then {} channels "
            "connected, against a server run under `bench/capacity_probe.py` (figures per job "
            "or channel; C heap = glibc `mallinfo2` bytes in use; traced = tracemalloc, "
            "Python allocations).\n\n".format(n, n))
    text += common.markdownTable(
        ["server", "step", "RSS bytes", "C heap bytes", "pymalloc blocks", "gc objects",
         "Python bytes traced"], rows)
    tls = diag["runs"].get("tls")
    if tls and tls.get("types_grown"):
        text += "\n\nPython objects per job, registration and channel (TLS server):\n\n"
        text += common.markdownTable(
            ["type", "per job"],
            [[t, round(c / float(n), 2)] for t, c in tls["types_grown"][:16]])
    traced = diag["runs"].get("tls-tracemalloc")
    if traced and traced.get("lines_grown"):
        text += ("\n\nPython allocations that grew most, registration and channel "
                 "(tracemalloc):\n\n")
        text += common.markdownTable(
            ["source line", "bytes per job", "blocks per job"],
            [[line.replace(common.ROOT + "/", "").replace(
                os.path.dirname(os.__file__) + "/", ""),
              round(size / float(n)), round(count / float(n), 2)]
             for line, size, count in traced["lines_grown"][:16]])
    if diag.get("tls_memory"):
        import tls_memory

        text += ("\n\nOne idle server-side TLS connection, by configuration "
                 "(`bench/tls_memory.py`, pyOpenSSL in memory, {} connections "
                 "each):\n\n".format(diag["tls_memory"][0]["n"]))
        text += tls_memory.table(diag["tls_memory"])
    return text


async def run(env, args, cfg, runs):
    doc = {}
    parts = args.parts
    if "tcp" in parts:
        doc["tcp"] = await tcpPart(env, cfg, args.pyspy)
    if "udp" in parts:
        doc["udp"] = await udpPart(env, cfg, runs, args.pyspy)
    if "poll" in parts:
        doc["poll"] = await pollPart(env, cfg)
    if "diag" in parts:
        doc["diag"] = await diagPart(env, cfg)
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--parts", default="tcp,udp,poll,diag,rt",
                        help="comma-separated subset of tcp,udp,poll,diag,rt (all)")
    parser.add_argument("--tcp-jobs", type=int, help="TCP channels (20000)")
    parser.add_argument("--tcp-step", type=int, help="channels per step (1000)")
    parser.add_argument("--tcp-procs", type=int,
                        help="load generator processes for TCP (one per {})".format(
                            WORKER_CHANNELS))
    parser.add_argument("--no-fd-edge", dest="fd_edge", action="store_false", default=None,
                        help="do not probe the server's descriptor limit")
    parser.add_argument("--udp-jobs", type=int, help="UDP jobs (5000)")
    parser.add_argument("--udp-seconds", type=float, help="seconds per UDP run (15)")
    parser.add_argument("--udp-runs",
                        help="UDP runs as PROCSxK, comma-separated (1x1,1x4,1x16,1x32,2x16,2x32)")
    parser.add_argument("--poll-jobs", type=int, help="pending polls (5000)")
    parser.add_argument("--poll-step", type=int, help="polls per step (1000)")
    parser.add_argument("--queries", type=int, help="queries to simulated jobs (200)")
    parser.add_argument("--ping-seconds", type=float, help="seconds of ping load (10)")
    parser.add_argument("--diag-jobs", type=int,
                        help="channels per diagnostic run (5000; part diag)")
    parser.add_argument("-n", type=int, help="round trips per op and mode (1000)")
    parser.add_argument("--warmup", type=int, help="untimed round trips first (100)")
    parser.add_argument("--py-spy", dest="pyspy", action="store_true",
                        help="profile the server during the TCP ramp and UDP refreshes")
    parser.add_argument("--pyspy-seconds", type=float)
    parser.add_argument("--key-type", choices=("ec", "rsa"), default="ec",
                        help="key type of the throwaway PKI (ec)")
    parser.add_argument("--max-minutes", type=float, default=40.0,
                        help="stop everything after this long (40)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return workerMain(args.max_minutes)
    cfg = dict(QUICK if args.quick else FULL)
    for key in cfg:
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = value
    cfg["max_minutes"] = args.max_minutes
    args.parts = set(args.parts.split(","))
    if not args.parts <= {"tcp", "udp", "poll", "rt", "diag"}:
        parser.error("--parts: choose among tcp,udp,poll,rt,diag")
    try:
        runs = [tuple(int(x) for x in r.split("x")) for r in cfg["udp_runs"].split(",")]
    except ValueError:
        parser.error("--udp-runs: PROCSxK,...")
    if not (1 <= cfg["tcp_jobs"] <= 60000 and 1 <= cfg["udp_jobs"] <= 100000
            and 1 <= cfg["poll_jobs"] <= 15000 and 0 < cfg["udp_seconds"] <= 300
            and all(len(r) == 2 and 1 <= r[0] <= 4 and r[0] <= r[1] <= 256 for r in runs)
            and 0 <= cfg["queries"] <= 100000 and cfg["tcp_step"] >= 1
            and cfg["poll_step"] >= 1 and 0 < args.max_minutes <= 180
            and (cfg["tcp_procs"] is None or 1 <= cfg["tcp_procs"] <= 8)):
        parser.error("sizes out of range")
    limit = raiseFdLimit()
    if "poll" in args.parts and limit < cfg["poll_jobs"] + 500:
        parser.error("the file descriptor limit is {}: too low for {} polls".format(
            limit, cfg["poll_jobs"]))
    common.installSignalHandlers()
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)

    document = {"benchmark": "capacity", "machine": common.machine(), "config": cfg,
                "key_type": args.key_type, "fd_limit": limit,
                "server_options": limitOptions(),
                "commit": gitCommit()}
    started = time.monotonic()
    env = Env(args.key_type, keep=args.keep)
    try:
        if args.parts & {"tcp", "udp", "poll", "diag"}:
            outcome = []
            d = Deferred.fromCoroutine(run(env, args, cfg, runs))
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
        if "diag" in args.parts:
            import tls_memory

            say("diag: TLS memory per configuration")
            document["diag"]["tls_memory"] = tls_memory.run(cfg["tls_n"], keyType=args.key_type)
        if "rt" in args.parts:
            document["rt"] = roundTrips(cfg)
    finally:
        common.Proc.stopAll()
        env.close()
    document["seconds"] = round(time.monotonic() - started, 1)
    common.emit(document, report(document), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

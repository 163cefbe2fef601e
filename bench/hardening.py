"""
JobMon under attack: a well-behaved client during floods of malformed
requests and of refused TLS handshakes, and the server's memory after many
queries.

  1. C{flood}: one real server and one daemon (TCP wake), from
     L{common.BenchEnv}.  A well-behaved in-process
     L{jobmon.client.JobMonClient} (one kept-alive connection) makes C{stat}
     queries for C{--seconds} (10); every second it also reconnects another
     client and times its first C{whoami} (TCP connect, TLS handshake and
     call), which is what a new user or daemon meets.  That is measured:

       - alone (the baseline);
       - during a flood of malformed requests from C{P} processes with C{K}
         kept-alive TLS connections each (C{--flood 2x4}), made with a valid
         proxy of another user of the same CA (mallory), each connection
         sending one request after the other as fast as it can, cycling
         through: random bytes, truncated XML-RPC calls, an entity bomb
         (a DTD with nested entities), 2000-deep nesting, a body above the
         server's C{--max-body} (16 MiB + 1 byte, sent whole: the server
         counts it as it arrives and drops it) and calls of unknown
         methods.  Every answer is checked (fault 400, or 413 for the
         oversized body);
       - during the same flood without the oversized body (the five small
         kinds: the highest request rate);
       - during a flood of TLS handshakes that fail: C{P} processes of C{K}
         threads each connect with a self-signed certificate (not from the
         server's CA), finish the client's side of the TLS 1.3 handshake,
         read the server's refusal and close, over and over.

     Before the measured runs each kind of malformed request, and refused
     handshakes with a self-signed certificate and with none, flood the
     server alone for C{--kind-seconds} (3), to give the server's CPU cost
     per request of each kind.  The report gives the good client's rate and
     latencies, the flood's request rate, the server's CPU (percent of one
     CPU and milliseconds per flood request, which does not depend on the
     generators), its RSS before, during and after, its descriptors, what
     the flood made the server write to its log and audit trail (with
     the audit records per event at the end), and
     whether it stayed responsive: every good query answered correctly and
     the good client's p99 under L{RESPONSIVE_P99_MS}, reconnections
     included.
  2. C{memory}: a fresh server and daemon; C{--queries} (1,000,000)
     queries from C{--clients} (3) client processes, each making one
     C{stat} (through the daemon) for every C{--stat-every} - 1 (9)
     C{jobmon.whoami} (the server alone), until the count is reached or
     C{--memory-minutes} (11) pass; if at that rate fewer than
     C{--min-stat} (100,000) C{stat} queries would be made, the clients
     are told to make them more often.  Every C{--sample-every} (50,000)
     queries the server's and the daemon's C{VmRSS} are read.  Memory is
     called flat when the server's RSS grew by less than L{FLAT_KIB} from
     the first sample after warm-up (the first C{--sample-every} queries)
     to the last.

Usage::

    .venv/bin/python bench/hardening.py [--quick] [--parts flood,memory,sustain]
        [--seconds 10] [--kind-seconds 3] [--flood 2x4] [--handshakes 2x4]
        [--queries 1000000] [--clients 3] [--stat-every 10] [--min-stat 100000]
        [--sample-every 50000] [--memory-minutes 11] [--sustain-seconds 120]
        [--json [PATH]]

C{--parts sustain} (not run by default) floods a fresh server for
C{--sustain-seconds} (120) with refused handshakes, then another with the
five small malformed kinds, and reads the server's RSS every 10 s: whether
memory grown during a flood levels off.

C{--quick} is a smoke run (about 30 s: 1.5 s windows, 0.5 s per kind,
10,000 queries sampled every 2,000).  The report is Markdown; C{--json}
prints JSON instead (or, with a PATH, writes it there as well).

The flood and client processes are this script's own (C{multiprocessing},
spawned, each with a deadline and killed with its parent).  The floods
speak HTTP and TLS over raw sockets: the product's client cannot send
malformed requests or present a certificate of an unknown CA, and is not
meant to.  The memory part's clients are the product's
L{jobmon.client.JobMonClient}.  Every process
started is stopped at the end (SIGTERM, then SIGKILL), also on errors and
Ctrl-C (SIGTERM too).  The server is started with a huge C{--query-rate} (see
L{common.BenchEnv}), so the per-user rate limit plays no part: malformed
requests never reach it anyway, and refused handshakes never reach HTTP.
"""

import argparse
import collections
import json
import multiprocessing
import os
import queue
import random
import re
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets sys.path for jobmon)
from common import JOB_ID, machineCPU, mib, procStatus, say  # noqa: E402

RESPONSIVE_P99_MS = 100.0
"""The good client's p99 (queries and reconnections) under which the server
is called responsive, if no good query failed."""

FLAT_KIB = 4096
"""RSS growth after warm-up under which the server's memory is called
flat."""

MAX_BODY = 16 * 1024 * 1024
"""The server's default C{--max-body}, which the oversized body exceeds by
one byte."""

KINDS = ["random", "truncated", "entities", "deep", "oversized", "unknown"]
"""The malformed requests, in the order a flooding connection cycles
through them."""

KIND_TEXT = {
    "random": "2 KiB of random bytes",
    "truncated": "a stat call cut short (well-formed HTTP, truncated XML)",
    "entities": "entity bomb: DTD with 10 levels of 10 nested entities",
    "deep": "2000-deep <array><data><value> nesting (44 KB)",
    "oversized": "Content-Length 16 MiB + 1, body sent whole",
    "unknown": "a well-formed call of an unknown method",
}

EXPECTED = {kind: 400 for kind in KINDS}
EXPECTED["oversized"] = 413

# Slots of a flooding thread's counters: one per kind (answered with the
# expected fault), then these.
UNEXPECTED = len(KINDS)
ERRORS = UNEXPECTED + 1
RECONNECTS = UNEXPECTED + 2
SLOTS = UNEXPECTED + 3

# Slots of a handshake thread's counters.
HS_REFUSED, HS_ACCEPTED, HS_ERRORS = 0, 1, 2

FULL = {
    "seconds": 10.0,
    "kind_seconds": 3.0,
    "ramp": 1.0,
    "queries": 1_000_000,
    "sample_every": 50_000,
    "memory_minutes": 11.0,
    "min_stat": 100_000,
    "sustain_seconds": 120.0,
}
QUICK = {
    "seconds": 1.5,
    "kind_seconds": 0.5,
    "ramp": 0.3,
    "queries": 10_000,
    "sample_every": 2_000,
    "memory_minutes": 1.0,
    "min_stat": 1_000,
    "sustain_seconds": 3.0,
}


# --- process figures ---------------------------------------------------------


def fileSize(path):
    """
    The size of C{path} in bytes, 0 if it does not exist.
    """
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def auditBytes(directory):
    """
    Bytes of the server's audit trail (current and rotated files) in its
    working directory C{directory}.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    return sum(
        fileSize(os.path.join(directory, n)) for n in names if n.startswith("jobmon-audit.jsonl")
    )


# --- malformed requests ------------------------------------------------------


def makeBodies(seed=1):
    """
    The request bodies of each kind: a few variants of each (the oversized
    one is a single buffer, sent as is).

    @return: a dict from kind to a list of bytes.
    """
    import xmlrpc.client

    rnd = random.Random(seed)
    call = xmlrpc.client.dumps(
        (JOB_ID, {"op": "stat", "path": "job.log", "timeout": 5.0}), "jobmon.query"
    ).encode("utf-8")
    entities = [b'<!ENTITY e0 "lollollollollollollollollollol">']
    for i in range(1, 10):
        entities.append(
            '<!ENTITY e{} "{}">'.format(i, "&e{};".format(i - 1) * 10).encode("ascii")
        )
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE methodCall [\n'
        + b"\n".join(entities)
        + b"\n]>\n<methodCall><methodName>jobmon.whoami</methodName><params><param>"
        b"<value><string>&e9;</string></value></param></params></methodCall>"
    )
    depth = 2000
    deep = (
        b"<?xml version='1.0'?>\n<methodCall><methodName>jobmon.whoami</methodName>"
        b"<params><param><value>"
        + b"<array><data><value>" * depth
        + b"<int>1</int>"
        + b"</value></data></array>" * depth
        + b"</value></param></params></methodCall>"
    )
    return {
        "random": [bytes(rnd.getrandbits(8) for _ in range(2048)) for _ in range(8)],
        "truncated": [call[: rnd.randrange(40, len(call) - 20)] for _ in range(16)],
        "entities": [bomb],
        "deep": [deep],
        "oversized": [bytes(MAX_BODY + 1)],
        "unknown": [
            xmlrpc.client.dumps(({"n": i},), "jobmon.noSuchMethod{}".format(i)).encode("utf-8")
            for i in range(8)
        ],
    }


_FAULT = re.compile(rb"faultCode</name>\s*<value>\s*<(?:int|i4)>(-?\d+)<")


class _Response:
    """
    Reads HTTP/1.1 responses from a socket, one after the other: a flooding
    connection checks every answer (fault 400 or 413) at the least cost to
    the machine the server shares.
    """

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buffer += data

    def _line(self):
        while b"\r\n" not in self.buffer:
            self._more()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buffer) < n:
            self._more()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read(self):
        """
        Read one response.

        @return: C{(status, headers, body)}; header names lower-cased.
        """
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                parts.append(self._exactly(size))
                self._exactly(2)
            body = b"".join(parts)
        else:
            body = self._exactly(int(headers.get(b"content-length", b"0")))
        return status, headers, body


def _reap(process, timeout):
    """
    Wait up to C{timeout} seconds for a started C{multiprocessing} process
    to end, then SIGTERM it, then SIGKILL it.
    """
    if process.pid is None:
        return
    process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join(3)
    if process.is_alive():
        process.kill()
        process.join(3)


def _clientContext(certPath):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The attacker does not care who the server is.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if certPath is not None:
        ctx.load_cert_chain(certPath)
    return ctx


def _malformedThread(host, port, ctx, kinds, bodies, counts, base, offset, stopAt, stop,
                     samples):
    header = (
        "POST /RPC2 HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/xml\r\n"
        "Content-Length: {{}}\r\n\r\n".format(host, port)
    )
    conn = reader = None
    i = offset
    while not stop.is_set() and time.monotonic() < stopAt:
        if conn is None:
            try:
                raw = socket.create_connection((host, port), timeout=30)
                conn = ctx.wrap_socket(raw)
                reader = _Response(conn)
                counts[base + RECONNECTS] += 1
            except (OSError, ssl.SSLError) as e:
                counts[base + ERRORS] += 1
                if len(samples) < 5:
                    samples.append("connect: {}".format(e))
                conn = None
                time.sleep(0.05)
                continue
        kind = kinds[i % len(kinds)]
        variants = bodies[kind]
        body = variants[(i // len(kinds)) % len(variants)]
        i += 1
        try:
            head = header.format(len(body)).encode("ascii")
            if len(body) > 65536:
                conn.sendall(head)
                conn.sendall(memoryview(body))
            else:
                conn.sendall(head + body)
            status, headers, answer = reader.read()
        except (OSError, ssl.SSLError, EOFError, ValueError, IndexError) as e:
            counts[base + ERRORS] += 1
            if len(samples) < 5:
                samples.append("{}: {}".format(kind, e))
            try:
                conn.close()
            except OSError:
                pass
            conn = None
            continue
        match = _FAULT.search(answer)
        code = int(match.group(1)) if match else None
        if status == 200 and code == EXPECTED[kind]:
            counts[base + KINDS.index(kind)] += 1
        else:
            counts[base + UNEXPECTED] += 1
            if len(samples) < 5:
                samples.append("{}: HTTP {} {!r}".format(kind, status, answer[:200]))
        if headers.get(b"connection", b"").lower() == b"close":
            conn.close()
            conn = None
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _handshakeThread(host, port, ctx, counts, base, stopAt, stop, samples):
    while not stop.is_set() and time.monotonic() < stopAt:
        try:
            raw = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            counts[base + HS_ERRORS] += 1
            if len(samples) < 5:
                samples.append("connect: {}".format(e))
            time.sleep(0.05)
            continue
        try:
            conn = ctx.wrap_socket(raw)
            try:
                # TLS 1.3: the client's side of the handshake is done; the
                # server checks the certificate and answers with an alert.
                data = conn.recv(1)
            finally:
                conn.close()
            if data:
                counts[base + HS_ACCEPTED] += 1
            else:
                counts[base + HS_REFUSED] += 1
        except ssl.SSLError as e:
            counts[base + HS_REFUSED] += 1
            if len(samples) < 2:
                samples.append("refused: {}".format(e))
        except OSError as e:
            # A time-out here means the server took the certificate.
            counts[base + (HS_ACCEPTED if isinstance(e, socket.timeout) else HS_ERRORS)] += 1
            if len(samples) < 5:
                samples.append("{}: {}".format(type(e).__name__, e))
        finally:
            raw.close()


def floodWorker(mode, host, port, certPath, kinds, threads, counts, stop, stopAt, results):
    """
    One flooding process (spawned): C{threads} threads flood C{host:port}
    until C{stop} is set or the monotonic time C{stopAt} passes, counting
    into the shared array C{counts} (L{SLOTS} per thread), then put a
    summary on the queue C{results}.

    @param mode: C{"malformed"} (kept-alive connections sending the
        C{kinds} of requests in turn) or C{"handshake"} (handshakes with a
        certificate the server refuses).
    """
    common.dieWithParent()
    stopAt = min(stopAt, time.monotonic() + 3600)
    ctx = _clientContext(certPath)
    bodies = makeBodies() if mode == "malformed" else None
    samples = []
    workers = []
    for t in range(threads):
        if mode == "malformed":
            target = _malformedThread
            args = (host, port, ctx, kinds, bodies, counts, t * SLOTS, t, stopAt, stop, samples)
        else:
            target = _handshakeThread
            args = (host, port, ctx, counts, t * SLOTS, stopAt, stop, samples)
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        workers.append(thread)
    for thread in workers:
        thread.join(max(0.0, stopAt - time.monotonic()) + 60)
    results.put({"pid": os.getpid(), "samples": samples})


class Flood:
    """
    C{procs} flooding processes of C{threads} threads each.
    """

    def __init__(self, mode, host, port, certPath, procs, threads, kinds=KINDS, limit=600.0):
        self.mode = mode
        self.procs = procs
        self.threads = threads
        self._mp = multiprocessing.get_context("spawn")
        self.stopEvent = self._mp.Event()
        self.results = self._mp.Queue()
        self.arrays = []
        self.processes = []
        stopAt = time.monotonic() + limit
        for _ in range(procs):
            counts = self._mp.RawArray("q", threads * SLOTS)
            p = self._mp.Process(
                target=floodWorker,
                args=(mode, host, port, certPath, list(kinds), threads, counts,
                      self.stopEvent, stopAt, self.results),
                daemon=True,
            )
            self.arrays.append(counts)
            self.processes.append(p)

    def start(self):
        """
        Start the processes.
        """
        for p in self.processes:
            p.start()

    def counts(self):
        """
        The counters summed over every thread: a list of L{SLOTS} integers.
        """
        total = [0] * SLOTS
        for counts in self.arrays:
            values = list(counts)
            for t in range(self.threads):
                for s in range(SLOTS):
                    total[s] += values[t * SLOTS + s]
        return total

    def cpu(self):
        """
        CPU seconds used so far by the flooding processes.
        """
        return sum(common.cpuSeconds(p.pid) or 0.0 for p in self.processes if p.pid)

    def stop(self):
        """
        Stop the processes (their event, then SIGTERM, then SIGKILL).

        @return: their error samples.
        """
        self.stopEvent.set()
        samples = []
        deadline = time.monotonic() + 15
        for _ in self.processes:
            try:
                samples.extend(self.results.get(timeout=max(0.1, deadline - time.monotonic()))[
                    "samples"])
            except queue.Empty:
                break
        for p in self.processes:
            _reap(p, max(0.1, deadline - time.monotonic()))
        return samples


# --- the well-behaved client -------------------------------------------------


def goodClient(env, seconds, probeEvery=1.0, maxQueries=1_000_000):
    """
    C{stat} queries on one kept-alive connection for C{seconds}; every
    C{probeEvery} seconds, a second client reconnects and times its first
    C{whoami}.

    @return: a dict: the queries' summary (L{common.summarize}), their rate,
        failures by code, the reconnections' summary and failures.
    """
    from jobmon.errors import JobMonError

    client = env.client(timeout=30.0)
    probe = env.client(timeout=30.0)
    durations, probes = [], []
    failed, probeFailed = collections.Counter(), collections.Counter()
    wrong = 0
    clock = time.perf_counter
    try:
        client.stat(JOB_ID, "job.log")
        probe.whoami()
        start = clock()
        deadline = start + seconds
        nextProbe = start
        while clock() < deadline and len(durations) < maxQueries:
            if clock() >= nextProbe:
                nextProbe += probeEvery
                probe.close()
                t0 = clock()
                try:
                    probe.whoami()
                except JobMonError as e:
                    probeFailed[e.code] += 1
                probes.append(clock() - t0)
            t0 = clock()
            try:
                result = client.stat(JOB_ID, "job.log")
                if result.get("size") != common.LOG_SIZE:
                    wrong += 1
            except JobMonError as e:
                failed[e.code] += 1
            durations.append(clock() - t0)
        elapsed = clock() - start
    finally:
        client.close()
        probe.close()
    summary = common.summarize(durations)
    summary["qps"] = round(len(durations) / elapsed, 1)
    summary["failed"] = dict(failed)
    summary["wrong"] = wrong
    summary["reconnect"] = common.summarize(probes)
    summary["reconnect"]["failed"] = dict(probeFailed)
    return summary


# --- part 1: floods ------------------------------------------------------------


def makeCredentials(env):
    """
    Mallory's proxy (a user of the server's CA) and a self-signed
    certificate (a CA of its own, unknown to the server).

    @return: C{(malloryProxy, selfSignedPEM)}.
    """
    from jobmon.devtools import pki

    ca = pki.loadCA(os.path.join(env.tmp, "pki"))
    d = os.path.join(env.tmp, "mallory")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "usercert.pem"), os.path.join(d, "userkey.pem")
    pki.makeUserCert(ca, cert, key, "Mallory Example")
    proxy = os.path.join(d, "x509up_mallory")
    pki.makeProxy(cert, key, proxy)
    rogue = pki.makeCA(os.path.join(env.tmp, "rogue"), name="Mallory Rogue CA")
    selfSigned = os.path.join(d, "selfsigned.pem")
    with open(selfSigned, "wb") as out:
        for path in (rogue.certPath, rogue.keyPath):
            with open(path, "rb") as f:
                out.write(f.read())
    return proxy, selfSigned


def waitForActivity(flood, limit=30.0):
    """
    Wait until the flood's processes have started and count something (at
    most C{limit} seconds).
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not any(flood.counts()):
        time.sleep(0.05)


def runWindow(env, flood, seconds, ramp, good):
    """
    Run C{flood} (or nothing) for C{ramp} seconds, then measure for
    C{seconds}: with the good client if C{good}, else idle.

    @return: a dict of figures.
    """
    pid = env.server.pid
    before = procStatus(pid)
    log0, audit0 = fileSize(env.server.logPath), auditBytes(env.tmp)
    samples = []
    stopped = False
    if flood is not None:
        flood.start()
    try:
        if flood is not None:
            waitForActivity(flood)
            time.sleep(ramp)
        c0 = flood.counts() if flood else None
        s0, d0, b0 = procStatus(pid)["cpu"], common.cpuSeconds(env.daemon.pid), machineCPU()[0]
        f0, m0 = (flood.cpu() if flood else 0.0), time.process_time()
        t0 = time.monotonic()
        result = {}
        if good:
            result["good"] = goodClient(env, seconds)
        else:
            time.sleep(seconds)
        elapsed = time.monotonic() - t0
        during = procStatus(pid)
        s1, d1, b1 = during["cpu"], common.cpuSeconds(env.daemon.pid), machineCPU()[0]
        f1, m1 = (flood.cpu() if flood else 0.0), time.process_time()
        c1 = flood.counts() if flood else None
        samples = flood.stop() if flood else []
        stopped = True
    finally:
        if flood is not None and not stopped:
            flood.stop()
    common.settle(pid)
    after = procStatus(pid)
    serverCPU = s1 - s0
    result.update({
        "seconds": round(elapsed, 2),
        "server_cpu_percent": round(100.0 * serverCPU / elapsed, 1),
        "daemon_cpu_percent": round(100.0 * (d1 - d0) / elapsed, 1),
        "flood_cpu_percent": round(100.0 * (f1 - f0) / elapsed, 1),
        "others_cpu_percent": round(
            100.0 * ((b1 - b0) - serverCPU - (d1 - d0) - (f1 - f0) - (m1 - m0)) / elapsed, 1),
        "rss_before_kib": before.get("VmRSS"),
        "rss_during_kib": during.get("VmRSS"),
        "rss_after_kib": after.get("VmRSS"),
        "hwm_after_kib": after.get("VmHWM"),
        "fds_before": before.get("fds"),
        "fds_during": during.get("fds"),
        "fds_after": after.get("fds"),
        "server_log_bytes": fileSize(env.server.logPath) - log0,
        "audit_bytes": auditBytes(env.tmp) - audit0,
        "errors_seen": samples[:5],
    })
    if flood is not None:
        diff = [b - a for a, b in zip(c0, c1)]
        if flood.mode == "malformed":
            done = sum(diff[: len(KINDS)])
            result["per_kind"] = {k: diff[i] for i, k in enumerate(KINDS) if diff[i]}
            result["unexpected"] = diff[UNEXPECTED]
            result["errors"] = diff[ERRORS]
            result["reconnects"] = diff[RECONNECTS]
        else:
            done = diff[HS_REFUSED]
            result["accepted"] = diff[HS_ACCEPTED]
            result["errors"] = diff[HS_ERRORS]
        result["flood_requests"] = done
        result["flood_rate"] = round(done / elapsed, 1)
        result["server_cpu_ms_per_flood_request"] = (
            round(1000.0 * serverCPU / done, 3) if done else None
        )
        result["flood"] = "{}x{}".format(flood.procs, flood.threads)
    return result


def responsive(good):
    """
    Whether the good client was served: no failed or wrong query, no failed
    reconnection, and p99 of both under L{RESPONSIVE_P99_MS}.
    """
    return (
        not good["failed"] and not good["wrong"] and not good["reconnect"]["failed"]
        and good["p99_ms"] <= RESPONSIVE_P99_MS
        and good["reconnect"]["p99_ms"] <= RESPONSIVE_P99_MS
    )


def parseShape(text):
    """
    C{"PxK"} as C{(P, K)}.
    """
    p, _, k = text.partition("x")
    p, k = int(p), int(k)
    if not (1 <= p <= 8 and 1 <= k <= 64):
        raise ValueError("PxK with P in 1..8 and K in 1..64")
    return p, k


def auditSummary(directory):
    """
    Records and bytes per event in the audit trail (current and rotated
    files) in C{directory}.
    """
    events = collections.Counter()
    sizes = collections.Counter()
    for name in sorted(os.listdir(directory)):
        if not name.startswith("jobmon-audit.jsonl"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            for line in f:
                try:
                    event = json.loads(line).get("event", "?")
                except ValueError:
                    event = "unparsable"
                events[event] += 1
                sizes[event] += len(line)
    return {e: {"records": n, "bytes": sizes[e]} for e, n in events.items()}


def floodPart(cfg, shape, hsShape):
    """
    Part 1: the good client alone, each kind of malformed request alone, the
    good client during the mixed malformed flood and during the handshake
    flood.
    """
    doc = {"windows": {}, "kinds": {}}
    with common.BenchEnv() as env:
        proxy, selfSigned = makeCredentials(env)
        host, port = "127.0.0.1", env.httpsPort
        doc["server_log"] = env.server.logPath

        def flood(mode, which, kinds=KINDS, cert=None):
            if cert is None:
                cert = proxy if mode == "malformed" else selfSigned
            return Flood(mode, host, port, cert or None, which[0], which[1], kinds=kinds,
                         limit=cfg["seconds"] * 4 + 120)

        common.settle(env.server.pid)
        doc["idle_rss_kib"] = procStatus(env.server.pid).get("VmRSS")
        say("baseline: good client alone for {:g} s".format(cfg["seconds"]))
        doc["windows"]["baseline"] = runWindow(env, None, cfg["seconds"], cfg["ramp"], True)
        for kind in KINDS:
            say("kind {}: {} flooding alone for {:g} s".format(
                kind, "x".join(map(str, shape)), cfg["kind_seconds"]))
            doc["kinds"][kind] = runWindow(
                env, flood("malformed", shape, [kind]), cfg["kind_seconds"], cfg["ramp"], False)
        doc["handshake_kinds"] = {}
        for label, cert in (("self-signed certificate", selfSigned), ("no certificate", "")):
            say("handshakes with {}: {}x{} flooding alone for {:g} s".format(
                label, hsShape[0], hsShape[1], cfg["kind_seconds"]))
            doc["handshake_kinds"][label] = runWindow(
                env, flood("handshake", hsShape, cert=cert), cfg["kind_seconds"], cfg["ramp"],
                False)
        say("good client during the mixed malformed flood ({}x{})".format(*shape))
        doc["windows"]["malformed"] = runWindow(
            env, flood("malformed", shape), cfg["seconds"], cfg["ramp"], True)
        small = [k for k in KINDS if k != "oversized"]
        say("good client during the flood of small malformed requests ({}x{})".format(*shape))
        doc["windows"]["small"] = runWindow(
            env, flood("malformed", shape, small), cfg["seconds"], cfg["ramp"], True)
        say("good client during the refused-handshake flood ({}x{})".format(*hsShape))
        doc["windows"]["handshake"] = runWindow(
            env, flood("handshake", hsShape), cfg["seconds"], cfg["ramp"], True)
        say("good client alone again")
        doc["windows"]["after"] = runWindow(env, None, cfg["seconds"], cfg["ramp"], True)
        doc["audit"] = auditSummary(env.tmp)
        log = env.server.output(1_000_000)
        doc["server_log_lines"] = log.count("\n")
        doc["server_tracebacks"] = log.count("Traceback")
        doc["server_refusal_lines"] = log.count("certificate refused")
        doc["server_alive"] = env.server.popen.poll() is None
        for w in doc["windows"].values():
            if "good" in w:
                w["responsive"] = responsive(w["good"])
    return doc


def sustainPart(cfg, shape, hsShape):
    """
    Optional part: the server's RSS every 10 s during C{sustain_seconds} of
    a refused-handshake flood, then (on a fresh server) of a flood of the
    five small malformed kinds.
    """
    doc = {}
    small = [k for k in KINDS if k != "oversized"]
    for name, mode, which, kinds in (("handshake", "handshake", hsShape, KINDS),
                                     ("small", "malformed", shape, small)):
        with common.BenchEnv() as env:
            proxy, selfSigned = makeCredentials(env)
            common.settle(env.server.pid)
            rows = [{"seconds": 0, "requests": 0,
                     "rss_kib": procStatus(env.server.pid).get("VmRSS")}]
            seconds = cfg["sustain_seconds"]
            flood = Flood(mode, "127.0.0.1", env.httpsPort,
                          selfSigned if mode == "handshake" else proxy, which[0], which[1],
                          kinds=kinds, limit=seconds + 120)
            say("sustained {} flood ({}x{}) for {:g} s".format(name, which[0], which[1],
                                                                seconds))
            flood.start()
            try:
                waitForActivity(flood)
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    time.sleep(min(10.0, max(0.1, seconds - (time.monotonic() - started))))
                    c = flood.counts()
                    done = c[HS_REFUSED] if mode == "handshake" else sum(c[: len(KINDS)])
                    st = procStatus(env.server.pid)
                    rows.append({"seconds": round(time.monotonic() - started, 1),
                                 "requests": done, "rss_kib": st.get("VmRSS"),
                                 "fds": st.get("fds")})
            finally:
                flood.stop()
            common.settle(env.server.pid)
            doc[name] = {"flood": "{}x{}".format(*which), "samples": rows,
                         "after_kib": procStatus(env.server.pid).get("VmRSS")}
    return doc


def sustainTable(doc):
    """
    The sustained floods as Markdown.
    """
    rows = []
    for name, d in doc.items():
        samples = d["samples"]
        first = samples[1] if len(samples) > 1 else samples[0]
        rows.append([name, d["flood"], samples[-1]["requests"], samples[0]["rss_kib"],
                     first["rss_kib"], samples[-1]["rss_kib"], d["after_kib"],
                     samples[-1]["rss_kib"] - first["rss_kib"]])
    return "Sustained floods (fresh server each; RSS in KiB):\n\n" + common.markdownTable(
        ["flood", "PxK", "requests", "idle", "after the first sample", "at the end",
         "idle after", "growth after the first sample"], rows)


# --- part 2: memory ----------------------------------------------------------


def memoryWorker(url, proxy, caDir, statEvery, counts, stop, stopAt, results):
    """
    One client process (spawned): C{jobmon.whoami}, and one C{stat} every
    C{statEvery.value} calls (a shared value the parent may lower), until
    C{stop} is set or C{stopAt} (monotonic) passes; C{counts} is
    C{[whoami, stat, failures]}.  Puts the latencies of every 64th call of
    each kind, summarized, on the queue C{results}.
    """
    common.dieWithParent()
    from jobmon.client import JobMonClient
    from jobmon.errors import JobMonError

    stopAt = min(stopAt, time.monotonic() + 3600)
    client = JobMonClient(url, proxy=proxy, caDir=caDir, timeout=30.0)
    sampled = {"whoami": [], "stat": []}
    failures = collections.Counter()
    clock = time.perf_counter
    i = 0
    try:
        while not stop.is_set() and time.monotonic() < stopAt:
            every = max(1, statEvery.value)
            for _ in range(64):
                isStat = i % every == 0
                t0 = clock()
                try:
                    if isStat:
                        client.stat(JOB_ID, "job.log")
                    else:
                        client.whoami()
                except JobMonError as e:
                    counts[2] += 1
                    failures[e.code] += 1
                slot = 1 if isStat else 0
                counts[slot] += 1
                # Keep the latency of every 64th call of each kind.
                if counts[slot] % 64 == 1:
                    sampled["stat" if isStat else "whoami"].append(clock() - t0)
                i += 1
    finally:
        client.close()
    results.put({
        "pid": os.getpid(),
        "whoami": common.summarize(sampled["whoami"]),
        "stat": common.summarize(sampled["stat"]),
        "failures": dict(failures),
    })


def memoryPart(cfg, clients, statEvery, minStat):
    """
    Part 2: RSS of the server and the daemon every C{sample_every} queries,
    up to C{queries} or C{memory_minutes}.  At each sample, if the rate so
    far would leave fewer than C{minStat} C{stat} queries by the end (count
    or time), the clients are told to make them more often.
    """
    mp = multiprocessing.get_context("spawn")
    doc = {"clients": clients, "stat_every": [statEvery], "samples": []}
    shared = mp.RawValue("i", statEvery)
    with common.BenchEnv() as env:
        stop = mp.Event()
        results = mp.Queue()
        limit = cfg["memory_minutes"] * 60.0
        procs, arrays = [], []
        for _ in range(clients):
            counts = mp.RawArray("q", 3)
            p = mp.Process(
                target=memoryWorker,
                args=(env.url, env.proxy, env.caDir, shared, counts, stop,
                      time.monotonic() + limit + 60, results),
                daemon=True,
            )
            procs.append(p)
            arrays.append(counts)

        def totals():
            t = [0, 0, 0]
            for a in arrays:
                for i, v in enumerate(list(a)):
                    t[i] += v
            return t

        def sample(started):
            w, s, f = totals()
            srv, dmn = procStatus(env.server.pid), procStatus(env.daemon.pid)
            row = {
                "queries": w + s, "whoami": w, "stat": s, "failed": f,
                "seconds": round(time.monotonic() - started, 1),
                "server_rss_kib": srv.get("VmRSS"), "server_hwm_kib": srv.get("VmHWM"),
                "server_fds": srv.get("fds"), "server_cpu": srv.get("cpu"),
                "daemon_rss_kib": dmn.get("VmRSS"), "daemon_cpu": dmn.get("cpu"),
                "audit_bytes": auditBytes(env.tmp),
            }
            doc["samples"].append(row)
            return row

        common.settle(env.server.pid)
        try:
            started = time.monotonic()
            sample(started)
            for p in procs:
                p.start()
            deadline = started + limit
            mark = cfg["sample_every"]
            say("memory: {} queries ({} clients, 1 stat in {}), RSS every {}, at most {:g} min"
                .format(cfg["queries"], clients, statEvery, mark, cfg["memory_minutes"]))
            while True:
                now = time.monotonic()
                done = sum(totals()[:2])
                if done >= mark or done >= cfg["queries"] or now >= deadline:
                    row = sample(started)
                    say("memory: {queries} queries at {seconds} s: server RSS {server_rss_kib} "
                        "KiB, daemon {daemon_rss_kib} KiB".format(**row))
                    mark += cfg["sample_every"]
                    every = _statEvery(row, cfg, deadline - now, minStat, shared.value)
                    if every != shared.value:
                        shared.value = every
                        doc["stat_every"].append(every)
                        say("memory: now one stat in {}, to reach {} stat queries".format(
                            every, minStat))
                if done >= cfg["queries"] or now >= deadline:
                    break
                time.sleep(0.05)
            doc["stopped_by"] = "count" if done >= cfg["queries"] else "time"
        finally:
            stop.set()
            reports = []
            for _ in procs:
                try:
                    reports.append(results.get(timeout=40))
                except queue.Empty:
                    break
            for p in procs:
                _reap(p, 10)
        last = doc["samples"][-1]
        w, s, f = totals()
        elapsed = time.monotonic() - started
        doc.update({
            "queries": w + s, "whoami": w, "stat": s, "failed": f,
            "seconds": round(elapsed, 1),
            "qps": round((w + s) / elapsed, 1),
            "server_cpu_ms_per_query": round(
                1000.0 * (last["server_cpu"] - doc["samples"][0]["server_cpu"])
                / max(1, last["queries"]), 3),
            "reports": reports,
        })
        common.settle(env.server.pid)
        doc["idle_after"] = {"server": procStatus(env.server.pid),
                             "daemon": procStatus(env.daemon.pid)}
        doc["server_alive"] = env.server.popen.poll() is None
    samples = doc["samples"]
    warm = next((r for r in samples[1:] if r["queries"] >= cfg["sample_every"]), None)
    if warm is not None:
        doc["server_growth_after_warmup_kib"] = last["server_rss_kib"] - warm["server_rss_kib"]
        doc["daemon_growth_after_warmup_kib"] = last["daemon_rss_kib"] - warm["daemon_rss_kib"]
        doc["flat"] = doc["server_growth_after_warmup_kib"] < FLAT_KIB
        doc["warm_queries"] = warm["queries"]
    return doc


def _statEvery(row, cfg, secondsLeft, minStat, current):
    """
    How often to make a C{stat} from now on so that C{minStat} of them are
    made by the end, at the rate so far.
    """
    needed = minStat - row["stat"]
    if needed <= 0 or row["seconds"] <= 0:
        return current
    rate = row["queries"] / row["seconds"]
    left = min(cfg["queries"] - row["queries"], rate * max(0.0, secondsLeft))
    if left <= 0:
        return current
    return max(1, min(current, int(left // needed)))


# --- report --------------------------------------------------------------------


def floodTables(doc):
    """
    Part 1 as Markdown.
    """
    out = []
    names = [("baseline", "alone"), ("malformed", "malformed flood, all six kinds"),
             ("small", "malformed flood, the five small kinds"),
             ("handshake", "refused-handshake flood"), ("after", "alone, after")]
    rows = []
    for key, label in names:
        w = doc["windows"].get(key)
        if not w:
            continue
        g = w["good"]
        rows.append([
            label, w.get("flood", "-"), g["qps"], g["p50_ms"], g["p99_ms"], g["max_ms"],
            g["reconnect"]["p50_ms"], g["reconnect"]["p99_ms"],
            sum(g["failed"].values()) + g["wrong"] + sum(g["reconnect"]["failed"].values()),
            w.get("flood_rate", "-"), w["server_cpu_percent"],
            w.get("server_cpu_ms_per_flood_request") or "-",
            "yes" if w["responsive"] else "NO",
        ])
    out.append("The good client (stat queries on a kept-alive connection; a reconnect + "
               "whoami every second):\n\n" + common.markdownTable(
                   ["good client", "flood PxK", "stat/s", "p50 ms", "p99 ms", "max ms",
                    "reconnect p50 ms", "reconnect p99 ms", "failed", "flood req/s",
                    "server CPU %", "server CPU ms per flood req", "responsive"], rows))
    rows = []
    for key, label in names:
        w = doc["windows"].get(key)
        if not w:
            continue
        rows.append([
            label, mib(w["rss_before_kib"]), mib(w["rss_during_kib"]), mib(w["rss_after_kib"]),
            mib(w["hwm_after_kib"]), "{} / {} / {}".format(
                w["fds_before"], w["fds_during"], w["fds_after"]),
            w["daemon_cpu_percent"], w["flood_cpu_percent"], w["others_cpu_percent"],
            w["server_log_bytes"], w["audit_bytes"],
        ])
    out.append("The server around each window:\n\n" + common.markdownTable(
        ["window", "RSS before MiB", "during", "after", "peak (VmHWM) MiB",
         "fds before / during / after", "daemon CPU %", "flood CPU %",
         "rest of machine CPU %",
         "server log bytes", "audit bytes"], rows))
    rows = []
    for kind in KINDS:
        w = doc["kinds"].get(kind)
        if not w:
            continue
        rows.append([
            kind, KIND_TEXT[kind], w["flood_rate"], w["server_cpu_percent"],
            w["server_cpu_ms_per_flood_request"] or "-", w["unexpected"], w["errors"],
            mib(w["rss_during_kib"]), mib(w["hwm_after_kib"]),
        ])
    for label, w in doc.get("handshake_kinds", {}).items():
        rows.append([
            "handshake", "TLS handshake with " + label + ", refused", w["flood_rate"],
            w["server_cpu_percent"], w["server_cpu_ms_per_flood_request"] or "-",
            w["accepted"], w["errors"], mib(w["rss_during_kib"]), mib(w["hwm_after_kib"]),
        ])
    out.append("Each kind of malformed request or refused handshake alone (no good "
               "client; for handshakes, \"wrong answers\" are handshakes accepted):\n\n"
               + common.markdownTable(
                   ["kind", "request", "req/s", "server CPU %", "server CPU ms per req",
                    "wrong answers", "errors", "RSS during MiB", "peak MiB"], rows))
    hs = doc["windows"].get("handshake", {})
    notes = []
    for key, label in (("malformed", "Mixed flood"), ("small", "Small-kinds flood")):
        mal = doc["windows"].get(key, {})
        notes.append(
            "{}: {} requests answered as expected ({}), {} wrong answers, "
            "{} connection errors, {} new connections in the window.".format(
                label, mal.get("flood_requests"), ", ".join(
                    "{} {}".format(k, v) for k, v in mal.get("per_kind", {}).items()),
                mal.get("unexpected"), mal.get("errors"), mal.get("reconnects")))
    over = doc["kinds"].get("oversized")
    if over and over.get("server_cpu_ms_per_flood_request"):
        notes.append("Oversized bodies: {:.1f} MiB/s received and dropped, {:.2f} ms of server "
                     "CPU per MiB.".format(over["flood_rate"] * (MAX_BODY + 1) / 2**20,
                                           over["server_cpu_ms_per_flood_request"]
                                           * 2**20 / (MAX_BODY + 1)))
    notes += [
        "Handshake flood: {} handshakes refused, {} accepted, {} connection errors.".format(
            hs.get("flood_requests"), hs.get("accepted"), hs.get("errors")),
    ]
    if hs.get("flood_requests"):
        notes.append("Per refused handshake the server wrote {:.0f} bytes of log and about {:.0f} "
                     "bytes of audit trail (the good client's queries are audited too).".format(
                         hs["server_log_bytes"] / hs["flood_requests"],
                         hs["audit_bytes"] / hs["flood_requests"]))
    audit = doc.get("audit", {})
    refused = audit.get("refused")
    if refused and refused["records"]:
        size = refused["bytes"] / refused["records"]
        rate = max(hs.get("flood_rate") or 0, doc.get("handshake_kinds", {}).get(
            "self-signed certificate", {}).get("flood_rate") or 0)
        notes.append(
            "Audit trail: {} (records, bytes); a refusal record is {:.0f} bytes. At the "
            "defaults (--audit-rotate 10 MiB, --audit-keep 10) the trail holds about {:,} "
            "refusals, which the measured {:.0f} refusals/s would write in {:.0f} minutes: "
            "a handshake flood pushes every older record out.".format(
                ", ".join("{} {}/{}".format(e, v["records"], v["bytes"])
                          for e, v in sorted(audit.items())),
                size, int(11 * 10 * 2**20 / size), rate,
                11 * 10 * 2**20 / size / max(rate, 1) / 60))
    notes += [
        "Server log: {} lines in all, {} of them certificate refusals, {} tracebacks; "
        "the server {} at the end.".format(
            doc["server_log_lines"], doc["server_refusal_lines"], doc["server_tracebacks"],
            "was running" if doc["server_alive"] else "HAD DIED"),
    ]
    errors = sorted({e for w in list(doc["windows"].values()) + list(doc["kinds"].values())
                     for e in w.get("errors_seen", [])})
    if errors:
        notes.append("Error samples: " + "; ".join(errors[:6]))
    out.append("\n".join("- " + n for n in notes))
    return "\n\n".join(out)


def memoryTables(doc):
    """
    Part 2 as Markdown.
    """
    rows = [[
        r["queries"], r["whoami"], r["stat"], r["seconds"], r["server_rss_kib"],
        r["server_hwm_kib"], r["server_fds"], r["daemon_rss_kib"], r["failed"],
    ] for r in doc["samples"]]
    text = common.markdownTable(
        ["queries", "whoami", "stat", "s", "server RSS KiB", "server VmHWM KiB", "server fds",
         "daemon RSS KiB", "failed"], rows)
    notes = [
        "{} queries ({} whoami, {} stat, {} failed) in {} s from {} client processes: {} "
        "queries/s; one stat in {}; server CPU {} ms per query; stopped by {}.".format(
            doc["queries"], doc["whoami"], doc["stat"], doc["failed"], doc["seconds"],
            doc["clients"], doc["qps"], " then ".join(map(str, doc["stat_every"])),
            doc["server_cpu_ms_per_query"], doc["stopped_by"]),
    ]
    if "flat" in doc:
        notes.append(
            "Growth after warm-up (from the sample at {} queries to the last): "
            "server {:+d} KiB, daemon {:+d} KiB: server memory {} (threshold {} KiB).".format(
                doc["warm_queries"],
                doc["server_growth_after_warmup_kib"], doc["daemon_growth_after_warmup_kib"],
                "flat" if doc["flat"] else "NOT flat", FLAT_KIB))
    for r in doc.get("reports", []):
        notes.append("client {}: whoami p50 {} / p99 {} ms, stat p50 {} / p99 {} ms (every 64th "
                     "call), failures {}".format(
                         r["pid"], r["whoami"]["p50_ms"], r["whoami"]["p99_ms"],
                         r["stat"]["p50_ms"], r["stat"]["p99_ms"], r["failures"] or "none"))
    return text + "\n\n" + "\n".join("- " + n for n in notes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about 30 s)")
    parser.add_argument("--parts", default="flood,memory",
                        help="comma-separated subset of: flood, memory, sustain "
                             "(flood,memory)")
    parser.add_argument("--sustain-seconds", type=float,
                        help="sustain: length of each sustained flood, s (120)")
    parser.add_argument("--seconds", type=float, help="good client's window, s (10)")
    parser.add_argument("--kind-seconds", type=float, help="each kind alone, s (3)")
    parser.add_argument("--flood", default="2x4", help="malformed flood: PxK (2x4)")
    parser.add_argument("--handshakes", default="2x4", help="handshake flood: PxK (2x4)")
    parser.add_argument("--queries", type=int, help="memory: queries in all (1,000,000)")
    parser.add_argument("--clients", type=int, default=3, help="memory: client processes (3)")
    parser.add_argument("--stat-every", type=int, default=10,
                        help="memory: one stat per N calls at first (10)")
    parser.add_argument("--min-stat", type=int,
                        help="memory: make stat queries more often if needed to reach this "
                             "many (100,000)")
    parser.add_argument("--sample-every", type=int, help="memory: RSS every N queries (50,000)")
    parser.add_argument("--memory-minutes", type=float,
                        help="memory: stop after this many minutes whatever the count (11)")
    common.jsonOption(parser)
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("seconds", "kind_seconds", "queries", "sample_every", "memory_minutes",
                "min_stat", "sustain_seconds"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    parts = args.parts.split(",")
    if not set(parts) <= {"flood", "memory", "sustain"}:
        parser.error("--parts: choose among flood, memory, sustain")
    if not 0 < cfg["sustain_seconds"] <= 600:
        parser.error("--sustain-seconds must be in (0, 600]")
    try:
        shape, hsShape = parseShape(args.flood), parseShape(args.handshakes)
    except ValueError as e:
        parser.error(str(e))
    if not (0 < cfg["seconds"] <= 120 and 0 < cfg["kind_seconds"] <= 60):
        parser.error("--seconds must be in (0, 120] and --kind-seconds in (0, 60]")
    if not (1 <= cfg["queries"] <= 10_000_000 and 1 <= args.clients <= 8
            and args.stat_every >= 1 and cfg["sample_every"] >= 100
            and 0 < cfg["memory_minutes"] <= 12):
        parser.error("--queries 1..10M, --clients 1..8, --stat-every >= 1, "
                     "--sample-every >= 100, --memory-minutes in (0, 12]")
    common.installSignalHandlers()
    document = {"benchmark": "hardening", "machine": common.machine(), "config": cfg,
                "flood_shape": args.flood, "handshake_shape": args.handshakes}
    started = time.monotonic()
    text = []
    if "flood" in parts:
        document["flood"] = floodPart(cfg, shape, hsShape)
        text.append(floodTables(document["flood"]))
    if "sustain" in parts:
        document["sustain"] = sustainPart(cfg, shape, hsShape)
        text.append(sustainTable(document["sustain"]))
    if "memory" in parts:
        document["memory"] = memoryPart(cfg, args.clients, args.stat_every, cfg["min_stat"])
        text.append(memoryTables(document["memory"]))
    document["wall_seconds"] = round(time.monotonic() - started, 1)
    common.emit(document, "\n\n".join(text), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

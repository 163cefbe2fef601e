"""
A cluster of JobMon servers sharing jobs through a real C{redis-server} on
127.0.0.1 (issue 15): throughput of three servers against one, the extra
round trip of a routed query, 60,000 UDP jobs over three servers, and how
fast the jobs of a stopped server answer again.

Every server is a real C{twistd -n jobmon-server} (throwaway PKI, limits
lifted as in the other benchmarks, L{LIMITS_LIFTED}); Redis is a real
C{redis-server} persisting nothing.  The parts:

  1. C{throughput}: C{--clients} client processes (the standard library's
     C{xmlrpc.client}, one kept-alive HTTPS connection each) send C{stat}
     queries as fast as they can for C{--seconds}, each cycling over three
     jobs (real TCP-wake C{jobmon-daemon}s), in three set-ups: C{embedded}
     (one server without C{--redis}), C{redis-1} (one server with
     C{--redis}) and C{redis-3} (three servers with C{--redis}, one job and
     a third of the clients on each: two queries in three are routed to
     another server), and C{redis-3-local} (the same, but each client
     queries only the job of its own server: nothing is routed).  Queries/s, round trips, and CPU per query of the
     servers (summed), Redis, the daemons and the clients.  Each set-up is
     run C{--repeats} times, interleaved.
  2. C{routed}: three servers; one client on server A sends C{-n} pairs of
     sequential C{stat} queries, one to a job held by A (local), one to a
     job held by B (routed through Redis), in random order within each
     pair: p50/p99 of each and the difference; then C{-n}/2 of each kind in
     a row for the CPU per query (servers and Redis).
  3. C{scale}: three servers with C{--reregister-interval 3600} (a UDP job
     registered once stays for 3 h); C{--jobs} (60,000) UDP jobs are
     registered, a third on each server, by load generator processes
     (C{bench/capacity.py --worker}: the product's XML-RPC client, 16 calls
     in flight each) speaking C{jobmon.registerJob} directly, no daemon
     process per job.  Time to register them; RSS of each server and Redis'
     C{used_memory} before and after; the idle CPU of the servers and Redis
     over C{--idle-seconds} (60 s: one sweep of the leader over all jobs,
     every 6 cleanup intervals); then queries to the three real daemons'
     jobs through server A (local and routed), a query for an unknown job,
     and C{listJobs}.
  4. C{failover}: C{--per-mode} jobs in each wake mode (tcp, udp, poll),
     real L{jobmon.worker.daemon.JobDaemon}s run in one helper process
     (this script with C{--daemon-host}, as C{tests/e2e/test_restart.py}
     does), each given the three servers (C{--server} repeated, A first),
     all registered with A.  A is stopped (C{kill}: SIGKILL; C{term}:
     SIGTERM); from that moment one thread per job queries it through B
     or C until it answers: the seconds until each job answers again, max
     and p50 per mode.  A fresh cluster for each way of stopping.

Usage::

    .venv/bin/python bench/cluster.py [--quick] [--parts throughput,routed,scale,failover]
        [--clients 4] [--seconds 10] [--repeats 2] [-n 2000] [--jobs 60000]
        [--idle-seconds 60] [--per-mode 30] [--max-minutes 20] [--json PATH]

The defaults take about six minutes; C{--quick} is a smoke run (about a
minute).  Needs C{redis-server} on the path.  The machine these figures come
from has two cores: three servers, Redis, the daemons and the clients share
them, so queries/s of three servers cannot exceed one's by much; the server
CPU per query, summed over the servers, is the figure that scales with
cores.
"""

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)
import throughput  # noqa: E402
from common import say  # noqa: E402

HOST = "127.0.0.1"

TARGET_ROUTED_EXTRA_MS = 1.0
"""A routed query's p50 may exceed a local one's by this much."""

TARGET_FAILOVER_S = 15.0
"""Every job of a stopped server answers again within this."""

LIMITS_LIFTED = ["--max-per-peer", "1000000"] + common.QUERY_LIMITS_LIFTED
"""Server options of the benchmark (every client and load generator is
alice on 127.0.0.1)."""

FULL = {"clients": 4, "seconds": 10.0, "repeats": 2, "warmup": 200, "n": 2000,
        "jobs": 60000, "idle_seconds": 60.0, "per_mode": 30, "scale_queries": 200}
MODERATE = dict(FULL, seconds=5.0, repeats=1, warmup=100, n=1000)
"""The sizes C{bench/run_all.py} uses (throughput and routed parts only)."""
QUICK = {"clients": 3, "seconds": 3.0, "repeats": 1, "warmup": 20, "n": 200,
         "jobs": 3000, "idle_seconds": 5.0, "per_mode": 5, "scale_queries": 20}
for _sizes in (FULL, MODERATE, QUICK):
    _sizes.update(max_minutes=20.0, failover_limit=60.0)

SETUPS = (("embedded", 1, False, False), ("redis-1", 1, True, False),
          ("redis-3", 3, True, False), ("redis-3-local", 3, True, True))
"""(name, servers, with Redis, each client querying only the job of its own
server) of the throughput part."""

JOBS = ("job.1", "job.2", "job.3")
"""The real daemons' jobs; job i is registered with server i mod the
number of servers."""

MODES = ("tcp", "udp", "poll")

REGISTER_CHUNK = 2000
"""UDP jobs one load generator registers per command."""


def freePort():
    """
    A TCP port of 127.0.0.1 nothing listens on now.
    """
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Redis:
    """
    A real C{redis-server} on a free port of 127.0.0.1, persisting nothing.
    """

    def __init__(self, tmp):
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("cluster: redis-server is not installed (apt-get install "
                             "redis-server)")
        self.port = freePort()
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=tmp)
        self.proc = common.Proc(
            "redis-server",
            [binary, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--protected-mode", "yes"],
            os.path.join(self.dir, "redis.log"), cwd=self.dir)
        self.proc.waitFor(r"Ready to accept connections")
        self.pid = self.proc.pid
        self.url = "redis://{}:{}/0".format(HOST, self.port)

    def command(self, *args):
        """
        One command; its reply (a bulk string or integer) as text.
        """
        with socket.create_connection((HOST, self.port), timeout=10) as s:
            out = "*{}\r\n".format(len(args))
            for a in args:
                a = str(a)
                out += "${}\r\n{}\r\n".format(len(a.encode()), a)
            s.sendall(out.encode())
            f = s.makefile("rb")
            head = f.readline().decode().rstrip("\r\n")
            if head.startswith("$"):
                size = int(head[1:])
                return None if size < 0 else f.read(size + 2)[:-2].decode()
            return head[1:]

    def info(self, section="memory"):
        """
        C{INFO section} as a dict.
        """
        text = self.command("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def memory(self):
        """
        C{used_memory} and C{used_memory_rss} in bytes, with its RSS from
        C{/proc}.
        """
        info = self.info()
        return {"used_memory": int(info["used_memory"]),
                "used_memory_rss": int(info["used_memory_rss"]),
                "keys": int(self.command("DBSIZE"))}

    def stop(self):
        self.proc.stop()


class Base:
    """
    What every set-up shares: a throwaway PKI, alice's proxy, a job's
    working directory, a UDP broadcast port.
    """

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="jobmon-cluster-")
        thePKI, self.proxy = common.makePKI(self.tmp)
        self.caDir = thePKI.ca.hashedDir
        self.hostCert, self.hostKey = thePKI.hostCertPath, thePKI.hostKeyPath
        self.workdir = os.path.join(self.tmp, "work")
        common.makeWorkdir(self.workdir)
        self.udpPort = common.freeUDPPort()
        self.runs = 0

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Cluster:
    """
    C{count} real servers, with a fresh Redis unless C{redis} is false,
    and real TCP-wake daemons started on demand; everything stopped by
    L{close}.

    @ivar servers: their L{common.Proc}s.
    @ivar urls: their XML-RPC URLs.
    @ivar ids: their server ids in the cluster (L{None} without Redis).
    """

    def __init__(self, base, count, redis=True, extra=()):
        self.base = base
        base.runs += 1
        self.run = base.runs
        self.redis = None
        self.servers, self.urls, self.ids, self.daemons = [], [], [], []
        try:
            if redis:
                self.redis = Redis(base.tmp)
            for i in range(count):
                name = "r{}-s{}".format(self.run, i)
                args = [common.TWISTD] + common.serverArgs(
                    base.hostCert, base.hostKey, base.caDir) + LIMITS_LIFTED + [
                    "--history", os.path.join(base.tmp, name + "-history.sqlite3"),
                    "--audit-log", os.path.join(base.tmp, name + "-audit.jsonl"),
                    "--udp-broadcast", "{}:{}".format(common.LOOPBACK_BROADCAST,
                                                      base.udpPort),
                ] + list(extra)
                if redis:
                    args += ["--redis", self.redis.url]
                self.servers.append(common.Proc(
                    "jobmon-server " + name, args, os.path.join(base.tmp, name + ".log"),
                    cwd=base.tmp))
            for server in self.servers:
                match = server.waitFor(common.SERVER_READY)
                self.urls.append("https://{}:{}/RPC2".format(HOST, match.group(1)))
                self.ids.append(server.waitFor(r"joined the cluster as (\S+)").group(1)
                                if redis else None)
        except BaseException:
            self.close()
            raise

    def startDaemons(self, jobs=JOBS):
        """
        A real TCP-wake daemon for each of C{jobs}, job i on server i mod
        the number of servers.
        """
        procs = []
        for i, jobId in enumerate(jobs):
            url = self.urls[i % len(self.urls)]
            args = [common.TWISTD, "-n", "--pidfile=", "jobmon-daemon", "--server", url,
                    "--job-id", jobId, "--workdir", self.base.workdir,
                    "--proxy", self.base.proxy, "--ca-dir", self.base.caDir,
                    "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
                    "--wake", "tcp"]
            procs.append(common.Proc("jobmon-daemon " + jobId, args, os.path.join(
                self.base.tmp, "r{}-{}.log".format(self.run, jobId)), cwd=self.base.tmp))
        self.daemons.extend(procs)
        for proc in procs:
            proc.waitFor(common.WAKE_READY["tcp"])

    def pids(self):
        """
        The pids of the servers, Redis and the daemons, by role.
        """
        return {"servers": [s.pid for s in self.servers],
                "redis": [self.redis.pid] if self.redis else [],
                "daemons": [d.pid for d in self.daemons]}

    def cpu(self):
        """
        CPU seconds so far of each role (summed over its processes).
        """
        return {role: sum(common.cpuSeconds(p) or 0.0 for p in pids)
                for role, pids in self.pids().items()}

    def rpc(self, index=0):
        """
        A kept-alive standard library client for alice on server C{index}.
        """
        return throughput.serverProxy(
            self.urls[index], throughput.clientContext(self.base.proxy, self.base.caDir))

    def close(self):
        """
        Stop the daemons, the servers, Redis.
        """
        for proc in self.daemons + self.servers:
            try:
                proc.stop()
            except Exception as e:
                say("could not stop {}: {}".format(proc.name, e))
        self.daemons, self.servers = [], []
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def stat(rpc, jobId, timeout=30.0):
    """
    C{stat job.log} of C{jobId}; check the answer.
    """
    result = rpc.jobmon.query(jobId, {"op": "stat", "path": "job.log", "timeout": timeout})
    if result.get("size") != common.LOG_SIZE:
        raise AssertionError("unexpected stat result {!r}".format(result))
    return result


def perQuery(before, after, queries):
    """
    CPU milliseconds per query of each role, from two L{Cluster.cpu}.
    """
    return {role: round((after[role] - before[role]) * 1000.0 / queries, 3)
            for role in before}


# Part 1: throughput


def clientMain(conn, url, proxy, caDir, jobs, offset):
    """
    A client process: C{("warmup", n)}, C{("run", startAt, seconds)},
    C{("stop",)} from the parent; C{stat} queries cycling over C{jobs}.
    """
    rpc = throughput.serverProxy(url, throughput.clientContext(proxy, caDir))
    request = {"op": "stat", "path": "job.log", "timeout": 30.0}
    query = rpc.jobmon.query
    clock = time.perf_counter
    i = offset
    try:
        while True:
            command = conn.recv()
            try:
                if command[0] == "warmup":
                    for _ in range(command[1]):
                        stat(rpc, jobs[i % len(jobs)])
                        i += 1
                    conn.send(("ok", None))
                elif command[0] == "run":
                    startAt, seconds = command[1], command[2]
                    while clock() < startAt:
                        time.sleep(0.0005)
                    cpu0, durations, until = time.process_time(), [], startAt + seconds
                    while clock() < until:
                        t0 = clock()
                        query(jobs[i % len(jobs)], request)
                        durations.append(clock() - t0)
                        i += 1
                    conn.send(("ok", {"durations": durations,
                                      "cpu": time.process_time() - cpu0, "ended": clock()}))
                else:
                    conn.send(("ok", None))
                    return
            except Exception as e:
                conn.send(("error", "{}: {}".format(type(e).__name__, e)))
    finally:
        rpc("close")()
        conn.close()


class Clients:
    """
    Client processes, client i on server i mod the number of servers.
    """

    def __init__(self, cluster, count, jobs=JOBS, localOnly=False):
        context = multiprocessing.get_context("fork")
        self.procs, self.conns = [], []
        servers = len(cluster.urls)
        for i in range(count):
            mine, theirs = context.Pipe()
            mine_ = [j for k, j in enumerate(jobs) if k % servers == i % servers]
            proc = context.Process(target=clientMain, daemon=True, args=(
                theirs, cluster.urls[i % servers], cluster.base.proxy,
                cluster.base.caDir, mine_ if localOnly else list(jobs), i))
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(mine)

    def all(self, command):
        for conn in self.conns:
            conn.send(command)
        answers = []
        for conn in self.conns:
            if not conn.poll(throughput.WORKER_TIMEOUT):
                raise RuntimeError("a client process did not answer in time")
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError("a client process failed: " + value)
            answers.append(value)
        return answers

    def close(self):
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def measureThroughput(cluster, cfg, localOnly=False):
    """
    The concurrent clients' run on C{cluster} (see the module docstring).
    """
    clients = Clients(cluster, cfg["clients"], localOnly=localOnly)
    try:
        clients.all(("warmup", max(1, cfg["warmup"] // cfg["clients"])))
        for pid in cluster.pids()["servers"]:
            common.settle(pid, limit=5.0)
        startAt = time.perf_counter() + 0.2
        cpu0, busy0 = cluster.cpu(), common.machineCPU()
        answers = clients.all(("run", startAt, cfg["seconds"]))
        cpu1, busy1 = cluster.cpu(), common.machineCPU()
    finally:
        clients.close()
    ended = max(a["ended"] for a in answers)
    durations = [d for a in answers for d in a["durations"]]
    total = len(durations)
    cpu = perQuery(cpu0, cpu1, total)
    cpu["clients"] = round(sum(a["cpu"] for a in answers) * 1000.0 / total, 3)
    out = common.summarize(durations)
    elapsed = ended - startAt
    out.update(qps=round(total / elapsed, 1), seconds=round(elapsed, 2),
               cpu_ms_per_query=cpu,
               machine_busy_percent=round(100.0 * (busy1[0] - busy0[0]) / elapsed, 1),
               servers=len(cluster.servers))
    return out


def throughputPart(base, cfg, routedToo):
    """
    Every set-up C{repeats} times, interleaved; the routed part on the
    first three-server cluster when C{routedToo}.
    """
    out = {"runs": [], "routed": None}
    for rep in range(cfg["repeats"]):
        for name, count, redis, localOnly in SETUPS:
            cluster = Cluster(base, count, redis)
            try:
                cluster.startDaemons()
                say("throughput: {} (run {}): {} clients, {:g} s".format(
                    name, rep + 1, cfg["clients"], cfg["seconds"]))
                result = measureThroughput(cluster, cfg, localOnly)
                result.update(setup=name, repeat=rep + 1)
                out["runs"].append(result)
                say("  {qps}/s, p50 {p50_ms} ms, server CPU {ms} ms/q".format(
                    ms=result["cpu_ms_per_query"]["servers"], **result))
                if routedToo and count == 3 and out["routed"] is None:
                    out["routed"] = routedPart(cluster, cfg)
            finally:
                cluster.close()
    return out


# Part 2: the routed query


def routedPart(cluster, cfg):
    """
    Local and routed C{stat} queries from one client on server A, in
    random order within each pair.
    """
    n = cfg["n"]
    local, routed = JOBS[0], JOBS[1]
    say("routed: {} pairs of stat (local {}, routed {})".format(n, local, routed))
    rpc = cluster.rpc(0)
    try:
        for _ in range(max(1, cfg["warmup"] // 2)):
            stat(rpc, local)
            stat(rpc, routed)
        times = {"local": [], "routed": []}
        clock = time.perf_counter
        for _ in range(n):
            pair = [("local", local), ("routed", routed)]
            random.shuffle(pair)
            for kind, jobId in pair:
                t0 = clock()
                stat(rpc, jobId)
                times[kind].append(clock() - t0)
        out = {kind: common.summarize(values) for kind, values in times.items()}
        for kind, jobId in (("local", local), ("routed", routed)):
            count = max(1, n // 2)
            cpu0 = cluster.cpu()
            t0 = clock()
            for _ in range(count):
                stat(rpc, jobId)
            out[kind]["block_qps"] = round(count / (clock() - t0), 1)
            out[kind]["cpu_ms_per_query"] = perQuery(cpu0, cluster.cpu(), count)
    finally:
        rpc("close")()
    out["extra_p50_ms"] = round(out["routed"]["p50_ms"] - out["local"]["p50_ms"], 3)
    out["extra_p99_ms"] = round(out["routed"]["p99_ms"] - out["local"]["p99_ms"], 3)
    say("  local p50 {} ms, routed p50 {} ms (+{} ms)".format(
        out["local"]["p50_ms"], out["routed"]["p50_ms"], out["extra_p50_ms"]))
    return out


# Part 3: many UDP jobs


class Generator:
    """
    A load generator process (C{bench/capacity.py --worker}) registering
    simulated jobs on one server, driven over its pipe with JSON lines.
    """

    def __init__(self, base, url, name, maxMinutes):
        self.log = open(os.path.join(base.tmp, name + ".log"), "wb")
        self.popen = subprocess.Popen(
            [sys.executable, os.path.join(common.BENCH, "capacity.py"), "--worker",
             "--max-minutes", str(maxMinutes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=common.childEnv(), cwd=common.ROOT, preexec_fn=common.dieWithParent)
        self.ids = 0
        self.send("init", url=url, wake_port=None, ca_dir=base.caDir, proxy=base.proxy,
                  concurrency=16)
        self.reply()

    def send(self, cmd, **args):
        self.ids += 1
        self.popen.stdin.write(json.dumps({"id": self.ids, "cmd": cmd, "args": args}).encode()
                               + b"\n")
        self.popen.stdin.flush()

    def reply(self):
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("a load generator ended")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("load generator: " + reply["error"])
        return reply

    def close(self):
        try:
            self.popen.stdin.close()
            self.popen.wait(10)
        except Exception:
            self.popen.kill()
            self.popen.wait(5)
        self.log.close()


def rss(pid):
    """
    RSS of C{pid} in KiB.
    """
    return common.procStatus(pid, ("VmRSS",)).get("VmRSS")


def snapshot(cluster):
    """
    RSS of each server, Redis' memory.
    """
    return {"servers_rss_kib": [rss(p) for p in cluster.pids()["servers"]],
            "redis": cluster.redis.memory(), "redis_rss_kib": rss(cluster.redis.pid)}


def timedCalls(call, n):
    durations, _ = common.timed(call, n)
    return common.summarize(durations)


def scalePart(base, cfg, deadline):
    """
    C{jobs} UDP jobs over three servers (see the module docstring).
    """
    total = cfg["jobs"]
    cluster = Cluster(base, 3, True, ["--reregister-interval", "3600"])
    generators = []
    out = {"jobs": total}
    try:
        cluster.startDaemons()
        for pid in cluster.pids()["servers"]:
            common.settle(pid)
        before = snapshot(cluster)
        out["before"] = before
        say("scale: registering {} UDP jobs over 3 servers".format(total))
        generators = [Generator(base, url, "r{}-gen{}".format(cluster.run, i),
                                cfg["max_minutes"]) for i, url in enumerate(cluster.urls)]
        share = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
        starts = [sum(share[:i]) for i in range(3)]
        done = [0, 0, 0]
        cpu0, t0 = cluster.cpu(), time.monotonic()
        failed, firstError = 0, None
        while any(done[i] < share[i] for i in range(3)):
            if time.monotonic() > deadline:
                say("scale: time limit reached, {} registered".format(sum(done)))
                break
            busy = []
            for i, g in enumerate(generators):
                count = min(REGISTER_CHUNK, share[i] - done[i])
                if count > 0:
                    g.send("register", mode="udp", start=starts[i] + done[i], count=count)
                    busy.append((i, g, count))
            for i, g, count in busy:
                reply = g.reply()
                done[i] += count
                failed += reply["failed"]
                firstError = firstError or reply.get("first_error")
            say("scale: {} registered".format(sum(done)))
        took = time.monotonic() - t0
        registered = sum(done) - failed
        cpu = cluster.cpu()
        out["registration"] = {
            "registered": registered, "failed": failed, "first_error": firstError,
            "seconds": round(took, 1), "per_s": round(registered / took, 1),
            "server_cpu_ms_each": round((cpu["servers"] - cpu0["servers"]) * 1000.0
                                        / max(1, registered), 3),
            "redis_cpu_ms_each": round((cpu["redis"] - cpu0["redis"]) * 1000.0
                                       / max(1, registered), 3),
        }
        say("scale: {registered} in {seconds} s ({per_s}/s), {failed} failed".format(
            **out["registration"]))
        for pid in cluster.pids()["servers"]:
            common.settle(pid, limit=30.0)
        after = snapshot(cluster)
        out["after"] = after
        perServer = registered / 3.0
        out["server_kib_per_job"] = round(
            (sum(after["servers_rss_kib"]) - sum(before["servers_rss_kib"]))
            / max(1, registered), 2)
        out["server_rss_mib"] = [common.mib(v) for v in after["servers_rss_kib"]]
        out["jobs_per_server"] = round(perServer)
        out["redis_bytes_per_job"] = round(
            (after["redis"]["used_memory"] - before["redis"]["used_memory"])
            / max(1, registered), 1)
        seconds = cfg["idle_seconds"]
        say("scale: idle CPU over {:g} s".format(seconds))
        per0, r0, t0 = [common.cpuSeconds(p) for p in cluster.pids()["servers"]], \
            common.cpuSeconds(cluster.redis.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        out["idle"] = {
            "seconds": round(elapsed, 1),
            "servers_cpu_percent": [round(100.0 * (common.cpuSeconds(p) - c) / elapsed, 2)
                                    for p, c in zip(cluster.pids()["servers"], per0)],
            "redis_cpu_percent": round(100.0 * (common.cpuSeconds(cluster.redis.pid) - r0)
                                       / elapsed, 2),
        }
        try:
            out["queries"] = scaleQueries(cluster, cfg["scale_queries"])
        except Exception as e:
            out["queries_error"] = "{}: {}".format(type(e).__name__, e)
            say("scale: queries failed: " + out["queries_error"])
        out["final"] = snapshot(cluster)
        out["store_lost"] = [s.text().count("store cannot be reached") for s in cluster.servers]
        out["store_back"] = [s.text().count("reachable again") for s in cluster.servers]
    finally:
        for g in generators:
            g.close()
        cluster.close()
    return out


def scaleQueries(cluster, n):
    """
    Queries through server A with the jobs registered: local, routed, an
    unknown job, C{listJobs}.
    """
    import xmlrpc.client

    rpc = cluster.rpc(0)
    out = {}
    try:
        for jobId in JOBS:
            stat(rpc, jobId)
        out["local"] = timedCalls(lambda: stat(rpc, JOBS[0]), n)
        out["routed"] = timedCalls(lambda: stat(rpc, JOBS[1 + random.randrange(2)]), n)

        def unknown():
            try:
                rpc.jobmon.query("nosuch.{}".format(random.randrange(10 ** 9)),
                                 {"op": "stat", "path": "job.log"})
            except xmlrpc.client.Fault:
                return
            raise AssertionError("a query for an unknown job answered")

        out["unknown_job"] = timedCalls(unknown, max(3, n // 20))
        listed = []
        out["list_jobs_1000"] = timedCalls(
            lambda: listed.append(len(rpc.jobmon.listJobs({"limit": 1000}))), 3)
        out["list_jobs_rows"] = listed[-1]
    finally:
        rpc("close")()
    return out


# Part 4: failover


def daemonHostMain(config):
    """
    The C{--daemon-host} process: real job daemons in this process, one
    per job of C{config["jobs"]} (C{(jobId, mode, [server URLs])}), until
    SIGTERM.
    """
    import loopback_twistd

    loopback_twistd._bindLoopback()
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from jobmon.worker.daemon import Options as DaemonOptions
    from jobmon.worker.daemon import buildDaemon, loadStartup

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)],
                                     redirectStandardIO=False)
    daemons = []
    for jobId, mode, urls in config["jobs"]:
        options = DaemonOptions()
        args = ["--job-id", jobId, "--wake", mode, "--workdir", config["workdir"],
                "--proxy", config["proxy"], "--ca-dir", config["ca_dir"],
                "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
                "--job-pid", str(os.getpid())]
        for url in urls:
            args += ["--server", url]
        options.parseOptions(args)
        daemon = buildDaemon(reactor, options, loadStartup(options))
        daemon.startService()
        daemons.append(daemon)

    from twisted.internet import defer

    # Proc.stop's SIGTERM stops the reactor: the daemons stop first.
    reactor.addSystemEventTrigger(
        "before", "shutdown",
        lambda: defer.DeferredList([d.stopService() for d in daemons]))
    reactor.callLater(config["max_seconds"], reactor.stop)
    sys.stdout.write("daemons started\n")
    sys.stdout.flush()
    reactor.run()
    return 0


def waitForJobs(rpc, jobIds, server, limit):
    """
    Wait until every job of C{jobIds} is ready on server id C{server}.
    """
    deadline = time.monotonic() + limit
    wanted = set(jobIds)
    while True:
        rows = rpc.jobmon.listJobs({"limit": 1000})
        ready = {r["job_id"] for r in rows
                 if r["state"] == "ready" and r.get("server") == server} & wanted
        if ready == wanted:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("only {} of {} jobs ready on the first server".format(
                len(ready), len(wanted)))
        time.sleep(0.2)


def failoverRun(base, cfg, how):
    """
    One cluster, the jobs on A; stop A with C{how} (C{kill} or C{term});
    the seconds until each job answers through B or C.
    """
    cluster = Cluster(base, 3, True, ["--reregister-interval", "5"])
    host = None
    try:
        a, b, c = cluster.urls
        jobs = []
        for mode in MODES:
            for i in range(cfg["per_mode"]):
                jobs.append(("fo.{}.{}".format(mode, i), mode,
                             [a, b, c] if i % 2 == 0 else [a, c, b]))
        path = os.path.join(base.tmp, "r{}-daemons.json".format(cluster.run))
        with open(path, "w") as f:
            json.dump({"jobs": jobs, "workdir": base.workdir, "proxy": base.proxy,
                       "ca_dir": base.caDir, "max_seconds": 600}, f)
        host = common.Proc("daemon host", [sys.executable, os.path.abspath(__file__),
                                           "--daemon-host", path],
                           os.path.join(base.tmp, "r{}-daemons.log".format(cluster.run)))
        host.waitFor(r"daemons started")
        rpcB = cluster.rpc(1)
        waitForJobs(rpcB, [j[0] for j in jobs], cluster.ids[0], 60.0)
        rpcB("close")()
        say("failover ({}): {} jobs ready on A; stopping A".format(how, len(jobs)))
        results, threads = {}, []
        go = threading.Event()
        limit = cfg["failover_limit"]

        def probe(index, jobId):
            rpc = cluster.rpc(1 + index % 2)
            try:
                stat(rpc, jobId)  # the connection is up before A stops
                go.wait()
                t0 = stopped[0]
                errors = 0
                while time.monotonic() - t0 < limit:
                    try:
                        stat(rpc, jobId, timeout=limit)
                        results[jobId] = (time.monotonic() - t0, errors)
                        return
                    except Exception:
                        errors += 1
                        time.sleep(0.05)
            finally:
                rpc("close")()

        stopped = [None]
        for index, (jobId, _, _) in enumerate(jobs):
            t = threading.Thread(target=probe, args=(index, jobId), daemon=True)
            t.start()
            threads.append(t)
        time.sleep(1.0)
        server = cluster.servers[0]
        stopped[0] = time.monotonic()
        server.popen.send_signal(9 if how == "kill" else 15)
        go.set()
        moved = watchMoves(cluster, [j[0] for j in jobs], stopped[0], limit)
        for t in threads:
            t.join(limit + 30)
        out = {"jobs": len(jobs), "answered": len(results), "modes": {}}
        for mode in MODES:
            times = sorted(v[0] for k, v in results.items() if k.startswith("fo." + mode))
            again = sorted(v for k, v in moved.items() if k.startswith("fo." + mode))
            out["modes"][mode] = {
                "answered": len(times),
                "p50_s": round(common.percentile(times, 50), 2) if times else None,
                "max_s": round(times[-1], 2) if times else None,
                "failed_queries": sum(v[1] for k, v in results.items()
                                      if k.startswith("fo." + mode)),
                "registered_p50_s": round(common.percentile(again, 50), 2) if again else None,
                "registered_max_s": round(again[-1], 2) if again else None,
            }
        everything = sorted(v[0] for v in results.values())
        out["p50_s"] = round(common.percentile(everything, 50), 2) if everything else None
        out["max_s"] = round(everything[-1], 2) if everything else None
        say("  {answered} of {jobs} answered again; p50 {p50_s} s, max {max_s} s".format(**out))
        return out
    finally:
        if host is not None:
            host.stop(timeout=20)
        cluster.close()


def watchMoves(cluster, jobIds, t0, limit):
    """
    Read C{listJobs} through B every 0.1 s until every job of C{jobIds} is
    ready on another server than A: the seconds after C{t0} each took.
    """
    rpc, moved = cluster.rpc(1), {}
    try:
        while len(moved) < len(jobIds) and time.monotonic() - t0 < limit:
            try:
                rows = rpc.jobmon.listJobs({"limit": 1000})
            except Exception:
                rows = []
            now = time.monotonic() - t0
            for row in rows:
                if (row["job_id"] not in moved and row["state"] == "ready"
                        and row.get("server") not in (None, "", cluster.ids[0])):
                    moved[row["job_id"]] = now
            time.sleep(0.1)
    finally:
        rpc("close")()
    return moved


def failoverPart(base, cfg):
    return {how: failoverRun(base, cfg, how) for how in ("kill", "term")}


# Report


def report(doc):
    """
    The results as Markdown.
    """
    parts = []
    tp = doc.get("throughput")
    if tp:
        rows = []
        for r in tp["runs"]:
            cpu = r["cpu_ms_per_query"]
            rows.append([r["setup"], r["repeat"], r["n"], r["qps"], r["p50_ms"], r["p99_ms"],
                         cpu["servers"], cpu["redis"], cpu["daemons"], cpu["clients"],
                         r["machine_busy_percent"]])
        text = "### Queries/s: three servers against one\n\n" + common.markdownTable(
            ["set-up", "run", "queries", "queries/s", "p50 ms", "p99 ms",
             "servers CPU ms/q (sum)", "Redis ms/q", "daemons ms/q", "clients ms/q",
             "machine busy % (of 200)"], rows)
        text += "\n\n" + summaryLine(tp["runs"])
        parts.append(text)
        routed = tp.get("routed")
        if routed:
            rows = []
            for kind in ("local", "routed"):
                r = routed[kind]
                cpu = r["cpu_ms_per_query"]
                rows.append([kind, r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
                             r["block_qps"], cpu["servers"], cpu["redis"]])
            text = "### The routed query's extra round trip\n\n" + common.markdownTable(
                ["query", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "queries/s in a row",
                 "servers CPU ms/q (sum)", "Redis ms/q"], rows)
            text += ("\n\nRouted - local: p50 +{} ms, p99 +{} ms. Target routed p50 <= local "
                     "+ {:g} ms: {}.".format(
                         routed["extra_p50_ms"], routed["extra_p99_ms"],
                         TARGET_ROUTED_EXTRA_MS,
                         "met" if routed["extra_p50_ms"] <= TARGET_ROUTED_EXTRA_MS
                         else "NOT met"))
            parts.append(text)
    sc = doc.get("scale")
    if sc:
        reg, idle, q = sc["registration"], sc["idle"], sc.get("queries")
        text = "### {} UDP jobs over three servers\n\n".format(sc["jobs"])
        text += (
            "Registered {registered} ({failed} failed) in {seconds} s: {per_s}/s; server CPU "
            "{scpu} ms and Redis CPU {rcpu} ms per registration.\n\n".format(
                scpu=reg["server_cpu_ms_each"], rcpu=reg["redis_cpu_ms_each"], **reg))
        text += common.markdownTable(
            ["", "servers RSS MiB", "Redis used_memory MiB", "Redis RSS MiB", "Redis keys"],
            [[label, " / ".join(str(common.mib(v)) for v in s["servers_rss_kib"]),
              round(s["redis"]["used_memory"] / 1048576.0, 1), common.mib(s["redis_rss_kib"]),
              s["redis"]["keys"]]
             for label, s in (("before", sc["before"]), ("after", sc["after"]),
                              ("at the end", sc["final"]))])
        text += (
            "\n\n{kib} KiB of server RSS and {rb} bytes of Redis memory per job. Idle over "
            "{secs} s: servers {scpu} % of a CPU each, Redis {rcpu} %.\n\n".format(
                kib=sc["server_kib_per_job"], rb=sc["redis_bytes_per_job"],
                secs=idle["seconds"],
                scpu=" / ".join(str(v) for v in idle["servers_cpu_percent"]),
                rcpu=idle["redis_cpu_percent"]))
        text += ("Times a server lost the store (its log's warnings): {}; found it again: "
                 "{}.\n\n".format(" / ".join(map(str, sc["store_lost"])),
                                   " / ".join(map(str, sc["store_back"]))))
        if q is None:
            text += "The queries failed: {}.".format(sc.get("queries_error"))
        else:
            rows = [[label, q[key]["n"], q[key]["p50_ms"], q[key]["p99_ms"], q[key]["max_ms"]]
                    for key, label in (
                        ("local", "stat, job held by A"),
                        ("routed", "stat, job held by B or C"),
                        ("unknown_job", "query of an unknown job (fault)"),
                        ("list_jobs_1000", "listJobs limit 1000 ({} rows)".format(
                            q["list_jobs_rows"])))]
            text += common.markdownTable(
                ["call through server A", "n", "p50 ms", "p99 ms", "max ms"], rows)
        parts.append(text)
    fo = doc.get("failover")
    if fo:
        rows = []
        for how, r in fo.items():
            for mode in MODES:
                m = r["modes"][mode]
                rows.append([how, mode, "{}/{}".format(m["answered"], r["jobs"] // 3),
                             m["p50_s"], m["max_s"], m["failed_queries"],
                             m["registered_p50_s"], m["registered_max_s"]])
            rows.append([how, "all", "{}/{}".format(r["answered"], r["jobs"]), r["p50_s"],
                         r["max_s"], "-", "-", "-"])
        text = "### Jobs of a stopped server answering again\n\n" + common.markdownTable(
            ["stop", "mode", "answered", "answered p50 s", "answered max s",
             "failed queries before", "registered elsewhere p50 s", "max s"], rows)
        verdicts = ["{}: {}".format(how, "met" if r["answered"] == r["jobs"]
                                    and r["max_s"] is not None
                                    and r["max_s"] <= TARGET_FAILOVER_S else "NOT met")
                    for how, r in fo.items()]
        text += "\n\nTarget every job answering within {:g} s: {}.".format(
            TARGET_FAILOVER_S, "; ".join(verdicts))
        parts.append(text)
    return "\n\n".join(parts)


def summaryLine(runs):
    """
    Ranges of queries/s and server CPU per query by set-up.
    """
    bits = []
    for name, _, _, _ in SETUPS:
        mine = [r for r in runs if r["setup"] == name]
        if not mine:
            continue
        qps = [r["qps"] for r in mine]
        cpu = [r["cpu_ms_per_query"]["servers"] for r in mine]
        bits.append("{}: {:.0f}-{:.0f} queries/s, {:.3f}-{:.3f} server ms/q".format(
            name, min(qps), max(qps), min(cpu), max(cpu)))
    return "Ranges over runs: " + "; ".join(bits) + "."


def run(cfg, parts):
    """
    Run the chosen parts; return their figures.
    """
    started = time.monotonic()
    deadline = started + cfg["max_minutes"] * 60
    base = Base()
    doc = {}
    try:
        if "throughput" in parts or "routed" in parts:
            if "throughput" in parts:
                doc["throughput"] = throughputPart(base, cfg, "routed" in parts)
            else:
                cluster = Cluster(base, 3)
                try:
                    cluster.startDaemons()
                    doc["throughput"] = {"runs": [], "routed": routedPart(cluster, cfg)}
                finally:
                    cluster.close()
        if "scale" in parts:
            doc["scale"] = scalePart(base, cfg, deadline)
        if "failover" in parts:
            doc["failover"] = failoverPart(base, cfg)
    finally:
        common.Proc.stopAll()
        if cfg.get("keep"):
            say("kept {}".format(base.tmp))
        else:
            base.close()
    doc["seconds"] = round(time.monotonic() - started, 1)
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parser.add_argument("--parts", default="throughput,routed,scale,failover",
                        help="comma-separated subset of throughput,routed,scale,failover")
    parser.add_argument("--clients", type=int, help="concurrent client processes (4)")
    parser.add_argument("--seconds", type=float, help="seconds of each throughput run (10)")
    parser.add_argument("--repeats", type=int, help="runs of each throughput set-up (2)")
    parser.add_argument("-n", type=int, help="pairs of local and routed queries (2000)")
    parser.add_argument("--jobs", type=int, help="UDP jobs of the scale part (60000)")
    parser.add_argument("--idle-seconds", type=float,
                        help="seconds the idle CPU is measured with every job (60)")
    parser.add_argument("--per-mode", type=int, help="failover jobs per wake mode (30)")
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="registration stops after this long from the start (20)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (the servers' logs)")
    parser.add_argument("--daemon-host", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.daemon_host:
        with open(args.daemon_host) as f:
            return daemonHostMain(json.load(f))
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("clients", "seconds", "repeats", "n", "jobs", "idle_seconds", "per_mode"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg["max_minutes"] = args.max_minutes
    cfg["keep"] = args.keep
    parts = set(args.parts.split(","))
    if not parts <= {"throughput", "routed", "scale", "failover"}:
        parser.error("--parts: choose among throughput,routed,scale,failover")
    if not (1 <= cfg["clients"] <= 32 and 0.5 <= cfg["seconds"] <= 600
            and 1 <= cfg["repeats"] <= 20 and 1 <= cfg["n"] <= 100000
            and 0 <= cfg["jobs"] <= 200000 and 1 <= cfg["per_mode"] <= 200):
        parser.error("sizes out of range")
    common.installSignalHandlers()
    doc = {"benchmark": "cluster", "machine": common.machine(), "config": cfg,
           "server_options": LIMITS_LIFTED}
    doc.update(run(cfg, parts))
    common.emit(doc, report(doc), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

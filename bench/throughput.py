"""
Query throughput and round trip of a real server and daemon, measured as
issue 14 states its targets: the standard library's C{xmlrpc.client} with
keep-alive, C{stat} queries, with 10,000 other jobs registered.

A throwaway PKI, a real C{twistd -n jobmon-server} and a real TCP-wake
C{jobmon-daemon} for C{job.1} (L{common.BenchEnv}).  Clients are
C{xmlrpc.client.ServerProxy}s over C{xmlrpc.client.SafeTransport}, whose
C{ssl} context loads alice's proxy file (RFC 3820 proxy, key and her
certificate, sent as the chain) and trusts the test CA; the transport keeps
its one HTTPS connection alive.

  1. C{--jobs} simulated poll-mode jobs (C{bench.sim.NNNNN}) are
     registered first, over the clients' kept-alive connections (a poll
     job that does not poll is kept C{--reregister-interval} x
     C{--missed-registrations}, 180 s by default: longer than a run).
     Their count is checked with C{listJobs} before and after measuring,
     which starts once the server is idle again.
  2. C{single}: one client makes C{-n} sequential C{stat job.log} queries
     (after C{--warmup}): round trip p50/p99, and the server's and the
     daemon's CPU time per query (process CPU time from C{/proc/PID/stat}
     over the queries).
  3. C{concurrent}: C{--clients} client processes, each with its own
     connection, query as fast as they can for C{--seconds}: queries per
     second in all, round trips, server and daemon CPU per query, and
     queries per second per server core (1000 / server CPU ms per query).

Usage::

    .venv/bin/python bench/throughput.py [-n 2000] [--warmup 200]
        [--seconds 10] [--clients 4] [--jobs 10000] [--json [PATH]]

The defaults take about a minute.  The table is printed in Markdown;
C{--json} prints JSON instead (or, with a PATH, writes it there as well as
printing the table).
"""

import argparse
import multiprocessing
import os
import secrets
import ssl
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets sys.path for jobmon)

TARGET_CPU_MS = 0.5
TARGET_P50_MS = 1.5
TARGET_P99_MS = 4.0

SIM_PREFIX = "bench.sim."
"""The ids of the simulated jobs start with this."""

LIST_PAGE = 1000
"""Jobs per C{listJobs} page (the server's largest)."""

WORKER_TIMEOUT = 600.0
"""Seconds the parent waits for a client process's answer."""


def clientContext(proxy, caDir):
    """
    An C{ssl} client context presenting alice's proxy file (the proxy, its
    key, and her certificate as the chain) and trusting the test CA.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(capath=caDir)
    context.load_cert_chain(proxy)
    return context


def serverProxy(url, context):
    """
    A standard library C{ServerProxy} whose transport keeps one HTTPS
    connection alive.
    """
    transport = xmlrpc.client.SafeTransport(use_builtin_types=True, context=context)
    return xmlrpc.client.ServerProxy(url, transport=transport, use_builtin_types=True)


def statRequest():
    """
    The C{stat} request for C{job.log}.
    """
    return {"op": "stat", "path": "job.log", "timeout": 30.0}


def checkStat(result):
    """
    Make sure a C{stat} result is the job's log.
    """
    if result.get("size") != common.LOG_SIZE:
        raise AssertionError("unexpected stat result {!r}".format(result))


def register(rpc, start, count):
    """
    Register the simulated poll jobs C{start} to C{start + count - 1}.

    @return: seconds taken.
    """
    t0 = time.perf_counter()
    for i in range(start, start + count):
        info = {"host": "sim", "wake": "poll", "instance": secrets.token_hex(8), "pid": 1}
        rpc.jobmon.registerJob("{}{:05d}".format(SIM_PREFIX, i), info)
    return time.perf_counter() - t0


def countJobs(rpc):
    """
    The caller's jobs by mode, from C{listJobs} a page at a time.
    """
    counts, after = {}, None
    while True:
        options = {"limit": LIST_PAGE}
        if after is not None:
            options["after"] = after
        page = rpc.jobmon.listJobs(options)
        for job in page:
            counts[job["mode"]] = counts.get(job["mode"], 0) + 1
        if len(page) < LIST_PAGE:
            return counts
        after = page[-1]["job_id"]


def queryLoop(rpc, n=None, until=None):
    """
    C{stat} queries, C{n} of them or until C{time.perf_counter()} reaches
    C{until}.

    @return: the seconds each took.
    """
    request = statRequest()
    query = rpc.jobmon.query
    clock = time.perf_counter
    durations = []
    while (n is None or len(durations) < n) and (until is None or clock() < until):
        t0 = clock()
        result = query(common.JOB_ID, request)
        durations.append(clock() - t0)
        if len(durations) == 1:
            checkStat(result)
    return durations


def clientProcess(conn, url, proxy, caDir):
    """
    A client process: one connection, commands from the parent over
    C{conn}: C{("register", start, count)}, C{("warmup", n)},
    C{("run", startAt, seconds)} (on C{time.perf_counter}'s clock, shared
    by the processes of one machine on Linux), C{("stop",)}.
    """
    rpc = serverProxy(url, clientContext(proxy, caDir))
    try:
        while True:
            command = conn.recv()
            try:
                if command[0] == "register":
                    conn.send(("ok", register(rpc, command[1], command[2])))
                elif command[0] == "warmup":
                    queryLoop(rpc, n=command[1])
                    conn.send(("ok", None))
                elif command[0] == "run":
                    startAt, seconds = command[1], command[2]
                    while time.perf_counter() < startAt:
                        time.sleep(0.0005)
                    cpu0 = time.process_time()
                    durations = queryLoop(rpc, until=startAt + seconds)
                    conn.send(("ok", {"durations": durations,
                                      "cpu": time.process_time() - cpu0,
                                      "ended": time.perf_counter()}))
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
    The client processes, each with its own connection.
    """

    def __init__(self, env, count):
        context = multiprocessing.get_context("fork")
        self.procs, self.conns = [], []
        for _ in range(count):
            mine, theirs = context.Pipe()
            proc = context.Process(target=clientProcess,
                                   args=(theirs, env.url, env.proxy, env.caDir), daemon=True)
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(mine)

    def all(self, commands):
        """
        Send each process its command, and return their answers.
        """
        for conn, command in zip(self.conns, commands):
            conn.send(command)
        answers = []
        for conn in self.conns:
            if not conn.poll(WORKER_TIMEOUT):
                raise RuntimeError("a client process did not answer in time")
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError("a client process failed: " + value)
            answers.append(value)
        return answers

    def close(self):
        """
        Stop the processes.
        """
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


def cpuOf(env):
    """
    The server's and the daemon's CPU seconds so far.
    """
    return {"server": common.cpuSeconds(env.server.pid),
            "daemon": common.cpuSeconds(env.daemon.pid)}


def cpuPerQuery(before, after, queries):
    """
    CPU milliseconds per query of each process, from two L{cpuOf}.
    """
    return {role: round((after[role] - before[role]) * 1000.0 / queries, 3)
            for role in before if before[role] is not None and after[role] is not None}


def perCore(cpuMs):
    """
    Queries per second one server core serves at C{cpuMs} per query.
    """
    return round(1000.0 / cpuMs, 1) if cpuMs else None


def measure(env, n, warmup, seconds, clients, jobs):
    """
    Register the jobs, then measure the single client and the concurrent
    clients (see the module docstring).
    """
    out = {}
    rpc = serverProxy(env.url, clientContext(env.proxy, env.caDir))
    procs = Clients(env, clients)
    try:
        if jobs:
            common.say("registering {} poll jobs over {} connections".format(jobs, clients))
            share = [(i * jobs // clients, (i + 1) * jobs // clients) for i in range(clients)]
            t0 = time.perf_counter()
            cpu0 = cpuOf(env)
            procs.all([("register", a, b - a) for a, b in share])
            took = time.perf_counter() - t0
            out["registration"] = {
                "jobs": jobs, "seconds": round(took, 2), "per_s": round(jobs / took, 1),
                "server_cpu_ms_per_registration": cpuPerQuery(
                    cpu0, cpuOf(env), jobs).get("server"),
            }
            # The server may still be writing the registrations (history):
            # measure from when it is idle.
            common.settle(env.server.pid, limit=60.0)
        counts = countJobs(rpc)
        out["jobs_before"] = counts
        if counts.get("poll", 0) != jobs or counts.get("tcp", 0) != 1:
            raise RuntimeError("expected {} poll jobs and 1 TCP job registered, found {}".format(
                jobs, counts))
        common.say("{} jobs registered; single client: {} x stat (+{} warm-up)".format(
            sum(counts.values()), n, warmup))

        queryLoop(rpc, n=warmup)
        cpu0 = cpuOf(env)
        client0 = time.process_time()
        t0 = time.perf_counter()
        durations = queryLoop(rpc, n=n)
        elapsed = time.perf_counter() - t0
        cpu = cpuPerQuery(cpu0, cpuOf(env), n)
        cpu["client"] = round((time.process_time() - client0) * 1000.0 / n, 3)
        single = common.summarize(durations)
        single.update(qps=round(n / elapsed, 1), cpu_ms_per_query=cpu,
                      server_qps_per_core=perCore(cpu.get("server")))
        out["single"] = single

        common.say("{} clients, {:g} s of stat each".format(clients, seconds))
        procs.all([("warmup", max(1, warmup // clients))] * clients)
        startAt = time.perf_counter() + 0.2
        cpu0 = cpuOf(env)
        answers = procs.all([("run", startAt, seconds)] * clients)
        cpu1 = cpuOf(env)
        ended = max(a["ended"] for a in answers)
        allDurations = [d for a in answers for d in a["durations"]]
        total = len(allDurations)
        cpu = cpuPerQuery(cpu0, cpu1, total)
        cpu["client"] = round(sum(a["cpu"] for a in answers) * 1000.0 / total, 3)
        concurrent = common.summarize(allDurations)
        concurrent.update(
            clients=clients, seconds=round(ended - startAt, 2),
            qps=round(total / (ended - startAt), 1),
            per_client=[len(a["durations"]) for a in answers],
            cpu_ms_per_query=cpu, server_qps_per_core=perCore(cpu.get("server")),
        )
        out["concurrent"] = concurrent
        out["jobs_after"] = countJobs(rpc)
        if out["jobs_after"] != counts:
            raise RuntimeError("registered jobs changed while measuring: {} then {}".format(
                counts, out["jobs_after"]))
    finally:
        procs.close()
        rpc("close")()
    return out


def table(results):
    """
    The results as a Markdown table, with the targets of issue 14.
    """
    headers = ["run", "queries", "queries/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
               "server CPU ms/q", "queries/s per server core", "daemon CPU ms/q",
               "client CPU ms/q"]
    rows = []
    for name, label in (("single", "1 client"),
                        ("concurrent", "{} clients".format(
                            results.get("concurrent", {}).get("clients")))):
        r = results.get(name)
        if r is None:
            continue
        cpu = r["cpu_ms_per_query"]
        rows.append([label, r["n"], r["qps"], r["p50_ms"], r["p90_ms"], r["p99_ms"],
                     r["max_ms"], cpu.get("server", "-"), r["server_qps_per_core"] or "-",
                     cpu.get("daemon", "-"), cpu.get("client", "-")])
    text = common.markdownTable(headers, rows)
    notes = ["Jobs registered while measuring: {}.".format(
        ", ".join("{} {}".format(v, k) for k, v in sorted(results["jobs_before"].items())))]
    reg = results.get("registration")
    if reg:
        notes.append("Registration: {} jobs in {} s ({}/s), server CPU {} ms each.".format(
            reg["jobs"], reg["seconds"], reg["per_s"], reg["server_cpu_ms_per_registration"]))

    def met(ok):
        return "met" if ok else "NOT met"

    s = results["single"]
    notes.append("Target round trip p50 <= {:g} ms: {} ({:.2f}); p99 <= {:g} ms: {} ({:.2f}).".format(
        TARGET_P50_MS, met(s["p50_ms"] <= TARGET_P50_MS), s["p50_ms"],
        TARGET_P99_MS, met(s["p99_ms"] <= TARGET_P99_MS), s["p99_ms"]))
    for name in ("single", "concurrent"):
        cpu = results[name]["cpu_ms_per_query"].get("server")
        if cpu is not None:
            notes.append("Target server CPU <= {:g} ms/query ({}): {} ({:.3f}).".format(
                TARGET_CPU_MS, name, met(cpu <= TARGET_CPU_MS), cpu))
    return text + "\n\n" + "\n".join(notes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000,
                        help="timed queries of the single client (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed queries first (200)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds the concurrent clients query (10)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--jobs", type=int, default=10000,
                        help="simulated poll jobs registered besides the daemon's (10000)")
    common.jsonOption(parser, "table")
    args = parser.parse_args(argv)
    if not (1 <= args.n <= 1000000 and 0 <= args.warmup and 0.5 <= args.seconds <= 600
            and 1 <= args.clients <= 64 and 0 <= args.jobs <= 99999):
        parser.error("need 1 <= -n <= 1e6, --warmup >= 0, 0.5 <= --seconds <= 600, "
                     "1 <= --clients <= 64, 0 <= --jobs <= 99999")
    common.installSignalHandlers()
    with common.BenchEnv(wake="tcp") as env:
        results = measure(env, args.n, args.warmup, args.seconds, args.clients, args.jobs)
    document = {
        "benchmark": "throughput",
        "machine": common.machine(),
        "n": args.n,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "clients": args.clients,
        "jobs": args.jobs,
        "results": results,
    }
    common.emit(document, table(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
Round-trip latency of JobMon queries through a real server and daemon.

One in-process L{jobmon.client.JobMonClient} (one kept-alive HTTPS
connection) makes N sequential calls of each kind, after a warm-up:

  - C{whoami}: answered by the server alone, for comparison;
  - C{stat} of C{job.log};
  - C{ls} of a directory of 20 files;
  - C{tail -n 10} of a 1 MiB log;
  - C{cat} of a 4 KiB file.

With the default TCP wake, each query goes client -> server (XML-RPC),
server -> daemon (wake line), daemon -> server (C{getJobToDo}), the file
operation in a thread, daemon -> server (C{outputJobResult}), server ->
client.  With C{--wake udp} the wake is a datagram the server broadcasts to
C{127.255.255.255} (the daemon runs under L{loopback_twistd}).  With
C{--wake poll} the daemon's pending C{waitForWork} call returns the request
itself (no wake line, no C{getJobToDo}).  The difference between a query
and C{whoami} is the cost of the daemon leg.

Besides latencies, the table gives queries per second and the CPU time
each process (client, server, daemon) spent per query.

Usage::

    .venv/bin/python bench/roundtrip.py [-n 2000] [--warmup 100]
        [--wake tcp|udp|poll] [--ops stat,ls,...] [--json [PATH]]

The table is printed in Markdown; C{--json} prints JSON instead (or, with a
PATH, writes it there as well as printing the table).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets sys.path for jobmon)
from common import JOB_ID  # noqa: E402

TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0


def _checkLs(result):
    assert len(result["entries"]) == common.DIR_FILES, result


def _checkStat(result):
    assert result["size"] == common.LOG_SIZE, result


def _checkTail(result):
    assert result["data"].count(b"\n") == 10, result


def _checkCat(result):
    assert len(result["data"]) == common.SMALL_SIZE, result


OPS = [
    ("whoami", "server only: jobmon.whoami()", lambda c: c.whoami(), None),
    ("stat", "stat job.log", lambda c: c.stat(JOB_ID, "job.log"), _checkStat),
    ("ls", "ls dir20 (20 files)", lambda c: c.ls(JOB_ID, "dir20"), _checkLs),
    (
        "tail",
        "tail -n 10 job.log (1 MiB)",
        lambda c: c.tail(JOB_ID, "job.log", lines=10),
        _checkTail,
    ),
    (
        "cat",
        "cat small.bin (4 KiB)",
        lambda c: c.cat(JOB_ID, "small.bin", 0, common.SMALL_SIZE),
        _checkCat,
    ),
]
"""(name, description, call, check of the result)."""


def measure(env, n, warmup, ops=None):
    """
    Run each op C{warmup} times, then C{n} timed times, sequentially on one
    client.

    @return: a dict from op name to its summary (see L{common.summarize}),
        with C{qps} and CPU milliseconds per query of each process.
    """
    wanted = set(ops) if ops else None
    results = {}
    client = env.client()
    try:
        for name, description, call, check in OPS:
            if wanted is not None and name not in wanted:
                continue
            common.say("{} x {} (+{} warm-up)".format(name, n, warmup))
            first = call(client)
            if check is not None:
                check(first)
            for _ in range(warmup):
                call(client)
            cpu0 = {
                "server": common.cpuSeconds(env.server.pid),
                "daemon": common.cpuSeconds(env.daemon.pid) if env.daemon else None,
            }
            client0 = time.process_time()
            durations = []
            clock = time.perf_counter
            start = clock()
            for _ in range(n):
                t0 = clock()
                call(client)
                durations.append(clock() - t0)
            elapsed = clock() - start
            summary = common.summarize(durations)
            summary["description"] = description
            summary["qps"] = round(n / elapsed, 1)
            summary["cpu_ms_per_query"] = {
                "client": round((time.process_time() - client0) * 1000.0 / n, 3)
            }
            for role, before in cpu0.items():
                proc = env.server if role == "server" else env.daemon
                after = common.cpuSeconds(proc.pid) if proc is not None else None
                if before is not None and after is not None:
                    summary["cpu_ms_per_query"][role] = round((after - before) * 1000.0 / n, 3)
            results[name] = summary
    finally:
        client.close()
    return results


def table(results):
    """
    The results as a Markdown table, with the daemon leg (query p50 minus
    C{whoami} p50).
    """
    headers = [
        "op", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "queries/s",
        "CPU ms/q client", "server", "daemon",
    ]
    rows = []
    base = results.get("whoami", {}).get("p50_ms")
    for name, _, _, _ in OPS:
        r = results.get(name)
        if r is None:
            continue
        cpu = r.get("cpu_ms_per_query", {})
        rows.append([
            r["description"], r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
            r["mean_ms"], r["qps"], cpu.get("client", "-"), cpu.get("server", "-"),
            cpu.get("daemon", "-") if name != "whoami" else "-",
        ])
    text = common.markdownTable(headers, rows)
    notes = []
    if base is not None and "stat" in results:
        notes.append(
            "Daemon leg (stat p50 - whoami p50): {:.2f} ms.".format(
                results["stat"]["p50_ms"] - base
            )
        )
    if "stat" in results:
        s = results["stat"]
        notes.append(
            "Target stat p50 <= {:g} ms: {} ({:.2f}); p99 <= {:g} ms: {} ({:.2f}).".format(
                TARGET_P50_MS, "met" if s["p50_ms"] <= TARGET_P50_MS else "NOT met", s["p50_ms"],
                TARGET_P99_MS, "met" if s["p99_ms"] <= TARGET_P99_MS else "NOT met", s["p99_ms"],
            )
        )
    if notes:
        text += "\n\n" + "\n".join(notes)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="timed queries per op (2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed queries first (100)")
    parser.add_argument("--ops", default=None,
                        help="comma-separated subset of: " + ",".join(o[0] for o in OPS))
    common.jsonOption(parser, "table")
    parser.add_argument("--wake", choices=sorted(common.WAKE_READY), default="tcp",
                        help="the daemon's wake mode (tcp)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.n > 1000000 or args.warmup < 0:
        parser.error("-n must be 1..1000000 and --warmup >= 0")
    common.installSignalHandlers()
    ops = args.ops.split(",") if args.ops else None
    known = [o[0] for o in OPS]
    if ops is not None and not set(ops) <= set(known):
        parser.error("--ops: choose among " + ",".join(known))
    with common.BenchEnv(wake=args.wake) as env:
        results = measure(env, args.n, args.warmup, ops)
    document = {
        "benchmark": "roundtrip",
        "wake": args.wake,
        "machine": common.machine(),
        "n": args.n,
        "warmup": args.warmup,
        "results": results,
    }
    common.emit(document, table(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
Run the JobMon benchmarks with moderate sizes and print their tables
(C{make bench}): round trips (latency, queries/s, CPU per query),
C{jobmon-query} start-up, and the ops that wait or read big things
(C{tail -f} latency and the idle follower's CPU, C{tail}/C{cat} of a
256 MiB file, C{ps} of 500 processes), and, when C{redis-server} is
installed, a cluster on a real Redis (queries/s of three servers against
one, the routed query's extra round trip: L{cluster}'s first two parts at
moderate sizes, about 40 s).  The whole run takes about two minutes on
two cores (the ops part about 40 s); the JSON of every figure goes to
C{bench/out/results.json}.

Usage (from the repository root)::

    .venv/bin/python bench/run_all.py [-n 1000] [--warmup 100] [--repeats 30]
        [--no-ops | --ops-full | --quick] [--no-cluster]

C{--quick} is a smoke run (100 round trips per op, 3 start-ups, the ops
benchmark's smallest sizes, the cluster's smoke sizes), to check that
everything works.

Each benchmark can also be run alone, with its full defaults:
C{bench/roundtrip.py}, C{bench/cli_startup.py}, C{bench/ops.py} (a 1 GiB
file); the capacity, hardening, token and TLS memory benchmarks
(C{bench/capacity.py}, C{bench/hardening.py}, C{bench/tokens.py},
C{bench/tls_memory.py}) and the whole cluster benchmark
(C{bench/cluster.py}: 60,000 UDP jobs, failover) take minutes and are run
on their own.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli_startup  # noqa: E402
import cluster  # noqa: E402
import common  # noqa: E402  (puts the repository root on sys.path)
import ops  # noqa: E402
import roundtrip  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000,
                        help="timed round trips per op (1000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed queries first (100)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="runs of each command in the start-up benchmark (30)")
    parser.add_argument("--no-ops", dest="ops", action="store_false",
                        help="skip the ops benchmark (tail -f, big files, many processes)")
    parser.add_argument("--ops-full", action="store_true",
                        help="run the ops benchmark at its full sizes (a 1 GiB file, "
                             "100 tail -f lines: about 90 s instead of 40)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 round trips per op, 3 start-ups, the ops "
                             "benchmark's smallest sizes")
    parser.add_argument("--no-cluster", dest="cluster", action="store_false",
                        help="skip the cluster benchmark (it is skipped anyway without "
                             "redis-server)")
    parser.add_argument("--out", default=os.path.join(common.BENCH, "out", "results.json"),
                        help="where to write the JSON (bench/out/results.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.warmup, args.repeats = 100, 10, 3
    if not (1 <= args.n <= 100000 and 1 <= args.repeats <= 1000 and args.warmup >= 0):
        parser.error("sizes out of range")
    if args.quick and args.ops_full:
        parser.error("--quick and --ops-full exclude each other")
    common.installSignalHandlers()
    started = time.monotonic()
    machine = common.machine()
    document = {"machine": machine}
    print("# JobMon benchmarks\n")
    print("Machine: {} CPUs, {}; Python {}, Twisted {}, {} (pyOpenSSL {} on {}).\n".format(
        machine["nproc"], machine.get("cpu"), machine["python"], machine.get("twisted"),
        machine["ssl_stdlib"], machine.get("pyopenssl"), machine.get("ssl_pyopenssl")))
    sys.stdout.flush()

    with common.BenchEnv() as env:
        rt = roundtrip.measure(env, args.n, args.warmup)
        document["roundtrip"] = {"n": args.n, "warmup": args.warmup, "results": rt}
        print("## Round trips (one kept-alive client, sequential, TCP wake)\n")
        print(roundtrip.table(rt) + "\n")
        sys.stdout.flush()
        cli = cli_startup.measure(env, args.repeats)
        document["cli_startup"] = {"repeats": args.repeats, "results": cli}
        print("## jobmon-query start-up (whole process, wall time)\n")
        print(cli_startup.table(cli) + "\n")
        sys.stdout.flush()

    if args.ops:
        sizes = dict(ops.QUICK if args.quick else ops.FULL if args.ops_full else ops.MODERATE)
        results = ops.run(sizes)
        document["ops"] = {"config": sizes, "results": results}
        print("## Ops: tail -f, big files, many processes\n")
        print(ops.tables(results) + "\n")

    if args.cluster and shutil.which("redis-server") is None:
        print("(cluster benchmark skipped: redis-server is not installed)\n")
    elif args.cluster:
        cfg = dict(cluster.QUICK if args.quick else cluster.MODERATE)
        results = cluster.run(cfg, {"throughput", "routed"})
        document["cluster"] = {"config": cfg, "results": results}
        print("## A cluster on Redis: three servers against one, routed queries\n")
        print(cluster.report(results) + "\n")

    document["seconds"] = round(time.monotonic() - started, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(document, f, indent=2)
    print("All figures as JSON in {} ({:.0f} s in all).".format(
        os.path.relpath(args.out, common.ROOT), document["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

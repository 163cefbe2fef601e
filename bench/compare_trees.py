"""
The same benchmarks on two source trees of JobMon in one interleaved run: a
checkout from before a change (C{--old}) and this tree (C{--new}), each
measured by its own C{bench/} scripts against its own code.

    .venv/bin/python bench/compare_trees.py --old /path/to/old/checkout
        [--pairs 3] [--capacity-pairs 3]
        [--figures roundtrip,poll,cli,follow,capacity,idle,throughput]
        [--rt-n 1000] [--rt-warmup 100] [--cli-repeats 30] [--tcp-jobs 2000]
        [--idle-seconds 30] [--precise-cpu] [--tp-n 2000] [--tp-seconds 10]
        [--tp-jobs 10000] [--out DIR]
    .venv/bin/python bench/compare_trees.py --resummarize DIR

For each figure the runs alternate between the trees (old, new; then new,
old; and so on), so that drift of the machine touches both alike, and the
table gives the median of each tree's runs, the change of the medians and
the range of each.  Each run is a child process started from the tree's
root with C{PYTHONPATH} set to it, which imports that tree's
C{bench/common.py} and runs that tree's script (C{roundtrip.py},
C{cli_startup.py}, C{ops.py}, C{capacity.py}, C{throughput.py}) with the
same options for both.  A tree without the script (C{throughput.py} is
newer than some trees) runs the newer tree's script, with its own
C{bench/common.py} and code.

Three things are changed in the child, without touching either tree:

  - C{common.TWISTD} becomes a launcher of L{tree_twistd}, which gives
    C{twistd} the C{jobmon-server} and C{jobmon-daemon} plugins of the
    tree being measured (the installed plugins point at one layout only).
    Each server and daemon logs which files its JobMon modules came from;
    the run fails if any came from elsewhere than its tree.
  - An older C{ops.py} whose C{tail -f} daemon stamps each look at the file
    (C{STAMPED_DAEMON}, a wrapper of C{followOnce} that writes a line per
    look) runs its daemon unstamped, and derives the looks of the idle cost
    from the check interval, as the newer script does: both trees' daemons
    then run uninstrumented and are measured alike.
  - C{ops.py}'s C{IDLE_SECONDS} (4 s) becomes C{--idle-seconds} for both
    trees: CPU time is read from C{/proc} in 10 ms ticks (2.5 ms/s over
    4 s), and the daemon's periodic work (such as a credential check every
    15 s) falls into a 4 s window only now and then.

With C{--precise-cpu}, C{capacity.py} reads the server's CPU time exactly
(L{preciseCPUSeconds}) and its idle and ping windows last C{--idle-seconds}.
The figure C{idle} is not a script of the trees: L{idleProbe} runs in the
child with the tree's C{common.BenchEnv} and reads the exact CPU time of an
idle server and daemon, without and then with a C{tail -f} waiting.

Everything runs on 127.0.0.1; every child is bounded in time.  The raw
documents of every run, their logs and a JSON summary are kept in C{--out}.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
"""This directory (of the newer tree)."""

TREE_TWISTD = os.path.join(BENCH, "tree_twistd.py")

RUN_TIMEOUT = 1800.0
"""Seconds one run may take before it is killed."""


# -- figures ------------------------------------------------------------------


def _get(doc, *path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _stepMean(doc, key):
    steps = _get(doc, "tcp", "steps") or []
    values = [s[key] for s in steps if s.get(key) is not None]
    return round(statistics.mean(values), 3) if values else None


def _roundtrip(wake):
    def args(opts, out):
        return ["--ops", "whoami,stat", "-n", str(opts.rt_n), "--warmup", str(opts.rt_warmup),
                "--wake", wake, "--json", "-"]

    def metrics(doc):
        r = doc["results"]
        return [
            ("stat p50 ms", _get(r, "stat", "p50_ms")),
            ("stat p99 ms", _get(r, "stat", "p99_ms")),
            ("stat server CPU ms/query", _get(r, "stat", "cpu_ms_per_query", "server")),
            ("stat daemon CPU ms/query", _get(r, "stat", "cpu_ms_per_query", "daemon")),
            ("stat client CPU ms/query", _get(r, "stat", "cpu_ms_per_query", "client")),
            ("whoami p50 ms", _get(r, "whoami", "p50_ms")),
            ("whoami server CPU ms/query", _get(r, "whoami", "cpu_ms_per_query", "server")),
        ]

    return "roundtrip.py", args, metrics


def _cliArgs(opts, out):
    return ["-r", str(opts.cli_repeats), "--json", "-"]


def _cliMetrics(doc):
    r = doc["results"]
    return [
        ("python -c pass p50 ms", _get(r, "bare", "p50_ms")),
        ("import jobmon.cli over bare ms", _get(r, "import", "over_bare_p50_ms")),
        ("jobmon-query tail -n 10 over bare ms", _get(r, "query", "over_bare_p50_ms")),
        ("the same, not byte-compiled, over bare ms",
         _get(r, "query_nocache", "over_bare_p50_ms")),
    ]


def _followArgs(opts, out):
    return ["--parts", "follow", "--json", "-"]


def _followMetrics(doc):
    f = doc["results"]["follow"]
    return [
        ("tail -f write to print p50 ms", _get(f, "latency", "p50_ms")),
        ("tail -f write to print p99 ms", _get(f, "latency", "p99_ms")),
        ("tail -f write to print mean ms", _get(f, "latency", "mean_ms")),
        ("tail -f write to print max ms", _get(f, "latency", "max_ms")),
        ("idle follower: daemon CPU ms/s", _get(f, "idle", "cpu_ms_per_s")),
    ]


def _capacityArgs(opts, out):
    return ["--parts", "tcp", "--tcp-jobs", str(opts.tcp_jobs), "--no-fd-edge",
            "--max-minutes", "20", "--json", out]


def _capacityMetrics(doc):
    return [
        ("server KiB per idle TCP-wake job (VmRSS)", _get(doc, "tcp", "kib_per_connection")),
        ("the same, anonymous memory (RssAnon)", _get(doc, "tcp", "anon_kib_per_connection")),
        ("server idle CPU % with every channel open", _get(doc, "tcp", "idle_cpu_percent")),
        ("server CPU ms per keep-alive ping",
         _get(doc, "tcp", "pings", "server_cpu_ms_per_ping")),
        ("server CPU ms per wake connection (ramp)", _stepMean(doc, "connect_cpu_ms")),
        ("server CPU ms per registration (ramp)", _stepMean(doc, "register_cpu_ms")),
    ]


def _idleArgs(opts, out):
    return ["--seconds", str(opts.idle_seconds)]


def _idleMetrics(doc):
    return [
        ("idle server, no query: CPU ms/s", _get(doc, "quiet", "server", "ms_per_s")),
        ("idle daemon, no query: CPU ms/s", _get(doc, "quiet", "daemon", "ms_per_s")),
        ("idle daemon, one tail -f waiting: CPU ms/s",
         _get(doc, "follower", "daemon", "ms_per_s")),
        ("  of which the reactor thread", _get(doc, "follower", "daemon", "main_ms_per_s")),
        ("  of which other threads", _get(doc, "follower", "daemon", "threads_ms_per_s")),
        ("idle server (one daemon, one tail -f): CPU ms/s",
         _get(doc, "follower", "server", "ms_per_s")),
    ]


def _throughputArgs(opts, out):
    return ["-n", str(opts.tp_n), "--seconds", str(opts.tp_seconds), "--jobs",
            str(opts.tp_jobs), "--json", "-"]


def _throughputMetrics(doc):
    r = doc["results"]
    return [
        ("1 client: stat p50 ms", _get(r, "single", "p50_ms")),
        ("1 client: stat p99 ms", _get(r, "single", "p99_ms")),
        ("1 client: server CPU ms/query", _get(r, "single", "cpu_ms_per_query", "server")),
        ("1 client: queries/s per server core", _get(r, "single", "server_qps_per_core")),
        ("1 client: daemon CPU ms/query", _get(r, "single", "cpu_ms_per_query", "daemon")),
        ("concurrent: queries/s in all", _get(r, "concurrent", "qps")),
        ("concurrent: stat p50 ms", _get(r, "concurrent", "p50_ms")),
        ("concurrent: stat p99 ms", _get(r, "concurrent", "p99_ms")),
        ("concurrent: server CPU ms/query",
         _get(r, "concurrent", "cpu_ms_per_query", "server")),
        ("concurrent: queries/s per server core", _get(r, "concurrent", "server_qps_per_core")),
        ("concurrent: daemon CPU ms/query",
         _get(r, "concurrent", "cpu_ms_per_query", "daemon")),
        ("server CPU ms per registration", _get(r, "registration",
                                                "server_cpu_ms_per_registration")),
    ]


FIGURES = {
    "roundtrip": _roundtrip("tcp"),
    "poll": _roundtrip("poll"),
    "cli": ("cli_startup.py", _cliArgs, _cliMetrics),
    "follow": ("ops.py", _followArgs, _followMetrics),
    "capacity": ("capacity.py", _capacityArgs, _capacityMetrics),
    "idle": (None, _idleArgs, _idleMetrics),
    "throughput": ("throughput.py", _throughputArgs, _throughputMetrics),
}
"""Figure name: (script, its arguments from the options and the JSON output
path, the metrics from its JSON document as C{(label, value)}).  The script
L{None} is L{idleProbe}, run with the tree's C{bench/common.py}."""


# -- the child: one script of one tree ---------------------------------------


PLAIN_FOLLOW_DAEMON = r"""
import runpy, sys
sys.argv = sys.argv[2:]
runpy.run_path({!r}, run_name="__main__")
""".format(TREE_TWISTD)
"""Replaces an older C{ops.py}'s C{STAMPED_DAEMON}: the same command line
(C{-c CODE STAMPFILE TWISTD ARGS...}), the daemon run by L{tree_twistd}
without the stamping wrapper."""


def _idleFollowCost(ops, common):
    """
    The idle cost of a follower as the newer C{ops.py} measures it (looks
    derived from the check interval), for an older C{ops.py}.
    """

    def idle(daemon, stampsPath, seconds):
        cpu0, started = common.cpuSeconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        elapsed, cpu1 = time.monotonic() - started, common.cpuSeconds(daemon.pid)
        if cpu0 is None or cpu1 is None:
            return None
        looks = elapsed * 1000.0 / ops.CHECK_INTERVAL_MS
        return {
            "seconds": round(elapsed, 2),
            "looks": round(looks),
            "cpu_ms_per_s": round((cpu1 - cpu0) * 1000.0 / elapsed, 2),
            "cpu_ms_per_look": round((cpu1 - cpu0) * 1000.0 / looks, 3),
        }

    return idle


def setupTree(root):
    """
    Import the tree's C{bench/common.py}, its twistd processes to be
    started through L{tree_twistd}.

    @return: that C{common} module.
    """
    import importlib

    bench = os.path.join(root, "bench")
    # This directory holds the newer tree's common.py: it must not shadow
    # the measured tree's.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != BENCH]
    sys.path.insert(0, bench)
    os.chdir(root)
    common = importlib.import_module("common")
    assert os.path.samefile(common.ROOT, root), (common.ROOT, root)
    launcher = os.path.join(tempfile.mkdtemp(prefix="jobmon-compare-"), "twistd")
    with open(launcher, "w") as f:
        f.write('#!/bin/sh\nexec "{}" "{}" "$@"\n'.format(sys.executable, TREE_TWISTD))
    os.chmod(launcher, 0o755)
    common.TWISTD = launcher
    os.environ["JOBMON_TREE"] = root
    return common


def child(root, script, args):
    """
    Run C{root/bench/script} with C{args} in this process (or, for
    C{script} C{"-"}, L{idleProbe}), its twistd processes started through
    L{tree_twistd}.
    """
    import importlib

    common = setupTree(root)
    if script == "-":
        return idleProbe(common, args)
    if os.path.exists(os.path.join(root, "bench", script)):
        module = importlib.import_module(script[:-3])
    else:
        # A script newer than the tree: the newer tree's, run against the
        # tree's common.py (already imported) and code.
        import importlib.util

        sys.stderr.write("compare: {} has no bench/{}: running {}'s\n".format(
            root, script, os.path.dirname(BENCH)))
        spec = importlib.util.spec_from_file_location(script[:-3],
                                                      os.path.join(BENCH, script))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    idleSeconds = os.environ.get("COMPARE_IDLE_SECONDS")
    if idleSeconds and hasattr(module, "IDLE_SECONDS"):
        module.IDLE_SECONDS = float(idleSeconds)
    if os.environ.get("COMPARE_PRECISE_CPU") and script == "capacity.py":
        # The server's idle CPU with every channel open is a few ms per s:
        # read it exactly, over a longer window.
        common.cpuSeconds = preciseCPUSeconds
        module.FULL["ping_seconds"] = float(idleSeconds or 30.0)
    if hasattr(module, "STAMPED_DAEMON"):
        module.STAMPED_DAEMON = PLAIN_FOLLOW_DAEMON
        module._idleFollowCost = _idleFollowCost(module, common)
    return module.main(args)


def taskTimes(pid):
    """
    CPU nanoseconds of each thread of process C{pid} (C{/proc/PID/task/*/
    schedstat}, exact where C{/proc/PID/stat} counts 10 ms ticks).

    @return: a dict from thread id to nanoseconds.
    """
    times = {}
    for tid in os.listdir("/proc/{}/task".format(pid)):
        try:
            with open("/proc/{}/task/{}/schedstat".format(pid, tid)) as f:
                times[int(tid)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return times


def preciseCPUSeconds(pid):
    """
    CPU seconds of process C{pid}'s live threads, from L{taskTimes}, or
    L{None}: in place of C{common.cpuSeconds} (10 ms ticks) for deltas.
    """
    try:
        return sum(taskTimes(pid).values()) / 1e9
    except OSError:
        return None


def idleCost(pids, seconds):
    """
    CPU of each process of C{pids} (name: pid) over C{seconds} of waiting:
    milliseconds per second, all threads, the main thread and the others
    (threads that ended meanwhile are not counted).
    """
    before = {name: taskTimes(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    after = {name: taskTimes(pid) for name, pid in pids.items()}
    elapsed = time.monotonic() - started
    out = {}
    for name, pid in pids.items():
        spent = {tid: ns - before[name].get(tid, 0) for tid, ns in after[name].items()}
        main = spent.get(pid, 0)
        total = sum(spent.values())
        out[name] = {
            "ms_per_s": round(total / 1e6 / elapsed, 3),
            "main_ms_per_s": round(main / 1e6 / elapsed, 3),
            "threads_ms_per_s": round((total - main) / 1e6 / elapsed, 3),
            "threads": len(after[name]),
        }
    return out


def idleProbe(common, args):
    """
    The idle cost of a server and a TCP-wake daemon of the tree: C{seconds}
    with no query, then C{seconds} with one real C{jobmon-query tail -f
    job.1 job.log} waiting for lines that do not come.  Prints JSON.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    seconds = parser.parse_args(args).seconds
    common.installSignalHandlers()
    doc = {}
    with common.BenchEnv() as env:
        pids = {"server": env.server.pid, "daemon": env.daemon.pid}
        # A first query, so that both ends are past their start-up.
        client = env.client()
        client.stat(common.JOB_ID, "job.log")
        client.close()
        time.sleep(2.0)
        doc["quiet"] = idleCost(pids, seconds)
        cli = subprocess.Popen(
            [sys.executable, "-c", "import sys; from jobmon.cli import main; sys.exit(main())",
             "--server", env.url, "--proxy", env.proxy, "--ca-dir", env.caDir,
             "tail", "-f", common.JOB_ID, "job.log"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=common.childEnv(), cwd=common.ROOT, start_new_session=True)
        try:
            lines = 0
            deadline = time.monotonic() + common.START_TIMEOUT
            while lines < 10:
                if time.monotonic() > deadline or cli.poll() is not None:
                    raise RuntimeError("tail -f did not print the last 10 lines")
                lines += cli.stdout.readline().count(b"\n")
            time.sleep(1.0)
            doc["follower"] = idleCost(pids, seconds)
        finally:
            cli.terminate()
            cli.wait(10)
    doc["seconds"] = seconds
    print(json.dumps(doc, indent=1))
    return 0


# -- the parent: interleaved runs ----------------------------------------------


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def runOnce(opts, tree, root, figure, index):
    """
    One run of C{figure} on C{tree}.

    @return: a record with its metrics, load averages and the directories
        its twistd processes loaded JobMon from.
    """
    script, argsOf, metricsOf = FIGURES[figure]
    script = script or "-"
    label = "{}-{}-{}".format(figure, index, tree)
    jsonPath = os.path.join(opts.out, label + ".json")
    twistdLog = os.path.join(opts.out, label + ".twistd")
    args = argsOf(opts, jsonPath)
    byPath = "--json" in args and args[args.index("--json") + 1] != "-"
    env = dict(os.environ, PYTHONPATH=root, TREE_TWISTD_LOG=twistdLog,
               COMPARE_IDLE_SECONDS=str(opts.idle_seconds))
    if opts.precise_cpu:
        env["COMPARE_PRECISE_CPU"] = "1"
    command = [sys.executable, os.path.abspath(__file__), "--child", root, script, "--"] + args
    sys.stderr.write("compare: {} ({})\n".format(label, " ".join([script] + args)))
    load0, started = loadavg(), time.monotonic()
    with open(os.path.join(opts.out, label + ".out"), "wb") as out, \
            open(os.path.join(opts.out, label + ".err"), "wb") as err:
        proc = subprocess.run(command, stdout=out, stderr=err, env=env, cwd=root,
                              timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("compare: {} failed ({}); see {}.err".format(
            label, proc.returncode, os.path.join(opts.out, label)))
    if byPath:
        with open(jsonPath) as f:
            doc = json.load(f)
    else:
        with open(os.path.join(opts.out, label + ".out")) as f:
            doc = json.load(f)
            with open(jsonPath, "w") as g:
                json.dump(doc, g, indent=1)
    loaded = []
    if os.path.exists(twistdLog):
        with open(twistdLog) as f:
            loaded = [json.loads(line) for line in f]
    if not loaded:
        raise SystemExit("compare: {}: no twistd process logged its code".format(label))
    for entry in loaded:
        for d in entry["jobmon_dirs"]:
            if not os.path.abspath(d).startswith(os.path.join(root, "jobmon")):
                raise SystemExit("compare: {}: {} loaded JobMon from {}".format(
                    label, entry["plugin"], d))
    return {
        "tree": tree, "figure": figure, "index": index, "seconds": round(seconds, 1),
        "loadavg_before": load0, "loadavg_after": loadavg(),
        "metrics": metricsOf(doc),
        "twistd": [{k: e[k] for k in ("plugin", "module", "file")} for e in loaded],
    }


def summarize(records):
    """
    Per figure and metric: each tree's values, medians and the change.
    """
    rows = []
    for figure in dict.fromkeys(r["figure"] for r in records):
        ours = [r for r in records if r["figure"] == figure]
        labels = [m[0] for m in ours[0]["metrics"]]
        for i, label in enumerate(labels):
            values = {t: [r["metrics"][i][1] for r in ours if r["tree"] == t
                          and r["metrics"][i][1] is not None] for t in ("old", "new")}
            if not values["old"] or not values["new"]:
                continue
            old, new = statistics.median(values["old"]), statistics.median(values["new"])
            change = None if not old else round(100.0 * (new - old) / old, 1)
            rows.append({"figure": figure, "metric": label, "old": values["old"],
                         "new": values["new"], "old_median": old, "new_median": new,
                         "change_percent": change})
    return rows


def _fmt(v):
    return "{:.3g}".format(v) if abs(v) < 100 else "{:.0f}".format(v)


def report(records, out):
    """
    Write the summary of C{records} to C{out}/summary.json and print it.
    """
    rows = summarize(records)
    loads = [r["loadavg_before"][0] for r in records] + [r["loadavg_after"][0] for r in records]
    summary = {"rows": rows, "loadavg_1min_range": [min(loads), max(loads)],
               "loadavg_1min_median": statistics.median(loads)}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(table(rows))
    print("\n1-min load average during the runs: median {:.2f}, range {:.2f}-{:.2f}; "
          "raw results in {}".format(summary["loadavg_1min_median"], min(loads), max(loads),
                                     out))


def resummarize(out):
    """
    Read the metrics again from the documents kept in C{out} (after a
    change of the metrics of a figure), then L{report}.
    """
    with open(os.path.join(out, "records.json")) as f:
        records = json.load(f)
    for r in records:
        with open(os.path.join(out, "{}-{}-{}.json".format(r["figure"], r["index"],
                                                           r["tree"]))) as f:
            r["metrics"] = FIGURES[r["figure"]][2](json.load(f))
    report(records, out)
    return 0


def table(rows):
    lines = ["| figure | metric | before: median (range) | after: median (range) | change |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append("| {} | {} | {} ({}-{}) | {} ({}-{}) | {} |".format(
            r["figure"], r["metric"], _fmt(r["old_median"]), _fmt(min(r["old"])),
            _fmt(max(r["old"])), _fmt(r["new_median"]), _fmt(min(r["new"])),
            _fmt(max(r["new"])),
            "-" if r["change_percent"] is None else "{:+.1f}%".format(r["change_percent"])))
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        root, script = os.path.abspath(argv[1]), argv[2]
        assert argv[3] == "--"
        return child(root, script, argv[4:])
    if argv[:1] == ["--resummarize"]:
        return resummarize(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the checkout from before")
    parser.add_argument("--new", default=os.path.dirname(BENCH),
                        help="the checkout from after (this one)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each tree (3)")
    parser.add_argument("--capacity-pairs", type=int, default=3,
                        help="runs of each tree for the capacity figure (3)")
    parser.add_argument("--figures", default="roundtrip,poll,cli,follow,capacity,idle",
                        help="comma-separated subset of " + ",".join(FIGURES))
    parser.add_argument("--rt-n", type=int, default=1000, help="timed round trips (1000)")
    parser.add_argument("--rt-warmup", type=int, default=100, help="untimed first (100)")
    parser.add_argument("--cli-repeats", type=int, default=30, help="start-ups of each (30)")
    parser.add_argument("--tcp-jobs", type=int, default=2000,
                        help="TCP-wake jobs of the capacity figure (2000)")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="seconds the idle follower's daemon CPU is read (30)")
    parser.add_argument("--precise-cpu", action="store_true",
                        help="capacity: read the server's CPU from schedstat (exact) and "
                             "its idle and ping windows for --idle-seconds")
    parser.add_argument("--tp-n", type=int, default=2000,
                        help="throughput: timed queries of the single client (2000)")
    parser.add_argument("--tp-seconds", type=float, default=10.0,
                        help="throughput: seconds the concurrent clients query (10)")
    parser.add_argument("--tp-jobs", type=int, default=10000,
                        help="throughput: jobs registered besides the daemon's (10000)")
    parser.add_argument("--out", help="directory for the raw results (a new one)")
    opts = parser.parse_args(argv)
    figures = opts.figures.split(",")
    if not set(figures) <= set(FIGURES) or not (1 <= opts.pairs <= 20
                                                 and 1 <= opts.capacity_pairs <= 20):
        parser.error("bad --figures or --pairs")
    opts.out = opts.out or tempfile.mkdtemp(prefix="jobmon-compare-")
    os.makedirs(opts.out, exist_ok=True)
    trees = {"old": os.path.abspath(opts.old), "new": os.path.abspath(opts.new)}
    records = []
    for figure in figures:
        for i in range(opts.capacity_pairs if figure == "capacity" else opts.pairs):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for tree in order:
                records.append(runOnce(opts, tree, trees[tree], figure, i))
                with open(os.path.join(opts.out, "records.json"), "w") as f:
                    json.dump(records, f, indent=1)
    report(records, opts.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

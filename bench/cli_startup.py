"""
Whole-process wall time of C{jobmon-query}, against a bare interpreter.

The commands are each run R times (default 30), interleaved so that any
drift of the machine touches all alike:

  - C{python -c pass}: the interpreter's own start-up;
  - C{python -c 'import jobmon.cli'}: start-up plus the CLI's imports;
  - C{jobmon-query --server URL --proxy P --ca-dir D tail job.1 job.log -n
    10}: a real query (TLS handshake, server, daemon), run as
    C{python -c "from jobmon.cli import main; ..."} from this source tree,
    which is what the installed console script does.

All use the interpreter running this script (the virtualenv's), so the
differences are JobMon's, and a byte-code cache in the temporary directory
(C{PYTHONPYCACHEPREFIX}), as an installed package has.  A fourth row runs
the query with C{PYTHONDONTWRITEBYTECODE=1} and no cache, so that JobMon's
modules are compiled at each start (a source checkout on a read-only or
no-bytecode setup).  The target (issue 14): C{jobmon-query} within 35 ms of
C{python -c pass} (medians).

Usage::

    .venv/bin/python bench/cli_startup.py [-r 30] [--json [PATH]]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

TARGET_MS = 35.0
"""Largest accepted difference of medians, jobmon-query minus bare start."""

RUN_TIMEOUT = 30.0
"""Seconds one command may take."""


def environments(env):
    """
    The environments the commands run in: C{cached}, with a byte-code cache
    (C{PYTHONPYCACHEPREFIX} in the temporary directory), as an installed
    package has (pip compiles it); and C{nocache}, with
    C{PYTHONDONTWRITEBYTECODE=1} and no cache for JobMon's modules, so that
    they are compiled at every start.
    """
    base = common.childEnv()
    base.pop("PYTHONUNBUFFERED", None)
    cached = dict(base, PYTHONPYCACHEPREFIX=os.path.join(env.tmp, "pycache"))
    cached.pop("PYTHONDONTWRITEBYTECODE", None)
    nocache = dict(base, PYTHONDONTWRITEBYTECODE="1")
    nocache.pop("PYTHONPYCACHEPREFIX", None)
    return {"cached": cached, "nocache": nocache}


def commands(env):
    """
    The commands compared: (name, description, argv, environment name).
    """
    py = sys.executable
    query = [
        "--server", env.url, "--proxy", env.proxy, "--ca-dir", env.caDir,
        "tail", common.JOB_ID, "job.log", "-n", "10",
    ]
    run = [py, "-c", "import sys; from jobmon.cli import main; sys.exit(main())"] + query
    return [
        ("bare", "python -c pass", [py, "-c", "pass"], "cached"),
        ("import", "python -c 'import jobmon.cli'", [py, "-c", "import jobmon.cli"], "cached"),
        ("query", "jobmon-query ... tail job.1 job.log -n 10", run, "cached"),
        ("query_nocache", "the same, JobMon not byte-compiled", run, "nocache"),
    ]


def _runOnce(argv, environ):
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        cwd=common.ROOT,
        timeout=RUN_TIMEOUT,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            "{} exited with {}:\n{}".format(
                " ".join(argv), proc.returncode, proc.stderr.decode("utf-8", "replace")
            )
        )
    return elapsed, proc.stdout


def measure(env, repeats):
    """
    Run each command once untimed (to warm the page cache and check it
    works), then C{repeats} timed rounds.

    @return: a dict from command name to its summary.
    """
    environs = environments(env)
    cmds = commands(env)
    for name, _, argv, where in cmds:
        _, out = _runOnce(argv, environs[where])
        if name.startswith("query") and out.count(b"\n") != 10:
            raise RuntimeError("jobmon-query printed {!r}, not 10 lines".format(out[-200:]))
    common.say("{} rounds of {} commands".format(repeats, len(cmds)))
    times = {name: [] for name, _, _, _ in cmds}
    for _ in range(repeats):
        for name, _, argv, where in cmds:
            times[name].append(_runOnce(argv, environs[where])[0])
    results = {}
    for name, description, argv, where in cmds:
        summary = common.summarize(times[name])
        summary["description"] = description
        results[name] = summary
    bare = results["bare"]["p50_ms"]
    for r in results.values():
        r["over_bare_p50_ms"] = round(r["p50_ms"] - bare, 3)
    return results


def table(results):
    """
    The results as a Markdown table, with the verdict on the target.
    """
    headers = ["command", "runs", "p50 ms", "p90 ms", "max ms", "p50 over bare ms"]
    rows = [
        [r["description"], r["n"], r["p50_ms"], r["p90_ms"], r["max_ms"], r["over_bare_p50_ms"]]
        for r in results.values()
    ]
    over = results["query"]["over_bare_p50_ms"]
    return common.markdownTable(headers, rows) + (
        "\n\nTarget jobmon-query <= interpreter start + {:g} ms (medians, byte-code "
        "cached as when installed): {} (+{:.1f} ms).".format(
            TARGET_MS, "met" if over <= TARGET_MS else "NOT met", over)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--repeats", type=int, default=30, help="runs of each (30)")
    common.jsonOption(parser, "table")
    args = parser.parse_args(argv)
    if not 1 <= args.repeats <= 1000:
        parser.error("--repeats must be 1..1000")
    common.installSignalHandlers()
    with common.BenchEnv() as env:
        results = measure(env, args.repeats)
    document = {
        "benchmark": "cli_startup",
        "machine": common.machine(),
        "repeats": args.repeats,
        "results": results,
    }
    common.emit(document, table(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

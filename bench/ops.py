"""
Cost of the JobMon ops that wait, read big files or list many processes,
through a real server and real daemons.

  1. C{tail -f} latency, write to print: the real C{jobmon-query tail -f}
     runs as a child with its output piped to this process, which appends a
     line holding C{time.monotonic_ns()} to C{job.log} every 150-250 ms
     (random, so that writes fall at every phase of the daemon's 250 ms
     checks) and reads the lines back from the pipe.  Latency = time read
     from the pipe - time written (one clock for every process on the
     machine).  Before the lines are written, the daemon's CPU is read
     while the follower waits and nothing changes (the idle cost).
  2. C{tail -n 100} of a 1 GiB file of log lines (real data, written for
     the run and evicted from the page cache first) against C{tail -n 100}
     of a 10 KiB file, alternately, on one in-process
     L{jobmon.client.JobMonClient}; the daemon's C{VmRSS}/C{VmHWM} before
     and after.  Then C{jobmon-query cat} of the whole 1 GiB file (cache
     evicted again), its output read and thrown away by this process, for
     at most a bounded time: throughput, and the CPU each process spent
     per MiB.
  3. C{ps}, C{top} (interval 1 s) and C{res} of a job of 500 processes (a
     Python root and 499 C{sleep 600} children, its own process group),
     with a daemon started with C{--job-pid}: latency, the size of the
     answer, and the CPU each process spent per C{ps}.

Usage::

    .venv/bin/python bench/ops.py [--quick] [--parts follow,files,processes]
        [--processes N] [--ps-n N] [--json [PATH]]

C{--quick} is a smoke run (20 lines, a 64 MiB file, 50 processes, fewer
queries).  Every process started is stopped (the job's whole process group
is killed) and the big file is deleted, also on errors and Ctrl-C.
"""

import argparse
import os
import random
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets sys.path for jobmon)
from common import JOB_ID, say  # noqa: E402

FULL = {
    "lines": 100,
    "file_mib": 1024,
    "tail_n": 50,
    "cat_seconds": 120.0,
    "processes": 500,
    "ps_n": 20,
    "top_n": 3,
    "res_n": 20,
}
"""The sizes of a full run (the defaults of this script)."""

MODERATE = dict(FULL, lines=40, file_mib=256, tail_n=30, cat_seconds=60.0)
"""The sizes L{run_all} uses (about 40 s: 40 lines, a 256 MiB file)."""

QUICK = dict(FULL, lines=20, file_mib=64, tail_n=20, cat_seconds=30.0, processes=50,
             ps_n=5, top_n=2, res_n=5)
"""A smoke run (C{--quick})."""

PS_JOB = "job.ps"
"""The id of the job whose processes are listed."""

LINE_WIDTH = 64
"""Bytes per line (newline included) of the big file and of the small one."""

CHUNK = 16 * 1024 * 1024
"""The big file is written in chunks of this many bytes."""

SMALL_BYTES = 10 * 1024
"""Size of the small file C{tail -n 100} is compared with."""

TAIL_LINES = 100
"""Lines asked of each C{tail} query."""

WRITE_INTERVAL = (0.15, 0.25)
"""Seconds between two lines appended for C{tail -f} (uniform)."""

CHECK_INTERVAL_MS = 250.0
"""How often the daemon looks at a followed file it cannot watch
(C{FOLLOW_CHECK_INTERVAL} in L{jobmon.worker.operations}), for the text and
the idle cost per look (a look per interval: with inotify there are none)."""

IDLE_SECONDS = 4.0
"""Seconds the daemon's CPU is measured with a follower waiting and no
writes."""

CLI_STOP = 5.0
"""Seconds a CLI has to end after SIGINT before it gets SIGTERM."""

JOB_SCRIPT = r"""
import signal, subprocess, sys
children = [subprocess.Popen(["sleep", "600"]) for _ in range(int(sys.argv[1]))]
print("job started with", len(children), "children", flush=True)
while True:
    signal.pause()
"""
"""A job: a root process and N C{sleep 600} children, in its own process
group (killed as a whole at the end)."""


# -- processes ----------------------------------------------------------------


def startCLI(env, *args):
    """
    Start C{jobmon-query ARGS} with its standard output piped to us (and its
    standard error to a file).
    """
    errPath = os.path.join(env.tmp, "cli-{}.err".format(int(time.monotonic_ns())))
    with open(errPath, "wb") as err:
        return subprocess.Popen(
            env.cliCommand(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=common.childEnv(),
            cwd=common.ROOT,
            preexec_fn=common.dieWithParent,
            start_new_session=True,
        )


def stopCLI(popen):
    """
    End a CLI: SIGINT (as Ctrl-C), then SIGTERM, then SIGKILL.

    @return: its exit status.
    """
    for sig, wait in ((signal.SIGINT, CLI_STOP), (signal.SIGTERM, CLI_STOP),
                      (signal.SIGKILL, CLI_STOP)):
        if popen.poll() is not None:
            break
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            popen.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    if popen.stdout is not None:
        popen.stdout.close()
    return popen.returncode


def memory(pid):
    """
    C{VmRSS} and C{VmHWM} of process C{pid}, in MiB (Linux), or L{None}s.
    """
    status = common.procStatus(pid)
    return {"rss_mib": common.mib(status.get("VmRSS")),
            "hwm_mib": common.mib(status.get("VmHWM"))}


def childrenCPU():
    """
    User + system CPU seconds of the children this process has waited for.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpuBusy():
    """
    L{common.machineCPU}, or L{None} if C{/proc/stat} cannot be read.
    """
    try:
        return common.machineCPU()
    except (OSError, ValueError):
        return None


def busySince(before):
    """
    The machine's CPU use since C{before} (from L{cpuBusy}): C{busy_s}
    (CPU seconds, all processes) and C{busy_percent} (of all CPUs).
    """
    after = cpuBusy()
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy = after[0] - before[0]
    return {"busy_s": round(busy, 2),
            "busy_percent": round(100.0 * busy / (after[1] - before[1]), 1)}


def evict(path):
    """
    Drop C{path}'s pages from the page cache (written back first), so that
    the next read comes from the disk.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cachedPercent(path):
    """
    How much of C{path} is in the page cache, in percent, from
    C{fincore} (util-linux), or L{None} if it is not available.
    """
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", path],
            capture_output=True, timeout=10, check=True,
        ).stdout.split()
        return round(100.0 * int(out[0]) / max(1, int(out[1])), 1)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# -- 1. tail -f ---------------------------------------------------------------


def _readLines(fd, pending, timeout):
    """
    Wait up to C{timeout} seconds for output on C{fd}; return the complete
    lines read, each with the C{monotonic_ns} at which it was read, the
    bytes of an incomplete last line, and whether the pipe ended.
    """
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return [], pending, False
    data = os.read(fd, 65536)
    now = time.monotonic_ns()
    if not data:
        return [], pending, True
    parts = (pending + data).split(b"\n")
    return [(now, line) for line in parts[:-1]], parts[-1], False


def _idleFollowCost(daemon, seconds):
    """
    The daemon's CPU while one follower waits and the file does not change:
    per second, and per look at the file (one every L{CHECK_INTERVAL_MS}).
    """
    cpu0, started = common.cpuSeconds(daemon.pid), time.monotonic()
    time.sleep(seconds)
    elapsed, cpu1 = time.monotonic() - started, common.cpuSeconds(daemon.pid)
    if cpu0 is None or cpu1 is None:
        return None
    looks = elapsed * 1000.0 / CHECK_INTERVAL_MS
    return {
        "seconds": round(elapsed, 2),
        "looks": round(looks),
        "cpu_ms_per_s": round((cpu1 - cpu0) * 1000.0 / elapsed, 2),
        "cpu_ms_per_look": round((cpu1 - cpu0) * 1000.0 / looks, 3),
    }


def measureFollow(env, cfg, seed=1):
    """
    C{jobmon-query tail -f} latency from write to print.
    """
    log = os.path.join(env.workdir, "job.log")
    with open(log, "rb") as f:
        f.seek(-LINE_WIDTH * 2, os.SEEK_END)
        lastLine = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    daemon = env.startDaemon(JOB_ID, env.workdir)
    cli = None
    written, received = {}, {}
    try:
        cli = startCLI(env, "tail", "-f", JOB_ID, "job.log")
        fd = cli.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + common.START_TIMEOUT
        seen = False
        while not seen:
            if time.monotonic() > deadline:
                raise RuntimeError("tail -f did not print job.log's last line in time")
            lines, pending, ended = _readLines(fd, pending, 0.5)
            if ended:
                raise RuntimeError("tail -f ended with {}".format(cli.wait()))
            seen = any(line == lastLine for _, line in lines)
        # Let the first follow request reach the daemon, then measure what
        # a follower costs the daemon while nothing is written.
        time.sleep(0.5)
        idle = _idleFollowCost(daemon, IDLE_SECONDS)
        say("tail -f: {} lines, one every {:g}-{:g} s".format(cfg["lines"], *WRITE_INTERVAL))
        rng = random.Random(seed)
        out = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            nextWrite = time.monotonic()
            for seq in range(cfg["lines"]):
                while True:
                    left = nextWrite - time.monotonic()
                    if left <= 0:
                        break
                    lines, pending, ended = _readLines(fd, pending, left)
                    if ended:
                        raise RuntimeError("tail -f ended with {}".format(cli.wait()))
                    _collect(lines, received)
                t = time.monotonic_ns()
                os.write(out, b"tick %06d %d\n" % (seq, t))
                written[seq] = t
                nextWrite += rng.uniform(*WRITE_INTERVAL)
        finally:
            os.close(out)
        deadline = time.monotonic() + 3.0
        while len(received) < len(written) and time.monotonic() < deadline:
            lines, pending, ended = _readLines(fd, pending, deadline - time.monotonic())
            _collect(lines, received)
            if ended:
                break
    finally:
        if cli is not None:
            stopCLI(cli)
        daemon.stop()
    latencies = [(received[s] - written[s]) / 1e9 for s in written if s in received]
    return {
        "idle": idle,
        "written": len(written),
        "received": len(received),
        "latency": common.summarize(latencies),
        "write_interval_s": list(WRITE_INTERVAL),
    }


def _collect(lines, received):
    for now, line in lines:
        if line.startswith(b"tick "):
            try:
                seq = int(line.split()[1])
            except (ValueError, IndexError):
                continue
            received.setdefault(seq, now)


# -- 2. big files -------------------------------------------------------------


def _logLine(n):
    text = "2026-01-01T00:00:00 step {:09d} event=progress v={:06d} ok".format(
        n, n * 7919 % 1000003)
    line = (text.ljust(LINE_WIDTH - 1, ".") + "\n").encode("ascii")
    assert len(line) == LINE_WIDTH, line
    return line


def writeLogFile(path, size):
    """
    Write C{size} bytes (a multiple of L{LINE_WIDTH}) of log lines to
    C{path}, in L{CHUNK}s of real data (the same chunk of 262,144 distinct
    lines again and again), then flush it to disk.

    @return: seconds taken.
    """
    started = time.monotonic()
    perChunk = min(CHUNK, size) // LINE_WIDTH
    chunk = b"".join(_logLine(n) for n in range(perChunk))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left > 0:
            piece = chunk if left >= len(chunk) else chunk[:left]
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
            left -= len(piece)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - started


def _timeTail(client, path, expected):
    t0 = time.perf_counter()
    result = client.tail(JOB_ID, path, lines=TAIL_LINES)
    elapsed = time.perf_counter() - t0
    data = result["data"]
    if data.count(b"\n") != TAIL_LINES or len(data) != expected or result["truncated"]:
        raise RuntimeError("unexpected tail of {}: {} bytes".format(path, len(data)))
    return elapsed


def measureBigFile(env, cfg):
    """
    C{tail -n 100} of a big and a small file, the daemon's memory, and
    C{cat} of the big file through the CLI.
    """
    size = cfg["file_mib"] * 1024 * 1024
    big = os.path.join(env.workdir, "big.log")
    small = os.path.join(env.workdir, "small.log")
    result = {"file_bytes": size, "small_bytes": SMALL_BYTES}
    daemon = None
    try:
        say("writing {} MiB to {}".format(cfg["file_mib"], big))
        result["write_s"] = round(writeLogFile(big, size), 2)
        writeLogFile(small, SMALL_BYTES)
        evict(big)
        result["cached_percent_before"] = cachedPercent(big)
        daemon = env.startDaemon(JOB_ID, env.workdir)
        client = env.client()
        try:
            expected = TAIL_LINES * LINE_WIDTH
            # The client's connection, the daemon's first query and thread
            # pool are set up first: the first query of each file then shows
            # the cost of the file alone (the big one cold).
            client.stat(JOB_ID, "small.log")
            memBefore = {"daemon": memory(daemon.pid), "server": memory(env.server.pid)}
            result["first_big_cold_ms"] = round(_timeTail(client, "big.log", expected) * 1000, 3)
            result["first_small_ms"] = round(_timeTail(client, "small.log", expected) * 1000, 3)
            say("tail -n {}: {} queries of each file, alternately".format(
                TAIL_LINES, cfg["tail_n"]))
            times = {"small.log": [], "big.log": []}
            cpu0 = common.cpuSeconds(daemon.pid)
            for _ in range(cfg["tail_n"]):
                for path in ("small.log", "big.log"):
                    times[path].append(_timeTail(client, path, expected))
            cpu1 = common.cpuSeconds(daemon.pid)
            memAfter = {"daemon": memory(daemon.pid), "server": memory(env.server.pid)}
            result["tail"] = {
                "small": common.summarize(times["small.log"]),
                "big": common.summarize(times["big.log"]),
                "result_bytes": expected,
                "daemon_cpu_ms_per_query": round(
                    (cpu1 - cpu0) * 1000.0 / (2 * cfg["tail_n"]), 3)
                if cpu0 is not None and cpu1 is not None else None,
            }
            result["memory_tail"] = {"before": memBefore, "after": memAfter}
        finally:
            client.close()
        evict(big)
        result["cat"] = measureCat(env, daemon, "big.log", size, cfg["cat_seconds"])
    finally:
        if daemon is not None:
            daemon.stop()
        for path in (big, small):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return result


def measureCat(env, daemon, path, size, bound):
    """
    C{jobmon-query cat JOB PATH}, its output read and dropped by this
    process, for at most C{bound} seconds.
    """
    say("cat {} ({} MiB) through the CLI, at most {:g} s".format(
        path, size // (1024 * 1024), bound))
    cpu0 = {"server": common.cpuSeconds(env.server.pid),
            "daemon": common.cpuSeconds(daemon.pid), "cli": childrenCPU()}
    machine0 = cpuBusy()
    bench0 = time.process_time()
    cli = startCLI(env, "cat", JOB_ID, path)
    started = time.monotonic()
    got = 0
    complete = False
    cliPeak = None
    lastSample = 0.0
    fd = cli.stdout.fileno()
    try:
        while True:
            now = time.monotonic()
            if now - started > bound:
                break
            if now - lastSample > 1.0:
                sample = memory(cli.pid)["hwm_mib"]
                cliPeak = sample if sample is not None else cliPeak
                lastSample = now
            ready, _, _ = select.select([fd], [], [], min(1.0, bound - (now - started)))
            if ready:
                data = os.read(fd, 1024 * 1024)
                if not data:
                    complete = True
                    break
                got += len(data)
        elapsed = time.monotonic() - started
    finally:
        if complete:
            try:
                cli.wait(CLI_STOP)
            except subprocess.TimeoutExpired:
                pass
        code = stopCLI(cli)
    cpu1 = {"server": common.cpuSeconds(env.server.pid),
            "daemon": common.cpuSeconds(daemon.pid), "cli": childrenCPU()}
    cpu0["benchmark (reads the pipe)"] = bench0
    cpu1["benchmark (reads the pipe)"] = time.process_time()
    machine = busySince(machine0)
    mib = got / (1024.0 * 1024.0)
    cpu = {}
    ours = 0.0
    for role in cpu0:
        if cpu0[role] is not None and cpu1[role] is not None and mib:
            used = cpu1[role] - cpu0[role]
            ours += used
            cpu[role] = {"s": round(used, 2), "ms_per_mib": round(used * 1000.0 / mib, 2)}
    if machine is not None and mib:
        # Everything else the machine ran meanwhile (other users' work).
        others = max(0.0, machine["busy_s"] - ours)
        cpu["other processes"] = {"s": round(others, 2),
                                  "ms_per_mib": round(others * 1000.0 / mib, 2)}
    return {
        "bytes": got,
        "seconds": round(elapsed, 2),
        "mb_per_s": round(got / 1e6 / elapsed, 2) if elapsed else None,
        "mib_per_s": round(mib / elapsed, 2) if elapsed else None,
        "complete": complete and got == size,
        "exit": code,
        "bound_s": bound,
        "cpu": cpu,
        "machine": machine,
        "memory_after": {"daemon": memory(daemon.pid), "server": memory(env.server.pid),
                         "cli_hwm_mib": cliPeak},
    }


# -- 3. processes -------------------------------------------------------------


def startJob(env, processes):
    """
    Start a job of C{processes} processes: a Python root and
    C{processes - 1} C{sleep 600} children, in a new process group.
    """
    job = subprocess.Popen(
        [sys.executable, "-c", JOB_SCRIPT, str(processes - 1)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=env.workdir,
        env=common.childEnv(),
        preexec_fn=common.dieWithParent,
        start_new_session=True,
    )
    try:
        fd = job.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], 60.0)
        line = os.read(fd, 4096) if ready else b""
        if b"job started" not in line:
            raise RuntimeError("the sample job did not start: {!r}".format(line))
    except BaseException:
        killJob(job)
        raise
    return job


def killJob(job, timeout=10.0):
    """
    Kill the job's whole process group: SIGTERM, then SIGKILL, each time
    waiting (at most C{timeout} seconds) until no process of the group is
    left.
    """
    pgid = job.pid  # start_new_session: the job leads its own group.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        gone = False
        while time.monotonic() < deadline:
            job.poll()  # Reap the root: a zombie would stay in the group.
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                gone = True
                break
            time.sleep(0.05)
        if gone:
            break
    else:
        say("some processes of the job's group {} may be left".format(pgid))
    if job.poll() is None:
        try:
            job.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if job.stdout is not None:
        job.stdout.close()


def _answerBytes(result):
    """
    The size of C{result} as an XML-RPC answer (the client normalized some
    fields: a close estimate).
    """
    def wire(value):
        # As on the wire: numbers beyond XML-RPC's 32-bit <int> are doubles.
        if isinstance(value, dict):
            return {k: wire(v) for k, v in value.items()}
        if isinstance(value, list):
            return [wire(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**31:
            return float(value)
        return value

    return len(xmlrpc.client.dumps((wire(result),), methodresponse=True).encode("utf-8"))


def measureProcesses(env, cfg):
    """
    C{ps}, C{top} and C{res} of a job of C{cfg["processes"]} processes.
    """
    say("starting a job of {} processes".format(cfg["processes"]))
    job = startJob(env, cfg["processes"])
    daemon = None
    try:
        daemon = env.startDaemon(PS_JOB, env.workdir, ["--job-pid", str(job.pid)])
        client = env.client()
        try:
            memBefore = memory(daemon.pid)
            t0 = time.perf_counter()
            first = client.ps(PS_JOB)
            firstMs = (time.perf_counter() - t0) * 1000.0
            count = len(first["processes"])
            if count != cfg["processes"]:
                raise RuntimeError("ps listed {} processes, not {}".format(
                    count, cfg["processes"]))
            say("ps x {}, top x {}, res x {}".format(cfg["ps_n"], cfg["top_n"], cfg["res_n"]))
            cpu0 = common.cpuSeconds(daemon.pid)
            server0 = common.cpuSeconds(env.server.pid)
            client0 = time.process_time()
            psTimes, last = common.timed(lambda: client.ps(PS_JOB), cfg["ps_n"])
            clientCPU = (time.process_time() - client0) * 1000.0 / cfg["ps_n"]
            server1 = common.cpuSeconds(env.server.pid)
            cpu1 = common.cpuSeconds(daemon.pid)
            topTimes, lastTop = common.timed(lambda: client.top(PS_JOB, interval=1.0), cfg["top_n"])
            resTimes, lastRes = common.timed(lambda: client.res(PS_JOB), cfg["res_n"])
            memAfter = memory(daemon.pid)
        finally:
            client.close()
    finally:
        if daemon is not None:
            daemon.stop()
        killJob(job)
    summary = lambda ts: common.summarize(ts)  # noqa: E731
    return {
        "processes": count,
        "ps_first_ms": round(firstMs, 3),
        "ps": summary(psTimes),
        "top": summary(topTimes),
        "res": summary(resTimes),
        "ps_answer_bytes": _answerBytes(last),
        "top_answer_bytes": _answerBytes(lastTop),
        "res_answer_bytes": _answerBytes(lastRes),
        "res_processes": lastRes["processes"],
        "daemon_cpu_ms_per_ps": round((cpu1 - cpu0) * 1000.0 / cfg["ps_n"], 2)
        if cpu0 is not None and cpu1 is not None else None,
        "server_cpu_ms_per_ps": round((server1 - server0) * 1000.0 / cfg["ps_n"], 2)
        if server0 is not None and server1 is not None else None,
        "client_cpu_ms_per_ps": round(clientCPU, 2),
        "memory": {"before": memBefore, "after": memAfter},
    }


# -- the run ------------------------------------------------------------------


def run(cfg, parts=("follow", "files", "processes")):
    """
    Start a server and run the chosen parts with the sizes of C{cfg}.

    @return: the results, by part.
    """
    results = {}
    with common.BenchEnv(daemon=False) as env:
        for name, measure in (
            ("follow", lambda: measureFollow(env, cfg)),
            ("files", lambda: measureBigFile(env, cfg)),
            ("processes", lambda: measureProcesses(env, cfg)),
        ):
            if name in parts:
                before = cpuBusy()
                started = time.monotonic()
                results[name] = measure()
                results[name]["part_seconds"] = round(time.monotonic() - started, 1)
                results[name]["machine"] = busySince(before)
    return results


def _fmt(value, digits=2):
    if value is None:
        return "-"
    return "{:.{}f}".format(value, digits)


def tables(results):
    """
    The results as Markdown tables with a few lines of notes.
    """
    out = []
    f = results.get("follow")
    if f:
        lat = f["latency"]
        rows = [["write -> read from the CLI's stdout", lat["n"], lat["p50_ms"], lat["p90_ms"],
                 lat["p99_ms"], lat["max_ms"], lat["mean_ms"]]]
        out.append("### tail -f: write to print\n")
        out.append(common.markdownTable(
            ["jobmon-query tail -f", "lines", "p50 ms", "p90 ms", "p99 ms", "max ms",
             "mean ms"], rows))
        out.append("\n{} lines written {:g}-{:g} ms apart, {} read back. The daemon is "
                   "woken by inotify (where it cannot watch, it looks at the file every "
                   "{:g} ms).\n".format(
                       f["written"], f["write_interval_s"][0] * 1000,
                       f["write_interval_s"][1] * 1000, f["received"], CHECK_INTERVAL_MS))
        if f.get("idle"):
            i = f["idle"]
            out.append("With the follower waiting and no writes, the daemon used {} ms of CPU "
                       "per second over {:g} s (10 ms ticks: see compare_trees.py --figures "
                       "idle for exact figures).\n".format(i["cpu_ms_per_s"], i["seconds"]))
    b = results.get("files")
    if b:
        t = b["tail"]
        mib = b["file_bytes"] / (1024.0 * 1024.0)
        bigName = "{:g} GiB".format(mib / 1024) if mib >= 1024 else "{:g} MiB".format(mib)
        rows = []
        for key, label, first in (("small", "10 KiB", b["first_small_ms"]),
                                  ("big", bigName, b["first_big_cold_ms"])):
            s = t[key]
            rows.append(["tail -n {} of {}".format(TAIL_LINES, label), s["n"], first,
                         s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]])
        out.append("### tail -n {} of a big file\n".format(TAIL_LINES))
        out.append(common.markdownTable(
            ["query (in-process client)", "n", "first ms", "p50 ms", "p90 ms", "p99 ms",
             "max ms"], rows))
        mem = b["memory_tail"]
        mrows = []
        for role in ("daemon", "server"):
            mrows.append([role, mem["before"][role]["rss_mib"], mem["after"][role]["rss_mib"],
                          mem["before"][role]["hwm_mib"], mem["after"][role]["hwm_mib"]])
        out.append("\nResult: {} bytes each. The big file's first query is with the file "
                   "evicted from the page cache ({}% cached). Daemon CPU {} ms per query.\n"
                   .format(t["result_bytes"], _fmt(b["cached_percent_before"], 1),
                           _fmt(t["daemon_cpu_ms_per_query"])))
        out.append(common.markdownTable(
            ["memory (MiB)", "VmRSS before", "VmRSS after", "VmHWM before", "VmHWM after"],
            mrows))
        c = b.get("cat")
        if c:
            crows = [[
                "jobmon-query cat of {}".format(bigName), round(c["bytes"] / 1e6, 1),
                c["seconds"], c["mb_per_s"], c["mib_per_s"],
                "yes" if c["complete"] else "no (stopped at {:g} s)".format(c["bound_s"]),
            ]]
            out.append("\n### cat of the big file through the CLI\n")
            out.append(common.markdownTable(
                ["command", "MB read", "seconds", "MB/s", "MiB/s", "whole file"], crows))
            cpuRows = [[role, c["cpu"][role]["s"], c["cpu"][role]["ms_per_mib"]]
                       for role in ("cli", "server", "daemon", "benchmark (reads the pipe)",
                                    "other processes") if role in c["cpu"]]
            cpuRows.append(["wall time x CPUs", round(c["seconds"] * (os.cpu_count() or 1), 2),
                            round(c["seconds"] * (os.cpu_count() or 1) * 1000.0
                                  / max(1e-9, c["bytes"] / 1048576.0), 2)])
            out.append("")
            out.append(common.markdownTable(["process", "CPU s", "CPU ms per MiB"], cpuRows))
            m = c["memory_after"]
            out.append("\nAfter cat: daemon VmRSS {} / VmHWM {} MiB; server {} / {} MiB; "
                       "CLI VmHWM {} MiB.".format(
                           m["daemon"]["rss_mib"], m["daemon"]["hwm_mib"],
                           m["server"]["rss_mib"], m["server"]["hwm_mib"],
                           _fmt(m["cli_hwm_mib"], 1)))
    p = results.get("processes")
    if p:
        rows = []
        for key, label, size in (
            ("ps", "ps", p["ps_answer_bytes"]),
            ("top", "top (interval 1 s)", p["top_answer_bytes"]),
            ("res", "res", p["res_answer_bytes"]),
        ):
            s = p[key]
            rows.append([label, s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["mean_ms"],
                         size])
        out.append("\n### ps, top, res of a job of {} processes\n".format(p["processes"]))
        out.append(common.markdownTable(
            ["query (in-process client)", "n", "p50 ms", "p99 ms", "max ms", "mean ms",
             "answer bytes"], rows))
        out.append(
            "\nFirst ps {} ms (a new connection). CPU per ps: daemon {} ms, server {} ms, "
            "client {} ms. Daemon memory: VmRSS {} -> {} MiB, VmHWM {} -> {} MiB.".format(
                p["ps_first_ms"], _fmt(p["daemon_cpu_ms_per_ps"]),
                _fmt(p["server_cpu_ms_per_ps"]), _fmt(p["client_cpu_ms_per_ps"]),
                p["memory"]["before"]["rss_mib"], p["memory"]["after"]["rss_mib"],
                p["memory"]["before"]["hwm_mib"], p["memory"]["after"]["hwm_mib"]))
    busy = ["{} {}%".format(name, results[name]["machine"]["busy_percent"])
            for name in ("follow", "files", "processes")
            if results.get(name) and results[name].get("machine")]
    if busy:
        out.append("\nMachine CPU busy during each part (all processes, this benchmark's "
                   "included, of {} CPUs): {}.".format(os.cpu_count(), ", ".join(busy)))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20 lines, a 64 MiB file, 50 processes")
    parser.add_argument("--processes", type=int, help="processes of the sample job (500)")
    parser.add_argument("--ps-n", type=int, help="timed ps queries (20)")
    parser.add_argument("--parts", default="follow,files,processes",
                        help="comma-separated subset of: follow,files,processes")
    common.jsonOption(parser)
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("processes", "ps_n"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    parts = tuple(args.parts.split(","))
    if not set(parts) <= {"follow", "files", "processes"}:
        parser.error("--parts: choose among follow,files,processes")
    if not (2 <= cfg["processes"] <= 2000 and 1 <= cfg["ps_n"] <= 1000):
        parser.error("sizes out of range")
    needed = cfg["file_mib"] * 1024 * 1024 * 2
    free = os.statvfs(tempfile.gettempdir())
    if "files" in parts and free.f_bavail * free.f_frsize < needed:
        parser.error("not enough free space in {} for a {} MiB file".format(
            tempfile.gettempdir(), cfg["file_mib"]))
    common.installSignalHandlers()
    started = time.monotonic()
    results = run(cfg, parts=parts)
    document = {
        "benchmark": "ops",
        "machine": common.machine(),
        "config": cfg,
        "results": results,
        "seconds": round(time.monotonic() - started, 1),
    }
    common.emit(document, tables(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

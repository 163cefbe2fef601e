"""
Shared pieces of the JobMon benchmarks: a throwaway PKI, a real server and
a real job daemon (C{twistd} processes on 127.0.0.1), a sample working
directory, process figures from C{/proc}, and the statistics and tables the
scripts print.

These are standalone scripts, not trial tests: the processes are started
with L{subprocess.Popen} and stopped (SIGTERM, then SIGKILL) when the
L{BenchEnv} context ends, whatever happens.  On Linux each child also gets
SIGKILL if the benchmark itself dies without cleaning up.
"""

import atexit
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
"""This directory."""

ROOT = os.path.dirname(BENCH)
"""The source tree the benchmarks and their child processes import JobMon
from."""

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")

START_TIMEOUT = 30.0
"""Seconds a process has to print the line the benchmark waits for."""

STOP_TIMEOUT = 10.0
"""Seconds a process has to exit after SIGTERM before it gets SIGKILL."""

JOB_ID = "job.1"
"""The id of the benchmark's job."""

LOG_SIZE = 1024 * 1024
"""Size of C{job.log}, the file C{tail} reads."""

SMALL_SIZE = 4096
"""Size of C{small.bin}, the file C{cat} reads."""

DIR_FILES = 20
"""Number of files in C{dir20/}, the directory C{ls} lists."""

LOOPBACK_BROADCAST = "127.255.255.255"
"""Where the server broadcasts UDP wakes (see L{loopback_twistd})."""

QUERY_LIMITS_LIFTED = [
    "--query-rate", "1000000", "--query-burst", "1000000",
    "--user-rate", "1000000", "--user-burst", "1000000",
    "--daemon-rate", "1000000", "--daemon-burst", "1000000",
    "--registration-rate", "1000000", "--registration-burst", "1000000",
    "--max-jobs-per-owner", "1000000",
]
"""Server options for benchmarks: one benchmark client makes thousands of
queries per second, and one identity registers tens of thousands of jobs,
which the per-user rate limits and the cap on jobs per owner (meant for
people) would refuse."""


def say(message):
    """
    A progress line on standard error.
    """
    sys.stderr.write("bench: {}\n".format(message))
    sys.stderr.flush()


def childEnv(**extra):
    """
    The environment for child processes: this source tree first on the
    path, no credentials or server inherited from the caller.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("X509_USER_PROXY", "X509_CERT_DIR", "JOBMON_SERVER", "PYTHONSTARTUP")
    }
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _loadPrctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None


# Looked up before any fork: a child must not load libraries.
_prctl = _loadPrctl()


def dieWithParent():
    """
    Ask Linux to SIGKILL this (child) process when the benchmark that forked
    it dies, so that no server or load generator outlives a killed
    benchmark.  Best effort: does nothing where C{prctl} is missing.
    """
    PR_SET_PDEATHSIG = 1
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def installSignalHandlers():
    """
    Turn SIGTERM (and SIGHUP) into L{SystemExit} so that C{finally} blocks,
    and so the clean-up of every L{BenchEnv}, run.
    """

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), handler)


class Proc:
    """
    A child process whose output (stdout and stderr together) goes to a
    file, which L{waitFor} reads.

    A file rather than a pipe: a thread reading a pipe in this process would
    wake up for every line a child logs, and take CPU and the GIL from the
    client being measured.

    @ivar name: a label for messages.
    @ivar popen: the L{subprocess.Popen}.
    @ivar logPath: the file holding the output.
    """

    _live = set()

    def __init__(self, name, args, logPath, env=None, cwd=None):
        self.name = name
        self.logPath = logPath
        with open(logPath, "wb") as log:
            self.popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env or childEnv(PYTHONUNBUFFERED="1"),
                cwd=cwd or ROOT,
                preexec_fn=dieWithParent,
                # Ctrl-C reaches the benchmark only; it stops the children
                # itself, in order (daemon first, so that it can unregister).
                start_new_session=True,
            )
        Proc._live.add(self)

    @property
    def pid(self):
        """
        The child's process id.
        """
        return self.popen.pid

    def text(self):
        """
        Everything the process wrote so far.
        """
        try:
            with open(self.logPath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def output(self, last=40):
        """
        The last C{last} lines of output, as one string.
        """
        return "".join(self.text().splitlines(True)[-last:])

    def waitFor(self, pattern, timeout=START_TIMEOUT):
        """
        Return the first match of C{pattern} in the output, waiting up to
        C{timeout} seconds.

        @raise RuntimeError: the process ended or the time passed first.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            ended = self.popen.poll() is not None
            match = regex.search(self.text())
            if match:
                return match
            if ended or time.monotonic() > deadline:
                raise RuntimeError(
                    "{} {} before printing {!r}; its last output:\n{}".format(
                        self.name,
                        "exited with {}".format(self.popen.returncode)
                        if ended
                        else "did not print it within {:g} s".format(timeout),
                        pattern,
                        self.output(),
                    )
                )
            time.sleep(0.02)

    def stop(self, timeout=STOP_TIMEOUT):
        """
        Stop with SIGTERM, then SIGKILL if it does not end in time.

        @return: the exit status.
        """
        Proc._live.discard(self)
        p = self.popen
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.terminate()
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        return p.returncode

    @classmethod
    def stopAll(cls):
        """
        Stop every child still running (safety net at interpreter exit).
        """
        for proc in list(cls._live):
            try:
                proc.stop(3)
            except Exception:
                pass


atexit.register(Proc.stopAll)


WAKE_READY = {
    "tcp": r"wake channel up",
    "udp": r"listening for UDP wakes on port",
    "poll": r"registered with .* \(poll wake\)",
}
"""The daemon's output line that says it can be woken, per wake mode."""

SERVER_READY = r"XML-RPC on (\d+), TCP wake on (\d+)"
"""The server's output line naming its HTTPS and wake ports."""


def serverArgs(hostCert, hostKey, caDir):
    """
    C{twistd}'s arguments for a C{jobmon-server} on 127.0.0.1 whose ports
    the system chooses (its L{SERVER_READY} line names them).
    """
    return [
        "-n", "--pidfile=", "jobmon-server",
        "--interface", "127.0.0.1", "--https-port", "0", "--wake-port", "0",
        "--hostcert", hostCert, "--hostkey", hostKey, "--ca-dir", caDir,
    ]


def freeUDPPort():
    """
    A UDP port free on L{LOOPBACK_BROADCAST} (small race: it is released
    before the server and daemon take it).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOOPBACK_BROADCAST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def makePKI(directory, keyType="ec"):
    """
    A throwaway PKI in C{directory/pki} with user alice, and her proxy in
    C{directory/x509up_alice}.

    @return: C{(pki, proxyPath)}, the first a L{jobmon.devtools.pki.PKI}.
    """
    from jobmon.devtools import pki

    thePKI = pki.initPKI(os.path.join(directory, "pki"), users=("alice",), keyType=keyType)
    alice = thePKI.users["alice"]
    proxy = os.path.join(directory, "x509up_alice")
    pki.makeProxy(alice.certPath, alice.keyPath, proxy)
    return thePKI, proxy


def makeWorkdir(path):
    """
    Fill a job's working directory: C{job.log} (1 MiB of log lines),
    C{small.bin} (4 KiB), C{dir20/} (20 small files).
    """
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "job.log"), "wb") as f:
        written, n = 0, 0
        while written < LOG_SIZE:
            n += 1
            line = "2026-01-01T00:00:00 step {:07d} event=progress value={} ok\n".format(
                n, n * 7919 % 100003
            ).encode("ascii")
            left = LOG_SIZE - written
            if left < 2 * len(line):
                # The last line fills the file exactly and ends with a newline.
                line = b"2026-01-01T00:00:00 end " + b"." * max(0, left - 25) + b"\n"
                line = line[-left:] if len(line) > left else line
            f.write(line)
            written += len(line)
    with open(os.path.join(path, "small.bin"), "wb") as f:
        f.write(bytes(range(256)) * (SMALL_SIZE // 256))
    d = os.path.join(path, "dir20")
    os.makedirs(d, exist_ok=True)
    for i in range(DIR_FILES):
        with open(os.path.join(d, "file{:02d}.dat".format(i)), "wb") as f:
            f.write(b"x" * (100 * i))


class BenchEnv:
    """
    A throwaway PKI, a real C{twistd -n jobmon-server} and (optionally) a
    real C{twistd -n jobmon-daemon} for job L{JOB_ID}, as a context manager
    that stops and removes everything on exit.

    @ivar tmp: the temporary directory holding everything.
    @ivar caDir: the hashed CA directory.
    @ivar proxy: alice's proxy file.
    @ivar workdir: the job's working directory.
    @ivar url: the server's XML-RPC URL.
    @ivar server: the server's L{Proc}.
    @ivar daemon: the daemon's L{Proc}, or L{None}.
    """

    def __init__(self, daemon=True, quiet=False, wake="tcp", tokens=False, daemonToken=False):
        """
        @param daemon: whether to start a daemon for L{JOB_ID}.
        @param wake: the daemon's wake mode, C{tcp}, C{udp} or C{poll}
            (HTTPS long poll).  For C{udp} the server broadcasts to
            L{LOOPBACK_BROADCAST} and the daemon runs under
            L{loopback_twistd}, so that its UDP port is not opened on
            every interface.
        @param quiet: print no progress lines.
        @param tokens: make a bearer-token issuer (subject C{alice} is alice's
            DN) and have the server trust it; see L{tokenClient}.
        @param daemonToken: with C{tokens}, the daemon authenticates with a
            token of alice's instead of her proxy.
        """
        if wake not in WAKE_READY:
            raise ValueError("wake mode must be one of " + ", ".join(sorted(WAKE_READY)))
        self.withDaemon = daemon
        self.withTokens = tokens
        self.daemonToken = daemonToken
        self.issuer = None
        self.wake = wake
        self.quiet = quiet
        self.tmp = None
        self.server = None
        self.daemon = None

    def _say(self, message):
        if not self.quiet:
            say(message)

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self):
        self.tmp = tempfile.mkdtemp(prefix="jobmon-bench-")
        self._say("PKI in {}".format(self.tmp))
        thePKI, self.proxy = makePKI(self.tmp)
        self.caDir = thePKI.ca.hashedDir
        self.workdir = os.path.join(self.tmp, "work")
        makeWorkdir(self.workdir)

        args = serverArgs(thePKI.hostCertPath, thePKI.hostKeyPath, self.caDir)
        args += QUERY_LIMITS_LIFTED
        if self.wake == "udp":
            args += ["--udp-broadcast", "{}:{}".format(LOOPBACK_BROADCAST, freeUDPPort())]
        if self.withTokens:
            from jobmon.devtools.issuer import makeIssuer

            self.issuer = makeIssuer(os.path.join(self.tmp, "issuer"),
                                     users={"alice": thePKI.users["alice"].dn})
            args += ["--token-issuers", self.issuer.configPath]
        self.server = Proc("jobmon-server", [TWISTD] + args,
                           os.path.join(self.tmp, "server.log"), cwd=self.tmp)
        match = self.server.waitFor(SERVER_READY)
        self.httpsPort, self.wakePort = int(match.group(1)), int(match.group(2))
        self.url = "https://127.0.0.1:{}/RPC2".format(self.httpsPort)
        self._say("server pid {} at {} (wake port {})".format(
            self.server.pid, self.url, self.wakePort))
        if self.withDaemon:
            self.daemon = self.startDaemon(JOB_ID, self.workdir)

    def daemonArgs(self, jobId, workdir):
        """
        C{twistd}'s arguments for a C{jobmon-daemon} of job C{jobId} in
        C{workdir}, on this server with alice's credential, in this
        environment's wake mode.
        """
        return [
            "-n", "--pidfile=", "jobmon-daemon",
            "--server", self.url, "--job-id", jobId, "--workdir", workdir,
            *self._daemonCredential(),
            "--ca-dir", self.caDir,
            "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
            "--wake", self.wake,
        ]

    def startDaemon(self, jobId, workdir, extra=()):
        """
        Start a real C{twistd -n jobmon-daemon} for C{jobId} (see
        L{daemonArgs}) with C{extra} arguments, and wait until it can be
        woken.

        @return: its L{Proc}.
        """
        head = [TWISTD]
        if self.wake == "udp":
            head = [sys.executable, os.path.join(BENCH, "loopback_twistd.py")]
        daemon = Proc("jobmon-daemon " + jobId,
                      head + self.daemonArgs(jobId, workdir) + list(extra),
                      os.path.join(self.tmp, "daemon-{}.log".format(jobId)), cwd=self.tmp)
        try:
            daemon.waitFor(WAKE_READY[self.wake])
        except BaseException:
            daemon.stop()
            raise
        self._say("daemon pid {} for job {} ({} wake)".format(daemon.pid, jobId, self.wake))
        return daemon

    def _daemonCredential(self):
        if not self.daemonToken:
            return ["--proxy", self.proxy]
        path = os.path.join(self.tmp, "daemon.token")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.issuer.mint("alice", scope="compute.create", lifetime=6 * 3600))
        return ["--auth", "token", "--token-file", path]

    def close(self):
        """
        Stop the daemon (it unregisters), then the server; remove the
        temporary directory.
        """
        try:
            for proc in (self.daemon, self.server):
                if proc is not None:
                    try:
                        proc.stop()
                    except Exception as e:
                        self._say("could not stop {}: {}".format(proc.name, e))
        finally:
            self.daemon = self.server = None
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None

    def tokenClient(self, timeout=30.0, scope="compute.read compute.modify"):
        """
        A new L{jobmon.client.JobMonClient} for alice with a bearer token
        (the environment must have been made with C{tokens=True}).
        """
        from jobmon.client import JobMonClient

        token = self.issuer.mint("alice", scope=scope, lifetime=6 * 3600)
        return JobMonClient(self.url, caDir=self.caDir, timeout=timeout, auth="token",
                            token=token)

    def client(self, timeout=30.0):
        """
        A new L{jobmon.client.JobMonClient} for alice.
        """
        from jobmon.client import JobMonClient

        return JobMonClient(self.url, proxy=self.proxy, caDir=self.caDir, timeout=timeout)

    def cliCommand(self, *args):
        """
        The command line of the real C{jobmon-query} (the virtualenv's
        console script) as alice against this server.
        """
        script = os.path.join(BIN, "jobmon-query")
        head = [sys.executable, script] if os.path.exists(script) else [
            sys.executable, "-m", "jobmon.cli"]
        return head + ["--server", self.url, "--proxy", self.proxy,
                       "--ca-dir", self.caDir] + list(args)


def cpuSeconds(pid):
    """
    User plus system CPU seconds used so far by process C{pid} (Linux), or
    L{None}.
    """
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


def procStatus(pid, keys=("VmRSS", "VmHWM")):
    """
    The memory figures C{keys} of process C{pid} from C{/proc/PID/status}
    (KiB), with its open descriptors (C{fds}) and CPU seconds (C{cpu}); a
    figure that cannot be read is left out (C{fds} and C{cpu}: L{None}).
    """
    values = {}
    try:
        with open("/proc/{}/status".format(pid)) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in keys:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    try:
        values["fds"] = len(os.listdir("/proc/{}/fd".format(pid)))
    except OSError:
        values["fds"] = None
    values["cpu"] = cpuSeconds(pid)
    return values


def machineCPU():
    """
    The whole machine's CPU seconds so far, over all CPUs (C{/proc/stat}):
    C{(busy, total, softirq)}.  Differences over a run tell how busy the
    machine was, every process included.
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    ticks = float(os.sysconf("SC_CLK_TCK"))
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest and guest_nice (fields 8, 9) are counted in user and nice too.
    total = sum(fields[:8])
    softirq = fields[6] if len(fields) > 6 else 0
    return (total - idle) / ticks, total / ticks, softirq / ticks


def mib(kib):
    """
    KiB (as in C{/proc/PID/status}) in MiB to one decimal, or L{None}.
    """
    return None if kib is None else round(kib / 1024.0, 1)


def settle(pid, quiet=0.02, interval=0.3, limit=10.0):
    """
    Wait until process C{pid} is idle (less than C{quiet} CPU seconds over
    C{interval}), for at most C{limit} seconds: memory read then is not
    caught in the middle of work.
    """
    deadline = time.monotonic() + limit
    before = cpuSeconds(pid)
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = cpuSeconds(pid)
        if before is None or now is None or now - before < quiet:
            return
        before = now


def timed(call, n):
    """
    Call C{call()} C{n} times in a row.

    @return: C{(durations, last)}: the seconds each call took and the last
        call's result.
    """
    durations, last = [], None
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        last = call()
        durations.append(clock() - t0)
    return durations, last


def sourceVersion():
    """
    The commit of the source tree, and the JobMon files changed since it
    (other engineers' work in progress is measured too), or L{None}.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, timeout=10, check=True).stdout
        changed = subprocess.run(["git", "status", "--porcelain", "--", "jobmon", "twisted"],
                                 cwd=ROOT, capture_output=True, timeout=10,
                                 check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.decode().strip(),
            "changed": [line[3:] for line in changed.decode().splitlines()]}


def jsonOption(parser, what="tables"):
    """
    Add C{--json [PATH]} to C{parser}, for L{emit}.
    """
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="print JSON instead of the {} (or write it to PATH)".format(what))


def emit(document, text, path):
    """
    Print the report C{text}; with C{path} C{"-"} (a bare C{--json}),
    print C{document} as JSON instead; with another C{path}, also write the
    JSON there.
    """
    if path == "-":
        print(json.dumps(document, indent=2, default=str))
        return
    print(text)
    if path:
        with open(path, "w") as f:
            json.dump(document, f, indent=2, default=str)


def percentile(sortedValues, p):
    """
    The C{p}th percentile (nearest rank) of an already sorted list.
    """
    if not sortedValues:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sortedValues)))
    return sortedValues[min(rank, len(sortedValues)) - 1]


def summarize(seconds):
    """
    Summarize durations in seconds: count, p50, p90, p99, max and mean in
    milliseconds.
    """
    values = sorted(seconds)
    ms = lambda v: round(v * 1000.0, 3)  # noqa: E731
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1]) if values else float("nan"),
        "mean_ms": ms(sum(values) / len(values)) if values else float("nan"),
    }


def markdownTable(headers, rows):
    """
    Format a Markdown table; numbers are right-aligned.
    """

    def cell(v):
        if isinstance(v, float):
            return "{:.2f}".format(v)
        return str(v)

    body = [[cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h)
        for i, h in enumerate(headers)
    ]
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
        for i in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
        "|" + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
            for w, num in zip(widths, numeric)
        ) + "|",
    ]
    for r in body:
        lines.append(
            "| " + " | ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(r, widths, numeric)
            ) + " |"
        )
    return "\n".join(lines)


def machine():
    """
    A description of this machine and the software under test.
    """
    import platform
    import ssl

    info = {
        "nproc": os.cpu_count(),
        "cpu": None,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "ssl_stdlib": ssl.OPENSSL_VERSION,
        "source": sourceVersion(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import twisted

        info["twisted"] = twisted.__version__
    except ImportError:
        pass
    try:
        import OpenSSL
        from OpenSSL import SSL

        info["pyopenssl"] = OpenSSL.__version__
        info["ssl_pyopenssl"] = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    except ImportError:
        pass
    try:
        with open("/proc/loadavg") as f:
            info["loadavg"] = f.read().split()[0]
    except OSError:
        pass
    return info

"""
C{jobmon-run}: run a batch job's command with a JobMon daemon beside it.

    jobmon-run [options] -- COMMAND [ARGS...]

The wrapper starts COMMAND at once (as a child, not through a shell), then
the job daemon (C{twistd -n --pidfile= jobmon-daemon ...}) with
C{--job-pid} set to the command's pid, so that C{ps}, C{top}, C{res},
C{env} and C{signal} look at the job.  It forwards the signals it receives
(TERM, INT, HUP, USR1, USR2) to the command; when the command ends it stops
the daemon (SIGTERM, so that it unregisters; SIGKILL after
C{--stop-grace} seconds) and exits with the command's exit status (128+N
if a signal N killed it, as shells do).

Monitoring never kills or delays the job: the command starts before the
daemon and without waiting for it; if the daemon cannot start (no server,
no job id, unreadable credential, bad option) or dies, the wrapper writes
one line on standard error, prefixed C{jobmon-run: }, and the command runs
on, unmonitored.  The daemon never outlives the wrapper: it runs in a
process group of its own (so a Ctrl-C reaches the command, not the
monitoring), is stopped when the command ends, and on Linux gets SIGTERM
from the kernel if the wrapper itself is killed.

The job id comes from the batch system unless C{--job-id} is given (see
L{detectJob}).  The daemon's output goes to a file in the working directory
(L{defaultDaemonLog}), never to the job's standard output.

This module imports only the standard library (and L{jobmon.credentials} with
the modules it uses, which do too): it is a small process supervisor that
must start the job at once, so it has no reactor; the daemon it starts is
the Twisted program.
"""

import argparse
import errno
import os
import re
import signal
import subprocess
import sys
import time

from jobmon.credentials import (
    AUTH_MODES,
    TokenNotFound,
    defaultProxyPath,
    resolveAuth,
    tokenSource,
)
from jobmon.fqan import parseFqan
from jobmon.options import DEFAULT_CA_DIR, defaultCADir, versionAction
from jobmon.serverlist import AddServer, splitServers

PROG = "jobmon-run"

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
"""Signals the wrapper passes on to the command."""

STOP_GRACE = 5.0
"""Seconds the daemon has to unregister and exit after SIGTERM."""

EXIT_USAGE = 2
"""The wrapper's own usage error, when there is no command to run."""
EXIT_NOT_EXECUTABLE = 126
"""The command exists but cannot be run (as shells do)."""
EXIT_NOT_FOUND = 127
"""The command was not found (as shells do)."""

SLURM_SPECIAL_STEPS = 0xFFFFFFF0
"""Slurm step ids from here on name special steps (batch, extern,
interactive...), which are not part of the job id Slurm prints."""

BATCH_SYSTEM_ENV = "JOBMON_BATCH_SYSTEM"
"""Set in the daemon's environment to the batch system detected."""


class JobIdError(Exception):
    """
    The batch system's job id could not be read.

    @ivar batchSystem: the batch system the environment points to.
    """

    def __init__(self, message, batchSystem):
        super().__init__(message)
        self.batchSystem = batchSystem


def _get(environ, *names):
    """
    The first of C{names} set (not blank) in C{environ}, stripped, or
    L{None}.
    """
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def parseJobAd(text):
    """
    Parse an HTCondor job ClassAd file (C{$_CONDOR_JOB_AD}): one
    C{Key = Value} line per attribute.

    @return: a dict from attribute names, lower-cased (ClassAd names are
        case-insensitive), to their values as written; string values lose
        their quotes.
    """
    ad = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        ad[key.lower()] = value
    return ad


def _condorJob(path, readFile):
    try:
        ad = parseJobAd(readFile(path))
    except (OSError, UnicodeDecodeError) as e:
        raise JobIdError(
            "cannot read the HTCondor job ad {} ($_CONDOR_JOB_AD): {}".format(
                path, getattr(e, "strerror", None) or e
            ),
            "htcondor",
        ) from None
    cluster, proc = ad.get("clusterid", ""), ad.get("procid", "")
    if not (cluster.isdigit() and proc.isdigit()):
        raise JobIdError(
            "no ClusterId and ProcId in the HTCondor job ad {}".format(path), "htcondor"
        )
    return "{}.{}".format(int(cluster), int(proc))


def _slurmJob(environ):
    jobId = _get(environ, "SLURM_JOB_ID", "SLURM_JOBID")
    array, task = _get(environ, "SLURM_ARRAY_JOB_ID"), _get(environ, "SLURM_ARRAY_TASK_ID")
    if array and task:
        # As squeue prints an array task: ARRAYJOB_TASK.
        jobId = "{}_{}".format(array, task)
    step = _get(environ, "SLURM_STEP_ID", "SLURM_STEPID")
    if step and step.isdigit() and int(step) < SLURM_SPECIAL_STEPS:
        jobId = "{}.{}".format(jobId, int(step))
        # Each task of a step of several tasks runs its own wrapper: the
        # task rank keeps their registrations apart.
        tasks = _get(environ, "SLURM_STEP_NUM_TASKS")
        rank = _get(environ, "SLURM_PROCID")
        if tasks and tasks.isdigit() and int(tasks) > 1 and rank and rank.isdigit():
            jobId = "{}.{}".format(jobId, int(rank))
    return jobId


def _lsfJob(environ):
    jobId = _get(environ, "LSB_JOBID")
    index = _get(environ, "LSB_JOBINDEX")
    # LSF sets LSB_JOBINDEX to 0 outside job arrays.
    if index and index != "0":
        jobId = "{}[{}]".format(jobId, index)
    return jobId


def detectJob(environ, readFile):
    """
    Find the job's id and batch system from the environment the batch
    system gave the job.

      - HTCondor: C{$_CONDOR_JOB_AD} names the job ad; its C{ClusterId} and
        C{ProcId} give C{"Cluster.Proc"}.  Looked at first: an HTCondor job
        run by a pilot inside another batch system's job may still see that
        system's variables.
      - Slurm: C{$SLURM_JOB_ID} (or the older C{$SLURM_JOBID}); an array
        task is C{"ARRAYJOB_TASK"} (C{$SLURM_ARRAY_JOB_ID},
        C{$SLURM_ARRAY_TASK_ID}); inside a job step (C{$SLURM_STEP_ID},
        not the batch or extern step) C{".STEP"} follows, and in a step of
        several tasks C{".RANK"} too (C{$SLURM_PROCID}).
      - PBS: C{$PBS_JOBID} as it is (array sub-jobs are in it already).
      - LSF: C{$LSB_JOBID}, with C{"[INDEX]"} for an array element
        (C{$LSB_JOBINDEX} other than 0).

    @param environ: the environment, a mapping.
    @param readFile: called with a path, returns its text (HTCondor's job
        ad); may raise L{OSError}.
    @return: C{(jobId, batchSystem)}: C{batchSystem} is one of
        C{"htcondor"}, C{"slurm"}, C{"pbs"}, C{"lsf"}; C{(None, None)}
        outside a batch job.
    @raise JobIdError: the environment names a batch system whose job id
        cannot be read.
    """
    ad = _get(environ, "_CONDOR_JOB_AD")
    if ad:
        return _condorJob(ad, readFile), "htcondor"
    if _get(environ, "SLURM_JOB_ID", "SLURM_JOBID"):
        return _slurmJob(environ), "slurm"
    pbs = _get(environ, "PBS_JOBID")
    if pbs:
        return pbs, "pbs"
    if _get(environ, "LSB_JOBID"):
        return _lsfJob(environ), "lsf"
    return None, None


def readText(path, limit=1024 * 1024):
    """
    Read a small text file (at most C{limit} bytes of it).
    """
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8")


def defaultDaemonLog(workdir, jobId):
    """
    Where the daemon's output goes by default:
    C{WORKDIR/.jobmon-daemon-JOBID.log}, a hidden file named after the job,
    so that jobs sharing a directory (Slurm jobs started in the same
    submission directory) each have their own.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", jobId)
    return os.path.join(workdir, ".jobmon-daemon-{}.log".format(safe))


class _UsageError(Exception):
    """
    The wrapper's own options are wrong.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


def makeParser():
    """
    The command-line parser of C{jobmon-run}.
    """
    parser = _Parser(
        prog=PROG,
        usage="%(prog)s [options] -- COMMAND [ARGS...]",
        description=(
            "Run a batch job's COMMAND with a JobMon daemon beside it, so that its "
            "owner can query it with jobmon-query. The command always runs: if "
            "monitoring cannot start, one line on standard error says why. The "
            "wrapper exits with the command's exit status (128+N if signal N killed it)."
        ),
        epilog=(
            "The job id comes from the batch system when --job-id is not given: "
            "HTCondor ($_CONDOR_JOB_AD: Cluster.Proc), Slurm ($SLURM_JOB_ID, "
            "ARRAYJOB_TASK for array tasks, .STEP inside a job step), PBS "
            "($PBS_JOBID), LSF ($LSB_JOBID, JOB[INDEX] for arrays). TERM, INT, HUP, "
            "USR1 and USR2 are passed on to the command."
        ),
    )
    add = parser.add_argument
    add("--version", action=versionAction())
    add("--server", metavar="URL", action=AddServer,
        help="the JobMon server; repeatable, or a comma-separated list: the daemon "
             "registers with the first and moves to the next when it loses its server "
             "[default: $JOBMON_SERVER, a URL or comma-separated list]")
    add("--job-id", metavar="ID",
        help="the job's id [default: from the batch system]")
    add("--workdir", metavar="DIR",
        help="the directory the daemon serves [default: the current directory]")
    add("--proxy", metavar="FILE",
        help="credential [default: $X509_USER_PROXY, then /tmp/x509up_u$UID]")
    add("--auth", choices=AUTH_MODES,
        help="how the daemon authenticates: x509 (the proxy) or token (a WLCG bearer "
             "token); auto: a token named by $BEARER_TOKEN or $BEARER_TOKEN_FILE, else "
             "the proxy if there is one, else a token in $XDG_RUNTIME_DIR/bt_u$UID or "
             "/tmp/bt_u$UID [default: auto]")
    add("--token-file", metavar="FILE",
        help="the bearer token's file, read again every 10 s at most [default: WLCG "
             "token discovery]")
    add("--ca-dir", metavar="DIR",
        help="trusted CAs [default: $X509_CERT_DIR, then {}]".format(DEFAULT_CA_DIR))
    add("--wake", choices=("tcp", "udp", "poll"),
        help="the daemon's wake mode [default: the daemon's, tcp]")
    add("--commands", metavar="FILE", action="append", default=[],
        help="site-approved commands users may run (repeatable)")
    add("--allow-signal", metavar="SIGNALS",
        help="signals users may send to the job, e.g. USR1,TERM [default: none]")
    add("--share", metavar="FQAN", action="append", default=[], type=_fqan,
        help="let the holders of this VOMS FQAN (or a token group) read the job, "
             "e.g. /cms (repeatable; signals and commands stay yours)")
    add("--redact", metavar="PATTERN", action="append", default=[],
        help="more environment names to redact (repeatable)")
    add("--daemon-log", metavar="FILE",
        help="the daemon's output; - for standard error "
             "[default: WORKDIR/.jobmon-daemon-JOBID.log]")
    add("--daemon-arg", metavar="ARG", action="append", default=[],
        help="one more argument for the daemon, e.g. --daemon-arg=--op-timeout=60 "
             "(repeatable)")
    add("--stop-grace", metavar="SECONDS", type=_seconds, default=STOP_GRACE,
        help="how long the daemon has to unregister when the command has ended, "
             "before SIGKILL [default: %(default)s]")
    add("--no-monitor", action="store_true",
        help="only run the command (and pass signals on): no daemon")
    add("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _seconds(text):
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


_seconds.__name__ = "seconds"


def _fqan(text):
    try:
        return str(parseFqan(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def parseArguments(argv):
    """
    Parse C{jobmon-run}'s arguments.

    @return: C{(options, command, problem)}: C{options} is the parsed
        namespace or L{None}; C{command} the list to run, or L{None} if
        there is none; C{problem} a message about the options, or L{None}.
        With a C{--} in C{argv}, the command after it is found even when
        the options before it are wrong, so that the job can still run.
    """
    parser = makeParser()
    if "--" in argv:
        split = argv.index("--")
        before, command = argv[:split], argv[split + 1:]
        try:
            options = parser.parse_args(before)
        except _UsageError as e:
            return None, command or None, str(e)
        if options.command:
            return None, command or None, "unexpected argument {!r} before --".format(
                options.command[0]
            )
        return options, command or None, None
    try:
        options = parser.parse_args(argv)
    except _UsageError as e:
        return None, None, str(e)
    return options, options.command or None, None


class DaemonPlan:
    """
    How to start the daemon: its arguments, environment and log file.

    @ivar args: the daemon's command line after C{twistd}.
    @ivar jobId: the job id it registers.
    @ivar batchSystem: the batch system detected, or L{None}.
    @ivar log: the daemon's log file, or L{None} for standard error.
    """

    def __init__(self, args, jobId, batchSystem, log):
        self.args = args
        self.jobId = jobId
        self.batchSystem = batchSystem
        self.log = log


class NoMonitoring(Exception):
    """
    The daemon cannot be started; the message says why.
    """


def planDaemon(options, environ, cwd, readFile=readText, uid=None):
    """
    Work out the daemon's command line from the wrapper's options, the
    environment and the batch system.

    Only cheap checks happen here (a server is named, a job id is known,
    the credential and CA directory exist); the daemon checks the rest and
    exits if it is wrong.

    @param options: the parsed options (see L{makeParser}).
    @param environ: the environment.
    @param cwd: the current directory (the default working directory).
    @param readFile: reads HTCondor's job ad (see L{detectJob}).
    @param uid: the user id for the default proxy path (default
        C{os.getuid()}).
    @return: a L{DaemonPlan}; its arguments lack C{--job-pid}, which
        L{daemonCommand} adds.
    @raise NoMonitoring: the daemon cannot be started.
    """
    servers = splitServers(options.server or _get(environ, "JOBMON_SERVER") or "")
    if not servers:
        raise NoMonitoring("no JobMon server: give --server or set JOBMON_SERVER")
    try:
        detected, batchSystem = detectJob(environ, readFile)
        problem = None
    except JobIdError as e:
        detected, batchSystem, problem = None, e.batchSystem, str(e)
    jobId = options.job_id or detected
    if not jobId:
        raise NoMonitoring(
            problem
            or "no job id: not in an HTCondor, Slurm, PBS or LSF job; give --job-id"
        )

    def absolute(path):
        return os.path.abspath(os.path.join(cwd, path))

    workdir = absolute(options.workdir or ".")
    if uid is None:
        uid = os.getuid()
    caDir = absolute(options.ca_dir or defaultCADir(environ))
    tokenFile = absolute(options.token_file) if options.token_file else None
    try:
        auth = resolveAuth(options.auth or "auto", proxy=options.proxy,
                           tokenFile=tokenFile, environ=environ, uid=uid)
    except ValueError as e:
        raise NoMonitoring(str(e)) from None
    args = [arg for server in servers for arg in ("--server", server)]
    args += [
        "--job-id", jobId,
        "--workdir", workdir,
    ]
    if auth == "token":
        try:
            tokenSource(tokenFile, environ, uid)()
        except TokenNotFound as e:
            raise NoMonitoring(str(e)) from None
        args += ["--auth", "token"]
        if tokenFile:
            args += ["--token-file", tokenFile]
    else:
        proxy = absolute(options.proxy or defaultProxyPath(environ, uid))
        try:
            with open(proxy, "rb"):
                pass
        except OSError as e:
            raise NoMonitoring(
                "cannot read the credential {}: {}".format(proxy, e.strerror or e)
            ) from None
        args += ["--auth", "x509", "--proxy", proxy]
    if not os.path.isdir(caDir):
        raise NoMonitoring("the CA directory {} does not exist".format(caDir))
    args += ["--ca-dir", caDir]
    if options.wake:
        args += ["--wake", options.wake]
    for path in options.commands:
        args += ["--commands", absolute(path)]
    if options.allow_signal:
        args += ["--allow-signal", options.allow_signal]
    for pattern in options.redact:
        args += ["--redact", pattern]
    for fqan in options.share:
        args += ["--share", fqan]
    args += options.daemon_arg
    if options.daemon_log == "-":
        log = None
    elif options.daemon_log:
        log = absolute(options.daemon_log)
    else:
        log = defaultDaemonLog(workdir, jobId)
    return DaemonPlan(args, jobId, batchSystem, log)


def twistdCommand(executable=None):
    """
    How to run C{twistd} with this Python: the C{twistd} script beside the
    interpreter (a virtualenv's C{bin}), else the interpreter itself.
    """
    executable = executable or sys.executable
    script = os.path.join(os.path.dirname(executable), "twistd")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [executable, "-c", "from twisted.scripts.twistd import run; run()"]


def daemonCommand(twistd, plan, jobPid):
    """
    The daemon's full command line.

    @param twistd: see L{twistdCommand}.
    @param plan: a L{DaemonPlan}.
    @param jobPid: the command's pid: the job's root process.
    """
    return list(twistd) + ["-n", "--pidfile=", "jobmon-daemon"] + plan.args + [
        "--job-pid", str(jobPid),
    ]


def exitStatus(waitStatus):
    """
    The wrapper's exit status for the command's wait status: its exit
    status, or 128+N if signal N killed it.
    """
    code = os.waitstatus_to_exitcode(waitStatus)
    return 128 - code if code < 0 else code


def describeDaemonExit(code):
    """
    A few words about how the daemon ended (C{code} as
    L{os.waitstatus_to_exitcode} gives it).
    """
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal {}".format(-code)
        return "was killed by {}".format(name)
    return "exited with status {}".format(code)


def daemonReason(text):
    """
    The reason a daemon gave for exiting: the last line of its output,
    without C{twistd}'s program-name prefix (a bad option) or the daemon's
    own (a bad file, found as it starts).

    @param text: the end of the daemon's output.
    @return: the line, or L{None}.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    last = re.sub(r"^(\S*(twistd|-c)( -n)?|jobmon-daemon): ", "", lines[-1])
    return last[:300]


def _tail(path, size=4096):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _dieWithParent():
    """
    A C{preexec_fn} that makes the kernel send the daemon SIGTERM if the
    wrapper dies first (Linux's C{PR_SET_PDEATHSIG}), so that it
    unregisters instead of running on unattended; L{None} elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        # The wrapper may have died before the call above.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class _Forwarder:
    """
    Signal handlers that pass signals on to the command; those that come
    before it starts are kept and passed on when it does.
    """

    def __init__(self, kill=os.kill):
        self.kill = kill
        self.pid = None
        self.ended = False
        self.early = []
        self.previous = {}

    def install(self):
        for signum in FORWARDED_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def handle(self, signum, frame):
        if self.pid is None:
            self.early.append(signum)
        elif not self.ended:
            self._send(signum)

    def started(self, pid):
        self.pid = pid
        early, self.early = self.early, []
        for signum in early:
            self._send(signum)

    def _send(self, signum):
        try:
            self.kill(self.pid, signum)
        except OSError:
            pass


class Wrapper:
    """
    Runs the command and its daemon and reports monitoring failures.

    @ivar say: called with each one-line message for standard error.
    """

    def __init__(self, say, stopGrace=STOP_GRACE, sleep=time.sleep, now=time.monotonic):
        self.say = say
        self.stopGrace = stopGrace
        self.sleep = sleep
        self.now = now
        self.forwarder = _Forwarder()
        self.command = None
        self.daemon = None
        self.daemonLog = None
        self.daemonStatus = None

    def startCommand(self, argv, environ=None):
        """
        Start the command, with the standard streams and descriptors the
        wrapper got.

        @return: L{None}, or the exit status if it cannot start.
        """
        try:
            self.command = subprocess.Popen(argv, close_fds=False, env=environ)
        except OSError as e:
            self.say("cannot run {}: {}".format(argv[0], e.strerror or e))
            return EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        self.forwarder.started(self.command.pid)
        return None

    def startDaemon(self, argv, log, environ):
        """
        Start the daemon in a process group of its own, its output to
        C{log} (a path, or L{None} for standard error).
        """
        output = None
        if log is not None:
            try:
                output = open(log, "ab")
            except OSError as e:
                self.say("cannot write the daemon's log {}: {}; it goes to standard "
                         "error".format(log, e.strerror or e))
                log = None
        try:
            self.daemon = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                env=environ,
                process_group=0,
                preexec_fn=_dieWithParent(),
            )
            self.daemonLog = log
        except OSError as e:
            self.say("cannot start the JobMon daemon: {}; the job runs "
                     "unmonitored".format(e.strerror or e))
        finally:
            if output is not None:
                output.close()

    def _daemonEnded(self, expected=False):
        """
        The daemon has exited (its zombie still holds its process group):
        end what it left in its group, reap it, and say why it ended unless
        the wrapper stopped it.
        """
        pid = self.daemon.pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _, waitStatus = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(waitStatus)
        self.daemon.returncode = code
        self.daemonStatus = code
        if not expected:
            # A daemon that exits by itself says why last; one killed by a
            # signal says nothing of it.
            reason = None
            if code > 0 and self.daemonLog:
                reason = daemonReason(_tail(self.daemonLog))
            self.say("the JobMon daemon {}{}; the job runs on unmonitored{}".format(
                describeDaemonExit(code),
                ": " + reason if reason else "",
                " (log: {})".format(self.daemonLog) if self.daemonLog else "",
            ))

    def waitForCommand(self):
        """
        Wait until the command ends, passing signals on; note the daemon's
        end if it comes first.

        @return: the command's wait status.
        """
        commandPid = self.command.pid
        while True:
            # Look without reaping: a signal forwarded meanwhile reaches the
            # command's zombie, never a process that reused its pid.
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            pid = info.si_pid
            if pid == commandPid:
                self.forwarder.ended = True
                _, status = os.waitpid(pid, 0)
                self.command.returncode = os.waitstatus_to_exitcode(status)
                return status
            if self.daemon is not None and pid == self.daemon.pid and self.daemonStatus is None:
                self._daemonEnded()
            else:
                # Not ours (the wrapper may be a container's init): reap it.
                os.waitpid(pid, 0)

    def _daemonExited(self):
        info = os.waitid(os.P_PID, self.daemon.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        return info is not None and info.si_pid == self.daemon.pid

    def stopDaemon(self):
        """
        Stop the daemon: SIGTERM (it unregisters), SIGKILL to its process
        group after the grace period.
        """
        if self.daemon is None or self.daemonStatus is not None:
            return
        if self._daemonExited():
            # It failed on its own (e.g. a bad option) before the command
            # ended: say so.
            self._daemonEnded()
            return
        try:
            os.kill(self.daemon.pid, signal.SIGTERM)
        except OSError:
            pass
        deadline = self.now() + self.stopGrace
        while not self._daemonExited():
            if self.now() >= deadline:
                self.say("the JobMon daemon did not stop within {:g} s; "
                         "killed".format(self.stopGrace))
                try:
                    os.killpg(self.daemon.pid, signal.SIGKILL)
                except OSError:
                    pass
                break
            self.sleep(0.02)
        self._daemonEnded(expected=True)


def main(argv=None, environ=None, stderr=None):
    """
    Run C{jobmon-run} and return its exit status: the command's.

    @param argv: the arguments, without the program name (default
        C{sys.argv[1:]}).
    @param environ: the environment (default C{os.environ}).
    @param stderr: a text stream for the wrapper's messages (default
        C{sys.stderr}).
    """
    if argv is None:
        argv = sys.argv[1:]
    if environ is None:
        environ = os.environ
    if stderr is None:
        stderr = sys.stderr

    def say(message):
        try:
            stderr.write("{}: {}\n".format(PROG, " ".join(str(message).split())))
            stderr.flush()
        except (OSError, ValueError):
            pass

    try:
        options, command, problem = parseArguments(argv)
    except SystemExit as e:
        # --help and --version: printed; nothing to run.
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if command is None:
        if problem is None and options is not None:
            problem = "no command given"
        stderr.write(makeParser().format_usage())
        say(problem)
        return EXIT_USAGE
    if problem is not None:
        say("{}; the job runs unmonitored".format(problem))

    wrapper = Wrapper(say, options.stop_grace if options else STOP_GRACE)
    wrapper.forwarder.install()
    try:
        failed = wrapper.startCommand(command, dict(environ))
        if failed is not None:
            return failed
        if options is not None and not options.no_monitor:
            try:
                plan = planDaemon(options, environ, os.getcwd())
            except NoMonitoring as e:
                say("{}; the job runs unmonitored".format(e))
            else:
                daemonEnv = dict(environ)
                if plan.batchSystem:
                    daemonEnv[BATCH_SYSTEM_ENV] = plan.batchSystem
                wrapper.startDaemon(
                    daemonCommand(twistdCommand(), plan, wrapper.command.pid),
                    plan.log,
                    daemonEnv,
                )
        status = wrapper.waitForCommand()
        wrapper.stopDaemon()
        return exitStatus(status)
    finally:
        wrapper.forwarder.restore()


if __name__ == "__main__":
    sys.exit(main())

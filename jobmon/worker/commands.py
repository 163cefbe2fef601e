"""
Site-approved diagnostic commands: the C{commands} and C{run} ops.

A user may run, on a job's worker, only a command that the site or the
job's owner declared in a TOML file given to the daemon (C{--commands FILE},
repeatable).  The command runs without a shell: its fixed C{argv} comes
from the configuration, and each argument the user adds must match the
command's pattern.

The configuration, its format and its checks are in
L{jobmon.worker.commandconfig}, whose names this module re-exports.

The runner, L{runCommand}, spawns the program through a tiny Python
wrapper (see L{_WRAPPER}) that puts it in a new session and process group,
so that a command that times out is killed with everything it started.

Results are the C{run} struct of C{docs/API.md}, with C{stdout} and
C{stderr} as raw C{bytes} (XML-RPC marshals them as base64); failures are
raised as L{JobMonError}.
"""

import errno
import os
import signal
import sys

from attrs import frozen
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from jobmon.deferreds import deferredAsync
from jobmon.errors import REMOTE_ERROR, REMOTE_TIMEOUT, JobMonError
from jobmon.worker.commandconfig import (  # noqa: F401 (re-exported)
    ARGS_PLACEHOLDER,
    DEFAULT_MAX_ARGS,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_TIMEOUT,
    MAX_ARG_LENGTH,
    MAX_MAX_ARGS,
    MAX_MAX_OUTPUT,
    MAX_TIMEOUT,
    NAME_PATTERN,
    Command,
    CommandConfigError,
    CommandTable,
    PreparedCommand,
    loadCommands,
)

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL to a command's process group when it
times out."""

KILL_WAIT = 5.0
"""Seconds to wait after SIGKILL for the command's pipes to close before
giving up on it (a process stuck in the kernel cannot be killed)."""

_EXEC_FAILED = b"\0jobmon-exec-failed:"
"""What the wrapper writes first on its stderr when it cannot start the
program, followed by the step (C{chdir} or C{exec}), C{:}, the errno and a
newline.  The NUL byte keeps a real program's message from looking like it."""

_WRAPPER_EXIT = 127
"""The wrapper's exit status when it cannot start the program (the shell's
"command not found" status)."""

# Twisted's spawnProcess has no start_new_session, and a preexec function
# is not available either, so the program is started through this wrapper.
# It is an exec, not a shell: the program's argv reaches it unchanged.  It
# also:
# - chdirs itself, so that spawnProcess gets no path and can use
#   posix_spawn rather than forking the daemon, and a missing working
#   directory is reported like a missing program;
# - restores SIGPIPE and SIGXFSZ, which the interpreter ignores at startup
#   and an exec would pass on to the program;
# - restores LC_CTYPE, which the interpreter sets to C.UTF-8 under a C
#   locale (PEP 538) and which would otherwise leak into the program's
#   environment: argv[1] is "-" if the environment had no LC_CTYPE, else
#   "=" and its value.
# The interpreter runs isolated (-I: no PYTHON* variables, no user site)
# and without site (-S), so the job's environment cannot make it run
# anything else, and it starts in a few milliseconds.
# Usage: python -I -S -c _WRAPPER LC_CTYPE-STATE CWD EXECUTABLE ARGV...
_WRAPPER = (
    "import os, signal, sys\n"
    "os.setsid()\n"
    "for n in ('SIGPIPE', 'SIGXFSZ'):\n"
    "    if hasattr(signal, n):\n"
    "        signal.signal(getattr(signal, n), signal.SIG_DFL)\n"
    "if sys.argv[1] == '-':\n"
    "    os.environ.pop('LC_CTYPE', None)\n"
    "else:\n"
    "    os.environ['LC_CTYPE'] = sys.argv[1][1:]\n"
    "step = 'chdir'\n"
    "try:\n"
    "    os.chdir(sys.argv[2])\n"
    "    step = 'exec'\n"
    "    os.execv(sys.argv[3], sys.argv[4:])\n"
    "except OSError as e:\n"
    "    os.write(2, b'\\0jobmon-exec-failed:%s:%d\\n' % (step.encode(), e.errno or 0))\n"
    "    os._exit(127)\n"
)


@frozen
class _Outcome:
    """
    How a command's process ended.
    """

    exitCode: int
    stdout: bytes
    stderr: bytes
    truncated: bool
    duration: float


def _exitCode(reason):
    """
    The API's C{exit_code} for a process that ended with C{reason}: its
    exit status, or minus the signal that killed it.
    """
    value = reason.value
    signalNumber = getattr(value, "signal", None)
    if signalNumber is not None:
        return -signalNumber
    code = getattr(value, "exitCode", None)
    return code if code is not None else 0


class _CommandProtocol(ProcessProtocol):
    """
    Collect a command's output, enforce its time limit, and kill its
    process group when the time is up or the run is cancelled.

    The process must lead its own process group (the wrapper calls
    C{setsid}), so the group's id is its pid.

    @ivar done: fires with an L{_Outcome}, or fails with C{REMOTE_TIMEOUT};
        cancelling it kills the process group at once.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        prepared,
        killGrace=KILL_GRACE,
        killWait=KILL_WAIT,
        killpg=os.killpg,
        kill=os.kill,
    ):
        self._reactor = reactor
        self._prepared = prepared
        self._killGrace = killGrace
        self._killWait = killWait
        self._killpg = killpg
        self._kill = kill
        self._output = {1: [], 2: []}
        self._sizes = {1: 0, 2: 0}
        self._truncated = False
        self._timer = None
        self._started = None
        self._timedOut = False
        self._exited = False
        self._finished = False
        self.pid = None
        self.done = defer.Deferred(self._cancel)

    def connectionMade(self):
        """
        Note the pid and start the clock.
        """
        self.pid = self.transport.pid
        self._started = self._reactor.seconds()
        self._timer = self._reactor.callLater(self._prepared.timeout, self._timeUp)

    def childDataReceived(self, childFD, data):
        """
        Keep output up to the cap; drain and drop the rest, so that the
        command never blocks on a full pipe.
        """
        if childFD not in self._output:
            return None
        room = self._prepared.maxOutput - self._sizes[childFD]
        if len(data) > room:
            self._truncated = True
            data = data[: max(room, 0)]
        if data:
            self._output[childFD].append(data)
            self._sizes[childFD] += len(data)
        return None

    def processExited(self, reason):
        """
        The process was reaped: its pid may be reused from now on, so it is
        never signalled alone again (its group, which outlives it while a
        member remains, still may be).
        """
        self._exited = True

    def processEnded(self, reason):
        """
        The process exited and its pipes closed: kill whatever it left in
        its process group and report.
        """
        self._exited = True
        self._cancelTimer()
        if self._finished:
            return
        self._finished = True
        # Anything still in the group (a background child that closed its
        # output) must not outlive the command.
        self._signalGroup(signal.SIGKILL)
        if self._timedOut:
            self.done.errback(self._timeoutError())
            return
        self.done.callback(
            _Outcome(
                exitCode=_exitCode(reason),
                stdout=b"".join(self._output[1]),
                stderr=b"".join(self._output[2]),
                truncated=self._truncated,
                duration=float(self._reactor.seconds() - self._started),
            )
        )

    def _timeoutError(self):
        """
        The error for a command that ran out of time.
        """
        return JobMonError(
            REMOTE_TIMEOUT,
            "{} did not finish within {:g} s; it was killed".format(
                self._prepared.name, self._prepared.timeout
            ),
        )

    def _timeUp(self):
        """
        The time limit passed: ask the group to stop, and force it after
        the grace period.
        """
        self._timer = None
        self._timedOut = True
        self.log.info(
            "command {name} ran out of time ({timeout} s); stopping process group {pgid}",
            name=self._prepared.name,
            timeout=self._prepared.timeout,
            pgid=self.pid,
        )
        self._signalGroup(signal.SIGTERM)
        self._timer = self._reactor.callLater(self._killGrace, self._forceKill)

    def _forceKill(self):
        """
        The grace period passed: kill the group, and stop waiting for it
        after a while.
        """
        self._timer = None
        self._signalGroup(signal.SIGKILL)
        self._timer = self._reactor.callLater(self._killWait, self._giveUp)

    def _giveUp(self):
        """
        The group was killed but its pipes are still open (a process stuck
        in the kernel, or one that left the group holding them): report the
        timeout without waiting longer.
        """
        self._timer = None
        self._finished = True
        self.log.warn(
            "command {name} (process group {pgid}) still not gone {wait} s after SIGKILL",
            name=self._prepared.name,
            pgid=self.pid,
            wait=self._killWait,
        )
        self.done.errback(self._timeoutError())

    def _cancel(self, d):
        """
        The caller gave up (the daemon's own time limit, or shutdown): kill
        the group at once.  The Deferred then fails with C{CancelledError}.
        """
        self._cancelTimer()
        self._finished = True
        self._signalGroup(signal.SIGKILL)

    def _cancelTimer(self):
        """
        Cancel the pending time limit, grace or wait call, if any.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _signalGroup(self, signalNumber):
        """
        Send C{signalNumber} to the command's process group.

        If the group does not exist yet (the wrapper has not called
        C{setsid}), signal the process itself, unless it was reaped: its pid
        may then belong to another process.
        """
        if self.pid is None:
            return
        try:
            self._killpg(self.pid, signalNumber)
            return
        except ProcessLookupError:
            pass
        except PermissionError as e:
            self.log.warn(
                "cannot signal process group {pgid}: {why}", pgid=self.pid, why=e.strerror
            )
            return
        if self._exited:
            return
        try:
            self._kill(self.pid, signalNumber)
        except (ProcessLookupError, PermissionError):
            pass


def _startError(prepared, stderr):
    """
    Turn the wrapper's report that it could not start the program into the
    error a user sees.
    """
    line = stderr[len(_EXEC_FAILED) :].split(b"\n", 1)[0]
    step, _, number = line.partition(b":")
    try:
        code = int(number)
    except ValueError:
        code = 0
    program = prepared.argv[0]
    if step == b"chdir":
        reason = os.strerror(code) if code else "error"
        return JobMonError(
            REMOTE_ERROR,
            "cannot run {}: cannot enter the working directory: {}".format(prepared.name, reason),
        )
    if code == errno.ENOENT:
        problem = "program not found"
    elif code == errno.EACCES:
        problem = "program not executable (permission denied)"
    elif code == errno.ENOEXEC:
        problem = "not an executable program"
    else:
        problem = os.strerror(code) if code else "cannot execute"
    return JobMonError(
        REMOTE_ERROR, "cannot run {}: {}: {}".format(prepared.name, problem, program)
    )


async def _runCommand(reactor, prepared, cwd, env, killGrace, killWait):
    """
    The body of L{runCommand}.
    """
    if prepared.executable is None:
        raise JobMonError(
            REMOTE_ERROR,
            "cannot run {}: program not found: {}".format(prepared.name, prepared.argv[0]),
        )
    protocol = _CommandProtocol(reactor, prepared, killGrace=killGrace, killWait=killWait)
    environment = dict(os.environ if env is None else env)
    ctype = environment.get("LC_CTYPE")
    wrapperArgv = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _WRAPPER,
        "-" if ctype is None else "=" + ctype,
        cwd,
        prepared.executable,
        *prepared.argv,
    ]
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        reactor.spawnProcess(
            protocol,
            sys.executable,
            wrapperArgv,
            env=environment,
            path=None,
            childFDs={0: devnull, 1: "r", 2: "r"},
        )
    except OSError as e:
        raise JobMonError(
            REMOTE_ERROR,
            "cannot run {}: cannot start a process: {}".format(prepared.name, e.strerror or e),
        ) from None
    finally:
        os.close(devnull)
    outcome = await protocol.done
    if outcome.exitCode == _WRAPPER_EXIT and outcome.stderr.startswith(_EXEC_FAILED):
        raise _startError(prepared, outcome.stderr)
    return {
        "name": prepared.name,
        "argv": list(prepared.argv),
        "exit_code": outcome.exitCode,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "truncated": outcome.truncated,
        "duration": outcome.duration,
    }


@deferredAsync
async def runCommand(reactor, prepared, cwd, env=None, killGrace=KILL_GRACE, killWait=KILL_WAIT):
    """
    Run a prepared command in C{cwd}, without a shell.

    The program runs in a new session and process group, with stdin on
    C{/dev/null}.  Each of stdout and stderr is kept up to the command's
    C{maxOutput} bytes (the rest is read and dropped).  When the command
    ends, anything left in its process group is killed.  When its time is
    up, the group gets SIGTERM, then SIGKILL C{killGrace} seconds later.

    @param reactor: provides C{IReactorProcess} and C{IReactorTime}; its
        clock times the command.
    @param prepared: a L{PreparedCommand} from L{CommandTable.prepare}.
    @param cwd: the directory to run in (the job's working directory).
    @param env: the environment, or L{None} for the daemon's.
    @param killGrace: seconds between SIGTERM and SIGKILL on timeout.
    @param killWait: seconds to wait after SIGKILL before reporting the
        timeout anyway.
    @return: a Deferred firing with the C{run} result dict (C{name},
        C{argv}, C{exit_code}, C{stdout}, C{stderr} as bytes, C{truncated},
        C{duration}), or failing with L{JobMonError}: C{REMOTE_TIMEOUT} if
        the command ran out of time, C{REMOTE_ERROR} if it could not start.
        Cancelling it kills the command's process group.
    """
    return await _runCommand(reactor, prepared, cwd, env, killGrace, killWait)

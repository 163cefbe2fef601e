"""
Site-approved diagnostic commands: the C{commands} and C{run} ops.

A user may run, on a job's worker, only a command that the site or the
job's owner declared in a TOML file given to the daemon (C{--commands FILE},
repeatable).  The command runs without a shell: its fixed C{argv} comes
from the configuration, and each argument the user adds must match the
command's pattern.

Configuration format::

    [commands.gpu]
    description = "GPU state"
    argv = ["nvidia-smi", "-q", "{args}"]   # required
    args = "^[A-Za-z0-9_.-]{1,64}$"          # each user argument must fullmatch
    max_args = 4
    timeout = 10
    max_output = 65536
    usage = "gpu [-d MEMORY]"

Files are read in order; a later file may add commands but may not
redefine one an earlier file defined, so the site's file, given first,
cannot be overridden by the job owner's.  Every mistake (unknown key, wrong
type, bad pattern, out-of-range limit, duplicate name, unreadable file) is a
L{CommandConfigError} naming the file and the key: a typo must never
silently weaken a limit.

The runner, L{runCommand}, spawns the program through a tiny Python
wrapper (see L{_WRAPPER}) that puts it in a new session and process group,
so that a command that times out is killed with everything it started.

Results are the C{run} struct of C{docs/API.md}, with C{stdout} and
C{stderr} as raw C{bytes} (XML-RPC marshals them as base64); failures are
raised as L{JobMonError}.
"""

import errno
import json
import math
import os
import re
import shutil
import signal
import sys
import tomllib

from attrs import frozen
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from jobmon.deferreds import deferredAsync
from jobmon.errors import (
    BAD_REQUEST,
    NO_SUCH_COMMAND,
    REMOTE_ERROR,
    REMOTE_TIMEOUT,
    JobMonError,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a command name must fullmatch."""

ARGS_PLACEHOLDER = "{args}"
"""An C{argv} element exactly equal to this is replaced by the user's
arguments (which are otherwise appended)."""

DEFAULT_TIMEOUT = 10
"""Seconds a command may run when its configuration does not say."""

MAX_TIMEOUT = 300
"""The longest C{timeout} a configuration may give, in seconds."""

DEFAULT_MAX_OUTPUT = 65536
"""Bytes kept per output stream when the configuration does not say."""

MAX_MAX_OUTPUT = 16 * 1024 * 1024
"""The largest C{max_output} a configuration may give, in bytes."""

DEFAULT_MAX_ARGS = 8
"""Arguments accepted by a command with an C{args} pattern and no
C{max_args}.  Without a pattern no argument is accepted."""

MAX_MAX_ARGS = 256
"""The largest C{max_args} a configuration may give."""

MAX_ARG_LENGTH = 4096
"""The longest argument a user may give, in characters."""

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL to a command's process group when it
times out."""

KILL_WAIT = 5.0
"""Seconds to wait after SIGKILL for the command's pipes to close before
giving up on it (a process stuck in the kernel cannot be killed)."""

_KEYS = frozenset(
    ["description", "argv", "args", "max_args", "timeout", "max_output", "usage"]
)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

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


class CommandConfigError(Exception):
    """
    A commands file is unreadable or wrong.

    @ivar message: one line, C{FILE: commands.NAME.KEY: problem}.
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


@frozen
class Command:
    """
    A command as declared in a configuration file.

    @ivar name: what users call it.
    @ivar description: one line for the C{commands} listing.
    @ivar usage: how to call it, for the user.
    @ivar argv: the fixed argv; may hold one L{ARGS_PLACEHOLDER} element.
    @ivar executable: the absolute path of the program, or L{None} when a
        bare program name was not found on C{PATH} at load time.
    @ivar available: whether the program was found and executable at load
        time.
    @ivar pattern: the compiled C{args} pattern, or L{None} (no argument is
        accepted).
    @ivar maxArgs: the most arguments a user may give.
    @ivar timeout: seconds the command may run.
    @ivar maxOutput: bytes kept of each of stdout and stderr.
    @ivar source: the file that declared it.
    """

    name: str
    description: str
    usage: str
    argv: tuple
    executable: str | None
    available: bool
    pattern: re.Pattern | None
    maxArgs: int
    timeout: float
    maxOutput: int
    source: str


@frozen
class PreparedCommand:
    """
    A command with checked user arguments, ready for L{runCommand}.

    @ivar name: the command's name.
    @ivar argv: the program's complete argv (fixed part and user arguments).
    @ivar executable: the absolute path to execute, or L{None} if the
        program was not found at load time.
    @ivar timeout: seconds it may run.
    @ivar maxOutput: bytes kept of each of stdout and stderr.
    """

    name: str
    argv: tuple
    executable: str | None
    timeout: float
    maxOutput: int


def _show(value, limit=60):
    """
    Quote a user-supplied string for a one-line message: C{repr} escapes
    control characters, and long values are cut.
    """
    if len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def _oneLine(text):
    """
    Show configuration text (a pattern) on one line: as is when printable,
    else as its C{repr}.
    """
    return text if text.isprintable() else repr(text)


def _keyPath(name, key=None):
    """
    Spell the TOML key path of a command (and one of its keys) as a user
    would write it, quoting a name that is not a bare TOML key.
    """
    shown = name if _BARE_KEY.fullmatch(name) else json.dumps(name)
    path = "commands." + shown
    if key is not None:
        path += "." + key
    return path


def _isInt(value):
    """
    Tell whether a TOML value is an integer (C{bool} is an C{int} in
    Python but not here).
    """
    return isinstance(value, int) and not isinstance(value, bool)


class _Parser:
    """
    Check one command's table from one file.

    @ivar path: the file, for messages.
    @ivar name: the command's name.
    @ivar table: its TOML table.
    """

    def __init__(self, path, name, table, which):
        self.path = path
        self.name = name
        self.table = table
        self.which = which

    def fail(self, key, problem):
        """
        Raise the L{CommandConfigError} for C{problem} with C{key} (or with
        the whole command if C{key} is L{None}).
        """
        raise CommandConfigError(
            "{}: {}: {}".format(self.path, _keyPath(self.name, key), problem)
        )

    def string(self, key, default):
        """
        Read an optional one-line string.
        """
        value = self.table.get(key, default)
        if not isinstance(value, str):
            self.fail(key, "must be a string")
        if "\0" in value:
            self.fail(key, "must not contain a NUL character")
        return value

    def parse(self):
        """
        Check the table and return the L{Command}.

        @raise CommandConfigError: for the first problem found.
        """
        if not NAME_PATTERN.fullmatch(self.name):
            self.fail(
                None,
                "bad command name: use 1 to 64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
            )
        if not isinstance(self.table, dict):
            self.fail(None, "must be a table ([{}])".format(_keyPath(self.name)))
        unknown = sorted(set(self.table) - _KEYS)
        if unknown:
            self.fail(
                unknown[0],
                "unknown key (known keys: {})".format(", ".join(sorted(_KEYS))),
            )
        argv, executable, available = self.argv()
        pattern = self.pattern()
        maxArgs = self.maxArgs(pattern)
        timeout = self.timeout()
        maxOutput = self.maxOutput()
        description = self.string("description", "")
        defaultUsage = self.name + (" [ARG ...]" if maxArgs else "")
        usage = self.string("usage", defaultUsage)
        return Command(
            name=self.name,
            description=description,
            usage=usage,
            argv=argv,
            executable=executable,
            available=available,
            pattern=pattern,
            maxArgs=maxArgs,
            timeout=timeout,
            maxOutput=maxOutput,
            source=self.path,
        )

    def argv(self):
        """
        Check C{argv} and find its program.

        @return: the argv as a tuple, the program's absolute path (or
            L{None} when a bare name is not on C{PATH}), and whether it was
            found executable.
        """
        if "argv" not in self.table:
            self.fail("argv", "is required (the program and its fixed arguments)")
        argv = self.table["argv"]
        if not isinstance(argv, list) or not argv:
            self.fail("argv", "must be a non-empty list of strings")
        for i, element in enumerate(argv):
            if not isinstance(element, str):
                self.fail("argv", "element {} is not a string".format(i))
            if "\0" in element:
                self.fail("argv", "element {} contains a NUL character".format(i))
        if argv.count(ARGS_PLACEHOLDER) > 1:
            self.fail("argv", "{} may appear only once".format(json.dumps(ARGS_PLACEHOLDER)))
        program = argv[0]
        if not program or program == ARGS_PLACEHOLDER:
            self.fail("argv", "the first element must name the program")
        if os.path.isabs(program):
            executable = program
            available = os.path.isfile(program) and os.access(program, os.X_OK)
        elif "/" in program:
            self.fail(
                "argv",
                "program {} must be an absolute path or a bare name looked up "
                "on PATH".format(json.dumps(program)),
            )
        else:
            # Looked up once, now: the job's environment at run time cannot
            # change which program runs.
            executable = self.which(program)
            if executable is not None:
                executable = os.path.abspath(executable)
            available = executable is not None
        return tuple(argv), executable, available

    def pattern(self):
        """
        Compile C{args}, or return L{None} if absent.
        """
        if "args" not in self.table:
            return None
        value = self.table["args"]
        if not isinstance(value, str):
            self.fail("args", "must be a string (a regular expression)")
        try:
            return re.compile(value)
        except re.error as e:
            self.fail("args", "not a valid regular expression: {}".format(e))

    def maxArgs(self, pattern):
        """
        Check C{max_args} against the presence of a pattern.
        """
        if "max_args" not in self.table:
            return DEFAULT_MAX_ARGS if pattern is not None else 0
        value = self.table["max_args"]
        if not _isInt(value) or not 0 <= value <= MAX_MAX_ARGS:
            self.fail("max_args", "must be an integer from 0 to {}".format(MAX_MAX_ARGS))
        if value and pattern is None:
            self.fail("max_args", "needs an args pattern: without one no argument is accepted")
        return value

    def timeout(self):
        """
        Check C{timeout}: positive seconds, at most L{MAX_TIMEOUT}.
        """
        value = self.table.get("timeout", DEFAULT_TIMEOUT)
        if (
            not (_isInt(value) or isinstance(value, float))
            or not math.isfinite(value)
            or not 0 < value <= MAX_TIMEOUT
        ):
            self.fail(
                "timeout",
                "must be a number of seconds above 0 and at most {}".format(MAX_TIMEOUT),
            )
        return value

    def maxOutput(self):
        """
        Check C{max_output}: bytes, at most L{MAX_MAX_OUTPUT}.
        """
        value = self.table.get("max_output", DEFAULT_MAX_OUTPUT)
        if not _isInt(value) or not 0 <= value <= MAX_MAX_OUTPUT:
            self.fail(
                "max_output",
                "must be an integer number of bytes from 0 to {}".format(MAX_MAX_OUTPUT),
            )
        return value


def _readFile(path):
    """
    Read and parse one TOML file.

    @raise CommandConfigError: if it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise CommandConfigError(
            "{}: cannot read: {}".format(path, e.strerror or e)
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise CommandConfigError("{}: not valid TOML: {}".format(path, e)) from None
    except UnicodeDecodeError as e:
        raise CommandConfigError("{}: not valid UTF-8: {}".format(path, e)) from None


def loadCommands(paths, which=shutil.which):
    """
    Read the commands files C{paths}, in order.

    Bare program names are looked up on the daemon's C{PATH} now; a program
    that is not found does not make loading fail, but the command is listed
    as unavailable and running it fails.

    @param paths: file names; the first (the site's) wins: a later file may
        add commands but not redefine one.
    @param which: looks up a bare program name (for tests).
    @return: a L{CommandTable}.
    @raise CommandConfigError: for the first problem found.
    """
    commands = {}
    for path in paths:
        document = _readFile(path)
        unknown = sorted(set(document) - {"commands"})
        if unknown:
            key = unknown[0]
            raise CommandConfigError(
                "{}: {}: unknown key (commands are [commands.NAME] tables)".format(
                    path, key if _BARE_KEY.fullmatch(key) else json.dumps(key)
                )
            )
        tables = document.get("commands", {})
        if not isinstance(tables, dict):
            raise CommandConfigError(
                "{}: commands: must be a table of [commands.NAME] tables".format(path)
            )
        for name, table in tables.items():
            command = _Parser(path, name, table, which).parse()
            if name in commands:
                raise CommandConfigError(
                    "{}: {}: already defined in {}; a later file may add commands "
                    "but not redefine one".format(path, _keyPath(name), commands[name].source)
                )
            commands[name] = command
    return CommandTable(commands)


class CommandTable:
    """
    The commands a daemon offers, by name.

    @ivar commands: a mapping of name to L{Command}.
    """

    def __init__(self, commands=None):
        self.commands = dict(commands or {})

    def __len__(self):
        """
        The number of commands.
        """
        return len(self.commands)

    def __contains__(self, name):
        """
        Tell whether a command called C{name} is offered.
        """
        return name in self.commands

    def describe(self):
        """
        The C{commands} listing: one struct per command, by name.

        @return: a list of dicts with C{name}, C{description}, C{usage},
            C{timeout}, C{max_output} and C{available}.
        """
        return [
            {
                "name": c.name,
                "description": c.description,
                "usage": c.usage,
                "timeout": c.timeout,
                "max_output": c.maxOutput,
                "available": c.available,
            }
            for _, c in sorted(self.commands.items())
        ]

    def prepare(self, name, args):
        """
        Check a C{run} request's name and arguments.

        @param name: the command's name.
        @param args: the user's arguments: a list of strings (L{None} is
            taken as no arguments).
        @return: a L{PreparedCommand}.
        @raise JobMonError: C{NO_SUCH_COMMAND} for an unknown name,
            C{BAD_REQUEST} for arguments the command does not accept.
        """
        if not isinstance(name, str):
            raise JobMonError(BAD_REQUEST, "the command name must be a string")
        command = self.commands.get(name)
        if command is None:
            raise JobMonError(
                NO_SUCH_COMMAND,
                "no command {} on this job; 'jobmon-query commands JOB' lists them".format(
                    _show(name)
                ),
            )
        if args is None:
            args = []
        if not isinstance(args, (list, tuple)):
            raise JobMonError(BAD_REQUEST, "args must be a list of strings")
        if len(args) > command.maxArgs:
            if command.maxArgs == 0:
                problem = "{} takes no arguments (got {})".format(name, len(args))
            else:
                problem = "{} takes at most {} argument{} (got {})".format(
                    name, command.maxArgs, "" if command.maxArgs == 1 else "s", len(args)
                )
            raise JobMonError(BAD_REQUEST, problem)
        for i, arg in enumerate(args, 1):
            _checkArgument(command, i, arg)
        argv = list(command.argv)
        if ARGS_PLACEHOLDER in argv:
            at = argv.index(ARGS_PLACEHOLDER)
            argv[at : at + 1] = args
        else:
            argv.extend(args)
        return PreparedCommand(
            name=name,
            argv=tuple(argv),
            executable=command.executable,
            timeout=command.timeout,
            maxOutput=command.maxOutput,
        )


def _checkArgument(command, i, arg):
    """
    Check the C{i}th (from 1) user argument of C{command}.

    @raise JobMonError: C{BAD_REQUEST} if it is refused.
    """
    where = "argument {} of {}".format(i, command.name)
    if not isinstance(arg, str):
        raise JobMonError(BAD_REQUEST, where + " is not a string")
    if "\0" in arg:
        raise JobMonError(BAD_REQUEST, where + " contains a NUL character")
    if len(arg) > MAX_ARG_LENGTH:
        raise JobMonError(
            BAD_REQUEST, "{} is longer than {} characters".format(where, MAX_ARG_LENGTH)
        )
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: it has no place in an argv.
        raise JobMonError(BAD_REQUEST, where + " is not valid Unicode text") from None
    # The arguments are at most MAX_ARG_LENGTH characters, but a pattern
    # that backtracks badly can still be slow: that is the configuration's
    # responsibility.
    if command.pattern is None or not command.pattern.fullmatch(arg):
        raise JobMonError(
            BAD_REQUEST,
            "argument {} ({}) is not allowed for {}: must match {}".format(
                i,
                _show(arg),
                command.name,
                _oneLine(command.pattern.pattern) if command.pattern else "(no pattern)",
            ),
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

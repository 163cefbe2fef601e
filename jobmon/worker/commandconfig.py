"""
The configuration of site-approved commands: reading the commands files
(L{loadCommands}) and checking a C{run} request against them
(L{CommandTable.prepare}); L{jobmon.worker.commands} runs what passes.

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
"""

import json
import math
import os
import re
import shutil
import tomllib

from attrs import frozen

from jobmon.errors import BAD_REQUEST, NO_SUCH_COMMAND, JobMonError

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

_KEYS = frozenset(
    ["description", "argv", "args", "max_args", "timeout", "max_output", "usage"]
)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


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
    A command with checked user arguments, ready for
    L{jobmon.worker.commands.runCommand}.

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
            available = programAvailable(program)
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

    def describe(self, recheck=False):
        """
        The C{commands} listing: one struct per command, by name.

        @param recheck: look at each program again now (a blocking look at
            the file system: call it in a thread), so that a program removed
            since the daemon started is listed as unavailable; else say what
            was found at load time.
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
                "available": programAvailable(c.executable) if recheck else c.available,
            }
            for _, c in sorted(self.commands.items())
        ]

    def closest(self, name):
        """
        The offered command whose name is nearest to C{name} (a typo), or
        L{None} if none is near.
        """
        import difflib

        # No command name is longer than 64 characters: a longer one is not
        # a typo, and comparing it would only cost time.
        if len(name) > 64:
            return None
        found = difflib.get_close_matches(name, sorted(self.commands), n=1, cutoff=0.6)
        return found[0] if found else None

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
            near = self.closest(name)
            if near is not None:
                raise JobMonError(
                    NO_SUCH_COMMAND,
                    "no command {} on this job; did you mean {}? ('jobmon-query "
                    "commands JOB' lists them)".format(_show(name), _show(near)),
                )
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


def programAvailable(executable):
    """
    Tell whether the program at the absolute path C{executable} is there
    and executable now (L{None}: it was not found on C{PATH} at load time).
    This looks at the file system: not in the reactor thread.
    """
    if executable is None:
        return False
    return os.path.isfile(executable) and os.access(executable, os.X_OK)


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

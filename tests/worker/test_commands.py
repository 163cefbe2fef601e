"""
Tests for L{jobmon.worker.commands}: the commands configuration, the checking of
a user's arguments, the process protocol's time limit (on a fake clock),
and real runs of small programs.
"""

import os
import re
import signal
import sys
import time

import psutil
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from jobmon.errors import (
    BAD_REQUEST,
    NO_SUCH_COMMAND,
    REMOTE_ERROR,
    REMOTE_TIMEOUT,
    JobMonError,
)
from jobmon.worker import commands
from jobmon.worker.commands import (
    MAX_ARG_LENGTH,
    CommandConfigError,
    CommandTable,
    PreparedCommand,
    loadCommands,
    runCommand,
)

PROGRAMS = {"nvidia-smi": None, "echo": "/usr/bin/echo", "true": "/usr/bin/true"}
"""What the fake C{which} of the configuration tests finds."""


def fakeWhich(name):
    """
    Look up a bare program name in L{PROGRAMS}, as C{shutil.which} would on
    a host with C{echo} and C{true} but no GPU tools.
    """
    return PROGRAMS.get(name)


class ConfigMixin:
    """
    Write commands files in a temporary directory and load them.
    """

    def writeFile(self, text, name="commands.toml"):
        """
        Write C{text} to a new file and return its path.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def load(self, *texts):
        """
        Load one file per text, in order.
        """
        return loadCommands([self.writeFile(t) for t in texts], which=fakeWhich)

    def assertConfigError(self, text, where, problem):
        """
        Loading C{text} fails with one line naming the file, the key path
        C{where} and a message containing C{problem}.
        """
        path = self.writeFile(text)
        e = self.assertRaises(CommandConfigError, loadCommands, [path], which=fakeWhich)
        self.assertNotIn("\n", str(e))
        self.assertTrue(
            str(e).startswith("{}: {}: ".format(path, where)),
            "{!r} does not start with {!r}".format(str(e), path + ": " + where),
        )
        self.assertIn(problem, str(e))
        return e


class LoadTests(ConfigMixin, SynchronousTestCase):
    """
    Tests for L{loadCommands}.
    """

    def test_defaults(self):
        """
        A command with only C{argv} takes no arguments, has the default
        limits, an empty description and its name as usage.
        """
        table = self.load('[commands.up]\nargv = ["/usr/bin/true"]\n')
        c = table.commands["up"]
        self.assertEqual(c.argv, ("/usr/bin/true",))
        self.assertEqual(c.executable, "/usr/bin/true")
        self.assertIsNone(c.pattern)
        self.assertEqual(c.maxArgs, 0)
        self.assertEqual(c.timeout, 10)
        self.assertEqual(c.maxOutput, 65536)
        self.assertEqual(c.description, "")
        self.assertEqual(c.usage, "up")

    def test_allKeys(self):
        """
        Every key is read; a pattern without C{max_args} allows 8
        arguments.
        """
        table = self.load(
            "[commands.gpu]\n"
            'description = "GPU state"\n'
            'argv = ["nvidia-smi", "-q"]\n'
            'args = "^[a-z]+$"\n'
            "timeout = 2.5\n"
            "max_output = 100\n"
            'usage = "gpu [-d MEMORY]"\n'
        )
        c = table.commands["gpu"]
        self.assertEqual(c.description, "GPU state")
        self.assertEqual(c.pattern.pattern, "^[a-z]+$")
        self.assertEqual(c.maxArgs, 8)
        self.assertEqual(c.timeout, 2.5)
        self.assertEqual(c.maxOutput, 100)
        self.assertEqual(c.usage, "gpu [-d MEMORY]")

    def test_defaultUsageWithArguments(self):
        """
        The default usage of a command that takes arguments says so.
        """
        table = self.load('[commands.e]\nargv = ["echo"]\nargs = "x"\n')
        self.assertEqual(table.commands["e"].usage, "e [ARG ...]")

    def test_noFiles(self):
        """
        No file gives an empty table.
        """
        table = loadCommands([])
        self.assertEqual(len(table), 0)
        self.assertEqual(table.describe(), [])

    def test_fileWithoutCommands(self):
        """
        An empty file declares nothing.
        """
        self.assertEqual(len(self.load("")), 0)

    def test_bareNameResolved(self):
        """
        A bare program name is looked up at load time; the argv keeps the
        name as written.
        """
        c = self.load('[commands.e]\nargv = ["echo", "hi"]\n').commands["e"]
        self.assertEqual(c.argv, ("echo", "hi"))
        self.assertEqual(c.executable, "/usr/bin/echo")
        self.assertTrue(c.available)

    def test_bareNameNotFound(self):
        """
        A bare name not on C{PATH} loads, as an unavailable command.
        """
        c = self.load('[commands.gpu]\nargv = ["nvidia-smi"]\n').commands["gpu"]
        self.assertIsNone(c.executable)
        self.assertFalse(c.available)

    def test_realWhich(self):
        """
        By default the daemon's C{PATH} is searched, and the result is an
        absolute path.
        """
        path = self.writeFile('[commands.s]\nargv = ["sh"]\n')
        c = loadCommands([path]).commands["s"]
        self.assertTrue(os.path.isabs(c.executable))
        self.assertTrue(c.available)

    def test_absoluteMissing(self):
        """
        An absolute path that does not exist, or is not executable, loads
        but is unavailable.
        """
        plain = os.path.abspath(self.writeFile("not a program", name="plain"))
        table = self.load(
            '[commands.a]\nargv = ["/nonexistent/program"]\n'
            "[commands.b]\nargv = [{}]\n".format(_quote(plain))
        )
        self.assertFalse(table.commands["a"].available)
        self.assertEqual(table.commands["a"].executable, "/nonexistent/program")
        self.assertFalse(table.commands["b"].available)

    def test_laterFileAdds(self):
        """
        A later file may add commands.
        """
        table = self.load(
            '[commands.a]\nargv = ["true"]\n', '[commands.b]\nargv = ["echo"]\n'
        )
        self.assertEqual(sorted(table.commands), ["a", "b"])

    def test_laterFileCannotRedefine(self):
        """
        A later file may not redefine a command: the error names both
        files.
        """
        site = self.writeFile('[commands.a]\nargv = ["true"]\n')
        owner = self.writeFile('[commands.a]\nargv = ["echo"]\n')
        e = self.assertRaises(
            CommandConfigError, loadCommands, [site, owner], which=fakeWhich
        )
        self.assertTrue(str(e).startswith(owner + ": commands.a: already defined in " + site))
        self.assertNotIn("\n", str(e))

    def test_unreadable(self):
        """
        A missing file is an error naming it.
        """
        path = self.mktemp()
        e = self.assertRaises(CommandConfigError, loadCommands, [path])
        self.assertEqual(str(e), path + ": cannot read: No such file or directory")

    def test_notToml(self):
        """
        A file that is not TOML is an error naming it.
        """
        path = self.writeFile("[commands.a\n")
        e = self.assertRaises(CommandConfigError, loadCommands, [path])
        self.assertTrue(str(e).startswith(path + ": not valid TOML: "))

    def test_unknownTopLevelKey(self):
        """
        Only C{commands} may appear at the top level.
        """
        self.assertConfigError('command = 1\n', "command", "unknown key")

    def test_commandsNotTable(self):
        """
        C{commands} must be a table.
        """
        self.assertConfigError('commands = 1\n', "commands", "must be a table")

    def test_commandNotTable(self):
        """
        Each command must be a table.
        """
        self.assertConfigError('[commands]\na = "x"\n', "commands.a", "must be a table")

    def test_unknownKey(self):
        """
        A misspelt key is an error, not a silently ignored limit.
        """
        self.assertConfigError(
            '[commands.a]\nargv = ["true"]\ntime_out = 1\n',
            "commands.a.time_out",
            "unknown key",
        )

    def test_subTable(self):
        """
        A table under a command is an unknown key too.
        """
        self.assertConfigError(
            '[commands.a]\nargv = ["true"]\n[commands.a.b]\nargv = ["true"]\n',
            "commands.a.b",
            "unknown key",
        )

    def test_badNames(self):
        """
        Names must be 1 to 64 letters, digits, C{_}, C{.} or C{-}, starting
        with a letter or digit; an odd name is quoted in the message.
        """
        for name, shown in [
            ("-x", "-x"),
            ("_x", "_x"),
            ("a b", '"a b"'),
            ("a/b", '"a/b"'),
            ("x" * 65, "x" * 65),
            ("", '""'),
            ("\u00e9", '"\\u00e9"'),
        ]:
            self.assertConfigError(
                '[commands.{}]\nargv = ["true"]\n'.format(_quote(name)),
                "commands." + shown,
                "bad command name",
            )

    def test_goodNames(self):
        """
        Dots, dashes, underscores and 64 characters are fine.
        """
        names = ["a.b", "9-x_y", "x" * 64]
        text = "".join(
            '[commands.{}]\nargv = ["true"]\n'.format(_quote(n)) for n in names
        )
        self.assertEqual(sorted(self.load(text).commands), sorted(names))

    def test_argvMissing(self):
        """
        C{argv} is required.
        """
        self.assertConfigError(
            '[commands.a]\ndescription = "x"\n', "commands.a.argv", "is required"
        )

    def test_argvBadType(self):
        """
        C{argv} must be a non-empty list of strings without NUL.
        """
        for value, problem in [
            ('"true"', "non-empty list"),
            ("[]", "non-empty list"),
            ('["true", 1]', "element 1 is not a string"),
            ('["true", "a\\u0000b"]', "element 1 contains a NUL"),
            ('[""]', "must name the program"),
            ('["{args}", "x"]', "must name the program"),
            ('["true", "{args}", "{args}"]', "only once"),
            ('["bin/true"]', "absolute path or a bare name"),
            ('["./true"]', "absolute path or a bare name"),
        ]:
            self.assertConfigError(
                "[commands.a]\nargv = {}\n".format(value), "commands.a.argv", problem
            )

    def test_argsBadType(self):
        """
        C{args} must be a string.
        """
        self.assertConfigError(
            '[commands.a]\nargv = ["true"]\nargs = 1\n', "commands.a.args", "must be a string"
        )

    def test_argsBadPattern(self):
        """
        C{args} is compiled at load time.
        """
        self.assertConfigError(
            '[commands.a]\nargv = ["true"]\nargs = "[a-"\n',
            "commands.a.args",
            "not a valid regular expression",
        )

    def test_maxArgs(self):
        """
        C{max_args} must be an integer from 0 to 256.
        """
        for value in ["-1", "257", "1.0", "true", '"2"']:
            self.assertConfigError(
                '[commands.a]\nargv = ["true"]\nargs = "x"\nmax_args = {}\n'.format(value),
                "commands.a.max_args",
                "must be an integer from 0 to 256",
            )
        table = self.load('[commands.a]\nargv = ["true"]\nargs = "x"\nmax_args = 256\n')
        self.assertEqual(table.commands["a"].maxArgs, 256)

    def test_maxArgsWithoutPattern(self):
        """
        C{max_args} above 0 needs a pattern; 0 does not.
        """
        self.assertConfigError(
            '[commands.a]\nargv = ["true"]\nmax_args = 2\n',
            "commands.a.max_args",
            "needs an args pattern",
        )
        self.assertEqual(
            self.load('[commands.a]\nargv = ["true"]\nmax_args = 0\n').commands["a"].maxArgs, 0
        )

    def test_timeout(self):
        """
        C{timeout} must be a number above 0 and at most 300.
        """
        for value in ["0", "-1", "300.5", "301", "nan", "inf", "true", '"10"']:
            self.assertConfigError(
                '[commands.a]\nargv = ["true"]\ntimeout = {}\n'.format(value),
                "commands.a.timeout",
                "above 0 and at most 300",
            )
        for value, expected in [("300", 300), ("0.5", 0.5)]:
            table = self.load('[commands.a]\nargv = ["true"]\ntimeout = {}\n'.format(value))
            self.assertEqual(table.commands["a"].timeout, expected)

    def test_maxOutput(self):
        """
        C{max_output} must be an integer from 0 to 16 MiB.
        """
        for value in ["-1", "16777217", "100.0", "false", '"1"']:
            self.assertConfigError(
                '[commands.a]\nargv = ["true"]\nmax_output = {}\n'.format(value),
                "commands.a.max_output",
                "from 0 to 16777216",
            )
        table = self.load('[commands.a]\nargv = ["true"]\nmax_output = 16777216\n')
        self.assertEqual(table.commands["a"].maxOutput, 16777216)

    def test_textKeys(self):
        """
        C{description} and C{usage} must be strings.
        """
        for key in ["description", "usage"]:
            self.assertConfigError(
                '[commands.a]\nargv = ["true"]\n{} = 1\n'.format(key),
                "commands.a." + key,
                "must be a string",
            )


def _quote(text):
    """
    Write C{text} as a TOML basic string.
    """
    return '"' + "".join(
        c if c.isalnum() or c in " ./-_{}" else "\\u{:04x}".format(ord(c)) for c in text
    ) + '"'


class DescribeTests(ConfigMixin, SynchronousTestCase):
    """
    Tests for L{CommandTable.describe}.
    """

    def test_describe(self):
        """
        One struct per command, by name, with the listing's fields.
        """
        table = self.load(
            '[commands.zz]\nargv = ["true"]\n'
            '[commands.gpu]\ndescription = "GPU state"\nargv = ["nvidia-smi"]\n'
            'usage = "gpu"\ntimeout = 5\nmax_output = 10\n'
        )
        self.assertEqual(
            table.describe(),
            [
                {
                    "name": "gpu",
                    "description": "GPU state",
                    "usage": "gpu",
                    "timeout": 5,
                    "max_output": 10,
                    "available": False,
                },
                {
                    "name": "zz",
                    "description": "",
                    "usage": "zz",
                    "timeout": 10,
                    "max_output": 65536,
                    "available": True,
                },
            ],
        )


    def test_recheck(self):
        """
        With C{recheck}, each program is looked at again: one removed (or
        made not executable) since loading is listed as unavailable, one
        never found stays so; without it, what loading found.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        programs = {}
        for name in ("gone", "noexec", "here"):
            programs[name] = os.path.join(directory, name)
            with open(programs[name], "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(programs[name], 0o755)
        table = self.load("".join(
            '[commands.{}]\nargv = ["{}"]\n'.format(name, path) for name, path in programs.items()
        ) + '[commands.gpu]\nargv = ["nvidia-smi"]\n')
        os.remove(programs["gone"])
        os.chmod(programs["noexec"], 0o644)
        self.assertEqual(
            [(c["name"], c["available"]) for c in table.describe()],
            [("gone", True), ("gpu", False), ("here", True), ("noexec", True)],
        )
        self.assertEqual(
            [(c["name"], c["available"]) for c in table.describe(recheck=True)],
            [("gone", False), ("gpu", False), ("here", True), ("noexec", False)],
        )


class PrepareTests(ConfigMixin, SynchronousTestCase):
    """
    Tests for L{CommandTable.prepare}.
    """

    def setUp(self):
        self.table = self.load(
            "[commands.gpu]\n"
            'argv = ["nvidia-smi", "-q"]\n'
            'args = "^[A-Za-z0-9_.-]{1,64}$"\n'
            "max_args = 3\n"
            "[commands.up]\n"
            'argv = ["true"]\n'
            "[commands.mid]\n"
            'argv = ["echo", "before", "{args}", "after"]\n'
            'args = "[a-z]+"\n'
            "[commands.any]\n"
            'argv = ["echo"]\n'
            'args = "(?s).*"\n'
            "[commands.one]\n"
            'argv = ["echo"]\n'
            'args = ".*"\n'
            "max_args = 1\n"
        )

    def refused(self, code, name, args):
        """
        Assert that C{prepare(name, args)} raises C{code}; return the
        message.
        """
        e = self.assertRaises(JobMonError, self.table.prepare, name, args)
        self.assertEqual(e.code, code)
        self.assertNotIn("\n", e.message)
        return e.message

    def test_appended(self):
        """
        Arguments are appended to the fixed argv.
        """
        p = self.table.prepare("gpu", ["-d", "MEMORY"])
        self.assertEqual(
            p,
            PreparedCommand(
                name="gpu",
                argv=("nvidia-smi", "-q", "-d", "MEMORY"),
                executable=None,
                timeout=10,
                maxOutput=65536,
            ),
        )

    def test_placeholder(self):
        """
        An C{{args}} element is replaced by the arguments, or removed when
        there are none.
        """
        self.assertEqual(
            self.table.prepare("mid", ["x", "y"]).argv, ("echo", "before", "x", "y", "after")
        )
        self.assertEqual(self.table.prepare("mid", []).argv, ("echo", "before", "after"))

    def test_noArguments(self):
        """
        No arguments (an empty list, L{None} or a tuple) is fine.
        """
        for args in [[], None, ()]:
            self.assertEqual(self.table.prepare("up", args).argv, ("true",))

    def test_unknown(self):
        """
        An unknown command is C{NO_SUCH_COMMAND}, with a hint.
        """
        self.assertEqual(
            self.refused(NO_SUCH_COMMAND, "nope", []),
            "no command 'nope' on this job; 'jobmon-query commands JOB' lists them",
        )

    def test_typo(self):
        """
        A name near an offered one (a typo) gets a suggestion; a long name
        is not compared.
        """
        self.assertEqual(
            self.refused(NO_SUCH_COMMAND, "gpus", []),
            "no command 'gpus' on this job; did you mean 'gpu'? ('jobmon-query "
            "commands JOB' lists them)",
        )
        self.assertIn("did you mean 'mid'?", self.refused(NO_SUCH_COMMAND, "mdi", []))
        self.assertEqual(self.table.closest("up" * 40), None)
        self.assertEqual(self.table.closest("x"), None)

    def test_nameNotString(self):
        """
        A name that is not a string is a bad request.
        """
        self.refused(BAD_REQUEST, 3, [])

    def test_argsNotList(self):
        """
        Arguments must come as a list.
        """
        for args in ["-q", {"a": 1}, 3]:
            self.assertIn("must be a list", self.refused(BAD_REQUEST, "gpu", args))

    def test_takesNoArguments(self):
        """
        A command without a pattern takes no arguments.
        """
        self.assertEqual(
            self.refused(BAD_REQUEST, "up", ["x"]), "up takes no arguments (got 1)"
        )

    def test_tooMany(self):
        """
        More than C{max_args} arguments are refused.
        """
        self.assertEqual(
            self.refused(BAD_REQUEST, "gpu", ["a", "b", "c", "d"]),
            "gpu takes at most 3 arguments (got 4)",
        )
        self.assertEqual(
            self.refused(BAD_REQUEST, "one", ["a", "b"]), "one takes at most 1 argument (got 2)"
        )

    def test_mismatch(self):
        """
        An argument that does not match is refused, naming its position
        and the pattern.
        """
        self.assertEqual(
            self.refused(BAD_REQUEST, "gpu", ["ok", "a b"]),
            "argument 2 ('a b') is not allowed for gpu: must match ^[A-Za-z0-9_.-]{1,64}$",
        )

    def test_fullMatch(self):
        """
        The whole argument must match: a trailing newline, which C{$}
        would let through with C{search}, is refused, and so is a pattern
        that matches only a prefix.
        """
        self.refused(BAD_REQUEST, "gpu", ["abc\n"])
        self.refused(BAD_REQUEST, "mid", ["abc1"])

    def test_messageQuotesArgument(self):
        """
        A long or odd argument is quoted on one line and cut.
        """
        message = self.refused(BAD_REQUEST, "gpu", ["\n" * 100])
        self.assertIn("('" + "\\n" * 60 + "'...)", message)

    def test_notString(self):
        """
        Arguments must be strings.
        """
        self.assertEqual(
            self.refused(BAD_REQUEST, "gpu", ["a", 1]), "argument 2 of gpu is not a string"
        )
        self.refused(BAD_REQUEST, "any", [b"x"])
        self.refused(BAD_REQUEST, "any", [None])

    def test_nul(self):
        """
        A NUL character is refused even if the pattern allows it.
        """
        self.assertEqual(
            self.refused(BAD_REQUEST, "any", ["a\0b"]), "argument 1 of any contains a NUL character"
        )

    def test_length(self):
        """
        Arguments are capped at 4096 characters.
        """
        self.table.prepare("any", ["x" * MAX_ARG_LENGTH])
        self.assertEqual(
            self.refused(BAD_REQUEST, "any", ["x" * (MAX_ARG_LENGTH + 1)]),
            "argument 1 of any is longer than 4096 characters",
        )

    def test_surrogate(self):
        """
        A lone surrogate cannot be put in an argv.
        """
        self.assertIn("not valid Unicode", self.refused(BAD_REQUEST, "any", ["a\udc80"]))

    @settings(max_examples=300, deadline=None)
    @given(
        pattern=st.sampled_from(
            [
                "^[A-Za-z0-9_.-]{1,64}$",
                "[a-z]+$",
                ".*",
                "(?s).*",
                "[^/]*",
                "-?[0-9]{1,4}",
                "x\\x00?y",
            ]
        ),
        args=st.lists(
            st.one_of(
                st.text(max_size=80),
                st.text(alphabet="ab-.0\n\0/xyz_", max_size=10),
                st.sampled_from(["", "\0", "x\0y", "abc\n", "-1", "a" * 65]),
            ),
            max_size=4,
        ),
    )
    def test_acceptedArgumentsMatch(self, pattern, args):
        """
        Whatever the arguments, an accepted one always fullmatches the
        pattern and holds no NUL, and the argv is the fixed part plus the
        arguments; a refusal is always C{BAD_REQUEST}.
        """
        table = CommandTable(
            {
                "c": commands.Command(
                    name="c",
                    description="",
                    usage="c",
                    argv=("echo", "-n"),
                    executable="/usr/bin/echo",
                    available=True,
                    pattern=re.compile(pattern),
                    maxArgs=3,
                    timeout=1,
                    maxOutput=1,
                    source="test",
                )
            }
        )
        try:
            prepared = table.prepare("c", args)
        except JobMonError as e:
            self.assertEqual(e.code, BAD_REQUEST)
            return
        self.assertLessEqual(len(args), 3)
        for arg in args:
            self.assertIsNotNone(re.fullmatch(pattern, arg))
            self.assertNotIn("\0", arg)
        self.assertEqual(prepared.argv, ("echo", "-n", *args))


class FakeTransport:
    """
    The part of a process transport L{commands._CommandProtocol} uses.
    """

    pid = 4321


class ProtocolTests(SynchronousTestCase):
    """
    Tests for L{commands._CommandProtocol} on a fake clock, with fake
    signal functions.
    """

    def setUp(self):
        self.clock = Clock()
        self.signals = []
        self.groups = {4321}
        self.prepared = PreparedCommand(
            name="gpu", argv=("nvidia-smi",), executable="/x", timeout=10, maxOutput=5
        )

    def killpg(self, pgid, sig):
        """
        Record a signal to a process group; fail as the kernel would if it
        does not exist.
        """
        if pgid not in self.groups:
            raise ProcessLookupError()
        self.signals.append(("group", pgid, sig))

    def kill(self, pid, sig):
        """
        Record a signal to one process.
        """
        self.signals.append(("process", pid, sig))

    def start(self, **kwargs):
        """
        Make a protocol and connect it.
        """
        p = commands._CommandProtocol(
            self.clock, self.prepared, killpg=self.killpg, kill=self.kill, **kwargs
        )
        p.transport = FakeTransport()
        p.connectionMade()
        return p

    def test_endsInTime(self):
        """
        A process that ends in time gives its outcome; the time limit is
        cancelled and whatever is left of the group is killed.
        """
        p = self.start()
        self.clock.advance(3)
        p.childDataReceived(1, b"out")
        p.childDataReceived(2, b"err")
        p.processExited(Failure(ProcessTerminated(exitCode=2)))
        p.processEnded(Failure(ProcessTerminated(exitCode=2)))
        outcome = self.successResultOf(p.done)
        self.assertEqual(
            outcome,
            commands._Outcome(exitCode=2, stdout=b"out", stderr=b"err", truncated=False, duration=3.0),
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.signals, [("group", 4321, signal.SIGKILL)])

    def test_exitCodes(self):
        """
        Success is 0, a signal is its negative number.
        """
        for reason, code in [
            (ProcessDone(0), 0),
            (ProcessTerminated(exitCode=3), 3),
            (ProcessTerminated(signal=9), -9),
        ]:
            p = self.start()
            p.processEnded(Failure(reason))
            self.assertEqual(self.successResultOf(p.done).exitCode, code)

    def test_outputCap(self):
        """
        Each stream keeps C{maxOutput} bytes; the rest is dropped and the
        outcome says so.
        """
        p = self.start()
        p.childDataReceived(1, b"abc")
        p.childDataReceived(1, b"defg")
        p.childDataReceived(1, b"hij")
        p.childDataReceived(2, b"12345")
        p.childDataReceived(3, b"ignored")
        p.processEnded(Failure(ProcessDone(0)))
        outcome = self.successResultOf(p.done)
        self.assertEqual((outcome.stdout, outcome.stderr), (b"abcde", b"12345"))
        self.assertTrue(outcome.truncated)

    def test_exactlyFull(self):
        """
        Output of exactly C{maxOutput} bytes is not truncated.
        """
        p = self.start()
        p.childDataReceived(1, b"12345")
        p.processEnded(Failure(ProcessDone(0)))
        self.assertFalse(self.successResultOf(p.done).truncated)

    def test_timeout(self):
        """
        When time is up the group gets SIGTERM, then SIGKILL after the
        grace period; when the process ends the result is
        C{REMOTE_TIMEOUT}.
        """
        p = self.start(killGrace=2)
        self.clock.advance(9.9)
        self.assertEqual(self.signals, [])
        self.clock.advance(0.1)
        self.assertEqual(self.signals, [("group", 4321, signal.SIGTERM)])
        self.assertNoResult(p.done)
        self.clock.advance(2)
        self.assertEqual(self.signals[1:], [("group", 4321, signal.SIGKILL)])
        p.processExited(Failure(ProcessTerminated(signal=9)))
        p.processEnded(Failure(ProcessTerminated(signal=9)))
        e = self.failureResultOf(p.done, JobMonError).value
        self.assertEqual(e.code, REMOTE_TIMEOUT)
        self.assertEqual(e.message, "gpu did not finish within 10 s; it was killed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_endsDuringGrace(self):
        """
        A process that stops on SIGTERM ends the wait for the grace period.
        """
        p = self.start(killGrace=2)
        self.clock.advance(10)
        p.processEnded(Failure(ProcessTerminated(signal=15)))
        self.assertEqual(self.failureResultOf(p.done, JobMonError).value.code, REMOTE_TIMEOUT)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_giveUp(self):
        """
        If the pipes stay open after SIGKILL, the timeout is reported after
        C{killWait} anyway, and the late end changes nothing.
        """
        p = self.start(killGrace=2, killWait=5)
        self.clock.advance(10)
        self.clock.advance(2)
        self.assertEqual([s for _, _, s in self.signals], [signal.SIGTERM, signal.SIGKILL])
        self.clock.advance(4.9)
        self.assertNoResult(p.done)
        self.clock.advance(0.1)
        self.assertEqual(self.failureResultOf(p.done, JobMonError).value.code, REMOTE_TIMEOUT)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        p.processEnded(Failure(ProcessDone(0)))

    def test_groupNotYetCreated(self):
        """
        If the group does not exist yet (the wrapper has not called
        C{setsid}), the process itself is signalled.
        """
        self.groups = set()
        self.start()
        self.clock.advance(10)
        self.assertEqual(self.signals, [("process", 4321, signal.SIGTERM)])

    def test_reapedProcessNotSignalled(self):
        """
        Once the process is reaped its pid may be reused: it is no longer
        signalled alone, only its group.
        """
        self.groups = set()
        p = self.start()
        p.processExited(Failure(ProcessDone(0)))
        self.clock.advance(10)
        self.assertEqual(self.signals, [])
        p.processEnded(Failure(ProcessDone(0)))
        self.failureResultOf(p.done, JobMonError)

    def test_cancel(self):
        """
        Cancelling kills the group at once, stops the clock, and the late
        end changes nothing.
        """
        p = self.start()
        p.done.cancel()
        self.failureResultOf(p.done, defer.CancelledError)
        self.assertEqual(self.signals, [("group", 4321, signal.SIGKILL)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        p.processEnded(Failure(ProcessTerminated(signal=9)))

    def test_startErrors(self):
        """
        The wrapper's report of a failed start becomes a readable
        C{REMOTE_ERROR}.
        """
        for report, message in [
            (b"exec:2", "cannot run gpu: program not found: nvidia-smi"),
            (b"exec:13", "cannot run gpu: program not executable (permission denied): nvidia-smi"),
            (b"exec:8", "cannot run gpu: not an executable program: nvidia-smi"),
            (b"chdir:2", "cannot run gpu: cannot enter the working directory: "
             "No such file or directory"),
            (b"exec:x", "cannot run gpu: cannot execute: nvidia-smi"),
        ]:
            e = commands._startError(self.prepared, commands._EXEC_FAILED + report + b"\n")
            self.assertEqual((e.code, e.message), (REMOTE_ERROR, message))


def _prepared(argv, timeout=10, maxOutput=65536, name="t"):
    """
    A prepared command running the absolute C{argv[0]}.
    """
    return PreparedCommand(
        name=name, argv=tuple(argv), executable=argv[0], timeout=timeout, maxOutput=maxOutput
    )


SH = "/bin/sh"


class RunTests(TestCase):
    """
    Tests for L{runCommand} with real processes on the real reactor.
    """

    timeout = 30

    def setUp(self):
        self.workdir = os.path.realpath(self.mktemp())
        os.makedirs(self.workdir)

    def run_(self, argv, **kwargs):
        """
        Run C{argv} in the working directory.
        """
        env = kwargs.pop("env", None)
        killGrace = kwargs.pop("killGrace", 2.0)
        return runCommand(
            reactor, _prepared(argv, **kwargs), self.workdir, env=env, killGrace=killGrace
        )

    async def failsWith(self, d, code):
        """
        Wait for C{d} to fail with a L{JobMonError} of C{code}; return it.
        """
        try:
            await d
        except JobMonError as e:
            self.assertEqual(e.code, code)
            return e
        self.fail("no error")

    def watchPid(self, pid):
        """
        Make sure the process C{pid} (started by a test) is gone when the
        test ends, whatever happens; return its L{psutil.Process}.
        """
        process = psutil.Process(pid)

        def cleanup():
            try:
                if process.is_running():
                    process.kill()
            except psutil.NoSuchProcess:
                pass

        self.addCleanup(cleanup)
        return process

    async def assertGone(self, process, within=5.0):
        """
        Wait, at most C{within} seconds, for C{process} to be gone (or a
        zombie, waiting for its new parent to reap it).
        """
        deadline = time.monotonic() + within
        while True:
            try:
                if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            if time.monotonic() > deadline:
                self.fail("process {} is still running".format(process.pid))
            await deferLater(reactor, 0.05)

    def readPid(self, path):
        """
        The pid a test command wrote to C{path}.
        """
        with open(path) as f:
            return int(f.read().split()[0])

    async def startedPid(self, path):
        """
        Wait, at most 5 seconds, for a running test command to write a pid
        to C{path}; return that process, watched (see L{watchPid}).
        """
        for _ in range(100):
            if os.path.exists(path) and os.path.getsize(path):
                break
            await deferLater(reactor, 0.05)
        return self.watchPid(self.readPid(path))

    @defer.inlineCallbacks
    def test_echo(self):
        """
        The program gets its argv, without a shell, and its output comes
        back as bytes.
        """
        result = yield self.run_(["/bin/echo", "a b", "$HOME", "*"])
        self.assertEqual(result["name"], "t")
        self.assertEqual(result["argv"], ["/bin/echo", "a b", "$HOME", "*"])
        self.assertEqual(result["exit_code"], 0)
        self.assertEqual(result["stdout"], b"a b $HOME *\n")
        self.assertEqual(result["stderr"], b"")
        self.assertFalse(result["truncated"])
        self.assertIsInstance(result["duration"], float)
        self.assertGreaterEqual(result["duration"], 0)

    @defer.inlineCallbacks
    def test_prepared(self):
        """
        A command from a configuration runs with the user's arguments in
        place of C{{args}}, and argv[0] as written.
        """
        path = os.path.join(self.workdir, "c.toml")
        with open(path, "w") as f:
            f.write('[commands.e]\nargv = ["echo", "{args}", "end"]\nargs = "[a-z]+"\n')
        table = loadCommands([path])
        result = yield runCommand(reactor, table.prepare("e", ["x", "y"]), self.workdir)
        self.assertEqual(result["argv"], ["echo", "x", "y", "end"])
        self.assertEqual(result["stdout"], b"x y end\n")

    @defer.inlineCallbacks
    def test_exitCode(self):
        """
        A failing command reports its status and stderr; one killed by a
        signal reports minus the signal.
        """
        result = yield self.run_([SH, "-c", "echo oops >&2; exit 3"])
        self.assertEqual((result["exit_code"], result["stderr"]), (3, b"oops\n"))
        result = yield self.run_([SH, "-c", "kill -9 $$"])
        self.assertEqual(result["exit_code"], -9)

    @defer.inlineCallbacks
    def test_workdirAndStdin(self):
        """
        The command runs in the working directory, with stdin on
        C{/dev/null}.
        """
        result = yield self.run_([SH, "-c", "pwd; cat; echo end"])
        self.assertEqual(result["stdout"], self.workdir.encode() + b"\nend\n")

    @defer.inlineCallbacks
    def test_environment(self):
        """
        The environment is exactly the one given: the wrapper adds nothing
        (not even the C{LC_CTYPE} Python sets under a C locale) and keeps
        a given C{LC_CTYPE}.
        """
        result = yield self.run_(["/usr/bin/env"], env={"FOO": "bar"})
        self.assertEqual(result["stdout"], b"FOO=bar\n")
        result = yield self.run_(["/usr/bin/env"], env={"LC_CTYPE": "C"})
        self.assertEqual(result["stdout"], b"LC_CTYPE=C\n")

    @defer.inlineCallbacks
    def test_defaultEnvironment(self):
        """
        Without an environment the daemon's is passed on.
        """
        self.patch(os, "environ", dict(os.environ, JOBMON_TEST_VARIABLE="here"))
        result = yield self.run_([SH, "-c", 'echo "$JOBMON_TEST_VARIABLE"'])
        self.assertEqual(result["stdout"], b"here\n")

    @defer.inlineCallbacks
    def test_newSession(self):
        """
        The program leads its own session and process group.
        """
        if not os.path.exists("/proc/self/stat"):
            raise SkipTest("needs /proc")
        result = yield self.run_(["/bin/cat", "/proc/self/stat"])
        # pid (comm) state ppid pgrp session ...
        pid = result["stdout"].split(b" ", 1)[0]
        fields = result["stdout"].rsplit(b") ", 1)[1].split()
        self.assertEqual((fields[2], fields[3]), (pid, pid))

    @defer.inlineCallbacks
    def test_signalDispositions(self):
        """
        The program gets SIGPIPE and SIGXFSZ at their defaults (the
        wrapper's interpreter ignores them, and an exec would pass that
        on), and no signal blocked.
        """
        if not os.path.exists("/proc/self/status"):
            raise SkipTest("needs /proc")
        result = yield self.run_(["/bin/grep", "^Sig", "/proc/self/status"])
        fields = dict(line.split(b":\t") for line in result["stdout"].splitlines())
        ignored = int(fields[b"SigIgn"], 16)
        self.assertFalse(ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE ignored")
        self.assertFalse(ignored & (1 << (signal.SIGXFSZ - 1)), "SIGXFSZ ignored")
        self.assertEqual(int(fields[b"SigBlk"], 16), 0)

    @defer.inlineCallbacks
    def test_outputCap(self):
        """
        Output beyond C{max_output} is drained and dropped: exactly the
        first C{max_output} bytes are kept, and the command is not blocked
        by a full pipe.
        """
        result = yield self.run_(
            [sys.executable, "-c", "print('x' * 100000)"], maxOutput=1000
        )
        self.assertEqual(result["stdout"], b"x" * 1000)
        self.assertTrue(result["truncated"])
        self.assertEqual(result["exit_code"], 0)

    async def _timeoutKillsGroup(self, script, killGrace):
        """
        Run C{script}, which starts a grandchild writing its pid to the
        file C{$1}, with a short time limit; check the result is
        C{REMOTE_TIMEOUT} and the grandchild is gone.
        """
        pidFile = os.path.join(self.workdir, "pid")
        d = self.run_([SH, "-c", script, "sh", pidFile], timeout=1, name="sleepy",
                      killGrace=killGrace)
        grandchild = await self.startedPid(pidFile)
        e = await self.failsWith(d, REMOTE_TIMEOUT)
        self.assertEqual(e.message, "sleepy did not finish within 1 s; it was killed")
        await self.assertGone(grandchild)

    def test_timeoutKillsGroup(self):
        """
        When the time is up, the command and its children are killed.
        """
        return defer.Deferred.fromCoroutine(
            self._timeoutKillsGroup('sleep 30 & echo $! > "$1"; wait', killGrace=2)
        )

    def test_timeoutKillsStubbornGroup(self):
        """
        A group that ignores SIGTERM is killed with SIGKILL after the grace
        period.
        """
        return defer.Deferred.fromCoroutine(
            self._timeoutKillsGroup(
                'trap "" TERM; sleep 30 & echo $! > "$1"; wait; wait', killGrace=0.5
            )
        )

    async def _leftoverKilled(self):
        """
        The body of L{test_leftoverKilled}.
        """
        pidFile = os.path.join(self.workdir, "pid")
        result = await self.run_(
            [SH, "-c", 'sleep 30 >/dev/null 2>&1 & echo $! > "$1"', "sh", pidFile]
        )
        grandchild = self.watchPid(self.readPid(pidFile))
        self.assertEqual(result["exit_code"], 0)
        await self.assertGone(grandchild)

    def test_leftoverKilled(self):
        """
        A background process the command leaves behind (with its output
        closed, so that the command ends) is killed when the command ends.
        """
        return defer.Deferred.fromCoroutine(self._leftoverKilled())

    async def _cancel(self):
        """
        The body of L{test_cancel}.
        """
        pidFile = os.path.join(self.workdir, "pid")
        d = self.run_([SH, "-c", 'echo $$ > "$1"; exec sleep 30', "sh", pidFile])
        child = await self.startedPid(pidFile)
        d.cancel()
        try:
            await d
        except defer.CancelledError:
            pass
        else:
            self.fail("not cancelled")
        await self.assertGone(child)
        # Let the reactor reap the process and close its pipes, so that
        # the test leaves nothing behind.
        await self._drainProcesses()

    async def _drainProcesses(self, within=5.0):
        """
        Wait until the reactor has no more child processes of this test.
        """
        from twisted.internet import process

        deadline = time.monotonic() + within
        while process.reapProcessHandlers and time.monotonic() < deadline:
            await deferLater(reactor, 0.05)

    def test_cancel(self):
        """
        Cancelling the run kills the command at once.
        """
        return defer.Deferred.fromCoroutine(self._cancel())

    def test_programNotFound(self):
        """
        A program that does not exist (or vanished since load time) is
        C{REMOTE_ERROR}.
        """

        async def check():
            e = await self.failsWith(
                runCommand(reactor, _prepared(["/nonexistent/gpu-tool"], name="gpu"),
                           self.workdir),
                REMOTE_ERROR,
            )
            self.assertEqual(e.message, "cannot run gpu: program not found: /nonexistent/gpu-tool")

        return defer.Deferred.fromCoroutine(check())

    def test_programNotFoundAtLoad(self):
        """
        A bare name that was not on C{PATH} at load time fails without
        starting anything.
        """
        prepared = PreparedCommand(
            name="gpu", argv=("nvidia-smi", "-q"), executable=None, timeout=1, maxOutput=1
        )
        d = runCommand(reactor, prepared, self.workdir)
        e = self.failureResultOf(d, JobMonError).value
        self.assertEqual(
            (e.code, e.message), (REMOTE_ERROR, "cannot run gpu: program not found: nvidia-smi")
        )

    def test_notExecutable(self):
        """
        A file without execute permission is C{REMOTE_ERROR}.
        """
        path = os.path.join(self.workdir, "tool")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(path, 0o644)

        async def check():
            # Even root may not execute a file without any x bit.
            e = await self.failsWith(self.run_([path], name="tool"), REMOTE_ERROR)
            self.assertIn("cannot run tool: program not executable", e.message)

        return defer.Deferred.fromCoroutine(check())

    def test_missingWorkdir(self):
        """
        A working directory that does not exist is C{REMOTE_ERROR}.
        """

        async def check():
            e = await self.failsWith(
                runCommand(reactor, _prepared(["/bin/true"]), os.path.join(self.workdir, "gone")),
                REMOTE_ERROR,
            )
            self.assertIn("cannot enter the working directory", e.message)

        return defer.Deferred.fromCoroutine(check())

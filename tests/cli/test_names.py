"""
File names that are not UTF-8 or hold control characters, in the client
and C{jobmon-query}: C{ls} shows them quoted as a shell takes them back
(C{$'\\377.log'}), distinct from a file literally named C{\\xff.log}, and
the name a shell gives back (bytes in C{argv}) goes to the daemon as bytes.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from jobmon import client
from jobmon.cli.format import quoteName
from jobmon.client import JobMonClient
from tests.cli.test_cli import FakeClient, data, entry, run

BYTE_NAME = os.fsdecode(b"\xff.log")
"""A name with a byte that is not UTF-8, as Python has it (from the daemon's
C{name_bytes}, or from C{argv})."""


def listing(*entries):
    """
    An C{ls} result.
    """
    return {"path": ".", "truncated": False, "entries": list(entries)}


class QuoteNameTests(SynchronousTestCase):
    """
    Tests for L{quoteName}.
    """

    def test_examples(self):
        """
        Plain names stay; names with a quote or backslash are single-quoted;
        names with bytes that are not UTF-8 or control characters are
        C{$'...'} with octal, C{\\n}-style or C{\\u} escapes.
        """
        for name, shown in [
            ("job.log", "job.log"),
            ("my file", "my file"),
            ("caf\u00e9", "caf\u00e9"),
            ("\\xff.log", "'\\xff.log'"),
            ("it's", "'it'\\''s'"),
            ("$'\\377.log'", "'$'\\''\\377.log'\\'''"),
            (BYTE_NAME, "$'\\377.log'"),
            ("a\nb\x1b[2J", "$'a\\nb\\033[2J'"),
            ("\u202eevil'\\", "$'\\u202eevil\\'\\\\'"),
        ]:
            self.assertEqual(quoteName(name), shown, name)

    def test_distinct(self):
        """
        Different names never look the same.
        """
        names = [BYTE_NAME, "\\xff.log", "$'\\377.log'", "'\\xff.log'", "\\377.log",
                 "a\x1b", "a\\033", "a\\x1b", "$'a\\033'"]
        shown = [quoteName(n) for n in names]
        self.assertEqual(len(set(shown)), len(names), shown)

    def test_bashTakesItBack(self):
        """
        A shell turns the quoted form back into the exact name.
        """
        import shutil
        import subprocess

        bash = shutil.which("bash")
        if bash is None:
            self.skipTest("no bash")
        for name in [BYTE_NAME, "\\xff.log", "a\nb\x1b[2J", "it's", "\u202eevil'\\"]:
            out = subprocess.run(
                [bash, "-c", "printf %s " + quoteName(name)], capture_output=True,
                env={"LC_ALL": "C.UTF-8", "PATH": os.environ.get("PATH", "/bin")},
            ).stdout
            self.assertEqual(out, os.fsencode(name), name)


class ClientTests(SynchronousTestCase):
    """
    The client sends paths that XML cannot carry as bytes, and gives the
    exact names of results.
    """

    def test_wirePath(self):
        """
        Strings with bytes that are not UTF-8 or control characters go as
        bytes; other strings, including a literal C{\\xff}, as they are.
        """
        self.assertEqual(client.wirePath(BYTE_NAME), b"\xff.log")
        self.assertEqual(client.wirePath("a\rb"), b"a\rb")
        self.assertEqual(client.wirePath("\\xff.log"), "\\xff.log")
        self.assertEqual(client.wirePath("caf\u00e9"), "caf\u00e9")
        self.assertEqual(client.wirePath(bytearray(b"x")), b"x")

    def test_requests(self):
        """
        Every file request of L{JobMonClient} sends such a path as bytes.
        """
        c = JobMonClient("https://h:1/RPC2", proxy="/p", caDir="/c", timeout=7)
        calls = []
        c._call = lambda method, params, timeout=None: calls.append(params) or {}
        for method in ("ls", "stat", "cat", "head", "tail", "follow", "du", "df"):
            del calls[:]
            getattr(c, method)("1.0", BYTE_NAME)
            [(jobId, request)] = calls
            self.assertEqual(request["path"], b"\xff.log", method)

    def test_exactName(self):
        """
        C{KEY_bytes}, when sent, is the exact name.
        """
        self.assertEqual(client.exactName({"name": "\\xff.log",
                                           "name_bytes": b"\xff.log"}), BYTE_NAME)
        self.assertEqual(client.exactName({"name": "\\xff.log"}), "\\xff.log")
        self.assertEqual(client.exactName({"path": "p", "path_bytes": b"\x01"}, "path"),
                         "\x01")


class CommandTests(SynchronousTestCase):
    """
    C{ls}, C{stat} and C{cat} with such names.
    """

    def test_ls(self):
        """
        C{ls} (short and long) shows the exact name quoted, and a literal
        C{\\xff.log} differently.
        """
        fake = FakeClient({"ls": listing(
            entry("\\xff.log", name_bytes=b"\xff.log"),
            entry("\\xff.log"),
            entry("l", "link", target="\\xfe", target_bytes=b"\xfe"))})
        status, out, err = run(["ls", "1"], fake)
        self.assertEqual(out, b"$'\\377.log'\n'\\xff.log'\nl\n")
        status, out, err = run(["ls", "-l", "1"], fake, tty=True)
        lines = out.decode().splitlines()
        self.assertTrue(lines[0].endswith(" $'\\377.log'"), lines)
        self.assertTrue(lines[1].endswith(" '\\xff.log'"), lines)
        self.assertTrue(lines[2].endswith(" l -> $'\\376'"), lines)

    def test_stat(self):
        """
        C{stat} shows the exact path.
        """
        fake = FakeClient({"stat": {"path": "\\xff.log", "path_bytes": b"\xff.log",
                                    "name": "\\xff.log", "name_bytes": b"\xff.log",
                                    "type": "file", "size": 1, "mtime": 0, "mode": 0o644}})
        self.assertIn(b"path: $'\\377.log'\n", run(["stat", "1", BYTE_NAME], fake)[1])

    def test_catGivesPathOn(self):
        """
        The name a shell gives back from C{ls}'s form reaches the client as
        it is (the client then sends it as bytes).
        """
        fake = FakeClient({"cat": data(b"content")})
        self.assertEqual(run(["cat", "1", BYTE_NAME], fake)[1], b"content")
        self.assertEqual(fake.calls[0][2], BYTE_NAME)

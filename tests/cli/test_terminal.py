"""
Tests for L{jobmon.cli.terminal} and its use: file bytes written to a
terminal have their escape sequences and control characters shown, not
obeyed (unless C{--raw}); into a pipe they go as they are.  Tables escape
control characters in names and command lines.
"""

import io

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.cli import output
from jobmon.cli.terminal import TerminalText, neutralise
from tests.cli.test_cli import (
    CappedFile,
    FakeClient,
    Seq,
    TTYBytes,
    data,
    entry,
    followed,
    run,
)

HOSTILE = (b"ok\n\x1b]0;pwned\x07\x1b[2J\x1b[1;1Hrm -rf ~\r"
           b"safe\r\n\x9b31m\xc2\x9b31m\x7f\x08\xe2\x80\xaeevil\ttab\n")
"""A log line that retitles the window, clears the screen, hides a line
behind a carriage return, uses C1 controls (raw and as UTF-8) and a
right-to-left override."""

SHOWN = (b"ok\n^[]0;pwned^G^[[2J^[[1;1Hrm -rf ~^M"
         b"safe\r\n\\x9b31m\\u009b31m^?^H\\u202eevil\ttab\n")
"""L{HOSTILE} as a terminal shows it: newline, tab and CRLF kept."""

TEXT = HOSTILE.replace(b"\r\n\x9b31m", b"\r\n")
"""L{HOSTILE} without its byte that is not UTF-8: text, not binary data."""

TEXT_SHOWN = SHOWN.replace(b"\r\n\\x9b31m", b"\r\n")
"""L{TEXT} as a terminal shows it."""


def unsafe(data):
    """
    Tell whether C{data} (UTF-8 with escapes) still holds a byte a terminal
    would obey: a C0 control but newline, tab and the CR of a CRLF; DEL; a
    C1 control, raw or encoded.
    """
    text = data.replace(b"\r\n", b"\n")
    if any(b < 0x20 and b not in b"\n\t" or b == 0x7F for b in text):
        return True
    decoded = text.decode("utf-8", "surrogateescape")
    return any(0x80 <= ord(c) <= 0x9F or 0xDC80 <= ord(c) <= 0xDCFF for c in decoded)


class NeutraliseTests(SynchronousTestCase):
    """
    Tests for L{neutralise} and L{TerminalText}.
    """

    def test_examples(self):
        """
        ESC is C{^[}, BEL C{^G}, a lone CR C{^M}, DEL C{^?}; a C1 control is
        C{\\u009b} (C{\\x9b} when it is a byte that is not UTF-8); a
        right-to-left override is escaped too; newline, tab, CRLF and
        ordinary text stay.
        """
        text = TerminalText()
        self.assertEqual(text.feed(HOSTILE) + text.end(), SHOWN)
        self.assertEqual(neutralise("r\u00e9sum\u00e9 \u2603\n"), "r\u00e9sum\u00e9 \u2603\n")

    def test_splitChunks(self):
        """
        A character or a CRLF cut between chunks is judged whole: the same
        bytes come out, whatever the cuts.
        """
        for cut in range(len(HOSTILE) + 1):
            text = TerminalText()
            got = text.feed(HOSTILE[:cut]) + text.feed(HOSTILE[cut:]) + text.end()
            self.assertEqual(got, SHOWN, cut)

    def test_endHeld(self):
        """
        What is held at the end (a carriage return, half a character) is
        shown by L{TerminalText.end}.
        """
        text = TerminalText()
        self.assertEqual(text.feed(b"a\r"), b"a")
        self.assertEqual(text.end(), b"^M")
        text = TerminalText()
        self.assertEqual(text.feed(b"a\xe2\x98"), b"a")
        self.assertEqual(text.end(), b"\\xe2\\x98")

    @given(st.binary(max_size=64), st.lists(st.integers(0, 64), max_size=4))
    def test_property(self, blob, cuts):
        """
        Whatever the bytes and however they are cut, nothing a terminal
        obeys comes out, and text without controls comes out unchanged.
        """
        text = TerminalText()
        pieces = []
        last = 0
        for cut in sorted(cuts) + [len(blob)]:
            pieces.append(text.feed(blob[last:max(last, cut)]))
            last = max(last, cut)
        got = b"".join(pieces) + text.end()
        self.assertFalse(unsafe(got), got)
        plain = blob.decode("utf-8", "ignore")
        if neutralise(plain) == plain and "\r" not in plain:
            self.assertEqual(TerminalText().feed(plain.encode()), plain.encode())


class FileBytesTests(SynchronousTestCase):
    """
    C{cat}, C{head}, C{tail}, C{tail -f} and C{run} on a terminal.
    """

    def test_terminal(self):
        """
        On a terminal, C{cat}, C{head} and C{tail} show escape sequences.
        """
        for argv, method in [(["cat", "1", "f"], "cat"),
                             (["head", "1", "f"], "head"),
                             (["tail", "1", "f"], "tail")]:
            fake = FakeClient({method: data(TEXT)})
            self.assertEqual(run(argv, fake, tty=True), (0, TEXT_SHOWN, ""), argv)

    def test_pipeAndRaw(self):
        """
        Into a pipe, or with C{--raw}, the bytes go as they are.
        """
        for argv, tty in [(["cat", "1", "f"], False), (["cat", "1", "f", "--raw"], True)]:
            fake = FakeClient({"cat": data(HOSTILE)})
            self.assertEqual(run(argv, fake, tty=tty), (0, HOSTILE, ""), argv)

    def test_chunks(self):
        """
        A file read in many chunks is shown safe across the cuts, even past
        the first chunk (which alone is checked for binary data).
        """
        content = HOSTILE * 40
        for tty, want in [(True, SHOWN * 40), (False, content)]:
            fake = FakeClient({"cat": CappedFile(content, 7).cat})
            self.assertEqual(run(["cat", "1", "f"], fake, tty=tty), (0, want, ""))

    def test_follow(self):
        """
        C{tail -f}: what is added is shown safe too, a CRLF cut between two
        answers kept.
        """
        fake = FakeClient({"tail": data(b"a\r", 0),
                           "follow": Seq(followed(b"\nb\x1b[2J", 2), KeyboardInterrupt())})
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, tty=True)
        self.assertEqual((status, out), (130, b"a\r\nb^[[2J"))
        fake = FakeClient({"tail": data(b"a\x1b"),
                           "follow": Seq(followed(b"x\r", 2), KeyboardInterrupt())})
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, tty=True)
        self.assertEqual((status, out), (130, b"a^[x^M"))

    def test_run(self):
        """
        C{run}: the command's output and error are shown safe on a
        terminal, as they are into a pipe or with C{--raw}.
        """
        result = {"name": "grep", "exit_code": 0, "stdout": b"\x1b[2Jx\n",
                  "stderr": b"", "truncated": False}
        fake = FakeClient({"run": result})
        self.assertEqual(run(["run", "1", "grep"], fake, tty=True)[1], b"^[[2Jx\n")
        self.assertEqual(run(["run", "1", "--raw", "grep"], fake, tty=True)[1],
                         b"\x1b[2Jx\n")
        self.assertEqual(run(["run", "1", "grep"], fake)[1], b"\x1b[2Jx\n")

    def test_errorStream(self):
        """
        A command's standard error is shown safe when it is a terminal.
        """
        tty = io.TextIOWrapper(TTYBytes(), encoding="utf-8")
        output.writeError(tty, b"\x1b]0;x\x07e\n")
        self.assertEqual(tty.buffer.getvalue(), b"^[]0;x^Ge\n")
        tty = io.TextIOWrapper(TTYBytes(), encoding="utf-8")
        output.writeError(tty, b"\x1b]0;x\x07e\n", raw=True)
        self.assertEqual(tty.buffer.getvalue(), b"\x1b]0;x\x07e\n")
        pipe = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        output.writeError(pipe, b"\x1b]0;x\x07e\n")
        self.assertEqual(pipe.buffer.getvalue(), b"\x1b]0;x\x07e\n")


class TableTests(SynchronousTestCase):
    """
    Names and command lines in tables have their control characters
    escaped, on a terminal or not.
    """

    NASTY = "a\x1b[2J\x9b\u202eb\r\n\x07"

    def test_ls(self):
        """
        C{ls} and C{ls -l} escape control characters in names and link
        targets.
        """
        fake = FakeClient({"ls": {"path": ".", "truncated": False, "entries": [
            entry(self.NASTY), entry("l", "link", target=self.NASTY)]}})
        for argv in (["ls", "1"], ["ls", "-l", "1"]):
            for tty in (True, False):
                status, out, err = run(argv, fake, tty=tty)
                self.assertEqual(status, 0)
                self.assertFalse(unsafe(out), (argv, out))
                self.assertIn(b"$'a\\033[2J\\u009b\\u202eb\\r\\n\\007'", out)

    def test_ps(self):
        """
        C{ps} escapes control characters in command lines and user names.
        """
        proc = {"pid": 10, "ppid": 1, "user": "al\x1bice", "state": "S",
                "cmdline": "python " + self.NASTY, "name": "python",
                "rss": 1, "elapsed": 3}
        fake = FakeClient({"ps": {"processes": [proc], "truncated": False}})
        status, out, err = run(["ps", "1"], fake, tty=True)
        self.assertEqual(status, 0)
        self.assertFalse(unsafe(out), out)
        self.assertIn(b"\\x1b", out)

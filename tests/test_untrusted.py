"""
Tests for L{jobmon.untrusted}: caller-controlled text made safe for
messages and log lines.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon.untrusted import escaped, shown


class ShownTests(SynchronousTestCase):
    """
    L{shown} and L{escaped}.
    """

    def test_printableKept(self):
        """
        Printable text, spaces and non-ASCII letters included, is kept.
        """
        self.assertEqual(shown("Jürgen Müller / CN=x"), "Jürgen Müller / CN=x")

    def test_controlEscaped(self):
        """
        Line breaks, escapes, NUL, DEL, bidi overrides and line separators
        are escaped: no output line can be forged.
        """
        self.assertEqual(escaped("a\nb\rc\td"), "a\\nb\\rc\\td")
        self.assertEqual(escaped("\x00\x1b[31m\x7f"), "\\x00\\x1b[31m\\x7f")
        self.assertEqual(escaped("x\u202ey\u2028"), "x\\u202ey\\u2028")
        self.assertEqual(escaped("\U000e0001"), "\\U000e0001")
        for ch in map(chr, range(0, 0x110000, 13)):
            if not ch.isprintable():
                self.assertTrue(escaped(ch).isprintable())

    def test_capped(self):
        """
        A long value is cut, saying how much more there was.
        """
        self.assertEqual(shown("x" * 250, limit=10), "xxxxxxxxxx... [240 more characters]")
        self.assertEqual(shown("x" * 10, limit=10), "x" * 10)

    def test_bytesAndOthers(self):
        """
        Bytes are decoded (undecodable ones escaped); anything else is its
        C{str}.
        """
        self.assertEqual(shown(b"caf\xc3\xa9\xff\n"), "café\\xff\\n")
        self.assertEqual(shown(["a\nb"]), "['a\\nb']")

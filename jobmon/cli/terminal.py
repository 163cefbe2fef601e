"""
What C{jobmon-query} does to a file's bytes before they reach a terminal:
escape sequences and other control characters are shown, not obeyed, so
that a hostile log cannot drive the terminal (move the cursor, retitle the
window, rewrite what is on screen, answer back).

Only a terminal gets this: into a pipe or a file the bytes go as they are,
and C{--raw} writes them unchanged to a terminal too.
"""

import codecs
import re

# C0 controls but newline and tab, DEL, C1 controls, the characters that
# reorder text (bidirectional overrides and isolates), a carriage return
# not followed by a newline, and bytes that are not UTF-8 (decoded as lone
# surrogates).  Compiled at first use (by re's cache): start-up time.
_UNSAFE = (
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
    "\u2066-\u2069\udc80-\udcff]|\r(?!\n)"
)


def _shown(match):
    """
    The visible form of one unsafe character: C{^[} for ESC (and C{^X} for
    the other C0 controls, C{^?} for DEL, as C{cat -v} shows them),
    C{\\xNN} for a byte that is not UTF-8, C{\\uNNNN} for the others.
    """
    char = match.group(0)
    code = ord(char)
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    if 0xDC80 <= code <= 0xDCFF:
        return "\\x%02x" % (code - 0xDC00,)
    return "\\u%04x" % (code,)


def neutralise(text):
    """
    Return C{text} with every character a terminal would obey (other than
    newline, tab and the carriage return of a CRLF) in a visible form.
    """
    return re.sub(_UNSAFE, _shown, text)


class TerminalText:
    """
    File bytes made safe for a terminal, chunk by chunk: a character, or a
    CRLF, cut between two chunks is judged whole.

    @ivar encoding: the terminal's encoding; characters it cannot show are
        written as backslash escapes.
    """

    def __init__(self, encoding="utf-8"):
        self.encoding = encoding
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._carriageReturn = False

    def feed(self, data):
        """
        Return the bytes to write for the next chunk C{data}.
        """
        return self._text(self._decoder.decode(bytes(data)), final=False)

    def end(self):
        """
        Return the bytes still held (an incomplete character, a carriage
        return), shown as they are: nothing more comes.
        """
        return self._text(self._decoder.decode(b"", final=True), final=True)

    def _text(self, text, final):
        if self._carriageReturn:
            text = "\r" + text
            self._carriageReturn = False
        if text.endswith("\r") and not final:
            # A newline may follow in the next chunk.
            text = text[:-1]
            self._carriageReturn = True
        return neutralise(text).encode(self.encoding, "backslashreplace")

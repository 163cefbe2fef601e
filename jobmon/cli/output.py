"""
How C{jobmon-query} writes: standard output as bytes (text lines encoded
for the stream, file data as it is), JSON documents with bytes as base64
(and as text too when they are UTF-8), the guess whether data is binary,
and the quiet handling of a closed pipe.

C{json} and C{base64} are imported when used: most runs print neither.
"""

import os

from jobmon.cli.format import formatAge, humanSize, printable

BINARY_SAMPLE = 8192
"""How many bytes L{looksBinary} looks at."""


def looksBinary(data):
    """
    Tell whether C{data} looks binary: a NUL byte or a byte sequence that is
    not UTF-8 in its first L{BINARY_SAMPLE} bytes.  A character cut at either
    end of the sample (a chunk of a longer file) does not count.
    """
    import codecs

    sample = bytes(data[:BINARY_SAMPLE])
    if b"\0" in sample:
        return True
    start = 0
    while start < 3 and start < len(sample) and 0x80 <= sample[start] < 0xC0:
        start += 1
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample[start:], final=False)
    except UnicodeDecodeError:
        return True
    return False


def textKey(key):
    """
    Return the name of the field that carries the bytes of field C{key} as
    text: C{text} for C{data} (file contents), C{KEY_text} for the others
    (C{stdout_text}, C{stderr_text}).
    """
    return "text" if key == "data" else key + "_text"


def utf8Text(data):
    """
    Return C{data} decoded, if it is valid UTF-8 as it is, else L{None}.
    """
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


def toJSON(value):
    """
    Return C{value} with every bytes value replaced for JSON: a dict key
    C{k} holding bytes becomes C{k_base64} holding the base64 text, and,
    when the bytes are valid UTF-8, also L{textKey}C{(k)} holding them as
    text (C{text} for C{data}), so that C{jq -r .text} gives a file's
    lines; bytes elsewhere become base64 text.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, (bytes, bytearray)):
                out[key + "_base64"] = _base64(item)
                text = utf8Text(item)
                if text is not None:
                    out[textKey(key)] = text
            else:
                out[key] = toJSON(item)
        return out
    if isinstance(value, (list, tuple)):
        return [toJSON(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return _base64(value)
    return value


class TextCarry:
    """
    The C{text} of consecutive results of one growing file (the JSON lines
    of C{cat -f} and C{tail -f}): a character cut between two results is
    given whole in the C{text} of the later one, so that the texts joined
    are the file's text.  A result whose bytes, with what the previous one
    left, are not UTF-8 has no C{text}; the next starts afresh.
    """

    def __init__(self):
        self._decoder = None
        self.reset()

    def reset(self):
        """
        Start afresh: the next bytes begin a new file (a rotation).
        """
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def annotate(self, result):
        """
        Return C{result} ready for JSON: its C{data} as C{data_base64} and,
        when it decodes, C{text}.
        """
        out = dict(result)
        data = out.pop("data", None)
        out = toJSON(out)
        if data is None:
            return out
        data = bytes(data)
        out["data_base64"] = _base64(data)
        try:
            out["text"] = self._decoder.decode(data)
        except UnicodeDecodeError:
            self.reset()
        return out


def _base64(data):
    """
    Return C{data} as base64 text.
    """
    import base64

    return base64.b64encode(bytes(data)).decode("ascii")


class Output:
    """
    Standard output as bytes: text lines are encoded for the stream, file
    data is written as is.
    """

    def __init__(self, stream):
        self._stream = stream
        self._binary = getattr(stream, "buffer", None)
        self._encoding = getattr(stream, "encoding", None) or "utf-8"

    @property
    def encoding(self):
        """
        The stream's encoding (UTF-8 if it does not say).
        """
        return self._encoding

    def line(self, text):
        """
        Write one line of text.
        """
        self.raw((text + "\n").encode(self._encoding, "backslashreplace"))

    def lines(self, lines):
        """
        Write lines of text.
        """
        for text in lines:
            self.line(text)

    def raw(self, data):
        """
        Write bytes unchanged.
        """
        if self._binary is None:
            self._stream.write(bytes(data).decode(self._encoding, "replace"))
        else:
            self._binary.write(data)

    def json(self, value):
        """
        Write C{value} as one indented JSON document.
        """
        import json

        self.line(json.dumps(toJSON(value), indent=2, sort_keys=True))

    def jsonLine(self, value):
        """
        Write C{value} as JSON on one line, and flush.
        """
        import json

        self.line(json.dumps(toJSON(value), sort_keys=True))
        self.flush()

    def flush(self):
        """
        Flush the stream.
        """
        if self._binary is not None:
            self._binary.flush()
        self._stream.flush()

    def isatty(self):
        """
        Tell whether the stream is a terminal.
        """
        try:
            return bool(self._stream.isatty())
        except (AttributeError, OSError, ValueError):
            return False

    def width(self, environ):
        """
        Return the terminal's width in columns (C{$COLUMNS}, else the
        terminal's, else 80).
        """
        try:
            return max(1, int(environ["COLUMNS"]))
        except (KeyError, ValueError):
            pass
        try:
            return os.get_terminal_size(self._stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return 80


class JSONStream:
    """
    One JSON document for a file read in chunks: the fields first, then the
    data as base64, written as the chunks come, then, if the whole is valid
    UTF-8, the same data as C{text}.  The text is kept in a temporary file
    (in memory up to L{SPOOL_MEMORY} bytes) until the end, when it is known
    to be valid: the file is never held in memory.
    """

    SPOOL_MEMORY = 1 << 20
    """Bytes of escaped text kept in memory before spilling to disk."""

    def __init__(self, out, path, offset, size):
        import codecs
        import json
        import tempfile

        self._out = out
        self._pending = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_MEMORY)
        out.raw(('{"path": %s, "offset": %d, "size": %d, "data_base64": "'
                 % (json.dumps(path), offset, size)).encode("ascii"))

    def write(self, data):
        """
        Add bytes to the document (whole base64 groups are written now).
        """
        import base64

        data = bytes(data)
        self._addText(data)
        data = self._pending + data
        whole = len(data) - len(data) % 3
        self._out.raw(base64.b64encode(data[:whole]))
        self._pending = data[whole:]
        self._out.flush()

    def _addText(self, data, final=False):
        """
        Decode more bytes into the text kept, or give the text up for good
        at the first byte that is not UTF-8.
        """
        import json

        if self._text is None:
            return
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self._text.close()
            self._text = None
            return
        if text:
            self._text.write(json.dumps(text)[1:-1].encode("ascii"))

    def close(self, truncated):
        """
        End the document.
        """
        import base64
        import shutil

        self._out.raw(base64.b64encode(self._pending) + b'", "truncated": '
                      + (b"true" if truncated else b"false"))
        self._addText(b"", final=True)
        if self._text is not None:
            self._out.raw(b', "text": "')
            self._text.seek(0)
            sink = _RawSink(self._out)
            shutil.copyfileobj(self._text, sink, 1 << 16)
            self._text.close()
            self._text = None
            self._out.raw(b'"')
        self._out.raw(b"}\n")


class _RawSink:
    """
    A file-like C{write} into an L{Output}'s bytes.
    """

    def __init__(self, out):
        self._out = out

    def write(self, data):
        self._out.raw(data)


class Progress:
    """
    A progress line on standard error (a terminal) while C{cat} writes a
    long file elsewhere: bytes done of the total, the share, the rate and
    the time left, drawn once the copy has taken L{DELAY} seconds (a short
    one shows nothing), redrawn in place at most every L{INTERVAL} seconds,
    and erased at the end.
    """

    DELAY = 0.5
    """Seconds before the line is first drawn."""

    INTERVAL = 0.2
    """Seconds between two redraws."""

    def __init__(self, stream, total, now, start=None):
        """
        @param stream: the text stream to draw on (a terminal).
        @param total: the bytes to write.
        @param now: the time on a monotonic clock, a function.
        @param start: when the copy began, on that clock (default: now).
        """
        self._stream = stream
        self._total = max(0, int(total))
        self._now = now
        self._start = now() if start is None else start
        self._drawn = None
        self._shown = False

    @classmethod
    def onTerminal(cls, stream, out, total, now, start=None):
        """
        Return a L{Progress} on C{stream} if it is a terminal and C{out}
        (where the data goes) is not; else L{None}.
        """
        if out.isatty():
            return None
        try:
            if not stream.isatty():
                return None
        except (AttributeError, OSError, ValueError):
            return None
        return cls(stream, total, now, start)

    def update(self, done):
        """
        Say that C{done} bytes are written (redrawn if it is time).
        """
        t = self._now()
        if self._drawn is None:
            if t - self._start < self.DELAY:
                return
        elif t - self._drawn < self.INTERVAL:
            return
        self._drawn = t
        self._write("\r" + self.line(done, t - self._start) + "\x1b[K")
        self._shown = True

    def line(self, done, elapsed):
        """
        The text of the progress line after C{done} bytes in C{elapsed}
        seconds: C{12M / 100M  12%  4.0M/s  22s left}.
        """
        text = "%s / %s" % (humanSize(done), humanSize(self._total))
        if self._total:
            text += "  %d%%" % (100 * done // self._total,)
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            text += "  %s/s" % (humanSize(rate),)
            if self._total > done:
                text += "  %s left" % (formatAge((self._total - done) / rate),)
        return text

    def finish(self):
        """
        Erase the line, if it was drawn.
        """
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def _write(self, text):
        """
        Draw on the stream, ignoring a terminal that went away.
        """
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass


def writeError(stream, data, raw=False):
    """
    Write bytes (a command's standard error) to the text stream C{stream};
    on a terminal, unless C{raw}, with control characters made visible.
    """
    binary = getattr(stream, "buffer", None)
    stream.flush()
    if not raw and _isTerminal(stream):
        from jobmon.cli.terminal import TerminalText

        encoding = getattr(stream, "encoding", None) or "utf-8"
        text = TerminalText(encoding)
        data = text.feed(data) + text.end()
    if binary is None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        stream.write(bytes(data).decode(encoding, "replace"))
    else:
        binary.write(data)
        binary.flush()
    stream.flush()


def _isTerminal(stream):
    """
    Tell whether C{stream} is a terminal.
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def oneLine(message):
    """
    Make C{message} a single printable line.
    """
    return printable(" ".join(str(message).splitlines()))


def silence(stream):
    """
    Point C{stream}'s file descriptor at C{/dev/null}, so that flushing it
    again at exit does not fail (the recipe of the Python documentation for
    C{SIGPIPE}).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def flushQuietly(out):
    """
    Flush what was written before an error, ignoring a closed pipe.
    """
    try:
        out.flush()
    except Exception:
        pass

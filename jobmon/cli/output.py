"""
How C{jobmon-query} writes: standard output as bytes (text lines encoded
for the stream, file data as it is), JSON documents with bytes as base64,
the guess whether data is binary, and the quiet handling of a closed pipe.

C{json} and C{base64} are imported when used: most runs print neither.
"""

import os

from jobmon.cli.format import printable

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


def toJSON(value):
    """
    Return C{value} with every bytes value replaced for JSON: a dict key
    C{k} holding bytes becomes C{k_base64} holding the base64 text; bytes
    elsewhere become base64 text.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, (bytes, bytearray)):
                out[key + "_base64"] = _base64(item)
            else:
                out[key] = toJSON(item)
        return out
    if isinstance(value, (list, tuple)):
        return [toJSON(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return _base64(value)
    return value


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
    data as base64, written as the chunks come, so that the file is never
    held in memory.
    """

    def __init__(self, out, path, offset, size):
        import json

        self._out = out
        self._pending = b""
        out.raw(('{"path": %s, "offset": %d, "size": %d, "data_base64": "'
                 % (json.dumps(path), offset, size)).encode("ascii"))

    def write(self, data):
        """
        Add bytes to the document (whole base64 groups are written now).
        """
        import base64

        data = self._pending + bytes(data)
        whole = len(data) - len(data) % 3
        self._out.raw(base64.b64encode(data[:whole]))
        self._pending = data[whole:]
        self._out.flush()

    def close(self, truncated):
        """
        End the document.
        """
        import base64

        self._out.raw(base64.b64encode(self._pending) + b'", "truncated": '
                      + (b"true" if truncated else b"false") + b"}\n")


def writeError(stream, data):
    """
    Write bytes (a command's standard error) to the text stream C{stream}.
    """
    binary = getattr(stream, "buffer", None)
    stream.flush()
    if binary is None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        stream.write(bytes(data).decode(encoding, "replace"))
    else:
        binary.write(data)
        binary.flush()
    stream.flush()


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

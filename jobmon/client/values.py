"""
Numbers between Python and XML-RPC: call arguments out (L{_xmlNumber},
which refuses what cannot be carried exactly), sizes and offsets back (the
server sends them as doubles: L{_integral} and the C{_normalize}
functions make them ints again).

Like the rest of L{jobmon.client}, this imports only the standard library
and L{jobmon.errors}.
"""

import os
import re

from jobmon.client.errors import BAD_ARGUMENT, ClientError

# What XML 1.0 cannot carry (or would turn into something else: a carriage
# return arrives as a newline): a path holding one goes as bytes.  The
# pattern is compiled at first use (by re's cache), and printable ASCII
# needs no look: start-up time.
_NOT_XML = "[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]"


def wirePath(path):
    """
    Return C{path} as a request carries it: a string as it is, unless it
    holds what XML cannot carry (a byte that is not UTF-8, decoded by
    Python as a lone surrogate, as in C{sys.argv}; a control character),
    then its bytes as the file system has them (XML-RPC base64), which the
    daemon takes as the exact file name.  Bytes go as they are.
    """
    if isinstance(path, bytearray):
        return bytes(path)
    if isinstance(path, str) and not (path.isascii() and path.isprintable()) \
            and re.search(_NOT_XML, path):
        return os.fsencode(path)
    return path


def exactName(entry, key="name"):
    """
    Return the exact file name in field C{key} of a result: the bytes of
    C{KEY_bytes} (sent when the name is not UTF-8 or holds control
    characters) decoded as the file system does (lone surrogates for bytes
    that are not UTF-8), else the field as it is.
    """
    raw = entry.get(key + "_bytes")
    if isinstance(raw, (bytes, bytearray)):
        return os.fsdecode(bytes(raw))
    return entry.get(key)


def _xmlNumber(value, name):
    """
    Return C{value} in a form XML-RPC can carry: an C{int} if it fits in 32
    bits, else an integral C{float} (exact up to 2**53).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClientError(BAD_ARGUMENT, "%s must be a number, not %r" % (name, value))
    # Plain int and float: XML-RPC cannot marshal their subclasses.
    if isinstance(value, float):
        return float(value)
    if -(2**31) <= value < 2**31:
        return int(value)
    if abs(value) > 2**53:
        raise ClientError(BAD_ARGUMENT, "%s is too large: %d" % (name, value))
    return float(value)


def _integral(value):
    """
    Turn an integral double from the server (a size or offset) into an int.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalizeEntry(entry):
    """
    Make an C{ls}/C{stat} entry's size an int, in place; return it.
    """
    if "size" in entry:
        entry["size"] = _integral(entry["size"])
    return entry


def _normalizeData(result):
    """
    Make a C{cat}/C{head}/C{tail}/C{follow} result's offsets and size ints,
    in place; return it.
    """
    return _integralFields(result, ("offset", "next_offset", "size"))


def _integralFields(result, keys):
    """
    Make the fields C{keys} of C{result} ints where they are integral
    doubles, in place; return it.
    """
    if isinstance(result, dict):
        for key in keys:
            if key in result:
                result[key] = _integral(result[key])
    return result


def _normalizeProcesses(result):
    """
    Make a C{ps}/C{top} result's memory sizes ints, in place; return it.
    """
    for process in result.get("processes", ()):
        _integralFields(process, ("rss", "vms"))
    return result


def _linesOrBytes(path, lines, count):
    """
    Return the fields of a C{head} or C{tail} request: C{lines} (default
    10), or C{bytes} if C{count} is given.
    """
    if count is not None:
        if lines is not None:
            raise ClientError(BAD_ARGUMENT, "give lines or bytes, not both")
        return {"path": path, "bytes": _xmlNumber(count, "bytes")}
    return {"path": path, "lines": _xmlNumber(10 if lines is None else lines, "lines")}


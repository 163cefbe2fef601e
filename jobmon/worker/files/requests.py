"""
Checking the fields of a file request (the structs of C{docs/API.md},
"Requests and results") before it is run.

Nothing here touches the file system: the daemon checks a C{follow} request
(L{checkFollow}) on the reactor thread, before it starts looking at the
file from its thread pool.  The path is only checked to be a usable string
(L{jobmon.worker.files.confine.checkPath}); confining it needs the file
system, so the operation does it.
"""

import math
import os
import re
import xmlrpc.client

from jobmon.errors import BAD_REQUEST, UNSUPPORTED_OP, JobMonError
from jobmon.worker.files.confine import checkPath, describe

DEFAULT_TAIL_LINES = 10
"""Lines returned by C{tail} when the request does not say."""

MAX_TAIL_LINES = 100000
"""The most lines a C{tail} request may ask for."""

MAX_OFFSET = 2**63 - 1
"""The largest offset or length accepted: the largest C{off_t}.  Larger
values would make C{os.pread} overflow rather than fail cleanly."""

DEFAULT_HEAD_LINES = 10
"""Lines returned by C{head} when the request does not say."""

MAX_LS_DEPTH = 8
"""The most levels of subdirectories an C{ls} request may ask for."""

DEFAULT_FOLLOW_WAIT = 10
"""Seconds a C{follow} request waits for data when it does not say."""

MAX_FOLLOW_WAIT = 25
"""The longest wait, in seconds, a C{follow} request may ask for."""

_INODE = re.compile(r"([0-9]+):([0-9]+)\Z")
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")

_NO_DEFAULT = object()


def parse(request):
    """
    Check a request struct and say what to run.

    Fields a request does not use (such as the server's C{timeout}) are
    ignored.  The arguments of a C{follow} request are those of a single
    look (its C{wait} is checked but left out).

    @param request: a request struct of C{docs/API.md}.
    @return: C{(op, args)}: the op (C{tail_from} for a C{tail} request
        with C{from_line}), and the arguments of the
        L{jobmon.worker.files.Workdir} method that runs it (C{followOnce}
        for C{follow}), in order.
    @raise JobMonError: C{BAD_REQUEST} for a malformed request,
        C{UNSUPPORTED_OP} for an op that is not a file op.
    """
    if not isinstance(request, dict):
        raise JobMonError(BAD_REQUEST, "the request must be a struct")
    op = request.get("op")
    if not isinstance(op, str):
        raise JobMonError(BAD_REQUEST, "the request has no op")
    if op == "ls":
        path = _path(request, default=".")
        depth = _integer(request, "depth", default=0, maximum=MAX_LS_DEPTH)
        includeHidden = _boolean(request, "all", default=True)
        return op, (path, depth, includeHidden)
    if op == "stat":
        return op, (_path(request),)
    if op == "cat":
        path = _path(request)
        offset = _integer(request, "offset", default=0)
        length = _integer(request, "length", default=None)
        return op, (path, offset, length)
    if op == "head":
        path = _path(request)
        return op, (path,) + _linesOrBytes(request, DEFAULT_HEAD_LINES)
    if op == "tail":
        path = _path(request)
        if "from_line" in request:
            if "lines" in request or "bytes" in request:
                raise JobMonError(BAD_REQUEST, "give 'from_line' alone, without 'lines' or "
                                               "'bytes'")
            return "tail_from", (path, _integer(request, "from_line"))
        return op, (path,) + _linesOrBytes(request, DEFAULT_TAIL_LINES)
    if op == "follow":
        path, offset, inode, wait = checkFollow(request)
        return op, (path, offset, inode)
    if op in ("du", "df"):
        return op, (_path(request, default="."),)
    raise JobMonError(UNSUPPORTED_OP, "unsupported op: %s" % (describe(op),))


def checkFollow(request):
    """
    Check the arguments of a C{follow} request.

    @param request: a C{follow} request struct (its C{op} is not checked).
    @return: C{(path, offset, inode, wait)}: C{offset} an int (default
        0), C{inode} the canonical C{"dev:ino"} string or L{None},
        C{wait} a float of seconds (default 10, at most 25).
    @raise JobMonError: C{BAD_REQUEST} for a missing path or an
        ill-formed argument.
    """
    if not isinstance(request, dict):
        raise JobMonError(BAD_REQUEST, "the request must be a struct")
    path = _path(request)
    # Confining the path needs the file system: followOnce does it.
    checkPath(path)
    offset = _integer(request, "offset", default=0)
    inode = _inode(request)
    wait = _number(request, "wait", default=DEFAULT_FOLLOW_WAIT, maximum=MAX_FOLLOW_WAIT)
    return path, offset, inode, wait


def _path(request, default=_NO_DEFAULT):
    """
    Return the C{path} argument of C{request}.

    A path given as bytes (XML-RPC base64) is the file name exactly, for
    names that are not UTF-8 or hold control characters (the C{name_bytes}
    of a listing): it is decoded as the file system does, bytes that are not
    UTF-8 as lone surrogates.  A string is the name as it is: C{"\\xff"} is
    four characters, never the byte 0xFF.  Its type is checked later, when
    the path is confined.
    """
    if "path" not in request:
        if default is _NO_DEFAULT:
            raise JobMonError(BAD_REQUEST, "missing argument 'path'")
        return default
    path = request["path"]
    if isinstance(path, xmlrpc.client.Binary):
        path = path.data
    if isinstance(path, (bytes, bytearray)):
        return os.fsdecode(bytes(path))
    return path


def _linesOrBytes(request, defaultLines):
    """
    Read the C{lines} or C{bytes} argument of a C{head} or C{tail}
    request: one of them, not both.

    @return: C{(lines, byteCount)}; C{byteCount} is L{None} when the
        request counts lines.
    """
    if "lines" in request and "bytes" in request:
        raise JobMonError(BAD_REQUEST, "give 'lines' or 'bytes', not both")
    if "bytes" in request:
        return defaultLines, _integer(request, "bytes")
    lines = _integer(request, "lines", default=defaultLines, maximum=MAX_TAIL_LINES)
    return lines, None


def _integer(request, name, default=_NO_DEFAULT, maximum=MAX_OFFSET):
    """
    Read a non-negative integer argument of C{request}.

    XML-RPC clients send large numbers as doubles and some clients send
    numbers as strings, so an integral float or a string of ASCII digits is
    accepted as well as an int.  C{bool} is refused although it is an C{int}
    in Python: C{true} as a length is a client bug, not the number 1.

    @raise JobMonError: C{BAD_REQUEST} if the argument is missing (and has
        no default), ill-typed, negative or above C{maximum}.
    """
    if name not in request:
        if default is _NO_DEFAULT:
            raise JobMonError(BAD_REQUEST, "missing argument %r" % (name,))
        return default
    value = request[name]
    problem = "%r must be a non-negative integer" % (name,)
    if isinstance(value, bool):
        raise JobMonError(BAD_REQUEST, problem)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise JobMonError(BAD_REQUEST, problem)
        value = int(value)
    elif isinstance(value, str):
        # isdigit alone admits digits int() refuses, such as superscripts.
        if not (value.isascii() and value.isdigit()):
            raise JobMonError(BAD_REQUEST, problem)
        try:
            value = int(value)
        except ValueError:
            # More digits than int() converts: far above any maximum anyway.
            raise JobMonError(BAD_REQUEST, "%r is too large" % (name,)) from None
    elif not isinstance(value, int):
        raise JobMonError(BAD_REQUEST, problem)
    if value < 0:
        raise JobMonError(BAD_REQUEST, problem)
    if value > maximum:
        raise JobMonError(BAD_REQUEST, "%r must be at most %d" % (name, maximum))
    return value


def _number(request, name, default, maximum):
    """
    Read a non-negative number argument of C{request} (such as a time).

    Like L{_integer}, but fractions are allowed: an int, a finite float or a
    string of ASCII digits with an optional decimal point.

    @return: the value, as a float.
    @raise JobMonError: C{BAD_REQUEST} if the argument is ill-typed,
        negative or above C{maximum}.
    """
    if name not in request:
        return float(default)
    value = request[name]
    problem = "%r must be a non-negative number" % (name,)
    if isinstance(value, bool):
        raise JobMonError(BAD_REQUEST, problem)
    if isinstance(value, str):
        if not _DECIMAL.match(value):
            raise JobMonError(BAD_REQUEST, problem)
        value = float(value)
    elif isinstance(value, int):
        # Compared as an int first: a huge int would overflow float().
        if value > maximum:
            raise JobMonError(BAD_REQUEST, "%r must be at most %s" % (name, maximum))
        value = float(value)
    elif not isinstance(value, float):
        raise JobMonError(BAD_REQUEST, problem)
    if not math.isfinite(value) or value < 0:
        raise JobMonError(BAD_REQUEST, problem)
    if value > maximum:
        raise JobMonError(BAD_REQUEST, "%r must be at most %s" % (name, maximum))
    return value


def _boolean(request, name, default):
    """
    Read a boolean argument of C{request}.

    Only a real boolean is accepted: XML-RPC has a boolean type, and
    guessing what C{"no"} or C{2} means would hide client bugs.

    @raise JobMonError: C{BAD_REQUEST} if the argument is not a boolean.
    """
    if name not in request:
        return default
    value = request[name]
    if not isinstance(value, bool):
        raise JobMonError(BAD_REQUEST, "%r must be a boolean" % (name,))
    return value


def _inode(request):
    """
    Read the optional C{inode} argument of a C{follow} request.

    @return: the file identity in the canonical C{"dev:ino"} form, or
        L{None} if the request has none (absent or empty: a C{follow}
        result for a missing file that had no identity carries C{""}).
    @raise JobMonError: C{BAD_REQUEST} if it is not a C{"dev:ino"} string.
    """
    value = request.get("inode")
    if value is None or value == "":
        return None
    match = _INODE.match(value) if isinstance(value, str) else None
    if match is None:
        raise JobMonError(BAD_REQUEST, "'inode' must be a string \"device:inode\" from a result")
    return "%d:%d" % (int(match.group(1)), int(match.group(2)))

"""
The file operations a job's daemon runs in the job's working directory.

Each operation is a plain blocking function: the daemon runs it in a thread
pool, so nothing here may wait on anything but the local file system.  In
particular a FIFO or a device in the working directory must never block a
thread: reads open files with C{O_NONBLOCK} and refuse anything that is not
a regular file.

Requests and results are the structs of C{docs/API.md} ("Requests and
results"), with two differences the daemon smooths over: C{data} is raw
C{bytes} (the daemon wraps it for XML-RPC), and failures are raised as
L{JobMonError} rather than returned.

This module imports no Twisted: only the standard library and attrs.
"""

import heapq
import math
import os
import stat

from attrs import define, field

from jobmon.errors import (
    BAD_REQUEST,
    IS_A_DIRECTORY,
    NO_SUCH_FILE,
    NOT_A_DIRECTORY,
    OUTSIDE_WORKDIR,
    PERMISSION_DENIED,
    REMOTE_ERROR,
    REMOTE_IO_ERROR,
    UNSUPPORTED_OP,
    JobMonError,
)

DEFAULT_MAX_RESULT = 1024 * 1024
"""Default cap, in bytes, on the data of one result."""

DEFAULT_MAX_ENTRIES = 10000
"""Default cap on the number of entries of one C{ls} result."""

DEFAULT_TAIL_LINES = 10
"""Lines returned by C{tail} when the request does not say."""

MAX_TAIL_LINES = 100000
"""The most lines a C{tail} request may ask for."""

MAX_PATH_LENGTH = 4096
"""The longest path a request may give, in characters (Linux's PATH_MAX)."""

MAX_OFFSET = 2**63 - 1
"""The largest offset or length accepted: the largest C{off_t}.  Larger
values would make C{os.pread} overflow rather than fail cleanly."""

TAIL_BLOCK = 64 * 1024
"""How many bytes C{tail} reads at a time, walking back from the end."""

_NO_DEFAULT = object()


def _isInside(root, path):
    """
    Tell whether the absolute, normalised C{path} is C{root} or below it.

    C{os.path.commonpath} compares whole components, so C{/w2} is not taken
    for a child of C{/w} as a string prefix test would.
    """
    return os.path.commonpath([root, path]) == root


def _describe(path):
    """
    Quote a path given by the user for an error message.

    C{repr} escapes control characters and undecodable bytes, so the message
    stays one printable line whatever the path holds.
    """
    return repr(path)


def _osError(error, shown):
    """
    Turn an C{OSError} into the L{JobMonError} a user should see.

    The message names the path as the user gave it (C{shown}), never the
    absolute path in C{error}: that would reveal where the working directory
    is, which the user did not ask for.
    """
    quoted = _describe(shown)
    if isinstance(error, FileNotFoundError):
        return JobMonError(NO_SUCH_FILE, "no such file: %s" % (quoted,))
    if isinstance(error, NotADirectoryError):
        return JobMonError(NOT_A_DIRECTORY, "not a directory: %s" % (quoted,))
    if isinstance(error, IsADirectoryError):
        return JobMonError(IS_A_DIRECTORY, "is a directory: %s" % (quoted,))
    if isinstance(error, PermissionError):
        return JobMonError(PERMISSION_DENIED, "permission denied: %s" % (quoted,))
    reason = error.strerror or (os.strerror(error.errno) if error.errno else "error")
    return JobMonError(REMOTE_IO_ERROR, "cannot read %s: %s" % (quoted, reason))


def _entryType(mode):
    """
    Return the API's name (C{file}, C{dir}, C{link}, C{other}) for the file
    type in C{mode}.
    """
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _entry(name, st, target=None):
    """
    Build an entry struct from an C{lstat} result.

    Sizes and times are floats: XML-RPC integers are 32-bit.
    """
    entry = {
        "name": name,
        "type": _entryType(st.st_mode),
        "size": float(st.st_size),
        "mtime": float(st.st_mtime),
        "mode": stat.S_IMODE(st.st_mode),
    }
    if target is not None:
        entry["target"] = target
    return entry


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


def _positive(instance, attribute, value):
    """
    Validate that a limit is a positive int.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            "%s must be a positive integer, not %r" % (attribute.name, value)
        )


@define
class Workdir:
    """
    A job's working directory, and the operations a user may run in it.

    Every path a request gives is confined to the directory: a path that
    resolves outside it, through C{..} or a symbolic link, is refused with
    C{OUTSIDE_WORKDIR}.  Symbolic links that stay inside are followed.

    All methods block; the daemon calls them from a thread pool.  L{run}
    checks a request's arguments; L{ls}, L{stat}, L{cat} and L{tail} trust
    theirs (except the path, which they always confine).

    @ivar path: the working directory, as the daemon was told.
    @ivar maxResult: the cap, in bytes, on the data of one result; C{ls}
        counts the names and link targets it returns against it.
    @ivar maxEntries: the cap on the entries of one C{ls} result.
    """

    path: str = field(converter=os.fsdecode)
    maxResult: int = field(default=DEFAULT_MAX_RESULT, validator=_positive)
    maxEntries: int = field(default=DEFAULT_MAX_ENTRIES, validator=_positive)
    # Tests pass a wrapper to count the bytes read.
    _pread = field(default=os.pread, repr=False, kw_only=True)
    # Resolved on first use: the constructor does no I/O.
    _root = field(default=None, init=False, repr=False)

    @property
    def root(self):
        """
        The working directory's real path (symbolic links resolved).
        """
        if self._root is None:
            # Two threads may both compute it; they find the same value.
            self._root = os.path.realpath(os.path.abspath(self.path))
        return self._root

    def resolve(self, path):
        """
        Confine C{path} to the working directory and return its real path.

        The path need not exist.  C{""} and C{"."} name the working directory
        itself.

        @param path: a path relative to the working directory, or an absolute
            path that resolves inside it.
        @return: the absolute path with every symbolic link and C{..}
            resolved, inside the working directory.
        @raise JobMonError: C{BAD_REQUEST} if C{path} is not a usable string,
            C{OUTSIDE_WORKDIR} if it resolves outside the working directory.
        """
        return self._locate(path)[0]

    def _locate(self, path):
        """
        Confine C{path} as L{resolve} does, and also find the entry it names.

        C{ls} and C{stat} describe a symbolic link itself, as C{lstat} does,
        so they need the link's own location: its directory resolved, its
        last component kept.  That location must be inside the working
        directory too, or C{stat} would describe a link that lives outside.

        @return: C{(real, named)}: the fully resolved path, and the path with
            all but the last component resolved.
        """
        if not isinstance(path, str):
            raise JobMonError(BAD_REQUEST, "path must be a string")
        if "\0" in path:
            raise JobMonError(BAD_REQUEST, "path must not contain a NUL byte")
        if len(path) > MAX_PATH_LENGTH:
            raise JobMonError(BAD_REQUEST, "path is too long")
        try:
            os.fsencode(path)
        except UnicodeEncodeError:
            raise JobMonError(BAD_REQUEST, "path is not a valid file name") from None
        root = self.root
        # join() drops root when path is absolute, as wanted.
        joined = os.path.join(root, path)
        real = os.path.realpath(joined)
        outside = JobMonError(
            OUTSIDE_WORKDIR,
            "%s is outside the job's working directory" % (_describe(path or "."),),
        )
        if not _isInside(root, real):
            raise outside
        parent, last = os.path.split(joined)
        if last in ("", ".", ".."):
            # Nothing left unresolved: "sub/", "a/.." name what they reach.
            return real, real
        named = os.path.join(os.path.realpath(parent), last)
        if not _isInside(root, named):
            raise outside
        return real, named

    def _relative(self, path):
        """
        Return C{path}, inside the working directory, relative to it with
        C{/} separators (C{"."} for the directory itself).
        """
        relative = os.path.relpath(path, self.root)
        return relative.replace(os.sep, "/")

    def run(self, request):
        """
        Check a request struct and run it.

        Fields a request does not use (such as the server's C{timeout}) are
        ignored.

        @param request: a request struct of C{docs/API.md}.
        @return: its result struct.
        @raise JobMonError: with the fault code a user should see.
        """
        if not isinstance(request, dict):
            raise JobMonError(BAD_REQUEST, "the request must be a struct")
        op = request.get("op")
        if not isinstance(op, str):
            raise JobMonError(BAD_REQUEST, "the request has no op")
        if op == "ls":
            return self.ls(self._path(request, default="."))
        if op == "stat":
            return self.stat(self._path(request))
        if op == "cat":
            path = self._path(request)
            offset = _integer(request, "offset", default=0)
            length = _integer(request, "length", default=None)
            return self.cat(path, offset, length)
        if op == "tail":
            path = self._path(request)
            lines = _integer(
                request, "lines", default=DEFAULT_TAIL_LINES, maximum=MAX_TAIL_LINES
            )
            return self.tail(path, lines)
        raise JobMonError(UNSUPPORTED_OP, "unsupported op: %s" % (_describe(op),))

    def _path(self, request, default=_NO_DEFAULT):
        """
        Return the C{path} argument of C{request}.

        Its type is checked later, by L{_locate}.
        """
        if "path" not in request:
            if default is _NO_DEFAULT:
                raise JobMonError(BAD_REQUEST, "missing argument 'path'")
            return default
        return request["path"]

    def ls(self, path="."):
        """
        List a directory, or describe a single entry.

        A directory, or a symbolic link to one, is listed; anything else,
        including a link to a file, is shown as one entry, as C{ls} would.
        Entries are described without following links (C{lstat}); the
        listing includes dot files.

        @return: C{{"path", "entries", "truncated"}}.  C{truncated} is true
            when C{maxEntries} or C{maxResult} cut the listing; the entries
            kept are the first ones by name.
        """
        real, named = self._locate(path)
        try:
            st = os.lstat(named)
            isDirectory = stat.S_ISDIR(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                try:
                    isDirectory = stat.S_ISDIR(os.stat(real).st_mode)
                except OSError:
                    # A dangling or unreadable link is still shown, as a link.
                    isDirectory = False
            if not isDirectory:
                return {
                    "path": self._relative(named),
                    "entries": [self._describeEntry(named, st)],
                    "truncated": False,
                }
            entries, truncated = self._listDirectory(real)
        except OSError as e:
            raise _osError(e, path or ".") from None
        return {
            "path": self._relative(named),
            "entries": entries,
            "truncated": truncated,
        }

    def _listDirectory(self, directory):
        """
        Describe the entries of C{directory}, sorted by name and capped.

        Only the first C{maxEntries} names (plus one, to tell whether there
        are more) are kept while scanning, so a directory of millions of
        files costs a scan but not the memory of all its names.
        """
        with os.scandir(directory) as scan:
            first = heapq.nsmallest(self.maxEntries + 1, scan, key=lambda e: e.name)
        truncated = len(first) > self.maxEntries
        entries = []
        budget = self.maxResult
        for dirEntry in first[: self.maxEntries]:
            try:
                st = dirEntry.stat(follow_symlinks=False)
                target = None
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(dirEntry.path)
            except FileNotFoundError:
                # Removed since the scan: a running job does that.
                continue
            entry = _entry(dirEntry.name, st, target)
            budget -= len(os.fsencode(dirEntry.name))
            if target is not None:
                budget -= len(os.fsencode(target))
            if budget < 0:
                truncated = True
                break
            entries.append(entry)
        return entries, truncated

    def _describeEntry(self, named, st):
        """
        Build the entry struct for the single path C{named}, whose C{lstat}
        result is C{st}.
        """
        target = os.readlink(named) if stat.S_ISLNK(st.st_mode) else None
        # The working directory's own name is part of its absolute path,
        # which the user did not give: call it ".".
        name = "." if named == self.root else os.path.basename(named)
        return _entry(name, st, target)

    def stat(self, path):
        """
        Describe one entry, without following a final symbolic link.

        @return: an entry struct (see L{ls}) with C{path} added.
        """
        real, named = self._locate(path)
        try:
            st = os.lstat(named)
            result = self._describeEntry(named, st)
        except OSError as e:
            raise _osError(e, path or ".") from None
        result["path"] = self._relative(named)
        return result

    def _openRegular(self, path, real):
        """
        Open C{real} for reading and check that it is a regular file.

        C{O_NONBLOCK} keeps the open of a FIFO from waiting for a writer;
        C{O_NOFOLLOW} refuses a last component that became a symbolic link
        since L{_locate} resolved it.

        @return: C{(fd, st)}, the open descriptor and its C{fstat}.
        """
        shown = path or "."
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(real, flags)
        except OSError as e:
            raise _osError(e, shown) from None
        try:
            st = os.fstat(fd)
        except OSError as e:
            os.close(fd)
            raise _osError(e, shown) from None
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise JobMonError(
                IS_A_DIRECTORY, "is a directory: %s" % (_describe(shown),)
            )
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise JobMonError(
                REMOTE_ERROR, "not a regular file: %s" % (_describe(shown),)
            )
        return fd, st

    def _readAt(self, fd, length, offset):
        """
        Read up to C{length} bytes at C{offset}, stopping early only at the
        end of the file.
        """
        chunks = []
        got = 0
        while got < length:
            chunk = self._pread(fd, length - got, offset + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def cat(self, path, offset=0, length=None):
        """
        Read bytes of a regular file.

        At most C{maxResult} bytes are read, whatever C{length} asks.  An
        offset at or past the end of the file gives empty data.

        @param length: how many bytes to read, or L{None} for "to the end".
        @return: C{{"path", "data", "offset", "size", "truncated"}};
            C{truncated} is true when the cap returned fewer bytes than
            C{length} asked or than the file has past C{offset}.
        """
        real, named = self._locate(path)
        fd, st = self._openRegular(path, real)
        try:
            limit = self.maxResult if length is None else min(length, self.maxResult)
            if offset >= st.st_size:
                # Past the end: pread near the largest offset fails with
                # EINVAL rather than reading nothing.
                data = b""
            else:
                data = self._readAt(fd, limit, offset)
            # A log may grow while read: report its size after the read, so
            # that offset + len(data) <= size holds for what was returned.
            size = os.fstat(fd).st_size
        except OSError as e:
            raise _osError(e, path or ".") from None
        finally:
            os.close(fd)
        cappedRequest = length is None or length > self.maxResult
        truncated = (
            cappedRequest and len(data) == self.maxResult and offset + len(data) < size
        )
        return {
            "path": self._relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(size),
            "truncated": truncated,
        }

    def tail(self, path, lines=DEFAULT_TAIL_LINES):
        """
        Return the last C{lines} lines of a regular file.

        The file is read backwards from its end, one L{TAIL_BLOCK} at a
        time, until enough lines are found or C{maxResult} bytes are held,
        so the cost does not depend on the file's size.  As with coreutils'
        C{tail -n}, a newline ending the file does not start an extra empty
        line.

        @return: as L{cat}; C{offset} is where C{data} starts and C{size}
            where it ends.  If the lines do not fit in C{maxResult} bytes,
            C{data} is the last C{maxResult} bytes and C{truncated} is true.
        """
        real, named = self._locate(path)
        fd, st = self._openRegular(path, real)
        try:
            offset, data, truncated = self._tail(fd, st.st_size, lines, path)
        except OSError as e:
            raise _osError(e, path or ".") from None
        finally:
            os.close(fd)
        return {
            "path": self._relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(st.st_size),
            "truncated": truncated,
        }

    def _tail(self, fd, size, lines, path):
        """
        Find the last C{lines} lines of the C{size} first bytes of C{fd}.

        @return: C{(offset, data, truncated)}.
        """
        if lines == 0 or size == 0:
            return size, b"", False
        blocks = []  # Read from the end: the last block of the file first.
        position = size
        held = 0
        wanted = lines
        while position > 0 and held < self.maxResult:
            count = min(TAIL_BLOCK, position, self.maxResult - held)
            position -= count
            block = self._readAt(fd, count, position)
            if len(block) != count:
                # Only a file cut while read (copytruncate log rotation)
                # ends before the size fstat gave.
                raise JobMonError(
                    REMOTE_IO_ERROR,
                    "%s shrank while being read" % (_describe(path),),
                )
            blocks.append(block)
            held += count
            end = count
            if position + count == size and block.endswith(b"\n"):
                # The newline that ends the last line starts no new line.
                end -= 1
            while True:
                newline = block.rfind(b"\n", 0, end)
                if newline < 0:
                    break
                wanted -= 1
                if wanted == 0:
                    blocks[-1] = block[newline + 1 :]
                    blocks.reverse()
                    return position + newline + 1, b"".join(blocks), False
                end = newline
        blocks.reverse()
        data = b"".join(blocks)
        truncated = position > 0
        if truncated and wanted == 1:
            # The cap may fall just after the newline that starts the first
            # line wanted: then nothing was cut.
            truncated = self._readAt(fd, 1, position - 1) != b"\n"
        return position, data, truncated

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

import errno
import heapq
import math
import os
import stat
import time

from attrs import define, field

from jobmon.errors import NO_SUCH_FILE, REMOTE_IO_ERROR, JobMonError
from jobmon.worker.files import requests
from jobmon.worker.files.confine import (
    MAX_PATH_LENGTH,
    ConfinedDirectory,
    describe as _describe,
    openDirectory,
    openRegular,
    osError as _osError,
    statFollowingLink as _statFollowingLink,
)
from jobmon.worker.files.requests import (
    DEFAULT_FOLLOW_WAIT,
    DEFAULT_HEAD_LINES,
    DEFAULT_TAIL_LINES,
    MAX_FOLLOW_WAIT,
    MAX_LS_DEPTH,
    MAX_OFFSET,
    MAX_TAIL_LINES,
)

DEFAULT_MAX_RESULT = 1024 * 1024
"""Default cap, in bytes, on the data of one result."""

DEFAULT_MAX_ENTRIES = 10000
"""Default cap on the number of entries of one C{ls} result."""

TAIL_BLOCK = 64 * 1024
"""How many bytes C{tail} reads at a time, walking back from the end."""

HEAD_BLOCK = 64 * 1024
"""How many bytes C{head} reads at a time, from the start."""

DEFAULT_MAX_DU_ENTRIES = 100000
"""Default cap on the entries one C{du} visits."""

DEFAULT_DU_SECONDS = 10.0
"""Default cap on the seconds one C{du} spends walking."""


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


def _identity(st):
    """
    Return the C{"dev:ino"} string naming the file that C{st} describes.
    """
    return "%d:%d" % (st.st_dev, st.st_ino)


class _Descending:
    """
    A name that sorts backwards, so that C{heapq}'s smallest item is the
    largest name: the heap keeps the smallest names seen.
    """

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __lt__(self, other):
        return other.name < self.name


def _positive(instance, attribute, value):
    """
    Validate that a limit is a positive int.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            "%s must be a positive integer, not %r" % (attribute.name, value)
        )


def _positiveNumber(instance, attribute, value):
    """
    Validate that a limit is a positive, finite int or float.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            "%s must be a positive number, not %r" % (attribute.name, value)
        )


@define
class Workdir(ConfinedDirectory):
    """
    A job's working directory, and the operations a user may run in it.

    Every path a request gives is confined to the directory: a path that
    resolves outside it, through C{..} or a symbolic link, is refused with
    C{OUTSIDE_WORKDIR}.  Symbolic links that stay inside are followed.

    All methods block; the daemon calls them from a thread pool.  L{run}
    checks a request's arguments; L{ls}, L{stat}, L{cat}, L{head}, L{tail},
    L{followOnce}, L{du} and L{df} trust theirs (except the path, which they
    always confine).

    C{follow} is split for the daemon: L{checkFollow} checks a request,
    L{followOnce} looks at the file once without waiting, and the daemon
    repeats it until there is news or the wait is over.  L{run} does a single
    L{followOnce}.

    @ivar path: the working directory, as the daemon was told.
    @ivar maxResult: the cap, in bytes, on the data of one result; C{ls} and
        C{du} count the names and link targets they return against it.
    @ivar maxEntries: the cap on the entries of one C{ls} or C{du} result.
    @ivar maxDuEntries: the cap on the entries one C{du} visits.
    @ivar duSeconds: the cap on the seconds one C{du} spends walking.
    """

    maxResult: int = field(default=DEFAULT_MAX_RESULT, validator=_positive)
    maxEntries: int = field(default=DEFAULT_MAX_ENTRIES, validator=_positive)
    maxDuEntries: int = field(
        default=DEFAULT_MAX_DU_ENTRIES, validator=_positive, kw_only=True
    )
    duSeconds: float = field(
        default=DEFAULT_DU_SECONDS, validator=_positiveNumber, kw_only=True
    )
    # Tests pass a wrapper to count the bytes read.
    _pread = field(default=os.pread, repr=False, kw_only=True)
    # Tests pass a clock they move by hand, to hit the time bound of du.
    _monotonic = field(default=time.monotonic, repr=False, kw_only=True)

    def run(self, request):
        """
        Check a request struct and run it.

        Fields a request does not use (such as the server's C{timeout}) are
        ignored.  A C{follow} request is looked at once, without waiting
        (its C{wait} is checked but unused): waiting is the daemon's job,
        with L{checkFollow} and L{followOnce}.

        @param request: a request struct of C{docs/API.md}.
        @return: its result struct.
        @raise JobMonError: with the fault code a user should see.
        """
        op, args = requests.parse(request)
        return getattr(self, _METHODS[op])(*args)


    def checkFollow(self, request):
        """
        Check the arguments of a C{follow} request, without touching the
        file system.

        The daemon calls this first, then L{followOnce} until the file has
        news or C{wait} seconds have passed.

        @param request: a C{follow} request struct (its C{op} is not
            checked).
        @return: C{(path, offset, inode, wait)}: C{offset} an int (default
            0), C{inode} the canonical C{"dev:ino"} string or L{None},
            C{wait} a float of seconds (default 10, at most 25).
        @raise JobMonError: C{BAD_REQUEST} for a missing path or an
            ill-formed argument.
        """
        return requests.checkFollow(request)


    def ls(self, path=".", depth=0, includeHidden=True):
        """
        List a directory, or describe a single entry.

        A directory, or a symbolic link to one, is listed; anything else,
        including a link to a file, is shown as one entry, as C{ls} would.
        Entries are described without following links (C{lstat}).

        @param depth: how many levels of subdirectories to list as well.
            Their entries are named relative to C{path} (C{"sub/inner.txt"})
            and the whole listing is sorted by that name.  Symbolic links to
            directories are listed, not descended; a subdirectory that
            cannot be read (or vanishes) is listed without its contents.
        @param includeHidden: whether to list names starting with C{"."}.
            Hidden directories are not descended either.  A hidden path
            given explicitly is still shown.
        @return: C{{"path", "entries", "truncated"}}.  C{truncated} is true
            when C{maxEntries} or C{maxResult} cut the listing; the entries
            kept are the first ones by name.
        """
        real, named = self.locate(path)
        try:
            st, isDirectory = _statFollowingLink(named, real)
            if not isDirectory:
                return {
                    "path": self.relative(named),
                    "entries": [self._describeEntry(named, st)],
                    "truncated": False,
                }
            entries, truncated = self._listTree(real, depth, includeHidden)
        except OSError as e:
            raise _osError(e, path or ".") from None
        return {
            "path": self.relative(named),
            "entries": entries,
            "truncated": truncated,
        }

    def _openDirectory(self, path, identity):
        """
        Open a directory met during a walk, as
        L{jobmon.worker.files.confine.openDirectory} does.
        """
        return openDirectory(path, identity)

    def _listTree(self, directory, depth, includeHidden):
        """
        Describe the entries of C{directory}, and of its subdirectories down
        to C{depth} levels, sorted by relative name and capped.

        The walk keeps only the C{maxEntries} smallest names (plus one, to
        tell whether there are more) in a heap whose top is the largest
        kept.  A name at or above it cannot make the listing, and neither
        can anything below it, since C{"d/x"} sorts after C{"d"}: such
        subdirectories are not even opened.  So memory stays bounded by
        C{maxEntries} per level of depth, whatever the tree holds, and a
        big tree costs little more than the part that is listed.

        Errors reading C{directory} itself are raised; errors reading a
        subdirectory or an entry in it leave that part out.
        """
        capacity = self.maxEntries + 1
        # Items: (_Descending(name), name, lstat result, link target).
        kept = []
        # Directories still to read: (relative name, level, identity).
        pending = [("", 0, None)]

        def beaten(name):
            """Tell whether C{name} sorts after everything that will be kept."""
            return len(kept) == capacity and name >= kept[0][1]

        while pending:
            prefix, level, identity = pending.pop()
            if prefix:
                if beaten(prefix):
                    continue
                try:
                    fd = self._openDirectory(
                        os.path.join(directory, prefix), identity
                    )
                except OSError:
                    continue
                if fd is None:
                    continue
            else:
                fd = self._openDirectory(directory, None)
            try:
                subdirectories = self._scanForListing(
                    fd, prefix, level < depth, includeHidden, kept, beaten
                )
            except OSError:
                if not prefix:
                    raise
                continue
            finally:
                os.close(fd)
            # Read the smallest first: they fill the heap with small names,
            # which lets more of the rest be skipped.
            subdirectories = [d for d in subdirectories if not beaten(d[0])]
            subdirectories.sort(key=lambda d: d[0], reverse=True)
            pending.extend((name, level + 1, ident) for name, ident in subdirectories)

        kept.sort(key=lambda item: item[1])
        truncated = len(kept) > self.maxEntries
        entries = []
        budget = self.maxResult
        for _, name, st, target in kept[: self.maxEntries]:
            budget -= len(os.fsencode(name))
            if target is not None:
                budget -= len(os.fsencode(target))
            if budget < 0:
                truncated = True
                break
            entries.append(_entry(name, st, target))
        return entries, truncated

    def _scanForListing(self, fd, prefix, descend, includeHidden, kept, beaten):
        """
        Read the directory open as C{fd} (named C{prefix} in the listing)
        into the heap C{kept} of L{_listTree}.

        Entries are described as they enter the heap, through C{fd}, so that
        what is described is what was read, even if a path above changes.

        @param descend: whether subdirectories are to be listed too.
        @return: the subdirectories to read, as C{(name, (dev, ino))}.
        """
        capacity = self.maxEntries + 1
        subdirectories = []
        with os.scandir(fd) as scan:
            for dirEntry in scan:
                if not includeHidden and dirEntry.name.startswith("."):
                    continue
                name = prefix + "/" + dirEntry.name if prefix else dirEntry.name
                if beaten(name):
                    continue
                try:
                    st = dirEntry.stat(follow_symlinks=False)
                    target = None
                    if stat.S_ISLNK(st.st_mode):
                        target = os.readlink(dirEntry.name, dir_fd=fd)
                except FileNotFoundError:
                    # Removed since the scan: a running job does that.
                    continue
                except OSError:
                    if not prefix:
                        raise
                    continue
                item = (_Descending(name), name, st, target)
                if len(kept) == capacity:
                    heapq.heapreplace(kept, item)
                else:
                    heapq.heappush(kept, item)
                if descend and stat.S_ISDIR(st.st_mode):
                    subdirectories.append((name, (st.st_dev, st.st_ino)))
                    if len(subdirectories) > 2 * capacity:
                        # A huge directory read in falling order: forget
                        # those pushed out of the heap since.
                        subdirectories = [
                            d for d in subdirectories if not beaten(d[0])
                        ]
        return subdirectories

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
        real, named = self.locate(path)
        try:
            st = os.lstat(named)
            result = self._describeEntry(named, st)
        except OSError as e:
            raise _osError(e, path or ".") from None
        result["path"] = self.relative(named)
        return result

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
        real, named = self.locate(path)
        fd, st = openRegular(path, real)
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
            "path": self.relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(size),
            "truncated": truncated,
        }

    def head(self, path, lines=DEFAULT_HEAD_LINES, byteCount=None):
        """
        Return the first C{lines} lines, or the first C{byteCount} bytes, of
        a regular file.

        The file is read from its start, one L{HEAD_BLOCK} at a time, and
        never more than C{maxResult} bytes (plus one, to tell whether the
        cap cut anything).

        @param byteCount: how many bytes to return (C{head -c}); L{None} to
            count C{lines} instead.
        @return: as L{cat}, with C{offset} 0.  If the lines do not fit in
            C{maxResult} bytes, C{data} is the first C{maxResult} bytes and
            C{truncated} is true.
        """
        if byteCount is not None:
            return self.cat(path, 0, byteCount)
        real, named = self.locate(path)
        fd, st = openRegular(path, real)
        try:
            data, truncated = self._head(fd, lines)
            # As cat: the size after the read, so len(data) <= size.
            size = os.fstat(fd).st_size
        except OSError as e:
            raise _osError(e, path or ".") from None
        finally:
            os.close(fd)
        return {
            "path": self.relative(named),
            "data": data,
            "offset": 0.0,
            "size": float(size),
            "truncated": truncated,
        }

    def _head(self, fd, lines):
        """
        Find the first C{lines} lines of C{fd}.

        @return: C{(data, truncated)}.
        """
        if lines == 0:
            return b"", False
        blocks = []
        held = 0
        wanted = lines
        while held < self.maxResult:
            count = min(HEAD_BLOCK, self.maxResult - held)
            block = self._readAt(fd, count, held)
            found = block.count(b"\n")
            if found >= wanted:
                end = -1
                for _ in range(wanted):
                    end = block.index(b"\n", end + 1)
                blocks.append(block[: end + 1])
                return b"".join(blocks), False
            wanted -= found
            blocks.append(block)
            held += len(block)
            if len(block) < count:
                # The end of the file: fewer lines than asked.
                return b"".join(blocks), False
        # The cap is full and the lines asked for go on past it, if the
        # file does.
        truncated = self._readAt(fd, 1, held) != b""
        return b"".join(blocks), truncated

    def tail(self, path, lines=DEFAULT_TAIL_LINES, byteCount=None):
        """
        Return the last C{lines} lines, or the last C{byteCount} bytes, of a
        regular file.

        The file is read backwards from its end, one L{TAIL_BLOCK} at a
        time, until enough lines are found or C{maxResult} bytes are held,
        so the cost does not depend on the file's size.  As with coreutils'
        C{tail -n}, a newline ending the file does not start an extra empty
        line.

        @param byteCount: how many bytes to return (C{tail -c}); L{None} to
            count C{lines} instead.
        @return: as L{cat}; C{offset} is where C{data} starts and C{size}
            where it ends.  If the lines or bytes do not fit in
            C{maxResult} bytes, C{data} is the last C{maxResult} bytes and
            C{truncated} is true.
        """
        real, named = self.locate(path)
        fd, st = openRegular(path, real)
        try:
            if byteCount is None:
                offset, data, truncated = self._tail(fd, st.st_size, lines, path)
            else:
                offset, data, truncated = self._tailBytes(
                    fd, st.st_size, byteCount, path
                )
        except OSError as e:
            raise _osError(e, path or ".") from None
        finally:
            os.close(fd)
        return {
            "path": self.relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(st.st_size),
            "truncated": truncated,
        }

    def _tailBytes(self, fd, size, count, path):
        """
        Read the last C{count} bytes of the C{size} first bytes of C{fd},
        or the last C{maxResult} of them if that is less.

        @return: C{(offset, data, truncated)}.
        """
        length = min(count, size)
        truncated = length > self.maxResult
        length = min(length, self.maxResult)
        offset = size - length
        data = self._readAt(fd, length, offset)
        if len(data) != length:
            raise JobMonError(
                REMOTE_IO_ERROR, "%s shrank while being read" % (_describe(path),)
            )
        return offset, data, truncated

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

    def followOnce(self, path, offset=0, inode=None):
        """
        Look once, without waiting, for what a follower of C{path} has not
        seen yet (one step of C{tail -F}).

        The path is confined afresh on every call: a log replaced by a link
        leading out of the working directory is refused, however it was
        followed before.

        If the file is missing, the result says so (C{missing}) and keeps
        C{offset} and C{inode}, so that the file coming back is seen as a
        rotation.  If it is another file than C{inode} names, or is shorter
        than C{offset}, it was rotated: C{data} starts at 0 of the file now
        there.  Otherwise C{data} is what lies past C{offset}, at most
        C{maxResult} bytes.

        A file truncated and written past C{offset} again between two
        calls cannot be told from one that grew; C{tail -F} has the same
        blind spot.

        @param offset: where the last read ended (the previous result's
            C{next_offset}).
        @param inode: the previous result's C{inode}, C{"dev:ino"}; L{None}
            or C{""} on the first call.
        @return: C{{"path", "data", "offset", "next_offset", "size",
            "inode", "rotated", "missing", "truncated"}} (see
            C{docs/API.md}); numbers other than booleans are floats.
        @raise JobMonError: for a path outside the working directory, a
            directory, a special file, or a file that cannot be read.
        """
        if inode == "":
            inode = None
        real, named = self.locate(path)
        try:
            fd, st = openRegular(path, real)
        except JobMonError as e:
            if e.code != NO_SUCH_FILE:
                raise
            return {
                "path": self.relative(named),
                "data": b"",
                "offset": float(offset),
                "next_offset": float(offset),
                "size": 0.0,
                "inode": inode or "",
                "rotated": False,
                "missing": True,
                "truncated": False,
            }
        try:
            identity = _identity(st)
            rotated = (inode is not None and inode != identity) or st.st_size < offset
            start = 0 if rotated else offset
            if start >= st.st_size:
                # Nothing new; and pread far past the end fails (see cat).
                data = b""
            else:
                data = self._readAt(fd, self.maxResult, start)
            size = os.fstat(fd).st_size
        except OSError as e:
            raise _osError(e, path or ".") from None
        finally:
            os.close(fd)
        return {
            "path": self.relative(named),
            "data": data,
            "offset": float(start),
            "next_offset": float(start + len(data)),
            "size": float(size),
            "inode": identity,
            "rotated": rotated,
            "missing": False,
            "truncated": len(data) == self.maxResult and start + len(data) < size,
        }

    def du(self, path="."):
        """
        Measure the disk space used under a directory, as C{du} does.

        The walk does not follow symbolic links, counts a file with several
        hard links once, and stops after C{maxDuEntries} entries or
        C{duSeconds} seconds, whichever comes first.  Entries it may not
        read are skipped and counted.  The path given may be a link to a
        directory (it is measured) or any other entry (its own space).

        @return: C{{"path", "total", "files", "dirs", "entries",
            "unreadable", "truncated"}}: C{total} the bytes allocated
            (C{st_blocks * 512}) under C{path}, the directory itself
            included; C{files} the entries below it that are not
            directories (each hard-linked file once), C{dirs} the
            directories below it; C{entries} each direct child as
            C{{"name", "size", "type"}} with its own total, largest first
            (then by name), capped like C{ls}; C{unreadable} the
            directories and entries that could not be read (permission
            denied, I/O error); C{truncated} whether a bound was hit, so
            that the figures are lower bounds, or the entries were cut.
        """
        real, named = self.locate(path)
        shown = path or "."
        try:
            st, isDirectory = _statFollowingLink(named, real)
            if isDirectory:
                fd = self._openDirectory(real, None)
        except OSError as e:
            raise _osError(e, shown) from None
        if not isDirectory:
            return {
                "path": self.relative(named),
                "total": float(st.st_blocks * 512),
                "files": 1,
                "dirs": 0,
                "entries": [],
                "unreadable": 0,
                "truncated": False,
            }
        walk = _DiskUsage(self, real)
        try:
            walk.measure(fd)
        except OSError as e:
            raise _osError(e, shown) from None
        entries, cut = self._duEntries(walk.children)
        return {
            "path": self.relative(named),
            "total": float(walk.total),
            "files": walk.files,
            "dirs": walk.dirs,
            "entries": entries,
            "unreadable": walk.unreadable,
            "truncated": walk.truncated or cut,
        }

    def _duEntries(self, children):
        """
        Build the C{entries} of a C{du} result from C{{name: [size,
        type]}}: largest first, at most C{maxEntries}, names counted
        against C{maxResult}.

        @return: C{(entries, cut)}.
        """
        ordered = sorted(children.items(), key=lambda item: (-item[1][0], item[0]))
        cut = len(ordered) > self.maxEntries
        entries = []
        budget = self.maxResult
        for name, (size, kind) in ordered[: self.maxEntries]:
            budget -= len(os.fsencode(name))
            if budget < 0:
                cut = True
                break
            entries.append({"name": name, "size": float(size), "type": kind})
        return entries, cut

    def df(self, path="."):
        """
        Describe the file system holding C{path}, as C{df} does.

        @return: C{{"path", "total", "used", "free", "percent",
            "inodes_total", "inodes_free"}}, all but C{path} floats: bytes
            in all, in use, and available to unprivileged users; C{percent}
            is C{used / (used + free) * 100}, as C{df} computes its C{Use%}
            (the blocks reserved for root count as neither); C{inodes_free}
            are the inodes available to unprivileged users.
        """
        real, named = self.locate(path)
        try:
            vfs = os.statvfs(real)
        except OSError as e:
            raise _osError(e, path or ".") from None
        unit = vfs.f_frsize or vfs.f_bsize
        total = vfs.f_blocks * unit
        used = (vfs.f_blocks - vfs.f_bfree) * unit
        free = vfs.f_bavail * unit
        percent = used * 100.0 / (used + free) if used + free else 0.0
        return {
            "path": self.relative(named),
            "total": float(total),
            "used": float(used),
            "free": float(free),
            "percent": float(percent),
            "inodes_total": float(vfs.f_files),
            "inodes_free": float(vfs.f_favail),
        }


_METHODS = {
    "ls": "ls",
    "stat": "stat",
    "cat": "cat",
    "head": "head",
    "tail": "tail",
    "follow": "followOnce",
    "du": "du",
    "df": "df",
}
"""For each op, the L{Workdir} method that runs it (a single look for
C{follow})."""


class _DiskUsage:
    """
    One C{du} walk: the running figures, and the bounds that stop it.

    The walk is iterative (a stack of directories to read, not recursion)
    and reads each directory through a descriptor opened without following
    links, checked to be the directory the walk saw (see
    L{Workdir._openDirectory}).  Memory is bounded by C{maxDuEntries}: the
    stack, the hard-link set and the children each hold at most one item
    per entry visited.

    @ivar total: bytes allocated so far.
    @ivar children: C{{name: [size, type]}} for each direct child.
    """

    def __init__(self, workdir, root):
        self._workdir = workdir
        self._root = root
        self._clock = workdir._monotonic
        self._deadline = self._clock() + workdir.duSeconds
        self._visited = 0
        # (dev, ino) of files with several links, counted once.
        self._seen = set()
        self.total = 0
        self.files = 0
        self.dirs = 0
        self.unreadable = 0
        self.truncated = False
        self.children = {}

    def _stop(self):
        """
        Tell whether a bound is reached, and note it.
        """
        if (
            self._visited >= self._workdir.maxDuEntries
            or self._clock() >= self._deadline
        ):
            self.truncated = True
        return self.truncated

    def measure(self, rootFd):
        """
        Walk the tree whose top directory is open as C{rootFd} (closed on
        return).

        @raise OSError: if the top directory cannot be read.
        """
        try:
            self.total += os.fstat(rootFd).st_blocks * 512
            # (path relative to the root, direct child it counts for,
            # identity); the root's own entries count for themselves.
            pending = self._scan(rootFd, "", None)
        finally:
            os.close(rootFd)
        while pending and not self._stop():
            relative, child, identity = pending.pop()
            try:
                fd = self._workdir._openDirectory(
                    os.path.join(self._root, relative), identity
                )
            except OSError as e:
                # Removed, or replaced by a file or a link, since seen: a
                # running job does that.  Anything else is unreadable.
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    self.unreadable += 1
                continue
            if fd is None:
                continue
            try:
                pending.extend(self._scan(fd, relative, child))
            except OSError:
                # Reading the directory failed part way: what was read
                # counts.
                self.unreadable += 1
            finally:
                os.close(fd)

    def _scan(self, fd, relative, child):
        """
        Count the entries of the directory open as C{fd}.

        @param relative: its path relative to the root (C{""} for the root).
        @param child: the direct child of the root it is under, or L{None}
            for the root itself.
        @return: its subdirectories, as items for the walk's stack.
        """
        subdirectories = []
        with os.scandir(fd) as scan:
            for dirEntry in scan:
                if self._stop():
                    break
                self._visited += 1
                try:
                    st = dirEntry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError:
                    # A directory we may list but not search, for example.
                    self.unreadable += 1
                    continue
                name = dirEntry.name
                if child is None:
                    self.children[name] = [0, _entryType(st.st_mode)]
                owner = name if child is None else child
                if stat.S_ISDIR(st.st_mode):
                    self.dirs += 1
                    subdirectories.append(
                        (
                            os.path.join(relative, name),
                            owner,
                            (st.st_dev, st.st_ino),
                        )
                    )
                else:
                    if st.st_nlink > 1:
                        identity = (st.st_dev, st.st_ino)
                        if identity in self._seen:
                            continue
                        self._seen.add(identity)
                    self.files += 1
                size = st.st_blocks * 512
                self.total += size
                self.children[owner][0] += size
        return subdirectories

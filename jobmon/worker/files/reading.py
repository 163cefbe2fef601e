"""
C{cat}, C{head}, C{tail} and C{follow}: reading regular files of the
working directory.

Files are opened with C{O_NONBLOCK} and anything that is not a regular
file is refused (L{jobmon.worker.files.confine.openRegular}), so that a FIFO
or a device never blocks a thread.  No read returns more than the cap on a
result, and C{head} and C{tail} read no more of the file than they need.

Everything here blocks on the file system: the daemon runs it in a thread.
"""

import os
from collections.abc import Callable
from contextlib import contextmanager

from attrs import frozen

from jobmon.errors import NO_SUCH_FILE, REMOTE_IO_ERROR, TOO_LARGE, JobMonError
from jobmon.worker.files.confine import (
    ConfinedDirectory,
    describe,
    openRegular,
    osError,
)

TAIL_BLOCK = 64 * 1024
"""How many bytes C{tail} reads at a time, walking back from the end."""

HEAD_BLOCK = 64 * 1024
"""How many bytes C{head} reads at a time, from the start."""

MAX_LINE_SCAN = 256 * 1024 * 1024
"""How far into a file C{tail -n +N} looks for the start of line N: the
bytes before it are read (and counted) but not returned."""


@contextmanager
def _regular(path, real):
    """
    Open the regular file C{real} (named C{path} by the caller) and give
    its descriptor and stat; an L{OSError} while it is read becomes the
    caller's error, and the descriptor is closed whatever happens.
    """
    fd, st = openRegular(path, real)
    try:
        yield fd, st
    except OSError as e:
        raise osError(e, path or ".") from None
    finally:
        os.close(fd)


def _identity(st):
    """
    Return the C{"dev:ino"} string naming the file that C{st} describes.
    """
    return "%d:%d" % (st.st_dev, st.st_ino)


@frozen
class Reader:
    """
    The reading operations in one working directory.

    @ivar directory: the L{ConfinedDirectory} every path is confined to.
    @ivar maxResult: the cap, in bytes, on the data of one result.
    @ivar pread: reads as C{os.pread} does.
    """

    directory: ConfinedDirectory
    maxResult: int
    pread: Callable

    def _readAt(self, fd, length, offset):
        """
        Read up to C{length} bytes at C{offset}, stopping early only at the
        end of the file.
        """
        chunks = []
        got = 0
        while got < length:
            chunk = self.pread(fd, length - got, offset + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def cat(self, path, offset, length):
        """
        Read bytes of a regular file.

        At most C{maxResult} bytes are read, whatever C{length} asks.  An
        offset at or past the end of the file gives empty data.

        @param length: how many bytes to read, or L{None} for "to the end".
        @return: C{{"path", "data", "offset", "size", "truncated"}};
            C{truncated} is true when the cap returned fewer bytes than
            C{length} asked or than the file has past C{offset}.
        """
        real, named = self.directory.locate(path)
        with _regular(path, real) as (fd, st):
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
        cappedRequest = length is None or length > self.maxResult
        truncated = cappedRequest and len(data) == self.maxResult and offset + len(data) < size
        return {
            "path": self.directory.relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(size),
            "truncated": truncated,
        }

    def head(self, path, lines, byteCount):
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
        real, named = self.directory.locate(path)
        with _regular(path, real) as (fd, st):
            data, truncated = self._head(fd, lines)
            # As cat: the size after the read, so len(data) <= size.
            size = os.fstat(fd).st_size
        return {
            "path": self.directory.relative(named),
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

    def tail(self, path, lines, byteCount):
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
        real, named = self.directory.locate(path)
        with _regular(path, real) as (fd, st):
            if byteCount is None:
                offset, data, truncated = self._tail(fd, st.st_size, lines, path)
            else:
                offset, data, truncated = self._tailBytes(fd, st.st_size, byteCount, path)
        return {
            "path": self.directory.relative(named),
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
            raise JobMonError(REMOTE_IO_ERROR, "%s shrank while being read" % (describe(path),))
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
                    REMOTE_IO_ERROR, "%s shrank while being read" % (describe(path),)
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

    def tailFrom(self, path, line):
        """
        Return a regular file from its line C{line} on (C{tail -n +N};
        lines count from 1, and 0 means 1 as in coreutils).

        The file is read from its start, one L{HEAD_BLOCK} at a time, to
        find where line C{line} starts, then at most C{maxResult} bytes from
        there.  A file with fewer lines gives empty data at its end.

        @return: as L{cat}, plus C{from_line} (the line asked for: a client
            checks it to tell this answer from an older daemon's, which
            ignores C{from_line} and returns the last lines).
        @raise JobMonError: C{TOO_LARGE} if line C{line} starts past the
            first L{MAX_LINE_SCAN} bytes.
        """
        real, named = self.directory.locate(path)
        with _regular(path, real) as (fd, st):
            offset = self._lineStart(fd, max(line, 1) - 1, path)
            size = os.fstat(fd).st_size
            data = self._readAt(fd, self.maxResult, offset) if offset < size else b""
            # As cat: the size after the read, so offset + len(data) <= size.
            size = os.fstat(fd).st_size
        return {
            "path": self.directory.relative(named),
            "data": data,
            "offset": float(offset),
            "size": float(size),
            "truncated": len(data) == self.maxResult and offset + len(data) < size,
            "from_line": float(line),
        }

    def _lineStart(self, fd, newlines, path):
        """
        Return the offset just past the C{newlines}-th newline of C{fd}, or
        its end if it has fewer.
        """
        position = 0
        while newlines:
            if position >= MAX_LINE_SCAN:
                raise JobMonError(
                    TOO_LARGE,
                    "the line asked for starts past the first %d MiB of %s: read on "
                    "with cat --offset" % (MAX_LINE_SCAN // (1024 * 1024), describe(path)),
                )
            block = self._readAt(fd, min(HEAD_BLOCK, MAX_LINE_SCAN - position), position)
            if not block:
                return position
            found = block.count(b"\n")
            if found < newlines:
                newlines -= found
                position += len(block)
                continue
            end = -1
            for _ in range(newlines):
                end = block.index(b"\n", end + 1)
            return position + end + 1
        return position

    def followOnce(self, path, offset, inode):
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
        real, named = self.directory.locate(path)
        try:
            fd, st = openRegular(path, real)
        except JobMonError as e:
            if e.code != NO_SUCH_FILE:
                raise
            return {
                "path": self.directory.relative(named),
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
            raise osError(e, path or ".") from None
        finally:
            os.close(fd)
        return {
            "path": self.directory.relative(named),
            "data": data,
            "offset": float(start),
            "next_offset": float(start + len(data)),
            "size": float(size),
            "inode": identity,
            "rotated": rotated,
            "missing": False,
            "truncated": len(data) == self.maxResult and start + len(data) < size,
        }

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
L{jobmon.errors.JobMonError} rather than returned.

L{Workdir} is what the daemon uses; each concern behind it is a module of
its own:
  - L{confine}: which paths a request may name, and opening what they name
    without being led out of the working directory;
  - L{requests}: checking the fields of a request, without I/O;
  - L{listing}: C{ls} and C{stat};
  - L{reading}: C{cat}, C{head}, C{tail} and C{follow};
  - L{usage}: C{du} and C{df}.

This package imports no Twisted: only the standard library and attrs.
"""

import math
import os
import time

from attrs import define, field

from jobmon.worker.files import requests
from jobmon.worker.files.confine import (
    MAX_PATH_LENGTH,
    ConfinedDirectory,
    openDirectory,
)
from jobmon.worker.files.listing import Listing
from jobmon.worker.files.reading import HEAD_BLOCK, MAX_LINE_SCAN, TAIL_BLOCK, Reader
from jobmon.worker.files.requests import (
    DEFAULT_FOLLOW_WAIT,
    DEFAULT_HEAD_LINES,
    DEFAULT_TAIL_LINES,
    MAX_FOLLOW_WAIT,
    MAX_LS_DEPTH,
    MAX_OFFSET,
    MAX_TAIL_LINES,
)
from jobmon.worker.files.usage import DiskUsage

__all__ = [
    "Workdir",
    "DEFAULT_MAX_RESULT",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_DU_ENTRIES",
    "DEFAULT_DU_SECONDS",
    # Where they have always been found, though the modules using them
    # define them now.
    "MAX_PATH_LENGTH",
    "DEFAULT_FOLLOW_WAIT",
    "DEFAULT_HEAD_LINES",
    "DEFAULT_TAIL_LINES",
    "MAX_FOLLOW_WAIT",
    "MAX_LS_DEPTH",
    "MAX_OFFSET",
    "MAX_TAIL_LINES",
    "HEAD_BLOCK",
    "MAX_LINE_SCAN",
    "TAIL_BLOCK",
]

DEFAULT_MAX_RESULT = 1024 * 1024
"""Default cap, in bytes, on the data of one result."""

DEFAULT_MAX_ENTRIES = 10000
"""Default cap on the number of entries of one C{ls} result."""

DEFAULT_MAX_DU_ENTRIES = 100000
"""Default cap on the entries one C{du} visits."""

DEFAULT_DU_SECONDS = 10.0
"""Default cap on the seconds one C{du} spends walking."""

_METHODS = {
    "ls": "ls",
    "stat": "stat",
    "cat": "cat",
    "head": "head",
    "tail": "tail",
    "tail_from": "tailFrom",
    "follow": "followOnce",
    "du": "du",
    "df": "df",
}
"""For each op L{requests.parse} knows, the L{Workdir} method that runs it
(a single look for C{follow})."""


def _positive(instance, attribute, value):
    """
    Validate that a limit is a positive int.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("%s must be a positive integer, not %r" % (attribute.name, value))


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
        raise ValueError("%s must be a positive number, not %r" % (attribute.name, value))


@define
class Workdir(ConfinedDirectory):
    """
    A job's working directory, and the operations a user may run in it.

    Every path a request gives is confined to the directory (see
    L{ConfinedDirectory}): a path that resolves outside it, through C{..}
    or a symbolic link, is refused with C{OUTSIDE_WORKDIR}.  Symbolic links
    that stay inside are followed.

    All methods block; the daemon calls them from a thread pool, except
    L{checkFollow}, which does no I/O.  L{run} checks a request's
    arguments; L{ls}, L{stat}, L{cat}, L{head}, L{tail}, L{followOnce},
    L{du} and L{df} trust theirs (except the path, which they always
    confine).

    C{follow} is split for the daemon: L{checkFollow} checks a request,
    L{followOnce} looks at the file once without waiting, and the daemon
    repeats it until there is news or the wait is over.  L{run} does a single
    L{followOnce}.

    Each operation is done by a helper of its concern (L{Listing},
    L{Reader}, L{DiskUsage}) made for the call from the limits as they are
    then.

    @ivar path: the working directory, as the daemon was told.
    @ivar maxResult: the cap, in bytes, on the data of one result; C{ls} and
        C{du} count the names and link targets they return against it.
    @ivar maxEntries: the cap on the entries of one C{ls} or C{du} result.
    @ivar maxDuEntries: the cap on the entries one C{du} visits.
    @ivar duSeconds: the cap on the seconds one C{du} spends walking.
    """

    maxResult: int = field(default=DEFAULT_MAX_RESULT, validator=_positive)
    maxEntries: int = field(default=DEFAULT_MAX_ENTRIES, validator=_positive)
    maxDuEntries: int = field(default=DEFAULT_MAX_DU_ENTRIES, validator=_positive, kw_only=True)
    duSeconds: float = field(default=DEFAULT_DU_SECONDS, validator=_positiveNumber, kw_only=True)
    # Tests pass a wrapper to count the bytes read.
    _pread = field(default=os.pread, repr=False, kw_only=True)
    # Tests pass a time function they move by hand, to hit the time bound of du.
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
        List a directory, or describe a single entry: see L{Listing.ls}.
        """
        return self._listing().ls(path, depth, includeHidden)

    def stat(self, path):
        """
        Describe one entry, without following a final symbolic link: see
        L{Listing.stat}.
        """
        return self._listing().stat(path)

    def cat(self, path, offset=0, length=None):
        """
        Read bytes of a regular file: see L{Reader.cat}.
        """
        return self._reader().cat(path, offset, length)

    def head(self, path, lines=DEFAULT_HEAD_LINES, byteCount=None):
        """
        Return the first lines, or bytes, of a regular file: see
        L{Reader.head}.
        """
        return self._reader().head(path, lines, byteCount)

    def tail(self, path, lines=DEFAULT_TAIL_LINES, byteCount=None):
        """
        Return the last lines, or bytes, of a regular file: see
        L{Reader.tail}.
        """
        return self._reader().tail(path, lines, byteCount)

    def tailFrom(self, path, line):
        """
        Return a regular file from line C{line} on (C{tail -n +N}): see
        L{Reader.tailFrom}.
        """
        return self._reader().tailFrom(path, line)

    def followOnce(self, path, offset=0, inode=None):
        """
        Look once, without waiting, for what a follower of C{path} has not
        seen yet: see L{Reader.followOnce}.
        """
        return self._reader().followOnce(path, offset, inode)

    def followTargets(self, path):
        """
        Where a change to the file a follower of C{path} reads shows: the
        directory of the file and its name there, and, when C{path} is a
        symbolic link, the directory of the link and its name (a link
        pointed elsewhere is a rotation too).  Blocking (it resolves
        C{path}).

        @return: a list of C{(directory, name)} pairs, as bytes.
        @raise JobMonError: C{path} leads outside the working directory.
        """
        real, named = self.locate(path)
        targets = []
        for entry in dict.fromkeys((real, named)):
            directory, name = os.path.split(entry)
            targets.append((os.fsencode(directory), os.fsencode(name)))
        return targets

    def du(self, path="."):
        """
        Measure the disk space used under a directory: see L{DiskUsage.du}.
        """
        return self._diskUsage().du(path)

    def df(self, path="."):
        """
        Describe the file system holding C{path}: see L{DiskUsage.df}.
        """
        return self._diskUsage().df(path)

    def _openDirectory(self, path, identity):
        """
        Open a directory met during a walk, as
        L{jobmon.worker.files.confine.openDirectory} does.

        Walks reach it through this method, so that a test can make the job
        change the tree at the moment a directory is opened.
        """
        return openDirectory(path, identity)

    # The helpers are made for each call, which costs little next to the
    # I/O: they see the limits as they are now, and walks open directories
    # through _openDirectory as it is now.

    def _listing(self):
        """
        The L{Listing} for one call.
        """
        return Listing(self, self.maxResult, self.maxEntries, self._openDirectory)

    def _reader(self):
        """
        The L{Reader} for one call.
        """
        return Reader(self, self.maxResult, self._pread)

    def _diskUsage(self):
        """
        The L{DiskUsage} for one call.
        """
        return DiskUsage(
            self,
            self.maxResult,
            self.maxEntries,
            self.maxDuEntries,
            self.duSeconds,
            self._monotonic,
            self._openDirectory,
        )

"""
C{du} and C{df}: the disk space used under a directory of the working
directory, and the file system holding it.

A C{du} walk is bounded in entries and in time (L{DiskUsage}), so that a
huge tree costs at most that much.

Everything here blocks on the file system: the daemon runs it in a thread.
"""

import errno
import os
import stat
from collections.abc import Callable

from attrs import frozen

from jobmon.worker.files.confine import ConfinedDirectory, osError, statFollowingLink
from jobmon.worker.files.listing import entryType


@frozen
class DiskUsage:
    """
    The C{du} and C{df} operations in one working directory.

    @ivar directory: the L{ConfinedDirectory} every path is confined to.
    @ivar maxResult: the cap, in bytes, on the names one C{du} returns.
    @ivar maxEntries: the cap on the entries of one C{du} result.
    @ivar maxDuEntries: the cap on the entries one C{du} visits.
    @ivar duSeconds: the cap on the seconds one C{du} spends walking.
    @ivar monotonic: the time function C{duSeconds} is measured with.
    @ivar openDirectory: opens a directory met during a walk, as
        L{jobmon.worker.files.confine.openDirectory} does.
    """

    directory: ConfinedDirectory
    maxResult: int
    maxEntries: int
    maxDuEntries: int
    duSeconds: float
    monotonic: Callable
    openDirectory: Callable

    def du(self, path):
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
        real, named = self.directory.locate(path)
        shown = path or "."
        try:
            st, isDirectory = statFollowingLink(named, real)
            if isDirectory:
                fd = self.openDirectory(real, None)
        except OSError as e:
            raise osError(e, shown) from None
        if not isDirectory:
            return {
                "path": self.directory.relative(named),
                "total": float(st.st_blocks * 512),
                "files": 1,
                "dirs": 0,
                "entries": [],
                "unreadable": 0,
                "truncated": False,
            }
        walk = _Walk(self, real)
        try:
            walk.measure(fd)
        except OSError as e:
            raise osError(e, shown) from None
        entries, cut = self._entries(walk.children)
        return {
            "path": self.directory.relative(named),
            "total": float(walk.total),
            "files": walk.files,
            "dirs": walk.dirs,
            "entries": entries,
            "unreadable": walk.unreadable,
            "truncated": walk.truncated or cut,
        }

    def _entries(self, children):
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

    def df(self, path):
        """
        Describe the file system holding C{path}, as C{df} does.

        @return: C{{"path", "total", "used", "free", "percent",
            "inodes_total", "inodes_free"}}, all but C{path} floats: bytes
            in all, in use, and available to unprivileged users; C{percent}
            is C{used / (used + free) * 100}, as C{df} computes its C{Use%}
            (the blocks reserved for root count as neither); C{inodes_free}
            are the inodes available to unprivileged users.
        """
        real, named = self.directory.locate(path)
        try:
            vfs = os.statvfs(real)
        except OSError as e:
            raise osError(e, path or ".") from None
        unit = vfs.f_frsize or vfs.f_bsize
        total = vfs.f_blocks * unit
        used = (vfs.f_blocks - vfs.f_bfree) * unit
        free = vfs.f_bavail * unit
        percent = used * 100.0 / (used + free) if used + free else 0.0
        return {
            "path": self.directory.relative(named),
            "total": float(total),
            "used": float(used),
            "free": float(free),
            "percent": float(percent),
            "inodes_total": float(vfs.f_files),
            "inodes_free": float(vfs.f_favail),
        }


class _Walk:
    """
    One C{du} walk: the running figures, and the bounds that stop it.

    The walk is iterative (a stack of directories to read, not recursion)
    and reads each directory through a descriptor opened without following
    links, checked to be the directory the walk saw (see
    L{jobmon.worker.files.confine.openDirectory}).  Memory is bounded by
    C{maxDuEntries}: the stack, the hard-link set and the children each
    hold at most one item per entry visited.

    @ivar total: bytes allocated so far.
    @ivar children: C{{name: [size, type]}} for each direct child.
    """

    def __init__(self, usage, root):
        self._openDirectory = usage.openDirectory
        self._maxEntries = usage.maxDuEntries
        self._root = root
        self._now = usage.monotonic
        self._deadline = self._now() + usage.duSeconds
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
        if self._visited >= self._maxEntries or self._now() >= self._deadline:
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
                fd = self._openDirectory(os.path.join(self._root, relative), identity)
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
                    self.children[name] = [0, entryType(st.st_mode)]
                owner = name if child is None else child
                if stat.S_ISDIR(st.st_mode):
                    self.dirs += 1
                    subdirectories.append(
                        (os.path.join(relative, name), owner, (st.st_dev, st.st_ino))
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

"""
C{ls} and C{stat}: describing the entries of the working directory.

Entries are described without following links (C{lstat}).  A listing walks
subdirectories down to a depth, and keeps its memory and its I/O bounded by
what it returns (see L{Listing._listTree}).

Everything here blocks on the file system: the daemon runs it in a thread.
"""

import heapq
import os
import stat
from collections.abc import Callable

from attrs import frozen

from jobmon.worker.files.confine import ConfinedDirectory, osError, statFollowingLink


def entryType(mode):
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
        "type": entryType(st.st_mode),
        "size": float(st.st_size),
        "mtime": float(st.st_mtime),
        "mode": stat.S_IMODE(st.st_mode),
    }
    if target is not None:
        entry["target"] = target
    return entry


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


@frozen
class Listing:
    """
    The C{ls} and C{stat} operations in one working directory.

    @ivar directory: the L{ConfinedDirectory} every path is confined to.
    @ivar maxResult: the cap, in bytes, on the names and link targets of
        one listing.
    @ivar maxEntries: the cap on the entries of one listing.
    @ivar openDirectory: opens a subdirectory met during a walk, as
        L{jobmon.worker.files.confine.openDirectory} does.
    """

    directory: ConfinedDirectory
    maxResult: int
    maxEntries: int
    openDirectory: Callable

    def ls(self, path, depth, includeHidden):
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
        real, named = self.directory.locate(path)
        try:
            st, isDirectory = statFollowingLink(named, real)
            if not isDirectory:
                return {
                    "path": self.directory.relative(named),
                    "entries": [self._describeEntry(named, st)],
                    "truncated": False,
                }
            entries, truncated = self._listTree(real, depth, includeHidden)
        except OSError as e:
            raise osError(e, path or ".") from None
        return {
            "path": self.directory.relative(named),
            "entries": entries,
            "truncated": truncated,
        }

    def stat(self, path):
        """
        Describe one entry, without following a final symbolic link.

        @return: an entry struct (see L{ls}) with C{path} added.
        """
        real, named = self.directory.locate(path)
        try:
            st = os.lstat(named)
            result = self._describeEntry(named, st)
        except OSError as e:
            raise osError(e, path or ".") from None
        result["path"] = self.directory.relative(named)
        return result

    def _describeEntry(self, named, st):
        """
        Build the entry struct for the single path C{named}, whose C{lstat}
        result is C{st}.
        """
        target = os.readlink(named) if stat.S_ISLNK(st.st_mode) else None
        # The working directory's own name is part of its absolute path,
        # which the user did not give: call it ".".
        name = "." if named == self.directory.root else os.path.basename(named)
        return _entry(name, st, target)

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
                    fd = self.openDirectory(os.path.join(directory, prefix), identity)
                except OSError:
                    continue
                if fd is None:
                    continue
            else:
                fd = self.openDirectory(directory, None)
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
                        subdirectories = [d for d in subdirectories if not beaten(d[0])]
        return subdirectories

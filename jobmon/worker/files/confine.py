"""
Confinement to the working directory: what path a request may name, where it
leads, and how files and directories are opened so that what is read is
what was confined.

A path that resolves outside the working directory, through C{..} or a
symbolic link, is refused with C{OUTSIDE_WORKDIR}; symbolic links that stay
inside are followed.  Between confining a path and reading it the job may
swap an entry for a link leading out: L{openRegular} and L{openDirectory}
never follow a last link, and a walk checks that each directory it opens is
the one it saw.

Error messages name paths as the user gave them, never the absolute path
of the working directory (L{osError}).

Everything here that takes a path blocks on the file system, except
L{checkPath}, L{describe} and L{osError}.
"""

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
    JobMonError,
)

MAX_PATH_LENGTH = 4096
"""The longest path a request may give, in characters (Linux's PATH_MAX)."""

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How directories are opened for a walk: never through a symbolic link."""

_REGULAR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How files are opened for reading: never through a last symbolic link, and
without waiting for a FIFO's writer."""


def isInside(root, path):
    """
    Tell whether the absolute, normalised C{path} is C{root} or below it.

    C{os.path.commonpath} compares whole components, so C{/w2} is not taken
    for a child of C{/w} as a string prefix test would.
    """
    return os.path.commonpath([root, path]) == root


def describe(path):
    """
    Quote a path given by the user for an error message.

    C{repr} escapes control characters and undecodable bytes, so the message
    stays one printable line whatever the path holds.
    """
    return repr(path)


def osError(error, shown):
    """
    Turn an C{OSError} into the L{JobMonError} a user should see.

    The message names the path as the user gave it (C{shown}), never the
    absolute path in C{error}: that would reveal where the working directory
    is, which the user did not ask for.
    """
    quoted = describe(shown)
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


def checkPath(path):
    """
    Check that C{path}, as a request gave it, can name a file at all.

    This does no I/O, so that a request can be checked before it is run.

    @raise JobMonError: C{BAD_REQUEST} if it is not a usable string.
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


def statFollowingLink(named, real):
    """
    C{lstat} a path as named, and tell whether it is a directory once a
    final symbolic link is followed (to C{real}, already confined).  A
    dangling or unreadable link is not a directory: it is shown as a link.

    @return: C{(lstatResult, isDirectory)}.
    @raise OSError: the path cannot be looked at.
    """
    st = os.lstat(named)
    isDirectory = stat.S_ISDIR(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        try:
            isDirectory = stat.S_ISDIR(os.stat(real).st_mode)
        except OSError:
            isDirectory = False
    return st, isDirectory


def openDirectory(path, identity):
    """
    Open a directory met during a walk, without following a link.

    The walk saw the directory as an entry of its parent; since then the
    job may have replaced it, or a directory above it, by a symbolic
    link leading out of the working directory.  C{O_NOFOLLOW} catches
    the first, and checking that the directory opened is the one seen
    (same device and inode) catches both.

    @param identity: C{(st_dev, st_ino)} of the directory as seen, or
        L{None} to skip that check (the walk's own, confined, start).
    @return: an open descriptor, or L{None} if the directory is not the
        one seen any more.
    @raise OSError: if it cannot be opened.
    """
    fd = os.open(path, _DIRECTORY_FLAGS)
    if identity is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if (st.st_dev, st.st_ino) != identity:
            os.close(fd)
            return None
    return fd


def openRegular(path, real):
    """
    Open C{real} for reading and check that it is a regular file.

    C{O_NONBLOCK} keeps the open of a FIFO from waiting for a writer;
    C{O_NOFOLLOW} refuses a last component that became a symbolic link
    since L{ConfinedDirectory.locate} resolved it.

    @param path: the path as the request gave it, for error messages.
    @param real: the confined path to open.
    @return: C{(fd, st)}, the open descriptor and its C{fstat}.
    @raise JobMonError: the file cannot be opened, or is not a regular file.
    """
    shown = path or "."
    try:
        fd = os.open(real, _REGULAR_FLAGS)
    except OSError as e:
        raise osError(e, shown) from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise osError(e, shown) from None
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise JobMonError(IS_A_DIRECTORY, "is a directory: %s" % (describe(shown),))
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise JobMonError(REMOTE_ERROR, "not a regular file: %s" % (describe(shown),))
    return fd, st


@define
class ConfinedDirectory:
    """
    A directory that the paths of requests are confined to.

    @ivar path: the directory, as given.
    """

    path: str = field(converter=os.fsdecode)
    # Resolved on first use: the constructor does no I/O.
    _root = field(default=None, init=False, repr=False)

    @property
    def root(self):
        """
        The directory's real path (symbolic links resolved).
        """
        if self._root is None:
            # Two threads may both compute it; they find the same value.
            self._root = os.path.realpath(os.path.abspath(self.path))
        return self._root

    def resolve(self, path):
        """
        Confine C{path} to the directory and return its real path.

        The path need not exist.  C{""} and C{"."} name the directory itself.

        @param path: a path relative to the directory, or an absolute path
            that resolves inside it.
        @return: the absolute path with every symbolic link and C{..}
            resolved, inside the directory.
        @raise JobMonError: C{BAD_REQUEST} if C{path} is not a usable string,
            C{OUTSIDE_WORKDIR} if it resolves outside the directory.
        """
        return self.locate(path)[0]

    def locate(self, path):
        """
        Confine C{path} as L{resolve} does, and also find the entry it names.

        C{ls} and C{stat} describe a symbolic link itself, as C{lstat} does,
        so they need the link's own location: its directory resolved, its
        last component kept.  That location must be inside the directory
        too, or C{stat} would describe a link that lives outside.

        @return: C{(real, named)}: the fully resolved path, and the path with
            all but the last component resolved.
        @raise JobMonError: as L{resolve}.
        """
        checkPath(path)
        root = self.root
        # join() drops root when path is absolute, as wanted.
        joined = os.path.join(root, path)
        real = os.path.realpath(joined)
        outside = JobMonError(
            OUTSIDE_WORKDIR,
            "%s is outside the job's working directory" % (describe(path or "."),),
        )
        if not isInside(root, real):
            raise outside
        parent, last = os.path.split(joined)
        if last in ("", ".", ".."):
            # Nothing left unresolved: "sub/", "a/.." name what they reach.
            return real, real
        named = os.path.join(os.path.realpath(parent), last)
        if not isInside(root, named):
            raise outside
        return real, named

    def relative(self, path):
        """
        Return C{path}, inside the directory, relative to it with C{/}
        separators (C{"."} for the directory itself).
        """
        relative = os.path.relpath(path, self.root)
        return relative.replace(os.sep, "/")

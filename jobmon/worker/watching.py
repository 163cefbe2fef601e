"""
Being told when a followed file may have changed, so that C{follow} looks at
it again at once instead of every L{jobmon.worker.operations.FOLLOW_CHECK_INTERVAL}.

On Linux one inotify instance per daemon (made at the first C{follow}) is read
by the reactor; a waiting C{follow} watches the directory of its file (and,
when the file is reached through a symbolic link, the directory of the link
too) and is woken by any event naming the file: a write, a truncation, a
rename, a removal, a creation.  Watches are added with the follows and removed
with them, shared by the follows of one directory, and bounded in number
(L{MAX_WATCHES}).  A directory is watched rather than the file so that a
rotation (the file renamed, a new one made), a deletion or a file that does not
exist yet wakes the follow as a write does.

Where a watch cannot be had the follow polls as before: no inotify (not Linux,
or C{inotify_init1} failing: too many instances), no watch left (the user's
C{max_user_watches}, or L{MAX_WATCHES}), a directory on a network file system
(whose other clients' writes inotify does not see; coreutils' C{tail -F} makes
the same choice), or a watched directory removed or renamed during the wait.
An event queue that overflowed wakes every follow.

Adding a watch resolves a path, which may hang on a network file system: it is
done in a thread, as the reads are.  Events are only read on the reactor
thread, and a follow woken several times before it looks again looks once.
"""

import ctypes
import ctypes.util
import errno
import os
import struct

from twisted.internet import defer
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from jobmon.deferreds import threadRunner

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)
"""What a followed file's directory is watched for: anything that may change
what the next look at the file finds."""

SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
"""Events of a watched directory itself: the path may now name another
directory, or none; the follows watching it poll for the rest of their wait."""

MAX_WATCHES = 32
"""The most directories one daemon watches at once; further follows poll.
(A daemon runs a few requests at once, each follow watching one or two
directories, so this is a guard rather than a limit met in use.)"""

_EVENT = struct.Struct("=iIII")

REMOTE_FILE_SYSTEMS = frozenset({
    0x6969,  # NFS
    0x517B,  # SMB
    0xFF534D42,  # CIFS
    0xFE534D42,  # SMB2
    0x73757245,  # CODA
    0x5346414F,  # AFS
    0x6B414653,  # kAFS
    0x01021997,  # 9P (v9fs)
    0x00C36400,  # Ceph
    0x0BD00BD0,  # Lustre
    0x47504653,  # GPFS
    0x65735546,  # FUSE (sshfs, gcsfuse, ...)
    0x01161970,  # GFS2
    0x7461636F,  # OCFS2
    0xAAD7AAEA,  # PanFS
    0x564C,  # NCP
    0x013111A8,  # IBRIX
    0x19830326,  # FhGFS / BeeGFS
    0xBACBACBC,  # VMware VMFS
})
"""C{statfs} magic numbers of file systems whose files may be written by other
machines, unseen by inotify: follows of files there poll."""


class INotifyCalls:
    """
    The system calls of inotify (through C{ctypes}, with C{errno}) and
    C{statfs}; tests pass a fake.

    @ivar available: whether this system has inotify.
    """

    def __init__(self):
        self._libc = None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            return
        self._libc = libc

    @property
    def available(self):
        return self._libc is not None

    def _check(self, value):
        if value < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return value

    def init(self):
        """
        A new non-blocking inotify descriptor.

        @raise OSError: none can be made (C{EMFILE}: too many instances).
        """
        return self._check(self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))

    def add(self, fd, path, mask):
        """
        Watch directory C{path} (bytes); return the watch descriptor (the
        same for the same directory).

        @raise OSError: C{ENOSPC} when the user has no watch left.
        """
        return self._check(self._libc.inotify_add_watch(fd, path, mask))

    def remove(self, fd, wd):
        """
        Stop a watch; a watch the kernel already ended is ignored.
        """
        self._libc.inotify_rm_watch(fd, wd)

    def read(self, fd):
        """
        The events waiting, as bytes; C{b""} if none.
        """
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return b""

    def close(self, fd):
        """
        Close the descriptor: its watches end.
        """
        os.close(fd)

    def isRemote(self, path):
        """
        Whether directory C{path} (bytes) is on a file system written to by
        other machines (L{REMOTE_FILE_SYSTEMS}).

        @raise OSError: C{statfs} failed.
        """
        # struct statfs starts with f_type, a word (long) on the platforms
        # inotify runs on; the buffer is larger than any struct statfs.
        buffer = ctypes.create_string_buffer(256)
        self._check(self._libc.statfs(path, buffer))
        return (ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF) in REMOTE_FILE_SYSTEMS


def parseEvents(data):
    """
    Split what was read from an inotify descriptor into events.

    @return: a list of C{(wd, mask, name)}, C{name} the bytes of the entry
        of a watched directory the event is about, or L{None}.
    """
    events = []
    position = 0
    while position + _EVENT.size <= len(data):
        wd, mask, _cookie, size = _EVENT.unpack_from(data, position)
        position += _EVENT.size
        name = data[position:position + size].rstrip(b"\0") or None
        position += size
        events.append((wd, mask, name))
    return events


class Subscription:
    """
    What one C{follow} watches: the directories of its file (as watch
    descriptors) and the file's name in each.

    @ivar changed: whether an event came since the last L{clear}: the next
        L{notify} fires at once.
    @ivar broken: a watched directory was removed, renamed or unmounted:
        events may no longer come, and the follow polls.
    """

    def __init__(self, watcher, targets):
        self._watcher = watcher
        self.targets = targets
        self.changed = False
        self.broken = False
        self._notify = None

    def clear(self):
        """
        Forget the events so far: the caller is about to look at the file.
        """
        self.changed = False

    def notify(self, callback):
        """
        Call C{callback()} once, at the next event (at once if one came since
        L{clear}); L{None} to stop.
        """
        self._notify = callback
        if callback is not None and self.changed:
            self._fire()

    def _event(self, broken=False):
        self.changed = True
        self.broken = self.broken or broken
        if self._notify is not None:
            self._fire()

    def _fire(self):
        callback, self._notify = self._notify, None
        self.changed = False
        callback()

    def close(self):
        """
        The follow is over: release its watches.
        """
        self._notify = None
        self._watcher._release(self)


class PollingWatcher:
    """
    No watching: every follow polls.
    """

    def watch(self, locate):
        """
        @return: a L{Deferred} firing with L{None}: poll.
        """
        return defer.succeed(None)

    def close(self):
        """
        Nothing to release.
        """


@implementer(IReadDescriptor)
class INotifyWatcher:
    """
    One inotify instance, read by the reactor, shared by the daemon's
    follows.

    @ivar maxWatches: the most directories watched at once.
    """

    log = Logger()

    def __init__(self, reactor, runInThread=None, calls=None, maxWatches=MAX_WATCHES):
        self.reactor = reactor
        self._runInThread = runInThread or threadRunner(reactor)
        self._calls = calls if calls is not None else INotifyCalls()
        self.maxWatches = maxWatches
        self._fd = None
        self._failed = False
        self._closed = False
        self._adding = 0
        self._subscribers = {}
        """Watch descriptor: the set of L{Subscription}s using it."""
        self._warned = set()

    # -- IReadDescriptor ------------------------------------------------------

    def fileno(self):
        """
        The inotify descriptor (-1 once closed).
        """
        return -1 if self._fd is None else self._fd

    def logPrefix(self):
        """
        For the reactor's log lines.
        """
        return "inotify"

    def doRead(self):
        """
        Read the waiting events and wake the follows they concern.
        """
        while self._fd is not None:
            data = self._calls.read(self._fd)
            if not data:
                return None
            for wd, mask, name in parseEvents(data):
                self._dispatch(wd, mask, name)
        return None

    def connectionLost(self, reason):
        """
        The reactor dropped the descriptor (a read failed, or it is
        shutting down): the follows watching poll, and so do later ones.
        """
        if self._fd is None:
            return
        if not self._closed:
            self.log.warn("inotify stopped ({why}); followed files are polled",
                          why=reason.getErrorMessage())
        self._failed = True
        self._closeNow()

    # -- watching -------------------------------------------------------------

    def _open(self):
        """
        Make the inotify instance on first use.

        @return: whether there is one.
        """
        if self._fd is not None:
            return True
        if self._closed or self._failed or not self._calls.available:
            return False
        try:
            self._fd = self._calls.init()
        except OSError as e:
            # Too many instances (max_user_instances): poll from now on.
            self._failed = True
            self.log.warn("cannot use inotify ({why}); followed files are polled",
                          why=e.strerror or str(e))
            return False
        self.reactor.addReader(self)
        return True

    def watch(self, locate):
        """
        Watch a file for one C{follow}.

        @param locate: a blocking callable, run in a thread, returning the
            C{(directory, name)} pairs to watch, as bytes: the directory of
            the file and its name there, and the same for the symbolic link
            that leads to it, if any.
        @return: a L{Deferred} firing with a L{Subscription}, or with
            L{None} when the file cannot be watched (the follow polls).
        """
        if not self._open():
            return defer.succeed(None)
        if len(self._subscribers) >= self.maxWatches:
            self._warnOnce("limit", "{limit} directories watched: further follows poll",
                           limit=self.maxWatches)
            return defer.succeed(None)
        self._adding += 1
        # Cancelling the follow must not lose the thread's watches: they are
        # registered whatever happens, then released if nobody wants them.
        outer = defer.Deferred(lambda d: None)

        def deliver(subscription):
            if outer.called:
                if subscription is not None:
                    subscription.close()
            else:
                outer.callback(subscription)

        self._runInThread(self._add, self._fd, locate).addBoth(self._added).addCallback(deliver)
        return outer

    def _add(self, fd, locate):
        """
        In a thread: add the watches; return C{(added, why)}, the
        C{(wd, name)} pairs added and, if one could not be, why not.
        """
        added = []
        try:
            for directory, name in locate():
                if self._calls.isRemote(directory):
                    return added, "remote"
                added.append((self._calls.add(fd, directory, WATCH_MASK), name))
        except OSError as e:
            return added, "nospace" if e.errno == errno.ENOSPC else "error"
        except Exception:
            # A path the follow's own look will report (outside the
            # working directory, ...): polling is right until then.
            return added, "error"
        return added, None

    def _added(self, outcome):
        self._adding -= 1
        if not isinstance(outcome, tuple):
            self.log.failure("cannot watch a followed file", outcome)
            self._releaseIdle()
            return None
        added, why = outcome
        targets = {}
        for wd, name in added:
            targets.setdefault(wd, set()).add(name)
        subscription = Subscription(self, targets)
        for wd in targets:
            self._subscribers.setdefault(wd, set()).add(subscription)
        if why is None and not self._closed:
            return subscription
        if why == "nospace":
            self._warnOnce("nospace", "no inotify watch left (fs.inotify.max_user_watches): "
                           "followed files are polled")
        subscription.close()
        return None

    def _warnOnce(self, key, message, **fields):
        if key not in self._warned:
            self._warned.add(key)
            self.log.warn(message, **fields)

    def _dispatch(self, wd, mask, name):
        if mask & IN_Q_OVERFLOW:
            # Events were lost: every follow looks again.
            for subscriptions in list(self._subscribers.values()):
                for subscription in list(subscriptions):
                    subscription._event()
            return
        subscriptions = self._subscribers.get(wd)
        if not subscriptions:
            return
        if mask & SELF_EVENTS:
            if mask & IN_IGNORED:
                # The kernel ended the watch: nothing to remove any more.
                del self._subscribers[wd]
            for subscription in list(subscriptions):
                subscription._event(broken=True)
            return
        for subscription in list(subscriptions):
            if name in subscription.targets.get(wd, ()):
                subscription._event()

    def _release(self, subscription):
        for wd in subscription.targets:
            subscriptions = self._subscribers.get(wd)
            if subscriptions is not None:
                subscriptions.discard(subscription)
        subscription.targets = {}
        self._releaseIdle()

    def _releaseIdle(self):
        """
        Remove the watches no follow uses.  Not while a thread adds: it may
        be adding one of them again, and would get the descriptor removed
        here.
        """
        if self._adding:
            return
        for wd in [wd for wd, subscriptions in self._subscribers.items() if not subscriptions]:
            del self._subscribers[wd]
            if self._fd is not None:
                self._calls.remove(self._fd, wd)
        if self._closed and self._fd is not None:
            self._closeNow()

    def watching(self):
        """
        The watch descriptors in use (for tests and logs).
        """
        return set(self._subscribers)

    def close(self):
        """
        Close the inotify instance (the daemon stops); a watch being added
        in a thread is waited for.
        """
        self._closed = True
        if self._fd is not None and not self._adding:
            self._closeNow()

    def _closeNow(self):
        self.reactor.removeReader(self)
        fd, self._fd = self._fd, None
        left = {s for subscriptions in self._subscribers.values() for s in subscriptions}
        self._subscribers.clear()
        self._calls.close(fd)
        for subscription in left:
            subscription._event(broken=True)


def makeWatcher(reactor, runInThread=None):
    """
    The daemon's watcher: L{INotifyWatcher} where inotify exists, else
    L{PollingWatcher}.
    """
    calls = INotifyCalls()
    if not calls.available:
        return PollingWatcher()
    return INotifyWatcher(reactor, runInThread, calls)

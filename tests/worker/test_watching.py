"""
Tests for L{jobmon.worker.watching}, and for C{follow} woken by it: the
watcher on fake system calls, then on real inotify with real files (a write
is queued by the kernel before the writing call returns, so the tests read
the events at once, without sleeping), the clock always a L{Clock}.
"""

import errno
import os
import struct

from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jobmon.worker.files import Workdir
from jobmon.worker.operations import FOLLOW_CHECK_INTERVAL, FOLLOW_MIN_GAP, Operations
from jobmon.worker.watching import (
    IN_CREATE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    WATCH_MASK,
    INotifyCalls,
    INotifyWatcher,
    PollingWatcher,
    makeWatcher,
    parseEvents,
)


def syncCall(f, *args):
    """
    Run a "thread" call at once.
    """
    return defer.maybeDeferred(f, *args)


def event(wd, mask, name=None):
    """
    One inotify event as the kernel writes it (the name padded with NULs).
    """
    raw = b"" if name is None else name + b"\0" * (16 - len(name) % 16)
    return struct.pack("=iIII", wd, mask, 0, len(raw)) + raw


class FakeCalls:
    """
    inotify system calls in memory: a directory gets the same watch
    descriptor each time, as with the kernel.
    """

    available = True

    def __init__(self):
        self.fd = None
        self.wds = {}
        self.added = []
        self.removed = []
        self.closed = []
        self.queued = b""
        self.remote = set()
        self.initError = None
        self.addError = None

    def init(self):
        if self.initError is not None:
            raise OSError(self.initError, os.strerror(self.initError))
        self.fd = 7
        return self.fd

    def add(self, fd, path, mask):
        if self.addError is not None:
            raise OSError(self.addError, os.strerror(self.addError))
        self.added.append((fd, path, mask))
        return self.wds.setdefault(path, len(self.wds) + 1)

    def remove(self, fd, wd):
        self.removed.append(wd)

    def read(self, fd):
        data, self.queued = self.queued, b""
        return data

    def close(self, fd):
        self.closed.append(fd)

    def isRemote(self, path):
        return path in self.remote


def targets(*pairs):
    """
    A C{locate} callable returning C{pairs}.
    """
    return lambda: list(pairs)


class ParseTests(SynchronousTestCase):
    """
    L{parseEvents}.
    """

    def test_events(self):
        """
        Events with and without a name, one after the other, are split;
        the name loses its padding.
        """
        data = event(1, IN_MODIFY, b"job.log") + event(-1, IN_Q_OVERFLOW) + event(2, IN_CREATE,
                                                                                  b"x" * 16)
        self.assertEqual(parseEvents(data), [(1, IN_MODIFY, b"job.log"),
                                             (-1, IN_Q_OVERFLOW, None),
                                             (2, IN_CREATE, b"x" * 16)])

    def test_incomplete(self):
        """
        A cut header is left out (the kernel never cuts one; a short read
        must not raise).
        """
        self.assertEqual(parseEvents(event(1, IN_MODIFY)[:10]), [])


class WatcherTests(SynchronousTestCase):
    """
    L{INotifyWatcher} on L{FakeCalls}.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.calls = FakeCalls()
        self.watcher = INotifyWatcher(self.reactor, syncCall, self.calls, maxWatches=2)
        self.woken = []

    def watch(self, *pairs):
        return self.successResultOf(self.watcher.watch(targets(*pairs)))

    def deliver(self, *events):
        self.calls.queued += b"".join(events)
        self.watcher.doRead()

    def heldThreads(self):
        """
        Make the watcher's thread calls wait: each is a C{(deferred,
        function, args)} in the returned list, for the test to run.
        """
        pending = []

        def inThread(f, *args):
            d = defer.Deferred()
            pending.append((d, f, args))
            return d

        self.watcher._runInThread = inThread
        return pending

    def test_lazyInstance(self):
        """
        The inotify instance is made at the first watch and read by the
        reactor; the directory is watched with L{WATCH_MASK}.
        """
        self.assertEqual(self.reactor.getReaders(), [])
        subscription = self.watch((b"/w", b"job.log"))
        self.assertEqual(self.reactor.getReaders(), [self.watcher])
        self.assertEqual(self.watcher.fileno(), 7)
        self.assertEqual(self.calls.added, [(7, b"/w", WATCH_MASK)])
        self.assertEqual(subscription.targets, {1: {b"job.log"}})

    def test_eventForTheFile(self):
        """
        An event naming the file calls the follow back once; events of
        other files of the directory do not.
        """
        subscription = self.watch((b"/w", b"job.log"))
        subscription.notify(lambda: self.woken.append(1))
        self.deliver(event(1, IN_MODIFY, b"other.txt"))
        self.assertEqual(self.woken, [])
        self.deliver(event(1, IN_MODIFY, b"job.log"))
        self.assertEqual(self.woken, [1])
        # Called back once: later events wait for the next notify.
        self.deliver(event(1, IN_MODIFY, b"job.log"))
        self.assertEqual(self.woken, [1])
        self.assertTrue(subscription.changed)

    def test_coalesced(self):
        """
        Events that came while the follow was looking make one call back at
        its next L{notify}; L{clear} forgets them.
        """
        subscription = self.watch((b"/w", b"job.log"))
        self.deliver(event(1, IN_MODIFY, b"job.log"), event(1, IN_MODIFY, b"job.log"))
        subscription.notify(lambda: self.woken.append(1))
        self.assertEqual(self.woken, [1])
        self.deliver(event(1, IN_MODIFY, b"job.log"))
        subscription.clear()
        subscription.notify(lambda: self.woken.append(2))
        self.assertEqual(self.woken, [1])

    def test_shared(self):
        """
        Two follows of one directory share its watch, removed when the last
        one ends; both are woken.
        """
        a = self.watch((b"/w", b"job.log"))
        b = self.watch((b"/w", b"job.log"))
        a.notify(lambda: self.woken.append("a"))
        b.notify(lambda: self.woken.append("b"))
        self.deliver(event(1, IN_MODIFY, b"job.log"))
        self.assertEqual(sorted(self.woken), ["a", "b"])
        a.close()
        self.assertEqual(self.calls.removed, [])
        b.close()
        self.assertEqual(self.calls.removed, [1])
        self.assertEqual(self.watcher.watching(), set())

    def test_link(self):
        """
        A file reached through a link in another directory: both
        directories are watched, each for its own name.
        """
        subscription = self.watch((b"/w/logs", b"run3.log"), (b"/w", b"job.log"))
        subscription.notify(lambda: self.woken.append(1))
        self.deliver(event(1, IN_MODIFY, b"job.log"))
        self.assertEqual(self.woken, [])
        self.deliver(event(2, IN_CREATE, b"job.log"))
        self.assertEqual(self.woken, [1])
        subscription.close()
        self.assertEqual(sorted(self.calls.removed), [1, 2])

    def test_limit(self):
        """
        Past C{maxWatches} directories a follow gets no watch (it polls),
        and the log says so once.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.watch((b"/a", b"x"))
        self.watch((b"/b", b"x"))
        self.assertIsNone(self.watch((b"/c", b"x")))
        self.assertIsNone(self.watch((b"/d", b"x")))
        self.assertEqual(len(logged), 1)
        self.assertEqual(len(self.calls.added), 2)

    def test_outOfWatches(self):
        """
        With no inotify watch left (C{ENOSPC}) the follow polls; what was
        added for it is removed, and the log says why once.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.calls.addError = errno.ENOSPC
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.assertEqual(len(logged), 1)
        self.assertIn("max_user_watches", logged[0]["log_format"])
        self.assertEqual(self.watcher.watching(), set())

    def test_partlyAdded(self):
        """
        A second directory that cannot be watched releases the first.
        """
        calls = self.calls
        real = calls.add

        def add(fd, path, mask):
            if path == b"/w":
                raise OSError(errno.EACCES, "denied")
            return real(fd, path, mask)

        calls.add = add
        self.assertIsNone(self.watch((b"/w/logs", b"run3.log"), (b"/w", b"job.log")))
        self.assertEqual(calls.removed, [1])
        self.assertEqual(self.watcher.watching(), set())

    def test_locateFails(self):
        """
        A path that cannot be located (the follow's own look reports it)
        gives no watch.
        """
        def locate():
            raise ValueError("outside")

        self.assertIsNone(self.successResultOf(self.watcher.watch(locate)))

    def test_remote(self):
        """
        A directory on a network file system is not watched: the follow
        polls.
        """
        self.calls.remote.add(b"/nfs")
        self.assertIsNone(self.watch((b"/nfs", b"job.log")))
        self.assertEqual(self.calls.added, [])

    def test_noInstance(self):
        """
        When no inotify instance can be made (C{EMFILE}), follows poll and
        it is not tried again.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.calls.initError = errno.EMFILE
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.calls.initError = None
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.assertEqual(self.reactor.getReaders(), [])
        self.assertEqual(len(logged), 1)

    def test_unavailable(self):
        """
        Without inotify at all, every follow polls.
        """
        self.calls.available = False
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.assertIsNone(self.successResultOf(PollingWatcher().watch(targets())))

    def test_directoryGone(self):
        """
        The watched directory removed: its follows are woken and told to
        poll (C{broken}); the kernel's end of the watch forgets it.
        """
        subscription = self.watch((b"/w", b"job.log"))
        subscription.notify(lambda: self.woken.append(1))
        self.deliver(event(1, IN_DELETE_SELF))
        self.assertEqual(self.woken, [1])
        self.assertTrue(subscription.broken)
        self.deliver(event(1, IN_IGNORED))
        self.assertEqual(self.watcher.watching(), set())
        subscription.close()
        self.assertEqual(self.calls.removed, [])

    def test_overflow(self):
        """
        Lost events (the queue overflowed) wake every follow.
        """
        a = self.watch((b"/a", b"x"))
        b = self.watch((b"/b", b"y"))
        a.notify(lambda: self.woken.append("a"))
        b.notify(lambda: self.woken.append("b"))
        self.deliver(event(-1, IN_Q_OVERFLOW))
        self.assertEqual(sorted(self.woken), ["a", "b"])
        self.assertFalse(a.broken)

    def test_close(self):
        """
        Closing the watcher stops reading, closes the descriptor and tells
        the follows still watching to poll; later follows poll.
        """
        subscription = self.watch((b"/w", b"job.log"))
        self.watcher.close()
        self.assertEqual(self.reactor.getReaders(), [])
        self.assertEqual(self.calls.closed, [7])
        self.assertTrue(subscription.broken)
        self.assertEqual(self.watcher.fileno(), -1)
        subscription.close()
        self.assertIsNone(self.watch((b"/w", b"job.log")))

    def test_readFails(self):
        """
        A read that fails makes the reactor drop the watcher: its follows
        are told to poll, later ones poll, and the log says so.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        subscription = self.watch((b"/w", b"job.log"))

        def read(fd):
            raise OSError(errno.EIO, "I/O error")

        self.calls.read = read
        e = self.assertRaises(OSError, self.watcher.doRead)
        self.watcher.connectionLost(Failure(e))
        self.assertTrue(subscription.broken)
        self.assertEqual(self.calls.closed, [7])
        self.assertEqual(self.reactor.getReaders(), [])
        self.assertIsNone(self.watch((b"/w", b"job.log")))
        self.assertEqual(len(logged), 1)

    def test_closeWhileAdding(self):
        """
        A close while a thread adds a watch waits for it, then closes; the
        follow polls.
        """
        pending = self.heldThreads()
        d = self.watcher.watch(targets((b"/w", b"job.log")))
        self.watcher.close()
        self.assertEqual(self.calls.closed, [])
        thread, f, args = pending.pop()
        thread.callback(f(*args))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.calls.closed, [7])

    def test_cancelWhileAdding(self):
        """
        A follow cut short while its watch is being added: the watch is
        released when the thread is done, and a watch released meanwhile
        by another follow is not removed under the thread.
        """
        other = self.watch((b"/w", b"job.log"))
        pending = self.heldThreads()
        d = self.watcher.watch(targets((b"/w", b"job.log")))
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        other.close()
        self.assertEqual(self.calls.removed, [])
        thread, f, args = pending.pop()
        thread.callback(f(*args))
        self.assertEqual(self.calls.removed, [1])
        self.assertEqual(self.watcher.watching(), set())


class FollowFakeTests(SynchronousTestCase):
    """
    C{follow} with a watcher on L{FakeCalls} and a fake workdir.
    """

    def setUp(self):
        from tests.worker.test_operations import FakeWorkdir

        self.clock = MemoryReactorClock()
        self.calls = FakeCalls()
        self.watcher = INotifyWatcher(self.clock, syncCall, self.calls)
        self.workdir = FakeWorkdir()
        self.workdir.followTargets = lambda path: [(b"/work", path.encode())]
        self.ops = Operations(self.clock, self.workdir, None, None, runInThread=syncCall,
                              runCommand=object(), watcher=self.watcher)

    def follow(self, wait=10):
        return defer.Deferred.fromCoroutine(
            self.ops.run({"op": "follow", "path": "log", "offset": 0, "wait": wait}))

    def test_wokenByEvent(self):
        """
        A waiting follow does not poll (its only timer is its wait) and
        answers when the watcher tells of a change.
        """
        d = self.follow()
        self.assertNoResult(d)
        # Looked before and after the watch was set, then waits.
        self.assertEqual(self.workdir.calls, [("follow", 0), ("follow", 0)])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [10])
        self.clock.advance(5)
        self.assertEqual(len(self.workdir.calls), 2)
        self.workdir.data = b"line\n"
        self.calls.queued = event(1, IN_MODIFY, b"log")
        self.watcher.doRead()
        self.assertEqual(self.successResultOf(d)["data"], b"line\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.calls.removed, [1])

    def test_otherFileIgnored(self):
        """
        An event of another file does not make the follow look.
        """
        d = self.follow()
        self.calls.queued = event(1, IN_MODIFY, b"other")
        self.watcher.doRead()
        self.assertEqual(len(self.workdir.calls), 2)
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(d)["data"], b"")

    def test_timesOut(self):
        """
        With no event, the follow answers empty after its wait, having
        looked twice, and releases its watch.
        """
        d = self.follow(wait=2)
        self.clock.advance(1.99)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d)["data"], b"")
        self.assertEqual(len(self.workdir.calls), 2)
        self.assertEqual(self.calls.removed, [1])

    def test_outOfWatchesPolls(self):
        """
        With no watch to be had, the follow polls every
        L{FOLLOW_CHECK_INTERVAL}, as it did before inotify.
        """
        self.calls.addError = errno.ENOSPC
        d = self.follow()
        self.assertEqual(len(self.workdir.calls), 1)
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(len(self.workdir.calls), 2)
        self.workdir.data = b"x"
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(self.successResultOf(d)["data"], b"x")

    def test_brokenPolls(self):
        """
        The watched directory gone during the wait: the follow looks at
        once, then polls for the rest of its wait.
        """
        d = self.follow()
        self.calls.queued = event(1, IN_DELETE_SELF)
        self.watcher.doRead()
        self.assertEqual(len(self.workdir.calls), 3)
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(len(self.workdir.calls), 4)
        self.workdir.data = b"x"
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(self.successResultOf(d)["data"], b"x")

    def test_endWakes(self):
        """
        The job's end wakes a follow waiting for an event: it answers at
        once, saying C{ended}.
        """
        d = self.follow()
        self.ops.end()
        self.assertTrue(self.successResultOf(d)["ended"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_chattyFileBatched(self):
        """
        A follower asking again right after an answer with news is answered
        after L{FOLLOW_MIN_GAP}, with all written meanwhile; another
        follower (from another offset), and the same one after a quiet
        spell, are answered at once.
        """
        self.workdir.data = b"1\n"
        self.assertEqual(self.successResultOf(self.follow())["data"], b"1\n")
        self.workdir.data += b"2\n"
        d = defer.Deferred.fromCoroutine(
            self.ops.run({"op": "follow", "path": "log", "offset": 2, "wait": 10}))
        self.assertEqual(len(self.workdir.calls), 1)
        self.workdir.data += b"3\n"
        self.clock.advance(FOLLOW_MIN_GAP / 2)
        self.assertNoResult(d)
        self.clock.advance(FOLLOW_MIN_GAP / 2)
        self.assertEqual(self.successResultOf(d)["data"], b"2\n3\n")
        # Another follower, from the start: at once.
        self.assertEqual(self.successResultOf(self.follow())["data"], b"1\n2\n3\n")
        self.clock.advance(FOLLOW_MIN_GAP)
        self.workdir.data += b"4\n"
        d = defer.Deferred.fromCoroutine(
            self.ops.run({"op": "follow", "path": "log", "offset": 6, "wait": 10}))
        self.assertEqual(self.successResultOf(d)["data"], b"4\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_gapEndsAtJobEnd(self):
        """
        The job's end cuts the gap short: the follower gets the last bytes
        at once.
        """
        self.workdir.data = b"1\n"
        self.successResultOf(self.follow())
        self.workdir.data += b"2\n"
        d = defer.Deferred.fromCoroutine(
            self.ops.run({"op": "follow", "path": "log", "offset": 2, "wait": 10}))
        self.assertNoResult(d)
        self.ops.end()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["ended"]), (b"2\n", True))

    def test_closeReleases(self):
        """
        L{Operations.close} closes the watcher.
        """
        self.successResultOf(self.watcher.watch(targets((b"/w", b"x")))).close()
        self.ops.close()
        self.assertEqual(self.calls.closed, [7])


class FollowINotifyTests(SynchronousTestCase):
    """
    C{follow} on a real working directory with real inotify: what the
    kernel queues is read by calling C{doRead}, as the reactor would.
    """

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.workdir = self.mktemp()
        os.makedirs(self.workdir)
        self.log = os.path.join(self.workdir, "job.log")
        with open(self.log, "wb") as f:
            f.write(b"one\n")
        self.watcher = INotifyWatcher(self.clock, syncCall)
        self.addCleanup(self.watcher.close)
        self.ops = Operations(self.clock, Workdir(self.workdir), None, None,
                              runInThread=syncCall, runCommand=object(),
                              watcher=self.watcher)

    def follow(self, offset=4, inode=None, path="job.log", wait=20):
        request = {"op": "follow", "path": path, "offset": offset, "wait": wait}
        if inode is not None:
            request["inode"] = inode
        return defer.Deferred.fromCoroutine(self.ops.run(request))

    def waiting(self, d):
        """
        C{d} waits, with a watch and no polling timer.
        """
        self.assertNoResult(d)
        self.assertEqual(len(self.watcher.watching()), 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def write(self, data, mode="ab", path=None):
        with open(path or self.log, mode) as f:
            f.write(data)

    def test_instance(self):
        """
        This system has inotify: the daemon's watcher uses it.
        """
        self.assertTrue(INotifyCalls().available)
        watcher = makeWatcher(self.clock)
        self.assertIsInstance(watcher, INotifyWatcher)
        watcher.close()

    def test_growth(self):
        """
        A write wakes the follow, which answers with the new bytes.
        """
        d = self.follow()
        self.waiting(d)
        self.write(b"two\n")
        self.watcher.doRead()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["offset"]), (b"two\n", 4))
        self.assertEqual(self.watcher.watching(), set())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_truncation(self):
        """
        The file truncated and written again: the follow answers from its
        start, saying C{rotated}.
        """
        d = self.follow()
        self.waiting(d)
        self.write(b"x\n", mode="wb")
        self.watcher.doRead()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["rotated"]), (b"x\n", True))

    def test_rotation(self):
        """
        The file renamed and a new one made in its place: the rename wakes
        the follow, which, finding the old file gone, waits on; the new
        file wakes it again and it answers from its start, C{rotated}.
        """
        d = self.follow()
        self.waiting(d)
        os.rename(self.log, self.log + ".1")
        self.watcher.doRead()
        self.waiting(d)
        self.write(b"new\n", mode="wb")
        self.watcher.doRead()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["rotated"]), (b"new\n", True))

    def test_deletedThenCreated(self):
        """
        The file deleted: the follow waits for it (no polling); made again,
        it is read from its start.
        """
        st = os.stat(self.log)
        # A second name keeps the old inode from being reused by the new
        # file (which would look like the same file grown: tail -F's blind
        # spot too).
        os.link(self.log, self.log + ".kept")
        d = self.follow(inode="%d:%d" % (st.st_dev, st.st_ino))
        os.remove(self.log)
        self.watcher.doRead()
        self.waiting(d)
        self.write(b"again\n")
        self.watcher.doRead()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["rotated"]), (b"again\n", True))

    def test_missingFileAppears(self):
        """
        A file that does not exist yet (C{tail -F}) is watched through its
        directory and read when it appears.
        """
        d = self.follow(offset=0, path="later.log")
        self.waiting(d)
        self.write(b"hello\n", path=os.path.join(self.workdir, "later.log"))
        self.watcher.doRead()
        self.assertEqual(self.successResultOf(d)["data"], b"hello\n")

    def test_link(self):
        """
        A log reached through a symbolic link into a subdirectory: writes to
        the target wake the follow, and so does the link pointed elsewhere.
        """
        logs = os.path.join(self.workdir, "logs")
        os.makedirs(logs)
        self.write(b"1\n", path=os.path.join(logs, "a.log"))
        self.write(b"22\n", path=os.path.join(logs, "b.log"))
        link = os.path.join(self.workdir, "current.log")
        os.symlink("logs/a.log", link)
        d = self.follow(offset=2, path="current.log")
        self.assertNoResult(d)
        self.assertEqual(len(self.watcher.watching()), 2)
        self.write(b"more\n", path=os.path.join(logs, "a.log"))
        self.watcher.doRead()
        first = self.successResultOf(d)
        self.assertEqual(first["data"], b"more\n")
        self.clock.advance(FOLLOW_MIN_GAP)
        d = self.follow(offset=7, inode=first["inode"], path="current.log")
        self.assertNoResult(d)
        os.symlink("logs/b.log", link + ".new")
        os.rename(link + ".new", link)
        self.watcher.doRead()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["rotated"]), (b"22\n", True))

    def test_otherFilesQuiet(self):
        """
        Writes to other files of the directory do not make the follow look
        again, and it answers empty at the end of its wait.
        """
        looks = []
        workdir = self.ops.workdir
        real = workdir.followOnce

        def followOnce(*args):
            looks.append(args)
            return real(*args)

        self.ops.workdir = _Counting(workdir, followOnce)
        d = self.follow(wait=5)
        self.write(b"noise\n", path=os.path.join(self.workdir, "other.log"))
        self.watcher.doRead()
        self.assertEqual(len(looks), 2)
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(d)["data"], b"")
        self.assertEqual(len(looks), 2)

    def test_ended(self):
        """
        The job's end answers a waiting follow at once with C{ended}.
        """
        d = self.follow()
        self.waiting(d)
        self.write(b"last\n")
        self.ops.end()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["ended"]), (b"last\n", True))


class _Counting:
    """
    A workdir whose C{followOnce} is replaced, the rest passed through.
    """

    def __init__(self, workdir, followOnce):
        self._workdir = workdir
        self.followOnce = followOnce

    def __getattr__(self, name):
        return getattr(self._workdir, name)


class TargetsTests(SynchronousTestCase):
    """
    L{Workdir.followTargets}: what a follow watches.
    """

    def setUp(self):
        self.root = os.path.realpath(self.mktemp())
        os.makedirs(os.path.join(self.root, "logs"))
        self.workdir = Workdir(self.root)

    def test_plain(self):
        """
        A file: its directory and name.
        """
        self.assertEqual(self.workdir.followTargets("logs/job.log"),
                         [(os.fsencode(os.path.join(self.root, "logs")), b"job.log")])

    def test_link(self):
        """
        A link: the target's directory and name, then the link's.
        """
        os.symlink("logs/a.log", os.path.join(self.root, "current"))
        self.assertEqual(self.workdir.followTargets("current"),
                         [(os.fsencode(os.path.join(self.root, "logs")), b"a.log"),
                          (os.fsencode(self.root), b"current")])

    def test_outside(self):
        """
        A path leading outside the working directory is refused, as by the
        follow's look.
        """
        from jobmon.errors import OUTSIDE_WORKDIR, JobMonError

        e = self.assertRaises(JobMonError, self.workdir.followTargets, "../x")
        self.assertEqual(e.code, OUTSIDE_WORKDIR)

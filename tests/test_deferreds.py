"""
Tests for L{jobmon.deferreds}.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

from jobmon.deferreds import deferredAsync, threadRunner


class DeferredAsyncTests(SynchronousTestCase):
    """
    L{deferredAsync} turns an C{async def} into a function returning a
    L{Deferred}.
    """

    def test_result(self):
        """
        The Deferred fires with the coroutine's result once what it awaits
        fires; the wrapper keeps the function's name.
        """
        waiting = Deferred()

        @deferredAsync
        async def double(x):
            return 2 * (await waiting) + x

        d = double(1)
        self.assertIsInstance(d, Deferred)
        self.assertNoResult(d)
        waiting.callback(20)
        self.assertEqual(self.successResultOf(d), 41)
        self.assertEqual(double.__name__, "double")

    def test_cancel(self):
        """
        Cancelling the Deferred cancels what the coroutine awaits.
        """
        cancelled = []
        waiting = Deferred(cancelled.append)

        @deferredAsync
        async def wait():
            await waiting

        d = wait()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(cancelled, [waiting])


class ThreadRunnerTests(SynchronousTestCase):
    """
    L{threadRunner} runs blocking callables in the given reactor's thread
    pool.
    """

    def test_runsInReactorPool(self):
        """
        The callable and its arguments go to the reactor's thread pool (asked
        for at the call, not before); the Deferred fires with the result in
        the reactor's thread.
        """
        class Pool(ThreadPool):
            def __init__(self):
                self.work = []

            def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
                self.work.append((onResult, f, args))

        class Reactor:
            def __init__(self):
                self.pools = []

            def getThreadPool(self):
                pool = Pool()
                self.pools.append(pool)
                return pool

            def callFromThread(self, f, *args, **kwargs):
                f(*args, **kwargs)

        reactor = Reactor()
        run = threadRunner(reactor)
        self.assertEqual(reactor.pools, [])
        d = run(divmod, 7, 2)
        [pool] = reactor.pools
        [(onResult, f, args)] = pool.work
        self.assertEqual((f, args), (divmod, (7, 2)))
        self.assertNoResult(d)
        onResult(True, f(*args))
        self.assertEqual(self.successResultOf(d), (3, 1))

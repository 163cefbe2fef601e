"""
Tests for L{jobmon.deferreds}.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from jobmon.deferreds import deferredAsync


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

"""
The one bridge from C{async def} to L{Deferred}, for callers (Twisted's
service machinery, L{Deferred} chains, cancellation) that want a Deferred;
and the one way blocking work is sent to the reactor's thread pool.
"""

import functools

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool


def deferredAsync(function):
    """
    Decorate an C{async def} so that calling it returns a L{Deferred}
    (started at once, as C{Deferred.fromCoroutine} does); cancelling that
    Deferred cancels what the coroutine is waiting on.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return Deferred.fromCoroutine(function(*args, **kwargs))

    return wrapper


def threadRunner(reactor):
    """
    The C{runInThread} of code that must not block the reactor: like
    C{deferToThread}, but on the thread pool of the given reactor (looked
    up at each call, so a reactor without threads is fine until used).

    @param reactor: an C{IReactorThreads}.
    @return: a callable C{(f, *args)} that runs C{f(*args)} in a thread and
        returns a L{Deferred} of its result.
    """

    def runInThread(f, *args):
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    return runInThread

"""
The one bridge from C{async def} to L{Deferred}, for callers (Twisted's
service machinery, L{Deferred} chains, cancellation) that want a Deferred.
"""

import functools

from twisted.internet.defer import Deferred


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

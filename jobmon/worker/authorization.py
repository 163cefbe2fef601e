"""
A daemon's bearer token: read afresh from its source, at most every
L{TOKEN_REREAD} seconds, so that a renewed token is used without a restart.
"""

import time

from jobmon.certificates import CredentialError
from jobmon.credentials import TokenNotFound, expiredAt


def bearerAuthorization(source, now=time.time):
    """
    The C{Authorization} header of a daemon with a bearer token, read
    afresh from its source (blocking; see L{CachedAuthorization}), so that
    the token a site renews in its file is used without a restart.

    @param source: see L{jobmon.credentials.tokenSource}.
    @param now: the current time, in seconds since the epoch.
    @return: a callable returning C{"Bearer <token>"}.
    @raise CredentialError: (from the callable) no token, or it expired.
    """

    def authorization():
        try:
            token, where = source()
        except TokenNotFound as e:
            raise CredentialError(str(e))
        expires = expiredAt(token, now())
        if expires is not None:
            raise CredentialError(
                "bearer token from {} expired at {} UTC; renew it (the new token "
                "is picked up without a restart)".format(
                    where, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(expires))
                )
            )
        return "Bearer " + token

    return authorization


TOKEN_REREAD = 10.0
"""Seconds a daemon uses the token it read before reading its file again."""


class CachedAuthorization:
    """
    A daemon's C{Authorization} header, read (in a thread) at most every
    C{interval} seconds: a renewed token file is used within that time, and
    a daemon's calls do not each pay for a thread and a file read.

    @ivar read: the blocking read (see L{bearerAuthorization}).
    """

    def __init__(self, read, runInThread, clock, interval=TOKEN_REREAD):
        self.read = read
        self.runInThread = runInThread
        self.clock = clock
        self.interval = interval
        self._value = None
        self._readAt = None

    def __call__(self):
        """
        The header value, or a L{Deferred} of it when it is due to be read.
        """
        now = self.clock.seconds()
        if self._value is not None and now - self._readAt < self.interval:
            return self._value

        def read(value):
            self._value, self._readAt = value, now
            return value

        return self.runInThread(self.read).addCallback(read)

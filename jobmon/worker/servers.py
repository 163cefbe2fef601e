"""
The servers a job daemon may register with: C{--server} given several
times, or C{JOBMON_SERVER} holding a comma-separated list.

The daemon holds one server at a time (L{ServerRing.current}).  When it
loses it (L{isServerLoss}: the server cannot be reached, the TLS handshake
or the connection failed, no answer came in time, or the server said it is
shutting down), it registers with the next one in the list at once; the
daemon's capped exponential backoff applies only after a whole round of
servers failed (L{ServerRing.lose}).  A refusal (a fault other than 503,
e.g. 409: another daemon holds the job) is no loss: the daemon keeps its
server and its usual behaviour.
"""

from urllib.parse import urlsplit

from attrs import frozen
from twisted.logger import Logger

from jobmon.errors import UNAVAILABLE, JobMonError


def checkServerURL(url):
    """
    Check a daemon's server URL and complete it: C{https://} with a host
    name; a URL without a path gets C{/RPC2}.

    @return: the complete URL.
    @raise ValueError: the URL is not C{https://} with a host.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("--server must be an https:// URL, not {!r}".format(url))
    if not parts.path or parts.path == "/":
        url = url.rstrip("/") + "/RPC2"
    return url


def isServerLoss(error):
    """
    Tell whether a failed call means that the server is lost to the
    daemon (rather than that it refused the call): it could not be
    reached, the TLS handshake or the connection failed, it did not answer
    in time, or it answered fault 503 (it is shutting down).

    @param error: the exception.
    """
    from OpenSSL import SSL
    from twisted.internet import defer
    from twisted.internet import error as netError
    from twisted.web import _newclient

    if isinstance(error, JobMonError):
        return error.code == UNAVAILABLE
    return isinstance(error, (
        ConnectionError,
        TimeoutError,
        netError.ConnectError,
        netError.ConnectionLost,
        netError.ConnectionDone,
        netError.TimeoutError,
        defer.TimeoutError,
        SSL.Error,
        _newclient.ResponseNeverReceived,
        _newclient.RequestTransmissionFailed,
        _newclient.ResponseFailed,
    ))


@frozen
class Server:
    """
    One server of a daemon's list, and the means to talk to it.

    @ivar url: its XML-RPC URL.
    @ivar rpc: an L{jobmon.protocols.xmlrpc.XMLRPCClient} to it.
    @ivar wakeEndpoint: callable from a port number to the TLS endpoint of
        its wake port.
    @ivar sealedEndpoint: callable from a port number to a plain TCP
        endpoint of its wake port, or L{None} (TLS always).
    """

    url: str
    rpc: object
    wakeEndpoint: object
    sealedEndpoint: object = None


class ServerRing:
    """
    The daemon's servers, in order, and the one it holds.

    @ivar servers: the L{Server}s.
    @ivar index: the index of the current server.
    @ivar lost: servers lost in a row in the current round (reset by a
        registration that succeeds, and after a full round).
    """

    log = Logger()

    def __init__(self, servers):
        if not servers:
            raise ValueError("no server")
        self.servers = list(servers)
        self.index = 0
        self.lost = 0

    @property
    def current(self):
        """
        The L{Server} the daemon holds.
        """
        return self.servers[self.index]

    def __len__(self):
        return len(self.servers)

    def reached(self):
        """
        A registration with the current server succeeded: a new round
        begins.
        """
        self.lost = 0

    def lose(self, jobId, why):
        """
        The current server is lost: move to the next one (round robin), and
        log it.

        @param jobId: the daemon's job, for the log line.
        @param why: one line saying how it was lost.
        @return: whether the daemon should register with the new current
            server at once (it was not tried in this round); false with a
            single server, and after a full round of failures: then the
            daemon backs off.
        """
        if len(self.servers) == 1:
            return False
        old = self.current
        self.index = (self.index + 1) % len(self.servers)
        self.lost += 1
        again = self.lost < len(self.servers)
        if not again:
            self.lost = 0
        self.log.warn(
            "job {job_id}: server {old} lost ({why}); registering with server {new}{when}",
            job_id=jobId, old=old.url, why=why, new=self.current.url,
            when="" if again else " after a pause (every server failed)",
        )
        return again

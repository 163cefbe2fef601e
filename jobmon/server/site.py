"""
The server's HTTPS site: the XML-RPC endpoint's connection limits.  (The
caller's identity, read from its TLS connection, is
L{jobmon.server.identity.ConnectionIdentities}.)
"""

import ctypes
import ctypes.util
import gc

from OpenSSL import SSL
from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from jobmon.protocols.rpchttp import RPCChannel
from jobmon.protocols.xmlrpc import CappedRequest
from jobmon.server.admission import PerPeerLimit, Refused
from jobmon.server.ratelimit import TokenBuckets
from jobmon.server.tls import RefusalBudget


class QuietSite(PerPeerLimit, Site):
    """
    A L{Site} for the XML-RPC endpoint: no per-request access log line
    (JobMon logs each call itself, with the caller's identity), request
    bodies capped at C{maxBody}, each request received within
    C{requestDeadline} seconds, idle connections closed after C{timeout}
    seconds, at most C{maxPerPeer} connections from one address, and the
    limits of L{GuardedChannel}: a TLS handshake ends within
    C{handshakeDeadline} seconds, an answer is read within C{sendDeadline}.

    New connections from one address are limited to C{connectionRate} per
    second with bursts of C{connectionBurst}; a malformed request (bad
    HTTP, bad XML, a body announced too large) costs that address
    C{malformedCost} connections' worth.  Refusals are logged a few per
    address per minute.

    Each admitted connection gets an L{RPCChannel}, which answers C{POST}s
    to C{rpcPath} itself and hands the connection to twisted.web's
    L{GuardedChannel} (with L{CappedRequest}s) for any other request.
    """

    noisy = False
    displayTracebacks = False
    requestFactory = CappedRequest
    protocol = RPCChannel
    rpcPath = b"/RPC2"
    """The path of the XML-RPC endpoint, whose C{POST}s L{RPCChannel}
    answers without twisted.web."""
    _log = Logger()

    malformedCost = 10
    trimAfter = 1024 * 1024
    """Bytes of answers after which a closed connection has the memory
    released (see L{releaseMemory}), once a second at most."""

    def __init__(
        self, resource, maxBody=16 * 1024 * 1024, requestDeadline=30.0, maxPerPeer=1024,
        handshakeDeadline=10.0, sendDeadline=60.0, connectionRate=50.0,
        connectionBurst=200, trim="libc", **kwargs,
    ):
        # The XML-RPC resource reads the body itself: parsing every POST's
        # content type as a form (with the email package) is wasted time on
        # the hot path.
        kwargs.setdefault("parsePOSTFormSubmission", False)
        kwargs.setdefault("timeout", 120)
        super().__init__(resource, **kwargs)
        self.maxBody = maxBody
        self.requestDeadline = requestDeadline
        self.handshakeDeadline = handshakeDeadline
        self.sendDeadline = sendDeadline
        self.maxPerPeer = maxPerPeer
        self.peers = {}
        self.rates = TokenBuckets(self.reactor, connectionRate, connectionBurst)
        self.budget = RefusalBudget(now=self.reactor.seconds)
        self.trim = releaseMemory() if trim == "libc" else trim
        self._trimCall = None
        self.counts = {
            "rate_refused": 0, "handshake_timeouts": 0, "not_reading": 0,
            "malformed": 0, "no_certificate": 0,
        }

    def buildProtocol(self, addr):
        """
        Admit a new connection if its address is within its rate (and the
        per-peer limit), else refuse it.
        """
        host = getattr(addr, "host", None)
        if self.rates.take(host):
            self.counts["rate_refused"] += 1
            self._refusal(host, "new connections from {peer} over the rate of {rate:g}/s: "
                          "refused", rate=self.rates.rate)
            return Refused()
        return super().buildProtocol(addr)

    def buildAdmitted(self, addr):
        """
        Build the HTTP channel of an admitted connection.
        """
        return Site.buildProtocol(self, addr)

    def rpcResource(self):
        """
        The resource that C{POST}s to C{rpcPath} reach: a leaf with
        C{render_POST} among the static children of the site's resource
        tree, or L{None} (then every request goes through twisted.web).
        """
        resource = self.resource
        for segment in self.rpcPath.split(b"/")[1:]:
            if getattr(resource, "isLeaf", True):
                return None
            resource = getattr(resource, "children", {}).get(segment)
        if getattr(resource, "isLeaf", False) and hasattr(resource, "render_POST"):
            return resource
        return None

    def chargeMalformed(self, host):
        """
        A malformed request came from C{host}: charge its rate.

        @return: whether it may go on using its connection.
        """
        self.counts["malformed"] += 1
        return not self.rates.take(host, self.malformedCost, anyway=True)

    def handshakeTooSlow(self, channel):
        """
        A TLS handshake did not end in time: its connection is closed.
        """
        self.counts["handshake_timeouts"] += 1
        self._refusal(getattr(channel, "peerHost", None),
                      "TLS handshake from {peer} not finished in {seconds:g} s: closed",
                      seconds=self.handshakeDeadline)

    def notReading(self, channel):
        """
        A client did not read its answer in time: its connection is closed.
        """
        self.counts["not_reading"] += 1
        self._refusal(getattr(channel, "peerHost", None),
                      "client at {peer} did not read its answer in {seconds:g} s: closed",
                      seconds=self.sendDeadline)

    def channelClosed(self, channel, reason):
        """
        A connection ended: log a client refused for want of a certificate
        (a few per address), and give memory back after a large answer.
        """
        if not getattr(channel, "_shookHands", True) and _noCertificate(reason):
            self.counts["no_certificate"] += 1
            self._refusal(getattr(channel, "peerHost", None),
                          "client at {peer} sent no certificate: refused")
        if getattr(channel, "sent", 0) >= self.trimAfter and self.trim is not None:
            if self._trimCall is None or not self._trimCall.active():
                self._trimCall = self.reactor.callLater(1.0, self.trim)

    def _refusal(self, host, message, **fields):
        suppressed = self.budget.admit(host)
        if suppressed is None:
            return
        self._log.info(message + "{more}", peer=host, more="; {} more from there not "
                      "logged".format(suppressed) if suppressed else "", **fields)

    def stopFactory(self):
        """
        Cancel a pending memory trim.
        """
        if self._trimCall is not None and self._trimCall.active():
            self._trimCall.cancel()
        super().stopFactory()

    def log(self, request):
        """
        Log nothing per HTTP request.
        """


def _noCertificate(reason):
    """
    Whether a connection was lost because its TLS client sent no
    certificate when one is required.
    """
    error = getattr(reason, "value", None)
    if not isinstance(error, SSL.Error):
        return False
    return "did not return a certificate" in str(error) or "certificate required" in str(
        error
    )


def releaseMemory():
    """
    Make a callable that gives the memory of closed connections back to the
    system: a full garbage collection (a closed connection's transport,
    channel and TLS objects refer to each other, and its unsent answer goes
    only with them: the collector's own schedule may not reach them for a
    long while), then the C library's C{malloc_trim(0)} where there is one
    (glibc), which returns the freed pages.
    """
    trim = None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
        trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        trim = None

    def release():
        gc.collect()
        if trim is not None:
            trim(0)

    return release


class ParsePool(Service):
    """
    The threads that parse large request bodies: a few, started and
    stopped with the server.
    """

    def __init__(self, reactor, threads=2):
        self.reactor = reactor
        self.threads = threads
        self.pool = self._newPool()

    def _newPool(self):
        return ThreadPool(minthreads=0, maxthreads=self.threads, name="jobmon-parse")

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        # A stopped pool cannot start again: the next start gets a new one.
        pool, self.pool = self.pool, self._newPool()
        pool.stop()

    def runInThread(self, f, *args):
        """
        Run C{f(*args)} in one of the pool's threads.

        @return: a L{Deferred} of its result.
        """
        return deferToThreadPool(self.reactor, self.pool, f, *args)


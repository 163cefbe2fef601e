"""
The server's HTTPS site: the XML-RPC endpoint's connection limits.  (The
caller's identity, read from its TLS connection, is
L{jobmon.server.identity.ConnectionIdentities}.)
"""

from twisted.web.server import Site

from jobmon.protocols.xmlrpc import CappedRequest, GuardedChannel
from jobmon.server.admission import PerPeerLimit


class QuietSite(PerPeerLimit, Site):
    """
    A L{Site} for the XML-RPC endpoint: no per-request access log line
    (JobMon logs each call itself, with the caller's identity), request
    bodies capped at C{maxBody}, each request received within
    C{requestDeadline} seconds, idle connections closed after C{timeout}
    seconds, and at most C{maxPerPeer} connections from one address.
    """

    noisy = False
    displayTracebacks = False
    requestFactory = CappedRequest
    protocol = GuardedChannel

    def __init__(
        self, resource, maxBody=16 * 1024 * 1024, requestDeadline=30.0, maxPerPeer=1024,
        **kwargs,
    ):
        # The XML-RPC resource reads the body itself: parsing every POST's
        # content type as a form (with the email package) is wasted time on
        # the hot path.
        kwargs.setdefault("parsePOSTFormSubmission", False)
        kwargs.setdefault("timeout", 120)
        super().__init__(resource, **kwargs)
        self.maxBody = maxBody
        self.requestDeadline = requestDeadline
        self.maxPerPeer = maxPerPeer
        self.peers = {}

    def buildAdmitted(self, addr):
        """
        Build the HTTP channel of an admitted connection.
        """
        return Site.buildProtocol(self, addr)

    def log(self, request):
        """
        Log nothing per HTTP request.
        """


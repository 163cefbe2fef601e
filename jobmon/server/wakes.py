"""
The server's wake port: a limited number of TCP wake channels from one
address.
"""

from twisted.internet.protocol import Factory

from jobmon.server.admission import PerPeerLimit
from jobmon.protocols.wake import WakeServerProtocol


class WakeServerFactory(PerPeerLimit, Factory):
    """
    Builds L{WakeServerProtocol}s for the server's wake port, at most
    C{maxPerPeer} at a time from one address (a worker node runs many jobs,
    but not without bound).
    """

    noisy = False

    def __init__(self, hub, identify, clock, maxPerPeer=1024):
        self.hub = hub
        self.identify = identify
        self.clock = clock
        self.maxPerPeer = maxPerPeer
        self.peers = {}

    def buildAdmitted(self, addr):
        """
        Build the protocol of an admitted connection.
        """
        protocol = WakeServerProtocol(self.hub, self.identify, self.clock)
        protocol.factory = self
        return protocol

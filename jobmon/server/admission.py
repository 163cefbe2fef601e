"""
Admission: how many connections the server takes from one address.

The HTTPS site and the wake port share the mixin L{PerPeerLimit}: a worker
node runs many jobs, but not without bound, and one address cannot take
every descriptor.
"""

from twisted.internet.protocol import Protocol


class Refused(Protocol):
    """
    Stands for a connection refused by a limit: closes it at once.
    """

    def connectionMade(self):
        self.transport.abortConnection()

    def dataReceived(self, data):
        """
        Ignore whatever arrives before the close.
        """


class PerPeerLimit:
    """
    A factory mixin: at most C{maxPerPeer} connections at a time from one
    address; past that, a connection gets L{Refused}.  The factory builds
    the protocol of an admitted connection in C{buildAdmitted}, and its
    protocol calls L{peerClosed} when the connection ends.

    @ivar maxPerPeer: connections allowed from one address.
    @ivar peers: open connections, by address.
    @ivar refused: connections refused by the limit.
    """

    maxPerPeer = 1024
    refused = 0

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)
        if self.peers.get(host, 0) >= self.maxPerPeer:
            self.refused += 1
            # Not None: under TLS that leaves the connection open with no
            # protocol (and no timeout) behind it.
            return Refused()
        self.peers[host] = self.peers.get(host, 0) + 1
        protocol = self.buildAdmitted(addr)
        protocol.peerHost = host
        return protocol

    def peerClosed(self, protocol):
        """
        A connection ended: it no longer counts against its peer.
        """
        host = getattr(protocol, "peerHost", None)
        count = self.peers.get(host, 0) - 1
        if count > 0:
            self.peers[host] = count
        else:
            self.peers.pop(host, None)

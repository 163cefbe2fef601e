"""
Admission: how many connections the server takes from one address, and how
many queries from one user.

The HTTPS site and the wake port share the mixin L{PerPeerLimit}: a worker
node runs many jobs, but not without bound, and one address cannot take
every descriptor.  The hub admits each query through L{QueryAdmission}.
"""

from twisted.internet.protocol import Protocol

from jobmon.errors import TOO_MANY, JobMonError
from jobmon.server.ratelimit import TokenBuckets


class Refused(Protocol):
    """
    Stands for a connection refused by a limit: closes it at once.
    """

    closesAtOnce = True
    """Tells wrapping factories (the wake port's sniffer) to hand it the
    connection as it is."""

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


class QueryAdmission:
    """
    The per-user limit on pending queries: at most C{maxPending} at once.

    A query's rate is charged once, by the method limits
    (L{jobmon.server.ratelimit.Limits}, bucket C{query}), before anything
    else is checked; this object shares that bucket table (L{rates}) for
    the hub's sizes and tests, and charges nothing itself.

    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    @ivar rates: the L{TokenBuckets} of the users' queries, by DN.
    @ivar pending: how many queries each user has pending, by DN.
    """

    def __init__(self, clock, maxPending=256, rates=None):
        """
        @param rates: the L{TokenBuckets} that charge queries (made here,
            at 50 per second in bursts of 200, if not given).
        """
        self.clock = clock
        self.maxPending = maxPending
        self.rates = rates if rates is not None else TokenBuckets(clock, 50.0, 200)
        self.pending = {}

    @property
    def buckets(self):
        """
        C{(allowance, when)} by DN: how many queries the user could make
        at once, as of C{when}.
        """
        return self.rates.buckets

    def admit(self, dn):
        """
        Admit a query of C{dn} (already charged to its rate).

        @raise JobMonError: L{TOO_MANY} when it has too many pending.
        """
        if self.pending.get(dn, 0) >= self.maxPending:
            raise JobMonError(
                TOO_MANY,
                "you already have {} queries pending".format(self.maxPending),
            )

    def hold(self, dn, d):
        """
        Count an admitted query of C{dn} as pending until C{d} fires.
        """
        self.pending[dn] = self.pending.get(dn, 0) + 1

        def settled(result):
            count = self.pending.get(dn, 1) - 1
            if count:
                self.pending[dn] = count
            else:
                self.pending.pop(dn, None)
            return result

        d.addBoth(settled)

    def sizes(self):
        """
        How many users have queries pending and buckets kept.
        """
        return {"users_pending": len(self.pending), "rate_buckets": len(self.buckets)}

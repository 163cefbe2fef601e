"""
Run C{twistd} with every UDP listen bound to the loopback broadcast address
C{127.255.255.255} instead of all interfaces, for L{capacity}'s UDP round
trips.

    python bench/loopback_twistd.py TWISTD-ARGS...

A UDP-mode job daemon listens for wakes with
C{reactor.listenMulticast(port, protocol, listenMultiple=True)}, which binds
C{0.0.0.0}: on a shared machine that opens the port on every interface.
Bound to C{127.255.255.255} it still receives the server's wakes broadcast
to C{127.255.255.255:PORT} (Linux delivers a broadcast to sockets bound to
that address), and nothing from outside the machine.  The JobMon sources are
not changed: the reactor's method is wrapped before C{twistd} builds the
service.
"""

import os
import sys

LOOPBACK_BROADCAST = "127.255.255.255"
"""The address UDP listens are bound to."""


def _bindLoopback():
    from twisted.internet import reactor

    original = reactor.listenMulticast

    def listenMulticast(port, protocol, interface="", maxPacketSize=8192, listenMultiple=False):
        return original(
            port,
            protocol,
            interface=LOOPBACK_BROADCAST,
            maxPacketSize=maxPacketSize,
            listenMultiple=listenMultiple,
        )

    reactor.listenMulticast = listenMulticast


def main():
    """
    Wrap the reactor, then run C{twistd} with the arguments given.
    """
    _bindLoopback()
    from twisted.scripts.twistd import run

    sys.argv = [os.path.join(os.path.dirname(sys.executable), "twistd")] + sys.argv[1:]
    run()


if __name__ == "__main__":
    main()

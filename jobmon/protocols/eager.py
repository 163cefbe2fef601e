"""
TCP server ports whose connections send a write at once.

Twisted's TCP transport never sends from C{write}: it buffers the bytes,
asks the reactor to watch the socket for writability (an C{epoll_ctl}),
and sends them on the next reactor turn, then stops watching (another
C{epoll_ctl}).  For a server that answers each small request with one
small write, that is a whole reactor turn and two system calls more per
answer.  L{EagerServer} tries C{send} first when nothing is buffered and
falls back to Twisted's buffering for whatever the kernel does not take
at once (or for an error, which the buffered path then reports as the
lost connection it is).
"""

from errno import EAGAIN, EINTR, ENOBUFS, EWOULDBLOCK

from twisted.internet import defer, tcp
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

_RETRY_LATER = frozenset([EAGAIN, EWOULDBLOCK, ENOBUFS, EINTR])


class EagerServer(tcp.Server):
    """
    A server connection whose C{write} sends at once when it can.
    """

    def write(self, data):
        if (
            self.connected
            and not self._writeDisconnected
            and not self.disconnecting
            and not self.dataBuffer
            and not self._tempDataBuffer
            and type(data) is bytes
            and 0 < len(data) <= self.SEND_LIMIT
        ):
            try:
                sent = self.socket.send(data)
            except OSError as e:
                # Would block: buffer it.  Anything else (the peer reset the
                # connection, say): buffer it too; the next doWrite meets
                # the same error and loses the connection the usual way.
                sent = 0
                if e.errno not in _RETRY_LATER:
                    super().write(data)
                    return
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)


class EagerPort(tcp.Port):
    """
    A TCP port whose connections are L{EagerServer}s.
    """

    transport = EagerServer


@implementer(IStreamServerEndpoint)
class EagerServerEndpoint:
    """
    A TCP (or, with C{contextFactory}, TLS) server endpoint on an
    L{EagerPort}: the same as Twisted's C{TCP4ServerEndpoint} and
    C{SSL4ServerEndpoint} but for when answers are sent.
    """

    def __init__(self, reactor, port, interface="", backlog=50, contextFactory=None):
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog
        self.contextFactory = contextFactory

    def listen(self, factory):
        """
        Listen with C{factory} (under TLS if a context factory was given).

        @return: a L{Deferred} firing with the listening port, or failing
            with C{CannotListenError}.
        """
        if self.contextFactory is not None:
            factory = TLSMemoryBIOFactory(self.contextFactory, False, factory)
        port = EagerPort(self.port, factory, self.backlog, self.interface, self.reactor)

        def started():
            port.startListening()
            return port

        return defer.execute(started)

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

from twisted.internet import ssl, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IStreamServerEndpoint
from zope.interface import implementer

try:
    # How a TCP connection starts TLS, with the class its TLS layer writes
    # through: not public, so an eager TLS port is a bonus where it exists.
    from twisted.internet._newtls import startTLS as _startTLS
except ImportError:  # pragma: no cover
    _startTLS = None

_RETRY_LATER = frozenset([EAGAIN, EWOULDBLOCK, ENOBUFS, EINTR])


def _eagerWrite(connection, data):
    """
    Send C{data} on C{connection} (a Twisted TCP connection) now if nothing
    is buffered and the kernel takes it; buffer whatever it does not.
    """
    if (
        connection.connected
        and not connection._writeDisconnected
        and not connection.disconnecting
        and not connection.dataBuffer
        and not connection._tempDataBuffer
        and type(data) is bytes
        and 0 < len(data) <= connection.SEND_LIMIT
    ):
        try:
            sent = connection.socket.send(data)
        except OSError as e:
            # Would block: buffer it.  Anything else (the peer reset the
            # connection, say): buffer it too; the next doWrite meets the
            # same error and loses the connection the usual way.
            sent = 0
            if e.errno not in _RETRY_LATER:
                FileDescriptor.write(connection, data)
                return
        if sent == len(data):
            return
        data = data[sent:]
    FileDescriptor.write(connection, data)


class EagerServer(tcp.Server):
    """
    A server connection whose C{write} sends at once when it can.
    """

    def write(self, data):
        if self.TLS:
            tcp.Server.write(self, data)
        else:
            _eagerWrite(self, data)


class _EagerBypass(FileDescriptor):
    """
    The methods by which a TLS connection's TLS layer writes its records:
    Twisted's, but for an eager C{write}.
    """

    write = _eagerWrite


class EagerTLSServer(ssl.Server):
    """
    A TLS server connection (of an C{ssl.Port}) whose TLS records are sent
    at once when they can be.
    """

    def startTLS(self, ctx, normal=True):
        _startTLS(self, ctx, normal, _EagerBypass)


@implementer(IStreamServerEndpoint)
class EagerServerEndpoint:
    """
    A stream server endpoint (Twisted's TCP or TLS one, say) whose port's
    connections are L{EagerServer}s, when that port is a Twisted TCP port
    (a test's memory reactor gives another kind, left as it is).  A TLS
    port's connections send their records at once the same way.
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def listen(self, factory):
        """
        Listen on the wrapped endpoint with C{factory}.

        @return: a L{Deferred} firing with the listening port.
        """
        return self.endpoint.listen(factory).addCallback(eagerPort)


def eagerPort(port):
    """
    Make C{port}'s new connections L{EagerServer}s if they would be plain
    Twisted TCP connections.

    @return: C{port}.
    """
    if isinstance(port, tcp.Port):
        if port.transport is tcp.Server:
            port.transport = EagerServer
        elif port.transport is ssl.Server and _startTLS is not None:
            port.transport = EagerTLSServer
    return port

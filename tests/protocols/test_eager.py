"""
Tests for L{jobmon.protocols.eager}.
"""

import errno

from twisted.internet import endpoints, ssl
from twisted.internet import reactor as realReactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from jobmon.protocols.eager import (
    EagerServer,
    EagerServerEndpoint,
    EagerTLSServer,
    eagerPort,
)


class FakeSocket:
    """
    A socket whose C{send} takes at most C{take} bytes, or raises C{error}.
    """

    def __init__(self, take=None, error=None):
        self.take = take
        self.error = error
        self.sent = []

    def setblocking(self, flag):
        pass

    def fileno(self):
        return 99

    def send(self, data):
        if self.error is not None:
            raise OSError(self.error, "fake")
        data = bytes(data)
        n = len(data) if self.take is None else min(self.take, len(data))
        self.sent.append(data[:n])
        return n


def connection(socket):
    reactor = MemoryReactor()
    server = EagerServer(socket, Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    return server, reactor


class EagerServerTests(SynchronousTestCase):
    """
    L{EagerServer.write} sends at once when it can and buffers the rest.
    """

    def test_sentAtOnce(self):
        """
        A write the kernel takes whole is sent from C{write}: nothing is
        buffered and the socket is not watched for writability.
        """
        socket = FakeSocket()
        server, reactor = connection(socket)
        server.write(b"answer")
        self.assertEqual(socket.sent, [b"answer"])
        self.assertNotIn(server, reactor.writers)
        self.assertEqual(server._tempDataBuffer, [])

    def test_partial(self):
        """
        What the kernel does not take is buffered, in order, and the socket
        is watched until it is sent; later writes queue behind it.
        """
        socket = FakeSocket(take=2)
        server, reactor = connection(socket)
        server.write(b"abcdef")
        server.write(b"gh")
        self.assertEqual(socket.sent, [b"ab"])
        self.assertIn(server, reactor.writers)
        socket.take = None
        server.doWrite()
        self.assertEqual(b"".join(socket.sent), b"abcdefgh")
        self.assertNotIn(server, reactor.writers)

    def test_wouldBlock(self):
        """
        A send that would block buffers the whole write.
        """
        socket = FakeSocket(error=errno.EAGAIN)
        server, reactor = connection(socket)
        server.write(b"later")
        self.assertEqual(socket.sent, [])
        self.assertIn(server, reactor.writers)
        socket.error = None
        server.doWrite()
        self.assertEqual(socket.sent, [b"later"])

    def test_error(self):
        """
        Any other error buffers the write: the next C{doWrite} meets the
        error and reports the connection lost.
        """
        socket = FakeSocket(error=errno.ECONNRESET)
        server, reactor = connection(socket)
        server.write(b"lost")
        self.assertIn(server, reactor.writers)
        self.assertIsInstance(server.doWrite(), Exception)

    def test_afterLoseConnection(self):
        """
        Once the connection is being closed, writes take Twisted's path.
        """
        socket = FakeSocket()
        server, reactor = connection(socket)
        server.disconnecting = True
        server.write(b"late")
        self.assertEqual(socket.sent, [])

    def test_portTransport(self):
        """
        L{eagerPort} makes a Twisted TCP or TLS port's connections
        L{EagerServer}s, and leaves other ports alone.
        """
        tcpPort = eagerPort(realReactor.listenTCP(0, Factory(), interface="127.0.0.1"))
        self.addCleanup(tcpPort.stopListening)
        self.assertIs(tcpPort.transport, EagerServer)
        sslPort = ssl.Port(0, Factory(), None, interface="127.0.0.1")
        self.assertIs(eagerPort(sslPort).transport, EagerTLSServer)
        other = object()
        self.assertIs(eagerPort(other), other)


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())


class Collect(Protocol):
    def __init__(self, want, done):
        self.want = want
        self.done = done
        self.data = b""

    def connectionMade(self):
        self.transport.write(b"x" * self.want)

    def dataReceived(self, data):
        self.data += data
        if len(self.data) >= self.want:
            self.transport.loseConnection()
            self.done.callback(self.data)


class EagerEndpointTests(TestCase):
    """
    L{EagerServerEndpoint} listens on a real loopback port.
    """

    async def _roundTrip(self, size):
        endpoint = endpoints.TCP4ServerEndpoint(realReactor, 0, interface="127.0.0.1")
        port = await EagerServerEndpoint(endpoint).listen(
            Factory.forProtocol(Echo)
        )
        self.addCleanup(port.stopListening)
        self.assertIs(port.transport, EagerServer)
        done = Deferred()
        factory = ClientFactory.forProtocol(lambda: Collect(size, done))
        connector = realReactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        self.addCleanup(connector.disconnect)
        data = await done.addTimeout(10, realReactor)
        self.assertEqual(data, b"X" * size)

    def test_small(self):
        """
        Small echoes arrive whole.
        """
        return Deferred.fromCoroutine(self._roundTrip(100))

    def test_large(self):
        """
        Writes larger than the kernel takes at once arrive whole too.
        """
        return Deferred.fromCoroutine(self._roundTrip(8 * 1024 * 1024))

"""
Tests for L{jobmon.protocols.sealed}: the sealed wake transport (handshake,
frames, limits) under the wake protocols of both ends, and the wake port's
sniffing of TLS or sealed connections, driven with L{StringTransport} and
L{Clock}.
"""

import json
import struct

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols import sealed
from jobmon.protocols.sealed import (
    MAGIC,
    MAX_FRAME,
    MAX_FRAMES,
    MAX_HELLO,
    MAX_PLAIN,
    SNIFF_TIMEOUT,
    SealedClientEndpoint,
    SealedClientProtocol,
    SealedServerProtocol,
    SniffingFactory,
    keyId,
)
from jobmon.protocols.wake import HELLO_TIMEOUT, WakeClientFactory
from jobmon.server.admission import Refused
from jobmon.server.wakes import WakeServerFactory

SECRET = "registration-secret"
PEER = IPv4Address("TCP", "192.0.2.7", 40000)


class FakeHub:
    """
    Binds a channel whose hello has the token C{SECRET}; records the
    identities it was given.
    """

    def __init__(self):
        self.hellos = []
        self.lost = []

    def channelHello(self, channel, identity, jobId, token):
        if token != SECRET:
            raise JobMonError(errors.NO_SUCH_JOB, "no such registration")
        self.hellos.append((identity, jobId))
        return 10

    def channelLost(self, channel):
        self.lost.append(channel)


def identify(transport):
    """
    As the server's: no certificate identity behind a sealed transport.
    """
    return None if getattr(transport, "sealed", False) else "certificate identity"


class Recorder(Protocol):
    """
    A wrapped protocol that keeps the bytes it gets.
    """

    def __init__(self):
        self.received = []
        self.lost = None

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class SealedChannelTests(SynchronousTestCase):
    """
    A daemon's wake channel over the sealed transport to a server's wake
    port (its sniffer, its wake factory), bytes moved by hand.
    """

    def setUp(self):
        self.clock = Clock()
        self.hub = FakeHub()
        self.wakeFactory = WakeServerFactory(self.hub, identify, self.clock)
        self.registrations = {"job.1": SECRET}
        self.lookups = []
        self.port = SniffingFactory(self.wakeFactory, None, self.lookup, self.clock)
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.wakes = []

    def lookup(self, jobId, kid):
        self.lookups.append((jobId, kid))
        secret = self.registrations.get(jobId)
        if secret is not None and keyId(secret) == kid:
            return secret
        return None

    def accept(self):
        """
        A new connection to the wake port: its transport.
        """
        transport = StringTransport(peerAddress=PEER)
        protocol = self.port.buildProtocol(PEER)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return transport

    def connect(self, jobId="job.1", secret=SECRET, token=SECRET, inner=None):
        """
        A daemon's sealed channel: its sealed protocol and transport.
        """
        if inner is None:
            factory = WakeClientFactory(lambda: (jobId, token), lambda: self.wakes.append(1),
                                        self.clock)
            inner = factory.buildProtocol(None)
        client = SealedClientProtocol(inner, jobId, secret)
        transport = StringTransport()
        client.makeConnection(transport)
        return client, transport

    def pump(self, client, clientTransport, serverTransport, chunk=None):
        """
        Move bytes both ways until none are left, C{chunk} bytes at a time
        if given.
        """
        while True:
            toServer, toClient = clientTransport.value(), serverTransport.value()
            if not toServer and not toClient:
                return
            clientTransport.clear()
            serverTransport.clear()
            for data, protocol in ((toServer, lambda: serverTransport.protocol),
                                   (toClient, lambda: client)):
                step = chunk or len(data) or 1
                for i in range(0, len(data), step):
                    protocol().dataReceived(data[i:i + step])

    def up(self, chunk=None):
        client, clientTransport = self.connect()
        serverTransport = self.accept()
        self.pump(client, clientTransport, serverTransport, chunk)
        return client, clientTransport, serverTransport

    def refusals(self):
        return [e for e in self.logged if "refused" in e.get("log_format", "")]

    def test_helloWelcome(self):
        """
        The daemon's hello, sealed, binds its channel with no certificate
        identity; it is welcomed and woken through the sealed frames.
        """
        client, clientTransport, serverTransport = self.up()
        self.assertIsInstance(serverTransport.protocol, SealedServerProtocol)
        self.assertEqual(self.hub.hellos, [(None, "job.1")])
        self.assertEqual(self.lookups, [("job.1", keyId(SECRET))])
        self.assertEqual(client.wrapped.keepalive, 10)
        server = serverTransport.protocol.wrapped
        server.wake()
        self.pump(client, clientTransport, serverTransport)
        self.assertEqual(self.wakes, [1])
        self.assertEqual(self.port.sniffed, {"tls": 0, "sealed": 1, "other": 0})

    def test_noSecretInClear(self):
        """
        Neither the wake secret nor the messages cross in clear: only the
        job id and the key id do.
        """
        client, clientTransport = self.connect()
        serverTransport = self.accept()
        sent = []
        while clientTransport.value() or serverTransport.value():
            sent.append(clientTransport.value() + serverTransport.value())
            self.pump(client, clientTransport, serverTransport)
        serverTransport.protocol.wrapped.wake()
        sent.append(serverTransport.value())
        wire = b"".join(sent)
        self.assertIn(b"job.1", wire)
        self.assertIn(keyId(SECRET), wire)
        for clear in (SECRET.encode(), b"hello", b"welcome", b"wake", b"token"):
            self.assertNotIn(clear, wire)

    def test_byteByByte(self):
        """
        Handshakes and frames split at every byte work the same.
        """
        client, clientTransport, serverTransport = self.up(chunk=1)
        self.assertEqual(self.hub.hellos, [(None, "job.1")])
        serverTransport.protocol.wrapped.wake()
        self.pump(client, clientTransport, serverTransport, chunk=1)
        self.assertEqual(self.wakes, [1])

    def test_mergedFrames(self):
        """
        Several frames in one read are all opened, in order; the idle
        sealed protocol keeps no buffer.
        """
        client, clientTransport, serverTransport = self.up()
        server = serverTransport.protocol.wrapped
        for _ in range(3):
            server.wake()
        client.dataReceived(serverTransport.value())
        self.assertEqual(self.wakes, [1, 1, 1])
        self.assertEqual(client._buffer, b"")
        self.assertEqual(serverTransport.protocol._buffer, b"")

    def test_arbitraryBytes(self):
        """
        Any bytes pass, a write longer than a frame in several frames.
        """
        inner = Recorder()
        client, clientTransport = self.connect(inner=inner)
        serverTransport = self.accept()
        self.pump(client, clientTransport, serverTransport)
        payload = bytes(range(256)) * 300
        server = serverTransport.protocol
        server.writeSequence([payload, b"\n\0"])
        wire = serverTransport.value()
        self.assertGreater(len(wire), len(payload))
        self.assertEqual(struct.unpack(">I", wire[:4])[0], MAX_PLAIN + 16)
        self.pump(client, clientTransport, serverTransport, chunk=1000)
        self.assertEqual(b"".join(inner.received), payload + b"\n\0")
        self.assertEqual(len(inner.received), -(-(len(payload) + 2) // MAX_PLAIN))

    def test_tamperedFrame(self):
        """
        A frame changed on the way fails its tag: the connection is closed
        at once, logged as a refusal, and nothing reaches the wake
        protocol.
        """
        client, clientTransport, serverTransport = self.up()
        client.wrapped.send(b'{"type":"ping"}')
        frame = bytearray(clientTransport.value())
        frame[10] ^= 1
        serverTransport.protocol.dataReceived(bytes(frame))
        self.assertTrue(serverTransport.disconnecting)
        self.assertEqual(serverTransport.value(), b"")
        [refusal] = self.refusals()
        self.assertIn("failed its check", refusal["why"])

    def test_replayedFrame(self):
        """
        A frame sent again fails (its nonce is the next frame's number).
        """
        client, clientTransport, serverTransport = self.up()
        client.wrapped.send(b'{"type":"ping"}')
        frame = clientTransport.value()
        serverTransport.protocol.dataReceived(frame)
        self.assertNotEqual(serverTransport.value(), b"")
        self.assertFalse(serverTransport.disconnecting)
        serverTransport.protocol.dataReceived(frame)
        self.assertTrue(serverTransport.disconnecting)

    def test_reorderedFrames(self):
        """
        Frames swapped on the way fail.
        """
        client, clientTransport, serverTransport = self.up()
        client.wrapped.send(b'{"type":"ping"}')
        first = clientTransport.value()
        clientTransport.clear()
        client.wrapped.send(b'{"type":"ping"}')
        second = clientTransport.value()
        serverTransport.protocol.dataReceived(second + first)
        self.assertTrue(serverTransport.disconnecting)
        self.assertEqual(serverTransport.value(), b"")

    def test_oversizedFrame(self):
        """
        A frame longer than L{MAX_FRAME} is refused from its length, before
        it is read.
        """
        client, clientTransport, serverTransport = self.up()
        serverTransport.protocol.dataReceived(struct.pack(">I", MAX_FRAME + 1))
        self.assertTrue(serverTransport.disconnecting)
        [refusal] = self.refusals()
        self.assertIn("sealed frame of", refusal["why"])

    def test_shortFrame(self):
        """
        A frame too short for its tag is refused.
        """
        client, clientTransport, serverTransport = self.up()
        serverTransport.protocol.dataReceived(struct.pack(">I", 15) + b"x" * 15)
        self.assertTrue(serverTransport.disconnecting)

    def test_counterWrap(self):
        """
        A direction that has sent its last frame number closes rather than
        use a nonce again.
        """
        client, clientTransport, serverTransport = self.up()
        server = serverTransport.protocol
        server._sent = MAX_FRAMES
        server.write(b"x\n")
        self.assertEqual(serverTransport.value(), b"")
        self.assertTrue(serverTransport.disconnecting)

    def test_unknownKeyId(self):
        """
        A hello naming a key id that is not the job's registration's is
        closed before any answer, and logged.
        """
        client, clientTransport = self.connect(secret="another secret")
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(clientTransport.value())
        self.assertEqual(serverTransport.value(), b"")
        self.assertTrue(serverTransport.disconnecting)
        [refusal] = self.refusals()
        self.assertIn("unknown key id", refusal["why"])
        self.assertEqual(self.hub.hellos, [])

    def test_unknownJob(self):
        """
        A hello for a job not registered is closed the same way.
        """
        client, clientTransport = self.connect(jobId="job.2")
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(clientTransport.value())
        self.assertTrue(serverTransport.disconnecting)
        self.assertEqual(len(self.refusals()), 1)

    def test_wrongSecret(self):
        """
        A daemon with the right key id but not the secret (the server's
        registration changed its secret, or the key id was copied off the
        wire) gets an answer but cannot seal a frame the server opens; and
        the daemon opens none of the server's.
        """
        self.registrations["job.1"] = "the server's secret"
        client, clientTransport = self.connect()
        serverTransport = self.accept()
        hello = clientTransport.value()
        clientTransport.clear()
        forged = hello[:6] + keyId("the server's secret") + hello[6 + 16:]
        client._hello = forged
        serverTransport.protocol.dataReceived(forged)
        answer = serverTransport.value()
        self.assertTrue(answer.startswith(MAGIC))
        client.dataReceived(answer)
        # The daemon's hello frame, sealed with its keys, fails.
        serverTransport.protocol.dataReceived(clientTransport.value())
        self.assertTrue(serverTransport.disconnecting)
        self.assertEqual(self.hub.hellos, [])

    def test_serverWithoutSecret(self):
        """
        A server that does not hold the secret (an impostor answering with
        a key of its own) cannot welcome the daemon: its frame fails the
        daemon's check and the daemon closes.
        """
        client, clientTransport = self.connect()
        impostor = SealedServerProtocol(Recorder(), lambda jobId, kid: "guessed", lambda t, w: None)
        impostorTransport = StringTransport()
        impostor.makeConnection(impostorTransport)
        impostor.dataReceived(clientTransport.value())
        impostor.write(b'{"type":"welcome","keepalive":10}\n')
        client.dataReceived(impostorTransport.value())
        self.assertTrue(clientTransport.disconnecting)
        self.assertIsNone(client.wrapped.keepalive)

    def test_tokenCheckedInside(self):
        """
        The hello inside the sealed channel is still checked: a daemon
        holding the key but presenting another token is refused.
        """
        client, clientTransport = self.connect(token="not the token")
        serverTransport = self.accept()
        self.pump(client, clientTransport, serverTransport)
        self.assertEqual(self.hub.hellos, [])
        self.assertTrue(serverTransport.disconnecting)
        failures = []
        client.wrapped.welcomed.addErrback(failures.append)
        self.assertEqual(failures[0].value.code, errors.NO_SUCH_JOB)

    def test_oversizedHello(self):
        """
        A hello longer than L{MAX_HELLO} is refused from its length.
        """
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(MAGIC + struct.pack(">H", MAX_HELLO + 1))
        self.assertTrue(serverTransport.disconnecting)
        self.assertIn("sealed hello of", self.refusals()[0]["why"])

    def test_longJobId(self):
        """
        A daemon does not send a hello longer than the server takes.
        """
        inner = Recorder()
        self.assertRaises(ValueError, self.connect, jobId="j" * MAX_HELLO, inner=inner)

    def test_badVersion(self):
        """
        A hello of another version of the sealed transport is refused.
        """
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(b"JMW\x02" + b"\0" * 100)
        self.assertTrue(serverTransport.disconnecting)

    def test_badPublicKey(self):
        """
        A hello whose public key is a low-order point (shared secret zero)
        is refused.
        """
        client, clientTransport = self.connect()
        hello = clientTransport.value()
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(hello[:22] + b"\0" * 32 + hello[54:])
        self.assertTrue(serverTransport.disconnecting)
        self.assertIn("bad public key", self.refusals()[0]["why"])

    def test_helloDeadline(self):
        """
        A sealed connection that never completes its handshake is closed
        after the wake protocol's hello timeout.
        """
        serverTransport = self.accept()
        serverTransport.protocol.dataReceived(MAGIC[:2])
        self.clock.advance(HELLO_TIMEOUT - 1)
        self.assertFalse(serverTransport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(serverTransport.disconnecting)

    def test_daemonDeadline(self):
        """
        A daemon whose server never answers its sealed hello gives up after
        the hello timeout.
        """
        client, clientTransport = self.connect()
        self.clock.advance(HELLO_TIMEOUT)
        self.assertTrue(clientTransport.disconnecting)

    def test_closedAfterHandshake(self):
        """
        The close of the TCP connection reaches the wake protocol: a bound
        channel is lost for the hub, and the per-address count goes down.
        """
        client, clientTransport, serverTransport = self.up()
        self.assertEqual(self.wakeFactory.peers, {PEER.host: 1})
        serverTransport.protocol.connectionLost(Failure(ConnectionDone()))
        client.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.hub.lost), 1)
        self.assertEqual(self.wakeFactory.peers, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_loseConnection(self):
        """
        The wake protocol's C{loseConnection} closes the TCP connection
        after what was written; nothing more is sealed after it.
        """
        client, clientTransport, serverTransport = self.up()
        server = serverTransport.protocol
        server.wrapped.close()
        self.assertTrue(serverTransport.disconnecting)
        server.write(b"more\n")
        self.assertEqual(serverTransport.value(), b"")

    def test_endpoint(self):
        """
        L{SealedClientEndpoint} connects through its endpoint and fires
        with the wrapped protocol.
        """
        built = []

        class Endpoint:
            def connect(self, factory):
                from twisted.internet import defer

                protocol = factory.buildProtocol(None)
                protocol.makeConnection(StringTransport())
                built.append(protocol)
                return defer.succeed(protocol)

        factory = WakeClientFactory(lambda: ("job.1", SECRET), lambda: None, self.clock)
        fired = []
        SealedClientEndpoint(Endpoint(), "job.1", SECRET).connect(factory).addCallback(
            fired.append)
        [sealedProtocol] = built
        self.assertIsInstance(sealedProtocol, SealedClientProtocol)
        self.assertEqual(fired, [sealedProtocol.wrapped])
        self.assertTrue(sealedProtocol.transport.value().startswith(MAGIC))
        sealedProtocol.wrapped.setTimeout(None)


class SniffingTests(SynchronousTestCase):
    """
    The wake port tells TLS from sealed connections by their first byte.
    """

    def setUp(self):
        self.clock = Clock()
        self.wakeFactory = WakeServerFactory(FakeHub(), identify, self.clock, maxPerPeer=2)
        self.tlsFactory = TLSMemoryBIOFactory(_ServerOptions(), False, self.wakeFactory)
        self.port = SniffingFactory(self.wakeFactory, self.tlsFactory,
                                    lambda jobId, kid: None, self.clock)
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def accept(self):
        transport = StringTransport(peerAddress=PEER)
        protocol = self.port.buildProtocol(PEER)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return transport

    def test_tls(self):
        """
        A connection starting with a TLS handshake record goes to TLS, over
        the same wake protocol.
        """
        transport = self.accept()
        transport.protocol.dataReceived(b"\x16\x03\x01\x00\x05hello")
        self.assertIsInstance(transport.protocol, TLSMemoryBIOProtocol)
        self.assertEqual(transport.protocol.wrappedProtocol.factory, self.wakeFactory)
        self.assertEqual(self.port.sniffed["tls"], 1)

    def test_sealed(self):
        """
        A connection starting with the sealed magic goes to the sealed
        transport.
        """
        transport = self.accept()
        transport.protocol.dataReceived(MAGIC[:1])
        self.assertIsInstance(transport.protocol, SealedServerProtocol)
        self.assertFalse(transport.disconnecting)

    def test_sealedRefusedWhenTLSOnly(self):
        """
        A port without a look-up (TLS only) closes sealed connections.
        """
        self.port.lookup = None
        transport = self.accept()
        transport.protocol.dataReceived(MAGIC)
        self.assertTrue(transport.disconnecting)
        [refusal] = [e for e in self.logged if "refused" in e.get("log_format", "")]
        self.assertIn("takes only TLS", refusal["why"])

    def test_other(self):
        """
        Anything else is closed and logged as a refusal, a few per address
        per minute; the per-address count is released.
        """
        for _ in range(10):
            transport = self.accept()
            protocol = transport.protocol
            transport.protocol.dataReceived(b"GET / HTTP/1.1\r\n")
            self.assertTrue(transport.disconnecting)
            protocol.connectionLost(Failure(ConnectionDone()))
        refusals = [e for e in self.logged if "refused" in e.get("log_format", "")]
        self.assertEqual(len(refusals), 5)
        self.assertEqual(refusals[0]["why"], "neither TLS nor a sealed hello")
        self.assertEqual(self.port.sniffed["other"], 10)
        self.assertEqual(self.wakeFactory.peers, {})

    def test_silentDeadline(self):
        """
        A connection that sends nothing is closed after L{SNIFF_TIMEOUT}.
        """
        transport = self.accept()
        self.clock.advance(SNIFF_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        transport.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.wakeFactory.peers, {})

    def test_perPeerLimit(self):
        """
        The wake factory's limit per address holds before the first byte.
        """
        self.accept()
        self.accept()
        third = self.accept()
        self.assertIsInstance(third.protocol, Refused)
        self.assertTrue(third.disconnecting)


@implementer(IOpenSSLContextFactory)
class _ServerOptions:
    """
    Stands for the wake port's TLS options: a context for a server without
    a certificate (the tests only look at which protocol gets the bytes).
    """

    def getContext(self):
        from OpenSSL import SSL

        return SSL.Context(SSL.TLS_METHOD)


class FrameHelpersTests(SynchronousTestCase):
    """
    The key id and key derivation.
    """

    def test_keyId(self):
        """
        The key id is 16 bytes, the same for the same secret, different for
        another, and does not contain the secret.
        """
        self.assertEqual(len(keyId(SECRET)), 16)
        self.assertEqual(keyId(SECRET), keyId(SECRET))
        self.assertNotEqual(keyId(SECRET), keyId(SECRET + "x"))

    def test_directionalKeys(self):
        """
        The two directions have different keys, and both depend on the
        secret and the transcript.
        """
        shared = b"\1" * 32
        up, down = sealed.deriveKeys(shared, SECRET, b"transcript")
        self.assertNotEqual(up, down)
        self.assertNotEqual(sealed.deriveKeys(shared, "other", b"transcript"), (up, down))
        self.assertNotEqual(sealed.deriveKeys(shared, SECRET, b"transcripT"), (up, down))
        self.assertEqual(json.dumps([len(up), len(down)]), "[32, 32]")


class NoDelayTests(SynchronousTestCase):
    """
    Wake channels send their small writes at once (C{TCP_NODELAY}) on both
    ends: a result must not wait for the peer's delayed acknowledgement.
    """

    class TCPTransport(StringTransport):
        noDelay = False

        def setTcpNoDelay(self, enabled):
            self.noDelay = enabled

    def test_noDelay(self):
        transport = self.TCPTransport()
        sealed.noDelay(transport)
        self.assertTrue(transport.noDelay)
        # A transport without the option (a test's, a wrapper's): nothing.
        sealed.noDelay(StringTransport())

    def test_bothEnds(self):
        """
        The wake port's sniffer and the daemon's sealed protocol set it
        on their TCP connections.
        """
        from twisted.internet.protocol import Factory
        factory = sealed.SniffingFactory(Factory.forProtocol(Protocol),
                                         Factory.forProtocol(Protocol), None, Clock())
        sniffer = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = self.TCPTransport()
        sniffer.makeConnection(transport)
        self.assertTrue(transport.noDelay)
        client = SealedClientProtocol(Protocol(), "job.1", "s" * 32)
        transport = self.TCPTransport()
        client.makeConnection(transport)
        self.assertTrue(transport.noDelay)

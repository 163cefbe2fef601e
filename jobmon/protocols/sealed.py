"""
The sealed wake transport: an authenticated and encrypted channel keyed by
the job's registration, in place of TLS under the wake channel's line
protocol (L{jobmon.protocols.wake}), for a fraction of TLS's memory per
connection.

The daemon registered over HTTPS (its certificate or bearer token checked,
the server's host certificate checked by the daemon) and got the
registration's wake secret; both ends use it as a pre-shared key:

  1. daemon to server, in clear: C{MAGIC}, the length of the rest (2 bytes,
     big-endian), the registration's key id (L{keyId}: 16 bytes derived
     from the secret, not the secret), the daemon's X25519 ephemeral public
     key (32 bytes), a random nonce (16 bytes), the job id (UTF-8);
  2. server to daemon, in clear: C{MAGIC}, its X25519 ephemeral public key,
     a random nonce;
  3. both derive two AES-256-GCM keys (daemon to server, server to daemon)
     with HKDF-SHA256 from the X25519 shared secret, salted with the wake
     secret, over the SHA-256 of both messages: only holders of the secret
     get them (mutual authentication), and the ephemeral keys give forward
     secrecy;
  4. then frames both ways: a 4-byte big-endian length, then the AES-GCM
     ciphertext and its 16-byte tag, sealed with an implicit nonce, the
     frame's number in its direction (so a frame replayed, dropped or
     reordered fails); any frame that fails closes the connection.

The frames carry the wake channel's bytes as they are (the daemon's
C{hello} comes first, with its token, then the usual messages): the wake
protocols see an ordinary transport.

The wake port takes both TLS and sealed connections: L{SniffingFactory}
looks at the first byte (a TLS record starts with 0x16, a sealed hello with
C{MAGIC}).
"""

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.internet.interfaces import (
    IProtocol,
    IPushProducer,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from jobmon.protocols.wake import logRefusal

MAGIC = b"JMW\x01"
"""The first bytes of a sealed hello: C{JMW} and the version, 1."""

VERSION = 1
"""The sealed transport's version, as the registration reply offers it."""

KEY_ID_SIZE = 16
PUBLIC_SIZE = 32
NONCE_SIZE = 16
TAG_SIZE = 16

MAX_HELLO = 512
"""Longest daemon hello after its length field, bytes."""

MAX_PLAIN = 16384
"""Most bytes of the wake channel one frame carries (longer writes are
split)."""

MAX_FRAME = MAX_PLAIN + TAG_SIZE
"""Longest frame either end accepts after its length field."""

MAX_FRAMES = 2**64 - 1
"""Frames each direction may carry: the nonce is never reused."""

SNIFF_TIMEOUT = 30
"""Seconds a new connection to the wake port has to send its first
byte."""

_SERVER_HELLO_SIZE = len(MAGIC) + PUBLIC_SIZE + NONCE_SIZE
_LENGTH = struct.Struct(">I")
_HELLO_LENGTH = struct.Struct(">H")
_INFO = b"jobmon sealed wake v1 "
_KEY_ID_LABEL = b"jobmon sealed wake key id"


def keyId(secret):
    """
    The registration's key id, which a sealed hello names in clear: derived
    from the wake secret, which it does not reveal.

    @param secret: the wake secret (the registration reply's C{token}).
    @rtype: L{bytes} of length L{KEY_ID_SIZE}
    """
    return hmac.new(secret.encode("utf-8"), _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_SIZE]


def deriveKeys(shared, secret, transcript):
    """
    The two AES-256-GCM keys of a channel.

    @param shared: the X25519 shared secret.
    @param secret: the wake secret (a L{str}).
    @param transcript: the daemon's hello followed by the server's.
    @return: C{(daemonToServer, serverToDaemon)}, 32 bytes each.
    """
    keys = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=secret.encode("utf-8"),
        info=_INFO + hashlib.sha256(transcript).digest(),
    ).derive(shared)
    return keys[:32], keys[32:]


def _nonce(counter):
    return b"\0\0\0\0" + counter.to_bytes(8, "big")


def noDelay(transport):
    """
    Send a wake channel's small writes at once (C{TCP_NODELAY}): a result
    written while the peer has not yet acknowledged the last bytes would
    otherwise wait for that acknowledgement, which the peer delays up to
    40 ms.
    """
    setNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setNoDelay is not None:
        try:
            setNoDelay(True)
        except OSError:
            pass


class SealedError(Exception):
    """
    A sealed connection broke its protocol (bad hello, bad frame); it is
    closed.
    """


@implementer(ITransport, IProtocol, IPushProducer)
class _Sealed:
    """
    One end of a sealed connection: a protocol on the TCP transport, and
    the transport of the wake protocol it wraps (C{wrapped}).

    Idle, it keeps only its two keys, two counters and references: no
    buffer, no cipher context (one is made for each batch of frames).

    @ivar wrapped: the wake protocol.
    @ivar transport: the TCP transport, once connected.
    """

    __slots__ = (
        "wrapped", "transport", "_sendKey", "_recvKey", "_sent", "_received", "_buffer",
        "_pending", "disconnecting", "__weakref__",
    )

    log = Logger()

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.transport = None
        self._sendKey = self._recvKey = None
        self._sent = self._received = 0
        self._buffer = b""
        # Writes of the wrapped protocol before the keys are known.
        self._pending = None
        self.disconnecting = False

    # IProtocol, towards the TCP transport

    def makeConnection(self, transport):
        """
        Connected: the wrapped protocol is connected at once (its writes
        wait for the keys; its timeouts run from now).
        """
        self.transport = transport
        self.connectionMade()
        self.wrapped.makeConnection(self)

    def connectionMade(self):
        """
        Nothing to do until the first bytes (see the subclasses).
        """

    def dataReceived(self, data):
        """
        Bytes from the peer: the handshake, then frames.
        """
        if self.disconnecting:
            return
        data = self._buffer + data if self._buffer else data
        self._buffer = b""
        try:
            if self._recvKey is None:
                data = self._handshake(data)
                if data is None or self._recvKey is None:
                    return
            self._open(data)
        except SealedError as e:
            self._broken(str(e))

    def _open(self, data):
        """
        Open every whole frame in C{data}, hand the bytes on, keep the rest.
        """
        view = memoryview(data)
        start, end = 0, len(data)
        aead = None
        while end - start >= 4 and not self.disconnecting:
            (size,) = _LENGTH.unpack_from(view, start)
            if not TAG_SIZE <= size <= MAX_FRAME:
                raise SealedError("sealed frame of {} bytes".format(size))
            if end - start - 4 < size:
                break
            if self._received >= MAX_FRAMES:
                raise SealedError("too many frames")
            if aead is None:
                aead = AESGCM(self._recvKey)
            try:
                plain = aead.decrypt(_nonce(self._received), view[start + 4:start + 4 + size], None)
            except InvalidTag:
                raise SealedError("a sealed frame failed its check (tampered, replayed or "
                                  "sealed with another key)")
            self._received += 1
            start += 4 + size
            if plain:
                self.wrapped.dataReceived(plain)
        if start < end and not self.disconnecting:
            self._buffer = bytes(view[start:])

    def _broken(self, why):
        """
        The peer broke the protocol: log it and close at once.
        """
        self.log.info("sealed wake channel with {peer} closed: {why}",
                      peer=self.transport.getPeer(), why=why)
        self.abortConnection()

    def connectionLost(self, reason):
        """
        The TCP connection closed: so did the wrapped protocol's.
        """
        self.disconnecting = True
        self._buffer = b""
        self._pending = None
        self.wrapped.connectionLost(reason)

    # ITransport, towards the wrapped protocol

    def write(self, data):
        """
        Seal C{data} in one frame or more (at most L{MAX_PLAIN} bytes
        each) and send them.
        """
        if self.disconnecting or not data:
            return
        if self._sendKey is None:
            if self._pending is None:
                self._pending = []
            self._pending.append(bytes(data))
            return
        aead = AESGCM(self._sendKey)
        frames = []
        view = memoryview(data)
        for start in range(0, len(data), MAX_PLAIN):
            if self._sent >= MAX_FRAMES:
                self.abortConnection()
                return
            sealed = aead.encrypt(_nonce(self._sent), view[start:start + MAX_PLAIN], None)
            self._sent += 1
            frames.append(_LENGTH.pack(len(sealed)))
            frames.append(sealed)
        self.transport.writeSequence(frames)

    def writeSequence(self, data):
        """
        Send the concatenation of C{data}.
        """
        self.write(b"".join(data))

    def _keysReady(self, sendKey, recvKey):
        """
        The handshake is over: send what the wrapped protocol wrote so far.
        """
        self._sendKey, self._recvKey = sendKey, recvKey
        pending, self._pending = self._pending, None
        if pending:
            self.write(b"".join(pending))

    def loseConnection(self):
        """
        Close once what was written is sent.
        """
        if not self.disconnecting and self.transport is not None:
            self.disconnecting = True
            self.transport.loseConnection()

    def abortConnection(self):
        """
        Close at once.
        """
        self.disconnecting = True
        if self.transport is not None:
            self.transport.abortConnection()

    def getPeer(self):
        """
        The peer's address.
        """
        return self.transport.getPeer()

    def getHost(self):
        """
        This end's address.
        """
        return self.transport.getHost()

    def registerProducer(self, producer, streaming):
        """
        Register a producer with the TCP transport (it is paused when the
        sealed frames back up, which the bytes written are sealed into at
        once).
        """
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self):
        """
        Unregister the producer.
        """
        self.transport.unregisterProducer()

    # IPushProducer: reading paused and resumed on the TCP connection

    def pauseProducing(self):
        """
        Stop reading from the peer.
        """
        self.transport.pauseProducing()

    def resumeProducing(self):
        """
        Read from the peer again.
        """
        self.transport.resumeProducing()

    def stopProducing(self):
        """
        Close.
        """
        self.abortConnection()


class SealedServerProtocol(_Sealed):
    """
    The server's end of a sealed wake connection.

    @ivar lookup: C{lookup(jobId, keyId)}: the wake secret of the job's
        current registration if C{keyId} is its key id, else L{None}.
    @ivar refused: C{refused(transport, why)}: logs a refused handshake
        (a few per address).
    @ivar jobId: the job whose registration keyed the channel, once the
        handshake is done.
    """

    __slots__ = ("lookup", "refused", "jobId")

    sealed = True
    """Tells the server's identify function that no certificate is
    behind this transport: the registration's secret authenticates it."""

    def __init__(self, wrapped, lookup, refused):
        super().__init__(wrapped)
        self.lookup = lookup
        self.refused = refused
        self.jobId = None

    def _broken(self, why):
        self.refused(self.transport, why)
        self.abortConnection()

    def _handshake(self, data):
        head = len(MAGIC) + _HELLO_LENGTH.size
        if len(data) < head:
            if data[:len(MAGIC)] != MAGIC[:len(data)]:
                raise SealedError("not a sealed hello")
            self._buffer = data
            return None
        if data[:len(MAGIC)] != MAGIC:
            raise SealedError("not a sealed hello of version {}".format(VERSION))
        (size,) = _HELLO_LENGTH.unpack_from(data, len(MAGIC))
        fixed = KEY_ID_SIZE + PUBLIC_SIZE + NONCE_SIZE
        if not fixed < size <= MAX_HELLO:
            raise SealedError("sealed hello of {} bytes".format(size))
        if len(data) < head + size:
            self._buffer = data
            return None
        hello, rest = data[:head + size], data[head + size:]
        body = hello[head:]
        kid = body[:KEY_ID_SIZE]
        public = body[KEY_ID_SIZE:KEY_ID_SIZE + PUBLIC_SIZE]
        try:
            jobId = body[fixed:].decode("utf-8")
        except UnicodeDecodeError:
            raise SealedError("sealed hello with a job id that is not UTF-8")
        secret = self.lookup(jobId, kid)
        if secret is None:
            raise SealedError("sealed hello for job {!r} with an unknown key id".format(
                jobId[:100]))
        private = X25519PrivateKey.generate()
        answer = MAGIC + private.public_key().public_bytes_raw() + os.urandom(NONCE_SIZE)
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            raise SealedError("sealed hello with a bad public key")
        toServer, toDaemon = deriveKeys(shared, secret, hello + answer)
        self.jobId = jobId
        self.transport.write(answer)
        self._keysReady(toDaemon, toServer)
        return rest


class SealedClientProtocol(_Sealed):
    """
    The daemon's end of a sealed wake connection: sends its hello at once.

    @ivar jobId: the job's id.
    @ivar secret: the registration's wake secret.
    """

    __slots__ = ("jobId", "secret", "_private", "_hello")

    sealed = True

    def __init__(self, wrapped, jobId, secret):
        super().__init__(wrapped)
        self.jobId = jobId
        self.secret = secret
        self._private = None
        self._hello = None

    def connectionMade(self):
        noDelay(self.transport)
        self._private = X25519PrivateKey.generate()
        body = (keyId(self.secret) + self._private.public_key().public_bytes_raw()
                + os.urandom(NONCE_SIZE) + self.jobId.encode("utf-8"))
        if len(body) > MAX_HELLO:
            raise ValueError("job id too long for a sealed hello")
        self._hello = MAGIC + _HELLO_LENGTH.pack(len(body)) + body
        self.transport.write(self._hello)

    def _handshake(self, data):
        if len(data) < _SERVER_HELLO_SIZE:
            if data[:len(MAGIC)] != MAGIC[:len(data)]:
                raise SealedError("the server's answer is not a sealed hello")
            self._buffer = data
            return None
        answer, rest = data[:_SERVER_HELLO_SIZE], data[_SERVER_HELLO_SIZE:]
        if answer[:len(MAGIC)] != MAGIC:
            raise SealedError("the server's answer is not a sealed hello")
        public = answer[len(MAGIC):len(MAGIC) + PUBLIC_SIZE]
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            raise SealedError("the server's sealed hello has a bad public key")
        toServer, toDaemon = deriveKeys(shared, self.secret, self._hello + answer)
        self._private = self._hello = None
        self._keysReady(toServer, toDaemon)
        return rest

    def connectionLost(self, reason):
        if self._recvKey is None and self._hello is not None:
            # A server refuses a hello by closing: its registration is
            # unknown there (gone, replaced, another server).
            self.log.warn("the sealed wake channel closed during its handshake (the server "
                          "did not answer, or does not know this registration)")
        self._private = self._hello = None
        super().connectionLost(reason)


class _SealedClientFactory(Factory):
    """
    Wraps the protocols of C{wrapped} in L{SealedClientProtocol}s.
    """

    noisy = False

    def __init__(self, wrapped, jobId, secret):
        self.wrapped = wrapped
        self.jobId = jobId
        self.secret = secret

    def buildProtocol(self, addr):
        inner = self.wrapped.buildProtocol(addr)
        if inner is None:
            return None
        return SealedClientProtocol(inner, self.jobId, self.secret)


@implementer(IStreamClientEndpoint)
class SealedClientEndpoint:
    """
    A client endpoint that seals the connections of another (a plain TCP
    one) with a registration's secret; C{connect} fires with the wrapped
    protocol, as L{twisted.internet.endpoints.wrapClientTLS}'s does.
    """

    def __init__(self, endpoint, jobId, secret):
        self.endpoint = endpoint
        self.jobId = jobId
        self.secret = secret

    def connect(self, factory):
        """
        Connect, with C{factory}'s protocol over the sealed transport.
        """
        d = self.endpoint.connect(_SealedClientFactory(factory, self.jobId, self.secret))
        d.addCallback(lambda sealed: sealed.wrapped)
        return d


class _Sniffer:
    """
    A new connection to the wake port, until its first byte says whether
    it is TLS or sealed; then the TCP transport is handed to the protocol
    of its kind and this one is forgotten.
    """

    __slots__ = ("factory", "inner", "transport", "_timer")

    def __init__(self, factory, inner):
        self.factory = factory
        self.inner = inner
        self.transport = None
        self._timer = None

    def makeConnection(self, transport):
        """
        Connected: wait for the first byte, for L{SNIFF_TIMEOUT} at most.
        """
        self.transport = transport
        noDelay(transport)
        self._timer = self.factory.clock.callLater(SNIFF_TIMEOUT, transport.abortConnection)

    def dataReceived(self, data):
        """
        The first bytes: hand the connection over.
        """
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        protocol = self.factory.handOver(self.transport, self.inner, data[:1])
        if protocol is None:
            self.transport.abortConnection()
            return
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        protocol.dataReceived(data)

    def connectionLost(self, reason):
        """
        Closed before its first byte (or refused at it).
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.inner.connectionLost(reason)


class SniffingFactory(Factory):
    """
    The wake port's factory: each connection is TLS (first byte 0x16, a
    handshake record), handled as a TLS wake port always was, or sealed
    (first bytes L{MAGIC}); anything else is closed and logged as a
    refusal.

    @ivar wakeFactory: the factory of the wake protocols (it admits or
        refuses each connection: its C{buildProtocol} is called once per
        connection, at once).
    @ivar tlsFactory: a L{twisted.protocols.tls.TLSMemoryBIOFactory} of the
        server's TLS options, wrapping C{wakeFactory}.
    @ivar lookup: see L{SealedServerProtocol.lookup}; L{None}: sealed
        connections are refused.
    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    @ivar sniffed: how many connections were TLS, sealed or neither.
    """

    noisy = False
    log = Logger()

    def __init__(self, wakeFactory, tlsFactory, lookup, clock):
        self.wakeFactory = wakeFactory
        self.tlsFactory = tlsFactory
        self.lookup = lookup
        self.clock = clock
        self.sniffed = {"tls": 0, "sealed": 0, "other": 0}

    def buildProtocol(self, addr):
        """
        Admit (or refuse) the connection by the wake factory's limits, and
        sniff its first byte.
        """
        inner = self.wakeFactory.buildProtocol(addr)
        if inner is None:
            return None
        if getattr(inner, "closesAtOnce", False):
            # Refused by a limit: it closes the connection itself.
            return inner
        return _Sniffer(self, inner)

    def handOver(self, transport, inner, first):
        """
        The protocol for a connection whose first byte is C{first}, or
        L{None} (closed).
        """
        if first == b"\x16":
            self.sniffed["tls"] += 1
            return TLSMemoryBIOProtocol(self.tlsFactory, inner)
        if first == MAGIC[:1]:
            if self.lookup is not None:
                self.sniffed["sealed"] += 1
                return SealedServerProtocol(inner, self.lookup, self.refused)
            why = "a sealed hello, and this server takes only TLS (--wake-tls-only)"
        else:
            why = "neither TLS nor a sealed hello"
        self.sniffed["other"] += 1
        self.refused(transport, why)
        return None

    def refused(self, transport, why):
        """
        Log a refused connection, a few per address per minute (the wake
        factory's C{refusals} budget, if it has one).
        """
        logRefusal(self.log, getattr(self.wakeFactory, "refusals", None),
                   transport.getPeer(), why)


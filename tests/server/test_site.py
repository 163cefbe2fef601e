"""
Tests for L{jobmon.server.site} and the connection limits of
L{jobmon.protocols.xmlrpc.GuardedChannel}: backpressure on pipelined
requests, answers not read, bodies announced too large, TLS handshake
deadline, per-address connection rate, malformed requests charged, large
bodies parsed off the reactor, the C{Server} header.
"""

import xmlrpc.client

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.admission import Refused
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.ratelimit import TokenBuckets
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.requests import MAX_LIST_PAGE
from jobmon.server.site import QuietSite
from tests.transports import SlowReader, TLSTransport

ALICE = Identity("/CN=Alice")
PEER = IPv4Address("TCP", "10.0.0.1", 1234)






def _post(method, *params):
    body = xmlrpc.client.dumps(params, method).encode()
    return b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body,
    )


class SiteTests(SynchronousTestCase):
    """
    Drive L{QuietSite} and its channels with in-memory transports and a
    clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.threaded = []
        self.resource = XMLRPCResource(
            {"t.echo": lambda identity, value: value, "t.who": lambda identity: identity.dn},
            lambda request: ALICE,
            maxBody=10**6,
        )
        root = Resource()
        root.putChild(b"RPC2", self.resource)
        self.site = QuietSite(
            root, reactor=self.clock, timeout=None, requestDeadline=None,
            handshakeDeadline=10, sendDeadline=30, connectionRate=1, connectionBurst=3,
            maxBody=10**6, trim=None,
        )
        self.site.malformedCost = 1
        self.addCleanup(self.assertEqual, self.clock.getDelayedCalls(), [])

    def connect(self, transport=None, addr=PEER):
        """
        Open a connection to the site; return its transport and protocol.
        """
        protocol = self.site.buildProtocol(addr)
        transport = transport or StringTransport()
        protocol.makeConnection(transport)
        return transport, protocol

    def close(self, protocol):
        protocol.connectionLost(Failure(ConnectionDone()))

    def answers(self, transport):
        return transport.value().count(b"HTTP/1.1 200 OK")

    def test_pipelinedWaitsForDrain(self):
        """
        While an answer is still in the transport's buffer, the next
        pipelined request is not answered, and the connection reads
        nothing; once the client has read, it is.
        """
        transport, channel = self.connect(SlowReader())
        channel.dataReceived(_post("t.echo", "a" * 200) * 3)
        self.assertEqual(self.answers(transport), 1)
        self.assertEqual(transport.producerState, "paused")
        transport.drain()
        self.assertEqual(self.answers(transport), 2)
        transport.drain()
        self.assertEqual(self.answers(transport), 3)
        transport.drain()
        self.assertEqual(transport.producerState, "producing")
        self.close(channel)

    def test_notReadingCutOff(self):
        """
        A client that does not read its answer within the send deadline is
        cut off; one that reads in time is not.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        transport, channel = self.connect(SlowReader())
        channel.dataReceived(_post("t.echo", "a" * 200))
        self.clock.advance(29)
        transport.drain()
        self.clock.advance(10)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(_post("t.echo", "b" * 200))
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)
        self.close(channel)
        self.assertEqual(self.site.counts["not_reading"], 1)
        self.assertIn("did not read its answer", logged[0]["log_format"])

    def test_lastAnswerNotReadCutOff(self):
        """
        The deadline also holds for the answer after which the connection
        closes.
        """
        transport, channel = self.connect(SlowReader())
        body = xmlrpc.client.dumps(("a" * 200,), "t.echo").encode()
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.assertTrue(transport.disconnecting)
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)
        self.close(channel)

    def test_contentLengthRefusedFromHeaders(self):
        """
        A body announced larger than C{maxBody} is refused from the headers
        with HTTP 413 and the connection closed, its body not read.
        """
        transport, channel = self.connect()
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n<?xml"
        )
        response = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response)
        self.assertIn(b"<int>413</int>", response)
        self.assertIn(b"larger than the 1000000 bytes accepted", response)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(self.site.counts["malformed"], 1)
        channel.dataReceived(b"x" * 100000)
        self.assertEqual(transport.value(), response)
        self.close(channel)

    def test_serverHeader(self):
        """
        Answers name the server C{JobMon}, with no version.
        """
        transport, channel = self.connect()
        channel.dataReceived(_post("t.who"))
        headers = transport.value().split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"\r\nServer: JobMon\r\n", headers)
        self.assertNotIn(b"Twisted", headers)
        self.close(channel)

    def test_handshakeDeadline(self):
        """
        A TLS handshake not finished within the deadline is closed.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        transport, channel = self.connect(TLSTransport())
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.close(channel)
        self.assertEqual(self.site.counts["handshake_timeouts"], 1)
        self.assertIn("TLS handshake", logged[0]["log_format"])

    def test_handshakeDone(self):
        """
        A finished handshake stops the deadline.
        """
        transport, channel = self.connect(TLSTransport())
        self.clock.advance(5)
        channel.handshakeCompleted()
        self.clock.advance(60)
        self.assertFalse(transport.disconnecting)
        self.close(channel)

    def test_connectionRate(self):
        """
        New connections from one address are limited to a rate with a
        burst; other addresses are not affected.
        """
        protocols = [self.connect()[1] for _ in range(3)]
        self.assertFalse(any(isinstance(p, Refused) for p in protocols))
        transport, refused = self.connect()
        self.assertIsInstance(refused, Refused)
        self.assertTrue(transport.disconnecting)
        _, other = self.connect(addr=IPv4Address("TCP", "10.0.0.2", 1))
        self.assertNotIsInstance(other, Refused)
        self.clock.advance(1)
        _, again = self.connect()
        self.assertNotIsInstance(again, Refused)
        for p in protocols + [other, again]:
            self.close(p)
        self.assertEqual(self.site.counts["rate_refused"], 1)

    def test_malformedXMLCharged(self):
        """
        Malformed calls are charged to their address: once its allowance is
        spent, the connection is closed after the fault, and new
        connections from there are refused.
        """
        transport, channel = self.connect()
        bad = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n<oops"
        channel.dataReceived(bad)
        channel.dataReceived(bad)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(bad)
        self.assertEqual(transport.value().count(b"<int>400</int>"), 3)
        self.assertTrue(transport.disconnecting)
        self.assertIsInstance(self.connect()[1], Refused)
        self.close(channel)

    def test_badHTTPCharged(self):
        """
        Bad HTTP is charged too.
        """
        for _ in range(2):
            transport, channel = self.connect()
            channel.dataReceived(b"BREW\r\n\r\n")
            self.assertIn(b"400 Bad Request", transport.value())
            self.close(channel)
        self.assertEqual(self.site.counts["malformed"], 2)
        self.assertIsInstance(self.connect()[1], Refused)

    def test_noCertificateLogged(self):
        """
        A TLS client refused for want of a certificate is logged, a few
        per address.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.site.rates = TokenBuckets(self.clock, 1000, 1000)
        error = SSL.Error([("SSL routines", "", "peer did not return a certificate")])
        for _ in range(8):
            _, channel = self.connect(TLSTransport())
            channel.connectionLost(Failure(error))
        self.assertEqual(self.site.counts["no_certificate"], 8)
        self.assertEqual(len(logged), 5)
        self.assertIn("sent no certificate", logged[0]["log_format"])

    def test_largeAnswerTrims(self):
        """
        A connection that sent a large answer gives the heap's free memory
        back once closed (one trim for many connections).
        """
        trims = []
        self.site.trim = lambda: trims.append(1)
        self.site.trimAfter = 1000
        for _ in range(3):
            transport, channel = self.connect()
            channel.dataReceived(_post("t.echo", "a" * 2000))
            self.close(channel)
        self.clock.advance(1)
        self.assertEqual(trims, [1])


class ThreadedParseTests(SynchronousTestCase):
    """
    Large bodies are parsed off the reactor thread.
    """

    def setUp(self):
        self.calls = []

        def runInThread(f, *args):
            d = defer.Deferred()
            self.calls.append((d, f, args))
            return d

        self.resource = XMLRPCResource(
            {"t.echo": lambda identity, value: value}, lambda request: ALICE,
            maxBody=10**6, runInThread=runInThread, inlineBody=1000, maxThreaded=1,
        )
        root = Resource()
        root.putChild(b"RPC2", self.resource)
        self.site = QuietSite(root, timeout=None, requestDeadline=None, trim=None)

    def connect(self):
        channel = self.site.buildProtocol(PEER)
        transport = StringTransport()
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        return transport, channel

    def runThread(self):
        d, f, args = self.calls.pop(0)
        try:
            d.callback(f(*args))
        except Exception:
            d.errback()

    def test_largeBodyInThread(self):
        """
        A body over C{inlineBody} is parsed through C{runInThread}; a small
        one at once.
        """
        transport, channel = self.connect()
        channel.dataReceived(_post("t.echo", "small"))
        self.assertIn(b"small", transport.value())
        self.assertEqual(self.calls, [])
        transport.clear()
        channel.dataReceived(_post("t.echo", "x" * 5000))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.calls), 1)
        self.runThread()
        self.assertIn(b"x" * 5000, transport.value())

    def test_largeMalformedInThread(self):
        """
        A large malformed body parsed in a thread gets fault 400.
        """
        transport, channel = self.connect()
        body = b"<methodCall>" + b"x" * 5000
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.runThread()
        self.assertIn(b"<int>400</int>", transport.value())

    def test_goneDuringParse(self):
        """
        A client that goes away while its body is parsed gets nothing
        written, and frees its place.
        """
        transport, channel = self.connect()
        channel.dataReceived(_post("t.echo", "x" * 5000))
        channel.connectionLost(Failure(ConnectionDone()))
        self.runThread()
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.resource.threaded, 0)

    def test_busy(self):
        """
        Past C{maxThreaded} large bodies at once, a large call gets fault
        429.
        """
        first, one = self.connect()
        second, two = self.connect()
        one.dataReceived(_post("t.echo", "x" * 5000))
        two.dataReceived(_post("t.echo", "y" * 5000))
        self.assertIn(b"<int>429</int>", second.value())
        self.runThread()
        self.assertIn(b"x" * 5000, first.value())


class ListPageTests(SynchronousTestCase):
    """
    C{listJobs} answers are bounded.
    """

    def test_pageBound(self):
        """
        A page larger than L{MAX_LIST_PAGE} is refused with fault 400; that
        size is the default.
        """
        hub = Hub(Clock(), MemoryJobRegistry(), MemoryRequestTable(),
                  HubConfig(admins=[], queryTimeout=30, keepalive=20, connectGrace=10))
        e = self.assertRaises(JobMonError, hub.listJobs, ALICE, {"limit": MAX_LIST_PAGE + 1})
        self.assertEqual(e.code, errors.BAD_REQUEST)
        self.assertIn("from 1 to 1000", e.message)
        self.assertEqual(hub.listJobs(ALICE, {"limit": MAX_LIST_PAGE}), [])

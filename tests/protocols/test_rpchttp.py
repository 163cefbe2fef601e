"""
Tests for L{jobmon.protocols.rpchttp}: the lean HTTP channel of the XML-RPC
site, driven through L{QuietSite} with in-memory transports and a clock.
"""

import re
import xmlrpc.client

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from jobmon.protocols.rpchttp import RPCChannel, _Date
from jobmon.protocols.xmlrpc import GuardedChannel, XMLRPCResource
from jobmon.server.identity import Identity
from jobmon.server.ratelimit import TokenBuckets
from jobmon.server.site import QuietSite
from tests.transports import SlowReader, TLSTransport

ALICE = Identity("/CN=Alice")
PEER = IPv4Address("TCP", "10.0.0.1", 1234)


def post(method, *params, headers=b"", path=b"/RPC2"):
    """
    A whole HTTP/1.1 POST of an XML-RPC call.
    """
    body = xmlrpc.client.dumps(params, method).encode()
    return b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s" % (
        path, headers, len(body), body,
    )


def answers(data):
    """
    Split the bytes of answers with a C{Content-Length} into
    C{(status line, headers, body)}.
    """
    out = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(headers[b"Content-Length"])
        out.append((lines[0], headers, rest[:length]))
        data = rest[length:]
    return out


def result(body):
    """
    The value of an XML-RPC answer.
    """
    return xmlrpc.client.loads(body, use_builtin_types=True)[0][0]


class _Writes(StringTransport):
    """
    A transport that counts its writes.
    """

    writes = 0

    def write(self, data):
        self.writes += 1
        super().write(data)






class ChannelTestsMixin:
    """
    A site with an XML-RPC endpoint (and a page elsewhere) on a clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.pending = []
        self.cancelled = []
        self.requests = []
        self.channels = []

        def hang(identity):
            d = defer.Deferred(lambda d: self.cancelled.append(d))
            self.pending.append(d)
            return d

        def identify(request):
            self.requests.append(request)
            self.channels.append(request.channel)
            return ALICE

        self.resource = XMLRPCResource(
            {"t.echo": lambda identity, value: value, "t.hang": hang,
             "t.who": lambda identity: identity.dn},
            identify, maxBody=100000,
        )
        root = Resource()
        root.putChild(b"RPC2", self.resource)
        page = Resource()
        page.isLeaf = True
        page.render_GET = lambda request: b"a page"
        root.putChild(b"page", page)
        self.site = QuietSite(
            root, reactor=self.clock, timeout=100, requestDeadline=5, handshakeDeadline=10,
            sendDeadline=30, maxBody=10000, trim=None, connectionRate=1000,
            connectionBurst=1000,
        )
        self.closed = []
        channelClosed = self.site.channelClosed
        self.site.channelClosed = lambda c, r: (self.closed.append(c), channelClosed(c, r))

    def connect(self, transport=None):
        channel = self.site.buildProtocol(PEER)
        transport = transport or StringTransport()
        channel.makeConnection(transport)
        return transport, channel

    def close(self, channel):
        """
        The connection ends: no timer of it is left behind, and it no
        longer counts against its address.
        """
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.site.peers, {})


class FastPathTests(ChannelTestsMixin, SynchronousTestCase):
    """
    POSTs to the endpoint are answered by L{RPCChannel} itself.
    """

    def test_answer(self):
        """
        An answer is one write: 200, C{Server: JobMon}, a date, the XML
        content type and length, the body.
        """
        transport, channel = self.connect(_Writes())
        self.assertIsInstance(channel, RPCChannel)
        channel.dataReceived(post("t.echo", "hi"))
        self.assertEqual(transport.writes, 1)
        [(status, headers, body)] = answers(transport.value())
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(headers[b"Server"], b"JobMon")
        self.assertTrue(headers[b"Date"].endswith(b" GMT"))
        self.assertEqual(headers[b"Content-Type"], b"text/xml; charset=utf-8")
        self.assertNotIn(b"Connection", headers)
        self.assertEqual(result(body), "hi")
        self.assertEqual(channel.sent, len(transport.value()))
        self.assertIsNone(channel._slow)
        self.assertFalse(transport.disconnecting)
        self.close(channel)

    def test_keepAlive(self):
        """
        HTTP/1.1 connections stay open for the next request; a client's
        C{Connection: close} is honoured, and what follows is not read.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.echo", 1))
        channel.dataReceived(post("t.echo", 2, headers=b"Connection: keep-alive, close\r\n"))
        channel.dataReceived(post("t.echo", 3))
        got = answers(transport.value())
        self.assertEqual([result(body) for _, _, body in got], [1, 2])
        self.assertEqual(got[1][1][b"Connection"], b"close")
        self.assertTrue(transport.disconnecting)
        self.close(channel)

    def test_anySplit(self):
        """
        A request is answered the same however its bytes are split; an
        empty line before it is ignored.
        """
        whole = b"\r\n" + post("t.echo", "x" * 300)
        for size in (1, 7, 100):
            transport, channel = self.connect()
            for i in range(0, len(whole), size):
                channel.dataReceived(whole[i:i + size])
            self.assertEqual(result(answers(transport.value())[0][2]), "x" * 300)
            self.close(channel)

    def test_pipelinedInOrder(self):
        """
        Pipelined requests are run one at a time, in order: the second
        waits for the first's answer.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.hang") + post("t.echo", "second"))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.requests), 1)
        self.pending[0].callback("first")
        got = [result(body) for _, _, body in answers(transport.value())]
        self.assertEqual(got, ["first", "second"])
        self.close(channel)

    def test_requestMembers(self):
        """
        The resource and the identity lookup see the request's channel,
        transport, headers (any case) and peer; answer headers they set are
        sent (line breaks removed), and the channel is the same for every
        request of a connection.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.who", headers=b"Authorization: Bearer abc\r\n"))
        channel.dataReceived(post("t.who"))
        first, second = self.requests
        self.assertIs(first.channel, channel)
        self.assertIs(second.channel, channel)
        self.assertIs(first.transport, transport)
        self.assertEqual(first.getHeader(b"AUTHORIZATION"), b"Bearer abc")
        self.assertEqual(first.getHeader("authorization"), b"Bearer abc")
        self.assertIsNone(second.getHeader(b"authorization"))
        self.assertEqual(first.getClientAddress(), transport.getPeer())
        self.assertEqual(first.getHost(), transport.getHost())
        self.assertTrue(first.finished)
        transport.clear()

        def render(request):
            request.setHeader(b"x-trace", b"a\r\nInjected: yes")
            request.setHeader("connection", "close")
            return b"<ok/>"

        self.resource.render_POST = render
        channel.dataReceived(post("t.who"))
        [(_, headers, body)] = answers(transport.value())
        self.assertEqual(headers[b"X-Trace"], b"a Injected: yes")
        self.assertNotIn(b"Injected", headers)
        self.assertEqual(headers[b"Connection"], b"close")
        self.assertTrue(transport.disconnecting)
        self.close(channel)

    def test_resourceFails(self):
        """
        An endpoint that raises gets HTTP 500, logged; the connection stays
        usable.
        """
        transport, channel = self.connect()
        self.resource.render_POST = lambda request: 1 / 0
        channel.dataReceived(post("t.who"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        del self.resource.render_POST
        channel.dataReceived(post("t.who"))
        got = answers(transport.value())
        self.assertEqual(got[0][0], b"HTTP/1.1 500 Internal Server Error")
        self.assertEqual(result(got[1][2]), "/CN=Alice")
        self.close(channel)

    def test_dateOncePerSecond(self):
        """
        The C{Date} value is made again only when the second changes.
        """
        now = [86400.2]
        date = _Date(lambda: now[0])
        self.assertEqual(date(), b"Fri, 02 Jan 1970 00:00:00 GMT")
        now[0] = 86400.9
        self.assertIs(date(), date())
        now[0] = 86401.0
        self.assertEqual(date(), b"Fri, 02 Jan 1970 00:00:01 GMT")


class MalformedTests(ChannelTestsMixin, SynchronousTestCase):
    """
    Malformed requests get 400 (or 411, 413), the connection is closed and
    their address is charged.
    """

    def refused(self, data, status=b"HTTP/1.1 400 Bad Request"):
        transport, channel = self.connect()
        before = self.site.counts["malformed"]
        channel.dataReceived(data)
        value = transport.value()
        self.assertTrue(value.startswith(status + b"\r\n"), (data, value))
        self.assertIn(b"\r\nConnection: close\r\n", value)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.site.counts["malformed"], before + 1)
        channel.dataReceived(post("t.echo", 1))
        self.assertEqual(transport.value(), value)
        self.assertIsNone(channel._slow)
        self.close(channel)
        return value

    def test_badRequestLines(self):
        """
        Request lines that are not a token, a target and HTTP/1.x.
        """
        for line in [b"BREW", b"PO(ST /RPC2 HTTP/1.1", b"POST /RPC2", b"POST  /RPC2 HTTP/1.1",
                     b"POST /RPC2 HTTP/2.0", b"POST /R\x7fPC2 HTTP/1.1", b"POST /RPC2 HTTP/1.1 x",
                     b""]:
            self.refused(line + b"\r\nHost: x\r\n\r\n")

    def test_badHeaders(self):
        """
        Folded lines, lines without a name or colon, NUL or a bare CR or LF
        in a value, two lengths or credentials, a length with a
        transfer-encoding, a length that is not digits.
        """
        for headers in [
            b"X-A: 1\r\n  folded\r\n", b"\tX-A: 1\r\n", b"No colon\r\n", b"X A: 1\r\n",
            b": empty\r\n", b"X-A : 1\r\n", b"X-A: a\x00b\r\n", b"X-A: a\rb\r\n",
            b"X-A: a\nb\r\n", b"Content-Length: 5\r\n", b"Authorization: a\r\nAuthorization: b\r\n",
            b"Host: y\r\n", b"Transfer-Encoding: chunked\r\n",
        ]:
            self.refused(post("t.echo", 1, headers=headers))
        for length in [b"-1", b"0x10", b"1e3", b"+5", b"\xd9\xa1"]:
            self.refused(b"POST /RPC2 HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % (length,))

    def test_lengthRequired(self):
        """
        A POST without a length (nor a transfer-encoding) gets 411.
        """
        self.refused(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n<x/>",
                     b"HTTP/1.1 411 Length Required")

    def test_tooManyHeaders(self):
        """
        At most C{maxHeaders} headers.
        """
        transport, channel = self.connect()
        channel.maxHeaders = 3
        channel.dataReceived(post("t.echo", 1, headers=b"A: 1\r\n"))
        self.assertIn(b"200 OK", transport.value())
        self.close(channel)
        self.site.protocol = type("Few", (RPCChannel,), {"maxHeaders": 3})
        self.refused(post("t.echo", 1, headers=b"A: 1\r\nB: 2\r\n"))

    def test_headersTooLarge(self):
        """
        A head over C{totalHeadersSize} bytes is refused, whether it has
        ended or is still coming.
        """
        self.refused(post("t.echo", 1, headers=b"X-A: " + b"a" * 16400 + b"\r\n"))
        self.refused(b"POST /RPC2 HTTP/1.1\r\nX-A: " + b"a" * 16400)

    def test_bodyTooLarge(self):
        """
        A length over the site's C{maxBody} gets 413 from the headers: the
        body is not read (the connection is paused, then closed).
        """
        value = self.refused(
            b"POST /RPC2 HTTP/1.1\r\nContent-Length: 10001\r\n\r\n<?xml",
            b"HTTP/1.1 413 Content Too Large",
        )
        self.assertIn(b"<int>413</int>", value)
        self.assertIn(b"larger than the 10000 bytes accepted", value)
        transport, channel = self.connect()
        channel.dataReceived(b"POST /RPC2 HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")
        self.assertEqual(transport.producerState, "paused")
        self.close(channel)


class DeadlineTests(ChannelTestsMixin, SynchronousTestCase):
    """
    The request deadline, idle timeout, handshake and send deadlines.
    """

    def test_requestDeadline(self):
        """
        A request must arrive within C{requestDeadline} from its first byte,
        however steadily it trickles, body included.
        """
        for data in [post("t.echo", 1)[:40], post("t.echo", 1)[:-3]]:
            transport, channel = self.connect()
            for byte in data:
                channel.dataReceived(bytes([byte]))
                self.clock.advance(4.9 / len(data))
            self.assertFalse(transport.disconnected)
            self.clock.advance(0.2)
            self.assertTrue(transport.disconnected)
            self.close(channel)

    def test_wholeRequestNoTimer(self):
        """
        A request received at once starts no deadline: only the idle
        timer is left.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.echo", 1))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(99)
        channel.dataReceived(post("t.echo", 2))
        self.clock.advance(99)
        self.assertFalse(transport.disconnecting)
        self.close(channel)

    def test_idleTimeout(self):
        """
        A connection without a request for C{timeout} seconds is closed,
        and aborted if it does not close in C{abortTimeout}.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.echo", 1))
        self.clock.advance(99)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(15)
        self.assertTrue(transport.disconnected)
        self.close(channel)

    def test_notIdleDuringCall(self):
        """
        A pending call is not idleness; the idle time counts from its
        answer.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.hang"))
        self.clock.advance(250)
        self.assertFalse(transport.disconnecting)
        self.pending[0].callback(1)
        self.clock.advance(99)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.clock.advance(15)
        self.close(channel)

    def test_handshakeDeadline(self):
        """
        A TLS handshake must end within C{handshakeDeadline}.
        """
        transport, channel = self.connect(TLSTransport())
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.site.counts["handshake_timeouts"], 1)
        self.close(channel)
        transport, channel = self.connect(TLSTransport())
        self.clock.advance(5)
        channel.handshakeCompleted()
        self.assertTrue(channel._shookHands)
        self.clock.advance(50)
        self.assertFalse(transport.disconnecting)
        self.close(channel)

    def test_notReading(self):
        """
        A client that does not read its answer within C{sendDeadline} is
        cut off, and the site told.
        """
        transport, channel = self.connect(SlowReader())
        channel.dataReceived(post("t.echo", "a" * 200))
        self.clock.advance(29)
        transport.drain()
        self.clock.advance(10)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(post("t.echo", "b" * 200))
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.site.counts["not_reading"], 1)
        self.close(channel)


class BackpressureTests(ChannelTestsMixin, SynchronousTestCase):
    """
    One answer in memory at a time.
    """

    def test_waitsForDrain(self):
        """
        While an answer fills the transport, the next pipelined request is
        neither read nor answered.
        """
        transport, channel = self.connect(SlowReader())
        channel.dataReceived(post("t.echo", "a" * 200) * 3)
        self.assertEqual(len(answers(transport.value())), 1)
        self.assertEqual(transport.producerState, "paused")
        transport.drain()
        self.assertEqual(len(answers(transport.value())), 2)
        transport.drain()
        transport.drain()
        self.assertEqual(len(answers(transport.value())), 3)
        self.assertEqual(transport.producerState, "producing")
        self.close(channel)

    def test_eagerReadBounded(self):
        """
        While a call is pending, pipelined bytes are read up to
        C{eagerReadSize}, then the connection is paused until the answer.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.hang"))
        channel.dataReceived(post("t.echo", "x" * 2000) * 5)
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(post("t.echo", "x" * 2000) * 5)
        self.assertEqual(transport.producerState, "paused")
        self.pending[0].callback(0)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(len(answers(transport.value())), 11)
        self.close(channel)


class HandOverTests(ChannelTestsMixin, SynchronousTestCase):
    """
    Requests the channel does not serve go to twisted.web's channel, which
    keeps the connection.
    """

    def assertHandedOver(self, channel, transport):
        slow = channel._slow
        self.assertIsInstance(slow, GuardedChannel)
        self.assertIs(slow.transport, transport)
        if not transport.disconnecting:
            self.assertIs(transport.producer, slow)
        self.assertEqual(slow.peerHost, PEER.host)
        return slow

    def test_first(self):
        """
        A GET as the first request: twisted.web answers it, then the rest
        of the connection's requests.
        """
        transport, channel = self.connect()
        channel.dataReceived(b"GET /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"JobMon XML-RPC endpoint", transport.value())
        slow = self.assertHandedOver(channel, transport)
        channel.dataReceived(post("t.echo", "later"))
        self.assertIn(b"later", transport.value())
        self.assertEqual(self.channels, [slow])
        self.assertEqual(self.site.peers, {PEER.host: 1})
        self.close(channel)
        self.assertEqual(self.closed, [slow])

    def test_afterFastRequests(self):
        """
        After some fast requests on a kept-alive connection, the first
        other request (pipelined with a POST) is handed over with all that
        follows it; answers stay in order and the bytes sent add up.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.echo", 1))
        channel.dataReceived(post("t.echo", 2))
        sent = channel.sent
        channel.dataReceived(
            post("t.echo", 3) + b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n" + post("t.echo", 4)
        )
        value = transport.value()
        self.assertLess(value.index(b"<int>3</int>"), value.index(b"a page"))
        self.assertLess(value.index(b"a page"), value.index(b"<int>4</int>"))
        slow = self.assertHandedOver(channel, transport)
        self.assertGreater(slow.sent, sent)
        self.close(channel)
        self.assertEqual(self.closed, [slow])

    def test_others(self):
        """
        Other paths, HTTP/1.0, chunked bodies, C{Expect} and C{Upgrade} go
        to twisted.web.
        """
        body = xmlrpc.client.dumps(("c",), "t.echo").encode()
        for data, expect in [
            (post("t.echo", 1, path=b"/other"), b"404"),
            (post("t.echo", 1, path=b"/RPC2?a=b"), b"<int>1</int>"),
            (post("t.echo", 1).replace(b"HTTP/1.1", b"HTTP/1.0"), b"<int>1</int>"),
            (b"POST /RPC2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
             % (len(body), body), b"<string>c</string>"),
            (post("t.echo", 1, headers=b"Expect: 100-continue\r\n"), b"100 Continue"),
            (post("t.echo", 1, headers=b"Upgrade: h2c\r\n"), b"<int>1</int>"),
        ]:
            transport, channel = self.connect()
            channel.dataReceived(data)
            self.assertIn(expect, transport.value(), data)
            self.assertHandedOver(channel, transport)
            self.close(channel)

    def test_deadlineCarriesOver(self):
        """
        A request handed over still has to arrive within the deadline
        counted from its first byte.
        """
        transport, channel = self.connect()
        channel.dataReceived(b"POST /RPC2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n")
        self.clock.advance(3)
        channel.dataReceived(b"\r\n5\r\n")
        self.assertHandedOver(channel, transport)
        self.clock.advance(1.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.close(channel)

    def test_handshakeCarriesOver(self):
        """
        A connection whose handshake ended hands that over: the new channel
        knows, and starts no handshake deadline.
        """
        transport, channel = self.connect(TLSTransport())
        channel.handshakeCompleted()
        channel.dataReceived(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
        slow = self.assertHandedOver(channel, transport)
        self.assertTrue(slow._shookHands)
        self.clock.advance(20)
        self.assertFalse(transport.disconnecting)
        self.close(channel)

    def test_badRequestCharged(self):
        """
        twisted.web's refusals of a request handed over are charged too.
        """
        transport, channel = self.connect()
        channel.dataReceived(b"GET /page HTTP/1.1\r\nX A: 1\r\n\r\n")
        self.assertIn(b"400 Bad Request", transport.value())
        self.assertEqual(self.site.counts["malformed"], 1)
        self.close(channel)

    def test_noEndpoint(self):
        """
        A site without an XML-RPC leaf at C{rpcPath} serves everything
        through twisted.web.
        """
        self.site.rpcPath = b"/nowhere/deep"
        transport, channel = self.connect()
        channel.dataReceived(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"a page", transport.value())
        self.assertHandedOver(channel, transport)
        self.close(channel)


class ClientGoneTests(ChannelTestsMixin, SynchronousTestCase):
    """
    A client that goes away.
    """

    def test_callCancelled(self):
        """
        A call pending when its client goes away is cancelled, and nothing
        is written.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.hang"))
        request = self.requests[0]
        self.close(channel)
        self.assertEqual(self.cancelled, self.pending)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.closed, [channel])
        self.assertRaises(RuntimeError, request.finish)
        self.failureResultOf(request.notifyFinish(), ConnectionDone)

    def test_midBody(self):
        """
        A client gone while sending its body leaves nothing behind.
        """
        transport, channel = self.connect()
        data = post("t.echo", "x" * 500)
        channel.dataReceived(data[:-100])
        content = channel._wanting[1]
        self.close(channel)
        self.assertTrue(content._file.closed)
        self.assertEqual(self.requests, [])

    def test_finishedNotified(self):
        """
        C{notifyFinish} fires once the answer is sent.
        """
        transport, channel = self.connect()
        channel.dataReceived(post("t.hang"))
        d = self.requests[0].notifyFinish()
        self.assertNoResult(d)
        self.pending[0].callback(1)
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(self.requests[0].notifyFinish()))
        self.close(channel)


class FuzzTests(ChannelTestsMixin, SynchronousTestCase):
    """
    The parser fed arbitrary bytes, and real requests cut anywhere.
    """

    def setUp(self):
        super().setUp()
        # Every example comes from the same address: no limit on how many
        # may be malformed.
        self.site.rates = TokenBuckets(self.clock, 1e9, 10**12)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from([b"", b"POST /RPC2 HTTP/1.1\r\n",
                         b"POST /RPC2 HTTP/1.1\r\nContent-Length: 30\r\n"]),
        st.binary(max_size=300),
        st.lists(st.integers(0, 400), max_size=4),
    )
    def test_randomBytes(self, prefix, junk, cuts):
        """
        Whatever arrives, in whatever pieces, the channel raises nothing
        and writes only HTTP answers; closing leaves nothing behind.
        """
        data = prefix + junk
        transport, channel = self.connect()
        start = 0
        for cut in sorted(cuts) + [len(data)]:
            channel.dataReceived(data[start:cut])
            start = max(start, cut)
        value = transport.value()
        if value:
            self.assertTrue(value.startswith(b"HTTP/1.1 "), value[:100])
        self.close(channel)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(0, 2000), max_size=8))
    def test_cutAnywhere(self, cuts):
        """
        Pipelined requests, fast and handed over, are answered the same
        however their bytes are cut.
        """
        data = (post("t.echo", "a" * 100) + post("t.who")
                + b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n" + post("t.echo", 3))
        transport, channel = self.connect()
        channel.dataReceived(data)
        whole = transport.value()
        self.close(channel)
        transport, channel = self.connect()
        start = 0
        for cut in sorted(cuts) + [len(data)]:
            channel.dataReceived(data[start:cut])
            start = max(start, cut)
        dates = re.compile(rb"\r\nDate: [^\r]*")
        self.assertEqual(dates.sub(b"", transport.value()), dates.sub(b"", whole))
        self.assertEqual(dates.sub(b"", whole).count(b"HTTP/1.1 200 OK"), 4)
        self.close(channel)

"""
Tests for L{jobmon.protocols.xmlrpc.XMLRPCResource}: HTTP bytes in, XML-RPC
faults and results out, through a real L{Site} on a L{StringTransport}.
"""

import xmlrpc.client

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
from jobmon.server.identity import Identity
from jobmon.server.site import QuietSite

ALICE = Identity("/CN=Alice")


class XMLRPCResourceTests(SynchronousTestCase):
    """
    Drive the resource with raw HTTP.
    """

    def setUp(self):
        self.pending = []
        self.cancelled = []

        def hang(identity):
            d = defer.Deferred(lambda d: self.cancelled.append(d))
            self.pending.append(d)
            return d

        def boom(identity):
            raise ZeroDivisionError("oops")

        def refuse(identity, jobId):
            raise JobMonError(errors.NO_SUCH_JOB, "no job {} visible to you".format(jobId))

        self.identity = ALICE
        self.resource = XMLRPCResource(
            {
                "t.echo": lambda identity, value: value,
                "t.who": lambda identity: identity.dn,
                "t.hang": hang,
                "t.boom": boom,
                "t.refuse": refuse,
                "t.huge": lambda identity: 2**40,
            },
            self.identify,
            maxBody=2000,
        )
        root = Resource()
        root.putChild(b"RPC2", self.resource)
        # No idle timeout or request deadline on the global reactor: tests
        # that want them set them with a Clock.
        self.site = QuietSite(root, timeout=None, requestDeadline=None)

    def identify(self, request):
        if isinstance(self.identity, Exception):
            raise self.identity
        return self.identity

    def connect(self, addr=None, clock=None):
        """
        Open an HTTP connection to the site; return its transport and
        channel.  With C{clock}, the channel's timers run on it, with the
        site's request deadline and no idle timeout.
        """
        channel = self.site.buildProtocol(addr)
        if clock is not None:
            channel.callLater = clock.callLater
        transport = StringTransport()
        channel.makeConnection(transport)
        if clock is not None:
            channel.setTimeout(None)
        return transport, channel

    def post(self, body):
        """
        POST C{body} to /RPC2; return the transport (and the channel).
        """
        transport, channel = self.connect()
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return transport, channel

    def call(self, method, *params):
        """
        Call a method; return the parsed result or raise the fault.
        """
        transport, _ = self.post(xmlrpc.client.dumps(params, method).encode())
        response = transport.value()
        self.assertIn(b"200 OK", response.split(b"\r\n", 1)[0])
        body = response.split(b"\r\n\r\n", 1)[1]
        if b"Transfer-Encoding: chunked" in response:
            body = _unchunk(body)
        return xmlrpc.client.loads(body, use_builtin_types=True)[0][0]

    def assertFault(self, code, method, *params):
        e = self.assertRaises(xmlrpc.client.Fault, self.call, method, *params)
        self.assertEqual(e.faultCode, code, e.faultString)
        return e

    def test_echo(self):
        """
        A method's value is returned; the identity is passed in.
        """
        self.assertEqual(self.call("t.echo", {"a": [1, "x"]}), {"a": [1, "x"]})
        self.assertEqual(self.call("t.who"), "/CN=Alice")

    def test_listMethods(self):
        """
        C{system.listMethods} lists every method.
        """
        self.assertIn("t.echo", self.call("system.listMethods"))

    def test_jobmonError(self):
        """
        A L{JobMonError} becomes a fault with its code and message.
        """
        e = self.assertFault(errors.NO_SUCH_JOB, "t.refuse", "j1")
        self.assertEqual(e.faultString, "no job j1 visible to you")

    def test_unexpectedError(self):
        """
        Any other exception is logged and becomes fault 500, without
        details.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        e = self.assertFault(errors.INTERNAL, "t.boom")
        self.assertNotIn("oops", e.faultString)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any("log_failure" in event for event in observer))

    def test_unencodableResult(self):
        """
        A result XML-RPC cannot carry (an int over 32 bits) is a server
        error, not a broken response.
        """
        self.assertFault(errors.INTERNAL, "t.huge")
        self.flushLoggedErrors()

    def test_unknownMethod(self):
        """
        An unknown method name is a bad request.
        """
        e = self.assertFault(errors.BAD_REQUEST, "t.nope")
        self.assertIn("no such method: t.nope", e.faultString)

    def test_wrongArguments(self):
        """
        A wrong number of arguments is a bad request naming the arguments.
        """
        e = self.assertFault(errors.BAD_REQUEST, "t.echo")
        self.assertIn("t.echo takes (value)", e.faultString)

    def test_malformed(self):
        """
        Bodies that are not XML-RPC calls are bad requests.
        """
        for body in [b"not xml", b"<methodCall><methodName>t.echo</methodName><params><param>",
                     xmlrpc.client.dumps((1,), methodresponse=True).encode()]:
            transport, _ = self.post(body)
            fault = transport.value().split(b"\r\n\r\n", 1)[1]
            self.assertIn(b"<name>faultCode</name>", fault)
            self.assertIn(b"<int>400</int>", fault)

    def test_entityExpansion(self):
        """
        An XML entity-expansion bomb is refused without expanding it.
        """
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b"<methodCall><methodName>t.echo</methodName><params><param><value>"
            b"<string>&c;</string></value></param></params></methodCall>"
        )
        transport, _ = self.post(bomb)
        response = transport.value()
        self.assertNotIn(b"a" * 1000, response)
        self.assertIn(b"DTDs and entity declarations are not allowed", response)

    def test_bodyTooLarge(self):
        """
        A body over the limit is refused before parsing.
        """
        transport, _ = self.post(xmlrpc.client.dumps(("x" * 3000,), "t.echo").encode())
        fault = transport.value().split(b"\r\n\r\n", 1)[1]
        self.assertIn(b"<int>413</int>", fault)

    def test_notAuthenticated(self):
        """
        A caller that cannot be identified gets fault 401 and nothing runs.
        """
        self.identity = JobMonError(errors.NOT_AUTHENTICATED, "independent proxy")
        self.assertFault(errors.NOT_AUTHENTICATED, "t.hang")
        self.assertEqual(self.pending, [])

    def test_disconnectCancels(self):
        """
        A client that goes away while its call is pending cancels the call.
        """
        transport, channel = self.post(xmlrpc.client.dumps((), "t.hang").encode())
        self.assertEqual(len(self.pending), 1)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.cancelled, self.pending)

    def test_contentLengthOverLimit(self):
        """
        A body announced larger than the site's limit is not stored: it is
        counted and refused with fault 413.
        """
        self.site.maxBody = 1000
        body = xmlrpc.client.dumps(("x" * 5000,), "t.echo").encode()
        transport, channel = self.post(body)
        response = transport.value()
        self.assertIn(b"<int>413</int>", response)
        self.assertIn(b"larger than the 1000 bytes accepted", response)

    def test_chunkedOverLimit(self):
        """
        A chunked body that grows past the limit is dropped as it arrives.
        """
        self.site.maxBody = 1000
        transport, channel = self.connect()
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(10):
            channel.dataReceived(b"1f4\r\n" + b"x" * 500 + b"\r\n")
        channel.dataReceived(b"0\r\n\r\n")
        self.assertIn(b"<int>413</int>", transport.value())

    def test_tooDeep(self):
        """
        XML nested deeper than the limit is refused before it is built.
        """
        self.resource.maxDepth = 10
        value = "x"
        for _ in range(20):
            value = [value]
        e = self.assertFault(errors.BAD_REQUEST, "t.echo", value)
        self.assertIn("nested deeper than 10", e.faultString)

    def test_tooManyElements(self):
        """
        A call with more elements than the limit is refused.
        """
        self.resource.maxElements = 100
        e = self.assertFault(errors.BAD_REQUEST, "t.echo", [1] * 60)
        self.assertIn("more than 100 XML elements", e.faultString)

    def test_slowRequestAborted(self):
        """
        A client that starts a request and trickles it is cut off at the
        deadline, however steadily it sends.
        """
        clock = Clock()
        self.site.requestDeadline = 5
        transport, channel = self.connect(clock=clock)
        for byte in b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n":
            channel.dataReceived(bytes([byte]))
            clock.advance(0.1)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnected or transport.disconnecting)

    def test_idleKeepAliveNotCut(self):
        """
        The deadline counts only while a request is being received: an idle
        kept-alive connection is left to the idle timeout.
        """
        clock = Clock()
        self.site.requestDeadline = 5
        transport, channel = self.connect(clock=clock)
        body = xmlrpc.client.dumps(("hi",), "t.echo").encode()
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.assertIn(b"hi", transport.value())
        clock.advance(60)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_peerLimit(self):
        """
        At most C{maxPerPeer} connections from one address.
        """
        self.site.maxPerPeer = 1
        a = IPv4Address("TCP", "10.0.0.1", 1)
        _, first = self.connect(a)
        transport, refused = self.connect(a)
        self.assertIsInstance(refused, Refused)
        self.assertTrue(transport.disconnecting)
        first.connectionLost(Failure(ConnectionDone()))
        transport, second = self.connect(a)
        self.assertNotIsInstance(second, Refused)
        self.assertFalse(transport.disconnecting)
        second.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.site.peers, {})

    def test_get(self):
        """
        A browser's GET gets a short explanation.
        """
        transport, channel = self.connect()
        channel.dataReceived(b"GET /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"JobMon XML-RPC endpoint", transport.value())


def _unchunk(body):
    out, rest = b"", body
    while rest:
        size, rest = rest.split(b"\r\n", 1)
        n = int(size, 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2 :]
    return out


class _RecordingAgent:
    """
    An agent that records each request and answers with C{answer}.
    """

    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def request(self, method, uri, headers, producer):
        from twisted.web.client import ResponseDone

        self.requests.append((method, uri, headers))
        answer = self.answer

        class Response:
            code = 200

            def deliverBody(self, protocol):
                protocol.makeConnection(StringTransport())
                protocol.dataReceived(answer)
                protocol.connectionLost(Failure(ResponseDone()))

        return defer.succeed(Response())


class XMLRPCClientTests(SynchronousTestCase):
    """
    L{XMLRPCClient}'s C{Authorization} header.
    """

    def call(self, authorization):
        from jobmon.protocols.xmlrpc import XMLRPCClient

        agent = _RecordingAgent(xmlrpc.client.dumps(("ok",), methodresponse=True).encode())
        client = XMLRPCClient(agent, "https://s/RPC2", authorization=authorization)
        d = client.callRemote("jobmon.whoami")
        return agent, d

    def test_noAuthorization(self):
        """
        Without C{authorization}, no header is sent.
        """
        agent, d = self.call(None)
        self.assertEqual(self.successResultOf(d), "ok")
        [(_, _, headers)] = agent.requests
        self.assertFalse(headers.hasHeader(b"authorization"))

    def test_deferredAuthorization(self):
        """
        An C{authorization} that returns a L{Deferred} (a token read in a
        thread) is waited for; the request goes out with its value.
        """
        pending = defer.Deferred()
        agent, d = self.call(lambda: pending)
        self.assertNoResult(d)
        self.assertEqual(agent.requests, [])
        pending.callback("Bearer a.b.c")
        self.assertEqual(self.successResultOf(d), "ok")
        [(_, _, headers)] = agent.requests
        self.assertEqual(headers.getRawHeaders(b"authorization"), [b"Bearer a.b.c"])

    def test_failedAuthorization(self):
        """
        A token that cannot be had fails the call without a request.
        """
        from jobmon.certificates import CredentialError

        def missing():
            raise CredentialError("no bearer token")

        agent, d = self.call(missing)
        self.failureResultOf(d, CredentialError)
        self.assertEqual(agent.requests, [])


class ArityTests(SynchronousTestCase):
    """
    L{xmlrpc._arity} accepts exactly the positional calls that
    C{inspect.Signature.bind} accepts.
    """

    def test_sameAsBind(self):
        """
        For methods of every shape, and 0 to 5 arguments, the arity check
        and C{bind} agree.
        """
        import inspect

        from jobmon.protocols.xmlrpc import _arity

        def plain(identity, a, b):
            pass

        def defaults(identity, a, b=1, c=2):
            pass

        def star(identity, a, *rest):
            pass

        def keywordOnly(identity, a, *, b):
            pass

        def keywordDefault(identity, a, *, b=1):
            pass

        def positionalOnly(identity, a, /, b=3):
            pass

        for fn in (plain, defaults, star, keywordOnly, keywordDefault, positionalOnly):
            signature = inspect.signature(fn)
            least, most = _arity(signature)
            for n in range(6):
                try:
                    signature.bind(*range(n))
                    bound = True
                except TypeError:
                    bound = False
                self.assertEqual(least <= n <= most, bound, (fn.__name__, n))

"""
Tests for requests on the TCP wake channel (L{jobmon.protocols.wake}, both
ends) and the relayed result fragments (L{jobmon.protocols.relay}), driven
with L{StringTransport} and L{Clock}.
"""

import json
import xmlrpc.client

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.relay import RawResult, checkFragment, encodeFragment
from jobmon.protocols.wake import (
    MAX_LINE,
    MAX_REQUEST_LINE,
    WakeClientFactory,
    encodeRequest,
)
from jobmon.server.identity import Identity
from jobmon.server.wakes import WakeServerFactory
from tests.protocols.test_wake import FakeHub, lines

ALICE = Identity("/DC=org/DC=test/CN=Alice")


class ResultHub(FakeHub):
    """
    A L{FakeHub} that records the results sent on channels.
    """

    def __init__(self):
        super().__init__()
        self.results = []

    def channelResult(self, channel, requestId, result=None, error=None):
        self.results.append((requestId, result, error))
        return True


def hello(features=("requests",)):
    message = {"type": "hello", "job_id": "j1", "token": "tok"}
    if features is not None:
        message["features"] = list(features)
    return json.dumps(message).encode() + b"\n"


def frame(requestId, result, size=None):
    """
    The bytes a daemon sends for a result: header line and fragment.
    """
    body = encodeFragment(result)
    header = {"type": "result", "id": requestId, "length": len(body)}
    if size is not None:
        header["bytes"] = size
    return json.dumps(header).encode() + b"\n" + body


class ServerEndTests(SynchronousTestCase):
    """
    The server end: negotiation, request lines, result frames.
    """

    def setUp(self):
        self.clock = Clock()
        self.hub = ResultHub()
        self.factory = WakeServerFactory(self.hub, lambda t: ALICE, self.clock, maxResult=1000)
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def welcome(self, features=("requests",)):
        self.proto.dataReceived(hello(features))
        return lines(self.transport)

    def test_negotiated(self):
        """
        A daemon that lists the C{requests} feature is told that requests
        come on the channel, and the largest result it may send.
        """
        self.assertEqual(
            self.welcome(),
            [{"type": "welcome", "keepalive": 10, "requests": True, "max_result": 1000}],
        )
        self.assertTrue(self.proto.requests)

    def test_oldDaemon(self):
        """
        A daemon of the previous version (no features) gets the old welcome
        and wake lines, and may not send results on the channel.
        """
        self.assertEqual(self.welcome(features=None), [{"type": "welcome", "keepalive": 10}])
        self.assertFalse(self.proto.requests)
        self.proto.wake()
        self.assertEqual(lines(self.transport), [{"type": "wake"}])
        self.proto.dataReceived(frame("r1", {"a": 1}))
        [error] = lines(self.transport)
        self.assertEqual(error["type"], "error")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.hub.results, [])

    def test_notOffered(self):
        """
        A server that does not offer requests (as an older one) welcomes a
        daemon that asks for them without them.
        """
        self.factory.offerRequests = False
        self.assertEqual(self.welcome(), [{"type": "welcome", "keepalive": 10}])
        self.assertFalse(self.proto.requests)

    def test_requestLine(self):
        """
        A request goes as one JSON line; one with values JSON cannot carry
        (bytes, infinities) goes XML-RPC encoded.
        """
        self.welcome()
        self.assertIsNone(self.proto.request("r1", {"op": "stat", "path": "job.log"}))
        self.assertIsNone(self.proto.request("r2", {"op": "stat", "path": b"\xff"}))
        self.assertIsNone(self.proto.request("r3", {"op": "top", "interval": float("inf")}))
        first, second, third = lines(self.transport)
        self.assertNotIn("request", third)
        (request,), _ = xmlrpc.client.loads(third["xmlrpc"], use_builtin_types=True)
        self.assertEqual(request, {"op": "top", "interval": float("inf")})
        self.assertEqual(
            first, {"type": "request", "id": "r1", "request": {"op": "stat", "path": "job.log"}}
        )
        self.assertEqual(second["id"], "r2")
        (request,), _ = xmlrpc.client.loads(second["xmlrpc"], use_builtin_types=True)
        self.assertEqual(request, {"op": "stat", "path": b"\xff"})

    def test_requestTooLarge(self):
        """
        A request whose line would pass the daemon's limit is not sent; the
        caller gets the error to fail it with.
        """
        self.welcome()
        error = self.proto.request("r1", {"op": "ls", "path": "\x01" * (MAX_REQUEST_LINE // 5)})
        self.assertEqual(error.code, errors.TOO_LARGE)
        self.assertEqual(self.transport.value(), b"")

    def test_result(self):
        """
        A result frame reaches the hub as a L{RawResult} holding the
        daemon's fragment as it is, with the size from its header.
        """
        self.welcome()
        self.proto.dataReceived(frame("r1", {"size": 5, "data": b"hello"}, size=5))
        [(rid, result, error)] = self.hub.results
        self.assertEqual((rid, error), ("r1", None))
        self.assertIsInstance(result, RawResult)
        self.assertEqual(result.body, encodeFragment({"size": 5, "data": b"hello"}))
        self.assertEqual(result.size, 5)
        self.assertEqual(result.parsed(), {"size": 5, "data": b"hello"})

    def test_resultSplit(self):
        """
        A frame split anywhere across reads, followed by other lines in the
        same read, is put together; the lines after it are handled.
        """
        self.welcome()
        data = frame("r1", {"a": "x" * 50}, size=0) + b'{"type":"ping"}\n' + frame("r2", {"b": 2})
        for i in range(len(data)):
            self.proto.dataReceived(data[i:i + 1])
        self.assertEqual([r[0] for r in self.hub.results], ["r1", "r2"])
        self.assertEqual(self.hub.results[0][1].parsed(), {"a": "x" * 50})
        self.assertEqual(lines(self.transport), [{"type": "pong"}])

    def test_sizeSanitised(self):
        """
        A header's C{bytes} that is not an integer from 0 to the fragment's
        length counts as 0.
        """
        self.welcome()
        for size in (-1, 10**9, "5", True, None):
            self.proto.dataReceived(frame("r", {"a": 1}, size=size))
        self.assertEqual([r[1].size for r in self.hub.results], [0] * 5)

    def test_oversized(self):
        """
        A fragment longer than the server accepts fails its request with a
        clear error and closes the channel.
        """
        self.welcome()
        self.proto.dataReceived(b'{"type":"result","id":"r1","length":1001,"bytes":0}\n')
        [(rid, result, error)] = self.hub.results
        self.assertEqual((rid, result, error.code), ("r1", None, errors.TOO_LARGE))
        self.assertIn("1001 bytes is larger than the 1000 bytes", error.message)
        [line] = lines(self.transport)
        self.assertEqual(line["code"], errors.TOO_LARGE)
        self.assertTrue(self.transport.disconnecting)

    def test_malformedHeader(self):
        """
        A result header without an id or a length closes the channel.
        """
        for header in (
            {"type": "result", "length": 3},
            {"type": "result", "id": "r1"},
            {"type": "result", "id": "r1", "length": -1},
            {"type": "result", "id": "r1", "length": True},
        ):
            self.setUp()
            self.welcome()
            self.proto.dataReceived(json.dumps(header).encode() + b"\n")
            self.assertEqual(lines(self.transport)[0]["code"], errors.BAD_REQUEST)
            self.assertTrue(self.transport.disconnecting)
            self.assertEqual(self.hub.results, [])

    def test_forgedStructure(self):
        """
        A fragment that could change the response's structure (a second
        parameter, a fault, a DTD...) is refused as the job's error; the
        channel stays open.
        """
        self.welcome()
        good = encodeFragment({"a": 1})
        forged = [
            good.replace(b"</struct>", b"</struct></value></param><param><value><struct>"),
            good.replace(b"<member>", b"</params><fault><member>"),
            good.replace(b"<member>", b"<!DOCTYPE x><member>"),
            good.replace(b"<member>", b"<?pi x?><member>"),
            good.replace(b"<member>", b"</methodResponse><member>"),
            good.replace(b"<member>", b"<methodResponse><member>"),
            b"<params>\n<param>\n<value><int>1</int></value>\n</param>\n</params>\n",
            good[:-1],
        ]
        for body in forged:
            self.assertIsNotNone(checkFragment(body))
            header = {"type": "result", "id": "r", "length": len(body)}
            self.proto.dataReceived(json.dumps(header).encode() + b"\n" + body)
        self.assertEqual(len(self.hub.results), len(forged))
        for _, result, error in self.hub.results:
            self.assertIsNone(result)
            self.assertEqual(error.code, errors.REMOTE_ERROR)
        self.assertFalse(self.transport.disconnecting)

    def test_textNotMarkup(self):
        """
        Text that merely names markup (escaped by the encoder) is relayed.
        """
        self.welcome()
        result = {"cmd": "<param> </params> <fault> <!-- <?x methodResponse </methodResponse>"}
        self.proto.dataReceived(frame("r1", result))
        [(_, relayed, error)] = self.hub.results
        self.assertIsNone(error)
        self.assertEqual(relayed.parsed(), result)

    def test_errorResult(self):
        """
        An error line reaches the hub as the daemon's error struct (the hub
        sanitises it as for C{outputJobResult}).
        """
        self.welcome()
        self.proto.dataReceived(
            b'{"type":"result","id":"r1","error":{"code":1004,"message":"no such file"}}\n'
        )
        self.assertEqual(
            self.hub.results, [("r1", None, {"code": 1004, "message": "no such file"})]
        )

    def test_resultBeforeHello(self):
        """
        A result before the hello is refused.
        """
        self.proto.dataReceived(frame("r1", {"a": 1}))
        self.assertEqual(lines(self.transport)[0]["type"], "error")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.hub.results, [])

    def test_lostMidFrame(self):
        """
        A channel lost in the middle of a fragment delivers nothing, and
        tells the hub it was lost.
        """
        self.welcome()
        self.proto.dataReceived(frame("r1", {"a": 1})[:-5])
        self.proto.connectionLost(None)
        self.assertEqual(self.hub.results, [])
        self.assertEqual(self.hub.lost, [self.proto])


class ClientEndTests(SynchronousTestCase):
    """
    The daemon end: negotiation, request lines, results sent.
    """

    def setUp(self):
        self.clock = Clock()
        self.wakes = []
        self.requests = []
        self.factory = WakeClientFactory(
            lambda: ("j1", "tok"), lambda: self.wakes.append(1), self.clock,
            onRequest=lambda channel, items: self.requests.append((channel, items)),
        )
        self.proto = self.factory.buildProtocol(None)
        self.proto.welcomed.addErrback(lambda f: None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def tearDown(self):
        self.proto.connectionLost(None)

    def welcome(self, **extra):
        self.proto.dataReceived(
            json.dumps(dict({"type": "welcome", "keepalive": 10}, **extra)).encode() + b"\n"
        )
        self.transport.clear()

    def test_helloFeatures(self):
        """
        A daemon that serves requests lists the feature in its hello; one
        that does not, does not.
        """
        [message] = lines(self.transport)
        self.assertEqual(message["features"], ["requests"])
        plain = WakeClientFactory(lambda: ("j1", "tok"), lambda: None, self.clock)
        proto = plain.buildProtocol(None)
        proto.welcomed.addErrback(lambda f: None)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertNotIn("features", lines(transport)[0])
        proto.connectionLost(None)

    def test_requests(self):
        """
        Welcomed with requests, the daemon hands each request line to its
        runner, as C{getJobToDo} items, XML-RPC encoded ones decoded; a
        line longer than the server's own limit is accepted.
        """
        self.welcome(requests=True, max_result=5000)
        self.assertTrue(self.proto.requests)
        self.assertEqual(self.proto.maxResult, 5000)
        long = "x" * (MAX_LINE * 2)
        self.proto.dataReceived(encodeRequest("r1", {"op": "ls", "path": long}) + b"\n")
        self.proto.dataReceived(encodeRequest("r2", {"op": "stat", "path": b"\xff"}) + b"\n")
        self.assertEqual(self.requests, [
            (self.proto, [{"id": "r1", "request": {"op": "ls", "path": long}}]),
            (self.proto, [{"id": "r2", "request": {"op": "stat", "path": b"\xff"}}]),
        ])
        self.assertFalse(self.transport.disconnecting)

    def test_oldServer(self):
        """
        Against a server whose welcome does not offer requests the daemon
        keeps the old protocol: wake lines wake it, request lines are not
        run, and results are not sent on the channel.
        """
        self.welcome()
        self.assertFalse(self.proto.requests)
        self.proto.dataReceived(b'{"type":"wake"}\n')
        self.proto.dataReceived(encodeRequest("r1", {"op": "ls"}) + b"\n")
        self.assertEqual((self.wakes, self.requests), ([1], []))

    def test_sendResult(self):
        """
        A result goes as a header line and the fragment; the header counts
        the data's bytes.
        """
        self.welcome(requests=True)
        result = {"data": b"abc", "size": 3}
        self.assertTrue(self.proto.sendResult("r1", result))
        header, body = self.transport.value().split(b"\n", 1)
        self.assertEqual(
            json.loads(header),
            {"type": "result", "id": "r1", "length": len(body), "bytes": 3},
        )
        self.assertEqual(body, encodeFragment(result))
        self.assertIsNone(checkFragment(body))

    def test_sendError(self):
        """
        An error result goes as one line; one too long for a line is left
        to C{outputJobResult}.
        """
        self.welcome(requests=True)
        error = {"error": {"code": errors.NO_SUCH_FILE, "message": "no such file"}}
        self.assertTrue(self.proto.sendResult("r1", error))
        self.assertEqual(lines(self.transport), [dict(error, type="result", id="r1")])
        huge = {"error": {"code": errors.REMOTE_ERROR, "message": "m" * MAX_LINE}}
        self.assertFalse(self.proto.sendResult("r2", huge))
        self.assertEqual(self.transport.value(), b"")

    def test_sendTooLarge(self):
        """
        A result larger than the server accepts becomes an error saying so,
        rather than a fragment the server would close the channel for.
        """
        self.welcome(requests=True, max_result=100)
        self.assertTrue(self.proto.sendResult("r1", {"data": b"x" * 200}))
        [line] = lines(self.transport)
        self.assertEqual(line["error"]["code"], errors.REMOTE_ERROR)
        self.assertIn("larger than the 100 bytes", line["error"]["message"])

    def test_sendUnencodable(self):
        """
        A result XML-RPC cannot carry becomes an error.
        """
        self.welcome(requests=True)
        self.assertTrue(self.proto.sendResult("r1", {"n": None}))
        [line] = lines(self.transport)
        self.assertEqual(line["error"]["code"], errors.REMOTE_ERROR)

    def test_sendAfterLoss(self):
        """
        Once the channel is lost, results are left to C{outputJobResult}.
        """
        self.welcome(requests=True)
        self.proto.connectionLost(None)
        self.assertFalse(self.proto.sendResult("r1", {"a": 1}))


class BothEndsTests(SynchronousTestCase):
    """
    The two ends connected through memory.
    """

    def test_roundTrip(self):
        """
        A request sent by the server reaches the daemon, and its answer
        reaches the hub as the fragment the daemon encoded.
        """
        clock = Clock()
        hub = ResultHub()
        server = WakeServerFactory(hub, lambda t: ALICE, clock).buildProtocol(None)
        serverSide = StringTransport()
        server.makeConnection(serverSide)
        got = []
        client = WakeClientFactory(
            lambda: ("j1", "tok"), lambda: None, clock,
            onRequest=lambda channel, items: got.extend(items),
        ).buildProtocol(None)
        clientSide = StringTransport()
        client.makeConnection(clientSide)

        def pump():
            server.dataReceived(clientSide.value())
            clientSide.clear()
            client.dataReceived(serverSide.value())
            serverSide.clear()

        pump()
        self.assertTrue(client.requests)
        server.request("r1", {"op": "stat", "path": "job.log"})
        pump()
        self.assertEqual(got, [{"id": "r1", "request": {"op": "stat", "path": "job.log"}}])
        client.sendResult("r1", {"size": 12, "data": b"\x00\xff<&>"})
        client.sendResult("r2", JobMonError(errors.NO_SUCH_FILE, "gone").toResult())
        pump()
        [(rid, result, _), (rid2, _, error)] = hub.results
        self.assertEqual(rid, "r1")
        self.assertEqual(result.parsed(), {"size": 12, "data": b"\x00\xff<&>"})
        self.assertEqual(result.size, 5)
        self.assertEqual((rid2, error["code"]), ("r2", errors.NO_SUCH_FILE))
        # The user's response is the fragment wrapped, as dumps would make it.
        self.assertEqual(
            result.response(),
            xmlrpc.client.dumps(
                ({"size": 12, "data": b"\x00\xff<&>"},), methodresponse=True
            ).encode(),
        )
        client.connectionLost(None)
        server.connectionLost(None)

"""
Tests for L{jobmon.protocols.wake}: the TCP wake channel, both ends, driven
with L{StringTransport} and L{Clock}.
"""

import json

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.wake import (
    HELLO_TIMEOUT,
    MAX_LINE,
    WakeClientFactory,
    WakeServerProtocol,
)
from jobmon.server.admission import Refused
from jobmon.server.identity import Identity
from jobmon.server.wakes import WakeServerFactory

ALICE = Identity("/DC=org/DC=test/CN=Alice")


class FakeHub:
    """
    Records the channels bound and lost; refuses a token of C{"bad"}.
    """

    def __init__(self):
        self.hellos = []
        self.lost = []

    def channelHello(self, channel, identity, jobId, token):
        if token == "bad":
            raise JobMonError(errors.NOT_AUTHORIZED, "wake token does not match")
        self.hellos.append((channel, identity, jobId))
        return 10

    def channelLost(self, channel):
        self.lost.append(channel)


def lines(transport):
    """
    Return and clear the JSON messages written to C{transport}.
    """
    data = transport.value()
    transport.clear()
    return [json.loads(line) for line in data.splitlines() if line]


class WakeServerTests(SynchronousTestCase):
    """
    The server end of the wake channel.
    """

    def setUp(self):
        self.clock = Clock()
        self.hub = FakeHub()
        self.factory = WakeServerFactory(self.hub, lambda transport: ALICE, self.clock)
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def hello(self, token="tok"):
        self.proto.dataReceived(
            json.dumps({"type": "hello", "job_id": "j1", "token": token}).encode() + b"\n"
        )

    def test_welcome(self):
        """
        A good hello binds the channel and is answered with the keep-alive.
        """
        self.hello()
        self.assertEqual(lines(self.transport), [{"type": "welcome", "keepalive": 10}])
        self.assertEqual(self.hub.hellos, [(self.proto, ALICE, "j1")])
        self.assertEqual(self.proto.jobId, "j1")

    def test_wake(self):
        """
        C{wake} sends one wake line.
        """
        self.hello()
        lines(self.transport)
        self.proto.wake()
        self.assertEqual(lines(self.transport), [{"type": "wake"}])

    def test_notice(self):
        """
        C{notice} sends one notice line, its message cut to half a line.
        """
        self.hello()
        lines(self.transport)
        self.proto.notice("a second daemon was refused")
        self.proto.notice("x" * 5000)
        short, long = lines(self.transport)
        self.assertEqual(short, {"type": "notice", "message": "a second daemon was refused"})
        self.assertEqual(len(long["message"]), 2048)

    def test_sendMoved(self):
        """
        C{sendMoved} sends one C{moved} line and closes the channel: the
        daemon registers with another server.
        """
        self.hello()
        lines(self.transport)
        self.proto.sendMoved()
        self.assertEqual(lines(self.transport), [{"type": "moved"}])
        self.assertTrue(self.transport.disconnecting)

    def test_refusedHello(self):
        """
        A refused hello gets an error line and the connection is closed; the
        hub is not told of a loss for a channel it never bound.
        """
        self.hello("bad")
        [message] = lines(self.transport)
        self.assertEqual(message["type"], "error")
        self.assertEqual(message["code"], errors.NOT_AUTHORIZED)
        self.assertTrue(self.transport.disconnecting)
        self.proto.connectionLost(None)
        self.assertEqual(self.hub.lost, [])

    def test_refusalsLoggedWithinBudget(self):
        """
        Refused hellos are logged the first 5 per address per minute; the
        next line logged says how many were not.  Each refused peer is
        still told why.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        def refusals():
            return [e for e in logged if "refused" in e.get("log_format", "")]

        def refusedHello():
            proto = self.factory.buildProtocol(None)
            transport = StringTransport()
            proto.makeConnection(transport)
            proto.dataReceived(b'{"type":"hello","job_id":"j1","token":"bad"}\n')
            self.assertEqual(lines(transport)[0]["type"], "error")
            proto.connectionLost(None)

        for i in range(20):
            refusedHello()
        self.assertEqual(len(refusals()), 5)
        self.clock.advance(61)
        refusedHello()
        [*_, last] = refusals()
        self.assertEqual(len(refusals()), 6)
        self.assertEqual(last["more"], " (15 more refusals from there not logged)")

    def test_pingPong(self):
        """
        A ping is answered with a pong.
        """
        self.hello()
        lines(self.transport)
        self.proto.dataReceived(b'{"type":"ping"}\n')
        self.assertEqual(lines(self.transport), [{"type": "pong"}])

    def test_junk(self):
        """
        Junk (not JSON, no type, unknown type, invalid UTF-8) is refused with
        an error and the connection closed.
        """
        for junk in [b"hello\n", b"[1,2]\n", b'{"type":"launch"}\n', b"\xff\xfe\n"]:
            proto = self.factory.buildProtocol(None)
            transport = StringTransport()
            proto.makeConnection(transport)
            proto.dataReceived(junk)
            [message] = lines(transport)
            self.assertEqual(message["type"], "error", junk)
            self.assertTrue(transport.disconnecting)
            proto.connectionLost(None)
        self.assertEqual(self.hub.hellos, [])

    def test_longLine(self):
        """
        A line longer than the limit closes the channel.
        """
        self.proto.dataReceived(b"x" * (MAX_LINE + 10))
        [message] = lines(self.transport)
        self.assertEqual(message["code"], errors.TOO_LARGE)
        self.assertTrue(self.transport.disconnecting)

    def test_helloTimeout(self):
        """
        A connection that never says hello is aborted.
        """
        self.clock.advance(HELLO_TIMEOUT + 1)
        self.assertTrue(self.transport.disconnecting)

    def test_pingsDoNotDelayHello(self):
        """
        Pings before the hello do not extend its deadline: a peer that
        never names a job is aborted on time.
        """
        for _ in range(HELLO_TIMEOUT - 1):
            self.clock.advance(1)
            self.proto.dataReceived(b'{"type":"ping"}\n')
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.hub.hellos, [])

    def test_silentPeerDropped(self):
        """
        After the welcome, three silent keep-alive intervals abort the
        connection; each line received restarts the count.
        """
        self.hello()
        self.clock.advance(25)
        self.proto.dataReceived(b'{"type":"ping"}\n')
        self.clock.advance(25)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(6)
        self.assertTrue(self.transport.disconnecting)

    def test_lostTellsHub(self):
        """
        A bound channel that closes is reported to the hub, and leaves no
        timer behind.
        """
        self.hello()
        self.proto.connectionLost(None)
        self.assertEqual(self.hub.lost, [self.proto])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WakeClientTests(SynchronousTestCase):
    """
    The daemon end of the wake channel.
    """

    def setUp(self):
        self.clock = Clock()
        self.wakes = []
        self.factory = WakeClientFactory(
            lambda: ("j1", "tok"), lambda: self.wakes.append(1), self.clock
        )
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def test_hello(self):
        """
        The daemon says hello with its job id and current token.
        """
        self.assertEqual(
            lines(self.transport), [{"type": "hello", "job_id": "j1", "token": "tok"}]
        )

    def test_welcomeThenPing(self):
        """
        After the welcome the daemon pings every keep-alive interval.
        """
        lines(self.transport)
        self.proto.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        self.assertIs(self.successResultOf(self.proto.welcomed), self.proto)
        self.clock.advance(10)
        self.assertEqual(lines(self.transport), [{"type": "ping"}])
        self.proto.dataReceived(b'{"type":"pong"}\n')
        self.clock.advance(10)
        self.assertEqual(lines(self.transport), [{"type": "ping"}])

    def test_wake(self):
        """
        A wake line calls the daemon's callback.
        """
        self.proto.dataReceived(b'{"type":"welcome","keepalive":10}\n{"type":"wake"}\n')
        self.assertEqual(self.wakes, [1])

    def test_moved(self):
        """
        A C{moved} line calls the daemon's C{onMoved} with the channel; a
        daemon without one ignores it.
        """
        moved = []
        self.factory.onMoved = moved.append
        proto = self.factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        proto.dataReceived(b'{"type":"welcome","keepalive":10}\n{"type":"moved"}\n')
        self.assertEqual(moved, [proto])
        self.proto.dataReceived(b'{"type":"welcome","keepalive":10}\n{"type":"moved"}\n')
        self.assertFalse(self.transport.disconnecting)

    def test_onClosed(self):
        """
        C{onClosed} hears of a welcomed channel's close, with the reason,
        not of one closed before its welcome.
        """
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        closed = []
        self.factory.onClosed = lambda p, reason: closed.append((p, reason.type))
        early = self.factory.buildProtocol(None)
        early.makeConnection(StringTransport())
        early.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(early.welcomed)
        proto = self.factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        proto.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(closed, [(proto, ConnectionDone)])

    def test_notice(self):
        """
        A notice from the server is a warning in the daemon's log; the
        channel stays up.
        """
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import LogLevel, globalLogPublisher

        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.proto.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        self.proto.dataReceived(b'{"type":"notice","message":"refused a rival"}\n')
        [event] = [e for e in logged if e.get("notice") == "refused a rival"]
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertFalse(self.transport.disconnecting)

    def test_error(self):
        """
        An error from the server fails C{welcomed} with the server's code.
        """
        self.proto.dataReceived(
            b'{"type":"error","code":403,"message":"wake token does not match"}\n'
        )
        failure = self.failureResultOf(self.proto.welcomed, JobMonError)
        self.assertEqual(failure.value.code, 403)
        self.assertTrue(self.transport.disconnecting)

    def test_deadServer(self):
        """
        A server silent for three intervals is dropped, and the pinger stops.
        """
        self.proto.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        self.clock.advance(10)
        self.clock.advance(10)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnecting)
        self.proto.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostBeforeWelcome(self):
        """
        A connection lost before the welcome fails C{welcomed}.
        """
        self.proto.connectionLost(None)
        self.failureResultOf(self.proto.welcomed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_badKeepalive(self):
        """
        A welcome with an absurd keep-alive is refused.
        """
        self.proto.dataReceived(b'{"type":"welcome","keepalive":-1}\n')
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(self.proto.welcomed)


class PeerLimitTests(SynchronousTestCase):
    """
    The wake port accepts a bounded number of connections per address.
    """

    def test_limit(self):
        """
        Past the limit new connections from the same host are refused;
        closing one makes room; other hosts are not affected.
        """
        from twisted.internet.address import IPv4Address

        factory = WakeServerFactory(FakeHub(), lambda transport: ALICE, Clock(), maxPerPeer=2)
        a = IPv4Address("TCP", "10.0.0.1", 1)
        first = factory.buildProtocol(a)
        first.makeConnection(StringTransport())
        factory.buildProtocol(a).makeConnection(StringTransport())
        refused = factory.buildProtocol(a)
        self.assertIsInstance(refused, Refused)
        transport = StringTransport()
        refused.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        self.assertIsInstance(
            factory.buildProtocol(IPv4Address("TCP", "10.0.0.2", 1)), WakeServerProtocol
        )
        first.connectionLost(None)
        self.assertIsInstance(factory.buildProtocol(a), WakeServerProtocol)
        self.assertEqual(factory.refused, 1)

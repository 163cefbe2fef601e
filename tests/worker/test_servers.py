"""
Tests for a daemon with several servers (L{jobmon.worker.servers}): the
options, the move to the next server on each kind of loss, round robin,
backoff only after a whole round, a refusal that is no loss, the wake
channel's C{moved} line, and results of a lost server dropped.
"""

import os

from OpenSSL import SSL
from twisted.application.internet import backoffPolicy
from twisted.internet import defer, error
from twisted.internet._resolver import HostResolution
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, TCPTimedOutError
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import ResponseNeverReceived
from zope.interface import implementer

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.serverlist import splitServers
from jobmon.worker.daemon import JobDaemon, Options
from jobmon.worker.files import Workdir
from jobmon.worker.operations import Operations
from jobmon.worker.servers import (
    Server,
    ServerRing,
    checkServerURL,
    isServerLoss,
)
from tests.worker.test_daemon import FakeEndpoint, FakePort, FakeRPC, syncCall

URLS = {name: "https://{}.example/RPC2".format(name) for name in "abc"}


class OptionTests(SynchronousTestCase):
    """
    C{--server} is repeatable and C{JOBMON_SERVER} may hold a
    comma-separated list.
    """

    def setUp(self):
        self.base = self.mktemp()
        os.makedirs(self.base)
        self.environ = {}
        self.patch(os, "environ", self.environ)

    def parse(self, *args):
        options = Options()
        options.parseOptions(
            list(args) + ["--job-id", "1.0", "--workdir", self.base, "--auth", "x509",
                          "--proxy", os.path.join(self.base, "proxy")])
        return options

    def test_repeatable(self):
        """
        Each C{--server} adds one, in order; C{/RPC2} is added to a URL
        without a path, as with one server.
        """
        options = self.parse("--server", "https://a.example", "--server",
                             "https://b.example:9443/x")
        self.assertEqual(options["servers"],
                         ["https://a.example/RPC2", "https://b.example:9443/x"])

    def test_commaList(self):
        """
        C{--server} may hold a comma-separated list, spaces tolerated.
        """
        options = self.parse("--server", " https://a.example/RPC2 , https://b.example,")
        self.assertEqual(options["servers"],
                         ["https://a.example/RPC2", "https://b.example/RPC2"])

    def test_environment(self):
        """
        Without C{--server}, C{JOBMON_SERVER} names them; C{--server}
        overrides it.
        """
        self.environ["JOBMON_SERVER"] = "https://a.example/RPC2, https://b.example/RPC2"
        self.assertEqual(self.parse()["servers"], [URLS["a"].replace("a.", "a."),
                                                   "https://b.example/RPC2"])
        self.assertEqual(self.parse("--server", "https://c.example")["servers"],
                         ["https://c.example/RPC2"])

    def test_eachChecked(self):
        """
        Every URL of the list must be https:// with a host.
        """
        e = self.assertRaises(usage.UsageError, self.parse,
                              "--server", "https://a.example,http://b.example")
        self.assertIn("'http://b.example'", str(e))
        self.environ["JOBMON_SERVER"] = " , "
        e = self.assertRaises(usage.UsageError, self.parse)
        self.assertIn("--server is required", str(e))

    def test_helpers(self):
        """
        L{splitServers} drops repeats and blanks; L{checkServerURL} keeps a
        path it is given.
        """
        self.assertEqual(splitServers(["a, b", "a", " ,c"]), ["a", "b", "c"])
        self.assertEqual(checkServerURL("https://h:1/p"), "https://h:1/p")
        self.assertRaises(ValueError, checkServerURL, "https:///RPC2")


class LossTests(SynchronousTestCase):
    """
    L{isServerLoss}: what makes a daemon leave its server.
    """

    def test_losses(self):
        """
        No connection, no answer in time, a TLS or connection failure, or
        fault 503 mean the server is lost.
        """
        for loss in [
            ConnectionRefusedError(),
            TCPTimedOutError(),
            defer.TimeoutError(),
            SSL.Error("handshake failure"),
            ResponseNeverReceived([Failure(SSL.Error("alert"))]),
            ConnectionLost(),
            JobMonError(errors.UNAVAILABLE, "server is shutting down"),
        ]:
            self.assertTrue(isServerLoss(loss), loss)

    def test_refusals(self):
        """
        Other faults are the server's answer, not its loss.
        """
        for code in (errors.JOB_CONFLICT, errors.NO_SUCH_JOB, errors.TOO_MANY):
            self.assertFalse(isServerLoss(JobMonError(code, "no")))
        self.assertFalse(isServerLoss(ValueError("bug")))


class RingTests(SynchronousTestCase):
    """
    L{ServerRing}: round robin, and a pause only after a whole round.
    """

    def test_roundRobin(self):
        """
        Each loss moves to the next server; the last of a round says to
        pause; a registration that succeeds starts a new round.
        """
        ring = ServerRing(["a", "b", "c"])
        self.patch(ring, "log", type("Quiet", (), {"warn": lambda *a, **k: None})())
        ring.servers = [Server(u, None, None) for u in "abc"]
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [True, "b"])
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [True, "c"])
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [False, "a"])
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [True, "b"])
        ring.reached()
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [True, "c"])
        self.assertEqual([ring.lose("j", "x"), ring.current.url], [True, "a"])

    def test_single(self):
        """
        With one server there is nowhere to move.
        """
        ring = ServerRing([Server("a", None, None)])
        self.assertFalse(ring.lose("j", "x"))
        self.assertEqual(ring.current.url, "a")


def answers(name, mode="tcp"):
    """
    A fake server's answers: registration with a token and port of its
    own.
    """
    wake = {"mode": mode, "port": 9000 + ord(name) - ord("a"), "token": "tok-" + name}
    if mode == "udp":
        wake["secret"] = (name * 32).encode().hex()
    if mode == "poll":
        wake["max_wait"] = 50
    return {
        "jobmon.registerJob": lambda jobId, info: {"job_id": jobId, "wake": wake,
                                                  "reregister": 60},
        "jobmon.getJobToDo": [],
        "jobmon.outputJobResult": True,
        "jobmon.unregisterJob": True,
        "jobmon.waitForWork": "hang",
    }


class HangingOperations:
    """
    Operations whose every request waits until the test fires it.
    """

    ending = False

    def __init__(self, reactor):
        self.reactor = reactor
        self.pending = []

    async def run(self, request):
        d = defer.Deferred()
        self.pending.append(d)
        return await d

    def timeoutFor(self, request):
        return 30.0

    def end(self):
        self.ending = True

    def close(self):
        pass


class MoveTests(SynchronousTestCase):
    """
    A daemon with servers a, b and c moves to the next one when it loses
    its server.
    """

    def setUp(self):
        self.clock = Clock()
        self.connections = []
        self.ports = []
        self.udpPorts = []
        self.rpcs = {}
        for name in "abc":
            self.rpcs[name] = FakeRPC()
            self.rpcs[name].answers = answers(name)
        self.workdir = self.mktemp()
        os.makedirs(self.workdir)
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def makeDaemon(self, names="abc", mode="tcp", operations=None):
        """
        A daemon of job.7 with the servers C{names}.
        """

        def endpointOf(name):
            def wakeEndpoint(port):
                self.ports.append((name, port))
                return FakeEndpoint(self)

            return wakeEndpoint

        def listenUDP(number, protocol):
            port = FakePort(number, protocol)
            self.udpPorts.append(port)
            return port

        if mode != "tcp":
            for name in names:
                self.rpcs[name].answers = answers(name, mode)
        servers = [Server(URLS[n], self.rpcs[n], endpointOf(n)) for n in names]
        if operations is None:
            operations = Operations(self.clock, Workdir(self.workdir), None, None,
                                    runInThread=syncCall, runCommand=object())
        self.daemon = JobDaemon(
            self.clock, "job.7", servers[0].url, servers[0].rpc, operations,
            servers[0].wakeEndpoint, {"host": "wn"}, mode=mode, listenUDP=listenUDP,
            retryPolicy=backoffPolicy(initialDelay=1, maxDelay=4, jitter=lambda: 0),
            servers=servers,
        )
        self.addCleanup(self.stop)
        return self.daemon

    def stop(self):
        if self.daemon.running:
            self.daemon.stopService()
        self.flushLoggedErrors()

    def registrations(self, name):
        """
        The registrations sent to server C{name}.
        """
        return [c for c in self.rpcs[name].calls if c[0] == "jobmon.registerJob"]

    def welcome(self):
        """
        Welcome the daemon's last wake channel.
        """
        protocol, transport = self.connections[-1]
        protocol.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        return protocol, transport

    def moves(self):
        """
        The log lines about moves.
        """
        return [formatEvent(e) for e in self.observer if " lost (" in formatEvent(e)]

    def test_refusedMovesAtOnce(self):
        """
        A first server that refuses connections is left at once for the
        second: same job and instance, the second's token and wake port;
        one log line says so.
        """
        self.rpcs["a"].answers["jobmon.registerJob"] = error.ConnectionRefusedError()
        self.makeDaemon().startService()
        [(_, job, infoA)] = self.registrations("a")
        [(_, job, infoB)] = self.registrations("b")
        self.assertEqual(infoA["instance"], infoB["instance"])
        self.assertEqual(self.ports, [("b", 9001)])
        _, transport = self.welcome()
        self.assertIn(b'"token":"tok-b"', transport.value())
        self.assertEqual(self.daemon.serverURL, URLS["b"])
        [line] = self.moves()
        self.assertIn("job job.7: server https://a.example/RPC2 lost (cannot connect", line)
        self.assertIn("registering with server https://b.example/RPC2", line)

    def test_eachLoss(self):
        """
        A timeout, a TLS failure, a lost connection and fault 503 move the
        daemon too.
        """
        for loss in [
            defer.TimeoutError(),
            TCPTimedOutError(),
            SSL.Error("handshake failure"),
            ResponseNeverReceived([Failure(SSL.Error("alert"))]),
            JobMonError(errors.UNAVAILABLE, "server is shutting down"),
        ]:
            self.connections, self.ports = [], []
            self.rpcs["a"].calls, self.rpcs["b"].calls = [], []
            self.rpcs["a"].answers["jobmon.registerJob"] = loss
            daemon = self.makeDaemon()
            daemon.startService()
            self.assertEqual(self.ports, [("b", 9001)], loss)
            self.assertEqual(len(self.registrations("b")), 1)
            daemon.stopService()

    def test_conflictKeepsTheServer(self):
        """
        Fault 409 (another daemon holds the job) does not make the daemon
        hop: it tries the same server again after the usual delay.
        """
        self.rpcs["a"].answers["jobmon.registerJob"] = JobMonError(
            errors.JOB_CONFLICT, "another daemon holds job.7")
        self.makeDaemon().startService()
        self.clock.advance(1.5)
        self.assertEqual(len(self.registrations("a")), 2)
        self.assertEqual(self.registrations("b") + self.registrations("c"), [])
        self.assertEqual(self.moves(), [])

    def test_backoffAfterAFullRound(self):
        """
        When every server failed, the daemon waits the backoff delay (per
        round, not per server), then tries a whole round again.
        """
        for rpc in self.rpcs.values():
            rpc.answers["jobmon.registerJob"] = ConnectionRefusedError()
        self.makeDaemon().startService()
        counts = lambda: [len(self.registrations(n)) for n in "abc"]  # noqa: E731
        self.assertEqual(counts(), [1, 1, 1])
        self.clock.advance(1.4)
        self.assertEqual(counts(), [1, 1, 1])
        self.clock.advance(0.1)
        self.assertEqual(counts(), [2, 2, 2])
        # The second delay is longer: 1 * 1.5 ** 2.
        self.clock.advance(2.2)
        self.assertEqual(counts(), [2, 2, 2])
        self.clock.advance(0.05)
        self.assertEqual(counts(), [3, 3, 3])
        self.rpcs["a"].answers = answers("a")
        self.clock.advance(4)
        self.assertEqual(counts(), [4, 3, 3])
        self.assertEqual(self.daemon.serverURL, URLS["a"])

    def test_roundRobin(self):
        """
        The daemon goes on from the server it held: losing b leads to c,
        losing c to a.
        """
        self.rpcs["a"].answers["jobmon.registerJob"] = ConnectionRefusedError()
        self.makeDaemon().startService()
        protocol, _ = self.welcome()
        self.rpcs["b"].answers["jobmon.registerJob"] = ConnectionRefusedError()
        protocol.connectionLost(Failure(ConnectionLost()))
        self.clock.advance(1.5)
        self.assertEqual(self.ports[-1], ("c", 9002))
        protocol, _ = self.welcome()
        self.rpcs["a"].answers = answers("a")
        self.rpcs["c"].answers["jobmon.registerJob"] = ConnectionRefusedError()
        protocol.connectionLost(Failure(ConnectionLost()))
        self.clock.advance(1.5)
        self.assertEqual(self.ports[-1], ("a", 9000))
        self.assertEqual(len(self.moves()), 3)

    def test_cleanCloseMovesAtOnce(self):
        """
        A stopping server closes the wake channel cleanly and refuses the
        registration that follows at once: the daemon registers with the
        next server without waiting.
        """
        self.makeDaemon().startService()
        protocol, _ = self.welcome()
        self.rpcs["a"].answers["jobmon.registerJob"] = JobMonError(
            errors.UNAVAILABLE, "server is shutting down")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.assertEqual(len(self.registrations("a")), 2)
        self.assertEqual(self.ports[-1], ("b", 9001))

    def test_cleanCloseNotTooOften(self):
        """
        A server that keeps closing the channel cleanly gets an immediate
        registration at most every 10 s; otherwise the usual delay.
        """
        self.makeDaemon().startService()
        protocol, _ = self.welcome()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.assertEqual(len(self.registrations("a")), 2)
        protocol, _ = self.welcome()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.assertEqual(len(self.registrations("a")), 2)
        self.clock.advance(1.5)
        self.assertEqual(len(self.registrations("a")), 3)

    def test_movedLine(self):
        """
        A C{moved} line on the wake channel makes the daemon close it and
        register with the next server at once, without asking the first
        again.
        """
        self.makeDaemon().startService()
        protocol, transport = self.welcome()
        protocol.dataReceived(b'{"type":"moved"}\n')
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.assertEqual(len(self.registrations("a")), 1)
        self.assertEqual(len(self.registrations("b")), 1)
        self.assertEqual(self.ports[-1], ("b", 9001))
        [line] = self.moves()
        self.assertIn("(it handed the job over)", line)

    def test_resultOfALostServerDropped(self):
        """
        A request that was running when its server was lost is not
        answered to the next server.
        """
        operations = HangingOperations(self.clock)
        self.rpcs["a"].answers["jobmon.getJobToDo"] = [
            {"id": "r1", "request": {"op": "ls", "path": "."}}]
        self.makeDaemon(operations=operations).startService()
        protocol, transport = self.welcome()
        [pending] = operations.pending
        protocol.dataReceived(b'{"type":"moved"}\n')
        protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.welcome()
        pending.callback({"entries": []})
        for name in "ab":
            self.assertNotIn("jobmon.outputJobResult", self.rpcs[name].methods())
        self.assertNotIn(b'"type":"result"', transport.value())

    def test_pollLossMoves(self):
        """
        A poll that fails to connect, or with fault 503, moves the daemon
        to the next server at once.
        """
        self.makeDaemon(mode="poll").startService()
        self.assertEqual(self.rpcs["a"].methods(), ["jobmon.registerJob", "jobmon.waitForWork"])
        self.rpcs["a"].pending.pop().errback(ConnectionRefusedError())
        self.assertEqual(self.rpcs["b"].methods(), ["jobmon.registerJob", "jobmon.waitForWork"])
        self.assertEqual(self.rpcs["b"].calls[-1], ("jobmon.waitForWork", "job.7", 50.0))
        self.rpcs["b"].pending.pop().errback(
            JobMonError(errors.UNAVAILABLE, "server is shutting down"))
        self.assertEqual(self.rpcs["c"].methods(), ["jobmon.registerJob", "jobmon.waitForWork"])

    def test_pollNoSuchJobStays(self):
        """
        A poll refused otherwise (the server forgot the job) registers
        again with the same server, after the usual delay.
        """
        self.makeDaemon(mode="poll").startService()
        self.rpcs["a"].pending.pop().errback(JobMonError(errors.NO_SUCH_JOB, "gone"))
        self.clock.advance(1.5)
        self.assertEqual(len(self.registrations("a")), 2)
        self.assertEqual(self.registrations("b"), [])

    def test_udpReregistrationMoves(self):
        """
        A UDP daemon whose periodic re-registration fails registers with
        the next server at once, and listens where that one says.
        """
        self.makeDaemon(mode="udp").startService()
        self.rpcs["a"].answers["jobmon.registerJob"] = ConnectionRefusedError()
        self.clock.advance(60)
        self.assertEqual(len(self.registrations("b")), 1)
        self.assertEqual([p.number for p in self.udpPorts], [9000, 9001])

    def test_udpFetchLossMoves(self):
        """
        A UDP daemon whose C{getJobToDo} cannot reach the server registers
        with the next one at once, without waiting for its re-registration.
        """
        self.makeDaemon(mode="udp")
        self.rpcs["a"].answers["jobmon.getJobToDo"] = ConnectionRefusedError()
        self.daemon.startService()
        self.assertEqual(len(self.registrations("b")), 1)
        self.assertIn("jobmon.getJobToDo", self.rpcs["b"].methods())


    def test_udpFetchOfLeftServerIgnored(self):
        """
        A fetch that fails after the daemon left its server for the next
        one (it re-registered there meanwhile) does not make it leave the
        next one too: it fetches there instead.
        """
        self.makeDaemon(mode="udp")
        a = self.rpcs["a"]
        register = a.answers["jobmon.registerJob"]
        # Re-registrations every 10 s, within the fetch's timeout (30 s).
        a.answers["jobmon.registerJob"] = lambda *args: dict(register(*args), reregister=10)
        a.answers["jobmon.getJobToDo"] = "hang"
        self.daemon.startService()
        [fetch] = a.pending
        a.answers["jobmon.registerJob"] = ConnectionRefusedError()
        self.clock.advance(10)
        self.assertEqual(len(self.registrations("b")), 1)
        fetch.errback(ConnectionRefusedError())
        self.clock.advance(0)
        self.assertEqual(self.registrations("c"), [])
        self.assertEqual(len(self.moves()), 1)
        self.assertIn("jobmon.getJobToDo", self.rpcs["b"].methods())


class SingleServerTests(SynchronousTestCase):
    """
    With one server nothing moves: the daemon backs off as before, and no
    move is logged.
    """

    def test_noMove(self):
        """
        A refused registration is tried again after the backoff delay.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        clock = Clock()
        rpc = FakeRPC()
        rpc.answers = answers("a")
        rpc.answers["jobmon.registerJob"] = ConnectionRefusedError()
        workdir = self.mktemp()
        os.makedirs(workdir)
        connections = []
        case = type("Case", (), {"connections": connections})()
        daemon = JobDaemon(
            clock, "job.7", URLS["a"], rpc,
            Operations(clock, Workdir(workdir), None, None, runInThread=syncCall,
                       runCommand=object()),
            lambda port: FakeEndpoint(case), {"host": "wn"},
            retryPolicy=backoffPolicy(initialDelay=1, maxDelay=4, jitter=lambda: 0),
        )
        daemon.startService()
        self.assertEqual(rpc.methods(), ["jobmon.registerJob"])
        clock.advance(1.5)
        self.assertEqual(rpc.methods(), ["jobmon.registerJob"] * 2)
        self.assertFalse([e for e in observer if " lost (" in formatEvent(e)])
        daemon.stopService()


@implementer(IHostnameResolver)
class TwoAddresses:
    """
    A resolver that gives every name two IPv4 addresses.
    """

    def __init__(self):
        self.asked = []

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.asked.append(hostName)
        resolution = HostResolution(hostName)
        receiver.resolutionBegan(resolution)
        for ip in ("127.0.0.2", "127.0.0.3"):
            receiver.addressResolved(IPv4Address("TCP", ip, portNumber))
        receiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class ResolvingReactor(MemoryReactorClock):
    """
    A memory reactor whose names resolve to two addresses.
    """

    def __init__(self):
        super().__init__()
        self.nameResolver = TwoAddresses()

    def installNameResolver(self, resolver):
        old, self.nameResolver = self.nameResolver, resolver
        return old


class AddressesTests(SynchronousTestCase):
    """
    A server name that resolves to several addresses: the daemon's
    connections name the host, so each one tries every address (nothing
    pins the first one resolved).
    """

    def failFirstAttempt(self, reactor):
        """
        Refuse the connection to the first address; return the addresses
        tried.
        """
        host, port, factory, _, _ = reactor.tcpClients[0]
        factory.clientConnectionFailed(reactor.connectors[0],
                                       Failure(error.ConnectionRefusedError()))
        reactor.advance(1)
        return [(c[0], c[1]) for c in reactor.tcpClients]

    def test_wakeEndpoints(self):
        """
        The wake endpoints (sealed and TLS) resolve the name at each
        connection and try the next address when one refuses.
        """
        from twisted.internet.ssl import optionsForClientTLS

        from jobmon.worker.daemon import _server

        for tlsOnly in (False, True):
            reactor = ResolvingReactor()
            policy = type("Policy", (), {
                "creatorForNetloc": lambda self, host, port: optionsForClientTLS(host)})()
            server = _server(reactor, "https://jobmon.example:8443/RPC2", "jobmon.example",
                             policy, None, tlsOnly)
            endpoint = (server.wakeEndpoint if tlsOnly else server.sealedEndpoint)(9000)
            d = endpoint.connect(Factory.forProtocol(Protocol))
            self.assertEqual(self.failFirstAttempt(reactor),
                             [("127.0.0.2", 9000), ("127.0.0.3", 9000)])
            self.assertEqual(reactor.nameResolver.asked, ["jobmon.example"])
            self.assertNoResult(d)
            d.cancel()
            self.failureResultOf(d)

    def test_agent(self):
        """
        The daemon's calls go through an agent that resolves the name too
        and tries the next address.
        """
        from twisted.web.client import Agent

        from jobmon.protocols.xmlrpc import XMLRPCClient

        reactor = ResolvingReactor()
        rpc = XMLRPCClient(Agent(reactor, connectTimeout=10),
                           "https://jobmon.example:8443/RPC2")
        d = rpc.callRemote("jobmon.ping")
        self.assertEqual(self.failFirstAttempt(reactor),
                         [("127.0.0.2", 8443), ("127.0.0.3", 8443)])
        d.cancel()
        self.failureResultOf(d)

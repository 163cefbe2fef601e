"""
Tests for L{jobmon.worker.daemon.JobDaemon}: register, connect the wake channel,
fetch, run and post, re-register after a loss, unregister on stop — with a
fake server and L{Clock}.
"""

import builtins
import io
import os
import time

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.protocols.sealed import MAGIC, SealedClientProtocol
from jobmon.worker.daemon import (
    SEALED_TRIES,
    JobDaemon,
    Options,
    StartupError,
    loadStartup,
    makeService,
    xmlSafe,
)
from jobmon.worker.files import Workdir
from jobmon.worker.operations import Operations
from tests.support import TestPKI
from tests.test_credentials import fakeJWT


def syncCall(f, *args):
    """
    Run a "thread" call at once, for tests.
    """
    return defer.maybeDeferred(f, *args)


class FakeRPC:
    """
    Records calls; answers each from C{self.answers[method]} (a callable
    taking the arguments, or a value).
    """

    def __init__(self):
        self.calls = []
        self.answers = {}
        self.pending = []

    def callRemote(self, method, *args):
        self.calls.append((method,) + args)
        answer = self.answers.get(method)
        if answer == "hang":
            d = defer.Deferred()
            self.pending.append(d)
            return d
        if callable(answer):
            return defer.maybeDeferred(answer, *args)
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)

    def close(self):
        self.closed = True
        return defer.succeed(None)

    def methods(self):
        return [c[0] for c in self.calls]


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    Connects the factory's protocol to a L{StringTransport}.
    """

    def __init__(self, case):
        self.case = case

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.case.connections.append((protocol, transport))
        return defer.succeed(protocol)


class FakeCredentials(Service):
    """
    Stands for L{jobmon.worker.tls.CredentialPolicy}: loaded when the test
    fires L{loaded}.
    """

    def __init__(self):
        self.loaded = defer.Deferred()

    def whenLoaded(self):
        """
        Fire when the test says the options are loaded.
        """
        d = defer.Deferred()
        self.loaded.addCallback(lambda _: d.callback(None))
        return d


class JobDaemonTests(SynchronousTestCase):
    """
    Drive a L{JobDaemon} against a fake server.
    """

    def setUp(self):
        self.clock = Clock()
        self.rpc = FakeRPC()
        self.connections = []
        self.ports = []
        workdir = self.mktemp()
        os.makedirs(workdir)
        with open(os.path.join(workdir, "log.txt"), "wb") as f:
            f.write(b"one\ntwo\n")
        self.rpc.answers = {
            "jobmon.registerJob": lambda jobId, info: {
                "job_id": jobId,
                "wake": {"mode": "tcp", "port": 9999, "token": "tok"},
                "keepalive": 10,
            },
            "jobmon.getJobToDo": [],
            "jobmon.outputJobResult": True,
            "jobmon.unregisterJob": True,
        }

        self.workdir = workdir
        self.daemon = self.makeDaemon()

    def makeDaemon(self, **kwargs):
        """
        A TCP-wake daemon for job.7 against the fake server.
        """

        def wakeEndpoint(port):
            self.ports.append(port)
            return FakeEndpoint(self)

        return JobDaemon(
            self.clock,
            "job.7",
            "https://server/RPC2",
            self.rpc,
            Operations(self.clock, Workdir(self.workdir), None, None, runInThread=syncCall,
                       runCommand=object()),
            wakeEndpoint,
            {"host": "wn", "wake": "tcp"},
            retryPolicy=backoffPolicy(initialDelay=1, maxDelay=4, jitter=lambda: 0),
            **kwargs,
        )

    def start(self):
        """
        Start the daemon and welcome its first wake channel.
        """
        self.daemon.startService()
        protocol, transport = self.connections[-1]
        protocol.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        return protocol, transport

    def test_registersThenConnects(self):
        """
        The daemon registers, connects to the port the server named, says
        hello with its token and fetches work once welcomed.
        """
        _, transport = self.start()
        self.assertEqual(self.ports, [9999])
        self.assertIn(b'"token":"tok"', transport.value())
        self.assertEqual(self.rpc.methods(), ["jobmon.registerJob", "jobmon.getJobToDo"])
        self.assertEqual(self.rpc.calls[0][1], "job.7")

    def sealedDaemon(self, offered):
        """
        A daemon that can seal its channel, against a server that offers
        the sealed channel or not.
        """
        if offered:
            register = self.rpc.answers["jobmon.registerJob"]
            self.rpc.answers["jobmon.registerJob"] = lambda jobId, info: dict(
                register(jobId, info), wake={"mode": "tcp", "port": 9999, "token": "tok",
                                             "sealed": 1})
        sealedPorts = []

        def sealedEndpoint(port):
            sealedPorts.append(port)
            return FakeEndpoint(self)

        self.daemon = self.makeDaemon(sealedEndpoint=sealedEndpoint)
        self.daemon.startService()
        return sealedPorts

    def test_sealedWhenOffered(self):
        """
        A server that offers the sealed channel gets one, sealed with the
        registration's token, on the port it named; the hello is sealed.
        """
        sealedPorts = self.sealedDaemon(offered=True)
        self.assertEqual((sealedPorts, self.ports), ([9999], []))
        [(protocol, transport)] = self.connections
        self.assertIsInstance(protocol, SealedClientProtocol)
        self.assertEqual((protocol.jobId, protocol.secret), ("job.7", "tok"))
        self.assertTrue(transport.value().startswith(MAGIC))
        self.assertNotIn(b"hello", transport.value())

    def test_fallBackToTLS(self):
        """
        After L{SEALED_TRIES} sealed channels in a row failed before their
        welcome, the daemon uses TLS; a welcome on a sealed channel before
        that resets the count.
        """
        sealedPorts = self.sealedDaemon(offered=True)
        for welcome in [False, True] + [False] * SEALED_TRIES:
            protocol, _ = self.connections[-1]
            self.assertIsInstance(protocol, SealedClientProtocol)
            if welcome:
                protocol.wrapped.dataReceived(b'{"type":"welcome","keepalive":10}\n')
                protocol.connectionLost(Failure(ConnectionDone()))
            else:
                protocol.wrapped.dataReceived(
                    b'{"type":"error","code":404,"message":"no such job"}\n')
            self.clock.advance(5)
        protocol, transport = self.connections[-1]
        self.assertNotIsInstance(protocol, SealedClientProtocol)
        self.assertIn(b'"type":"hello"', transport.value())
        self.assertEqual(len(sealedPorts), 2 + SEALED_TRIES)

    def test_tlsWhenNotOffered(self):
        """
        A server that does not offer the sealed channel (an earlier
        version, or C{--wake-tls-only}) gets TLS.
        """
        sealedPorts = self.sealedDaemon(offered=False)
        self.assertEqual((sealedPorts, self.ports), ([], [9999]))
        [(protocol, transport)] = self.connections
        self.assertNotIsInstance(protocol, SealedClientProtocol)
        self.assertIn(b'"type":"hello"', transport.value())

    def test_wakeRunsAndPosts(self):
        """
        A wake fetches the queued requests; each runs and its result is
        posted, errors included.
        """
        protocol, _ = self.start()
        self.rpc.answers["jobmon.getJobToDo"] = [
            {"id": "r1", "request": {"op": "tail", "path": "log.txt", "lines": 1}},
            {"id": "r2", "request": {"op": "cat", "path": "missing"}},
            {"id": "r3", "request": {"op": "cat", "path": "../x"}},
        ]
        protocol.dataReceived(b'{"type":"wake"}\n')
        posts = {c[2]: c[3] for c in self.rpc.calls if c[0] == "jobmon.outputJobResult"}
        self.assertEqual(posts["r1"]["data"], b"two\n")
        self.assertEqual(posts["r2"]["error"]["code"], errors.NO_SUCH_FILE)
        self.assertEqual(posts["r3"]["error"]["code"], errors.OUTSIDE_WORKDIR)

    def test_wakeDuringFetch(self):
        """
        A wake that arrives while a fetch is in flight causes one more fetch
        after it, not a concurrent one.
        """
        protocol, _ = self.start()
        self.rpc.answers["jobmon.getJobToDo"] = "hang"
        protocol.dataReceived(b'{"type":"wake"}\n')
        protocol.dataReceived(b'{"type":"wake"}\n')
        protocol.dataReceived(b'{"type":"wake"}\n')
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 2)
        self.rpc.pending.pop(0).callback([])
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 3)
        self.rpc.pending.pop(0).callback([])
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 3)

    def test_opTimeout(self):
        """
        An operation that outlives the daemon's limit is reported as a
        remote timeout.
        """
        protocol, _ = self.start()
        self.daemon.operations._runInThread = lambda f, *a: defer.Deferred()
        self.rpc.answers["jobmon.getJobToDo"] = [{"id": "r1", "request": {"op": "ls"}}]
        protocol.dataReceived(b'{"type":"wake"}\n')
        self.clock.advance(31)
        [post] = [c for c in self.rpc.calls if c[0] == "jobmon.outputJobResult"]
        self.assertEqual(post[3]["error"]["code"], errors.REMOTE_TIMEOUT)

    def test_reconnectRegistersAgain(self):
        """
        When the wake channel is lost the daemon registers again, with
        backoff, and reconnects.
        """
        protocol, transport = self.start()
        protocol.connectionLost(None)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 1)
        self.clock.advance(1.5)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 2)
        self.assertEqual(len(self.connections), 2)

    def test_serverDownBackoff(self):
        """
        While the server refuses registration the daemon retries with
        capped exponential backoff.
        """
        self.rpc.answers["jobmon.registerJob"] = ConnectionRefusedError("refused")
        self.daemon.startService()
        times = [0.0]
        for _ in range(200):
            self.clock.advance(0.125)
            if self.rpc.methods().count("jobmon.registerJob") > len(times):
                times.append(self.clock.seconds())
        gaps = [b - a for a, b in zip(times, times[1:])]
        # Delays 1.5, 2.25, 3.375, then capped at 4 (no jitter here).
        self.assertEqual(gaps[:4], [1.5, 2.25, 3.375, 4.0])
        self.assertEqual(set(gaps[4:]), {4.0})
        self.flushLoggedErrors()

    def test_stopUnregisters(self):
        """
        Stopping unregisters the job and closes the wake channel.
        """
        protocol, transport = self.start()
        d = self.daemon.stopService()
        self.assertEqual(self.rpc.methods()[-1], "jobmon.unregisterJob")
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.successResultOf(d)

    def test_stopWhenServerGone(self):
        """
        Stopping does not hang when the server cannot be told.
        """
        protocol, transport = self.start()
        self.rpc.answers["jobmon.unregisterJob"] = "hang"
        d = self.daemon.stopService()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.successResultOf(d)

    def test_registrationWaitsForCredentials(self):
        """
        The credentials service runs as the daemon's child, and the first
        registration waits until it has loaded the TLS options.
        """
        credentials = FakeCredentials()
        self.daemon = self.makeDaemon(credentials=credentials)
        self.daemon.startService()
        self.assertTrue(credentials.running)
        self.assertEqual(self.rpc.methods(), [])
        credentials.loaded.callback(None)
        self.assertEqual(self.rpc.methods(), ["jobmon.registerJob"])
        self.assertEqual(len(self.connections), 1)
        protocol, _ = self.connections[-1]
        protocol.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        d = self.daemon.stopService()
        protocol.connectionLost(None)
        self.successResultOf(d)
        self.assertFalse(credentials.running)

    def test_refusedRegistration(self):
        """
        A refused registration is retried; the fault is logged, not raised.
        """
        self.rpc.answers["jobmon.registerJob"] = JobMonError(
            errors.JOB_CONFLICT, "job job.7 is registered by another identity"
        )
        self.daemon.startService()
        self.clock.advance(1.5)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 2)
        self.flushLoggedErrors()


class XMLSafeTests(SynchronousTestCase):
    """
    Tests for L{xmlSafe}.
    """

    def test_escapes(self):
        """
        Undecodable bytes and control characters in names become escapes;
        bytes values are left alone.
        """
        name = os.fsdecode(b"a\xffb\x01c\td")
        self.assertEqual(
            xmlSafe({"entries": [{"name": name}], "data": b"\x00\xff"}, names=True),
            {"entries": [{"name": "a\\xffb\\x01c\td", "name_bytes": b"a\xffb\x01c\td"}],
             "data": b"\x00\xff"},
        )


class FakePort:
    """
    A listening UDP port that records being stopped.
    """

    def __init__(self, number, protocol):
        self.number = number
        self.protocol = protocol
        self.stopped = False

    def stopListening(self):
        self.stopped = True


class OtherModesTests(SynchronousTestCase):
    """
    The daemon in UDP and poll modes.
    """

    def setUp(self):
        self.clock = Clock()
        self.rpc = FakeRPC()
        self.ports = []
        self.workdir = self.mktemp()
        os.makedirs(self.workdir)
        self.rpc.answers = {
            "jobmon.getJobToDo": [],
            "jobmon.outputJobResult": True,
            "jobmon.unregisterJob": True,
        }

    def daemon(self, mode):
        def listenUDP(number, protocol):
            port = FakePort(number, protocol)
            self.ports.append(port)
            return port

        return JobDaemon(
            self.clock,
            "job.7",
            "https://server/RPC2",
            self.rpc,
            Operations(self.clock, Workdir(self.workdir), None, None, runInThread=syncCall,
                       runCommand=object()),
            None,
            {"host": "wn"},
            mode=mode,
            listenUDP=listenUDP,
            retryPolicy=backoffPolicy(initialDelay=1, maxDelay=4, jitter=lambda: 0),
        )

    def test_udp(self):
        """
        A UDP daemon registers, listens on the port the server names with
        the secret it gives, looks for work, wakes on an authentic datagram
        and re-registers at the interval.
        """
        from jobmon.protocols.udp import encodeWake

        secret = b"s" * 32
        self.rpc.answers["jobmon.registerJob"] = lambda jobId, info: {
            "wake": {"mode": "udp", "port": 7777, "token": "t", "secret": secret.hex()},
            "reregister": 60,
        }
        daemon = self.daemon("udp")
        daemon.startService()
        [(_, _, info)] = [c for c in self.rpc.calls if c[0] == "jobmon.registerJob"]
        self.assertEqual(info["wake"], "udp")
        [port] = self.ports
        self.assertEqual(port.number, 7777)
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 1)
        port.protocol.datagramReceived(encodeWake("job.7", 1, secret), ("10.0.0.1", 1))
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 2)
        self.clock.advance(60)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 2)
        self.assertEqual(self.rpc.methods().count("jobmon.getJobToDo"), 3)
        # The same instance each time: the server keeps the secret.
        instances = {c[2]["instance"] for c in self.rpc.calls if c[0] == "jobmon.registerJob"}
        self.assertEqual(len(instances), 1)
        daemon.stopService()
        self.assertTrue(port.stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_udpServerDown(self):
        """
        While registration fails the UDP daemon retries with backoff.
        """
        self.rpc.answers["jobmon.registerJob"] = ConnectionRefusedError()
        daemon = self.daemon("udp")
        daemon.startService()
        self.clock.advance(1.5)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 2)
        daemon.stopService()

    def startPolling(self):
        """
        Start a poll daemon against a server that offers a 50 s wait and
        leaves each C{waitForWork} pending.
        """
        self.rpc.answers["jobmon.registerJob"] = {
            "wake": {"mode": "poll", "token": "t", "max_wait": 50}, "reregister": 60,
        }
        self.rpc.answers["jobmon.waitForWork"] = "hang"
        daemon = self.daemon("poll")
        daemon.startService()
        return daemon

    def test_poll(self):
        """
        A poll daemon keeps one waitForWork pending, runs what it returns
        and polls again at once.
        """
        daemon = self.startPolling()
        self.assertEqual(self.rpc.calls[-1], ("jobmon.waitForWork", "job.7", 50.0))
        self.rpc.pending.pop().callback([{"id": "r1", "request": {"op": "ls"}}])
        self.assertIn("jobmon.outputJobResult", self.rpc.methods())
        self.assertEqual(self.rpc.methods().count("jobmon.waitForWork"), 2)
        d = daemon.stopService()
        self.successResultOf(d)
        self.assertEqual(self.rpc.methods()[-1], "jobmon.unregisterJob")

    def test_pollReregistersAfterError(self):
        """
        A failed poll (server restarted, job forgotten) leads to a new
        registration after a backoff delay.
        """
        daemon = self.startPolling()
        self.rpc.pending.pop().errback(JobMonError(errors.NO_SUCH_JOB, "not registered"))
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 1)
        self.clock.advance(1.5)
        self.assertEqual(self.rpc.methods().count("jobmon.registerJob"), 2)
        self.assertEqual(self.rpc.methods()[-1], "jobmon.waitForWork")
        daemon.stopService()
        self.flushLoggedErrors()


    def test_pollNotice(self):
        """
        A poll ended with fault 409 (the server refused a second daemon for
        this job) is logged as the server's message; the daemon polls on
        at once, with its registration token when the server checks it,
        without registering again.
        """
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import LogLevel, globalLogPublisher

        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.rpc.answers["jobmon.registerJob"] = {
            "wake": {"mode": "poll", "token": "t", "max_wait": 50}, "reregister": 60,
            "token_checks": True,
        }
        self.rpc.answers["jobmon.waitForWork"] = "hang"
        daemon = self.daemon("poll")
        daemon.startService()
        self.assertEqual(self.rpc.calls[-1], ("jobmon.waitForWork", "job.7", 50.0, "t"))
        self.rpc.pending.pop().errback(
            JobMonError(errors.JOB_CONFLICT, "another daemon for job job.7 was refused")
        )
        self.assertEqual(self.rpc.methods(), ["jobmon.registerJob", "jobmon.waitForWork",
                                              "jobmon.waitForWork"])
        [event] = [e for e in logged if e.get("notice", "").startswith("another daemon")]
        self.assertEqual(event["log_level"], LogLevel.warn)
        # Another daemon took the job over meanwhile: the server leaves it.
        self.rpc.answers["jobmon.unregisterJob"] = False
        self.successResultOf(daemon.stopService())
        self.assertEqual(self.rpc.calls[-1], ("jobmon.unregisterJob", "job.7", "t"))
        [left] = [e for e in logged if "left registered" in e.get("log_format", "")]
        self.assertEqual(left["job_id"], "job.7")

    def test_udpNotice(self):
        """
        A notice in the reply to a UDP daemon's re-registration is logged
        as a warning.
        """
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import LogLevel, globalLogPublisher

        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.rpc.answers["jobmon.registerJob"] = {
            "wake": {"mode": "udp", "port": 7777, "token": "t", "secret": "00" * 32,
                     "notice": "a second daemon was refused"},
            "reregister": 60,
        }
        daemon = self.daemon("udp")
        daemon.startService()
        [event] = [e for e in logged if e.get("notice") == "a second daemon was refused"]
        self.assertEqual(event["log_level"], LogLevel.warn)
        daemon.stopService()
        # The server did not say it checks tokens: none is sent.
        self.assertEqual(self.rpc.calls[-1], ("jobmon.unregisterJob", "job.7"))


class OptionsParseOnlyTests(SynchronousTestCase):
    """
    L{Options.postOptions} only parses: the credential, the CA directory
    and the commands files are read by L{loadStartup}, as the daemon starts.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)

    def parseWithoutFiles(self, *args):
        """
        Parse C{args} (after a valid server, job id and working directory)
        with every way of reading a file or a directory failing the test.
        """

        def forbidden(*a, **kw):
            raise AssertionError("postOptions read {!r}".format(a[:1]))

        options = Options()
        self.patch(builtins, "open", forbidden)
        self.patch(io, "open", forbidden)
        self.patch(os, "listdir", forbidden)
        self.patch(os, "scandir", forbidden)
        options.parseOptions([
            "--server", "https://jobmon.example:8443/RPC2", "--job-id", "1234.0",
            "--workdir", self.base,
        ] + list(args))
        return options

    def test_x509ReadsNoFile(self):
        """
        With a proxy, a CA directory and a commands file that do not even
        exist, the options parse; their paths are kept for the start.
        """
        missing = os.path.join(self.base, "missing")
        options = self.parseWithoutFiles(
            "--proxy", missing + "/x509up", "--ca-dir", missing + "/ca",
            "--commands", missing + "/commands.toml", "--allow-signal", "USR1",
            "--redact", "PIN",
        )
        self.assertEqual(options["auth"], "x509")
        self.assertEqual(options["proxy"], missing + "/x509up")
        self.assertEqual(options["ca-dir"], missing + "/ca")
        self.assertEqual(options["commands"], [missing + "/commands.toml"])
        self.assertEqual(options["allow-signal"], frozenset(["USR1"]))
        self.assertFalse(hasattr(options, "commandTable"))
        self.assertFalse(hasattr(options, "authorization"))

    def test_share(self):
        """
        C{--share} is repeatable and keeps each FQAN in its short form.
        """
        options = self.parseWithoutFiles(
            "--share", "/cms", "--share", "/cms/Role=NULL/Capability=NULL",
            "--share", "/cms/higgs/Role=prod")
        self.assertEqual(options["share"], ["/cms", "/cms", "/cms/higgs/Role=prod"])

    def test_tokenReadsNoFile(self):
        """
        With a bearer token file that does not exist, the options parse too;
        the token mode has no proxy.
        """
        options = self.parseWithoutFiles(
            "--auth", "token", "--token-file", os.path.join(self.base, "token"),
            "--proxy", os.path.join(self.base, "x509up"),
        )
        self.assertEqual(options["auth"], "token")
        self.assertIsNone(options["proxy"])
        self.assertEqual(options["token-file"], os.path.join(self.base, "token"))

    def test_badValuesStillRefused(self):
        """
        Values that need no file are still checked while parsing.
        """
        for args, message in [
            (["--wake", "smoke"], "--wake must be tcp, udp or poll"),
            (["--auth", "kerberos"], "--auth must be one of"),
            (["--allow-signal", "NOPE"], "--allow-signal: "),
            (["--share", "cms"], "--share: an FQAN is"),
            (["--share", "/cms"] * 17, "at most 16 groups"),
            (["--workdir", os.path.join(self.base, "no")], "is not a directory"),
        ]:
            e = self.assertRaises(
                usage.UsageError, Options().parseOptions,
                ["--server", "https://jobmon.example/RPC2", "--job-id", "1.0",
                 "--workdir", self.base] + args,
            )
            self.assertIn(message, str(e))


class LoadStartupTests(SynchronousTestCase):
    """
    L{loadStartup}: the files the daemon cannot start without, each bad one
    a L{StartupError} of one line naming it; L{makeService} turns it into
    C{SystemExit("jobmon-daemon: ...")}, the last line C{jobmon-run}
    reports.
    """

    def setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.base = self.tpki.base
        self.commands = os.path.join(self.base, "commands.toml")
        with open(self.commands, "w") as f:
            f.write('[commands.hello]\nargv = ["echo", "hello"]\n')

    def options(self, *args):
        """
        Parsed options with alice's proxy, the test CA and a commands file,
        then C{args}.
        """
        options = Options()
        options.parseOptions([
            "--server", "https://jobmon.example:8443/RPC2", "--job-id", "1234.0",
            "--workdir", self.base, "--proxy", self.tpki.proxies["alice"],
            "--ca-dir", self.tpki.caDir, "--commands", self.commands,
        ] + list(args))
        return options

    def refused(self, *args):
        """
        The one-line message of L{loadStartup}'s L{StartupError} for the
        options C{args}.
        """
        e = self.assertRaises(StartupError, loadStartup, self.options(*args))
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message)
        return message

    def writeToken(self, name, claims):
        """
        A token file holding a token with C{claims}.
        """
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(fakeJWT(claims))
        return path

    def test_x509(self):
        """
        With a proxy there is no C{Authorization} header; the commands are
        loaded.
        """
        startup = loadStartup(self.options())
        self.assertIsNone(startup.authorization)
        self.assertIn("hello", startup.commandTable)

    def test_token(self):
        """
        With a token, the header is read from its file.
        """
        path = self.writeToken("token", {"exp": time.time() + 3600})
        startup = loadStartup(self.options("--auth", "token", "--token-file", path))
        with open(path) as f:
            self.assertEqual(startup.authorization(), "Bearer " + f.read())

    def test_errors(self):
        """
        Each bad file: one line naming it and what is wrong.
        """
        missing = os.path.join(self.base, "missing")
        garbage = os.path.join(self.base, "garbage")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        emptyCA = os.path.join(self.base, "ca")
        os.makedirs(emptyCA)
        badCommands = os.path.join(self.base, "bad.toml")
        with open(badCommands, "w") as f:
            f.write("[commands.x\n")
        expired = self.writeToken("expired", {"exp": time.time() - 3600})
        for args, expected in [
            (["--proxy", missing], "cannot read " + missing),
            (["--proxy", garbage], garbage),
            (["--proxy", self.tpki.pki.ca.certPath], "holds no private key"),
            (["--ca-dir", missing], "cannot read CA directory " + missing),
            (["--ca-dir", emptyCA], "no CA certificate"),
            (["--commands", missing], missing + ": cannot read: No such file or directory"),
            (["--commands", badCommands], badCommands),
            (["--auth", "token", "--token-file", missing],
             "cannot read the bearer token " + missing),
            (["--auth", "token", "--token-file", expired],
             "bearer token from {} expired at".format(expired)),
        ]:
            self.assertIn(expected, self.refused(*args), args)

    def test_makeServiceExits(self):
        """
        L{makeService} stops with the program's name and the one line,
        before building anything.
        """
        missing = os.path.join(self.base, "missing")
        e = self.assertRaises(SystemExit, makeService, self.options("--ca-dir", missing))
        self.assertEqual(
            str(e.code),
            "jobmon-daemon: cannot read CA directory {}: No such file or "
            "directory".format(missing),
        )

"""
Tests for L{jobmon.server.service}: the server's wiring, built from parsed
options on a L{MemoryReactorClock} (ports, timers, start-up checks, stop),
and L{jobmon.server.reloader}: credential reloads, whose failures are
logged and leave the last good credentials in use.
"""

import errno
import json
import os
import re
import signal

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from jobmon.certificates import CredentialError
from jobmon.devtools import pki
from jobmon.protocols.sealed import SniffingFactory
from jobmon.protocols.udp import UDPWakeSender
from jobmon.server.reloader import CredentialReloader
from jobmon.server.service import (
    Options,
    ServerService,
    StartupError,
    apiMethods,
    buildService,
)
from jobmon.server.site import QuietSite
from jobmon.server.tls import ServerContextFactory
from jobmon.server.tokens import TokenConfigError
from jobmon.server.wakes import WakeServerFactory
from tests.support import ROOT


def synchronously(f, *args):
    """
    A C{runInThread} that runs C{f} at once, in the caller's thread.
    """
    return defer.maybeDeferred(f, *args)


@implementer(IListeningPort)
class FakePort:
    """
    A listening port that remembers whether it was closed.

    @ivar listening: whether C{stopListening} has not been called yet.
    """

    def __init__(self, address):
        self.address = address
        self.listening = True

    def startListening(self):
        """
        Nothing: it listens from the start.
        """

    def stopListening(self):
        """
        Stop listening.
        """
        self.listening = False

    def getHost(self):
        """
        The address it listens on.
        """
        return self.address


class ServerReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} that also takes UDP ports, gives each port
    asked for as 0 a number of its own, and keeps every port it returned.

    @ivar udpPorts: the C{listenUDP} calls, as C{(port, protocol,
        interface)}.
    @ivar ports: every L{FakePort} returned.
    @ivar refuse: if set, C{listenSSL} on this port number fails.
    """

    refuse = None

    def __init__(self):
        super().__init__()
        self.udpPorts = []
        self.ports = []

    def _port(self, kind, number, interface):
        if number == 0:
            number = 40000 + len(self.ports)
        port = FakePort(IPv4Address(kind, interface or "0.0.0.0", number))
        self.ports.append(port)
        return port

    def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):
        """
        Record the call; fail if told to.
        """
        if port == self.refuse:
            raise CannotListenError(
                interface, port, OSError(errno.EADDRINUSE, "Address already in use")
            )
        super().listenSSL(port, factory, contextFactory, backlog, interface)
        return self._port("TCP", port, interface)

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """
        Record the call.
        """
        super().listenTCP(port, factory, backlog, interface)
        return self._port("TCP", port, interface)

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        """
        Record the call.
        """
        self.udpPorts.append((port, protocol, interface))
        return self._port("UDP", port, interface)

    def callFromThread(self, f, *args, **kwargs):
        """
        Call at once: there is no other thread here.
        """
        f(*args, **kwargs)


class ServiceTestsMixin:
    """
    A test PKI, options naming its files, and the server built from them.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.pki = pki.initPKI(os.path.join(self.base, "pki"), users=())
        self.reactor = ServerReactor()

    def parse(self, *extra):
        """
        Parse the server's options for the test PKI, with C{extra}.
        """
        options = Options()
        options.parseOptions([
            "--interface", "127.0.0.1", "--https-port", "0", "--wake-port", "0",
            "--hostcert", self.pki.hostCertPath, "--hostkey", self.pki.hostKeyPath,
            "--ca-dir", self.pki.ca.hashedDir,
            "--audit-log", os.path.join(self.base, "audit.jsonl"),
            "--history", os.path.join(self.base, "history.sqlite3"),
            "--reload-interval", "45", "--cleanup-interval", "7",
        ] + list(extra))
        return options

    def build(self, *extra, installSignal=False):
        """
        Build the server from options with C{extra}, on the test reactor;
        stop it after the test if it runs.
        """
        service = buildService(
            self.parse(*extra), self.reactor, runInThread=synchronously,
            installSignal=installSignal,
        )
        service.freezeHeap = False

        def stop():
            if service.running:
                return service.stopService()
            if service.audit is not None:
                service.audit.close()

        self.addCleanup(stop)
        return service

    def start(self, service):
        """
        Start C{service} as C{twistd} does.
        """
        service.privilegedStartService()
        service.startService()

    def stop(self, service):
        """
        Stop C{service}; its Deferred has fired.
        """
        self.successResultOf(service.stopService())


class BuildTests(ServiceTestsMixin, SynchronousTestCase):
    """
    L{buildService} reads no file, and listens on nothing, until the
    service starts.
    """

    def test_noIO(self):
        """
        Building the server with a host key that does not exist succeeds,
        opens no audit log and listens on nothing.
        """
        service = self.build("--hostkey", os.path.join(self.base, "missing.pem"))
        self.assertIsInstance(service, ServerService)
        self.assertFalse(os.path.exists(os.path.join(self.base, "audit.jsonl")))
        self.assertEqual(self.reactor.sslServers, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_optionsOnlyParse(self):
        """
        Parsing names the files without reading them: a missing host
        certificate is no error yet, and no audit log is created.
        """
        options = self.parse("--hostcert", "/nonexistent.pem")
        self.assertEqual(options["hostcert"], "/nonexistent.pem")
        self.assertFalse(os.path.exists(os.path.join(self.base, "audit.jsonl")))


class StartTests(ServiceTestsMixin, SynchronousTestCase):
    """
    Starting the server binds its ports with their TLS contexts, opens its
    files and schedules its timers.
    """

    def test_listeners(self):
        """
        The HTTPS port serves the XML-RPC site and the wake port the wake
        factory, both on the interface asked for, with contexts for the
        host credential (TLS 1.2 at most on the wake port).
        """
        service = self.build()
        self.start(service)
        [(httpsPort, site, httpsCtx, _, httpsIf)] = self.reactor.sslServers
        [(wakePort, sniffing, _, wakeIf)] = self.reactor.tcpServers
        self.assertEqual((httpsPort, wakePort, httpsIf, wakeIf), (0, 0, "127.0.0.1", "127.0.0.1"))
        self.assertIsInstance(site, QuietSite)
        self.assertIsInstance(sniffing, SniffingFactory)
        self.assertIsInstance(sniffing.wakeFactory, WakeServerFactory)
        self.assertIs(sniffing.tlsFactory.wrappedFactory, sniffing.wakeFactory)
        self.assertIsNotNone(sniffing.lookup)
        [_, wakeCtx] = service.credentials
        self.assertIsNot(wakeCtx, httpsCtx)
        for ctx in (httpsCtx, wakeCtx):
            self.assertIsInstance(ctx, ServerContextFactory)
            self.assertEqual(ctx.hostCert, self.pki.hostCertPath)
            self.assertIsInstance(ctx.getContext(), SSL.Context)
        self.assertIsNone(httpsCtx.maxVersion)
        self.assertEqual(wakeCtx.maxVersion, SSL.TLS1_2_VERSION)
        self.assertTrue(httpsCtx.requireCertificate)
        self.assertEqual(self.reactor.udpPorts, [])

    def test_wakeTLSOnly(self):
        """
        With C{--wake-tls-only}, the wake port refuses sealed connections
        and registration replies do not offer them.
        """
        service = self.build("--wake-tls-only")
        self.start(service)
        [(_, sniffing, _, _)] = self.reactor.tcpServers
        self.assertIsNone(sniffing.lookup)
        self.assertFalse(service.hub.registrations.wakes["tcp"].sealed)

    def test_wakeSealedOffered(self):
        """
        By default the registration replies offer the sealed wake channel.
        """
        service = self.build()
        self.assertTrue(service.hub.registrations.wakes["tcp"].sealed)

    def test_wakePortTold(self):
        """
        The hub tells daemons the wake port actually bound.
        """
        service = self.build()
        self.start(service)
        self.assertEqual(service.hub.wakePort, service.endpoints["wake"].port.getHost().port)
        self.assertNotEqual(service.hub.wakePort, 0)

    def test_startWithoutPrivilegedStart(self):
        """
        C{startService} alone binds the ports too, once.
        """
        service = self.build()
        service.startService()
        self.assertEqual((len(self.reactor.sslServers), len(self.reactor.tcpServers)), (1, 1))

    def test_udp(self):
        """
        With C{--udp-broadcast}, a UDP port on the server's interface (any
        port number) sends the wakes.
        """
        service = self.build("--udp-broadcast", "127.255.255.255:9999")
        self.start(service)
        [(port, protocol, interface)] = self.reactor.udpPorts
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        self.assertIsInstance(protocol, UDPWakeSender)
        self.assertIs(protocol, service.hub.udpSender)

    def test_udpAnyInterface(self):
        """
        Listening on every interface, the UDP port is bound to none.
        """
        service = self.build("--udp-broadcast", "127.255.255.255:9999",
                             "--interface", "0.0.0.0")
        self.start(service)
        [(_, _, interface)] = self.reactor.udpPorts
        self.assertEqual(interface, "")

    def test_metrics(self):
        """
        With C{--metrics-port}, a plain TCP port on the metrics interface.
        """
        service = self.build("--metrics-port", "9100")
        self.start(service)
        [_, (port, _, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (9100, "127.0.0.1"))

    def test_timers(self):
        """
        The hub's cleanup cycle, the credential reloads and the wake
        channels' credential checks are scheduled on the injected reactor,
        at their intervals.
        """
        service = self.build()
        self.start(service)
        self.assertEqual(
            sorted(call.getTime() for call in self.reactor.getDelayedCalls()), [7.0, 10.0, 45.0]
        )

    def test_filesOpened(self):
        """
        Starting opens the audit log and the history database.
        """
        service = self.build()
        self.start(service)
        self.assertTrue(os.path.exists(os.path.join(self.base, "audit.jsonl")))
        self.assertTrue(os.path.exists(os.path.join(self.base, "history.sqlite3")))

    def test_portFile(self):
        """
        The port file gives the ports bound, by name; the start-up line
        says them too.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        path = os.path.join(self.base, "ports.json")
        service = self.build("--port-file", path, "--metrics-port", "0")
        self.start(service)
        with open(path) as f:
            ports = json.load(f)
        self.assertEqual(ports, {
            name: bound.port.getHost().port for name, bound in service.endpoints.items()
        })
        self.assertEqual(sorted(ports), ["https", "metrics", "wake"])
        [line] = [e for e in observer if "listening" in e["log_format"]]
        self.assertEqual((line["https"], line["wake"]), (ports["https"], ports["wake"]))
        self.assertIn("metrics on {}".format(ports["metrics"]), line["udp_text"])

    def test_logFiles(self):
        """
        With C{--log-dir}, the log files are written while the server runs.
        """
        directory = os.path.join(self.base, "logs")
        service = self.build("--log-dir", directory)
        self.start(service)
        self.stop(service)
        with open(os.path.join(directory, "jobmon-server.jsonl")) as f:
            self.assertIn("JobMon server listening", f.read())


class StartupErrorTests(ServiceTestsMixin, SynchronousTestCase):
    """
    A file the server cannot start without stops its start with one line;
    a port that cannot be had stops it too.
    """

    def test_badHostKey(self):
        """
        A missing host key is a L{StartupError} naming it, and nothing
        listens.
        """
        missing = os.path.join(self.base, "missing.pem")
        service = self.build("--hostkey", missing)
        error = self.assertRaises(StartupError, service.privilegedStartService)
        self.assertEqual(
            str(error), "cannot read the host key {}: no such file or directory".format(missing)
        )
        self.assertEqual(self.reactor.sslServers, [])

    def test_badTokenIssuers(self):
        """
        A token issuer file that cannot be read is a L{StartupError}.
        """
        missing = os.path.join(self.base, "tokens.toml")
        service = self.build("--token-issuers", missing)
        error = self.assertRaises(StartupError, service.load)
        self.assertIn(missing, str(error))
        self.assertNotIn("\n", str(error))

    def test_auditLogCannotOpen(self):
        """
        An audit log that cannot be opened is a L{StartupError} naming it.
        """
        path = os.path.join(self.base, "nowhere", "audit.jsonl")
        service = self.build("--audit-log", path)
        error = self.assertRaises(StartupError, service.load)
        self.assertEqual(
            str(error), "cannot open the audit log {}: No such file or directory".format(path)
        )

    def test_loadOnce(self):
        """
        L{ServerService.load}, called before the service starts (as
        C{makeService} does), is not repeated at start.
        """
        service = self.build()
        service.load()
        os.remove(self.pki.hostKeyPath)
        self.start(service)
        self.assertEqual((len(self.reactor.sslServers), len(self.reactor.tcpServers)), (1, 1))

    def test_makeServiceExits(self):
        """
        C{makeService} (the twistd plugin's and the .tac's entry) reads the
        files at once: a bad one exits with one line, begun by the program
        named.
        """
        from jobmon.server import service as module

        self.patch(module, "raiseFileLimit", lambda: None)
        options = self.parse("--hostcert", "/nonexistent.pem")
        error = self.assertRaises(SystemExit, module.makeService, options)
        self.assertEqual(
            str(error),
            "jobmon-server: cannot read the host certificate /nonexistent.pem: "
            "no such file or directory",
        )
        error = self.assertRaises(SystemExit, module.makeService, options, program="jobmon.tac")
        self.assertTrue(str(error).startswith("jobmon.tac: cannot read the host certificate"))

    def test_portTaken(self):
        """
        A port that cannot be had stops start-up with one line naming it
        and its listener.
        """
        self.reactor.refuse = 8443
        service = self.build("--https-port", "8443")
        error = self.assertRaises(StartupError, service.privilegedStartService)
        self.assertEqual(
            str(error),
            "cannot listen on 127.0.0.1:8443 (XML-RPC, --https-port): address already in use",
        )


class StopTests(ServiceTestsMixin, SynchronousTestCase):
    """
    Stopping the server releases everything it holds.
    """

    def test_releases(self):
        """
        C{stopService} returns a L{Deferred} that fires once every port is
        closed, every timer cancelled and the service stopped.
        """
        service = self.build("--udp-broadcast", "127.255.255.255:9999", "--metrics-port", "0")
        self.start(service)
        self.assertEqual(len(self.reactor.ports), 4)
        self.assertTrue(all(port.listening for port in self.reactor.ports))
        d = service.stopService()
        self.assertIsInstance(d, defer.Deferred)
        self.successResultOf(d)
        self.assertEqual([port.listening for port in self.reactor.ports], [False] * 4)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(service.running)
        self.assertTrue(service.hub.stopping)

    def test_restart(self):
        """
        A stopped server starts again, on new ports.
        """
        service = self.build()
        self.start(service)
        self.stop(service)
        self.start(service)
        self.assertEqual((len(self.reactor.sslServers), len(self.reactor.tcpServers)), (2, 2))
        self.assertEqual([port.listening for port in self.reactor.ports],
                         [False, False, True, True])

    def test_signal(self):
        """
        SIGHUP is the server's while it runs, and its previous handler
        comes back when it stops.
        """
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        service = self.build(installSignal=True)
        self.start(service)
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)
        self.stop(service)
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)


class FakeCredential:
    """
    Something the reloader reloads, with what it does told in advance.

    @ivar installed: what was installed, in order.
    """

    def __init__(self, kind, prepared=None, error=None, installError=None):
        self.kind = kind
        self.prepared = prepared
        self.error = error
        self.installError = installError
        self.installed = []

    def prepareReload(self):
        """
        Give the prepared value, or raise the error.
        """
        if self.error is not None:
            raise self.error
        return self.prepared

    def install(self, prepared):
        """
        Install it, or raise the install error.
        """
        if self.installError is not None:
            raise self.installError
        self.installed.append(prepared)

    def describe(self):
        """
        One line.
        """
        return "{} v{}".format(self.kind, self.installed[-1])


class ReloaderTests(SynchronousTestCase):
    """
    L{CredentialReloader}: each credential reloads apart; a failure is
    logged, never swallowed, and the last good credentials stay.
    """

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def reloader(self, *credentials, runInThread=synchronously):
        """
        A reloader of C{credentials} every 10 seconds, stopped after the
        test.
        """
        reloader = CredentialReloader(self.clock, list(credentials), 10,
                                      installSignal=False, runInThread=runInThread)
        reloader.startService()
        self.addCleanup(reloader.stopService)
        return reloader

    def messages(self):
        """
        The events logged, formatted.
        """
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.observer]

    def test_everyInterval(self):
        """
        The files are checked every interval on the injected clock.
        """
        good = FakeCredential("good", prepared=1)
        self.reloader(good)
        self.clock.advance(9)
        self.assertEqual(good.installed, [])
        self.clock.advance(1)
        self.assertEqual(good.installed, [1])
        self.assertEqual(self.messages(), ["reloaded good v1"])

    def test_badFile(self):
        """
        A bad new file is logged as one error line naming it; the others
        still reload.
        """
        bad = FakeCredential("TLS credentials", error=CredentialError("cannot read /x.pem"))
        tokens = FakeCredential("token issuers", error=TokenConfigError("tokens.toml: no"))
        good = FakeCredential("good", prepared=2)
        self.successResultOf(self.reloader(bad, tokens, good).check())
        self.assertEqual(good.installed, [2])
        self.assertEqual(bad.installed, [])
        self.assertEqual(self.messages(), [
            "cannot reload TLS credentials, keeping the old ones: cannot read /x.pem",
            "cannot reload token issuers, keeping the old ones: tokens.toml: no",
            "reloaded good v2",
        ])
        self.assertEqual(self.observer[0]["log_level"].name, "error")

    def test_unexpectedError(self):
        """
        An unexpected exception while reading is logged with its traceback
        (L{Logger.failure}); the credential keeps what it had, the others
        reload, and the next check runs.
        """
        broken = FakeCredential("token issuers", error=ZeroDivisionError())
        good = FakeCredential("good", prepared=3)
        reloader = self.reloader(broken, good)
        self.successResultOf(reloader.check())
        [failed, reloaded] = self.observer
        self.assertEqual(failed["log_failure"].type, ZeroDivisionError)
        self.assertIn("cannot reload token issuers", self.messages()[0])
        self.assertEqual(good.installed, [3])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        broken.error = None
        broken.prepared = 4
        self.successResultOf(reloader.check())
        self.assertEqual(broken.installed, [4])

    def test_installError(self):
        """
        An exception while installing is logged with its traceback.
        """
        broken = FakeCredential("TLS credentials", prepared=5, installError=ValueError("no"))
        self.successResultOf(self.reloader(broken).check())
        [failed] = self.observer
        self.assertEqual(failed["log_failure"].type, ValueError)
        self.assertIn("cannot install the reloaded TLS credentials", self.messages()[0])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_threadFails(self):
        """
        A check whose thread cannot run is logged, and the next one runs.
        """
        calls = []

        def runInThread(f):
            calls.append(f)
            if len(calls) == 1:
                return defer.fail(RuntimeError("no thread"))
            return synchronously(f)

        good = FakeCredential("good", prepared=6)
        reloader = self.reloader(good, runInThread=runInThread)
        self.successResultOf(reloader.check())
        self.assertIn("cannot reload credentials", self.messages()[0])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(reloader.check())
        self.assertEqual(good.installed, [6])

    def test_oneAtATime(self):
        """
        A check while one is under way does nothing.
        """
        pending = defer.Deferred()
        reloader = self.reloader(FakeCredential("good", prepared=7),
                                 runInThread=lambda f: pending)
        reloader.check()
        self.assertIsNone(reloader.check())
        pending.callback([])

    def test_sighup(self):
        """
        SIGHUP checks at once, from the reactor thread.
        """
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        reactor = ServerReactor()
        good = FakeCredential("good", prepared=8)
        reloader = CredentialReloader(reactor, [good], 10, runInThread=synchronously)
        reloader.startService()
        self.addCleanup(reloader.stopService)
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        self.assertEqual(good.installed, [8])


class TLSReloadTests(SynchronousTestCase):
    """
    The server's TLS context through a reload: a bad new host key is
    logged and the context in use stays.
    """

    def setUp(self):
        self.pki = pki.initPKI(os.path.abspath(self.mktemp()), users=())
        self.factory = ServerContextFactory(
            self.pki.hostCertPath, self.pki.hostKeyPath, self.pki.ca.hashedDir
        )
        self.factory.load()
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.reloader = CredentialReloader(
            MemoryReactorClock(), [self.factory], 10, installSignal=False,
            runInThread=synchronously,
        )

    def test_badKeyKeepsContext(self):
        """
        A host key replaced by garbage: an error names it, and new
        connections still get the context loaded before.
        """
        before = self.factory.getContext()
        with open(self.pki.hostKeyPath, "w") as f:
            f.write("not a key\n")
        self.successResultOf(self.reloader.check())
        [event] = self.observer
        self.assertEqual(event["log_level"].name, "error")
        self.assertIn("invalid host key", event["why"])
        self.assertIs(self.factory.getContext(), before)

    def test_unexpectedErrorKeepsContext(self):
        """
        An unexpected error while building is logged with its traceback;
        the context stays.
        """
        before = self.factory.getContext()

        def broken():
            raise OSError("the CA directory went away")

        self.factory.stamp = lambda: ("changed",)
        self.factory._build = broken
        self.successResultOf(self.reloader.check())
        [event] = self.observer
        self.assertEqual(event["log_failure"].type, OSError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIs(self.factory.getContext(), before)

    def test_reloaded(self):
        """
        A new CRL in the CA directory is loaded and said.
        """
        before = self.factory.getContext()
        pki.makeCRL(self.pki.ca)
        self.successResultOf(self.reloader.check())
        self.assertIsNot(self.factory.getContext(), before)
        self.assertEqual(self.factory.crls, 1)
        self.assertIn("(1 CRL files)", formatted(self.observer[0]))


def formatted(event):
    """
    An event's text.
    """
    from twisted.logger import formatEvent

    return formatEvent(event)


class APITests(SynchronousTestCase):
    """
    The server's XML-RPC methods are the ones C{docs/API.md} documents, and
    the client and the daemon call only those.
    """

    def documented(self):
        """
        The method names of C{docs/API.md}'s headings.
        """
        with open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8") as f:
            return set(re.findall(r"^### `(jobmon\.[A-Za-z]+)\(", f.read(), re.M))

    def called(self, folder):
        """
        The C{jobmon.X} method names that the code under C{jobmon/folder}
        calls (string literals given to C{_call} or C{callRemote}).
        """
        names = set()
        for directory, _, files in os.walk(os.path.join(ROOT, "jobmon", folder)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(directory, name), encoding="utf-8") as f:
                        names.update(re.findall(
                            r"(?:_call|callRemote)\(\s*\"(jobmon\.[A-Za-z.]+)\"", f.read()
                        ))
        return names

    def test_serverMethods(self):
        """
        The server answers exactly the documented methods.
        """
        class AnyHub:
            def __getattr__(self, name):
                return name

        self.assertEqual(set(apiMethods(AnyHub())), self.documented())

    def test_callers(self):
        """
        The client library and the daemon call documented methods only (and
        call some: the pattern finds their calls).
        """
        documented = self.documented()
        for folder in ("client", "worker"):
            called = self.called(folder)
            self.assertTrue(called, folder)
            self.assertEqual(called - documented, set(), folder)

"""
The JobMon central server: C{twistd jobmon-server}.

One reactor serves the XML-RPC endpoint (HTTPS, client certificates
required) and the TCP wake port (TLS, same certificates).
"""

import gc
import json
import os
import signal

from OpenSSL import SSL
from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.abstract import isIPAddress
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import Resource

from jobmon.server.audit import AuditLog
from jobmon.config import FileOptions, applyConfigFile
from jobmon.server.history import History
from jobmon.server.hub import Hub, HubConfig
from jobmon.errors import NOT_AUTHENTICATED, JobMonError
from jobmon.server.identity import Identity, identityOfConnection
from jobmon.server.logs import LogFiles
from jobmon.server.metrics import Metrics, MetricsResource
from jobmon.options import DEFAULT_CA_DIR, defaultCADir, portNumber, positive
from jobmon.server.pending import MemoryRequestTable
from jobmon.protocols.udp import UDPWakeSender
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.site import QuietSite, identifyTLS
from jobmon.server.wakes import WakeServerFactory, standardWakes
from jobmon.server.registry import MemoryJobRegistry
from jobmon.certificates import CredentialError
from jobmon.server.tls import CRL_MODES, RefusalBudget, ServerContextFactory
from jobmon.server.tokens import TokenConfigError, TokenPolicy, splitAuthorization


log = Logger()


class Options(FileOptions):
    """
    Command-line options of C{twistd jobmon-server}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run the JobMon central server: XML-RPC over HTTPS for users and job "
        "daemons, and the TCP wake port for job daemons."
    )

    optParameters = [
        ["config", None, None, "TOML configuration file: keys are the long option names; "
         "options given on the command line override it (docs/CONFIG.md)."],
        ["interface", None, "0.0.0.0", "Address to listen on."],
        ["https-port", None, 8443, "XML-RPC over HTTPS port (0: any free port).", portNumber],
        ["wake-port", None, 8444, "TCP wake channel port (0: any free port).", portNumber],
        ["hostcert", None, "/etc/grid-security/hostcert.pem", "Host certificate (PEM)."],
        ["hostkey", None, "/etc/grid-security/hostkey.pem", "Host key (PEM)."],
        [
            "ca-dir",
            None,
            None,
            "Trusted CAs, OpenSSL hashed directory "
            "[default: $X509_CERT_DIR, then " + DEFAULT_CA_DIR + "].",
        ],
        [
            "crl-check",
            None,
            "auto",
            "Revocation: auto (check certificates whose CA has a CRL file <hash>.r0 "
            "in the CA directory), require (refuse those whose CA has none), off.",
        ],
        [
            "reload-interval",
            None,
            60.0,
            "Seconds between checks of the CA directory, host credential and token "
            "issuers for changes (SIGHUP reloads at once).",
            positive(float),
        ],
        [
            "query-timeout",
            None,
            30.0,
            "Seconds a query waits for its job.",
            positive(float),
        ],
        [
            "keepalive",
            None,
            20,
            "Wake channel keep-alive interval, seconds; a silent peer is dropped "
            "after three intervals.",
            positive(int),
        ],
        [
            "connect-grace",
            None,
            30.0,
            "Seconds a registered job has to connect its wake channel.",
            positive(float),
        ],
        [
            "max-body",
            None,
            16 * 1024 * 1024,
            "Largest XML-RPC request body accepted, bytes (results included).",
            positive(int),
        ],
        [
            "max-pending-per-job",
            None,
            64,
            "Most requests queued or running for one job.",
            positive(int),
        ],
        [
            "max-pending-per-user",
            None,
            256,
            "Most queries one user may have pending at once.",
            positive(int),
        ],
        [
            "query-rate",
            None,
            50.0,
            "Queries per second one user may make (sustained).",
            positive(float),
        ],
        [
            "query-burst",
            None,
            200,
            "Queries one user may make in a burst above the rate.",
            positive(int),
        ],
        [
            "max-per-peer",
            None,
            1024,
            "Most connections to each port from one address.",
            positive(int),
        ],
        [
            "request-deadline",
            None,
            30.0,
            "Seconds a client has to send a whole request once it starts.",
            positive(float),
        ],
        [
            "idle-timeout",
            None,
            120.0,
            "Seconds an idle HTTPS connection is kept.",
            positive(float),
        ],
        [
            "udp-broadcast",
            None,
            None,
            "Offer UDP wakes, sent to this ADDR:PORT (the workers' broadcast address, "
            "e.g. 10.1.255.255:8445; 127.255.255.255:PORT on one host).",
        ],
        [
            "reregister-interval",
            None,
            60.0,
            "Seconds between re-registrations of UDP daemons.",
            positive(float),
        ],
        [
            "missed-registrations",
            None,
            3,
            "UDP and poll jobs not heard from for this many intervals are dropped.",
            positive(int),
        ],
        [
            "cleanup-interval",
            None,
            10.0,
            "Seconds between cleanup cycles.",
            positive(float),
        ],
        [
            "max-poll",
            None,
            60.0,
            "Longest wait of a poll-mode daemon's waitForWork call, seconds.",
            positive(float),
        ],
        [
            "log-dir",
            None,
            None,
            "Also write structured JSON-lines logs here: jobmon-registration, -query, "
            "-wake, -cleanup and -server.jsonl (or one jobmon.jsonl with --log-single).",
        ],
        [
            "metrics-port",
            None,
            None,
            "Serve Prometheus metrics (/metrics) and a health check (/healthz) over "
            "plain HTTP on this port [default: off].",
            portNumber,
        ],
        [
            "metrics-interface",
            None,
            "127.0.0.1",
            "Address of the metrics port.",
        ],
        [
            "history",
            None,
            "jobmon-history.sqlite3",
            "SQLite database of job and query history (jobmon-query history).",
        ],
        [
            "audit-log",
            None,
            "jobmon-audit.jsonl",
            "The audit trail: JSON lines, one per query, refusal and registration.",
        ],
        [
            "audit-rotate",
            None,
            10 * 1024 * 1024,
            "Rotate the audit log past this many bytes.",
            positive(int),
        ],
        [
            "audit-keep",
            None,
            10,
            "Rotated audit logs kept.",
            positive(int),
        ],
        [
            "token-issuers",
            None,
            None,
            "Also accept WLCG/SciTokens bearer tokens from the issuers this TOML file "
            "names, with their key files and scopes (docs/SECURITY.md); a client "
            "certificate becomes optional [default: certificates only].",
        ],
        [
            "port-file",
            None,
            None,
            "Once listening, write the bound ports here as JSON "
            '({"https": N, "wake": N}); useful with port 0.',
        ],
    ]

    optFlags = [
        [
            "log-single",
            None,
            "With --log-dir, one file with a category field instead of one per category.",
        ],
        [
            "wake-tls13",
            None,
            "Use TLS 1.3 on the wake port too (default: TLS 1.2 there, which "
            "costs about 10 KB less per idle wake channel).",
        ],
    ]

    configPaths = (
        "hostcert", "hostkey", "ca-dir", "audit-log", "port-file", "log-dir", "history",
        "token-issuers",
    )
    """Options a configuration file gives relative to its directory."""

    def __init__(self):
        super().__init__()
        self["admin"] = []

    def opt_admin(self, dn):
        """
        A DN that may see and query every job (repeatable).
        """
        self["admin"].append(dn)

    def postOptions(self):
        applyConfigFile(self)
        if self["udp-broadcast"] is not None:
            address, _, port = self["udp-broadcast"].rpartition(":")
            try:
                port = int(port)
                if not 0 < port < 65536 or not isIPAddress(address):
                    raise ValueError()
            except ValueError:
                raise usage.UsageError(
                    "--udp-broadcast must be ADDR:PORT with an IPv4 address, not {!r}".format(
                        self["udp-broadcast"]
                    )
                )
            self["udp-broadcast"] = (address, port)
        if self["ca-dir"] is None:
            self["ca-dir"] = defaultCADir()
        if self["crl-check"] not in CRL_MODES:
            raise usage.UsageError(
                "--crl-check must be one of {}".format(", ".join(CRL_MODES))
            )
        self.tokens = None
        if self["token-issuers"] is not None:
            self.tokens = TokenPolicy(self["token-issuers"])
            try:
                self.tokens.load()
            except TokenConfigError as e:
                raise usage.UsageError(str(e))
        self.contextFactory = ServerContextFactory(
            self["hostcert"], self["hostkey"], self["ca-dir"], crlCheck=self["crl-check"],
            requireCertificate=self.tokens is None,
        )
        try:
            self.contextFactory.load()
        except CredentialError as e:
            raise usage.UsageError(str(e))
        try:
            self.audit = AuditLog(
                self["audit-log"], rotateBytes=self["audit-rotate"], keep=self["audit-keep"]
            )
        except OSError as e:
            raise usage.UsageError(
                "cannot open the audit log {}: {}".format(self["audit-log"], e.strerror or e)
            )
        self.contextFactory.audit = self.audit


class _PortService(Service):
    """
    A service that holds a listening port, bound in
    C{privilegedStartService}, and closes it when it stops.
    """

    port = None

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


class _Listener(_PortService):
    """
    Listen on a stream endpoint when the service starts; stop listening when
    it stops.  Binding happens in C{privilegedStartService} and fails
    start-up at once if the port cannot be had.
    """

    def __init__(self, endpoint, factory):
        self.endpoint = endpoint
        self.factory = factory

    def privilegedStartService(self):
        super().privilegedStartService()
        outcome = []
        self.endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            raise RuntimeError("endpoint did not listen synchronously")
        if not hasattr(outcome[0], "getHost"):
            outcome[0].raiseException()
        self.port = outcome[0]


class _DatagramListener(_PortService):
    """
    The UDP socket the server sends wakes from.
    """

    def __init__(self, reactor, protocol, interface):
        self.reactor = reactor
        self.protocol = protocol
        self.interface = interface

    def privilegedStartService(self):
        super().privilegedStartService()
        # Send from the interface the server listens on, any port.
        interface = "" if self.interface == "0.0.0.0" else self.interface
        self.port = self.reactor.listenUDP(0, self.protocol, interface=interface)


class CredentialReloader(Service):
    """
    Reload the TLS context when the CA directory (certificates, CRLs) or the
    host credential change on disk, and the token issuers when their files
    do, checked every C{interval} seconds and on SIGHUP.  New connections
    use the new context; a bad new file is logged and the old one kept.

    @ivar contextFactories: what to reload: objects with C{prepareReload}
        (called in a thread), C{install} and C{describe}.
    """

    log = Logger()

    def __init__(self, reactor, contextFactories, interval, installSignal=True,
                 runInThread=None):
        self.reactor = reactor
        self.contextFactories = contextFactories
        self.runInThread = runInThread or (
            lambda f: deferToThreadPool(reactor, reactor.getThreadPool(), f)
        )
        self._checking = False
        self.interval = interval
        self.installSignal = installSignal
        self._loop = None
        self._previousHandler = None

    def startService(self):
        super().startService()
        self._loop = LoopingCall(self.check)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)
        if self.installSignal:
            self._previousHandler = signal.signal(
                signal.SIGHUP, lambda *args: self.reactor.callFromThread(self.check)
            )

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.installSignal and self._previousHandler is not None:
            signal.signal(signal.SIGHUP, self._previousHandler)

    def check(self):
        """
        Reload if anything changed: the files are read and the contexts
        built in a thread, then installed in the reactor's.
        """
        if self._checking:
            return None
        self._checking = True

        def prepare():
            prepared = []
            for f in self.contextFactories:
                try:
                    prepared.append((f, f.prepareReload(), None))
                except (CredentialError, TokenConfigError) as e:
                    prepared.append((f, None, e))
            return prepared

        d = self.runInThread(prepare)
        d.addCallback(self._install)
        d.addBoth(self._done)
        return d

    def _install(self, prepared):
        said = set()
        for factory, p, error in prepared:
            if error is not None:
                self.log.error("cannot reload {what}, keeping the old ones: {why}",
                               what=factory.kind, why=str(error))
            elif p is not None:
                factory.install(p)
                line = factory.describe()
                if line not in said:
                    said.add(line)
                    self.log.info("reloaded {what}", what=line)

    def _done(self, result):
        self._checking = False


class ServerService(MultiService):
    """
    The whole server: the hub, the HTTPS listener and the wake listener.
    """

    log = Logger()

    def __init__(self, reactor, hub, https, wake, udp=None, portFile=None):
        super().__init__()
        self.reactor = reactor
        self.hub = hub
        self.https = https
        self.wake = wake
        self.udp = udp
        self.portFile = portFile
        self.logFiles = None
        https.setServiceParent(self)
        wake.setServiceParent(self)
        if udp is not None:
            udp.setServiceParent(self)

    def privilegedStartService(self):
        super().privilegedStartService()
        self.hub.wakePort = self.wake.port.getHost().port

    def startService(self):
        if self.logFiles is not None:
            self.logFiles.start()
        super().startService()
        self.hub.start()
        if self.hub.history is not None:
            self.hub.history.start().addErrback(
                lambda f: self.log.failure("cannot open the history database", f)
            )
        ports = {
            "https": self.https.port.getHost().port,
            "wake": self.wake.port.getHost().port,
        }
        metrics = getattr(self, "metricsListener", None)
        if metrics is not None:
            ports["metrics"] = metrics.port.getHost().port
        udp = ""
        if self.hub.udpSender is not None:
            ports["udp"] = self.hub.udpPort
            udp = ", UDP wakes to {}:{}".format(*self.hub.udpSender.address)
        if metrics is not None:
            udp += ", metrics on {}".format(ports["metrics"])
        self.log.info(
            "JobMon server listening: XML-RPC on {https}, TCP wake on {wake}{udp_text}",
            udp_text=udp,
            https=ports["https"],
            wake=ports["wake"],
        )
        # Start-up leaves tens of thousands of long-lived objects; without
        # this, the first full collection over them stalls a request by
        # ~15 ms.
        gc.collect()
        gc.freeze()
        if self.portFile:
            tmp = self.portFile + ".tmp"
            with open(tmp, "w") as f:
                json.dump(ports, f)
            os.replace(tmp, self.portFile)

    async def _stop(self):
        await self.hub.stop()
        await MultiService.stopService(self)
        if self.hub.history is not None:
            await self.hub.history.stop()
        if self.logFiles is not None:
            self.logFiles.stop()

    def stopService(self):
        return Deferred.fromCoroutine(self._stop())


def identifyCaller(identifyCertificate, tokens, audit=None, metrics=None,
                   budget=None):
    """
    Make the C{identify} callable of the XML-RPC endpoint: a request with
    C{Authorization: Bearer} is its token's bearer (even if it also shows a
    certificate), any other its certificate's owner.

    Refused tokens are counted and audited, a few per address per minute.

    @param identifyCertificate: the certificate's C{identify} (see
        L{identifyTLS}).
    @param tokens: the L{TokenPolicy}, or C{None} if tokens are not
        accepted.
    """
    budget = budget or RefusalBudget()

    def refused(request, error):
        if metrics is not None:
            metrics.refusals.labels("token").inc()
        host = getattr(request.getClientAddress(), "host", None)
        suppressed = budget.admit(host)
        if suppressed is None:
            return
        log.info("bearer token refused from {peer}: {why}{more}", peer=host,
                 why=error.message,
                 more="; {} more from there not logged".format(suppressed) if suppressed else "")
        if audit is not None:
            audit.record("refused", method="token", peer=host, code=error.code,
                         reason=error.message, suppressed=suppressed)

    def identify(request):
        header = request.getHeader(b"authorization")
        if header is None:
            try:
                return identifyCertificate(request)
            except JobMonError as e:
                if tokens is None or e.code != NOT_AUTHENTICATED:
                    raise
                if "no verified client certificate" not in e.message:
                    raise
                raise JobMonError(
                    NOT_AUTHENTICATED,
                    "no credential: send a bearer token (Authorization: Bearer) or use "
                    "an X.509 certificate or proxy",
                )
        try:
            if tokens is None:
                raise JobMonError(
                    NOT_AUTHENTICATED,
                    "this server does not accept bearer tokens; use an X.509 "
                    "certificate or proxy",
                )
            info, name = tokens.check(splitAuthorization(header.decode("latin-1")))
        except JobMonError as e:
            refused(request, e)
            raise
        return Identity(dn=name, token=info)

    return identify


def buildServer(reactor, options):
    """
    Build the server service from parsed L{Options}.
    """
    udp = sender = None
    if options["udp-broadcast"] is not None:
        sender = UDPWakeSender(options["udp-broadcast"])
        udp = _DatagramListener(reactor, sender, options["interface"])
    metrics = Metrics()
    history = History(options["history"], reactor)
    registry, table = MemoryJobRegistry(), MemoryRequestTable()
    config = HubConfig(
        admins=options["admin"],
        queryTimeout=options["query-timeout"],
        keepalive=options["keepalive"],
        connectGrace=options["connect-grace"],
        maxPendingPerJob=options["max-pending-per-job"],
        reregisterInterval=options["reregister-interval"],
        expireAfter=options["reregister-interval"] * options["missed-registrations"],
        cleanupInterval=options["cleanup-interval"],
        maxPoll=options["max-poll"],
        maxPendingPerUser=options["max-pending-per-user"],
        queryRate=options["query-rate"],
        queryBurst=options["query-burst"],
    )
    wakes = standardWakes(
        reactor, registry, table, config, metrics,
        udpSender=sender, udpPort=options["udp-broadcast"][1] if sender else None,
    )
    hub = Hub(
        reactor,
        registry,
        table,
        config,
        wakes=wakes,
        audit=options.audit,
        metrics=metrics,
        history=history,
        runInThread=lambda f, *a: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a),
    )
    identify = identifyCaller(
        identifyTLS(identityOfConnection), options.tokens, audit=options.audit,
        metrics=metrics,
    )
    rpc = XMLRPCResource(
        {
            "jobmon.whoami": hub.whoami,
            "jobmon.listJobs": hub.listJobs,
            "jobmon.query": hub.query,
            "jobmon.registerJob": hub.registerJob,
            "jobmon.unregisterJob": hub.unregisterJob,
            "jobmon.getJobToDo": hub.getJobToDo,
            "jobmon.waitForWork": hub.waitForWork,
            "jobmon.outputJobResult": hub.outputJobResult,
            "jobmon.auditLog": hub.auditLog,
            "jobmon.history": hub.historyOf,
        },
        identify,
        maxBody=options["max-body"],
    )
    root = Resource()
    root.putChild(b"RPC2", rpc)
    site = QuietSite(
        root,
        maxBody=options["max-body"],
        requestDeadline=options["request-deadline"],
        maxPerPeer=options["max-per-peer"],
        timeout=options["idle-timeout"],
    )

    def wakeIdentify(transport):
        connection = transport.getHandle()
        if options.tokens is not None and connection.get_peer_certificate() is None:
            # A daemon that registered with a token: its registration's
            # wake token is what binds the channel.
            return None
        return identityOfConnection(connection)

    ctx = options.contextFactory
    # Wake channels carry only "wake" and keep-alives, and there may be tens
    # of thousands: TLS 1.2 (ECDHE, AEAD) costs about 10 KB less per idle
    # connection than TLS 1.3 with a post-quantum key share.
    wakeCtx = ctx.sibling(maxVersion=None if options["wake-tls13"] else SSL.TLS1_2_VERSION)
    wakeCtx.load()
    https = _Listener(
        endpoints.SSL4ServerEndpoint(
            reactor, options["https-port"], ctx, interface=options["interface"]
        ),
        site,
    )
    wake = _Listener(
        endpoints.SSL4ServerEndpoint(
            reactor, options["wake-port"], wakeCtx, interface=options["interface"]
        ),
        WakeServerFactory(hub, wakeIdentify, reactor, maxPerPeer=options["max-per-peer"]),
    )
    metrics.watch(hub)
    service = ServerService(reactor, hub, https, wake, udp=udp, portFile=options["port-file"])
    if options["log-dir"]:
        service.logFiles = LogFiles(options["log-dir"], split=not options["log-single"])
    if options["metrics-port"] is not None:
        from twisted.web.server import Site

        site = Site(MetricsResource(metrics, hub))
        site.noisy = False
        site.log = lambda request: None
        service.metricsListener = _Listener(
            endpoints.TCP4ServerEndpoint(
                reactor, options["metrics-port"], interface=options["metrics-interface"]
            ),
            site,
        )
        service.metricsListener.setServiceParent(service)
    reloadable = [ctx, wakeCtx]
    if options.tokens is not None:
        reloadable.append(options.tokens)
    CredentialReloader(reactor, reloadable, options["reload-interval"]).setServiceParent(
        service
    )
    return service


def raiseFileLimit():
    """
    Raise this process's soft limit on open files to its hard limit: every
    TCP wake channel and pending poll is a descriptor.

    @return: the new soft limit.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def makeService(options):
    """
    twistd entry point.
    """
    from twisted.internet import reactor

    raiseFileLimit()
    return buildServer(reactor, options)

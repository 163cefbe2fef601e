"""
The JobMon central server: C{twistd jobmon-server}.

One reactor serves the XML-RPC endpoint (HTTPS, client certificates
required), the TCP wake port (TLS with the same certificates, or sealed with
the registration's secret: L{jobmon.protocols.sealed}), UDP wakes and the
metrics port when they are asked for.  L{Options} only parse;
L{buildService} wires the server and reads no file; the files it cannot
start without (host credential, CA directory, token issuers, audit log)
are read by L{ServerService.load}, which L{makeService} calls before
C{twistd} goes on, so that a bad one stops it with one line.
"""

import errno
import gc
import json
import os
import socket

from OpenSSL import SSL
from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from jobmon.deferreds import deferredAsync, threadRunner
from jobmon.errors import NOT_AUTHENTICATED, JobMonError, StartupError
from jobmon.fqan import parseFqan
from jobmon.protocols.eager import EagerServerEndpoint
from jobmon.protocols.sealed import SniffingFactory
from jobmon.protocols.udp import UDPWakeSender
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.audit import AuditLog
from jobmon.server.claims import reserveFromHistory
from jobmon.server.health import MetricsSite, Writability
from jobmon.server.history import History
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import (
    ConnectionIdentities,
    CredentialWatch,
    Identity,
    identityOfConnection,
)
from jobmon.server.logs import LogFiles
from jobmon.server.metrics import Metrics, MetricsResource
from jobmon.server.options import Options
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.ratelimit import LimitsConfig, limitFailures
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.reloader import EXPECTED, CredentialReloader
from jobmon.server.site import ParsePool, QuietSite
from jobmon.server.tls import RefusalBudget, ServerContextFactory
from jobmon.server.tokens import TokenPolicy, splitAuthorization
from jobmon.server.voms import VomsAttributes
from jobmon.server.wakes import WakeServerFactory, sealedLookup, standardWakes
from jobmon.server.web import WebRoot

__all__ = ["Options", "makeService", "buildService", "ServerService", "StartupError"]

log = Logger()


@implementer(IStreamServerEndpoint)
class BoundEndpoint:
    """
    An endpoint that keeps what listening on it gave: the port, or why
    there is none.

    L{StreamServerEndpointService} keeps its port to itself and only logs a
    failure to listen; the server tells its bound ports (port 0 takes any
    free one) and must not run without one of them, so L{ServerService}
    reads them here.

    @ivar endpoint: the endpoint listened on.
    @ivar port: the L{twisted.internet.interfaces.IListeningPort}, once
        listening.
    @ivar failure: the L{Failure} of the attempt to listen, if it failed.
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.port = None
        self.failure = None

    def listen(self, factory):
        """
        Listen on the endpoint, keeping the outcome.

        @return: a L{Deferred} firing with the port, or with L{None} if
            listening failed (the failure is kept in C{failure}, for the
            server to raise).
        """
        d = self.endpoint.listen(factory)
        d.addCallbacks(self._listening, self._failed)
        return d

    def _listening(self, port):
        self.port = port
        return port

    def _failed(self, failure):
        self.failure = failure
        return None


class ServerService(MultiService):
    """
    The whole server: the hub, its listeners (HTTPS, TCP wake, UDP wakes,
    metrics) and credential reloader as child services, and the files it
    keeps (audit log, history database, log files).

    Ports are bound in C{privilegedStartService}, after L{load}, and a port
    that cannot be had stops start-up at once.  C{stopService} stops the
    hub, then every child, then closes the files, and returns a
    L{Deferred} that fires when all is released.

    @ivar endpoints: the L{BoundEndpoint} of each listener, by the name the
        port file gives its port.
    @ivar credentials: what L{load} loads: objects with C{load()}, raising
        L{jobmon.certificates.CredentialError} or
        L{jobmon.server.tokens.TokenConfigError}.
    @ivar freezeHeap: whether start-up ends with a full garbage collection
        and C{gc.freeze()}.
    """

    log = Logger()

    freezeHeap = True

    def __init__(self, reactor, hub, credentials=(), audit=None, history=None,
                 logFiles=None, portFile=None):
        super().__init__()
        self.reactor = reactor
        self.hub = hub
        self.credentials = list(credentials)
        self.audit = audit
        self.history = history
        self.logFiles = logFiles
        self.portFile = portFile
        self.endpoints = {}
        self.addresses = {}
        self.loaded = False
        self._bound = False

    def listen(self, name, endpoint, factory, address=None):
        """
        Listen on C{endpoint} with C{factory} while the server runs (a
        L{StreamServerEndpointService} child).

        @param name: the port's name in the port file (one of
            L{LISTENERS}).
        @param address: C{(interface, port)} it listens on, for
            L{checkPorts} and messages.
        """
        bound = BoundEndpoint(endpoint)
        StreamServerEndpointService(bound, factory).setServiceParent(self)
        self.endpoints[name] = bound
        if address is not None:
            self.addresses[name] = ("tcp",) + tuple(address)

    def checkPorts(self, probe=None):
        """
        Try to bind every address the server will listen on, and let each go
        at once: run before C{twistd} detaches from the terminal, so that a
        port in use (or an address not on this host, or a port below 1024
        without the right) stops start-up with one whole line there.  The
        real binding follows in C{privilegedStartService}.

        @param probe: C{probe(kind, interface, port)}, raising L{OSError}
            [default: L{probePort}].
        @raise StartupError: an address cannot be had.
        """
        probe = probe or probePort
        for name, (kind, interface, port) in self.addresses.items():
            try:
                probe(kind, interface, port)
            except OSError as e:
                raise StartupError(cannotListen(name, interface, port, e)) from None

    def load(self):
        """
        Read what the server cannot start without: its credentials (token
        issuers, TLS contexts) and the audit log, opened.  Blocking, and
        done once: before the reactor runs.

        @raise StartupError: a file is missing or bad.
        """
        if self.loaded:
            return
        try:
            for credential in self.credentials:
                credential.load()
        except EXPECTED as e:
            raise StartupError(str(e))
        if self.audit is not None:
            try:
                self.audit.open()
            except OSError as e:
                raise StartupError(
                    "cannot open the audit log {}: {}".format(self.audit.name, e.strerror or e)
                )
        self.loaded = True

    def privilegedStartService(self):
        """
        Load the credentials (if L{load} was not called) and bind every
        port.

        @raise StartupError: a file is missing or bad.
        @raise twisted.internet.error.CannotListenError: a port cannot be
            had.
        """
        self.load()
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise StartupError(self._cannotListen(e)) from None
        for bound in self.endpoints.values():
            if bound.failure is not None:
                error = bound.failure.value
                if isinstance(error, CannotListenError):
                    raise StartupError(self._cannotListen(error))
                bound.failure.raiseException()
            if bound.port is None:
                raise RuntimeError("endpoint {} did not listen at once".format(bound.endpoint))
        self.hub.wakePort = self.endpoints["wake"].port.getHost().port
        self._bound = True

    def _cannotListen(self, error):
        """
        The message of a L{CannotListenError}, naming the listener.
        """
        name = "udp"
        for each, (_, interface, port) in self.addresses.items():
            if port == error.port and port:
                name = each
        return cannotListen(name, error.interface, error.port, error.socketError)

    def startService(self):
        """
        Start the log files, the children, the hub and the history; say
        where the server listens, in the log and the port file.
        """
        if not self._bound:
            self.privilegedStartService()
        if self.logFiles is not None:
            self.logFiles.start()
        super().startService()
        self.hub.start()
        if self.history is not None:
            opened = self.history.start().addErrback(
                lambda f: self.log.failure("cannot open the history database", f)
            )
            # The previous run's job ids stay their owners' (read off the
            # reactor); registrations wait for them.
            reserveFromHistory(self.hub.registrations.claims, self.history, self.reactor,
                               opened)
        ports = {
            name: bound.port.getHost().port for name, bound in self.endpoints.items()
        }
        udp = ""
        if self.hub.udpSender is not None:
            ports["udp"] = self.hub.udpPort
            udp = ", UDP wakes to {}:{}".format(*self.hub.udpSender.address)
        if "metrics" in ports:
            udp += ", metrics on {}".format(ports["metrics"])
        self.log.info(
            "JobMon server listening: XML-RPC on {https}, TCP wake on {wake}{udp_text}",
            udp_text=udp,
            https=ports["https"],
            wake=ports["wake"],
        )
        if self.freezeHeap:
            # Start-up leaves tens of thousands of long-lived objects;
            # without this, the first full collection over them stalls a
            # request by ~15 ms.
            gc.collect()
            gc.freeze()
        if self.portFile:
            tmp = self.portFile + ".tmp"
            with open(tmp, "w") as f:
                json.dump(ports, f)
            os.replace(tmp, self.portFile)

    @deferredAsync
    async def stopService(self):
        """
        Stop the hub (failing what is pending), then every child (ports
        closed, timers stopped), then close the history, log files and
        audit log.

        @return: a L{Deferred} that fires when all is released.
        """
        await self.hub.stop()
        await MultiService.stopService(self)
        # A restart reads the files again and binds new ports.
        self._bound = self.loaded = False
        if self.history is not None:
            await self.history.stop()
        if self.logFiles is not None:
            self.logFiles.stop()
        if self.audit is not None:
            self.audit.close()


LISTENERS = {
    "https": ("XML-RPC", "--https-port"),
    "wake": ("TCP wake", "--wake-port"),
    "metrics": ("metrics", "--metrics-port"),
    "udp": ("UDP wake sender", "--interface"),
}
"""What each listener is called in messages, and the option of its port."""


def probePort(kind, interface, port):
    """
    Bind a socket to C{(interface, port)} as the reactor will (with
    C{SO_REUSEADDR} for TCP), then close it.

    @param kind: C{"tcp"} or C{"udp"}.
    @raise OSError: it cannot be bound.
    """
    kinds = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
    with socket.socket(socket.AF_INET, kinds[kind]) as s:
        if kind == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((interface, port))
        if kind == "tcp":
            s.listen(1)


def cannotListen(name, interface, port, error):
    """
    The one line for a listener that cannot have its address, such as
    C{cannot listen on 127.0.0.1:8443 (XML-RPC, --https-port): address
    already in use}.

    @param name: the listener, a key of L{LISTENERS}.
    @param error: the L{OSError} (or a L{CannotListenError}'s socket
        error).
    """
    what, option = LISTENERS.get(name, (name, None))
    why = getattr(error, "strerror", None) or str(error)
    why = why.lower()
    code = getattr(error, "errno", None)
    if code in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        why += " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
    elif code == errno.EADDRNOTAVAIL:
        why += " ({} is not an address of this host)".format(interface)
    return "cannot listen on {}:{} ({}{}): {}".format(
        interface or "0.0.0.0", port, what, ", " + option if option else "", why
    )


def identifyCaller(identifyCertificate, tokens, audit=None, metrics=None,
                   budget=None):
    """
    Make the C{identify} callable of the XML-RPC endpoint: a request with
    C{Authorization: Bearer} is its token's bearer (even if it also shows a
    certificate), any other its certificate's owner.

    Refused tokens are counted and audited, a few per address per minute.

    @param identifyCertificate: the certificate's C{identify} (see
        L{ConnectionIdentities}).
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


def apiMethods(hub):
    """
    The XML-RPC methods of C{docs/API.md}, by name: the hub's entry points.
    """
    return {
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
    }


def buildService(options, reactor, runInThread=None, installSignal=True):
    """
    Wire the server from parsed L{Options}, reading no file: they are read
    by L{ServerService.load}, when it starts at the latest.

    @param reactor: the reactor the server listens and keeps time with.
    @param runInThread: C{runInThread(f, *args)}, a L{Deferred} of
        C{f(*args)} run off the reactor thread, for the credential reloads
        and the history database [default: the reactor's thread pool for
        the first, a thread of its own for the second].
    @param installSignal: whether SIGHUP reloads the credentials while the
        server runs.
    @rtype: L{ServerService}
    """
    sender = None
    if options["udp-broadcast"] is not None:
        sender = UDPWakeSender(options["udp-broadcast"])
    metrics = Metrics()
    writability = Writability()
    history = History(options["history"], reactor, runInThread=runInThread,
                      writability=writability, retentionDays=options["history-days"],
                      maxRows=options["history-max-rows"])
    audit = AuditLog(options["audit-log"], rotateBytes=options["audit-rotate"],
                     keep=options["audit-keep"], writability=writability,
                     refusalBytes=options["audit-refusal-budget"])
    tokens = None
    if options["token-issuers"] is not None:
        tokens = TokenPolicy(options["token-issuers"])
    ctx = ServerContextFactory(
        options["hostcert"], options["hostkey"], options["ca-dir"], crlCheck=options["crl-check"],
        audit=audit, requireCertificate=tokens is None,
    )
    # Wake channels carry only "wake" and keep-alives, and there may be tens
    # of thousands: TLS 1.2 (ECDHE, AEAD) costs about 10 KB less per idle
    # connection than TLS 1.3 with a post-quantum key share.
    wakeCtx = ctx.sibling(maxVersion=None if options["wake-tls13"] else SSL.TLS1_2_VERSION)
    table = MemoryRequestTable()
    node = None
    if options["redis"] is not None:
        # A cluster: this server's jobs are mirrored into Redis, where the
        # other servers find them (see jobmon.server.cluster).
        from jobmon.server.cluster.mirror import MirroredRegistry
        from jobmon.server.cluster.node import ClusterNode
        from jobmon.server.cluster.store import UnreachableStore

        node = ClusterNode(reactor, UnreachableStore())
        registry = MirroredRegistry(node, options["reserve-ids"])
    else:
        registry = MemoryJobRegistry()
    config = HubConfig(
        admins=options["admin"],
        adminFqans=[parseFqan(f) for f in options["admin-fqan"]],
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
        limits=LimitsConfig(
            userRate=options["user-rate"],
            userBurst=options["user-burst"],
            queryRate=options["query-rate"],
            queryBurst=options["query-burst"],
            daemonRate=options["daemon-rate"],
            daemonBurst=options["daemon-burst"],
            authFailureRate=options["auth-failure-rate"],
            authFailureBurst=options["auth-failure-burst"],
            maxJobsPerOwner=options["max-jobs-per-owner"],
            registrationRate=options["registration-rate"],
            registrationBurst=options["registration-burst"],
        ),
        reserveFor=options["reserve-ids"],
    )
    wakes = standardWakes(
        reactor, registry, table, config, metrics,
        udpSender=sender, udpPort=options["udp-broadcast"][1] if sender else None,
    )
    for wake in wakes:
        if wake.mode == "tcp":
            # The registration reply offers the sealed wake channel.
            wake.sealed = not options["wake-tls-only"]
    if node is None:
        hub = Hub(reactor, registry, table, config, wakes=wakes, audit=audit, metrics=metrics,
                  history=history, runInThread=threadRunner(reactor))
    else:
        hub = clusterHub(options, reactor, node, registry, table, config, wakes, audit,
                         metrics, history)
    voms = None
    if options["vomsdir"] is not None:
        voms = VomsAttributes(options["vomsdir"], options["ca-dir"], reactor)
    elif options["admin-fqan"]:
        log.warn("--admin-fqan without --vomsdir: no caller holds an FQAN, so it "
                 "makes no admin")
    identify = identifyCaller(
        ConnectionIdentities(reactor, trust=ctx, audit=audit, voms=voms), tokens, audit=audit,
        metrics=metrics,
    )
    # Every method is charged to its caller's rate first; failures to
    # authenticate to the caller's address.  Large bodies are parsed in
    # threads.
    parsePool = ParsePool(reactor)
    methods = hub.limits.wrapAll(apiMethods(hub))
    identifyLimited = limitFailures(identify, hub.limits)
    rpc = XMLRPCResource(methods, identifyLimited, maxBody=options["max-body"],
                         runInThread=parsePool.runInThread)
    # The browser view (docs/WEB.md) shares the port, the identities and
    # the rate limits.
    root = WebRoot(methods, identifyLimited, reactor)
    root.putChild(b"RPC2", rpc)
    site = QuietSite(
        root,
        maxBody=options["max-body"],
        requestDeadline=options["request-deadline"],
        maxPerPeer=options["max-per-peer"],
        timeout=options["idle-timeout"],
        handshakeDeadline=options["handshake-deadline"],
        sendDeadline=options["send-deadline"],
        connectionRate=options["connection-rate"],
        connectionBurst=options["connection-burst"],
        reactor=reactor,
    )

    # Wake channels live long: closed once their credential expires or a
    # reload revokes it.
    channelWatch = CredentialWatch(reactor, trust=wakeCtx)

    def wakeIdentify(transport):
        if getattr(transport, "sealed", False):
            # A sealed channel: the registration's secret, its key, is
            # what binds it (and the hello's token, checked again); it
            # lasts no longer than the credential that registered.
            record = registry.get(transport.jobId)
            if record is not None:
                channelWatch.watchRegistration(transport, record)
            return None
        connection = transport.getHandle()
        if tokens is not None and connection.get_peer_certificate() is None:
            # A daemon that registered with a token: its registration's
            # wake token is what binds the channel.
            return None
        identity = identityOfConnection(connection)
        channelWatch.watch(transport, identity)
        return identity

    metrics.watch(hub)
    logFiles = None
    if options["log-dir"]:
        logFiles = LogFiles(options["log-dir"], split=not options["log-single"])
    credentials = [ctx, wakeCtx] if tokens is None else [tokens, ctx, wakeCtx]
    if voms is not None:
        credentials.append(voms)
    service = ServerService(
        reactor, hub, credentials=credentials, audit=audit, history=history,
        logFiles=logFiles, portFile=options["port-file"],
    )
    parsePool.setServiceParent(service)
    interface = options["interface"]
    service.listen(
        "https", EagerServerEndpoint(endpoints.SSL4ServerEndpoint(
            reactor, options["https-port"], ctx, interface=interface)), site,
        address=(interface, options["https-port"]),
    )
    # The wake port takes TLS (daemons of earlier versions, or told to)
    # and sealed connections (keyed by the registration: a few KB less per
    # idle channel), told apart by their first byte.
    wakeFactory = WakeServerFactory(hub, wakeIdentify, reactor, maxPerPeer=options["max-per-peer"],
                                    maxResult=options["max-body"])
    sealed = not options["wake-tls-only"]
    service.listen(
        "wake", EagerServerEndpoint(endpoints.TCP4ServerEndpoint(
            reactor, options["wake-port"], interface=interface)),
        SniffingFactory(wakeFactory, TLSMemoryBIOFactory(wakeCtx, False, wakeFactory),
                        sealedLookup(registry) if sealed else None, reactor),
        address=(interface, options["wake-port"]),
    )
    if sender is not None:
        # Send from the interface the server listens on, any port.
        UDPServer(0, sender, interface="" if interface == "0.0.0.0" else interface,
                  reactor=reactor).setServiceParent(service)
        service.addresses["udp"] = ("udp", interface, 0)
    if options["metrics-port"] is not None:
        metricsSite = MetricsSite(MetricsResource(metrics, hub, writability))
        service.listen(
            "metrics",
            endpoints.TCP4ServerEndpoint(reactor, options["metrics-port"],
                                         interface=options["metrics-interface"]),
            metricsSite,
            address=(options["metrics-interface"], options["metrics-port"]),
        )
    channelWatch.setServiceParent(service)
    reloadable = [ctx, wakeCtx] if tokens is None else [ctx, wakeCtx, tokens]
    if voms is not None:
        reloadable.append(voms)
    CredentialReloader(
        reactor, reloadable, options["reload-interval"], installSignal=installSignal,
        runInThread=runInThread,
    ).setServiceParent(service)
    return service


def clusterHub(options, reactor, node, registry, table, config, wakes, audit, metrics,
               history):
    """
    The hub of a server in a cluster (C{--redis}): it joins the cluster
    once connected to its Redis.
    """
    from jobmon.server.cluster.hub import ClusterHub
    from jobmon.server.cluster.redisstore import connectStore

    target = options["redis"]

    def connect():
        return connectStore(reactor, target, prefix=options["redis-prefix"])

    return ClusterHub(reactor, node, table, config, wakes=wakes, audit=audit, metrics=metrics,
                      history=history, runInThread=threadRunner(reactor), registry=registry,
                      connect=connect, where=target.redacted())


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


def makeService(options, program="jobmon-server"):
    """
    twistd entry point: the server on the global reactor, with its files
    read at once, so that a bad one stops C{twistd} with one line (before
    it detaches from the terminal) rather than a traceback.

    @param program: what that line begins with.
    @raise SystemExit: a file is missing or bad.
    """
    from twisted.internet import reactor

    raiseFileLimit()
    service = buildService(options, reactor)
    try:
        service.load()
        service.checkPorts()
        if options["redis"] is not None:
            from jobmon.server.cluster.probe import probeRedis

            probeRedis(options["redis"])
    except StartupError as e:
        raise SystemExit("{}: {}".format(program, e))
    return service

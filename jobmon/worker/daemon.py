"""
The JobMon job daemon: C{twistd -n jobmon-daemon}.

Started by the job's wrapper, it lives as long as the job: it registers the
job with the server, holds the wake channel open, and when woken fetches the
queued requests (C{getJobToDo}), runs each in a thread, confined to the
job's working directory, and posts the results (C{outputJobResult}); a
server that offers it sends the requests on the wake channel itself, where
the daemon answers them (see L{jobmon.protocols.wake}).  If the
server goes away it registers again with capped exponential backoff and
jitter (given several servers, with the next one at once: see
L{jobmon.worker.servers}); on SIGTERM it unregisters before it exits.
"""

import os
import random
import re
import secrets
import socket
from urllib.parse import urlsplit

from attrs import frozen
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from jobmon import __version__
from jobmon.certificates import CredentialError, caCertificates
from jobmon.config import FileOptions, applyConfigFile
from jobmon.credentials import tokenSource
from jobmon.deferreds import deferredAsync, threadRunner
from jobmon.errors import (
    REMOTE_ERROR,
    REMOTE_TIMEOUT,
    JobMonError,
    StartupError,
)
from jobmon.fqan import MAX_SHARES, parseFqan
from jobmon.options import DEFAULT_CA_DIR, defaultCADir, positive
from jobmon.protocols.jobid import checkJobId
from jobmon.protocols.sealed import VERSION as SEALED_VERSION
from jobmon.protocols.sealed import SealedClientEndpoint
from jobmon.protocols.wake import WakeClientFactory
from jobmon.protocols.xmlrpc import XMLRPCClient
from jobmon.serverlist import splitServers
from jobmon.worker.authorization import (  # noqa: F401 (re-exported)
    TOKEN_REREAD,
    CachedAuthorization,
    bearerAuthorization,
)
from jobmon.worker.files import Workdir
from jobmon.worker.operations import FILE_OPS, Operations, runWithTimeout
from jobmon.worker.servers import (
    Server,
    ServerRing,
    checkServerURL,
    isServerLoss,
)
from jobmon.worker.tls import CredentialPolicy, clientCredential
from jobmon.worker.wakeloops import PollWakeLoop, UDPWakeLoop, describe
from jobmon.worker.xmlsafe import EXACT_NAME_KEYS, xmlSafe  # noqa: F401 (re-exported)

PROGRAM = "jobmon-daemon"
"""What the daemon's one-line start-up error begins with."""


STOP_DRAIN = 5.0
"""Seconds a stopping daemon lets running requests finish and post their
results before it unregisters (well within C{jobmon-run --stop-grace})."""

COME_BACK = 0.5
"""Seconds a stopping daemon waits for a follower whose last answer did not
close its follow (cut by the result cap) to ask for the rest."""


class Options(FileOptions):
    """
    Command-line options of C{twistd jobmon-daemon}.
    """

    program = PROGRAM

    synopsis = "--server URL --job-id ID [options]"
    longdesc = (
        "Run the JobMon daemon beside a job: register it with the JobMon "
        "server and answer its owner's queries about the working directory."
    )

    optParameters = [
        ["config", None, None, "TOML configuration file: keys are the long option names; "
         "options given on the command line override it (docs/CONFIG.md)."],
        ["job-id", None, None, "The job's id (batch system id)."],
        ["workdir", None, ".", "The job's working directory; every path is confined to it."],
        ["proxy", None, None, "Credential file [default: $X509_USER_PROXY, then "
         "/tmp/x509up_u$UID]."],
        ["auth", None, "auto", "x509 (the proxy) or token (a WLCG bearer token); auto: "
         "a token named by $BEARER_TOKEN or $BEARER_TOKEN_FILE, else the proxy if "
         "there is one, else a token in $XDG_RUNTIME_DIR/bt_u$UID or /tmp/bt_u$UID."],
        ["token-file", None, None, "The bearer token's file, read again (in a thread) "
         "every 10 s at most, so that a renewed token is used [default: WLCG token "
         "discovery]."],
        ["ca-dir", None, None, "Trusted CAs, OpenSSL hashed directory "
         "[default: $X509_CERT_DIR, then " + DEFAULT_CA_DIR + "]."],
        ["wake", None, "tcp", "Wake mode: tcp (a connection to the server, sealed with "
         "the registration's key or TLS), udp "
         "(broadcast datagrams; the server must offer them) or poll (HTTPS long "
         "poll, for workers that may only make outgoing HTTPS connections)."],
        ["max-result", None, 1024 * 1024, "Largest result sent, bytes.", positive(int)],
        ["op-timeout", None, 30.0, "Seconds an operation may take.", positive(float)],
        ["retry-initial-delay", None, 1.0, "First reconnect delay, seconds.",
         positive(float)],
        ["retry-max-delay", None, 60.0, "Longest reconnect delay, seconds.",
         positive(float)],
        ["host-name", None, None, "Host name reported to the server [default: this "
         "host's name]."],
        ["job-pid", None, None, "The job's root process: ps, top, res, env and signal "
         "look at its tree [default: the daemon's parent, the job wrapper; if that is "
         "not a job (PID 1, a system service, a login shell), the daemon's own process "
         "group].", positive(int)],
        ["allow-signal", None, "", "Signals users may send to the job, e.g. TERM,USR1 "
         "[default: none]."],
    ]

    optFlags = [
        ["wake-tls", None, "Use TLS on the TCP wake channel even when the server "
         "offers the sealed channel (keyed by the registration, lighter on the server)."],
    ]

    configPaths = ("workdir", "proxy", "ca-dir", "commands", "token-file")
    """Options a configuration file gives relative to its directory."""

    def __init__(self):
        super().__init__()
        self["commands"] = []
        self["redact"] = []
        self["share"] = []

    def opt_server(self, url):
        """
        Server URL, e.g. https://jobmon.example.org:8443/RPC2 (repeatable, or
        a comma-separated list: the daemon registers with the first and
        moves to the next when it loses its server) [default:
        $JOBMON_SERVER, a URL or comma-separated list].
        """
        # Kept as a comma-separated list, as $JOBMON_SERVER holds it.
        self["server"] = ",".join(filter(None, (self.get("server"), url)))

    def opt_commands(self, path):
        """
        A TOML file of site-approved commands users may run (repeatable; a
        later file cannot redefine a command of an earlier one).
        """
        self["commands"].append(path)

    def opt_share(self, fqan):
        """
        Let the holders of this VOMS FQAN (or of a bearer token whose
        wlcg.groups has the group) read the job, e.g. /cms or
        /cms/Role=production (repeatable; signals and commands stay the
        owner's).
        """
        try:
            self["share"].append(str(parseFqan(fqan)))
        except ValueError as e:
            raise usage.UsageError("--share: {}".format(e))
        if len(self["share"]) > MAX_SHARES:
            raise usage.UsageError(
                "--share: a job may be shared with at most {} groups".format(MAX_SHARES))

    def opt_redact(self, pattern):
        """
        Also redact environment variables whose name contains PATTERN
        (repeatable).
        """
        self["redact"].append(pattern)

    def postOptions(self):
        """
        Check and complete the values; no credential, CA or commands file
        is read here (see L{loadStartup}), only the configuration file.
        """
        applyConfigFile(self)
        if not self.get("server"):
            self["server"] = os.environ.get("JOBMON_SERVER")
        servers = splitServers(self["server"] or [])
        if not servers:
            raise usage.UsageError("--server is required (or set JOBMON_SERVER)")
        try:
            self["servers"] = [checkServerURL(url) for url in servers]
        except ValueError as e:
            raise usage.UsageError(str(e))
        self["server"] = servers[0]
        if not self["job-id"]:
            raise usage.UsageError("--job-id is required")
        try:
            checkJobId(self["job-id"])
        except JobMonError as e:
            raise usage.UsageError(str(e))
        if self["wake"] not in ("tcp", "udp", "poll"):
            raise usage.UsageError("--wake must be tcp, udp or poll")
        if not os.path.isdir(self["workdir"]):
            raise usage.UsageError("--workdir {} is not a directory".format(self["workdir"]))
        self["workdir"] = os.path.abspath(self["workdir"])
        from jobmon.credentials import AUTH_MODES, defaultProxyPath, resolveAuth

        if self["auth"] not in AUTH_MODES:
            raise usage.UsageError("--auth must be one of {}".format(", ".join(AUTH_MODES)))
        self["auth"] = resolveAuth(
            self["auth"], proxy=self["proxy"], tokenFile=self["token-file"]
        )
        if self["ca-dir"] is None:
            self["ca-dir"] = defaultCADir()
        if self["host-name"] is None:
            self["host-name"] = socket.gethostname()
        if self["auth"] == "token":
            self["proxy"] = None
        elif self["proxy"] is None:
            self["proxy"] = defaultProxyPath()
        from jobmon.worker.procs import parseSignalNames

        try:
            self["allow-signal"] = (
                parseSignalNames(self["allow-signal"]) if self["allow-signal"] else frozenset()
            )
        except ValueError as e:
            raise usage.UsageError("--allow-signal: {}".format(e))
        from jobmon.worker.redaction import checkRedactPatterns

        try:
            self["redact"] = checkRedactPatterns(self["redact"])
        except ValueError as e:
            raise usage.UsageError("--redact: {}".format(e))


@frozen
class Startup:
    """
    What the daemon read before it starts (see L{loadStartup}).

    @ivar authorization: the blocking read of the C{Authorization} header
        (see L{bearerAuthorization}), or L{None} with an X.509 credential.
    @ivar commandTable: the site-approved commands (see
        L{jobmon.worker.commands.loadCommands}).
    """

    authorization: object
    commandTable: object


def _oneLine(error):
    # twistd and jobmon-run show only the last line of a failed start.
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def loadStartup(options):
    """
    Read what the daemon cannot start without: its bearer token (checked
    unexpired) or its proxy, its CA directory and its commands files.
    Blocking: L{makeService} calls it before the reactor runs, so that a bad
    file stops the daemon with one line.

    @param options: parsed L{Options}.
    @return: a L{Startup}.
    @raise StartupError: a file is missing or bad.
    """
    from jobmon.worker.commands import CommandConfigError, loadCommands

    authorization = None
    try:
        if options["auth"] == "token":
            authorization = bearerAuthorization(tokenSource(options["token-file"]))
            authorization()
        else:
            clientCredential(options["proxy"])
        caCertificates(options["ca-dir"])
        commandTable = loadCommands(options["commands"])
    except (CredentialError, CommandConfigError) as e:
        raise StartupError(_oneLine(e)) from None
    return Startup(authorization, commandTable)


HURRY_EVERY = 10.0
"""Seconds between two registrations at once after a clean close of the
wake channel (see L{JobDaemon._channelClosed}), so that a server that
closes every channel at once cannot make the daemon spin."""

SEALED_TRIES = 3
"""Sealed wake channels in a row that may close before their welcome
before the daemon uses TLS instead."""

@implementer(IStreamClientEndpoint)
class _RegisteringEndpoint:
    """
    An endpoint that registers the job before each connection of its wake
    channel, so that every reconnection (server restart, lost path) is also
    a fresh registration, under the same backoff.
    """

    def __init__(self, daemon):
        self.daemon = daemon

    def connect(self, factory):
        return self.daemon._registerAndConnect(factory)

    def __repr__(self):
        return "<registering wake endpoint for {}>".format(self.daemon.serverURL)


class JobDaemon(MultiService):
    """
    The daemon of one job.

    @ivar jobId: the job's id.
    @ivar rpc: an L{XMLRPCClient} to the server.
    @ivar operations: the L{jobmon.worker.operations.Operations} requests run
        with.
    @ivar wakeEndpoint: callable from a port number to the TLS endpoint of
        the server's wake port.
    @ivar sealedEndpoint: callable from a port number to a plain TCP
        endpoint of the server's wake port, which the channel is sealed on
        (L{jobmon.protocols.sealed}) when the server offers it; L{None}:
        TLS always.
    @ivar servers: the L{ServerRing} of the servers it may register with:
        L{rpc}, L{wakeEndpoint}, L{sealedEndpoint} and C{serverURL} are
        those of its current one (the only one, unless C{servers} is given
        to the constructor as a list of L{Server}s).
    @ivar credentials: the service keeping the TLS options up to date (a
        L{jobmon.worker.tls.CredentialPolicy}), run as this daemon's first
        child: registration waits for its C{whenLoaded()}.  C{None} when
        L{rpc} and L{wakeEndpoint} need none.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        jobId,
        serverURL,
        rpc,
        operations,
        wakeEndpoint,
        info,
        mode="tcp",
        listenUDP=None,
        retryPolicy=None,
        callTimeout=30.0,
        maxConcurrent=4,
        credentials=None,
        sealedEndpoint=None,
        servers=None,
    ):
        super().__init__()
        self._sealedFailures = 0
        self.reactor = reactor
        self.jobId = jobId
        self.servers = ServerRing(
            servers or [Server(serverURL, rpc, wakeEndpoint, sealedEndpoint)])
        self._useCurrent()
        self.generation = 0
        """Counts the moves to another server: a request's result is
        dropped when the server that asked was lost meanwhile."""
        self._hurry = False
        self._hurriedAt = None
        self.operations = operations
        self.mode = mode
        # The instance tells a periodic re-registration of this process
        # from a new daemon for the same job.
        self.info = dict(info, wake=mode, instance=secrets.token_hex(8))
        self.retryPolicy = retryPolicy or backoffPolicy(maxDelay=60.0, jitter=random.random)
        self.callTimeout = callTimeout
        self._limit = defer.DeferredSemaphore(maxConcurrent)
        self._token = None
        self._tokenChecks = False
        self._registered = False
        self._announce = True
        self.stopping = False
        """True from the moment the daemon starts to stop (the wake loops end)."""
        self._fetching = False
        self._fetchAgain = False
        self._inFlight = set()
        self._followerComesBack = False
        self.channel = None
        self.credentials = credentials
        if credentials is not None:
            # First, so that the first load starts before the first
            # registration waits for it.
            credentials.setServiceParent(self)
        if mode == "tcp":
            self.factory = WakeClientFactory(
                lambda: (self.jobId, self._token), self.wakeUp, reactor,
                onRequest=self._channelRequests, onMoved=self._moved,
                onClosed=self._channelClosed,
            )
            self.wakeService = ClientService(
                _RegisteringEndpoint(self),
                self.factory,
                retryPolicy=self._retryDelay,
                clock=reactor,
                prepareConnection=self._prepare,
            )
        elif mode == "udp":
            self.wakeService = UDPWakeLoop(self, listenUDP)
        elif mode == "poll":
            self.wakeService = PollWakeLoop(self)
        else:
            raise ValueError("unknown wake mode {!r}".format(mode))
        self.wakeService.setServiceParent(self)

    def _useCurrent(self):
        server = self.servers.current
        self.serverURL, self.rpc = server.url, server.rpc
        self.wakeEndpoint, self.sealedEndpoint = server.wakeEndpoint, server.sealedEndpoint

    def serverLost(self, why):
        """
        The current server is lost (see L{jobmon.worker.servers.isServerLoss}):
        hold the next one of the list from now on.

        @param why: one line saying how it was lost.
        @return: whether to register with the new server at once (see
            L{ServerRing.lose}); false with a single server.
        """
        if len(self.servers) == 1:
            return False
        again = self.servers.lose(self.jobId, why)
        self._useCurrent()
        self.generation += 1
        self._registered = False
        self._announce = True
        self._sealedFailures = 0
        return again

    def _retryDelay(self, attempt):
        # The wake channel's reconnection delay: none right after the
        # server handed the job over or closed the channel cleanly (it may
        # be stopping; a failed registration then moves to the next one).
        if self._hurry:
            self._hurry = False
            return 0
        return self.retryPolicy(attempt)

    def _moved(self, channel):
        """
        The server says it hands the job over (it is stopping): move to the
        next server and register there at once.
        """
        self.serverLost("it handed the job over")
        self._hurry = True
        channel.transport.loseConnection()

    def _channelClosed(self, channel, reason):
        """
        A welcomed wake channel closed.  With several servers, a clean close
        (a stopping server closes its channels) is followed by a
        registration at once, at most every L{HURRY_EVERY} seconds; if it
        fails, the daemon moves to the next server.
        """
        now = self.reactor.seconds()
        if (len(self.servers) > 1 and not self.stopping and reason.check(ConnectionDone)
                and (self._hurriedAt is None or now - self._hurriedAt >= HURRY_EVERY)):
            self._hurriedAt = now
            self._hurry = True

    def _call(self, method, *args):
        d = self.rpc.callRemote(method, *args)
        d.addTimeout(self.callTimeout, self.reactor)
        return d

    async def register(self):
        """
        Register (or register again) with the server.

        @return: the server's reply (see C{jobmon.registerJob}).
        """
        if self.stopping:
            raise defer.CancelledError("daemon is stopping")
        if self.credentials is not None:
            await self.credentials.whenLoaded()
        try:
            reply = await self._call("jobmon.registerJob", self.jobId, self.info)
            self._token = reply["wake"]["token"]
            self._tokenChecks = reply.get("token_checks") is True
            self.servers.reached()
        except Exception as e:
            self._announce = True
            self.log.warn(
                "cannot register job {job_id} with {server}: {why}",
                job_id=self.jobId,
                server=self.serverURL,
                why=describe(e),
            )
            raise
        # Periodic re-registrations (UDP) are not worth a log line each;
        # the first one, and the first after a failure, are.
        if self._announce:
            self.log.info("job {job_id} registered with {server} ({mode} wake)",
                          job_id=self.jobId, server=self.serverURL, mode=self.mode)
            self._announce = self.mode == "tcp"
        self._registered = True
        notice = reply["wake"].get("notice")
        if isinstance(notice, str):
            self.log.warn("the server says: {notice}", notice=notice)
        return reply

    def tokenArgs(self):
        """
        The registration token, as the last argument of C{waitForWork} and
        C{unregisterJob}, when the server checks it (so that a daemon whose
        job was taken over neither polls nor unregisters the new holder's).
        """
        return (self._token,) if self._tokenChecks and self._token else ()

    @deferredAsync
    async def _registerAndConnect(self, factory):
        while True:
            try:
                reply = await self.register()
                break
            except Exception as e:
                # A lost server: the next one at once, until a whole round
                # failed (then the service's backoff).
                if not isServerLoss(e) or not self.serverLost(describe(e)):
                    raise
        wake = reply["wake"]
        if (self.sealedEndpoint is not None and wake.get("sealed") == SEALED_VERSION
                and self._sealedFailures < SEALED_TRIES):
            # Sealed with the registration's secret, which the server gave
            # this daemon over HTTPS.
            endpoint = SealedClientEndpoint(self.sealedEndpoint(wake["port"]), self.jobId,
                                            self._token)
        else:
            endpoint = self.wakeEndpoint(wake["port"])
        return await endpoint.connect(factory)

    def _prepare(self, protocol):
        sealed = getattr(protocol.transport, "sealed", False)

        def up(protocol):
            if sealed:
                self._sealedFailures = 0
            self.channel = protocol
            self.log.info("wake channel up ({kind}, keep-alive {keepalive} s{how})",
                          kind="sealed" if sealed else "TLS", keepalive=protocol.keepalive,
                          how=", requests on the channel" if protocol.requests else "")
            # Fetch at once: work may have been queued while connecting (a
            # server that sends requests on the channel sends those itself).
            if not protocol.requests:
                self.wakeUp()
            return protocol

        def failed(failure):
            # A path that lets TLS through but not the sealed transport
            # would otherwise keep this daemon from ever connecting.
            if sealed:
                self._sealedFailures += 1
                if self._sealedFailures == SEALED_TRIES:
                    self.log.warn("the sealed wake channel failed {n} times in a row before "
                                  "its welcome: using TLS from now on", n=SEALED_TRIES)
            return failure

        return protocol.welcomed.addCallbacks(up, failed)

    def wakeUp(self):
        """
        The server says work is queued: fetch it (once at a time; a wake
        during a fetch makes another fetch follow).
        """
        if self.stopping:
            return
        if self._fetching:
            self._fetchAgain = True
            return
        self._fetching = True
        d = self._fetchLoop()
        d.addErrback(lambda f: self.log.failure("fetch failed", f))

    @deferredAsync
    async def _fetchLoop(self):
        try:
            while True:
                self._fetchAgain = False
                generation = self.generation
                try:
                    items = await self._call("jobmon.getJobToDo", self.jobId)
                except Exception as e:
                    if self.generation != generation:
                        # Asked of a server left meanwhile: its failure
                        # says nothing of the current one, asked now.
                        continue
                    self.log.warn("cannot fetch work: {why}", why=describe(e))
                    if self.mode == "udp" and isServerLoss(e):
                        self.wakeService.serverLost(describe(e))
                    return
                self.dispatch(items)
                if not self._fetchAgain:
                    return
        finally:
            self._fetching = False

    def _channelRequests(self, channel, items):
        """
        Requests the server sent on the wake channel: run like fetched ones,
        answered on the channel.
        """
        if not self.stopping:
            self.dispatch(items, channel)

    def dispatch(self, items, channel=None):
        """
        Run fetched requests, a bounded number at a time; each posts its
        own result (on C{channel}, the wake channel they came on, while it
        is up).
        """
        for item in items:
            if not isinstance(item, dict):
                continue
            d = self._limit.run(self._serve, item, channel)
            self._inFlight.add(d)
            d.addBoth(self._done, d)

    def _done(self, result, d):
        self._inFlight.discard(d)
        return None

    async def _serve(self, item, channel=None):
        generation = self.generation
        requestId = item.get("id")
        request = item.get("request")
        try:
            op = request.get("op") if isinstance(request, dict) else None
            result = xmlSafe(
                await runWithTimeout(self.operations, request),
                names=op in FILE_OPS or op == "follow",
            )
        except JobMonError as e:
            result = e.toResult()
        except defer.CancelledError:
            # Cut by the daemon's stop, after the job unregistered: the
            # server failed the query then.
            self.log.info("request {request_id} cut short: the job ended",
                          request_id=requestId)
            return
        except defer.TimeoutError:
            result = JobMonError(
                REMOTE_TIMEOUT,
                "the operation took longer than {:g} s on the worker".format(
                    self.operations.timeoutFor(request)
                ),
            ).toResult()
        except Exception:
            self.log.failure("request {request_id} failed", request_id=requestId)
            result = JobMonError(REMOTE_ERROR, "unexpected error in the job daemon").toResult()
        if (
            self.operations.ending
            and isinstance(request, dict)
            and request.get("op") == "follow"
            and not (result.get("ended") and not result.get("truncated"))
        ):
            # The follower will ask for the rest: wait for it (see _drain).
            self._followerComesBack = True
        if self.generation != generation:
            self.log.info("result of {request_id} dropped: the server that asked was lost",
                          request_id=requestId)
            return
        if channel is not None and channel.sendResult(requestId, result):
            return
        try:
            await self._call("jobmon.outputJobResult", self.jobId, requestId, result)
        except Exception as e:
            self.log.warn("cannot post result of {request_id}: {why}",
                          request_id=requestId, why=describe(e))

    def _settled(self, seconds):
        """
        Wait until the running requests have posted their results, or
        C{seconds} passed; they are not cancelled.
        """
        done = defer.Deferred()

        def fire(_=None):
            if not done.called:
                done.callback(None)

        timer = self.reactor.callLater(seconds, fire)
        defer.DeferredList(list(self._inFlight)).addCallback(fire)
        return done.addCallback(lambda _: timer.active() and timer.cancel())

    async def _drain(self):
        """
        The job ended: let running requests answer (follows at once, with
        the file's last bytes) and serve the followers that come back for
        the rest, for at most L{STOP_DRAIN} seconds.
        """
        self.operations.end()
        deadline = self.reactor.seconds() + STOP_DRAIN
        while True:
            left = deadline - self.reactor.seconds()
            if left <= 0:
                return
            if self._inFlight:
                await self._settled(left)
            elif self._followerComesBack:
                self._followerComesBack = False
                await deferLater(self.reactor, min(COME_BACK, left), lambda: None)
            else:
                return

    @deferredAsync
    async def stopService(self):
        """
        The job ended: let running requests answer (L{_drain}), unregister
        (the server tells waiting users that the job ended), then close the
        wake channel and pooled connections.  Requests still running are
        cut short quietly.
        """
        # Wakes and fetches go on while draining: a follower may come back.
        await self._drain()
        self.stopping = True
        if self._registered:
            try:
                d = self.rpc.callRemote("jobmon.unregisterJob", self.jobId, *self.tokenArgs())
                d.addTimeout(5, self.reactor)
                if await d is False:
                    self.log.info("job {job_id} left registered: another daemon holds it now",
                                  job_id=self.jobId)
                else:
                    self.log.info("job {job_id} unregistered", job_id=self.jobId)
            except Exception as e:
                self.log.warn("cannot unregister job {job_id}: {why}",
                              job_id=self.jobId, why=describe(e))
        await MultiService.stopService(self)
        for d in list(self._inFlight):
            d.cancel()
        self.operations.close()
        for rpc in {id(s.rpc): s.rpc for s in self.servers.servers}.values():
            await rpc.close()


def _server(reactor, url, host, policy, rpc, tlsOnly):
    """
    A L{Server} of the daemon's list: the wake endpoints name the host,
    which L{endpoints.HostnameEndpoint} resolves at each connection, trying
    every address it resolves to (as the agent's connections do).
    """

    def wakeEndpoint(port):
        return endpoints.wrapClientTLS(policy.creatorForNetloc(host, port),
                                       sealedEndpoint(port))

    def sealedEndpoint(port):
        return endpoints.HostnameEndpoint(reactor, host, port, timeout=10)

    return Server(url, rpc, wakeEndpoint, None if tlsOnly else sealedEndpoint)


def buildDaemon(reactor, options, startup):
    """
    Build the daemon service from parsed L{Options}.

    @param startup: what L{loadStartup} read for these options.
    """
    from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

    class QuietFactory(_HTTP11ClientFactory):
        # One log line per pooled connection is noise in a job's log.
        noisy = False

    servers = options.get("servers") or [checkServerURL(options["server"])]
    hosts = [urlsplit(url).hostname for url in servers]
    policy = CredentialPolicy(reactor, options["ca-dir"], options["proxy"],
                              hostnames=list(dict.fromkeys(hosts)))
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    # HTTPConnectionPool has no public way to choose its connections'
    # factory, and only a factory says whether its start and stop are
    # logged; a job's log would otherwise get two lines per connection.
    pool._factory = QuietFactory
    agent = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=10)
    authorization = None
    if startup.authorization is not None:
        authorization = CachedAuthorization(
            startup.authorization,
            threadRunner(reactor),
            reactor,
        )
    ring = [
        _server(reactor, url, host, policy,
                XMLRPCClient(agent, url, pool=pool, authorization=authorization),
                options["wake-tls"])
        for url, host in zip(servers, hosts)
    ]

    info = {
        "host": options["host-name"],
        "pid": os.getpid(),
        "workdir": options["workdir"],
        "version": __version__,
    }
    # Set by jobmon-run, which knows the batch system from the job's
    # environment.
    batch = os.environ.get("JOBMON_BATCH_SYSTEM", "")
    if re.fullmatch(r"[a-z0-9_-]{1,32}", batch):
        info["batch"] = batch
    if options["share"]:
        info["share"] = list(options["share"])

    def listenUDP(port, protocol):
        # Address reuse: every daemon on the host listens on the same port.
        return reactor.listenMulticast(port, protocol, listenMultiple=True)

    from jobmon.worker.procs import JobProcesses
    from jobmon.worker.scope import chooseScope
    from jobmon.worker.watching import makeWatcher

    scope = chooseScope(options["job-pid"])
    if scope.warning is not None:
        JobDaemon.log.warn("{note}", note=scope.warning)
    operations = Operations(
        reactor,
        Workdir(options["workdir"], maxResult=options["max-result"]),
        JobProcesses(rootPid=scope.rootPid, daemonPid=os.getpid(), group=scope.group),
        startup.commandTable,
        allowedSignals=options["allow-signal"],
        redact=options["redact"],
        opTimeout=options["op-timeout"],
        watcher=makeWatcher(reactor),
    )
    first = ring[0]
    return JobDaemon(
        reactor,
        options["job-id"],
        first.url,
        first.rpc,
        operations,
        first.wakeEndpoint,
        info,
        mode=options["wake"],
        listenUDP=listenUDP,
        retryPolicy=backoffPolicy(
            initialDelay=options["retry-initial-delay"],
            maxDelay=options["retry-max-delay"],
            jitter=random.random,
        ),
        credentials=policy,
        sealedEndpoint=first.sealedEndpoint,
        servers=ring,
    )


def makeService(options):
    """
    twistd entry point: the daemon on the global reactor, with its files
    read at once, so that a bad one stops C{twistd} with one line (which
    C{jobmon-run} reports) rather than a traceback.

    @raise SystemExit: a file is missing or bad.
    """
    import signal

    from twisted.internet import reactor

    try:
        startup = loadStartup(options)
    except StartupError as e:
        raise SystemExit("{}: {}".format(PROGRAM, e))

    # A batch system may signal every process of a job (scancel -s USR1):
    # those are the job's signals, not the daemon's; without this the
    # daemon would die without unregistering.
    for name in ("SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)

    return buildDaemon(reactor, options, startup)

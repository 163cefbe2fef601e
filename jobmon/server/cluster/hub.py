"""
The hub of a server in a cluster (C{--redis}): a L{Hub} whose jobs are
mirrored into the cluster's store, and which routes a query for a job
another server holds to that server, and its result back.

A query goes to the server that holds its job (the one its daemon is
registered with).  While that server is gone and the job moves to another,
the query waits (up to its timeout) and goes where the job registers
again.  A request that acts on the job (a command, a signal) is sent
again only where it surely did not reach the job.
"""

from twisted.internet import defer, task
from twisted.logger import Logger

from jobmon.deferreds import deferredAsync
from jobmon.errors import (
    JOB_CONFLICT,
    JOB_GONE,
    NO_SUCH_JOB,
    NOT_AUTHORIZED,
    TIMEOUT,
    UNAVAILABLE,
    JobMonError,
)
from jobmon.prefixes import PrefixLookup
from jobmon.protocols.jobid import checkJobId
from jobmon.protocols.relay import RawResult, encodeFragment
from jobmon.server.cluster.merge import (
    fanOut,
    mergeAudit,
    mergeHistory,
    serveAudit,
    serveHistory,
)
from jobmon.server.cluster.mirror import (
    MirroredRegistry,
    SharedEndedJobs,
    goneOf,
    recordOf,
)
from jobmon.server.cluster.node import HolderLost, Retry
from jobmon.server.cluster.store import StoreUnavailable
from jobmon.server.cluster.sweep import LeaderSweep
from jobmon.server.groups import listable, queryGrant, shareGrant
from jobmon.server.hub import Hub, listPage, logActing, tooMany
from jobmon.server.identity import Identity
from jobmon.server.requests import ACTING_OPS, checkInfo, checkLimit, checkOptions
from jobmon.server.voms import heldFqans

MOVE_POLL = 0.25
"""Seconds between looks at where a moving job is now."""

RECONNECT = 2.0
"""Seconds between attempts to connect to the store at start-up."""

ROUTE_FOR = 1.0
"""Seconds a server reuses the store's record of a job another server
holds (its owner, shares and server) to route queries to it, instead of
reading it again for each: a user's sequential queries to one job cost one
round trip to the store fewer.  A record that went stale meanwhile is
harmless: the server it names checks the owner and answers that it does
not hold the job, and the record is read again."""

ROUTES_KEPT = 10000
"""Most records of other servers' jobs kept for L{ROUTE_FOR}."""


def storeDown(error):
    """
    The error of a request that needs the cluster's store while it cannot
    be reached.
    """
    return JobMonError(
        UNAVAILABLE,
        "the cluster's store cannot be reached ({}); this server answers only for "
        "the jobs registered with it until it is back".format(error),
    )


class ClusterHub(Hub):
    """
    A L{Hub} in a cluster.

    @ivar node: the L{jobmon.server.cluster.node.ClusterNode}.
    @ivar orphanGrace: seconds the leader keeps the record of a job whose
        server died before it removes it (the job did not register again
        elsewhere: it went with its server).
    @ivar sweep: the L{LeaderSweep}: the cluster's share of the cleanup.
    """

    log = Logger()

    def __init__(self, clock, node, table, config, wakes=None, metrics=None, audit=None,
                 history=None, runInThread=None, registry=None, orphanGrace=None,
                 connect=None, where="the cluster's store"):
        """
        @param registry: the L{MirroredRegistry} (made here by default; the
            server makes it first, for the wakes it builds).
        @param connect: a callable returning a L{Deferred} of the store to
            use (tried again until it works); L{None}: C{node} has its
            store already.
        @param where: the store, as messages name it (no password).
        """
        if registry is None:
            registry = MirroredRegistry(node, config.reserveFor)
        super().__init__(clock, registry, table, config, wakes=wakes, metrics=metrics,
                         audit=audit, history=history, runInThread=runInThread)
        self.node = node
        # A query through any server says when its job went.
        self.ended = self.registrations.ended = SharedEndedJobs(node)
        self.orphanGrace = (orphanGrace if orphanGrace is not None
                            else max(30.0, config.reregisterInterval + 15.0))
        self.connect = connect
        self.where = where
        self._connecting = None
        self._routes = {}
        node.onReconnect = self._resync
        self.sweep = LeaderSweep(self)
        node.onBeat = self.sweep.beat
        node.info = self._info
        node.handle("query", self._serveQuery)
        node.handle("release", self._serveRelease)
        node.handle("history", lambda message: serveHistory(self, message))
        node.handle("audit", lambda message: serveAudit(self, message))

    def _info(self):
        return {"jobs": len(self.registry), "pending": len(self.table)}

    def start(self):
        """
        Start the cleanup cycle, and join the cluster: once connected to
        its store (tried again every L{RECONNECT} seconds until then).
        """
        super().start()
        if self.connect is None:
            self.node.start()
            return
        self._connectOnce()

    def _connectOnce(self):
        if self.stopping:
            return

        def connected(store):
            self._connecting = None
            self.node.store = store
            self.log.info("joined the cluster as {server} through {where}",
                          server=self.node.serverId, where=self.where)
            return self.node.start()

        def failed(failure):
            self.node._lost(failure)
            self._connecting = self.clock.callLater(RECONNECT, self._connectOnce)

        self.connect().addCallbacks(connected, failed)

    def clusterState(self):
        """
        What the metrics say of the cluster (see L{ClusterNode.state}).
        """
        return self.node.state()

    def healthProblems(self):
        """
        What C{/healthz} says is wrong (see L{ClusterNode.problems}).
        """
        return self.node.problems(self.where)

    # Queries

    def query(self, identity, jobId, request):
        """
        As L{Hub.query}; a job another server holds is asked there.
        """
        if self.registry.get(jobId) is not None:
            d = super().query(identity, jobId, request)
            return d.addErrback(self._movedAway, identity, jobId, request)
        if not self.node.available and isinstance(jobId, str):
            error = JobMonError(
                UNAVAILABLE,
                "job {} is not registered with this server, and the cluster's store that "
                "says where it is cannot be reached; try again shortly".format(jobId))
            self._refusedQuery(identity, jobId, error)
            raise error
        return self._routedQuery(identity, jobId, request)

    def _movedAway(self, failure, identity, jobId, request):
        """
        A query for a job held here whose job moved to another server
        before it answered: a read is asked again where the job is now.
        """
        failure.trap(Retry)
        op = request.get("op") if isinstance(request, dict) else None
        if op in ACTING_OPS:
            raise _uncertain(jobId, op)
        return self._routedQuery(identity, jobId, request)

    @deferredAsync
    async def _routedQuery(self, identity, jobId, request):
        try:
            record, server, granted = await self._findShared(identity, jobId)
            forward, timeout = self._checkQuery(identity, jobId, granted, request)
            self.admission.admit(identity.dn)
        except PrefixLookup:
            raise
        except JobMonError as e:
            self._refusedQuery(identity, jobId, e)
            raise
        d = defer.Deferred.fromCoroutine(self._dispatch(record, server, forward, timeout))
        self.admission.hold(identity.dn, d)
        logActing(self.log, identity, record, forward)
        return await self._audited(identity, jobId, record, forward, granted, d)

    async def _findShared(self, identity, jobId):
        """
        The record of a job not held here, from the store, which the caller
        must see: C{(record, its server, what grants it)}.
        """
        if not identity.may("read"):
            raise JobMonError(NOT_AUTHORIZED, identity.token.refusal("read"))
        checkJobId(jobId)
        fields = self._route(jobId)
        if fields is None:
            fields = await self._readRoute(jobId)
        record = recordOf(fields) if fields is not None else None
        granted = queryGrant(identity, record, self.config, self.clock.seconds())
        if granted is None:
            await self._notVisible(identity, jobId)
        return record, fields["server"], granted

    async def _notVisible(self, identity, jobId):
        """
        Raise the error for a job the caller may not see: as L{Hub._find}
        does, with her job ids in the whole cluster for a prefix.
        """
        gone = self.ended.get(jobId)
        store = self.node.store
        try:
            if gone is None:
                value = await store.getValue("gone:" + jobId)
                gone = goneOf(jobId, value) if value is not None else None
            if gone is not None and (gone.owner == identity.dn or self._isAdmin(identity)):
                raise gone.error()
            # The ids alone: a user may have tens of thousands of jobs.
            prefix = await store.ownsPrefix(identity.dn, jobId)
        except StoreUnavailable:
            prefix = False
        message = "no job {} visible to you".format(jobId)
        if prefix:
            raise PrefixLookup(NO_SUCH_JOB, message)
        raise JobMonError(NO_SUCH_JOB, message)

    async def _dispatch(self, record, server, forward, timeout):
        """
        Get the result of C{forward} from the job, wherever it is, within
        C{timeout} seconds.
        """
        jobId = record.jobId
        deadline = self.clock.seconds() + timeout
        acting = forward["op"] in ACTING_OPS
        moving = pause = False
        while True:
            left = deadline - self.clock.seconds()
            if pause and left > 0:
                await task.deferLater(self.clock, min(MOVE_POLL, left), lambda: None)
                left = deadline - self.clock.seconds()
            pause = True
            if left <= 0:
                raise JobMonError(TIMEOUT, "job {} did not answer within {:g} s{}".format(
                    jobId, timeout,
                    " (it was moving to another server: its server stopped)" if moving
                    else ""))
            local = self.registry.get(jobId)
            if local is not None:
                if self.table.pending(jobId) >= self.config.maxPendingPerJob:
                    raise tooMany(jobId, self.config.maxPendingPerJob)
                try:
                    return await self._submit(local, forward, left)
                except Retry:
                    if acting:
                        raise _uncertain(jobId, forward["op"])
            elif server != self.node.serverId and await self._alive(server):
                try:
                    return _resultOf(await self.node.call(
                        server, "query", timeout=left + 1.0, j=jobId, w=record.owner,
                        q=forward, t=left))
                except Retry as e:
                    if acting and e.code != NO_SUCH_JOB:
                        raise _uncertain(jobId, forward["op"])
                except HolderLost:
                    if acting:
                        raise _uncertain(jobId, forward["op"], server)
                    moving = True
            else:
                moving = True
            fields = await self._readRoute(jobId)
            if fields is None or fields["owner"] != record.owner:
                raise JobMonError(JOB_GONE, "job {} went away while it moved between "
                                  "servers".format(jobId))
            server = fields["server"]

    def _route(self, jobId):
        """
        The store's record of C{jobId} read less than L{ROUTE_FOR} seconds
        ago, or L{None}.
        """
        route = self._routes.get(jobId)
        if route is None:
            return None
        fields, readAt = route
        if self.clock.seconds() - readAt >= ROUTE_FOR:
            del self._routes[jobId]
            return None
        return fields

    async def _readRoute(self, jobId):
        """
        Read the store's record of C{jobId} (L{None}: there is none), and
        keep it for L{ROUTE_FOR} seconds.
        """
        try:
            fields = await self.node.store.getJob(jobId)
        except StoreUnavailable as e:
            raise storeDown(e)
        if fields is None:
            self._routes.pop(jobId, None)
            return None
        now = self.clock.seconds()
        if len(self._routes) >= ROUTES_KEPT:
            self._routes = {j: r for j, r in self._routes.items() if now - r[1] < ROUTE_FOR}
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
        self._routes[jobId] = (fields, now)
        return fields

    async def _alive(self, server):
        """
        Whether C{server} is alive: by the last heartbeat, or for a server
        that started since, by the store.
        """
        if self.node.isAlive(server):
            return True
        try:
            return await self.node.store.isAlive(server)
        except StoreUnavailable as e:
            raise storeDown(e)

    def _serveQuery(self, message):
        """
        Another server's query for a job held here.
        """
        jobId, owner = message.get("j"), message.get("w")
        record = self.registry.get(jobId) if isinstance(jobId, str) else None
        if record is None or record.owner != owner or self.stopping:
            raise Retry(NO_SUCH_JOB, "job {} is not held by server {}".format(
                jobId, self.node.serverId))
        if self.table.pending(jobId) >= self.config.maxPendingPerJob:
            raise tooMany(jobId, self.config.maxPendingPerJob)
        timeout = min(float(message.get("t", 0)), self.config.queryTimeout)
        return self._submit(record, message["q"], timeout).addCallback(_encodeResult)

    # Listing

    def listJobs(self, identity, options=None):
        """
        As L{Hub.listJobs}, over the jobs of every server.
        """
        everything, limit, after = self._listOptions(identity, options)
        if not self.node.available:
            return self._listLocal(identity, everything, limit, after)
        return self._listShared(identity, everything, limit, after)

    def _listLocal(self, identity, everything, limit, after):
        """
        The listing of this server's own jobs only, while the store cannot
        be reached.
        """
        records = listable(self.registry, identity, everything, self.clock.seconds())
        page = listPage(records, limit, after, self.table)
        for row in page:
            row["server"] = self.node.serverId
        return page

    @deferredAsync
    async def _listShared(self, identity, everything, limit, after):
        now = self.clock.seconds()
        store = self.node.store
        groups = heldFqans(identity, now) or getattr(identity.token, "groups", ())
        try:
            if everything or groups:
                rows = await store.allJobs()
            else:
                rows = await store.jobsOf(identity.dn)
        except StoreUnavailable:
            # Lost since the last heartbeat: as once it has noticed.
            return self._listLocal(identity, everything, limit, after)
        records = {}
        for fields in rows:
            record = recordOf(fields)
            if (everything or record.owner == identity.dn
                    or shareGrant(identity, record.info, now) is not None):
                records[record.jobId] = (record, fields.get("server", ""))
        for record in self.registry.jobs():
            # This server's own are fresher than the store's copy.
            if record.jobId in records:
                records[record.jobId] = (record, self.node.serverId)
        servers = {jobId: server for jobId, (_, server) in records.items()}
        page = listPage([r for r, _ in records.values()], limit, after, self.table)
        for row in page:
            row["server"] = servers.get(row["job_id"], "")
        return page

    # Registration

    def registerJob(self, identity, jobId, info):
        """
        As L{Hub.registerJob}; a job id held or reserved elsewhere in the
        cluster is checked there first.
        """
        self._require(identity, "register", "registerJob")
        checkJobId(jobId)
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        self.limits.admitRegistration(identity, jobId, self.registry)
        if self.registry.get(jobId) is not None or not self.node.available:
            return self.registrations.register(identity, jobId, info)
        return self._claimAndRegister(identity, jobId, info)

    @deferredAsync
    async def _claimAndRegister(self, identity, jobId, info):
        node, store = self.node, self.node.store
        now = self.clock.seconds()
        fields = {"mode": str(info.get("wake", "tcp")) if isinstance(info, dict) else "",
                  "state": "connecting", "registered": repr(now), "last_seen": repr(now)}
        checkInfo(info)
        instance = info.get("instance")
        claimed = False
        try:
            status, other = await store.claimJob(jobId, identity.dn, node.serverId, fields)
            if status == "held":
                await self._takeOver(identity, jobId, other, instance)
                status, other = await store.claimJob(
                    jobId, identity.dn, node.serverId, fields, replace=other)
            if status == "owner":
                self.registrations.refusedOwner(
                    identity, "registerJob", jobId, other, JOB_CONFLICT,
                    "registered by another identity")
                raise JobMonError(
                    JOB_CONFLICT,
                    "job {} is registered by another identity, or was lately; job ids "
                    "stay reserved for their owner".format(jobId))
            if status != "ok":
                raise JobMonError(UNAVAILABLE, "job {} is moving between servers; "
                                  "register again in a moment".format(jobId))
            claimed = True
        except StoreUnavailable:
            pass  # registered here alone; written to the store once it is back
        try:
            return self.registrations.register(identity, jobId, info)
        except Exception:
            if claimed and self.registry.get(jobId) is None:
                store.removeJob(jobId, node.serverId).addErrback(lambda f: None)
            raise

    async def _takeOver(self, identity, jobId, server, instance):
        """
        Ask C{server}, which holds the job, to let it go to this server: it
        does unless its own daemon of the job is another one and alive.  A
        server that does not answer loses it.
        """
        try:
            await self.node.call(server, "release", timeout=2.0, j=jobId, dn=identity.dn,
                                 i=instance if isinstance(instance, str) else None)
        except (HolderLost, Retry):
            pass
        except JobMonError as e:
            if e.code == JOB_CONFLICT:
                raise
            # Silent or unreachable: the newest registration wins.

    def _serveRelease(self, message):
        """
        Another server asks for a job held here, for the daemon that just
        registered it there.
        """
        jobId, dn, instance = message.get("j"), message.get("dn"), message.get("i")
        record = self.registry.get(jobId) if isinstance(jobId, str) else None
        if record is None:
            return "released"
        if record.owner != dn:
            raise JobMonError(JOB_CONFLICT, "job {} is registered by another identity".format(
                jobId))
        if not (isinstance(instance, str) and record.info.get("instance") == instance):
            host = record.host
            self.registrations._contest(Identity(dn), record, {"instance": instance},
                                        "?", self.clock.seconds())
            self.log.info("job {job_id}: its daemon on {host} moves to server {server}",
                          job_id=jobId, host=host, server=message.get("o"))
        self.moveAway(jobId, message.get("o"))
        return "released"

    def moveAway(self, jobId, server):
        """
        Let go of a job that registered with another server: its wake
        channel closes, its queued queries are asked again there (reads)
        or fail saying so (commands and signals).
        """
        record = self.registry.forget(jobId)
        if record is None:
            return
        self.registrations.releaseMoved(
            jobId, "job {} moved to server {}".format(jobId, server))
        self.table.failJob(jobId, Retry(UNAVAILABLE, "job {} moved to server {}".format(
            jobId, server)))
        self._audit("removed", job_id=jobId, owner=record.owner,
                    why="moved to server {}".format(server), failed=0,
                    registration=record.registration)
        self.metrics.removals.labels("moved").inc()

    # History and audit, from every server

    def historyOf(self, identity, options=None):
        if not self.node.available:
            return super().historyOf(identity, options)
        options = checkOptions(options, "history")
        return fanOut(self.node, "history", mergeHistory, super().historyOf(identity, options),
                      checkLimit(options.get("limit", 100)), dn=identity.dn, options=options)

    def auditLog(self, identity, jobId, limit=100):
        mine = super().auditLog(identity, jobId, limit)
        if not self.node.available:
            return mine
        return fanOut(self.node, "audit", mergeAudit, mine, limit, j=jobId, n=limit)

    # The cluster's share of the cleanup, and writing again

    @defer.inlineCallbacks
    def _resync(self):
        given = yield self.registry.resync()
        for jobId, status, other in given:
            if status == "held":
                self.moveAway(jobId, other)
            else:
                self.registrations.drop(
                    jobId, "registered by another identity elsewhere in the cluster",
                    "job {} went away".format(jobId), "conflict")
        if given:
            self.log.warn("{count} job(s) given up: held elsewhere in the cluster meanwhile",
                          count=len(given))

    # Stopping

    @defer.inlineCallbacks
    def stop(self):
        """
        Hand every job over at once: leave the cluster (the others see this
        server gone), tell each daemon to register elsewhere, then stop.
        """
        self.stopping = True
        if self._connecting is not None and self._connecting.active():
            self._connecting.cancel()
        # Queries of other servers are answered first (asked again where
        # the jobs go), while this server can still tell them.
        self.table.failAll(Retry(UNAVAILABLE, "server {} is stopping".format(
            self.node.serverId)))
        yield self.node.stop()
        self.registrations.handOver()
        # UDP daemons hold no connection to see close: woken, they fetch,
        # are told the server stops, and register with another.
        now = self.clock.seconds()
        for record in self.registry.jobs():
            if record.mode == "udp":
                self.sweep.nudge(record.jobId, record.udpKey, now)
        yield super().stop()


def _uncertain(jobId, op, server=None):
    """
    The error of a command or signal whose job's server went (or whose job
    moved) after it was sent: it may or may not have reached the job.
    """
    what = "command" if op == "run" else "signal"
    where = "server {} stopped".format(server) if server else "the job moved to another server"
    return JobMonError(
        UNAVAILABLE,
        "{} while your {} was pending: it may or may not have reached the job; "
        "check the job before asking again".format(where, what),
    )


def _encodeResult(result):
    """
    A result, as one server sends it to another: the XML-RPC fragment.
    """
    if isinstance(result, RawResult):
        body, size = result.body, result.size
    else:
        body, size = encodeFragment(result), 0
    return {"raw": body.decode("utf-8", "surrogateescape"), "size": size}


def _resultOf(value):
    """
    The result another server sent (see L{_encodeResult}).
    """
    return RawResult(value["raw"].encode("utf-8", "surrogateescape"), value.get("size", 0))


"""
The server's logic: who may register, query and serve which job, and the
link from a user's pending query to the job's result.

L{Hub} knows nothing of HTTP or sockets.  The XML-RPC resource calls its
C{xmlrpc_*}-like methods with the caller's identity; the wake protocol calls
L{Hub.channelHello} and L{Hub.channelLost}.  The hub checks callers and
links queries to results; it leaves the registered jobs and their wakes to
L{jobmon.server.registrations.Registrations}, the shape of requests to
L{jobmon.server.requests} and the per-user limits to
L{jobmon.server.admission.QueryAdmission}.
"""

import bisect
import math

from attrs import evolve, field, frozen
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jobmon.errors import (
    BAD_REQUEST,
    NO_SUCH_JOB,
    NOT_AUTHORIZED,
    TIMEOUT,
    TOO_MANY,
    UNAVAILABLE,
    JobMonError,
)
from jobmon.outcomes import outcomeWord
from jobmon.prefixes import PrefixLookup
from jobmon.protocols.jobid import checkJobId
from jobmon.protocols.relay import RawResult
from jobmon.server.admission import QueryAdmission
from jobmon.server.claims import RESERVE_FOR, JobClaims
from jobmon.server.ended import EndedJobs
from jobmon.server.groups import (
    describeCaller,
    isAdmin,
    listable,
    queryGrant,
    readOnlyRefusal,
)
from jobmon.server.identity import AdminList
from jobmon.server.metrics import NullMetrics
from jobmon.server.ratelimit import Limits, LimitsConfig
from jobmon.server.registrations import Registrations
from jobmon.server.requests import (
    ACTING_OPS,
    MAX_LIST_PAGE,
    asStruct,
    checkLimit,
    checkOptions,
    checkRequest,
    deliver,
    outcomeOf,
    resultSize,
    xmlrpcSafe,
)
from jobmon.server.wakes import standardWakes, takeWork


def ownJobIds(registry, dn, prefix):
    """
    The ids of the jobs C{dn} registered that start with C{prefix}: those
    a prefix may name (see L{jobmon.prefixes}).
    """
    return [r.jobId for r in registry.ofOwner(dn) if r.jobId.startswith(prefix)]


def jobRow(record, pending):
    """
    What C{listJobs} says of a job: its record and how many requests are
    C{pending} for it.
    """
    batch = record.info.get("batch")
    return {
        "job_id": record.jobId,
        "owner": record.owner,
        "host": record.host,
        "batch": batch if isinstance(batch, str) else "",
        "mode": record.mode,
        "state": record.state,
        "registered": float(record.registered),
        "last_seen": float(record.lastSeen),
        "pending": pending,
    }


def listPage(records, limit, after, table):
    """
    A page of C{listJobs}'s rows: of C{records} sorted by id, the first
    C{limit} after C{after}, with how many requests are pending for each in
    C{table}.
    """
    records = sorted(records, key=lambda r: r.jobId)
    if after is not None:
        records = records[bisect.bisect_right([r.jobId for r in records], after):]
    return [jobRow(r, table.pending(r.jobId)) for r in records[:limit]]


@frozen
class HubConfig:
    """
    The hub's limits, timeouts and intervals.

    @ivar admins: who may see and query every job: an
        L{jobmon.server.identity.AdminList} (made from C{--admin} values).
    @ivar adminFqans: VOMS FQANs (L{jobmon.fqan.FQAN}) whose holders are
        admins too.
    @ivar queryTimeout: longest time a query waits for its job, in seconds
        (also how long an unanswered UDP wake is repeated).
    @ivar keepalive: TCP wake channel keep-alive interval, in seconds.
    @ivar connectGrace: how long a TCP job may take to connect its wake
        channel before it is dropped, in seconds.
    @ivar maxPendingPerJob: most requests queued or running for one job.
    @ivar reregisterInterval: seconds between re-registrations of UDP
        daemons.
    @ivar expireAfter: seconds without news after which a UDP or poll job
        is dropped.
    @ivar cleanupInterval: seconds between runs of the cleanup cycle.
    @ivar maxPoll: longest C{waitForWork} wait, in seconds.
    @ivar maxPendingPerUser: most queries one user may have pending.
    @ivar queryRate: queries per second one user may make, on average.
    @ivar queryBurst: queries one user may make at once.
    @ivar limits: the L{LimitsConfig} of every method's rate, and of
        registrations.  Queries are charged once, to its C{query} bucket,
        at the stricter of its rate and burst and C{queryRate} and
        C{queryBurst} (the server sets both from C{--query-rate} and
        C{--query-burst}).
    @ivar reserveFor: seconds a job id stays reserved for its owner after
        its job went (see L{jobmon.server.claims}).
    """

    admins: AdminList = field(default=(), converter=AdminList)
    adminFqans: frozenset = field(default=frozenset(), converter=frozenset)
    queryTimeout: float = 30.0
    keepalive: float = 20
    connectGrace: float = 30.0
    maxPendingPerJob: int = 64
    reregisterInterval: float = 60.0
    expireAfter: float = 180.0
    cleanupInterval: float = 10.0
    maxPoll: float = 60.0
    maxPendingPerUser: int = 256
    queryRate: float = 50.0
    queryBurst: int = 200
    limits: LimitsConfig = LimitsConfig()
    reserveFor: float = RESERVE_FOR


class Hub:
    """
    Registered jobs, their wake channels and the queries waiting on them.

    Three wake modes are served at once, each by an
    L{jobmon.server.wakes.IWake} provider (see L{jobmon.server.wakes}): a
    TCP channel, UDP datagrams and the HTTPS long poll.  The hub asks a
    job's wake to wake it, to let go of it and whether its daemon is still
    there; it never branches on the mode.

    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    @ivar registry: an L{jobmon.server.registry.IJobRegistry}.
    @ivar table: an L{jobmon.server.pending.IRequestTable}.
    @ivar config: the L{HubConfig}.
    @ivar registrations: the L{Registrations} of jobs and their wakes.
    @ivar admission: the L{QueryAdmission} of users' queries.
    @ivar metrics: a L{jobmon.server.metrics.Metrics}.
    @ivar audit: the L{jobmon.server.audit} log, or L{None}.
    @ivar history: the L{jobmon.server.history.History}, or L{None}.
    @ivar ended: the L{jobmon.server.ended.EndedJobs}: jobs removed lately,
        so that a query for one says it ended (or went away) and when.
    @ivar stopping: whether the server is shutting down.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        registry,
        table,
        config=HubConfig(),
        wakes=None,
        metrics=None,
        audit=None,
        history=None,
        runInThread=None,
    ):
        """
        @param wakes: the L{jobmon.server.wakes.IWake} providers, in the
            order their modes are listed; C{"tcp"} and C{"poll"} must be
            among them (the wake port and C{waitForWork} are always
            served).  By default those of
            L{jobmon.server.wakes.standardWakes}, without UDP.
        @param runInThread: C{(f, *args)} -> L{Deferred}: runs blocking
            reads (of the audit log) off the reactor thread.
        """
        self.clock = clock
        self.registry = registry
        self.table = table
        self.config = config
        self.audit = audit
        self._runInThread = runInThread
        self.metrics = metrics if metrics is not None else NullMetrics()
        self.history = history
        if wakes is None:
            wakes = standardWakes(clock, registry, table, config, self.metrics)
        self.ended = EndedJobs()
        self.registrations = Registrations(
            clock, registry, table, config, wakes, self.metrics, self._audit, self.ended,
            JobClaims(config.reserveFor),
        )
        limits = evolve(config.limits,
                        queryRate=min(config.queryRate, config.limits.queryRate),
                        queryBurst=min(config.queryBurst, config.limits.queryBurst))
        self.limits = Limits(clock, limits, self.metrics, self._audit)
        self.admission = QueryAdmission(clock, config.maxPendingPerUser,
                                        self.limits.buckets["query"])
        self.stopping = False
        self._cleanup = LoopingCall(self.cleanup)
        self._cleanup.clock = clock

    def start(self):
        """
        Start the cleanup cycle.
        """
        self._cleanup.start(self.config.cleanupInterval, now=False)

    @property
    def modes(self):
        """
        The wake modes this server offers.
        """
        return self.registrations.modes

    @property
    def wakePort(self):
        """
        The TCP wake port daemons connect to (set once it listens).
        """
        return self.registrations.wakes["tcp"].port

    @wakePort.setter
    def wakePort(self, port):
        self.registrations.wakes["tcp"].port = port

    @property
    def udpSender(self):
        """
        The L{jobmon.protocols.udp.UDPWakeSender}, or L{None} when UDP
        wakes are not configured.
        """
        udp = self.registrations.wakes.get("udp")
        return udp.sender if udp is not None else None

    @property
    def udpPort(self):
        """
        The port daemons listen on for UDP wakes, or L{None}.
        """
        udp = self.registrations.wakes.get("udp")
        return udp.port if udp is not None else None

    # Helpers

    def _isAdmin(self, identity):
        return isAdmin(identity, self.config, self.clock.seconds())

    def _require(self, identity, capability, method):
        """
        Refuse a caller whose bearer token's scopes do not grant
        C{capability} (see L{jobmon.server.identity.Identity.may}); counted and
        audited.
        """
        if identity.may(capability):
            return
        message = identity.token.refusal(capability)
        self.metrics.refusals.labels("scope").inc()
        self._audit("refused", dn=identity.dn, method=method, code=NOT_AUTHORIZED,
                    reason=message)
        raise JobMonError(NOT_AUTHORIZED, message)

    def _find(self, identity, jobId):
        """
        Return the record of job C{jobId}, which the caller must see, and
        what lets her (see L{queryGrant}).

        @raise JobMonError: L{NO_SUCH_JOB}; a L{PrefixLookup} if C{jobId}
            starts ids of her own jobs (the client resolves it).
        """
        record = self.registry.get(jobId)
        granted = queryGrant(identity, record, self.config, self.clock.seconds())
        if granted is not None:
            return record, granted
        gone = self.ended.get(jobId) if record is None else None
        # Whoever may not see the job must not learn that it existed.
        if gone is not None and (gone.owner == identity.dn or self._isAdmin(identity)):
            raise gone.error()
        message = "no job {} visible to you".format(jobId)
        if ownJobIds(self.registry, identity.dn, jobId):
            raise PrefixLookup(NO_SUCH_JOB, message)
        raise JobMonError(NO_SUCH_JOB, message)

    def _owned(self, identity, jobId):
        """
        Return the record of a job the caller owns (daemon methods).
        """
        self._require(identity, "register", "daemon")
        return self.registrations.owned(identity, jobId)

    def _audit(self, event, **fields):
        """
        Write an event to the audit log and to the history, where kept.
        """
        if self.audit is not None:
            self.audit.record(event, **fields)
        if self.history is not None:
            self.history.record(event, **fields)

    # Methods for users

    def whoami(self, identity):
        """
        Describe the caller, and say which version the server runs.
        """
        return describeCaller(identity, self.config, self.clock.seconds())

    def listJobs(self, identity, options=None):
        """
        Return the caller's jobs, sorted by id, a page at a time; with
        C{{"all": true}}, an admin gets every job.

        Options: C{all} (boolean), C{limit} (jobs per page, default and at
        most L{MAX_LIST_PAGE}), C{after} (return jobs whose id sorts after this one:
        the last id of the previous page).
        """
        everything, limit, after = self._listOptions(identity, options)
        records = listable(self.registry, identity, everything, self.clock.seconds())
        return listPage(records, limit, after, self.table)

    def _listOptions(self, identity, options):
        """
        Check C{listJobs}'s caller and options: whether she asks for every
        job, how many, after which id.
        """
        options = checkOptions(options, "listJobs")
        self._require(identity, "read", "listJobs")
        everything = options.get("all", False)
        if everything and not self._isAdmin(identity):
            raise JobMonError(NOT_AUTHORIZED, "only the server's admins may list all jobs")
        limit = checkLimit(options.get("limit", MAX_LIST_PAGE), MAX_LIST_PAGE)
        after = options.get("after")
        if after is not None and not isinstance(after, str):
            raise JobMonError(BAD_REQUEST, "after must be a job id")
        return everything, limit, after

    def query(self, identity, jobId, request):
        """
        Queue C{request} for the job, wake it, and return a L{Deferred} that
        fires with its result.  Every query is audited: its outcome (a word
        of L{jobmon.outcomes}), size and duration, or why it was refused;
        a 404 for a prefix of the caller's own job ids is no refusal.

        The query's rate is charged by the method limits before this is
        called (L{Limits.wrap}, as the server's endpoint calls it), once.
        """
        try:
            d, record, forward, granted = self._query(identity, jobId, request)
        except PrefixLookup:
            raise  # the client resolving a prefix: nothing refused
        except JobMonError as e:
            self._refusedQuery(identity, jobId, e)
            raise
        return self._audited(identity, jobId, record, forward, granted, d)

    def _refusedQuery(self, identity, jobId, error):
        """
        Count and audit a query refused with C{error} (a L{JobMonError}).
        """
        self.metrics.refusals.labels(outcomeWord(error.code)).inc()
        self._audit(
            "refused", dn=identity.dn, method="query",
            job_id=jobId if isinstance(jobId, str) else repr(jobId)[:100],
            code=error.code, reason=error.message,
        )

    def _audited(self, identity, jobId, record, forward, granted, d):
        """
        Audit the query whose result C{d} will give, and tell an admin (or a
        group member) whose job answered.
        """
        started = self.clock.seconds()
        args = {k: v for k, v in forward.items() if k != "op"}

        def audited(result):
            outcome, code = outcomeOf(result)
            size = 0 if isinstance(result, Failure) else resultSize(result)
            duration = self.clock.seconds() - started
            fields = {"code": code} if code is not None else {}
            self._audit(
                "query", dn=identity.dn, job_id=jobId, owner=record.owner,
                op=forward["op"], args=args, outcome=outcome, bytes=size,
                duration=round(duration, 6), **fields,
                **({"granted": granted[0]} if granted[0] else {}),
            )
            self.metrics.queries.labels(forward["op"], outcome).observe(duration)
            if record.owner != identity.dn and isinstance(result, (dict, RawResult)):
                # An admin (or a group member) is told whose job answered.
                result = dict(asStruct(result), job_owner=record.owner)
            return result

        return d.addBoth(audited)

    def auditLog(self, identity, jobId, limit=100):
        """
        Return the last C{limit} audit records about a job (admins only).
        """
        self._require(identity, "read", "auditLog")
        if not self._isAdmin(identity):
            raise JobMonError(NOT_AUTHORIZED, "only the server's admins may read the audit log")
        checkJobId(jobId)
        checkLimit(limit)
        if self.audit is None:
            raise JobMonError(BAD_REQUEST, "this server keeps no audit log")
        d = self._runInThread(self.audit.read, jobId, limit)
        return d.addCallback(lambda records: [xmlrpcSafe(r) for r in records])

    def historyOf(self, identity, options=None):
        """
        The caller's own history: the jobs she registered and the queries
        she made, optionally about one job: its id, or a prefix of one of
        her jobs' ids, registered now or in the past.
        """
        options = checkOptions(options, "history")
        self._require(identity, "read", "history")
        jobId = options.get("job_id")
        current = ()
        if jobId is not None:
            checkJobId(jobId)
            current = ownJobIds(self.registry, identity.dn, jobId)
        limit = checkLimit(options.get("limit", 100))
        if self.history is None:
            raise JobMonError(BAD_REQUEST, "this server keeps no history")
        return self.history.read(identity.dn, jobId, limit, current)

    def _query(self, identity, jobId, request):
        if not identity.may("read"):
            raise JobMonError(NOT_AUTHORIZED, identity.token.refusal("read"))
        checkJobId(jobId)
        record, granted = self._find(identity, jobId)
        forward, timeout = self._checkQuery(identity, jobId, granted, request)
        if self.table.pending(jobId) >= self.config.maxPendingPerJob:
            raise tooMany(jobId, self.config.maxPendingPerJob)
        self.admission.admit(identity.dn)
        d = self._submit(record, forward, timeout)
        self.admission.hold(identity.dn, d)
        logActing(self.log, identity, record, forward)
        return d, record, forward, granted

    def _checkQuery(self, identity, jobId, granted, request):
        """
        Check a query the caller may make of a job she may see (what
        C{granted}), and return the request to forward and its timeout.
        """
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        forward, timeout = checkQuery(identity, jobId, granted, request)
        return forward, min(timeout or self.config.queryTimeout, self.config.queryTimeout)

    def _refuseWhileStopping(self):
        """
        A daemon fetching or polling while the server stops is told so:
        one with several servers registers with another at once.
        """
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")

    def _submit(self, record, forward, timeout):
        """
        Queue a checked request for a job this server holds, wake the job,
        and return a L{Deferred} of its result, failed after C{timeout}.
        """
        jobId = record.jobId
        requestId, d = self.table.submit(jobId, forward)
        self.registrations.wakeOf(record).wake(record)

        def timedOut(result, t):
            raise JobMonError(
                TIMEOUT, "job {} did not answer within {:g} s".format(jobId, t)
            )

        d.addTimeout(timeout, self.clock, onTimeoutCancel=timedOut)
        return d

    # Methods for daemons

    def registerJob(self, identity, jobId, info):
        """
        Register a job owned by the caller, or refresh its registration.

        A daemon that registers again with the same C{instance} and mode (a
        UDP daemon's periodic re-registration, a poll daemon after an error)
        keeps its secret and channel; another daemon is refused while the
        registered one is alive, and otherwise replaces it, whose wake
        channel is released while queued requests wait for the new one.
        """
        self._require(identity, "register", "registerJob")
        checkJobId(jobId)
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        self.limits.admitRegistration(identity, jobId, self.registry)
        return self.registrations.register(identity, jobId, info)

    def unregisterJob(self, identity, jobId, token=None):
        """
        Remove a job owned by the caller: its daemon says the job ended.
        Its pending queries fail with C{JOB_ENDED}, as later ones do.  With
        the daemon's registration C{token}, only if that registration is
        still the job's (a daemon whose job was taken over leaves the new
        holder's in place: false).
        """
        record = self._owned(identity, jobId)
        if not self.registrations.isCurrent(record, token):
            return False
        self.registrations.drop(
            jobId, "unregistered", "job {} ended".format(jobId), "unregistered", ended=True
        )
        return True

    def getJobToDo(self, identity, jobId):
        """
        Hand the daemon every queued request of its job.
        """
        record = self._owned(identity, jobId)
        self._refuseWhileStopping()
        self.registrations.touch(record)
        self.registrations.wakeOf(record).fetched(jobId)
        return takeWork(self.table, jobId)

    def waitForWork(self, identity, jobId, seconds, token=None):
        """
        Long poll: return the job's queued requests as soon as there are
        any, or an empty list after C{seconds}.  A daemon that gives its
        registration C{token} is refused once another daemon took the job
        over, so that two daemons never share a job's work.
        """
        record = self._owned(identity, jobId)
        self._refuseWhileStopping()
        if not self.registrations.isCurrent(record, token):
            raise self.registrations.replacedError(record)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise JobMonError(BAD_REQUEST, "seconds must be a number >= 0")
        poll = self.registrations.wakes["poll"]
        seconds = min(seconds, poll.maxPoll)
        record = self.registrations.touch(record, state="ready")
        work = takeWork(self.table, jobId)
        if work or seconds == 0:
            return work
        return poll.wait(record, seconds)

    def outputJobResult(self, identity, jobId, requestId, result):
        """
        Deliver a request's result to the user waiting for it.
        """
        record = self._owned(identity, jobId)
        if not isinstance(requestId, str):
            raise JobMonError(BAD_REQUEST, "request id must be a string")
        if not isinstance(result, dict):
            raise JobMonError(BAD_REQUEST, "result must be a struct")
        self.registrations.touch(record)
        return deliver(self.table, jobId, requestId, result, result.get("error"))

    # TCP wake channels

    def channelHello(self, channel, identity, jobId, wakeSecret):
        """
        Bind a wake channel to the registration whose secret it presents
        (the C{token} of the hello and of the registration's reply).

        @param identity: the peer's certificate identity, or C{None} if it
            presented no certificate (a daemon with a bearer token).
        @return: the keep-alive interval.
        @raise JobMonError: the job or token is unknown, or the caller does
            not own the job.
        """
        return self.registrations.bind(channel, identity, jobId, wakeSecret)

    def channelResult(self, channel, requestId, result=None, error=None):
        """
        As C{outputJobResult}, for a result (a L{RawResult}) or an error
        (see L{deliver}) sent on a wake channel, for its own job only.
        """
        record = self.registry.get(channel.jobId)
        if record is None or not self.registrations.wakes["tcp"].bound(channel):
            return False
        self.registrations.touch(record)
        return deliver(self.table, channel.jobId, requestId, result, error)

    def channelLost(self, channel):
        """
        A wake channel closed: the job is gone, unless the channel had
        already been replaced.
        """
        self.registrations.unbind(channel)

    # Cleanup and shutdown

    def cleanup(self):
        """
        Drop UDP jobs that stopped re-registering and poll jobs whose polls
        lapsed, failing their pending queries; forget idle rate buckets and
        jobs that ended long ago; tidy the files (L{tidyFiles}).
        """
        self.limits.forgetIdle()
        self.registrations.expire()
        self.ended.expire(self.clock.seconds())
        tidyFiles(self.audit, self.history)

    def sizes(self):
        """
        How many entries each of the hub's tables holds: for metrics, and
        for tests that check nothing is left behind.
        """
        return {
            "jobs": len(self.registry),
            "requests": len(self.table),
            **self.registrations.sizes(),
            **self.admission.sizes(),
            **self.limits.sizes(),
        }

    def stop(self):
        """
        Fail every pending request and release every channel (server
        shutdown).
        """
        self.stopping = True
        if self._cleanup.running:
            self._cleanup.stop()
        self.table.failAll(JobMonError(UNAVAILABLE, "the server is shutting down"))
        self.registrations.stop(JobMonError(UNAVAILABLE, "the server is shutting down"))
        return defer.succeed(None)


def tooMany(jobId, limit):
    """
    The error of a query for a job that has C{limit} requests pending.
    """
    return JobMonError(TOO_MANY, "job {} already has {} requests pending".format(
        jobId, limit))


def logActing(log, identity, record, forward):
    """
    A request that acts on a job (a command, a signal) is worth a line in
    the server's log.
    """
    if forward["op"] in ACTING_OPS:
        log.info(
            "{op} {what} on job {job_id} of {owner} requested by {dn}", category="query",
            op=forward["op"], what=forward.get("signal") or forward.get("name"),
            job_id=record.jobId, owner=record.owner, dn=identity.dn,
        )


def checkQuery(identity, jobId, granted, request):
    """
    Check a query's request, and that the caller may make it: acting on a
    job (a command, a signal) is refused to a member of a group it is
    shared with (C{granted} read-only), to a limited proxy and to a token
    without a scope that grants it.

    @return: the request to forward, and the timeout it asks for.
    """
    forward, timeout = checkRequest(request)
    if forward["op"] not in ACTING_OPS:
        return forward, timeout
    if granted[1]:
        raise readOnlyRefusal(jobId, forward["op"])
    if not identity.may("act"):
        # A limited proxy may not start processes (Globus semantics).
        if identity.token is not None:
            raise JobMonError(NOT_AUTHORIZED, identity.token.refusal("act"))
        raise JobMonError(
            NOT_AUTHORIZED,
            "a limited proxy may not {} on a job; use a full proxy".format(
                "run commands" if forward["op"] == "run" else "send signals"
            ),
        )
    return forward, timeout


def tidyFiles(audit, history):
    """
    The cleanup cycle's share for the hub's files, each when due: summarise
    the refusals the audit log left out, and prune the history.
    """
    summarise = getattr(audit, "summarise", None)
    if summarise is not None:
        summarise()
    if history is not None:
        history.prune()

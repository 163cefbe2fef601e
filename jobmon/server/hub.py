"""
The server's logic: who may register, query and serve which job, and the
link from a user's pending query to the job's result.

L{Hub} knows nothing of HTTP or sockets.  The XML-RPC resource calls its
C{xmlrpc_*}-like methods with the caller's identity; the wake protocol calls
L{Hub.channelHello} and L{Hub.channelLost}.
"""

import bisect
import math
import secrets

from attrs import evolve, field, frozen
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jobmon.errors import (
    BAD_REQUEST,
    INTERNAL,
    JOB_CONFLICT,
    NAMES,
    JOB_GONE,
    NO_SUCH_JOB,
    NOT_AUTHORIZED,
    REMOTE_ERROR,
    TIMEOUT,
    TOO_LARGE,
    TOO_MANY,
    UNAVAILABLE,
    JobMonError,
    isRemote,
)
from jobmon.protocols.jobid import checkJobId
from jobmon.server.metrics import NullMetrics
from jobmon.server.registry import JobRecord
from jobmon.server.wakes import standardWakes, takeWork


OPS = frozenset(
    {
        "ls", "stat", "cat", "head", "tail", "follow", "du", "df",
        "ps", "top", "res", "env", "commands", "run", "signal",
    }
)
"""The request ops this server forwards (see C{docs/API.md})."""

ACTING_OPS = frozenset({"run", "signal"})
"""Ops that act on the job rather than read from it."""

MAX_INFO = 4096
"""Largest daemon info struct, in characters of its values and keys."""

MAX_REQUEST = 4096
"""Largest request struct, in characters of its values and keys."""


def _size(value, depth=0):
    """
    Measure a small XML-RPC value in characters, refusing nesting.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return 8
    if isinstance(value, bytes):
        return len(value)
    if depth < 2 and isinstance(value, (list, tuple)):
        return sum(_size(v, depth + 1) for v in value)
    if depth < 2 and isinstance(value, dict):
        return sum(len(str(k)) + _size(v, depth + 1) for k, v in value.items())
    raise JobMonError(BAD_REQUEST, "nested or unsupported value in request")


def _xmlrpcSafe(value):
    """
    Make a decoded JSON value encodable as XML-RPC: integers beyond 32 bits
    become doubles, C{None} an empty string.
    """
    if isinstance(value, dict):
        return {str(k): _xmlrpcSafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_xmlrpcSafe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
        return float(value)
    if value is None:
        return ""
    return value


def _resultSize(result):
    """
    The bytes of file data or command output in a result.
    """
    if not isinstance(result, dict):
        return 0
    return sum(
        len(result[k]) for k in ("data", "stdout", "stderr") if isinstance(result.get(k), bytes)
    )


def checkLimit(limit, most=10000):
    """
    @return: C{limit}, a count of records to return.
    @raise JobMonError: it is not an integer from 1 to C{most}.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= most:
        raise JobMonError(BAD_REQUEST, "limit must be an integer from 1 to {}".format(most))
    return limit


def checkRequest(request):
    """
    Check the shape of a query request before it is queued: a struct with a
    known C{op}, small and flat.  The daemon checks each op's arguments.

    @return: the request to forward (without the server-side C{timeout}) and
        the timeout asked for, or L{None}.
    @raise JobMonError: the request is malformed.
    """
    if not isinstance(request, dict):
        raise JobMonError(BAD_REQUEST, "the request must be a struct")
    if _size(request) > MAX_REQUEST:
        raise JobMonError(TOO_LARGE, "request larger than {} characters".format(MAX_REQUEST))
    op = request.get("op")
    if not isinstance(op, str):
        raise JobMonError(BAD_REQUEST, "the request needs an 'op' (one of {})".format(
            ", ".join(sorted(OPS))))
    if op not in OPS:
        raise JobMonError(BAD_REQUEST, "unknown op {!r} (one of {})".format(
            op, ", ".join(sorted(OPS))))
    forward = dict(request)
    timeout = forward.pop("timeout", None)
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise JobMonError(BAD_REQUEST, "timeout must be a positive number of seconds")
    return forward, timeout


@frozen
class HubConfig:
    """
    The hub's limits, timeouts and intervals.

    @ivar admins: DNs that may see and query every job.
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
    """

    admins: frozenset = field(default=frozenset(), converter=frozenset)
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
    @ivar wakes: the L{jobmon.server.wakes.IWake} providers, by mode, in
        the order the modes are listed; C{"tcp"} and C{"poll"} are always
        among them (the wake port and C{waitForWork} are always served).
    @ivar metrics: a L{jobmon.server.metrics.Metrics}.
    @ivar audit: the L{jobmon.server.audit} log, or L{None}.
    @ivar history: the L{jobmon.server.history.History}, or L{None}.
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
        @param wakes: the L{jobmon.server.wakes.IWake} providers; by
            default those of L{jobmon.server.wakes.standardWakes} without
            UDP.
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
        self.wakes = {wake.mode: wake for wake in wakes}
        self._tcp = self.wakes["tcp"]
        self._poll = self.wakes["poll"]
        self._buckets = {}
        self._pendingByUser = {}
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
        return tuple(self.wakes)

    @property
    def wakePort(self):
        """
        The TCP wake port daemons connect to (set once it listens).
        """
        return self._tcp.port

    @wakePort.setter
    def wakePort(self, port):
        self._tcp.port = port

    @property
    def udpSender(self):
        """
        The L{jobmon.protocols.udp.UDPWakeSender}, or L{None} when UDP
        wakes are not configured.
        """
        udp = self.wakes.get("udp")
        return udp.sender if udp is not None else None

    @property
    def udpPort(self):
        """
        The port daemons listen on for UDP wakes, or L{None}.
        """
        udp = self.wakes.get("udp")
        return udp.port if udp is not None else None

    def _wakeOf(self, record):
        """
        The L{jobmon.server.wakes.IWake} of a registered job: the one place
        that maps a registration to the way it is woken.
        """
        return self.wakes[record.mode]

    # Helpers

    def _visible(self, identity, record):
        return record is not None and (
            record.owner == identity.dn or identity.dn in self.config.admins
        )

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

    def _owned(self, identity, jobId):
        """
        Return the record of a job the caller owns (daemon methods).
        """
        self._require(identity, "register", "daemon")
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if record is None:
            raise JobMonError(NO_SUCH_JOB, "job {} is not registered".format(jobId))
        if record.owner != identity.dn:
            self._refusedOwner(identity, "daemon", jobId, record.owner, NOT_AUTHORIZED,
                               "not the job's owner")
            raise JobMonError(
                NOT_AUTHORIZED, "job {} is registered by another identity".format(jobId)
            )
        return record

    def _releaseWake(self, jobId, error=None):
        """
        Let go of whatever wakes the job now, in every mode (a daemon may
        hold a poll whatever its mode): close its TCP channel, end its
        pending poll with C{error}, stop repeating UDP wakes.
        """
        for wake in self.wakes.values():
            wake.release(jobId, error)

    def _held(self, jobId):
        """
        Whether the job's daemon is connected to any wake now.
        """
        return any(wake.holds(jobId) for wake in self.wakes.values())

    def _drop(self, jobId, why, message, reason):
        """
        Forget a job: release its wake channel, fail its pending requests.
        """
        record = self.registry.remove(jobId)
        if record is not None:
            self.metrics.removals.labels(reason).inc()
        self._releaseWake(jobId, JobMonError(NO_SUCH_JOB, message))
        failed = self.table.failJob(jobId, JobMonError(JOB_GONE, message))
        if record is not None:
            self._audit("removed", job_id=jobId, owner=record.owner, why=why, failed=failed)
            self.log.info(
                "job {job_id} of {owner} removed ({why}, last seen {last_seen:.0f} s ago); "
                "{failed} pending request(s) failed",
                category="cleanup" if reason == "expired" else "registration",
                job_id=jobId,
                owner=record.owner,
                why=why,
                last_seen=self.clock.seconds() - record.lastSeen,
                failed=failed,
            )

    def _touch(self, record, state=None):
        record = record.touched(self.clock.seconds(), state)
        self.registry.put(record)
        return record

    # Methods for users

    def whoami(self, identity):
        """
        Describe the caller.
        """
        me = {
            "dn": identity.dn,
            "admin": identity.dn in self.config.admins,
            "proxy": identity.proxy,
            "limited": identity.limited,
        }
        if identity.token is not None:
            me["token"] = identity.token.describe()
        return me

    def listJobs(self, identity, options=None):
        """
        Return the caller's jobs, sorted by id, a page at a time; with
        C{{"all": true}}, an admin gets every job.

        Options: C{all} (boolean), C{limit} (jobs per page, default 1000, at
        most 10000), C{after} (return jobs whose id sorts after this one:
        the last id of the previous page).
        """
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise JobMonError(BAD_REQUEST, "listJobs takes an optional struct of options")
        self._require(identity, "read", "listJobs")
        everything = options.get("all", False)
        if everything and identity.dn not in self.config.admins:
            raise JobMonError(NOT_AUTHORIZED, "only the server's admins may list all jobs")
        limit = checkLimit(options.get("limit", 1000))
        after = options.get("after")
        if after is not None and not isinstance(after, str):
            raise JobMonError(BAD_REQUEST, "after must be a job id")
        records = sorted(
            (r for r in self.registry.jobs() if everything or r.owner == identity.dn),
            key=lambda r: r.jobId,
        )
        if after is not None:
            records = records[bisect.bisect_right([r.jobId for r in records], after):]
        return [
            {
                "job_id": r.jobId,
                "owner": r.owner,
                "host": r.host,
                "batch": r.info.get("batch", "") if isinstance(r.info.get("batch"), str) else "",
                "mode": r.mode,
                "state": r.state,
                "registered": float(r.registered),
                "last_seen": float(r.lastSeen),
                "pending": self.table.pending(r.jobId),
            }
            for r in records[:limit]
        ]

    def query(self, identity, jobId, request):
        """
        Queue C{request} for the job, wake it, and return a L{Deferred} that
        fires with its result.  Every query is audited: its outcome, size
        and duration, or why it was refused.
        """
        try:
            d, record, forward = self._query(identity, jobId, request)
        except JobMonError as e:
            self.metrics.refusals.labels(NAMES.get(e.code, str(e.code))).inc()
            self._audit(
                "refused", dn=identity.dn, method="query",
                job_id=jobId if isinstance(jobId, str) else repr(jobId)[:100],
                code=e.code, reason=e.message,
            )
            raise
        started = self.clock.seconds()
        args = {k: v for k, v in forward.items() if k != "op"}

        def audited(result):
            if isinstance(result, Failure):
                error = result.value
                outcome = getattr(error, "code", INTERNAL)
                size = 0
            else:
                outcome = "ok"
                size = _resultSize(result)
            duration = self.clock.seconds() - started
            self._audit(
                "query", dn=identity.dn, job_id=jobId, owner=record.owner,
                op=forward["op"], args=args, outcome=outcome, bytes=size,
                duration=round(duration, 6),
            )
            self.metrics.queries.labels(forward["op"], str(outcome)).observe(duration)
            return result

        return d.addBoth(audited)

    def auditLog(self, identity, jobId, limit=100):
        """
        Return the last C{limit} audit records about a job (admins only).
        """
        self._require(identity, "read", "auditLog")
        if identity.dn not in self.config.admins:
            raise JobMonError(NOT_AUTHORIZED, "only the server's admins may read the audit log")
        checkJobId(jobId)
        checkLimit(limit)
        if self.audit is None:
            raise JobMonError(BAD_REQUEST, "this server keeps no audit log")
        d = self._runInThread(self.audit.read, jobId, limit)
        return d.addCallback(lambda records: [_xmlrpcSafe(r) for r in records])

    def _refusedOwner(self, identity, method, jobId, owner, code, reason):
        """
        Someone reached for a job registered by another identity: log,
        count and audit it.
        """
        self.log.warn(
            "{dn} refused by {method} on job {job_id} of {owner}: {reason}",
            category="registration",
            dn=identity.dn,
            method=method,
            job_id=jobId,
            owner=owner,
            reason=reason,
        )
        self.metrics.refusals.labels(reason).inc()
        self._audit(
            "refused", dn=identity.dn, method=method, job_id=jobId, owner=owner,
            code=code, reason=reason,
        )

    def _audit(self, event, **fields):
        if self.audit is not None:
            self.audit.record(event, **fields)
        if self.history is not None:
            self.history.record(event, **fields)

    def historyOf(self, identity, options=None):
        """
        The caller's own history: the jobs she registered and the queries
        she made, optionally about one job.
        """
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise JobMonError(BAD_REQUEST, "history takes an optional struct of options")
        self._require(identity, "read", "history")
        jobId = options.get("job_id")
        if jobId is not None:
            checkJobId(jobId)
        limit = checkLimit(options.get("limit", 100))
        if self.history is None:
            raise JobMonError(BAD_REQUEST, "this server keeps no history")
        return self.history.read(identity.dn, jobId, limit)

    def _query(self, identity, jobId, request):
        if not identity.may("read"):
            raise JobMonError(NOT_AUTHORIZED, identity.token.refusal("read"))
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if not self._visible(identity, record):
            raise JobMonError(NO_SUCH_JOB, "no job {} visible to you".format(jobId))
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        forward, timeout = checkRequest(request)
        if forward["op"] in ACTING_OPS and not identity.may("act"):
            # A limited proxy may not start processes (Globus semantics):
            # commands and signals act on the job, reading does not.  A
            # token needs a scope that grants acting.
            if identity.token is not None:
                raise JobMonError(NOT_AUTHORIZED, identity.token.refusal("act"))
            raise JobMonError(
                NOT_AUTHORIZED,
                "a limited proxy may not {} on a job; use a full proxy".format(
                    "run commands" if forward["op"] == "run" else "send signals"
                ),
            )
        if self.table.pending(jobId) >= self.config.maxPendingPerJob:
            raise JobMonError(
                TOO_MANY,
                "job {} already has {} requests pending".format(jobId, self.config.maxPendingPerJob),
            )
        self._admit(identity)
        timeout = min(timeout or self.config.queryTimeout, self.config.queryTimeout)
        requestId, d = self.table.submit(jobId, forward)
        dn = identity.dn
        self._pendingByUser[dn] = self._pendingByUser.get(dn, 0) + 1

        def settled(result):
            count = self._pendingByUser.get(dn, 1) - 1
            if count:
                self._pendingByUser[dn] = count
            else:
                self._pendingByUser.pop(dn, None)
            return result

        d.addBoth(settled)
        if forward["op"] in ACTING_OPS:
            # Acts on the job: worth a line in the server's log.
            self.log.info(
                "{op} {what} on job {job_id} of {owner} requested by {dn}",
                category="query",
                op=forward["op"],
                what=forward.get("signal") or forward.get("name"),
                job_id=jobId,
                owner=record.owner,
                dn=identity.dn,
            )
        self._wake(record)

        def timedOut(result, t):
            raise JobMonError(
                TIMEOUT, "job {} did not answer within {:g} s".format(jobId, t)
            )

        d.addTimeout(timeout, self.clock, onTimeoutCancel=timedOut)
        return d, record, forward

    def sizes(self):
        """
        How many entries each of the hub's tables holds: for metrics, and
        for tests that check nothing is left behind.
        """
        return {
            "jobs": len(self.registry),
            "requests": len(self.table),
            **{name: n for wake in self.wakes.values() for name, n in wake.sizes().items()},
            "users_pending": len(self._pendingByUser),
            "rate_buckets": len(self._buckets),
        }

    def _admit(self, identity):
        """
        Apply the per-user limits: pending queries, and a token bucket of
        C{queryRate} queries per second with bursts of C{queryBurst}.

        @raise JobMonError: L{TOO_MANY} when over a limit.
        """
        dn = identity.dn
        if self._pendingByUser.get(dn, 0) >= self.config.maxPendingPerUser:
            raise JobMonError(
                TOO_MANY,
                "you already have {} queries pending".format(self.config.maxPendingPerUser),
            )
        now = self.clock.seconds()
        tokens, last = self._buckets.get(dn, (self.config.queryBurst, now))
        tokens = min(self.config.queryBurst, tokens + (now - last) * self.config.queryRate)
        if tokens < 1:
            self._buckets[dn] = (tokens, now)
            raise JobMonError(
                TOO_MANY,
                "too many queries: at most {:g} per second".format(self.config.queryRate),
            )
        self._buckets[dn] = (tokens - 1, now)

    def _wake(self, record):
        """
        Tell the job that work is queued, by its mode.
        """
        self._wakeOf(record).wake(record)

    # Methods for daemons

    def registerJob(self, identity, jobId, info):
        """
        Register a job owned by the caller, or refresh its registration.

        A daemon that registers again with the same C{instance} and mode (a
        UDP daemon's periodic re-registration, a poll daemon after an error)
        keeps its secret and channel; any other registration replaces the
        earlier one, whose wake channel is released while queued requests
        wait for the new one.
        """
        self._require(identity, "register", "registerJob")
        checkJobId(jobId)
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        if not isinstance(info, dict):
            raise JobMonError(BAD_REQUEST, "info must be a struct")
        if _size(info) > MAX_INFO:
            raise JobMonError(TOO_LARGE, "info larger than {} characters".format(MAX_INFO))
        mode = info.get("wake", "tcp")
        if mode not in self.modes:
            raise JobMonError(
                BAD_REQUEST,
                "wake mode {!r} is not offered by this server ({})".format(
                    mode, ", ".join(self.modes)
                ),
            )
        old = self.registry.get(jobId)
        if old is not None and old.owner != identity.dn:
            self._refusedOwner(identity, "registerJob", jobId, old.owner, JOB_CONFLICT,
                               "registered by another identity")
            raise JobMonError(
                JOB_CONFLICT, "job {} is registered by another identity".format(jobId)
            )
        now = self.clock.seconds()
        host = info.get("host")
        host = host if isinstance(host, str) else ""
        instance = info.get("instance")
        wake = self.wakes[mode]
        if (
            old is not None
            and wake.renewable
            and old.mode == mode
            and isinstance(instance, str)
            and old.info.get("instance") == instance
        ):
            record = evolve(old, lastSeen=now, host=host, info=info)
            self.registry.put(record)
        else:
            wakeSecret = secrets.token_urlsafe(24)
            # The old wake channel goes; queued requests wait for the new.
            self._releaseWake(jobId)
            record = wake.registered(
                JobRecord(
                    jobId=jobId,
                    owner=identity.dn,
                    host=host,
                    mode=mode,
                    registered=now,
                    lastSeen=now,
                    wakeSecret=wakeSecret,
                    info=info,
                ),
                lambda why, message, reason: self._lost(jobId, wakeSecret, why, message, reason),
            )
            self.registry.put(record)
            self.metrics.registrations.labels(mode).inc()
            self._audit(
                "register", dn=identity.dn, job_id=jobId, host=record.host, mode=mode,
                again=old is not None,
                batch=info.get("batch") if isinstance(info.get("batch"), str) else "",
            )
            self.log.info(
                "job {job_id} registered by {dn} from {host} ({mode}){again}",
                category="registration",
                job_id=jobId,
                dn=identity.dn,
                host=record.host,
                mode=mode,
                again=" again" if old is not None else "",
            )
        reply = {"mode": mode, "token": record.wakeSecret}
        reply.update(wake.reply(record))
        return {
            "job_id": jobId,
            "wake": reply,
            "keepalive": self.config.keepalive,
            "reregister": self.config.reregisterInterval,
        }

    def _lost(self, jobId, wakeSecret, why, message, reason):
        """
        A job's wake found it gone: drop it, if the registration that wake
        served (the one with C{wakeSecret}) is still the current one.
        """
        record = self.registry.get(jobId)
        if record is not None and record.wakeSecret == wakeSecret:
            self._drop(jobId, why, message, reason)

    def unregisterJob(self, identity, jobId):
        """
        Remove a job owned by the caller.
        """
        self._owned(identity, jobId)
        self._drop(jobId, "unregistered", "job {} unregistered".format(jobId), "unregistered")
        return True

    def getJobToDo(self, identity, jobId):
        """
        Hand the daemon every queued request of its job.
        """
        record = self._owned(identity, jobId)
        self._touch(record)
        self._wakeOf(record).fetched(jobId)
        return takeWork(self.table, jobId)

    def waitForWork(self, identity, jobId, seconds):
        """
        Long poll: return the job's queued requests as soon as there are
        any, or an empty list after C{seconds}.
        """
        record = self._owned(identity, jobId)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise JobMonError(BAD_REQUEST, "seconds must be a number >= 0")
        seconds = min(seconds, self._poll.maxPoll)
        record = self._touch(record, state="ready")
        work = takeWork(self.table, jobId)
        if work or seconds == 0:
            return work
        return self._poll.wait(record, seconds)

    def outputJobResult(self, identity, jobId, requestId, result):
        """
        Deliver a request's result to the user waiting for it.
        """
        record = self._owned(identity, jobId)
        if not isinstance(requestId, str):
            raise JobMonError(BAD_REQUEST, "request id must be a string")
        if not isinstance(result, dict):
            raise JobMonError(BAD_REQUEST, "result must be a struct")
        self._touch(record)
        error = result.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            # A daemon reports failures of the operation, or a request it
            # found malformed; it cannot make a user see "not authorized" or
            # "no such job".
            if not isinstance(code, int) or not (isRemote(code) or code == BAD_REQUEST):
                code = REMOTE_ERROR
            if not isinstance(message, str) or not message:
                message = "the job reported an error"
            delivered = self.table.complete(
                jobId, requestId, failure=JobMonError(code, message)
            )
        else:
            delivered = self.table.complete(jobId, requestId, result=result)
        if not delivered:
            self.log.debug(
                "result for {request_id} on {job_id} came too late",
                category="query",
                request_id=requestId,
                job_id=jobId,
            )
        return delivered

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
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if record is None:
            raise JobMonError(NO_SUCH_JOB, "job {} is not registered".format(jobId))
        # A daemon with a bearer token has no certificate on the wake port:
        # the registration's secret, which it got over HTTPS, is its proof.
        if identity is not None and record.owner != identity.dn:
            raise JobMonError(
                NOT_AUTHORIZED, "job {} is registered by another identity".format(jobId)
            )
        if self._wakeOf(record) is not self._tcp or not secrets.compare_digest(
            record.wakeSecret, wakeSecret
        ):
            raise JobMonError(
                NOT_AUTHORIZED, "wake token does not match the current registration"
            )
        self._tcp.bind(jobId, channel)
        self._touch(record, state="ready")
        self.log.info("wake channel up for job {job_id}", job_id=jobId, category="wake")
        return self.config.keepalive

    def channelLost(self, channel):
        """
        A wake channel closed: the job is gone, unless the channel had
        already been replaced.
        """
        if not self._tcp.bound(channel):
            return
        jobId = channel.jobId
        self._drop(
            jobId, "wake channel closed", "job {} went away".format(jobId), "channel closed"
        )

    # Cleanup and shutdown

    def cleanup(self):
        """
        Drop UDP jobs that stopped re-registering and poll jobs whose polls
        lapsed, failing their pending queries.
        """
        now = self.clock.seconds()
        # Buckets that have refilled say nothing: forget them.
        full = (self.config.queryBurst - 1) / self.config.queryRate
        for dn, (tokens, last) in list(self._buckets.items()):
            if now - last >= full:
                del self._buckets[dn]
        limit = now - self.config.expireAfter
        for record in self.registry.jobs():
            silence = self._wakeOf(record).silence
            # A job whose wake never lapses is dropped when its connection
            # closes; one held by a wake now is alive.
            if silence is None or record.lastSeen >= limit or self._held(record.jobId):
                continue
            self._drop(
                record.jobId,
                "not {} for {:g} s".format(silence, self.config.expireAfter),
                "job {} went away (not heard from for {:g} s)".format(
                    record.jobId, self.config.expireAfter
                ),
                "expired",
            )

    def stop(self):
        """
        Fail every pending request and release every channel (server
        shutdown).
        """
        self.stopping = True
        if self._cleanup.running:
            self._cleanup.stop()
        self.table.failAll(JobMonError(UNAVAILABLE, "the server is shutting down"))
        for wake in self.wakes.values():
            wake.stop(JobMonError(UNAVAILABLE, "the server is shutting down"))
        return defer.succeed(None)

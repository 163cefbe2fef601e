"""
The server's logic: who may register, query and serve which job, and the
link from a user's pending query to the job's result.

L{Hub} knows nothing of HTTP or sockets.  The XML-RPC resource calls its
C{xmlrpc_*}-like methods with the caller's identity; the wake protocol calls
L{Hub.channelHello} and L{Hub.channelLost}.
"""

import math
import re
import secrets

from twisted.internet import defer
from twisted.logger import Logger

from jobmon.errors import (
    BAD_REQUEST,
    JOB_CONFLICT,
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
from jobmon.registry import JobRecord

JOB_ID = re.compile(r"[\x21-\x7e]{1,256}")
"""A job id: printable ASCII without white space, 1 to 256 characters."""

OPS = frozenset({"ls", "stat", "cat", "tail"})
"""The request ops this server forwards."""

MODES = frozenset({"tcp"})
"""The wake modes this server offers."""

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


def checkJobId(jobId):
    """
    @raise JobMonError: C{jobId} is not a valid job id.
    """
    if not isinstance(jobId, str) or not JOB_ID.fullmatch(jobId):
        raise JobMonError(
            BAD_REQUEST,
            "invalid job id: 1 to 256 printable ASCII characters without spaces",
        )


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


class Hub:
    """
    Registered jobs, their wake channels and the queries waiting on them.

    @ivar registry: an L{jobmon.registry.IJobRegistry}.
    @ivar table: an L{jobmon.pending.IRequestTable}.
    @ivar admins: DNs that may see and query every job.
    @ivar queryTimeout: longest time a query waits for its job, in seconds.
    @ivar keepalive: wake channel keep-alive interval, in seconds.
    @ivar connectGrace: how long a registered job may take to connect its
        wake channel before it is dropped, in seconds.
    @ivar wakePort: the TCP wake port daemons connect to (set once it
        listens).
    @ivar maxPendingPerJob: most requests queued or running for one job.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        registry,
        table,
        admins=(),
        queryTimeout=30.0,
        keepalive=20,
        connectGrace=30.0,
        maxPendingPerJob=64,
    ):
        self.clock = clock
        self.registry = registry
        self.table = table
        self.admins = frozenset(admins)
        self.queryTimeout = queryTimeout
        self.keepalive = keepalive
        self.connectGrace = connectGrace
        self.maxPendingPerJob = maxPendingPerJob
        self.wakePort = None
        self.stopping = False
        self._channels = {}
        self._graceTimers = {}

    # Helpers

    def _visible(self, identity, record):
        return record is not None and (
            record.owner == identity.dn or identity.dn in self.admins
        )

    def _owned(self, identity, jobId):
        """
        Return the record of a job the caller owns (daemon methods).
        """
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if record is None:
            raise JobMonError(NO_SUCH_JOB, "job {} is not registered".format(jobId))
        if record.owner != identity.dn:
            self.log.warn(
                "{dn} refused on job {job_id} owned by {owner}",
                dn=identity.dn,
                job_id=jobId,
                owner=record.owner,
            )
            raise JobMonError(
                NOT_AUTHORIZED, "job {} is registered by another identity".format(jobId)
            )
        return record

    def _drop(self, jobId, why, message):
        """
        Forget a job: close its channel, fail its pending requests.
        """
        record = self.registry.remove(jobId)
        timer = self._graceTimers.pop(jobId, None)
        if timer is not None and timer.active():
            timer.cancel()
        channel = self._channels.pop(jobId, None)
        if channel is not None:
            channel.close()
        failed = self.table.failJob(jobId, JobMonError(JOB_GONE, message))
        if record is not None:
            self.log.info(
                "job {job_id} of {owner} removed ({why}); {failed} pending request(s) failed",
                job_id=jobId,
                owner=record.owner,
                why=why,
                failed=failed,
            )

    # Methods for users

    def whoami(self, identity):
        """
        Describe the caller.
        """
        return {
            "dn": identity.dn,
            "admin": identity.dn in self.admins,
            "proxy": identity.proxy,
            "limited": identity.limited,
        }

    def listJobs(self, identity):
        """
        Return the jobs the caller may see.
        """
        return [
            {
                "job_id": r.jobId,
                "owner": r.owner,
                "host": r.host,
                "mode": r.mode,
                "state": r.state,
                "registered": float(r.registered),
                "last_seen": float(r.lastSeen),
                "pending": self.table.pending(r.jobId),
            }
            for r in sorted(self.registry.jobs(), key=lambda r: r.jobId)
            if self._visible(identity, r)
        ]

    def query(self, identity, jobId, request):
        """
        Queue C{request} for the job, wake it, and return a L{Deferred} that
        fires with its result.
        """
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if not self._visible(identity, record):
            raise JobMonError(NO_SUCH_JOB, "no job {} visible to you".format(jobId))
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        forward, timeout = checkRequest(request)
        if self.table.pending(jobId) >= self.maxPendingPerJob:
            raise JobMonError(
                TOO_MANY,
                "job {} already has {} requests pending".format(jobId, self.maxPendingPerJob),
            )
        timeout = min(timeout or self.queryTimeout, self.queryTimeout)
        requestId, d = self.table.submit(jobId, forward)
        self.log.debug(
            "query {request_id} {op} on {job_id} by {dn}",
            request_id=requestId,
            op=forward["op"],
            job_id=jobId,
            dn=identity.dn,
        )
        channel = self._channels.get(jobId)
        if channel is not None:
            channel.wake()

        def timedOut(result, t):
            raise JobMonError(
                TIMEOUT, "job {} did not answer within {:g} s".format(jobId, t)
            )

        d.addTimeout(timeout, self.clock, onTimeoutCancel=timedOut)
        return d

    # Methods for daemons

    def registerJob(self, identity, jobId, info):
        """
        Register (or register again) a job owned by the caller.
        """
        checkJobId(jobId)
        if self.stopping:
            raise JobMonError(UNAVAILABLE, "the server is shutting down")
        if not isinstance(info, dict):
            raise JobMonError(BAD_REQUEST, "info must be a struct")
        if _size(info) > MAX_INFO:
            raise JobMonError(TOO_LARGE, "info larger than {} characters".format(MAX_INFO))
        mode = info.get("wake", "tcp")
        if mode not in MODES:
            raise JobMonError(
                BAD_REQUEST, "wake mode {!r} is not offered by this server (tcp)".format(mode)
            )
        old = self.registry.get(jobId)
        if old is not None and old.owner != identity.dn:
            self.log.warn(
                "{dn} refused: job {job_id} is registered by {owner}",
                dn=identity.dn,
                job_id=jobId,
                owner=old.owner,
            )
            raise JobMonError(
                JOB_CONFLICT, "job {} is registered by another identity".format(jobId)
            )
        now = self.clock.seconds()
        host = info.get("host")
        record = JobRecord(
            jobId=jobId,
            owner=identity.dn,
            host=host if isinstance(host, str) else "",
            mode=mode,
            registered=now,
            lastSeen=now,
            token=secrets.token_urlsafe(24),
            info=info,
        )
        # A new registration replaces the old one: its channel is closed, but
        # the queued requests wait for the new channel.
        oldChannel = self._channels.pop(jobId, None)
        if oldChannel is not None:
            oldChannel.close()
        timer = self._graceTimers.pop(jobId, None)
        if timer is not None and timer.active():
            timer.cancel()
        self.registry.put(record)
        self._graceTimers[jobId] = self.clock.callLater(
            self.connectGrace, self._graceExpired, jobId, record.token
        )
        self.log.info(
            "job {job_id} registered by {dn} from {host} ({mode}){again}",
            job_id=jobId,
            dn=identity.dn,
            host=record.host,
            mode=mode,
            again=" again" if old is not None else "",
        )
        return {
            "job_id": jobId,
            "wake": {"mode": mode, "port": self.wakePort or 0, "token": record.token},
            "keepalive": self.keepalive,
        }

    def _graceExpired(self, jobId, token):
        self._graceTimers.pop(jobId, None)
        record = self.registry.get(jobId)
        if record is not None and record.token == token and jobId not in self._channels:
            self._drop(
                jobId,
                "no wake channel within {:g} s".format(self.connectGrace),
                "job {} never connected its wake channel".format(jobId),
            )

    def unregisterJob(self, identity, jobId):
        """
        Remove a job owned by the caller.
        """
        self._owned(identity, jobId)
        self._drop(jobId, "unregistered", "job {} unregistered".format(jobId))
        return True

    def getJobToDo(self, identity, jobId):
        """
        Hand the daemon every queued request of its job.
        """
        record = self._owned(identity, jobId)
        self.registry.put(record.touched(self.clock.seconds()))
        return [{"id": rid, "request": req} for rid, req in self.table.take(jobId)]

    def outputJobResult(self, identity, jobId, requestId, result):
        """
        Deliver a request's result to the user waiting for it.
        """
        record = self._owned(identity, jobId)
        if not isinstance(requestId, str):
            raise JobMonError(BAD_REQUEST, "request id must be a string")
        if not isinstance(result, dict):
            raise JobMonError(BAD_REQUEST, "result must be a struct")
        self.registry.put(record.touched(self.clock.seconds()))
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
                request_id=requestId,
                job_id=jobId,
            )
        return delivered

    # Wake channels

    def channelHello(self, channel, identity, jobId, token):
        """
        Bind a wake channel to the registration whose token it presents.

        @return: the keep-alive interval.
        @raise JobMonError: the job or token is unknown, or the caller does
            not own the job.
        """
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if record is None:
            raise JobMonError(NO_SUCH_JOB, "job {} is not registered".format(jobId))
        if record.owner != identity.dn:
            raise JobMonError(
                NOT_AUTHORIZED, "job {} is registered by another identity".format(jobId)
            )
        if not secrets.compare_digest(record.token, token):
            raise JobMonError(
                NOT_AUTHORIZED, "wake token does not match the current registration"
            )
        old = self._channels.get(jobId)
        if old is not None and old is not channel:
            self._channels.pop(jobId)
            old.close()
        self._channels[jobId] = channel
        timer = self._graceTimers.pop(jobId, None)
        if timer is not None and timer.active():
            timer.cancel()
        self.registry.put(record.touched(self.clock.seconds(), state="ready"))
        self.log.info("wake channel up for job {job_id}", job_id=jobId)
        # Work queued while the channel was connecting must not wait.
        if self.table.queued(jobId):
            self.clock.callLater(0, self._wakeIfCurrent, jobId, channel)
        return self.keepalive

    def _wakeIfCurrent(self, jobId, channel):
        if self._channels.get(jobId) is channel and self.table.queued(jobId):
            channel.wake()

    def channelLost(self, channel):
        """
        A wake channel closed: the job is gone, unless the channel had
        already been replaced.
        """
        jobId = channel.jobId
        if self._channels.get(jobId) is not channel:
            return
        self._drop(jobId, "wake channel closed", "job {} went away".format(jobId))

    def stop(self):
        """
        Fail every pending request and close every channel (server
        shutdown).
        """
        self.stopping = True
        self.table.failAll(JobMonError(UNAVAILABLE, "the server is shutting down"))
        for timer in self._graceTimers.values():
            if timer.active():
                timer.cancel()
        self._graceTimers.clear()
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            channel.close()
        return defer.succeed(None)

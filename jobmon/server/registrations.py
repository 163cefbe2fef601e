"""
The registered jobs as their daemons see them: registration, ownership,
the wake that reaches each job, and when a job is gone.

L{Registrations} is the hub's half that deals with daemons; the hub
checks the caller's scopes before it calls in, and links queries to their
results (see L{jobmon.server.hub}).
"""

import secrets

from attrs import evolve
from twisted.logger import Logger

from jobmon.errors import (
    BAD_REQUEST,
    JOB_CONFLICT,
    JOB_ENDED,
    JOB_GONE,
    NO_SUCH_JOB,
    UNAVAILABLE,
    JobMonError,
)
from jobmon.protocols.jobid import checkJobId
from jobmon.server.claims import JobClaims
from jobmon.server.registry import JobRecord
from jobmon.server.requests import checkInfo
from jobmon.times import utc


class Registrations:
    """
    Registers jobs, binds their wakes, and drops them when they are gone:
    unregistered, their wake channel closed, or silent too long.

    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    @ivar registry: an L{jobmon.server.registry.IJobRegistry}.
    @ivar table: an L{jobmon.server.pending.IRequestTable}; a job that goes
        fails its pending requests.
    @ivar config: the hub's L{jobmon.server.hub.HubConfig}.
    @ivar wakes: the L{jobmon.server.wakes.IWake} providers, by mode, in
        the order the modes are listed.
    @ivar metrics: a L{jobmon.server.metrics.Metrics}.
    @ivar record: C{(event, **fields)}: writes an event to the audit log
        and history.
    @ivar ended: the L{jobmon.server.ended.EndedJobs} that remembers the
        jobs dropped, or L{None}.
    @ivar claims: the L{jobmon.server.claims.JobClaims}: the job ids
        reserved for the owners of jobs that went lately.
    """

    log = Logger()

    def __init__(self, clock, registry, table, config, wakes, metrics, record, ended=None,
                 claims=None):
        self.ended = ended
        self.claims = claims if claims is not None else JobClaims()
        self.clock = clock
        self.registry = registry
        self.table = table
        self.config = config
        self.wakes = {wake.mode: wake for wake in wakes}
        self.metrics = metrics
        self.record = record
        # The last daemon refused each job (its instance): its holder is
        # told and the refusal logged as a warning once, not at each retry.
        self._rivals = {}

    @property
    def modes(self):
        """
        The wake modes this server offers.
        """
        return tuple(self.wakes)

    def wakeOf(self, record):
        """
        The L{jobmon.server.wakes.IWake} of a registered job: the one place
        that maps a registration to the way it is woken.
        """
        return self.wakes[record.mode]

    def touch(self, record, state=None):
        """
        Note contact from the job's daemon now, optionally in a new state.

        @return: the record kept.
        """
        record = record.touched(self.clock.seconds(), state)
        self.registry.put(record)
        return record

    # Registration

    def register(self, identity, jobId, info):
        """
        Register a job owned by the caller, or refresh its registration (the
        caller's scope, the job id and the server's state are checked).

        @return: the registration's reply (see C{registerJob} in
            C{docs/API.md}).
        """
        checkInfo(info)
        mode = info.get("wake", "tcp")
        if mode not in self.modes:
            raise JobMonError(
                BAD_REQUEST,
                "wake mode {!r} is not offered by this server ({})".format(
                    mode, ", ".join(self.modes)
                ),
            )
        if not self.claims.ready:
            # The previous run's reserved ids are still being read: until
            # then anyone could take another's id.
            raise JobMonError(
                UNAVAILABLE, "the server is starting; register again in a moment"
            )
        now = self.clock.seconds()
        old = self.registry.get(jobId)
        owner = old.owner if old is not None else self.claims.holder(jobId, now)
        if owner is not None and owner != identity.dn:
            # One answer whether the id is registered or only reserved.
            self.refusedOwner(identity, "registerJob", jobId, owner, JOB_CONFLICT,
                              "registered by another identity" if old is not None
                              else "reserved for another identity")
            raise JobMonError(
                JOB_CONFLICT,
                "job {} is registered by another identity, or was within the last {}; "
                "job ids stay reserved for their owner".format(
                    jobId, _duration(self.claims.reserveFor)
                ),
            )
        host = info.get("host")
        host = printable(host, MAX_HOST) if isinstance(host, str) else ""
        if isinstance(info.get("batch"), str):
            info = dict(info, batch=printable(info["batch"], MAX_HOST))
        instance = info.get("instance")
        wake = self.wakes[mode]
        sameDaemon = (
            old is not None
            and isinstance(instance, str)
            and old.info.get("instance") == instance
        )
        if old is not None and not sameDaemon:
            self._contest(identity, old, info, host, now)
        if sameDaemon and wake.renewable and old.mode == mode:
            record = evolve(old, lastSeen=now, host=host, info=info)
            self.registry.put(record)
        else:
            record = self._new(identity, jobId, info, wake, host, now)
            self.metrics.registrations.labels(mode).inc()
            replaces = {}
            if old is not None:
                # The history closes the row of the registration replaced.
                replaces["replaces"] = old.registration
            self.record(
                "register", dn=identity.dn, job_id=jobId, host=record.host, mode=mode,
                again=old is not None,
                batch=info.get("batch") if isinstance(info.get("batch"), str) else "",
                registration=record.registration, **replaces,
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
            # waitForWork and unregisterJob take the token (see
            # isCurrent): older servers refuse an extra argument.
            "token_checks": True,
        }

    def live(self, record, now):
        """
        Whether the daemon of C{record} is alive by the server's knowledge:
        it holds a wake (an open channel, a pending poll) or its mode's sign
        of life is recent (see L{jobmon.server.wakes.IWake.live}).
        """
        return self._held(record.jobId) or self.wakeOf(record).live(record, now)

    def _contest(self, identity, old, info, host, now):
        """
        A daemon other than the one registered asks for the same job of the
        same owner (two daemons given one job id, or a daemon restarted
        after the first one crashed).  While the registered daemon is
        alive, the newcomer is refused, and the holder told once; a holder
        that fell silent is taken over.

        @raise JobMonError: C{JOB_CONFLICT} if the holder is alive.
        """
        jobId = old.jobId
        rival = info.get("instance")
        if not isinstance(rival, str) or not isinstance(old.info.get("instance"), str):
            # A daemon from before instances: the same daemon cannot be told
            # from another, so the newest registration wins, as it did.
            return
        heard = now - old.lastSeen
        newcomer = _daemonName(host, info)
        holder = _daemonName(old.host, old.info)
        if not self.live(old, now):
            self.log.info(
                "job {job_id} of {dn}: the daemon on {holder} was last heard from "
                "{heard:.0f} s ago; the daemon on {newcomer} takes it over",
                category="registration", job_id=jobId, dn=identity.dn, holder=holder,
                heard=heard, newcomer=newcomer,
            )
            return
        since = utc(old.registered)
        first = self._rivals.get(jobId) != rival
        self._rivals[jobId] = rival
        emit = self.log.warn if first else self.log.debug
        emit(
            "job {job_id} of {dn}: registration by the daemon on {newcomer} refused: "
            "the live daemon on {holder} holds it since {since} (last heard from "
            "{heard:.0f} s ago)",
            category="registration", job_id=jobId, dn=identity.dn, newcomer=newcomer,
            holder=holder, since=since, heard=heard,
        )
        if first:
            self.wakeOf(old).notify(
                jobId,
                "another daemon for job {} (on {}) tried to register it at {} and "
                "was refused: this daemon keeps the job".format(jobId, newcomer, utc(now)),
            )
        reason = "held by a live daemon"
        self.metrics.refusals.labels(reason).inc()
        self.record(
            "refused", dn=identity.dn, method="registerJob", job_id=jobId, owner=old.owner,
            code=JOB_CONFLICT, reason=reason,
        )
        raise JobMonError(
            JOB_CONFLICT,
            "job {} is already registered by a live daemon on {} since {}; this "
            "daemon may register it once that one stops".format(jobId, holder, since),
        )

    def isCurrent(self, record, token):
        """
        Whether C{token}, the registration token a daemon presents with a
        call, is that of C{record}, the job's current registration; L{None}
        (a daemon that does not send it) is taken as current.
        """
        if token is None:
            return True
        return isinstance(token, str) and secrets.compare_digest(
            record.wakeSecret.encode("utf-8"), token.encode("utf-8", "replace")
        )

    def replacedError(self, record):
        """
        The error for a daemon whose registration was taken over: it should
        register again (and is refused while the new holder is alive).
        """
        return JobMonError(
            NO_SUCH_JOB,
            "job {} is now registered by another daemon (on {}, since {})".format(
                record.jobId, _daemonName(record.host, record.info), utc(record.registered)
            ),
        )

    def _new(self, identity, jobId, info, wake, host, now):
        """
        Keep a new registration, replacing any earlier one: the old wake
        channel goes, while queued requests wait for the new one.
        """
        wakeSecret = secrets.token_urlsafe(24)
        self._release(jobId)
        if self.ended is not None:
            self.ended.forget(jobId)

        def lost(why, message, reason):
            current = self.registry.get(jobId)
            if current is not None and current.wakeSecret == wakeSecret:
                self.drop(jobId, why, message, reason)

        record = wake.registered(
            JobRecord(
                jobId=jobId,
                owner=identity.dn,
                host=host,
                mode=wake.mode,
                registered=now,
                lastSeen=now,
                wakeSecret=wakeSecret,
                info=info,
                notAfter=identity.notAfter,
                # Only a sealed channel needs it (a few hundred bytes).
                revocation=identity.revocation if getattr(wake, "sealed", False) else None,
            ),
            lost,
        )
        self.registry.put(record)
        return record

    def owned(self, identity, jobId):
        """
        Return the record of a job the caller owns (for the daemon methods,
        once the caller's scope is checked).

        @raise JobMonError: the job is unknown or another identity's.
        """
        checkJobId(jobId)
        record = self.registry.get(jobId)
        if record is not None and record.owner == identity.dn:
            return record
        # One answer for a job that is not registered and for another's
        # job: a caller learns nothing of ids that are not hers.  Both are
        # audited alike; only reaching for another's job is a warning.
        self.refusedOwner(
            identity, "daemon", jobId, record.owner if record is not None else "",
            NO_SUCH_JOB, "not the job's owner" if record is not None else "no such job",
            warn=record is not None,
        )
        raise notYours(jobId)

    def refusedOwner(self, identity, method, jobId, owner, code, reason, warn=True):
        """
        Someone reached for a job registered by another identity (or, with
        C{warn} false, for none): log, count and audit it.
        """
        emit = self.log.warn if warn else self.log.debug
        emit(
            "{dn} refused by {method} on job {job_id} of {owner}: {reason}",
            category="registration",
            dn=identity.dn,
            method=method,
            job_id=jobId,
            owner=owner,
            reason=reason,
        )
        self.metrics.refusals.labels(reason).inc()
        self.record(
            "refused", dn=identity.dn, method=method, job_id=jobId, owner=owner,
            code=code, reason=reason,
        )

    # TCP wake channels

    def bind(self, channel, identity, jobId, wakeSecret):
        """
        Bind a wake channel to the registration whose secret it presents.

        @return: the keep-alive interval.
        @raise JobMonError: see L{jobmon.server.hub.Hub.channelHello}.
        """
        checkJobId(jobId)
        record = self.registry.get(jobId)
        tcp = self.wakes["tcp"]
        # The secret is compared in every case, as bytes (a string that is
        # not ASCII is no error), against a stand-in when there is no job.
        expected = record.wakeSecret if record is not None else _NO_SECRET
        matches = secrets.compare_digest(
            expected.encode("utf-8"), wakeSecret.encode("utf-8", "replace")
        )
        # A daemon with a bearer token has no certificate on the wake port:
        # the registration's secret, which it got over HTTPS, is its proof.
        if (
            record is None
            or not matches
            or (identity is not None and record.owner != identity.dn)
            or self.wakeOf(record) is not tcp
        ):
            # One answer for every refusal: no job, another's, a stale or
            # wrong token.
            raise JobMonError(
                NO_SUCH_JOB,
                "no job {} registered by you with this wake token".format(jobId),
            )
        tcp.bind(jobId, channel)
        self.touch(record, state="ready")
        self.log.info("wake channel up for job {job_id}", job_id=jobId, category="wake")
        return self.config.keepalive

    def unbind(self, channel):
        """
        A wake channel closed: the job is gone, unless the channel had
        already been replaced.
        """
        if not self.wakes["tcp"].bound(channel):
            return
        jobId = channel.jobId
        self.drop(
            jobId, "wake channel closed", "job {} went away".format(jobId), "channel closed"
        )

    # Going

    def _release(self, jobId, error=None):
        """
        Let go of whatever wakes the job now, in every mode (a daemon may
        hold a poll whatever its mode): close its TCP channel, end its
        pending poll with C{error}, stop repeating UDP wakes.
        """
        self._rivals.pop(jobId, None)
        for wake in self.wakes.values():
            wake.release(jobId, error)

    def _held(self, jobId):
        """
        Whether the job's daemon is connected to any wake now.
        """
        return any(wake.holds(jobId) for wake in self.wakes.values())

    def drop(self, jobId, why, message, reason, ended=False):
        """
        Forget a job: release its wake channel, fail its pending requests,
        and remember when and how it went (see L{ended}).

        @param why: what the log and audit say of it.
        @param message: what its pending queries and poll fail with.
        @param reason: its label in the removals metric.
        @param ended: whether the job ended (its daemon unregistered it):
            its pending queries then fail with C{JOB_ENDED}, saying when,
            rather than C{JOB_GONE}.
        """
        record = self.registry.remove(jobId)
        error = JobMonError(JOB_ENDED if ended else JOB_GONE, message)
        if record is not None:
            self.claims.claim(jobId, record.owner, self.clock.seconds())
            self.metrics.removals.labels(reason).inc()
            if self.ended is not None:
                gone = self.ended.add(record, why, self.clock.seconds(), ended)
                if ended:
                    error = gone.error()
        self._release(jobId, JobMonError(NO_SUCH_JOB, message))
        failed = self.table.failJob(jobId, error)
        if record is not None:
            self.record("removed", job_id=jobId, owner=record.owner, why=why, failed=failed,
                        registration=record.registration)
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

    def expire(self):
        """
        Drop the jobs whose daemons fell silent: UDP jobs that stopped
        re-registering and poll jobs whose polls lapsed.
        """
        self.claims.expire(self.clock.seconds())
        expireAfter = self.config.expireAfter
        limit = self.clock.seconds() - expireAfter
        for record in self.registry.jobs():
            silence = self.wakeOf(record).silence
            # A job whose wake never lapses is dropped when its connection
            # closes; one held by a wake now is alive.
            if silence is None or record.lastSeen >= limit or self._held(record.jobId):
                continue
            self.drop(
                record.jobId,
                "not {} for {:g} s".format(silence, expireAfter),
                "job {} went away (not heard from for {:g} s)".format(
                    record.jobId, expireAfter
                ),
                "expired",
            )

    def releaseMoved(self, jobId, message):
        """
        Let go of the wakes of a job that moved to another server (it is no
        longer in the registry): its TCP channel closes, its poll ends
        with C{message}.
        """
        self._release(jobId, JobMonError(NO_SUCH_JOB, message))

    def handOver(self):
        """
        Tell every job's daemon that this server stops and it should
        register with another at once, where its wake can say so.
        """
        for wake in self.wakes.values():
            handOver = getattr(wake, "handOver", None)
            if handOver is not None:
                handOver()

    def stop(self, error):
        """
        Release every wake (server shutdown); C{error} ends pending polls.
        """
        self._rivals.clear()
        for wake in self.wakes.values():
            wake.stop(error)

    def sizes(self):
        """
        How many entries each wake's tables hold, by table.
        """
        sizes = {name: n for wake in self.wakes.values() for name, n in wake.sizes().items()}
        sizes["rivals"] = len(self._rivals)
        sizes["claims"] = len(self.claims)
        return sizes


MAX_HOST = 255
"""Longest host name (or batch system name) a registration keeps."""

_NO_SECRET = secrets.token_urlsafe(24)
"""What a wake token is compared with when its job is not registered."""


def notYours(jobId):
    """
    The one error for a daemon's call about a job that is not registered,
    or not by the caller.
    """
    return JobMonError(NO_SUCH_JOB, "no job {} registered by you".format(jobId))


def printable(text, limit):
    """
    C{text} fit for a log line: control characters (line breaks, terminal
    escapes) and backslashes escaped, at most C{limit} characters kept.
    """
    text = text[: limit + 1]
    out = "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
        for c in text[:limit]
    )
    return out + "..." if len(text) > limit else out


def _duration(seconds):
    """
    A reservation time for a message: C{"24 h"}, C{"90 min"}, C{"30 s"}.
    """
    if seconds >= 3600 and seconds % 3600 == 0:
        return "{:g} h".format(seconds / 3600)
    if seconds >= 60 and seconds % 60 == 0:
        return "{:g} min".format(seconds / 60)
    return "{:g} s".format(seconds)


def _daemonName(host, info):
    """
    A daemon as the logs and messages name it: C{"host wn01 (pid 4242)"}.
    """
    pid = info.get("pid")
    name = "host {}".format(host or "?")
    if isinstance(pid, int) and not isinstance(pid, bool):
        name += " (pid {})".format(pid)
    return name

"""
The wake modes: how the server tells a job's daemon that work is queued,
and what it keeps to do so.

Each mode is one L{IWake} provider, which keeps the state of every job of
its mode (a TCP channel, a pending poll, a UDP retry timer):

  - L{TCPWake}: the daemon holds a connection to the wake port, sealed or
    TLS (a L{jobmon.protocols.wake.WakeServerProtocol}, bound to its
    registration through the hub); its close marks the job gone at once.
  - L{UDPWake}: the server sends an authenticated datagram to the workers'
    broadcast address, repeated with backoff until the daemon fetches;
    daemons re-register periodically and the hub's cleanup cycle drops
    those that stop.
  - L{PollWake}: the daemon keeps a C{waitForWork} call pending, which
    returns the work as soon as it is queued; a job whose polls lapse is
    dropped by the cleanup cycle.

The hub finds the provider of a job from its registration (in
L{jobmon.server.registrations.Registrations.wakeOf}) and never branches on
the mode's name.  A new way of waking (a job whose connection is held by
another server of a cluster, reached through it) is one more provider.

The wake port's factory, L{WakeServerFactory}, is here too.
"""

import hmac
import secrets

from attrs import define, evolve
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from jobmon.errors import JOB_CONFLICT, JobMonError
from jobmon.protocols.sealed import VERSION as SEALED_VERSION
from jobmon.protocols.sealed import keyId
from jobmon.protocols.wake import MAX_RESULT, WakeServerProtocol
from jobmon.server.admission import PerPeerLimit
from jobmon.server.metrics import NullMetrics
from jobmon.server.tls import RefusalBudget


class IWake(Interface):
    """
    One wake mode: wakes the daemons of its jobs when work is queued for
    them, and keeps what that takes.

    The hub (its L{jobmon.server.registrations.Registrations}) calls these
    for a job whose registration has this mode, except L{release}, L{holds}
    and L{stop}, which it calls on every provider (a daemon may hold a long
    poll whatever its mode).
    """

    mode = Attribute(
        "The mode's name, as a daemon asks for it in its registration "
        '(C{"tcp"}, C{"udp"}, C{"poll"}).'
    )

    renewable = Attribute(
        "Whether a daemon that registers again with the same C{instance} "
        "keeps its registration (secrets, channel), as UDP daemons do "
        "periodically; otherwise every registration is a new one."
    )

    silence = Attribute(
        "How the hub's cleanup cycle says a daemon of this mode fell silent "
        '(C{"re-registered"}: dropped when not re-registered for the '
        "expiry time), or L{None} when the cycle never drops its jobs: "
        "their liveness is a connection, whose close drops them."
    )

    def registered(record, lost):
        """
        A new registration of this mode: add what the mode keeps in the
        record and start watching the job.

        @param record: the new L{jobmon.server.registry.JobRecord}, not
            yet in the registry.
        @param lost: call it later with C{(why, message, reason)} (see
            L{jobmon.server.registrations.Registrations.drop}) to drop the
            job, if this registration is still its current one.
        @return: the record to keep.
        """

    def reply(record):
        """
        Return the mode's fields of the registration reply's C{wake} struct
        (a port, a key, a longest wait), besides C{mode} and C{token}.
        """

    def wake(record):
        """
        Work is queued for the job: tell its daemon, if it can be told now.
        """

    def fetched(jobId):
        """
        The job's daemon fetched its queued work.
        """

    def holds(jobId):
        """
        Whether the job's daemon is connected to this wake now (an open
        channel, a pending poll): a job held is alive, whatever its last
        contact.
        """

    def live(record, now):
        """
        Whether the daemon of C{record} shows itself alive at C{now} by
        this mode's own sign (a channel open or still connecting, a poll
        pending, a re-registration seen recently): while it does, a second
        daemon's registration for the job is refused; once it does not, a
        new daemon may take the job over.
        """

    def notify(jobId, message):
        """
        Tell the job's daemon C{message} (a second daemon was refused the
        job), as soon as this mode can: over its channel, by ending its
        pending call, or in the reply to its next re-registration.  Nothing
        if it cannot be reached now.
        """

    def release(jobId, error=None):
        """
        Let go of whatever this wake keeps for the job (it was unregistered,
        registered anew or is gone): close its channel, end its pending
        call with C{error} (an exception; L{None}: no work), stop timers.
        A job the wake keeps nothing for is no error.
        """

    def stop(error):
        """
        Release every job (the server is stopping); C{error} ends pending
        calls.
        """

    def sizes():
        """
        Return how many entries each of the wake's tables holds, by name:
        for metrics, and for tests that check nothing is left behind.
        """


POLL_LIVE = 30.0
"""Seconds after its last contact that a poll-mode daemon with no poll
pending still counts as alive (see L{IWake.live})."""


def takeWork(table, jobId):
    """
    Take every queued request of a job, as C{getJobToDo} and C{waitForWork}
    return them.

    @param table: the L{jobmon.server.pending.IRequestTable}.
    """
    return [{"id": rid, "request": req} for rid, req in table.take(jobId)]


def _cancel(timer):
    if timer is not None and timer.active():
        timer.cancel()


@implementer(IWake)
class TCPWake:
    """
    Wakes over a job's TCP wake channel, which the daemon opens after
    registering and the hub binds with L{bind}.

    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    @ivar table: the L{jobmon.server.pending.IRequestTable}.
    @ivar connectGrace: how long a job may take to connect its wake
        channel before it is dropped, in seconds.
    @ivar port: the TCP wake port daemons connect to (set once it listens).
    @ivar sealed: whether the wake port takes sealed connections
        (L{jobmon.protocols.sealed}) besides TLS: the registration reply
        offers them.
    """

    mode = "tcp"
    renewable = False
    silence = None
    sealed = False

    def __init__(self, clock, table, metrics=None, connectGrace=30.0, port=None):
        self.clock = clock
        self.table = table
        self.metrics = metrics if metrics is not None else NullMetrics()
        self.connectGrace = connectGrace
        self.port = port
        self._channels = {}
        self._graceTimers = {}

    def registered(self, record, lost):
        jobId = record.jobId
        self._graceTimers[jobId] = self.clock.callLater(
            self.connectGrace, self._graceExpired, jobId, lost
        )
        return record

    def _graceExpired(self, jobId, lost):
        self._graceTimers.pop(jobId, None)
        if jobId not in self._channels:
            lost(
                "no wake channel within {:g} s".format(self.connectGrace),
                "job {} never connected its wake channel".format(jobId),
                "no wake channel",
            )

    def reply(self, record):
        reply = {"port": self.port or 0}
        if self.sealed:
            # The version of the sealed transport the wake port takes; a
            # daemon that does not know it uses TLS.
            reply["sealed"] = SEALED_VERSION
        return reply

    def wake(self, record):
        channel = self._channels.get(record.jobId)
        if channel is not None:
            self.metrics.wakes.labels(self.mode).inc()
            self._deliver(record.jobId, channel)

    def _deliver(self, jobId, channel):
        """
        Tell the daemon of the queued work: send it the requests themselves
        on a channel that takes them (marked fetched, as C{getJobToDo}
        does), else a wake line.
        """
        if not getattr(channel, "requests", False):
            channel.wake()
            return
        for requestId, request in self.table.take(jobId):
            error = channel.request(requestId, request)
            if error is not None:
                self.table.complete(jobId, requestId, failure=error)

    def fetched(self, jobId):
        pass

    def holds(self, jobId):
        return jobId in self._channels

    def live(self, record, now):
        # A registration still connecting its channel is dropped at the end
        # of its grace: until then its daemon counts as alive.
        return self.holds(record.jobId) or (
            record.state == "connecting" and now - record.registered < self.connectGrace
        )

    def notify(self, jobId, message):
        channel = self._channels.get(jobId)
        if channel is not None:
            channel.notice(message)

    def bind(self, jobId, channel):
        """
        Make C{channel} the job's wake channel, closing an earlier one; work
        queued while it was connecting is woken for at once.

        @param channel: a L{jobmon.protocols.wake.WakeServerProtocol}, or
            anything with C{wake()} and C{close()} (and, if its C{requests}
            is true, C{request(requestId, request)}).
        """
        old = self._channels.get(jobId)
        if old is not None and old is not channel:
            self._channels.pop(jobId)
            old.close()
        self._channels[jobId] = channel
        _cancel(self._graceTimers.pop(jobId, None))
        # Work queued while the channel was connecting must not wait.
        if self.table.queued(jobId):
            self.clock.callLater(0, self._wakeIfCurrent, jobId, channel)

    def _wakeIfCurrent(self, jobId, channel):
        if self._channels.get(jobId) is channel and self.table.queued(jobId):
            self._deliver(jobId, channel)

    def bound(self, channel):
        """
        Whether C{channel} is its job's current wake channel (when it
        closes, the job is gone; a channel already replaced or released
        says nothing).
        """
        return self._channels.get(channel.jobId) is channel

    def handOver(self):
        """
        Tell each connected daemon that this server stops and hands its job
        over: it registers with another server at once (daemons that do
        not know the line see their channel close, as before).
        """
        for channel in list(self._channels.values()):
            moved = getattr(channel, "sendMoved", None)
            if moved is not None:
                moved()

    def release(self, jobId, error=None):
        _cancel(self._graceTimers.pop(jobId, None))
        channel = self._channels.pop(jobId, None)
        if channel is not None:
            channel.close()

    def stop(self, error):
        for jobId in set(self._channels) | set(self._graceTimers):
            self.release(jobId, error)

    def sizes(self):
        return {"channels": len(self._channels), "grace_timers": len(self._graceTimers)}


@define
class _UDPRetry:
    """
    Repeats of an unanswered UDP wake.
    """

    started: float
    delay: float
    timer: object = None


@implementer(IWake)
class UDPWake:
    """
    Wakes by UDP datagrams to the workers' broadcast address, authenticated
    with the registration's key and repeated with backoff until the daemon
    fetches.

    @ivar sender: the L{jobmon.protocols.udp.UDPWakeSender}.
    @ivar port: the port daemons listen on for wakes.
    @ivar registry: the L{jobmon.server.registry.IJobRegistry}.
    @ivar table: the L{jobmon.server.pending.IRequestTable}.
    @ivar giveUpAfter: seconds after which an unanswered wake is no longer
        repeated (the query timeout).
    @ivar liveFor: seconds after its last contact that a daemon counts as
        alive (see L{IWake.live}).
    """

    log = Logger()

    mode = "udp"
    renewable = True
    silence = "re-registered"

    firstRetry = 0.25
    """Seconds before an unanswered wake is first repeated."""

    maxRetryDelay = 4.0
    """Longest delay between repeats of a wake."""

    def __init__(self, clock, registry, table, sender, port, metrics=None, giveUpAfter=30.0,
                 liveFor=90.0):
        self.clock = clock
        self.registry = registry
        self.table = table
        self.sender = sender
        self.port = port
        self.metrics = metrics if metrics is not None else NullMetrics()
        self.giveUpAfter = giveUpAfter
        self.liveFor = liveFor
        self._retries = {}
        self._sequences = {}
        self._notices = {}

    def registered(self, record, lost):
        return evolve(record, udpKey=secrets.token_hex(32), state="ready")

    def reply(self, record):
        reply = {"port": self.port, "secret": record.udpKey}
        notice = self._notices.pop(record.jobId, None)
        if notice is not None:
            reply["notice"] = notice
        return reply

    def live(self, record, now):
        return now - record.lastSeen < self.liveFor

    def notify(self, jobId, message):
        # A datagram cannot carry it: the daemon's next re-registration
        # (within the re-registration interval) does.
        self._notices[jobId] = message

    def wake(self, record):
        if record.jobId not in self._retries:
            retry = _UDPRetry(started=self.clock.seconds(), delay=self.firstRetry)
            self._retries[record.jobId] = retry
            self._send(record, retry)

    def _send(self, record, retry):
        jobId = record.jobId
        sequence = self._sequences.get(jobId, 0) + 1
        self._sequences[jobId] = sequence
        self.metrics.wakes.labels(self.mode).inc()
        self.sender.send(jobId, sequence, bytes.fromhex(record.udpKey))
        retry.timer = self.clock.callLater(retry.delay, self._repeat, jobId)

    def _repeat(self, jobId):
        """
        The daemon has not fetched since the last wake: send it again, with
        a longer delay, for at most C{giveUpAfter}.
        """
        retry = self._retries.get(jobId)
        record = self.registry.get(jobId)
        if retry is None:
            return
        if record is None or record.mode != self.mode or not self.table.queued(jobId):
            del self._retries[jobId]
            return
        if self.clock.seconds() - retry.started >= self.giveUpAfter:
            del self._retries[jobId]
            self.metrics.wakesUnanswered.inc()
            self.log.warn(
                "job {job_id} did not answer UDP wakes for {seconds:g} s",
                category="wake",
                job_id=jobId,
                seconds=self.giveUpAfter,
            )
            return
        retry.delay = min(retry.delay * 2, self.maxRetryDelay)
        self.metrics.wakeRepeats.inc()
        self._send(record, retry)

    def fetched(self, jobId):
        retry = self._retries.pop(jobId, None)
        if retry is not None:
            _cancel(retry.timer)

    def holds(self, jobId):
        # A datagram holds no connection: only re-registrations show the
        # daemon alive.
        return False

    def release(self, jobId, error=None):
        self.fetched(jobId)
        self._sequences.pop(jobId, None)
        self._notices.pop(jobId, None)

    def stop(self, error):
        for jobId in set(self._retries) | set(self._sequences) | set(self._notices):
            self.release(jobId, error)

    def sizes(self):
        return {
            "udp_retries": len(self._retries),
            "udp_sequences": len(self._sequences),
            "udp_notices": len(self._notices),
        }


@implementer(IWake)
class PollWake:
    """
    Wakes by answering the daemon's pending C{waitForWork} call (an HTTPS
    long poll), held by L{wait}.

    @ivar registry: the L{jobmon.server.registry.IJobRegistry}.
    @ivar table: the L{jobmon.server.pending.IRequestTable}.
    @ivar maxPoll: longest C{waitForWork} wait, in seconds.
    @ivar liveFor: seconds after its last contact that a daemon with no
        poll pending counts as alive (see L{IWake.live}).
    """

    mode = "poll"
    renewable = True
    silence = "polled"

    def __init__(self, clock, registry, table, metrics=None, maxPoll=60.0, liveFor=30.0):
        self.clock = clock
        self.registry = registry
        self.table = table
        self.metrics = metrics if metrics is not None else NullMetrics()
        self.maxPoll = maxPoll
        self.liveFor = liveFor
        self._polls = {}
        self._notices = {}

    def registered(self, record, lost):
        return record

    def reply(self, record):
        return {"max_wait": self.maxPoll}

    def wake(self, record):
        poll = self._polls.pop(record.jobId, None)
        if poll is not None:
            self.metrics.wakes.labels(self.mode).inc()
            poll.callback(takeWork(self.table, record.jobId))

    def wait(self, record, seconds):
        """
        Hold the daemon's poll: return a L{Deferred} that fires with the
        job's work when it is woken, or an empty list after C{seconds}.  A
        poll that ends, either way, counts as contact from the daemon.

        @param record: the job's current record.
        """
        jobId = record.jobId
        notice = self._notices.pop(jobId, None)
        if notice is not None:
            return defer.fail(JobMonError(JOB_CONFLICT, notice))
        # A newer poll replaces an older one (its connection may be dead).
        older = self._polls.pop(jobId, None)
        if older is not None:
            older.callback([])

        def cancel(d):
            if self._polls.get(jobId) is d:
                del self._polls[jobId]

        d = defer.Deferred(cancel)
        self._polls[jobId] = d
        d.addTimeout(seconds, self.clock, onTimeoutCancel=lambda result, t: [])

        def ended(result):
            current = self.registry.get(jobId)
            if current is not None and current.wakeSecret == record.wakeSecret:
                self.registry.put(current.touched(self.clock.seconds()))
            return result

        d.addBoth(ended)
        return d

    def fetched(self, jobId):
        pass

    def holds(self, jobId):
        return jobId in self._polls

    def live(self, record, now):
        # A live daemon polls again as soon as a poll returns, and within
        # seconds after a failed one.
        return self.holds(record.jobId) or now - record.lastSeen < self.liveFor

    def notify(self, jobId, message):
        # The pending poll is the only way to the daemon: end it with the
        # message (the daemon logs it and polls again); between two polls,
        # the next one.
        poll = self._polls.pop(jobId, None)
        if poll is not None:
            poll.errback(JobMonError(JOB_CONFLICT, message))
        else:
            self._notices[jobId] = message

    def release(self, jobId, error=None):
        self._notices.pop(jobId, None)
        poll = self._polls.pop(jobId, None)
        if poll is not None:
            if error is not None:
                poll.errback(error)
            else:
                poll.callback([])

    def stop(self, error):
        for jobId in set(self._polls) | set(self._notices):
            self.release(jobId, error)

    def sizes(self):
        return {"polls": len(self._polls), "poll_notices": len(self._notices)}


def standardWakes(clock, registry, table, config, metrics=None, udpSender=None, udpPort=None):
    """
    The server's wakes: L{TCPWake} and L{PollWake}, and L{UDPWake} when
    UDP wakes are configured, in the order the modes are listed.

    @param clock: an L{twisted.internet.interfaces.IReactorTime}.
    @param registry: the L{jobmon.server.registry.IJobRegistry}.
    @param table: the L{jobmon.server.pending.IRequestTable}.
    @param config: the hub's L{jobmon.server.hub.HubConfig} (its
        C{connectGrace}, C{maxPoll} and C{queryTimeout}).
    @param metrics: the L{jobmon.server.metrics.Metrics} wakes count in.
    @param udpSender: the L{jobmon.protocols.udp.UDPWakeSender}, or L{None}
        for no UDP wakes.
    @param udpPort: the port daemons listen on for UDP wakes.
    @return: a list of L{IWake} providers.
    """
    wakes = [TCPWake(clock, table, metrics, connectGrace=config.connectGrace)]
    if udpSender is not None:
        # A live daemon re-registers every interval (less a random tenth):
        # half an interval more allows for a slow or retried one.
        wakes.append(
            UDPWake(clock, registry, table, udpSender, udpPort, metrics,
                    giveUpAfter=config.queryTimeout,
                    liveFor=min(1.5 * config.reregisterInterval, config.expireAfter))
        )
    wakes.append(PollWake(clock, registry, table, metrics, maxPoll=config.maxPoll,
                          liveFor=min(POLL_LIVE, config.expireAfter)))
    return wakes


def sealedLookup(registry):
    """
    The wake port's look-up of a sealed hello's key (see
    L{jobmon.protocols.sealed.SealedServerProtocol.lookup}).

    @param registry: the L{jobmon.server.registry.IJobRegistry}.
    @return: C{lookup(jobId, keyId)}: the wake secret of the job's TCP
        registration whose key id is C{keyId}, else L{None}.
    """

    def lookup(jobId, kid):
        record = registry.get(jobId)
        if record is None or record.mode != TCPWake.mode:
            return None
        if not hmac.compare_digest(keyId(record.wakeSecret), kid):
            return None
        return record.wakeSecret

    return lookup


class WakeServerFactory(PerPeerLimit, Factory):
    """
    Builds L{WakeServerProtocol}s for the server's wake port, at most
    C{maxPerPeer} at a time from one address (a worker node runs many jobs,
    but not without bound).

    @ivar refusals: the L{RefusalBudget} of the refusals logged.
    @ivar maxResult: the largest result a daemon may send on its channel
        (the server's C{--max-body}).
    """

    noisy = False

    offerRequests = True
    """Whether daemons that ask for requests on the channel get them."""

    def __init__(self, hub, identify, clock, maxPerPeer=1024, maxResult=MAX_RESULT):
        self.hub = hub
        self.identify = identify
        self.clock = clock
        self.maxPerPeer = maxPerPeer
        self.maxResult = maxResult
        self.peers = {}
        # Refusals on the wake port are logged a few per address per minute.
        self.refusals = RefusalBudget(now=clock.seconds)

    def buildAdmitted(self, addr):
        """
        Build the protocol of an admitted connection.
        """
        protocol = WakeServerProtocol(self.hub, self.identify, self.clock, self.maxResult)
        protocol.factory = self
        return protocol

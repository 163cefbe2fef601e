"""
Job ids reserved for their owners: an id stays its owner's while it is
registered and for a while after (L{RESERVE_FOR}), so that nobody else can
register it meanwhile, even across a server restart.

Job ids are one name space for all users (batch system ids are unique on a
cluster).  Without reservations, another user could take an id in the
moments its daemon is not registered (a server restart, a daemon
restarting) and be answered the owner's queries' requests; the owner's
daemon would be refused for as long as the squatter held it.

The reservations of a server's previous run come from the history
database (L{jobmon.server.history.History.recentOwners}), read off the
reactor at start-up; until they are read, registrations are refused with
a "try again" (the daemons retry).
"""

from collections import OrderedDict

from twisted.logger import Logger

RESERVE_FOR = 24 * 3600.0
"""Seconds a job id stays reserved for its owner after its job went."""

MAX_PER_OWNER = 100_000
"""Reservations kept for one owner; her oldest go first, so that one
identity's many jobs never push out another's reservations."""

MAX_CLAIMS = 1_000_000
"""Reservations kept in all."""


class JobClaims:
    """
    Which identity each recently used job id is reserved for, and until
    when.

    @ivar reserveFor: seconds a job id stays reserved after its job went.
    @ivar ready: whether the previous run's reservations are known (see
        L{load}); until then no registration is accepted.
    """

    def __init__(self, reserveFor=RESERVE_FOR, maxPerOwner=MAX_PER_OWNER,
                 maxClaims=MAX_CLAIMS):
        self.reserveFor = reserveFor
        self.maxPerOwner = maxPerOwner
        self.maxClaims = maxClaims
        self.ready = True
        # jobId -> (owner, until), oldest first; and per owner, in the same
        # order.
        self._claims = OrderedDict()
        self._byOwner = {}

    def claim(self, jobId, owner, since):
        """
        Reserve C{jobId} for C{owner} for L{reserveFor} seconds from
        C{since} (when its job went), replacing an older reservation.
        """
        self.forget(jobId)
        until = since + self.reserveFor
        self._claims[jobId] = (owner, until)
        owned = self._byOwner.setdefault(owner, OrderedDict())
        owned[jobId] = None
        if len(owned) > self.maxPerOwner:
            self.forget(next(iter(owned)))
        while len(self._claims) > self.maxClaims:
            self.forget(next(iter(self._claims)))

    def holder(self, jobId, now):
        """
        The identity C{jobId} is reserved for at C{now}, or L{None}.
        """
        claim = self._claims.get(jobId)
        if claim is None or claim[1] <= now:
            return None
        return claim[0]

    def forget(self, jobId):
        """
        Drop the reservation of C{jobId}; no error if there is none.
        """
        claim = self._claims.pop(jobId, None)
        if claim is None:
            return
        owned = self._byOwner[claim[0]]
        del owned[jobId]
        if not owned:
            del self._byOwner[claim[0]]

    def load(self, owners):
        """
        Take the previous run's reservations, and accept registrations
        from now on.

        @param owners: C{(jobId, owner, since)} triples in the order the
            jobs registered: a later one for an id replaces an earlier one.
        """
        latest = {}
        for jobId, owner, since in owners:
            latest.pop(jobId, None)
            latest[jobId] = (owner, since)
        # Kept in the order they end (see expire).
        for jobId, (owner, since) in sorted(latest.items(), key=lambda item: item[1][1]):
            self.claim(jobId, owner, since)
        self.ready = True

    def expire(self, now):
        """
        Forget the reservations that ended before C{now}.
        """
        # Claims are kept in the order they were made, and all last equally
        # long: the ended ones are at the front.
        while self._claims:
            jobId, (_, until) = next(iter(self._claims.items()))
            if until > now:
                return
            self.forget(jobId)

    def __len__(self):
        return len(self._claims)


_log = Logger()


def reserveFromHistory(claims, history, clock, opened):
    """
    Reserve the job ids of the previous run for their owners, as the
    history database knows them, once it is open; registrations are refused
    (try again) until then.  A history that cannot be read leaves only this
    run's reservations, and says so in the log.

    @param claims: the hub's L{JobClaims}.
    @param history: the L{jobmon.server.history.History}.
    @param clock: an L{twisted.internet.interfaces.IReactorTime}.
    @param opened: a L{Deferred} that fires when the history is open.
    @return: a L{Deferred} that fires when registrations are accepted.
    """
    claims.ready = False

    def read(_):
        return history.recentOwners(clock.seconds(), claims.reserveFor)

    def failed(failure):
        _log.failure(
            "cannot read the job ids reserved by the history database; only the ids of "
            "this run's jobs are reserved", failure,
        )
        return []

    def loaded(owners):
        claims.load(owners)
        _log.info("{count} job id(s) reserved for their owners", count=len(claims))

    return opened.addCallback(read).addErrback(failed).addCallback(loaded)

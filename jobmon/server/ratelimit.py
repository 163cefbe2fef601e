"""
Rate limits on every XML-RPC method, and on registrations.

Every call is charged, before anything else is checked, to a token bucket
of its caller's identity for its kind of method (see L{KINDS}): a call
refused for a bad job id costs as much as a good one, so that no refusal is
free to repeat.  Calls whose caller cannot be identified are charged to its
address (L{limitFailures}).  New registrations also take from a bucket of
their owner's, and each owner has at most C{maxJobsPerOwner} jobs
registered at once.

Over a limit, a call is refused with fault 429 saying which limit and when
to try again; it is counted (C{jobmon_rate_limited_total}), audited (within
the audit log's budget for refusals) and logged once a minute per caller.
"""

import functools
import math

from attrs import frozen
from twisted.logger import Logger

from jobmon.errors import TOO_MANY, JobMonError
from jobmon.server.tls import RefusalBudget

KINDS = {
    "jobmon.whoami": "user",
    "jobmon.listJobs": "user",
    "jobmon.auditLog": "user",
    "jobmon.history": "user",
    "jobmon.query": "query",
    "jobmon.registerJob": "daemon",
    "jobmon.unregisterJob": "daemon",
    "jobmon.getJobToDo": "daemon",
    "jobmon.waitForWork": "daemon",
    "jobmon.outputJobResult": "daemon",
}
"""The bucket each XML-RPC method is charged to; a method not named here is
charged as a user method."""


@frozen
class LimitsConfig:
    """
    The rates and bursts of L{Limits}.

    @ivar userRate: user method calls (C{whoami}, C{listJobs}, C{history},
        C{auditLog}) per second per identity.
    @ivar userBurst: such calls at once.
    @ivar queryRate: C{query} calls per second per identity, refused ones
        included.
    @ivar queryBurst: C{query} calls at once.
    @ivar daemonRate: daemon method calls per second per identity (all of
        its jobs' daemons together).
    @ivar daemonBurst: such calls at once.
    @ivar authFailureRate: requests that fail to authenticate, per second
        per address, before that address is answered 429.
    @ivar authFailureBurst: such requests at once.
    @ivar maxJobsPerOwner: jobs one identity may have registered at once.
    @ivar registrationRate: new registrations per second per identity
        (renewals by the registered daemon are not new).
    @ivar registrationBurst: new registrations at once.
    @ivar maxKeys: most identities (or addresses) with a bucket; past that,
        idle buckets are forgotten, and new callers share one.
    """

    userRate: float = 10.0
    userBurst: int = 100
    queryRate: float = 50.0
    queryBurst: int = 200
    daemonRate: float = 500.0
    daemonBurst: int = 5000
    authFailureRate: float = 1.0
    authFailureBurst: int = 30
    maxJobsPerOwner: int = 5000
    registrationRate: float = 50.0
    registrationBurst: int = 2000
    maxKeys: int = 100000


OVERFLOW = "\0overflow"
"""The key all new callers share while the bucket table is full."""


class TokenBuckets:
    """
    A token bucket per key: C{burst} calls at once, refilled at C{rate} per
    second.

    @ivar buckets: C{(allowance, when)} by key.
    """

    def __init__(self, clock, rate, burst, maxKeys=100000):
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.maxKeys = maxKeys
        self.buckets = {}

    def _allowance(self, key, now):
        allowance, last = self.buckets.get(key, (self.burst, now))
        return min(self.burst, allowance + (now - last) * self.rate)

    def take(self, key, cost=1.0, anyway=False):
        """
        Take C{cost} calls from C{key}'s allowance.

        @param anyway: take it even if the allowance is short (down to
            nothing): a charge for what was already done.
        @return: 0 if it is allowed, else how many seconds until it would be.
        """
        now = self.clock.seconds()
        if key not in self.buckets and len(self.buckets) >= self.maxKeys:
            self.forgetIdle()
            if len(self.buckets) >= self.maxKeys:
                key = OVERFLOW
        allowance = self._allowance(key, now)
        if allowance < cost:
            self.buckets[key] = (max(allowance - cost, 0.0) if anyway else allowance, now)
            return (cost - allowance) / self.rate
        self.buckets[key] = (allowance - cost, now)
        return 0

    def empty(self, key):
        """
        How many seconds until C{key} may be charged again (0: it may now),
        without charging it.
        """
        now = self.clock.seconds()
        if key not in self.buckets:
            return 0
        allowance = self._allowance(key, now)
        return 0 if allowance >= 1 else (1 - allowance) / self.rate

    def forgetIdle(self):
        """
        Forget the buckets that have refilled: they say nothing.
        """
        now = self.clock.seconds()
        for key, (allowance, last) in list(self.buckets.items()):
            if allowance + (now - last) * self.rate >= self.burst:
                del self.buckets[key]

    def __len__(self):
        return len(self.buckets)


def retryIn(seconds):
    """
    The hint a 429 ends with: C{"retry in 0.4 s"}.
    """
    return "retry in {:.1f} s".format(max(0.1, math.ceil(seconds * 10) / 10))


class Limits:
    """
    The server's rate limits: a L{TokenBuckets} per kind of method, one for
    authentication failures by address, one for new registrations, and the
    cap on jobs per owner.

    @ivar refused: calls refused by a limit, by kind.
    """

    log = Logger()

    def __init__(self, clock, config=LimitsConfig(), metrics=None, audit=None):
        """
        @param metrics: a L{jobmon.server.metrics.Metrics}, or L{None}.
        @param audit: C{(event, **fields)}: writes an audit record, or
            L{None}.
        """
        self.clock = clock
        self.config = config
        self.metrics = metrics
        self.audit = audit
        c = config
        self.buckets = {
            "user": TokenBuckets(clock, c.userRate, c.userBurst, c.maxKeys),
            "query": TokenBuckets(clock, c.queryRate, c.queryBurst, c.maxKeys),
            "daemon": TokenBuckets(clock, c.daemonRate, c.daemonBurst, c.maxKeys),
            "auth": TokenBuckets(clock, c.authFailureRate, c.authFailureBurst, c.maxKeys),
            "registration": TokenBuckets(clock, c.registrationRate, c.registrationBurst,
                                         c.maxKeys),
        }
        self._logged = RefusalBudget(burst=1, window=60.0, now=clock.seconds,
                                     maxPeers=c.maxKeys)
        self.refused = {}

    def _refuse(self, kind, who, method, message, field="dn"):
        """
        Count, audit and (once a minute per caller) log a refusal, and
        return its error.
        """
        self.refused[kind] = self.refused.get(kind, 0) + 1
        if self.metrics is not None:
            self.metrics.rateLimited.labels(kind).inc()
            self.metrics.refusals.labels("rate limit").inc()
        if self.audit is not None:
            self.audit("refused", method=method, code=TOO_MANY, reason=message,
                       **{field: who})
        quiet = self._logged.admit((kind, who))
        if quiet is not None:
            self.log.info(
                "{who} refused by the {kind} limit: {message}{more}",
                who=who, kind=kind, message=message,
                more="; {} more not logged".format(quiet) if quiet else "",
            )
        return JobMonError(TOO_MANY, message)

    def charge(self, kind, dn, method):
        """
        Charge one call of C{method} to C{dn}'s bucket of C{kind}.

        @raise JobMonError: L{TOO_MANY}, saying when to try again.
        """
        buckets = self.buckets[kind]
        wait = buckets.take(dn)
        if wait:
            raise self._refuse(
                kind, dn, method,
                "too many {} calls: at most {:g} per second (bursts of {}) for each "
                "identity; {}".format(
                    {"user": "user", "query": "query", "daemon": "job daemon"}[kind],
                    buckets.rate, buckets.burst, retryIn(wait),
                ),
            )

    def wrap(self, name, method):
        """
        C{method} (an XML-RPC method, called with the caller's identity
        first), charged to its caller's bucket of its kind first.
        """
        kind = KINDS.get(name, "user")

        @functools.wraps(method)
        def limited(identity, *args):
            self.charge(kind, identity.dn, name.rpartition(".")[2])
            return method(identity, *args)

        return limited

    def wrapAll(self, methods):
        """
        L{wrap} every method of C{methods} (name to callable).
        """
        return {name: self.wrap(name, fn) for name, fn in methods.items()}

    def registration(self, identity, owned):
        """
        Admit a new registration by C{identity}, which has C{owned} jobs
        registered now.

        @raise JobMonError: L{TOO_MANY}, over the cap on jobs or the rate.
        """
        c = self.config
        if owned >= c.maxJobsPerOwner:
            raise self._refuse(
                "jobs", identity.dn, "registerJob",
                "you already have {} jobs registered, the most this server allows for one "
                "identity: unregister some, or wait for them to end".format(owned),
            )
        buckets = self.buckets["registration"]
        wait = buckets.take(identity.dn)
        if wait:
            raise self._refuse(
                "registration", identity.dn, "registerJob",
                "too many new registrations: at most {:g} per second (bursts of {}) for each "
                "identity; {}".format(buckets.rate, buckets.burst, retryIn(wait)),
            )

    def admitRegistration(self, identity, jobId, registry):
        """
        Admit a registration of C{jobId} by C{identity}: a new job (one not
        in C{registry}) within the owner's cap and rate; a renewal always.

        @raise JobMonError: L{TOO_MANY}, see L{registration}.
        """
        if registry.get(jobId) is None:
            self.registration(identity, registry.countOf(identity.dn))

    def failedAuthentication(self, peer):
        """
        A request from C{peer} could not be authenticated: charge its
        address.

        @return: L{None}, or the L{JobMonError} (429) to answer with instead
            once the address is over its limit.
        """
        buckets = self.buckets["auth"]
        wait = buckets.take(peer)
        if not wait:
            return None
        return self._refuse(
            "auth", peer, "authentication",
            "too many requests that could not be authenticated from your address: at most "
            "{:g} per second (bursts of {}); fix the credential, then {}".format(
                buckets.rate, buckets.burst, retryIn(wait),
            ),
            field="peer",
        )

    def forgetIdle(self):
        """
        Forget the buckets that have refilled (the hub's cleanup cycle).
        """
        for buckets in self.buckets.values():
            buckets.forgetIdle()

    def sizes(self):
        """
        How many buckets are kept, for metrics and tests.
        """
        return {"limit_buckets": sum(len(b) for b in self.buckets.values())}


def limitFailures(identify, limits):
    """
    Wrap the XML-RPC endpoint's C{identify}: a request that fails to
    authenticate is charged to its address, and once the address is over
    its limit the answer is 429 instead of 401.  A request that does
    authenticate is never refused by its address's failures, so that a
    neighbour on a shared login node cannot lock out a user.
    """

    def identifyLimited(request):
        try:
            return identify(request)
        except JobMonError:
            peer = getattr(request.getClientAddress(), "host", None)
            error = limits.failedAuthentication(peer)
            if error is not None:
                raise error from None
            raise

    return identifyLimited

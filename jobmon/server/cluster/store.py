"""
The shared store of a cluster of servers: the interface every server uses,
and an implementation in one process's memory for tests.

The store keeps, for each registered job, a record of string fields (see
L{JOB_FIELDS}) that says who owns it and which server holds it; which
servers are alive (each renews a heartbeat that expires); the job ids
reserved for their owners after their jobs went; which server leads the
cluster's cleanup; and carries messages from server to server.

Every method returns a L{Deferred}.  When the store cannot be reached it
fails with L{StoreUnavailable}, and the server goes on with what it holds
itself.  L{jobmon.server.cluster.redisstore.RedisStore} is the real one;
L{MemoryStore} has the same behaviour, which the same tests check
(C{tests/server/cluster/test_store.py}).
"""

from twisted.internet import defer
from zope.interface import Interface, implementer

JOB_FIELDS = (
    "owner",  # DN of the identity that registered the job
    "server",  # id of the server that holds it (its daemon is registered there)
    "mode",  # wake mode: tcp, udp or poll
    "host",  # the worker's host name
    "batch",  # the batch system's name, or ""
    "state",  # connecting or ready
    "registered",  # when it registered, seconds since the epoch, as text
    "last_seen",  # when its server last wrote the record, as text
    "info",  # JSON: what of its registration's info authorizes queries (shares), names its daemon
    "udp_key",  # for UDP jobs: the hex key of the MAC of its wakes; else ""
)
"""The fields of a job's record, all strings."""


class StoreUnavailable(Exception):
    """
    The store cannot be reached (or refused the server's credentials).
    """


class IClusterStore(Interface):
    """
    What servers share.  Records are dicts of L{JOB_FIELDS} plus
    C{"job_id"}.
    """

    def claimJob(jobId, owner, server, fields, replace=None):
        """
        Make C{server} the holder of C{jobId} for C{owner}, if nobody else
        may keep it: the record is written (with C{fields}, C{owner} and
        C{server}) when there is none, when C{server} already holds it,
        when its holder is not alive, or when its holder is C{replace};
        and only if the same owner registered it, and the id is not
        reserved for another owner.

        @return: a L{Deferred} of C{(status, other)}: C{("ok", None)}
            when written; C{("owner", dn)} when another owner holds or
            reserved the id; C{("held", serverId)} when the same owner's
            job is held by another live server (not written).
        """

    def updateJob(jobId, server, fields):
        """
        Change some fields of a record that C{server} holds.

        @return: a L{Deferred} of whether it did (false: the record is
            gone or another server holds it now).
        """

    def removeJob(jobId, server, reserveFor=0):
        """
        Remove the record if C{server} holds it, and reserve the id for its
        owner for C{reserveFor} seconds (none if 0).

        @return: a L{Deferred} of whether it did.
        """

    def getJob(jobId):
        """
        @return: a L{Deferred} of the record, or L{None}.
        """

    def jobsOf(owner):
        """
        @return: a L{Deferred} of the records of C{owner}'s jobs, in no
            order.
        """

    def ownsPrefix(owner, prefix):
        """
        @return: a L{Deferred} of whether one of C{owner}'s job ids starts
            with C{prefix} (read from the ids alone, not the records).
        """

    def allJobs():
        """
        @return: a L{Deferred} of every record, in no order.
        """

    def heldBy(server):
        """
        @return: a L{Deferred} of the ids of the jobs C{server} holds.
        """

    def reservedFor(jobId):
        """
        @return: a L{Deferred} of the owner C{jobId} is reserved for, or
            L{None}.
        """

    def heartbeat(server, info, ttl):
        """
        Say that C{server} is alive for C{ttl} seconds, with C{info} (a dict
        of strings: its URL, when it started, its counts) for the others.
        """

    def servers():
        """
        @return: a L{Deferred} of C{{serverId: info}} of the live servers.
        """

    def isAlive(server):
        """
        @return: a L{Deferred} of whether C{server}'s heartbeat is current.
        """

    def leave(server):
        """
        Forget C{server}'s heartbeat, and its lead if it leads, at once (a
        clean stop).
        """

    def lead(server, ttl):
        """
        Take or keep the cluster's lead for C{ttl} seconds: one server
        does the cluster's share of the cleanup cycle.

        @return: a L{Deferred} of whether C{server} leads.
        """

    def send(server, message):
        """
        Send C{message} (a string) to C{server}.

        @return: a L{Deferred} of whether someone received it.
        """

    def listen(server, received):
        """
        Call C{received(message)} for each message sent to C{server}, and
        C{received(None)} each time the store was reached again after it
        was lost (messages sent meanwhile are lost).

        @return: a L{Deferred} that fires once listening.
        """

    def putValue(key, value, ttl):
        """
        Keep the string C{value} under C{key} for C{ttl} seconds (a large
        answer between servers, what became of a job that went).
        """

    def getValue(key, take=False):
        """
        @return: a L{Deferred} of the value kept under C{key}, or L{None};
            with C{take}, it is removed too.
        """

    def close():
        """
        Let go of the store's connections.
        """


class UnreachableStore:
    """
    The store of a server not connected yet: every call fails with
    L{StoreUnavailable}.
    """

    def __init__(self, why="not connected yet"):
        self.why = why

    def __getattr__(self, name):
        if name not in IClusterStore.names():
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            return defer.fail(StoreUnavailable(self.why))

        return unavailable

    def close(self):
        pass


class _Down:
    """
    Make every call of a L{MemoryStore} fail while it is down.
    """

    def __get__(self, store, owner=None):
        return store._down

    def __set__(self, store, down):
        was, store._down = store._down, down
        if was and not down:
            for received in list(store._listeners.values()):
                received(None)


@implementer(IClusterStore)
class MemoryStore:
    """
    An L{IClusterStore} in memory, shared by the servers of one test.

    @ivar down: set to make every call fail with L{StoreUnavailable}, as
        when Redis is unreachable; setting it back tells the listeners.
    @ivar sent: every message sent, as C{(server, message)}.
    """

    down = _Down()

    def __init__(self, clock):
        self.clock = clock
        self._down = False
        self.jobs = {}
        self._reserved = {}
        self._alive = {}
        self._leader = None
        self._listeners = {}
        self._values = {}
        self.sent = []

    def _check(self):
        if self._down:
            raise StoreUnavailable("the store is down")

    def _live(self, server):
        until = self._alive.get(server)
        return until is not None and until[0] > self.clock.seconds()

    def _call(self, f, *args):
        try:
            self._check()
            return defer.succeed(f(*args))
        except StoreUnavailable as e:
            return defer.fail(e)

    def claimJob(self, jobId, owner, server, fields, replace=None):
        def claim():
            old = self.jobs.get(jobId)
            reserved = self._reservation(jobId)
            if old is not None and old["owner"] != owner:
                return ("owner", old["owner"])
            if old is None and reserved is not None and reserved != owner:
                return ("owner", reserved)
            holder = old["server"] if old is not None else None
            if holder not in (None, server, replace) and self._live(holder):
                return ("held", holder)
            record = dict(fields, owner=owner, server=server, job_id=jobId)
            self.jobs[jobId] = record
            return ("ok", None)

        return self._call(claim)

    def _reservation(self, jobId):
        reserved = self._reserved.get(jobId)
        if reserved is None or reserved[1] <= self.clock.seconds():
            self._reserved.pop(jobId, None)
            return None
        return reserved[0]

    def updateJob(self, jobId, server, fields):
        def update():
            old = self.jobs.get(jobId)
            if old is None or old["server"] != server:
                return False
            old.update(fields)
            return True

        return self._call(update)

    def removeJob(self, jobId, server, reserveFor=0):
        def remove():
            old = self.jobs.get(jobId)
            if old is None or old["server"] != server:
                return False
            del self.jobs[jobId]
            if reserveFor > 0:
                self._reserved[jobId] = (old["owner"], self.clock.seconds() + reserveFor)
            return True

        return self._call(remove)

    def getJob(self, jobId):
        return self._call(lambda: dict(self.jobs[jobId]) if jobId in self.jobs else None)

    def jobsOf(self, owner):
        return self._call(
            lambda: [dict(r) for r in self.jobs.values() if r["owner"] == owner])

    def ownsPrefix(self, owner, prefix):
        return self._call(lambda: any(
            j.startswith(prefix) for j, r in self.jobs.items() if r["owner"] == owner))

    def allJobs(self):
        return self._call(lambda: [dict(r) for r in self.jobs.values()])

    def heldBy(self, server):
        return self._call(
            lambda: [j for j, r in self.jobs.items() if r["server"] == server])

    def reservedFor(self, jobId):
        return self._call(self._reservation, jobId)

    def heartbeat(self, server, info, ttl):
        def beat():
            self._alive[server] = (self.clock.seconds() + ttl, dict(info))

        return self._call(beat)

    def servers(self):
        return self._call(lambda: {
            s: dict(info) for s, (until, info) in self._alive.items()
            if until > self.clock.seconds()})

    def isAlive(self, server):
        return self._call(self._live, server)

    def leave(self, server):
        def leave():
            self._alive.pop(server, None)
            if self._leader is not None and self._leader[0] == server:
                self._leader = None

        return self._call(leave)

    def lead(self, server, ttl):
        def lead():
            now = self.clock.seconds()
            if self._leader is None or self._leader[0] == server or self._leader[1] <= now:
                self._leader = (server, now + ttl)
                return True
            return False

        return self._call(lead)

    def putValue(self, key, value, ttl):
        def put():
            self._values[key] = (value, self.clock.seconds() + ttl)

        return self._call(put)

    def getValue(self, key, take=False):
        def get():
            value, until = self._values.get(key, (None, 0))
            if until <= self.clock.seconds():
                self._values.pop(key, None)
                return None
            if take:
                del self._values[key]
            return value

        return self._call(get)

    def send(self, server, message):
        def send():
            self.sent.append((server, message))
            received = self._listeners.get(server)
            if received is None:
                return False
            received(message)
            return True

        return self._call(send)

    def listen(self, server, received):
        self._listeners[server] = received
        return defer.succeed(None)

    def close(self):
        # Shared by the servers of a test: each server's own connection
        # would close; here the others keep theirs.
        pass

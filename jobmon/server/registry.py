"""
The job registry: which jobs are registered, by whom, and how to wake them.

The server talks to the registry only through L{IJobRegistry}, so that a
registry shared by several servers (in Redis or PostgreSQL) can replace the
in-memory one without touching the server's logic.  What cannot be shared,
the live wake connection of a job, is kept by the server itself.
"""

import hashlib

from attrs import field, frozen
from zope.interface import Interface, implementer


@frozen
class JobRecord:
    """
    One registered job.

    @ivar jobId: the job's id, as the daemon registered it.
    @ivar owner: DN of the identity that registered it.
    @ivar host: the worker's host name, as reported by the daemon.
    @ivar mode: the wake mode (C{"tcp"}, C{"udp"} or C{"poll"}).
    @ivar registered: time of this registration.
    @ivar lastSeen: last time the server heard from the daemon.
    @ivar wakeSecret: the registration's secret (the C{token} of its reply):
        a wake channel presents it to bind to this registration.
    @ivar udpKey: hex key of the MAC on UDP wakes (the C{secret} of the
        reply; UDP jobs only).
    @ivar info: what the daemon reported about itself (strings and
        numbers).
    @ivar state: C{"connecting"} until the wake channel is up, then
        C{"ready"}.
    @ivar notAfter: when the certificate credential that registered the
        job expires (see L{jobmon.server.identity.Identity.notAfter}), or
        L{None}: a sealed wake channel, which shows no certificate, is
        closed then, as a TLS one is.
    @ivar revocation: the L{jobmon.server.tls.revocationKey} of that
        credential's chain, kept for a mode whose channel may be sealed
        (a reload of the CA directory that revokes it closes the channel);
        else L{None}.
    """

    jobId: str
    owner: str
    host: str
    mode: str
    registered: float
    lastSeen: float
    wakeSecret: str = field(repr=False)
    udpKey: str = field(default="", repr=False)
    info: dict = field(factory=dict, eq=False)
    state: str = "connecting"
    notAfter: object = field(default=None, eq=False, repr=False)
    revocation: object = field(default=None, eq=False, repr=False)

    @property
    def registration(self):
        """
        The registration's name in the history and audit: derived from its
        secret, which it does not reveal.
        """
        return hashlib.sha256(self.wakeSecret.encode("utf-8")).hexdigest()[:16]

    def touched(self, when, state=None):
        """
        Return a copy seen at C{when}, optionally in a new state.

        Built directly rather than with C{attrs.evolve}, which inspects the
        class's fields on every call: a record is touched twice per query
        (4x faster, about 8 us less each).
        """
        return JobRecord(
            jobId=self.jobId, owner=self.owner, host=self.host, mode=self.mode,
            registered=self.registered, lastSeen=when, wakeSecret=self.wakeSecret,
            udpKey=self.udpKey, info=self.info, state=state or self.state,
            notAfter=self.notAfter, revocation=self.revocation,
        )


class IJobRegistry(Interface):
    """
    Where the server keeps its L{JobRecord}s.
    """

    def get(jobId):
        """
        Return the record of C{jobId}, or L{None}.
        """

    def put(record):
        """
        Add or replace the record of C{record.jobId}.
        """

    def remove(jobId):
        """
        Remove and return the record of C{jobId} (L{None} if absent).
        """

    def jobs():
        """
        Return all records, as a list.
        """

    def ofOwner(owner):
        """
        Return the records of the jobs C{owner} (a DN) registered, as a
        list: without looking at anyone else's.
        """

    def __len__():
        """
        Return the number of registered jobs.
        """

    def countOf(owner):
        """
        Return how many jobs C{owner} has registered.
        """


@implementer(IJobRegistry)
class MemoryJobRegistry:
    """
    An L{IJobRegistry} in this process's memory.
    """

    def __init__(self):
        self._records = {}
        self._byOwner = {}

    def get(self, jobId):
        return self._records.get(jobId)

    def put(self, record):
        old = self._records.get(record.jobId)
        if old is not None and old.owner != record.owner:
            self._forget(old)
        self._records[record.jobId] = record
        self._byOwner.setdefault(record.owner, {})[record.jobId] = record

    def remove(self, jobId):
        record = self._records.pop(jobId, None)
        if record is not None:
            self._forget(record)
        return record

    def _forget(self, record):
        own = self._byOwner.get(record.owner)
        if own is not None:
            own.pop(record.jobId, None)
            if not own:
                del self._byOwner[record.owner]

    def countOf(self, owner):
        return len(self._byOwner.get(owner, ()))

    def jobs(self):
        return list(self._records.values())

    def ofOwner(self, owner):
        return list(self._byOwner.get(owner, {}).values())

    def __len__(self):
        return len(self._records)

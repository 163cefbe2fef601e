"""
This server's jobs, in its memory as without a cluster, and mirrored into
the cluster's store: each change that others need (a new registration, a
new state, a job gone) is written there, in the background.

The server's own memory stays the truth for its own jobs: a store that
cannot be reached loses nothing, and everything is written again once it is
back (L{MirroredRegistry.resync}).
"""

import json

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from jobmon.server.cluster.store import StoreUnavailable
from jobmon.server.ended import EndedJob, EndedJobs
from jobmon.server.registry import IJobRegistry, JobRecord, MemoryJobRegistry

_INFO_KEYS = ("instance", "pid", "share", "batch", "wake", "version")
"""What of a registration's info the other servers keep: enough to
authorize a query (its shares) and to tell daemons apart."""


def storeFields(record):
    """
    The store's fields of a L{JobRecord} (see
    L{jobmon.server.cluster.store.JOB_FIELDS}), but for its owner and
    server.
    """
    info = {k: record.info[k] for k in _INFO_KEYS if k in record.info}
    batch = record.info.get("batch")
    return {
        "mode": record.mode,
        "host": record.host,
        "batch": batch if isinstance(batch, str) else "",
        "state": record.state,
        "registered": repr(float(record.registered)),
        "last_seen": repr(float(record.lastSeen)),
        "info": json.dumps(info, sort_keys=True),
        "udp_key": record.udpKey if record.mode == "udp" else "",
    }


def recordOf(fields):
    """
    A L{JobRecord} of a job another server holds, from its store fields:
    enough to authorize a query and list the job; it has no secret.
    """
    try:
        info = json.loads(fields.get("info") or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    return JobRecord(
        jobId=fields["job_id"],
        owner=fields["owner"],
        host=fields.get("host", ""),
        mode=fields.get("mode", ""),
        registered=_float(fields.get("registered")),
        lastSeen=_float(fields.get("last_seen")),
        wakeSecret="",
        info=info,
        state=fields.get("state", ""),
    )


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def _significant(old, new):
    """
    Whether the others need to hear of the change from C{old} to C{new}:
    not for a mere touch (a contact from the daemon).
    """
    return (
        old is None
        or old.wakeSecret != new.wakeSecret
        or old.state != new.state
        or old.host != new.host
        or old.mode != new.mode
        or old.owner != new.owner
    )


@implementer(IJobRegistry)
class MirroredRegistry:
    """
    An L{IJobRegistry} of this server's jobs that mirrors them into the
    cluster's store.

    @ivar node: the L{jobmon.server.cluster.node.ClusterNode}.
    @ivar reserveFor: seconds a removed job's id stays reserved for its
        owner, cluster-wide.
    """

    log = Logger()

    def __init__(self, node, reserveFor=0.0):
        self.node = node
        self.reserveFor = reserveFor
        self._local = MemoryJobRegistry()
        self._moving = set()

    # IJobRegistry

    def get(self, jobId):
        return self._local.get(jobId)

    def jobs(self):
        return self._local.jobs()

    def ofOwner(self, owner):
        return self._local.ofOwner(owner)

    def countOf(self, owner):
        return self._local.countOf(owner)

    def __len__(self):
        return len(self._local)

    def put(self, record):
        old = self._local.get(record.jobId)
        self._local.put(record)
        if _significant(old, record):
            fields = storeFields(record)
            if old is None or old.wakeSecret != record.wakeSecret:
                # A new registration: this server holds the job now.
                self._write(self.node.store.claimJob(
                    record.jobId, record.owner, self.node.serverId, fields,
                    replace=None), record.jobId)
            else:
                self._write(self.node.store.updateJob(
                    record.jobId, self.node.serverId, fields), record.jobId)

    def remove(self, jobId):
        record = self._local.remove(jobId)
        if record is not None and jobId not in self._moving:
            self._write(self.node.store.removeJob(
                jobId, self.node.serverId, self.reserveFor), jobId)
        return record

    # Moves

    def forget(self, jobId):
        """
        Remove a job that moved to another server: from this server only,
        not from the store, where its new holder wrote it.
        """
        self._moving.add(jobId)
        try:
            return self._local.remove(jobId)
        finally:
            self._moving.discard(jobId)

    def _write(self, d, jobId):
        def failed(failure):
            if not failure.check(StoreUnavailable):
                self.log.failure("cannot write job {job_id} to the cluster's store",
                                 failure, job_id=jobId)
            # Written again with the others once the store is back.
            self.node.markStale()

        d.addErrback(failed)
        return d

    @defer.inlineCallbacks
    def resync(self):
        """
        Write every job of this server into the store again (after the
        store was lost, or restarted empty).  A job that another server
        took meanwhile, or another owner holds, is given up here.

        @return: a L{Deferred} of the ids given up.
        """
        given = []
        store, me = self.node.store, self.node.serverId
        records = self._local.jobs()
        for start in range(0, len(records), RESYNC_BATCH):
            batch = records[start:start + RESYNC_BATCH]
            answers = yield defer.gatherResults([
                store.claimJob(r.jobId, r.owner, me, storeFields(r)) for r in batch
            ], consumeErrors=True)
            for record, (status, other) in zip(batch, answers):
                if status != "ok":
                    given.append((record.jobId, status, other))
        return given


RESYNC_BATCH = 500
"""Records written at once when a server writes all of its jobs again."""


class SharedEndedJobs(EndedJobs):
    """
    The jobs that went lately, remembered by this server and written to the
    store too, so that a query through any server says when and how its
    job went (to its owner and the admins), not "no such job".
    """

    def __init__(self, node, **kwargs):
        super().__init__(**kwargs)
        self.node = node

    def add(self, record, why, when, ended):
        job = super().add(record, why, when, ended)
        self.node.store.putValue("gone:" + record.jobId, goneValue(job),
                                 self.keepFor).addErrback(lambda f: None)
        return job


def goneValue(job):
    """
    An L{EndedJob} as the store keeps it.
    """
    return json.dumps({"owner": job.owner, "when": job.when, "why": job.why,
                       "ended": job.ended})


def goneOf(jobId, value):
    """
    The L{EndedJob} the store kept for C{jobId}, or L{None}.
    """
    try:
        kept = json.loads(value)
        return EndedJob(jobId, str(kept["owner"]), float(kept["when"]), str(kept["why"]),
                        bool(kept["ended"]))
    except (TypeError, ValueError, KeyError):
        return None

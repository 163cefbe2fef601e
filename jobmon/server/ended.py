"""
A bounded memory of the jobs that ended or went away, so that a query for
one says so, and when, rather than "no such job".

A job whose daemon unregistered it ended (L{jobmon.errors.JOB_ENDED}); one
whose wake channel closed or whose daemon fell silent went away
(L{jobmon.errors.JOB_GONE}) and may register again.  Only the job's owner
and the server's admins are told: for anyone else the job does not exist,
so the hub asks L{EndedJobs.get} only after it checked who is asking.

The memory is this server process's: a restarted server has forgotten
(the history database, C{--history}, keeps the jobs for their owners).
"""

from collections import OrderedDict

from attrs import frozen

from jobmon.errors import JOB_ENDED, JOB_GONE, JobMonError
from jobmon.times import utc

MAX_PER_OWNER = 1000
"""Ended jobs remembered for one owner; older ones are forgotten first."""

MAX_JOBS = 100_000
"""Ended jobs remembered in all."""

KEEP_FOR = 24 * 3600.0
"""Seconds an ended job is remembered."""


def formatTime(when):
    """
    A time for a person: C{2026-12-03 08:00:40 UTC}.

    @param when: seconds since the epoch.
    """
    return utc(when)


@frozen
class EndedJob:
    """
    A job that is no longer registered.

    @ivar jobId: its id.
    @ivar owner: the DN that had registered it.
    @ivar when: when it was removed, in seconds since the epoch.
    @ivar why: how it went (C{"unregistered"}, C{"wake channel closed"},
        C{"not polled for 180 s"}...).
    @ivar ended: whether its daemon unregistered it: the job ended (not
        merely lost).
    """

    jobId: str
    owner: str
    when: float
    why: str
    ended: bool

    def error(self):
        """
        What a query for the job fails with.

        @return: a L{JobMonError}: L{JOB_ENDED} or L{JOB_GONE}, saying
            when.
        """
        if self.ended:
            return JobMonError(
                JOB_ENDED, "job {} ended at {}".format(self.jobId, formatTime(self.when))
            )
        return JobMonError(
            JOB_GONE,
            "job {} went away at {} ({})".format(self.jobId, formatTime(self.when), self.why),
        )


class EndedJobs:
    """
    The jobs removed lately, at most C{maxPerOwner} per owner and C{maxJobs}
    in all, each for at most C{keepFor} seconds; the oldest go first.
    """

    def __init__(self, maxPerOwner=MAX_PER_OWNER, maxJobs=MAX_JOBS, keepFor=KEEP_FOR):
        self.maxPerOwner = maxPerOwner
        self.maxJobs = maxJobs
        self.keepFor = keepFor
        # Both in the order the jobs were removed: the oldest first.
        self._jobs = OrderedDict()
        self._byOwner = {}

    def add(self, record, why, when, ended):
        """
        Remember a job just removed.

        @param record: its last L{jobmon.server.registry.JobRecord}.
        @param why: how it went, as the log and audit say it.
        @param when: seconds since the epoch.
        @param ended: whether its daemon unregistered it.
        @return: the L{EndedJob} kept.
        """
        self.forget(record.jobId)
        job = EndedJob(record.jobId, record.owner, when, why, ended)
        self._jobs[job.jobId] = job
        owned = self._byOwner.setdefault(job.owner, OrderedDict())
        owned[job.jobId] = None
        if len(owned) > self.maxPerOwner:
            self.forget(next(iter(owned)))
        while len(self._jobs) > self.maxJobs:
            self.forget(next(iter(self._jobs)))
        return job

    def get(self, jobId):
        """
        The L{EndedJob} of C{jobId}, or L{None}.  The caller checks that
        whoever asks may know of it.
        """
        return self._jobs.get(jobId)

    def forget(self, jobId):
        """
        Forget C{jobId} (it is registered again); no error if unknown.
        """
        job = self._jobs.pop(jobId, None)
        if job is None:
            return
        owned = self._byOwner[job.owner]
        del owned[jobId]
        if not owned:
            del self._byOwner[job.owner]

    def expire(self, now):
        """
        Forget the jobs removed more than C{keepFor} seconds before C{now}.
        """
        limit = now - self.keepFor
        while self._jobs:
            oldest = next(iter(self._jobs.values()))
            if oldest.when >= limit:
                return
            self.forget(oldest.jobId)

    def __len__(self):
        return len(self._jobs)

"""
The pending-request table: user queries waiting for a job's result.

Each query gets a request id and a L{Deferred}.  The request waits in its
job's queue until the daemon fetches it, then runs until the daemon posts its
result, which fires the Deferred once.  Cancelling the Deferred (the user
went away, or the query timed out) removes the entry wherever it is.

The server uses the table only through L{IRequestTable}, so that a table
shared by several servers can replace this one.
"""

import itertools
import os

from attrs import define, field
from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer


class IRequestTable(Interface):
    """
    Queued and running requests, by job.
    """

    def submit(jobId, request):
        """
        Queue C{request} for C{jobId}.

        @return: C{(requestId, deferred)}; the Deferred fires with the
            result, or fails; cancelling it withdraws the request.
        """

    def take(jobId):
        """
        Return every queued request of C{jobId} as a list of
        C{(requestId, request)}, and mark them running.
        """

    def complete(jobId, requestId, result=None, failure=None):
        """
        End a request with a result or a failure.

        @return: whether someone was still waiting for it.
        """

    def failJob(jobId, failure):
        """
        End every request of C{jobId} with C{failure}.

        @return: the number of requests ended.
        """

    def failAll(failure):
        """
        End every request with C{failure}.
        """

    def queued(jobId):
        """
        Return the number of requests of C{jobId} not yet fetched.
        """

    def pending(jobId):
        """
        Return the number of requests of C{jobId}, queued or running.
        """

    def __len__():
        """
        Return the number of requests in the table.
        """


@define
class _Entry:
    jobId: str
    deferred: Deferred


@define
class _JobRequests:
    queue: dict = field(factory=dict)
    running: dict = field(factory=dict)


@implementer(IRequestTable)
class MemoryRequestTable:
    """
    An L{IRequestTable} in this process's memory.
    """

    def __init__(self):
        self._byJob = {}
        self._entries = {}
        # Request ids are unguessable within a server run: a prefix random
        # per process, and a counter.
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def submit(self, jobId, request):
        requestId = "{}-{}".format(self._prefix, next(self._counter))

        def cancel(d):
            self._discard(requestId)

        d = Deferred(cancel)
        self._entries[requestId] = _Entry(jobId, d)
        self._byJob.setdefault(jobId, _JobRequests()).queue[requestId] = request
        return requestId, d

    def _discard(self, requestId):
        entry = self._entries.pop(requestId, None)
        if entry is None:
            return None
        job = self._byJob.get(entry.jobId)
        if job is not None:
            job.queue.pop(requestId, None)
            job.running.pop(requestId, None)
            if not job.queue and not job.running:
                del self._byJob[entry.jobId]
        return entry

    def take(self, jobId):
        job = self._byJob.get(jobId)
        if job is None or not job.queue:
            return []
        taken = list(job.queue.items())
        job.running.update(job.queue)
        job.queue.clear()
        return taken

    def complete(self, jobId, requestId, result=None, failure=None):
        entry = self._entries.get(requestId)
        if entry is None or entry.jobId != jobId:
            return False
        self._discard(requestId)
        if failure is not None:
            entry.deferred.errback(failure)
        else:
            entry.deferred.callback(result)
        return True

    def failJob(self, jobId, failure):
        job = self._byJob.get(jobId)
        if job is None:
            return 0
        ids = list(job.queue) + list(job.running)
        for requestId in ids:
            self.complete(jobId, requestId, failure=failure)
        return len(ids)

    def failAll(self, failure):
        for jobId in list(self._byJob):
            self.failJob(jobId, failure)

    def queued(self, jobId):
        job = self._byJob.get(jobId)
        return len(job.queue) if job else 0

    def pending(self, jobId):
        job = self._byJob.get(jobId)
        return len(job.queue) + len(job.running) if job else 0

    def __len__(self):
        return len(self._entries)

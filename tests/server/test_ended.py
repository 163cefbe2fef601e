"""
Tests for L{jobmon.server.ended}: the bounded memory of jobs that ended or
went away, and what the hub tells whom about them.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.ended import EndedJobs, formatTime
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import JobRecord, MemoryJobRegistry

ALICE = Identity("/DC=org/DC=test/CN=Alice")
BOB = Identity("/DC=org/DC=test/CN=Bob")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")

# 2026-12-03 08:00:40 UTC
START = 1796284840.0


def record(jobId, owner=ALICE.dn):
    """
    A registration of C{jobId}.
    """
    return JobRecord(jobId, owner, "wn", "tcp", 0.0, 0.0, "secret")


class EndedJobsTests(SynchronousTestCase):
    """
    L{EndedJobs} remembers, within its bounds.
    """

    def test_endedOrGone(self):
        """
        A job its daemon unregistered ended; one lost went away; each says
        when, in UTC.
        """
        ended = EndedJobs()
        ended.add(record("a"), "unregistered", START, True)
        ended.add(record("b"), "wake channel closed", START + 1, False)
        a, b = ended.get("a").error(), ended.get("b").error()
        self.assertEqual((a.code, a.message),
                         (errors.JOB_ENDED, "job a ended at 2026-12-03 08:00:40 UTC"))
        self.assertEqual(
            (b.code, b.message),
            (errors.JOB_GONE, "job b went away at 2026-12-03 08:00:41 UTC (wake channel closed)"),
        )
        self.assertIsNone(ended.get("c"))
        self.assertEqual(formatTime(0), "1970-01-01 00:00:00 UTC")

    def test_boundedPerOwner(self):
        """
        One owner's oldest jobs are forgotten first past the per-owner
        bound; another owner's are kept.
        """
        ended = EndedJobs(maxPerOwner=2)
        ended.add(record("bob.1", BOB.dn), "unregistered", START, True)
        for i in range(4):
            ended.add(record("a.%d" % i), "unregistered", START + i, True)
        self.assertEqual([j for j in ("a.0", "a.1", "a.2", "a.3") if ended.get(j)],
                         ["a.2", "a.3"])
        self.assertIsNotNone(ended.get("bob.1"))
        self.assertEqual(len(ended), 3)

    def test_boundedInAll(self):
        """
        Past the global bound the oldest job goes, whoever owned it.
        """
        ended = EndedJobs(maxJobs=2)
        ended.add(record("b", BOB.dn), "unregistered", START, True)
        ended.add(record("a.1"), "unregistered", START + 1, True)
        ended.add(record("a.2"), "unregistered", START + 2, True)
        self.assertEqual(len(ended), 2)
        self.assertIsNone(ended.get("b"))
        self.assertEqual(ended._byOwner.keys(), {ALICE.dn})

    def test_expire(self):
        """
        Jobs removed longer ago than the memory keeps them are forgotten.
        """
        ended = EndedJobs(keepFor=100)
        ended.add(record("old"), "unregistered", START, True)
        ended.add(record("new"), "unregistered", START + 50, True)
        ended.expire(START + 120)
        self.assertIsNone(ended.get("old"))
        self.assertIsNotNone(ended.get("new"))
        ended.expire(START + 1000)
        self.assertEqual((len(ended), ended._byOwner), (0, {}))

    def test_endedAgain(self):
        """
        A job that ends again is remembered once, with its latest end.
        """
        ended = EndedJobs()
        ended.add(record("a"), "wake channel closed", START, False)
        ended.add(record("a"), "unregistered", START + 5, True)
        self.assertEqual(len(ended), 1)
        self.assertEqual(ended.get("a").when, START + 5)
        ended.forget("a")
        ended.forget("a")
        self.assertEqual((len(ended), ended._byOwner), (0, {}))


class HubEndedTests(SynchronousTestCase):
    """
    What the hub says of a job that ended, and to whom.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        self.hub = Hub(self.clock, self.registry, self.table,
                       HubConfig(admins=[ADMIN.dn], expireAfter=30))

    def poll(self, jobId="job.1", who=ALICE):
        """
        Register a poll-mode job.
        """
        self.hub.registerJob(who, jobId, {"host": "wn", "wake": "poll", "instance": "i"})

    def queryFault(self, who, jobId="job.1"):
        """
        The fault a query by C{who} gets at once.
        """
        e = self.assertRaises(JobMonError, self.hub.query, who, jobId, {"op": "ls"})
        return e.code, e.message

    def test_pendingFollowEnds(self):
        """
        A follow waiting when the job's daemon unregisters fails with "job
        ended", saying when, not with "job gone" or "no such job".
        """
        self.poll()
        d = self.hub.query(ALICE, "job.1", {"op": "follow", "path": "log"})
        self.clock.advance(2)
        self.hub.unregisterJob(ALICE, "job.1")
        e = self.failureResultOf(d, JobMonError).value
        self.assertEqual((e.code, e.message),
                         (errors.JOB_ENDED, "job job.1 ended at 2026-12-03 08:00:42 UTC"))

    def test_queryAfterEnd(self):
        """
        After the job ended its owner and the admins are told so, and when;
        anyone else is answered as for a job that never existed.
        """
        self.poll()
        self.clock.advance(5)
        self.hub.unregisterJob(ALICE, "job.1")
        ended = (errors.JOB_ENDED, "job job.1 ended at 2026-12-03 08:00:45 UTC")
        self.assertEqual(self.queryFault(ALICE), ended)
        self.assertEqual(self.queryFault(ADMIN), ended)
        self.assertEqual(self.queryFault(BOB),
                         (errors.NO_SUCH_JOB, "no job job.1 visible to you"))
        self.assertEqual(self.queryFault(BOB, "job.2"),
                         (errors.NO_SUCH_JOB, "no job job.2 visible to you"))
        self.assertEqual(self.hub.listJobs(ALICE), [])

    def test_wentAway(self):
        """
        A job dropped because its daemon fell silent went away (it may
        register again): a later query says so, and why.
        """
        self.poll()
        self.clock.advance(31)
        self.hub.cleanup()
        self.assertEqual(
            self.queryFault(ALICE),
            (errors.JOB_GONE,
             "job job.1 went away at 2026-12-03 08:01:11 UTC (not polled for 30 s)"),
        )

    def test_registeredAgain(self):
        """
        A job registered again is no longer ended: it is queried as usual.
        """
        self.poll()
        self.hub.unregisterJob(ALICE, "job.1")
        self.poll()
        d = self.hub.query(ALICE, "job.1", {"op": "ls"})
        self.assertNoResult(d)
        self.assertIsNone(self.hub.ended.get("job.1"))
        d.cancel()
        self.failureResultOf(d)

    def test_otherOwnerRegistersTheId(self):
        """
        When another user later registers the id (once it is no longer
        reserved for its first owner), her memory of it goes: she is not
        told the new job's state.
        """
        self.hub = Hub(self.clock, self.registry, self.table,
                       HubConfig(admins=[ADMIN.dn], expireAfter=30, reserveFor=60))
        self.poll()
        self.hub.unregisterJob(ALICE, "job.1")
        self.clock.advance(61)
        self.poll(who=BOB)
        self.assertEqual(self.queryFault(ALICE)[0], errors.NO_SUCH_JOB)

    def test_forgottenAfterADay(self):
        """
        The cleanup cycle forgets jobs that ended more than a day ago.
        """
        self.poll()
        self.hub.unregisterJob(ALICE, "job.1")
        self.clock.advance(24 * 3600 + 1)
        self.hub.cleanup()
        self.assertEqual(self.queryFault(ALICE)[0], errors.NO_SUCH_JOB)

"""
Tests for L{jobmon.server.history}: the SQLite job and query history.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.history import History
from jobmon.server.hub import Hub
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry

ALICE = Identity("/CN=Alice")
BOB = Identity("/CN=Bob")


def sync(f, *args):
    """
    The "database thread", at once.
    """
    return defer.maybeDeferred(f, *args)


class HistoryHubMixin:
    """
    A hub writing to a fresh history (its "database thread" run at once)
    on a clock at t=1000.
    """

    def setUp(self):
        self.path = self.mktemp() + ".sqlite3"
        self.clock = Clock()
        self.clock.advance(1000)
        self.history = History(self.path, self.clock, runInThread=sync)
        self.successResultOf(self.history.start())
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       history=self.history)


class HistoryTests(HistoryHubMixin, SynchronousTestCase):
    """
    The hub's events, written to SQLite and read back per user.
    """

    def test_jobsAndQueries(self):
        """
        A job's registration, its queries and its end are kept; each user
        sees only her own.
        """
        self.hub.registerJob(ALICE, "j1", {"host": "wn01", "wake": "poll", "batch": "slurm"})
        d = self.hub.query(ALICE, "j1", {"op": "tail", "path": "job.log", "lines": 5})
        self.clock.advance(0)
        [item] = self.hub.waitForWork(ALICE, "j1", 0)
        self.clock.advance(0.25)
        self.hub.outputJobResult(ALICE, "j1", item["id"], {"data": b"x" * 7})
        self.successResultOf(d)
        self.clock.advance(10)
        self.hub.unregisterJob(ALICE, "j1")
        self.clock.advance(0)
        result = self.successResultOf(self.hub.historyOf(ALICE))
        [job] = result["jobs"]
        self.assertEqual(
            (job["job_id"], job["host"], job["mode"], job["batch"], job["why"]),
            ("j1", "wn01", "poll", "slurm", "unregistered"),
        )
        self.assertEqual((job["registered"], job["ended"]), (1000.0, 1010.25))
        [query] = result["queries"]
        self.assertEqual(
            (query["op"], query["args"], query["outcome"], query["bytes"], query["time"]),
            ("tail", {"path": "job.log", "lines": 5}, "ok", 7.0, 1000.0),
        )
        self.assertEqual(self.successResultOf(self.hub.historyOf(BOB)),
                         {"jobs": [], "queries": []})

    def test_survivesRestart(self):
        """
        A new History on the same file sees what the old one wrote; a job
        still registered when the server stopped ended then, "server
        restarted".
        """
        self.hub.registerJob(ALICE, "j1", {"host": "wn01"})
        self.successResultOf(self.history.stop())
        self.clock.advance(5)
        again = History(self.path, self.clock, runInThread=sync)
        self.successResultOf(again.start())
        result = self.successResultOf(again.read(ALICE.dn))
        self.assertEqual([j["job_id"] for j in result["jobs"]], ["j1"])
        self.assertEqual((result["jobs"][0]["ended"], result["jobs"][0]["why"]),
                         (1005.0, "server restarted"))
        self.successResultOf(again.stop())

    def test_filtersAndLimits(self):
        """
        One job's history only, and at most C{limit} of each, newest last.
        """
        for i in range(5):
            self.clock.advance(1)
            self.hub.registerJob(ALICE, "j{}".format(i), {"host": "h"})
        result = self.successResultOf(self.hub.historyOf(ALICE, {"limit": 2}))
        self.assertEqual([j["job_id"] for j in result["jobs"]], ["j3", "j4"])
        result = self.successResultOf(self.hub.historyOf(ALICE, {"job_id": "j1"}))
        self.assertEqual([j["job_id"] for j in result["jobs"]], ["j1"])
        for bad in ({"limit": 0}, {"job_id": "a b"}, "x"):
            e = self.assertRaises(JobMonError, self.hub.historyOf, ALICE, bad)
            self.assertEqual(e.code, errors.BAD_REQUEST)

    def test_writeFailureLoses(self):
        """
        A database that cannot be written loses the events, counted and
        logged, and never raises into the hub.
        """
        def broken(f, *args):
            if f == self.history._write:
                return defer.fail(OSError(28, "No space left on device"))
            return defer.maybeDeferred(f, *args)

        self.history._runInThread = broken
        self.hub.registerJob(ALICE, "j1", {"host": "h"})
        self.clock.advance(self.history.flushInterval)
        self.assertEqual(self.history.lost, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_batchedByTime(self):
        """
        Queries wait up to C{flushInterval} seconds and are written together,
        in one transaction in the database's thread.
        """
        writes = []
        realWrite = self.history._write

        def write(rows):
            writes.append(len(rows))
            return realWrite(rows)

        self.history._write = write
        for i in range(3):
            self.history.record("query", dn=ALICE.dn, job_id="j1", op="ls", outcome="ok")
        self.clock.advance(self.history.flushInterval * 0.9)
        self.assertEqual(writes, [])
        self.clock.advance(self.history.flushInterval * 0.1)
        self.assertEqual(writes, [3])
        self.assertIsNone(self.history._flushing)
        self.assertEqual(len(self.history._read(ALICE.dn, None, 10)["queries"]), 3)

    def test_registrationsAtOnce(self):
        """
        A registration or a removal is written at the next reactor turn,
        with the queries waiting: the ids reserved across a restart, even
        after a kill, are read from them.
        """
        writes = []
        realWrite = self.history._write

        def write(rows):
            writes.append([kind for kind, _, _ in rows])
            return realWrite(rows)

        self.history._write = write
        self.history.record("query", dn=ALICE.dn, job_id="j1", op="ls", outcome="ok")
        self.hub.registerJob(ALICE, "j2", {"host": "h"})
        self.history.record("query", dn=ALICE.dn, job_id="j1", op="ls", outcome="ok")
        self.clock.advance(0)
        self.assertEqual(writes, [["query", "register", "query"]])
        self.hub.unregisterJob(ALICE, "j2")
        self.clock.advance(0)
        self.assertEqual(writes[1:], [["removed"]])
        self.assertIsNone(self.history._flushing)

    def test_batchedByCount(self):
        """
        C{flushRows} waiting events are written at once, without waiting
        for the interval; a read writes what waits before reading.
        """
        writes = []
        realWrite = self.history._write

        def write(rows):
            writes.append(len(rows))
            return realWrite(rows)

        self.history._write = write
        self.history.flushRows = 2
        for i in range(3):
            self.hub.registerJob(ALICE, "j{}".format(i), {"host": "h"})
        self.assertEqual(writes, [2])
        result = self.successResultOf(self.hub.historyOf(ALICE))
        self.assertEqual(writes, [2, 1])
        self.assertEqual([j["job_id"] for j in result["jobs"]], ["j0", "j1", "j2"])
        self.assertIsNone(self.history._flushing)

    def test_stopWritesPending(self):
        """
        A clean stop writes the events still waiting for their batch.
        """
        self.hub.registerJob(ALICE, "j1", {"host": "h", "wake": "poll"})
        d = self.hub.query(ALICE, "j1", {"op": "ls"})
        d.cancel()
        self.failureResultOf(d)
        self.successResultOf(self.history.stop())
        self.assertIsNone(self.history._flushing)
        again = History(self.path, self.clock, runInThread=sync)
        self.successResultOf(again.start())
        result = self.successResultOf(again.read(ALICE.dn))
        self.assertEqual(([j["job_id"] for j in result["jobs"]],
                          [q["outcome"] for q in result["queries"]]),
                         (["j1"], ["cancelled"]))
        self.successResultOf(again.stop())

    def test_prefix(self):
        """
        C{job_id} may be a prefix naming one of the caller's jobs, present
        or past, by the rules of the other commands: an exact id wins, a
        prefix of several is fault 404 naming them, and a prefix of none
        (or only of another user's jobs) finds nothing.
        """
        for jobId in ("5678.0", "90.0", "90.1", "90"):
            self.clock.advance(1)
            self.hub.registerJob(ALICE, jobId, {"host": "h"})
        self.hub.unregisterJob(ALICE, "5678.0")
        self.hub.unregisterJob(ALICE, "90.1")
        self.hub.registerJob(BOB, "1234.0", {"host": "h"})
        self.clock.advance(0)

        def jobs(who, jobId):
            result = self.successResultOf(self.hub.historyOf(who, {"job_id": jobId}))
            return [j["job_id"] for j in result["jobs"]]

        self.assertEqual(jobs(ALICE, "56"), ["5678.0"])
        self.assertEqual(jobs(ALICE, "90"), ["90"])
        self.assertEqual(jobs(ALICE, "90.1"), ["90.1"])
        self.assertEqual(jobs(ALICE, "12"), [])
        self.assertEqual(jobs(BOB, "12"), ["1234.0"])
        failure = self.failureResultOf(self.hub.historyOf(ALICE, {"job_id": "9"}), JobMonError)
        self.assertEqual(failure.value.code, errors.NO_SUCH_JOB)
        self.assertEqual(
            failure.value.message,
            "job id '9' is ambiguous: 3 of your jobs start with it: 90, 90.0, 90.1",
        )

    def test_prefixOfCurrentJob(self):
        """
        A job the history has not written yet (its registration still
        pending in the batch) is found by its prefix too.
        """
        self.hub.registerJob(ALICE, "4321.0", {"host": "h"})
        self.assertEqual(self.history._read(ALICE.dn, "43", 10, ["4321.0"])["jobs"], [])
        d = self.hub.historyOf(ALICE, {"job_id": "43"})
        self.assertEqual([j["job_id"] for j in self.successResultOf(d)["jobs"]], ["4321.0"])

    def test_outcomeWords(self):
        """
        Queries' outcomes are words: C{cancelled} for a query whose client
        went away, the fault's word for a failed one; rows written by older
        servers, which held the code, read back as words too.
        """
        self.hub.registerJob(ALICE, "j1", {"host": "h", "wake": "poll"})
        d = self.hub.query(ALICE, "j1", {"op": "follow", "path": "log"})
        d.cancel()
        self.failureResultOf(d)
        d = self.hub.query(ALICE, "j1", {"op": "ls"})
        [item] = self.hub.waitForWork(ALICE, "j1", 0)
        self.hub.outputJobResult(
            ALICE, "j1", item["id"], {"error": {"code": errors.REMOTE_TIMEOUT, "message": "x"}}
        )
        self.failureResultOf(d)
        self.clock.advance(0)
        with self.history._connection as c:
            c.execute("INSERT INTO queries (time, dn, job_id, op, outcome) VALUES "
                      "(2000, ?, 'j1', 'cat', '1099'), (2001, ?, 'j1', 'cat', 'ok')",
                      (ALICE.dn, ALICE.dn))
        result = self.successResultOf(self.hub.historyOf(ALICE))
        self.assertEqual([(q["op"], q["outcome"]) for q in result["queries"]], [
            ("follow", "cancelled"), ("ls", "daemon-timeout"), ("cat", "daemon-error"),
            ("cat", "ok"),
        ])

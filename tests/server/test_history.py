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


class HistoryTests(SynchronousTestCase):
    """
    The hub's events, written to SQLite and read back per user.
    """

    def setUp(self):
        self.path = self.mktemp() + ".sqlite3"
        self.clock = Clock()
        self.clock.advance(1000)
        self.history = History(self.path, self.clock, runInThread=sync)
        self.successResultOf(self.history.start())
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       history=self.history)

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
        self.clock.advance(0)
        self.assertEqual(self.history.lost, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

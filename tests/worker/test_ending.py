"""
The job's end on the worker: follows answer at once with the file's last
bytes, the daemon posts them before it unregisters, and what still runs is
cut short quietly (no traceback, no "unexpected error" for the user).
"""

import os

from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon.worker import daemon as daemonModule
from jobmon.worker.daemon import JobDaemon
from jobmon.worker.files import Workdir
from jobmon.worker.operations import Operations
from tests.worker.test_daemon import FakeEndpoint, FakeRPC, syncCall


def follow(offset, requestId="r1", wait=20):
    """
    A fetched C{follow} request for C{log.txt}.
    """
    return {"id": requestId,
            "request": {"op": "follow", "path": "log.txt", "offset": offset, "wait": wait}}


class EndingTestCase(SynchronousTestCase):
    """
    A working directory with C{log.txt} (8 bytes), and a L{Clock}.
    """

    def setUp(self):
        self.clock = Clock()
        self.workdir = self.mktemp()
        os.makedirs(self.workdir)
        self.log = os.path.join(self.workdir, "log.txt")
        with open(self.log, "wb") as f:
            f.write(b"one\ntwo\n")

    def operations(self, maxResult=1024, runInThread=syncCall):
        """
        L{Operations} on the working directory, "threads" run at once.
        """
        return Operations(self.clock, Workdir(self.workdir, maxResult=maxResult), None, None,
                          runInThread=runInThread, runCommand=object())

    def write(self, data):
        """
        The job writes to its log.
        """
        with open(self.log, "ab") as f:
            f.write(data)


class OperationsEndTests(EndingTestCase):
    """
    L{Operations.end}: follows answer at once.
    """

    def start(self, operations, offset=8):
        return defer.Deferred.fromCoroutine(
            operations.run({"op": "follow", "path": "log.txt", "offset": offset, "wait": 20})
        )

    def test_waitingFollowAnswers(self):
        """
        A follow waiting for its file to grow looks once more when the job
        ends and answers at once, with what the job wrote last, saying
        C{ended}; no timer is left.
        """
        operations = self.operations()
        d = self.start(operations)
        self.clock.advance(1)
        self.assertNoResult(d)
        self.write(b"last\n")
        operations.end()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result["ended"]), (b"last\n", True))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_followAfterEnd(self):
        """
        A follow that comes after the end answers at once, even with
        nothing new.
        """
        operations = self.operations()
        operations.end()
        result = self.successResultOf(self.start(operations))
        self.assertEqual((result["data"], result["ended"], result["next_offset"]),
                         (b"", True, 8.0))

    def test_lookDuringEnd(self):
        """
        A look begun before the end may have missed the job's last bytes:
        one with nothing new is followed by another, which says C{ended};
        one with bytes answers with them, without C{ended} (the follower
        asks again).
        """
        looks = []

        def held(f, *args):
            d = defer.Deferred()
            looks.append((f, args, d))
            return d

        def finish():
            f, args, d = looks.pop()
            d.callback(f(*args))

        operations = self.operations(runInThread=held)
        d = self.start(operations)
        operations.end()
        finish()
        self.assertNoResult(d)
        self.write(b"last\n")
        finish()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result.get("ended")), (b"last\n", True))

        operations = self.operations(runInThread=held)
        d = self.start(operations, 13)
        operations.end()
        self.write(b"more\n")
        finish()
        result = self.successResultOf(d)
        self.assertEqual((result["data"], result.get("ended")), (b"more\n", None))
        self.assertEqual(looks, [])

    def test_cancelledFollowLeavesNoTimer(self):
        """
        A follow cut short (its time limit) leaves no timer behind.
        """
        operations = self.operations()
        d = self.start(operations)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        operations.end()


class DaemonEndCase(EndingTestCase):
    """
    A TCP or poll L{JobDaemon} against a fake server.
    """

    def setUp(self):
        super().setUp()
        self.rpc = FakeRPC()
        self.connections = []
        self.rpc.answers = {
            "jobmon.registerJob": lambda jobId, info: {
                "job_id": jobId, "wake": {"mode": info["wake"], "port": 9999, "token": "tok",
                                          "max_wait": 50},
                "keepalive": 10,
            },
            "jobmon.getJobToDo": [],
            "jobmon.outputJobResult": True,
            "jobmon.unregisterJob": True,
        }
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def daemon(self, mode="tcp", operations=None):
        return JobDaemon(
            self.clock, "job.7", "https://server/RPC2", self.rpc,
            operations or self.operations(), lambda port: FakeEndpoint(self),
            {"host": "wn"}, mode=mode,
            retryPolicy=backoffPolicy(initialDelay=1, maxDelay=4, jitter=lambda: 0),
        )

    def startTCP(self, operations=None):
        """
        Start a TCP daemon and welcome its wake channel.
        """
        daemon = self.daemon(operations=operations)
        daemon.startService()
        protocol, transport = self.connections[-1]
        protocol.dataReceived(b'{"type":"welcome","keepalive":10}\n')
        return daemon, protocol

    def wake(self, protocol, *items):
        self.rpc.answers["jobmon.getJobToDo"] = list(items)
        protocol.dataReceived(b'{"type":"wake"}\n')
        self.rpc.answers["jobmon.getJobToDo"] = []

    def posts(self):
        return [c[3] for c in self.rpc.calls if c[0] == "jobmon.outputJobResult"]

    def assertQuiet(self):
        """
        Nothing worse than an info line was logged.
        """
        bad = [e for e in self.events if e["log_level"] > LogLevel.info]
        self.assertEqual(bad, [])


class DaemonEndTests(DaemonEndCase):
    """
    L{JobDaemon.stopService}: the job ended.
    """

    def test_followFlushedBeforeUnregister(self):
        """
        A follow waiting when the job ends is answered at once with the
        job's last bytes, posted before the job is unregistered: no wait
        for its time limit, no timer left.
        """
        daemon, protocol = self.startTCP()
        self.wake(protocol, follow(8))
        self.clock.advance(2)
        self.assertEqual(self.posts(), [])
        self.write(b"the end\n")
        d = daemon.stopService()
        [post] = self.posts()
        self.assertEqual((post["data"], post["ended"]), (b"the end\n", True))
        methods = self.rpc.methods()
        self.assertEqual(methods[-2:], ["jobmon.outputJobResult", "jobmon.unregisterJob"])
        protocol.connectionLost(None)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertQuiet()

    def test_followerComesBack(self):
        """
        A last answer cut by the result cap: the daemon waits briefly for
        the follower to ask for the rest, serves it, then unregisters.
        """
        daemon, protocol = self.startTCP(self.operations(maxResult=4))
        self.wake(protocol, follow(8))
        self.write(b"three\n")
        d = daemon.stopService()
        [post] = self.posts()
        self.assertEqual((post["data"], post["ended"], post["truncated"]),
                         (b"thre", True, True))
        self.assertNotIn("jobmon.unregisterJob", self.rpc.methods())
        self.clock.advance(0.1)
        self.wake(protocol, follow(12, "r2"))
        self.assertEqual([(p["data"], p["truncated"]) for p in self.posts()],
                         [(b"thre", True), (b"e\n", False)])
        self.assertNotIn("jobmon.unregisterJob", self.rpc.methods())
        self.clock.advance(daemonModule.COME_BACK)
        self.assertEqual(self.rpc.methods()[-1], "jobmon.unregisterJob")
        protocol.connectionLost(None)
        self.successResultOf(d)
        self.assertQuiet()

    def test_slowOpCutQuietly(self):
        """
        An op still running after the drain (a hung file system) is cut
        short once the job is unregistered: no traceback, no error posted
        (the server told the user that the job ended).
        """
        hung = defer.Deferred()
        operations = self.operations(runInThread=lambda f, *a: hung)
        daemon, protocol = self.startTCP(operations)
        self.wake(protocol, {"id": "r1", "request": {"op": "ls"}})
        d = daemon.stopService()
        self.assertNotIn("jobmon.unregisterJob", self.rpc.methods())
        self.clock.advance(daemonModule.STOP_DRAIN)
        self.assertEqual(self.rpc.methods()[-1], "jobmon.unregisterJob")
        protocol.connectionLost(None)
        self.successResultOf(d)
        self.assertEqual(self.posts(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertQuiet()

    def test_pollUnregistersAtOnce(self):
        """
        A poll daemon whose follow waits when the job ends posts its last
        answer and unregisters at once, then lets go of its pending poll.
        """
        self.rpc.answers["jobmon.waitForWork"] = "hang"
        daemon = self.daemon("poll")
        daemon.startService()
        self.rpc.pending.pop().callback([follow(8)])
        self.assertEqual(self.rpc.methods()[-1], "jobmon.waitForWork")
        self.clock.advance(3)
        d = daemon.stopService()
        self.assertEqual(self.rpc.methods()[-2:],
                         ["jobmon.outputJobResult", "jobmon.unregisterJob"])
        self.assertTrue(self.posts()[0]["ended"])
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertQuiet()

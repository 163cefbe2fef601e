"""
Tests for L{jobmon.worker.operations}: dispatch, waiting ops on a L{Clock}, and
time limits.
"""

from attrs import frozen
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.worker.operations import FOLLOW_CHECK_INTERVAL, Operations, runWithTimeout


def syncCall(f, *args):
    """
    Run a "thread" call at once.
    """
    return defer.maybeDeferred(f, *args)


class FakeWorkdir:
    """
    A workdir whose followed file grows when the test says so.
    """

    root = "/work"
    maxResult = 1000

    def __init__(self):
        self.data = b""
        self.calls = []

    def run(self, request):
        self.calls.append(request)
        return {"op": request["op"]}

    def checkFollow(self, request):
        return request["path"], request.get("offset", 0), request.get("inode"), request.get(
            "wait", 10
        )

    def followOnce(self, path, offset, inode):
        self.calls.append(("follow", offset))
        new = self.data[offset:]
        return {
            "path": path,
            "data": new,
            "offset": float(offset),
            "next_offset": float(offset + len(new)),
            "rotated": False,
            "missing": False,
        }


class FakeProcesses:
    """
    Records top's two phases.
    """

    def __init__(self):
        self.calls = []

    def topStart(self):
        self.calls.append("start")
        return "token"

    def topFinish(self, token):
        self.calls.append(("finish", token))
        return {"processes": []}

    def sendSignal(self, name, allowed):
        if name not in allowed:
            raise JobMonError(errors.NOT_ALLOWED, "signal {} is not allowed".format(name))
        return {"signal": name, "pid": 42}


@frozen
class FakePrepared:
    name: str = "diag"
    argv: tuple = ("diag", "x")
    timeout: float = 100
    maxOutput: int = 10**9


class FakeCommands:
    def prepare(self, name, args):
        if name != "diag":
            raise JobMonError(errors.NO_SUCH_COMMAND, "no command")
        return FakePrepared()

    def describe(self, recheck=False):
        return [{"name": "diag", "rechecked": recheck}]


class OperationsTests(SynchronousTestCase):
    """
    Drive L{Operations} with fakes.
    """

    def setUp(self):
        self.clock = Clock()
        self.workdir = FakeWorkdir()
        self.processes = FakeProcesses()
        self.ran = []

        def runCommand(reactor, prepared, cwd):
            self.ran.append((prepared.argv, cwd, prepared.maxOutput))
            return defer.succeed({"exit_code": 0})

        self.ops = Operations(
            self.clock,
            self.workdir,
            self.processes,
            FakeCommands(),
            allowedSignals={"USR1"},
            runInThread=syncCall,
            runCommand=runCommand,
        )

    def perform(self, request):
        return defer.Deferred.fromCoroutine(self.ops.run(request))

    def test_fileOps(self):
        """
        File ops go to the workdir in one call.
        """
        for op in ("ls", "stat", "cat", "head", "tail", "du", "df"):
            self.assertEqual(self.successResultOf(self.perform({"op": op})), {"op": op})

    def test_unknownOp(self):
        """
        An op this daemon does not know is reported as unsupported.
        """
        for op in ("rm", None, 3, "__init__", "timeoutFor"):
            failure = self.failureResultOf(self.perform({"op": op}), JobMonError)
            self.assertEqual(failure.value.code, errors.UNSUPPORTED_OP)

    def test_followWaitsForData(self):
        """
        C{follow} looks again every quarter second and returns as soon as
        the file has grown.
        """
        d = self.perform({"op": "follow", "path": "log", "offset": 0, "wait": 10})
        self.assertNoResult(d)
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertNoResult(d)
        self.workdir.data = b"new line\n"
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(self.successResultOf(d)["data"], b"new line\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_followCarriesInode(self):
        """
        A look with no data passes its inode on to the next look, so a
        replacement during the wait is seen as a rotation.
        """
        seen = []

        def followOnce(path, offset, inode):
            seen.append(inode)
            return {"data": b"", "next_offset": float(offset), "inode": "1:2",
                    "rotated": False}

        self.workdir.followOnce = followOnce
        d = self.perform({"op": "follow", "path": "log", "wait": 1})
        self.clock.pump([FOLLOW_CHECK_INTERVAL] * 4)
        self.successResultOf(d)
        self.assertEqual(seen[:2], [None, "1:2"])

    def test_followTimesOut(self):
        """
        With no new data, C{follow} returns empty after its wait.
        """
        d = self.perform({"op": "follow", "path": "log", "offset": 0, "wait": 2})
        self.clock.pump([FOLLOW_CHECK_INTERVAL] * 7)
        self.assertNoResult(d)
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        self.assertEqual(self.successResultOf(d)["data"], b"")
        self.assertLessEqual(len(self.workdir.calls), 9)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_top(self):
        """
        C{top} primes, waits the interval on the clock, then reads.
        """
        d = self.perform({"op": "top", "interval": 2})
        self.assertEqual(self.processes.calls, ["start"])
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), {"processes": []})
        self.assertEqual(self.processes.calls, ["start", ("finish", "token")])

    def test_runAndCommands(self):
        """
        C{run} prepares the command and runs it in the workdir; C{commands}
        lists the table.
        """
        self.assertEqual(
            self.successResultOf(self.perform({"op": "run", "name": "diag", "args": ["x"]})),
            {"exit_code": 0},
        )
        # The output cap is clamped so both streams fit in one result.
        self.assertEqual(self.ran, [(("diag", "x"), "/work", 500)])
        self.assertEqual(
            self.successResultOf(self.perform({"op": "commands"})),
            {"commands": [{"name": "diag", "rechecked": True}], "signals": ["USR1"]},
        )
        self.ops.allowedSignals = frozenset({"USR1", "TERM"})
        self.assertEqual(self.successResultOf(self.perform({"op": "commands"}))["signals"],
                         ["TERM", "USR1"])

    def test_commandsInThread(self):
        """
        C{commands} looks at the programs again in a thread, not in the
        reactor's: the file system may hang.
        """
        calls = []

        def runInThread(f, *args):
            calls.append((f, args))
            return defer.maybeDeferred(f, *args)

        self.ops._runInThread = runInThread
        self.successResultOf(self.perform({"op": "commands"}))
        self.assertEqual(calls, [(self.ops.commands.describe, (True,))])

    def test_runReadsRootInThread(self):
        """
        C{run} reads the working directory's root, which resolves it on the
        file system the first time, in a thread rather than the reactor's.
        """
        inThread = []

        class Workdir(FakeWorkdir):
            @property
            def root(self):
                if not inThread:
                    raise AssertionError("root read in the reactor thread")
                return "/work"

        def runInThread(f, *args):
            inThread.append(True)
            try:
                return defer.maybeDeferred(f, *args)
            finally:
                inThread.pop()

        self.ops.workdir = Workdir()
        self.ops._runInThread = runInThread
        self.successResultOf(self.perform({"op": "run", "name": "diag", "args": ["x"]}))
        self.assertEqual(self.ran, [(("diag", "x"), "/work", 500)])

    def test_signal(self):
        """
        C{signal} passes the allowed set; a bad value is a bad request.
        """
        self.assertEqual(
            self.successResultOf(self.perform({"op": "signal", "signal": "USR1"})),
            {"signal": "USR1", "pid": 42},
        )
        failure = self.failureResultOf(self.perform({"op": "signal", "signal": "TERM"}), JobMonError)
        self.assertEqual(failure.value.code, errors.NOT_ALLOWED)
        failure = self.failureResultOf(self.perform({"op": "signal", "signal": 9}), JobMonError)
        self.assertEqual(failure.value.code, errors.BAD_REQUEST)

    def test_timeouts(self):
        """
        Every op has a limit; a command's own limit (plus a margin) wins
        when longer.
        """
        self.assertEqual(self.ops.timeoutFor({"op": "ls"}), 30.0)
        self.assertEqual(self.ops.timeoutFor({"op": "run", "name": "diag"}), 108)
        self.assertEqual(self.ops.timeoutFor({"op": "run", "name": "nope"}), 30.0)
        self.ops._runInThread = lambda f, *a: defer.Deferred()
        d = runWithTimeout(self.ops, {"op": "ls"})
        self.clock.advance(30)
        self.failureResultOf(d, defer.TimeoutError)


class CapProcessesTests(SynchronousTestCase):
    """
    Tests for L{jobmon.worker.operations.capProcesses}.
    """

    def test_underTheCap(self):
        """
        A small result is left alone.
        """
        from jobmon.worker.operations import capProcesses

        result = {"processes": [{"pid": 1, "cmdline": "sleep 1"}], "truncated": False}
        self.assertEqual(capProcesses(result, 10000)["truncated"], False)

    def test_shortenThenDrop(self):
        """
        Long command lines are shortened first; if that is not enough,
        processes at the end are left out; either way C{truncated} is set.
        """
        from jobmon.worker.operations import PROCESS_OVERHEAD, capProcesses

        procs = [{"pid": i, "cmdline": "x" * 5000} for i in range(10)]
        result = capProcesses({"processes": procs, "truncated": False},
                              10 * (PROCESS_OVERHEAD + 1024))
        self.assertTrue(result["truncated"])
        self.assertEqual(len(result["processes"]), 10)
        self.assertTrue(all(len(p["cmdline"]) == 1024 for p in result["processes"]))
        result = capProcesses({"processes": [dict(p) for p in procs], "truncated": False},
                              3 * (PROCESS_OVERHEAD + 64))
        self.assertEqual(len(result["processes"]), 3)

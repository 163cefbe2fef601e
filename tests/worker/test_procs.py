"""
Tests for L{jobmon.worker.procs}: the C{ps}, C{top}, C{res}, C{env} and C{signal}
operations, on real process trees that each test builds and tears down.

Every process a test starts is stopped in its cleanup, children first: a
tree's parent reaps its children, so no zombie is left to an init that may
not reap.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.errors import BAD_REQUEST, NOT_ALLOWED, REMOTE_ERROR, JobMonError
from jobmon.worker import procs
from jobmon.worker.procs import (
    JobProcesses,
    TopSample,
    checkTop,
    parseSignalNames,
    treeOrder,
)
from jobmon.worker.redaction import (
    DEFAULT_REDACT,
    DEFAULT_REDACT_WORDS,
    REDACTED,
    redact,
)

WAIT = 10
"""Seconds a test waits for processes to start or stop."""

SLEEP = ["sleep", "600"]
"""A child that sleeps (longer than any test: cleanup stops it)."""

BUSY = [sys.executable, "-c", "while True: pass"]
"""A child that keeps a CPU busy."""

PARENT = r"""
import json, os, signal, subprocess, sys, time
kids = []
def stop(signum, frame):
    # Stop the children and reap them, so that none is left to init.
    for kid in kids:
        try:
            kid.terminate()
        except OSError:
            pass
    for kid in kids:
        try:
            kid.wait()
        except ChildProcessError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
for argv in json.loads(sys.argv[1]):
    kids.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))
while True:
    try:
        os.wait()  # Reap a child a test kills: it vanishes at once.
    except ChildProcessError:
        time.sleep(1)
"""
"""A tree's parent: it starts the children whose argv lists it is given
(as JSON), reaps them as they die, and on SIGTERM stops them and exits."""


def parentArgv(children):
    """
    The argv of a tree parent (L{PARENT}) starting C{children}.
    """
    return [sys.executable, "-c", PARENT, json.dumps(children)]


def poll(condition, what):
    """
    Wait, a bounded time, until C{condition()} is true.

    @raise AssertionError: naming C{what} if it does not come true.
    """
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def exited(pid):
    """
    Tell whether child C{pid} of this process has exited, without reaping it
    (its pid and process group stay reserved until it is reaped).
    """
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class ProcessMixin:
    """
    Start processes for a test, and stop them in its cleanup.
    """

    def spawn(self, argv, env=None):
        """
        Start C{argv} in a session of its own, stopped and reaped in the
        test's cleanup.
        """
        child = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.addCleanup(self._stop, child)
        return child

    def _stop(self, child):
        """
        Stop a process started by L{spawn}: SIGTERM (a tree parent then stops
        and reaps its children), then SIGKILL to its whole process group for
        anything left, then reap it.
        """
        if child.returncode is not None:
            return  # The test reaped it.
        if not exited(child.pid):
            child.terminate()
        try:
            poll(lambda: exited(child.pid), "process %d to exit" % (child.pid,))
        finally:
            # Still unreaped, so its process group id cannot be reused yet.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()

    def spawnTree(self, children, env=None):
        """
        Start a tree parent with C{children} (argv lists; a nested tree is
        given by L{parentArgv}) and wait until every process of the tree has
        started its program.

        @param children: argv lists of the parent's children.
        @param env: the parent's environment.
        @return: C{(parent, descendants)}: the parent's C{Popen}, and the
            psutil processes under it.
        """
        parent = self.spawn(parentArgv(children), env)
        wanted = sorted(self._descendantArgvs(children))
        root = psutil.Process(parent.pid)
        found = []

        def ready():
            try:
                found[:] = root.children(recursive=True)
                argvs = sorted(p.cmdline() for p in found)
            except psutil.NoSuchProcess:
                return False
            return argvs == wanted

        poll(ready, "the process tree to start")
        return parent, found

    def _descendantArgvs(self, children):
        """
        The argv lists of all the descendants of a tree parent given
        C{children}, nested trees included.
        """
        for argv in children:
            yield argv
            if argv[:3] == [sys.executable, "-c", PARENT]:
                yield from self._descendantArgvs(json.loads(argv[3]))

    def spawnSleeper(self, env=None):
        """
        Start one sleeping process with no children.
        """
        child = self.spawn(SLEEP, env)
        poll(
            lambda: psutil.Process(child.pid).cmdline() == SLEEP,
            "sleep to start",
        )
        return child

    def deadPid(self):
        """
        The pid of a process that has exited and been reaped.
        """
        child = subprocess.Popen(["true"])
        child.wait()
        return child.pid


def byPid(result):
    """
    The process structs of a C{ps} or C{top} result, by pid.
    """
    return {p["pid"]: p for p in result["processes"]}


class TreeOrderTests(SynchronousTestCase):
    """
    Tests for L{treeOrder}.
    """

    def test_depthFirst(self):
        """
        Each process comes right after its parent's earlier subtrees:
        parent first, then each child's whole subtree, children by pid.
        """
        parents = {30: 1, 20: 1, 21: 20, 22: 20, 40: 21, 10: 1}
        self.assertEqual(treeOrder(1, parents), [1, 10, 20, 21, 40, 22, 30])

    def test_orphans(self):
        """
        Processes whose parent is unknown (reparented meanwhile) follow the
        root's tree, by pid, each with its own subtree.
        """
        parents = {2: 1, 9: 100, 5: 101, 6: 5, 7: None}
        self.assertEqual(treeOrder(1, parents), [1, 2, 5, 6, 7, 9])

    def test_cycle(self):
        """
        A cycle of parents, which pid reuse can make, still lists each of
        its processes once.
        """
        self.assertEqual(treeOrder(1, {2: 3, 3: 2, 4: 1}), [1, 4, 2, 3])

    @given(st.lists(st.integers(0, 50), min_size=0, max_size=40))
    def test_treeProperties(self, choices):
        """
        For any tree: every process is listed once, the root first, each
        process after its parent, and siblings by increasing pid.
        """
        parents = {}
        pids = [1]
        for index, choice in enumerate(choices):
            pid = 1000 - 7 * index  # pids not in creation order
            parents[pid] = pids[choice % len(pids)]
            pids.append(pid)
        order = treeOrder(1, parents)
        self.assertEqual(sorted(order), sorted(pids))
        self.assertEqual(order[0], 1)
        position = {pid: i for i, pid in enumerate(order)}
        for pid, ppid in parents.items():
            self.assertLess(position[ppid], position[pid])
        for ppid in set(parents.values()):
            siblings = [pid for pid in order if parents.get(pid) == ppid]
            self.assertEqual(siblings, sorted(siblings))


class ConstructorTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for the construction of L{JobProcesses}.
    """

    def test_defaults(self):
        """
        By default the root is the parent of this process (the daemon's
        parent, the job wrapper) and the daemon is this process.
        """
        jobs = JobProcesses()
        self.assertEqual(jobs.rootPid, os.getppid())
        self.assertEqual(jobs.daemonPid, os.getpid())
        self.assertEqual(jobs.maxProcesses, procs.DEFAULT_MAX_PROCESSES)

    def test_noIO(self):
        """
        Construction does not look at the process: a pid that does not exist
        is accepted until an operation runs.
        """
        jobs = JobProcesses(rootPid=self.deadPid())
        self.assertIsInstance(jobs, JobProcesses)

    def test_invalid(self):
        """
        Pids and the process cap must be positive ints: a pid of 0 or -1
        would make C{kill} signal a whole process group, or everyone.
        """
        for bad in (0, -1, True, "12", 1.5, None):
            self.assertRaises(ValueError, JobProcesses, rootPid=bad)
            self.assertRaises(ValueError, JobProcesses, daemonPid=bad)
            self.assertRaises(ValueError, JobProcesses, maxProcesses=bad)


class PsTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for L{JobProcesses.ps}.
    """

    def test_treeOrder(self):
        """
        C{ps} lists the root, then each child's subtree, children by pid.
        """
        nested = parentArgv([SLEEP])
        parent, found = self.spawnTree([SLEEP, nested, SLEEP])
        kids = sorted(p.pid for p in found if p.ppid() == parent.pid)
        middle = [p.pid for p in found if p.cmdline() == nested][0]
        grandchild = [p.pid for p in found if p.ppid() == middle][0]
        expected = [parent.pid]
        for kid in kids:
            expected.append(kid)
            if kid == middle:
                expected.append(grandchild)

        result = JobProcesses(parent.pid, os.getpid()).ps()

        self.assertEqual([p["pid"] for p in result["processes"]], expected)
        self.assertEqual(result["root"], parent.pid)
        self.assertIs(result["truncated"], False)
        ppids = {p["pid"]: p["ppid"] for p in result["processes"]}
        self.assertEqual(ppids[grandchild], middle)
        self.assertEqual(ppids[kids[0]], parent.pid)

    def test_fields(self):
        """
        Each process struct has the fields of C{docs/API.md}, with sizes and
        times as floats (XML-RPC ints are 32-bit).
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        result = JobProcesses(parent.pid, os.getpid()).ps()
        self.assertEqual(len(result["processes"]), 3)
        me = psutil.Process().username()
        for p in result["processes"]:
            self.assertEqual(
                set(p),
                {"pid", "ppid", "user", "state", "cpu_percent", "rss", "vms",
                 "elapsed", "threads", "name", "cmdline", "daemon"},
            )
            self.assertIsInstance(p["pid"], int)
            self.assertIsInstance(p["ppid"], int)
            self.assertEqual(p["user"], me)
            self.assertIn(p["state"], ("sleeping", "running", "disk-sleep"))
            for name in ("cpu_percent", "rss", "vms", "elapsed"):
                self.assertIsInstance(p[name], float)
            self.assertGreater(p["rss"], 0)
            self.assertGreaterEqual(p["vms"], p["rss"])
            self.assertTrue(0 <= p["elapsed"] < 300, p["elapsed"])
            self.assertIsInstance(p["threads"], int)
            self.assertGreaterEqual(p["threads"], 1)
            self.assertIs(p["daemon"], False)
        sleeper = result["processes"][1]
        self.assertEqual(sleeper["name"], "sleep")
        self.assertEqual(sleeper["cmdline"], "sleep 600")
        self.assertEqual(sleeper["ppid"], parent.pid)

    def test_daemonFlag(self):
        """
        The process whose pid is the daemon's is marked, and only it.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        daemon = found[0].pid
        result = JobProcesses(parent.pid, daemon).ps()
        flags = {p["pid"]: p["daemon"] for p in result["processes"]}
        self.assertEqual([pid for pid, flag in flags.items() if flag], [daemon])

    def test_vanishedBetweenCalls(self):
        """
        A process that exits between two calls is simply left out of the
        second.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        jobs = JobProcesses(parent.pid, os.getpid())
        self.assertEqual(len(jobs.ps()["processes"]), 3)
        victim = found[0].pid
        os.kill(victim, signal.SIGKILL)
        poll(lambda: not psutil.pid_exists(victim), "the child to be reaped")
        result = byPid(jobs.ps())
        self.assertEqual(set(result), {parent.pid, found[1].pid})

    def test_vanishedWhileRead(self):
        """
        A process that exits while its fields are read
        (C{NoSuchProcess}) is left out; the others are listed.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        victim = found[0].pid
        original = psutil.Process.num_threads

        def num_threads(proc):
            if proc.pid == victim:
                raise psutil.NoSuchProcess(victim)
            return original(proc)

        self.patch(psutil.Process, "num_threads", num_threads)
        result = byPid(JobProcesses(parent.pid, os.getpid()).ps())
        self.assertEqual(set(result), {parent.pid, found[1].pid})

    def test_accessDenied(self):
        """
        A field the system refuses to show (C{AccessDenied}), or a zombie no
        longer has (C{ZombieProcess}), gets a default value: the process is
        still listed.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        victim = found[0].pid
        originals = {
            name: getattr(psutil.Process, name)
            for name in ("username", "cmdline", "num_threads")
        }

        def refusing(name, error):
            def method(proc):
                if proc.pid == victim:
                    raise error(victim)
                return originals[name](proc)

            return method

        self.patch(psutil.Process, "username", refusing("username", psutil.AccessDenied))
        self.patch(psutil.Process, "cmdline", refusing("cmdline", psutil.ZombieProcess))
        self.patch(
            psutil.Process, "num_threads", refusing("num_threads", psutil.AccessDenied)
        )
        result = byPid(JobProcesses(parent.pid, os.getpid()).ps())
        self.assertEqual(len(result), 3)
        self.assertEqual(result[victim]["user"], "")
        self.assertEqual(result[victim]["cmdline"], "")
        self.assertEqual(result[victim]["threads"], 0)
        self.assertEqual(result[victim]["name"], "sleep")
        self.assertEqual(result[found[1].pid]["cmdline"], "sleep 600")

    def test_truncated(self):
        """
        Beyond C{maxProcesses} processes, the first ones in tree order are
        kept and the result says it was truncated.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        result = JobProcesses(parent.pid, os.getpid(), maxProcesses=2).ps()
        self.assertIs(result["truncated"], True)
        self.assertEqual(
            [p["pid"] for p in result["processes"]],
            [parent.pid, min(p.pid for p in found)],
        )

    def test_longCommandLine(self):
        """
        A command line is cut to C{MAX_CMDLINE} characters.
        """
        argv = ["sleep", "600"] + ["x" * 100] * 100
        parent, found = self.spawnTree([SLEEP])
        original = psutil.Process.cmdline
        self.patch(
            psutil.Process,
            "cmdline",
            lambda proc: argv if proc.pid == found[0].pid else original(proc),
        )
        cmdline = byPid(JobProcesses(parent.pid).ps())[found[0].pid]["cmdline"]
        self.assertEqual(len(cmdline), procs.MAX_CMDLINE)
        self.assertTrue(cmdline.startswith("sleep 600 xxx"))
        self.assertTrue(cmdline.endswith("..."))

    def test_cpuPercent(self):
        """
        On the first call C{cpu_percent} is each process's average since it
        started (psutil alone would say 0.0); on the next, its use since
        the previous call.
        """
        parent, found = self.spawnTree([SLEEP, BUSY])
        busy = [p.pid for p in found if p.cmdline() == BUSY][0]
        sleeper = [p.pid for p in found if p.cmdline() == SLEEP][0]
        jobs = JobProcesses(parent.pid, os.getpid())
        time.sleep(0.3)
        for attempt in range(2):
            result = byPid(jobs.ps())
            self.assertGreater(result[busy]["cpu_percent"], 20)
            self.assertLess(result[sleeper]["cpu_percent"], 5)
            time.sleep(0.5)

    def test_elapsedPrecise(self):
        """
        A process's C{elapsed} is precise to well under a second (the wall
        clock and the boot time in whole seconds would be up to a second
        off, and a young process's CPU average with it).
        """
        before = time.monotonic()
        sleeper = self.spawnSleeper()
        result = JobProcesses(sleeper.pid, os.getpid()).ps()
        age = time.monotonic() - before
        elapsed = result["processes"][0]["elapsed"]
        self.assertTrue(0 <= elapsed <= age + 0.05, (elapsed, age))

    if not sys.platform.startswith("linux"):
        test_elapsedPrecise.skip = "the precision is that of Linux's clocks"

    def test_rootGone(self):
        """
        When the root process is gone, C{ps} fails with C{REMOTE_ERROR}
        naming it.
        """
        pid = self.deadPid()
        error = self.assertRaises(JobMonError, JobProcesses(pid).ps)
        self.assertEqual(error.code, REMOTE_ERROR)
        self.assertEqual(error.message, "the job's process %d is gone" % (pid,))

    def test_rootExitsLater(self):
        """
        A root that exits after a first call is reported gone on the next.
        """
        sleeper = self.spawnSleeper()
        jobs = JobProcesses(sleeper.pid, os.getpid())
        self.assertEqual(len(jobs.ps()["processes"]), 1)
        sleeper.kill()
        sleeper.wait()
        error = self.assertRaises(JobMonError, jobs.ps)
        self.assertEqual(error.code, REMOTE_ERROR)

    def test_rootPidReused(self):
        """
        If the root's pid now belongs to a process started at another time,
        the job's root is gone: the new process is not taken for it.
        """
        sleeper = self.spawnSleeper()
        jobs = JobProcesses(sleeper.pid, os.getpid())
        jobs.ps()
        # As if the first process seen had been another one under this pid.
        self.patch(jobs, "_root", psutil.Process(os.getpid()))
        error = self.assertRaises(JobMonError, jobs.ps)
        self.assertEqual(error.code, REMOTE_ERROR)


class TopTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for L{JobProcesses.topStart}, L{JobProcesses.topFinish} and
    L{checkTop}.
    """

    def test_busyFirst(self):
        """
        C{top} measures CPU use over the interval and lists the busiest
        process first.
        """
        parent, found = self.spawnTree([SLEEP, BUSY, SLEEP])
        busy = [p.pid for p in found if p.cmdline() == BUSY][0]
        jobs = JobProcesses(parent.pid, os.getpid())
        sample = jobs.topStart()
        # The daemon waits on its clock between the phases; here the CPU
        # to measure is real, and so is the interval.
        time.sleep(1.0)
        result = jobs.topFinish(sample)
        processes = result["processes"]
        self.assertEqual(len(processes), 4)
        self.assertEqual(processes[0]["pid"], busy)
        self.assertGreater(processes[0]["cpu_percent"], 20)
        for p in processes:
            if p["name"] == "sleep":
                self.assertLess(p["cpu_percent"], 5)
        percents = [p["cpu_percent"] for p in processes]
        self.assertEqual(percents, sorted(percents, reverse=True))
        self.assertTrue(0.9 <= result["interval"] < 10, result["interval"])
        self.assertEqual(result["root"], parent.pid)
        self.assertIs(result["truncated"], False)

    def test_phases(self):
        """
        The two phases can be run apart, as the daemon does, with a C{ps}
        between them that does not disturb the measurement.
        """
        parent, found = self.spawnTree([SLEEP, BUSY])
        busy = [p.pid for p in found if p.cmdline() == BUSY][0]
        jobs = JobProcesses(parent.pid, os.getpid())
        sample = jobs.topStart()
        time.sleep(0.3)
        jobs.ps()
        time.sleep(0.2)
        result = jobs.topFinish(sample)
        self.assertEqual(result["processes"][0]["pid"], busy)
        self.assertGreater(result["processes"][0]["cpu_percent"], 20)
        self.assertTrue(0.45 <= result["interval"] < 10, result["interval"])

    def test_newProcess(self):
        """
        A process started between the phases is shown, with its average
        since it started.
        """
        sleeper = self.spawnSleeper()
        jobs = JobProcesses(sleeper.pid, os.getpid())
        sample = jobs.topStart()
        result = jobs.topFinish(TopSample(started=sample.started, processes={}))
        self.assertEqual([p["pid"] for p in result["processes"]], [sleeper.pid])

    def test_rootGone(self):
        """
        C{topStart} and C{topFinish} fail with C{REMOTE_ERROR} when the
        root is gone.
        """
        sleeper = self.spawnSleeper()
        jobs = JobProcesses(sleeper.pid, os.getpid())
        sample = jobs.topStart()
        sleeper.kill()
        sleeper.wait()
        for call in (lambda: jobs.topFinish(sample), jobs.topStart):
            error = self.assertRaises(JobMonError, call)
            self.assertEqual(error.code, REMOTE_ERROR)

    def test_checkTop(self):
        """
        The interval defaults to 1 s; a number, or a string holding one, in
        (0, 10] is accepted.
        """
        self.assertEqual(checkTop({"op": "top"}), 1.0)
        self.assertEqual(checkTop({"interval": 2}), 2.0)
        self.assertIsInstance(checkTop({"interval": 2}), float)
        self.assertEqual(checkTop({"interval": 0.25}), 0.25)
        self.assertEqual(checkTop({"interval": 10}), 10.0)
        self.assertEqual(checkTop({"interval": "1.5"}), 1.5)

    def test_checkTopInvalid(self):
        """
        Anything else is a C{BAD_REQUEST}.
        """
        for bad in (0, -1, 10.5, float("nan"), float("inf"), True, "abc", "",
                    None, [1], "1e400"):
            error = self.assertRaises(JobMonError, checkTop, {"interval": bad})
            self.assertEqual(error.code, BAD_REQUEST, bad)
        error = self.assertRaises(JobMonError, checkTop, ["interval"])
        self.assertEqual(error.code, BAD_REQUEST)


class ResTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for L{JobProcesses.res}.
    """

    def test_totals(self):
        """
        C{res} totals the tree: process and thread counts, memory, CPU,
        descriptors and I/O, with sizes and times as floats.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        jobs = JobProcesses(parent.pid, os.getpid())
        largest = max(p["rss"] for p in jobs.ps()["processes"])
        result = jobs.res()
        self.assertEqual(
            set(result),
            {"processes", "threads", "cpu_user", "cpu_system", "rss", "rss_peak",
             "open_files", "read_bytes", "write_bytes", "elapsed"},
        )
        self.assertEqual(result["processes"], 3)
        self.assertGreaterEqual(result["threads"], 3)
        self.assertIsInstance(result["threads"], int)
        self.assertIsInstance(result["open_files"], int)
        self.assertGreaterEqual(result["open_files"], 3)
        for name in ("cpu_user", "cpu_system", "rss", "rss_peak", "read_bytes",
                     "write_bytes", "elapsed"):
            self.assertIsInstance(result[name], float)
            self.assertGreaterEqual(result[name], 0)
        self.assertGreater(result["rss"], largest)
        # The high-water mark is never below the resident size seen before.
        self.assertGreaterEqual(result["rss_peak"], largest)
        self.assertTrue(result["elapsed"] < 300, result["elapsed"])

    def test_peakFromStatus(self):
        """
        C{rss_peak} is the largest C{VmHWM} of C{/proc/PID/status} (in kB).
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        proc = self.mktemp()
        for pid, text in [(parent.pid, "Name:\tpython\nVmHWM:\t  123456 kB\n"),
                          (found[0].pid, "VmHWM:\t  1000 kB\n"),
                          (found[1].pid, "VmHWM: lots kB\n")]:
            os.makedirs(os.path.join(proc, str(pid)))
            with open(os.path.join(proc, str(pid), "status"), "w") as f:
                f.write(text)
        jobs = JobProcesses(parent.pid, os.getpid(), procDirectory=proc)
        self.assertEqual(jobs.res()["rss_peak"], 123456 * 1024.0)

    def test_peakFallback(self):
        """
        Where no C{VmHWM} can be read, C{rss_peak} is the largest resident
        size now.
        """
        parent, found = self.spawnTree([SLEEP, SLEEP])
        jobs = JobProcesses(parent.pid, os.getpid(), procDirectory=self.mktemp())
        result = jobs.res()
        self.assertGreater(result["rss_peak"], 0)
        self.assertLess(result["rss_peak"], result["rss"])

    def test_ioDenied(self):
        """
        I/O counters the system refuses count as 0.
        """
        sleeper = self.spawnSleeper()

        def io_counters(proc):
            raise psutil.AccessDenied(proc.pid)

        self.patch(psutil.Process, "io_counters", io_counters)
        result = JobProcesses(sleeper.pid, os.getpid()).res()
        self.assertEqual((result["read_bytes"], result["write_bytes"]), (0.0, 0.0))
        self.assertEqual(result["processes"], 1)

    def test_rootGone(self):
        """
        C{res} fails with C{REMOTE_ERROR} when the root is gone.
        """
        error = self.assertRaises(JobMonError, JobProcesses(self.deadPid()).res)
        self.assertEqual(error.code, REMOTE_ERROR)


class EnvironmentTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for L{JobProcesses.environment}.
    """

    def test_rootEnvironment(self):
        """
        C{env} shows the root process's environment, secrets hidden.
        """
        env = {"MY_TOKEN": "abc", "HOME": "/home/alice", "Api_Key": "k",
               "PLAIN": "v", "PATH": os.environ.get("PATH", "/bin:/usr/bin")}
        sleeper = self.spawnSleeper(env)
        result = JobProcesses(sleeper.pid, os.getpid()).environment()
        self.assertEqual(
            result["variables"],
            dict(env, MY_TOKEN=REDACTED, Api_Key=REDACTED),
        )
        self.assertEqual(result["redacted"], ["Api_Key", "MY_TOKEN"])

    def test_extraPatterns(self):
        """
        Patterns of the daemon's C{--redact} hide more names, paths too; the
        default patterns leave the paths of credentials shown.
        """
        sleeper = self.spawnSleeper({"PLAIN": "v", "OTHER": "w", "PLAIN_DIR": "/p",
                                     "X509_CERT_DIR": "/etc/grid-security/certificates"})
        jobs = JobProcesses(sleeper.pid, os.getpid())
        result = jobs.environment(["plain"])
        self.assertEqual(result["variables"], {
            "PLAIN": REDACTED, "OTHER": "w", "PLAIN_DIR": REDACTED,
            "X509_CERT_DIR": "/etc/grid-security/certificates"})
        self.assertEqual(result["redacted"], ["PLAIN", "PLAIN_DIR"])
        self.assertRaises(ValueError, jobs.environment, ["A-B"])

    def test_emptyFallsBack(self):
        """
        An empty environment (or one that cannot be read) gives the daemon's
        own, which it inherited from the job wrapper.
        """
        sleeper = self.spawnSleeper({})
        result = JobProcesses(sleeper.pid, os.getpid()).environment()
        variables, names = redact(dict(os.environ), DEFAULT_REDACT, (), DEFAULT_REDACT_WORDS)
        self.assertEqual(result, {"variables": variables, "redacted": names})

    def test_deniedFallsBack(self):
        """
        An environment the system refuses to show gives the daemon's own.
        """
        sleeper = self.spawnSleeper({"PLAIN": "v"})

        def environ(proc):
            raise psutil.AccessDenied(proc.pid)

        self.patch(psutil.Process, "environ", environ)
        result = JobProcesses(sleeper.pid, os.getpid()).environment()
        self.assertEqual(result["variables"], redact(dict(os.environ), DEFAULT_REDACT, (), DEFAULT_REDACT_WORDS)[0])

    def test_rootGone(self):
        """
        C{env} fails with C{REMOTE_ERROR} when the root is gone.
        """
        error = self.assertRaises(
            JobMonError, JobProcesses(self.deadPid()).environment
        )
        self.assertEqual(error.code, REMOTE_ERROR)


class SignalTests(ProcessMixin, SynchronousTestCase):
    """
    Tests for L{JobProcesses.sendSignal} and L{parseSignalNames}.
    """

    def recordingJobs(self, rootPid, daemonPid=None):
        """
        A L{JobProcesses} whose signals are recorded rather than sent.

        @return: C{(jobs, sent)}, C{sent} the list of C{(pid, signal)}.
        """
        sent = []
        jobs = JobProcesses(
            rootPid,
            os.getpid() if daemonPid is None else daemonPid,
            kill=lambda pid, number: sent.append((pid, number)),
        )
        return jobs, sent

    def test_allowed(self):
        """
        An allowed signal is sent to the root process, which dies of it.
        """
        sleeper = self.spawnSleeper()
        jobs = JobProcesses(sleeper.pid, os.getpid())
        result = jobs.sendSignal("sigterm", frozenset({"TERM"}))
        self.assertEqual(result, {"signal": "TERM", "pid": sleeper.pid})
        poll(lambda: exited(sleeper.pid), "the process to die")
        self.assertEqual(sleeper.wait(), -signal.SIGTERM)

    def test_normalised(self):
        """
        Names are taken in any case, with or without C{SIG}, white space
        around; aliases give the canonical name.
        """
        sleeper = self.spawnSleeper()
        jobs, sent = self.recordingJobs(sleeper.pid)
        allowed = {"USR1", "ABRT"}
        self.assertEqual(jobs.sendSignal(" SigUsr1 ", allowed)["signal"], "USR1")
        self.assertEqual(jobs.sendSignal("usr1", allowed)["signal"], "USR1")
        self.assertEqual(jobs.sendSignal("IOT", allowed)["signal"], "ABRT")
        self.assertEqual(
            sent,
            [(sleeper.pid, signal.SIGUSR1)] * 2 + [(sleeper.pid, signal.SIGABRT)],
        )

    def test_notAllowed(self):
        """
        A signal the daemon does not allow is refused with C{NOT_ALLOWED},
        whose message lists the signals allowed, and nothing is sent; by
        default no signal is allowed.
        """
        sleeper = self.spawnSleeper()
        jobs, sent = self.recordingJobs(sleeper.pid)
        error = self.assertRaises(JobMonError, jobs.sendSignal, "term", {"USR1", "HUP"})
        self.assertEqual(error.code, NOT_ALLOWED)
        self.assertEqual(
            error.message,
            "signal TERM is not allowed on this job; allowed: HUP, USR1 (the "
            "daemon's --allow-signal)",
        )
        error = self.assertRaises(JobMonError, jobs.sendSignal, "KILL")
        self.assertEqual(error.code, NOT_ALLOWED)
        self.assertEqual(
            error.message,
            "signal KILL is not allowed on this job: it allows no signals (the "
            "daemon's --allow-signal)",
        )
        self.assertEqual(sent, [])

    def test_unknown(self):
        """
        Anything but the name of a signal is a C{BAD_REQUEST}, even when
        nothing is allowed.
        """
        jobs, sent = self.recordingJobs(os.getpid(), 1)
        for bad in ("FOO", "", "SIG", "SIGSIGTERM", "15", 15, None, ["TERM"],
                    "\uff34\uff25\uff32\uff2d", "TERM\0"):
            error = self.assertRaises(JobMonError, jobs.sendSignal, bad, {"TERM"})
            self.assertEqual(error.code, BAD_REQUEST, bad)
        self.assertEqual(sent, [])

    def test_notTheDaemon(self):
        """
        The daemon never signals itself, even with the signal allowed.
        """
        sleeper = self.spawnSleeper()
        jobs, sent = self.recordingJobs(sleeper.pid, sleeper.pid)
        error = self.assertRaises(JobMonError, jobs.sendSignal, "TERM", {"TERM"})
        self.assertEqual(error.code, NOT_ALLOWED)
        self.assertEqual(sent, [])

    def test_rootGone(self):
        """
        Signalling a root that is gone fails with C{REMOTE_ERROR}.
        """
        jobs, sent = self.recordingJobs(self.deadPid())
        error = self.assertRaises(JobMonError, jobs.sendSignal, "TERM", {"TERM"})
        self.assertEqual(error.code, REMOTE_ERROR)
        self.assertEqual(sent, [])

    def test_killFails(self):
        """
        A signal the system refuses to send is a C{REMOTE_ERROR} saying why.
        """
        sleeper = self.spawnSleeper()

        def kill(pid, number):
            raise PermissionError(1, "Operation not permitted")

        jobs = JobProcesses(sleeper.pid, os.getpid(), kill=kill)
        error = self.assertRaises(JobMonError, jobs.sendSignal, "TERM", {"TERM"})
        self.assertEqual(error.code, REMOTE_ERROR)
        self.assertEqual(
            error.message,
            "cannot send signal TERM to process %d: Operation not permitted"
            % (sleeper.pid,),
        )

    def test_parseSignalNames(self):
        """
        C{--allow-signal} takes names separated by commas or white space,
        normalised as requests are.
        """
        self.assertEqual(parseSignalNames("TERM,USR1"), frozenset({"TERM", "USR1"}))
        self.assertEqual(
            parseSignalNames(" sigterm, usr1 HUP,,"), frozenset({"TERM", "USR1", "HUP"})
        )
        self.assertEqual(parseSignalNames("IOT"), frozenset({"ABRT"}))

    def test_parseSignalNamesErrors(self):
        """
        Unknown names, or none, are a C{ValueError} that says which.
        """
        error = self.assertRaises(ValueError, parseSignalNames, "TERM,BOGUS")
        self.assertIn("'BOGUS'", str(error))
        self.assertRaises(ValueError, parseSignalNames, "15")
        error = self.assertRaises(ValueError, parseSignalNames, " , ")
        self.assertIn("no signal names", str(error))

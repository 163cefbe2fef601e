"""
Tests for L{jobmon.worker.scope} and the process-group scope of
L{jobmon.worker.procs.JobProcesses}: a daemon that no job started (its
parent is PID 1, a system service, a login shell) does not take the whole
machine for its job, and never signals PID 1 or a process outside its
job.

Decisions are tested on fake process tables; the only processes signalled
are the tests' own children.
"""

import os
import signal
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from jobmon.errors import NOT_ALLOWED, JobMonError
from jobmon.worker.procs import JobProcesses, groupMembers
from jobmon.worker.scope import ProcessFacts, chooseScope, notAJob, readFacts
from tests.worker.test_procs import SLEEP, ProcessMixin, byPid, poll

UID = 1000


def fakeTable(*facts):
    """
    A L{readFacts} over a fake process table.
    """
    table = {f.pid: f for f in facts}
    return table.get


class ChooseScopeTests(SynchronousTestCase):
    """
    L{chooseScope}: the job is the tree of C{--job-pid}, else of the
    daemon's parent, unless that parent is plainly not a job.
    """

    def choose(self, parent, jobPid=None):
        """
        Choose for a daemon in process group 4321 whose parent is
        C{parent} (a L{ProcessFacts}, or a pid missing from the table).
        """
        if isinstance(parent, ProcessFacts):
            return chooseScope(jobPid, parentPid=parent.pid, groupId=4321, uid=UID,
                               read=fakeTable(parent))
        return chooseScope(jobPid, parentPid=parent, groupId=4321, uid=UID,
                           read=fakeTable())

    def test_jobPid(self):
        """
        C{--job-pid} (what jobmon-run passes) is the root, whatever the
        parent, without a warning.
        """
        scope = self.choose(1, jobPid=777)
        self.assertEqual((scope.rootPid, scope.group, scope.warning), (777, None, None))

    def test_jobPidOne(self):
        """
        C{--job-pid 1} is taken (a container whose init is the job), with a
        warning that says signal is refused for it.
        """
        scope = self.choose(1, jobPid=1)
        self.assertEqual((scope.rootPid, scope.group), (1, None))
        self.assertIn("signal is refused for process 1", scope.warning)

    def test_jobScript(self):
        """
        A parent that is a job's script, of the daemon's user, is the root.
        """
        scope = self.choose(ProcessFacts(300, "bash", "/bin/bash", UID))
        self.assertEqual((scope.rootPid, scope.group, scope.warning), (300, None, None))

    def test_parentInit(self):
        """
        A parent that is PID 1 (a daemonized or orphaned daemon), or gone,
        gives the daemon's process group, with one warning line.
        """
        for parent in (1, ProcessFacts(1, "systemd", "/sbin/init", 0), 555):
            scope = self.choose(parent)
            self.assertEqual((scope.rootPid, scope.group), (4321, 4321))
            self.assertEqual(
                scope.warning,
                "this daemon was not started by a job (its parent is process 1 (init): "
                "it was daemonized, or its parent exited): ps, top, res, env and "
                "signal look only at its own process group 4321, not at the whole "
                "machine; start it from the job (jobmon-run) or give --job-pid",
            )
            self.assertNotIn("\n", scope.warning)

    def test_systemServices(self):
        """
        A system service as the parent (sshd running a command, systemd
        --user, cron) is not a job.
        """
        for name in ("sshd", "systemd", "cron", "init", "containerd-shim-runc-v2"):
            scope = self.choose(ProcessFacts(200, name, name, UID))
            self.assertEqual(scope.group, 4321, name)
            self.assertIn("a system service", scope.warning)

    def test_loginShell(self):
        """
        A login shell (its argv[0] begins with C{-}) is not a job: its tree
        is the user's whole login.
        """
        scope = self.choose(ProcessFacts(200, "bash", "-bash", UID))
        self.assertEqual(scope.group, 4321)
        self.assertIn("its parent is -bash (pid 200), a login shell", scope.warning)

    def test_otherUser(self):
        """
        A parent of another user is not the user's job.
        """
        scope = self.choose(ProcessFacts(200, "starter", "starter", 0))
        self.assertEqual(scope.group, 4321)
        self.assertIn("runs as another user (uid 0)", scope.warning)

    def test_unknownUid(self):
        """
        A parent whose user cannot be read is judged by its name only.
        """
        self.assertIsNone(notAJob(ProcessFacts(200, "bash", "bash"), UID))

    def test_readFacts(self):
        """
        L{readFacts} reads this process's facts; a gone process has none.
        """
        facts = readFacts(os.getpid())
        self.assertEqual((facts.pid, facts.uid), (os.getpid(), os.getuid()))
        self.assertTrue(facts.name)
        child = subprocess.Popen(["true"])
        child.wait()
        self.assertIsNone(readFacts(child.pid))


class GroupScopeTests(ProcessMixin, SynchronousTestCase):
    """
    L{JobProcesses} over a process group: C{ps}, C{res} and C{env} look at
    the group only.
    """

    def test_psListsGroupOnly(self):
        """
        C{ps} lists the group's processes, its leader first; a process of
        another group is not listed.
        """
        parent, children = self.spawnTree([SLEEP, SLEEP])
        other = self.spawnSleeper()
        jobs = JobProcesses(parent.pid, os.getpid(), group=parent.pid)
        result = jobs.ps()
        self.assertEqual(result["root"], parent.pid)
        self.assertEqual(result["processes"][0]["pid"], parent.pid)
        self.assertEqual(set(byPid(result)), {parent.pid} | {c.pid for c in children})
        self.assertNotIn(other.pid, byPid(result))
        self.assertEqual(jobs.res()["processes"], 3)

    def test_leaderGone(self):
        """
        When the group's leader is gone, the daemon is the root.
        """
        daemon = os.getpid()
        jobs = JobProcesses(daemon, daemon, group=99999999,
                            listGroup=lambda group: [daemon])
        result = jobs.ps()
        self.assertEqual(result["root"], daemon)
        [me] = result["processes"]
        self.assertTrue(me["daemon"])

    def test_environment(self):
        """
        C{env} shows the group leader's environment.
        """
        sleeper = self.spawnSleeper(env={"JOBMON_SCOPE_TEST": "yes", "PATH": os.defpath})
        jobs = JobProcesses(sleeper.pid, os.getpid(), group=sleeper.pid)
        self.assertEqual(jobs.environment()["variables"]["JOBMON_SCOPE_TEST"], "yes")

    def test_groupMembers(self):
        """
        L{groupMembers} finds this process in its own group.
        """
        self.assertIn(os.getpid(), groupMembers(os.getpgrp()))
        sleeper = self.spawnSleeper()
        poll(lambda: groupMembers(sleeper.pid) == [sleeper.pid], "the sleeper's group")


class NeverSignalTests(SynchronousTestCase):
    """
    C{signal} never reaches PID 1, the daemon, or a process outside the
    job's process group; signals are recorded, not sent.
    """

    def jobs(self, rootPid, daemonPid=500, group=None, groups=None):
        """
        A L{JobProcesses} with a fake process group table (pid to group)
        and a recording kill.

        @return: C{(jobs, sent)}.
        """
        sent = []
        table = groups or {}

        def getpgid(pid):
            if pid not in table:
                raise ProcessLookupError(pid)
            return table[pid]

        jobs = JobProcesses(rootPid, daemonPid, group=group, getpgid=getpgid,
                            kill=lambda pid, number: sent.append((pid, number)))
        return jobs, sent

    def assertRefused(self, jobs, sent, text):
        """
        C{signal TERM}, allowed, is refused with C{NOT_ALLOWED} saying
        C{text}, and nothing is sent.
        """
        error = self.assertRaises(JobMonError, jobs.sendSignal, "TERM", {"TERM"})
        self.assertEqual(error.code, NOT_ALLOWED)
        self.assertIn(text, error.message)
        self.assertEqual(sent, [])

    def test_neverPidOne(self):
        """
        PID 1 is refused as a tree root (C{--job-pid 1}) and as a group.
        """
        jobs, sent = self.jobs(1)
        self.assertRefused(jobs, sent, "process 1 is the system's (or container's) init")
        jobs, sent = self.jobs(1, group=1, groups={1: 1})
        self.assertRefused(jobs, sent, "JobMon never signals it")

    def test_daemonLeadsGroup(self):
        """
        A daemonized daemon leads its own group: nothing there to signal.
        """
        jobs, sent = self.jobs(500, daemonPid=500, group=500, groups={500: 500})
        self.assertRefused(jobs, sent, "holds no job process to signal")

    def test_leaderSignalled(self):
        """
        A group leader other than the daemon, still in the group, gets the
        signal.
        """
        jobs, sent = self.jobs(600, group=600, groups={600: 600, 500: 600})
        self.assertEqual(jobs.sendSignal("term", {"TERM"}), {"signal": "TERM", "pid": 600})
        self.assertEqual(sent, [(600, signal.SIGTERM)])

    def test_leaderLeftGroup(self):
        """
        A leader that left the group (its pid reused by another process),
        or is gone, is not signalled.
        """
        jobs, sent = self.jobs(600, group=600, groups={600: 42})
        self.assertRefused(jobs, sent, "no longer in the job's process group 600")
        jobs, sent = self.jobs(600, group=600, groups={})
        self.assertRefused(jobs, sent, "no longer in the job's process group 600")


class BuildDaemonTests(SynchronousTestCase):
    """
    The daemon built by C{twistd jobmon-daemon} uses the scope chosen and
    logs its warning in one line.
    """

    def test_warningLogged(self):
        """
        A daemon that no job started looks at its process group, and its
        log says so.
        """
        from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
        from twisted.logger import LogLevel, globalLogPublisher

        from jobmon.worker import scope
        from jobmon.worker.daemon import Options, buildDaemon, loadStartup
        from tests.support import TestPKI

        tpki = TestPKI(os.path.abspath(self.mktemp()))
        options = Options()
        options.parseOptions([
            "--server", "https://127.0.0.1:1/RPC2", "--job-id", "j", "--workdir", tpki.base,
            "--proxy", tpki.proxies["alice"], "--ca-dir", tpki.caDir,
        ])
        chosen = scope.JobScope(rootPid=4321, group=4321, warning="not started by a job")
        self.patch(scope, "chooseScope", lambda jobPid: chosen)
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        daemon = buildDaemon(MemoryReactorClock(), options, loadStartup(options))
        processes = daemon.operations.processes
        self.assertEqual((processes.rootPid, processes.group), (4321, 4321))
        [event] = [e for e in logged if e.get("note") == "not started by a job"]
        self.assertEqual(event["log_level"], LogLevel.warn)

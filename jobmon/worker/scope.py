"""
Which processes are the job's: the daemon's choice, made once as it starts,
of the processes C{ps}, C{top}, C{res}, C{env} and C{signal} look at.

  - With C{--job-pid} (C{jobmon-run} always gives it: the command's pid),
    the job is the tree of that process.
  - Without it, the job is the tree of the daemon's parent, the job's
    script that started it, unless that parent is plainly not a job: PID 1
    (the daemon was daemonized, or its parent exited), a system service
    (init, systemd, sshd, cron...), a login shell, or a process of another
    user.  Its tree would then be the whole machine, or a user's whole
    login; the job is instead the daemon's own process group, and the
    daemon says so in its log (L{JobScope.warning}).

This module imports no Twisted: only the standard library, attrs and
psutil; L{chooseScope} blocks (it reads C{/proc}) and is called before the
reactor runs.
"""

import os

import psutil
from attrs import frozen

SYSTEM_PARENTS = frozenset(
    {
        "init",
        "systemd",
        "launchd",
        "sshd",
        "login",
        "cron",
        "crond",
        "atd",
        "containerd-shim",
        "supervisord",
    }
)
"""Names of the system services a daemon started by hand may have as its
parent: none of them is a job."""


@frozen
class ProcessFacts:
    """
    What L{chooseScope} needs to know of the daemon's parent.

    @ivar pid: its pid.
    @ivar name: its name (C{"sshd"}, C{"bash"}).
    @ivar argv0: the first word of its command line (a login shell's begins
        with C{-}: C{"-bash"}).
    @ivar uid: its real user id, or L{None} if unknown.
    """

    pid: int
    name: str
    argv0: str
    uid: object = None


def readFacts(pid):
    """
    Read the L{ProcessFacts} of process C{pid} (blocking).

    @return: them, or L{None} if the process is gone.
    """
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            try:
                cmdline = proc.cmdline()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = []
            try:
                uid = proc.uids().real
            except (psutil.AccessDenied, psutil.ZombieProcess):
                uid = None
    except psutil.NoSuchProcess:
        return None
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return ProcessFacts(pid=pid, name="", argv0="")
    return ProcessFacts(pid=pid, name=name, argv0=cmdline[0] if cmdline else "", uid=uid)


def notAJob(facts, uid):
    """
    Why the daemon's parent is not a job, or L{None} if it may be one.

    @param facts: the parent's L{ProcessFacts}, or L{None} if it is gone
        (it exited: the daemon is now init's).
    @param uid: the daemon's real user id.
    @return: a few words naming the parent, such as C{"its parent is
        process 1 (init)"}.
    """
    if facts is None or facts.pid == 1:
        return "its parent is process 1 (init): it was daemonized, or its parent exited"
    named = "{} (pid {})".format(facts.argv0 or facts.name or "?", facts.pid)
    base = os.path.basename(facts.name or "")
    if base in SYSTEM_PARENTS or base.startswith("containerd-shim"):
        return "its parent is {}, a system service".format(named)
    if facts.argv0.startswith("-"):
        return "its parent is {}, a login shell".format(named)
    if facts.uid is not None and uid is not None and facts.uid != uid:
        return "its parent {} runs as another user (uid {})".format(named, facts.uid)
    return None


@frozen
class JobScope:
    """
    The processes that are the job.

    @ivar rootPid: the root of the job's tree; in a process group, its
        leader.
    @ivar group: the process group that is the job, or L{None} when the job
        is the tree of C{rootPid}.
    @ivar warning: one line for the daemon's log when the job is not what
        the operator may think (a process group, or the whole system), or
        L{None}.
    """

    rootPid: int
    group: object = None
    warning: object = None


def chooseScope(jobPid=None, parentPid=None, groupId=None, uid=None, read=readFacts):
    """
    Choose the job's processes (see the module's description).

    @param jobPid: the daemon's C{--job-pid}, or L{None}.
    @param parentPid: the daemon's parent [default: C{os.getppid()}].
    @param groupId: the daemon's process group [default: C{os.getpgrp()}].
    @param uid: the daemon's real user id [default: C{os.getuid()}].
    @param read: L{readFacts}, or a fake for tests.
    @return: a L{JobScope}.
    """
    if jobPid is not None:
        if jobPid == 1:
            return JobScope(
                rootPid=1,
                warning="--job-pid 1: ps, top, res and env show every process of this "
                "system (or container); signal is refused for process 1",
            )
        return JobScope(rootPid=jobPid)
    parentPid = os.getppid() if parentPid is None else parentPid
    groupId = os.getpgrp() if groupId is None else groupId
    uid = os.getuid() if uid is None else uid
    why = notAJob(None if parentPid == 1 else read(parentPid), uid)
    if why is None:
        return JobScope(rootPid=parentPid)
    return JobScope(
        rootPid=groupId,
        group=groupId,
        warning="this daemon was not started by a job ({}): ps, top, res, env and "
        "signal look only at its own process group {}, not at the whole machine; "
        "start it from the job (jobmon-run) or give --job-pid".format(why, groupId),
    )

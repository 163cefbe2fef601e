"""
The process operations a job's daemon runs on the job's process tree:
C{ps}, C{top}, C{res}, C{env} and C{signal} of C{docs/API.md}.

Each operation is a plain blocking function that reads C{/proc} (through
psutil): the daemon runs it in a thread pool.  C{top} measures CPU use over
an interval, and the daemon must not hold a thread while it waits, so it is
split in two blocking phases, L{JobProcesses.topStart} and
L{JobProcesses.topFinish}, between which the daemon waits without blocking.

Results are the structs of C{docs/API.md}; failures are raised as
L{JobMonError}.  Strings are returned as psutil decodes them (undecodable
bytes as lone surrogates): the daemon's C{xmlSafe} escapes them.

This module imports no Twisted: only the standard library, attrs and
psutil.
"""

import math
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from functools import partial

import psutil
from attrs import define, field, frozen

from jobmon.errors import BAD_REQUEST, NOT_ALLOWED, REMOTE_ERROR, JobMonError
from jobmon.worker.redaction import (
    DEFAULT_REDACT,
    DEFAULT_REDACT_WORDS,
    checkRedactPatterns,
    redact,
)

DEFAULT_MAX_PROCESSES = 2000
"""Default cap on the processes of one C{ps} or C{top} result."""

DEFAULT_TOP_INTERVAL = 1.0
"""Seconds C{top} measures over when the request does not say."""

MAX_TOP_INTERVAL = 10.0
"""The longest interval a C{top} request may ask for, in seconds."""

MAX_CMDLINE = 4096
"""The most characters of one process's command line a result carries: with
up to L{DEFAULT_MAX_PROCESSES} processes, uncapped command lines (a Java
class path runs to tens of kilobytes) would make results of many megabytes."""

_SIGNAL_EXAMPLES = "a signal name such as TERM or USR1"


def _signalName(name):
    """
    Normalise a signal name given by a user: C{"term"}, C{"SIGTERM"} and
    C{" Term "} all give C{"TERM"}; an alias gives the canonical name
    (C{"IOT"} gives C{"ABRT"}).

    @raise JobMonError: C{BAD_REQUEST} if C{name} is not the name of a
        signal of this system.
    """
    if not isinstance(name, str):
        raise JobMonError(BAD_REQUEST, "'signal' must be " + _SIGNAL_EXAMPLES)
    text = name.strip().upper()
    if text.startswith("SIG"):
        text = text[3:]
    # isascii: str.upper maps some non-ASCII letters to ASCII ones.
    member = None
    if text and text.isascii():
        member = signal.Signals.__members__.get("SIG" + text)
    if member is None:
        raise JobMonError(
            BAD_REQUEST,
            "unknown signal %s: expected %s" % (repr(name)[:40], _SIGNAL_EXAMPLES),
        )
    return member.name[3:]


def _refusedSignal(name, allowed):
    """
    The message for a signal the daemon does not allow: it lists those it
    allows, so that the user can pick one.
    """
    if not allowed:
        return (
            "signal {} is not allowed on this job: it allows no signals (the "
            "daemon's --allow-signal)".format(name)
        )
    return "signal {} is not allowed on this job; allowed: {} (the daemon's --allow-signal)".format(
        name, ", ".join(sorted(allowed))
    )


def parseSignalNames(text):
    """
    Parse the daemon's C{--allow-signal} option: signal names separated by
    commas or white space, with or without C{SIG}, in any case, such as
    C{"TERM,USR1"}.

    @return: a frozenset of normalised names (C{"TERM"}, C{"USR1"}), as
        L{JobProcesses.sendSignal} expects them.
    @raise ValueError: if a name is not a signal of this system, or there is
        no name at all.
    """
    parts = [part for part in re.split(r"[,\s]+", text) if part]
    if not parts:
        raise ValueError("no signal names given: expected names such as TERM,USR1")
    names = set()
    for part in parts:
        try:
            names.add(_signalName(part))
        except JobMonError:
            raise ValueError(
                "unknown signal name %r: expected names such as TERM, USR1" % (part,)
            ) from None
    return frozenset(names)


def checkTop(request):
    """
    Read the C{interval} argument of a C{top} request.

    An int, a float or a string holding a number is accepted (some clients
    send numbers as strings); C{bool} is refused.

    @return: the interval in seconds, a float in (0, L{MAX_TOP_INTERVAL}];
        L{DEFAULT_TOP_INTERVAL} if the request has none.
    @raise JobMonError: C{BAD_REQUEST} if it is ill-typed or out of range.
    """
    if not isinstance(request, dict):
        raise JobMonError(BAD_REQUEST, "the request must be a struct")
    if "interval" not in request:
        return DEFAULT_TOP_INTERVAL
    value = request["interval"]
    problem = "'interval' must be a number of seconds above 0 and at most %g" % (
        MAX_TOP_INTERVAL,
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JobMonError(BAD_REQUEST, problem)
    try:
        interval = float(value)
    except (ValueError, OverflowError):
        raise JobMonError(BAD_REQUEST, problem) from None
    if not math.isfinite(interval) or not 0 < interval <= MAX_TOP_INTERVAL:
        raise JobMonError(BAD_REQUEST, problem)
    return interval


def treeOrder(rootPid, parents):
    """
    Put process ids in tree order: each process before its children,
    children of a process by increasing pid, depth first.

    Processes whose parent is not known (they were reparented while the tree
    was read, because their parent exited) follow the tree of the root, each
    as the root of its own subtree, by increasing pid.

    @param rootPid: the root process.
    @param parents: a mapping of every other process id to its parent's id.
    @return: a list of all the ids of C{parents}, and C{rootPid}, each once.
    """
    children = defaultdict(list)
    for pid, ppid in parents.items():
        children[ppid].append(pid)
    known = set(parents) | {rootPid}
    starts = [rootPid] + sorted(
        pid for pid, ppid in parents.items() if ppid not in known and pid != rootPid
    )
    order = []
    seen = set()

    def walk(start):
        stack = [start]
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            order.append(pid)
            stack.extend(sorted(children[pid], reverse=True))

    for start in starts:
        walk(start)
    # A cycle of parents (pids reused while the tree was read) reaches none
    # of the starts: its processes still count.
    for pid in sorted(known - seen):
        walk(pid)
    return order


def _attempt(call, default):
    """
    Read one field of a process, or C{default} if the process refuses it
    (C{AccessDenied}) or is a zombie that no longer has it.

    C{NoSuchProcess} (the process is gone) is let through: the caller skips
    the process.
    """
    try:
        return call()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return default


def _commandLine(proc):
    """
    The command line of C{proc}, its arguments joined by spaces and cut to
    L{MAX_CMDLINE} characters.
    """
    text = " ".join(_attempt(proc.cmdline, []))
    if len(text) > MAX_CMDLINE:
        text = text[: MAX_CMDLINE - 3] + "..."
    return text


@frozen
class _Now:
    """
    The time of one operation, to tell how long ago processes started.

    On Linux psutil's start times are the boot time, which C{/proc/stat}
    gives in whole seconds, plus the start in clock ticks since boot: taken
    from the wall clock, a process's age is up to a second wrong, which
    makes the CPU average of a young process meaningless.  So on Linux the
    age is counted on the clock the start is measured on,
    C{CLOCK_BOOTTIME}, and the boot time cancels out.

    @ivar wall: C{time.time()}.
    @ivar sinceBoot: C{CLOCK_BOOTTIME}, or L{None} where there is none.
    @ivar bootTime: C{psutil.boot_time()}, or L{None} with C{sinceBoot}.
    """

    wall: float
    sinceBoot: object = None
    bootTime: object = None

    @classmethod
    def take(cls):
        """
        Read the clocks.
        """
        wall = time.time()
        if sys.platform.startswith("linux") and hasattr(time, "CLOCK_BOOTTIME"):
            try:
                return cls(
                    wall, time.clock_gettime(time.CLOCK_BOOTTIME), psutil.boot_time()
                )
            except (OSError, RuntimeError):
                pass
        return cls(wall)

    def age(self, created):
        """
        Seconds since C{created} (a psutil start time), at least 0.
        """
        if self.sinceBoot is not None:
            age = self.sinceBoot - (created - self.bootTime)
        else:
            age = self.wall - created
        return max(0.0, age)


def _lifetimePercent(proc, now):
    """
    The average CPU use of C{proc} since it started, in percent of one CPU.

    @param now: a L{_Now}.
    """
    times = _attempt(proc.cpu_times, None)
    elapsed = _elapsed(proc, now)
    if times is None or elapsed <= 0:
        return 0.0
    return round((times.user + times.system) / elapsed * 100, 1)


def _elapsed(proc, now):
    """
    Seconds since C{proc} started (0.0 if unknown).

    @param now: a L{_Now}.
    """
    created = _attempt(proc.create_time, None)
    if created is None:
        return 0.0
    return now.age(created)


@frozen
class TopSample:
    """
    What L{JobProcesses.topStart} primed, for L{JobProcesses.topFinish}.

    @ivar started: C{time.monotonic()} when the priming ended.
    @ivar processes: the primed psutil processes, by pid.
    """

    started: float
    processes: dict = field(repr=False)


def groupMembers(group):
    """
    The pids of the processes of process group C{group} (blocking: one
    pass over the process table).
    """
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == group:
                members.append(pid)
        except OSError:
            continue
    return members


def _positive(instance, attribute, value):
    """
    Validate that a limit or a process id is a positive int.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            "%s must be a positive integer, not %r" % (attribute.name, value)
        )


@define
class JobProcesses:
    """
    A job's process tree, and the operations a user may run on it.

    The root process is identified by its pid and its start time, taken on
    the first operation: if the root exits and its pid is reused, the new
    process is not taken for the job.

    All methods block; the daemon calls them from a thread pool, several at
    a time if it likes.

    @ivar rootPid: the job's root process (the daemon's C{--job-pid}; by
        default the daemon's parent, the job wrapper).
    @ivar daemonPid: the JobMon daemon's own pid: marked in C{ps}, never
        signalled.
    @ivar maxProcesses: the cap on the processes of a C{ps} or C{top}
        result.
    @ivar group: when not L{None}, the job is this process group (the
        daemon's own, when no job started it: see
        L{jobmon.worker.scope}) rather than the tree of C{rootPid}: its
        leader is the root, or the daemon if the leader is gone.
    """

    rootPid: int = field(factory=os.getppid, validator=_positive)
    daemonPid: int = field(factory=os.getpid, validator=_positive)
    maxProcesses: int = field(default=DEFAULT_MAX_PROCESSES, validator=_positive)
    group: object = field(default=None, kw_only=True)
    # Tests pass fakes: a kill that records, a fake /proc for VmHWM, a
    # process group table.
    _kill = field(default=os.kill, repr=False, kw_only=True)
    _getpgid = field(default=os.getpgid, repr=False, kw_only=True)
    _listGroup = field(default=groupMembers, repr=False, kw_only=True)
    _procDirectory: str = field(default="/proc", repr=False, kw_only=True)
    # The root as first seen: its start time tells a reused pid.
    _root = field(default=None, init=False, repr=False)
    # The psutil processes of the last ps or top, by pid: psutil measures
    # cpu_percent since the previous call on the same object.
    _samples = field(factory=dict, init=False, repr=False)
    _lock = field(factory=threading.Lock, init=False, repr=False)

    def _goneError(self):
        """
        The error for a root process that is gone.
        """
        return JobMonError(
            REMOTE_ERROR, "the job's process {} is gone".format(self.rootPid)
        )

    def _rootProcess(self):
        """
        Return a new psutil process for the job's root.

        A new object each time: the objects of L{ps} and C{top} keep CPU
        samples that other calls must not disturb.

        @raise JobMonError: C{REMOTE_ERROR} if the root process is gone.
        """
        try:
            current = psutil.Process(self.rootPid)
        except psutil.NoSuchProcess:
            raise self._goneError() from None
        if self._root is None:
            # Two threads may both get here; they find the same process.
            self._root = current
        elif current != self._root:
            # Same pid, another start time: the job's root exited.
            raise self._goneError()
        return current

    def _groupTree(self):
        """
        Return the psutil processes of the job's process group, in tree
        order, its leader (or, if it is gone, the daemon) first.
        """
        processes = {}
        for pid in self._listGroup(self.group):
            try:
                processes[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
        rootPid = self.group if self.group in processes else self.daemonPid
        if rootPid not in processes:
            processes[rootPid] = psutil.Process(rootPid)
        parents = {}
        for pid, proc in processes.items():
            if pid == rootPid:
                continue
            try:
                parents[pid] = proc.ppid()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                parents[pid] = None
            except psutil.NoSuchProcess:
                continue
        return [processes[pid] for pid in treeOrder(rootPid, parents)]

    def _tree(self):
        """
        Return the psutil processes of the job, in tree order (see
        L{treeOrder}), the root first.
        """
        if self.group is not None:
            return self._groupTree()
        root = self._rootProcess()
        try:
            descendants = root.children(recursive=True)
        except psutil.NoSuchProcess:
            raise self._goneError() from None
        processes = {root.pid: root}
        parents = {}
        for proc in descendants:
            try:
                parents[proc.pid] = proc.ppid()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                # Parent unknown: shown as the root of its own subtree.
                parents[proc.pid] = None
            except psutil.NoSuchProcess:
                continue
            processes[proc.pid] = proc
        return [processes[pid] for pid in treeOrder(root.pid, parents)]

    def _describe(self, proc, known, now):
        """
        Build the process struct of C{proc}.

        @param known: whether C{proc} was sampled before, so that its
            C{cpu_percent} since then is meaningful; if not, the average
            since the process started is given.
        @return: the struct, or L{None} if the process is gone.
        """
        try:
            with proc.oneshot():
                ppid = _attempt(proc.ppid, 0)
                cpu = _attempt(partial(proc.cpu_percent, None), 0.0)
                if not known:
                    cpu = _lifetimePercent(proc, now)
                memory = _attempt(proc.memory_info, None)
                return {
                    "pid": proc.pid,
                    "ppid": ppid,
                    "user": _attempt(proc.username, ""),
                    "state": _attempt(proc.status, ""),
                    "cpu_percent": float(cpu),
                    "rss": float(memory.rss) if memory else 0.0,
                    "vms": float(memory.vms) if memory else 0.0,
                    "elapsed": _elapsed(proc, now),
                    "threads": _attempt(proc.num_threads, 0),
                    "name": _attempt(proc.name, ""),
                    "cmdline": _commandLine(proc),
                    "daemon": proc.pid == self.daemonPid,
                }
        except psutil.NoSuchProcess:
            # Every field but the pid is read through _attempt, which keeps
            # zombies: this process is gone.
            return None

    def _sample(self, tree, previous):
        """
        Describe the processes of C{tree}, measuring CPU use since the
        samples of C{previous} (psutil processes by pid), and make those of
        this call the samples for the next L{ps}.

        Called with the lock held.
        """
        now = _Now.take()
        truncated = len(tree) > self.maxProcesses
        samples = {}
        processes = []
        for proc in tree[: self.maxProcesses]:
            sampled = previous.get(proc.pid)
            # Equality compares start times too: a reused pid is new.
            known = sampled is not None and sampled == proc
            if known:
                proc = sampled
            described = self._describe(proc, known, now)
            if described is None:
                continue
            samples[proc.pid] = proc
            processes.append(described)
        self._samples = samples
        root = tree[0].pid if tree else self.rootPid
        return {"root": root, "processes": processes, "truncated": truncated}

    def ps(self):
        """
        List the job's processes, in tree order.

        C{cpu_percent} is measured since the previous L{ps} or C{top} of
        this object; for a process it has not seen, it is the average since
        the process started.

        @return: C{{"root", "processes", "truncated"}}; C{truncated} is true
            when the tree has more than C{maxProcesses} processes (the first
            ones in tree order are kept).
        @raise JobMonError: C{REMOTE_ERROR} if the job's root process is
            gone.
        """
        with self._lock:
            return self._sample(self._tree(), self._samples)

    def topStart(self):
        """
        Start measuring CPU use for C{top}: sample every process of the job.

        @return: a L{TopSample} for L{topFinish}.
        @raise JobMonError: C{REMOTE_ERROR} if the job's root process is
            gone.
        """
        primed = {}
        # Objects of their own: a ps meanwhile does not move their samples.
        for proc in self._tree()[: self.maxProcesses]:
            try:
                _attempt(partial(proc.cpu_percent, None), None)
            except psutil.NoSuchProcess:
                continue
            primed[proc.pid] = proc
        return TopSample(started=time.monotonic(), processes=primed)

    def topFinish(self, sample):
        """
        End a C{top} measurement started by L{topStart}.

        Processes started since L{topStart} are shown with their average
        since they started.

        @return: as L{ps}, with processes sorted by C{cpu_percent}, highest
            first (ties in tree order), and C{interval}: the seconds
            actually measured over.
        @raise JobMonError: C{REMOTE_ERROR} if the job's root process is
            gone.
        """
        with self._lock:
            result = self._sample(self._tree(), sample.processes)
        result["interval"] = round(time.monotonic() - sample.started, 3)
        result["processes"].sort(key=lambda p: -p["cpu_percent"])
        return result

    def _peakRss(self, pid):
        """
        The largest resident size process C{pid} reached (C{VmHWM} of Linux),
        in bytes, or L{None} where the system does not say.
        """
        if not sys.platform.startswith("linux"):
            return None
        path = os.path.join(self._procDirectory, str(pid), "status")
        try:
            with open(path, "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        fields = line.split()
                        # "VmHWM:   1234 kB"
                        return float(int(fields[1]) * 1024)
        except (OSError, ValueError, IndexError):
            pass
        return None

    def res(self):
        """
        Total the resources the job's processes use.

        Every process of the tree counts: C{maxProcesses} does not apply.

        @return: C{{"processes", "threads", "cpu_user", "cpu_system", "rss",
            "rss_peak", "open_files", "read_bytes", "write_bytes",
            "elapsed"}} as in C{docs/API.md}.  A figure a process does not
            let us read counts as 0.
        @raise JobMonError: C{REMOTE_ERROR} if the job's root process is
            gone.
        """
        tree = self._tree()
        now = _Now.take()
        totals = {
            "processes": 0,
            "threads": 0,
            "cpu_user": 0.0,
            "cpu_system": 0.0,
            "rss": 0.0,
            "rss_peak": 0.0,
            "open_files": 0,
            "read_bytes": 0.0,
            "write_bytes": 0.0,
            "elapsed": _elapsed(tree[0], now),
        }
        for proc in tree:
            try:
                with proc.oneshot():
                    times = _attempt(proc.cpu_times, None)
                    memory = _attempt(proc.memory_info, None)
                    threads = _attempt(proc.num_threads, 0)
                    files = 0
                    if hasattr(proc, "num_fds"):
                        files = _attempt(proc.num_fds, 0)
                    io = None
                    if hasattr(proc, "io_counters"):
                        io = _attempt(proc.io_counters, None)
            except psutil.NoSuchProcess:
                continue
            rss = float(memory.rss) if memory else 0.0
            peak = self._peakRss(proc.pid)
            totals["processes"] += 1
            totals["threads"] += threads
            if times is not None:
                totals["cpu_user"] += times.user
                totals["cpu_system"] += times.system
            totals["rss"] += rss
            totals["rss_peak"] = max(totals["rss_peak"], rss if peak is None else peak)
            totals["open_files"] += files
            if io is not None:
                totals["read_bytes"] += float(io.read_bytes)
                totals["write_bytes"] += float(io.write_bytes)
        return totals

    def environment(self, extraPatterns=()):
        """
        Show the environment of the job's root process, secrets hidden
        (paths of credentials shown: see L{isPathVariable}).

        It is the environment the root process started with (what
        C{/proc/PID/environ} shows).  If it cannot be read, or is empty,
        the daemon's own environment, which it inherited from the job
        wrapper, is shown instead.

        @param extraPatterns: redaction patterns added to L{DEFAULT_REDACT}
            (the daemon's C{--redact}).
        @return: C{{"variables": {NAME: VALUE}, "redacted": [NAME, ...]}}.
        @raise ValueError: if a pattern of C{extraPatterns} is invalid (see
            L{checkRedactPatterns}): a configuration error.
        @raise JobMonError: C{REMOTE_ERROR} if the job's root process is
            gone.
        """
        extra = checkRedactPatterns(extraPatterns)
        root = self._groupTree()[0] if self.group is not None else self._rootProcess()
        try:
            env = root.environ()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            env = {}
        except psutil.NoSuchProcess:
            raise self._goneError() from None
        if not env:
            env = dict(os.environ)
        variables, names = redact(env, DEFAULT_REDACT, extra, DEFAULT_REDACT_WORDS)
        return {"variables": variables, "redacted": names}

    def sendSignal(self, name, allowed=frozenset()):
        """
        Send a signal to the job's root process.

        @param name: the signal, as the user gave it (C{"TERM"},
            C{"sigterm"}, C{"usr1"}).
        @param allowed: the signals the daemon allows, as normalised names
            (what L{parseSignalNames} returns).
        @return: C{{"signal": NAME, "pid": PID}}, with the normalised name.
        In a process group (see L{group}), the signal goes to the group's
        leader, if it is still in the group and is not the daemon.  Process
        1 is never signalled.

        @raise JobMonError: C{BAD_REQUEST} if C{name} is not a signal;
            C{NOT_ALLOWED} if it is not in C{allowed}, or if the root
            process is the daemon itself, process 1 or no longer in the
            job's process group; C{REMOTE_ERROR} if the root process is
            gone or the signal cannot be sent.
        """
        normalised = _signalName(name)
        if normalised not in allowed:
            raise JobMonError(NOT_ALLOWED, _refusedSignal(normalised, allowed))
        target = self.rootPid if self.group is None else self.group
        if target == 1:
            raise JobMonError(
                NOT_ALLOWED,
                "process 1 is the system's (or container's) init process: JobMon never "
                "signals it",
            )
        if target == self.daemonPid:
            if self.group is not None:
                raise JobMonError(
                    NOT_ALLOWED,
                    "this daemon was not started by a job, and its process group {} "
                    "holds no job process to signal (start it from the job, or with "
                    "--job-pid)".format(self.group),
                )
            raise JobMonError(
                NOT_ALLOWED,
                "the job's root process {} is the JobMon daemon itself: it is "
                "not signalled".format(target),
            )
        if self.group is not None:
            self._checkInGroup(target)
        else:
            # Refuses a root whose pid now belongs to another process.
            self._rootProcess()
        try:
            self._kill(target, signal.Signals["SIG" + normalised])
        except ProcessLookupError:
            raise self._goneError() from None
        except OSError as e:
            raise JobMonError(
                REMOTE_ERROR,
                "cannot send signal {} to process {}: {}".format(
                    normalised, target, e.strerror or "error"
                ),
            ) from None
        return {"signal": normalised, "pid": target}

    def _checkInGroup(self, pid):
        """
        Refuse to signal C{pid} unless it is in the job's process group.

        @raise JobMonError: C{NOT_ALLOWED} if it is gone or elsewhere.
        """
        try:
            group = self._getpgid(pid)
        except OSError:
            group = None
        if group != self.group:
            raise JobMonError(
                NOT_ALLOWED,
                "process {} is no longer in the job's process group {}: it is not "
                "signalled".format(pid, self.group),
            )

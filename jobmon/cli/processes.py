"""
The commands about the job's processes: C{ps}, C{top}, C{res}, C{env}
and C{signal}.  Each is one L{Command} with the functions that format its
result.
"""

import argparse
import time

from jobmon.cli.format import (
    formatDuration,
    formatElapsed,
    formatISO,
    formatSize,
    humanSize,
    printable,
    table,
)
from jobmon.cli.parser import Command, addJob, positive, seconds

# -- ps -----------------------------------------------------------------------


class Ps(Command):
    """
    C{ps}: the job's process tree.
    """

    name = "ps"
    help = "list the job's processes as a tree"
    examples = ("jobmon-query ps 1234.0",)

    def configure(self, sub):
        """
        C{JOB}.
        """
        addJob(sub)

    def run(self, s):
        """
        Print the process tree; say when the list was cut.
        """
        result = s.query("ps")
        if s.json:
            s.out.json(result)
            return
        s.out.lines(formatProcesses(result.get("processes", [])))
        if result.get("truncated"):
            s.say("process list truncated: %d processes shown"
                  % (len(result.get("processes", [])),))


def formatProcesses(processes, tree=True):
    """
    Return the lines of a C{ps} or C{top} table: PID, PPID, USER, STATE,
    %CPU, RSS, ELAPSED, COMMAND.

    @param tree: indent each command by its depth in the process tree
        (C{processes} in tree order, parents first); else keep the order
        given.
    """
    depths = {}
    rows = []
    for proc in processes:
        pid, ppid = proc.get("pid"), proc.get("ppid")
        depth = depths[ppid] + 1 if ppid in depths else 0
        depths[pid] = depth
        command = proc.get("cmdline") or "[%s]" % (proc.get("name", "?"),)
        command = printable(str(command))
        if tree:
            command = "  " * depth + command
        if proc.get("daemon"):
            command += " (jobmon)"
        cpu = proc.get("cpu_percent")
        rows.append([
            str(pid), str(ppid),
            printable(str(proc.get("user", "?"))),
            printable(str(proc.get("state", "?"))),
            "%.1f" % (cpu,) if cpu is not None else "-",
            formatSize(proc.get("rss"), True),
            formatElapsed(proc["elapsed"]) if proc.get("elapsed") is not None else "-",
            command,
        ])
    header = ["PID", "PPID", "USER", "STATE", "%CPU", "RSS", "ELAPSED", "COMMAND"]
    return table(header, rows, right=(0, 1, 4, 5, 6))


# -- top ----------------------------------------------------------------------


_CLEAR_SCREEN = b"\x1b[H\x1b[2J"


class Top(Command):
    """
    C{top}: C{COUNT} samples of the job's processes, busiest first.
    """

    name = "top"
    help = "sample the job's processes, busiest first"
    description = (
        "Sample the job's processes COUNT times, CPU use measured over\n"
        "SECONDS each time, busiest first.  With --json and COUNT > 1, one\n"
        "JSON object per line; each has sampled_at (ISO 8601, UTC) and\n"
        "sampled_at_epoch (seconds since the epoch): when it arrived.")
    examples = ("jobmon-query top 1234.0", "jobmon-query top 1234.0 -d 2 -n 10")

    def configure(self, sub):
        """
        C{JOB}, C{-d} and C{-n}.
        """
        addJob(sub)
        sub.add_argument("-d", "--delay", metavar="SECONDS", type=seconds, default=1.0,
                         help="measure CPU use over this many seconds (default: 1, "
                              "at most 10)")
        sub.add_argument("-n", "--count", metavar="COUNT", type=positive, default=1,
                         help="number of samples (default: 1)")

    def run(self, s):
        """
        Print each sample, clearing a terminal between them.
        """
        a = s.args
        clear = s.out.isatty() and a.count > 1 and not s.json
        for sample in range(a.count):
            result = s.query("top", a.delay)
            stamp = time.time()
            if s.json:
                result = dict(result, sampled_at=formatISO(stamp),
                              sampled_at_epoch=round(stamp, 3))
                if a.count == 1:
                    s.out.json(result)
                else:
                    s.out.jsonLine(result)
                continue
            if clear:
                s.out.raw(_CLEAR_SCREEN)
            elif sample:
                s.out.line("")
            processes = byCPU(result.get("processes", []))
            s.out.line("%s  %d processes, CPU over %gs" % (
                time.strftime("%H:%M:%S", time.localtime(stamp)), len(processes), a.delay))
            s.out.lines(formatProcesses(processes, tree=False))
            s.out.flush()


def byCPU(processes):
    """
    Return C{processes} sorted by C{cpu_percent}, highest first (stable).
    """
    return sorted(processes, key=lambda p: -(p.get("cpu_percent") or 0.0))


# -- res ----------------------------------------------------------------------


class Res(Command):
    """
    C{res}: the job's resource totals.
    """

    name = "res"
    help = "show the job's resource totals (CPU, memory, I/O)"
    description = (
        "Show the job's resources, over its process tree: each figure says\n"
        "whether it is a sum over the job's processes or the largest single\n"
        "process (rss_peak: the peak of the process that peaked highest, not\n"
        "the peak of the job as a whole).")
    examples = ("jobmon-query res 1234.0",)

    def configure(self, sub):
        """
        C{JOB}.
        """
        addJob(sub)

    def run(self, s):
        """
        Print the C{key: value} lines.
        """
        s.show(s.query("res"), formatRes)


_SUM = "sum"
_LARGEST = "largest single process"

_RES_FIELDS = (
    ("processes", str, None),
    ("threads", str, _SUM),
    ("cpu_user", formatDuration, _SUM),
    ("cpu_system", formatDuration, _SUM),
    ("rss", humanSize, _SUM),
    ("rss_peak", humanSize, _LARGEST),
    ("open_files", str, _SUM),
    ("read_bytes", humanSize, _SUM),
    ("write_bytes", humanSize, _SUM),
    ("elapsed", formatDuration, "since the job's root process started"),
)
"""The figures of C{res}, in order: name, how to show the value, and what
it is over (L{_SUM}: summed over the job's processes; L{_LARGEST}: the
highest of any one process)."""


def formatRes(result):
    """
    Return the C{key: value} lines of a C{res} result, sizes and times in
    human units, each followed by what it is over (summed over the job's
    processes, or the largest single process); fields the worker does not
    report are left out.
    """
    count = result.get("processes")
    over = "sum over the processes"
    if isinstance(count, int):
        over = "sum over %d process%s" % (count, "" if count == 1 else "es")
    lines = []
    known = set()
    for key, show, note in _RES_FIELDS:
        known.add(key)
        value = result.get(key)
        if value is None:
            continue
        line = "%s: %s" % (key, show(value))
        if note is not None:
            line += "  (%s)" % (over if note is _SUM else note,)
        lines.append(line)
    for key in sorted(set(result) - known):
        lines.append("%s: %s" % (printable(str(key)), printable(str(result[key]))))
    return lines


# -- env ----------------------------------------------------------------------


class Env(Command):
    """
    C{env}: the job's environment.
    """

    name = "env"
    help = "show the job's environment (secrets redacted)"
    examples = ("jobmon-query env 1234.0 | grep ^PATH=",)

    def configure(self, sub):
        """
        C{JOB}.
        """
        addJob(sub)

    def run(self, s):
        """
        Print the C{NAME=value} lines.
        """
        s.show(s.query("env"), formatEnv)


def formatEnv(result):
    """
    Return the C{NAME=value} lines of an C{env} result, sorted by name;
    redacted values show C{<redacted>}.
    """
    variables = result.get("variables", {})
    redacted = set(result.get("redacted", ()))
    lines = []
    for name in sorted(variables):
        value = "<redacted>" if name in redacted else str(variables[name])
        lines.append("%s=%s" % (printable(str(name)), printable(value)))
    return lines


# -- signal -------------------------------------------------------------------


class Signal(Command):
    """
    C{signal}: send a signal to the job.
    """

    name = "signal"
    help = "send a signal to the job (if its configuration allows it)"
    description = (
        "Send a signal to the job's root process, if the daemon's\n"
        "configuration allows that signal (else status 4, and the message\n"
        "lists the signals it allows).")
    examples = ("jobmon-query signal 1234.0 USR1", "jobmon-query signal 1234.0 TERM")

    def configure(self, sub):
        """
        C{JOB} and C{SIG}.
        """
        addJob(sub)
        sub.add_argument("signal", metavar="SIG", type=signalName,
                         help="a signal name or number: TERM, SIGUSR1, 10 (write "
                              "'-- -TERM' for the dash form)")

    def run(self, s):
        """
        Say which signal went to which process.
        """
        result = s.query("signal", s.args.signal)
        if s.json:
            s.out.json(result)
        else:
            s.out.line("sent SIG%s to process %s" % (
                printable(str(result.get("signal", s.args.signal))), result.get("pid", "?")))


def signalName(text):
    """
    Return the signal name to send for C{text}: C{TERM} for C{term},
    C{SIGTERM}, C{-TERM} or C{15}.

    @raise argparse.ArgumentTypeError: for a number that names no signal.
    """
    name = text.strip().upper().lstrip("-")
    if name.isdigit():
        import signal

        try:
            name = signal.Signals(int(name)).name
        except ValueError:
            raise argparse.ArgumentTypeError("no such signal: %r" % (text,))
    if name.startswith("SIG"):
        name = name[3:]
    if not name:
        raise argparse.ArgumentTypeError("no such signal: %r" % (text,))
    return name

"""
C{jobmon-query}: ask a running batch job about its files, processes and
resources.

    jobmon-query [--server URL] [--proxy FILE] [--key FILE] [--ca-dir DIR]
                 [--timeout S] [--json] COMMAND ...

Commands:

  - C{whoami}; C{jobs [--all] [--state S] [--mode M] [--host GLOB] [-l]};
  - files: C{ls JOB [PATH] [-l] [-a] [--depth N]}, C{stat JOB PATH},
    C{cat JOB PATH [--offset N] [--length N] [--raw] [-f]},
    C{head JOB PATH [-n N | -c N] [--raw]},
    C{tail JOB PATH [-n N | -c N] [--raw] [-f | -F]},
    C{du JOB [PATH] [-h]}, C{df JOB [PATH] [-h]};
  - processes: C{ps JOB}, C{top JOB [-d SECONDS] [-n COUNT]}, C{res JOB},
    C{env JOB}, C{signal JOB SIG};
  - commands the job offers: C{commands JOB}, C{run JOB NAME [ARGS...]}.

The global options may also follow the command (for C{run}, before NAME).
A job may be named by a unique prefix of its id: when the server knows no
job by that name, the command looks for one among the caller's jobs.

Defaults: the server from C{$JOBMON_SERVER}; the credential from
C{$X509_USER_PROXY}, else C{/tmp/x509up_u$UID}; the CA directory from
C{$X509_CERT_DIR}, else C{/etc/grid-security/certificates}; a timeout of 60
seconds, which is also sent to the server as the query's own timeout.

File data is written as it is, except that binary data (NUL bytes, or not
UTF-8, in the first 8 KiB) is not written to a terminal without C{--raw}.
C{cat} streams a file larger than one result in chunks; C{tail -f}/C{cat
-f} follow a growing file until Ctrl-C, reconnecting (with the same offset)
when the server restarts.  With C{--json} every command prints one JSON
document; C{-f} and C{top -n COUNT} (COUNT > 1) print one JSON object per
line.

Every error is one line on standard error, prefixed C{jobmon-query: }.  The
exit statuses are listed once, in L{EXIT_STATUS_HELP} (shown by C{--help}),
and computed by the table L{EXIT_CODES} and the function L{exitCode}.

Tab completion needs the optional C{argcomplete} package: run
C{eval "$(register-python-argcomplete jobmon-query)"}.  It is imported only
while the shell completes, so that ordinary runs do not pay for it.

This module imports only the standard library and L{jobmon.client} /
L{jobmon.errors}, so that the command starts fast; modules needed by a few
commands (C{json}, C{base64}, C{fnmatch}) are imported when used.
"""

import argparse
import os
import sys
import time

from jobmon import client as _client
from jobmon import errors
from jobmon.cli import jobs
from jobmon.cli.exits import (  # noqa: F401 (the exit statuses are part of this API)
    EXIT_AUTH, EXIT_CODES, EXIT_FORBIDDEN, EXIT_GONE, EXIT_INTERRUPTED, EXIT_NO_JOB,
    EXIT_OK, EXIT_REMOTE, EXIT_SERVER, EXIT_STATUS_HELP, EXIT_TIMEOUT, EXIT_USAGE,
    exitCode,
)
from jobmon.cli.format import (  # noqa: F401
    _MONTHS, formatAge, formatDuration, formatElapsed, formatMode, formatTime,
    humanSize, printable, shortDN,
)
from jobmon.cli.format import formatSize as _size
from jobmon.cli.format import table as _table
from jobmon.cli.output import BINARY_SAMPLE, looksBinary, toJSON  # noqa: F401
from jobmon.cli.output import JSONStream as _JSONStream
from jobmon.cli.output import Output as _Output
from jobmon.cli.output import flushQuietly as _flushQuietly
from jobmon.cli.output import oneLine as _oneLine
from jobmon.cli.output import silence as _silence
from jobmon.cli.output import writeError as _writeError
from jobmon.cli.parser import PROG, Command
from jobmon.cli.parser import GLOBAL_WITH_VALUE as _GLOBAL_WITH_VALUE
from jobmon.cli.parser import Parser as _Parser
from jobmon.cli.parser import ParserExit as _ParserExit
from jobmon.cli.parser import UsageError as _UsageError
from jobmon.cli.parser import addGlobalOptions as _addGlobalOptions
from jobmon.cli.parser import addJob as _job
from jobmon.cli.parser import count as _count
from jobmon.cli.parser import positive as _positive
from jobmon.cli.parser import seconds as _seconds
from jobmon.cli.session import Session as _Session
from jobmon.errors import JobMonError


EXAMPLES_HELP = """\
examples:
  export JOBMON_SERVER=https://jobmon.example.org:8443/RPC2
  jobmon-query whoami
  jobmon-query --proxy ~/.globus/usercert.pem --key ~/.globus/userkey.pem whoami
  jobmon-query jobs --state ready
  jobmon-query ls 1234.0 -l
  jobmon-query ls 1234 output/ --depth 2      # a unique prefix names the job
  jobmon-query tail 1234.0 job.log -n 50
  jobmon-query tail -F 1234.0 job.log         # follow until Ctrl-C
  jobmon-query cat 1234.0 result.root > result.root
  jobmon-query cat 1234.0 job.log --offset 1048576 | less
  jobmon-query du -h 1234.0
  jobmon-query ps 1234.0
  jobmon-query top 1234.0 -d 2 -n 5
  jobmon-query run 1234.0 nvidia-smi -q
  jobmon-query signal 1234.0 USR1
  jobmon-query --json ls 1234.0 | jq '.entries[].name'

Each command has its own help: jobmon-query COMMAND --help.

tab completion (needs the argcomplete package):
  eval "$(register-python-argcomplete jobmon-query)"
"""

COMMAND_EXAMPLES = {
    "ls": ["jobmon-query ls 1234.0", "jobmon-query ls 1234.0 output -l",
           "jobmon-query ls 1234.0 -a --depth 2"],
    "stat": ["jobmon-query stat 1234.0 job.log"],
    "cat": ["jobmon-query cat 1234.0 result.root > result.root",
            "jobmon-query cat 1234.0 job.log --offset 1048576 --length 4096",
            "jobmon-query cat -f 1234.0 job.log     # then follow it"],
    "head": ["jobmon-query head 1234.0 job.log -n 20",
             "jobmon-query head 1234.0 data.bin -c 64 | xxd"],
    "tail": ["jobmon-query tail 1234.0 job.log -n 50",
             "jobmon-query tail -c 1024 1234.0 job.log",
             "jobmon-query tail -F 1234.0 job.log    # follow until Ctrl-C"],
    "du": ["jobmon-query du -h 1234.0", "jobmon-query du 1234.0 output"],
    "df": ["jobmon-query df -h 1234.0"],
    "ps": ["jobmon-query ps 1234.0"],
    "top": ["jobmon-query top 1234.0", "jobmon-query top 1234.0 -d 2 -n 10"],
    "res": ["jobmon-query res 1234.0"],
    "env": ["jobmon-query env 1234.0 | grep ^PATH="],
    "commands": ["jobmon-query commands 1234.0"],
    "run": ["jobmon-query run 1234.0 nvidia-smi",
            "jobmon-query run 1234.0 grep -i error job.log",
            "jobmon-query --json run 1234.0 nvidia-smi -q"],
    "signal": ["jobmon-query signal 1234.0 USR1", "jobmon-query signal 1234.0 TERM"],
}
"""Examples shown by C{jobmon-query COMMAND --help}."""

FOLLOW_WAIT = 20.0
"""Seconds one C{follow} query waits on the worker for new bytes (the
server allows at most 25)."""

RETRY_FIRST = 0.2
"""Seconds before the first reconnection attempt while following."""

RETRY_MAX = 5.0
"""The longest wait between two reconnection attempts."""

REREGISTER_GRACE = 60.0
"""Seconds a followed job may stay unknown to the server (404), or its
server refuse connections, before the command gives up: a restarted server
needs that time to see the job's daemon register again."""


_CLEAR_SCREEN = b"\x1b[H\x1b[2J"


# -- formatting ---------------------------------------------------------------


def formatListing(result, now):
    """
    Return the lines of an C{ls} result, C{ls -l} style: mode, size, mtime,
    name (and C{-> target} for links).
    """
    entries = result.get("entries", [])
    sizes = ["%d" % (e.get("size", 0),) for e in entries]
    width = max([len(s) for s in sizes], default=0)
    lines = []
    for entry, size in zip(entries, sizes):
        name = printable(entry.get("name", "?"))
        if entry.get("type") == "link" and "target" in entry:
            name += " -> " + printable(entry["target"])
        lines.append(
            "%s %s %s %s"
            % (
                formatMode(entry.get("type"), entry.get("mode", 0)),
                size.rjust(width),
                formatTime(entry.get("mtime", 0), now),
                name,
            )
        )
    return lines


def formatNames(names, width=None):
    """
    Return the lines that show C{names}: one per line, or, given the
    terminal's C{width}, in columns filled top to bottom as C{ls} does.
    """
    names = [printable(n) for n in names]
    if width is None or not names:
        return names
    longest = max(len(n) for n in names)
    columns = max(1, (width + 2) // (longest + 2))
    rows = -(-len(names) // columns)
    columns = -(-len(names) // rows)
    lines = []
    for row in range(rows):
        cells = [names[col * rows + row] for col in range(columns)
                 if col * rows + row < len(names)]
        lines.append("  ".join(cell.ljust(longest) for cell in cells).rstrip())
    return lines


def formatStat(entry):
    """
    Return the C{key: value} lines of a C{stat} result.
    """
    from datetime import datetime

    mode = int(entry.get("mode", 0))
    try:
        mtime = datetime.fromtimestamp(entry["mtime"]).astimezone()
        mtime = mtime.isoformat(timespec="seconds")
    except (KeyError, OverflowError, OSError, ValueError):
        mtime = "?"
    lines = [
        "path: %s" % (printable(entry.get("path", entry.get("name", "?"))),),
        "type: %s" % (printable(str(entry.get("type", "?"))),),
        "size: %d" % (entry.get("size", 0),),
        "mode: %04o (%s)" % (mode, formatMode(entry.get("type"), mode)),
        "mtime: %s" % (mtime,),
    ]
    if "target" in entry:
        lines.append("target: %s" % (printable(entry["target"]),))
    return lines


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
            _size(proc.get("rss"), True),
            formatElapsed(proc["elapsed"]) if proc.get("elapsed") is not None else "-",
            command,
        ])
    header = ["PID", "PPID", "USER", "STATE", "%CPU", "RSS", "ELAPSED", "COMMAND"]
    return _table(header, rows, right=(0, 1, 4, 5, 6))


def byCPU(processes):
    """
    Return C{processes} sorted by C{cpu_percent}, highest first (stable).
    """
    return sorted(processes, key=lambda p: -(p.get("cpu_percent") or 0.0))


_RES_FIELDS = (
    ("processes", str),
    ("threads", str),
    ("cpu_user", formatDuration),
    ("cpu_system", formatDuration),
    ("rss", humanSize),
    ("rss_peak", humanSize),
    ("open_files", str),
    ("read_bytes", humanSize),
    ("write_bytes", humanSize),
    ("elapsed", formatDuration),
)


def formatRes(result):
    """
    Return the C{key: value} lines of a C{res} result, sizes and times in
    human units; fields the worker does not report are left out.
    """
    lines = []
    known = set()
    for key, show in _RES_FIELDS:
        known.add(key)
        value = result.get(key)
        if value is not None:
            lines.append("%s: %s" % (key, show(value)))
    for key in sorted(set(result) - known):
        lines.append("%s: %s" % (printable(str(key)), printable(str(result[key]))))
    return lines


def formatDu(result, human=False):
    """
    Return the lines of a C{du} result: each direct child, largest first
    (directories with a C{/}), then the total with the counts.
    """
    entries = sorted(result.get("entries", []), key=lambda e: -(e.get("size") or 0))
    rows = []
    for entry in entries:
        name = printable(str(entry.get("name", "?")))
        if entry.get("type") == "dir":
            name += "/"
        rows.append([_size(entry.get("size"), human), name])
    rows.append([
        _size(result.get("total"), human),
        "total (%s files, %s dirs)" % (result.get("files", "?"), result.get("dirs", "?")),
    ])
    widths = max(len(row[0]) for row in rows)
    return ["%s  %s" % (size.rjust(widths), name) for size, name in rows]


def formatDf(result, path, human=False):
    """
    Return the lines of a C{df} result: a header and one row.
    """
    percent = result.get("percent")
    row = [
        _size(result.get("total"), human),
        _size(result.get("used"), human),
        _size(result.get("free"), human),
        "%.0f%%" % (percent,) if percent is not None else "-",
        _size(result.get("inodes_total"), human),
        _size(result.get("inodes_free"), human),
        printable(str(result.get("path", path))),
    ]
    header = ["SIZE", "USED", "AVAIL", "USE%", "INODES", "IFREE", "PATH"]
    return _table(header, [row], right=(0, 1, 2, 3, 4, 5))


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


def formatCommands(result):
    """
    Return the table of a C{commands} result, or C{["No commands."]}.
    """
    commands = result.get("commands", [])
    if not commands:
        return ["No commands."]
    rows = []
    for command in commands:
        timeout = command.get("timeout")
        rows.append([
            printable(str(command.get("name", "?"))),
            formatAge(timeout) if timeout is not None else "-",
            printable(str(command.get("usage") or "")),
            printable(str(command.get("description") or "")),
        ])
    return _table(["NAME", "TIMEOUT", "USAGE", "DESCRIPTION"], rows, right=(1,))


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


# -- the command line ---------------------------------------------------------


def _raw(sub):
    """
    Add C{--raw}.
    """
    sub.add_argument("--raw", action="store_true",
                     help="write binary data to a terminal too")


def _linesOrBytes(sub, what):
    """
    Add C{-n N} and C{-c N}, which exclude each other.
    """
    group = sub.add_mutually_exclusive_group()
    group.add_argument("-n", "--lines", metavar="N", type=_count, default=None,
                       help="the %s N lines (default: 10)" % (what,))
    group.add_argument("-c", "--bytes", metavar="N", type=_count, default=None,
                       help="the %s N bytes instead" % (what,))


def _configure(name, sub):
    """
    Add the arguments of command C{name} to its parser C{sub}.
    """
    if name == "ls":
        _job(sub)
        sub.add_argument("path", metavar="PATH", nargs="?", default=".",
                         help="directory or file, relative to the working "
                              "directory (default: .)")
        sub.add_argument("-l", "--long", action="store_true",
                         help="long format: mode, size, time, name")
        sub.add_argument("-a", "--all", action="store_true",
                         help="include names that start with a dot")
        sub.add_argument("--depth", metavar="N", type=_count, default=None,
                         help="also list subdirectories, N levels down (at most 8)")
    elif name == "stat":
        _job(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
    elif name == "cat":
        _job(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        sub.add_argument("--offset", metavar="N", type=_count, default=0,
                         help="first byte to read (default: 0)")
        sub.add_argument("--length", metavar="N", type=_count, default=None,
                         help="number of bytes to read (default: to the end)")
        _raw(sub)
        sub.add_argument("-f", "--follow", action="store_true",
                         help="then follow the file as it grows, until Ctrl-C")
    elif name == "head":
        _job(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        _linesOrBytes(sub, "first")
        _raw(sub)
    elif name == "tail":
        _job(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        _linesOrBytes(sub, "last")
        _raw(sub)
        group = sub.add_mutually_exclusive_group()
        group.add_argument("-f", "--follow", action="store_true",
                           help="then follow the file as it grows (also across "
                                "rotations), until Ctrl-C")
        group.add_argument("-F", dest="retry", action="store_true",
                           help="like -f, and wait for the file if it does not "
                                "exist yet")
    elif name in ("du", "df"):
        _job(sub)
        sub.add_argument("path", metavar="PATH", nargs="?", default=".",
                         help="directory (default: .)")
        sub.add_argument("-h", "--human-readable", dest="human", action="store_true",
                         help="sizes in K, M, G (powers of 1024)")
        sub.add_argument("--help", action="help", help="show this help and exit")
    elif name == "top":
        _job(sub)
        sub.add_argument("-d", "--delay", metavar="SECONDS", type=_seconds, default=1.0,
                         help="measure CPU use over this many seconds (default: 1, "
                              "at most 10)")
        sub.add_argument("-n", "--count", metavar="COUNT", type=_positive, default=1,
                         help="number of samples (default: 1)")
    elif name in ("ps", "res", "env", "commands"):
        _job(sub)
    elif name == "run":
        _job(sub)
        sub.add_argument("name", metavar="NAME", help="the command (see 'commands')")
        sub.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER,
                         help="its arguments; everything after NAME is passed on")
    elif name == "signal":
        _job(sub)
        sub.add_argument("signal", metavar="SIG", type=signalName,
                         help="a signal name or number: TERM, SIGUSR1, 10 (write "
                              "'-- -TERM' for the dash form)")


_COMMAND_HELP = (
    ("whoami", "show the identity the server sees for your credential"),
    ("jobs", "list your jobs (--all: everyone's, for admins)"),
    ("ls", "list a directory of the job's working directory"),
    ("stat", "show the details of one file"),
    ("cat", "write a file's bytes (or part of them) to standard output"),
    ("head", "write the first lines or bytes of a file"),
    ("tail", "write the last lines or bytes of a file; -f to follow it"),
    ("du", "show disk usage under a directory, largest first"),
    ("df", "show the free space of the filesystem holding a path"),
    ("ps", "list the job's processes as a tree"),
    ("top", "sample the job's processes, busiest first"),
    ("res", "show the job's resource totals (CPU, memory, I/O)"),
    ("env", "show the job's environment (secrets redacted)"),
    ("commands", "list the commands the job offers to 'run'"),
    ("run", "run one of the job's commands; its exit status becomes 0 or 1"),
    ("signal", "send a signal to the job (if its configuration allows it)"),
    ("history", "show your jobs and queries, kept across server restarts"),
    ("audit", "show the server's audit records about a job (admins)"),
)

_DESCRIPTIONS = {
    "ls": "List a directory of the job's working directory: names (in columns\n"
          "on a terminal, one per line otherwise), or with -l mode, size, time\n"
          "and name.  Names starting with a dot are left out unless -a.",
    "cat": "Write a file's bytes to standard output, as they are.  A file larger\n"
           "than one result is read in chunks, up to the size it had at the\n"
           "start.  On a terminal, binary data is not shown without --raw.\n"
           "With -f, then follow the file as tail -f does.",
    "tail": "Write the last lines (or bytes) of a file.  With -f or -F, then\n"
            "write what is added until Ctrl-C, following the file across\n"
            "rotations and reconnecting without loss or repetition when the\n"
            "server restarts.  On a terminal, binary data is not shown without\n"
            "--raw.",
    "top": "Sample the job's processes COUNT times, CPU use measured over\n"
           "SECONDS each time, busiest first.  With --json and COUNT > 1, one\n"
           "JSON object per line.",
    "run": "Run one of the commands the job's configuration offers (see\n"
           "'commands'), never through a shell.  Everything after NAME is\n"
           "passed on as its arguments, also words that start with '-'.  Its\n"
           "standard output and error go to ours.  The exit status is 0 if it\n"
           "exited with 0, else 1, with 'jobmon-query: NAME exited with status\n"
           "N' on standard error.",
    "signal": "Send a signal to the job's root process, if the daemon's\n"
              "configuration allows that signal (else status 1).",
}
"""Longer descriptions for some commands' help."""

_NO_HELP_FLAG = ("du", "df")
"""Commands whose C{-h} means human-readable sizes: their help is
C{--help} only."""


def _wantedCommand(argv):
    """
    Guess which command C{argv} runs, without parsing it: the first word
    that is neither an option nor the value of a global option.  Only that
    command's parser is filled in (start-up time).
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def buildParser(stdout=None, stderr=None, argv=None):
    """
    Return the argument parser of C{jobmon-query}, writing help to
    C{stdout} and messages to C{stderr}.

    @param argv: the arguments about to be parsed: only the parser of the
        command they name is filled in.  By default every command's is.
    """
    from jobmon import __version__

    parser = _Parser(
        prog=PROG,
        description="Ask a running batch job about its files, processes and\n"
                    "resources, through a JobMon server.",
        epilog=EXAMPLES_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    _addGlobalOptions(parser, True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = None if argv is None else _wantedCommand(argv)
    for command in _ORDER:
        sub = commands.add_parser(
            command.name, help=command.help,
            description=command.description or command.help,
            epilog="examples:\n" + "".join("  %s\n" % (line,) for line in command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=command.helpFlag,
        )
        sub.out = stdout
        sub.err = stderr
        if wanted is None or wanted == command.name or wanted not in _BY_NAME:
            command.configure(sub)
            _addGlobalOptions(sub, False)
    parser.out = stdout
    parser.err = stderr
    return parser


# -- output -------------------------------------------------------------------


# -- the commands -------------------------------------------------------------


def _show(s, result, format):
    """
    Print C{result}: as one JSON document with C{--json}, else as the lines
    C{format(result)} gives.
    """
    if s.json:
        s.out.json(result)
    else:
        s.out.lines(format(result))


def _cmdLs(s):
    """
    C{ls}: names (in columns on a terminal), or C{-l} lines.
    """
    a = s.args
    fields = {"all": bool(a.all)}
    if a.depth is not None:
        fields["depth"] = a.depth
    result = s.query("ls", a.path, **fields)
    if s.json:
        s.out.json(result)
        return
    entries = result.get("entries", [])
    if a.long:
        s.out.lines(formatListing(result, time.time()))
    else:
        width = s.out.width(s.environ) if s.out.isatty() else None
        s.out.lines(formatNames([e.get("name", "?") for e in entries], width))
    if result.get("truncated"):
        s.say("listing truncated (entry cap): %d entries shown" % (len(entries),))


def _cmdStat(s):
    """
    C{stat}: one file's details.
    """
    _show(s, s.query("stat", s.args.path), formatStat)


def _cmdCat(s):
    """
    C{cat}: a file's bytes, in chunks; then, with C{-f}, what is added.
    """
    a = s.args
    if a.follow and a.length is not None:
        raise _UsageError("cat: --length and -f cannot be used together "
                          "(see jobmon-query cat --help)")
    s.following = a.follow
    offset = _streamCat(s, a.path, a.offset, a.length)
    if a.follow:
        _follow(s, a.path, offset)


def _streamCat(s, path, offset, length):
    """
    Write C{length} bytes of C{path} from C{offset} (or up to the size the
    file had at the first read), one result after another, each written and
    flushed before the next request.

    @return: the offset after the last byte read.
    """
    lines = s.args.follow and s.json
    result = s.query("cat", path, offset, length)
    data = result.get("data", b"")
    start = result.get("offset", offset)
    size = result.get("size")
    pos = start + len(data)
    end = None
    if size is not None:
        end = size if length is None else min(size, offset + length)
    if not (result.get("truncated") and data and end is not None and pos < end):
        # Everything asked for came at once.
        if lines:
            s.out.jsonLine(result)
        elif s.json:
            s.out.json(result)
        else:
            s.emit(data)
            if result.get("truncated"):
                s.say("output cut at %d bytes (result cap); use --offset %d to "
                      "read on" % (len(data), pos))
        return pos
    stream = None
    if lines:
        s.out.jsonLine(result)
    elif s.json:
        stream = _JSONStream(s.out, result.get("path", path), start, size)
        stream.write(data)
    elif not s.emit(data, end - start):
        return end
    while pos < end:
        result = s.query("cat", path, pos, end - pos)
        data = result.get("data", b"")
        if not data:
            break
        if lines:
            s.out.jsonLine(result)
        elif stream is not None:
            stream.write(data)
        else:
            s.out.raw(data)
            s.out.flush()
        pos += len(data)
    if stream is not None:
        stream.close(pos < end)
    if pos < end:
        s.say("%s got shorter while it was read: %d of %d bytes written"
              % (printable(path), pos - start, end - start))
    return pos


def _headOrTail(s, op):
    """
    Run C{head} or C{tail} (without C{-f}): one result.

    @return: the result.
    """
    a = s.args
    result = s.query(op, a.path, lines=a.lines, bytes=a.bytes)
    data = result.get("data", b"")
    if s.json:
        if op == "tail" and (a.follow or a.retry):
            s.out.jsonLine(result)
        else:
            s.out.json(result)
    else:
        s.emit(data)
    if result.get("truncated"):
        if op == "head":
            s.say("output cut at %d bytes (result cap); use cat --offset %d to "
                  "read on" % (len(data), result.get("offset", 0) + len(data)))
        else:
            s.say("output cut at %d bytes (result cap): the %s asked for start "
                  "before offset %d; use cat --offset/--length to read the rest"
                  % (len(data), "bytes" if a.bytes is not None else "lines",
                     result.get("offset", 0)))
    return result


def _cmdHead(s):
    """
    C{head}: the first lines or bytes of a file.
    """
    _headOrTail(s, "head")


def _cmdTail(s):
    """
    C{tail}: the last lines or bytes of a file; with C{-f}/C{-F}, then
    what is added.
    """
    a = s.args
    if not (a.follow or a.retry):
        _headOrTail(s, "tail")
        return
    s.following = True
    try:
        result = _headOrTail(s, "tail")
    except JobMonError as e:
        if not (a.retry and e.code == errors.NO_SUCH_FILE):
            raise
        # tail -F: wait for the file to appear; follow says it is missing.
        offset = 0
    else:
        offset = result.get("offset", 0) + len(result.get("data", b""))
    _follow(s, a.path, offset)


def _followRetry(e):
    """
    Tell how a failed C{follow} query may be retried: C{"always"} (the
    server is restarting or unreachable), C{"grace"} (only within
    L{REREGISTER_GRACE}: the job is unknown, or a new connection was refused,
    as a restarting server may do) or C{None} (a real error).
    """
    code = e.code
    if code in (_client.UNREACHABLE, _client.CONNECTION_LOST, _client.CLIENT_TIMEOUT,
                errors.UNAVAILABLE, errors.TIMEOUT, errors.TOO_MANY):
        return "always"
    if code == _client.HTTP_ERROR:
        status = getattr(e, "status", None)
        return "always" if status is not None and status >= 500 else None
    if code in (errors.NO_SUCH_JOB, _client.CERTIFICATE_REFUSED, _client.TLS_ERROR):
        return "grace"
    return None


def _follow(s, path, offset, inode=None):
    """
    Follow C{path} from C{offset} until Ctrl-C: print new bytes as they
    come; across server restarts, ask again from the same offset and inode,
    so that no byte is lost or repeated.
    """
    s.following = True
    delay = RETRY_FIRST
    graceStart = None
    failing = False
    missing = False
    shown = path
    while True:
        try:
            result = s.client.follow(s.job, path, offset, inode, FOLLOW_WAIT)
        except JobMonError as e:
            how = _followRetry(e)
            if how is None:
                raise
            if how == "grace":
                now = s.clock()
                if graceStart is None:
                    graceStart = now
                elif now - graceStart > REREGISTER_GRACE:
                    raise
            if not failing:
                s.say("%s; retrying from offset %d (Ctrl-C to stop)" % (e, offset))
                failing = True
            s.client.close()
            s.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            continue
        if failing:
            s.say("reconnected; following %s from offset %d" % (printable(shown), offset))
            failing = False
        delay = RETRY_FIRST
        graceStart = None
        shown = result.get("path", path)
        if result.get("missing"):
            if not missing:
                s.say("%s is missing; waiting for it" % (printable(shown),))
                if s.json:
                    s.out.jsonLine(result)
                missing = True
            offset = result.get("next_offset", offset)
            inode = result.get("inode") or inode
            continue
        missing = False
        data = result.get("data", b"")
        if result.get("rotated"):
            s.say("%s was replaced/truncated; following from its start"
                  % (printable(shown),))
        if s.json:
            if data or result.get("rotated"):
                s.out.jsonLine(result)
        else:
            s.emit(data)
        offset = result.get("next_offset", result.get("offset", offset) + len(data))
        inode = result.get("inode") or inode


def _cmdDu(s):
    """
    C{du}: disk use under a directory.
    """
    result = s.query("du", s.args.path)
    if s.json:
        s.out.json(result)
        return
    s.out.lines(formatDu(result, s.args.human))
    if result.get("truncated"):
        s.say("du stopped at a bound (entries or time): the figures are lower bounds")


def _cmdDf(s):
    """
    C{df}: the filesystem holding a path.
    """
    _show(s, s.query("df", s.args.path),
          lambda result: formatDf(result, s.args.path, s.args.human))


def _cmdPs(s):
    """
    C{ps}: the job's process tree.
    """
    result = s.query("ps")
    if s.json:
        s.out.json(result)
        return
    s.out.lines(formatProcesses(result.get("processes", [])))
    if result.get("truncated"):
        s.say("process list truncated: %d processes shown"
              % (len(result.get("processes", [])),))


def _cmdTop(s):
    """
    C{top}: C{COUNT} samples of the job's processes, busiest first.
    """
    a = s.args
    clear = s.out.isatty() and a.count > 1 and not s.json
    for sample in range(a.count):
        result = s.query("top", a.delay)
        if s.json:
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
            time.strftime("%H:%M:%S"), len(processes), a.delay))
        s.out.lines(formatProcesses(processes, tree=False))
        s.out.flush()


def _cmdRes(s):
    """
    C{res}: the job's resource totals.
    """
    _show(s, s.query("res"), formatRes)


def _cmdEnv(s):
    """
    C{env}: the job's environment.
    """
    _show(s, s.query("env"), formatEnv)


def _cmdCommands(s):
    """
    C{commands}: what C{run} offers.
    """
    _show(s, s.query("commands"), formatCommands)


def _cmdRun(s):
    """
    C{run}: a command of the job; its output, and status 0 or 1.
    """
    a = s.args
    result = s.query("run", a.name, list(a.args))
    if s.json:
        s.out.json(result)
    else:
        s.out.raw(result.get("stdout", b""))
        s.out.flush()
        err = result.get("stderr", b"")
        if err:
            _writeError(s.stderr, err)
        if result.get("truncated"):
            s.say("the output of %s was cut (its output limit)" % (printable(a.name),))
    code = result.get("exit_code", 0)
    if code == 0:
        return EXIT_OK
    name = printable(str(result.get("name", a.name)))
    if isinstance(code, int) and code < 0:
        s.say("%s exited with status %d (killed by signal %d)" % (name, code, -code))
    else:
        s.say("%s exited with status %s" % (name, code))
    return EXIT_REMOTE


def _cmdSignal(s):
    """
    C{signal}: send a signal to the job.
    """
    result = s.query("signal", s.args.signal)
    if s.json:
        s.out.json(result)
    else:
        s.out.line("sent SIG%s to process %s" % (
            printable(str(result.get("signal", s.args.signal))), result.get("pid", "?")))


_COMMANDS = {
    "ls": _cmdLs,
    "stat": _cmdStat,
    "cat": _cmdCat,
    "head": _cmdHead,
    "tail": _cmdTail,
    "du": _cmdDu,
    "df": _cmdDf,
    "ps": _cmdPs,
    "top": _cmdTop,
    "res": _cmdRes,
    "env": _cmdEnv,
    "commands": _cmdCommands,
    "run": _cmdRun,
    "signal": _cmdSignal,
}
"""Each command's function: called with a L{_Session}, it prints the result
and returns the exit status (C{None} for 0)."""


class _Legacy(Command):
    """
    A command not yet in the module of its kind, described by the tables
    above (while the commands move there, one kind at a time).
    """

    def __init__(self, name):
        self.name = name
        self.help = dict(_COMMAND_HELP)[name]
        self.description = _DESCRIPTIONS.get(name)
        self.examples = COMMAND_EXAMPLES[name]
        self.helpFlag = name not in _NO_HELP_FLAG

    def configure(self, sub):
        _configure(self.name, sub)

    def run(self, session):
        return _COMMANDS[self.name](session)


_MOVED = {command.name: command for command in (
    jobs.Whoami(), jobs.Jobs(), jobs.History(), jobs.Audit(),
)}

_ORDER = [_MOVED.get(name) or _Legacy(name) for name, _ in _COMMAND_HELP]
"""Every command, in the order of the help."""

_BY_NAME = {command.name: command for command in _ORDER}


def main(argv=None, stdout=None, stderr=None, environ=None, clientFactory=None,
         sleep=None, clock=None):
    """
    Run C{jobmon-query} and return its exit status.

    @param argv: the arguments, without the program name (default
        C{sys.argv[1:]}).
    @param stdout: a text stream with a binary C{buffer} (default
        C{sys.stdout}); file data goes to the buffer as is.
    @param stderr: a text stream for notes and errors (default
        C{sys.stderr}).
    @param environ: the environment (default C{os.environ}).
    @param clientFactory: called as C{clientFactory(server, proxy=...,
        key=..., caDir=..., timeout=...)} to make the client (default
        L{jobmon.client.JobMonClient}).
    @param sleep: waits between reconnection attempts while following
        (default C{time.sleep}).
    @param clock: a monotonic clock (default C{time.monotonic}).
    """
    if argv is None:
        argv = sys.argv[1:]
    if stdout is None:
        stdout = sys.stdout
    if stderr is None:
        stderr = sys.stderr
    if environ is None:
        environ = os.environ
    if clientFactory is None:
        clientFactory = _client.JobMonClient
    if sleep is None:
        sleep = time.sleep
    if clock is None:
        clock = time.monotonic

    def say(message):
        try:
            stderr.write("%s: %s\n" % (PROG, _oneLine(message)))
            stderr.flush()
        except (OSError, ValueError):
            pass

    completing = "_ARGCOMPLETE" in environ
    try:
        parser = buildParser(stdout, stderr, None if completing else argv)
        if completing:
            _complete(parser)
        args = parser.parse_args(argv)
    except _ParserExit as e:
        return e.status
    except _UsageError as e:
        say(e)
        return EXIT_USAGE

    server = args.server or environ.get("JOBMON_SERVER")
    if not server:
        say("no server given: use --server URL or set JOBMON_SERVER")
        return EXIT_USAGE

    out = _Output(stdout)
    client = None
    session = None
    try:
        auth = _client.resolveAuth(
            args.auth or environ.get("JOBMON_AUTH") or "auto",
            proxy=args.proxy, key=args.key, tokenFile=args.token_file, environ=environ,
        )
        caDir = args.ca_dir or _client.defaultCADir(environ)
        if auth == "token":
            client = clientFactory(
                server, caDir=caDir, timeout=args.timeout, auth="token",
                tokenFile=args.token_file, environ=environ,
            )
        else:
            client = clientFactory(
                server,
                proxy=args.proxy or _client.defaultProxyPath(environ),
                key=args.key,
                caDir=caDir,
                timeout=args.timeout,
            )
        session = _Session(args, client, out, say, stderr, environ, sleep, clock)
        status = _BY_NAME[args.command].run(session)
        out.flush()
        return EXIT_OK if status is None else status
    except BrokenPipeError:
        _silence(stdout)
        return EXIT_OK
    except JobMonError as e:
        _flushQuietly(out)
        say(e)
        return exitCode(e.code)
    except _UsageError as e:
        say(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _flushQuietly(out)
        if session is None or not session.following:
            say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:
        _flushQuietly(out)
        say("internal error: %s: %s" % (type(e).__name__, e))
        return EXIT_SERVER
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _complete(parser):
    """
    Complete the command line for the shell, if C{argcomplete} is
    installed (it exits the process when it has answered).
    """
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


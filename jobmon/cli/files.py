"""
The commands about the job's files: C{ls}, C{stat}, C{cat}, C{head},
C{tail}, C{du} and C{df}.  Each is one L{Command} with the functions that
format its result; C{cat -f} and C{tail -f} share L{follow}.
"""

import time

from jobmon import client as _client
from jobmon import errors
from jobmon.cli.format import (
    formatMode,
    formatSize,
    formatTime,
    printable,
    quoteName,
    table,
)
from jobmon.cli.output import JSONStream, Progress
from jobmon.cli.parser import Command, FromStart, UsageError, addJob, count, tailCount
from jobmon.errors import JobMonError


def _raw(sub):
    """
    Add C{--raw}.
    """
    sub.add_argument("--raw", action="store_true",
                     help="write binary data and control characters (escape "
                          "sequences) to a terminal as they are")


def _human(sub):
    """
    Add C{-h}: sizes in K, M, G.
    """
    sub.add_argument("-h", "--human-readable", dest="human", action="store_true",
                     help="sizes in K, M, G (powers of 1024)")


def _linesOrBytes(sub, what, fromStart=False):
    """
    Add C{-n N} and C{-c N}, which exclude each other; with C{fromStart},
    also C{+N} (from line or byte N on).
    """
    group = sub.add_mutually_exclusive_group()
    group.add_argument("-n", "--lines", metavar="N", type=tailCount if fromStart else count,
                       default=None,
                       help="the %s N lines (default: 10)%s"
                            % (what, "; +N: from line N on" if fromStart else ""))
    group.add_argument("-c", "--bytes", metavar="N", type=tailCount if fromStart else count,
                       default=None,
                       help="the %s N bytes instead%s"
                            % (what, "; +N: from byte N on" if fromStart else ""))


# -- ls -----------------------------------------------------------------------


class Ls(Command):
    """
    C{ls}: names (in columns on a terminal), or C{-l} lines.
    """

    name = "ls"
    help = "list a directory of the job's working directory"
    description = (
        "List a directory of the job's working directory: names (in columns\n"
        "on a terminal, one per line otherwise), or with -l mode, size, time\n"
        "and name.  Names starting with a dot are left out unless -a.")
    examples = ("jobmon-query ls 1234.0", "jobmon-query ls 1234.0 output -l",
                "jobmon-query ls 1234.0 -a --depth 2")

    def configure(self, sub):
        """
        C{JOB}, an optional C{PATH}, C{-l}, C{-a} and C{--depth}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", nargs="?", default=".",
                         help="directory or file, relative to the working "
                              "directory (default: .)")
        sub.add_argument("-l", "--long", action="store_true",
                         help="long format: mode, size, time, name")
        sub.add_argument("-a", "--all", action="store_true",
                         help="include names that start with a dot")
        _human(sub)
        sub.add_argument("--depth", metavar="N", type=count, default=None,
                         help="also list subdirectories, N levels down (at most 8)")

    def run(self, s):
        """
        Print the names, or the C{-l} lines; say when the listing was cut.
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
            s.out.lines(formatListing(result, time.time(), a.human))
        else:
            width = s.out.width(s.environ) if s.out.isatty() else None
            s.out.lines(formatNames([shownName(e) for e in entries], width))
        if result.get("truncated"):
            s.say("listing truncated (entry cap): %d entries shown" % (len(entries),))


def formatListing(result, now, human=False):
    """
    Return the lines of an C{ls} result, C{ls -l} style: mode, size, mtime,
    name (and C{-> target} for links).

    @param human: sizes in K, M, G (C{ls -lh}).
    """
    entries = result.get("entries", [])
    sizes = [formatSize(e.get("size", 0), human) for e in entries]
    width = max([len(s) for s in sizes], default=0)
    lines = []
    for entry, size in zip(entries, sizes):
        name = shownName(entry)
        if entry.get("type") == "link" and "target" in entry:
            name += " -> " + shownName(entry, "target")
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


def shownName(entry, key="name"):
    """
    Return the file name in field C{key} of a result as C{ls} shows it
    (L{quoteName}): exact, from C{KEY_bytes} when the daemon sent it, and
    quoted so that a shell gives it back.
    """
    name = _client.exactName(entry, key)
    return quoteName(name) if isinstance(name, str) else "?"


def formatNames(names, width=None):
    """
    Return the lines that show C{names} (as L{shownName} gives them): one
    per line, or, given the terminal's C{width}, in columns filled top to
    bottom as C{ls} does.
    """
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


# -- stat ---------------------------------------------------------------------


class Stat(Command):
    """
    C{stat}: one file's details.
    """

    name = "stat"
    help = "show the details of one file"
    examples = ("jobmon-query stat 1234.0 job.log",)

    def configure(self, sub):
        """
        C{JOB} and C{PATH}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", help="the file")

    def run(self, s):
        """
        Print the file's C{key: value} lines.
        """
        s.show(s.query("stat", s.args.path), formatStat)


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
        "path: %s" % (shownName(entry, "path" if "path" in entry else "name"),),
        "type: %s" % (printable(str(entry.get("type", "?"))),),
        "size: %d" % (entry.get("size", 0),),
        "mode: %04o (%s)" % (mode, formatMode(entry.get("type"), mode)),
        "mtime: %s" % (mtime,),
    ]
    if "target" in entry:
        lines.append("target: %s" % (shownName(entry, "target"),))
    return lines


# -- cat ----------------------------------------------------------------------


class Cat(Command):
    """
    C{cat}: a file's bytes, in chunks; then, with C{-f}, what is added.
    """

    name = "cat"
    help = "write a file's bytes (or part of them) to standard output"
    description = (
        "Write a file's bytes to standard output, as they are.  A file larger\n"
        "than one result is read in chunks, up to the size it had at the\n"
        "start.  On a terminal, binary data is not shown, and escape\n"
        "sequences and control characters are shown as ^[ and the like,\n"
        "not obeyed, without --raw.  With -f, then follow the file as\n"
        "tail -f does.")
    examples = ("jobmon-query cat 1234.0 result.root > result.root",
                "jobmon-query cat 1234.0 job.log --offset 1048576 --length 4096",
                "jobmon-query cat -f 1234.0 job.log     # then follow it")

    def configure(self, sub):
        """
        C{JOB}, C{PATH}, C{--offset}, C{--length}, C{--raw} and C{-f}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        sub.add_argument("--offset", metavar="N", type=count, default=0,
                         help="first byte to read (default: 0)")
        sub.add_argument("--length", metavar="N", type=count, default=None,
                         help="number of bytes to read (default: to the end)")
        _raw(sub)
        sub.add_argument("-f", "--follow", action="store_true",
                         help="then follow the file as it grows, until Ctrl-C or "
                              "the job ends")

    def run(self, s):
        """
        Write the bytes asked for; with C{-f}, then follow the file.
        """
        a = s.args
        if a.follow and a.length is not None:
            raise UsageError("cat: --length and -f cannot be used together "
                             "(see jobmon-query cat --help)")
        s.following = a.follow
        offset = _streamCat(s, a.path, a.offset, a.length)
        if a.follow:
            follow(s, a.path, offset)


def _streamCat(s, path, offset, length):
    """
    Write C{length} bytes of C{path} from C{offset} (or up to the size the
    file had at the first read), one result after another, each written and
    flushed before the next request.

    @return: the offset after the last byte read.
    """
    lines = s.args.follow and s.json
    began = s.now()
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
            s.out.jsonLine(s.followText.annotate(result))
        elif s.json:
            s.out.json(result)
        else:
            s.emit(data)
            if result.get("truncated"):
                s.say("output cut at %d bytes (result cap); use --offset %d to "
                      "read on" % (len(data), pos))
        return pos
    stream = None
    progress = None
    if lines:
        s.out.jsonLine(s.followText.annotate(result))
    elif s.json:
        stream = JSONStream(s.out, result.get("path", path), start, size)
        stream.write(data)
    elif not s.emit(data, end - start):
        return end
    else:
        progress = Progress.onTerminal(s.stderr, s.out, end - start, s.now, began)
    try:
        while pos < end:
            if progress is not None:
                progress.update(pos - start)
            result = s.query("cat", path, pos, end - pos)
            data = result.get("data", b"")
            if not data:
                break
            if lines:
                s.out.jsonLine(s.followText.annotate(result))
            elif stream is not None:
                stream.write(data)
            else:
                s.write(data)
            pos += len(data)
    finally:
        if progress is not None:
            progress.finish()
    if stream is not None:
        stream.close(pos < end)
    if pos < end:
        s.say("%s got shorter while it was read: %d of %d bytes written"
              % (printable(path), pos - start, end - start))
    return pos


# -- head and tail ------------------------------------------------------------


class Head(Command):
    """
    C{head}: the first lines or bytes of a file.
    """

    name = "head"
    help = "write the first lines or bytes of a file"
    examples = ("jobmon-query head 1234.0 job.log -n 20",
                "jobmon-query head 1234.0 data.bin -c 64 | xxd")

    def configure(self, sub):
        """
        C{JOB}, C{PATH}, C{-n} or C{-c}, and C{--raw}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        _linesOrBytes(sub, "first")
        _raw(sub)

    def run(self, s):
        """
        Write the lines or bytes (one result).
        """
        _headOrTail(s, "head")


class Tail(Command):
    """
    C{tail}: the last lines or bytes of a file; with C{-f}/C{-F}, then
    what is added.
    """

    name = "tail"
    help = "write the last lines or bytes of a file; -f to follow it"
    description = (
        "Write the last lines (or bytes) of a file.  With -f or -F, then\n"
        "write what is added until Ctrl-C, following the file across\n"
        "rotations and reconnecting without loss or repetition when the\n"
        "server restarts.  When the job ends, the rest of the file is\n"
        "written and the command ends with status 0.  On a terminal, binary\n"
        "data is not shown without --raw.")
    examples = ("jobmon-query tail 1234.0 job.log -n 50",
                "jobmon-query tail -c 1024 1234.0 job.log",
                "jobmon-query tail -F 1234.0 job.log    # follow until Ctrl-C",
                "jobmon-query tail 1234.0 job.log -n +1 -f   # all of it, then follow")

    def configure(self, sub):
        """
        C{JOB}, C{PATH}, C{-n} or C{-c}, C{--raw}, and C{-f} or C{-F}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", help="the file")
        _linesOrBytes(sub, "last", fromStart=True)
        _raw(sub)
        group = sub.add_mutually_exclusive_group()
        group.add_argument("-f", "--follow", action="store_true",
                           help="then follow the file as it grows (also across "
                                "rotations), until Ctrl-C or the job ends")
        group.add_argument("-F", dest="retry", action="store_true",
                           help="like -f, and wait for the file if it does not "
                                "exist yet")

    def run(self, s):
        """
        Write the lines or bytes; with C{-f}/C{-F}, then follow the file
        from where they end (C{-F}: from its start once it appears).
        """
        a = s.args
        if isinstance(a.lines, FromStart) or isinstance(a.bytes, FromStart):
            _tailFrom(s)
            return
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
        follow(s, a.path, offset)


def _tailFrom(s):
    """
    C{tail -n +N} and C{tail -c +N}: write the file from line or byte N on
    (a C{tail} query with C{from_line}, or C{cat} from byte N); then, with
    C{-f}/C{-F}, follow it from where that ends.
    """
    a = s.args
    following = a.follow or a.retry
    s.following = following
    try:
        if a.bytes is not None:
            offset = _streamCat(s, a.path, max(a.bytes - 1, 0), None)
        else:
            offset = _fromLine(s, a.path, a.lines, following)
    except JobMonError as e:
        if not (a.retry and e.code == errors.NO_SUCH_FILE):
            raise
        # tail -F: wait for the file to appear; follow says it is missing.
        offset = 0
    if following:
        follow(s, a.path, offset)


def _fromLine(s, path, line, following):
    """
    Write C{path} from line C{line} on; without C{following}, the rest of
    a file larger than one result too (as C{cat} does).

    @return: the offset after the last byte written.
    """
    result = s.query("tail", path, fromLine=line)
    data = result.get("data", b"")
    pos = result.get("offset", 0) + len(data)
    if s.json:
        if following:
            s.out.jsonLine(result)
        else:
            s.out.json(result)
            if result.get("truncated"):
                s.say("output cut at %d bytes (result cap); use cat --offset %d to read on"
                      % (len(data), pos))
        return pos
    if not s.emit(data):
        return result.get("size", pos)
    if result.get("truncated") and not following:
        # The rest, in chunks: follow would read it anyway.
        pos = _streamCat(s, path, pos, None)
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
            s.out.jsonLine(s.followText.annotate(result))
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


# -- following a file (cat -f, tail -f) ---------------------------------------


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
    if code in (errors.NO_SUCH_JOB, errors.JOB_GONE, _client.CERTIFICATE_REFUSED,
                _client.TLS_ERROR):
        # A job that went away (its wake channel closed) may register
        # again; one that ended (411) does not, and ends the follow.
        return "grace"
    return None


def _ended(s):
    """
    The followed job ended: say so; the command ends with status 0, as
    C{kubectl logs -f} does when its pod ends.
    """
    s.say("job %s ended; stopped following" % (s.job,))


def follow(s, path, offset, inode=None):
    """
    Follow C{path} from C{offset} until Ctrl-C or the job's end: print new
    bytes as they come; across server restarts, ask again from the same
    offset and inode, so that no byte is lost or repeated.  When the job
    ends (its daemon's last answer says C{ended}, or the server says the
    job ended) the command says so and ends with status 0.
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
            if e.code == errors.JOB_ENDED:
                _ended(s)
                return
            how = _followRetry(e)
            if how is None:
                raise
            if how == "grace":
                now = s.now()
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
            s.followText.reset()
            if result.get("ended"):
                _ended(s)
                return
            if not missing:
                s.say("%s is missing; waiting for it" % (printable(shown),))
                if s.json:
                    s.out.jsonLine(s.followText.annotate(result))
                missing = True
            offset = result.get("next_offset", offset)
            inode = result.get("inode") or inode
            continue
        missing = False
        data = result.get("data", b"")
        if result.get("rotated"):
            s.followText.reset()
            s.say("%s was replaced/truncated; following from its start"
                  % (printable(shown),))
        if s.json:
            if data or result.get("rotated"):
                s.out.jsonLine(s.followText.annotate(result))
        else:
            s.emit(data)
        offset = result.get("next_offset", result.get("offset", offset) + len(data))
        inode = result.get("inode") or inode
        if result.get("ended") and not result.get("truncated"):
            _ended(s)
            return


# -- du and df ----------------------------------------------------------------


class _Disk(Command):
    """
    What C{du} and C{df} share: their arguments, and C{-h} for
    human-readable sizes.
    """

    def configure(self, sub):
        """
        C{JOB}, an optional C{PATH} and C{-h}.
        """
        addJob(sub)
        sub.add_argument("path", metavar="PATH", nargs="?", default=".",
                         help="directory (default: .)")
        _human(sub)


class Du(_Disk):
    """
    C{du}: disk use under a directory.
    """

    name = "du"
    help = "show disk usage under a directory, largest first"
    examples = ("jobmon-query du -h 1234.0", "jobmon-query du 1234.0 output")

    def run(self, s):
        """
        Print each child's size, largest first, then the total; say when
        the walk stopped early.
        """
        result = s.query("du", s.args.path)
        if s.json:
            s.out.json(result)
            return
        s.out.lines(formatDu(result, s.args.human))
        if result.get("truncated"):
            s.say("du stopped at a bound (entries or time): the figures are lower bounds")


def formatDu(result, human=False):
    """
    Return the lines of a C{du} result: each direct child, largest first
    (directories with a C{/}), then the total with the counts.
    """
    entries = sorted(result.get("entries", []), key=lambda e: -(e.get("size") or 0))
    rows = []
    for entry in entries:
        name = shownName(entry)
        if entry.get("type") == "dir":
            name += "/"
        rows.append([formatSize(entry.get("size"), human), name])
    rows.append([
        formatSize(result.get("total"), human),
        "total (%s files, %s dirs)" % (result.get("files", "?"), result.get("dirs", "?")),
    ])
    widths = max(len(row[0]) for row in rows)
    return ["%s  %s" % (size.rjust(widths), name) for size, name in rows]


class Df(_Disk):
    """
    C{df}: the filesystem holding a path.
    """

    name = "df"
    help = "show the free space of the filesystem holding a path"
    examples = ("jobmon-query df -h 1234.0",)

    def run(self, s):
        """
        Print the filesystem's table.
        """
        s.show(s.query("df", s.args.path),
               lambda result: formatDf(result, s.args.path, s.args.human))


def formatDf(result, path, human=False):
    """
    Return the lines of a C{df} result: a header and one row.
    """
    percent = result.get("percent")
    row = [
        formatSize(result.get("total"), human),
        formatSize(result.get("used"), human),
        formatSize(result.get("free"), human),
        "%.0f%%" % (percent,) if percent is not None else "-",
        formatSize(result.get("inodes_total"), human),
        formatSize(result.get("inodes_free"), human),
        printable(str(result.get("path", path))),
    ]
    header = ["SIZE", "USED", "AVAIL", "USE%", "INODES", "IFREE", "PATH"]
    return table(header, [row], right=(0, 1, 2, 3, 4, 5))

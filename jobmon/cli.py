"""
C{jobmon-query}: ask a running job for files in its working directory.

    jobmon-query [--server URL] [--proxy FILE] [--key FILE] [--ca-dir DIR]
                 [--timeout S] [--json] COMMAND ...

Commands: C{whoami}, C{jobs}, C{ls JOB [PATH]}, C{stat JOB PATH},
C{cat JOB PATH [--offset N] [--length N]}, C{tail JOB PATH [-n N]}.  The
global options may also follow the command.

Defaults: the server from C{$JOBMON_SERVER}; the credential from
C{$X509_USER_PROXY}, else C{/tmp/x509up_u$UID}; the CA directory from
C{$X509_CERT_DIR}, else C{/etc/grid-security/certificates}; a timeout of 60
seconds, which is also sent to the server as the query's own timeout.

Every error is one line on standard error, prefixed C{jobmon-query: }.  Exit
status (the table L{EXIT_CODES} and the function L{exitCode}):

  0  success
  1  the operation failed in the job (no such file, permission denied...)
  2  usage error or bad request (400, 413)
  3  authentication: credential missing, expired, unusable or refused (401),
     or the server's certificate could not be verified
  4  not authorized (403)
  5  no such job (404)
  6  the job went away (410)
  7  timeout (408, 1008, no answer in time)
  8  server unreachable or server error (500, 503, 429, 409, connection or
     HTTP failures, internal errors)

A reader that closes the pipe early (C{jobmon-query cat ... | head}) ends
the command quietly with status 0; an interrupt (Ctrl-C) gives 130.

This module imports only the standard library and L{jobmon.client} /
L{jobmon.errors}, so that the command starts fast.
"""

import argparse
import os
import stat as _stat
import sys
import time

from jobmon import client as _client
from jobmon import errors
from jobmon.errors import JobMonError

PROG = "jobmon-query"

EXIT_OK = 0
"""Success."""
EXIT_REMOTE = 1
"""The operation failed in the job (codes 1001-1099 but 1008)."""
EXIT_USAGE = 2
"""Usage error, or a request the server found malformed or too large."""
EXIT_AUTH = 3
"""Authentication failed, either way."""
EXIT_FORBIDDEN = 4
"""Not authorized."""
EXIT_NO_JOB = 5
"""No such job."""
EXIT_GONE = 6
"""The job went away."""
EXIT_TIMEOUT = 7
"""A timeout, on the server, the worker or the client."""
EXIT_SERVER = 8
"""Server unreachable or failing, or an internal error."""
EXIT_INTERRUPTED = 130
"""Interrupted by the user."""

EXIT_CODES = {
    errors.BAD_REQUEST: EXIT_USAGE,
    errors.TOO_LARGE: EXIT_USAGE,
    _client.BAD_URL: EXIT_USAGE,
    _client.BAD_ARGUMENT: EXIT_USAGE,
    errors.NOT_AUTHENTICATED: EXIT_AUTH,
    _client.NO_CREDENTIAL: EXIT_AUTH,
    _client.CREDENTIAL_EXPIRED: EXIT_AUTH,
    _client.BAD_CREDENTIAL: EXIT_AUTH,
    _client.CERTIFICATE_REFUSED: EXIT_AUTH,
    _client.SERVER_NOT_TRUSTED: EXIT_AUTH,
    _client.NO_CA_DIR: EXIT_AUTH,
    errors.NOT_AUTHORIZED: EXIT_FORBIDDEN,
    errors.NO_SUCH_JOB: EXIT_NO_JOB,
    errors.JOB_GONE: EXIT_GONE,
    errors.TIMEOUT: EXIT_TIMEOUT,
    errors.REMOTE_TIMEOUT: EXIT_TIMEOUT,
    _client.CLIENT_TIMEOUT: EXIT_TIMEOUT,
    errors.JOB_CONFLICT: EXIT_SERVER,
    errors.TOO_MANY: EXIT_SERVER,
    errors.INTERNAL: EXIT_SERVER,
    errors.UNAVAILABLE: EXIT_SERVER,
    _client.UNREACHABLE: EXIT_SERVER,
    _client.TLS_ERROR: EXIT_SERVER,
    _client.CONNECTION_LOST: EXIT_SERVER,
    _client.HTTP_ERROR: EXIT_SERVER,
    _client.PROTOCOL_ERROR: EXIT_SERVER,
}
"""Exit status for each error code; see L{exitCode} for the others."""

EXIT_STATUS_HELP = """\
exit status:
  0  success
  1  the operation failed in the job (no such file, permission denied...)
  2  usage error or bad request (400, 413)
  3  authentication: credential missing, expired, unusable or refused (401),
     or the server's certificate could not be verified
  4  not authorized (403)
  5  no such job (404)
  6  the job went away (410)
  7  timeout (408, 1008, no answer in time)
  8  server unreachable or server error (500, 503, 429, 409, connection or
     HTTP failures, internal errors)
"""

EXAMPLES_HELP = """\
examples:
  export JOBMON_SERVER=https://jobmon.example.org:8443/RPC2
  jobmon-query whoami
  jobmon-query --proxy ~/.globus/usercert.pem --key ~/.globus/userkey.pem whoami
  jobmon-query jobs
  jobmon-query ls 1234.0
  jobmon-query ls 1234.0 output/
  jobmon-query stat 1234.0 job.log
  jobmon-query tail 1234.0 job.log -n 50
  jobmon-query cat 1234.0 result.root > result.root
  jobmon-query cat 1234.0 job.log --offset 1048576 | less
  jobmon-query --json ls 1234.0 | jq '.entries[].name'
"""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_SIX_MONTHS = 31556952 // 2
"""Half a Gregorian year, as GNU C{ls} counts it."""

_FUTURE_SLACK = 3600
"""Seconds an mtime may lie in the future and still count as recent: the
worker's clock may be ahead of ours."""

_TYPE_BITS = {"file": _stat.S_IFREG, "dir": _stat.S_IFDIR, "link": _stat.S_IFLNK}


def exitCode(code):
    """
    Return the exit status for the error code C{code} (a server fault code
    or a L{jobmon.client} code).
    """
    if code in EXIT_CODES:
        return EXIT_CODES[code]
    if isinstance(code, int) and errors.isRemote(code):
        return EXIT_REMOTE
    return EXIT_SERVER


def printable(text):
    """
    Return C{text} with control and other unprintable characters escaped
    (C{\\n}, C{\\x1b}...), so that a file name or a server message cannot
    break a line or drive the terminal.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def formatMode(type_, mode):
    """
    Return the C{ls -l} mode string (C{drwxr-xr-x}) of an entry of type
    C{type_} (C{file}, C{dir}, C{link}, C{other}) with permission bits
    C{mode}.
    """
    return _stat.filemode(_TYPE_BITS.get(type_, 0) | (int(mode) & 0o7777))


def formatTime(mtime, now):
    """
    Return an mtime as C{ls -l} shows it: C{Nov 26 06:30} if it is within
    the last six months, else C{Nov 26  2024}.
    """
    try:
        t = time.localtime(mtime)
    except (OverflowError, OSError, ValueError):
        return "?" * 12
    month = _MONTHS[t.tm_mon - 1]
    if now - _SIX_MONTHS <= mtime <= now + _FUTURE_SLACK:
        return "%s %2d %02d:%02d" % (month, t.tm_mday, t.tm_hour, t.tm_min)
    return "%s %2d  %d" % (month, t.tm_mday, t.tm_year)


def formatAge(seconds):
    """
    Return a duration the short way: C{5s}, C{3m}, C{2h10m}, C{4d}.
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % (seconds,)
    if seconds < 3600:
        return "%dm" % (seconds // 60,)
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return "%dh%dm" % (hours, minutes) if minutes else "%dh" % (hours,)
    return "%dd" % (seconds // 86400,)


def shortDN(dn):
    """
    Return the last CN of a slash-form DN (C{/DC=org/CN=Alice} gives
    C{Alice}; C{/CN=host/node1.example.org} gives C{host/node1.example.org}),
    or the DN itself if it has no CN.
    """
    at = dn.rfind("/CN=")
    if at < 0:
        return dn
    return dn[at + 4:] or dn


def formatWhoami(info):
    """
    Return the line C{whoami} prints: the DN and notes in parentheses.
    """
    notes = []
    if info.get("admin"):
        notes.append("admin")
    if info.get("limited"):
        notes.append("limited proxy")
    elif info.get("proxy"):
        notes.append("via proxy")
    line = printable(info.get("dn", "?"))
    if notes:
        line += " (%s)" % (", ".join(notes),)
    return line


def _table(header, rows, right=()):
    """
    Lay out rows in columns two spaces apart; columns whose index is in
    C{right} are right-aligned.
    """
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = []
    for row in [header] + rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def formatJobs(jobs, now, long=False):
    """
    Return the lines of the C{jobs} table, or C{["No jobs."]}.

    @param long: show owners' full DNs instead of their last CN.
    """
    if not jobs:
        return ["No jobs."]
    rows = []
    for job in jobs:
        owner = job.get("owner", "")
        registered = job.get("registered")
        seen = job.get("last_seen")
        rows.append([
            printable(str(job.get("job_id", ""))),
            printable(owner if long else shortDN(owner)),
            printable(str(job.get("host", ""))),
            printable(str(job.get("mode", ""))),
            printable(str(job.get("state", ""))),
            formatAge(now - registered) if registered is not None else "-",
            formatAge(now - seen) if seen is not None else "-",
            str(job.get("pending", "")),
        ])
    header = ["JOB", "OWNER", "HOST", "MODE", "STATE", "AGE", "SEEN", "PENDING"]
    return _table(header, rows, right=(5, 6, 7))


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


def toJSON(value):
    """
    Return C{value} with every bytes value replaced for JSON: a dict key
    C{k} holding bytes becomes C{k_base64} holding the base64 text; bytes
    elsewhere become base64 text.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, (bytes, bytearray)):
                out[key + "_base64"] = _base64(item)
            else:
                out[key] = toJSON(item)
        return out
    if isinstance(value, (list, tuple)):
        return [toJSON(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return _base64(value)
    return value


def _base64(data):
    """
    Return C{data} as base64 text.
    """
    import base64

    return base64.b64encode(bytes(data)).decode("ascii")


class _UsageError(Exception):
    """
    A command-line error, reported in one line with exit status 2.
    """


class _ParserExit(Exception):
    """
    The parser is done (C{--help}, C{--version}).
    """

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An argument parser that writes to the injected streams and reports
    errors in one line instead of exiting.
    """

    out = None
    err = None

    def error(self, message):
        """
        Raise L{_UsageError} instead of printing the usage and exiting.
        """
        sub = self.prog[len(PROG):].strip()
        if sub:
            message = "%s: %s" % (sub, message)
        raise _UsageError(message + " (see %s --help)" % (self.prog,))

    def exit(self, status=0, message=None):
        """
        Raise L{_ParserExit} instead of exiting.
        """
        if message:
            self._print_message(message, sys.stderr)
        raise _ParserExit(status)

    def _print_message(self, message, file=None):
        if not message:
            return
        if file is None or file is sys.stdout:
            file = self.out or sys.stdout
        elif file is sys.stderr:
            file = self.err or sys.stderr
        file.write(message)


def _count(text):
    """
    Parse a non-negative integer argument.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number: %r" % (text,))
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative: %r" % (text,))
    return value


def _seconds(text):
    """
    Parse a positive number of seconds.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % (text,))
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError("must be a positive number of seconds: %r" % (text,))
    return value


def _addGlobalOptions(parser, defaults):
    """
    Add the global options to C{parser}.  With C{defaults} false they get no
    default, so that giving them after the command does not hide the values
    given before it.
    """
    suppress = {} if defaults else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--server", metavar="URL",
        help="the JobMon server, https://host[:port][/path] "
             "(default: $JOBMON_SERVER)",
        **suppress,
    )
    group.add_argument(
        "--proxy", metavar="FILE",
        help="proxy or certificate+key file "
             "(default: $X509_USER_PROXY, else /tmp/x509up_u$UID)",
        **suppress,
    )
    group.add_argument(
        "--key", metavar="FILE",
        help="private key, when --proxy is a certificate alone "
             "(usercert.pem with userkey.pem)",
        **suppress,
    )
    group.add_argument(
        "--ca-dir", metavar="DIR", dest="ca_dir",
        help="trusted CA certificates, hashed layout "
             "(default: $X509_CERT_DIR, else %s)" % (_client.DEFAULT_CA_DIR,),
        **suppress,
    )
    group.add_argument(
        "--timeout", metavar="S", type=_seconds,
        help="seconds to wait for an answer, also the query's timeout on the "
             "server (default: 60)",
        **({"default": 60.0} if defaults else suppress),
    )
    group.add_argument(
        "--json", action="store_true",
        help="print the result as one JSON document (bytes as base64 in "
             "'data_base64')",
        **({"default": False} if defaults else suppress),
    )


def buildParser(stdout=None, stderr=None):
    """
    Return the argument parser of C{jobmon-query}, writing help to
    C{stdout} and messages to C{stderr}.
    """
    from jobmon import __version__

    parser = _Parser(
        prog=PROG,
        description="Ask a running batch job for files in its working\n"
                    "directory, through a JobMon server.",
        epilog=EXAMPLES_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    _addGlobalOptions(parser, True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, help_, description=None):
        sub = commands.add_parser(
            name, help=help_, description=description or help_,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _addGlobalOptions(sub, False)
        return sub

    command("whoami", "show the identity the server sees for your credential")
    jobs = command("jobs", "list the jobs you may query")
    jobs.add_argument("-l", "--long", action="store_true",
                      help="show owners' full DNs, not their last CN")
    ls = command("ls", "list a directory of the job's working directory (ls -l style)")
    ls.add_argument("job", metavar="JOB", help="the job's id")
    ls.add_argument("path", metavar="PATH", nargs="?", default=".",
                    help="directory or file, relative to the working directory (default: .)")
    st = command("stat", "show the details of one file")
    st.add_argument("job", metavar="JOB", help="the job's id")
    st.add_argument("path", metavar="PATH", help="the file")
    cat = command("cat", "write a file's bytes (or part of them) to standard output")
    cat.add_argument("job", metavar="JOB", help="the job's id")
    cat.add_argument("path", metavar="PATH", help="the file")
    cat.add_argument("--offset", metavar="N", type=_count, default=0,
                     help="first byte to read (default: 0)")
    cat.add_argument("--length", metavar="N", type=_count, default=None,
                     help="number of bytes to read (default: to the end)")
    tail = command("tail", "write the last lines of a file to standard output")
    tail.add_argument("job", metavar="JOB", help="the job's id")
    tail.add_argument("path", metavar="PATH", help="the file")
    tail.add_argument("-n", "--lines", metavar="N", type=_count, default=10,
                      help="number of lines (default: 10)")

    for p in [parser] + list(commands.choices.values()):
        p.out = stdout
        p.err = stderr
    return parser


class _Output:
    """
    Standard output as bytes: text lines are encoded for the stream, file
    data is written as is.
    """

    def __init__(self, stream):
        self._stream = stream
        self._binary = getattr(stream, "buffer", None)
        self._encoding = getattr(stream, "encoding", None) or "utf-8"

    def line(self, text):
        """
        Write one line of text.
        """
        self.raw((text + "\n").encode(self._encoding, "backslashreplace"))

    def raw(self, data):
        """
        Write bytes unchanged.
        """
        if self._binary is None:
            self._stream.write(data.decode(self._encoding, "replace"))
        else:
            self._binary.write(data)

    def flush(self):
        """
        Flush the stream.
        """
        if self._binary is not None:
            self._binary.flush()
        self._stream.flush()


def _oneLine(message):
    """
    Make C{message} a single printable line.
    """
    return printable(" ".join(str(message).splitlines()))


def _silence(stream):
    """
    Point C{stream}'s file descriptor at C{/dev/null}, so that flushing it
    again at exit does not fail (the recipe of the Python documentation for
    C{SIGPIPE}).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _run(args, client):
    """
    Run the command: return C{(result, formatter)}, where C{formatter(result,
    out, note)} prints the result for a person.
    """
    command = args.command
    if command == "whoami":
        return client.whoami(), _printWhoami
    if command == "jobs":
        return client.listJobs(), (lambda r, out, note: _printJobs(r, out, args.long))
    if command == "ls":
        return client.ls(args.job, args.path), _printListing
    if command == "stat":
        return client.stat(args.job, args.path), _printStat
    if command == "cat":
        return client.cat(args.job, args.path, args.offset, args.length), _printCat
    if command == "tail":
        return client.tail(args.job, args.path, args.lines), _printTail
    raise _UsageError("unknown command %r" % (command,))


def _printWhoami(result, out, note):
    out.line(formatWhoami(result))


def _printJobs(result, out, long):
    for line in formatJobs(result, time.time(), long):
        out.line(line)


def _printListing(result, out, note):
    for line in formatListing(result, time.time()):
        out.line(line)
    if result.get("truncated"):
        note("listing truncated (entry cap): %d entries shown"
             % (len(result.get("entries", [])),))


def _printStat(result, out, note):
    for line in formatStat(result):
        out.line(line)


def _printCat(result, out, note):
    data = result.get("data", b"")
    out.raw(data)
    if result.get("truncated"):
        note("output cut at %d bytes (result cap); use --offset %d to read on"
             % (len(data), result.get("offset", 0) + len(data)))


def _printTail(result, out, note):
    data = result.get("data", b"")
    out.raw(data)
    if result.get("truncated"):
        note("output cut at %d bytes (result cap): the lines asked for start "
             "before offset %d; use cat --offset/--length to read the rest"
             % (len(data), result.get("offset", 0)))


def main(argv=None, stdout=None, stderr=None, environ=None, clientFactory=None):
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

    def say(message):
        try:
            stderr.write("%s: %s\n" % (PROG, _oneLine(message)))
            stderr.flush()
        except (OSError, ValueError):
            pass

    try:
        args = buildParser(stdout, stderr).parse_args(argv)
    except _ParserExit as e:
        return e.status
    except _UsageError as e:
        say(e)
        return EXIT_USAGE

    server = args.server or environ.get("JOBMON_SERVER")
    if not server:
        say("no server given: use --server URL or set JOBMON_SERVER")
        return EXIT_USAGE

    client = None
    try:
        client = clientFactory(
            server,
            proxy=args.proxy or _client.defaultProxyPath(environ),
            key=args.key,
            caDir=args.ca_dir or _client.defaultCADir(environ),
            timeout=args.timeout,
        )
        result, show = _run(args, client)
    except JobMonError as e:
        say(e)
        return exitCode(e.code)
    except _UsageError as e:
        say(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:
        say("internal error: %s: %s" % (type(e).__name__, e))
        return EXIT_SERVER
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    out = _Output(stdout)
    try:
        if args.json:
            import json

            out.line(json.dumps(toJSON(result), indent=2, sort_keys=True))
        else:
            show(result, out, say)
        out.flush()
    except BrokenPipeError:
        _silence(stdout)
        return EXIT_OK
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:
        say("internal error: %s: %s" % (type(e).__name__, e))
        return EXIT_SERVER
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

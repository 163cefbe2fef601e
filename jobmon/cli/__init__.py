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
from jobmon.cli import files, jobs, processes
from jobmon.cli.exits import (  # noqa: F401 (the exit statuses are part of this API)
    EXIT_AUTH, EXIT_CODES, EXIT_FORBIDDEN, EXIT_GONE, EXIT_INTERRUPTED, EXIT_NO_JOB,
    EXIT_OK, EXIT_REMOTE, EXIT_SERVER, EXIT_STATUS_HELP, EXIT_TIMEOUT, EXIT_USAGE,
    exitCode,
)
from jobmon.cli.format import (  # noqa: F401
    _MONTHS, formatAge, formatDuration, formatElapsed, formatMode, formatTime,
    humanSize, printable, shortDN,
)
from jobmon.cli.format import table as _table
from jobmon.cli.output import BINARY_SAMPLE, looksBinary, toJSON  # noqa: F401
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
    "commands": ["jobmon-query commands 1234.0"],
    "run": ["jobmon-query run 1234.0 nvidia-smi",
            "jobmon-query run 1234.0 grep -i error job.log",
            "jobmon-query --json run 1234.0 nvidia-smi -q"],
}
"""Examples shown by C{jobmon-query COMMAND --help}."""


# -- formatting ---------------------------------------------------------------


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


# -- the command line ---------------------------------------------------------


def _configure(name, sub):
    """
    Add the arguments of command C{name} to its parser C{sub}.
    """
    if name == "commands":
        _job(sub)
    elif name == "run":
        _job(sub)
        sub.add_argument("name", metavar="NAME", help="the command (see 'commands')")
        sub.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER,
                         help="its arguments; everything after NAME is passed on")


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
    "run": "Run one of the commands the job's configuration offers (see\n"
           "'commands'), never through a shell.  Everything after NAME is\n"
           "passed on as its arguments, also words that start with '-'.  Its\n"
           "standard output and error go to ours.  The exit status is 0 if it\n"
           "exited with 0, else 1, with 'jobmon-query: NAME exited with status\n"
           "N' on standard error.",
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


_COMMANDS = {
    "commands": _cmdCommands,
    "run": _cmdRun,
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
    files.Ls(), files.Stat(), files.Cat(), files.Head(), files.Tail(), files.Du(), files.Df(),
    processes.Ps(), processes.Top(), processes.Res(), processes.Env(), processes.Signal(),
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


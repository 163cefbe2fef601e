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
job by that name, the command looks for one among the caller's jobs (for
C{history}, the server looks among her present and past jobs).

Defaults: the server from C{$JOBMON_SERVER}; the credential from
C{$X509_USER_PROXY}, else C{/tmp/x509up_u$UID}; the CA directory from
C{$X509_CERT_DIR}, else C{/etc/grid-security/certificates}; a timeout of 60
seconds, which is also sent to the server as the query's own timeout.

File data is written as it is, except that binary data (NUL bytes, or not
UTF-8, in the first 8 KiB) is not written to a terminal without C{--raw}.
C{cat} streams a file larger than one result in chunks; C{tail -f}/C{cat
-f} follow a growing file until Ctrl-C or the job's end (status 0),
reconnecting (with the same offset) when the server restarts; a long
C{cat} into a file or pipe shows its progress on standard error when that
is a terminal.  With C{--json} every command prints one JSON document;
C{-f} and C{top -n COUNT} (COUNT > 1) print one JSON object per line.
Bytes are given as base64 (C{data_base64}) and, when they are UTF-8, as
text too (C{text}, C{stdout_text}, C{stderr_text}): see C{docs/API.md}.

Every error is one line on standard error, prefixed C{jobmon-query: }.  The
exit statuses are listed once, in L{jobmon.cli.exits.EXIT_STATUS_HELP}
(shown by C{--help}), and computed by the table
L{jobmon.cli.exits.EXIT_CODES} and the function L{jobmon.cli.exits.exitCode}.

Tab completion: C{eval "$(jobmon-query completion bash)"} (or C{zsh}), or
the installed C{share/bash-completion/completions/jobmon-query}; see
L{jobmon.cli.completion}.  Options may come anywhere among a command's
arguments (C{ls 1234 -l sub}); C{--} ends them.  A command's help is
C{--help} (C{-h} means human-readable sizes in C{ls}, C{du} and C{df}).

Each command is in one place: a L{jobmon.cli.parser.Command} that holds
its help, examples and arguments, what it does and how its result is
formatted, in the module of its kind: L{jobmon.cli.jobs} (C{whoami},
C{jobs}, C{history}, C{audit}), L{jobmon.cli.files} (C{ls}, C{stat},
C{cat}, C{head}, C{tail}, C{du}, C{df}), L{jobmon.cli.processes} (C{ps},
C{top}, C{res}, C{env}, C{signal}) and L{jobmon.cli.commands} (C{commands},
C{run}); C{completion} is in L{jobmon.cli.completion}.  This module lists
them in the order of the help (L{COMMANDS}) and runs one (L{main}).  What they share: L{jobmon.cli.parser} (the parser and
its parts), L{jobmon.cli.session} (what a command runs with),
L{jobmon.cli.output} (writing), L{jobmon.cli.format} (values and tables)
and L{jobmon.cli.exits} (exit statuses).

The package imports only the standard library and L{jobmon.client} /
L{jobmon.errors}, so that the command starts fast; modules needed by a few
commands (C{json}, C{base64}, C{fnmatch}) are imported when used.
"""

import argparse
import os
import sys
import time

from jobmon import client as _client
from jobmon.cli.exits import (
    EXIT_AUTH,
    EXIT_CODES,
    EXIT_FORBIDDEN,
    EXIT_GONE,
    EXIT_INTERRUPTED,
    EXIT_NO_JOB,
    EXIT_OK,
    EXIT_REMOTE,
    EXIT_SERVER,
    EXIT_STATUS_HELP,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    exitCode,
)
from jobmon.cli.output import Output, flushQuietly, oneLine, silence
from jobmon.cli.parser import PROG, ParserExit, UsageError
from jobmon.cli.parser import buildParser as _buildParser
from jobmon.cli.session import Session
from jobmon.errors import JobMonError

__all__ = [
    "EXIT_AUTH", "EXIT_CODES", "EXIT_FORBIDDEN", "EXIT_GONE", "EXIT_INTERRUPTED",
    "EXIT_NO_JOB", "EXIT_OK", "EXIT_REMOTE", "EXIT_SERVER", "EXIT_STATUS_HELP",
    "EXIT_TIMEOUT", "EXIT_USAGE", "PROG", "buildParser", "exitCode", "main",
]

COMMANDS = {
    "whoami": ("jobs", "Whoami"),
    "jobs": ("jobs", "Jobs"),
    "ls": ("files", "Ls"),
    "stat": ("files", "Stat"),
    "cat": ("files", "Cat"),
    "head": ("files", "Head"),
    "tail": ("files", "Tail"),
    "du": ("files", "Du"),
    "df": ("files", "Df"),
    "ps": ("processes", "Ps"),
    "top": ("processes", "Top"),
    "res": ("processes", "Res"),
    "env": ("processes", "Env"),
    "commands": ("commands", "Commands"),
    "run": ("commands", "Run"),
    "signal": ("processes", "Signal"),
    "history": ("jobs", "History"),
    "audit": ("jobs", "Audit"),
    "completion": ("completion", "Completion"),
}
"""Every command, in the order of the help: its name, and its
L{jobmon.cli.parser.Command} as the module of L{jobmon.cli} and the class
that define it.  A module is imported when one of its commands is wanted
(L{command}): a run imports only the module of the command it runs, unless
the help lists them all."""

_found = {}
"""The commands L{command} has made, by name."""


def command(name):
    """
    Return the command C{name} of L{COMMANDS}, importing its module.
    """
    if name not in _found:
        module, cls = COMMANDS[name]
        module = "jobmon.cli." + module
        __import__(module)
        _found[name] = getattr(sys.modules[module], cls)()
    return _found[name]


def buildParser(stdout=None, stderr=None, argv=None):
    """
    Return the argument parser of C{jobmon-query} with L{COMMANDS}: see
    L{jobmon.cli.parser.buildParser}.
    """
    return _buildParser(tuple(COMMANDS), command, stdout, stderr, argv)


def main(argv=None, stdout=None, stderr=None, environ=None, clientFactory=None,
         sleep=None, now=None):
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
    @param now: the time on a monotonic clock, a function (default
        C{time.monotonic}).
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
    if now is None:
        now = time.monotonic

    def say(message):
        try:
            stderr.write("%s: %s\n" % (PROG, oneLine(message)))
            stderr.flush()
        except (OSError, ValueError):
            pass

    try:
        args = buildParser(stdout, stderr, argv).parse_args(argv)
    except ParserExit as e:
        return e.status
    except UsageError as e:
        say(e)
        return EXIT_USAGE

    server = args.server or environ.get("JOBMON_SERVER")
    wanted = command(args.command)
    if not server and wanted.needsClient:
        say("no server given: use --server URL or set JOBMON_SERVER")
        return EXIT_USAGE

    out = Output(stdout)
    client = None
    session = None
    made = []

    def connect(options, timeout):
        """
        Make a client from the global options C{options} (a dict by dest),
        with C{timeout}, closed at the end of the run.
        """
        given = dict(vars(args), server=None, proxy=None, key=None, auth=None,
                     token_file=None, ca_dir=None)
        given.update(options, timeout=timeout)
        made.append(_connect(argparse.Namespace(**given), environ, clientFactory))
        return made[-1]

    try:
        if wanted.needsClient:
            client = _connect(args, environ, clientFactory)
        session = Session(args, client, out, say, stderr, environ, sleep, now)
        session.connect = connect
        status = wanted.run(session)
        session.endOutput()
        out.flush()
        return EXIT_OK if status is None else status
    except BrokenPipeError:
        silence(stdout)
        return EXIT_OK
    except JobMonError as e:
        _endQuietly(session)
        flushQuietly(out)
        say(e)
        return exitCode(e.code)
    except UsageError as e:
        say(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _endQuietly(session)
        flushQuietly(out)
        if session is None or not session.following:
            say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:
        flushQuietly(out)
        say("internal error: %s: %s" % (type(e).__name__, e))
        return EXIT_SERVER
    finally:
        for each in [client] + made:
            if each is not None:
                try:
                    each.close()
                except Exception:
                    pass


def _endQuietly(session):
    """
    Write what the session's output still holds, ignoring a closed pipe.
    """
    if session is None:
        return
    try:
        session.endOutput()
    except Exception:
        pass


def _connect(args, environ, clientFactory):
    """
    Make the client for the global options C{args}: the server, the
    credential (a token or a proxy, see L{jobmon.client.resolveAuth}) and
    the CA directory, with their defaults from C{environ}.
    """
    server = args.server or environ.get("JOBMON_SERVER")
    if not server:
        raise UsageError("no server given: use --server URL or set JOBMON_SERVER")
    auth = _client.resolveAuth(
        args.auth or environ.get("JOBMON_AUTH") or "auto",
        proxy=args.proxy, key=args.key, tokenFile=args.token_file, environ=environ,
    )
    caDir = args.ca_dir or _client.defaultCADir(environ)
    if auth == "token":
        return clientFactory(
            server, caDir=caDir, timeout=args.timeout, auth="token",
            tokenFile=args.token_file, environ=environ,
        )
    return clientFactory(
        server,
        proxy=args.proxy or _client.defaultProxyPath(environ),
        key=args.key,
        caDir=caDir,
        timeout=args.timeout,
    )


"""
What every parser of C{jobmon-query} is made of: the argument parser that
reports errors in one line, the argument types, the global options, the
C{JOB} argument, and L{Command}, the one place where each command declares
its help, its arguments and what it does.

L{buildParser} builds the parser from the table of commands that
L{jobmon.cli} keeps.  Only the parser of the command about to run is made
and filled in with its arguments, so that the start-up does not pay for the
others.
"""

import argparse
import sys

from jobmon import client as _client
from jobmon.cli.exits import EXIT_STATUS_HELP

PROG = "jobmon-query"
"""The program's name, in its messages and help."""

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
"""The examples of the main help."""


class UsageError(Exception):
    """
    A command-line error, reported in one line with exit status 2.
    """


class ParserExit(Exception):
    """
    The parser is done (C{--help}, C{--version}).
    """

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """
    An argument parser that writes to the injected streams and reports
    errors in one line instead of exiting.
    """

    out = None
    err = None

    def error(self, message):
        """
        Raise L{UsageError} instead of printing the usage and exiting.
        """
        sub = self.prog[len(PROG):].strip()
        if sub:
            message = "%s: %s" % (sub, message)
        raise UsageError(message + " (see %s --help)" % (self.prog,))

    def exit(self, status=0, message=None):
        """
        Raise L{ParserExit} instead of exiting.
        """
        if message:
            self._print_message(message, sys.stderr)
        raise ParserExit(status)

    def _print_message(self, message, file=None):
        if not message:
            return
        if file is None or file is sys.stdout:
            file = self.out or sys.stdout
        elif file is sys.stderr:
            file = self.err or sys.stderr
        file.write(message)


def count(text):
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


def positive(text):
    """
    Parse a positive integer argument.
    """
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1: %r" % (text,))
    return value


def seconds(text):
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


GLOBAL_WITH_VALUE = (
    "--server", "--proxy", "--key", "--ca-dir", "--timeout", "--auth", "--token-file",
)
"""The global options that take a value."""


def addGlobalOptions(parser, defaults):
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
        "--auth", choices=_client.AUTH_MODES,
        help="x509 (proxy or certificate) or token (a WLCG bearer token); auto: "
             "a token named by $BEARER_TOKEN or $BEARER_TOKEN_FILE, else the proxy "
             "if there is one, else a token in $XDG_RUNTIME_DIR/bt_u$UID or "
             "/tmp/bt_u$UID (default: $JOBMON_AUTH, else auto)",
        **suppress,
    )
    group.add_argument(
        "--token-file", metavar="FILE", dest="token_file",
        help="the bearer token's file, read for every request (implies --auth "
             "token unless --auth says otherwise)",
        **suppress,
    )
    group.add_argument(
        "--ca-dir", metavar="DIR", dest="ca_dir",
        help="trusted CA certificates, hashed layout "
             "(default: $X509_CERT_DIR, else %s)" % (_client.DEFAULT_CA_DIR,),
        **suppress,
    )
    group.add_argument(
        "--timeout", metavar="S", type=seconds,
        help="seconds to wait for an answer, also the query's timeout on the "
             "server (default: 60)",
        **({"default": 60.0} if defaults else suppress),
    )
    group.add_argument(
        "--json", action="store_true",
        help="print the result as one JSON document (bytes as base64 in "
             "'data_base64', and as 'text' too when UTF-8); with -f, one JSON "
             "object per line",
        **({"default": False} if defaults else suppress),
    )


def addJob(sub):
    """
    Add the JOB argument.
    """
    sub.add_argument("job", metavar="JOB",
                     help="the job's id, or a prefix of it that names one of your jobs")


class Command:
    """
    One command of C{jobmon-query}, all in one place: its line in the main
    help, its own help, its arguments and what it does.  Each command is a
    subclass in the module of its kind (L{jobmon.cli.jobs},
    L{jobmon.cli.files}, L{jobmon.cli.processes}, L{jobmon.cli.commands});
    L{jobmon.cli.COMMANDS} lists them in the order of the help.

    @cvar name: the command's word on the command line.
    @cvar help: its line in the main help's list of commands.
    @cvar description: the text that opens its own help (default: C{help}).
    @cvar examples: the lines of its help's C{examples:} section.
    @cvar helpFlag: whether C{-h} asks for its help; false for a command
        whose C{-h} means something else (it adds C{--help} itself).
    """

    name = None
    help = None
    description = None
    examples = ()
    helpFlag = True

    def configure(self, parser):
        """
        Add the command's own arguments to its C{parser} (by default none);
        the global options are added after them.
        """

    def run(self, session):
        """
        Do the command and print its result.

        @param session: the L{jobmon.cli.session.Session} of this run.
        @return: the exit status, or C{None} for
            L{jobmon.cli.exits.EXIT_OK}.
        """
        raise NotImplementedError(self.name)


def wantedCommand(argv):
    """
    Guess which command C{argv} runs, without parsing it: the first word
    that is neither an option nor the value of a global option.  Only that
    command's parser is filled in (start-up time).
    """
    return _guess(argv)[0]


def _guess(argv):
    """
    Return the word L{wantedCommand} takes for the command, and whether it
    surely is: whether every word before it is a global option spelt in
    full, or its value.  An abbreviation (C{--serv}) may take the word for
    its value, and C{--help} shows every command.
    """
    skip = False
    sure = True
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None, False
        elif arg in GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg, sure
        elif arg != "--json" and arg.partition("=")[0] not in GLOBAL_WITH_VALUE:
            sure = False
    return None, False


def buildParser(names, find, stdout=None, stderr=None, argv=None):
    """
    Return the argument parser of C{jobmon-query}, writing help to
    C{stdout} and messages to C{stderr}.

    @param names: the name of every command, in the order of the help.
    @param find: called with a name, returns that L{Command}.
    @param argv: the arguments about to be parsed: only the parser of the
        command they name is filled in, and if they surely name one (see
        L{_guess}), only that command's parser is made: the others would
        not be used, and making them would be most of the start-up's own
        time.  By default every command's parser is made and filled in.
    """
    from jobmon import __version__

    parser = Parser(
        prog=PROG,
        description="Ask a running batch job about its files, processes and\n"
                    "resources, through a JobMon server.",
        epilog=EXAMPLES_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    addGlobalOptions(parser, True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted, sure = (None, False) if argv is None else _guess(argv)
    made = (wanted,) if sure and wanted in names else names
    for name in made:
        command = find(name)
        sub = subparsers.add_parser(
            name, help=command.help,
            description=command.description or command.help,
            epilog="examples:\n" + "".join("  %s\n" % (line,) for line in command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=command.helpFlag,
        )
        sub.out = stdout
        sub.err = stderr
        if wanted is None or wanted == name or wanted not in names:
            command.configure(sub)
            addGlobalOptions(sub, False)
    parser.out = stdout
    parser.err = stderr
    return parser

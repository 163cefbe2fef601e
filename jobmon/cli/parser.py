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
from jobmon.serverlist import AddServer

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
  jobmon-query du 1234.0 -h output
  jobmon-query tail 1234.0 job.log -n +100   # from line 100 on
  jobmon-query ps 1234.0
  jobmon-query top 1234.0 -d 2 -n 5
  jobmon-query run 1234.0 nvidia-smi -q
  jobmon-query signal 1234.0 USR1
  jobmon-query --json ls 1234.0 | jq '.entries[].name'

Each command has its own help: jobmon-query COMMAND --help.

Options may come anywhere among a command's arguments; -- ends them.

tab completion of commands, options and job ids (bash; zsh likewise):
  eval "$(jobmon-query completion bash)"
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


def terminalColumns():
    """
    C{shutil.get_terminal_size().columns}, without importing C{shutil}
    (which imports C{fnmatch}, C{bz2} and C{lzma}: start-up time):
    C{$COLUMNS}, else the width of the terminal of C{sys.__stdout__}, else
    80.
    """
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """
    C{argparse.RawDescriptionHelpFormatter} as wide as the terminal, found
    by L{terminalColumns}: C{argparse} makes a formatter for every argument
    added, and its own imports C{shutil} to learn the width.
    """

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            width = terminalColumns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """
    An argument parser that writes to the injected streams and reports
    errors in one line instead of exiting.

    @ivar intermixed: whether options may come anywhere among the
        positional arguments (C{ls 1234 -l sub}); a C{--} ends the options
        (see L{parseIntermixed}).  Commands whose last argument takes the
        rest of the line (C{run}) keep the plain parsing.
    """

    out = None
    err = None
    intermixed = False
    _inPass = False
    _setAside = ()

    def format_usage(self):
        """
        The usage, with the positional arguments L{parseIntermixed} may
        have set aside (C{--help} among them).
        """
        return self._whole(super().format_usage)

    def format_help(self):
        """
        The help, with the positional arguments L{parseIntermixed} may have
        set aside.
        """
        return self._whole(super().format_help)

    def _whole(self, f):
        setAside = self._setAside
        for action, nargs, default in setAside:
            action.nargs = nargs
            action.default = default
        try:
            return f()
        finally:
            for action, nargs, default in setAside:
                action.nargs = argparse.SUPPRESS
                action.default = argparse.SUPPRESS

    def parse_known_args(self, args=None, namespace=None):
        """
        Parse as L{parseIntermixed} does when L{intermixed} is set; the
        subcommands action of the main parser calls this.
        """
        if not self.intermixed or self._inPass:
            return super().parse_known_args(args, namespace)
        namespace, extras = parseIntermixed(
            self, sys.argv[1:] if args is None else list(args), namespace)
        if extras:
            # Said here, the message names the command.
            self.error("unrecognized arguments: %s" % (" ".join(extras),))
        return namespace, extras

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


_DASHES = "--\0"
"""What L{parseIntermixed} shows argparse for a word C{--} that is not the
end of the options."""


def parseIntermixed(parser, args, namespace=None):
    """
    Parse C{args} with C{parser}, its options allowed anywhere among its
    positional arguments, and every word after the first C{--} taken as a
    positional argument, whatever it looks like (a file named C{-x}).

    The words before C{--} are parsed twice, as
    C{argparse.ArgumentParser.parse_known_intermixed_args} does: first the
    options, the positional arguments set aside; then the positional
    arguments, from the words left and those after C{--}.  That second pass
    takes no word for an option, where Python 3.11's own handling of C{--}
    loses words.

    @return: C{(namespace, unrecognized words)}.
    """
    after = []
    if "--" in args:
        split = args.index("--")
        args, after = args[:split], args[split + 1:]
    positionals = parser._get_positional_actions()
    optionals = parser._get_optional_actions()
    saved = [(action, action.nargs, action.default) for action in positionals]
    parser._inPass = True
    try:
        # First pass: the options; the positional arguments take nothing.
        for action in positionals:
            action.nargs = argparse.SUPPRESS
            action.default = argparse.SUPPRESS
        parser._setAside = saved
        try:
            namespace, rest = parser.parse_known_args(args, namespace)
        finally:
            parser._setAside = ()
            for action, nargs, default in saved:
                action.nargs = nargs
                action.default = default
        for action in positionals:
            if getattr(namespace, action.dest, None) == []:
                delattr(namespace, action.dest)
        unknown = [word for word in rest if parser._parse_optional(word) is not None]
        words = [word for word in rest if parser._parse_optional(word) is None] + after
        # argparse drops a "--" whatever the prefix: a word "--" after the
        # first is hidden from it, then given back.
        words = [_DASHES if word == "--" else word for word in words]
        # Second pass: the positional arguments; no word is an option now.
        required = [(action, action.required) for action in optionals]
        groups = [(group, group.required) for group in parser._mutually_exclusive_groups]
        prefix = parser.prefix_chars
        try:
            for action, _ in required:
                action.required = False
            for group, _ in groups:
                group.required = False
            parser.prefix_chars = "\0"
            namespace, extras = parser.parse_known_args(words, namespace)
            for action in positionals:
                value = getattr(namespace, action.dest, None)
                if value == _DASHES:
                    setattr(namespace, action.dest, "--")
                elif isinstance(value, list):
                    setattr(namespace, action.dest,
                            ["--" if v == _DASHES else v for v in value])
            extras = ["--" if word == _DASHES else word for word in extras]
        finally:
            parser.prefix_chars = prefix
            for action, was in required:
                action.required = was
            for group, was in groups:
                group.required = was
    finally:
        parser._inPass = False
    return namespace, unknown + extras


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


class FromStart(int):
    """
    A count given as C{+N} (C{tail -n +N}, C{tail -c +N}): from line or
    byte N on, counted from 1, rather than the last N.
    """


def tailCount(text):
    """
    Parse the count of C{tail -n} or C{tail -c}: C{N} (or C{-N}) for the
    last N, C{+N} for a L{FromStart}.
    """
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError("not a whole number: %r" % (text,))
    return FromStart(digits) if text.startswith("+") else int(digits)


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
        "--server", metavar="URL", action=AddServer,
        help="the JobMon server, https://host[:port][/path]; repeatable, or a "
             "comma-separated list: a server that cannot be reached or is shutting "
             "down is left for the next (default: $JOBMON_SERVER, a URL or "
             "comma-separated list)",
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
    @cvar needsClient: whether it talks to the server: if not (C{completion}),
        it runs without a server given, and its session's C{client} is
        C{None} (C{session.connect} makes one).
    @cvar intermixed: whether its options may come anywhere among its
        positional arguments (see L{parseIntermixed}); false for a command
        whose last argument takes the rest of the line.

    A command's help is C{--help} only: C{-h} is free for the command's
    own use (human-readable sizes in C{ls}, C{du} and C{df}).
    """

    name = None
    help = None
    description = None
    examples = ()
    intermixed = True
    needsClient = True

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
    from jobmon.options import versionAction

    parser = Parser(
        prog=PROG,
        description="Ask a running batch job about its files, processes and\n"
                    "resources, through a JobMon server.",
        epilog=EXAMPLES_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=versionAction())
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
            formatter_class=HelpFormatter,
            add_help=False,
        )
        sub.out = stdout
        sub.err = stderr
        sub.intermixed = command.intermixed
        sub.add_argument("--help", action="help", help="show this help and exit")
        if wanted is None or wanted == name or wanted not in names:
            command.configure(sub)
            addGlobalOptions(sub, False)
    parser.out = stdout
    parser.err = stderr
    return parser

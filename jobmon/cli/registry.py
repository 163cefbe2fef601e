"""
The table of C{jobmon-query}'s commands, in the order of its help, and the
parser built from it.

Each command lives in the module of its kind as one
L{jobmon.cli.parser.Command}; this module only lists them.  Only the parser
of the command about to run is filled in with its arguments, so that the
start-up does not pay for the others.
"""

import argparse

from jobmon.cli import commands, files, jobs, processes
from jobmon.cli.exits import EXIT_STATUS_HELP
from jobmon.cli.parser import GLOBAL_WITH_VALUE, PROG, Parser, addGlobalOptions

COMMANDS = {command.name: command for command in (
    jobs.Whoami(),
    jobs.Jobs(),
    files.Ls(),
    files.Stat(),
    files.Cat(),
    files.Head(),
    files.Tail(),
    files.Du(),
    files.Df(),
    processes.Ps(),
    processes.Top(),
    processes.Res(),
    processes.Env(),
    commands.Commands(),
    commands.Run(),
    processes.Signal(),
    jobs.History(),
    jobs.Audit(),
)}
"""Every command by name, in the order of the help."""

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


def wantedCommand(argv):
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
        elif arg in GLOBAL_WITH_VALUE:
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
    wanted = None if argv is None else wantedCommand(argv)
    for command in COMMANDS.values():
        sub = subparsers.add_parser(
            command.name, help=command.help,
            description=command.description or command.help,
            epilog="examples:\n" + "".join("  %s\n" % (line,) for line in command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=command.helpFlag,
        )
        sub.out = stdout
        sub.err = stderr
        if wanted is None or wanted == command.name or wanted not in COMMANDS:
            command.configure(sub)
            addGlobalOptions(sub, False)
    parser.out = stdout
    parser.err = stderr
    return parser

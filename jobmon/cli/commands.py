"""
The commands a job's configuration offers: C{commands} lists them, C{run}
runs one.  Each is one L{Command} with what formats its result.
"""

import argparse

from jobmon import errors
from jobmon.cli.exits import EXIT_OK, EXIT_REMOTE
from jobmon.cli.format import formatAge, printable, table
from jobmon.cli.output import writeError
from jobmon.cli.parser import Command, addJob
from jobmon.errors import JobMonError

# -- commands -----------------------------------------------------------------


class Commands(Command):
    """
    C{commands}: what C{run} offers.
    """

    name = "commands"
    help = "list the commands the job offers to 'run'"
    description = (
        "List the commands the job offers to 'run'.  PROGRAM says whether the\n"
        "command's program is on the worker now: 'missing' if it was never\n"
        "found or has gone since the job started ('run' would fail).")
    examples = ("jobmon-query commands 1234.0",)

    def configure(self, sub):
        """
        C{JOB}.
        """
        addJob(sub)

    def run(self, s):
        """
        Print the table of the job's commands.
        """
        s.show(s.query("commands"), formatCommands)


def formatCommands(result):
    """
    Return the table of a C{commands} result, or C{["No commands."]}: a
    command whose program is not on the worker says C{missing} (C{?} if
    the daemon does not say).
    """
    commands = result.get("commands", [])
    signals = result.get("signals")
    tail = []
    if isinstance(signals, list):
        # Daemons before it do not say.
        tail = ["Signals allowed: " + (" ".join(printable(str(s)) for s in signals)
                                       if signals else "none")]
    if not commands:
        return ["No commands."] + tail
    rows = []
    for command in commands:
        timeout = command.get("timeout")
        available = command.get("available")
        rows.append([
            printable(str(command.get("name", "?"))),
            "?" if available is None else "ok" if available else "missing",
            formatAge(timeout) if timeout is not None else "-",
            printable(str(command.get("usage") or "")),
            printable(str(command.get("description") or "")),
        ])
    return table(["NAME", "PROGRAM", "TIMEOUT", "USAGE", "DESCRIPTION"], rows, right=(2,)) + tail


def closestCommand(name, names):
    """
    Return the name of C{names} nearest to C{name} (a typo), or L{None}.
    """
    import difflib

    if len(name) > 64:
        return None
    found = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return found[0] if found else None


# -- run ----------------------------------------------------------------------


class Run(Command):
    """
    C{run}: a command of the job; its output, and status 0 or 1.
    """

    name = "run"
    help = "run one of the job's commands; its exit status becomes 0 or 1"
    intermixed = False
    description = (
        "Run one of the commands the job's configuration offers (see\n"
        "'commands'), never through a shell.  Everything after NAME is\n"
        "passed on as its arguments, also words that start with '-'.  Its\n"
        "standard output and error go to ours.  The exit status is 0 if it\n"
        "exited with 0, else 1, with 'jobmon-query: NAME exited with status\n"
        "N' on standard error.")
    examples = ("jobmon-query run 1234.0 nvidia-smi",
                "jobmon-query run 1234.0 grep -i error job.log",
                "jobmon-query --json run 1234.0 nvidia-smi -q")

    def configure(self, sub):
        """
        C{JOB}, C{NAME} and the rest of the line as its arguments.
        """
        addJob(sub)
        sub.add_argument("--raw", action="store_true",
                         help="write control characters to a terminal as they are")
        sub.add_argument("name", metavar="NAME", help="the command (see 'commands')")
        sub.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER,
                         help="its arguments; everything after NAME is passed on")

    def run(self, s):
        """
        Write the command's output and error as they are; say how it
        exited unless with 0.
        """
        a = s.args
        try:
            result = s.query("run", a.name, list(a.args))
        except JobMonError as e:
            if e.code == errors.NO_SUCH_COMMAND:
                _suggest(s, e, a.name)
            raise
        if s.json:
            s.out.json(result)
        else:
            s.write(result.get("stdout", b""))
            s.endOutput()
            err = result.get("stderr", b"")
            if err:
                writeError(s.stderr, err, raw=getattr(a, "raw", False))
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


def _suggest(s, error, name):
    """
    For a daemon that does not suggest a name itself (an older one), ask it
    for its commands and raise C{error} with the nearest name added, if
    there is one; else return, to raise C{error} as it is.
    """
    if "did you mean" in error.message:
        return
    try:
        listing = s.query("commands")
    except Exception:
        # Only a hint: the error to report is the first one.
        return
    names = [str(c.get("name", "")) for c in listing.get("commands", [])
             if isinstance(c, dict)]
    near = closestCommand(name, names)
    if near is not None:
        raise JobMonError(error.code, "%s; did you mean %s?" % (
            error.message, repr(near))) from None

"""
The manual page of C{jobmon-query}, and its bash completion file, generated
from its argument parser: C{man/jobmon-query.1} (troff, man macros) and
C{completion/jobmon-query}, both installed with the package (the
C{data-files} of C{pyproject.toml}: C{share/man/man1} and
C{share/bash-completion/completions}).

    python -m jobmon.devtools.manpage regenerate [ROOT]
    python -m jobmon.devtools.manpage show       # the page, to standard output

C{tests/devtools/test_manpage.py} checks that the committed files match the
parser.  The page depends on nothing but the parser and the help texts (no
terminal width, date or version), so that it changes only when they do.
"""

import argparse
import os
import sys

from jobmon.cli import buildParser
from jobmon.cli.completion import BASH_SCRIPT
from jobmon.cli.exits import EXIT_STATUS_HELP
from jobmon.cli.parser import EXAMPLES_HELP, PROG

MAN_PAGE = os.path.join("man", "jobmon-query.1")
"""The page, relative to the source tree."""

COMPLETION_FILE = os.path.join("completion", "jobmon-query")
"""The bash completion file, relative to the source tree."""

ENVIRONMENT = (
    ("JOBMON_SERVER", "the server, when --server is not given"),
    ("JOBMON_AUTH", "the authentication mode, when --auth is not given"),
    ("X509_USER_PROXY", "the proxy or certificate file (default /tmp/x509up_u$UID)"),
    ("X509_CERT_DIR", "the trusted CA certificates (default /etc/grid-security/certificates)"),
    ("BEARER_TOKEN, BEARER_TOKEN_FILE", "a WLCG bearer token, or its file"),
    ("XDG_RUNTIME_DIR", "where a bearer token bt_u$UID is looked for (then /tmp)"),
)
"""The environment variables the page lists."""


def escape(text):
    """
    Escape C{text} for troff: backslashes, and a line starting with a dot
    or a quote (a request otherwise).
    """
    text = text.replace("\\", "\\e")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _option(text):
    """
    An option or command word in bold, its dashes as minus signs.
    """
    return "\\fB" + escape(text).replace("-", "\\-") + "\\fR"


def _help(action):
    """
    The help of C{action}, with argparse's C{%(default)s} and the like
    filled in, on one line.
    """
    text = argparse.HelpFormatter(PROG)._expand_help(action)
    return " ".join(text.split())


def _metavar(action):
    """
    The metavar of an option that takes a value, as the help shows it.
    """
    if action.metavar is not None:
        return action.metavar
    if action.choices:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def _optionItem(action):
    """
    The C{.TP} paragraph of one option.
    """
    names = ", ".join(_option(name) for name in action.option_strings)
    if action.nargs != 0:
        names += " \\fI" + escape(_metavar(action)) + "\\fR"
    return [".TP", names, escape(_help(action))]


def _positionalWord(action):
    """
    A positional argument in a synopsis: C{JOB}, C{[PATH]}, C{[ARGS ...]}.
    """
    word = "\\fI" + escape(action.metavar or action.dest.upper()) + "\\fR"
    if action.nargs == "?":
        return "[" + word + "]"
    if action.nargs in ("*", argparse.REMAINDER):
        return "[" + word + " ...]"
    if action.nargs == "+":
        return word + " [" + word + " ...]"
    return word


def _shown(actions):
    return [a for a in actions if a.help is not argparse.SUPPRESS]


def _globalDests(parser):
    """
    The dests of the global options (C{--server}...), left out of each
    command's own options.
    """
    for group in parser._action_groups:
        if group.title == "global options":
            return {a.dest for a in group._group_actions}
    return set()


def manPage(parser=None):
    """
    Return the manual page of C{jobmon-query} (troff, man macros).

    @param parser: the parser (default: every command's, L{buildParser}).
    """
    if parser is None:
        parser = buildParser()
    globalDests = _globalDests(parser)
    out = [
        '.\\" Generated from the parser by: python -m jobmon.devtools.manpage regenerate',
        '.\\" Do not edit: change the help texts in jobmon/cli/ and regenerate.',
        '.TH JOBMON\\-QUERY 1 "" "JobMon" "User Commands"',
        ".SH NAME",
        "jobmon\\-query \\- ask a running batch job about its files, processes and resources",
        ".SH SYNOPSIS",
        "%s [\\fIglobal options\\fR] \\fICOMMAND\\fR [\\fIarguments\\fR] "
        "[\\fIglobal options\\fR]" % (_option(PROG),),
        ".br",
        "%s \\fICOMMAND\\fR %s" % (_option(PROG), _option("--help")),
        ".SH DESCRIPTION",
        escape(" ".join(parser.description.split())),
        ".PP",
        "Each command asks the JobMon server, which forwards the request to the job's "
        "daemon.  A job is named by its id, or by a prefix of it that names one of your "
        "jobs.  Options may come anywhere among a command's arguments "
        "(\\fBjobmon\\-query ls 1234 \\-l sub\\fR); \\fB\\-\\-\\fR ends the options, so "
        "that a file named \\fB\\-x\\fR can be given.  The global options may come "
        "before or after the command (for \\fBrun\\fR, before NAME).  Each command's "
        "help is \\fB\\-\\-help\\fR; \\fB\\-h\\fR means human-readable sizes in "
        "\\fBls\\fR, \\fBdu\\fR and \\fBdf\\fR.",
        ".SH OPTIONS",
    ]
    for action in _shown(parser._actions):
        if action.option_strings and action.dest not in globalDests:
            out += _optionItem(action)
    out.append(".SH GLOBAL OPTIONS")
    for action in _shown(parser._actions):
        if action.option_strings and action.dest in globalDests:
            out += _optionItem(action)
    out.append(".SH COMMANDS")
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        words = [_positionalWord(a) for a in _shown(sub._get_positional_actions())]
        own = [a for a in _shown(sub._get_optional_actions())
               if a.dest not in globalDests and a.dest != "help"]
        synopsis = " ".join([_option(name)] + (["[\\fIoptions\\fR]"] if own else []) + words)
        out += [".SS " + synopsis, escape(" ".join(sub.description.split()))]
        for action in _shown(sub._get_positional_actions()):
            out += [".TP", _positionalWord(action), escape(_help(action))]
        for action in own:
            out += _optionItem(action)
        examples = (sub.epilog or "").split("\n")[1:]
        examples = [line.strip() for line in examples if line.strip()]
        if examples:
            out += [".PP", "Examples:", ".RS", ".nf"]
            out += [escape(line) for line in examples]
            out += [".fi", ".RE"]
    out.append(".SH EXIT STATUS")
    out += [".nf"] + [escape(line) for line in EXIT_STATUS_HELP.split("\n")[1:] if line]
    out.append(".fi")
    out.append(".SH ENVIRONMENT")
    for name, meaning in ENVIRONMENT:
        out += [".TP", "\\fB" + escape(name) + "\\fR", escape(meaning)]
    out.append(".SH EXAMPLES")
    examples = EXAMPLES_HELP.split("\n\n")[0].split("\n")[1:]
    out += [".nf"] + [escape(line.strip()) for line in examples if line.strip()] + [".fi"]
    out += [
        ".SH SHELL COMPLETION",
        "Completion of commands, options and job ids (asked of the server) in bash: "
        "the package installs "
        "\\fIshare/bash\\-completion/completions/jobmon\\-query\\fR; or add "
        "\\fBeval \"$(jobmon\\-query completion bash)\"\\fR to \\fI~/.bashrc\\fR "
        "(zsh: \\fBcompletion zsh\\fR in \\fI~/.zshrc\\fR).",
        ".SH SEE ALSO",
        "\\fBjobmon\\-run\\fR (run a batch job with a JobMon daemon beside it); "
        "docs/COMMANDS.md and docs/API.md of the JobMon sources.",
    ]
    return "\n".join(out) + "\n"


def completionFile():
    """
    The bash completion file installed with the package.
    """
    return BASH_SCRIPT


def regenerate(root):
    """
    Write the manual page and the bash completion file under the source
    tree C{root}.
    """
    for name, text in ((MAN_PAGE, manPage()), (COMPLETION_FILE, completionFile())):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def main(argv=None):
    """
    C{python -m jobmon.devtools.manpage regenerate [ROOT]}, or C{show}.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["regenerate"] and len(args) <= 2:
        regenerate(args[1] if len(args) == 2 else ".")
    elif args == ["show"]:
        sys.stdout.write(manPage())
    else:
        raise SystemExit("usage: python -m jobmon.devtools.manpage regenerate [ROOT] | show")


if __name__ == "__main__":
    main()

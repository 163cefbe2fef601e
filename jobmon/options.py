"""
Pieces shared by the server's and the daemon's command-line options (and
the clients' defaults: standard library only).
"""

import os

DEFAULT_CA_DIR = "/etc/grid-security/certificates"
"""Where grid hosts keep their trusted CAs."""


def defaultCADir(environ=None):
    """
    The CA directory grid tools use: C{$X509_CERT_DIR}, then
    L{DEFAULT_CA_DIR}.

    @param environ: the environment (default C{os.environ}).
    """
    environ = os.environ if environ is None else environ
    return environ.get("X509_CERT_DIR") or DEFAULT_CA_DIR


def positive(kind):
    """
    An option coercer: C{kind(value)}, refused unless above zero.
    """

    def convert(value):
        # Imported here: jobmon-query's start-up does without it.
        import math

        number = kind(value)
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        if number <= 0:
            raise ValueError("must be positive")
        return number

    convert.__name__ = kind.__name__
    return convert


def portNumber(value):
    """
    An option coercer for a TCP or UDP port (0 means any free port).
    """
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("not a port number")
    return number


def versionAction():
    """
    An argparse action for C{--version}: print C{"PROG VERSION"} (see
    L{jobmon.version}) and exit with status 0, through the parser's own
    C{_print_message} and C{exit} so that a parser writing to other streams
    keeps doing so.  The version is looked up only when asked.
    """
    import argparse

    class Version(argparse.Action):
        def __init__(self, option_strings, dest=argparse.SUPPRESS,
                     default=argparse.SUPPRESS, help="show the program's version and exit"):
            super().__init__(option_strings=option_strings, dest=dest, default=default,
                             nargs=0, help=help)

        def __call__(self, parser, namespace, values, option_string=None):
            import sys

            from jobmon import version

            parser._print_message("%s %s\n" % (parser.prog, version()), sys.stdout)
            parser.exit(0)

    return Version

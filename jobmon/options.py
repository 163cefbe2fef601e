"""
Pieces shared by the server's and the daemon's command-line options (and
the clients' defaults: standard library only).
"""

import math
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

"""
JobMon: interactive monitoring of running batch and grid jobs.

This package's top level imports nothing heavy: the command-line client
(L{jobmon.cli}) and its library (L{jobmon.client}) use only the standard
library so that C{jobmon-query} starts fast.  Twisted is imported only by the
server, the daemon and the wire protocols.
"""

__version__ = "0.1.0"
"""The version of this source tree (that of C{pyproject.toml})."""


def version():
    """
    The version of the installed package, as its metadata says; in a source
    tree that is not installed, L{__version__}.  C{importlib.metadata} is
    imported only when asked (it costs start-up time).
    """
    from importlib import metadata

    try:
        return metadata.version("jobmon")
    except metadata.PackageNotFoundError:
        return __version__

"""
JobMon: interactive monitoring of running batch and grid jobs.

This package's top level imports nothing heavy: the command-line client
(L{jobmon.cli}) and its library (L{jobmon.client}) use only the standard
library so that C{jobmon-query} starts fast.  Twisted is imported only by the
server, the daemon and the wire protocols.
"""

__version__ = "0.1.0"

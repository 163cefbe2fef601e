"""
What C{/healthz} tells, and the plain-HTTP site of the metrics port.

A server that answers queries but cannot write its audit trail or its
history is not healthy: L{Writability} keeps, for each file the server
writes, whether its last write failed and why, so that C{/healthz} can
answer 503 naming it, and the log says so once when writing starts to
fail and once when it works again (not once per write).

The metrics port speaks plain HTTP.  A client that asks for C{https://}
there sends a TLS ClientHello, which a plain HTTP server takes for the
start of a request line and waits, until a timeout, for the rest:
L{MetricsSite} sees the TLS record (its first byte is 0x16, a handshake)
and closes the connection at once, so the client fails at once.
"""

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from jobmon.server.tls import RefusalBudget

TLS_HANDSHAKE = 0x16
"""The first byte of a TLS handshake record (a ClientHello); no HTTP method
begins with it."""


class Writability:
    """
    Whether each file the server writes can be written, as the last write
    told.

    @ivar problems: the problem of each failing file, by its name (C{"audit
        log"}, C{"history"}): C{(path, why)}.
    """

    log = Logger()

    def __init__(self):
        self.problems = {}

    def failed(self, name, path, why):
        """
        A write to the file C{name} at C{path} failed because of C{why};
        logged if it is the first failure since the file was last fine.
        """
        if name not in self.problems:
            self.log.error(
                "cannot write the {name} {path}: {why}; records are being lost until it "
                "can be written again (/healthz answers 503 meanwhile)",
                name=name, path=path, why=why,
            )
        self.problems[name] = (path, why)

    def worked(self, name, lost=0):
        """
        A write to the file C{name} worked; logged if it failed before.

        @param lost: how many records were lost while it failed.
        """
        problem = self.problems.pop(name, None)
        if problem is not None:
            self.log.info(
                "the {name} {path} can be written again ({lost} records lost)",
                name=name, path=problem[0], lost=lost,
            )

    def describe(self):
        """
        One line per failing file, C{"cannot write the NAME PATH: WHY"}, in
        name order; empty if all are fine.
        """
        return [
            "cannot write the {} {}: {}".format(name, path, why)
            for name, (path, why) in sorted(self.problems.items())
        ]


def describeError(error):
    """
    An error of a write, in words: C{strerror} of an L{OSError} (C{"No
    space left on device"}), else its text.
    """
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class PlainHTTPChannel(HTTPChannel):
    """
    An HTTP channel that closes at once a connection beginning with a TLS
    handshake.
    """

    _first = True

    def dataReceived(self, data):
        if self._first and data:
            self._first = False
            if data[0] == TLS_HANDSHAKE:
                self.factory.tlsRefused(self.transport)
                self.transport.abortConnection()
                return None
        return HTTPChannel.dataReceived(self, data)


class MetricsSite(Site):
    """
    The metrics port's site: plain HTTP, no access log, and a TLS
    handshake answered by closing the connection (logged a few times a
    minute per address).
    """

    noisy = False
    protocol = PlainHTTPChannel
    logger = Logger()

    def __init__(self, resource, budget=None, **kwargs):
        super().__init__(resource, **kwargs)
        self.budget = budget or RefusalBudget()

    def tlsRefused(self, transport):
        """
        A TLS handshake arrived: say so, within the budget.
        """
        host = getattr(transport.getPeer(), "host", None)
        suppressed = self.budget.admit(host)
        if suppressed is None:
            return
        self.logger.info(
            "TLS handshake from {peer} on the plain-HTTP metrics port: closed "
            "(use http://, not https://){more}",
            peer=host,
            more="; {} more from there not logged".format(suppressed) if suppressed else "",
        )

    def log(self, request):
        """
        Log nothing per HTTP request.
        """

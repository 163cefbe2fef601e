"""
The JobMon central server: C{twistd jobmon-server}.

One reactor serves the XML-RPC endpoint (HTTPS, client certificates
required) and the TCP wake port (TLS, same certificates).
"""

import json
import os

from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import Resource

from jobmon.hub import Hub
from jobmon.identity import identityOfConnection
from jobmon.pending import MemoryRequestTable
from jobmon.protocols.wake import WakeServerFactory
from jobmon.protocols.xmlrpc import QuietSite, XMLRPCResource, identifyTLS
from jobmon.registry import MemoryJobRegistry
from jobmon.tls import CredentialError, ServerContextFactory

DEFAULT_CA_DIR = "/etc/grid-security/certificates"


def _positive(kind):
    def convert(value):
        number = kind(value)
        if number <= 0:
            raise ValueError("must be positive")
        return number

    convert.__name__ = kind.__name__
    return convert


def _port(value):
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("not a port number")
    return number


class Options(usage.Options):
    """
    Command-line options of C{twistd jobmon-server}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run the JobMon central server: XML-RPC over HTTPS for users and job "
        "daemons, and the TCP wake port for job daemons."
    )

    optParameters = [
        ["interface", None, "0.0.0.0", "Address to listen on."],
        ["https-port", None, 8443, "XML-RPC over HTTPS port (0: any free port).", _port],
        ["wake-port", None, 8444, "TCP wake channel port (0: any free port).", _port],
        ["hostcert", None, "/etc/grid-security/hostcert.pem", "Host certificate (PEM)."],
        ["hostkey", None, "/etc/grid-security/hostkey.pem", "Host key (PEM)."],
        [
            "ca-dir",
            None,
            None,
            "Trusted CAs, OpenSSL hashed directory "
            "[default: $X509_CERT_DIR, then " + DEFAULT_CA_DIR + "].",
        ],
        [
            "query-timeout",
            None,
            30.0,
            "Seconds a query waits for its job.",
            _positive(float),
        ],
        [
            "keepalive",
            None,
            20,
            "Wake channel keep-alive interval, seconds; a silent peer is dropped "
            "after three intervals.",
            _positive(int),
        ],
        [
            "connect-grace",
            None,
            30.0,
            "Seconds a registered job has to connect its wake channel.",
            _positive(float),
        ],
        [
            "max-body",
            None,
            16 * 1024 * 1024,
            "Largest XML-RPC request body accepted, bytes (results included).",
            _positive(int),
        ],
        [
            "max-pending-per-job",
            None,
            64,
            "Most requests queued or running for one job.",
            _positive(int),
        ],
        [
            "port-file",
            None,
            None,
            "Once listening, write the bound ports here as JSON "
            '({"https": N, "wake": N}); useful with port 0.',
        ],
    ]

    def __init__(self):
        super().__init__()
        self["admin"] = []

    def opt_admin(self, dn):
        """
        A DN that may see and query every job (repeatable).
        """
        self["admin"].append(dn)

    def postOptions(self):
        if self["ca-dir"] is None:
            self["ca-dir"] = os.environ.get("X509_CERT_DIR") or DEFAULT_CA_DIR
        self.contextFactory = ServerContextFactory(
            self["hostcert"], self["hostkey"], self["ca-dir"]
        )
        try:
            self.contextFactory.load()
        except CredentialError as e:
            raise usage.UsageError(str(e))


class _Listener(Service):
    """
    Listen on a stream endpoint when the service starts; stop listening when
    it stops.  Binding happens in C{privilegedStartService} and fails
    start-up at once if the port cannot be had.
    """

    def __init__(self, endpoint, factory):
        self.endpoint = endpoint
        self.factory = factory
        self.port = None

    def privilegedStartService(self):
        super().privilegedStartService()
        outcome = []
        self.endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            raise RuntimeError("endpoint did not listen synchronously")
        if not hasattr(outcome[0], "getHost"):
            outcome[0].raiseException()
        self.port = outcome[0]

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


class ServerService(MultiService):
    """
    The whole server: the hub, the HTTPS listener and the wake listener.
    """

    log = Logger()

    def __init__(self, reactor, hub, https, wake, portFile=None):
        super().__init__()
        self.reactor = reactor
        self.hub = hub
        self.https = https
        self.wake = wake
        self.portFile = portFile
        https.setServiceParent(self)
        wake.setServiceParent(self)

    def privilegedStartService(self):
        super().privilegedStartService()
        self.hub.wakePort = self.wake.port.getHost().port

    def startService(self):
        super().startService()
        ports = {
            "https": self.https.port.getHost().port,
            "wake": self.wake.port.getHost().port,
        }
        self.log.info(
            "JobMon server listening: XML-RPC on {https}, TCP wake on {wake}", **ports
        )
        if self.portFile:
            tmp = self.portFile + ".tmp"
            with open(tmp, "w") as f:
                json.dump(ports, f)
            os.replace(tmp, self.portFile)

    async def _stop(self):
        await self.hub.stop()
        await MultiService.stopService(self)

    def stopService(self):
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._stop())


def buildServer(reactor, options):
    """
    Build the server service from parsed L{Options}.
    """
    hub = Hub(
        reactor,
        MemoryJobRegistry(),
        MemoryRequestTable(),
        admins=options["admin"],
        queryTimeout=options["query-timeout"],
        keepalive=options["keepalive"],
        connectGrace=options["connect-grace"],
        maxPendingPerJob=options["max-pending-per-job"],
    )
    identify = identifyTLS(identityOfConnection)
    rpc = XMLRPCResource(
        {
            "jobmon.whoami": hub.whoami,
            "jobmon.listJobs": hub.listJobs,
            "jobmon.query": hub.query,
            "jobmon.registerJob": hub.registerJob,
            "jobmon.unregisterJob": hub.unregisterJob,
            "jobmon.getJobToDo": hub.getJobToDo,
            "jobmon.outputJobResult": hub.outputJobResult,
        },
        identify,
        maxBody=options["max-body"],
    )
    root = Resource()
    root.putChild(b"RPC2", rpc)
    site = QuietSite(root)

    def wakeIdentify(transport):
        return identityOfConnection(transport.getHandle())

    ctx = options.contextFactory
    https = _Listener(
        endpoints.SSL4ServerEndpoint(
            reactor, options["https-port"], ctx, interface=options["interface"]
        ),
        site,
    )
    wake = _Listener(
        endpoints.SSL4ServerEndpoint(
            reactor, options["wake-port"], ctx, interface=options["interface"]
        ),
        WakeServerFactory(hub, wakeIdentify, reactor),
    )
    return ServerService(reactor, hub, https, wake, portFile=options["port-file"])


def makeService(options):
    """
    twistd entry point.
    """
    from twisted.internet import reactor

    return buildServer(reactor, options)

"""
Tests for L{jobmon.server.health}: C{/healthz} names the files the server
cannot write, and the plain-HTTP metrics port closes a TLS handshake at
once.
"""

import errno
import os
import sqlite3

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon.server.audit import AuditLog
from jobmon.server.health import MetricsSite, Writability
from jobmon.server.history import History
from jobmon.server.metrics import Metrics, MetricsResource

CLIENT_HELLO = bytes.fromhex("160301020001")
"""The first bytes of a TLS ClientHello: a handshake record."""


class FakeHub:
    """
    Only what C{/healthz} reads of the hub.
    """

    stopping = False


class FullFile:
    """
    A file on a full disk while C{full}.
    """

    def __init__(self):
        self.full = True
        self.lines = []

    def write(self, data):
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.lines.append(data)

    def flush(self):
        pass

    def close(self):
        pass


def get(site, path):
    """
    GET C{path} from C{site} over a fake connection.

    @return: the bytes the site sent back.
    """
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return transport.value()


class HealthTests(SynchronousTestCase):
    """
    C{/healthz} answers 503 naming each file that cannot be written, and
    C{ok} again once it can; the log says so once each way.
    """

    def setUp(self):
        self.writability = Writability()
        # A clock of its own: the channels' timeouts stay off the reactor.
        self.site = MetricsSite(MetricsResource(Metrics(), FakeHub(), self.writability),
                                reactor=Clock())
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_ok(self):
        """
        All files writable: 200 C{ok}.
        """
        response = get(self.site, b"/healthz")
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertTrue(response.endswith(b"\r\n\r\nok\n"), response)

    def test_auditDiskFull(self):
        """
        An audit log on a full disk: 503 naming the file and the reason,
        logged once for many records, and C{ok} with one more log line once
        a record is written again.
        """
        audit = AuditLog(self.mktemp(), writability=self.writability)
        audit._file = full = FullFile()
        for _ in range(3):
            audit.record("query", job_id="j")
        response = get(self.site, b"/healthz")
        self.assertTrue(response.startswith(b"HTTP/1.1 503 "), response)
        self.assertTrue(response.endswith(
            "cannot write the audit log {}: No space left on device\n".format(
                audit.path).encode()), response)
        [event] = self.observer
        self.assertEqual(event["path"], audit.path)
        self.assertEqual(event["why"], "No space left on device")
        full.full = False
        audit.record("query", job_id="j")
        self.assertTrue(get(self.site, b"/healthz").startswith(b"HTTP/1.1 200 "))
        self.assertEqual(len(self.observer), 2)
        self.assertIn("can be written again", self.observer[1]["log_format"])
        self.assertEqual(self.observer[1]["lost"], 3)

    def test_historyFull(self):
        """
        A history database that cannot be written: 503 naming it, and
        C{ok} once a batch is written again.
        """
        clock = Clock()
        failing = [True]
        history = History(self.mktemp(), clock, writability=self.writability,
                          runInThread=lambda f, *a: defer.maybeDeferred(f, *a))
        self.successResultOf(history.start())
        self.addCleanup(history._connection.close)
        realWrite = history._write

        def write(rows):
            if failing[0]:
                raise sqlite3.OperationalError("database or disk is full")
            return realWrite(rows)

        history._write = write
        for _ in range(2):
            history.record("register", job_id="j1", dn="/CN=A")
            clock.advance(history.flushInterval)
        response = get(self.site, b"/healthz")
        self.assertTrue(response.endswith(
            "cannot write the history {}: database or disk is full\n".format(
                history.path).encode()), response)
        self.assertEqual(len(self.observer), 1)
        failing[0] = False
        history.record("register", job_id="j1", dn="/CN=A")
        clock.advance(history.flushInterval)
        self.assertTrue(get(self.site, b"/healthz").startswith(b"HTTP/1.1 200 "))
        self.assertEqual(history.lost, 2)

    def test_historyCannotOpen(self):
        """
        A history database that cannot be opened is named too.
        """
        path = os.path.join(self.mktemp(), "missing", "history.sqlite3")
        history = History(path, Clock(), writability=self.writability,
                          runInThread=lambda f, *a: defer.maybeDeferred(f, *a))
        self.failureResultOf(history.start(), sqlite3.OperationalError)
        self.assertEqual(
            self.writability.describe(),
            ["cannot write the history {}: unable to open database file".format(path)],
        )

    def test_stopping(self):
        """
        A server shutting down says so first.
        """
        self.site.resource.hub.stopping = True
        self.addCleanup(setattr, FakeHub, "stopping", False)
        self.writability.failed("audit log", "/x", "Read-only file system")
        self.assertTrue(get(self.site, b"/healthz").endswith(b"stopping\n"))


class TLSAtPlainPortTests(SynchronousTestCase):
    """
    A TLS ClientHello on the plain-HTTP metrics port is answered by
    closing the connection at once.
    """

    def setUp(self):
        self.site = MetricsSite(MetricsResource(Metrics(), FakeHub()), reactor=Clock())
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def connect(self):
        channel = self.site.buildProtocol(IPv4Address("TCP", "10.0.0.7", 50000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 50000))
        channel.makeConnection(transport)
        return channel, transport

    def test_closed(self):
        """
        The connection is closed as the first bytes arrive, nothing is sent,
        and the log says why.
        """
        channel, transport = self.connect()
        channel.dataReceived(CLIENT_HELLO)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        [event] = self.observer
        self.assertEqual(event["peer"], "10.0.0.7")
        self.assertIn("use http://", event["log_format"])

    def test_logBudget(self):
        """
        A flood from one address is logged a few times a minute.
        """
        for _ in range(20):
            channel, transport = self.connect()
            channel.dataReceived(CLIENT_HELLO)
            self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.observer), 5)

    def test_plainHTTP(self):
        """
        Plain HTTP still works, byte by byte too.
        """
        channel, transport = self.connect()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
            channel.dataReceived(bytes([byte]))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertTrue(transport.value().endswith(b"ok\n"))
        channel.connectionLost(None)

"""
End-to-end tests of the HTTPS connection limits over real TLS: the
handshake deadline, a body announced too large, clients without a
certificate, the C{Server} header.
"""

import os
import socket
import ssl
import time
import xmlrpc.client

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support import TestPKI, inThread, startServer


def _closedWithin(port, seconds):
    """
    Open a TCP connection to C{port} that never starts its TLS handshake.

    @return: the seconds until the server closed it, or L{None}.
    """
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        try:
            s.recv(1)
        except socket.timeout:
            return None
        except OSError:
            pass
    return time.monotonic() - start


class HTTPLimitsTests(TestCase):
    """
    A real server with a 1 s handshake deadline.
    """

    timeout = 60

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.server = await startServer(self, self.tpki, "--handshake-deadline", "1")

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def context(self, proxy=True):
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.check_hostname = False
        if proxy:
            ctx.load_cert_chain(self.tpki.proxies["alice"])
        return ctx

    def exchange(self, data, proxy=True):
        """
        Send C{data} on a new TLS connection and read what comes back
        until the server closes or 5 s pass.
        """
        raw = socket.create_connection(("127.0.0.1", self.server.httpsPort), timeout=5)
        with self.context(proxy).wrap_socket(raw) as s:
            s.sendall(data)
            answer = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
                    if b"</methodResponse>" in answer:
                        break
            except (socket.timeout, ssl.SSLError, ConnectionError):
                pass
            return answer

    async def test_handshakeDeadline(self):
        """
        A connection that does not finish its TLS handshake is closed at
        the deadline, not held for the idle timeout.
        """
        seconds = await inThread(_closedWithin, self.server.httpsPort, 10)
        self.assertIsNotNone(seconds)
        self.assertGreater(seconds, 0.8)
        self.assertLess(seconds, 5)
        await self.server.proto.waitFor(r"TLS handshake from 127\.0\.0\.1 not finished")

    async def test_contentLengthRefused(self):
        """
        A body announced over --max-body gets HTTP 413 from the headers
        alone, naming the limit; answers say C{Server: JobMon}.
        """
        start = time.monotonic()
        answer = await inThread(
            self.exchange,
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n",
        )
        self.assertLess(time.monotonic() - start, 4)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        self.assertIn(b"larger than the 16777216 bytes accepted", answer)
        body = xmlrpc.client.dumps((), "jobmon.whoami").encode()
        answer = await inThread(
            self.exchange,
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body),
        )
        head = answer.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"\r\nServer: JobMon\r\n", head)
        self.assertNotIn(b"Twisted", head)

    async def test_noCertificateLogged(self):
        """
        A client that sends no certificate is refused and logged.
        """
        body = xmlrpc.client.dumps((), "jobmon.whoami").encode()
        answer = await inThread(
            self.exchange,
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body),
            False,
        )
        self.assertNotIn(b"methodResponse", answer)
        await self.server.proto.waitFor(r"client at 127\.0\.0\.1 sent no certificate")

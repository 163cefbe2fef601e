"""
Tests for what keeps C{jobmon-query} quick to start: the client's own
readers of server URLs and certificate times give what the standard
library's give, its TLS layer is as strict as C{ssl}'s, and a one-shot
command imports neither Twisted nor the heavy parts of the standard library.
"""

import calendar
import os
import ssl
import subprocess
import sys
import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon import client
from jobmon.client import ClientError, tls
from jobmon.client.connection import DEFAULT_PATH, DEFAULT_PORT
from jobmon.client.credential import certTimeToSeconds
from tests.client.test_client import TLSTestCase

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _referenceURL(server):
    """
    What L{client.parseServerURL} gave when it read every URL with
    C{urllib.parse.urlsplit}.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(server)
        port = parts.port
    except ValueError:
        return "bad"
    if parts.scheme.lower() != "https" or not parts.hostname:
        return "bad"
    host = parts.hostname
    if port is None:
        port = DEFAULT_PORT
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    if parts.query:
        path += "?" + parts.query
    shownHost = "[%s]" % (host,) if ":" in host else host
    return host, port, path, "https://%s:%d%s" % (shownHost, port, path)


def _parsed(server):
    try:
        return client.parseServerURL(server)
    except ClientError as e:
        assert e.code == client.BAD_URL
        return "bad"


_urlParts = st.sampled_from(
    ["https://", "HTTPS://", "http://", "", "h", "H.Example.ORG", "127.0.0.1", "[::1]",
     ":", ":8443", ":0", ":65535", ":65536", ":99999", ":00080", ":x", "/", "/RPC2",
     "/a b", "?q=1", "#f", "@", "u@", "\t", " ", "é", "\\", "%41", "..", "_", "-"])


class ServerURLTests(SynchronousTestCase):
    """
    L{client.parseServerURL} reads usual URLs itself, and reads every URL
    as C{urllib.parse} does.
    """

    @given(st.lists(_urlParts, max_size=6).map("".join))
    def test_asUrllib(self, server):
        """
        Any URL made of the usual and unusual pieces is split (or refused)
        as before.
        """
        self.assertEqual(_parsed(server), _referenceURL(server))

    def test_examples(self):
        """
        The usual forms, and a few odd ones.
        """
        for server in ["https://jobmon.example.org", "https://JobMon.Example.org:9443/x/",
                       "https://127.0.0.1:8443/RPC2", "https://h:1/x/RPC2?a=b",
                       "https://[::1]:8443/RPC2", "https://h:99999/", "https://u@h/",
                       " https://h/", "https://h/a\tb"]:
            self.assertEqual(_parsed(server), _referenceURL(server), server)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
           "Nov", "Dec")


class CertificateTimeTests(SynchronousTestCase):
    """
    L{certTimeToSeconds} is C{ssl.cert_time_to_seconds}.
    """

    @given(st.integers(min_value=1, max_value=9999), st.integers(1, 12),
           st.integers(1, 31), st.integers(0, 23), st.integers(0, 59), st.integers(0, 61))
    def test_asSSL(self, year, month, day, hour, minute, second):
        """
        Any time as OpenSSL prints it (day padded with a space) or with a
        zero-padded day.
        """
        for form in ["%s %2d %02d:%02d:%02d %04d GMT", "%s %02d %02d:%02d:%02d %04d GMT"]:
            text = form % (_MONTHS[month - 1], day, hour, minute, second, year)
            try:
                expected = ssl.cert_time_to_seconds(text)
            except ValueError:
                self.assertRaises(ValueError, certTimeToSeconds, text)
            else:
                self.assertEqual(certTimeToSeconds(text), expected, text)

    def test_now(self):
        """
        A time of today reads as the epoch seconds of C{calendar.timegm}.
        """
        now = int(time.time())
        text = time.strftime("%b %d %H:%M:%S %Y GMT", time.gmtime(now))
        self.assertEqual(certTimeToSeconds(text), calendar.timegm(time.gmtime(now)))

    def test_otherForms(self):
        """
        Other forms are left to C{ssl}, and refused as it refuses them.
        """
        for text in ["Jan 1 0:0:0 2024 GMT", "jan  1 00:00:00 2024 GMT",
                     "Jan  1 00:00:00 2024  GMT"]:
            self.assertEqual(certTimeToSeconds(text), ssl.cert_time_to_seconds(text))
        for text in ["", "Foo  1 00:00:00 2024 GMT", "Jan  1 00:00:00 2024 UTC",
                     "Jan 32 00:00:00 2024 GMT", "Jan  1 24:00:00 2024 GMT"]:
            self.assertRaises(ValueError, ssl.cert_time_to_seconds, text)
            self.assertRaises(ValueError, certTimeToSeconds, text)


class TLSLayerTests(TLSTestCase):
    """
    L{jobmon.client.tls} is the C{ssl} module's TLS, as strict.
    """

    def test_context(self):
        """
        A new context checks the server's certificate and host name, as
        C{ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)} does, with the same
        options.
        """
        mine = tls.newContext()
        theirs = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.assertTrue(mine.check_hostname)
        self.assertEqual(mine.verify_mode, ssl.CERT_REQUIRED)
        self.assertEqual(mine.options, theirs.options)
        self.assertEqual(mine.protocol, theirs.protocol)
        self.assertEqual(mine.get_ciphers(), theirs.get_ciphers())
        self.assertIs(tls.SSLError, ssl.SSLError)
        self.assertIs(tls.SSLCertVerificationError, ssl.SSLCertVerificationError)

    def test_wrongHost(self):
        """
        A server whose certificate does not name the host it was reached
        by is refused.
        """
        from jobmon.devtools import pki

        cert, key = self.pki.path("named.pem"), self.pki.path("namedkey.pem")
        pki.makeHostCert(self.pki.ca, cert, key, ["jobmon.example.org"])
        server = self.startServer(self.pki.serverContext(cert, key))
        context = tls.newContext()
        context.load_verify_locations(capath=self.pki.ca.hashedDir)
        e = self.assertRaises(ssl.SSLCertVerificationError, tls.connect, "127.0.0.1",
                              server.server_address[1], 10, context)
        self.assertIn("mismatch", e.verify_message)

    def test_unknownCA(self):
        """
        A server certificate from a CA not in the directory is refused.
        """
        server = self.startServer()
        context = tls.newContext()
        context.load_verify_locations(capath=self.pki.otherCA.hashedDir)
        self.assertRaises(ssl.SSLCertVerificationError, tls.connect, "127.0.0.1",
                          server.server_address[1], 10, context)

    def test_readWrite(self):
        """
        Bytes go both ways; the reader sees the end when the server closes
        without a close_notify.
        """
        server = self.startServer()
        context = tls.newContext()
        context.load_verify_locations(capath=self.pki.ca.hashedDir)
        context.load_cert_chain(self.pki.proxy)
        sock = tls.connect("127.0.0.1", server.server_address[1], 10, context)
        self.addCleanup(sock.close)
        body = b"<?xml version='1.0'?><methodCall><methodName>jobmon.whoami</methodName>" \
               b"<params></params></methodCall>"
        sock.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = sock.makefile("rb").read()
        self.assertTrue(answer.startswith(b"HTTP/1.0 200 ") or answer.startswith(b"HTTP/1.1 200 "))
        self.assertIn(b"Alice Example", answer)
        self.assertEqual(sock.pending(), 0)


class OneShotImportTests(TLSTestCase):
    """
    A one-shot command imports only what it needs.
    """

    HEAVY = ("twisted", "OpenSSL", "cryptography", "attr", "zope", "http", "xmlrpc",
             "email", "ssl", "socket", "urllib", "_strptime", "shutil", "encodings.idna",
             "datetime", "decimal", "gzip", "calendar")
    """Modules (and packages) a C{tail} must not import: Twisted and the
    libraries of the server, and the standard library modules the client
    does without."""

    def test_tail(self):
        """
        C{jobmon-query tail}, run as the console script runs it, against a
        real server over TLS, prints the lines and has imported none of
        L{HEAVY}.
        """
        server = self.startServer()
        code = (
            "import sys\n"
            "from jobmon.cli import main\n"
            "status = main()\n"
            "sys.stdout.flush()\n"
            "heavy = %r\n"
            "print('MODULES', ' '.join(sorted(m for m in sys.modules if m in heavy\n"
            "      or m.split('.')[0] in heavy)))\n"
            "sys.exit(status)\n" % (self.HEAVY,)
        )
        env = dict(os.environ, PYTHONPATH=SOURCE_ROOT)
        for name in ("JOBMON_SERVER", "X509_USER_PROXY", "X509_CERT_DIR", "BEARER_TOKEN",
                     "BEARER_TOKEN_FILE", "JOBMON_AUTH"):
            env.pop(name, None)
        env["XDG_RUNTIME_DIR"] = self.pki.base
        argv = [sys.executable, "-c", code,
                "--server", "https://127.0.0.1:%d/RPC2" % (server.server_address[1],),
                "--proxy", self.pki.proxy, "--ca-dir", self.pki.ca.hashedDir,
                "tail", "1.0", "job.log", "-n", "10"]
        proc = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        self.assertEqual((proc.returncode, proc.stderr), (0, b""))
        data, _, modules = proc.stdout.rpartition(b"MODULES")
        self.assertEqual(data, b"\x00\xffbytes\n")
        self.assertEqual(modules.strip(), b"")

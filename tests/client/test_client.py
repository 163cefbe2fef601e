"""
Tests for L{jobmon.client}: helpers and error mapping in memory, then the
real thing against a small standard-library XML-RPC server over TLS on
127.0.0.1, with throwaway certificates from L{jobmon.devtools.pki}.
"""

import datetime
import os
import socket
import socketserver
import ssl
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, HTTPServer

from twisted.trial.unittest import SynchronousTestCase

from jobmon import client, errors
from jobmon.client import ClientError, JobMonClient
from jobmon.devtools import pki
from jobmon.errors import JobMonError

ALICE_CN = "Alice Example"


class _Handler(BaseHTTPRequestHandler):
    """
    Serve XML-RPC over keep-alive HTTP/1.1; the server's C{behave} decides
    what each request gets.
    """

    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format, *args):
        """
        Keep the test output clean.
        """

    def do_POST(self):
        """
        Read one XML-RPC call, record it, and answer as told.
        """
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
        with server.lock:
            server.requests.append((self.path, method, params))
            number = len(server.requests)
        if self.path != "/RPC2":
            self._send(404, b"not here", "text/plain")
            return
        action = server.behave(number, method, params)
        if action == "drop":
            # Read the request, then hang up without a word.
            self.close_connection = True
            return
        if action == "hang":
            server.release.wait(10)
            self.close_connection = True
            return
        closeAfter = False
        if isinstance(action, tuple) and action[0] == "close-after":
            # Answer as if keeping the connection, then close it (an idle
            # timeout on the server).
            closeAfter, action = True, action[1]
        if isinstance(action, xmlrpc.client.Fault):
            payload = xmlrpc.client.dumps(action, methodresponse=True)
        else:
            payload = xmlrpc.client.dumps((action,), methodresponse=True)
        self._send(200, payload.encode("utf-8"), "text/xml")
        if closeAfter:
            self.close_connection = True

    def _send(self, status, payload, contentType):
        """
        Send a whole response with a Content-Length.
        """
        self.send_response(status)
        self.send_header("Content-Type", contentType)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    """
    A threaded HTTPS server that counts connections and requests, and
    joins its handler threads on close.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, context):
        self.accepted = 0
        self.requests = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.release = threading.Event()
        self.behave = answerNormally
        self.context = context
        HTTPServer.__init__(self, ("127.0.0.1", 0), _Handler)

    def get_request(self):
        """
        Accept a connection and make the TLS handshake here, counting only
        connections that complete it.
        """
        sock, address = self.socket.accept()
        if self.context is not None:
            sock.settimeout(10)
            try:
                sock = self.context.wrap_socket(sock, server_side=True)
            except BaseException:
                sock.close()
                raise
            sock.settimeout(None)
        with self.lock:
            self.accepted += 1
        return sock, address

    def shutdown_request(self, request):
        """
        Close a connection, then tell the test it is over (not before: a
        client looking at the socket in between would still see it open).
        """
        try:
            super().shutdown_request(request)
        finally:
            self.closed.set()


def answerNormally(number, method, params):
    """
    The default server behaviour: plausible answers for every method.
    """
    if method == "jobmon.whoami":
        return {"dn": "/DC=org/CN=" + ALICE_CN, "admin": False, "proxy": False,
                "limited": False}
    if method == "jobmon.listJobs":
        return [{"job_id": "1.0", "owner": "/DC=org/CN=" + ALICE_CN, "host": "wn1",
                 "mode": "tcp", "state": "ready", "registered": 1.0e9,
                 "last_seen": 1.0e9, "pending": 0}]
    if method == "jobmon.query":
        jobId, request = params
        if jobId != "1.0":
            return xmlrpc.client.Fault(errors.NO_SUCH_JOB, "no such job: " + jobId)
        op = request["op"]
        if op == "ls":
            return {"path": request.get("path", "."), "truncated": False,
                    "entries": [{"name": "job.log", "type": "file", "size": 5.0e9,
                                 "mtime": 1.7e9, "mode": 0o644}]}
        if op == "stat":
            return {"path": request["path"], "name": request["path"], "type": "file",
                    "size": 12.0, "mtime": 1.7e9, "mode": 0o644}
        if op == "follow":
            return {"path": request["path"], "data": b"new\n",
                    "offset": float(request["offset"]),
                    "next_offset": float(request["offset"]) + 4, "size": 5.0e9,
                    "inode": "8:12", "rotated": False, "missing": False,
                    "truncated": False}
        if op in ("cat", "tail"):
            return {"path": request["path"], "data": b"\x00\xffbytes\n",
                    "offset": float(request.get("offset", 0)), "size": 3.0e9,
                    "truncated": False}
    return xmlrpc.client.Fault(errors.BAD_REQUEST, "unknown method " + method)


def _now():
    """
    The current time, aware, in UTC.
    """
    return datetime.datetime.now(datetime.timezone.utc)


class _PKI:
    """
    A CA with a host certificate for 127.0.0.1 and a user, plus a second,
    unrelated CA with its own user.
    """

    def __init__(self, base):
        os.makedirs(base)
        self.base = base
        self.ca = pki.makeCA(os.path.join(base, "ca"))
        self.hostCert = self.path("hostcert.pem")
        self.hostKey = self.path("hostkey.pem")
        pki.makeHostCert(self.ca, self.hostCert, self.hostKey, ["127.0.0.1", "localhost"])
        self.userCert = self.path("usercert.pem")
        self.userKey = self.path("userkey.pem")
        pki.makeUserCert(self.ca, self.userCert, self.userKey, ALICE_CN)
        self.proxy = self.path("x509up")
        pki.makeProxy(self.userCert, self.userKey, self.proxy)
        self.otherCA = pki.makeCA(os.path.join(base, "other"), name="Other CA")
        self.strangerCert = self.path("strangercert.pem")
        self.strangerKey = self.path("strangerkey.pem")
        pki.makeUserCert(self.otherCA, self.strangerCert, self.strangerKey, "Stranger")
        self.strangerProxy = self.path("x509up_stranger")
        pki.makeProxy(self.strangerCert, self.strangerKey, self.strangerProxy)

    def path(self, name):
        """
        A file name in the PKI's directory.
        """
        return os.path.join(self.base, name)

    def serverContext(self, certPath=None, keyPath=None, maximumVersion=None):
        """
        A server context that requires a client certificate from the CA,
        proxies allowed.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certPath or self.hostCert, keyPath or self.hostKey)
        context.load_verify_locations(cafile=self.ca.certPath)
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
        if maximumVersion is not None:
            context.maximum_version = maximumVersion
        return context


class ServerURLTests(SynchronousTestCase):
    """
    Tests for L{client.parseServerURL}.
    """

    def test_defaults(self):
        """
        Without a port the port is 8443; without a path the path is
        C{/RPC2}.
        """
        self.assertEqual(
            client.parseServerURL("https://jobmon.example.org"),
            ("jobmon.example.org", 8443, "/RPC2", "https://jobmon.example.org:8443/RPC2"),
        )
        self.assertEqual(
            client.parseServerURL("https://localhost:9443"),
            ("localhost", 9443, "/RPC2", "https://localhost:9443/RPC2"),
        )
        self.assertEqual(
            client.parseServerURL("https://localhost:9443/"),
            ("localhost", 9443, "/RPC2", "https://localhost:9443/RPC2"),
        )

    def test_explicit(self):
        """
        An explicit path and query are kept.
        """
        self.assertEqual(
            client.parseServerURL("HTTPS://h:1/x/RPC2?a=b"),
            ("h", 1, "/x/RPC2?a=b", "https://h:1/x/RPC2?a=b"),
        )

    def test_ipv6(self):
        """
        An IPv6 literal is accepted and shown in brackets.
        """
        self.assertEqual(
            client.parseServerURL("https://[::1]:8443/RPC2"),
            ("::1", 8443, "/RPC2", "https://[::1]:8443/RPC2"),
        )

    def test_bad(self):
        """
        Anything but an https URL with a host is refused with L{BAD_URL}.
        """
        for url in ["http://h:1/RPC2", "h:8443", "https://", "https://h:port/",
                    "https://h:99999/"]:
            e = self.assertRaises(ClientError, client.parseServerURL, url)
            self.assertEqual(e.code, client.BAD_URL, url)
            self.assertIn("bad server URL", str(e))

    def test_constructorRefusesBadURL(self):
        """
        L{JobMonClient} refuses a bad URL at once, before any I/O.
        """
        e = self.assertRaises(ClientError, JobMonClient, "ftp://x")
        self.assertEqual(e.code, client.BAD_URL)


class DefaultsTests(SynchronousTestCase):
    """
    Tests for L{client.defaultProxyPath} and L{client.defaultCADir}.
    """

    def test_proxyFromEnvironment(self):
        """
        C{$X509_USER_PROXY} wins.
        """
        self.assertEqual(client.defaultProxyPath({"X509_USER_PROXY": "/p"}), "/p")

    def test_proxyFromUID(self):
        """
        Without it, C{/tmp/x509up_u<uid>}: this process's, or the one given.
        """
        self.assertEqual(client.defaultProxyPath({}), "/tmp/x509up_u%d" % os.getuid())
        self.assertEqual(client.defaultProxyPath({}, 42), "/tmp/x509up_u42")

    def test_caDir(self):
        """
        C{$X509_CERT_DIR}, else C{/etc/grid-security/certificates}.
        """
        self.assertEqual(client.defaultCADir({"X509_CERT_DIR": "/c"}), "/c")
        self.assertEqual(client.defaultCADir({}), "/etc/grid-security/certificates")


class CodesTests(SynchronousTestCase):
    """
    The client-side codes.
    """

    def test_distinct(self):
        """
        Client codes are distinct, named, and clash with no server or
        worker code.
        """
        codes = list(client.CLIENT_NAMES)
        self.assertEqual(len(set(codes)), len(codes))
        for code in codes:
            self.assertNotIn(code, errors.NAMES)
            self.assertFalse(errors.isRemote(code))
            self.assertTrue(2000 < code < 2100)
            self.assertEqual(client.clientCodeName(code), client.CLIENT_NAMES[code])

    def test_clientErrorIsJobMonError(self):
        """
        L{ClientError} is a L{JobMonError}: callers catch one class.
        """
        e = ClientError(client.UNREACHABLE, "x")
        self.assertIsInstance(e, JobMonError)
        self.assertEqual((e.code, str(e)), (client.UNREACHABLE, "x"))


class SSLErrorMappingTests(SynchronousTestCase):
    """
    Tests for the classification of TLS errors, without a network.
    """

    def sslError(self, reason, cls=ssl.SSLError):
        """
        Make an C{SSLError} with C{reason} set, as C{_ssl} does.
        """
        e = cls(1, "[SSL: %s] %s (_ssl.c:2580)" % (reason, reason.lower()))
        e.reason = reason
        e.library = "SSL"
        return e

    def test_refusals(self):
        """
        Alerts about our certificate count as a refusal.
        """
        for reason in ["SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA",
                       "SSLV3_ALERT_CERTIFICATE_EXPIRED",
                       "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                       "SSLV3_ALERT_CERTIFICATE_REVOKED",
                       "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
                       "TLSV1_ALERT_ACCESS_DENIED"]:
            self.assertTrue(client._isRefusal(self.sslError(reason)), reason)

    def test_notRefusals(self):
        """
        Other TLS errors are not refusals.
        """
        for reason in ["WRONG_VERSION_NUMBER", "SSLV3_ALERT_HANDSHAKE_FAILURE",
                       "TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING"]:
            self.assertFalse(client._isRefusal(self.sslError(reason)), reason)

    def callError(self, exc, fresh=True, answered=False):
        """
        Map C{exc} as raised during a request.
        """
        c = JobMonClient("https://h:1/RPC2", proxy="/p", caDir="/c")
        return c._callError(exc, fresh, answered, 5.0)

    def test_firstReadAlert(self):
        """
        An alert at the first read (TLS 1.3) is a refusal.
        """
        e = self.callError(self.sslError("TLSV13_ALERT_CERTIFICATE_REQUIRED"))
        self.assertEqual(e.code, client.CERTIFICATE_REFUSED)
        self.assertEqual(
            str(e),
            "the server refused your certificate (expired, unknown CA, revoked "
            "or unsupported proxy type)",
        )

    def test_firstReadEOF(self):
        """
        A bare EOF or reset before any answer on a new connection is a
        refusal too.
        """
        for exc in [ssl.SSLEOFError(8, "EOF"), ConnectionResetError(104, "reset"),
                    BrokenPipeError(32, "pipe"),
                    __import__("http.client").client.RemoteDisconnected("closed")]:
            self.assertEqual(self.callError(exc).code, client.CERTIFICATE_REFUSED)

    def test_reusedConnectionLost(self):
        """
        The same on a kept-alive connection, or after the status line, is
        a lost connection.
        """
        for fresh, answered in [(False, False), (True, True), (False, True)]:
            e = self.callError(ConnectionResetError(104, "reset"), fresh, answered)
            self.assertEqual(e.code, client.CONNECTION_LOST)
            self.assertIn("not repeated", str(e))

    def test_timeout(self):
        """
        A socket timeout is L{CLIENT_TIMEOUT}.
        """
        e = self.callError(TimeoutError("timed out"))
        self.assertEqual(e.code, client.CLIENT_TIMEOUT)
        self.assertIn("within 5 s", str(e))

    def test_connectErrors(self):
        """
        Errors while connecting map to unreachable, untrusted, refused or
        TLS errors.
        """
        c = JobMonClient("https://h:1/RPC2", proxy="/p", caDir="/c")
        cases = [
            (ConnectionRefusedError(111, "Connection refused"), client.UNREACHABLE),
            (socket.gaierror(-2, "Name or service not known"), client.UNREACHABLE),
            (OSError(113, "No route to host"), client.UNREACHABLE),
            (TimeoutError("timed out"), client.UNREACHABLE),
            (self.sslError("TLSV1_ALERT_UNKNOWN_CA"), client.CERTIFICATE_REFUSED),
            (self.sslError("WRONG_VERSION_NUMBER"), client.TLS_ERROR),
            (ssl.SSLEOFError(8, "EOF"), client.TLS_ERROR),
        ]
        for exc, code in cases:
            self.assertEqual(c._connectError(exc).code, code, repr(exc))
        self.assertEqual(
            str(c._connectError(ConnectionRefusedError(111, "Connection refused"))),
            "cannot reach the JobMon server at https://h:1/RPC2: connection refused",
        )


class NumberTests(SynchronousTestCase):
    """
    Tests for the encoding of sizes and offsets.
    """

    def test_small(self):
        """
        32-bit values stay ints.
        """
        self.assertIs(type(client._xmlNumber(2**31 - 1, "n")), int)

    def test_large(self):
        """
        Larger values become doubles; beyond 2**53 they are refused.
        """
        self.assertEqual(client._xmlNumber(2**33, "n"), float(2**33))
        self.assertIs(type(client._xmlNumber(2**33, "n")), float)
        e = self.assertRaises(ClientError, client._xmlNumber, 2**60, "offset")
        self.assertEqual(e.code, client.BAD_ARGUMENT)

    def test_notNumber(self):
        """
        Booleans and strings are refused.
        """
        for value in [True, "1", None]:
            self.assertRaises(ClientError, client._xmlNumber, value, "n")


class QueryTimeoutTests(SynchronousTestCase):
    """
    How long the client waits for a query.
    """

    def setUp(self):
        self.client = JobMonClient("https://h:1/RPC2", proxy="/p", caDir="/c", timeout=7)
        self.calls = []
        self.client._call = lambda method, params, timeout=None: (
            self.calls.append((method, params, timeout)) or {"entries": []}
        )

    def test_convenienceSendsTimeout(self):
        """
        L{JobMonClient.ls} puts the client's timeout in the request and
        waits a little longer than that for the server's answer.
        """
        self.client.ls("1.0")
        [(method, (jobId, request), wait)] = self.calls
        self.assertEqual(method, "jobmon.query")
        self.assertEqual(request, {"op": "ls", "path": ".", "timeout": 7.0})
        self.assertEqual(wait, 7.0 + client.TIMEOUT_GRACE)

    def test_explicitTimeout(self):
        """
        A per-call timeout overrides the client's.
        """
        self.client.tail("1.0", "log", lines=3, timeout=2)
        [(_, (_, request), wait)] = self.calls
        self.assertEqual(request, {"op": "tail", "path": "log", "lines": 3, "timeout": 2})
        self.assertEqual(wait, 2 + client.TIMEOUT_GRACE)

    def test_rawQueryWithoutTimeout(self):
        """
        L{JobMonClient.query} sends the request as given and waits the
        client's timeout.
        """
        self.client.query("1.0", {"op": "ls"})
        [(_, (_, request), wait)] = self.calls
        self.assertEqual(request, {"op": "ls"})
        self.assertEqual(wait, 7.0)


class TLSTestCase(SynchronousTestCase):
    """
    Base class: a test PKI, and servers and clients that are cleaned up.
    """

    def setUp(self):
        self.pki = _PKI(os.path.abspath(self.mktemp()))

    def startServer(self, context=None, plain=False):
        """
        Start a server in a thread; stop it, join its threads and close its
        socket at cleanup.
        """
        if context is None and not plain:
            context = self.pki.serverContext()
        server = _Server(context)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,))
        thread.start()

        def stop():
            server.release.set()
            server.shutdown()
            server.server_close()
            thread.join(10)
            self.assertFalse(thread.is_alive())

        self.addCleanup(stop)
        return server

    def makeClient(self, server=None, port=None, path="/RPC2", **kw):
        """
        Make a client for C{server} (closed at cleanup; registered after
        the server, so it closes first).
        """
        if port is None:
            port = server.server_address[1]
        kw.setdefault("proxy", self.pki.proxy)
        kw.setdefault("caDir", self.pki.ca.hashedDir)
        kw.setdefault("timeout", 10)
        c = JobMonClient("https://127.0.0.1:%d%s" % (port, path), **kw)
        self.addCleanup(c.close)
        return c

    def freePort(self):
        """
        A port on 127.0.0.1 where nothing listens.
        """
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port


class CallTests(TLSTestCase):
    """
    Successful calls over real TLS.
    """

    def test_keepAlive(self):
        """
        Three calls use one connection.
        """
        server = self.startServer()
        c = self.makeClient(server)
        self.assertEqual(c.whoami()["dn"], "/DC=org/CN=" + ALICE_CN)
        self.assertEqual([j["job_id"] for j in c.listJobs()], ["1.0"])
        self.assertEqual(c.stat("1.0", "job.log")["size"], 12)
        self.assertEqual(server.accepted, 1)
        self.assertEqual(len(server.requests), 3)

    def test_results(self):
        """
        Sizes and offsets sent as doubles come back as ints, data as bytes,
        and large offsets go out as doubles.
        """
        server = self.startServer()
        c = self.makeClient(server, timeout=9)
        listing = c.ls("1.0", "sub")
        self.assertEqual(listing["entries"][0]["size"], 5 * 10**9)
        self.assertIs(type(listing["entries"][0]["size"]), int)
        result = c.cat("1.0", "f", offset=2**33, length=10)
        self.assertEqual(result["data"], b"\x00\xffbytes\n")
        self.assertEqual((result["offset"], result["size"]), (2**33, 3 * 10**9))
        _, _, (_, lsRequest) = server.requests[0]
        self.assertEqual(lsRequest, {"op": "ls", "path": "sub", "timeout": 9.0})
        _, _, (_, catRequest) = server.requests[1]
        self.assertEqual(catRequest["offset"], float(2**33))
        self.assertEqual(catRequest["length"], 10)
        self.assertEqual(c.tail("1.0", "f", 5)["data"], b"\x00\xffbytes\n")
        self.assertEqual(server.requests[2][2][1]["lines"], 5)

    def test_newOps(self):
        """
        C{listJobs} with C{all}, and C{follow}, over the wire: the options
        struct is sent only when asked for, large offsets come back as
        ints.
        """
        server = self.startServer()
        c = self.makeClient(server)
        c.listJobs()
        c.listJobs(all=True)
        result = c.follow("1.0", "job.log", offset=2**33, inode="8:12", wait=5)
        self.assertEqual(result["data"], b"new\n")
        self.assertEqual((result["offset"], result["next_offset"], result["size"]),
                         (2**33, 2**33 + 4, 5 * 10**9))
        self.assertEqual([r[2] for r in server.requests[:2]],
                         [({"limit": 1000},), ({"limit": 1000, "all": True},)])
        self.assertEqual(server.requests[2][2][1], {
            "op": "follow", "path": "job.log", "offset": float(2**33), "inode": "8:12",
            "wait": 5, "timeout": 15})

    def test_userCertAndKey(self):
        """
        A separate certificate and key file work too.
        """
        server = self.startServer()
        c = self.makeClient(server, proxy=self.pki.userCert, key=self.pki.userKey)
        self.assertEqual(c.whoami()["dn"], "/DC=org/CN=" + ALICE_CN)

    def test_caBundle(self):
        """
        C{caDir} may also be a single PEM file.
        """
        server = self.startServer()
        c = self.makeClient(server, caDir=self.pki.ca.certPath)
        c.whoami()

    def test_fault(self):
        """
        A fault raises L{JobMonError} with its code and message, and the
        connection stays usable.
        """
        server = self.startServer()
        c = self.makeClient(server)
        e = self.assertRaises(JobMonError, c.ls, "9.9")
        self.assertNotIsInstance(e, ClientError)
        self.assertEqual((e.code, str(e)), (errors.NO_SUCH_JOB, "no such job: 9.9"))
        c.whoami()
        self.assertEqual(server.accepted, 1)

    def test_contextManager(self):
        """
        Leaving the C{with} block closes the connection; the client can
        still be used afterwards, on a new connection.
        """
        server = self.startServer()
        with self.makeClient(server) as c:
            c.whoami()
        self.assertIsNone(c._conn)
        c.whoami()
        self.assertEqual(server.accepted, 2)

    def test_idleCloseIsNoticed(self):
        """
        A kept-alive connection that the server closed while idle is
        replaced before the next request is sent: the call succeeds and the
        request is sent once.
        """
        server = self.startServer()
        server.behave = lambda n, m, p: ("close-after", answerNormally(n, m, p))
        c = self.makeClient(server)
        c.whoami()
        self.assertTrue(server.closed.wait(10))
        c.whoami()
        self.assertEqual(server.accepted, 2)
        self.assertEqual(len(server.requests), 2)

    def test_renewedCredential(self):
        """
        A new connection reloads a credential file that changed: here an
        expired certificate replaced the proxy.
        """
        server = self.startServer()
        c = self.makeClient(server)
        c.whoami()
        c.close()
        past = _now() - datetime.timedelta(days=2)
        pki.makeUserCert(self.pki.ca, self.pki.path("old.pem"), self.pki.path("oldkey.pem"),
                         ALICE_CN, notBefore=past, notAfter=past + datetime.timedelta(days=1))
        with open(self.pki.proxy, "wb") as f:
            for name in ("old.pem", "oldkey.pem"):
                with open(self.pki.path(name), "rb") as g:
                    f.write(g.read())
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CREDENTIAL_EXPIRED)


class NoRetryTests(TLSTestCase):
    """
    A request is never sent twice.
    """

    def test_dropAfterRequest(self):
        """
        When the server hangs up after reading the second request, the call
        fails with L{CONNECTION_LOST} and the server saw that request once.
        """
        server = self.startServer()
        server.behave = lambda n, m, p: "drop" if n == 2 else answerNormally(n, m, p)
        c = self.makeClient(server)
        c.whoami()
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CONNECTION_LOST)
        self.assertIn("the request was not repeated", str(e))
        self.assertEqual(len(server.requests), 2)
        # The next call opens a new connection.
        c.whoami()
        self.assertEqual((server.accepted, len(server.requests)), (2, 3))

    def test_dropFirstRequest(self):
        """
        A hang-up before any answer on a new connection is what a TLS 1.3
        server refusing the certificate looks like: reported as such, and
        not repeated.
        """
        server = self.startServer()
        server.behave = lambda n, m, p: "drop"
        c = self.makeClient(server)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CERTIFICATE_REFUSED)
        self.assertEqual(len(server.requests), 1)

    def test_timeout(self):
        """
        No answer in time: L{CLIENT_TIMEOUT}, the request sent once.
        """
        server = self.startServer()
        server.behave = lambda n, m, p: "hang"
        c = self.makeClient(server, timeout=0.3)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CLIENT_TIMEOUT)
        self.assertEqual(
            str(e),
            "no answer from the JobMon server at https://127.0.0.1:%d/RPC2 within 0.3 s"
            % (server.server_address[1],),
        )
        self.assertEqual(len(server.requests), 1)


class FailureTests(TLSTestCase):
    """
    Each way of failing gives its code and a clear message.
    """

    def test_connectionRefused(self):
        """
        Nothing listening: "cannot reach".
        """
        port = self.freePort()
        c = self.makeClient(port=port)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.UNREACHABLE)
        self.assertEqual(
            str(e),
            "cannot reach the JobMon server at https://127.0.0.1:%d/RPC2: "
            "connection refused" % (port,),
        )

    def test_missingProxy(self):
        """
        No credential file: "no credential", before any connection.
        """
        server = self.startServer()
        missing = self.pki.path("x509up_u1000")
        c = self.makeClient(server, proxy=missing)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.NO_CREDENTIAL)
        self.assertEqual(
            str(e),
            "no credential: %s does not exist; run voms-proxy-init or set "
            "X509_USER_PROXY" % (missing,),
        )
        self.assertEqual(server.accepted, 0)

    def test_missingKey(self):
        """
        A missing key file is a missing credential too.
        """
        c = self.makeClient(port=self.freePort(), proxy=self.pki.userCert,
                            key=self.pki.path("nokey.pem"))
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.NO_CREDENTIAL)
        self.assertIn("nokey.pem does not exist", str(e))

    def test_badCredential(self):
        """
        A file that holds no certificate and key: L{BAD_CREDENTIAL}.
        """
        bad = self.pki.path("bad")
        with open(bad, "w") as f:
            f.write("not a certificate\n")
        c = self.makeClient(port=self.freePort(), proxy=bad)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.BAD_CREDENTIAL)
        self.assertIn("cannot use the credential %s" % (bad,), str(e))

    def test_expiredProxy(self):
        """
        An expired proxy is refused before connecting, saying when it
        expired.
        """
        server = self.startServer()
        expired = self.pki.path("x509up_old")
        end = _now() - datetime.timedelta(hours=1)
        pki.makeProxy(self.pki.userCert, self.pki.userKey, expired,
                      notBefore=end - datetime.timedelta(hours=12), notAfter=end)
        c = self.makeClient(server, proxy=expired)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CREDENTIAL_EXPIRED)
        self.assertIn("your credential %s expired at " % (expired,), str(e))
        self.assertEqual(server.accepted, 0)

    def test_datesUnreadable(self):
        """
        When the validity cannot be read, the check is skipped.
        """
        self.assertEqual(client.certificateDates(self.pki.path("nothing")), (None, None))
        notBefore, notAfter = client.certificateDates(self.pki.proxy)
        self.assertTrue(notBefore < time.time() < notAfter)

    def test_missingCADir(self):
        """
        No CA directory: L{NO_CA_DIR}.
        """
        c = self.makeClient(port=self.freePort(), caDir=self.pki.path("nocerts"))
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.NO_CA_DIR)
        self.assertIn("nocerts does not exist", str(e))

    def test_unknownServerCA(self):
        """
        A server certificate from a CA we do not trust: "could not be
        verified".
        """
        server = self.startServer()
        c = self.makeClient(server, caDir=self.pki.otherCA.hashedDir)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.SERVER_NOT_TRUSTED)
        self.assertTrue(
            str(e).startswith("the server's certificate could not be verified: "),
            str(e))
        self.assertIn("CA directory %s" % (self.pki.otherCA.hashedDir,), str(e))
        self.assertEqual(server.requests, [])

    def test_hostNameMismatch(self):
        """
        A server certificate for another name: "could not be verified".
        """
        cert, key = self.pki.path("elsewhere.pem"), self.pki.path("elsewherekey.pem")
        pki.makeHostCert(self.pki.ca, cert, key, ["elsewhere.example.org"])
        server = self.startServer(self.pki.serverContext(cert, key))
        c = self.makeClient(server)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.SERVER_NOT_TRUSTED)
        self.assertIn("could not be verified: IP address mismatch", str(e))

    def test_certificateRefused(self):
        """
        A client certificate from a CA the server does not trust: with TLS
        1.3 the refusal comes at the first read; "refused your
        certificate".
        """
        server = self.startServer()
        c = self.makeClient(server, proxy=self.pki.strangerProxy)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CERTIFICATE_REFUSED)
        self.assertIn("the server refused your certificate", str(e))
        self.assertEqual(server.requests, [])

    def test_certificateRefusedTLS12(self):
        """
        The same with TLS 1.2, where the refusal comes in the handshake.
        """
        server = self.startServer(
            self.pki.serverContext(maximumVersion=ssl.TLSVersion.TLSv1_2))
        c = self.makeClient(server, proxy=self.pki.strangerProxy)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.CERTIFICATE_REFUSED)

    def test_wrongPath(self):
        """
        An HTTP status other than 200: L{HTTP_ERROR}, with a hint for 404.
        """
        server = self.startServer()
        c = self.makeClient(server, path="/wrong")
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.HTTP_ERROR)
        self.assertIn("answered HTTP 404", str(e))
        self.assertEqual(e.status, 404)
        self.assertIn("/RPC2", str(e))

    def test_notTLS(self):
        """
        A port that does not speak TLS: L{TLS_ERROR}.
        """
        server = self.startServer(plain=True)
        c = self.makeClient(server)
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.TLS_ERROR)
        self.assertIn("TLS handshake with https://127.0.0.1:", str(e))


class OpRequestTests(SynchronousTestCase):
    """
    The request struct each method sends, and the numbers it turns into
    ints.
    """

    def setUp(self):
        self.client = JobMonClient("https://h:1/RPC2", proxy="/p", caDir="/c", timeout=7)
        self.calls = []
        self.answer = {}
        self.client._call = lambda method, params, timeout=None: (
            self.calls.append((method, params, timeout)) or self.answer
        )

    def sent(self, method, *args, **kw):
        """
        Call C{method}; return the request it sent and how long it waited.
        """
        del self.calls[:]
        result = getattr(self.client, method)("1.0", *args, **kw)
        [(name, (jobId, request), wait)] = self.calls
        self.assertEqual((name, jobId), ("jobmon.query", "1.0"))
        return request, wait, result

    def test_listJobs(self):
        """
        C{listJobs} asks for a page (and for all jobs with C{all=True}); a
        full page makes it ask for the next one, after the last id.
        """
        self.client.listJobs()
        self.client.listJobs(all=True)
        self.assertEqual([c[:2] for c in self.calls], [
            ("jobmon.listJobs", ({"limit": 1000},)),
            ("jobmon.listJobs", ({"limit": 1000, "all": True},))])

    def test_listJobsPages(self):
        """
        Pages are fetched until one comes back short.
        """
        from jobmon.client import api

        pages = [[{"job_id": "a"}, {"job_id": "b"}], [{"job_id": "c"}]]
        calls = []

        def fake(method, params, wait=None):
            calls.append(params)
            return pages.pop(0)

        self.patch(api, "LIST_PAGE", 2)
        self.client._call = fake
        self.assertEqual([j["job_id"] for j in self.client.listJobs()], ["a", "b", "c"])
        self.assertEqual(calls, [({"limit": 2},), ({"limit": 2, "after": "b"},)])

    def test_ls(self):
        """
        C{depth} and C{all} are sent only when given.
        """
        self.assertEqual(self.sent("ls")[0], {"op": "ls", "path": ".", "timeout": 7.0})
        self.assertEqual(self.sent("ls", "sub", depth=2, all=False)[0], {
            "op": "ls", "path": "sub", "depth": 2, "all": False, "timeout": 7.0})

    def test_headTail(self):
        """
        Lines (10 by default) or bytes; not both.
        """
        for op in ("head", "tail"):
            self.assertEqual(self.sent(op, "f")[0],
                             {"op": op, "path": "f", "lines": 10, "timeout": 7.0})
            self.assertEqual(self.sent(op, "f", 3)[0],
                             {"op": op, "path": "f", "lines": 3, "timeout": 7.0})
            self.assertEqual(self.sent(op, "f", bytes=2**40)[0],
                             {"op": op, "path": "f", "bytes": float(2**40),
                              "timeout": 7.0})
            e = self.assertRaises(ClientError, getattr(self.client, op), "1", "f", 1,
                                  bytes=2)
            self.assertEqual(e.code, client.BAD_ARGUMENT)

    def test_follow(self):
        """
        C{follow}: the inode only when known; the query's timeout is the
        wait plus 10 s, and the client waits a little longer.
        """
        self.answer = {"data": b"", "offset": 5.0, "next_offset": 5.0, "size": 5.0}
        request, wait, result = self.sent("follow", "log", 5)
        self.assertEqual(request, {"op": "follow", "path": "log", "offset": 5,
                                   "wait": 10.0, "timeout": 20.0})
        self.assertEqual(wait, 20.0 + client.TIMEOUT_GRACE)
        self.assertEqual(result, {"data": b"", "offset": 5, "next_offset": 5, "size": 5})
        self.assertIs(type(result["next_offset"]), int)
        request, wait, _ = self.sent("follow", "log", 2**35, "8:1", 25)
        self.assertEqual(request, {"op": "follow", "path": "log", "offset": float(2**35),
                                   "inode": "8:1", "wait": 25, "timeout": 35})

    def test_processes(self):
        """
        C{ps}, C{top} (interval; timeout at least the interval plus 10 s)
        and C{res}; memory sizes become ints.
        """
        self.answer = {"processes": [{"pid": 1, "rss": 2.0e9, "vms": 3.0e9,
                                      "cpu_percent": 1.5}]}
        request, _, result = self.sent("ps")
        self.assertEqual(request, {"op": "ps", "timeout": 7.0})
        self.assertEqual(result["processes"][0],
                         {"pid": 1, "rss": 2 * 10**9, "vms": 3 * 10**9, "cpu_percent": 1.5})
        self.assertEqual(self.sent("top", 2)[0],
                         {"op": "top", "interval": 2, "timeout": 12})
        self.client.timeout = 60.0
        self.assertEqual(self.sent("top")[0],
                         {"op": "top", "interval": 1.0, "timeout": 60.0})
        self.answer = {"rss": 1.0e10, "rss_peak": 2.0e10, "cpu_user": 1.5,
                       "read_bytes": 4.0, "write_bytes": 5.0}
        request, _, result = self.sent("res")
        self.assertEqual(request, {"op": "res", "timeout": 60.0})
        self.assertEqual(result, {"rss": 10**10, "rss_peak": 2 * 10**10, "cpu_user": 1.5,
                                  "read_bytes": 4, "write_bytes": 5})

    def test_disk(self):
        """
        C{du} and C{df}: the path (C{.} by default); sizes become ints.
        """
        self.answer = {"total": 5.0e9, "entries": [{"name": "a", "size": 4.0e9}]}
        request, _, result = self.sent("du")
        self.assertEqual(request, {"op": "du", "path": ".", "timeout": 7.0})
        self.assertEqual(result, {"total": 5 * 10**9,
                                  "entries": [{"name": "a", "size": 4 * 10**9}]})
        self.answer = {"total": 1.0e12, "used": 1.0, "free": 2.0, "percent": 50.0,
                       "inodes_total": 10.0, "inodes_free": 5.0}
        request, _, result = self.sent("df", "sub")
        self.assertEqual(request, {"op": "df", "path": "sub", "timeout": 7.0})
        self.assertEqual(result, {"total": 10**12, "used": 1, "free": 2, "percent": 50.0,
                                  "inodes_total": 10, "inodes_free": 5})
        self.assertIs(type(result["used"]), int)

    def test_jobInfo(self):
        """
        C{env}, C{commands}, C{run} and C{signal}.
        """
        self.assertEqual(self.sent("env")[0], {"op": "env", "timeout": 7.0})
        self.assertEqual(self.sent("commands")[0], {"op": "commands", "timeout": 7.0})
        self.assertEqual(self.sent("run", "grep", ("-i", "x"))[0], {
            "op": "run", "name": "grep", "args": ["-i", "x"], "timeout": 7.0})
        self.assertEqual(self.sent("run", "date")[0], {
            "op": "run", "name": "date", "args": [], "timeout": 7.0})
        e = self.assertRaises(ClientError, self.client.run, "1", "grep", [1])
        self.assertEqual(e.code, client.BAD_ARGUMENT)
        self.assertEqual(self.sent("signal", "USR1", timeout=3)[0],
                         {"op": "signal", "signal": "USR1", "timeout": 3})


def _unsignedToken(claims):
    """
    A bearer token with C{claims} and a meaningless signature (the client
    reads the claims without verifying them).
    """
    import base64
    import json

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return "%s.%s.c2ln" % (part({"alg": "RS256", "typ": "JWT"}), part(claims))


class CredentialInfoTests(TLSTestCase):
    """
    Tests for L{JobMonClient.credentialInfo}: the credential's expiry, read
    on the client.
    """

    def test_proxy(self):
        """
        A proxy: its file and its certificate's notAfter, before and after
        a call.
        """
        end = (_now() + datetime.timedelta(hours=3)).replace(microsecond=0)
        proxy = self.pki.path("x509up_3h")
        pki.makeProxy(self.pki.userCert, self.pki.userKey, proxy, notAfter=end)
        server = self.startServer()
        c = self.makeClient(server, proxy=proxy)
        expected = {"type": "x509", "path": proxy, "expires": end.timestamp()}
        self.assertEqual(c.credentialInfo(), expected)
        c.whoami()
        self.assertEqual(c.credentialInfo(), expected)

    def test_unreadable(self):
        """
        A credential file that cannot be read: no expiry, no error.
        """
        c = self.makeClient(port=self.freePort(), proxy=self.pki.path("nothing"))
        self.assertEqual(c.credentialInfo(), {"type": "x509", "path": self.pki.path("nothing"),
                                              "expires": None})

    def test_token(self):
        """
        A bearer token: where it came from and its C{exp} claim, if any.
        """
        c = JobMonClient("https://127.0.0.1:1", auth="token",
                         token=_unsignedToken({"sub": "carol", "exp": 2000000000}))
        self.assertEqual(c.credentialInfo(), {"type": "token", "source": "the token argument",
                                              "expires": 2000000000})
        c = JobMonClient("https://127.0.0.1:1", auth="token",
                         token=_unsignedToken({"sub": "carol", "exp": True}))
        self.assertEqual(c.credentialInfo()["expires"], None)
        c = JobMonClient("https://127.0.0.1:1", auth="token", tokenFile=self.pki.path("none"))
        self.assertEqual(c.credentialInfo(), {"type": "token", "source": None, "expires": None})

"""
Tests for L{jobmon.client.http11}: requests as C{http.client} writes them,
answers read as it reads them, in memory.  (The whole client over real TLS
is tested in L{tests.client.test_client}.)
"""

import http.client
import io

from twisted.trial.unittest import SynchronousTestCase

from jobmon.client import http11


class _Sock:
    """
    A socket that records what is sent and reads from given bytes.
    """

    def __init__(self, answer=b""):
        self.sent = b""
        self.answer = answer

    def sendall(self, data):
        self.sent += bytes(data)

    def makefile(self, mode):
        return io.BufferedReader(io.BytesIO(self.answer))

    def close(self):
        self.closed = True


def _connection(answer=b"", port=8443, host="127.0.0.1"):
    """
    A connection on a L{_Sock} that answers C{answer}.
    """
    conn = http11.HTTPSConnection(host, port, 5.0, None)
    conn.sock = _Sock(answer)
    return conn


def _standardRequest(host, port, path, body, headers):
    """
    The bytes C{http.client} sends for the same request.
    """
    conn = http.client.HTTPSConnection(host, port)
    sent = []
    conn.sock = type("S", (), {"sendall": lambda self, d: sent.append(bytes(d))})()
    conn.request("POST", path, body, headers)
    return b"".join(sent)


def _answer(data):
    """
    Read C{data} as an answer: the response and its body.
    """
    conn = _connection(data)
    response = conn.getresponse()
    return response, response.read(), conn


class RequestTests(SynchronousTestCase):
    """
    L{http11.HTTPSConnection.request} writes what C{http.client} writes.
    """

    def test_sameBytes(self):
        """
        Request line, C{Host} (with the port unless 443, an IPv6 literal in
        brackets), C{Accept-Encoding}, C{Content-Length}, then the headers.
        """
        headers = {"Content-Type": "text/xml", "User-Agent": "jobmon-client",
                   "Authorization": "Bearer abc"}
        for host, port in [("127.0.0.1", 8443), ("jobmon.example.org", 443), ("::1", 9)]:
            conn = _connection(port=port, host=host)
            conn.request("POST", "/RPC2?x=1", b"<body/>", headers)
            self.assertEqual(conn.sock.sent,
                             _standardRequest(host, port, "/RPC2?x=1", b"<body/>", headers))

    def test_badPath(self):
        """
        A path with a space or a control character is refused before
        anything is sent.
        """
        for path in ["/a b", "/a\nb", "/\x7f"]:
            conn = _connection()
            self.assertRaises(http11.InvalidURL, conn.request, "POST", path, b"", {})
            self.assertEqual(conn.sock.sent, b"")

    def test_badHeader(self):
        """
        A header value with a line break is refused, without the value in
        the message (it may be a token).
        """
        conn = _connection()
        e = self.assertRaises(ValueError, conn.request, "POST", "/", b"",
                              {"Authorization": "Bearer se\r\ncret"})
        self.assertNotIn("cret", str(e))
        self.assertEqual(conn.sock.sent, b"")


class ResponseTests(SynchronousTestCase):
    """
    L{http11.Response} reads answers as C{http.client} does.
    """

    def test_contentLength(self):
        """
        A body of C{Content-Length} bytes, on a connection kept open.
        """
        response, body, conn = _answer(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
        self.assertEqual((response.status, response.reason, response.version, body),
                         (200, "OK", 11, b"hello"))
        self.assertFalse(response.willClose)
        self.assertIsNotNone(conn.sock)

    def test_chunked(self):
        """
        A chunked body, extensions and trailers skipped.
        """
        response, body, _ = _answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n")
        self.assertEqual(body, b"abcde")
        self.assertFalse(response.willClose)

    def test_untilClose(self):
        """
        Without a length, the body runs to the end and the connection is
        closed after it.
        """
        response, body, conn = _answer(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        self.assertEqual(body, b"all of it")
        self.assertTrue(response.willClose)
        self.assertIsNone(conn.sock)

    def test_closeRules(self):
        """
        C{Connection: close} closes an HTTP/1.1 connection; HTTP/1.0 closes
        unless it says keep-alive.
        """
        for head, closes in [
            (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", True),
            (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\n", False),
            (b"HTTP/1.0 200 OK\r\n", True),
            (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", False),
            (b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\n", False),
        ]:
            response, body, conn = _answer(head + b"Content-Length: 2\r\n\r\nok")
            self.assertEqual((response.willClose, body), (closes, b"ok"), head)
            self.assertEqual(conn.sock is None, closes)

    def test_continue(self):
        """
        A C{100 Continue} and its headers are skipped.
        """
        response, body, _ = _answer(
            b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx")
        self.assertEqual((response.status, response.reason, body), (404, "Not Found", b"x"))

    def test_noContent(self):
        """
        A 204 has no body, whatever its headers say.
        """
        response, body, _ = _answer(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
        self.assertEqual(body, b"")

    def test_headers(self):
        """
        Names are case-insensitive; the first of repeated ones counts; a
        folded line continues its header; a negative or bad length is no
        length.
        """
        response, body, _ = _answer(
            b"HTTP/1.1 200 OK\r\nX-One: a\r\n b\r\nx-one: c\r\nContent-Length: -1\r\n"
            b"Connection: close\r\n\r\nrest")
        self.assertEqual(response.headers["x-one"], "a b")
        self.assertEqual(body, b"rest")
        response, body, _ = _answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nConnection: close\r\n\r\nrest")
        self.assertEqual(body, b"rest")

    def test_remoteDisconnected(self):
        """
        No status line at all: L{http11.RemoteDisconnected}, a
        C{ConnectionResetError}, as with C{http.client}.
        """
        conn = _connection(b"")
        e = self.assertRaises(http11.RemoteDisconnected, conn.getresponse)
        self.assertIsInstance(e, ConnectionResetError)
        self.assertIsInstance(e, http11.HTTPException)

    def test_badStatus(self):
        """
        A status line that is not HTTP: L{http11.BadStatusLine} (an
        L{http11.HTTPException}); an unknown version:
        L{http11.UnknownProtocol}.
        """
        for line in [b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc OK\r\n", b"HTTP/1.1 99 X\r\n",
                     b"HTTP/1.1 1000 X\r\n", b"garbage\r\n"]:
            e = self.assertRaises(http11.BadStatusLine, _connection(line).getresponse)
            self.assertEqual(type(e).__name__, "BadStatusLine")
        e = self.assertRaises(http11.UnknownProtocol,
                              _connection(b"HTTP/2.0 200 OK\r\n\r\n").getresponse)
        self.assertIsInstance(e, http11.HTTPException)

    def test_incomplete(self):
        """
        A body cut short: L{http11.IncompleteRead}.
        """
        for data in [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
            response = _connection(data).getresponse()
            self.assertRaises(http11.IncompleteRead, response.read)

    def test_limits(self):
        """
        More than 100 headers, or a line over 64 KiB, is refused.
        """
        many = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n"
        e = self.assertRaises(http11.HTTPException, _connection(many).getresponse)
        self.assertIn("more than 100 headers", str(e))
        long = b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n"
        self.assertRaises(http11.LineTooLong, _connection(long).getresponse)
        self.assertRaises(http11.LineTooLong,
                          _connection(b"HTTP/1.1 200 " + b"K" * 70000).getresponse)

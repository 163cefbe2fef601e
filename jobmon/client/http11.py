"""
The little of HTTP/1.1 over TLS that the client needs, without importing
C{http.client}: that module imports the C{email} package to parse headers,
a large part of C{jobmon-query}'s start-up time.

L{HTTPSConnection} does what the client did with
C{http.client.HTTPSConnection}, in the same way: one connection
(L{jobmon.client.tls.connect}: C{TCP_NODELAY}, the host name checked), a
C{POST} with the same
headers (C{Host}, C{Accept-Encoding: identity}, C{Content-Length}, then the
caller's), and an answer read as C{http.client} reads it: the status line
(C{100 Continue} skipped), at most 100 header lines of at most 64 KiB, then
a body of C{Content-Length} bytes, in chunks, or up to the end of the
connection.  Whether the connection stays open follows the same rules
(HTTP/1.1 unless C{Connection: close}; HTTP/1.0 only with keep-alive).
Failures raise the exceptions C{http.client} raises, under the same names
(L{RemoteDisconnected} is a C{ConnectionResetError}, L{IncompleteRead} an
L{HTTPException}...), or the socket's own (C{TimeoutError},
C{ssl.SSLError}, C{OSError}).

This imports only L{jobmon.client.tls}.
"""

from jobmon.client import tls

_MAXLINE = 65536
_MAXHEADERS = 100
_DEFAULT_PORT = 443


class HTTPException(Exception):
    """
    The server does not speak HTTP/1.1 as expected (C{http.client}'s
    C{HTTPException}).
    """


class BadStatusLine(HTTPException):
    """
    The status line is not C{HTTP/x.y NNN reason}.
    """

    def __init__(self, line):
        if not line:
            line = repr(line)
        self.args = (line,)
        self.line = line


class RemoteDisconnected(ConnectionResetError, BadStatusLine):
    """
    The server closed the connection before any status line.
    """

    def __init__(self, *pos, **kw):
        BadStatusLine.__init__(self, "")
        ConnectionResetError.__init__(self, *pos, **kw)


class LineTooLong(HTTPException):
    """
    A status, header or chunk-size line longer than 64 KiB.
    """

    def __init__(self, kind):
        HTTPException.__init__(self, "got more than %d bytes when reading %s" % (_MAXLINE, kind))


class UnknownProtocol(HTTPException):
    """
    A status line with a version other than HTTP/0.9, 1.0 or 1.x.
    """

    def __init__(self, version):
        self.args = (version,)
        self.version = version


class IncompleteRead(HTTPException):
    """
    The connection ended within the body.
    """

    def __init__(self, partial, expected=None):
        self.args = (partial,)
        self.partial = partial
        self.expected = expected

    def __repr__(self):
        if self.expected is not None:
            e = ", %i more expected" % self.expected
        else:
            e = ""
        return "%s(%i bytes read%s)" % (self.__class__.__name__, len(self.partial), e)

    __str__ = object.__str__


class InvalidURL(HTTPException):
    """
    The request's path holds a space or a control character.
    """


def _readLine(fp, kind):
    line = fp.readline(_MAXLINE + 1)
    if len(line) > _MAXLINE:
        raise LineTooLong(kind)
    return line


def _readHeaders(fp):
    """
    Read header lines up to the blank one: a dict by lower-case name (the
    first of repeated ones, as C{http.client}'s message gives).
    """
    headers = {}
    count = 0
    last = None
    while True:
        line = _readLine(fp, "header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        count += 1
        if count > _MAXHEADERS:
            raise HTTPException("got more than %d headers" % _MAXHEADERS)
        text = line.decode("iso-8859-1")
        if text[:1] in (" ", "\t") and last is not None:
            # A folded line continues the previous header.
            headers[last] = headers[last] + " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        if not colon:
            last = None
            continue
        last = name.strip().lower()
        if last not in headers:
            headers[last] = value.strip()
        else:
            last = None


class Response:
    """
    The answer to one request: C{status}, C{reason}, C{version} (10 or
    11), C{headers} (by lower-case name); L{read} gives the body.
    """

    def __init__(self, connection, fp):
        self._connection = connection
        self._fp = fp
        while True:
            version, status, reason = self._readStatus()
            if status != 100:
                break
            _readHeaders(fp)
        self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise UnknownProtocol(version)
        self.headers = _readHeaders(fp)
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.willClose = self._checkClose()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200:
            self.length = 0
        if not self.willClose and not self.chunked and self.length is None:
            self.willClose = True

    def _readStatus(self):
        line = str(_readLine(self._fp, "status line"), "iso-8859-1")
        if not line:
            raise RemoteDisconnected("Remote end closed connection without response")
        try:
            version, status, reason = line.split(None, 2)
        except ValueError:
            try:
                version, status = line.split(None, 1)
                reason = ""
            except ValueError:
                version = ""
        if not version.startswith("HTTP/"):
            raise BadStatusLine(line)
        try:
            status = int(status)
        except ValueError:
            raise BadStatusLine(line) from None
        if status < 100 or status > 999:
            raise BadStatusLine(line)
        return version, status, reason

    def _checkClose(self):
        connection = self.headers.get("connection")
        if self.version == 11:
            return bool(connection) and "close" in connection.lower()
        if self.headers.get("keep-alive"):
            return False
        if connection and "keep-alive" in connection.lower():
            return False
        proxyConnection = self.headers.get("proxy-connection")
        if proxyConnection and "keep-alive" in proxyConnection.lower():
            return False
        return True

    def read(self):
        """
        Read the whole body; the connection is closed after it if the
        server will close it.

        @raise IncompleteRead: the connection ended within the body.
        """
        fp = self._fp
        if self.chunked:
            data = self._readChunked()
        elif self.length is not None:
            data = fp.read(self.length)
            if len(data) < self.length:
                raise IncompleteRead(data, self.length - len(data))
        else:
            data = fp.read()
        fp.close()
        if self.willClose:
            self._connection.close()
        return data

    def _readChunked(self):
        fp = self._fp
        parts = []
        while True:
            line = _readLine(fp, "chunk size")
            i = line.find(b";")
            if i >= 0:
                line = line[:i]
            try:
                size = int(line, 16)
            except ValueError:
                raise IncompleteRead(b"".join(parts)) from None
            if size == 0:
                break
            chunk = fp.read(size)
            if len(chunk) < size:
                raise IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
            parts.append(chunk)
            if len(fp.read(2)) < 2:
                raise IncompleteRead(b"".join(parts))
        while True:
            line = _readLine(fp, "trailer line")
            if line in (b"\r\n", b"\n", b""):
                return b"".join(parts)


class HTTPSConnection:
    """
    One HTTPS connection, opened by L{connect}, carrying one request at a
    time.

    @ivar sock: the TLS socket, or L{None} once closed (or the server said
        it closes it).
    """

    def __init__(self, host, port, timeout, context):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._context = context
        self.sock = None

    def connect(self):
        """
        Open the TCP connection and make the TLS handshake (see
        L{jobmon.client.tls.connect}).
        """
        self.sock = tls.connect(self.host, self.port, self.timeout, self._context)

    def close(self):
        """
        Close the connection (again: harmless).
        """
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _hostHeader(self):
        try:
            host = self.host.encode("ascii")
        except UnicodeError:
            host = self.host.encode("idna")
        host = host.decode("ascii")
        if ":" in self.host:
            host = "[%s]" % (host,)
        if self.port == _DEFAULT_PORT:
            return host
        return "%s:%s" % (host, self.port)

    def request(self, method, path, body, headers):
        """
        Send a request with C{body} (bytes) and the C{headers} (a dict).

        @raise InvalidURL: C{path} holds a space or a control character.
        @raise ValueError: a header value holds a line break.
        """
        if any(c <= " " or c == "\x7f" for c in path):
            raise InvalidURL("URL can't contain control characters. %r" % (path,))
        lines = [
            "%s %s HTTP/1.1" % (method, path),
            "Host: " + self._hostHeader(),
            "Accept-Encoding: identity",
            "Content-Length: %d" % (len(body),),
        ]
        for name, value in headers.items():
            value = str(value)
            if "\n" in value or "\r" in value:
                raise ValueError("Invalid header value for %s" % (name,))
            lines.append("%s: %s" % (name, value))
        head = lines[0].encode("ascii") + b"\r\n" + "\r\n".join(lines[1:]).encode("latin-1")
        self.sock.sendall(head + b"\r\n\r\n" + body)

    def getresponse(self):
        """
        Read the status line and headers of the answer.

        @return: a L{Response}, whose L{Response.read} gives the body.
        """
        return Response(self, self.sock.makefile("rb"))

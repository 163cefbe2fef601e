"""
The client's transport: one keep-alive HTTPS connection to the server and
XML-RPC calls on it (L{_Connection}), every failure turned into a
L{ClientError} with a one-line message.

A request is never repeated: C{xmlrpc.client}'s own transport re-sends a
request once after a connection reset, which could run a query twice.  A
keep-alive connection that the server has closed while it was idle is
noticed I{before} a request is written on it (L{_isDropped}), and replaced;
a connection lost after the request was written is reported as
L{CONNECTION_LOST}.  The server's refusal of our certificate, which with
TLS 1.3 comes only after the handshake, is told apart from other TLS
failures (L{_isRefusal}).

Several servers may be named (a list, or a comma-separated string, as
C{$JOBMON_SERVER} may hold): a server that cannot be reached (refused,
no connection in time, the TLS handshake failed) or that answers fault 503
(it is shutting down) before the request ran is left for the next one
(L{FAILOVER}); any other error is final.

Like the rest of L{jobmon.client}, this imports only the standard library
and L{jobmon.errors}.
"""

from jobmon.client import http11, tls, wire
from jobmon.client.errors import (
    BAD_ARGUMENT,
    BAD_URL,
    CERTIFICATE_REFUSED,
    CLIENT_TIMEOUT,
    CONNECTION_LOST,
    HTTP_ERROR,
    PROTOCOL_ERROR,
    SERVER_NOT_TRUSTED,
    TLS_ERROR,
    UNREACHABLE,
    ClientError,
    _sslReason,
)
from jobmon.errors import UNAVAILABLE, JobMonError
from jobmon.serverlist import splitServers

DEFAULT_PORT = 8443
"""The port used when the server URL names none."""

DEFAULT_PATH = "/RPC2"
"""The path used when the server URL names none."""

_REFUSAL_WORDS = ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED", "DECRYPT_ERROR")
_ALERT_PREFIXES = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")


FAILOVER = frozenset([UNREACHABLE, TLS_ERROR])
"""The client errors of a connection attempt after which the next server
is tried."""


def parseServerURL(server):
    """
    Split a server URL into C{(host, port, path, displayURL)}.

    C{https://host}, C{https://host:port} and C{https://host:port/path} are
    accepted; the port defaults to L{DEFAULT_PORT} and an empty path (or
    C{/}) to L{DEFAULT_PATH}.

    @raise ClientError: with L{BAD_URL}.
    """
    quick = _splitPlainURL(server)
    if quick is not None:
        host, port, path, query = quick
    else:
        # Anything unusual is read by urllib.parse (which imports
        # ipaddress, among others: start-up time).
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError as e:
            raise ClientError(BAD_URL, "bad server URL %r: %s" % (server, e))
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ClientError(
                BAD_URL,
                "bad server URL %r: expected https://host[:port][/path]" % (server,),
            )
        host, path, query = parts.hostname, parts.path, parts.query
    if port is None:
        port = DEFAULT_PORT
    # "https://host:8443/" is as good as no path.
    if path in ("", "/"):
        path = DEFAULT_PATH
    if query:
        path += "?" + query
    shownHost = "[%s]" % (host,) if ":" in host else host
    return host, port, path, "https://%s:%d%s" % (shownHost, port, path)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_PATH_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset("?#[]@\\")


def _splitPlainURL(server):
    """
    Split the usual server URL, C{https://NAME[:PORT][/PATH]} with a plain
    ASCII host name or IPv4 address, a port of 1 to 5 digits up to 65535
    and a printable ASCII path, as C{urllib.parse.urlsplit} does; L{None}
    for anything else, which is left to it.

    @return: C{(host, port, path, query)} (port L{None} if not given,
        query always empty) or L{None}.
    """
    if not server.startswith("https://"):
        return None
    netloc, slash, path = server[8:].partition("/")
    host, colon, port = netloc.partition(":")
    if not host or not _HOST_CHARS.issuperset(host):
        return None
    if colon:
        if not (0 < len(port) <= 5 and port.isascii() and port.isdigit()):
            return None
        port = int(port)
        if port > 65535:
            return None
    else:
        port = None
    path = slash + path
    if not _PATH_CHARS.issuperset(path):
        return None
    return host.lower(), port, path, ""


def _isRefusal(error):
    """
    Tell whether an C{SSLError} is a TLS alert about our certificate.
    """
    reason = getattr(error, "reason", None) or ""
    text = reason.upper() or str(error).upper()
    if "CERTIFICATE REQUIRED" in text or "CERTIFICATE_REQUIRED" in text:
        return True
    return text.startswith(_ALERT_PREFIXES) and any(
        word in text for word in _REFUSAL_WORDS
    )


def _isDropped(sock):
    """
    Tell whether an idle keep-alive socket was closed by the peer (or holds
    unexpected data): either way it must not carry a request.
    """
    # Imported here: a one-shot command never reuses a connection.
    import select

    try:
        if sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)



class _Connection:
    """
    One kept-alive HTTPS connection to a JobMon server, and the XML-RPC
    calls made on it; the base of L{jobmon.client.api.JobMonClient}.

    Nothing is read or opened when it is made: the credential is chosen at
    the first call, and the connection opened then.  A new connection asks
    the credential for a new SSL context, which reloads a changed file.

    @ivar url: the URL of the server in use, normalized
        (C{https://host:port/path}).
    @ivar urls: the URLs of every server given, normalized.
    @ivar timeout: seconds to wait for the connection and for each answer.
    """

    def __init__(self, server, timeout, chooseCredential):
        """
        @param server: the server URL (see L{parseServerURL}), or several
            (see L{splitServers}): the first that answers is used.
        @param timeout: seconds to wait for the connection and for an answer
            (a call may wait longer).
        @param chooseCredential: called with no arguments at first use, to
            make the credential (L{jobmon.client.credential._Credential} or
            L{jobmon.client.credential._TokenCredential}).

        @raise ClientError: L{BAD_URL} if C{server} is malformed.
        """
        urls = splitServers(server)
        if not urls:
            raise ClientError(BAD_URL, "no server URL given")
        self._servers = [parseServerURL(url) for url in urls]
        self.urls = [parsed[3] for parsed in self._servers]
        self._use(0)
        self.timeout = float(timeout)
        self._chooseCredential = chooseCredential
        self._chosen = None
        self._conn = None

    @property
    def _credential(self):
        # Chosen at first use: making a client reads nothing.
        if self._chosen is None:
            self._chosen = self._chooseCredential()
        return self._chosen

    def close(self):
        """
        Close the connection, if any.  The client may still be used: the
        next call opens a new connection.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _use(self, index):
        self._index = index
        self._host, self._port, self._path, self.url = self._servers[index]

    def _next(self, tried):
        """
        Move to the next server not in C{tried} (indexes), if any.

        @return: whether there was one.
        """
        for step in range(1, len(self._servers)):
            index = (self._index + step) % len(self._servers)
            if index not in tried:
                self.close()
                self._use(index)
                return True
        return False

    def _connect(self, tried=None):
        """
        Return an open connection: the kept-alive one if the server has not
        closed it, else a new one, to the next server when one cannot be
        reached (see L{FAILOVER}).

        @param tried: the indexes of the servers already tried for this
            call (updated).
        @return: C{(connection, fresh)}.
        """
        conn = self._conn
        if conn is not None:
            if conn.sock is not None and not _isDropped(conn.sock):
                return conn, False
            self.close()
        tried = set() if tried is None else tried
        errors = []
        while True:
            tried.add(self._index)
            try:
                return self._open()
            except ClientError as e:
                if e.code not in FAILOVER:
                    raise
                errors.append(e)
                if not self._next(tried):
                    break
        if len(errors) == 1:
            raise errors[0]
        raise ClientError(
            errors[-1].code,
            "no JobMon server could be reached: " + "; ".join(e.message for e in errors),
        )

    def _open(self):
        """
        Open a new connection to the current server.
        """
        context = self._credential.context()
        conn = http11.HTTPSConnection(self._host, self._port, self.timeout, context)
        try:
            conn.connect()
        except BaseException as e:
            conn.close()
            if isinstance(e, Exception):
                raise self._connectError(e) from e
            raise
        self._conn = conn
        return conn, True

    def _connectError(self, e):
        """
        Turn an exception raised while connecting into a L{ClientError}.
        """
        where = "cannot reach the JobMon server at %s" % (self.url,)
        if isinstance(e, tls.SSLCertVerificationError):
            detail = e.verify_message or _sslReason(e)
            return ClientError(
                SERVER_NOT_TRUSTED,
                "the server's certificate could not be verified: %s "
                "(server %s, CA directory %s)"
                % (detail.rstrip("."), self.url, self._credential.caDir),
            )
        if isinstance(e, (tls.SSLEOFError, tls.SSLZeroReturnError, ConnectionResetError)):
            return ClientError(
                TLS_ERROR,
                "the JobMon server at %s closed the connection during the TLS "
                "handshake" % (self.url,),
            )
        if isinstance(e, tls.SSLError):
            if _isRefusal(e):
                return ClientError(CERTIFICATE_REFUSED, self._credential.refusedMessage)
            return ClientError(
                TLS_ERROR,
                "TLS handshake with %s failed: %s (is it a JobMon server?)"
                % (self.url, _sslReason(e)),
            )
        if isinstance(e, ConnectionRefusedError):
            return ClientError(UNREACHABLE, where + ": connection refused")
        if isinstance(e, tls.gaierror):
            return ClientError(
                UNREACHABLE,
                "%s: unknown host %s (%s)"
                % (where, self._host, (e.strerror or str(e)).lower()),
            )
        if isinstance(e, TimeoutError):
            return ClientError(
                UNREACHABLE, "%s: no connection within %g s" % (where, self.timeout)
            )
        if isinstance(e, OSError):
            return ClientError(
                UNREACHABLE, "%s: %s" % (where, (e.strerror or str(e)).lower())
            )
        return ClientError(TLS_ERROR, "%s: %s" % (where, e))

    def _call(self, method, params, timeout=None):
        """
        Call C{method} once and return its result.

        @raise JobMonError: the fault, or a L{ClientError}.
        """
        try:
            body = wire.dumps(params, method).encode("utf-8")
        except (TypeError, OverflowError, ValueError, UnicodeError) as e:
            raise ClientError(BAD_ARGUMENT, "cannot encode the request: %s" % (e,))
        tried = set()
        while True:
            try:
                return self._callOnce(method, body, timeout, tried)
            except JobMonError as e:
                # 503: the server is shutting down and did not run the
                # call; the next server may.
                unavailable = e.code == UNAVAILABLE or getattr(e, "status", None) == 503
                if not unavailable or not self._next(tried):
                    raise

    def _callOnce(self, method, body, timeout, tried):
        """
        Send one encoded call to the current server (or the next one that
        can be reached) and return its result.
        """
        conn, fresh = self._connect(tried)
        headers = {"Content-Type": "text/xml", "User-Agent": "jobmon-client"}
        try:
            authorization = self._credential.authorization()
        except ClientError:
            self.close()
            raise
        if authorization is not None:
            headers["Authorization"] = authorization
        wait = self.timeout if timeout is None else timeout
        answered = False
        try:
            conn.sock.settimeout(wait)
            conn.request("POST", self._path, body, headers)
            response = conn.getresponse()
            answered = True
            data = response.read()
        except BaseException as e:
            self.close()
            if isinstance(e, Exception):
                raise self._callError(e, fresh, answered, wait) from e
            raise
        if response.status != 200:
            self.close()
            hint = ""
            if response.status == 404:
                hint = " (wrong path? JobMon listens at %s)" % (DEFAULT_PATH,)
            error = ClientError(
                HTTP_ERROR,
                "the server at %s answered HTTP %d %s%s"
                % (self.url, response.status, response.reason, hint),
            )
            error.status = response.status
            raise error
        try:
            result, _ = wire.loads(data)
        except wire.Fault as fault:
            raise JobMonError.fromFault(fault) from None
        except Exception as e:
            self.close()
            raise ClientError(
                PROTOCOL_ERROR,
                "the answer from %s is not XML-RPC: %s" % (self.url, e),
            ) from e
        if len(result) != 1:
            raise ClientError(
                PROTOCOL_ERROR,
                "the answer from %s holds %d values, not 1" % (self.url, len(result)),
            )
        return result[0]

    def _callError(self, e, fresh, answered, wait):
        """
        Turn an exception raised while sending a request or reading its
        answer into a L{ClientError}.

        @param fresh: whether the connection was opened for this request:
            with TLS 1.3 the server's verdict on our certificate comes only
            now, as an alert or a bare close.
        @param answered: whether the status line had arrived.
        """
        if isinstance(e, TimeoutError):
            return ClientError(
                CLIENT_TIMEOUT,
                "no answer from the JobMon server at %s within %g s" % (self.url, wait),
            )
        if isinstance(e, tls.SSLError) and _isRefusal(e):
            return ClientError(CERTIFICATE_REFUSED, self._credential.refusedMessage)
        closed = isinstance(
            e,
            (
                tls.SSLEOFError,
                tls.SSLZeroReturnError,
                ConnectionError,
                http11.IncompleteRead,
            ),
        )
        if closed and fresh and not answered:
            return ClientError(CERTIFICATE_REFUSED, self._credential.refusedMessage)
        if closed:
            return ClientError(
                CONNECTION_LOST,
                "the connection to the JobMon server at %s was lost before the "
                "answer came; the request was not repeated" % (self.url,),
            )
        if isinstance(e, tls.SSLError):
            return ClientError(
                TLS_ERROR, "TLS error with %s: %s" % (self.url, _sslReason(e))
            )
        if isinstance(e, http11.HTTPException):
            return ClientError(
                PROTOCOL_ERROR,
                "the server at %s does not speak HTTP/1.1 properly: %s"
                % (self.url, type(e).__name__),
            )
        if isinstance(e, OSError):
            return ClientError(
                CONNECTION_LOST,
                "the connection to the JobMon server at %s failed: %s; the "
                "request was not repeated" % (self.url, (e.strerror or str(e)).lower()),
            )
        return ClientError(PROTOCOL_ERROR, "request to %s failed: %s" % (self.url, e))

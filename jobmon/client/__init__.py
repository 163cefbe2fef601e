"""
A client for the JobMon server that uses only the standard library.

L{JobMonClient} talks XML-RPC over HTTPS to the server (see C{docs/API.md}),
authenticating with an X.509 proxy file (C{/tmp/x509up_u$UID}), a user
certificate, or a WLCG bearer token (C{$BEARER_TOKEN}, C{$BEARER_TOKEN_FILE},
C{$XDG_RUNTIME_DIR/bt_u$UID}, C{/tmp/bt_u$UID}: see L{jobmon.credentials}).  It keeps one HTTP/1.1 connection alive across calls, so an
in-process caller making many queries pays the TLS handshake once.

There is one method per op of C{docs/API.md} (L{JobMonClient.ls},
L{JobMonClient.cat}, L{JobMonClient.follow}, L{JobMonClient.ps},
L{JobMonClient.run}...): each puts the client's C{timeout} in its request
(C{follow}: its wait plus 10 s) and turns sizes and offsets, which the server
sends as doubles, into ints.  L{JobMonClient.query} sends any request as
given.

It never repeats a request: C{xmlrpc.client}'s own transport re-sends a
request once after a connection reset, which could run a query twice.  A
keep-alive connection that the server has closed while it was idle is
noticed I{before} a request is written on it, and replaced; a connection
lost after the request was written is reported as L{CONNECTION_LOST}.

Every failure raises L{jobmon.errors.JobMonError} with a one-line message.
Faults from the server keep their code (C{jobmon.errors}); problems found on
the client side raise L{ClientError} with one of the codes below.  They lie
in 2001-2099, outside the server's 400-599 and the worker's 1000-1999, and
never cross the wire.

  - L{NO_CREDENTIAL} (2001): the proxy or certificate file (or the key file)
    does not exist or cannot be read; or no bearer token was found, or the
    one named cannot be read.
  - L{CREDENTIAL_EXPIRED} (2002): the certificate in that file has expired or
    is not valid yet; or the bearer token has expired.
  - L{BAD_CREDENTIAL} (2003): the file exists but cannot be used (not PEM, no
    private key, key does not match, wrong pass phrase).
  - L{NO_CA_DIR} (2004): the CA directory does not exist.
  - L{BAD_URL} (2005): the server URL is not C{https://host[:port][/path]}.
  - L{BAD_ARGUMENT} (2006): a call argument cannot be encoded (for example an
    integer beyond 2**53).
  - L{UNREACHABLE} (2010): no TCP connection (refused, unknown host, no
    route, connection timed out).
  - L{SERVER_NOT_TRUSTED} (2011): the server's certificate failed
    verification (unknown CA, expired, host name mismatch).
  - L{CERTIFICATE_REFUSED} (2012): the server refused our certificate: a TLS
    alert about it, or the connection closed right after the handshake.
  - L{TLS_ERROR} (2013): any other TLS failure (for example the port does not
    speak TLS).
  - L{CLIENT_TIMEOUT} (2014): the server did not answer within the time
    allowed.
  - L{CONNECTION_LOST} (2015): the connection broke after the request was
    sent; the request was not repeated and may or may not have run.
  - L{HTTP_ERROR} (2016): an HTTP status other than 200 (wrong path, a proxy
    in the way); the error's C{status} attribute holds it.
  - L{PROTOCOL_ERROR} (2017): the answer is not XML-RPC.

This module imports only the standard library and L{jobmon.errors},
L{jobmon.credentials} and L{jobmon.options} (which do too), so that
C{jobmon-query} starts fast.  It is not thread-safe: use one client per
thread.
"""

import http.client
import os
import select
import socket
import ssl
import time
import xmlrpc.client
from urllib.parse import urlsplit

from jobmon import credentials
from jobmon.credentials import (  # noqa: F401 (part of this API)
    AUTH_MODES,
    TokenNotFound,
    defaultProxyPath,
    expiredAt,
    tokenSource,
)
from jobmon.errors import JobMonError
from jobmon.options import DEFAULT_CA_DIR, defaultCADir  # noqa: F401 (part of this API)

NO_CREDENTIAL = 2001
"""The credential file (proxy, certificate or key) is missing or
unreadable."""

CREDENTIAL_EXPIRED = 2002
"""The credential's certificate has expired or is not valid yet."""

BAD_CREDENTIAL = 2003
"""The credential file cannot be loaded (format, missing or mismatched
key)."""

NO_CA_DIR = 2004
"""The directory of trusted CA certificates does not exist."""

BAD_URL = 2005
"""The server URL is malformed or not C{https}."""

BAD_ARGUMENT = 2006
"""A call argument cannot be encoded in XML-RPC."""

UNREACHABLE = 2010
"""No connection to the server: refused, unknown host, no route, or the
connection attempt timed out."""

SERVER_NOT_TRUSTED = 2011
"""The server's certificate could not be verified, or does not match its
host name."""

CERTIFICATE_REFUSED = 2012
"""The server refused the client's certificate."""

TLS_ERROR = 2013
"""Another TLS failure."""

CLIENT_TIMEOUT = 2014
"""No answer from the server within the allowed time."""

CONNECTION_LOST = 2015
"""The connection broke after the request was sent (not retried)."""

HTTP_ERROR = 2016
"""The server answered with an HTTP status other than 200."""

PROTOCOL_ERROR = 2017
"""The server's answer is not a valid XML-RPC response."""

CLIENT_NAMES = {
    NO_CREDENTIAL: "no credential",
    CREDENTIAL_EXPIRED: "credential expired",
    BAD_CREDENTIAL: "bad credential",
    NO_CA_DIR: "no CA directory",
    BAD_URL: "bad server URL",
    BAD_ARGUMENT: "bad argument",
    UNREACHABLE: "server unreachable",
    SERVER_NOT_TRUSTED: "server not trusted",
    CERTIFICATE_REFUSED: "certificate refused",
    TLS_ERROR: "TLS error",
    CLIENT_TIMEOUT: "client timeout",
    CONNECTION_LOST: "connection lost",
    HTTP_ERROR: "HTTP error",
    PROTOCOL_ERROR: "protocol error",
}
"""Short names of the client-side codes."""

LIST_PAGE = 1000
"""Jobs asked for per C{listJobs} call: long lists come a page at a time."""

DEFAULT_PORT = 8443
"""The port used when the server URL names none."""

DEFAULT_PATH = "/RPC2"
"""The path used when the server URL names none."""

FOLLOW_EXTRA = 10.0
"""Seconds a C{follow} (or C{top}) query's timeout allows beyond its wait
(or interval), as the server does."""

TIMEOUT_GRACE = 2.0
"""Seconds the client waits beyond a query's own C{timeout} field, so that
the server's timeout fault (408) arrives before the client gives up."""

_REFUSAL_WORDS = ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED", "DECRYPT_ERROR")
_ALERT_PREFIXES = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")

_REFUSED_MESSAGE = (
    "the server refused your certificate (expired, unknown CA, revoked or "
    "unsupported proxy type)"
)

_TOKEN_REFUSED_MESSAGE = (
    "the server closed the connection at the TLS handshake: it wants a client "
    "certificate and does not accept bearer tokens; use --auth x509"
)


class ClientError(JobMonError):
    """
    An error found on the client side, with one of this module's codes.

    @ivar status: for L{HTTP_ERROR}, the HTTP status; else C{None}.
    """

    status = None


def clientCodeName(code):
    """
    Return the short name of a client-side code, or C{None} for another
    code.
    """
    return CLIENT_NAMES.get(code)


def parseServerURL(server):
    """
    Split a server URL into C{(host, port, path, displayURL)}.

    C{https://host}, C{https://host:port} and C{https://host:port/path} are
    accepted; the port defaults to L{DEFAULT_PORT} and an empty path (or
    C{/}) to L{DEFAULT_PATH}.

    @raise ClientError: with L{BAD_URL}.
    """
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
    host = parts.hostname
    if port is None:
        port = DEFAULT_PORT
    # "https://host:8443/" is as good as no path.
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    if parts.query:
        path += "?" + parts.query
    shownHost = "[%s]" % (host,) if ":" in host else host
    return host, port, path, "https://%s:%d%s" % (shownHost, port, path)


def certificateDates(path):
    """
    Return C{(notBefore, notAfter)} of the first certificate in the PEM file
    C{path}, in seconds since the epoch, or C{(None, None)} if they cannot be
    read.

    This uses C{ssl._ssl._test_decode_cert}, private but part of the
    standard library, to avoid depending on C{cryptography}; any failure just
    skips the check.
    """
    try:
        info = ssl._ssl._test_decode_cert(path)
        return (
            ssl.cert_time_to_seconds(info["notBefore"]),
            ssl.cert_time_to_seconds(info["notAfter"]),
        )
    except Exception:
        return None, None


def _utc(seconds):
    """
    Format a time for a message.
    """
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _xmlNumber(value, name):
    """
    Return C{value} in a form XML-RPC can carry: an C{int} if it fits in 32
    bits, else an integral C{float} (exact up to 2**53).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClientError(BAD_ARGUMENT, "%s must be a number, not %r" % (name, value))
    if isinstance(value, float):
        return value
    if -(2**31) <= value < 2**31:
        return value
    if abs(value) > 2**53:
        raise ClientError(BAD_ARGUMENT, "%s is too large: %d" % (name, value))
    return float(value)


def _integral(value):
    """
    Turn an integral double from the server (a size or offset) into an int.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalizeEntry(entry):
    """
    Make an C{ls}/C{stat} entry's size an int, in place; return it.
    """
    if "size" in entry:
        entry["size"] = _integral(entry["size"])
    return entry


def _normalizeData(result):
    """
    Make a C{cat}/C{head}/C{tail}/C{follow} result's offsets and size ints,
    in place; return it.
    """
    return _integralFields(result, ("offset", "next_offset", "size"))


def _integralFields(result, keys):
    """
    Make the fields C{keys} of C{result} ints where they are integral
    doubles, in place; return it.
    """
    if isinstance(result, dict):
        for key in keys:
            if key in result:
                result[key] = _integral(result[key])
    return result


def _normalizeProcesses(result):
    """
    Make a C{ps}/C{top} result's memory sizes ints, in place; return it.
    """
    for process in result.get("processes", ()):
        _integralFields(process, ("rss", "vms"))
    return result


def _linesOrBytes(path, lines, count):
    """
    Return the fields of a C{head} or C{tail} request: C{lines} (default
    10), or C{bytes} if C{count} is given.
    """
    if count is not None:
        if lines is not None:
            raise ClientError(BAD_ARGUMENT, "give lines or bytes, not both")
        return {"path": path, "bytes": _xmlNumber(count, "bytes")}
    return {"path": path, "lines": _xmlNumber(10 if lines is None else lines, "lines")}


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


def _sslReason(error):
    """
    Return a short description of an C{SSLError}.
    """
    reason = getattr(error, "reason", None)
    if reason:
        return reason.lower().replace("_", " ")
    text = error.args[1] if len(error.args) > 1 else str(error)
    text = str(text)
    if text.startswith("["):
        text = text.partition("]")[2].strip()
    at = text.find(" (_ssl.c:")
    if at >= 0:
        text = text[:at]
    if text == "PEM lib":
        return "no PEM certificate with its private key found"
    return text or str(error)


def _isDropped(sock):
    """
    Tell whether an idle keep-alive socket was closed by the peer (or holds
    unexpected data): either way it must not carry a request.
    """
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _trustingContext(caDir):
    """
    An SSL context that verifies the server against C{caDir} (a hashed
    directory or one PEM bundle) and presents no certificate.
    """
    if not os.path.exists(caDir):
        raise ClientError(
            NO_CA_DIR,
            "the CA directory %s does not exist; set X509_CERT_DIR" % (caDir,),
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        if os.path.isdir(caDir):
            context.load_verify_locations(capath=caDir)
        else:
            # A single PEM bundle works too.
            context.load_verify_locations(cafile=caDir)
    except (OSError, ValueError) as e:
        raise ClientError(NO_CA_DIR, "cannot load CA certificates from %s: %s" % (caDir, e))
    return context


class _TokenCredential:
    """
    A bearer token, read afresh for every request, over a TLS connection
    that shows no certificate.

    @ivar source: callable returning C{(token, where)}; see
        L{jobmon.credentials.tokenSource}.
    """

    refusedMessage = _TOKEN_REFUSED_MESSAGE

    def __init__(self, source, caDir):
        self.source = source
        self.caDir = caDir
        self._context = None

    def context(self, now=None):
        """
        The SSL context for a new connection (the token is checked too, so
        that a missing or expired one is reported before connecting).
        """
        self.authorization(now)
        if self._context is None:
            self._context = _trustingContext(self.caDir)
        return self._context

    def authorization(self, now=None):
        """
        The C{Authorization} header value for the next request.

        @raise ClientError: L{NO_CREDENTIAL} (no token, unreadable) or
            L{CREDENTIAL_EXPIRED}.
        """
        try:
            token, where = self.source()
        except TokenNotFound as e:
            raise ClientError(NO_CREDENTIAL, str(e))
        expires = expiredAt(token, time.time() if now is None else now)
        if expires is not None:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your bearer token from %s expired at %s; get a new one "
                "(oidc-token, htgettoken)" % (where, _utc(expires)),
            )
        return "Bearer " + token


def resolveAuth(auth, proxy=None, key=None, token=None, tokenFile=None, environ=None,
                uid=None):
    """
    L{jobmon.credentials.resolveAuth}, with an unknown C{auth} reported as
    a L{ClientError} (L{BAD_ARGUMENT}).
    """
    try:
        return credentials.resolveAuth(auth, proxy, key, token, tokenFile, environ, uid)
    except ValueError as e:
        raise ClientError(BAD_ARGUMENT, str(e))


def chooseCredential(auth, proxy, key, caDir, token=None, tokenFile=None, environ=None):
    """
    Make the credential a client authenticates with (see L{resolveAuth}).

    @param token: a token string, used as given.
    @param tokenFile: a file holding the token, read for every request.
    """
    auth = resolveAuth(auth, proxy, key, token, tokenFile, environ)
    caDir = caDir if caDir else defaultCADir(environ)
    if token is not None:
        where = "the token argument"
        source = lambda: (token, where)  # noqa: E731
    else:
        source = tokenSource(tokenFile, environ)
    if auth == "token":
        return _TokenCredential(source, caDir)
    return _Credential(proxy if proxy else defaultProxyPath(environ), key, caDir)


class _Credential:
    """
    The SSL context built from a credential file, reloaded when the file
    changes (a renewed proxy).
    """

    def __init__(self, proxy, key, caDir):
        self.proxy = proxy
        self.key = key
        self.caDir = caDir
        self._signature = None
        self._context = None
        self._dates = (None, None)

    def _stat(self, path, what):
        """
        Stat a credential file, turning failures into L{NO_CREDENTIAL}.
        """
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: %s does not exist; run voms-proxy-init or set "
                "X509_USER_PROXY" % (path,)
                if what == "credential"
                else "no credential: the key file %s does not exist" % (path,),
            )
        except OSError as e:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: cannot read %s: %s"
                % (path, (e.strerror or str(e)).lower()),
            )
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def context(self, now=None):
        """
        Return the SSL context for a new connection, after checking that the
        files exist and the certificate is currently valid.

        @raise ClientError: L{NO_CREDENTIAL}, L{CREDENTIAL_EXPIRED},
            L{BAD_CREDENTIAL} or L{NO_CA_DIR}.
        """
        signature = [self._stat(self.proxy, "credential")]
        if self.key is not None:
            signature.append(self._stat(self.key, "key"))
        signature = tuple(signature)
        if signature != self._signature or self._context is None:
            self._context = self._load()
            self._dates = certificateDates(self.proxy)
            self._signature = signature
        self._checkDates(time.time() if now is None else now)
        return self._context

    def _checkDates(self, now):
        """
        Refuse a certificate outside its validity period, with a message
        better than the server's bare refusal.
        """
        notBefore, notAfter = self._dates
        if notAfter is not None and now > notAfter:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your credential %s expired at %s; renew it (voms-proxy-init)"
                % (self.proxy, _utc(notAfter)),
            )
        # A little slack: a proxy made a moment ago on a machine whose clock
        # is slightly ahead still works on most servers.
        if notBefore is not None and now + 300 < notBefore:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your credential %s is not valid before %s; check the clock"
                % (self.proxy, _utc(notBefore)),
            )

    def authorization(self, now=None):
        """
        A certificate needs no C{Authorization} header.
        """
        return None

    refusedMessage = _REFUSED_MESSAGE

    def _load(self):
        """
        Build the SSL context.
        """
        context = _trustingContext(self.caDir)
        try:
            context.load_cert_chain(self.proxy, self.key)
        except ssl.SSLError as e:
            raise ClientError(
                BAD_CREDENTIAL,
                "cannot use the credential %s: %s" % (self.proxy, _sslReason(e)),
            )
        except OSError as e:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: cannot read %s: %s"
                % (self.proxy, (e.strerror or str(e)).lower()),
            )
        return context


class JobMonClient:
    """
    A connection to a JobMon server.

    Nothing is read or opened when the client is made: the credential is
    loaded and the connection opened at the first call.  A new connection
    reloads the credential if its file changed, so a long-lived client picks
    up a renewed proxy.

    @ivar url: the server's URL, normalized (C{https://host:port/path}).
    @ivar timeout: seconds to wait for the connection and for each answer.
    """

    def __init__(self, server, proxy=None, caDir=None, timeout=60.0, key=None,
                 auth="auto", token=None, tokenFile=None, environ=None):
        """
        @param server: the server URL, C{https://host[:port][/path]}; the
            port defaults to 8443 and the path to C{/RPC2}.
        @param proxy: the credential file: a proxy (cert, key and chain in
            one file) or a user certificate; default L{defaultProxyPath}.
        @param caDir: the directory of trusted CA certificates in hashed
            layout (a single PEM bundle file also works); default
            L{defaultCADir}.
        @param timeout: seconds to wait for the connection and for an answer;
            also sent as the C{timeout} of the queries made by the methods
            for each op (L{ls}, L{stat}, L{cat}...), except L{follow}, whose
            timeout follows its wait.
        @param key: the private key file, if C{proxy} holds only a
            certificate (C{usercert.pem}/C{userkey.pem}).  An encrypted key
            makes OpenSSL prompt for its pass phrase on the terminal.
        @param auth: C{"auto"} (a bearer token if one is given or discovery
            finds one and no C{proxy} or C{key} is named, else the proxy),
            C{"x509"} or C{"token"}; see L{chooseCredential}.
        @param token: a bearer token to send as it is.
        @param tokenFile: a file holding the bearer token, read for each
            request.
        @param environ: the environment for discovery (default
            C{os.environ}).

        @raise ClientError: L{BAD_URL} if C{server} is malformed.
        """
        self._host, self._port, self._path, self.url = parseServerURL(server)
        self.timeout = float(timeout)
        self._choice = (auth, proxy, key, caDir, token, tokenFile, environ)
        self._chosen = None
        self._conn = None

    def __repr__(self):
        return "<JobMonClient %s>" % (self.url,)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def _credential(self):
        # Chosen at first use: making a client reads nothing.
        if self._chosen is None:
            self._chosen = chooseCredential(*self._choice)
        return self._chosen

    @property
    def authMode(self):
        """
        C{"x509"} or C{"token"}: how this client authenticates.
        """
        return "token" if isinstance(self._credential, _TokenCredential) else "x509"

    def close(self):
        """
        Close the connection, if any.  The client may still be used: the
        next call opens a new connection.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- the API -----------------------------------------------------------

    def whoami(self):
        """
        Return the server's view of the caller: a dict with C{dn},
        C{admin}, C{proxy} and C{limited}.
        """
        return self._call("jobmon.whoami", ())

    def listJobs(self, all=False):
        """
        Return the list of the caller's jobs, as dicts (C{job_id}, C{owner},
        C{host}, C{mode}, C{state}, C{registered}, C{last_seen},
        C{pending}).

        @param all: list every job (the server's admins only: anyone else
            gets fault 403).  Long lists are fetched a page at a time.
        """
        jobs = []
        while True:
            options = {"limit": LIST_PAGE}
            if all:
                options["all"] = True
            if jobs:
                options["after"] = jobs[-1]["job_id"]
            page = self._call("jobmon.listJobs", (options,))
            jobs.extend(page)
            if len(page) < LIST_PAGE:
                return jobs

    def query(self, jobId, request):
        """
        Send C{request} (a dict, see C{docs/API.md}) to job C{jobId} and
        return its result as the server sent it.

        The client waits for the answer up to the request's C{timeout} field
        plus L{TIMEOUT_GRACE} if it has one, else up to L{timeout}.
        """
        wait = self.timeout
        if isinstance(request, dict) and request.get("timeout") is not None:
            try:
                wait = float(request["timeout"]) + TIMEOUT_GRACE
            except (TypeError, ValueError):
                pass
        return self._call("jobmon.query", (jobId, request), wait)

    def _request(self, op, timeout, **fields):
        """
        Build a request struct with the client's timeout.
        """
        request = {"op": op}
        request.update(fields)
        request["timeout"] = _xmlNumber(
            self.timeout if timeout is None else timeout, "timeout"
        )
        return request

    def ls(self, jobId, path=".", timeout=None, depth=None, all=None):
        """
        List directory C{path} of the job: a dict with C{path}, C{entries}
        (dicts with C{name}, C{type}, C{size} (an int), C{mtime}, C{mode},
        and C{target} for links) and C{truncated}.

        @param depth: also list subdirectories down to this many levels
            (names are then relative to C{path}); not sent if C{None}.
        @param all: whether names starting with a dot are listed (the
            daemon's default is true); not sent if C{None}.
        """
        fields = {"path": path}
        if depth is not None:
            fields["depth"] = _xmlNumber(depth, "depth")
        if all is not None:
            fields["all"] = bool(all)
        result = self.query(jobId, self._request("ls", timeout, **fields))
        for entry in result.get("entries", ()):
            _normalizeEntry(entry)
        return result

    def stat(self, jobId, path, timeout=None):
        """
        Return the entry of C{path}: C{path}, C{name}, C{type}, C{size} (an
        int), C{mtime}, C{mode} and for links C{target}.
        """
        return _normalizeEntry(
            self.query(jobId, self._request("stat", timeout, path=path))
        )

    def cat(self, jobId, path, offset=0, length=None, timeout=None):
        """
        Read bytes of C{path} from C{offset}, C{length} of them or to the
        end: a dict with C{path}, C{data} (bytes), C{offset}, C{size} (ints)
        and C{truncated}.
        """
        fields = {"path": path, "offset": _xmlNumber(offset, "offset")}
        if length is not None:
            fields["length"] = _xmlNumber(length, "length")
        return _normalizeData(
            self.query(jobId, self._request("cat", timeout, **fields))
        )

    def head(self, jobId, path, lines=None, timeout=None, bytes=None):
        """
        Read the first C{lines} lines (default 10) or, if C{bytes} is given,
        the first C{bytes} bytes of C{path}: fields as for L{cat}.
        """
        return _normalizeData(
            self.query(jobId, self._request(
                "head", timeout, **_linesOrBytes(path, lines, bytes)))
        )

    def tail(self, jobId, path, lines=None, timeout=None, bytes=None):
        """
        Read the last C{lines} lines (default 10) or, if C{bytes} is given,
        the last C{bytes} bytes of C{path}: fields as for L{cat}.
        """
        return _normalizeData(
            self.query(jobId, self._request(
                "tail", timeout, **_linesOrBytes(path, lines, bytes)))
        )

    def follow(self, jobId, path, offset=0, inode=None, wait=10.0, timeout=None):
        """
        Wait up to C{wait} seconds for bytes of C{path} beyond C{offset}:
        a dict with C{path}, C{data} (bytes), C{offset}, C{next_offset},
        C{size} (ints), C{inode}, C{rotated}, C{missing} and C{truncated}.

        @param inode: the C{inode} of the previous result; C{None} on the
            first call.
        @param timeout: the query's timeout; default C{wait} + 10 s, as the
            server allows a C{follow}.
        """
        fields = {
            "path": path,
            "offset": _xmlNumber(offset, "offset"),
            "wait": _xmlNumber(wait, "wait"),
        }
        if inode is not None:
            fields["inode"] = inode
        if timeout is None:
            timeout = wait + FOLLOW_EXTRA
        return _normalizeData(
            self.query(jobId, self._request("follow", timeout, **fields))
        )

    def ps(self, jobId, timeout=None):
        """
        Return the job's processes: a dict with C{root}, C{processes} (dicts
        with C{pid}, C{ppid}, C{user}, C{state}, C{cpu_percent}, C{rss} and
        C{vms} (ints), C{elapsed}, C{threads}, C{name}, C{cmdline},
        C{daemon}), in tree order, and C{truncated}.
        """
        return _normalizeProcesses(self.query(jobId, self._request("ps", timeout)))

    def top(self, jobId, interval=1.0, timeout=None):
        """
        Like L{ps}, but with CPU use measured over C{interval} seconds, and
        the processes sorted by it, highest first.

        The query's timeout is at least C{interval} + 10 s.
        """
        if timeout is None:
            timeout = max(self.timeout, interval + FOLLOW_EXTRA)
        return _normalizeProcesses(self.query(jobId, self._request(
            "top", timeout, interval=_xmlNumber(interval, "interval"))))

    def res(self, jobId, timeout=None):
        """
        Return the job's resource totals: C{processes}, C{threads},
        C{cpu_user}, C{cpu_system}, C{rss}, C{rss_peak}, C{open_files},
        C{read_bytes}, C{write_bytes} (byte counts as ints) and C{elapsed}.
        """
        return _integralFields(
            self.query(jobId, self._request("res", timeout)),
            ("rss", "rss_peak", "read_bytes", "write_bytes"),
        )

    def du(self, jobId, path=".", timeout=None):
        """
        Return the disk usage under C{path}: C{path}, C{total} (an int),
        C{files}, C{dirs}, C{entries} (C{name}, C{size} (an int), C{type})
        and C{truncated}.
        """
        result = _integralFields(
            self.query(jobId, self._request("du", timeout, path=path)), ("total",))
        for entry in result.get("entries", ()):
            _normalizeEntry(entry)
        return result

    def df(self, jobId, path=".", timeout=None):
        """
        Return the filesystem holding C{path}: C{total}, C{used}, C{free},
        C{inodes_total}, C{inodes_free} (ints) and C{percent}.
        """
        return _integralFields(
            self.query(jobId, self._request("df", timeout, path=path)),
            ("total", "used", "free", "inodes_total", "inodes_free"),
        )

    def env(self, jobId, timeout=None):
        """
        Return the job's environment: C{variables} (a dict) and C{redacted}
        (the names whose values were replaced by C{"<redacted>"}).
        """
        return self.query(jobId, self._request("env", timeout))

    def commands(self, jobId, timeout=None):
        """
        Return what L{run} offers on the job: C{commands}, dicts with
        C{name}, C{description}, C{usage}, C{timeout} and C{max_output}.
        """
        return self.query(jobId, self._request("commands", timeout))

    def run(self, jobId, name, args=(), timeout=None):
        """
        Run the job's command C{name} with C{args} (strings): a dict with
        C{name}, C{argv}, C{exit_code}, C{stdout} and C{stderr} (bytes),
        C{truncated} and C{duration}.
        """
        args = list(args)
        for arg in args:
            if not isinstance(arg, str):
                raise ClientError(
                    BAD_ARGUMENT, "command arguments must be strings, not %r" % (arg,))
        return self.query(jobId, self._request("run", timeout, name=name, args=args))

    def signal(self, jobId, sig, timeout=None):
        """
        Send signal C{sig} (a name such as C{"TERM"}) to the job's root
        process: a dict with C{signal} and C{pid}.
        """
        return self.query(jobId, self._request("signal", timeout, signal=sig))

    def history(self, jobId=None, limit=100):
        """
        The caller's own history: C{{"jobs": [...], "queries": [...]}},
        about one job if C{jobId} is given.
        """
        options = {"limit": limit}
        if jobId is not None:
            options["job_id"] = jobId
        return self._call("jobmon.history", (options,))

    def auditLog(self, jobId, limit=100):
        """
        The last C{limit} audit records about a job, oldest first (the
        server's admins only).
        """
        return self._call("jobmon.auditLog", (jobId, limit))

    # -- the transport -----------------------------------------------------

    def _connect(self):
        """
        Return an open connection: the kept-alive one if the server has not
        closed it, else a new one.

        @return: C{(connection, fresh)}.
        """
        conn = self._conn
        if conn is not None:
            if conn.sock is not None and not _isDropped(conn.sock):
                return conn, False
            self.close()
        context = self._credential.context()
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=self.timeout, context=context
        )
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
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = e.verify_message or _sslReason(e)
            return ClientError(
                SERVER_NOT_TRUSTED,
                "the server's certificate could not be verified: %s "
                "(server %s, CA directory %s)"
                % (detail.rstrip("."), self.url, self._credential.caDir),
            )
        if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError)):
            return ClientError(
                TLS_ERROR,
                "the JobMon server at %s closed the connection during the TLS "
                "handshake" % (self.url,),
            )
        if isinstance(e, ssl.SSLError):
            if _isRefusal(e):
                return ClientError(CERTIFICATE_REFUSED, self._credential.refusedMessage)
            return ClientError(
                TLS_ERROR,
                "TLS handshake with %s failed: %s (is it a JobMon server?)"
                % (self.url, _sslReason(e)),
            )
        if isinstance(e, ConnectionRefusedError):
            return ClientError(UNREACHABLE, where + ": connection refused")
        if isinstance(e, socket.gaierror):
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
            body = xmlrpc.client.dumps(params, method, allow_none=False).encode(
                "utf-8"
            )
        except (TypeError, OverflowError, ValueError, UnicodeError) as e:
            raise ClientError(BAD_ARGUMENT, "cannot encode the request: %s" % (e,))
        conn, fresh = self._connect()
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
            result, _ = xmlrpc.client.loads(data, use_builtin_types=True)
        except xmlrpc.client.Fault as fault:
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
        if isinstance(e, ssl.SSLError) and _isRefusal(e):
            return ClientError(CERTIFICATE_REFUSED, self._credential.refusedMessage)
        closed = isinstance(
            e,
            (
                ssl.SSLEOFError,
                ssl.SSLZeroReturnError,
                ConnectionError,
                http.client.IncompleteRead,
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
        if isinstance(e, ssl.SSLError):
            return ClientError(
                TLS_ERROR, "TLS error with %s: %s" % (self.url, _sslReason(e))
            )
        if isinstance(e, http.client.HTTPException):
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

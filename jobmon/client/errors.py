"""
The errors the client finds on its own side: L{ClientError} and its codes.

They lie in 2001-2099, outside the server's 400-599 and the worker's
1000-1999, and never cross the wire:

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

L{_sslReason} puts an C{SSLError} in the words of a one-line message.

Like the rest of L{jobmon.client}, this imports only the standard library
and L{jobmon.errors}.
"""

from jobmon.errors import JobMonError

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

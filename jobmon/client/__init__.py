"""
A client for the JobMon server that uses only the standard library.

L{JobMonClient} talks XML-RPC over HTTPS to the server (see C{docs/API.md}),
authenticating with an X.509 proxy file (C{/tmp/x509up_u$UID}), a user
certificate, or a WLCG bearer token (C{$BEARER_TOKEN}, C{$BEARER_TOKEN_FILE},
C{$XDG_RUNTIME_DIR/bt_u$UID}, C{/tmp/bt_u$UID}: see L{jobmon.credentials}).
It keeps one HTTP/1.1 connection alive across calls, so an in-process
caller making many queries pays the TLS handshake once.

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
the client side raise L{ClientError} with one of the codes listed in
L{jobmon.client.errors}.  They lie in 2001-2099, outside the server's
400-599 and the worker's 1000-1999, and never cross the wire.

The package is in parts, and this module gathers their public names:
L{jobmon.client.errors} (the codes and L{ClientError}),
L{jobmon.client.credential} (certificate or bearer token),
L{jobmon.client.connection} (the kept-alive connection and the calls on it),
L{jobmon.client.values} (numbers to and from XML-RPC) and
L{jobmon.client.api} (L{JobMonClient}, one method per op).  Under the
connection: L{jobmon.client.tls} (TLS on C{_ssl}), L{jobmon.client.http11}
(HTTP/1.1) and L{jobmon.client.wire} (XML-RPC bodies).

This package imports only the standard library and L{jobmon.errors},
L{jobmon.credentials} and L{jobmon.options} (which do too), so that
C{jobmon-query} starts fast; and of the standard library, not C{ssl},
C{socket}, C{http.client}, C{xmlrpc.client} or C{urllib.parse}, whose imports
cost more than a query (the three modules above do their part of the work
the same way).  It is not thread-safe: use one client per
thread.
"""

from jobmon.client.api import (  # noqa: F401 (part of this API)
    FOLLOW_EXTRA,
    LIST_PAGE,
    TIMEOUT_GRACE,
    JobMonClient,
)
from jobmon.client.connection import (  # noqa: F401 (part of this API)
    DEFAULT_PATH,
    DEFAULT_PORT,
    _isRefusal,
    parseServerURL,
)
from jobmon.client.credential import (  # noqa: F401 (part of this API)
    _Credential,
    _TokenCredential,
    certificateDates,
    chooseCredential,
    resolveAuth,
)
from jobmon.client.errors import (  # noqa: F401 (part of this API)
    BAD_ARGUMENT,
    BAD_CREDENTIAL,
    BAD_URL,
    CERTIFICATE_REFUSED,
    CLIENT_NAMES,
    CLIENT_TIMEOUT,
    CONNECTION_LOST,
    CREDENTIAL_EXPIRED,
    HTTP_ERROR,
    NO_CA_DIR,
    NO_CREDENTIAL,
    PROTOCOL_ERROR,
    SERVER_NOT_TRUSTED,
    TLS_ERROR,
    UNREACHABLE,
    ClientError,
    clientCodeName,
)
from jobmon.client.values import (  # noqa: F401 (part of this API)
    _xmlNumber,
    exactName,
    wirePath,
)
from jobmon.credentials import (  # noqa: F401 (part of this API)
    AUTH_MODES,
    TokenNotFound,
    defaultProxyPath,
    expiredAt,
    tokenSource,
)
from jobmon.options import DEFAULT_CA_DIR, defaultCADir  # noqa: F401 (part of this API)

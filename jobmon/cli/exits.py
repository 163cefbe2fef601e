"""
The exit statuses of C{jobmon-query}: listed once for people in
L{EXIT_STATUS_HELP} (shown by C{--help}), and computed by the table
L{EXIT_CODES} and the function L{exitCode}.
"""

from jobmon import client as _client
from jobmon import errors

EXIT_OK = 0
"""Success."""
EXIT_REMOTE = 1
"""The operation failed in the job (codes 1001-1099 but 1008 and 1011), or
the command of C{run} exited with a status other than 0."""
EXIT_USAGE = 2
"""Usage error, or a request the server found malformed or too large."""
EXIT_AUTH = 3
"""Authentication failed, either way."""
EXIT_FORBIDDEN = 4
"""Not authorized by the server (403), or not allowed by the job's
configuration (1011: a signal the daemon does not allow)."""
EXIT_NO_JOB = 5
"""No such job, or an ambiguous job id prefix."""
EXIT_GONE = 6
"""The job went away or ended (a follow that sees its job end ends with
L{EXIT_OK})."""
EXIT_TIMEOUT = 7
"""A timeout, on the server, the worker or the client."""
EXIT_SERVER = 8
"""Server unreachable or failing, or an internal error."""
EXIT_INTERRUPTED = 130
"""Interrupted by the user."""

EXIT_CODES = {
    errors.BAD_REQUEST: EXIT_USAGE,
    errors.TOO_LARGE: EXIT_USAGE,
    _client.BAD_URL: EXIT_USAGE,
    _client.BAD_ARGUMENT: EXIT_USAGE,
    errors.NOT_AUTHENTICATED: EXIT_AUTH,
    _client.NO_CREDENTIAL: EXIT_AUTH,
    _client.CREDENTIAL_EXPIRED: EXIT_AUTH,
    _client.BAD_CREDENTIAL: EXIT_AUTH,
    _client.CERTIFICATE_REFUSED: EXIT_AUTH,
    _client.SERVER_NOT_TRUSTED: EXIT_AUTH,
    _client.NO_CA_DIR: EXIT_AUTH,
    errors.NOT_AUTHORIZED: EXIT_FORBIDDEN,
    errors.NOT_ALLOWED: EXIT_FORBIDDEN,
    errors.NO_SUCH_JOB: EXIT_NO_JOB,
    errors.JOB_GONE: EXIT_GONE,
    errors.JOB_ENDED: EXIT_GONE,
    errors.TIMEOUT: EXIT_TIMEOUT,
    errors.REMOTE_TIMEOUT: EXIT_TIMEOUT,
    _client.CLIENT_TIMEOUT: EXIT_TIMEOUT,
    errors.JOB_CONFLICT: EXIT_SERVER,
    errors.TOO_MANY: EXIT_SERVER,
    errors.INTERNAL: EXIT_SERVER,
    errors.UNAVAILABLE: EXIT_SERVER,
    _client.UNREACHABLE: EXIT_SERVER,
    _client.TLS_ERROR: EXIT_SERVER,
    _client.CONNECTION_LOST: EXIT_SERVER,
    _client.HTTP_ERROR: EXIT_SERVER,
    _client.PROTOCOL_ERROR: EXIT_SERVER,
}
"""Exit status for each error code; see L{exitCode} for the others."""

EXIT_STATUS_HELP = """\
exit status:
  0  success (also when the reader of the output goes away: ... | head)
  1  the operation failed in the job (no such file, permission denied...),
     or the command of 'run' exited with a status other than 0
  2  usage error or bad request (400, 413)
  3  authentication: credential missing, expired, unusable or refused (401),
     or the server's certificate could not be verified
  4  not authorized (403), or not allowed by the job's configuration
     (1011: a signal the job's daemon does not allow)
  5  no such job (404), or a job id prefix that matches several jobs
  6  the job went away (410) or ended (411); tail -f and cat -f end with 0
     when their job ends
  7  timeout (408, 1008, no answer in time)
  8  server unreachable or server error (500, 503, 429, 409, connection or
     HTTP failures, internal errors)
  130  interrupted (Ctrl-C)
"""


def exitCode(code):
    """
    Return the exit status for the error code C{code} (a server fault code
    or a L{jobmon.client} code).
    """
    if code in EXIT_CODES:
        return EXIT_CODES[code]
    if isinstance(code, int) and errors.isRemote(code):
        return EXIT_REMOTE
    return EXIT_SERVER

"""
Fault codes shared by the server, the daemon and the clients.

Every error a JobMon method can return is an XML-RPC fault with one of the
codes below.  The codes are part of the public API (see C{docs/API.md}): they
never change meaning, and clients map them to exit codes.

This module imports only the standard library: the command-line client uses
it.  C{xmlrpc.client} (which imports C{http.client} and the C{email}
package) is imported only by L{JobMonError.toFault}, which the server calls:
the client does not need it.
"""

# Request errors: the caller sent something wrong.
BAD_REQUEST = 400
"""Malformed request: unknown op, missing or ill-typed argument."""

NOT_AUTHENTICATED = 401
"""The credential was accepted by TLS but cannot act as a user here (for
example an independent proxy, which does not speak for its issuer)."""

NOT_AUTHORIZED = 403
"""The caller is known but may not do this (for example post results for a
job it does not own)."""

NO_SUCH_JOB = 404
"""No job with this id is visible to the caller.  A job owned by someone
else gives this same fault, so that job ids do not leak between users."""

TIMEOUT = 408
"""The job did not answer within the query timeout."""

JOB_CONFLICT = 409
"""The job id is registered by (or reserved for) another identity, or
registered by another live daemon of the same identity."""

JOB_GONE = 410
"""The job went away: its daemon disconnected or stopped re-registering,
while the request was pending or before it came (it may register again).
A job whose daemon unregistered it ended: L{JOB_ENDED}."""

JOB_ENDED = 411
"""The job ended: its daemon unregistered it (as it does when the job ends),
while the request was pending or before it came.  The message says when.
Only the job's owner and the server's admins learn this; for anyone else
the job does not exist (L{NO_SUCH_JOB})."""

TOO_LARGE = 413
"""The request body or an argument is larger than the server accepts."""

TOO_MANY = 429
"""Too many requests pending for this job or user."""

INTERNAL = 500
"""An unexpected error on the server; the server log has the details."""

UNAVAILABLE = 503
"""The server is shutting down."""

# Remote errors: the job's daemon ran the request and it failed.
NO_SUCH_FILE = 1001
"""The path does not exist in the job's working directory."""

OUTSIDE_WORKDIR = 1002
"""The path resolves outside the job's working directory (C{..} or a
symbolic link that leaves it)."""

NOT_A_DIRECTORY = 1003
"""A directory was expected (C{ls} of a file is allowed; a path component
that is not a directory is not)."""

IS_A_DIRECTORY = 1004
"""A file was expected (C{cat} or C{tail} of a directory)."""

PERMISSION_DENIED = 1005
"""The job's own account may not read the path."""

REMOTE_IO_ERROR = 1006
"""Reading failed on the worker (I/O error, file vanished mid-read)."""

UNSUPPORTED_OP = 1007
"""The job's daemon does not know this op (an older daemon)."""

REMOTE_TIMEOUT = 1008
"""The daemon gave up on the operation after its own time limit."""

NO_SUCH_COMMAND = 1010
"""C{run} of a command the job's daemon does not offer."""

NOT_ALLOWED = 1011
"""The daemon's configuration does not allow this (a signal, for
example)."""

REMOTE_ERROR = 1099
"""Any other failure on the worker."""

NAMES = {
    BAD_REQUEST: "bad request",
    NOT_AUTHENTICATED: "not authenticated",
    NOT_AUTHORIZED: "not authorized",
    NO_SUCH_JOB: "no such job",
    TIMEOUT: "timeout",
    JOB_CONFLICT: "job id conflict",
    JOB_GONE: "job gone",
    JOB_ENDED: "job ended",
    TOO_LARGE: "too large",
    TOO_MANY: "too many requests",
    INTERNAL: "internal server error",
    UNAVAILABLE: "server unavailable",
    NO_SUCH_FILE: "no such file",
    OUTSIDE_WORKDIR: "outside the job's working directory",
    NOT_A_DIRECTORY: "not a directory",
    IS_A_DIRECTORY: "is a directory",
    PERMISSION_DENIED: "permission denied",
    REMOTE_IO_ERROR: "I/O error on the worker",
    UNSUPPORTED_OP: "unsupported op",
    REMOTE_TIMEOUT: "operation timed out on the worker",
    NO_SUCH_COMMAND: "no such command",
    NOT_ALLOWED: "not allowed by the job's configuration",
    REMOTE_ERROR: "error on the worker",
}


def isRemote(code):
    """
    Tell whether C{code} reports a failure of the operation on the worker,
    as opposed to a failure of the request on the server.
    """
    return 1000 <= code < 2000


class JobMonError(Exception):
    """
    An error with a stable fault code and a message a user understands.

    The server turns it into an XML-RPC fault; the daemon sends it back as
    an error result; clients rebuild it from the fault.

    @ivar code: one of the codes of this module.
    @ivar message: one line of text for a person.
    """

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return self.message

    def toFault(self):
        """
        Return the XML-RPC fault that carries this error.
        """
        from xmlrpc.client import Fault

        return Fault(self.code, self.message)

    def toResult(self):
        """
        Return the error in the form a daemon posts with
        C{outputJobResult}.
        """
        return {"error": {"code": self.code, "message": self.message}}

    @classmethod
    def fromFault(cls, fault):
        """
        Rebuild the error from an XML-RPC fault.
        """
        return cls(fault.faultCode, fault.faultString)


class StartupError(Exception):
    """
    A file a program (the server, the job daemon) cannot start without is
    missing or bad; the message (one line) names it and says what is
    wrong.  It never crosses the wire: the program exits with it before its
    reactor runs.
    """

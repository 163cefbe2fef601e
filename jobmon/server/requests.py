"""
What the server accepts from its callers before it queues anything: the
shape and size of a query's request and of a daemon's info, page sizes;
how results are measured, made fit for XML-RPC and delivered, and how a
query ended.
"""

import math

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure

from jobmon.errors import (
    BAD_REQUEST,
    INTERNAL,
    REMOTE_ERROR,
    TOO_LARGE,
    JobMonError,
    isRemote,
)
from jobmon.fqan import checkShares
from jobmon.outcomes import CANCELLED, OK, outcomeWord
from jobmon.protocols.relay import RawResult

_log = Logger(namespace="jobmon.server.hub.Hub")

OPS = frozenset(
    {
        "ls", "stat", "cat", "head", "tail", "follow", "du", "df",
        "ps", "top", "res", "env", "commands", "run", "signal",
    }
)
"""The request ops this server forwards (see C{docs/API.md})."""

ACTING_OPS = frozenset({"run", "signal"})
"""Ops that act on the job rather than read from it."""

MAX_INFO = 4096
"""Largest daemon info struct, in characters of its values and keys."""

MAX_REQUEST = 4096
"""Largest request struct, in characters of its values and keys."""


def _size(value, depth=0):
    """
    Measure a small XML-RPC value in characters, refusing nesting.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return 8
    if isinstance(value, bytes):
        return len(value)
    if depth < 2 and isinstance(value, (list, tuple)):
        return sum(_size(v, depth + 1) for v in value)
    if depth < 2 and isinstance(value, dict):
        return sum(len(str(k)) + _size(v, depth + 1) for k, v in value.items())
    raise JobMonError(BAD_REQUEST, "nested or unsupported value in request")


def xmlrpcSafe(value):
    """
    Make a decoded JSON value encodable as XML-RPC: integers beyond 32 bits
    become doubles, C{None} an empty string.
    """
    if isinstance(value, dict):
        return {str(k): xmlrpcSafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [xmlrpcSafe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
        return float(value)
    if value is None:
        return ""
    return value


def resultSize(result):
    """
    The bytes of file data or command output in a result (in a relayed
    L{RawResult}, as its daemon counted them).
    """
    if isinstance(result, RawResult):
        return result.size
    if not isinstance(result, dict):
        return 0
    return sum(
        len(result[k]) for k in ("data", "stdout", "stderr") if isinstance(result.get(k), bytes)
    )


def asStruct(result):
    """
    A result as a struct: a relayed L{RawResult} parsed (the rare result
    the server must change).

    @raise JobMonError: L{REMOTE_ERROR} if the job's bytes do not parse.
    """
    return result.parsed() if isinstance(result, RawResult) else result


def daemonError(error):
    """
    The L{JobMonError} a daemon's error struct (C{code} and C{message})
    becomes: a daemon reports failures of the operation, or a request it
    found malformed; it cannot make a user see "not authorized" or "no
    such job".
    """
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(code, int) or not (isRemote(code) or code == BAD_REQUEST):
        code = REMOTE_ERROR
    if not isinstance(message, str) or not message:
        message = "the job reported an error"
    return JobMonError(code, message)


def deliver(table, jobId, requestId, result, error):
    """
    End a request with the daemon's result, or with its error: a struct
    (see L{daemonError}) or a L{JobMonError} of the server's own.

    @param table: the L{jobmon.server.pending.IRequestTable}.
    @return: whether someone was still waiting for it.
    """
    if error is not None:
        if not isinstance(error, JobMonError):
            error = daemonError(error)
        delivered = table.complete(jobId, requestId, failure=error)
    else:
        delivered = table.complete(jobId, requestId, result=result)
    if not delivered:
        _log.debug(
            "result for {request_id} on {job_id} came too late",
            category="query", request_id=repr(requestId)[:100], job_id=jobId,
        )
    return delivered


def outcomeOf(result):
    """
    How a query ended, for its audit record, history row and metric label.

    @param result: the query's result, or the L{Failure} it ended with.
    @return: C{(word, code)}: the outcome's word (see L{jobmon.outcomes})
        and the fault code the user got, or L{None} (a result, or a
        cancelled query: its client went away and got no answer).
    """
    if not isinstance(result, Failure):
        return OK, None
    if result.check(CancelledError):
        # The XML-RPC resource cancels a query whose client closed its
        # request (Ctrl-C on tail -f); a timeout is a JobMonError by then.
        return CANCELLED, None
    code = result.value.code if result.check(JobMonError) else INTERNAL
    return outcomeWord(code), code


def checkLimit(limit, most=10000):
    """
    @return: C{limit}, a count of records to return.
    @raise JobMonError: it is not an integer from 1 to C{most}.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= most:
        raise JobMonError(BAD_REQUEST, "limit must be an integer from 1 to {}".format(most))
    return limit


MAX_LIST_PAGE = 1000
"""Most jobs in one C{listJobs} answer (about 0.8 MB of XML, 6 MB at the
very most): longer lists come a page at a time."""


def checkInfo(info):
    """
    Check the info struct a daemon registers with: a struct, small and
    flat.

    @raise JobMonError: it is not.
    """
    if not isinstance(info, dict):
        raise JobMonError(BAD_REQUEST, "info must be a struct")
    if _size(info) > MAX_INFO:
        raise JobMonError(TOO_LARGE, "info larger than {} characters".format(MAX_INFO))
    if "share" in info:
        try:
            checkShares(info["share"])
        except ValueError as e:
            raise JobMonError(BAD_REQUEST, "share: {}".format(e))


def checkRequest(request):
    """
    Check the shape of a query request before it is queued: a struct with a
    known C{op}, small and flat.  The daemon checks each op's arguments.

    @return: the request to forward (without the server-side C{timeout}) and
        the timeout asked for, or L{None}.
    @raise JobMonError: the request is malformed.
    """
    if not isinstance(request, dict):
        raise JobMonError(BAD_REQUEST, "the request must be a struct")
    if _size(request) > MAX_REQUEST:
        raise JobMonError(TOO_LARGE, "request larger than {} characters".format(MAX_REQUEST))
    op = request.get("op")
    if not isinstance(op, str):
        raise JobMonError(BAD_REQUEST, "the request needs an 'op' (one of {})".format(
            ", ".join(sorted(OPS))))
    if op not in OPS:
        raise JobMonError(BAD_REQUEST, "unknown op {!r} (one of {})".format(
            op, ", ".join(sorted(OPS))))
    forward = dict(request)
    timeout = forward.pop("timeout", None)
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise JobMonError(BAD_REQUEST, "timeout must be a positive number of seconds")
    return forward, timeout


def checkOptions(options, method):
    """
    Check the optional struct of options a method takes.

    @return: C{options}, or an empty dict if not given.
    @raise JobMonError: L{BAD_REQUEST} if it is not a struct.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise JobMonError(BAD_REQUEST, "{} takes an optional struct of options".format(method))
    return options

"""
Following a growing file for C{cat -f} and C{tail -f}/C{-F}: new bytes
are printed as they come, and across server restarts the query is asked
again from the same offset and inode, so that no byte is lost or repeated.
"""

from jobmon import client as _client
from jobmon import errors
from jobmon.cli.format import printable
from jobmon.errors import JobMonError

FOLLOW_WAIT = 20.0
"""Seconds one C{follow} query waits on the worker for new bytes (the
server allows at most 25)."""

RETRY_FIRST = 0.2
"""Seconds before the first reconnection attempt while following."""

RETRY_MAX = 5.0
"""The longest wait between two reconnection attempts."""

REREGISTER_GRACE = 60.0
"""Seconds a followed job may stay unknown to the server (404), or its
server refuse connections, before the command gives up: a restarted server
needs that time to see the job's daemon register again."""


def _followRetry(e):
    """
    Tell how a failed C{follow} query may be retried: C{"always"} (the
    server is restarting or unreachable), C{"grace"} (only within
    L{REREGISTER_GRACE}: the job is unknown, or a new connection was refused,
    as a restarting server may do) or C{None} (a real error).
    """
    code = e.code
    if code in (_client.UNREACHABLE, _client.CONNECTION_LOST, _client.CLIENT_TIMEOUT,
                errors.UNAVAILABLE, errors.TIMEOUT, errors.TOO_MANY):
        return "always"
    if code == _client.HTTP_ERROR:
        status = getattr(e, "status", None)
        return "always" if status is not None and status >= 500 else None
    if code in (errors.NO_SUCH_JOB, _client.CERTIFICATE_REFUSED, _client.TLS_ERROR):
        return "grace"
    return None


def follow(s, path, offset, inode=None):
    """
    Follow C{path} from C{offset} until Ctrl-C: print new bytes as they
    come; across server restarts, ask again from the same offset and inode,
    so that no byte is lost or repeated.
    """
    s.following = True
    delay = RETRY_FIRST
    graceStart = None
    failing = False
    missing = False
    shown = path
    while True:
        try:
            result = s.client.follow(s.job, path, offset, inode, FOLLOW_WAIT)
        except JobMonError as e:
            how = _followRetry(e)
            if how is None:
                raise
            if how == "grace":
                now = s.clock()
                if graceStart is None:
                    graceStart = now
                elif now - graceStart > REREGISTER_GRACE:
                    raise
            if not failing:
                s.say("%s; retrying from offset %d (Ctrl-C to stop)" % (e, offset))
                failing = True
            s.client.close()
            s.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            continue
        if failing:
            s.say("reconnected; following %s from offset %d" % (printable(shown), offset))
            failing = False
        delay = RETRY_FIRST
        graceStart = None
        shown = result.get("path", path)
        if result.get("missing"):
            if not missing:
                s.say("%s is missing; waiting for it" % (printable(shown),))
                if s.json:
                    s.out.jsonLine(result)
                missing = True
            offset = result.get("next_offset", offset)
            inode = result.get("inode") or inode
            continue
        missing = False
        data = result.get("data", b"")
        if result.get("rotated"):
            s.say("%s was replaced/truncated; following from its start"
                  % (printable(shown),))
        if s.json:
            if data or result.get("rotated"):
                s.out.jsonLine(result)
        else:
            s.emit(data)
        offset = result.get("next_offset", result.get("offset", offset) + len(data))
        inode = result.get("inode") or inode

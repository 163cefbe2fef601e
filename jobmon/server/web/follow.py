"""
Live follow of a job's file as Server-Sent Events: C{GET
/api/follow?job=J&path=P&offset=N} loops C{follow} queries and sends each
answer with data as one event, whose id is the offset to resume from; a
browser that reconnects sends it back as C{Last-Event-ID}, so nothing is
repeated or lost.
"""

import base64
import json

from twisted.internet import defer
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET

from jobmon.errors import BAD_REQUEST, INTERNAL, JobMonError
from jobmon.server.requests import asStruct
from jobmon.server.web.common import arg, errorBody, intArg, securityHeaders

WAIT = 20
"""Seconds each C{follow} query waits for the file to grow."""


def event(name, data, eventId=None):
    """
    One Server-Sent Event: C{data} as one line of JSON.

    @rtype: L{bytes}
    """
    lines = []
    if eventId is not None:
        lines.append("id: {}".format(eventId))
    lines.append("event: {}".format(name))
    lines.append("data: {}".format(json.dumps(data, separators=(",", ":"))))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def chunkEvent(result):
    """
    The C{data} event of a C{follow} result: its bytes as base64 and, when
    they are UTF-8, as text; offsets and flags as the daemon gave them.
    """
    data = result.get("data", b"")
    if isinstance(data, str):
        data = data.encode("utf-8")
    chunk = {
        "offset": result.get("offset", 0),
        "next_offset": result.get("next_offset", 0),
        "size": result.get("size"),
        "base64": base64.b64encode(data).decode("ascii"),
    }
    try:
        chunk["text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for flag in ("rotated", "missing", "truncated", "ended"):
        if result.get(flag):
            chunk[flag] = True
    return chunk


def resumeOffset(request):
    """
    Where to start: C{Last-Event-ID} (the id of the last event the browser
    had), else the C{offset} argument, else 0.

    @raise JobMonError: L{BAD_REQUEST} if it is not a whole number.
    """
    last = request.getHeader(b"last-event-id")
    if last:
        try:
            value = int(float(last.decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            raise JobMonError(BAD_REQUEST, "Last-Event-ID must be an offset")
    else:
        value = intArg(request, "offset", 0)
    if value < 0:
        raise JobMonError(BAD_REQUEST, "the offset must not be negative")
    return value


class FollowStream:
    """
    The C{/api/follow} endpoint (rendered by L{jobmon.server.web.api.APIResource}).

    @ivar query: C{query(identity, jobId, request)}, the rate-limited
        C{jobmon.query}.
    @ivar identify: C{identify(request)}.
    @ivar clock: for the keep-alive comments.
    @ivar keepalive: seconds between comments while the file is quiet, so
        that a browser that went away is noticed.
    """

    log = Logger()

    def __init__(self, query, identify, clock, keepalive=15, wait=WAIT):
        self.query = query
        self.identify = identify
        self.clock = clock
        self.keepalive = keepalive
        self.wait = wait

    def render(self, request):
        """
        Check the caller and the arguments, then stream.
        """
        try:
            identity = self.identify(request)
            jobId = arg(request, "job", "")
            path = arg(request, "path")
            exact = arg(request, "path_base64")
            if exact is not None:
                # A name that is not UTF-8, as its bytes.
                try:
                    path = base64.b64decode(exact, validate=True)
                except ValueError:
                    raise JobMonError(BAD_REQUEST, "path_base64 is not base64")
            if not path:
                raise JobMonError(BAD_REQUEST, "follow needs a path")
            offset = resumeOffset(request)
        except JobMonError as e:
            return errorBody(request, e)
        securityHeaders(request)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"x-accel-buffering", b"no")
        stream = _Stream(self, request, identity, jobId, path, offset, arg(request, "inode"))
        stream.start()
        return NOT_DONE_YET


class _Stream:
    """
    One browser's follow: one C{follow} query pending at a time, cancelled
    when the browser goes away.
    """

    def __init__(self, owner, request, identity, jobId, path, offset, inode):
        self.owner = owner
        self.request = request
        self.identity = identity
        self.jobId = jobId
        self.path = path
        self.offset = offset
        self.inode = inode
        self.pending = None
        self.done = False
        self._beat = None

    def start(self):
        self.request.notifyFinish().addBoth(self._gone)
        self.request.write(b"retry: 1000\n\n")
        self._schedule()
        self._next()

    def _schedule(self):
        self._beat = self.owner.clock.callLater(self.owner.keepalive, self._ping)

    def _ping(self):
        self._beat = None
        if not self.done:
            self.request.write(b": keep-alive\n\n")
            self._schedule()

    def _gone(self, reason):
        """
        The answer finished or the browser went away: withdraw the
        pending query, stop the comments.
        """
        self.done = True
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.cancel()

    def _next(self):
        struct = {"op": "follow", "path": self.path, "offset": self.offset,
                  "wait": self.owner.wait}
        if self.inode:
            struct["inode"] = self.inode
        d = defer.maybeDeferred(self.owner.query, self.identity, self.jobId, struct)
        self.pending = d
        d.addCallback(asStruct)
        d.addCallbacks(self._answered, self._failed)
        d.addErrback(lambda f: self.owner.log.failure("follow stream broke", f))

    def _answered(self, result):
        self.pending = None
        if self.done:
            return
        self.offset = int(result.get("next_offset", self.offset))
        if result.get("inode"):
            self.inode = result["inode"]
        ended = bool(result.get("ended"))
        data = result.get("data") or b""
        if data or ended or result.get("rotated") or result.get("missing"):
            self.request.write(event("data", chunkEvent(result), self.offset))
        if ended and not result.get("truncated"):
            self.request.write(event("end", {"message": "the job ended; stopped following"}))
            self._finish()
            return
        self._next()

    def _failed(self, failure):
        self.pending = None
        if self.done or failure.check(CancelledError):
            return
        if failure.check(JobMonError):
            error = failure.value
        else:
            self.owner.log.failure("error in follow from the browser view", failure)
            error = JobMonError(INTERNAL, "internal server error in follow")
        self.request.write(event("failure", {"code": error.code, "message": error.message}))
        self._finish()

    def _finish(self):
        if not self.done:
            self.done = True
            if self._beat is not None and self._beat.active():
                self._beat.cancel()
            self._beat = None
            self.request.finish()

"""
The browser view's JSON API, under C{/api/}: the XML-RPC methods of
C{docs/API.md} as GETs (reading) and POSTs (C{run}, C{signal}), called
through the same rate limits and authorization as the XML-RPC endpoint.
"""

import base64

from twisted.internet import defer, task
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from jobmon.errors import BAD_REQUEST, INTERNAL, JobMonError
from jobmon.server.requests import ACTING_OPS, OPS, asStruct
from jobmon.server.web.common import (
    arg,
    checkStateChange,
    errorBody,
    intArg,
    jsonable,
    jsonBody,
    readJson,
    refuseCrossSite,
)

READ_OPS = OPS - ACTING_OPS - {"follow"}
"""The ops a GET of C{/api/query} may send: reading ones only (C{follow}
has its own endpoint, C{/api/follow})."""

LIST_PAGE = 1000
"""Jobs per C{listJobs} call when C{/api/jobs} gathers every page."""

MAX_LISTED = 100_000
"""Most jobs C{/api/jobs} gathers in one answer."""

INT_ARGS = ("lines", "bytes", "offset", "length", "depth", "interval", "from_line")
"""Query-string arguments of C{/api/query} passed as integers."""


def readRequest(request):
    """
    The request struct of a GET of C{/api/query}: C{op}, C{path} (or
    C{path_base64}, an exact name as bytes) and the integer options.

    @raise JobMonError: L{BAD_REQUEST} for an op that is not a reading one.
    """
    op = arg(request, "op")
    if op not in READ_OPS:
        raise JobMonError(BAD_REQUEST, "op must be one of {}".format(", ".join(sorted(READ_OPS))))
    struct = {"op": op}
    raw = arg(request, "path_base64")
    if raw is not None:
        try:
            struct["path"] = base64.b64decode(raw, validate=True)
        except ValueError:
            raise JobMonError(BAD_REQUEST, "path_base64 is not base64")
    elif arg(request, "path") is not None:
        struct["path"] = arg(request, "path")
    for name in INT_ARGS:
        value = intArg(request, name)
        if value is not None:
            struct[name] = value
    if arg(request, "all") is not None:
        struct["all"] = arg(request, "all") in ("1", "true")
    return struct


class APIResource(Resource):
    """
    C{/api/NAME}: one JSON endpoint per name (see L{render_GET} and
    L{render_POST}).  Every answer is JSON with C{Cache-Control: no-store};
    an error is C{{"code", "message"}} with the HTTP status of its code.

    @ivar methods: the XML-RPC methods by name (C{jobmon.query}...), rate
        limited as the XML-RPC endpoint calls them.
    @ivar identify: C{identify(request)}, the caller's identity or raising
        L{JobMonError}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, methods, identify, follow=None, clock=None):
        super().__init__()
        self.methods = methods
        self.identify = identify
        self.follow = follow
        self.clock = clock

    def _name(self, request):
        return b"/".join(request.postpath).decode("utf-8", "replace")

    def render_GET(self, request):
        """
        C{whoami}, C{jobs} (C{after}, C{limit}, C{all}), C{query} (C{job},
        C{op} and its arguments), C{history} (C{job}, C{limit}), C{audit}
        (C{job}, C{limit}); C{follow} is the Server-Sent Events stream of
        L{jobmon.server.web.follow}.  None changes anything.
        """
        name = self._name(request)
        try:
            refuseCrossSite(request)
            if name == "follow" and self.follow is not None:
                return self.follow.render(request)
            call = self._readCall(name, request)
            if call is None:
                return errorBody(request, JobMonError(404, "no such API: /api/" + name))
            identity = self.identify(request)
        except JobMonError as e:
            return errorBody(request, e)
        method, args = call
        return self._call(request, method, identity, *args)

    def _readCall(self, name, request):
        """
        The method and arguments of a GET of C{/api/NAME}, or L{None}.
        """
        if name == "whoami":
            return "jobmon.whoami", ()
        if name == "jobs":
            options = {}
            if arg(request, "all") in ("1", "true"):
                options["all"] = True
            limit = intArg(request, "limit")
            if arg(request, "after"):
                options["after"] = arg(request, "after")
            if limit is None:
                # Every page at once: one round trip for the page, each
                # page charged as the XML-RPC call it is.
                return self._allJobs, (options,)
            options["limit"] = limit
            return "jobmon.listJobs", (options,)
        if name == "query":
            return "jobmon.query", (arg(request, "job", ""), readRequest(request))
        if name == "history":
            options = {}
            if arg(request, "job"):
                options["job_id"] = arg(request, "job")
            limit = intArg(request, "limit")
            if limit is not None:
                options["limit"] = limit
            return "jobmon.history", (options,)
        if name == "audit":
            return "jobmon.auditLog", (arg(request, "job", ""), intArg(request, "limit", 100))
        return None

    def _allJobs(self, identity, options):
        """
        Every job C{listJobs} gives the caller, page after page (at most
        L{MAX_LISTED}).

        @return: a L{Deferred} of the list.
        """
        listJobs = self.methods["jobmon.listJobs"]

        async def gather():
            jobs = []
            after = options.get("after", "")
            while len(jobs) < MAX_LISTED:
                page = await defer.maybeDeferred(
                    listJobs, identity, dict(options, after=after, limit=LIST_PAGE))
                jobs.extend(page)
                if len(page) < LIST_PAGE:
                    break
                after = page[-1]["job_id"]
                if self.clock is not None:
                    # Let other requests in between pages: a long listing
                    # holds the reactor a page (about 30 ms) at a time.
                    await task.deferLater(self.clock, 0, lambda: None)
            return jobs

        return defer.Deferred.fromCoroutine(gather())

    def render_POST(self, request):
        """
        C{run} (C{{"job", "name", "args"}}) and C{signal} (C{{"job",
        "signal"}}): only same-origin, with C{X-JobMon-Request} and a JSON
        body (see L{checkStateChange}).
        """
        name = self._name(request)
        try:
            if name not in ("run", "signal"):
                raise JobMonError(404, "no such API: POST /api/" + name)
            checkStateChange(request)
            identity = self.identify(request)
            body = readJson(request)
            job = body.get("job")
            if not isinstance(job, str):
                raise JobMonError(BAD_REQUEST, "job must be a string")
            if name == "run":
                args = body.get("args", [])
                if not isinstance(body.get("name"), str) or not isinstance(args, list) or not all(
                    isinstance(a, str) for a in args
                ):
                    raise JobMonError(BAD_REQUEST, "run takes a name and a list of strings")
                struct = {"op": "run", "name": body["name"], "args": args}
            else:
                if not isinstance(body.get("signal"), str):
                    raise JobMonError(BAD_REQUEST, "signal must be a string")
                struct = {"op": "signal", "signal": body["signal"]}
        except JobMonError as e:
            return errorBody(request, e)
        return self._call(request, "jobmon.query", identity, job, struct)

    def render_HEAD(self, request):
        return errorBody(request, JobMonError(BAD_REQUEST, "use GET"))

    def _call(self, request, method, identity, *args):
        """
        Call C{method} and answer its result as JSON; cancel it if the
        browser goes away first.
        """
        fn = method if callable(method) else self.methods[method]
        d = defer.maybeDeferred(fn, identity, *args)
        gone = []

        def clientGone(reason):
            gone.append(reason)
            d.cancel()

        request.notifyFinish().addErrback(clientGone)

        def answer(result):
            if gone or request.finished:
                return
            if method != "jobmon.listJobs" and method != self._allJobs:
                # Job listings hold no bytes: 10,000 jobs skip a walk.
                result = jsonable(asStruct(result))
            request.write(jsonBody(request, result))
            request.finish()

        def failed(failure):
            if failure.check(CancelledError) or gone or request.finished:
                return
            if failure.check(JobMonError):
                error = failure.value
            else:
                self.log.failure("error in {method} from the browser view", failure,
                                 method=method)
                error = JobMonError(INTERNAL, "internal server error in {}".format(method))
            request.write(errorBody(request, error))
            request.finish()

        d.addCallback(answer)
        d.addErrback(failed)
        d.addErrback(lambda f: self.log.failure("cannot answer {method}", f, method=method))
        return NOT_DONE_YET

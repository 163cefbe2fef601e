"""
XML-RPC over HTTP(S): the server resource and a small Twisted client.

The server side is our own resource rather than L{twisted.web.xmlrpc.XMLRPC}
so that the body size is checked before parsing, every call learns who is
calling (from the TLS connection), and a call whose client goes away is
cancelled.  Both sides encode and parse with the standard library's
C{xmlrpc.client.dumps}/C{loads}.
"""

import inspect
import tempfile
import xmlrpc.client
from io import BytesIO
from xml.parsers.expat import ExpatError

from twisted.internet import defer
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IHandshakeListener, INegotiated
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import ResponseDone
from twisted.web.http import HTTPChannel, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from jobmon.deferreds import deferredAsync
from jobmon.errors import (
    BAD_REQUEST,
    INTERNAL,
    TOO_LARGE,
    TOO_MANY,
    JobMonError,
)
from jobmon.protocols.fastcall import parseFast
from jobmon.protocols.relay import RawResult

MAX_DEPTH = 40
"""Deepest XML nesting accepted: results nest about 12 deep."""

MAX_ELEMENTS = 1_000_000
"""Most XML elements in one call (a 10,000-entry listing has about 250,000)."""

INLINE_BODY = 256 * 1024
"""Largest body parsed on the reactor thread: a larger one is parsed in a
thread (when the resource has C{runInThread})."""

MAX_THREADED = 8
"""Most large bodies being parsed (or waiting for a thread) at once; past
that, a large call gets fault 429."""


def _refuseDTD(*args):
    raise ValueError("DTDs and entity declarations are not allowed in XML-RPC")


def parseCall(body, maxDepth=MAX_DEPTH, maxElements=MAX_ELEMENTS):
    """
    Parse an XML-RPC call, refusing any document type declaration (XML-RPC
    needs none, and internal entities would let a small body expand into a
    huge one) and documents nested too deep or with too many elements.

    @return: C{(params, methodName)} as L{xmlrpc.client.loads} does.
    @raise ValueError: a DTD was found, or a limit was passed.
    @raise ExpatError: the body is not well-formed XML.
    """
    # The calls clients send are read without expat (about 4 times
    # cheaper); anything else is left to expat, with the same result.
    call = parseFast(body, maxDepth, maxElements)
    if call is not None:
        return call
    return _parseExpat(body, maxDepth, maxElements)


def _parseExpat(body, maxDepth, maxElements):
    """
    L{parseCall} with expat and C{xmlrpc.client}'s unmarshaller, for any
    body.
    """
    parser, unmarshaller = xmlrpc.client.getparser(use_builtin_types=True)
    expat = getattr(parser, "_parser", None)
    if expat is None:
        # Not the expat-based parser: fall back to a plain scan of the
        # prolog.
        prolog = body.split(b"<methodCall", 1)[0]
        if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
            _refuseDTD()
    else:
        expat.StartDoctypeDeclHandler = _refuseDTD
        expat.EntityDeclHandler = _refuseDTD
        start, end = expat.StartElementHandler, expat.EndElementHandler
        depth = elements = 0

        def limitedStart(tag, attrs):
            nonlocal depth, elements
            depth += 1
            elements += 1
            if depth > maxDepth:
                raise ValueError("XML nested deeper than {} levels".format(maxDepth))
            if elements > maxElements:
                raise ValueError("more than {} XML elements".format(maxElements))
            start(tag, attrs)

        def trackedEnd(tag):
            nonlocal depth
            depth -= 1
            end(tag)

        expat.StartElementHandler = limitedStart
        expat.EndElementHandler = trackedEnd
    parser.feed(body)
    parser.close()
    return unmarshaller.close(), unmarshaller.getmethodname()


class _CappedContent:
    """
    Where a request body goes: at most C{limit} bytes are kept (in memory,
    or a temporary file past 100 kB); past that the rest is only counted, so
    that a huge or endless body costs neither memory nor disk.

    @ivar overflow: whether the body was larger than C{limit}.
    @ivar size: bytes received.
    """

    def __init__(self, limit, length):
        self.limit = limit
        self.size = 0
        self.overflow = length is not None and length > limit
        if self.overflow:
            self._file = None
        elif length is not None and length < 100000:
            self._file = BytesIO()
        else:
            self._file = tempfile.TemporaryFile()

    def write(self, data):
        self.size += len(data)
        if self.overflow:
            return
        if self.size > self.limit:
            self.overflow = True
            self._file.close()
            self._file = None
            return
        self._file.write(data)

    def seek(self, offset, whence=0):
        if self._file is not None:
            self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell() if self._file is not None else self.size

    def read(self, size=-1):
        return self._file.read(size) if self._file is not None else b""

    def close(self):
        if self._file is not None:
            self._file.close()


SERVER_NAME = b"JobMon"
"""The C{Server} header of every answer: no product version to anyone."""


class CappedRequest(Request):
    """
    A request whose body is kept only up to the site's C{maxBody}, and
    whose answer names the server only as C{JobMon}.
    """

    def gotLength(self, length):
        self.content = _CappedContent(getattr(self.channel.site, "maxBody", 2**31), length)

    def write(self, data):
        if not self.startedWriting:
            # twisted.web puts its name and version here in process().
            self.responseHeaders.setRawHeaders(b"server", [SERVER_NAME])
        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.sent = getattr(channel, "sent", 0) + len(data)
        super().write(data)


class ClientDeadlines:
    """
    What an HTTP channel of the server does when its client is too slow:
    a TLS handshake not over within the site's C{handshakeDeadline}, a
    request not received within its deadline, an answer not read within
    C{sendDeadline}.  The site is told (its C{handshakeTooSlow} and
    C{notReading}, if it has them) and the connection is cut.

    Needs C{site}, C{transport} and C{callLater}.
    """

    _handshake = None
    _deadline = None
    _drain = None

    def _startHandshakeDeadline(self):
        seconds = getattr(self.site, "handshakeDeadline", None)
        if seconds and INegotiated.providedBy(self.transport):
            self._handshake = self.callLater(seconds, self._handshakeTooSlow)

    def _cutOff(self, hook):
        tell = getattr(self.site, hook, None)
        if tell is not None:
            tell(self)
        self.transport.abortConnection()

    def _handshakeTooSlow(self):
        self._handshake = None
        self._cutOff("handshakeTooSlow")

    def _notReading(self):
        self._drain = None
        self._cutOff("notReading")

    def _tooSlow(self):
        self._deadline = None
        self.transport.abortConnection()


@implementer(IHandshakeListener)
class GuardedChannel(ClientDeadlines, HTTPChannel):
    """
    An HTTP channel that a client cannot use to hold the server's time or
    memory.

      - Its TLS handshake must end within the site's C{handshakeDeadline}
        seconds.
      - A request's line, headers and body must arrive within
        C{requestDeadline} seconds, counted from its first byte: a slow
        sender cannot hold a connection by trickling bytes.  (Idle
        kept-alive connections are closed by the site's idle timeout
        instead.)
      - A C{Content-Length} over the site's C{maxBody} is refused from the
        headers (HTTP 413, connection closed), and the body is not read.
      - Backpressure: while an answer is still in the transport's buffer
        (above the transport's threshold, when it pauses its producer), the
        next pipelined request is not read; a client that does not read
        its answer within C{sendDeadline} seconds is cut off.  So one
        connection holds at most one answer in memory.

    Closing tells the site (C{peerClosed}, which counts connections per
    peer, and C{channelClosed}); bad HTTP is charged to the peer
    (C{chargeMalformed}).

    @ivar sent: bytes of answers written.
    """

    sent = 0
    _deadline = None
    _handshake = None
    _drain = None
    _held = None
    """A finished request whose answer the client has not read yet: the
    next request waits for it."""
    _refused = False
    _shookHands = False
    _answering = False
    """Whether a received request is being answered: bytes that arrive then
    belong to a pipelined request, which HTTPChannel buffers until the
    answer is sent, so they start no deadline."""

    def connectionMade(self):
        super().connectionMade()
        self._startHandshakeDeadline()

    def handshakeCompleted(self):
        """
        The TLS handshake is over: its deadline no longer applies.
        """
        self._shookHands = True
        self._handshake = _cancel(self._handshake)

    def dataReceived(self, data):
        if self._refused:
            return
        if self._deadline is None and not self._answering:
            seconds = getattr(self.site, "requestDeadline", None)
            if seconds:
                self._deadline = self.callLater(seconds, self._tooSlow)
        super().dataReceived(data)

    def rawDataReceived(self, data):
        if self._refused:
            return
        super().rawDataReceived(data)

    def allHeadersReceived(self):
        limit = getattr(self.site, "maxBody", None)
        if limit is not None and self.length is not None and self.length > limit:
            self._refuseBody(self.length, limit)
            return
        super().allHeadersReceived()

    def _refuseBody(self, length, limit):
        """
        Answer a body announced too large with HTTP 413 and close, reading
        none of it.
        """
        self._refused = True
        self._deadline = _cancel(self._deadline)
        self._chargeMalformed()
        self.transport.write(tooLargeAnswer(length, limit))
        self._networkProducer.pauseProducing()
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self):
        self._refused = True
        self._chargeMalformed()
        super()._respondToBadRequestAndDisconnect()

    def _chargeMalformed(self):
        charge = getattr(self.site, "chargeMalformed", None)
        if charge is not None:
            charge(getattr(self, "peerHost", None))

    def allContentReceived(self):
        self._deadline = _cancel(self._deadline)
        # Before the request runs: it may be answered before this returns.
        self._answering = True
        super().allContentReceived()

    def requestDone(self, request):
        self._answering = False
        if self._waitingForTransport and not self.transport.disconnecting:
            # The answer is still being sent: the client must read it
            # within the deadline, and its next request waits for it.
            seconds = getattr(self.site, "sendDeadline", None)
            if seconds and self._drain is None:
                self._drain = self.callLater(seconds, self._notReading)
            if self.persistent:
                self._held = request
                self._networkProducer.pauseProducing()
                return
        super().requestDone(request)

    def resumeProducing(self):
        """
        The transport sent what it held: read the next request, if one was
        waiting for this.
        """
        self._drain = _cancel(self._drain)
        super().resumeProducing()
        if self._held is not None:
            request, self._held = self._held, None
            super().requestDone(request)

    def connectionLost(self, reason):
        self._deadline = _cancel(self._deadline)
        self._handshake = _cancel(self._handshake)
        self._drain = _cancel(self._drain)
        self._held = None
        super().connectionLost(reason)
        closed = getattr(self.site, "peerClosed", None)
        if closed is not None:
            closed(self)
        closed = getattr(self.site, "channelClosed", None)
        if closed is not None:
            closed(self, reason)


def tooLargeAnswer(length, limit):
    """
    The whole HTTP answer (413, connection closed) to a request whose
    C{Content-Length} of C{length} is over C{limit}: a fault saying so.
    """
    body = _fault(
        TOO_LARGE,
        "request body of {} bytes is larger than the {} bytes accepted".format(length, limit),
    ).encode("utf-8")
    return (
        b"HTTP/1.1 413 Content Too Large\r\nServer: %s\r\n"
        b"Content-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (SERVER_NAME, len(body), body)
    )


def _arity(signature):
    """
    The fewest and most positional arguments a call with C{signature}
    accepts (what C{signature.bind(*args)} checks, cheaper: an XML-RPC call
    has positional arguments only).  A required keyword-only parameter
    makes every positional call fail: C{(1, 0)}.
    """
    least = most = 0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            if parameter.default is parameter.empty:
                least = most
        elif parameter.kind is parameter.VAR_POSITIONAL:
            most = float("inf")
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return 1, 0
    return least, most


def _cancel(call):
    """
    Cancel a delayed call if it is still to run; return L{None}.
    """
    if call is not None and call.active():
        call.cancel()
    return None


class _Malformed(Exception):
    """
    A request body that is not an XML-RPC call.

    @ivar fault: the fault to answer, encoded.
    """

    def __init__(self, message):
        super().__init__(message)
        self.fault = _fault(BAD_REQUEST, message).encode("utf-8")


def _fault(code, message):
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True)


class XMLRPCResource(Resource):
    """
    An XML-RPC endpoint dispatching to plain callables.

    Each method is called as C{method(identity, *params)} and may return a
    value or a L{Deferred}.  A L{JobMonError} becomes a fault with its code;
    anything else is logged and becomes fault 500.

    @ivar methods: method name to callable.
    @ivar identify: callable taking the twisted.web request and returning the
        caller's identity, or raising L{JobMonError}.
    @ivar maxBody: the largest request body accepted, in bytes.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self, methods, identify, maxBody=4 * 1024 * 1024, maxDepth=MAX_DEPTH,
        maxElements=MAX_ELEMENTS, runInThread=None, inlineBody=INLINE_BODY,
        maxThreaded=MAX_THREADED,
    ):
        super().__init__()
        self.methods = dict(methods)
        self.identify = identify
        self.maxBody = maxBody
        self.maxDepth = maxDepth
        self.maxElements = maxElements
        self.runInThread = runInThread
        self.inlineBody = inlineBody
        self.maxThreaded = maxThreaded
        self.threaded = 0
        self.methods["system.listMethods"] = self._listMethods
        self._signatures = {
            name: inspect.signature(fn) for name, fn in self.methods.items()
        }
        self._arities = {name: _arity(sig) for name, sig in self._signatures.items()}

    def _listMethods(self, identity):
        return sorted(self.methods)

    def render_GET(self, request):
        """
        Answer a browser with a short explanation instead of an error page.
        """
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"JobMon XML-RPC endpoint: POST XML-RPC calls here.\n"

    def render_POST(self, request):
        """
        Identify the caller, check the body's size and parse it (off the
        reactor thread if it is large), then dispatch the call.
        """
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        try:
            identity = self.identify(request)
        except JobMonError as e:
            return _fault(e.code, e.message).encode("utf-8")

        content = request.content
        if getattr(content, "overflow", False):
            return _fault(
                TOO_LARGE,
                "request body larger than the {} bytes accepted".format(content.limit),
            ).encode("utf-8")
        content.seek(0, 2)
        size = content.tell()
        if size > self.maxBody:
            return _fault(
                TOO_LARGE,
                "request body of {} bytes is larger than the {} bytes accepted".format(
                    size, self.maxBody
                ),
            ).encode("utf-8")
        content.seek(0)
        if self.runInThread is None or size <= self.inlineBody:
            try:
                call = self._parse(content)
            except _Malformed as e:
                self._charge(request)
                return e.fault
            return self._dispatch(request, identity, *call)

        # A large body takes the reactor a while to parse (about 40 ms per
        # MB): parse it in a thread, a few at a time.
        if self.threaded >= self.maxThreaded:
            return _fault(
                TOO_MANY, "the server is busy parsing large requests: try again"
            ).encode("utf-8")
        self.threaded += 1
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = self.runInThread(self._parse, content)

        def parsed(call):
            self.threaded -= 1
            if gone or request.finished:
                return None
            result = self._dispatch(request, identity, *call)
            if result is not NOT_DONE_YET:
                self._write(result, request, gone)

        def malformed(failure):
            self.threaded -= 1
            if gone:
                # The client went away (and its body's file was closed).
                return None
            failure.trap(_Malformed)
            self._charge(request)
            self._write(failure.value.fault, request, gone)

        d.addCallbacks(parsed, malformed)
        d.addErrback(
            lambda f: self.log.failure("cannot answer a large request", f)
        )
        return NOT_DONE_YET

    def _parse(self, content):
        """
        Read and parse the body of a call.

        @return: C{(params, name)}.
        @raise _Malformed: with the fault to answer, if it is not a call.
        """
        try:
            params, name = parseCall(content.read(), self.maxDepth, self.maxElements)
        except (ExpatError, ValueError, TypeError, IndexError, OverflowError) as e:
            raise _Malformed("malformed XML-RPC request: {}".format(e))
        if name is None:
            raise _Malformed("not an XML-RPC method call")
        return params, name

    def _charge(self, request):
        """
        Charge a malformed call to its peer's allowance (see
        L{jobmon.server.site.QuietSite.chargeMalformed}); a peer that has
        used it up is disconnected after this answer.
        """
        channel = getattr(request, "channel", None)
        charge = getattr(getattr(channel, "site", None), "chargeMalformed", None)
        if charge is not None and not charge(getattr(channel, "peerHost", None)):
            channel.persistent = False

    def _dispatch(self, request, identity, params, name):
        """
        Call method C{name} with C{params}.

        @return: the fault to answer at once (bytes), or C{NOT_DONE_YET}.
        """
        fn = self.methods.get(name)
        if fn is None:
            return _fault(BAD_REQUEST, "no such method: {}".format(name)).encode("utf-8")
        least, most = self._arities[name]
        if not least <= len(params) + 1 <= most:
            expected = list(self._signatures[name].parameters)[1:]
            return _fault(
                BAD_REQUEST,
                "{} takes ({}), got {} argument(s)".format(
                    name, ", ".join(expected), len(params)
                ),
            ).encode("utf-8")

        d = defer.maybeDeferred(fn, identity, *params)
        gone = []

        def clientGone(reason):
            # The client went away: withdraw the call (a pending query leaves
            # the server's tables at once), and write it no answer.
            gone.append(reason)
            d.cancel()

        request.notifyFinish().addErrback(clientGone)
        d.addCallback(self._encode)
        d.addErrback(self._encodeError, name, identity)
        d.addCallback(self._write, request, gone)
        return NOT_DONE_YET

    def _encode(self, result):
        if isinstance(result, RawResult):
            # A job's result relayed as its daemon encoded it, checked on
            # arrival (see jobmon.protocols.relay): wrapped, not re-encoded.
            return result.response()
        try:
            return xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False)
        except (TypeError, OverflowError) as e:
            raise RuntimeError("result cannot be encoded: {}".format(e))

    def _encodeError(self, failure, name, identity):
        if failure.check(JobMonError):
            return _fault(failure.value.code, failure.value.message)
        if failure.check(xmlrpc.client.Fault):
            return _fault(failure.value.faultCode, failure.value.faultString)
        if failure.check(CancelledError):
            return None
        self.log.failure(
            "error in {method} called by {dn}", failure, method=name, dn=getattr(identity, "dn", None)
        )
        return _fault(INTERNAL, "internal server error in {}".format(name))

    def _write(self, body, request, gone):
        if body is None or gone or request.finished:
            return
        request.write(body if isinstance(body, bytes) else body.encode("utf-8"))
        request.finish()


@implementer(IBodyProducer)
class _BytesProducer:
    """
    A body producer that writes its bytes at once (no cooperator turn).
    """

    def __init__(self, body):
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _CappedBody(Protocol):
    """
    Collect a response body, giving up past C{limit} bytes.
    """

    def __init__(self, finished, limit):
        self.finished = finished
        self.limit = limit
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        self.size += len(data)
        if self.size > self.limit:
            self.parts = []
            self.transport.stopProducing()
            return
        self.parts.append(data)

    def connectionLost(self, reason):
        if self.size > self.limit:
            self.finished.errback(
                JobMonError(TOO_LARGE, "response larger than {} bytes".format(self.limit))
            )
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)


class XMLRPCClient:
    """
    Call XML-RPC methods through a Twisted L{Agent} (whose connection pool
    keeps the connection alive between calls).

    Faults come back as L{JobMonError} failures with the fault's code.

    @ivar authorization: C{None}, or a callable returning the
        C{Authorization} header value for each call, or a L{Deferred} of it
        (a bearer token, read afresh, off the reactor thread, so that a
        renewed one is used).
    """

    def __init__(self, agent, url, maxResponse=64 * 1024 * 1024, pool=None,
                 authorization=None):
        self.agent = agent
        self.authorization = authorization
        self.pool = pool
        self.url = url.encode("ascii") if isinstance(url, str) else url
        self.maxResponse = maxResponse

    async def call(self, method, *args):
        """
        Call C{method} with C{args} and return its result.
        """
        body = xmlrpc.client.dumps(args, method, allow_none=False).encode("utf-8")
        headers = Headers({b"content-type": [b"text/xml"]})
        if self.authorization is not None:
            value = await defer.maybeDeferred(self.authorization)
            headers.addRawHeader(b"authorization", value.encode("ascii"))
        response = await self.agent.request(b"POST", self.url, headers, _BytesProducer(body))
        finished = defer.Deferred()
        response.deliverBody(_CappedBody(finished, self.maxResponse))
        data = await finished
        if response.code != 200:
            raise JobMonError(
                INTERNAL, "HTTP {} from {}".format(response.code, self.url.decode())
            )
        try:
            (result,), _ = xmlrpc.client.loads(data, use_builtin_types=True)
        except xmlrpc.client.Fault as f:
            raise JobMonError(f.faultCode, f.faultString)
        return result

    @deferredAsync
    async def callRemote(self, method, *args):
        """
        Like L{call}, returning a L{Deferred}.
        """
        return await self.call(method, *args)

    def close(self):
        """
        Close the pooled connections.
        """
        if self.pool is None:
            return defer.succeed(None)
        return self.pool.closeCachedConnections()


__all__ = ["XMLRPCResource", "XMLRPCClient", "CappedRequest", "GuardedChannel", "parseCall"]

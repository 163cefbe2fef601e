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
    JobMonError,
)

MAX_DEPTH = 40
"""Deepest XML nesting accepted: results nest about 12 deep."""

MAX_ELEMENTS = 1_000_000
"""Most XML elements in one call (a 10,000-entry listing has about 250,000)."""


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


class CappedRequest(Request):
    """
    A request whose body is kept only up to the site's C{maxBody}.
    """

    def gotLength(self, length):
        self.content = _CappedContent(getattr(self.channel.site, "maxBody", 2**31), length)


class GuardedChannel(HTTPChannel):
    """
    An HTTP channel with a deadline for receiving a request's line, headers
    and body, counted from its first byte: a slow sender cannot hold a
    connection by trickling bytes.  (Idle kept-alive connections are closed
    by the site's idle timeout instead.)  Closing tells the site, which
    counts connections per peer.
    """

    _deadline = None
    _answering = False
    """Whether a received request is being answered: bytes that arrive then
    belong to a pipelined request, which HTTPChannel buffers until the
    answer is sent, so they start no deadline."""

    def dataReceived(self, data):
        if self._deadline is None and not self._answering:
            seconds = getattr(self.site, "requestDeadline", None)
            if seconds:
                self._deadline = self.callLater(seconds, self._tooSlow)
        super().dataReceived(data)

    def _disarm(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _tooSlow(self):
        self._deadline = None
        self.transport.abortConnection()

    def allContentReceived(self):
        self._disarm()
        # Before the request runs: it may be answered before this returns.
        self._answering = True
        super().allContentReceived()

    def requestDone(self, request):
        self._answering = False
        super().requestDone(request)

    def connectionLost(self, reason):
        self._disarm()
        super().connectionLost(reason)
        closed = getattr(self.site, "peerClosed", None)
        if closed is not None:
            closed(self)


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
        maxElements=MAX_ELEMENTS,
    ):
        super().__init__()
        self.methods = dict(methods)
        self.identify = identify
        self.maxBody = maxBody
        self.maxDepth = maxDepth
        self.maxElements = maxElements
        self.methods["system.listMethods"] = self._listMethods
        self._signatures = {
            name: inspect.signature(fn) for name, fn in self.methods.items()
        }

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
        Parse, authorize and dispatch one call.
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
        try:
            params, name = parseCall(content.read(), self.maxDepth, self.maxElements)
        except (ExpatError, ValueError, TypeError, IndexError, OverflowError) as e:
            return _fault(BAD_REQUEST, "malformed XML-RPC request: {}".format(e)).encode(
                "utf-8"
            )
        if name is None:
            return _fault(BAD_REQUEST, "not an XML-RPC method call").encode("utf-8")

        fn = self.methods.get(name)
        if fn is None:
            return _fault(BAD_REQUEST, "no such method: {}".format(name)).encode("utf-8")
        try:
            self._signatures[name].bind(identity, *params)
        except TypeError:
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
        request.write(body.encode("utf-8"))
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

"""
A lean HTTP/1.1 server channel for the XML-RPC endpoint.

twisted.web's L{HTTPChannel}, L{Request} and L{Site} cost about a quarter
of a millisecond of CPU per call: a L{Headers} object each way, chunked
answers, cookies, the resource traversal.  An XML-RPC call needs none of
that: L{RPCChannel} parses a C{POST} to the endpoint's path itself (bytes
operations, twisted.web's limits), hands the body to the endpoint's
L{XMLRPCResource} through a small L{RPCRequest} that has only the members
the resource and the identity lookup use, and answers with one write: the
status line, C{Server}, C{Date}, C{Content-Type}, C{Content-Length} and the
body.

Any other request (a C{GET}, another path, a chunked body, C{Expect},
C{Upgrade}, HTTP/1.0) is handed over, with the connection, to the
twisted.web channel the site would have built (L{GuardedChannel}) at that
request's boundary: the bytes received so far are replayed to it and it
has the connection from then on.

The channel keeps every protection of L{GuardedChannel}: the TLS handshake
deadline, the request deadline (from a request's first byte), the idle
timeout between requests, 413 from the C{Content-Length} header, one
answer in memory at a time (backpressure), the send deadline, malformed
requests charged to their address, and a call cancelled when its client
goes away.
"""

import re
import time

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IHandshakeListener,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.web.http import datetimeToString
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from jobmon.protocols.xmlrpc import (
    SERVER_NAME,
    ClientDeadlines,
    GuardedChannel,
    _cancel,
    _CappedContent,
    tooLargeAnswer,
)

_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/1\.[01]")
"""A valid request line: a method token, a target of printable ASCII, HTTP
1.0 or 1.1 (as twisted.web accepts, a little stricter on the target)."""

_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00\r\n]*?)[ \t]*")
"""A header line: a token, a colon, a value without NUL, CR or LF.  A line
starting with white space (an obsolete folded line) does not match."""

_ONCE = frozenset([b"content-length", b"transfer-encoding", b"host", b"authorization"])
"""Headers a request may have only once: two are refused (a second length
or credential is how a request is smuggled past a proxy)."""

_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nServer: " + SERVER_NAME
    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
_LENGTH_REQUIRED = (
    b"HTTP/1.1 411 Length Required\r\nServer: " + SERVER_NAME
    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
_INTERNAL = b"500 Internal Server Error"
_LARGE_ANSWER = 64 * 1024
"""Answers larger than this are written as two buffers (head, body) rather
than copied into one."""


class _Date:
    """
    The C{Date} header's value, made once a second.
    """

    def __init__(self, now=time.time):
        self._now = now
        self._second = None
        self._value = b""

    def __call__(self):
        second = int(self._now())
        if second != self._second:
            self._second = second
            self._value = datetimeToString(second)
        return self._value


httpDate = _Date()

_names = {}


def _headerName(name):
    """
    A header name as answers spell it (C{content-type} -> C{Content-Type}).
    """
    canonical = _names.get(name)
    if canonical is None:
        if len(_names) > 100:
            _names.clear()
        canonical = _names[name] = b"-".join(p.capitalize() for p in name.split(b"-"))
    return canonical


@implementer(IPushProducer)
class _NotPushing:
    """
    Stands for a transport that cannot be paused.
    """

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass


class RPCRequest:
    """
    A C{POST} to the XML-RPC endpoint, as L{XMLRPCResource} and the
    identity lookup see it: the few members of twisted.web's L{Request}
    they use.

    @ivar channel: the L{RPCChannel} (its C{site}, C{peerHost} and
        C{persistent}).
    @ivar transport: the connection (its C{getHandle} under TLS).
    @ivar content: the body, a file-like object.
    @ivar finished: whether the answer was written.
    """

    __slots__ = (
        "channel", "transport", "content", "finished", "_headers", "_type", "_extra",
        "_body", "_notify", "_lost", "_status",
    )

    def __init__(self, channel, headers, content):
        self.channel = channel
        self.transport = channel.transport
        self.content = content
        self.finished = False
        self._headers = headers
        self._type = b"text/xml"
        self._extra = None
        self._body = []
        self._notify = None
        self._lost = None
        self._status = b"200 OK"

    def getHeader(self, name):
        """
        The value of request header C{name} (any case), or L{None}.
        """
        if isinstance(name, str):
            name = name.encode("latin-1")
        return self._headers.get(name.lower())

    def getClientAddress(self):
        """
        The client's address.
        """
        return self.transport.getPeer()

    def getHost(self):
        """
        The server's address on this connection.
        """
        return self.transport.getHost()

    def setHeader(self, name, value):
        """
        Set an answer header (a second value replaces the first).
        """
        if isinstance(name, str):
            name = name.encode("latin-1")
        if isinstance(value, str):
            value = value.encode("latin-1")
        # No header injection: line breaks become spaces, as twisted.web does.
        value = b" ".join(value.splitlines())
        name = name.lower()
        if name == b"content-type":
            self._type = value
        elif name not in (b"content-length", b"date", b"server"):
            if self._extra is None:
                self._extra = {}
            self._extra[name] = value

    def write(self, data):
        """
        Add C{data} to the answer's body (sent whole by L{finish}).
        """
        if self.finished:
            raise RuntimeError("Request.write called on a request after Request.finish")
        if self._lost is None:
            self._body.append(data)

    def finish(self):
        """
        Send the answer.
        """
        if self._lost is not None:
            raise RuntimeError(
                "Request.finish called on a request after its connection was lost; "
                "use Request.notifyFinish to keep track of this."
            )
        if self.finished:
            return
        self.finished = True
        body, self._body = b"".join(self._body), None
        self.channel._answer(self, body)
        notify, self._notify = self._notify, None
        if notify:
            for d in notify:
                d.callback(None)

    def notifyFinish(self):
        """
        A L{Deferred} fired when the answer is sent, or failed when the
        connection is lost first.
        """
        if self._lost is not None:
            return fail(self._lost)
        if self.finished:
            return succeed(None)
        d = Deferred()
        if self._notify is None:
            self._notify = []
        self._notify.append(d)
        return d

    def connectionLost(self, reason):
        """
        The connection went away before the answer: tell whoever waits.
        """
        self._lost = reason
        self._body = None
        self.content.close()
        notify, self._notify = self._notify, None
        if notify:
            for d in notify:
                d.errback(reason)


@implementer(IHandshakeListener, IPushProducer)
class RPCChannel(ClientDeadlines, Protocol, TimeoutMixin):
    """
    The HTTP channel of an admitted connection to the XML-RPC site: serves
    C{POST}s to the site's C{rpcPath} itself and hands the connection to
    L{fallback} for anything else.

    Set by the site as for an L{HTTPChannel}: C{site}, C{factory},
    C{requestFactory}, C{callLater}, C{timeOut}, C{peerHost}.

    @ivar sent: bytes of answers written.
    @ivar persistent: whether the connection stays open after this answer.
    """

    maxHeaders = 500
    totalHeadersSize = 16384
    abortTimeout = 15
    eagerReadSize = 0x4000
    """Bytes of pipelined requests read while an answer is pending, before
    the connection is no longer read until it is sent."""
    fallback = GuardedChannel
    log = Logger()

    site = None
    peerHost = None
    sent = 0
    persistent = True
    _shookHands = False
    _buffer = b""
    _request = None
    _held = False
    _waitingForTransport = False
    _paused = False
    _closed = False
    _running = False
    _slow = None
    _resource = None
    _path = None
    _fastLine = None
    _network = None
    _deadline = None
    _handshake = None
    _drain = None
    _abortCall = None
    _want = 0
    _wanting = None
    """While a body is being received: C{(headers, content)}."""
    _ateCRLF = False
    _scanned = 0

    def connectionMade(self):
        site = self.site
        self._resource = site.rpcResource()
        self._path = site.rpcPath
        self._fastLine = b"POST " + self._path + b" HTTP/1.1"
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)
        self.setTimeout(self.timeOut)
        self._network = IPushProducer(transport, _NotPushing())
        self._network.registerProducer(self, True)
        self._startHandshakeDeadline()

    def handshakeCompleted(self):
        """
        The TLS handshake is over: its deadline no longer applies.
        """
        if self._slow is not None:
            self._slow.handshakeCompleted()
            return
        self._shookHands = True
        self._handshake = _cancel(self._handshake)

    def dataReceived(self, data):
        if self._slow is not None:
            self._slow.dataReceived(data)
            return
        if self._closed:
            return
        self.resetTimeout()
        if self._want:
            want = self._want
            if len(data) < want:
                self._want = want - len(data)
                self._wanting[1].write(data)
                return
            self._want = 0
            headers, content = self._wanting
            self._wanting = None
            content.write(data[:want])
            self._buffer = data[want:]
            self._run(headers, content)
        elif self._buffer:
            self._buffer += data
        else:
            self._buffer = data
        if self._request is not None or self._held:
            # A pipelined request: read while the answer is pending, up to a
            # point.
            if len(self._buffer) > self.eagerReadSize:
                self._pauseReading()
            return
        self._process()

    def _process(self):
        """
        Answer the requests received, one at a time, while the channel is
        free to; then start the deadline of a request partly received.
        """
        if self._running:
            return
        self._running = True
        try:
            while (
                self._buffer and self._request is None and not self._held
                and not self._closed and self._slow is None and not self._want
                and self._parse()
            ):
                pass
        finally:
            self._running = False
        if (
            (self._buffer or self._want) and self._deadline is None
            and self._request is None and not self._held and not self._closed
            and self._slow is None
        ):
            seconds = getattr(self.site, "requestDeadline", None)
            if seconds:
                self._deadline = self.callLater(seconds, self._tooSlow)

    def _parse(self):
        """
        Take one request from the buffer and run it (or hand the
        connection over for it, or refuse it).

        @return: whether a whole request head was there.
        """
        buf = self._buffer
        if not self._ateCRLF and buf[:2] == b"\r\n":
            # A client may send an extra empty line after a body (twisted.web
            # eats one too).
            self._ateCRLF = True
            buf = self._buffer = buf[2:]
            if not buf:
                return False
        end = buf.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            if len(buf) > self.totalHeadersSize:
                self._refuse(_BAD_REQUEST)
            else:
                # A head trickling in is not searched again from its start.
                self._scanned = max(0, len(buf) - 3)
            return False
        self._scanned = 0
        if end > self.totalHeadersSize:
            self._refuse(_BAD_REQUEST)
            return False
        lines = buf[:end].split(b"\r\n")
        line = lines[0]
        if not _REQUEST_LINE.fullmatch(line):
            self._refuse(_BAD_REQUEST)
            return False
        if line != self._fastLine or self._resource is None:
            self._handOver()
            return False
        if len(lines) > self.maxHeaders + 1:
            self._refuse(_BAD_REQUEST)
            return False
        headers = {}
        match = _HEADER.fullmatch
        for line in lines[1:]:
            m = match(line)
            if m is None:
                self._refuse(_BAD_REQUEST)
                return False
            name, value = m.groups()
            name = name.lower()
            if name in headers:
                if name in _ONCE:
                    self._refuse(_BAD_REQUEST)
                    return False
                value = headers[name] + b", " + value
            headers[name] = value
        length = headers.get(b"content-length")
        if b"transfer-encoding" in headers:
            if length is not None:
                self._refuse(_BAD_REQUEST)
                return False
            self._handOver()
            return False
        if b"expect" in headers or b"upgrade" in headers:
            self._handOver()
            return False
        if length is None:
            self._refuse(_LENGTH_REQUIRED)
            return False
        if not length.isdigit():
            self._refuse(_BAD_REQUEST)
            return False
        length = int(length)
        limit = getattr(self.site, "maxBody", None)
        if limit is not None and length > limit:
            self._refuse(tooLargeAnswer(length, limit))
            return False
        connection = headers.get(b"connection")
        if connection is not None and b"close" in connection.lower().replace(b",", b" ").split():
            self.persistent = False
        content = _CappedContent(2**63 if limit is None else limit, length)
        start = end + 4
        have = len(buf) - start
        if have < length:
            content.write(buf[start:])
            self._buffer = b""
            self._want = length - have
            self._wanting = (headers, content)
            return False
        if length:
            content.write(buf[start:start + length])
        self._buffer = buf[start + length:]
        self._run(headers, content)
        return True

    def _run(self, headers, content):
        """
        A whole request was received: call the resource.
        """
        self._deadline = _cancel(self._deadline)
        self._ateCRLF = False
        request = self._request = RPCRequest(self, headers, content)
        try:
            body = self._resource.render_POST(request)
        except Exception:
            self.log.failure("cannot answer an XML-RPC request")
            body = None
        if body is NOT_DONE_YET:
            return
        if request.finished or request._lost is not None:
            return
        if not isinstance(body, bytes):
            if body is not None:
                self.log.error("the XML-RPC resource returned {type}, not bytes",
                               type=type(body).__name__)
            request._status = _INTERNAL
            request._type = b"text/plain; charset=utf-8"
            body = b"internal server error\n"
        request._body = [body]
        request.finish()

    def _answer(self, request, body):
        """
        Send C{request}'s answer, then go on with the next request, unless
        the transport is full (the client must read first) or the
        connection is to close.
        """
        if request is not self._request:
            return
        self._request = None
        persistent = self.persistent
        extra = request._extra
        if extra is None:
            more = b""
        else:
            if b"connection" in extra and b"close" in extra[b"connection"].lower():
                persistent = self.persistent = False
            more = b"".join(
                [_headerName(name) + b": " + value + b"\r\n" for name, value in extra.items()]
            )
        if not persistent and (extra is None or b"connection" not in extra):
            more += b"Connection: close\r\n"
        head = b"HTTP/1.1 %s\r\nServer: %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            request._status, SERVER_NAME, httpDate(), request._type, len(body), more,
        )
        self.sent += len(head) + len(body)
        if len(body) > _LARGE_ANSWER:
            self.transport.writeSequence((head, body))
        else:
            self.transport.write(head + body)
        self.resetTimeout()
        if self._waitingForTransport and not self.transport.disconnecting:
            # The answer is still being sent: the client must read it within
            # the deadline, and its next request waits for it.
            seconds = getattr(self.site, "sendDeadline", None)
            if seconds and self._drain is None:
                self._drain = self.callLater(seconds, self._notReading)
            if persistent:
                self._held = True
                self._pauseReading()
                return
        if not persistent:
            self._close()
            return
        self._resumeReading()
        self._process()

    def _pauseReading(self):
        if not self._paused:
            self._paused = True
            self._network.pauseProducing()

    def _resumeReading(self):
        if self._paused:
            self._paused = False
            self._network.resumeProducing()

    def pauseProducing(self):
        """
        The transport's buffer is full: read no further request until it
        has been sent.
        """
        self._waitingForTransport = True
        if self._request is None:
            self._pauseReading()

    def resumeProducing(self):
        """
        The transport sent what it held: read the next request.
        """
        self._waitingForTransport = False
        self._drain = _cancel(self._drain)
        if self._closed or self._request is not None:
            return
        self._held = False
        self._resumeReading()
        self._process()

    def stopProducing(self):
        """
        The transport is going away (L{connectionLost} follows).
        """

    def timeoutConnection(self):
        """
        No request for C{timeOut} seconds: close the connection (abort it
        if it does not close within C{abortTimeout}).  A connection whose
        answer is pending is not idle.
        """
        if self._request is not None or self._held:
            self.setTimeout(self.timeOut)
            return
        self._close()
        if self.abortTimeout is not None:
            self._abortCall = self.callLater(self.abortTimeout, self.transport.abortConnection)

    def _close(self):
        self._closed = True
        self._deadline = _cancel(self._deadline)
        self._network.unregisterProducer()
        self.transport.loseConnection()

    def _refuse(self, answer):
        """
        Answer a malformed request, charge its address, close.
        """
        self._buffer = b""
        self._closed = True
        self._deadline = _cancel(self._deadline)
        charge = getattr(self.site, "chargeMalformed", None)
        if charge is not None:
            charge(self.peerHost)
        self.sent += len(answer)
        self.transport.write(answer)
        self._pauseReading()
        self._close()

    def _handOver(self):
        """
        Give the connection to a L{fallback} channel built as the site would
        have, starting with the request at the head of the buffer.
        """
        slow = self.fallback()
        slow.factory = self.factory
        slow.site = self.site
        slow.requestFactory = self.requestFactory
        slow.callLater = self.callLater
        slow.timeOut = self.timeOut
        slow.peerHost = self.peerHost
        slow.sent = self.sent
        slow._shookHands = self._shookHands
        deadline, self._deadline = self._deadline, None
        self.setTimeout(None)
        self._drain = _cancel(self._drain)
        # An unfinished handshake gets its deadline afresh from the new
        # channel (with TLS, no request comes before the handshake ends).
        self._handshake = _cancel(self._handshake)
        self._resumeReading()
        self._network.unregisterProducer()
        data, self._buffer = self._buffer, b""
        self._slow = slow
        slow.makeConnection(self.transport)
        if self._shookHands:
            slow.handshakeCompleted()
        # The request's deadline still counts from its first byte.
        slow._deadline = deadline
        if data:
            slow.dataReceived(data)

    def connectionLost(self, reason):
        if self._slow is not None:
            self._slow.connectionLost(reason)
            return
        self._closed = True
        self._deadline = _cancel(self._deadline)
        self._handshake = _cancel(self._handshake)
        self._drain = _cancel(self._drain)
        self._abortCall = _cancel(self._abortCall)
        self.setTimeout(None)
        self._buffer = b""
        if self._wanting is not None:
            self._wanting[1].close()
            self._wanting = None
        request, self._request = self._request, None
        if request is not None:
            request.connectionLost(reason)
        closed = getattr(self.site, "peerClosed", None)
        if closed is not None:
            closed(self)
        closed = getattr(self.site, "channelClosed", None)
        if closed is not None:
            closed(self, reason)


__all__ = ["RPCChannel", "RPCRequest", "httpDate"]

"""
The TCP wake channel: a TLS connection from a job's daemon to the server,
over which the server says "work is queued".

Messages are JSON objects, one per line (at most L{MAX_LINE} bytes, or
L{MAX_REQUEST_LINE} from server to daemon):

  - daemon to server: C{hello} (job id, registration token, the features
    it knows), C{ping}, C{result};
  - server to daemon: C{welcome} (keep-alive interval, whether it sends
    requests), C{wake}, C{request}, C{error}, C{notice} (a line for the
    daemon's log), C{moved} (this server is stopping and hands the job
    over: register with another server of the daemon's list now), C{pong}.

A daemon whose hello lists the C{"requests"} feature, welcomed by a server
that answers C{"requests": true}, gets its job's queries on the channel as
C{request} lines instead of C{wake} lines, and answers each with a
C{result}: a header line C{{"type":"result","id":..,"length":N,"bytes":B}}
followed by exactly N bytes, the XML-RPC C{<params>} fragment of the result
struct, which the server relays to the user without parsing (see
L{jobmon.protocols.relay}); or a line C{{"type":"result","id":..,"error":
{"code":..,"message":..}}}.  Either side without the feature keeps the
older protocol: C{wake} lines, then C{getJobToDo} and C{outputJobResult}
over HTTPS.

The daemon pings every keep-alive interval and the server answers; each
side drops the connection after three intervals without a line from the
other, so both notice a dead peer within a bounded time.
"""

import json
import xmlrpc.client

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin

from jobmon.errors import BAD_REQUEST, REMOTE_ERROR, TOO_LARGE, JobMonError
from jobmon.protocols.relay import RawResult, checkFragment, encodeFragment

MAX_LINE = 4096
"""Longest line the server accepts (result headers and errors included)."""

MAX_REQUEST_LINE = 64 * 1024
"""Longest line the daemon accepts: a C{request} line carries a request of
at most 4096 characters (see L{jobmon.server.requests.MAX_REQUEST}), which
JSON escapes may make six times longer."""

MAX_RESULT = 16 * 1024 * 1024
"""Largest result fragment the server accepts by default (its
C{--max-body}, the limit of an C{outputJobResult} call)."""

FEATURES = ("requests",)
"""The features a daemon's hello lists (when it can serve requests)."""

HELLO_TIMEOUT = 30
"""Seconds a new connection has to say hello (server) or be welcomed
(daemon)."""

MISSED_PINGS = 3
"""Keep-alive intervals of silence after which a peer is taken as dead."""

_WAKE = b'{"type":"wake"}'
_PING = b'{"type":"ping"}'
_PONG = b'{"type":"pong"}'
_MOVED = b'{"type":"moved"}'


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""One encoder for every line (C{json.dumps} with options builds one per
call)."""


def _encode(message):
    return _ENCODER.encode(message).encode("utf-8")


def _decode(line):
    """
    Parse one line into a dict with a string C{type}.

    @raise JobMonError: the line is not such an object.
    """
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise JobMonError(BAD_REQUEST, "wake channel: malformed message")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise JobMonError(BAD_REQUEST, "wake channel: message without a type")
    return message


_STRICT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""The encoder of request lines: values JSON cannot carry as they are
(bytes, dates, infinities) raise, and the request goes XML-RPC encoded."""


def encodeRequest(requestId, request):
    """
    Encode a C{request} line (without its newline): the request as JSON
    when it is text, numbers, booleans, and lists and structs of them, else
    XML-RPC encoded, as C{getJobToDo} returns it.

    @raise TypeError: a value XML-RPC cannot carry either.
    """
    try:
        return _STRICT.encode(
            {"type": "request", "id": requestId, "request": request}
        ).encode("utf-8")
    except (TypeError, ValueError):
        text = xmlrpc.client.dumps((request,), allow_none=False)
        return _encode({"type": "request", "id": requestId, "xmlrpc": text})


def _sanitisedInt(value, most):
    """
    An integer from 0 to C{most} from a peer's header, or L{None}.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        return None
    return value


def payloadSize(result):
    """
    The bytes of file data or command output in a result struct (the
    C{bytes} of its C{result} header).
    """
    return sum(
        len(result[k]) for k in ("data", "stdout", "stderr") if isinstance(result.get(k), bytes)
    )


def logRefusal(log, budget, peer, why):
    """
    Log that a wake connection or message from C{peer} was refused, and
    C{why}, within C{budget} (a L{jobmon.server.tls.RefusalBudget}-like
    object, or L{None} for no limit): a few lines per address per minute,
    the next one saying how many were not logged.
    """
    quiet = 0 if budget is None else budget.admit(getattr(peer, "host", str(peer)))
    if quiet is None:
        return
    log.info(
        "wake channel from {peer} refused: {why}{more}",
        category="wake",
        peer=peer,
        why=why,
        more=" ({} more refusals from there not logged)".format(quiet) if quiet else "",
    )


class _LineChannel(LineReceiver, TimeoutMixin):
    """
    JSON lines with an idle timeout, shared by both ends.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def send(self, line):
        """
        Send one encoded message (bytes).
        """
        self.sendLine(line)

    def lineLengthExceeded(self, line):
        self.fail(JobMonError(
            TOO_LARGE, "wake channel: line longer than {} bytes".format(self.MAX_LENGTH)
        ))

    def fail(self, error):
        """
        Tell the peer why, then close.
        """
        if self.transport is None:
            return
        self.send(_encode({"type": "error", "code": error.code, "message": error.message}))
        self.transport.loseConnection()

    def timeoutConnection(self):
        # The peer is silent: it may be gone without a FIN (a dead host, a
        # dropped network path), so do not wait for a clean close.
        self.transport.abortConnection()


class WakeServerProtocol(_LineChannel):
    """
    The server's end of one job's wake channel.

    @ivar hub: the object that binds channels to jobs; it provides
        C{channelHello(channel, identity, jobId, wakeSecret)}, given the
        hello's C{token} (returns the keep-alive interval or raises
        L{JobMonError}), C{channelLost(channel)} and, for channels with
        requests, C{channelResult(channel, requestId, result, error)}.
    @ivar jobId: the job this channel is bound to, once welcomed.
    @ivar identity: the peer's identity, once it said hello.
    @ivar requests: whether the job's requests go on this channel (the
        daemon asked for it and the factory offers it).
    """

    log = Logger()

    def __init__(self, hub, identify, clock, maxResult=MAX_RESULT):
        self.hub = hub
        self.identify = identify
        self.callLater = clock.callLater
        self.maxResult = maxResult
        self.jobId = None
        self.identity = None
        self.requests = False
        # The result fragment being received: (id, length, size), its
        # chunks and their length.
        self._frame = None
        self._chunks = None
        self._received = 0

    def connectionMade(self):
        self.setTimeout(HELLO_TIMEOUT)

    def lineReceived(self, line):
        # Before its hello, a peer has HELLO_TIMEOUT in all: pings do not
        # extend it (a peer with no certificate, where tokens are accepted,
        # could otherwise hold the connection without ever naming a job).
        if self.jobId is not None:
            self.resetTimeout()
        try:
            message = _decode(line)
            kind = message["type"]
            if kind == "result" and self.requests:
                self._result(message)
            elif kind == "ping":
                self.send(_PONG)
            elif kind == "pong":
                pass
            elif kind == "hello":
                self._hello(message)
            else:
                raise JobMonError(BAD_REQUEST, "wake channel: unknown message type")
        except JobMonError as e:
            self._logRefusal(e.message)
            self.fail(e)

    def _logRefusal(self, why):
        """
        Log a refused hello or message, a few per address per minute (the
        factory's C{refusals} budget, if it has one), so that a flood of
        refusals cannot flush the log.
        """
        logRefusal(self.log, getattr(self.factory, "refusals", None),
                   self.transport.getPeer(), why)

    def _hello(self, message):
        if self.jobId is not None:
            raise JobMonError(BAD_REQUEST, "wake channel: hello sent twice")
        jobId, token = message.get("job_id"), message.get("token")
        if not isinstance(jobId, str) or not isinstance(token, str):
            raise JobMonError(BAD_REQUEST, "wake channel: hello needs job_id and token")
        features = message.get("features")
        # Set before the hub binds the channel: work already queued goes
        # as requests at once.
        self.requests = (
            isinstance(features, list)
            and "requests" in features
            and getattr(self.factory, "offerRequests", True)
        )
        self.identity = self.identify(self.transport)
        keepalive = self.hub.channelHello(self, self.identity, jobId, token)
        self.jobId = jobId
        self.setTimeout(keepalive * MISSED_PINGS)
        welcome = {"type": "welcome", "keepalive": keepalive}
        if self.requests:
            welcome.update(requests=True, max_result=self.maxResult)
        self.send(_encode(welcome))

    def wake(self):
        """
        Tell the daemon that work is queued.
        """
        self.send(_WAKE)

    def request(self, requestId, request):
        """
        Send the daemon one request (a channel with L{requests}).

        @return: L{None}, or the L{JobMonError} to fail the request with
            if it cannot go.
        """
        try:
            line = encodeRequest(requestId, request)
        except (TypeError, OverflowError) as e:
            return JobMonError(BAD_REQUEST, "the request cannot be sent: {}".format(e))
        if len(line) > MAX_REQUEST_LINE:
            return JobMonError(TOO_LARGE, "the request is too large to send to the job")
        self.send(line)
        return None

    def _result(self, message):
        """
        A C{result} header: an error line, or the start of a fragment.
        """
        requestId = message.get("id")
        if not isinstance(requestId, str):
            raise JobMonError(BAD_REQUEST, "wake channel: result without an id")
        if "error" in message:
            self.hub.channelResult(self, requestId, error=message["error"])
            return
        length = message.get("length")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise JobMonError(BAD_REQUEST, "wake channel: result without a length")
        if length > self.maxResult:
            error = JobMonError(
                TOO_LARGE,
                "the job's result of {} bytes is larger than the {} bytes the server "
                "accepts".format(length, self.maxResult),
            )
            self.hub.channelResult(self, requestId, error=error)
            raise error
        size = _sanitisedInt(message.get("bytes"), length) or 0
        self._frame = (requestId, length, size)
        self._chunks = []
        self._received = 0
        self.setRawMode()
        if length == 0:
            self.rawDataReceived(b"")

    def rawDataReceived(self, data):
        self.resetTimeout()
        requestId, length, size = self._frame
        need = length - self._received
        if len(data) < need:
            self._chunks.append(data)
            self._received += len(data)
            return
        self._chunks.append(data[:need])
        rest = data[need:]
        body = b"".join(self._chunks)
        self._frame, self._chunks, self._received = None, None, 0
        why = checkFragment(body)
        if why is None:
            self.hub.channelResult(self, requestId, result=RawResult(body, size))
        else:
            self.hub.channelResult(
                self, requestId, error=JobMonError(REMOTE_ERROR, "the job's result was "
                                                   "refused: {}".format(why))
            )
        self.setLineMode(rest)

    def notice(self, message):
        """
        Tell the daemon something worth a line in its log (a second daemon
        was refused its job).  Daemons that do not know notices ignore
        them.
        """
        text = message[: MAX_LINE // 2]
        self.send(_encode({"type": "notice", "message": text}))

    def sendMoved(self):
        """
        Tell the daemon that this server is stopping and hands its job
        over: it registers with the next server of its list at once (a
        daemon with a single server registers again with this one, after
        its usual delay).  The channel is closed after the line.
        """
        if self.transport is None:
            return
        self.send(_MOVED)
        self.transport.loseConnection()

    def close(self):
        """
        Close the channel (the registration it served was replaced or
        removed).
        """
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        self._chunks = None
        self.factory.peerClosed(self)
        if self.jobId is not None:
            self.hub.channelLost(self)


class WakeClientProtocol(_LineChannel):
    """
    The daemon's end of the wake channel.

    @ivar welcomed: fires with this protocol when the server accepts the
        hello, or fails with the server's L{JobMonError} or the connection
        loss.
    @ivar onRequest: called with C{(channel, items)} (items as
        C{getJobToDo} returns them) for requests sent on the channel, or
        L{None}: the daemon asks for none.
    @ivar requests: whether the server sends requests on this channel
        (its welcome said so), to be answered with L{sendResult}.
    @ivar onMoved: called with this protocol when the server says
        C{moved} (it hands the job over), or L{None}: the line is ignored.
    @ivar onClosed: called with C{(protocol, reason)} when a welcomed
        channel closes, or L{None}.
    """

    log = Logger()
    MAX_LENGTH = MAX_REQUEST_LINE

    def __init__(self, jobId, token, onWake, clock, onRequest=None, onMoved=None,
                 onClosed=None):
        self.jobId = jobId
        self.token = token
        self.onWake = onWake
        self.onRequest = onRequest
        self.onMoved = onMoved
        self.onClosed = onClosed
        self.clock = clock
        self.callLater = clock.callLater
        self.welcomed = defer.Deferred()
        self.keepalive = None
        self.requests = False
        self.maxResult = MAX_RESULT
        self._pinger = None
        self._lost = False

    def connectionMade(self):
        self.setTimeout(HELLO_TIMEOUT)
        hello = {"type": "hello", "job_id": self.jobId, "token": self.token}
        if self.onRequest is not None and FEATURES:
            hello["features"] = list(FEATURES)
        self.send(_encode(hello))

    def lineReceived(self, line):
        self.resetTimeout()
        try:
            message = _decode(line)
        except JobMonError as e:
            self.fail(e)
            return
        kind = message["type"]
        if kind == "request" and self.requests:
            self._request(message)
        elif kind == "wake":
            self.onWake()
        elif kind == "ping":
            self.send(_PONG)
        elif kind == "pong":
            pass
        elif kind == "welcome":
            self._welcome(message)
        elif kind == "moved":
            self.log.info("the server hands the job over (it is stopping)")
            if self.onMoved is not None:
                self.onMoved(self)
        elif kind == "notice":
            notice = str(message.get("message", ""))
            self.log.warn("the server says: {notice}", notice=notice)
        elif kind == "error":
            error = JobMonError(
                message.get("code") if isinstance(message.get("code"), int) else BAD_REQUEST,
                str(message.get("message", "refused by the server")),
            )
            self.log.warn("wake channel refused: {why}", why=error.message)
            self._fireWelcomed(error)
            self.transport.loseConnection()

    def _welcome(self, message):
        keepalive = message.get("keepalive")
        if not isinstance(keepalive, (int, float)) or not 0 < keepalive <= 3600:
            self.fail(JobMonError(BAD_REQUEST, "wake channel: bad keepalive"))
            return
        self.keepalive = keepalive
        self.requests = message.get("requests") is True and self.onRequest is not None
        maxResult = _sanitisedInt(message.get("max_result"), MAX_RESULT * 64)
        if maxResult is not None:
            self.maxResult = maxResult
        self.setTimeout(keepalive * MISSED_PINGS)
        self._pinger = LoopingCall(self.send, _PING)
        self._pinger.clock = self.clock
        self._pinger.start(keepalive, now=False)
        self._fireWelcomed(self)

    def _request(self, message):
        """
        A request from the server: hand it to the daemon as C{getJobToDo}
        would.
        """
        requestId = message.get("id")
        if "xmlrpc" in message:
            try:
                (request,), _ = xmlrpc.client.loads(message["xmlrpc"], use_builtin_types=True)
            except Exception:
                request = None
        else:
            request = message.get("request")
        if not isinstance(requestId, str):
            self.log.warn("request without an id on the wake channel ignored")
            return
        # A request that is not a struct is the daemon's to refuse: it
        # answers with an error, as for one from getJobToDo.
        self.onRequest(self, [{"id": requestId, "request": request}])

    def sendResult(self, requestId, result):
        """
        Answer a request received on this channel.

        @return: whether the result was sent; if not (the channel is gone,
            or an error's message does not fit a line), the caller posts
            it with C{outputJobResult}.
        """
        if self._lost or self.transport is None or self.transport.disconnecting:
            return False
        error = result.get("error")
        if error is not None:
            line = _encode({"type": "result", "id": requestId, "error": error})
            if len(line) > MAX_LINE:
                return False
            self.send(line)
            return True
        try:
            body = encodeFragment(result)
        except (TypeError, OverflowError) as e:
            self.log.warn("result of {request_id} cannot be encoded: {why}",
                          request_id=requestId, why=str(e))
            return self.sendResult(requestId, {"error": {
                "code": REMOTE_ERROR, "message": "the job's result cannot be encoded"}})
        if len(body) > self.maxResult:
            return self.sendResult(requestId, {"error": {
                "code": REMOTE_ERROR,
                "message": "the result of {} bytes is larger than the {} bytes the server "
                           "accepts".format(len(body), self.maxResult)}})
        header = _encode({"type": "result", "id": requestId, "length": len(body),
                          "bytes": payloadSize(result)})
        self.transport.writeSequence([header, self.delimiter, body])
        return True

    def _fireWelcomed(self, result):
        if not self.welcomed.called:
            if isinstance(result, Exception):
                self.welcomed.errback(result)
            else:
                self.welcomed.callback(result)

    def connectionLost(self, reason):
        self._lost = True
        self.setTimeout(None)
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        if self.keepalive is not None and self.onClosed is not None:
            self.onClosed(self, reason)
        self._fireWelcomed(ConnectionLost("wake channel closed before welcome"))


class WakeClientFactory(Factory):
    """
    Builds the daemon's L{WakeClientProtocol} with the token of its current
    registration.

    @ivar registration: callable returning C{(jobId, token)}.
    @ivar onRequest: see L{WakeClientProtocol.onRequest}.
    @ivar onMoved: see L{WakeClientProtocol.onMoved}.
    @ivar onClosed: see L{WakeClientProtocol.onClosed}.
    """

    noisy = False

    def __init__(self, registration, onWake, clock, onRequest=None, onMoved=None,
                 onClosed=None):
        self.registration = registration
        self.onWake = onWake
        self.clock = clock
        self.onRequest = onRequest
        self.onMoved = onMoved
        self.onClosed = onClosed

    def buildProtocol(self, addr):
        jobId, token = self.registration()
        p = WakeClientProtocol(jobId, token, self.onWake, self.clock, self.onRequest,
                               self.onMoved, self.onClosed)
        p.factory = self
        return p

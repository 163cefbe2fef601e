"""
The TCP wake channel: a TLS connection from a job's daemon to the server,
over which the server says "work is queued".

Messages are JSON objects, one per line (at most L{MAX_LINE} bytes):

  - daemon to server: C{hello} (job id and registration token), C{ping};
  - server to daemon: C{welcome} (keep-alive interval), C{wake}, C{error},
    C{notice} (a line for the daemon's log), C{pong}.

The daemon pings every keep-alive interval and the server answers; each
side drops the connection after three intervals without a line from the
other, so both notice a dead peer within a bounded time.
"""

import json

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin

from jobmon.errors import BAD_REQUEST, TOO_LARGE, JobMonError

MAX_LINE = 4096
"""Longest line either side accepts."""

HELLO_TIMEOUT = 30
"""Seconds a new connection has to say hello (server) or be welcomed
(daemon)."""

MISSED_PINGS = 3
"""Keep-alive intervals of silence after which a peer is taken as dead."""

_WAKE = b'{"type":"wake"}'
_PING = b'{"type":"ping"}'
_PONG = b'{"type":"pong"}'


def _encode(message):
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


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


class _LineChannel(LineOnlyReceiver, TimeoutMixin):
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
        self.fail(JobMonError(TOO_LARGE, "wake channel: line longer than {} bytes".format(MAX_LINE)))

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
        L{JobMonError}), and C{channelLost(channel)}.
    @ivar jobId: the job this channel is bound to, once welcomed.
    @ivar identity: the peer's identity, once it said hello.
    """

    log = Logger()

    def __init__(self, hub, identify, clock):
        self.hub = hub
        self.identify = identify
        self.callLater = clock.callLater
        self.jobId = None
        self.identity = None

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
            if kind == "ping":
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
        peer = self.transport.getPeer()
        budget = getattr(self.factory, "refusals", None)
        quiet = 0 if budget is None else budget.admit(getattr(peer, "host", str(peer)))
        if quiet is None:
            return
        self.log.info(
            "wake channel from {peer} refused: {why}{more}",
            category="wake",
            peer=peer,
            why=why,
            more=" ({} more refusals from there not logged)".format(quiet) if quiet else "",
        )

    def _hello(self, message):
        if self.jobId is not None:
            raise JobMonError(BAD_REQUEST, "wake channel: hello sent twice")
        jobId, token = message.get("job_id"), message.get("token")
        if not isinstance(jobId, str) or not isinstance(token, str):
            raise JobMonError(BAD_REQUEST, "wake channel: hello needs job_id and token")
        self.identity = self.identify(self.transport)
        keepalive = self.hub.channelHello(self, self.identity, jobId, token)
        self.jobId = jobId
        self.setTimeout(keepalive * MISSED_PINGS)
        self.send(_encode({"type": "welcome", "keepalive": keepalive}))

    def wake(self):
        """
        Tell the daemon that work is queued.
        """
        self.send(_WAKE)

    def notice(self, message):
        """
        Tell the daemon something worth a line in its log (a second daemon
        was refused its job).  Daemons that do not know notices ignore
        them.
        """
        text = message[: MAX_LINE // 2]
        self.send(_encode({"type": "notice", "message": text}))

    def close(self):
        """
        Close the channel (the registration it served was replaced or
        removed).
        """
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        self.factory.peerClosed(self)
        if self.jobId is not None:
            self.hub.channelLost(self)


class WakeClientProtocol(_LineChannel):
    """
    The daemon's end of the wake channel.

    @ivar welcomed: fires with this protocol when the server accepts the
        hello, or fails with the server's L{JobMonError} or the connection
        loss.
    """

    log = Logger()

    def __init__(self, jobId, token, onWake, clock):
        self.jobId = jobId
        self.token = token
        self.onWake = onWake
        self.clock = clock
        self.callLater = clock.callLater
        self.welcomed = defer.Deferred()
        self.keepalive = None
        self._pinger = None

    def connectionMade(self):
        self.setTimeout(HELLO_TIMEOUT)
        self.send(_encode({"type": "hello", "job_id": self.jobId, "token": self.token}))

    def lineReceived(self, line):
        self.resetTimeout()
        try:
            message = _decode(line)
        except JobMonError as e:
            self.fail(e)
            return
        kind = message["type"]
        if kind == "wake":
            self.onWake()
        elif kind == "ping":
            self.send(_PONG)
        elif kind == "pong":
            pass
        elif kind == "welcome":
            self._welcome(message)
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
        self.setTimeout(keepalive * MISSED_PINGS)
        self._pinger = LoopingCall(self.send, _PING)
        self._pinger.clock = self.clock
        self._pinger.start(keepalive, now=False)
        self._fireWelcomed(self)

    def _fireWelcomed(self, result):
        if not self.welcomed.called:
            if isinstance(result, Exception):
                self.welcomed.errback(result)
            else:
                self.welcomed.callback(result)

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._fireWelcomed(ConnectionLost("wake channel closed before welcome"))


class WakeClientFactory(Factory):
    """
    Builds the daemon's L{WakeClientProtocol} with the token of its current
    registration.

    @ivar registration: callable returning C{(jobId, token)}.
    """

    noisy = False

    def __init__(self, registration, onWake, clock):
        self.registration = registration
        self.onWake = onWake
        self.clock = clock

    def buildProtocol(self, addr):
        jobId, token = self.registration()
        p = WakeClientProtocol(jobId, token, self.onWake, self.clock)
        p.factory = self
        return p

"""
The cluster's shared store in Redis (C{jobmon-server --redis URL}).

Keys, under a prefix (default C{jobmon:}):

    job:<id>          hash: the job's record (L{JOB_FIELDS} but job_id)
    jobs              set: every job id
    owner:<sha1(DN)>  set: the ids of one owner's jobs (index of jobsOf)
    held:<server>     set: the ids of the jobs a server holds (index of heldBy)
    reserved:<id>     string, expires: the owner an id is reserved for
    alive:<server>    string, expires: a live server's info (JSON)
    servers           set: the ids of the servers seen (the dead are pruned
                      when listed)
    leader            string, expires: the id of the leading server
    value:<key>       string, expires: a large answer between servers
                      (value:answer:<id>), what became of a job that went
                      (value:gone:<id>)
    to:<server>       pub/sub channel: the messages for a server

Every change is one Lua script, which keeps the record and its indexes
consistent; every read of many values is a script that answers one JSON
string, so that a call is one round trip and one reply to parse.  Lists of
jobs are read in batches of L{BATCH} (C{SSCAN} in the script), never in one
reply.  The scripts compute some key names (a holder's C{alive:} key, the
indexes): they are for one Redis (or a Sentinel-managed master), not for a
Redis Cluster.

A lost connection makes every call fail at once with L{StoreUnavailable}
while it connects again; a call that gets no answer within
the reply timeout fails so too, and drops the connection.
"""

import hashlib
import json
import re

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.application.internet import backoffPolicy
from twisted.internet import defer, error, ssl, task
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from txredisapi import (
    BaseRedisProtocol,
    RedisError,
    RedisProtocol,
    ResponseError,
    SubscriberProtocol,
)
from zope.interface import implementer

from jobmon.server.cluster.redisscripts import (
    CLAIM,
    GET,
    HEARTBEAT,
    LEAD,
    LEAVE,
    REMOVE,
    SCAN_IDS,
    SCAN_JOBS,
    SERVERS,
    TAKE,
    UPDATE,
)
from jobmon.server.cluster.store import IClusterStore, StoreUnavailable

BATCH = 1000
"""How many jobs one reply carries at most when listing them."""

REPLY_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0
KEEPALIVE = 10.0

_RESERVED_FIELDS = ("owner", "server", "job_id")


class StoreRefused(StoreUnavailable):
    """
    The server cannot use the Redis it was given (unreachable, refused
    the credentials, not TLS...): the message says why, for the site admin.
    """


def _milliseconds(seconds):
    return max(1, int(round(seconds * 1000)))


def _flat(fields, skip=()):
    out = []
    for name, value in fields.items():
        if name not in skip:
            out += [name, value]
    return out


def ownerKey(prefix, owner):
    """
    @return: the key of the set of C{owner}'s job ids.
    """
    return prefix + "owner:" + hashlib.sha1(owner.encode("utf-8")).hexdigest()


def tlsOptions(target):
    """
    @return: the client TLS options for C{target}: its CA bundle, or the
        system's trust store; the host name is verified.
    """
    if target.ca is not None:
        with open(target.ca, "rb") as f:
            pem = f.read()
        marker = b"-----END CERTIFICATE-----"
        certificates = [ssl.Certificate.loadPEM(block + marker)
                        for block in pem.split(marker) if b"-----BEGIN" in block]
        if not certificates:
            raise ValueError("no certificate in %s" % (target.ca,))
        trust = ssl.trustRootFromCertificates(certificates)
    else:
        trust = ssl.platformTrust()
    return ssl.optionsForClientTLS(target.host, trustRoot=trust)


def _endpoint(reactor, target, timeout):
    endpoint = HostnameEndpoint(reactor, target.host, target.port, timeout=timeout)
    if target.tls:
        endpoint = wrapClientTLS(tlsOptions(target), endpoint)
    return endpoint


def _buildCommand(self, *args, **kwargs):
    """
    Encode a command, as C{BaseRedisProtocol._build_command} does but in a
    fifth of the time (it is most of the cost of a call).
    """
    parts = [b"*%d\r\n" % (len(args),)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % (arg,)
        elif not isinstance(arg, bytes):
            arg = self._encode_value(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _AtOnce:
    """
    Parse everything a read brought in the turn of the reactor that read
    it.  txredisapi's parser hands what follows each bulk string to the
    next turn (its C{setLineMode} pauses and calls C{dataReceived} again
    with C{callLater(0)}): a message of three bulk strings took three turns,
    each behind whatever else the reactor had to do, and a read holding many
    pipelined replies one turn per reply.  Here the rest is parsed at once,
    in a loop rather than recursively (a read may hold thousands of
    replies).
    """

    _rest = None

    def setLineMode(self, extra=b""):
        self.line_mode = 1
        if extra:
            self._rest = extra

    def dataReceived(self, data, unpause=False):
        while data:
            why = super().dataReceived(data)
            if why or (self.transport is not None and self.transport.disconnecting):
                self._rest = None
                return why
            data, self._rest = self._rest, None


class _CommandProtocol(_AtOnce, RedisProtocol):
    """
    A connection for commands: tells its L{_Link} when it is lost.

    txredisapi parses replies in Python (L{_AtOnce} keeps it from putting
    off replies to later turns of the reactor), or with hiredis' C parser
    where a site installed hiredis (its C{RedisProtocol} is then
    C{HiredisProtocol}); side by side, the two made no difference to a
    routed query that the machine's noise did not hide (BENCHMARKS.md), so
    hiredis is not required.
    """

    link = None
    lostReason = None
    _build_command = _buildCommand

    def itself(self):
        return self

    def connectionMade(self):
        keepAlive = getattr(self.transport, "setTcpKeepAlive", None)
        if keepAlive is not None:
            keepAlive(1)
        # Commands and messages are small writes each waiting for an
        # answer: Nagle's algorithm would hold one back until the previous
        # one is acknowledged (as redis-py and hiredis, no delay).
        noDelay = getattr(self.transport, "setTcpNoDelay", None)
        if noDelay is not None:
            noDelay(True)
        return BaseRedisProtocol.connectionMade(self)

    def connectionLost(self, why):
        self.lostReason = why
        BaseRedisProtocol.connectionLost(self, why)
        if self.link is not None:
            self.link.lost(self)


class _SubscriberProtocol(_AtOnce, SubscriberProtocol):
    """
    The connection that receives a store's messages.
    """

    link = None
    store = None
    lostReason = None
    _build_command = _buildCommand

    def itself(self):
        return self

    connectionMade = _CommandProtocol.connectionMade

    def messageReceived(self, pattern, channel, message):
        self.store._message(channel, message)

    def connectionLost(self, why):
        self.lostReason = why
        SubscriberProtocol.connectionLost(self, why)
        if self.link is not None:
            self.link.lost(self)


class _Link:
    """
    Keeps one connection to Redis up: connects, logs in (C{hello}), and
    connects again after a failure or a loss, after C{retryPolicy(n)}
    seconds for the Nth attempt in a row.

    @ivar protocol: the connection ready for use, or L{None}.
    """

    log = Logger()

    def __init__(self, reactor, endpoint, factory, hello, retryPolicy, ready=None,
                 target=None):
        self._ready = ready
        self._target = target
        self._reactor = reactor
        self._endpoint = endpoint
        self._factory = factory
        self._hello = hello
        self._retryPolicy = retryPolicy
        self.protocol = None
        self._attempting = None
        self._retry = None
        self._failures = 0
        self._stopped = False
        self._firstAttempt = []
        self._closing = []

    def start(self):
        """
        Start connecting.

        @return: a L{Deferred} that fires when connected, or fails with
            the failure of the first attempt (connecting goes on).
        """
        d = defer.Deferred()
        self._firstAttempt.append(d)
        self._attempt()
        return d

    def _attempt(self):
        self._retry = None
        if self._stopped:
            return
        connecting = self._endpoint.connect(self._factory)
        self._attempting = connecting
        connected = []

        def hello(proxy):
            protocol = proxy.itself() if hasattr(proxy, "itself") else proxy
            connected.append(protocol)
            protocol.link = self
            return self._hello(protocol).addCallback(lambda _: protocol)

        def ready(protocol):
            self._attempting = None
            if self._stopped or not protocol.connected:
                protocol.transport.abortConnection()
                return
            self._failures = 0
            self.protocol = protocol
            self._tell(protocol)
            if self._ready is not None:
                try:
                    self._ready(protocol)
                except Exception:
                    self.log.failure("after connecting to Redis")

        def failed(failure):
            self._attempting = None
            for protocol in connected:
                why = protocol.lostReason
                if why is not None and failure.check(RedisError) and not why.check(
                        error.ConnectionDone, error.ConnectionLost):
                    # The reason the connection was lost (TLS...) says more.
                    failure = why
                protocol.link = None
                protocol.transport.abortConnection()
            self._tell(failure)
            if not failure.check(defer.CancelledError):
                self._failures += 1
                if self._failures == 1 and self._target is not None:
                    self.log.warn("Redis: {why}; trying again", why=explain(self._target, failure))
                self._later()

        connecting.addCallback(hello).addCallbacks(ready, failed)

    def _tell(self, result):
        waiting, self._firstAttempt = self._firstAttempt, []
        for d in waiting:
            d.callback(result) if not isinstance(result, Failure) else d.errback(result)

    def _later(self):
        if not self._stopped and self._retry is None:
            delay = self._retryPolicy(max(1, self._failures))
            self._retry = self._reactor.callLater(delay, self._attempt)

    def lost(self, protocol):
        """
        C{protocol}'s connection is lost: connect again.
        """
        if protocol is self.protocol:
            self.protocol = None
            if self._target is not None:
                self.log.warn("lost the connection to Redis at {redis}; connecting again",
                              redis=self._target.address())
            self._later()
        closing, self._closing = self._closing, []
        for d in closing:
            d.callback(None)

    def stop(self):
        """
        Stop connecting and close the connection.

        @return: a L{Deferred} that fires when it is closed.
        """
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempting is not None:
            self._attempting.cancel()
        protocol, self.protocol = self.protocol, None
        if protocol is None or not protocol.connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self._closing.append(d)
        protocol.transport.loseConnection()
        return d


class _Factory(Factory):
    def __init__(self, store, protocolClass):
        self.store = store
        self.protocolClass = protocolClass

    def buildProtocol(self, addr):
        p = self.protocolClass(charset="utf-8", convertNumbers=False)
        p.callLater = self.store._reactor.callLater
        p.factory = self
        p.store = self.store
        return p


@implementer(IClusterStore)
class RedisStore:
    """
    An L{IClusterStore} in Redis; see the module's docstring for the keys.
    Made by L{connectStore}.
    """

    log = Logger()

    def __init__(self, reactor, target, prefix="jobmon:", timeout=REPLY_TIMEOUT,
                 connectTimeout=CONNECT_TIMEOUT, retryPolicy=None, keepalive=KEEPALIVE):
        """
        @param reactor: the reactor.
        @param target: a L{jobmon.server.cluster.redisurl.RedisTarget}.
        @param prefix: the prefix of every key and channel.
        @param timeout: seconds a call waits for its answer.
        @param connectTimeout: seconds a connection attempt may take.
        @param retryPolicy: seconds to wait before the Nth attempt to
            connect again (default: from 0.1 s up to 2 s).
        @param keepalive: seconds between the C{PING}s on the connection
            that receives messages, which otherwise would not notice a
            Redis gone silently (a dead host, a firewall's dropped state).
        """
        self._reactor = reactor
        self._target = target
        self._prefix = prefix
        self._timeout = timeout
        self._endpoint = _endpoint(reactor, target, connectTimeout)
        self._retryPolicy = retryPolicy or backoffPolicy(
            initialDelay=0.1, maxDelay=2.0, factor=2.0)
        self._link = _Link(reactor, self._endpoint, _Factory(self, _CommandProtocol),
                           self._ready, self._retryPolicy, target=target)
        self._subscriber = None
        self._keepalive = task.LoopingCall(self._ping)
        self._keepalive.clock = reactor
        self._keepaliveInterval = keepalive
        self._listeners = {}
        self._listened = False

    def __repr__(self):
        return "<RedisStore %s>" % (self._target,)

    def start(self):
        """
        Start connecting.

        @return: a L{Deferred} that fires when connected, or fails with
            the first attempt's failure (connecting goes on).
        """
        return self._link.start()

    # The connections.

    def _execute(self, protocol, *command, method=None):
        """
        Run one command (or a script, with C{method}) with the timeout.
        """
        out = defer.Deferred()

        def timedOut():
            out.errback(StoreUnavailable("Redis at %s did not answer within %g s" % (
                self._target.address(), self._timeout)))
            protocol.transport.abortConnection()

        timer = self._reactor.callLater(self._timeout, timedOut)

        def done(result):
            if timer.active():
                timer.cancel()
            if out.called:
                return None
            if isinstance(result, Failure):
                out.errback(self._unavailable(result))
            else:
                out.callback(result)

        try:
            if method is not None:
                d = method(*command)
            else:
                d = protocol.execute_command(*command, apply_timeout=False)
        except Exception:
            d = defer.fail()
        d.addBoth(done)
        return out

    def _unavailable(self, failure):
        if failure.check(ResponseError):
            return StoreUnavailable("Redis at %s answered: %s" % (
                self._target.address(), failure.value))
        if failure.check(RedisError, error.ConnectionLost, error.ConnectionDone):
            return StoreUnavailable("lost the connection to Redis at %s" % (
                self._target.address(),))
        return failure

    def _hello(self, protocol):
        """
        Log in and choose the database on a new connection.
        """

        async def hello():
            target = self._target
            if target.password is not None:
                if target.username is not None:
                    await self._login(protocol, "AUTH", target.username, target.password)
                else:
                    await self._login(protocol, "AUTH", target.password)
            if target.db:
                await self._login(protocol, "SELECT", target.db)
            await self._login(protocol, "PING")

        return defer.Deferred.fromCoroutine(hello())

    def _login(self, protocol, *command):
        out = defer.Deferred()

        def timedOut():
            out.errback(error.TimeoutError("no answer to the login within %g s" % (
                self._timeout,)))
            protocol.transport.abortConnection()

        timer = self._reactor.callLater(self._timeout, timedOut)

        def done(result):
            if timer.active():
                timer.cancel()
            if not out.called:
                out.callback(result) if not isinstance(result, Failure) else out.errback(result)

        try:
            d = protocol.execute_command(*command, apply_timeout=False)
        except Exception:
            d = defer.fail()
        d.addBoth(done)
        return out

    def _ready(self, protocol):
        def ready(_):
            self.log.info("connected to Redis at {redis}", redis=self._target.redacted())

        return self._hello(protocol).addCallback(ready)

    def _call(self, *command):
        protocol = self._link.protocol
        if protocol is None:
            return defer.fail(StoreUnavailable("not connected to Redis at %s" % (
                self._target.address(),)))
        return self._execute(protocol, *command)

    def _script(self, script, keys, args):
        protocol = self._link.protocol
        if protocol is None:
            return defer.fail(StoreUnavailable("not connected to Redis at %s" % (
                self._target.address(),)))
        return self._execute(protocol, script, keys, args, method=protocol.eval)

    # The jobs.

    def _key(self, *parts):
        return self._prefix + ":".join(parts)

    def claimJob(self, jobId, owner, server, fields, replace=None):
        keys = [self._key("job", jobId), self._key("reserved", jobId), self._key("jobs"),
                ownerKey(self._prefix, owner)]
        args = [jobId, owner, server, replace if replace is not None else "",
                self._prefix] + _flat(fields, _RESERVED_FIELDS)

        def parse(reply):
            status, _, other = reply.partition("\n")
            return (status, other if status != "ok" else None)

        return self._script(CLAIM, keys, args).addCallback(parse)

    def updateJob(self, jobId, server, fields):
        args = [server, self._prefix, jobId] + _flat(fields, ("job_id",))
        return self._script(UPDATE, [self._key("job", jobId)], args).addCallback(bool)

    def removeJob(self, jobId, server, reserveFor=0):
        keys = [self._key("job", jobId), self._key("reserved", jobId), self._key("jobs")]
        ms = _milliseconds(reserveFor) if reserveFor > 0 else 0
        args = [server, ms, self._prefix, jobId]
        return self._script(REMOVE, keys, args).addCallback(bool)

    def getJob(self, jobId):
        d = self._script(GET, [self._key("job", jobId)], [self._prefix, jobId])
        return d.addCallback(lambda reply: None if reply is None else json.loads(reply))

    def _scan(self, script, key, args):
        """
        Read a whole set, one batch per call.

        @return: a L{Deferred} of the list of every batch's items.
        """

        async def scan():
            items = []
            cursor = "0"
            while True:
                reply = await self._script(script, [key], args + [cursor, str(BATCH)])
                cursor, batch = json.loads(reply)
                items += batch or []
                if str(cursor) == "0":
                    return items

        return defer.Deferred.fromCoroutine(scan())

    def _records(self, key):
        def unique(records):
            return list({r["job_id"]: r for r in records}.values())

        return self._scan(SCAN_JOBS, key, [self._prefix]).addCallback(unique)

    def jobsOf(self, owner):
        return self._records(ownerKey(self._prefix, owner))

    def ownsPrefix(self, owner, prefix):
        # SSCAN's MATCH filters in Redis: only matching ids come back, a
        # batch of the owner's set per call.
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
        key = ownerKey(self._prefix, owner)

        async def scan():
            cursor = "0"
            while True:
                reply = await self._call("SSCAN", key, cursor, "MATCH", pattern,
                                         "COUNT", str(BATCH))
                cursor, ids = reply[0], reply[1]
                if ids:
                    return True
                if str(cursor) == "0":
                    return False

        return defer.Deferred.fromCoroutine(scan())

    def allJobs(self):
        return self._records(self._key("jobs"))

    def heldBy(self, server):
        d = self._scan(SCAN_IDS, self._key("held", server), [])
        return d.addCallback(lambda ids: list(set(ids)))

    def reservedFor(self, jobId):
        return self._call("GET", self._key("reserved", jobId))

    # The servers.

    def heartbeat(self, server, info, ttl):
        keys = [self._key("alive", server), self._key("servers")]
        args = [server, json.dumps(info), _milliseconds(ttl)]
        return self._script(HEARTBEAT, keys, args).addCallback(lambda _: None)

    def servers(self):
        d = self._script(SERVERS, [self._key("servers")], [self._prefix])
        return d.addCallback(
            lambda reply: {s: json.loads(info) for s, info in (json.loads(reply) or {}).items()})

    def isAlive(self, server):
        return self._call("EXISTS", self._key("alive", server)).addCallback(bool)

    def leave(self, server):
        keys = [self._key("alive", server), self._key("servers"), self._key("leader")]
        return self._script(LEAVE, keys, [server]).addCallback(lambda _: None)

    def lead(self, server, ttl):
        d = self._script(LEAD, [self._key("leader")], [server, _milliseconds(ttl)])
        return d.addCallback(bool)

    # Values.

    def putValue(self, key, value, ttl):
        d = self._call("SET", self._key("value", key), value, "PX", _milliseconds(ttl))
        return d.addCallback(lambda _: None)

    def getValue(self, key, take=False):
        if take:
            return self._script(TAKE, [self._key("value", key)], [])
        return self._call("GET", self._key("value", key))

    # The messages.

    def send(self, server, message):
        d = self._call("PUBLISH", self._key("to", server), message)
        return d.addCallback(lambda receivers: int(receivers) > 0)

    def listen(self, server, received):
        channel = self._key("to", server)
        self._listeners[channel] = received
        if self._subscriber is None:
            self._subscriber = _Link(
                self._reactor, self._endpoint, _Factory(self, _SubscriberProtocol),
                self._subscribe, self._retryPolicy, ready=self._subscribed)
            d = self._subscriber.start()
            self._keepalive.start(self._keepaliveInterval, now=False)

            def failed(failure):
                # Still trying: reaching it later is reaching it again.
                self._listened = True
                raise StoreUnavailable("cannot listen on Redis at %s: %s" % (
                    self._target.address(), failure.getErrorMessage()))

            return d.addCallbacks(lambda _: None, failed)
        protocol = self._subscriber.protocol
        if protocol is None:
            # Subscribed when connected again.
            return defer.fail(StoreUnavailable("not connected to Redis at %s" % (
                self._target.address(),)))
        return self._execute(protocol, [channel], method=protocol.subscribe).addCallback(
            lambda _: None)

    def _subscribe(self, protocol):
        """
        Log in and subscribe to every channel listened to; then tell the
        listeners, unless it is the first time.
        """

        async def subscribe():
            await self._hello(protocol)
            for channel in list(self._listeners):
                await self._execute(protocol, [channel], method=protocol.subscribe)

        return defer.Deferred.fromCoroutine(subscribe())

    def _subscribed(self, protocol):
        if self._listened:
            for received in list(self._listeners.values()):
                received(None)
        self._listened = True

    def _ping(self):
        protocol = self._subscriber.protocol
        if protocol is not None:
            # On no answer, _execute drops the connection: it is made again.
            self._execute(protocol, "PING").addErrback(lambda _: None)

    def _message(self, channel, message):
        received = self._listeners.get(channel)
        if received is not None:
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            try:
                received(message)
            except Exception:
                self.log.failure("handling a message from Redis")

    def close(self):
        """
        Stop connecting and close the connections.

        @return: a L{Deferred} that fires when they are closed.
        """
        self._listeners.clear()
        if self._keepalive.running:
            self._keepalive.stop()
        stopping = [self._link.stop()]
        if self._subscriber is not None:
            stopping.append(self._subscriber.stop())
        return defer.gatherResults(stopping, consumeErrors=True).addCallback(lambda _: None)


def explain(target, failure):
    """
    @return: what a site admin should read when the server cannot use
        C{target}, from the C{failure} of connecting; never the password.
    """
    where = "Redis at %s" % (target.address(),)
    value = failure.value
    if failure.check(error.ConnectionRefusedError):
        text = "cannot reach %s: connection refused" % (where,)
    elif failure.check(error.DNSLookupError):
        text = "cannot reach %s: unknown host %s" % (where, target.host)
    elif failure.check(error.TimeoutError, defer.TimeoutError, defer.CancelledError):
        text = "cannot reach %s: no answer in time" % (where,)
        if target.tls:
            text += " (is it TLS? if not, give redis://)"
        else:
            text += " (if it speaks TLS, give rediss://)"
    elif failure.check(ResponseError):
        text = _explainReply(target, where, str(value))
    elif failure.check(VerificationError):
        text = ("%s: its TLS certificate is not for %s (give the name the certificate "
                "has in --redis)" % (where, target.host))
    elif failure.check(SSL.Error):
        reason = failure.getErrorMessage()
        if "certificate verify failed" in reason:
            text = ("%s: its TLS certificate is not trusted (give the CA that signed it "
                    "with ?ca=PATH): %s" % (where, reason))
        elif "wrong version number" in reason or "packet length" in reason or "record" in reason:
            text = "%s is not TLS (give redis://): %s" % (where, reason)
        else:
            text = "%s: TLS failed (is it TLS? its certificate and name?): %s" % (where, reason)
    elif failure.check(error.ConnectionLost, error.ConnectionDone, RedisError):
        if target.tls:
            text = "%s closed the connection (is it TLS? give redis:// if not)" % (where,)
        else:
            text = "%s closed the connection (if it speaks TLS, give rediss://)" % (where,)
    else:
        text = "cannot use %s: %s" % (where, failure.getErrorMessage())
    if target.password:
        text = text.replace(target.password, "***")
    return text


def _explainReply(target, where, reply):
    user = target.username or "default"
    if reply.startswith("NOAUTH"):
        return ("%s requires a password (NOAUTH): give it in --redis "
                "redis://:PASSWORD@%s/%d" % (where, target.address(), target.db))
    if reply.startswith("WRONGPASS") or "invalid password" in reply:
        return "%s refused the password of user %s (WRONGPASS)" % (where, user)
    if "without any password configured" in reply:
        return ("%s has no password set but was given one: remove it from --redis, "
                "or set requirepass on Redis" % (where,))
    if "DB index is out of range" in reply:
        return "%s has no database %d (see its 'databases' setting)" % (where, target.db)
    if reply.startswith("NOPERM"):
        return "%s does not let user %s run a needed command: %s" % (where, user, reply)
    if reply.startswith("LOADING"):
        return "%s is loading its data: try again later" % (where,)
    return "%s refused the connection: %s" % (where, reply)


def connectStore(reactor, target, timeout=5.0, **options):
    """
    Connect to the cluster's Redis and check that it can be used (it
    answers, accepts the credentials and the database).

    @param reactor: the reactor.
    @param target: a L{jobmon.server.cluster.redisurl.RedisTarget}.
    @param timeout: seconds the check may take.
    @param options: more arguments of L{RedisStore}.
    @return: a L{Deferred} of a connected L{RedisStore}, or a failure with
        L{StoreRefused} saying why it cannot be used.
    """
    try:
        store = RedisStore(reactor, target, **options)
    except (OSError, ValueError, SSL.Error) as e:
        return defer.fail(StoreRefused("cannot use Redis at %s: TLS setup: %s" % (
            target.address(), e)))
    d = store.start()
    d.addTimeout(timeout, reactor)

    def refused(failure):
        reason = explain(target, failure)
        return store.close().addBoth(lambda _: Failure(StoreRefused(reason)))

    return d.addCallbacks(lambda _: store, refused)

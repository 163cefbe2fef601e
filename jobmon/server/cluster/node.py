"""
One server's place in a cluster: its heartbeat, which servers are alive,
whether the shared store can be reached, who leads the cleanup, and calls
from server to server over the store's messages.

A call is a JSON message C{{"k": kind, "o": origin, "r": id, ...}}; its
answer C{{"k": "answer", "r": id, "v": value}} or C{{"k": "answer", "r": id,
"e": [code, message], "retry": bool}}.  Handlers are registered by kind
(L{ClusterNode.handle}); each returns a value or a L{Deferred} of one, or
raises L{JobMonError}.
"""

import json
import os
import secrets
import socket

from twisted.internet import defer, task
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jobmon.errors import INTERNAL, UNAVAILABLE, JobMonError
from jobmon.server.cluster.store import StoreUnavailable

LARGE = 256 * 1024
"""Answers larger than this (bytes of JSON) go through a value in the store,
not in the message."""

LARGE_TTL = 60.0
"""Seconds a large answer is kept for its caller to fetch."""

ANSWER_RETRY = 0.5
"""Seconds between attempts to send an answer while the store cannot be
reached."""


def newServerId():
    """
    A name for this server in the cluster, new at each start: its host,
    process and a random part (a restarted server is another server).
    """
    host = socket.gethostname().split(".")[0] or "server"
    return "{}-{}-{}".format(host, os.getpid(), secrets.token_hex(3))


class Retry(JobMonError):
    """
    The holder cannot serve the call now (its job moved, it is stopping):
    the caller may try again where the job is now.
    """


class HolderLost(JobMonError):
    """
    The server a call went to stopped being alive before it answered.
    """


class ClusterNode:
    """
    This server in the cluster.

    @ivar serverId: this server's name in the cluster.
    @ivar store: the L{jobmon.server.cluster.store.IClusterStore}.
    @ivar available: whether the store answered the last heartbeat.
    @ivar leading: whether this server leads the cleanup now.
    @ivar live: the live servers at the last heartbeat, C{{id: info}}.
    @ivar beat: seconds between heartbeats.
    @ivar ttl: seconds a heartbeat lasts: a server silent that long is
        dead to the others.
    @ivar info: a callable returning this server's info for the others
        (a dict of strings and numbers).
    @ivar onReconnect: called (no arguments) when the store is reached
        again after it was lost, and when this node starts: the server
        writes its records again.
    """

    log = Logger()

    def __init__(self, clock, store, serverId=None, beat=1.0, ttl=5.0, info=None,
                 callTimeout=5.0):
        self.clock = clock
        self.store = store
        self.serverId = serverId or newServerId()
        self.beat = beat
        self.ttl = ttl
        self.callTimeout = callTimeout
        self.info = info or dict
        self.available = False
        self.leading = False
        self.live = {}
        self.lostSince = None
        self.lostWhy = "not connected yet"
        self.onReconnect = lambda: None
        self.onBeat = lambda: None
        self._handlers = {}
        self._calls = {}
        self._serving = {}
        self._stale = True
        self._stopped = False
        self._cleaning = False
        self._loop = LoopingCall(self._heartbeat)
        self._loop.clock = clock

    # Life

    def start(self):
        """
        Listen for messages and start the heartbeat.

        @return: a L{Deferred} that fires once the first heartbeat is done
            (whether the store answered or not).
        """
        d = defer.maybeDeferred(self.store.listen, self.serverId, self._received)
        d.addErrback(lambda f: self._lost(f))

        def started(_):
            self._loop.start(self.beat, now=False)
            return self._heartbeat()

        return d.addCallback(started)

    @defer.inlineCallbacks
    def stop(self):
        """
        Stop the heartbeat, fail pending calls, and leave the cluster at
        once (the others take over this server's jobs without waiting for
        its heartbeat to lapse).
        """
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        for call in list(self._calls.values()):
            call["d"].errback(JobMonError(UNAVAILABLE, "the server is shutting down"))
        self._calls.clear()
        try:
            yield self.store.leave(self.serverId)
        except Exception:
            pass
        self.store.close()

    @defer.inlineCallbacks
    def _heartbeat(self):
        # A heartbeat in flight when the server stops writes nothing after
        # it left: a lead taken again would stop the others from leading
        # (and waking its UDP jobs) until it lapsed.
        try:
            yield self.store.heartbeat(self.serverId, self.info(), self.ttl)
            if self._stopped:
                return
            self.live = yield self.store.servers()
            if self._stopped:
                return
            self.leading = yield self.store.lead(self.serverId, self.ttl)
        except StoreUnavailable as e:
            if not self._stopped:
                self._lost(e)
            return
        except Exception:
            self.log.failure("cluster heartbeat failed")
            return
        if self._stopped:
            return
        if not self.available or self._stale:
            if self.lostSince is not None:
                self.log.info(
                    "the cluster's store is reachable again after {seconds:.1f} s; "
                    "writing this server's jobs to it again",
                    seconds=self.clock.seconds() - self.lostSince,
                )
            self.available = True
            self.lostSince = None
            self._stale = False
            try:
                yield self.onReconnect()
            except Exception:
                self.log.failure("cannot write this server's jobs to the cluster's store")
                self._stale = True
        self._failCallsToDead()
        self._cleanUp()

    def _cleanUp(self):
        """
        Run C{onBeat} (the leader's sweep), unless its last run is still
        going.  The heartbeat does not wait for it: a sweep over many jobs
        can take longer than L{ttl}, and a heartbeat held back that long
        would make this server look dead to the others.
        """
        if self._cleaning:
            return
        self._cleaning = True
        d = defer.maybeDeferred(self.onBeat)

        def done(result):
            self._cleaning = False
            if isinstance(result, Failure) and self._loop.running:
                self.log.failure("cluster cleanup failed", result)

        d.addBoth(done)

    def _lost(self, why):
        """
        The store cannot be reached: say it once, go on with this server's
        own jobs.
        """
        if self.available or self.lostSince is None:
            self.lostSince = self.clock.seconds()
            self.log.warn(
                "the cluster's store cannot be reached ({why}); answering for this "
                "server's own jobs only until it is back",
                why=getattr(why, "value", why),
            )
        self.available = False
        self.leading = False
        self._stale = True
        self.lostWhy = str(getattr(why, "value", why))

    def state(self):
        """
        What the metrics say of the cluster, as this server last saw it.
        """
        return {
            "store_up": int(self.available),
            "servers": len(self.live),
            "jobs": sum(int(info.get("jobs", 0)) for info in self.live.values()
                        if isinstance(info, dict)),
            "leader": int(self.leading),
            "serving": self.serving,
        }

    def problems(self, where):
        """
        What C{/healthz} says is wrong with this server's place in the
        cluster: one line while the store (C{where}) cannot be reached.
        """
        if self.available:
            return []
        since = self.lostSince
        return ["cannot reach the cluster's store {}{}: {}; answering for this server's "
                "own jobs only".format(
                    where, " for {:.0f} s".format(self.clock.seconds() - since)
                    if since is not None else "", self.lostWhy)]

    def markStale(self):
        """
        Something of this server's failed to reach the store: write all of
        its jobs again at the next heartbeat that reaches it.
        """
        self._stale = True

    def isAlive(self, server):
        """
        Whether C{server} was alive at the last heartbeat (this server is).
        """
        return server == self.serverId or server in self.live

    # Calls between servers

    def handle(self, kind, handler):
        """
        Answer calls of C{kind} with C{handler(message)}.
        """
        self._handlers[kind] = handler

    def call(self, server, kind, timeout=None, **fields):
        """
        Call C{server}: a L{Deferred} of its answer's value, failed with
        the L{JobMonError} it raised (a L{Retry} if it may be tried again
        elsewhere), a L{HolderLost} if C{server} dies first, or a timeout.
        """
        callId = secrets.token_hex(8)
        message = dict(fields, k=kind, o=self.serverId, r=callId)

        def cancel(d):
            if self._calls.pop(callId, None) is not None:
                # Nobody waits for the answer: the callee may stop working.
                self.store.send(server, json.dumps(
                    {"k": "cancel", "o": self.serverId, "r": callId})).addErrback(
                        lambda f: None)

        d = defer.Deferred(cancel)
        self._calls[callId] = {"d": d, "server": server}
        timeout = self.callTimeout if timeout is None else timeout

        def timedOut(result, t):
            raise JobMonError(
                UNAVAILABLE, "server {} did not answer within {:g} s".format(server, t))

        d.addTimeout(timeout, self.clock, onTimeoutCancel=timedOut)
        sent = self.store.send(server, json.dumps(message))

        def notSent(failure):
            call = self._calls.pop(callId, None)
            if call is None:
                return
            if failure.check(StoreUnavailable):
                call["d"].errback(JobMonError(
                    UNAVAILABLE, "the cluster's store cannot be reached: {}".format(
                        failure.value)))
            else:
                call["d"].errback(failure)

        def delivered(received):
            if not received and callId in self._calls:
                call = self._calls.pop(callId)
                call["d"].errback(HolderLost(
                    UNAVAILABLE, "server {} is not listening".format(server)))

        sent.addCallbacks(delivered, notSent)
        return d

    def cancelCall(self, d):
        """
        Forget a call whose answer is no longer wanted.
        """
        for callId, call in list(self._calls.items()):
            if call["d"] is d:
                del self._calls[callId]

    def _failCallsToDead(self):
        for callId, call in list(self._calls.items()):
            if not self.isAlive(call["server"]):
                del self._calls[callId]
                call["d"].errback(HolderLost(
                    UNAVAILABLE, "server {} stopped".format(call["server"])))

    def _failCallsUnheard(self):
        """
        This server listens again after it lost the store: the answers
        sent to it meanwhile are lost (nobody listened), so the calls that
        wait for them are failed, to be tried again (L{Retry}), rather than
        left to time out.
        """
        for callId, call in list(self._calls.items()):
            del self._calls[callId]
            call["d"].errback(Retry(
                UNAVAILABLE, "the answer of server {} may have been lost while this server "
                "reconnected to the cluster's store".format(call["server"])))

    def _received(self, raw):
        if raw is None:
            # The store was reached again: write everything again at the
            # next heartbeat.
            self._stale = True
            self._failCallsUnheard()
            return
        try:
            message = json.loads(raw)
            kind = message["k"]
        except (ValueError, TypeError, KeyError):
            self.log.warn("unreadable cluster message ignored: {raw!r}", raw=str(raw)[:200])
            return
        if kind == "answer":
            if "at" in message and message.get("r") in self._calls:
                # A large answer, kept in the store: fetched from there.
                d = self.store.getValue(message["at"], take=True)
                d.addCallbacks(self._fetched, self._notFetched,
                               callbackArgs=(message,), errbackArgs=(message,))
                return
            call = self._calls.pop(message.get("r"), None)
            if call is None:
                return
            if "e" in message:
                code, text = message["e"]
                error = (Retry if message.get("retry") else JobMonError)(code, text)
                call["d"].errback(error)
            else:
                call["d"].callback(message.get("v"))
            return
        key = (message.get("o"), message.get("r"))
        if kind == "cancel":
            serving = self._serving.pop(key, None)
            if serving is not None:
                serving.cancel()
            return
        handler = self._handlers.get(kind)
        if handler is None:
            self._answer(message, error=JobMonError(INTERNAL, "unknown call " + repr(kind)))
            return
        d = defer.maybeDeferred(handler, message)
        if not d.called:
            self._serving[key] = d

            def served(result):
                self._serving.pop(key, None)
                return result

            d.addBoth(served)
        d.addCallbacks(lambda value: self._answer(message, value=value),
                       lambda f: self._answer(message, failure=f))

    def _fetched(self, raw, message):
        if raw is None:
            return self._notFetched(None, message)
        try:
            answer = json.loads(raw)
        except ValueError:
            return self._notFetched(None, message)
        answer["r"] = message["r"]
        self._received(json.dumps(answer))

    def _notFetched(self, failure, message):
        call = self._calls.pop(message.get("r"), None)
        if call is not None:
            call["d"].errback(JobMonError(UNAVAILABLE, "the answer of server {} was lost "
                                          "on its way".format(message.get("o", "?"))))

    @property
    def serving(self):
        """
        How many calls of other servers this server is working on.
        """
        return len(self._serving)

    def _answer(self, message, value=None, error=None, failure=None):
        origin, callId = message.get("o"), message.get("r")
        if not isinstance(origin, str) or callId is None:
            return
        if failure is not None:
            if failure.check(defer.CancelledError):
                return  # the caller gave up and was told nothing is coming
            error = failure.value
            if not isinstance(error, JobMonError):
                self.log.failure("cluster call {kind} failed", failure,
                                 kind=message.get("k"))
                error = JobMonError(INTERNAL, "internal error on server {}".format(
                    self.serverId))
        answer = {"k": "answer", "r": callId}
        if error is not None:
            answer["e"] = [error.code, error.message]
            answer["retry"] = isinstance(error, Retry)
        else:
            answer["v"] = value
        data = json.dumps(answer)

        def send():
            if len(data) <= LARGE:
                return self.store.send(origin, data)
            # Kept in the store, the message says where: Redis disconnects
            # a subscriber that falls too far behind (32 MiB by default).
            key = "answer:{}:{}".format(origin, callId)
            d = self.store.putValue(key, data, LARGE_TTL)
            return d.addCallback(lambda _: self.store.send(origin, json.dumps(
                {"k": "answer", "r": callId, "o": self.serverId, "at": key})))

        # The store may be lost for a moment (its connection made again):
        # the answer is sent again for as long as the caller waits for it.
        try:
            patience = max(0.0, float(message.get("t") or 0)) + self.callTimeout
        except (TypeError, ValueError):
            patience = self.callTimeout
        deadline = self.clock.seconds() + patience

        def failed(f):
            if (f.check(StoreUnavailable) and not self._stopped
                    and self.clock.seconds() + ANSWER_RETRY < deadline):
                return task.deferLater(self.clock, ANSWER_RETRY, attempt)
            self.log.warn("cannot answer server {origin}: {why}", origin=origin, why=f.value)

        def attempt():
            return defer.maybeDeferred(send).addErrback(failed)

        attempt()

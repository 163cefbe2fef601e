"""
Tests for L{jobmon.server.cluster.node}: heartbeats, the store lost and
found again, and calls between servers.
"""

import json

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.cluster.node import ClusterNode, HolderLost, Retry
from jobmon.server.cluster.store import MemoryStore, StoreUnavailable, UnreachableStore


class NodeSetup(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = MemoryStore(self.clock)
        self.a = ClusterNode(self.clock, self.store, serverId="A")
        self.b = ClusterNode(self.clock, self.store, serverId="B")
        self.a.start()
        self.b.start()
        self.clock.advance(1)


class NodeTestCase(NodeSetup):
    def test_liveAndLeader(self):
        """
        Each node sees both alive; exactly one leads.
        """
        self.assertEqual(set(self.a.live), {"A", "B"})
        self.assertEqual(self.a.leading + self.b.leading, 1)

    def test_call(self):
        """
        A call reaches the other node's handler and its value comes back.
        """
        self.b.handle("echo", lambda m: {"got": m["x"]})
        d = self.a.call("B", "echo", x=3)
        self.assertEqual(self.successResultOf(d), {"got": 3})

    def test_callErrors(self):
        """
        A L{JobMonError} comes back with its code; a L{Retry} as a Retry;
        anything else as an internal error that names the server.
        """
        self.b.handle("no", lambda m: (_ for _ in ()).throw(JobMonError(403, "nope")))
        self.b.handle("later", lambda m: (_ for _ in ()).throw(Retry(404, "moved")))
        self.b.handle("bug", lambda m: 1 / 0)
        f = self.failureResultOf(self.a.call("B", "no"), JobMonError)
        self.assertEqual((f.value.code, f.value.message), (403, "nope"))
        self.failureResultOf(self.a.call("B", "later"), Retry)
        f = self.failureResultOf(self.a.call("B", "bug"), JobMonError)
        self.assertEqual(f.value.code, errors.INTERNAL)
        self.assertIn("B", f.value.message)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_callNobodyListening(self):
        """
        A call to a server nobody listens for fails at once.
        """
        self.failureResultOf(self.a.call("Z", "echo"), HolderLost)

    def test_callTimesOut(self):
        """
        A call whose answer does not come fails after its timeout.
        """
        self.b.handle("slow", lambda m: defer.Deferred())
        d = self.a.call("B", "slow", timeout=2)
        self.assertNoResult(d)
        self.clock.advance(2.5)
        f = self.failureResultOf(d, JobMonError)
        self.assertEqual(f.value.code, errors.UNAVAILABLE)

    def test_callToDeadServer(self):
        """
        A call to a server that dies before it answers fails with
        L{HolderLost} once its heartbeat lapses.
        """
        self.b.handle("slow", lambda m: defer.Deferred())
        d = self.a.call("B", "slow", timeout=30)
        self.b._loop.stop()
        self.clock.advance(6)
        self.failureResultOf(d, HolderLost)

    def test_cancelReachesCallee(self):
        """
        Cancelling a call cancels the callee's work.
        """
        cancelled = []
        work = defer.Deferred(cancelled.append)
        self.b.handle("slow", lambda m: work)
        d = self.a.call("B", "slow", timeout=30)
        self.assertEqual(self.b.serving, 1)
        d.cancel()
        self.assertEqual(cancelled, [work])
        self.assertEqual(self.b.serving, 0)
        self.failureResultOf(d, defer.CancelledError)

    def test_unreadableMessage(self):
        """
        A message that is not JSON is logged and ignored.
        """
        self.store.send("A", "{not json")
        self.store.send("A", json.dumps({"k": "answer", "r": "nobody"}))

    def test_storeLostAndFound(self):
        """
        A store that cannot be reached makes the node unavailable (logged
        once); back, it is available again and the server writes its jobs
        again.
        """
        written = []
        self.a.onReconnect = lambda: written.append(self.clock.seconds())
        self.store.down = True
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertFalse(self.a.available)
        self.assertFalse(self.a.leading)
        self.assertEqual(self.a.lostSince, 2.0)
        self.store.down = False
        self.clock.advance(1)
        self.assertTrue(self.a.available)
        self.assertEqual(written, [4.0])

    def test_startWithoutStore(self):
        """
        A node whose store is not connected yet is unavailable, and says
        why.
        """
        node = ClusterNode(self.clock, UnreachableStore("not connected yet"), serverId="C")
        node.start()
        self.assertFalse(node.available)
        self.assertIn("not connected", node.lostWhy)

    def test_stopLeaves(self):
        """
        A stopped node leaves at once: the others do not wait for its
        heartbeat to lapse, and another leads.
        """
        leader, other = (self.a, self.b) if self.a.leading else (self.b, self.a)
        self.successResultOf(leader.stop())
        self.clock.advance(1)
        self.assertNotIn(leader.serverId, other.live)
        self.assertTrue(other.leading)


class LargeAnswerTests(NodeSetup):
    def test_largeAnswer(self):
        """
        An answer larger than L{LARGE} is kept in the store and fetched by
        the caller (once: it is removed); the message is small.
        """
        from jobmon.server.cluster.node import LARGE
        big = "x" * (LARGE + 10)
        self.b.handle("big", lambda m: big)
        d = self.a.call("B", "big")
        self.assertEqual(self.successResultOf(d), big)
        self.assertLess(max(len(m) for _, m in self.store.sent), 1000)
        self.assertEqual(self.store._values, {})

    def test_largeAnswerLost(self):
        """
        A large answer that expired before it was fetched: the call fails
        saying so.
        """
        from jobmon.server.cluster.node import LARGE
        self.b.handle("big", lambda m: "x" * (LARGE + 10))
        real = self.store.getValue
        self.store.getValue = lambda key, take=False: defer.succeed(None)
        f = self.failureResultOf(self.a.call("B", "big"), JobMonError)
        self.assertIn("lost", f.value.message)
        self.store.getValue = real


class AnswerRetryTests(NodeSetup):
    def failSends(self, to):
        """
        Make the store fail every message to C{to}, as when the sender's
        connection to Redis is being made again; return a callable that
        ends it.
        """
        real = self.store.send

        def send(server, message):
            if server == to:
                return defer.fail(StoreUnavailable("not connected to Redis"))
            return real(server, message)

        self.store.send = send
        return lambda: setattr(self.store, "send", real)

    def test_answerSentAgain(self):
        """
        An answer that cannot be sent (the store lost for a moment) is sent
        again once it can, while its caller waits.
        """
        answer = defer.Deferred()
        self.b.handle("slow", lambda m: answer)
        d = self.a.call("B", "slow", timeout=10, t=9)
        restore = self.failSends("A")
        answer.callback("done")
        self.clock.advance(3)
        self.assertNoResult(d)
        restore()
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), "done")

    def test_answerGivenUp(self):
        """
        An answer is not tried again once its caller no longer waits, nor
        once the server stops.
        """
        self.b.handle("now", lambda m: "done")
        restore = self.failSends("A")
        attempts = []
        failing = self.store.send
        self.store.send = lambda server, message: attempts.append(server) or failing(
            server, message)
        d = self.a.call("B", "now", timeout=2)
        self.clock.pump([0.5] * 5)
        self.failureResultOf(d, JobMonError)
        self.clock.pump([0.5] * 20)
        # Sent at once, then every ANSWER_RETRY for callTimeout (5 s).
        self.assertEqual(attempts.count("A"), 10)
        self.b.stop()
        d = self.a.call("B", "now", timeout=2)
        self.clock.pump([0.5] * 20)
        self.failureResultOf(d, JobMonError)
        self.assertEqual(attempts.count("A"), 11)
        restore()


class StopDuringHeartbeatTests(SynchronousTestCase):
    def test_noLeadAfterLeaving(self):
        """
        A heartbeat in flight when the node stops writes nothing after it
        left: the lead is free for the others at once, and the node is not
        alive again.
        """
        clock = Clock()
        store = MemoryStore(clock)
        node = ClusterNode(clock, store, serverId="A")
        node.start()
        self.assertTrue(node.leading)
        held = []
        real = store.servers
        store.servers = lambda: held.append(defer.Deferred()) or held[-1]
        clock.advance(1)
        [listing] = held
        node.stop()
        self.assertIsNone(store._leader)
        store.servers = real
        listing.callback(self.successResultOf(real()))
        self.assertIsNone(store._leader)
        self.assertNotIn("A", store._alive)
        other = ClusterNode(clock, store, serverId="B")
        other.start()
        self.assertTrue(other.leading)

"""
The semantics of L{IClusterStore}, checked against L{MemoryStore} (with a
L{Clock}) and against L{RedisStore} with a real C{redis-server}
(L{tests.redisproc}), plus what only L{RedisStore} does: refusing to start
with a Redis it cannot use, and coming back after a Redis restart.
"""

import hashlib
import json
import os

from twisted.internet import defer, reactor, task
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from jobmon.devtools.authority import makeCA, makeHostCert
from jobmon.server.cluster.redisstore import (
    BATCH,
    RedisStore,
    StoreRefused,
    _CommandProtocol,
    _SubscriberProtocol,
    connectStore,
)
from jobmon.server.cluster.redisurl import parseRedisURL
from jobmon.server.cluster.store import IClusterStore, MemoryStore, StoreUnavailable
from tests.redisproc import RedisProcess, freePort

WAIT = 10.0
"""Longest real wait of a Redis test for something to happen."""


def fields(**changes):
    record = {"mode": "tcp", "host": "wn1", "batch": "", "state": "connecting",
              "registered": "1700000000", "last_seen": "1700000000",
              "info": '{"shares": []}', "udp_key": ""}
    record.update(changes)
    return record


class Received:
    """
    What a listener received, and a way to wait for it.
    """

    def __init__(self):
        self.messages = []
        self._waiting = []

    def __call__(self, message):
        self.messages.append(message)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def next(self, clock):
        d = defer.Deferred()
        self._waiting.append(d)
        return d.addTimeout(WAIT, clock)


class StoreTestsMixin:
    """
    The semantics of L{IClusterStore}.  Set C{self.store} and implement
    L{passTime}, L{goDown}, L{comeBack} and L{whenBack}.
    """

    def passTime(self, seconds):
        """
        @return: a L{Deferred} that fires once C{seconds} have passed.
        """
        raise NotImplementedError()

    def goDown(self):
        """
        Make the store unreachable.
        """
        raise NotImplementedError()

    def comeBack(self):
        """
        Make the store reachable again.
        """
        raise NotImplementedError()

    def test_interface(self):
        self.assertTrue(verifyObject(IClusterStore, self.store))

    @defer.inlineCallbacks
    def test_claimNew(self):
        result = yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertEqual(result, ("ok", None))
        record = yield self.store.getJob("j1")
        self.assertEqual(record, dict(fields(), owner="/CN=alice", server="s1", job_id="j1"))
        self.assertIsNone((yield self.store.getJob("nothing")))

    @defer.inlineCallbacks
    def test_claimOtherOwner(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        result = yield self.store.claimJob("j1", "/CN=mallory", "s1", fields())
        self.assertEqual(result, ("owner", "/CN=alice"))
        self.assertEqual((yield self.store.getJob("j1"))["owner"], "/CN=alice")

    @defer.inlineCallbacks
    def test_claimSameServerRewrites(self):
        """
        The holder claiming its job again writes the whole record anew.
        """
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields(udp_key="00ff"))
        result = yield self.store.claimJob("j1", "/CN=alice", "s1", {"mode": "poll"})
        self.assertEqual(result, ("ok", None))
        record = yield self.store.getJob("j1")
        self.assertEqual(record, {"mode": "poll", "owner": "/CN=alice", "server": "s1",
                                  "job_id": "j1"})

    @defer.inlineCallbacks
    def test_claimHeldByLiveServer(self):
        yield self.store.heartbeat("s1", {}, 30)
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        result = yield self.store.claimJob("j1", "/CN=alice", "s2", fields())
        self.assertEqual(result, ("held", "s1"))
        self.assertEqual((yield self.store.getJob("j1"))["server"], "s1")

    @defer.inlineCallbacks
    def test_claimHolderNeverAlive(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        result = yield self.store.claimJob("j1", "/CN=alice", "s2", fields())
        self.assertEqual(result, ("ok", None))
        self.assertEqual((yield self.store.getJob("j1"))["server"], "s2")

    @defer.inlineCallbacks
    def test_claimHolderDead(self):
        yield self.store.heartbeat("s1", {}, 0.2)
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        yield self.passTime(0.3)
        result = yield self.store.claimJob("j1", "/CN=alice", "s2", fields())
        self.assertEqual(result, ("ok", None))
        self.assertEqual((yield self.store.heldBy("s1")), [])
        self.assertEqual((yield self.store.heldBy("s2")), ["j1"])

    @defer.inlineCallbacks
    def test_claimHolderLeft(self):
        yield self.store.heartbeat("s1", {}, 30)
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        yield self.store.leave("s1")
        self.assertEqual((yield self.store.claimJob("j1", "/CN=alice", "s2", fields())),
                         ("ok", None))

    @defer.inlineCallbacks
    def test_claimReplace(self):
        yield self.store.heartbeat("s1", {}, 30)
        yield self.store.heartbeat("s3", {}, 30)
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertEqual(
            (yield self.store.claimJob("j1", "/CN=alice", "s2", fields(), replace="s3")),
            ("held", "s1"))
        self.assertEqual(
            (yield self.store.claimJob("j1", "/CN=alice", "s2", fields(), replace="s1")),
            ("ok", None))
        self.assertEqual((yield self.store.heldBy("s1")), [])
        self.assertEqual((yield self.store.heldBy("s2")), ["j1"])

    @defer.inlineCallbacks
    def test_claimReserved(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertTrue((yield self.store.removeJob("j1", "s1", reserveFor=30)))
        self.assertEqual((yield self.store.reservedFor("j1")), "/CN=alice")
        self.assertEqual((yield self.store.claimJob("j1", "/CN=mallory", "s2", fields())),
                         ("owner", "/CN=alice"))
        self.assertIsNone((yield self.store.getJob("j1")))
        self.assertEqual((yield self.store.claimJob("j1", "/CN=alice", "s2", fields())),
                         ("ok", None))

    @defer.inlineCallbacks
    def test_reservationExpires(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        yield self.store.removeJob("j1", "s1", reserveFor=0.2)
        yield self.passTime(0.3)
        self.assertIsNone((yield self.store.reservedFor("j1")))
        self.assertEqual((yield self.store.claimJob("j1", "/CN=bob", "s2", fields())),
                         ("ok", None))

    @defer.inlineCallbacks
    def test_removeWithoutReservation(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertTrue((yield self.store.removeJob("j1", "s1")))
        self.assertIsNone((yield self.store.reservedFor("j1")))
        self.assertEqual((yield self.store.claimJob("j1", "/CN=bob", "s2", fields())),
                         ("ok", None))

    @defer.inlineCallbacks
    def test_updateOnlyByHolder(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertFalse((yield self.store.updateJob("j1", "s2", {"state": "ready"})))
        self.assertFalse((yield self.store.updateJob("nothing", "s1", {"state": "ready"})))
        self.assertTrue((yield self.store.updateJob("j1", "s1", {"state": "ready",
                                                                 "last_seen": "1700000060"})))
        record = yield self.store.getJob("j1")
        self.assertEqual((record["state"], record["last_seen"], record["mode"]),
                         ("ready", "1700000060", "tcp"))

    @defer.inlineCallbacks
    def test_updateServerKeepsIndex(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertTrue((yield self.store.updateJob("j1", "s1", {"server": "s2"})))
        self.assertEqual((yield self.store.heldBy("s1")), [])
        self.assertEqual((yield self.store.heldBy("s2")), ["j1"])

    @defer.inlineCallbacks
    def test_removeOnlyByHolder(self):
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertFalse((yield self.store.removeJob("j1", "s2", reserveFor=30)))
        self.assertIsNone((yield self.store.reservedFor("j1")))
        self.assertFalse((yield self.store.removeJob("nothing", "s1")))
        self.assertTrue((yield self.store.removeJob("j1", "s1")))
        self.assertFalse((yield self.store.removeJob("j1", "s1")))
        self.assertEqual((yield self.store.allJobs()), [])
        self.assertEqual((yield self.store.jobsOf("/CN=alice")), [])
        self.assertEqual((yield self.store.heldBy("s1")), [])

    @defer.inlineCallbacks
    def test_indexes(self):
        """
        jobsOf, allJobs and heldBy follow jobs as they move between servers
        and go; owners' DNs may hold any character.
        """
        odd = "/DC=org/CN=Zoë O'Brien:*\n{x}"
        yield self.store.heartbeat("s1", {}, 30)
        for i in range(5):
            yield self.store.claimJob("a%d" % i, "/CN=alice", "s1", fields())
        yield self.store.claimJob("b0", odd, "s2", fields())
        yield self.store.claimJob("a0", "/CN=alice", "s2", fields(), replace="s1")
        yield self.store.removeJob("a4", "s1")

        def ids(records):
            return sorted(r["job_id"] for r in records)

        self.assertEqual(ids((yield self.store.jobsOf("/CN=alice"))), ["a0", "a1", "a2", "a3"])
        self.assertEqual(ids((yield self.store.jobsOf(odd))), ["b0"])
        self.assertEqual((yield self.store.jobsOf(odd))[0]["owner"], odd)
        self.assertEqual(ids((yield self.store.allJobs())), ["a0", "a1", "a2", "a3", "b0"])
        self.assertEqual(sorted((yield self.store.heldBy("s1"))), ["a1", "a2", "a3"])
        self.assertEqual(sorted((yield self.store.heldBy("s2"))), ["a0", "b0"])
        self.assertEqual((yield self.store.jobsOf("/CN=nobody")), [])

    @defer.inlineCallbacks
    def test_ownsPrefix(self):
        """
        ownsPrefix tells whether one of an owner's ids starts with a prefix,
        among many ids; the prefix's characters are taken literally.
        """
        for i in range(BATCH + 10):
            yield self.store.claimJob("1234.%d" % i, "/CN=alice", "s1", fields())
        yield self.store.claimJob("x[1]*?\\.9", "/CN=alice", "s1", fields())
        yield self.store.claimJob("5678.0", "/CN=bob", "s1", fields())
        owns = self.store.ownsPrefix
        self.assertTrue((yield owns("/CN=alice", "1234.")))
        self.assertTrue((yield owns("/CN=alice", "1234.%d" % (BATCH + 9))))
        self.assertTrue((yield owns("/CN=alice", "x[1]*?\\")))
        self.assertFalse((yield owns("/CN=alice", "5678")))
        self.assertFalse((yield owns("/CN=alice", "1*")))
        self.assertTrue((yield owns("/CN=alice", "x[")))
        self.assertFalse((yield owns("/CN=alice", "x]")))
        self.assertFalse((yield owns("/CN=alice", "x?")))
        self.assertFalse((yield owns("/CN=alice", "?")))
        self.assertTrue((yield owns("/CN=bob", "5")))
        self.assertFalse((yield owns("/CN=nobody", "")))

    @defer.inlineCallbacks
    def test_manyJobs(self):
        """
        Listing more jobs than one batch gets each once.
        """
        count = BATCH * 2 + 7
        yield defer.gatherResults([
            self.store.claimJob("j%d" % i, "/CN=alice" if i % 2 else "/CN=bob", "s1", fields())
            for i in range(count)])
        every = yield self.store.allJobs()
        self.assertEqual(sorted(r["job_id"] for r in every),
                         sorted("j%d" % i for i in range(count)))
        self.assertEqual(len((yield self.store.jobsOf("/CN=alice"))), count // 2)
        self.assertEqual(len((yield self.store.heldBy("s1"))), count)

    @defer.inlineCallbacks
    def test_servers(self):
        yield self.store.heartbeat("s1", {"url": "https://a:8443"}, 30)
        yield self.store.heartbeat("s2", {"url": "https://b:8443"}, 0.2)
        self.assertEqual((yield self.store.servers()),
                         {"s1": {"url": "https://a:8443"}, "s2": {"url": "https://b:8443"}})
        self.assertTrue((yield self.store.isAlive("s2")))
        yield self.passTime(0.3)
        self.assertFalse((yield self.store.isAlive("s2")))
        self.assertFalse((yield self.store.isAlive("s9")))
        self.assertEqual((yield self.store.servers()), {"s1": {"url": "https://a:8443"}})
        yield self.store.heartbeat("s1", {"url": "https://a:8443", "jobs": "3"}, 30)
        self.assertEqual((yield self.store.servers()),
                         {"s1": {"url": "https://a:8443", "jobs": "3"}})
        yield self.store.leave("s1")
        self.assertFalse((yield self.store.isAlive("s1")))
        self.assertEqual((yield self.store.servers()), {})

    @defer.inlineCallbacks
    def test_lead(self):
        self.assertTrue((yield self.store.lead("s1", 0.2)))
        self.assertFalse((yield self.store.lead("s2", 0.2)))
        self.assertTrue((yield self.store.lead("s1", 0.2)))
        yield self.passTime(0.3)
        self.assertTrue((yield self.store.lead("s2", 0.2)))
        self.assertFalse((yield self.store.lead("s1", 0.2)))

    @defer.inlineCallbacks
    def test_leaveDropsLead(self):
        """
        A server that leaves lets go of the lead at once; another's leaving
        does not.
        """
        self.assertTrue((yield self.store.lead("s1", 30)))
        yield self.store.leave("s2")
        self.assertFalse((yield self.store.lead("s2", 30)))
        yield self.store.leave("s1")
        self.assertTrue((yield self.store.lead("s2", 30)))

    @defer.inlineCallbacks
    def test_leadRenewed(self):
        """
        Renewing the lead pushes its expiry back.
        """
        self.assertTrue((yield self.store.lead("s1", 0.4)))
        yield self.passTime(0.25)
        self.assertTrue((yield self.store.lead("s1", 0.4)))
        yield self.passTime(0.25)
        self.assertFalse((yield self.store.lead("s2", 0.4)))

    @defer.inlineCallbacks
    def test_values(self):
        yield self.store.putValue("gone:j1", '{"why": "ended"}', 0.2)
        self.assertEqual((yield self.store.getValue("gone:j1")), '{"why": "ended"}')
        self.assertEqual((yield self.store.getValue("gone:j1", take=True)), '{"why": "ended"}')
        self.assertIsNone((yield self.store.getValue("gone:j1")))
        yield self.store.putValue("answer:a", "x" * 300000, 0.2)
        self.assertEqual(len((yield self.store.getValue("answer:a"))), 300000)
        yield self.passTime(0.3)
        self.assertIsNone((yield self.store.getValue("answer:a")))

    @defer.inlineCallbacks
    def test_sendListen(self):
        received = Received()
        yield self.store.listen("s1", received)
        arrived = received.next(self.clock)
        self.assertTrue((yield self.store.send("s1", '{"query": 1}')))
        yield arrived
        self.assertEqual(received.messages, ['{"query": 1}'])
        self.assertFalse((yield self.store.send("s2", "nobody")))

    @defer.inlineCallbacks
    def test_downAndBack(self):
        received = Received()
        yield self.store.listen("s1", received)
        yield self.store.claimJob("j1", "/CN=alice", "s1", fields())
        self.goDown()
        for call in (lambda: self.store.getJob("j1"),
                     lambda: self.store.claimJob("j2", "/CN=alice", "s1", fields()),
                     lambda: self.store.allJobs(),
                     lambda: self.store.heartbeat("s1", {}, 30),
                     lambda: self.store.send("s1", "lost")):
            yield self.assertFailure(call(), StoreUnavailable)
        back = received.next(self.clock)
        self.comeBack()
        yield back
        self.assertEqual(received.messages, [None])
        yield self.whenBack()
        arrived = received.next(self.clock)
        self.assertTrue((yield self.store.send("s1", "again")))
        yield arrived
        self.assertEqual(received.messages, [None, "again"])


class MemoryStoreTests(StoreTestsMixin, TestCase):
    """
    L{MemoryStore} has the semantics of L{IClusterStore}.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.store = MemoryStore(self.clock)

    def passTime(self, seconds):
        self.clock.advance(seconds)
        return defer.succeed(None)

    def goDown(self):
        self.store.down = True

    def comeBack(self):
        self.store.down = False

    def whenBack(self):
        return defer.succeed(None)


class RedisStoreTests(StoreTestsMixin, TestCase):
    """
    L{RedisStore} has the semantics of L{IClusterStore}, with a real Redis.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = reactor
        self.redis = RedisProcess(self, password="pw-%d" % (freePort(),))
        self.target = parseRedisURL(self.redis.url(db=2))
        self.store = yield connectStore(reactor, self.target, timeout=WAIT)
        self.addCleanup(self.store.close)

    def passTime(self, seconds):
        return task.deferLater(reactor, seconds + 0.05, lambda: None)

    def goDown(self):
        self.redis.stop()

    def comeBack(self):
        self.redis.start()

    @defer.inlineCallbacks
    def whenBack(self):
        """
        Wait (boundedly) until calls work again.
        """
        for _ in range(int(WAIT / 0.05)):
            try:
                yield self.store.isAlive("s1")
            except StoreUnavailable:
                yield self.passTime(0)
            else:
                return
        self.fail("the store did not come back")


ACL = ("ACL SETUSER jobmon on >pw-acl resetkeys ~jobmon:* resetchannels &jobmon:* -@all "
       "+auth +select +ping +eval +evalsha +publish +subscribe +unsubscribe +get +set "
       "+exists +del +pexpire +hget +hmget +hset +hgetall +sadd +srem +smembers +sscan")
"""The ACL user of docs/SCALING.md."""


class RedisACLStoreTests(RedisStoreTests):
    """
    L{RedisStore} works as the ACL user of C{docs/SCALING.md}, which may run
    only the commands it needs on its own keys.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = reactor
        self.redis = RedisProcess(self, password="pw-%d" % (freePort(),))
        self.assertEqual(self.redis.command(*ACL.split()), "+OK")
        self.target = parseRedisURL(
            "redis://jobmon:pw-acl@127.0.0.1:%d/0" % (self.redis.port,))
        self.store = yield connectStore(reactor, self.target, timeout=WAIT)
        self.addCleanup(self.store.close)

    def comeBack(self):
        self.redis.start()
        self.assertEqual(self.redis.command(*ACL.split()), "+OK")

    def test_forbidden(self):
        """
        The ACL does forbid the rest (so the tests above can fail).
        """
        d = self.assertFailure(self.store._call("FLUSHALL"), StoreUnavailable)
        return d.addCallback(lambda e: self.assertIn("NOPERM", str(e)))


def makeTLS(testCase, names=("localhost", "127.0.0.1", "::1")):
    """
    @return: C{(certFile, keyFile, caFile)} of a throwaway CA and a
        certificate for 127.0.0.1 signed by it.
    """
    directory = os.path.abspath(testCase.mktemp())
    os.makedirs(directory)
    ca = makeCA(directory)
    cert, key = os.path.join(directory, "redis.pem"), os.path.join(directory, "redis.key")
    makeHostCert(ca, cert, key, names=names)
    return cert, key, ca.certPath


class RedisTLSStoreTests(RedisStoreTests):
    """
    L{RedisStore} over TLS (C{rediss://...?ca=}).
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = reactor
        cert, key, ca = makeTLS(self)
        self.redis = RedisProcess(self, password="pw-tls", tls=(cert, key))
        self.target = parseRedisURL(self.redis.url() + "?ca=" + ca)
        self.assertTrue(self.target.tls)
        self.store = yield connectStore(reactor, self.target, timeout=WAIT)
        self.addCleanup(self.store.close)


class RedisOnlyTests(TestCase):
    """
    What only L{RedisStore} does.
    """

    timeout = 60

    @defer.inlineCallbacks
    def untilBack(self, store, tries=200):
        """
        Read job C{j1} until the store answers again (at most C{tries}
        times, 50 ms apart).

        @return: a L{Deferred} of what it answered.
        """
        for _ in range(tries):
            try:
                return (yield store.getJob("j1"))
            except StoreUnavailable:
                yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail("the store did not come back")

    def refused(self, url, *texts):
        d = connectStore(reactor, parseRedisURL(url), timeout=WAIT)
        d = self.assertFailure(d, StoreRefused)

        def check(e):
            for text in texts:
                self.assertIn(text, str(e))
            self.assertNotIn("hunter2", str(e))
            self.assertNotIn("pw-right", str(e))
            return e

        return d.addCallback(check)

    def test_passwordMissing(self):
        redis = RedisProcess(self, password="pw-right")
        return self.refused(redis.url(password=""), "requires a password (NOAUTH)",
                            "127.0.0.1:%d" % (redis.port,), "redis://:PASSWORD@")

    def test_passwordWrong(self):
        redis = RedisProcess(self, password="pw-right")
        return self.refused(redis.url(password="hunter2"), "refused the password", "WRONGPASS")

    def test_passwordNotSet(self):
        redis = RedisProcess(self)
        return self.refused(redis.url(password="hunter2"), "no password set")

    def test_badDatabase(self):
        redis = RedisProcess(self)
        return self.refused(redis.url(db=99), "no database 99")

    def test_unreachable(self):
        return self.refused("redis://:hunter2@127.0.0.1:%d/0" % (freePort(),),
                            "cannot reach Redis at 127.0.0.1:", "connection refused")

    def test_tlsAgainstPlain(self):
        redis = RedisProcess(self)
        return self.refused("rediss://127.0.0.1:%d/0" % (redis.port,),
                            "Redis at 127.0.0.1:%d" % (redis.port,), "TLS")

    def test_tlsUntrusted(self):
        """
        A TLS Redis whose certificate the system does not trust is refused.
        """
        cert, key, ca = makeTLS(self)
        redis = RedisProcess(self, tls=(cert, key))
        return self.refused(redis.url(), "certificate is not trusted", "?ca=PATH")

    def test_tlsWrongName(self):
        """
        A TLS Redis whose certificate is not for the host is refused.
        """
        cert, key, ca = makeTLS(self, names=("redis.example.org",))
        redis = RedisProcess(self, tls=(cert, key))
        return self.refused("rediss://127.0.0.1:%d/0?ca=%s" % (redis.port, ca),
                            "Redis at 127.0.0.1:%d" % (redis.port,), "not for 127.0.0.1")

    def test_plainAgainstTLS(self):
        cert, key, ca = makeTLS(self)
        redis = RedisProcess(self, tls=(cert, key))
        return self.refused("redis://127.0.0.1:%d/0" % (redis.port,), "rediss://")

    @defer.inlineCallbacks
    def test_noHang(self):
        """
        A Redis that answers nothing (stopped with SIGSTOP) makes calls fail
        with L{StoreUnavailable} after the reply timeout, not hang; the
        store connects again when it answers again.
        """
        redis = RedisProcess(self)
        store = RedisStore(reactor, parseRedisURL(redis.url()), timeout=0.3)
        yield store.start()
        self.addCleanup(store.close)
        redis.pause()
        started = reactor.seconds()
        yield self.assertFailure(store.getJob("j1"), StoreUnavailable)
        self.assertLess(reactor.seconds() - started, 2)
        redis.resume()
        yield self.untilBack(store)

    @defer.inlineCallbacks
    def test_keepalive(self):
        """
        The connection that receives messages notices a Redis gone silent
        (here: stopped with SIGSTOP) by its pings, and is made again when
        it answers again: the listener is told.
        """
        redis = RedisProcess(self)
        store = RedisStore(reactor, parseRedisURL(redis.url()), timeout=0.3, keepalive=0.2)
        self.addCleanup(store.close)
        received = Received()
        yield store.listen("s1", received)
        redis.pause()
        yield task.deferLater(reactor, 0.8, lambda: None)
        back = received.next(reactor)
        redis.resume()
        yield back
        self.assertEqual(received.messages, [None])

    @defer.inlineCallbacks
    def test_scriptsFlushed(self):
        """
        Scripts flushed from Redis are sent again.
        """
        redis = RedisProcess(self)
        store = yield connectStore(reactor, parseRedisURL(redis.url()))
        self.addCleanup(store.close)
        yield store.claimJob("j1", "/CN=alice", "s1", fields())
        yield store.claimJob("j1", "/CN=alice", "s1", fields())
        self.assertEqual(redis.command("SCRIPT", "FLUSH"), "+OK")
        self.assertEqual((yield store.claimJob("j1", "/CN=alice", "s1", fields())),
                         ("ok", None))
        self.assertEqual((yield store.getJob("j1"))["owner"], "/CN=alice")

    @defer.inlineCallbacks
    def test_killed(self):
        """
        A Redis killed (SIGKILL) and started again: calls fail meanwhile, and
        work again after (the data is gone: it persisted nothing).
        """
        redis = RedisProcess(self)
        store = yield connectStore(reactor, parseRedisURL(redis.url()))
        self.addCleanup(store.close)
        yield store.claimJob("j1", "/CN=alice", "s1", fields())
        redis.kill()
        yield self.assertFailure(store.getJob("j1"), StoreUnavailable)
        redis.start()
        self.assertIsNone((yield self.untilBack(store)))

    @defer.inlineCallbacks
    def test_layout(self):
        """
        The keys are under the prefix, as the module's docstring says.
        """
        redis = RedisProcess(self)
        store = yield connectStore(reactor, parseRedisURL(redis.url()), prefix="t:")
        self.addCleanup(store.close)
        yield store.heartbeat("s1", {"url": "u"}, 30)
        yield store.claimJob("j1", "/CN=alice", "s1", fields())
        yield store.removeJob("j1", "s1", reserveFor=30)
        yield store.claimJob("j2", "/CN=alice", "s1", fields())
        keys = yield store._call("KEYS", "*")
        self.assertEqual(sorted(keys), sorted([
            "t:alive:s1", "t:servers", "t:job:j2", "t:jobs", "t:held:s1",
            "t:reserved:j1", "t:owner:" + hashlib.sha1(b"/CN=alice").hexdigest()]))
        self.assertEqual(json.loads((yield store._call("GET", "t:alive:s1"))), {"url": "u"})


class _TCPOptions(StringTransport):
    """
    A transport that records the TCP options set on it.
    """

    noDelay = keepAlive = None

    def setTcpNoDelay(self, enabled):
        self.noDelay = enabled

    def setTcpKeepAlive(self, enabled):
        self.keepAlive = enabled


class ConnectionOptionsTests(SynchronousTestCase):
    """
    The TCP options of the connections to Redis.
    """

    def test_noDelayKeepAlive(self):
        """
        The command and the subscriber connections send each write at once
        (no Nagle delay) and keep TCP keep-alive on.
        """
        for protocolClass in (_CommandProtocol, _SubscriberProtocol):
            protocol = protocolClass(charset="utf-8", convertNumbers=False)
            transport = _TCPOptions()
            protocol.makeConnection(transport)
            self.assertEqual((transport.noDelay, bool(transport.keepAlive)), (True, True),
                             protocolClass.__name__)


class ParsingTests(SynchronousTestCase):
    """
    Replies and messages are parsed in the turn of the reactor that read
    them.
    """

    def connect(self, protocolClass):
        protocol = protocolClass(charset="utf-8", convertNumbers=False)
        clock = task.Clock()
        protocol.callLater = clock.callLater
        protocol.makeConnection(_TCPOptions())
        protocol.connected = 1
        return protocol, clock

    def test_pipelinedReplies(self):
        """
        Thousands of pipelined bulk replies in one read all arrive at once,
        without a delayed call and without recursion.
        """
        protocol, clock = self.connect(_CommandProtocol)
        count = 3000
        results = []
        for i in range(count):
            protocol.execute_command("GET", "k%d" % i, apply_timeout=False).addCallback(
                results.append)
        protocol.dataReceived(b"".join(b"$2\r\nv%d\r\n" % (i % 10) for i in range(count)))
        self.assertEqual(len(results), count)
        self.assertEqual(results[:3], ["v0", "v1", "v2"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_messageAtOnce(self):
        """
        A message (three bulk strings), even split over reads, is delivered
        in the turn that read its end (with hiredis installed, txredisapi's
        subscriber parses in C and does so too).
        """
        protocol, clock = self.connect(_SubscriberProtocol)
        received = []

        class Store:
            def _message(self, channel, message):
                received.append((channel, message))

        protocol.store = Store()
        frame = b"*3\r\n$7\r\nmessage\r\n$4\r\nto:a\r\n$5\r\nhello\r\n"
        protocol.dataReceived(frame + frame[:20])
        self.assertEqual(received, [("to:a", "hello")])
        protocol.dataReceived(frame[20:])
        self.assertEqual(received, [("to:a", "hello")] * 2)
        self.assertEqual(clock.getDelayedCalls(), [])

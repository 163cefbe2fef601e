"""
Tests for two daemons registering the same job of the same owner (issue
12): the second is refused while the first is alive, in every wake mode,
and takes the job over once the first is gone; the first is told, and the
server says so in its log.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.wakes import standardWakes

ALICE = Identity("/DC=org/DC=test/CN=Alice")


class NoticedChannel:
    """
    A TCP wake channel that records wakes, notices and its close.
    """

    def __init__(self, jobId):
        self.jobId = jobId
        self.wakes = 0
        self.notices = []
        self.closed = False

    def wake(self):
        self.wakes += 1

    def notice(self, message):
        self.notices.append(message)

    def close(self):
        self.closed = True


class FakeSender:
    """
    Records UDP wakes.
    """

    address = ("127.255.255.255", 9)

    def __init__(self):
        self.sent = []

    def send(self, jobId, sequence, secret):
        self.sent.append((jobId, sequence, secret))


class FakeAudit:
    """
    Records audit events.
    """

    def __init__(self):
        self.events = []

    def record(self, event, **fields):
        self.events.append((event, fields))


def daemonInfo(mode, instance, host, pid):
    """
    A daemon's registration info.
    """
    return {"wake": mode, "instance": instance, "host": host, "pid": pid}


class RivalTestCase(SynchronousTestCase):
    """
    A hub offering every wake mode, on a clock at 1000 s past the epoch.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry, self.table = MemoryJobRegistry(), MemoryRequestTable()
        self.config = HubConfig(
            keepalive=20, connectGrace=10, reregisterInterval=60, expireAfter=180,
            cleanupInterval=10, maxPoll=60, queryTimeout=30,
        )
        self.audit = FakeAudit()
        self.hub = Hub(
            self.clock, self.registry, self.table, self.config,
            wakes=standardWakes(self.clock, self.registry, self.table, self.config,
                                udpSender=FakeSender(), udpPort=9999),
            audit=self.audit,
        )
        self.hub.wakePort = 8444
        self.hub.start()
        self.addCleanup(self.hub.stop)
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def first(self, mode):
        """
        Register the first daemon, on wn01.
        """
        return self.hub.registerJob(ALICE, "j", daemonInfo(mode, "first", "wn01", 101))

    def second(self, mode):
        """
        Register the second daemon, on wn02.
        """
        return self.hub.registerJob(ALICE, "j", daemonInfo(mode, "second", "wn02", 202))

    def assertRefused(self, mode):
        """
        The second daemon is refused with a 409 naming the holder's host,
        pid and registration time.
        """
        e = self.assertRaises(JobMonError, self.second, mode)
        self.assertEqual(e.code, errors.JOB_CONFLICT)
        self.assertIn(
            "job j is already registered by a live daemon on host wn01 (pid 101) since "
            "1970-01-01 00:16:40 UTC", e.message,
        )
        return e

    def holder(self):
        """
        The registered daemon's instance.
        """
        return self.registry.get("j").info["instance"]

    def warnings(self):
        """
        The server's warnings about refused registrations.
        """
        return [
            e for e in self.logged
            if e["log_level"] == LogLevel.warn and "refused" in e["log_format"]
        ]


class TCPRivalTests(RivalTestCase):
    """
    TCP mode: the holder is alive while its wake channel is open, or still
    connecting within the grace.
    """

    def connect(self, reply):
        """
        Bind a wake channel to a registration.
        """
        channel = NoticedChannel("j")
        self.hub.channelHello(channel, ALICE, "j", reply["wake"]["token"])
        return channel

    def test_liveHolderKeepsJob(self):
        """
        A second daemon is refused while the first's channel is open; the
        first keeps its registration and channel and is told once, however
        often the second retries; the server warns once and audits each
        refusal.
        """
        reply = self.first("tcp")
        channel = self.connect(reply)
        self.clock.advance(30)
        self.assertRefused("tcp")
        self.clock.advance(5)
        self.assertRefused("tcp")
        self.assertEqual(self.holder(), "first")
        self.assertEqual(self.registry.get("j").wakeSecret, reply["wake"]["token"])
        self.assertFalse(channel.closed)
        [notice] = channel.notices
        self.assertEqual(
            notice,
            "another daemon for job j (on host wn02 (pid 202)) tried to register it at "
            "1970-01-01 00:17:10 UTC and was refused: this daemon keeps the job",
        )
        [warning] = self.warnings()
        self.assertEqual(
            (warning["job_id"], warning["holder"], warning["newcomer"]),
            ("j", "host wn01 (pid 101)", "host wn02 (pid 202)"),
        )
        refusals = [f for e, f in self.audit.events if e == "refused"]
        self.assertEqual(len(refusals), 2)
        self.assertEqual(refusals[0]["code"], errors.JOB_CONFLICT)
        # Work still reaches the first daemon.
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.assertEqual(channel.wakes, 1)
        d.cancel()
        self.failureResultOf(d)

    def test_connectingHolderWithinGrace(self):
        """
        A holder still connecting its channel is alive until its grace ends;
        then it is dropped and the second daemon registers.
        """
        self.first("tcp")
        self.clock.advance(5)
        self.assertRefused("tcp")
        self.clock.advance(5)
        self.assertIsNone(self.registry.get("j"))
        self.second("tcp")
        self.assertEqual(self.holder(), "second")

    def test_crashedHolderTakenOver(self):
        """
        The first daemon's channel closes (it crashed): the job is dropped
        at once, and a restarted daemon registers straight away.
        """
        channel = self.connect(self.first("tcp"))
        self.hub.channelLost(channel)
        reply = self.second("tcp")
        self.assertEqual(self.holder(), "second")
        self.connect(reply)
        self.assertEqual(self.warnings(), [])

    def test_sameDaemonReconnects(self):
        """
        The holder itself registering again (its end of the channel died
        first) replaces its registration: its old channel closes.
        """
        channel = self.connect(self.first("tcp"))
        reply = self.first("tcp")
        self.assertTrue(channel.closed)
        self.connect(reply)
        self.assertEqual(self.holder(), "first")

    def test_daemonsWithoutInstance(self):
        """
        Daemons from before instances cannot be told apart: the newest
        registration wins, as it did.
        """
        reply = self.hub.registerJob(ALICE, "j", {"wake": "tcp", "host": "wn01"})
        channel = self.connect(reply)
        self.second("tcp")
        self.assertTrue(channel.closed)
        self.assertEqual(self.holder(), "second")

    def test_pollNewcomerRefused(self):
        """
        The holder's mode decides: a poll daemon is refused a job whose TCP
        daemon is alive.
        """
        self.connect(self.first("tcp"))
        self.assertRefused("poll")


class UDPRivalTests(RivalTestCase):
    """
    UDP mode: the holder is alive while it re-registers (within one and a
    half intervals).
    """

    def test_liveHolderKeepsJob(self):
        """
        A second daemon is refused between the first's re-registrations;
        the first learns it in the reply to its next one, once.
        """
        reply = self.first("udp")
        self.clock.advance(50)
        self.assertRefused("udp")
        self.clock.advance(5)
        self.assertRefused("udp")
        self.clock.advance(5)
        again = self.first("udp")
        self.assertEqual(again["wake"]["secret"], reply["wake"]["secret"])
        self.assertIn("tried to register it at 1970-01-01 00:17:30 UTC",
                      again["wake"]["notice"])
        self.assertNotIn("notice", self.first("udp")["wake"])
        self.assertEqual(len(self.warnings()), 1)

    def test_silentHolderTakenOver(self):
        """
        A holder not heard from for one and a half intervals is taken over;
        when it comes back it is refused in turn, so the two never take
        turns.
        """
        self.first("udp")
        self.clock.advance(89)
        self.assertRefused("udp")
        self.clock.advance(1)
        reply = self.second("udp")
        self.assertEqual(self.holder(), "second")
        [takeover] = [e for e in self.logged if "takes it over" in e["log_format"]]
        self.assertEqual(takeover["heard"], 90)
        self.clock.advance(30)
        e = self.assertRaises(JobMonError, self.first, "udp")
        self.assertIn("live daemon on host wn02 (pid 202)", e.message)
        self.clock.advance(30)
        again = self.second("udp")
        self.assertEqual(again["wake"]["secret"], reply["wake"]["secret"])
        self.assertIn("on host wn01 (pid 101)", again["wake"]["notice"])


class PollRivalTests(RivalTestCase):
    """
    Poll mode: the holder is alive while a poll is pending, or for 30 s
    after its last contact.
    """

    def poll(self, reply):
        """
        The first daemon's poll, with its token.
        """
        return self.hub.waitForWork(ALICE, "j", 60, reply["wake"]["token"])

    def test_liveHolderKeepsJob(self):
        """
        A second daemon is refused while the first polls; the first's poll
        ends with the notice (fault 409), and it polls on.
        """
        reply = self.first("poll")
        self.assertTrue(reply["token_checks"])
        poll = self.poll(reply)
        self.assertRefused("poll")
        failure = self.failureResultOf(poll, JobMonError)
        self.assertEqual(failure.value.code, errors.JOB_CONFLICT)
        self.assertIn("this daemon keeps the job", failure.value.message)
        # Between polls it is alive too; told once only.
        self.clock.advance(20)
        self.assertRefused("poll")
        poll = self.poll(reply)
        self.assertRefused("poll")
        self.assertNoResult(poll)
        self.assertEqual(len(self.warnings()), 1)
        d = self.hub.query(ALICE, "j", {"op": "ls"})
        self.assertEqual(len(self.successResultOf(poll)), 1)
        d.cancel()
        self.failureResultOf(d)

    def test_toldBetweenPolls(self):
        """
        A rival refused while the holder has no poll pending is told at the
        holder's next poll.
        """
        reply = self.first("poll")
        self.assertRefused("poll")
        failure = self.failureResultOf(self.poll(reply), JobMonError)
        self.assertEqual(failure.value.code, errors.JOB_CONFLICT)
        self.assertIn("on host wn02 (pid 202)", failure.value.message)
        poll = self.poll(reply)
        self.assertNoResult(poll)
        poll.cancel()
        self.failureResultOf(poll)

    def test_crashedHolderTakenOver(self):
        """
        The first daemon's poll is withdrawn (its connection closed): 30 s
        later a restarted daemon takes over.  The first, if it comes back,
        may neither poll the new holder's work nor unregister it.
        """
        reply = self.first("poll")
        poll = self.poll(reply)
        self.clock.advance(10)
        poll.cancel()
        self.failureResultOf(poll)
        self.clock.advance(29)
        self.assertRefused("poll")
        self.clock.advance(1)
        newReply = self.second("poll")
        self.assertEqual(self.holder(), "second")
        e = self.assertRaises(JobMonError, self.poll, reply)
        self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertIn("now registered by another daemon (on host wn02 (pid 202)", e.message)
        self.assertFalse(self.hub.unregisterJob(ALICE, "j", reply["wake"]["token"]))
        self.assertEqual(self.holder(), "second")
        self.assertTrue(self.hub.unregisterJob(ALICE, "j", newReply["wake"]["token"]))
        self.assertIsNone(self.registry.get("j"))

    def test_withoutToken(self):
        """
        A daemon that sends no token (an older one) polls and unregisters as
        before.
        """
        self.first("poll")
        poll = self.hub.waitForWork(ALICE, "j", 60)
        self.assertNoResult(poll)
        self.assertTrue(self.hub.unregisterJob(ALICE, "j"))
        self.failureResultOf(poll, JobMonError)

    def test_badToken(self):
        """
        A token that is not a string is no registration's.
        """
        self.first("poll")
        e = self.assertRaises(JobMonError, self.hub.waitForWork, ALICE, "j", 60, 7)
        self.assertEqual(e.code, errors.NO_SUCH_JOB)

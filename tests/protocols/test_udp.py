"""
Tests for L{jobmon.protocols.udp}: the authenticated wake datagram.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.trial.unittest import SynchronousTestCase

from jobmon.protocols.udp import (
    MAC_SIZE,
    UDPWakeListener,
    UDPWakeSender,
    decodeJobId,
    encodeWake,
)

SECRET = bytes(range(32))
ADDR = ("127.0.0.1", 5555)


class ListenerTests(SynchronousTestCase):
    """
    The daemon acts only on fresh, authentic wakes for its own job.
    """

    def setUp(self):
        self.wakes = []
        self.listener = UDPWakeListener("job.1", lambda: self.wakes.append(1), Clock())
        self.listener.setSecret(SECRET)

    def test_accepted(self):
        """
        A wake with the right MAC and a new sequence wakes the daemon.
        """
        self.listener.datagramReceived(encodeWake("job.1", 1, SECRET), ADDR)
        self.listener.datagramReceived(encodeWake("job.1", 5, SECRET), ADDR)
        self.assertEqual(len(self.wakes), 2)
        self.assertEqual(self.listener.counts["accepted"], 2)

    def test_foreign(self):
        """
        A wake for another job is counted and ignored.
        """
        self.listener.datagramReceived(encodeWake("job.2", 1, SECRET), ADDR)
        self.assertEqual((self.wakes, self.listener.counts["foreign"]), ([], 1))

    def test_forged(self):
        """
        A wake made with another secret, or with a flipped bit, is dropped.
        """
        self.listener.datagramReceived(encodeWake("job.1", 1, b"x" * 32), ADDR)
        good = bytearray(encodeWake("job.1", 2, SECRET))
        good[-1] ^= 1
        self.listener.datagramReceived(bytes(good), ADDR)
        self.assertEqual((self.wakes, self.listener.counts["forged"]), ([], 2))

    def test_replayed(self):
        """
        A wake whose sequence number was already seen is dropped.
        """
        wake = encodeWake("job.1", 3, SECRET)
        self.listener.datagramReceived(wake, ADDR)
        self.listener.datagramReceived(wake, ADDR)
        self.listener.datagramReceived(encodeWake("job.1", 2, SECRET), ADDR)
        self.assertEqual(len(self.wakes), 1)
        self.assertEqual(self.listener.counts["replayed"], 2)

    def test_newSecretRestartsSequence(self):
        """
        After a new registration (new secret) sequences start again.
        """
        self.listener.datagramReceived(encodeWake("job.1", 9, SECRET), ADDR)
        other = b"y" * 32
        self.listener.setSecret(other)
        self.listener.datagramReceived(encodeWake("job.1", 1, other), ADDR)
        self.assertEqual(len(self.wakes), 2)

    def test_noSecretYet(self):
        """
        Before its first registration the daemon accepts nothing.
        """
        listener = UDPWakeListener("job.1", lambda: self.wakes.append(1), Clock())
        listener.datagramReceived(encodeWake("job.1", 1, SECRET), ADDR)
        self.assertEqual(self.wakes, [])

    def test_junk(self):
        """
        Truncated, oversized and wrong-magic datagrams are junk.
        """
        wake = encodeWake("job.1", 1, SECRET)
        for junk in [b"", b"JMW1", wake[:-1], wake + b"x", b"XXXX" + wake[4:], b"\xff" * 2000]:
            self.listener.datagramReceived(junk, ADDR)
        self.assertEqual((self.wakes, self.listener.counts["junk"]), ([], 6))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_randomNeverWakes(self, data):
        """
        Random bytes never wake the daemon and never raise.
        """
        self.listener.datagramReceived(data, ADDR)
        self.assertEqual(self.wakes, [])

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(min_size=1, max_size=8))
    def test_tamperedNeverWakes(self, sequence, noise):
        """
        Any change to an authentic wake's header makes it fail the MAC.
        """
        wake = bytearray(encodeWake("job.1", 7, SECRET))
        original = bytes(wake)
        struct.pack_into("!Q", wake, 4, sequence)
        wake[-MAC_SIZE : -MAC_SIZE + len(noise)] = noise
        if bytes(wake) == original:
            return
        self.listener.datagramReceived(bytes(wake), ADDR)
        self.assertEqual(self.wakes, [])

    def test_logSummary(self):
        """
        Drops are logged at once the first time, then summarized at most
        once per interval.
        """
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import globalLogPublisher

        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for i in range(100):
            self.listener.datagramReceived(encodeWake("job.1", 1, b"z" * 32), ADDR)
        self.assertEqual(len(observer), 1)
        self.listener.clock.advance(61)
        self.listener.datagramReceived(encodeWake("job.1", 1, b"z" * 32), ADDR)
        self.assertEqual(len(observer), 2)
        self.assertEqual(observer[1]["forged"], 100)


class SenderTests(SynchronousTestCase):
    """
    The server's sender.
    """

    def test_send(self):
        """
        The sender writes the datagram to the broadcast address with
        broadcast allowed.
        """
        sender = UDPWakeSender(("127.255.255.255", 7000))
        transport = FakeDatagramTransport()
        transport.setBroadcastAllowed = lambda flag: setattr(transport, "broadcast", flag)
        sender.makeConnection(transport)
        sender.send("job.1", 1, SECRET)
        self.assertTrue(transport.broadcast)
        [(data, addr)] = transport.written
        self.assertEqual(addr, ("127.255.255.255", 7000))
        self.assertEqual(decodeJobId(data), "job.1")
        self.assertEqual(sender.sent, 1)

"""
The UDP broadcast wake: one small authenticated datagram per wake.

The server sends a wake for a job to the workers' broadcast address; every
daemon on every host listens on the same port and acts only on a wake for
its own job, carrying a MAC made with the secret its registration returned
and a sequence number it has not seen yet.  Anything else is dropped and
counted, at the cost of the check alone.

Datagram layout (network byte order)::

    magic "JMW1" | sequence (8 bytes) | job id length (2) | job id | MAC (16)

The MAC is the first 16 bytes of HMAC-SHA256(secret, everything before it).
"""

import hashlib
import hmac
import struct

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

MAGIC = b"JMW1"
MAC_SIZE = 16
MAX_DATAGRAM = len(MAGIC) + 8 + 2 + 256 + MAC_SIZE
_HEADER = struct.Struct("!4sQH")


def _mac(secret, body):
    return hmac.new(secret, body, hashlib.sha256).digest()[:MAC_SIZE]


def encodeWake(jobId, sequence, secret):
    """
    Build the wake datagram for C{jobId}.

    @param secret: the job's wake secret (bytes).
    """
    name = jobId.encode("ascii")
    body = _HEADER.pack(MAGIC, sequence, len(name)) + name
    return body + _mac(secret, body)


def decodeJobId(datagram):
    """
    Return the job id a datagram is addressed to, or L{None} if it is not
    a wake datagram.
    """
    if len(datagram) < _HEADER.size + MAC_SIZE or len(datagram) > MAX_DATAGRAM:
        return None
    magic, sequence, length = _HEADER.unpack_from(datagram)
    if magic != MAGIC or len(datagram) != _HEADER.size + length + MAC_SIZE:
        return None
    try:
        return datagram[_HEADER.size : _HEADER.size + length].decode("ascii")
    except UnicodeDecodeError:
        return None


class UDPWakeSender(DatagramProtocol):
    """
    The server's side: sends wake datagrams to the broadcast address.

    @ivar address: C{(host, port)} to send to.
    @ivar sent: datagrams sent.
    """

    log = Logger()
    noisy = False

    def __init__(self, address):
        self.address = address
        self.sent = 0
        self.errors = 0

    def startProtocol(self):
        self.transport.setBroadcastAllowed(True)

    def send(self, jobId, sequence, secret):
        """
        Send a wake for C{jobId}; errors (no route, full buffer) are counted
        and logged, never raised: a lost wake is retried anyway.
        """
        if self.transport is None:
            return
        try:
            self.transport.write(encodeWake(jobId, sequence, secret), self.address)
            self.sent += 1
        except OSError as e:
            self.errors += 1
            self.log.warn("cannot send UDP wake to {address}: {why}",
                          address=self.address, why=e)

    def datagramReceived(self, data, addr):
        """
        The sending socket expects nothing: ignore.
        """


class UDPWakeListener(DatagramProtocol):
    """
    The daemon's side: accepts authenticated wakes for one job.

    @ivar counts: dropped datagrams by reason (C{foreign}, C{forged},
        C{replayed}, C{junk}) and C{accepted}.
    """

    log = Logger()
    noisy = False

    def __init__(self, jobId, onWake, clock, summaryInterval=60.0):
        self.jobId = jobId
        self.onWake = onWake
        self.clock = clock
        self.summaryInterval = summaryInterval
        self.secret = None
        self.lastSequence = 0
        self.counts = {"accepted": 0, "foreign": 0, "forged": 0, "replayed": 0, "junk": 0}
        self._reported = dict(self.counts)
        self._lastSummary = None

    def setSecret(self, secret):
        """
        Use the secret of a (new) registration; a new secret restarts the
        sequence.
        """
        if secret != self.secret:
            self.secret = secret
            self.lastSequence = 0

    def datagramReceived(self, data, addr):
        jobId = decodeJobId(data)
        if jobId is None:
            self._drop("junk", addr)
            return
        if jobId != self.jobId:
            # Wakes for the other jobs on this subnet: the common case.
            self.counts["foreign"] += 1
            return
        if self.secret is None:
            self._drop("forged", addr)
            return
        body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if not hmac.compare_digest(_mac(self.secret, body), mac):
            self._drop("forged", addr)
            return
        sequence = _HEADER.unpack_from(data)[1]
        if sequence <= self.lastSequence:
            self._drop("replayed", addr)
            return
        self.lastSequence = sequence
        self.counts["accepted"] += 1
        self.onWake()

    def _drop(self, reason, addr):
        self.counts[reason] += 1
        now = self.clock.seconds()
        # Report the first of each kind at once, then at most one summary
        # per interval: a flood must not flood the log too.
        first = self._reported[reason] == 0
        if first or self._lastSummary is None or now - self._lastSummary >= self.summaryInterval:
            self._lastSummary = now
            new = {k: self.counts[k] - self._reported[k] for k in ("junk", "forged", "replayed")}
            self._reported = dict(self.counts)
            self.log.warn(
                "dropped UDP wakes (latest from {host}): {forged} forged, {replayed} "
                "replayed, {junk} junk",
                host=getattr(addr, "host", addr[0] if isinstance(addr, tuple) else addr),
                **new,
            )

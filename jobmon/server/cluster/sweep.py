"""
The cluster's share of the cleanup cycle, done by one server, its leader:
the jobs of a server that died are woken (UDP ones, which would otherwise
wait for their next re-registration to find their server gone) and, if they
do not register again elsewhere, forgotten.  Each server still cleans up its
own jobs itself (their daemons are registered with it).
"""

from twisted.internet import defer
from twisted.logger import Logger

from jobmon.server.cluster.mirror import goneValue
from jobmon.server.ended import EndedJob

NUDGE_EVERY = 2.0
"""Seconds between the leader's wakes of the UDP jobs of a dead server."""

NUDGE_BATCH = 500
"""Records of a dead server's jobs read from the store at once: all of them
at once (tens of thousands of calls in flight on one connection) would
wait in line longer than the store's reply timeout."""


class LeaderSweep:
    """
    The leader's sweep, run at each heartbeat of a
    L{jobmon.server.cluster.hub.ClusterHub}'s node.

    @ivar sweepInterval: seconds between two looks at all jobs.
    """

    log = Logger()

    def __init__(self, hub):
        self.hub = hub
        self.sweepInterval = 6 * hub.config.cleanupInterval
        self._known = set()
        self._dead = {}
        self._nudged = {}
        self._lastSweep = None

    @defer.inlineCallbacks
    def beat(self):
        """
        The leader's share of the cleanup, once for the cluster: the jobs of
        a server that died are woken (UDP ones, so that they find their
        server gone and move; the others notice by themselves), and after
        L{orphanGrace} forgotten.  A server seen dying is looked at at
        once; every L{sweepInterval}, all jobs are, for the servers that
        died before this one led.
        """
        now = self.hub.clock.seconds()
        live = set(self.hub.node.live)
        died = self._known - live
        self._known = live
        for server in died:
            # Kept while another leads: this server may lead before the
            # dead one's jobs are dealt with.
            self._dead.setdefault(server, now)
        if not self.hub.node.leading:
            return
        store = self.hub.node.store
        if self._lastSweep is None or now - self._lastSweep >= self.sweepInterval:
            self._lastSweep = now
            for fields in (yield store.allJobs()):
                if not self.hub.node.isAlive(fields.get("server", "")):
                    self._dead.setdefault(fields["server"], now)
        for server, since in list(self._dead.items()):
            if now - self._nudged.get(server, -NUDGE_EVERY) < NUDGE_EVERY and \
                    now - since < self.hub.orphanGrace:
                continue
            self._nudged[server] = now
            held = yield store.heldBy(server)
            if not held or self.hub.node.isAlive(server):
                del self._dead[server]
                self._nudged.pop(server, None)
                continue
            if now - since >= self.hub.orphanGrace:
                for fields in (yield self._records(store, held)):
                    if fields is None:
                        continue
                    yield store.removeJob(fields["job_id"], server,
                                          self.hub.config.reserveFor)
                    gone = EndedJob(fields["job_id"], fields["owner"], now,
                                    "its server {} stopped".format(server), False)
                    yield store.putValue("gone:" + gone.jobId, goneValue(gone),
                                         self.hub.ended.keepFor)
                self.log.info("{count} job(s) of server {server} forgotten: it stopped "
                              "{grace:.0f} s ago and they did not register again",
                              count=len(held), server=server, grace=now - since)
                continue
            for fields in (yield self._records(store, held)):
                if fields is not None and fields.get("udp_key"):
                    self.nudge(fields["job_id"], fields["udp_key"], now)

    @defer.inlineCallbacks
    def _records(self, store, jobIds):
        """
        The store's records of C{jobIds} (L{None} for those gone), read
        L{NUDGE_BATCH} at a time.
        """
        records = []
        for start in range(0, len(jobIds), NUDGE_BATCH):
            records += yield defer.gatherResults(
                [store.getJob(j) for j in jobIds[start:start + NUDGE_BATCH]],
                consumeErrors=True)
        return records

    def nudge(self, jobId, key, now):
        """
        Wake a UDP job whose server died: it fetches, finds its server gone,
        and registers with another.
        """
        sender = self.hub.udpSender
        if not key or sender is None:
            return
        try:
            secret = bytes.fromhex(key)
        except ValueError:
            return
        # Above any sequence its dead server sent: milliseconds of the clock.
        sender.send(jobId, int(now * 1000), secret)

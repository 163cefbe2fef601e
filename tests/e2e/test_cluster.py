"""
End-to-end tests of a cluster: real C{twistd jobmon-server} processes
sharing jobs through a real C{redis-server} on 127.0.0.1, real daemons in
every wake mode spread over them, queried through every server.
"""

import os
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import JobMonClient
from jobmon.errors import JobMonError
from tests.redisproc import RedisProcess
from tests.support import (
    FaultAssertions,
    TestPKI,
    freeUDPPort,
    inThread,
    startDaemon,
    startServer,
)


class ClusterBase(FaultAssertions, TestCase):
    """
    A Redis, a PKI and a work directory; servers started on demand.
    """

    timeout = 180

    def setUp(self):
        self.redis = RedisProcess(self)
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"hello\n")
        self.udpPort = freeUDPPort()
        self.servers = {}

    async def startServer(self, name, *extra, redis=None):
        server = await startServer(
            self, self.tpki,
            "--redis", redis or self.redis.url(),
            "--audit-log", os.path.join(self.tpki.base, name + "-audit.jsonl"),
            "--history", os.path.join(self.tpki.base, name + "-history.sqlite3"),
            "--udp-broadcast", "127.255.255.255:{}".format(self.udpPort),
            "--reregister-interval", "5", "--cleanup-interval", "1",
            *extra,
        )
        self.servers[name] = server
        await server.proto.waitFor(r"joined the cluster")
        return server

    def client(self, server, who="alice"):
        c = JobMonClient(server.url, proxy=self.tpki.proxies[who], caDir=self.tpki.caDir,
                         timeout=30)
        self.addCleanup(c.close)
        return c

    async def waitUntil(self, check, limit, what):
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if await check():
                return time.monotonic() - start
            await deferLater(reactor, 0.1, lambda: None)
        self.fail("{} did not happen within {} s".format(what, limit))


class RoutingTests(ClusterBase):
    def test_queryThroughOtherServer(self):
        return Deferred.fromCoroutine(self._queryThroughOtherServer())

    async def _queryThroughOtherServer(self):
        a = await self.startServer("a")
        b = await self.startServer("b")
        await startDaemon(self, a, "job.1", self.workdir, self.tpki.proxies["alice"],
                          self.tpki.caDir)
        result = await inThread(self.client(b).query, "job.1",
                                {"op": "cat", "path": "job.log"})
        self.assertEqual(result["data"], b"hello\n")
        jobs = await inThread(self.client(b).listJobs)
        self.assertEqual([(j["job_id"], j["state"]) for j in jobs], [("job.1", "ready")])
        with self.assertRaises(JobMonError) as e:
            await inThread(self.client(b, "bob").query, "job.1", {"op": "ls"})
        self.assertEqual(e.exception.code, errors.NO_SUCH_JOB)

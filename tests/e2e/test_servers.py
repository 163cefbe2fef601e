"""
End-to-end tests of a daemon given several servers: real C{twistd
jobmon-server} and C{jobmon-daemon} processes on 127.0.0.1 with a PKI made
at test time.  The servers are independent (no shared store): the daemon
moves from one to the other by registering again.
"""

import os
import socket
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from jobmon.client import JobMonClient
from jobmon.errors import JobMonError
from tests.support import TestPKI, inThread, startDaemon, startServer

DEADLINE = 20.0
"""Seconds a test waits for the daemon to answer through a server."""


class _URL:
    """
    Stands for a started server where only a URL is wanted.
    """

    def __init__(self, url):
        self.url = url


def closedPort():
    """
    A TCP port on 127.0.0.1 where nothing listens.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeveralServersTests(TestCase):
    """
    A daemon with a list of servers.
    """

    timeout = 120

    def setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"hello\n")

    def startServer(self, name):
        """
        Start a server with its own audit log and history.
        """
        return startServer(
            self, self.tpki,
            "--audit-log", os.path.join(self.tpki.base, name + "-audit.jsonl"),
            "--history", os.path.join(self.tpki.base, name + "-history.sqlite3"),
        )

    def client(self, server):
        """
        A client of C{server} alone, closed at cleanup.
        """
        c = JobMonClient(server.url, proxy=self.tpki.proxies["alice"],
                         caDir=self.tpki.caDir, timeout=10)
        self.addCleanup(c.close)
        return c

    async def answers(self, server, jobId):
        """
        Query C{jobId} through C{server} until it answers, for at most
        L{DEADLINE} seconds.
        """
        c = self.client(server)
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                result = await inThread(
                    c.query, jobId, {"op": "stat", "path": "job.log", "timeout": 5})
                return result
            except JobMonError as e:
                if time.monotonic() > deadline:
                    self.fail("job {} did not answer through {} within {} s: {}".format(
                        jobId, server.url, DEADLINE, e))
            await deferLater(reactor, 0.2, lambda: None)

    async def test_firstServerDead(self):
        """
        A daemon whose first server does not listen registers with the
        second at once and answers a query there.
        """
        live = await self.startServer("live")
        dead = "https://127.0.0.1:{}/RPC2".format(closedPort())
        daemon = await startDaemon(
            self, _URL(dead), "multi.1", self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--server", live.url)
        result = await self.answers(live, "multi.1")
        self.assertEqual(result["size"], 6)
        output = daemon.output.decode("utf-8", "replace")
        self.assertIn("server {} lost (".format(dead), output)
        self.assertIn("registering with server {}".format(live.url), output)

    async def test_serverStopped(self):
        """
        A daemon on server 1 moves to server 2 when server 1 stops cleanly,
        and answers a query there within a few seconds.
        """
        one = await self.startServer("one")
        two = await self.startServer("two")
        daemon = await startDaemon(
            self, one, "multi.2", self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--server", two.url)
        self.assertEqual((await self.answers(one, "multi.2"))["size"], 6)
        mark = daemon.mark()
        stoppedAt = time.monotonic()
        await one.proto.stop()
        await daemon.waitFor(
            r"registering with server {}".format(two.url.replace(".", r"\.")),
            timeout=DEADLINE, after=mark)
        self.assertEqual((await self.answers(two, "multi.2"))["size"], 6)
        self.assertLess(time.monotonic() - stoppedAt, DEADLINE)

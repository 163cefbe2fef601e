"""
End-to-end: two real daemons for one job id of one owner.  The second is
refused while the first is alive (and both daemons' logs and the server's
say so); when the first crashes, the second takes the job over by itself.
"""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support import TestPKI, inThread, startDaemon, startServer


class TwoDaemonsTests(TestCase):
    """
    A server, and two daemons registering C{job.1}.
    """

    timeout = 60

    def workdir(self, base, name):
        """
        A working directory holding one file, C{name}, that tells which
        daemon answered.
        """
        path = os.path.join(base, name)
        os.makedirs(path)
        with open(os.path.join(path, name + ".txt"), "wb") as f:
            f.write(b"x")
        return path

    async def _test(self):
        from jobmon.client import JobMonClient

        tpki = TestPKI(os.path.abspath(self.mktemp()))
        server = await startServer(self, tpki)
        proxy = tpki.proxies["alice"]
        first = await startDaemon(
            self, server, "job.1", self.workdir(tpki.base, "first"), proxy, tpki.caDir,
            "--host-name", "wn-first",
        )
        second = await startDaemon(
            self, server, "job.1", self.workdir(tpki.base, "second"), proxy, tpki.caDir,
            "--host-name", "wn-second", wait=False,
        )
        await second.waitFor(
            r"cannot register job job\.1 with \S+: fault 409: job job\.1 is already "
            r"registered by a live daemon on host wn-first \(pid \d+\) since "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
        )
        await first.waitFor(
            r"the server says: another daemon for job job\.1 \(on host wn-second "
            r"\(pid \d+\)\) tried to register it at .* UTC and was refused: this daemon "
            r"keeps the job"
        )
        await server.proto.waitFor(
            r"job job\.1 of .*: registration by the daemon on host wn-second \(pid \d+\) "
            r"refused: the live daemon on host wn-first \(pid \d+\) holds it"
        )
        client = JobMonClient(server.url, proxy=proxy, caDir=tpki.caDir, timeout=30)
        self.addCleanup(client.close)
        # The second daemon retries, and is refused each time: the first
        # keeps the job, and answers.
        mark = second.mark()
        await second.waitFor(r"fault 409", after=mark)
        [job] = await inThread(client.listJobs)
        self.assertEqual(job["host"], "wn-first")
        listing = await inThread(client.query, "job.1", {"op": "ls", "path": "."})
        self.assertEqual([e["name"] for e in listing["entries"]], ["first.txt"])
        # The first daemon crashes: its channel closes, and the second
        # takes over within its retry delay (1 s here).
        first.signal("KILL")
        await first.whenEnded()
        await second.waitFor(r"wake channel up", timeout=10)
        [job] = await inThread(client.listJobs)
        self.assertEqual(job["host"], "wn-second")
        listing = await inThread(client.query, "job.1", {"op": "ls", "path": "."})
        self.assertEqual([e["name"] for e in listing["entries"]], ["second.txt"])

    def test_secondRefusedThenTakesOver(self):
        """
        The second daemon is refused with a 409 naming the first's host,
        pid and start, the first is told, the server logs it; after the
        first crashes, the second serves the job.
        """
        return Deferred.fromCoroutine(self._test())

"""
End-to-end tests of requests on the TCP wake channel: real C{twistd}
server and daemons on 127.0.0.1; a daemon of this version gets its queries
on the channel and answers there, one that speaks the previous protocol
(wake lines, C{getJobToDo}, C{outputJobResult}) still works.
"""

import os
import sys

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import JobMonClient
from jobmon.errors import JobMonError
from tests.support import TestPKI, inThread, spawn, startServer

OLD_DAEMON = """
import sys
import jobmon.protocols.wake as wake
# The previous version's hello: no features, so wake lines and HTTPS.
wake.FEATURES = ()
from twisted.scripts.twistd import run
sys.argv[0] = "twistd"
run()
"""

UP = r"wake channel up \((?:sealed|TLS), keep-alive \S+ s(, requests on the channel)?\)"


class WakeRequestsTests(TestCase):
    """
    A server and two jobs: C{job.new} with a daemon of this version,
    C{job.old} with one speaking the previous protocol.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"".join(b"line %d\n" % i for i in range(1, 101)))
        self.server = await startServer(self, self.tpki)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def daemon(self, jobId, old=False):
        """
        Start a daemon for C{jobId}; return whether its channel carries
        requests.
        """
        args = [
            "-n", "--pidfile=", "jobmon-daemon", "--server", self.server.url,
            "--job-id", jobId, "--workdir", self.workdir,
            "--proxy", self.tpki.proxies["alice"], "--ca-dir", self.tpki.caDir,
            "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
        ]
        if old:
            # A daemon of the previous version spoke TLS on the wake port too.
            proto = spawn(self, "old daemon", ["-c", OLD_DAEMON] + args + ["--wake-tls"],
                          program=sys.executable)
        else:
            proto = spawn(self, "daemon", args)
        match = await proto.waitFor(UP)
        return match.group(1) is not None

    def client(self, who="alice"):
        c = JobMonClient(self.server.url, proxy=self.tpki.proxies[who],
                         caDir=self.tpki.caDir, timeout=30)
        self.addCleanup(c.close)
        return c

    async def queries(self, jobId):
        """
        Queries of every kind answer through the job's daemon: results,
        errors, a follow held until the file grows, an admin's query (the
        job's owner added), and the audit counts the bytes.
        """
        c = self.client()
        st = await inThread(c.stat, jobId, "job.log")
        self.assertEqual((st["type"], st["size"]), ("file", 792))
        tail = await inThread(c.tail, jobId, "job.log", 2)
        self.assertEqual(tail["data"], b"line 99\nline 100\n")
        try:
            await inThread(c.stat, jobId, "missing")
        except JobMonError as e:
            self.assertEqual(e.code, errors.NO_SUCH_FILE)
        else:
            self.fail("stat of a missing file answered")
        d = inThread(c.follow, jobId, "job.log", offset=792, wait=10)
        with open(os.path.join(self.workdir, "job.log"), "ab") as f:
            f.write(b"more " + jobId.encode() + b"\n")
        followed = await d
        self.assertTrue(followed["data"].endswith(b"more " + jobId.encode() + b"\n"))
        admin = self.client("admin")
        st = await inThread(admin.stat, jobId, "job.log")
        self.assertEqual(st["job_owner"], self.tpki.dn("alice"))
        records = await inThread(admin.auditLog, jobId, 20)
        sizes = [r["bytes"] for r in records if r.get("op") == "tail"]
        self.assertEqual(sizes, [len(b"line 99\nline 100\n")])

    async def test_newDaemon(self):
        """
        A daemon of this version gets its requests on its channel, and
        every kind of query works.
        """
        self.assertTrue(await self.daemon("job.new"))
        await self.queries("job.new")

    async def test_oldDaemon(self):
        """
        A daemon speaking the previous protocol is woken and fetches over
        HTTPS, and every kind of query works; beside a new one.
        """
        self.assertFalse(await self.daemon("job.old", old=True))
        await self.queries("job.old")

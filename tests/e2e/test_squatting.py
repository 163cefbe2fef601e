"""
End-to-end: nobody can take another user's job id during a server
restart (issue 13).  Alice's daemon holds C{alice.1}; the server is
killed; while it restarts, Bob's daemon asks for C{alice.1} before hers
can.  He is refused, her daemon registers again, and an admin's C{cat}
reads her file.
"""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support import TestPKI, inThread, startDaemon, startServer


class SquattingTests(TestCase):
    """
    A real server, restarted under Alice's daemon, and Bob's daemon.
    """

    timeout = 60

    def workdir(self, base, name):
        """
        A working directory with a C{job.log} that says whose it is.
        """
        path = os.path.join(base, name)
        os.makedirs(path)
        with open(os.path.join(path, "job.log"), "wb") as f:
            f.write(name.encode() + b"'s log\n")
        return path

    async def _test(self):
        from jobmon.client import JobMonClient

        tpki = TestPKI(os.path.abspath(self.mktemp()))
        server = await startServer(self, tpki)
        alice = await startDaemon(
            self, server, "alice.1", self.workdir(tpki.base, "alice"), tpki.proxies["alice"],
            tpki.caDir,
        )
        ports = server.httpsPort, server.wakePort
        # The restarted server reserves the id from the history, written in
        # its own thread: wait until it holds the registration (the wake
        # channel may be up before, sealed channels connect in a few ms).
        aliceClient = JobMonClient(server.url, proxy=tpki.proxies["alice"], caDir=tpki.caDir,
                                   timeout=30)
        self.addCleanup(aliceClient.close)
        history = await inThread(aliceClient.history, "alice.1")
        self.assertEqual([j["job_id"] for j in history["jobs"]], ["alice.1"])
        server.proto.signal("KILL")
        await server.proto.whenEnded()
        # Alice's daemon is held still: Bob's asks first.
        alice.signal("STOP")
        self.addCleanup(lambda: alice.signal("CONT"))
        server = await startServer(self, tpki, httpsPort=ports[0], wakePort=ports[1])
        bob = await startDaemon(
            self, server, "alice.1", self.workdir(tpki.base, "bob"), tpki.proxies["bob"],
            tpki.caDir, wait=False,
        )
        await bob.waitFor(
            r"cannot register job alice\.1 with \S+: fault 409: job alice\.1 is registered "
            r"by another identity, or was within the last 24 h; job ids stay reserved for "
            r"their owner", timeout=15,
        )
        mark = alice.mark()
        alice.signal("CONT")
        await alice.waitFor(r"wake channel up", after=mark, timeout=15)
        admin = JobMonClient(server.url, proxy=tpki.proxies["admin"], caDir=tpki.caDir,
                             timeout=30)
        self.addCleanup(admin.close)
        [job] = await inThread(admin.listJobs, all=True)
        self.assertEqual(job["owner"], tpki.dn("alice"))
        result = await inThread(admin.query, "alice.1", {"op": "cat", "path": "job.log"})
        self.assertEqual(result["data"], b"alice's log\n")
        # Bob keeps being refused.
        mark = bob.mark()
        await bob.waitFor(r"fault 409", after=mark, timeout=15)

    def test_squatterRefusedAfterRestart(self):
        """
        Bob's daemon, first to ask for C{alice.1} after the restart, is
        refused with a 409; Alice's registers again; the admin reads her
        file and sees her as the owner.
        """
        return Deferred.fromCoroutine(self._test())

"""
End-to-end tests of the sealed wake channel: real C{twistd} server and
daemons on 127.0.0.1, sealed and TLS wake channels on one wake port.
"""

import os
import socket

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from jobmon.client import JobMonClient
from tests.support import TestPKI, inThread, startDaemon, startServer


class SealedWakeTests(TestCase):
    """
    A server offering the sealed wake channel, and one that does not.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"hello\n")

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def client(self, server):
        c = JobMonClient(server.url, proxy=self.tpki.proxies["alice"], caDir=self.tpki.caDir,
                         timeout=30)
        self.addCleanup(c.close)
        return c

    async def daemon(self, server, jobId, *extra):
        proto = await startDaemon(self, server, jobId, self.workdir, self.tpki.proxies["alice"],
                                  self.tpki.caDir, *extra, wait=False)
        match = await proto.waitFor(r"wake channel up \((sealed|TLS),")
        return proto, match.group(1)

    async def assertAnswers(self, client, jobId):
        for _ in range(3):
            result = await inThread(client.query, jobId, {"op": "cat", "path": "job.log"})
            self.assertEqual(result["data"], b"hello\n")

    async def test_sealedAndTLSOnOnePort(self):
        """
        A daemon seals its channel when the server offers it; one told
        C{--wake-tls} uses TLS on the same port; both answer queries.
        Bytes that are neither are refused and logged.
        """
        server = await startServer(self, self.tpki)
        _, sealedKind = await self.daemon(server, "sealed.1")
        _, tlsKind = await self.daemon(server, "tls.1", "--wake-tls")
        self.assertEqual((sealedKind, tlsKind), ("sealed", "TLS"))
        client = self.client(server)
        await self.assertAnswers(client, "sealed.1")
        await self.assertAnswers(client, "tls.1")
        jobs = {j["job_id"]: j["state"] for j in await inThread(client.listJobs)}
        self.assertEqual(jobs, {"sealed.1": "ready", "tls.1": "ready"})

        def junk():
            with socket.create_connection(("127.0.0.1", server.wakePort), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    return s.recv(100)
                except ConnectionResetError:
                    # Aborted: closed without a word.
                    return b""

        self.assertEqual(await inThread(junk), b"")
        await server.proto.waitFor(r"refused: neither TLS nor a sealed hello")

    async def test_serverWithoutSealed(self):
        """
        Against a server that does not offer the sealed channel, a daemon
        uses TLS.
        """
        server = await startServer(self, self.tpki, "--wake-tls-only")
        _, kind = await self.daemon(server, "job.1")
        self.assertEqual(kind, "TLS")
        await self.assertAnswers(self.client(server), "job.1")

    async def test_killedDaemonGone(self):
        """
        A sealed daemon killed (no unregistration) is gone at once: the
        close of its channel reaches the server.
        """
        server = await startServer(self, self.tpki)
        proto, kind = await self.daemon(server, "job.1")
        self.assertEqual(kind, "sealed")
        client = self.client(server)
        mark = server.proto.mark()
        proto.signal("KILL")
        await proto.whenEnded()
        await server.proto.waitFor(r"job job.1 of .* removed \(wake channel closed", after=mark,
                                   timeout=10)
        self.assertEqual(await inThread(client.listJobs), [])

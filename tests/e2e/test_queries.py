"""
End-to-end tests: real C{twistd jobmon-server} and C{jobmon-daemon}
processes on 127.0.0.1 with a PKI made at test time, queried through the
real client library over TLS.
"""

import datetime
import json
import os
import re
import signal
import socket
import ssl
import sys
import time
import xmlrpc.client

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from jobmon import __version__, errors
from jobmon.client import CERTIFICATE_REFUSED, JobMonClient
from jobmon.devtools import pki
from jobmon.errors import JobMonError
from tests.support import (
    ROOT,
    FaultAssertions,
    TestPKI,
    childEnv,
    freeUDPPort,
    inThread,
    spawn,
    startDaemon,
    startServer,
    waitForPending,
)


class EndToEndBase(FaultAssertions, TestCase):
    """
    A PKI, a server, and a job with its daemon.
    """

    timeout = 120
    serverArgs = ()

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(os.path.join(self.workdir, "sub"))
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"".join(b"line %d\n" % i for i in range(1, 101)))
        with open(os.path.join(self.workdir, "sub", "data.bin"), "wb") as f:
            f.write(bytes(range(256)))
        self.server = await startServer(
            self, self.tpki, *self.serverArgs, *self.extraServerArgs()
        )
        self.daemon = await startDaemon(
            self,
            self.server,
            "job.1",
            self.workdir,
            self.tpki.proxies["alice"],
            self.tpki.caDir,
        )

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def extraServerArgs(self):
        """
        Server arguments that depend on the test's directory.
        """
        return []

    def client(self, credential=None, key=None):
        """
        A client for the running server; closed in cleanup.
        """
        c = JobMonClient(
            self.server.url,
            proxy=credential or self.tpki.proxies["alice"],
            caDir=self.tpki.caDir,
            timeout=30,
            key=key,
        )
        self.addCleanup(c.close)
        return c


class CoreLoopTests(EndToEndBase):
    """
    The full loop for every op, and the identities accepted.
    """

    async def test_everyOp(self):
        """
        whoami, jobs, ls, stat, cat and tail all go through the real
        server and daemon.
        """
        c = self.client()
        me = await inThread(c.whoami)
        self.assertEqual(me["dn"], self.tpki.dn("alice"))
        self.assertTrue(me["proxy"])
        [job] = await inThread(c.listJobs)
        self.assertEqual((job["job_id"], job["owner"], job["state"]),
                         ("job.1", self.tpki.dn("alice"), "ready"))
        listing = await inThread(c.query, "job.1", {"op": "ls", "path": "."})
        self.assertEqual([e["name"] for e in listing["entries"]], ["job.log", "sub"])
        self.assertEqual(listing["entries"][1]["type"], "dir")
        st = await inThread(c.query, "job.1", {"op": "stat", "path": "sub/data.bin"})
        self.assertEqual((st["type"], st["size"]), ("file", 256))
        cat = await inThread(
            c.query, "job.1", {"op": "cat", "path": "sub/data.bin", "offset": 250, "length": 10}
        )
        self.assertEqual(cat["data"], bytes(range(250, 256)))
        tail = await inThread(c.query, "job.1", {"op": "tail", "path": "job.log", "lines": 2})
        self.assertEqual(tail["data"], b"line 99\nline 100\n")

    async def test_userCertAndProxyOfProxy(self):
        """
        A plain user certificate and a proxy of a proxy are accepted, as the
        same user.
        """
        for credential in (self.tpki.userFile("alice"), self.tpki.proxyOfProxy):
            c = self.client(credential)
            me = await inThread(c.whoami)
            self.assertEqual(me["dn"], self.tpki.dn("alice"))
            result = await inThread(c.query, "job.1", {"op": "stat", "path": "job.log"})
            self.assertEqual(result["type"], "file")

    async def test_otherUserRefused(self):
        """
        Bob cannot query Alice's job (it does not exist for him) and does
        not see it in his jobs; the admin can do both.
        """
        bob = self.client(self.tpki.proxies["bob"])
        await self.assertFault(errors.NO_SUCH_JOB, bob.query, "job.1", {"op": "ls"})
        self.assertEqual(await inThread(bob.listJobs), [])
        admin = self.client(self.tpki.proxies["admin"])
        self.assertTrue((await inThread(admin.whoami))["admin"])
        self.assertEqual(await inThread(admin.listJobs), [])
        [job] = await inThread(admin.listJobs, True)
        self.assertEqual(job["job_id"], "job.1")
        result = await inThread(admin.query, "job.1", {"op": "tail", "path": "job.log", "lines": 1})
        self.assertEqual(result["data"], b"line 100\n")

    async def test_audit(self):
        """
        Every query and refusal is in the audit log, which admins can read
        back for a job and users cannot.
        """
        alice = self.client()
        await inThread(alice.query, "job.1", {"op": "stat", "path": "job.log"})
        bob = self.client(self.tpki.proxies["bob"])
        await self.assertFault(errors.NO_SUCH_JOB, bob.query, "job.1", {"op": "ls"})
        admin = self.client(self.tpki.proxies["admin"])
        records = await inThread(admin.auditLog, "job.1", 100)
        events = [(r["event"], r.get("dn")) for r in records]
        self.assertIn(("register", self.tpki.dn("alice")), events)
        self.assertIn(("query", self.tpki.dn("alice")), events)
        self.assertIn(("refused", self.tpki.dn("bob")), events)
        [query] = [r for r in records if r["event"] == "query"]
        self.assertEqual((query["op"], query["args"], query["outcome"]),
                         ("stat", {"path": "job.log"}, "ok"))
        await self.assertFault(errors.NOT_AUTHORIZED, alice.auditLog, "job.1", 10)
        with open(os.path.join(self.tpki.base, "audit.jsonl")) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(len(lines), len(records))

    async def test_escapesAndMissingFile(self):
        """
        C{../} and symbolic-link escapes are refused; a missing file gives
        a clear error.
        """
        os.symlink("/etc", os.path.join(self.workdir, "etc"))
        os.symlink("/etc/hostname", os.path.join(self.workdir, "host"))
        c = self.client()
        for path in ("../x", "sub/../../x", "etc/passwd", "host", "/etc/hostname"):
            e = await self.assertFault(
                errors.OUTSIDE_WORKDIR, c.query, "job.1", {"op": "cat", "path": path}
            )
            self.assertIn("outside the job's working directory", e.message)
        e = await self.assertFault(
            errors.NO_SUCH_FILE, c.query, "job.1", {"op": "tail", "path": "nope.log"}
        )
        self.assertIn("nope.log", e.message)

    async def test_badRequests(self):
        """
        Malformed requests and unknown jobs get clear faults.
        """
        c = self.client()
        await self.assertFault(errors.BAD_REQUEST, c.query, "job.1", {"op": "rm", "path": "x"})
        await self.assertFault(
            errors.BAD_REQUEST, c.query, "job.1", {"op": "tail", "path": "job.log", "lines": -1}
        )
        await self.assertFault(errors.NO_SUCH_JOB, c.query, "job.2", {"op": "ls"})

    async def test_daemonStopsCleanly(self):
        """
        SIGTERM makes the daemon unregister and shut down cleanly (twistd
        then ends by the same signal, as a well-behaved Unix program does):
        the job leaves the list at once.
        """
        self.daemon.signal("TERM")
        code = await self.daemon.whenEnded()
        self.assertIn((code, self.daemon.signalled), [(0, None), (None, signal.SIGTERM)])
        output = self.daemon.output.decode()
        self.assertIn("job job.1 unregistered", output)
        self.assertIn("Server Shut Down", output)
        c = self.client()
        self.assertEqual(await inThread(c.listJobs), [])


class CertificateTests(EndToEndBase):
    """
    Credentials the server refuses at the handshake.
    """

    def rawHandshake(self, credential):
        """
        Connect with the standard library, bypassing the client's own
        checks, and return what the server answers (or the error).
        """
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.load_cert_chain(credential)
        with socket.create_connection(("127.0.0.1", self.server.httpsPort), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                body = b"<?xml version='1.0'?><methodCall><methodName>jobmon.whoami</methodName><params/></methodCall>"
                s.sendall(
                    b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                return s.recv(65536)

    async def assertRefused(self, credential):
        """
        The server refuses C{credential} at the TLS level, logs and audits
        why, and the client says so in one clear line.
        """
        mark = self.server.proto.mark()
        try:
            answer = await inThread(self.rawHandshake, credential)
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        else:
            self.assertEqual(answer, b"", "server answered: {!r}".format(answer[:200]))
        await self.server.proto.waitFor(r"certificate refused from 127\.0\.0\.1: ", after=mark)
        c = JobMonClient(self.server.url, proxy=credential, caDir=self.tpki.caDir, timeout=10)
        self.addCleanup(c.close)
        try:
            await inThread(c.whoami)
        except JobMonError as e:
            self.assertNotIn("Traceback", e.message)
            return e
        self.fail("client was not refused")

    async def test_otherCA(self):
        """
        A certificate from an unknown CA is refused.
        """
        other = pki.initPKI(os.path.join(self.tpki.base, "other"), users=("mallory",))
        e = await self.assertRefused(self._single(other.users["mallory"]))
        self.assertEqual(e.code, CERTIFICATE_REFUSED)

    def _single(self, user):
        path = user.certPath + ".both"
        with open(user.certPath, "rb") as c, open(user.keyPath, "rb") as k, open(path, "wb") as f:
            f.write(c.read() + k.read())
        return path

    async def test_expiredProxy(self):
        """
        An expired proxy is refused (by the client before connecting, and
        by the server when the client's check is bypassed).
        """
        alice = self.tpki.users["alice"]
        path = os.path.join(self.tpki.base, "expired")
        now = time.time()
        pki.makeProxy(
            alice.certPath, alice.keyPath, path,
            notBefore=datetime.datetime.fromtimestamp(now - 7200, datetime.timezone.utc),
            notAfter=datetime.datetime.fromtimestamp(now - 3600, datetime.timezone.utc),
        )
        e = await self.assertRefused(path)
        self.assertIn("expired", e.message)
        self.assertRegex(self.server.proto.output.decode(), r"certificate refused .*: expired")

    async def test_notYetValidProxy(self):
        """
        A proxy whose validity starts in the future is refused.
        """
        alice = self.tpki.users["alice"]
        path = os.path.join(self.tpki.base, "future")
        now = time.time()
        pki.makeProxy(
            alice.certPath, alice.keyPath, path,
            notBefore=datetime.datetime.fromtimestamp(now + 3600, datetime.timezone.utc),
            notAfter=datetime.datetime.fromtimestamp(now + 7200, datetime.timezone.utc),
        )
        e = await self.assertRefused(path)
        self.assertIn("not valid before", e.message)

    async def test_hostCertAsUser(self):
        """
        The host certificate passes TLS but cannot act as a user.
        """
        both = os.path.join(self.tpki.base, "host-both.pem")
        with open(self.tpki.hostCert, "rb") as c, open(self.tpki.hostKey, "rb") as k:
            data = c.read() + k.read()
        with open(both, "wb") as f:
            f.write(data)
        c = self.client(both)
        e = await self.assertFault(errors.NOT_AUTHENTICATED, c.whoami)
        self.assertIn("host or service certificate", e.message)

    async def test_revokedAfterReload(self):
        """
        A CRL dropped into the CA directory is picked up without a restart
        (SIGHUP): Bob's proxy is refused from then on, Alice's still works.
        """
        bob = self.client(self.tpki.proxies["bob"])
        self.assertEqual((await inThread(bob.whoami))["dn"], self.tpki.dn("bob"))
        bob.close()
        pki.makeCRL(self.tpki.pki.ca, revoked=[self.tpki.users["bob"].certPath])
        mark = self.server.proto.mark()
        self.server.proto.signal("HUP")
        await self.server.proto.waitFor(r"reloaded TLS credentials from .*\(1 CRL files\)", after=mark)
        e = await self.assertRefused(self.tpki.proxies["bob"])
        self.assertEqual(e.code, CERTIFICATE_REFUSED)
        alice = self.client()
        self.assertEqual((await inThread(alice.whoami))["dn"], self.tpki.dn("alice"))

    async def test_revokedOnOpenConnection(self):
        """
        A CRL picked up by a reload stops a connection opened before it:
        Bob's next request on his kept-alive connection is refused (401,
        saying his certificate was revoked) and the connection closed, so
        nothing more is done with it.
        """
        bob = self.client(self.tpki.proxies["bob"])
        self.assertEqual((await inThread(bob.whoami))["dn"], self.tpki.dn("bob"))
        pki.makeCRL(self.tpki.pki.ca, revoked=[self.tpki.users["bob"].certPath])
        mark = self.server.proto.mark()
        self.server.proto.signal("HUP")
        await self.server.proto.waitFor(r"reloaded TLS credentials from .*\(1 CRL files\)",
                                        after=mark)
        e = await self.assertFault(errors.NOT_AUTHENTICATED, bob.whoami)
        self.assertIn("revoked", e.message)
        await self.server.proto.waitFor(r"closing the connection of .*Bob Example.*revoked",
                                        after=mark)
        # Alice's own kept-alive connection goes on.
        alice = self.client()
        self.assertEqual((await inThread(alice.whoami))["dn"], self.tpki.dn("alice"))

    async def test_revokedWakeChannelClosed(self):
        """
        A reload whose CRL revokes a daemon's owner closes its open wake
        channel at once (and its reconnection is refused at the handshake).
        """
        await self.server.proto.waitFor(r"wake channel|registered")
        pki.makeCRL(self.tpki.pki.ca, revoked=[self.tpki.users["alice"].certPath])
        mark = self.server.proto.mark()
        self.server.proto.signal("HUP")
        await self.server.proto.waitFor(
            r"closing the wake channel of .*Alice Example: the certificate .* is revoked",
            after=mark)

    async def test_expiredOnOpenConnection(self):
        """
        A proxy that expires while its connection is open stops working on
        that connection: the next request is a 401 saying when it expired.
        """
        alice = self.tpki.users["alice"]
        path = os.path.join(self.tpki.base, "short")
        end = int(time.time()) + 3
        pki.makeProxy(
            alice.certPath, alice.keyPath, path,
            notAfter=datetime.datetime.fromtimestamp(end, datetime.timezone.utc),
        )
        c = self.client(path)
        self.assertEqual((await inThread(c.whoami))["dn"], self.tpki.dn("alice"))
        await deferLater(reactor, max(0.1, end + 0.5 - time.time()), lambda: None)
        e = await self.assertFault(errors.NOT_AUTHENTICATED, c.whoami)
        self.assertIn("your proxy expired at " + time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(end)), e.message)

    async def test_hostCredentialReloaded(self):
        """
        A renewed host certificate is served to new connections after a
        change on disk, without a restart.
        """

        def serverSerial():
            ctx = ssl.create_default_context(capath=self.tpki.caDir)
            ctx.load_cert_chain(self.tpki.proxies["alice"])
            with socket.create_connection(("127.0.0.1", self.server.httpsPort), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    return s.getpeercert()["serialNumber"]

        before = await inThread(serverSerial)
        pki.makeHostCert(self.tpki.pki.ca, self.tpki.hostCert, self.tpki.hostKey)
        mark = self.server.proto.mark()
        self.server.proto.signal("HUP")
        await self.server.proto.waitFor(r"reloaded TLS credentials", after=mark)
        after = await inThread(serverSerial)
        self.assertNotEqual(before, after)
        # The daemon's wake channel and queries keep working.
        c = self.client()
        result = await inThread(c.query, "job.1", {"op": "stat", "path": "job.log"})
        self.assertEqual(result["type"], "file")

    async def test_forgedProxy(self):
        """
        A proxy signed by a key that is not its issuer's is refused.
        """
        alice = self.tpki.users["alice"]
        bob = self.tpki.users["bob"]
        path = os.path.join(self.tpki.base, "forged")
        pki.makeProxy(alice.certPath, alice.keyPath, path,
                      signingKey=pki.readPrivateKey(bob.keyPath))
        e = await self.assertRefused(path)
        self.assertEqual(e.code, CERTIFICATE_REFUSED)

    async def test_independentProxy(self):
        """
        An independent proxy passes TLS but cannot act as its user.
        """
        alice = self.tpki.users["alice"]
        path = os.path.join(self.tpki.base, "independent")
        pki.makeProxy(alice.certPath, alice.keyPath, path, independent=True)
        c = self.client(path)
        await self.assertFault(errors.NOT_AUTHENTICATED, c.whoami)


class FailureTests(EndToEndBase):
    """
    Jobs that die, hang, and a server that restarts.
    """

    serverArgs = ("--query-timeout", "3")

    async def test_killedDaemon(self):
        """
        A daemon killed with SIGKILL while a query is pending makes the
        query fail with "job gone" within a second.
        """
        self.daemon.signal("STOP")
        c = self.client()
        pending = Deferred.fromCoroutine(
            self.assertFault(errors.JOB_GONE, c.query, "job.1", {"op": "ls"})
        )
        self.assertEqual(await waitForPending(self.client(), 1), 1)
        self.daemon.signal("KILL")
        killed = time.monotonic()
        await pending
        self.assertLess(time.monotonic() - killed, 1.0)
        self.assertEqual(await inThread(c.listJobs), [])

    async def test_stuckJobDoesNotDelayOthers(self):
        """
        A query stuck on one job does not slow down queries to another.
        """
        other = await startDaemon(
            self, self.server, "job.2", self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir,
        )
        self.daemon.signal("STOP")
        c1, c2 = self.client(), self.client()
        stuck = inThread(c1.query, "job.1", {"op": "ls"})
        self.assertEqual(await waitForPending(c2, 1), 1)
        times = []
        for _ in range(20):
            start = time.monotonic()
            await inThread(c2.query, "job.2", {"op": "stat", "path": "job.log"})
            times.append(time.monotonic() - start)
        self.assertLess(max(times), 0.5, times)
        self.daemon.signal("CONT")
        await stuck
        self.assertTrue(other.running)

    async def test_clientGoesAway(self):
        """
        A client that disconnects while its query is pending withdraws it:
        the job's pending count returns to zero at once.
        """
        self.daemon.signal("STOP")
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.load_cert_chain(self.tpki.proxies["alice"])
        body = xmlrpc.client.dumps(("job.1", {"op": "ls"}), "jobmon.query").encode()

        def sendAndLeave():
            raw = socket.create_connection(("127.0.0.1", self.server.httpsPort), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            return s

        s = await inThread(sendAndLeave)
        c = self.client()
        self.assertEqual(await waitForPending(c, 1), 1)
        s.close()
        self.assertEqual(await waitForPending(c, 0), 0)
        # Recorded as the user's doing, not as a server error.
        with open(os.path.join(self.tpki.base, "audit.jsonl")) as f:
            [query] = [r for r in map(json.loads, f) if r["event"] == "query"]
        self.assertEqual((query["op"], query["outcome"]), ("ls", "cancelled"))

    async def test_timeout(self):
        """
        A job that never answers gives the timeout fault after the server's
        query timeout.
        """
        self.daemon.signal("STOP")
        c = self.client()
        start = time.monotonic()
        await self.assertFault(errors.TIMEOUT, c.query, "job.1", {"op": "ls"})
        self.assertGreater(time.monotonic() - start, 2.5)

    async def test_serverRestart(self):
        """
        After a server restart the daemon registers again by itself and
        queries work.
        """
        https, wake = self.server.httpsPort, self.server.wakePort
        mark = self.daemon.mark()
        await self.server.proto.stop()
        self.server = await startServer(self, self.tpki, httpsPort=https, wakePort=wake)
        await self.daemon.waitFor(r"wake channel up", after=mark)
        c = self.client()
        result = await inThread(c.query, "job.1", {"op": "tail", "path": "job.log", "lines": 1})
        self.assertEqual(result["data"], b"line 100\n")
        # The history kept what happened before the restart: the job's
        # registration ended with the server.
        history = await inThread(c.history, "job.1")
        self.assertEqual([j["why"] for j in history["jobs"]][:1], ["server restarted"])
        self.assertEqual(len(history["jobs"]), 2)
        self.assertEqual([q["op"] for q in history["queries"]], ["tail"])


class CommandLineTests(EndToEndBase):
    """
    The real C{jobmon-query} program against the real server and daemon.
    """

    async def jobmonQuery(self, *args, proxy="alice"):
        """
        Run C{jobmon-query ARGS}; return C{(stdout, stderr, exit code)}.
        """
        env = childEnv(
            JOBMON_SERVER=self.server.url,
            X509_USER_PROXY=self.tpki.proxies[proxy],
            X509_CERT_DIR=self.tpki.caDir,
        )
        return await getProcessOutputAndValue(
            sys.executable, ["-m", "jobmon.cli"] + list(args), env=env, path=ROOT
        )

    async def test_commands(self):
        """
        whoami, jobs, ls, tail and cat print what a person expects and exit
        0.
        """
        out, err, code = await self.jobmonQuery("whoami")
        self.assertEqual((code, err), (0, b""))
        self.assertIn(self.tpki.dn("alice").encode(), out)
        self.assertRegex(out.decode(), r"(?m)^credential: proxy .+, expires .+ UTC \(in \S+\)$")
        self.assertIn(b"\nserver: JobMon %s\n" % (__version__.encode(),), out)
        out, err, code = await self.jobmonQuery("jobs")
        self.assertEqual(code, 0)
        self.assertRegex(out.decode(), r"(?m)^job\.1\s+Alice Example\s+\S+\s+-\s+tcp\s+ready")
        out, err, code = await self.jobmonQuery("ls", "job.1", "-l")
        self.assertEqual(code, 0)
        self.assertRegex(out.decode(), r"(?m)^-rw.* 792 .* job\.log$")
        self.assertRegex(out.decode(), r"(?m)^d.* sub$")
        out, err, code = await self.jobmonQuery("tail", "job.1", "job.log", "-n", "3")
        self.assertEqual((out, code), (b"line 98\nline 99\nline 100\n", 0))
        out, err, code = await self.jobmonQuery("cat", "job.1", "sub/data.bin")
        self.assertEqual((out, code), (bytes(range(256)), 0))
        out, err, code = await self.jobmonQuery("--json", "stat", "job.1", "job.log")
        self.assertEqual(json.loads(out)["size"], 792)

    async def test_exitCodes(self):
        """
        Errors are one line on stderr with the documented exit code.
        """
        for args, proxy, expected in [
            (("cat", "job.1", "missing.txt"), "alice", 1),
            (("cat", "job.1", "../secret"), "alice", 1),
            (("ls", "job.9"), "alice", 5),
            (("ls", "job.1"), "bob", 5),
            (("frobnicate",), "alice", 2),
        ]:
            out, err, code = await self.jobmonQuery(*args, proxy=proxy)
            self.assertEqual(code, expected, (args, err))
            self.assertEqual(err.count(b"\n"), 1, err)
            self.assertTrue(err.startswith(b"jobmon-query: "), err)
            self.assertNotIn(b"Traceback", err)

    async def test_interruptedFollow(self):
        """
        C{tail -f} of a job named by a prefix of its id, ended with Ctrl-C:
        nothing refused, and the follow that was waiting is recorded as
        cancelled (audit, history, metrics), not as a server error.
        """
        env = childEnv(
            JOBMON_SERVER=self.server.url,
            X509_USER_PROXY=self.tpki.proxies["alice"],
            X509_CERT_DIR=self.tpki.caDir,
        )
        tail = spawn(self, "jobmon-query", ["-m", "jobmon.cli", "tail", "-f", "job", "job.log",
                                            "-n", "1"], env=env, program=sys.executable)
        await tail.waitFor(r"line 100\n")
        c = self.client()
        self.assertEqual(await waitForPending(c, 1), 1)
        tail.signal("INT")
        self.assertEqual(await tail.whenEnded(), 130, tail.output)  # interrupted, quietly
        self.assertEqual(bytes(tail.output), b"line 100\n")
        self.assertEqual(await waitForPending(c, 0), 0)
        with open(os.path.join(self.tpki.base, "audit.jsonl")) as f:
            records = [json.loads(line) for line in f]
        self.assertEqual([r for r in records if r["event"] == "refused"], [])
        queries = [r for r in records if r["event"] == "query"]
        self.assertEqual({r["job_id"] for r in queries}, {"job.1"})
        self.assertEqual((queries[-1]["op"], queries[-1]["outcome"]), ("follow", "cancelled"))
        history = await inThread(c.history, "job")
        self.assertEqual(history["queries"][-1]["outcome"], "cancelled")
        self.assertNotIn("error", {q["outcome"] for q in history["queries"]})


class WakeModeTests(FaultAssertions, TestCase):
    """
    UDP broadcast and HTTPS long-poll jobs beside TCP ones, on one server.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"hello\n")
        self.udpPort = freeUDPPort()
        self.server = await startServer(
            self, self.tpki,
            "--udp-broadcast", "127.255.255.255:{}".format(self.udpPort),
            "--reregister-interval", "1", "--missed-registrations", "2",
            "--cleanup-interval", "0.25", "--query-timeout", "20",
        )
        self.client = JobMonClient(
            self.server.url, proxy=self.tpki.proxies["alice"], caDir=self.tpki.caDir,
            timeout=30,
        )
        self.addCleanup(self.client.close)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def daemon(self, jobId, mode):
        proto = await startDaemon(
            self, self.server, jobId, self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--wake", mode, wait=False,
        )
        await proto.waitFor(r"registered with .* \({} wake\)".format(mode))
        return proto

    async def test_everyMode(self):
        """
        One job per mode, and three UDP jobs sharing the host's UDP port:
        each answers its own queries, listed with its mode.
        """
        for jobId, mode in [("t", "tcp"), ("p", "poll"), ("u1", "udp"), ("u2", "udp"),
                            ("u3", "udp")]:
            await self.daemon(jobId, mode)
        jobs = {j["job_id"]: j["mode"] for j in await inThread(self.client.listJobs)}
        self.assertEqual(jobs, {"t": "tcp", "p": "poll", "u1": "udp", "u2": "udp", "u3": "udp"})
        for jobId in jobs:
            for _ in range(3):
                result = await inThread(
                    self.client.query, jobId, {"op": "cat", "path": "job.log", "timeout": 10}
                )
                self.assertEqual(result["data"], b"hello\n")

    async def test_killedUDPDaemon(self):
        """
        A UDP job whose daemon is killed disappears after the cleanup limit;
        a pending query fails then with "job gone", long before the query
        timeout.
        """
        proto = await self.daemon("u", "udp")
        proto.signal("KILL")
        await proto.whenEnded()
        start = time.monotonic()
        await self.assertFault(errors.JOB_GONE, self.client.query, "u", {"op": "ls"})
        # The limit is 2 intervals of 1 s, checked every 0.25 s.
        self.assertLess(time.monotonic() - start, 4)
        self.assertEqual(await inThread(self.client.listJobs), [])
        self.assertIn("not re-registered", self.server.proto.output.decode())

    async def test_killedPollDaemon(self):
        """
        A poll job whose daemon is killed is dropped when its polls lapse.
        """
        proto = await self.daemon("p", "poll")
        proto.signal("KILL")
        await proto.whenEnded()
        start = time.monotonic()
        await self.assertFault(errors.JOB_GONE, self.client.query, "p", {"op": "ls"})
        self.assertLess(time.monotonic() - start, 4)

    async def test_forgedAndReplayedWakes(self):
        """
        Forged, replayed and junk datagrams sent to the daemons' port are
        dropped and logged; the job still answers.
        """
        from jobmon.protocols.udp import encodeWake

        proto = await self.daemon("u", "udp")
        # Listen beside the daemons, as any process on the host could, to
        # capture a real wake.
        spy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(spy.close)
        spy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        spy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        spy.bind(("", self.udpPort))
        spy.settimeout(5)
        result = await inThread(self.client.query, "u", {"op": "stat", "path": "job.log"})
        self.assertEqual(result["size"], 6)
        captured, _ = await inThread(spy.recvfrom, 1000)
        mark = proto.mark()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for datagram in [captured, encodeWake("u", 10**6, b"k" * 32), b"junk"]:
            sender.sendto(datagram, ("127.255.255.255", self.udpPort))
        # The first drop of each kind is logged at once.
        await proto.waitFor(r"(?s)(dropped UDP wakes.*){3}", after=mark)
        text = proto.output.decode()[mark:]
        counts = re.findall(r"(\d+) forged, (\d+) replayed, (\d+) junk", text)
        totals = [sum(int(c[i]) for c in counts) for i in range(3)]
        self.assertEqual(totals, [1, 1, 1])
        result = await inThread(self.client.query, "u", {"op": "stat", "path": "job.log"})
        self.assertEqual(result["size"], 6)


class BlackHoleTests(EndToEndBase):
    """
    A worker that goes silent: short keep-alive, long query timeout.
    """

    serverArgs = ("--keepalive", "1", "--query-timeout", "10")

    async def test_blackHoledChannel(self):
        """
        A wake channel that goes silent without closing (a stopped or cut
        off worker) is dropped after three keep-alive intervals: the job is
        gone and its pending query fails then.
        """
        self.daemon.signal("STOP")
        c = self.client()
        start = time.monotonic()
        e = await self.assertFault(errors.JOB_GONE, c.query, "job.1", {"op": "ls"})
        elapsed = time.monotonic() - start
        # Three silent 1 s intervals (less the time already silent), well
        # before the 10 s query timeout.
        self.assertLess(elapsed, 4.0)
        self.assertIn("went away", e.message)



class MetricsTests(EndToEndBase):
    """
    The metrics port: Prometheus metrics and a health check.
    """

    serverArgs = ("--metrics-port", "0")

    def extraServerArgs(self):
        return ["--log-dir", os.path.join(self.tpki.base, "logs")]

    async def test_logFiles(self):
        """
        With --log-dir the server writes JSON lines by category: the job's
        registration and its wake channel each in their own file.
        """
        logs = os.path.join(self.tpki.base, "logs")

        def read(name):
            with open(os.path.join(logs, name)) as f:
                return [json.loads(line) for line in f if line.strip()]

        [registration] = read("jobmon-registration.jsonl")
        self.assertEqual((registration["job_id"], registration["mode"]), ("job.1", "tcp"))
        self.assertIn("job.1", [e.get("job_id") for e in read("jobmon-wake.jsonl")])
        self.assertTrue(read("jobmon-server.jsonl"))

    def fetch(self, path):
        import urllib.request

        port = int(re.search(r"metrics on (\d+)", self.server.proto.output.decode()).group(1))
        with urllib.request.urlopen("http://127.0.0.1:{}{}".format(port, path), timeout=10) as r:
            return r.status, r.read().decode()

    async def test_metricsAndHealth(self):
        """
        /healthz says ok; /metrics counts jobs by mode and state, queries by
        op and outcome, refusals and registrations.
        """
        self.assertEqual(await inThread(self.fetch, "/healthz"), (200, "ok\n"))
        c = self.client()
        await inThread(c.query, "job.1", {"op": "stat", "path": "job.log"})
        bob = self.client(self.tpki.proxies["bob"])
        await self.assertFault(errors.NO_SUCH_JOB, bob.query, "job.1", {"op": "ls"})
        status, text = await inThread(self.fetch, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn('jobmon_jobs{mode="tcp",state="ready"} 1.0', text)
        self.assertIn('jobmon_query_seconds_count{op="stat",outcome="ok"} 1.0', text)
        self.assertIn('jobmon_refusals_total{reason="not-found"} 1.0', text)
        self.assertIn('jobmon_registrations_total{mode="tcp"} 1.0', text)
        self.assertIn('jobmon_wakes_sent_total{mode="tcp"} 1.0', text)
        self.assertIn("jobmon_pending_queries 0.0", text)

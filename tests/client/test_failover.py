"""
Tests for a client given several servers: one that cannot be reached (no
listener, a failed TLS handshake) or that answers fault 503 (shutting
down) is left for the next; other errors are final.  Real TLS on
127.0.0.1, as in L{tests.client.test_client}.
"""

import io
import xmlrpc.client

from twisted.trial.unittest import SynchronousTestCase

from jobmon import client, errors
from jobmon.cli import main
from jobmon.client import ClientError, JobMonClient
from jobmon.errors import JobMonError
from jobmon.serverlist import splitServers
from tests.cli.test_cli import FakeClient
from tests.client.test_client import TLSTestCase


class FailoverTests(TLSTestCase):
    """
    L{JobMonClient} with a list of servers.
    """

    def url(self, server=None, port=None):
        """
        The URL of C{server}, or of C{port} on 127.0.0.1.
        """
        if port is None:
            port = server.server_address[1]
        return "https://127.0.0.1:%d/RPC2" % (port,)

    def makeClient(self, *urls, **kw):
        """
        A client for the servers C{urls}, closed at cleanup.
        """
        kw.setdefault("proxy", self.pki.proxy)
        kw.setdefault("caDir", self.pki.ca.hashedDir)
        kw.setdefault("timeout", 10)
        c = JobMonClient(", ".join(urls), **kw)
        self.addCleanup(c.close)
        return c

    def test_refusedThenNext(self):
        """
        A server where nothing listens is left for the next one, which
        the following calls keep using.
        """
        live = self.startServer()
        c = self.makeClient(self.url(port=self.freePort()), self.url(live))
        self.assertEqual(c.whoami()["dn"], "/DC=org/CN=Alice Example")
        self.assertEqual(c.url, self.url(live))
        c.listJobs()
        self.assertEqual((live.accepted, len(live.requests)), (1, 2))

    def test_tlsFailureThenNext(self):
        """
        A server whose TLS handshake fails (it speaks plain HTTP) is left
        for the next one.
        """
        plain = self.startServer(plain=True)
        live = self.startServer()
        c = self.makeClient(self.url(plain), self.url(live))
        self.assertEqual(c.whoami()["dn"], "/DC=org/CN=Alice Example")
        self.assertEqual(len(live.requests), 1)

    def test_shuttingDownThenNext(self):
        """
        A server that answers fault 503 (it is shutting down, the call did
        not run) is left for the next one, which gets the same call.
        """
        stopping = self.startServer()
        stopping.behave = lambda n, method, params: xmlrpc.client.Fault(
            errors.UNAVAILABLE, "server is shutting down")
        live = self.startServer()
        c = self.makeClient(self.url(stopping), self.url(live))
        self.assertEqual([j["job_id"] for j in c.listJobs()], ["1.0"])
        self.assertEqual([r[1] for r in stopping.requests], ["jobmon.listJobs"])
        self.assertEqual([r[1] for r in live.requests], ["jobmon.listJobs"])

    def test_applicationErrorFinal(self):
        """
        Any other fault (no such job, not authorized...) is the answer: the
        next server is not asked.
        """
        first = self.startServer()
        second = self.startServer()
        c = self.makeClient(self.url(first), self.url(second))
        e = self.assertRaises(JobMonError, c.stat, "9.9", "f")
        self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertEqual(second.requests, [])

    def test_everyServerUnreachable(self):
        """
        When no server can be reached the error names each.
        """
        ports = [self.freePort(), self.freePort()]
        c = self.makeClient(*[self.url(port=p) for p in ports])
        e = self.assertRaises(ClientError, c.whoami)
        self.assertEqual(e.code, client.UNREACHABLE)
        self.assertTrue(str(e).startswith("no JobMon server could be reached: "), str(e))
        for port in ports:
            self.assertIn("127.0.0.1:%d/RPC2: connection refused" % (port,), str(e))

    def test_everyServerShuttingDown(self):
        """
        When every server is shutting down the last 503 is the answer;
        each server was asked once.
        """
        servers = [self.startServer(), self.startServer()]
        for s in servers:
            s.behave = lambda n, method, params: xmlrpc.client.Fault(
                errors.UNAVAILABLE, "server is shutting down")
        c = self.makeClient(*[self.url(s) for s in servers])
        e = self.assertRaises(JobMonError, c.whoami)
        self.assertEqual(e.code, errors.UNAVAILABLE)
        self.assertEqual([len(s.requests) for s in servers], [1, 1])

    def test_urls(self):
        """
        Every URL is checked when the client is made, and shown normalized.
        """
        c = JobMonClient("https://a.example, https://b.example:9/x")
        self.assertEqual(c.urls, ["https://a.example:8443/RPC2", "https://b.example:9/x"])
        self.assertEqual(c.url, c.urls[0])
        e = self.assertRaises(ClientError, JobMonClient, "https://a.example,http://b")
        self.assertEqual(e.code, client.BAD_URL)
        self.assertEqual(splitServers([" a ,b", "a,,c"]), ["a", "b", "c"])


class CommandLineTests(SynchronousTestCase):
    """
    C{jobmon-query --server} is repeatable; C{JOBMON_SERVER} may hold a
    comma-separated list; the client gets them all.
    """

    def made(self, argv, environ):
        fake = FakeClient({"listJobs": []})
        out = io.TextIOWrapper(io.BytesIO())
        main(argv, stdout=out, stderr=io.StringIO(), environ=environ,
             clientFactory=fake.factory)
        return [server for server, _ in fake.made]

    def test_repeatable(self):
        """
        Each C{--server} adds one.
        """
        self.assertEqual(
            self.made(["--server", "https://a", "--server", "https://b", "jobs"],
                      {"X509_USER_PROXY": "/p"}),
            ["https://a,https://b"])

    def test_environment(self):
        """
        C{JOBMON_SERVER} goes to the client as it is.
        """
        self.assertEqual(
            self.made(["jobs"], {"JOBMON_SERVER": "https://a, https://b",
                                 "X509_USER_PROXY": "/p"}),
            ["https://a, https://b"])

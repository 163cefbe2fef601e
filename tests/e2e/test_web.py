"""
End-to-end test of the browser view: a real server and job daemon, and
requests over real TLS with a user's proxy, as a browser holding her
certificate sends them (the page, the JSON API, a POST refused without the
page's header, the live follow of a file as Server-Sent Events).
"""

import http.client
import json
import os
import socket
import ssl
import time

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support import TestPKI, inThread, startDaemon, startServer

COMMANDS = """
[commands.echo]
description = "say the arguments back"
argv = ["/bin/echo", "{args}"]
args = "^[a-z0-9<>]{1,10}$"
max_args = 3
"""

EVIL = "<img src=x onerror=alert(1)>"
"""A file name that must reach the page as text."""


class WebEndToEndTests(TestCase):
    """
    A server, Alice's job daemon, and HTTPS requests with her proxy (and
    Bob's).
    """

    timeout = 90

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "out.log"), "w") as f:
            f.write("first line\n")
        with open(os.path.join(self.workdir, EVIL), "w") as f:
            f.write("<script>alert(1)</script>\n")
        commands = os.path.join(self.tpki.base, "commands.toml")
        with open(commands, "w") as f:
            f.write(COMMANDS)
        self.server = await startServer(self, self.tpki)
        await startDaemon(self, self.server, "job.1", self.workdir, self.tpki.proxies["alice"],
                          self.tpki.caDir, "--commands", commands)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def connection(self, who="alice"):
        """
        An HTTPS connection to the server with C{who}'s proxy.
        """
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.check_hostname = False
        ctx.load_cert_chain(self.tpki.proxies[who])
        return http.client.HTTPSConnection("127.0.0.1", self.server.httpsPort, context=ctx,
                                           timeout=30)

    def fetch(self, path, who="alice", method="GET", body=None, headers=None):
        """
        One request: C{(status, headers, body)}.
        """
        conn = self.connection(who)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    async def test_browserView(self):
        """
        The page, the listing of Alice's job, its files (a name holding
        HTML comes back as data, in JSON), Bob seeing nothing of hers, and
        a POST without the page's header refused.
        """
        status, headers, body = await inThread(self.fetch, "/")
        self.assertEqual(status, 200)
        self.assertIn("frame-ancestors 'none'", headers["Content-Security-Policy"])
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertIn(b"/static/app.js", body)
        status, headers, body = await inThread(self.fetch, "/static/app.js")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/javascript; charset=utf-8"))

        status, headers, body = await inThread(self.fetch, "/api/jobs")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Cache-Control"], "no-store")
        self.assertEqual([j["job_id"] for j in json.loads(body)], ["job.1"])
        status, _, body = await inThread(self.fetch, "/api/query?job=job.1&op=ls&path=.")
        self.assertEqual(status, 200, body)
        self.assertIn(EVIL, [e["name"] for e in json.loads(body)["entries"]])

        status, _, body = await inThread(self.fetch, "/api/jobs", "bob")
        self.assertEqual(json.loads(body), [])
        status, _, body = await inThread(self.fetch, "/api/query?job=job.1&op=ps", "bob")
        self.assertEqual((status, json.loads(body)["code"]), (404, 404))

        status, _, body = await inThread(
            self.fetch, "/api/signal", "alice", "POST", b'{"job": "job.1", "signal": "TERM"}',
            {"Content-Type": "application/json"})
        self.assertEqual(status, 403)
        # XML-RPC is still there, beside the view.
        status, _, body = await inThread(self.fetch, "/RPC2")
        self.assertIn(b"XML-RPC endpoint", body)

    async def test_run(self):
        """
        A command run from the page (a POST with its header, from its own
        origin) runs on the job; its output comes back as text.
        """
        origin = "https://127.0.0.1:{}".format(self.server.httpsPort)
        status, headers, body = await inThread(
            self.fetch, "/api/run", "alice", "POST",
            json.dumps({"job": "job.1", "name": "echo", "args": ["<b>hi"]}).encode(),
            {"Content-Type": "application/json", "X-JobMon-Request": "1", "Origin": origin,
             "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Cache-Control"], "no-store")
        result = json.loads(body)
        self.assertEqual((result["exit_code"], result["stdout_text"]), (0, "<b>hi\n"))
        # Another origin: refused, nothing run.
        status, _, body = await inThread(
            self.fetch, "/api/run", "alice", "POST",
            json.dumps({"job": "job.1", "name": "echo", "args": ["x"]}).encode(),
            {"Content-Type": "application/json", "X-JobMon-Request": "1",
             "Origin": "https://evil.example"})
        self.assertEqual((status, json.loads(body)["code"]), (403, 403))

    def followOnce(self):
        """
        Follow C{out.log} from its end, append a line, and read the event
        that brings it.

        @return: C{(event text, seconds from the write to the event)}.
        """
        path = os.path.join(self.workdir, "out.log")
        size = os.path.getsize(path)
        conn = self.connection()
        try:
            conn.request("GET", "/api/follow?job=job.1&path=out.log&offset={}".format(size),
                         headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            self.assertEqual(response.headers["Content-Type"], "text/event-stream; charset=utf-8")
            # Whether the follow query reached the daemon yet or not, it
            # answers from the offset given: the line is not missed.
            with open(path, "a") as f:
                f.write("second <b>line</b>\n")
            written = time.monotonic()
            text = b""
            while b"event: data" not in text or not text.endswith(b"\n\n"):
                try:
                    chunk = response.read1(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                text += chunk
            return text.decode("utf-8"), time.monotonic() - written
        finally:
            conn.close()

    async def test_follow(self):
        """
        The follow stream brings a line written to the file, as an event
        whose id is the next offset (how soon: C{bench/web_follow.py}).
        """
        text, seconds = await inThread(self.followOnce)
        self.assertIn("event: data", text)
        data = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])
        self.assertEqual(data["text"], "second <b>line</b>\n")
        self.assertIn("id: {}\n".format(int(data["next_offset"])), text)


class WebTokenTests(TestCase):
    """
    A server taking bearer tokens: a browser without a certificate gets the
    page, and the API with the token in its header.
    """

    timeout = 90

    async def _setUp(self):
        from jobmon.devtools.issuer import makeIssuer

        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.issuer = makeIssuer(os.path.join(self.tpki.base, "issuer"),
                                 users={"alice-sub": self.tpki.dn("alice")})
        self.server = await startServer(self, self.tpki, "--token-issuers",
                                        self.issuer.configPath)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def fetch(self, path, headers=None):
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.httpsPort, context=ctx,
                                           timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    async def test_token(self):
        """
        The page needs no credential; the API answers 401 without the token
        and knows Alice with it.
        """
        status, _, body = await inThread(self.fetch, "/jobs/job.1")
        self.assertEqual(status, 200)
        self.assertIn(b'id="token-form"', body)
        status, headers, body = await inThread(self.fetch, "/api/whoami")
        self.assertEqual((status, json.loads(body)["code"]), (401, 401))
        token = self.issuer.mint("alice-sub", "compute.read")
        status, _, body = await inThread(self.fetch, "/api/whoami",
                                         {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["dn"], self.tpki.dn("alice"))

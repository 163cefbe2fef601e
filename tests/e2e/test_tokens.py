"""
End-to-end tests of bearer tokens: a real server trusting a token issuer
made at test time, daemons registering with tokens in every wake mode,
users querying with tokens through the client library and C{jobmon-query},
and each refused token's fault.
"""

import http.client
import json
import os
import ssl
import sys
import time

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import CERTIFICATE_REFUSED, CREDENTIAL_EXPIRED, JobMonClient
from jobmon.devtools.issuer import makeIssuer, newSigningKey
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
)

READ = "compute.read"
ALL = "compute.read compute.modify compute.create"


WHOAMI = (b"<?xml version='1.0'?><methodCall><methodName>jobmon.whoami</methodName>"
          b"<params></params></methodCall>")


def rawWhoami(server, caDir, headers, cert=None):
    """
    Call C{jobmon.whoami} with C{headers} over a TLS connection that shows no
    certificate (or C{cert}), off the reactor thread.

    @return: a L{Deferred} firing with the answer's text.
    """

    def call():
        context = ssl.create_default_context(capath=caDir)
        if cert is not None:
            context.load_cert_chain(cert)
        conn = http.client.HTTPSConnection("127.0.0.1", server.httpsPort, context=context,
                                           timeout=10)
        try:
            conn.request("POST", "/RPC2", WHOAMI, dict(headers, **{"Content-Type": "text/xml"}))
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    return inThread(call)


def writeToken(path, token):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


class TokenBase(FaultAssertions, TestCase):
    """
    A PKI, a token issuer whose subject C{alice-sub} is alice's DN, and a
    server trusting both.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.base = self.tpki.base
        self.workdir = os.path.join(self.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"".join(b"line %d\n" % i for i in range(1, 21)))
        self.issuer = makeIssuer(
            os.path.join(self.base, "issuer"),
            users={"alice-sub": self.tpki.dn("alice")},
        )
        self.udpPort = freeUDPPort()
        self.server = await startServer(
            self, self.tpki,
            "--token-issuers", self.issuer.configPath,
            "--udp-broadcast", "127.255.255.255:{}".format(self.udpPort),
            "--reregister-interval", "2",
            "--admin", self.issuer.identity("admin-sub"),
        )

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def tokenFile(self, name, sub, scope=ALL, **kw):
        """
        A file holding a fresh token for C{sub}.
        """
        return writeToken(os.path.join(self.base, name), self.issuer.mint(sub, scope, **kw))

    def client(self, tokenFile=None, token=None, proxy=None):
        """
        A client with a token (or alice's proxy); closed in cleanup.
        """
        if proxy is not None:
            c = JobMonClient(self.server.url, proxy=proxy, caDir=self.tpki.caDir, timeout=30)
        else:
            c = JobMonClient(self.server.url, caDir=self.tpki.caDir, timeout=30,
                             auth="token", tokenFile=tokenFile, token=token)
        self.addCleanup(c.close)
        return c

    async def tokenDaemon(self, jobId, tokenFile, mode="tcp", wait=True):
        """
        A daemon registering with a bearer token (no certificate at all).
        """
        proto = spawn(self, "jobmon-daemon " + jobId, [
            "-n", "--pidfile=", "jobmon-daemon",
            "--server", self.server.url, "--job-id", jobId, "--workdir", self.workdir,
            "--auth", "token", "--token-file", tokenFile, "--ca-dir", self.tpki.caDir,
            "--wake", mode, "--retry-initial-delay", "0.2", "--retry-max-delay", "1",
        ], env=childEnv(HOME=self.base))
        if wait:
            await proto.waitFor(r"registered with .* \({} wake\)".format(mode))
            if mode == "tcp":
                await proto.waitFor(r"wake channel up")
        return proto

    def rawWhoami(self, headers, cert=None):
        """
        L{rawWhoami} on this test's server.
        """
        return rawWhoami(self.server, self.tpki.caDir, headers, cert)

    async def jobmonQuery(self, *args, env):
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "jobmon.cli", "--server", self.server.url,
                             "--ca-dir", self.tpki.caDir] + list(args),
            env=childEnv(**env), path=ROOT,
        )
        return out, err, code


class TokenJobTests(TokenBase):
    """
    Jobs registered with tokens, queried with tokens.
    """

    async def test_everyMode(self):
        """
        A daemon with only a token registers in each wake mode (the TCP wake
        channel without a certificate), and its owner's token queries it;
        the owner is ISSUER#SUBJECT.
        """
        daemonToken = self.tokenFile("daemon-token", "bob-sub", "compute.create")
        for jobId, mode in [("t.1", "tcp"), ("p.1", "poll"), ("u.1", "udp")]:
            await self.tokenDaemon(jobId, daemonToken, mode)
        bob = self.client(self.tokenFile("bob-token", "bob-sub", READ))
        jobs = {j["job_id"]: j for j in await inThread(bob.listJobs)}
        self.assertEqual(set(jobs), {"t.1", "p.1", "u.1"})
        for job in jobs.values():
            self.assertEqual(job["owner"], self.issuer.identity("bob-sub"))
        for jobId in jobs:
            result = await inThread(bob.tail, jobId, "job.log", 2)
            self.assertEqual(result["data"], b"line 19\nline 20\n")
        me = await inThread(bob.whoami)
        self.assertEqual(me["dn"], self.issuer.identity("bob-sub"))
        self.assertEqual(me["token"]["scopes"], [READ])
        self.assertEqual(me["token"]["grants"], ["read"])
        self.assertEqual(me["token"]["issuer"], self.issuer.iss)

    async def test_otherSubjectSeesNothing(self):
        """
        Another subject of the same issuer, and alice's proxy, see no job
        registered by bob's token.
        """
        await self.tokenDaemon("t.1", self.tokenFile("dt", "bob-sub", "compute.create"))
        carol = self.client(self.tokenFile("carol", "carol-sub", ALL))
        self.assertEqual(await inThread(carol.listJobs), [])
        await self.assertFault(errors.NO_SUCH_JOB, carol.query, "t.1", {"op": "ls"})
        alice = self.client(proxy=self.tpki.proxies["alice"])
        await self.assertFault(errors.NO_SUCH_JOB, alice.query, "t.1", {"op": "ls"})

    async def test_mappedSubject(self):
        """
        A subject the configuration maps to alice's DN is alice: her token
        reaches the job her proxy registered, and her proxy the job her
        token registered.
        """
        await startDaemon(self, self.server, "x.1", self.workdir, self.tpki.proxies["alice"],
                          self.tpki.caDir)
        await self.tokenDaemon("t.1", self.tokenFile("dt", "alice-sub", "compute.create"))
        token = self.client(self.tokenFile("at", "alice-sub", READ))
        proxy = self.client(proxy=self.tpki.proxies["alice"])
        for c in (token, proxy):
            jobs = await inThread(c.listJobs)
            self.assertEqual([j["job_id"] for j in jobs], ["t.1", "x.1"])
            self.assertEqual({j["owner"] for j in jobs}, {self.tpki.dn("alice")})
            for jobId in ("t.1", "x.1"):
                result = await inThread(c.stat, jobId, "job.log")
                self.assertEqual(result["size"],
                                 os.path.getsize(os.path.join(self.workdir, "job.log")))

    async def test_scopes(self):
        """
        Each capability needs its scope: reading without compute.read,
        signals and commands without compute.modify, and registering without
        compute.create are refused with a fault naming the scope.
        """
        await self.tokenDaemon("t.1", self.tokenFile("dt", "bob-sub", "compute.create"))
        reader = self.client(self.tokenFile("r", "bob-sub", READ))
        e = await self.assertFault(errors.NOT_AUTHORIZED, reader.signal, "t.1", "USR1")
        self.assertIn("compute.modify", e.message)
        self.assertIn("send signals", e.message)
        nothing = self.client(self.tokenFile("n", "bob-sub", "storage.read:/"))
        e = await self.assertFault(errors.NOT_AUTHORIZED, nothing.listJobs)
        self.assertIn("compute.read", e.message)
        self.assertIn("storage.read:/", e.message)
        await self.assertFault(errors.NOT_AUTHORIZED, nothing.query, "t.1", {"op": "ls"})
        await self.assertFault(errors.NOT_AUTHORIZED, nothing.history)
        # compute.read alone cannot register a job.
        daemon = await self.tokenDaemon("t.2", self.tokenFile("dr", "bob-sub", READ),
                                        wait=False)
        await daemon.waitFor(r"fault 403: your bearer token does not allow you to register")
        self.assertNotIn("t.2", [j["job_id"] for j in await inThread(reader.listJobs)])

    async def test_adminToken(self):
        """
        A token identity listed with C{--admin} sees every job and reads the
        audit trail.
        """
        await self.tokenDaemon("t.1", self.tokenFile("dt", "bob-sub", "compute.create"))
        admin = self.client(self.tokenFile("adm", "admin-sub", READ))
        jobs = await inThread(admin.listJobs, True)
        self.assertEqual([j["job_id"] for j in jobs], ["t.1"])
        self.assertTrue((await inThread(admin.whoami))["admin"])
        records = await inThread(admin.auditLog, "t.1")
        self.assertIn("register", [r["event"] for r in records])


class TokenRefusalTests(TokenBase):
    """
    Refused tokens: each a fault that says why, counted in the audit trail.
    """

    async def assertRefused(self, token, *words):
        c = self.client(token=token)
        e = await self.assertFault(errors.NOT_AUTHENTICATED, c.whoami)
        self.assertIn("bearer token refused", e.message)
        for word in words:
            self.assertIn(word, e.message)
        return e

    async def test_expired(self):
        """
        An expired token: the fault says when it expired.  (The client
        library does not send a token it can see has expired, so the
        request is made by hand.)
        """
        token = self.issuer.mint("bob-sub", READ, lifetime=-3600)
        text = await self.rawWhoami({"Authorization": "Bearer " + token})
        self.assertIn("<int>401</int>", text)
        self.assertIn("bearer token refused: it expired at", text)
        self.assertIn(time.strftime("%Y-%m-%d %H:", time.gmtime(time.time() - 3600)), text)
        self.assertIn("min ago", text)

    async def test_wrongAudience(self):
        """
        A token for another service names its audience and ours.
        """
        token = self.issuer.mint("bob-sub", READ, audience="https://storage.example.org")
        await self.assertRefused(token, "https://storage.example.org", self.issuer.audience)

    async def test_wrongIssuer(self):
        """
        A token from an issuer the server does not trust names that issuer.
        """
        other = makeIssuer(os.path.join(self.base, "other"), iss="https://evil.example/op",
                           audience=self.issuer.audience)
        await self.assertRefused(other.mint("bob-sub", READ), "https://evil.example/op",
                                 "not trusted")

    async def test_forged(self):
        """
        A token claiming the trusted issuer and its key id but signed with
        another key.
        """
        forged = self.issuer.mint("alice-sub", ALL, key=newSigningKey())
        await self.assertRefused(forged, "signature does not verify")

    async def test_garbage(self):
        """
        Not a token at all, and another Authorization scheme.
        """
        await self.assertRefused("not-a-jwt", "not a JSON Web Token")
        text = await self.rawWhoami({"Authorization": "Basic YWxpY2U6cHc="})
        self.assertIn("<int>401</int>", text)
        self.assertIn("Authorization scheme 'Basic' is not supported", text)

    async def test_noCredentialAtAll(self):
        """
        With tokens accepted, a certificate is optional at the handshake; a
        request with neither gets a fault saying what to send.
        """
        text = await self.rawWhoami({})
        self.assertIn("<int>401</int>", text)
        self.assertIn("send a bearer token", text)

    async def test_audited(self):
        """
        Refused tokens are in the audit trail with the reason.
        """
        text = await self.rawWhoami(
            {"Authorization": "Bearer " + self.issuer.mint("bob-sub", READ, lifetime=-600)})
        self.assertIn("expired", text)
        await self.assertRefused(
            self.issuer.mint("bob-sub", READ, audience="https://x.example"), "audience")
        with open(os.path.join(self.base, "audit.jsonl")) as f:
            records = [json.loads(line) for line in f]
        refused = [r for r in records if r.get("event") == "refused" and r.get("method") == "token"]
        self.assertEqual(len(refused), 2, records)
        self.assertIn("expired", refused[0]["reason"])
        self.assertIn("audience", refused[1]["reason"])
        self.assertEqual(refused[0]["peer"], "127.0.0.1")

    async def test_certificateStillWorks(self):
        """
        Beside tokens, certificates work as before, and a request with both
        is its token's bearer.
        """
        alice = self.client(proxy=self.tpki.proxies["alice"])
        self.assertEqual((await inThread(alice.whoami))["dn"], self.tpki.dn("alice"))
        text = await self.rawWhoami(
            {"Authorization": "Bearer " + self.issuer.mint("bob-sub", READ)},
            cert=self.tpki.proxies["alice"])
        self.assertIn(self.issuer.identity("bob-sub"), text)
        self.assertNotIn(self.tpki.dn("alice"), text)


class CommandLineTests(TokenBase):
    """
    C{jobmon-query} with tokens found as the WLCG discovery convention says.
    """

    async def test_discoveryAndWhoami(self):
        """
        C{$BEARER_TOKEN_FILE}, C{$BEARER_TOKEN} and C{$XDG_RUNTIME_DIR/bt_u$UID}
        each give the token; whoami shows the identity and the scopes.
        """
        path = self.tokenFile("bt", "bob-sub", READ)
        with open(path) as f:
            token = f.read().strip()
        runtime = os.path.join(self.base, "runtime")
        os.makedirs(runtime)
        writeToken(os.path.join(runtime, "bt_u%d" % os.getuid()), token)
        for env in ({"BEARER_TOKEN_FILE": path}, {"BEARER_TOKEN": token},
                    {"XDG_RUNTIME_DIR": runtime, "X509_USER_PROXY": ""}):
            out, err, code = await self.jobmonQuery("whoami", env=env)
            self.assertEqual(code, 0, (env, err))
            self.assertIn(self.issuer.identity("bob-sub").encode(), out)
            self.assertIn(b"bearer token, scopes: compute.read", out)

    async def test_proxyPreferredUnlessTokenNamed(self):
        """
        With a proxy and a token file in the runtime directory, the proxy is
        used; C{--auth token} takes the token.
        """
        runtime = os.path.join(self.base, "runtime")
        os.makedirs(runtime)
        self.tokenFile(os.path.join("runtime", "bt_u%d" % os.getuid()), "bob-sub", READ)
        env = {"XDG_RUNTIME_DIR": runtime, "X509_USER_PROXY": self.tpki.proxies["alice"]}
        out, err, code = await self.jobmonQuery("whoami", env=env)
        self.assertEqual(code, 0, err)
        self.assertIn(self.tpki.dn("alice").encode(), out)
        out, err, code = await self.jobmonQuery("--auth", "token", "whoami", env=env)
        self.assertEqual(code, 0, err)
        self.assertIn(self.issuer.identity("bob-sub").encode(), out)

    async def test_errors(self):
        """
        An expired token (seen by the client), a missing token file, and a
        token the server refuses: one line each, exit status 3.
        """
        expired = self.tokenFile("old", "bob-sub", READ, lifetime=-600)
        wrongAud = self.tokenFile("aud", "bob-sub", READ, audience="https://x.example")
        for env, words in [
            ({"BEARER_TOKEN_FILE": expired}, [b"expired at", b"get a new one"]),
            ({"BEARER_TOKEN_FILE": "/nonexistent/bt"}, [b"/nonexistent/bt"]),
            ({"BEARER_TOKEN_FILE": wrongAud}, [b"bearer token refused", b"audience"]),
        ]:
            out, err, code = await self.jobmonQuery("jobs", env=env)
            self.assertEqual(code, 3, (env, err))
            self.assertEqual(err.count(b"\n"), 1, err)
            for word in words:
                self.assertIn(word, err)


class NoTokensTests(TestCase):
    """
    A server without C{--token-issuers} wants a certificate.
    """

    timeout = 60

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.issuer = makeIssuer(os.path.join(self.tpki.base, "issuer"))
        self.server = await startServer(self, self.tpki)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def test_tokenClientTold(self):
        """
        A client with only a token is refused at the handshake, and told
        that this server takes certificates.
        """
        c = JobMonClient(self.server.url, caDir=self.tpki.caDir, timeout=10, auth="token",
                         token=self.issuer.mint("bob-sub"))
        self.addCleanup(c.close)
        try:
            await inThread(c.whoami)
        except JobMonError as e:
            self.assertEqual(e.code, CERTIFICATE_REFUSED)
            self.assertIn("does not accept bearer tokens", e.message)
        else:
            self.fail("not refused")

    async def test_tokenBesideCertificate(self):
        """
        A request with a certificate and a token: the server, which takes no
        tokens, says so rather than ignoring the token.
        """
        text = await rawWhoami(self.server, self.tpki.caDir, {"Authorization": "Bearer a.b.c"},
                               cert=self.tpki.proxies["alice"])
        self.assertIn("<int>401</int>", text)
        self.assertIn("does not accept bearer tokens", text)


class ClientExpiryTests(TestCase):
    """
    The client's own check of a token's expiry, before connecting.
    """

    def test_expiredNotSent(self):
        """
        A token file whose token has expired: L{CREDENTIAL_EXPIRED}, with
        the file named, and nothing sent (the server URL is unreachable).
        """
        base = os.path.abspath(self.mktemp())
        issuer = makeIssuer(os.path.join(base, "issuer"))
        path = writeToken(os.path.join(base, "bt"), issuer.mint("s", lifetime=-120))
        c = JobMonClient("https://127.0.0.1:1/RPC2", caDir=base, auth="token", tokenFile=path)
        e = self.assertRaises(JobMonError, c.whoami)
        self.assertEqual(e.code, CREDENTIAL_EXPIRED)
        self.assertIn(path, e.message)


class FetchedKeysTests(TestCase):
    """
    An issuer whose keys the server fetches through OpenID Connect
    discovery, from a real HTTPS endpoint on 127.0.0.1.
    """

    timeout = 60

    async def _setUp(self):
        from twisted.internet import reactor
        from twisted.internet import ssl as tssl
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.static import Data

        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.root = Resource()
        site = Site(self.root)
        site.noisy = False
        context = tssl.DefaultOpenSSLContextFactory(self.tpki.hostKey, self.tpki.hostCert)
        port = reactor.listenSSL(0, site, context, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = "https://127.0.0.1:{}".format(port.getHost().port)
        self.issuer = makeIssuer(os.path.join(self.tpki.base, "issuer"), iss=base + "/vo")
        with open(self.issuer.jwksPath, "rb") as f:
            jwks = f.read()
        vo, known = Resource(), Resource()
        self.root.putChild(b"vo", vo)
        vo.putChild(b".well-known", known)
        known.putChild(b"openid-configuration", Data(json.dumps({
            "issuer": self.issuer.iss, "jwks_uri": base + "/keys"}).encode(), "application/json"))
        self.root.putChild(b"keys", Data(jwks, "application/json"))
        config = os.path.join(self.tpki.base, "fetched.toml")
        with open(config, "w") as f:
            f.write('audience = ["{}"]\nfetch-ca = "{}"\n\n[[issuer]]\niss = "{}"\n'
                    "discover = true\n".format(self.issuer.audience, self.tpki.caDir,
                                               self.issuer.iss))
        self.server = await startServer(self, self.tpki, "--token-issuers", config)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def test_discovered(self):
        """
        The server fetched the issuer's keys at start-up (and says so); its
        tokens are accepted.
        """
        await self.server.proto.waitFor(r"fetched 1 key\(s\) of token issuer https://127")
        c = JobMonClient(self.server.url, caDir=self.tpki.caDir, timeout=10, auth="token",
                         token=self.issuer.mint("dana", READ))
        self.addCleanup(c.close)
        me = await inThread(c.whoami)
        self.assertEqual(me["dn"], self.issuer.identity("dana"))

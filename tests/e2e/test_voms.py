"""
End-to-end tests of VOMS groups and roles: a real server with a VOMS
directory listing a test VOMS server, proxies carrying ACs made by
L{jobmon.devtools.vomsfake}, an admin by C{--admin-fqan} and a job shared
with C{--share /cms}.
"""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import JobMonClient
from jobmon.devtools import pki, vomsfake
from jobmon.devtools.issuer import makeIssuer
from jobmon.errors import JobMonError
from tests.support import FaultAssertions, TestPKI, inThread, startDaemon, startServer


class VomsTests(FaultAssertions, TestCase):
    """
    Alice's job, shared with C{/cms}; bob a member of C{/cms}; the user
    "admin" (not an admin by DN) holds C{/cms/Role=lcgadmin}.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.base = self.tpki.base
        self.workdir = os.path.join(self.base, "work")
        os.makedirs(self.workdir)
        with open(os.path.join(self.workdir, "job.log"), "w") as f:
            f.write("hello\n")
        ca = self.tpki.pki.ca
        self.vomsCert, self.vomsKey = vomsfake.makeVomsServer(ca, os.path.join(self.base, "voms"))
        vomsdir = os.path.join(self.base, "vomsdir")
        vomsfake.writeLsc(vomsdir, "cms", self.vomsCert)
        self.issuer = makeIssuer(os.path.join(self.base, "issuer"))
        self.server = await startServer(
            self, self.tpki, "--vomsdir", vomsdir, "--admin-fqan", "/cms/Role=lcgadmin",
            "--token-issuers", self.issuer.configPath, admins=(),
        )
        self.daemon = await startDaemon(
            self, self.server, "job.1", self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--share", "/cms",
        )

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def vomsProxy(self, name, fqans, key=None):
        """
        A proxy of user C{name} carrying an AC with C{fqans} (signed by
        C{key}, by default the listed VOMS server's).
        """
        user = self.tpki.users[name]
        holder = pki.readCertificates(user.certPath)[0]
        ac = vomsfake.encodeAC(holder, self.vomsCert, key or self.vomsKey, "cms", fqans)
        path = os.path.join(self.base, "x509up_voms_" + name)
        vomsfake.makeVomsProxy(user.certPath, user.keyPath, path, [ac])
        return path

    def client(self, proxy=None, token=None):
        if token is not None:
            c = JobMonClient(self.server.url, caDir=self.tpki.caDir, timeout=30,
                             auth="token", token=token)
        else:
            c = JobMonClient(self.server.url, proxy=proxy, caDir=self.tpki.caDir, timeout=30)
        self.addCleanup(c.close)
        return c

    async def test_adminByFqan(self):
        """
        A proxy with C{/cms/Role=lcgadmin} makes its holder an admin:
        whoami says so and lists the FQANs, every job is listed, and she may
        signal the job.
        """
        admin = self.client(self.vomsProxy("admin", [
            "/cms/Role=NULL/Capability=NULL", "/cms/Role=lcgadmin/Capability=NULL"]))
        me = await inThread(admin.whoami)
        self.assertEqual((me["admin"], me["fqans"]), (True, ["/cms", "/cms/Role=lcgadmin"]))
        jobs = await inThread(admin.listJobs, True)
        self.assertEqual([j["job_id"] for j in jobs], ["job.1"])
        # The server lets the signal through: the daemon refuses it (no
        # --allow-signal), not the server.
        try:
            await inThread(admin.signal, "job.1", "USR1")
        except JobMonError as e:
            self.assertNotEqual(e.code, errors.NOT_AUTHORIZED, e.message)
        # Her plain proxy makes her an ordinary user.
        plain = self.client(self.tpki.proxies["admin"])
        me = await inThread(plain.whoami)
        self.assertEqual((me["admin"], me["fqans"]), (False, []))

    async def test_sharedWithGroup(self):
        """
        A C{/cms} member reads the job shared with C{/cms}, but may not
        signal it; without the AC, or with a forged one, the job does not
        exist for her.
        """
        bob = self.client(self.vomsProxy("bob", ["/cms/Role=NULL/Capability=NULL"]))
        self.assertEqual((await inThread(bob.whoami))["fqans"], ["/cms"])
        result = await inThread(bob.cat, "job.1", "job.log")
        self.assertIn("hello", str(result))
        self.assertEqual([j["job_id"] for j in await inThread(bob.listJobs)], ["job.1"])
        await self.assertFault(errors.NOT_AUTHORIZED, bob.signal, "job.1", "USR1")
        plain = self.client(self.tpki.proxies["bob"])
        await self.assertFault(errors.NO_SUCH_JOB, plain.cat, "job.1", "job.log")
        _, forgedKey = vomsfake.makeVomsServer(self.tpki.pki.ca, os.path.join(self.base, "x"))
        forged = self.client(self.vomsProxy("bob", ["/cms/Role=lcgadmin"], key=forgedKey))
        me = await inThread(forged.whoami)
        self.assertEqual((me["admin"], me["fqans"]), (False, []))
        await self.assertFault(errors.NO_SUCH_JOB, forged.cat, "job.1", "job.log")
        self.assertIn("grants nothing: bad AC signature", self.server.proto.output.decode())

    async def test_tokenGroup(self):
        """
        A bearer token whose C{wlcg.groups} has C{/cms} reads the job too.
        """
        token = self.issuer.mint("carol", "compute.read", **{"wlcg.groups": ["/cms"]})
        carol = self.client(token=token)
        result = await inThread(carol.cat, "job.1", "job.log")
        self.assertIn("hello", str(result))
        other = self.client(token=self.issuer.mint("dave", "compute.read",
                                                   **{"wlcg.groups": ["/atlas"]}))
        await self.assertFault(errors.NO_SUCH_JOB, other.cat, "job.1", "job.log")

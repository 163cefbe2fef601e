"""
End-to-end tests of the server's limits: every method's rate, the cap on
jobs per owner, and an audit trail no caller can wipe.
"""

import json
import os
import ssl
import xmlrpc.client

from jobmon import errors
from tests.e2e.test_queries import EndToEndBase
from tests.support import inThread, startDaemon


class LimitTests(EndToEndBase):
    """
    A server with small limits, and Alice's job.
    """

    serverArgs = ("--user-rate", "0.2", "--user-burst", "3", "--max-jobs-per-owner", "1")

    async def test_userRate(self):
        """
        Past the burst, a user method is fault 429 with a retry hint; the
        others' calls go on.
        """
        c = self.client()
        for _ in range(3):
            await inThread(c.whoami)
        e = await self.assertFault(errors.TOO_MANY, c.listJobs)
        self.assertRegex(e.message, r"^too many user calls: at most 0\.2 per second "
                                    r"\(bursts of 3\) for each identity; retry in [0-9.]+ s$")
        bob = self.client(self.tpki.proxies["bob"])
        self.assertEqual(await inThread(bob.listJobs), [])

    async def test_jobsPerOwner(self):
        """
        A second job of Alice's is refused (429) while her first is
        registered; the refusal is logged and audited.
        """
        workdir = os.path.join(self.tpki.base, "work2")
        os.makedirs(workdir)
        mark = self.server.proto.mark()
        await startDaemon(self, self.server, "job.2", workdir, self.tpki.proxies["alice"],
                          self.tpki.caDir, wait=False)
        await self.server.proto.waitFor(r"refused by the jobs limit: you already have 1 jobs",
                                        after=mark)
        with open(os.path.join(self.tpki.base, "audit.jsonl")) as f:
            records = [json.loads(line) for line in f]
        self.assertIn(
            (self.tpki.dn("alice"), "registerJob", errors.TOO_MANY),
            [(r.get("dn"), r.get("method"), r.get("code")) for r in records
             if r["event"] == "refused"],
        )

    async def test_hugeJobIdsKeepTheTrail(self):
        """
        The attack found: a dozen refused queries with an 11 MiB job id used
        to rotate every earlier audit record away.  The job's registration
        is still there for the admin, and the log stays small.
        """
        ctx = ssl.create_default_context(capath=self.tpki.caDir)
        ctx.load_cert_chain(self.tpki.proxies["bob"])
        proxy = xmlrpc.client.ServerProxy(self.server.url, context=ctx)
        huge = "A" * (11 * 1024 * 1024)

        def attack():
            faults = []
            for _ in range(12):
                try:
                    proxy.jobmon.query(huge, {"op": "ls"})
                except xmlrpc.client.Fault as f:
                    faults.append(f.faultCode)
            proxy("close")()
            return faults

        self.assertEqual(await inThread(attack), [errors.BAD_REQUEST] * 12)
        self.assertLess(os.path.getsize(os.path.join(self.tpki.base, "audit.jsonl")),
                        64 * 1024)
        admin = self.client(self.tpki.proxies["admin"])
        records = await inThread(admin.auditLog, "job.1", 10)
        self.assertEqual(records[0]["event"], "register")

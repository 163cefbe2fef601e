"""
End-to-end: a file whose name is not UTF-8 round-trips through the real
server and daemon: C{jobmon-query ls} shows it in a form a shell gives back,
and C{jobmon-query cat} with that form (through bash) opens it, while a file
literally named C{\\xff.log} stays apart.
"""

import os
import shutil
import sys

from twisted.internet.utils import getProcessOutputAndValue

from tests.e2e import test_queries
from tests.support import ROOT, childEnv


class NonUTF8NameTests(test_queries.EndToEndBase):
    """
    The real C{jobmon-query} with names that are not UTF-8.
    """

    jobmonQuery = test_queries.CommandLineTests.jobmonQuery

    async def _setUp(self):
        await super()._setUp()
        base = os.fsencode(self.workdir)
        for name, content in [(b"\xff.log", b"the byte\n"), (b"\\xff.log", b"literal\n")]:
            with open(os.path.join(base, name), "wb") as f:
                f.write(content)

    async def shellCat(self, shown):
        """
        Run C{jobmon-query cat job.1 SHOWN} through bash, SHOWN pasted as
        C{ls} printed it.
        """
        bash = shutil.which("bash")
        if bash is None:
            self.skipTest("no bash")
        env = childEnv(
            JOBMON_SERVER=self.server.url,
            X509_USER_PROXY=self.tpki.proxies["alice"],
            X509_CERT_DIR=self.tpki.caDir,
        )
        line = "exec %s -m jobmon.cli cat job.1 %s" % (sys.executable, shown)
        return await getProcessOutputAndValue(bash, ["-c", line], env=env, path=ROOT)

    async def test_roundTrip(self):
        """
        C{ls} shows C{$'\\377.log'} and C{'\\xff.log'}; each, given back to
        C{cat} through a shell, opens its own file.
        """
        out, err, code = await self.jobmonQuery("ls", "job.1")
        self.assertEqual((code, err), (0, b""))
        shown = out.decode("ascii").splitlines()
        self.assertIn("$'\\377.log'", shown)
        self.assertIn("'\\xff.log'", shown)
        for form, content in [("$'\\377.log'", b"the byte\n"), ("'\\xff.log'", b"literal\n")]:
            out, err, code = await self.shellCat(form)
            self.assertEqual((out, err, code), (content, b"", 0), form)

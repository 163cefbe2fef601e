"""
End-to-end tests of the command line of C{jobmon-query} against a real
server and job daemon: C{tail -n +N} (the C{from_line} request), options
between arguments, and the completion of job ids.
"""

import os
import subprocess
import sys

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.e2e import test_ops
from tests.support import ROOT, FaultAssertions, childEnv, inThread


class CommandLineTests(FaultAssertions, TestCase):
    """
    The job of L{test_ops.OpsTests}, asked through C{jobmon-query}.
    """

    timeout = 120

    _setUp = test_ops.OpsTests._setUp
    newClient = test_ops.OpsTests.newClient
    query = test_ops.OpsTests.query

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def jobmonQuery(self, *args):
        """
        Run C{jobmon-query ARGS} from this tree; return C{(status, stdout,
        stderr)}.
        """
        env = childEnv(JOBMON_SERVER=self.server.url,
                       X509_USER_PROXY=self.tpki.proxies["alice"],
                       X509_CERT_DIR=self.tpki.caDir)
        result = await inThread(
            subprocess.run, [sys.executable, "-m", "jobmon.cli"] + list(args),
            env=env, cwd=ROOT, capture_output=True, timeout=60)
        return result.returncode, result.stdout, result.stderr.decode()

    async def test_tailFromLine(self):
        """
        The daemon answers C{from_line}; C{tail -n +2} writes the file from
        its second line on.
        """
        with open(os.path.join(self.workdir, "lines.txt"), "wb") as f:
            f.write(b"a\nb\nc\n")
        result = await self.query({"op": "tail", "path": "lines.txt", "from_line": 2})
        self.assertEqual((result["data"], result["offset"], result["from_line"]),
                         (b"b\nc\n", 2, 2))
        self.assertEqual(await self.jobmonQuery("tail", "job.1", "lines.txt", "-n", "+2"),
                         (0, b"b\nc\n", ""))

    async def test_optionsBetween(self):
        """
        C{ls JOB -l PATH} and C{du JOB -h PATH}.
        """
        status, out, err = await self.jobmonQuery("ls", "job.1", "-l", "sub")
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b" deep", out)
        status, out, err = await self.jobmonQuery("du", "job.1", "-h", "sub")
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b"K  deep/", out)

    async def test_completeJobIds(self):
        """
        The completion of a JOB lists the caller's jobs from the server.
        """
        line = "jobmon-query tail jo"
        self.assertEqual(
            await self.jobmonQuery("completion", "complete", "--", str(len(line)), line, "jo"),
            (0, b"job.1\n", ""))

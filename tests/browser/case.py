"""
The test case of the browser tests: a real server and job daemon on
127.0.0.1, a running job, and the browsers of alice (and bob) presenting
their certificates (L{tests.browser.harness}).
"""

import copy
import os
import sys
from types import SimpleNamespace

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.browser import harness
from tests.redisproc import freePort
from tests.support import TestPKI, childEnv, inThread, spawn, startDaemon, startServer

JOB = r"""
import os, signal, sys, time
def usr1(signum, frame):
    open("got-usr1", "a").close()
def term(signum, frame):
    sys.exit(0)
signal.signal(signal.SIGUSR1, usr1)
signal.signal(signal.SIGTERM, term)
print("job started", flush=True)
while True:
    time.sleep(0.1)
"""
"""The job: it sleeps, and leaves the file C{got-usr1} in its working
directory for each SIGUSR1 it gets."""

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
"""A file name that is markup, which the page must show as text."""

HOSTILE_CONTENT = "<script>alert(1)</script><b>bold</b>"
"""A log line that is markup, which the page must show as text."""

JOB_LOG = ["starting step {}".format(i) for i in range(1, 6)]
"""The lines of C{job.log}."""


_shared = {}
"""The PKI and browser homes of this test run, made by its first test."""


def sharedPKI(case):
    """
    The test run's PKI (L{TestPKI}) and, by login, the homes holding each
    user's NSS database (alice, bob, admin, and C{None}: no certificate),
    made by the first test that needs them: files, which the tests only
    read.
    """
    if not _shared:
        base = os.path.abspath(case.mktemp()) + "-shared"
        tpki = TestPKI(os.path.join(base, "pki"))
        homes = {}
        for login in ("alice", "bob", "admin", None):
            home = os.path.join(base, "home-" + (login or "nobody"))
            homes[login] = harness.makeProfile(home, tpki, login)
        _shared.update(tpki=tpki, homes=homes)
    return _shared["tpki"], _shared["homes"]


class BrowserCase(TestCase):
    """
    A server, alice's job C{job.1} (a real process, allowed SIGUSR1) with
    its daemon, and the browsers of L{logins}, started while the processes
    start; others are started on demand by L{browser}.

    The test PKI and each user's NSS database are made once for the test
    run (L{sharedPKI}); the processes, the job's working directory and the
    browsers' own data are made for each test and stopped in its cleanup.

    @ivar base: the server's URL, C{https://127.0.0.1:PORT}.
    @ivar workdir: the job's working directory.
    @ivar job: the job's L{tests.support.ChildProcess}.
    """

    timeout = 60
    serverArgs = ()
    jobId = "job.1"
    logins = ("alice",)
    """The browsers each test of the class uses (started with the server)."""
    daemonArgs = ()
    """More arguments for the job's daemon."""

    async def _setUp(self):
        harness.requireBrowser()
        shared, self.homes = sharedPKI(self)
        # The server's audit log and history belong to the test.
        self.tpki = copy.copy(shared)
        self.tpki.base = os.path.abspath(self.mktemp())
        os.makedirs(self.tpki.base)
        self.workdir = os.path.join(self.tpki.base, "work")
        self.makeWorkdir(self.workdir)
        # The port is chosen first so that the browsers and the daemon
        # start meanwhile.
        port = freePort()
        self.base = "https://127.0.0.1:{}".format(port)
        harness.writePolicy()
        self.addCleanup(harness.removePolicy)
        self._browsers = {}
        starting = [Deferred.fromCoroutine(self.browser(login)) for login in self.logins]
        self.job = spawn(self, "job", self.jobArgs(), program=sys.executable,
                         path=self.workdir, env=childEnv())
        # The daemon starts with the server (it knows the port), and
        # retries until the server listens.
        server = Deferred.fromCoroutine(
            startServer(self, self.tpki, *self.serverArgs, httpsPort=port))
        daemon = Deferred.fromCoroutine(startDaemon(
            self, SimpleNamespace(url=self.base + "/RPC2"), self.jobId, self.workdir,
            self.tpki.proxies["alice"], self.tpki.caDir,
            "--job-pid", str(self.job.transport.pid), "--allow-signal", "USR1",
            *self.daemonArgs,
        ))
        await self.job.waitFor("job started")
        self.server = await server
        self.daemon = await daemon
        for d in starting:
            await d

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def jobArgs(self):
        """
        The job's arguments to Python, run in L{workdir}: L{JOB}.
        """
        return ["-c", JOB]

    @staticmethod
    def makeWorkdir(workdir):
        """
        The job's files: C{job.log}, C{follow.log} (empty, to follow), a
        file with a hostile name, a log with hostile content, and a
        subdirectory.
        """
        os.makedirs(os.path.join(workdir, "sub"))
        files = {
            "job.log": "".join(line + "\n" for line in JOB_LOG),
            "follow.log": "",
            HOSTILE_NAME: "a file with a hostile name\n",
            "hostile.log": HOSTILE_CONTENT + "\n",
            os.path.join("sub", "data.txt"): "data\n",
        }
        for name, text in files.items():
            with open(os.path.join(workdir, name), "w") as f:
                f.write(text)

    async def startBobsJob(self, jobId="job.2"):
        """
        Start a job daemon for bob (no process: a job is its daemon).

        @return: bob's job's working directory.
        """
        workdir = os.path.join(self.tpki.base, "work-bob")
        os.makedirs(workdir)
        with open(os.path.join(workdir, "bob.log"), "w") as f:
            f.write("bob's output\n")
        await startDaemon(self, self.server, jobId, workdir, self.tpki.proxies["bob"],
                          self.tpki.caDir)
        return workdir

    async def browser(self, login="alice"):
        """
        The browser of C{login} for this test, started on first use and
        quit in the test's cleanup; C{None} is a browser that trusts the
        test CA but holds no certificate.

        @rtype: L{harness.Browser}
        """
        if login not in self._browsers:
            dataDir = os.path.join(self.tpki.base, "chrome-" + (login or "nobody"))
            b = self._browsers[login] = harness.Browser(self.homes[login], self.base,
                                                        login, dataDir)
            self.addCleanup(inThread, b.quit)
            await inThread(b.start)
        return self._browsers[login]

    def trace(self):
        """
        @return: whether the job got a SIGUSR1.
        """
        return os.path.exists(os.path.join(self.workdir, "got-usr1"))

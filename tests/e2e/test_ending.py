"""
End-to-end tests of a job's end, in every wake mode: C{jobmon-query tail -f}
prints the file to its last line and exits 0 saying the job ended; the
daemon unregisters at once on SIGTERM; later queries say the job ended, to
its owner only.
"""

import os
import sys
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from jobmon.client import JobMonClient
from tests.support import (
    ROOT,
    TestPKI,
    childEnv,
    freeUDPPort,
    inThread,
    spawn,
    startDaemon,
    startServer,
    waitForPending,
)
from tests.worker.test_run import wrapperEnv

STOP_GRACE = 5.0
"""C{jobmon-run}'s default C{--stop-grace}: the daemon must unregister well
within it."""


class _Collect(ProcessProtocol):
    """
    Keep a child's stdout and stderr apart; fire C{ended} with C{(stdout,
    stderr, exit code)}.
    """

    def __init__(self):
        self.out = bytearray()
        self.err = bytearray()
        self.ended = Deferred()

    def outReceived(self, data):
        self.out.extend(data)

    def errReceived(self, data):
        self.err.extend(data)

    def processEnded(self, reason):
        self.ended.callback((bytes(self.out), bytes(self.err), reason.value.exitCode))


class FollowToTheEndTests(TestCase):
    """
    One server offering every wake mode; one job per test.
    """

    timeout = 60

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        self.log = os.path.join(self.workdir, "job.log")
        with open(self.log, "wb") as f:
            f.write(b"line 1\nline 2\nline 3\n")
        self.server = await startServer(
            self, self.tpki,
            "--udp-broadcast", "127.255.255.255:{}".format(freeUDPPort()),
            "--reregister-interval", "1", "--missed-registrations", "2",
            "--cleanup-interval", "0.25",
        )
        self.client = JobMonClient(
            self.server.url, proxy=self.tpki.proxies["alice"], caDir=self.tpki.caDir,
            timeout=30,
        )
        self.addCleanup(self.client.close)

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def jobmonQuery(self, *args, proxy="alice"):
        """
        Run C{jobmon-query ARGS}: a L{Deferred} of C{(stdout, stderr, exit
        code)}.
        """
        env = childEnv(
            JOBMON_SERVER=self.server.url,
            X509_USER_PROXY=self.tpki.proxies[proxy],
            X509_CERT_DIR=self.tpki.caDir,
        )
        return getProcessOutputAndValue(
            sys.executable, ["-m", "jobmon.cli"] + list(args), env=env, path=ROOT
        )

    def startQuery(self, *args, limit=20):
        """
        Start C{jobmon-query ARGS} as alice: a L{Deferred} of C{(stdout,
        stderr, exit code)}; the process is killed if it runs past
        C{limit} seconds, or at the end of the test.
        """
        env = childEnv(
            JOBMON_SERVER=self.server.url,
            X509_USER_PROXY=self.tpki.proxies["alice"],
            X509_CERT_DIR=self.tpki.caDir,
        )
        proto = _Collect()
        transport = reactor.spawnProcess(
            proto, sys.executable, [sys.executable, "-m", "jobmon.cli"] + list(args),
            env=env, path=ROOT,
        )

        def kill():
            if not proto.ended.called:
                transport.signalProcess("KILL")

        timer = reactor.callLater(limit, kill)
        self.addCleanup(lambda: proto.ended)
        self.addCleanup(kill)
        self.addCleanup(lambda: timer.active() and timer.cancel())
        return proto.ended

    async def waitReady(self, jobId):
        """
        Wait until the job's wake is up (channel bound, poll pending).
        """
        for _ in range(100):
            jobs = await inThread(self.client.listJobs)
            if [j for j in jobs if j["job_id"] == jobId and j["state"] == "ready"]:
                return
            await deferLater(reactor, 0.05, lambda: None)
        self.fail("job {} never got ready".format(jobId))

    async def followToTheEnd(self, mode, lastWords=b"line 4\nline 5\nlast line\n"):
        jobId = "end." + mode
        daemon = await startDaemon(
            self, self.server, jobId, self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--wake", mode, wait=False,
        )
        await daemon.waitFor(r"registered with .* \({} wake\)".format(mode))
        await self.waitReady(jobId)
        following = self.startQuery("tail", "-f", jobId, "job.log")
        # The follow waits on the worker for the file to grow.
        self.assertEqual(await waitForPending(self.client, 1, jobId, tries=100), 1)
        # ... and runs there now.
        await deferLater(reactor, 0.5, lambda: None)
        # The job's last words, then it ends and its wrapper stops the
        # daemon at once.
        with open(self.log, "ab") as f:
            f.write(lastWords)
        mark = daemon.mark()
        start = time.monotonic()
        daemon.signal("TERM")
        await daemon.waitFor(r"job {} unregistered".format(jobId), after=mark)
        unregistered = time.monotonic() - start
        await daemon.whenEnded()
        out, err, code = await following
        self.assertEqual(out, b"line 1\nline 2\nline 3\n" + lastWords, err)
        self.assertEqual(
            err, "jobmon-query: job {} ended; stopped following\n".format(jobId).encode()
        )
        self.assertEqual(code, 0)
        # Well within jobmon-run's grace: not killed first.
        self.assertLess(unregistered, STOP_GRACE / 2)
        daemonLog = daemon.output.decode()
        self.assertNotIn("Traceback", daemonLog)
        self.assertNotIn("CancelledError", daemonLog)

        # Any later query says the job ended, and when.
        out, err, code = await self.jobmonQuery("ls", jobId)
        self.assertEqual((out, code), (b"", 6), err)
        self.assertRegex(
            err.decode(),
            r"^jobmon-query: job {} ended at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n$".format(
                jobId.replace(".", r"\.")
            ),
        )
        # Another user does not learn that the job existed.
        out, err, code = await self.jobmonQuery("ls", jobId, proxy="bob")
        self.assertEqual((out, code), (b"", 5), err)
        self.assertEqual(err, "jobmon-query: no job {} visible to you\n".format(jobId).encode())
        self.assertNotIn("Traceback", self.server.proto.output.decode())

    def test_tcp(self):
        """
        TCP wake: the follower gets every line and exits 0 when the job
        ends.
        """
        return Deferred.fromCoroutine(self.followToTheEnd("tcp"))

    def test_udp(self):
        """
        UDP wake: the same.
        """
        return Deferred.fromCoroutine(self.followToTheEnd("udp"))

    def test_poll(self):
        """
        HTTPS long poll: the same, and the daemon unregisters at once.
        """
        return Deferred.fromCoroutine(self.followToTheEnd("poll"))

    def test_tcpIdle(self):
        """
        TCP wake, the job ending while the follow waits for bytes that do not
        come: the daemon answers it at once and unregisters.
        """
        return Deferred.fromCoroutine(self.followToTheEnd("tcp", lastWords=b""))

    def test_pollIdle(self):
        """
        HTTPS long poll, the job ending while the follow waits for bytes that
        do not come: the daemon answers it at once and unregisters.
        """
        return Deferred.fromCoroutine(self.followToTheEnd("poll", lastWords=b""))

    async def test_jobmonRun(self):
        """
        A job run by C{jobmon-run} (poll wake) writes its last lines and
        exits: the follower prints them and exits 0, and the wrapper stops
        the daemon well within its grace (not killed), without a traceback.
        """
        jobId = "end.run"
        job = (
            "import os, time\n"
            "while not os.path.exists('go'):\n"
            "    time.sleep(0.02)\n"
            "with open('job.log', 'ab') as f:\n"
            "    f.write(b'line 4\\nlast line\\n')\n"
        )
        wrapper = spawn(
            self, "jobmon-run",
            ["-m", "jobmon.worker.run", "--server", self.server.url, "--job-id", jobId,
             "--proxy", self.tpki.proxies["alice"], "--ca-dir", self.tpki.caDir,
             "--wake", "poll", "--daemon-log", "-", "--",
             sys.executable, "-c", job],
            env=wrapperEnv(), path=self.workdir, program=sys.executable,
        )
        await wrapper.waitFor(r"registered with .* \(poll wake\)")
        await self.waitReady(jobId)
        following = self.startQuery("tail", "-f", jobId, "job.log")
        self.assertEqual(await waitForPending(self.client, 1, jobId, tries=100), 1)
        await deferLater(reactor, 0.5, lambda: None)
        start = time.monotonic()
        with open(os.path.join(self.workdir, "go"), "wb"):
            pass
        self.assertEqual(await wrapper.whenEnded(), 0)
        stopped = time.monotonic() - start
        out, err, code = await following
        self.assertEqual((out, err, code), (
            b"line 1\nline 2\nline 3\nline 4\nlast line\n",
            "jobmon-query: job {} ended; stopped following\n".format(jobId).encode(),
            0,
        ))
        output = wrapper.output.decode()
        self.assertIn("job {} unregistered".format(jobId), output)
        self.assertNotIn("did not stop", output)
        self.assertNotIn("Traceback", output)
        self.assertLess(stopped, STOP_GRACE / 2)

"""
End-to-end tests of the ops a user asks a running job (follow, processes,
resources, disk, environment, commands, signals) on real processes: a
server, a sample job with children, and its daemon.
"""

import os
import sys
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from jobmon import errors
from jobmon.client import JobMonClient
from jobmon.devtools import pki
from tests.support import (
    ROOT,
    FaultAssertions,
    TestPKI,
    childEnv,
    inThread,
    spawn,
    startDaemon,
    startServer,
    waitForPending,
)

# A sample job: two sleeping children, a line of log every 0.1 s when asked,
# and a USR1 handler that leaves a trace.
JOB = r"""
import os, signal, subprocess, sys, time
children = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
def usr1(signum, frame):
    open("got-usr1", "w").close()
def term(signum, frame):
    for c in children:
        c.kill()
        c.wait()
    sys.exit(0)
signal.signal(signal.SIGUSR1, usr1)
signal.signal(signal.SIGTERM, term)
print("job started", flush=True)
while True:
    time.sleep(0.1)
"""

COMMANDS = """
[commands.echo]
description = "say the arguments back"
argv = ["/bin/echo", "{args}"]
args = "^[a-z0-9]{1,10}$"
max_args = 3

[commands.slow]
description = "takes too long"
argv = ["/bin/sleep", "30"]
timeout = 1

[commands.fail]
argv = ["/bin/sh", "-c", "echo oops >&2; exit 3"]
"""


class OpsTests(FaultAssertions, TestCase):
    """
    One job with its daemon, configured with commands, an allowed signal and
    an extra redaction pattern.
    """

    timeout = 120

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(os.path.join(self.workdir, "sub", "deep"))
        with open(os.path.join(self.workdir, "job.log"), "wb") as f:
            f.write(b"first\n")
        with open(os.path.join(self.workdir, "sub", "deep", "data"), "wb") as f:
            f.write(b"x" * 100000)
        commands = os.path.join(self.tpki.base, "commands.toml")
        with open(commands, "w") as f:
            f.write(COMMANDS)
        self.job = spawn(
            self, "job", ["-c", JOB], program=sys.executable, path=self.workdir,
            env=childEnv(MY_API_TOKEN="t0ps3cret", MYSITE_VALUE="hidden", PLAIN="visible",
                         X509_CERT_DIR="/etc/grid-security/certificates"),
        )
        await self.job.waitFor("job started")
        self.server = await startServer(self, self.tpki)
        self.daemon = await startDaemon(
            self, self.server, "job.1", self.workdir, self.tpki.proxies["alice"],
            self.tpki.caDir, "--job-pid", str(self.job.transport.pid),
            "--commands", commands, "--allow-signal", "USR1", "--redact", "MYSITE",
        )
        self.client = self.newClient()

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    def newClient(self, proxy=None):
        c = JobMonClient(self.server.url, proxy=proxy or self.tpki.proxies["alice"],
                         caDir=self.tpki.caDir, timeout=30)
        self.addCleanup(c.close)
        return c

    async def query(self, request, client=None):
        return await inThread((client or self.client).query, "job.1", request)

    async def assertOpFault(self, code, request, client=None):
        """
        Assert that C{request} to the job fails with C{code}; return the
        error.
        """
        return await self.assertFault(code, (client or self.client).query, "job.1", request)

    async def test_files(self):
        """
        ls with depth, head, tail -c, du and df.
        """
        listing = await self.query({"op": "ls", "depth": 2})
        names = [e["name"] for e in listing["entries"]]
        self.assertIn("sub/deep/data", names)
        head = await self.query({"op": "head", "path": "job.log", "bytes": 3})
        self.assertEqual(head["data"], b"fir")
        tail = await self.query({"op": "tail", "path": "job.log", "bytes": 3})
        self.assertEqual(tail["data"], b"st\n")
        du = await self.query({"op": "du", "path": "sub"})
        self.assertGreaterEqual(du["total"], 100000)
        self.assertEqual(du["entries"][0]["name"], "deep")
        df = await self.query({"op": "df"})
        self.assertGreater(df["total"], df["free"])

    async def test_follow(self):
        """
        follow returns bytes appended during its wait within about a second,
        and reports a replaced file as rotated.
        """
        log = os.path.join(self.workdir, "job.log")
        first = await self.query({"op": "follow", "path": "job.log", "offset": 6, "wait": 5})
        self.assertEqual(first["data"], b"")
        pending = self.query({"op": "follow", "path": "job.log", "offset": 6,
                              "inode": first["inode"], "wait": 10})
        await deferLater(reactor, 0.3, lambda: None)
        with open(log, "ab") as f:
            f.write(b"second\n")
        written = time.monotonic()
        result = await pending
        self.assertLess(time.monotonic() - written, 1.0)
        self.assertEqual(result["data"], b"second\n")
        os.rename(log, log + ".1")
        with open(log, "wb") as f:
            f.write(b"new file\n")
        rotated = await self.query({"op": "follow", "path": "job.log",
                                    "offset": result["next_offset"], "inode": result["inode"],
                                    "wait": 5})
        self.assertTrue(rotated["rotated"])
        self.assertEqual(rotated["data"], b"new file\n")

    async def test_processes(self):
        """
        ps shows the job's tree (the job, its two children and not other
        processes), top samples it, res totals it.
        """
        ps = await self.query({"op": "ps"})
        self.assertEqual(ps["root"], self.job.transport.pid)
        commands = [p["cmdline"] for p in ps["processes"]]
        self.assertEqual(sum("sleep 300" in c for c in commands), 2)
        self.assertEqual(len(ps["processes"]), 3)
        top = await self.query({"op": "top", "interval": 0.5})
        self.assertEqual(len(top["processes"]), 3)
        res = await self.query({"op": "res"})
        self.assertEqual(res["processes"], 3)
        self.assertGreater(res["rss"], 0)

    async def test_env(self):
        """
        The job's environment, with secret-looking values redacted; the
        paths of credentials and CAs are shown.
        """
        env = await self.query({"op": "env"})
        self.assertEqual(env["variables"]["PLAIN"], "visible")
        self.assertEqual(env["variables"]["X509_CERT_DIR"], "/etc/grid-security/certificates")
        self.assertEqual(env["variables"]["MY_API_TOKEN"], "<redacted>")
        self.assertEqual(env["variables"]["MYSITE_VALUE"], "<redacted>")
        self.assertIn("MY_API_TOKEN", env["redacted"])
        self.assertNotIn("t0ps3cret", repr(env))

    async def test_commands(self):
        """
        commands lists what the job offers; run runs it without a shell;
        bad arguments, unknown names, failures and timeouts are clear.
        """
        listed = await self.query({"op": "commands"})
        self.assertEqual([(c["name"], c["available"]) for c in listed["commands"]],
                         [("echo", True), ("fail", True), ("slow", True)])
        ran = await self.query({"op": "run", "name": "echo", "args": ["hello", "world"]})
        self.assertEqual((ran["exit_code"], ran["stdout"]), (0, b"hello world\n"))
        e = await self.assertOpFault(errors.BAD_REQUEST,
                                   {"op": "run", "name": "echo", "args": ["$(id)"]})
        self.assertIn("not allowed", e.message)
        await self.assertOpFault(errors.NO_SUCH_COMMAND, {"op": "run", "name": "rm"})
        e = await self.assertOpFault(errors.NO_SUCH_COMMAND, {"op": "run", "name": "ecko"})
        self.assertIn("did you mean 'echo'?", e.message)
        failed = await self.query({"op": "run", "name": "fail"})
        self.assertEqual((failed["exit_code"], failed["stderr"]), (3, b"oops\n"))
        start = time.monotonic()
        e = await self.assertOpFault(errors.REMOTE_TIMEOUT, {"op": "run", "name": "slow"})
        self.assertIn("killed", e.message)
        self.assertLess(time.monotonic() - start, 10)

    async def test_signals(self):
        """
        An allowed signal reaches the job and is logged by the server with
        the caller; others are refused; a limited proxy may not send any.
        """
        result = await self.query({"op": "signal", "signal": "USR1"})
        self.assertEqual(result, {"signal": "USR1", "pid": self.job.transport.pid})
        for _ in range(50):
            if os.path.exists(os.path.join(self.workdir, "got-usr1")):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(os.path.exists(os.path.join(self.workdir, "got-usr1")))
        self.assertIn("signal USR1 on job job.1", self.server.proto.output.decode())
        self.assertIn(self.tpki.dn("alice"), self.server.proto.output.decode())
        e = await self.assertOpFault(errors.NOT_ALLOWED, {"op": "signal", "signal": "TERM"})
        self.assertIn("allowed: USR1", e.message)
        self.assertTrue(self.job.running)
        alice = self.tpki.users["alice"]
        limitedPath = os.path.join(self.tpki.base, "limited")
        pki.makeProxy(alice.certPath, alice.keyPath, limitedPath, limited=True)
        limited = self.newClient(limitedPath)
        e = await self.assertOpFault(errors.NOT_AUTHORIZED,
                                   {"op": "signal", "signal": "USR1"}, limited)
        self.assertIn("limited proxy", e.message)
        # Reading is fine with a limited proxy.
        await self.query({"op": "stat", "path": "job.log"}, limited)

    async def test_tailFollowCLI(self):
        """
        jobmon-query tail -f prints lines as they are written, keeps going
        through a server restart without losing or repeating a line, and
        Ctrl-C leaves nothing pending on the server.
        """
        env = childEnv(JOBMON_SERVER=self.server.url, X509_USER_PROXY=self.tpki.proxies["alice"],
                       X509_CERT_DIR=self.tpki.caDir)
        cli = spawn(self, "tail -f", ["-m", "jobmon.cli", "tail", "-f", "job.1", "job.log"],
                    program=sys.executable, env=env, path=ROOT)
        await cli.waitFor("first\n")
        log = os.path.join(self.workdir, "job.log")
        with open(log, "ab") as f:
            f.write(b"line 2\n")
        written = time.monotonic()
        await cli.waitFor("line 2\n")
        self.assertLess(time.monotonic() - written, 1.5)
        https, wake = self.server.httpsPort, self.server.wakePort
        mark = self.daemon.mark()
        await self.server.proto.stop()
        with open(log, "ab") as f:
            f.write(b"line 3 while the server is down\n")
        self.server = await startServer(self, self.tpki, httpsPort=https, wakePort=wake)
        await self.daemon.waitFor(r"wake channel up", after=mark)
        with open(log, "ab") as f:
            f.write(b"line 4\n")
        await cli.waitFor("line 4\n", timeout=30)
        out = cli.output.decode()
        for line in ("first\n", "line 2\n", "line 3 while the server is down\n", "line 4\n"):
            self.assertEqual(out.count(line), 1, out)
        cli.signal("INT")
        code = await cli.whenEnded()
        self.assertEqual(code, 130)
        c = self.newClient()
        self.assertEqual(await waitForPending(c, 0, tries=40, interval=0.1), 0)



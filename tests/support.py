"""
Helpers for end-to-end tests: a throwaway PKI and real C{twistd} processes
(server and daemons) on 127.0.0.1, stopped in each test's cleanup.
"""

import os
import re
import signal
import socket
import sys

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from jobmon.devtools import pki

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The source tree the child processes import JobMon from."""

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")

START_TIMEOUT = 20
"""Seconds a process has to print what a test waits for."""


def childEnv(**extra):
    """
    The environment for child processes: this source tree first on the path,
    no credentials inherited from the person running the tests.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("X509_USER_PROXY", "X509_CERT_DIR", "JOBMON_SERVER")
    }
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class TestPKI:
    """
    A CA with alice, bob and admin, a proxy and a proxy of a proxy for
    alice, and a second, unrelated CA with a user "mallory".
    """

    def __init__(self, base):
        os.makedirs(base)
        self.base = base
        self.pki = pki.initPKI(os.path.join(base, "pki"), users=("alice", "bob", "admin"))
        self.caDir = self.pki.ca.hashedDir
        self.hostCert = self.pki.hostCertPath
        self.hostKey = self.pki.hostKeyPath
        self.users = self.pki.users
        self.proxies = {}
        for name, user in self.users.items():
            path = os.path.join(base, "x509up_" + name)
            pki.makeProxy(user.certPath, user.keyPath, path)
            self.proxies[name] = path
        self.proxyOfProxy = os.path.join(base, "x509up_alice_2")
        pki.makeProxy(self.proxies["alice"], self.proxies["alice"], self.proxyOfProxy)

    def dn(self, name):
        """
        The DN of a user.
        """
        return self.users[name].dn

    def userFile(self, name):
        """
        A single file with a user's certificate and key (no proxy).
        """
        user = self.users[name]
        path = os.path.join(self.base, name + "-cert+key.pem")
        if not os.path.exists(path):
            with open(user.certPath, "rb") as c, open(user.keyPath, "rb") as k:
                data = c.read() + k.read()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return path


class ChildProcess(ProcessProtocol):
    """
    A child process whose output is kept and can be waited on.
    """

    def __init__(self, name):
        self.name = name
        self.output = bytearray()
        self._ended = []
        self.done = False
        self.signalled = None
        self.exitCode = None
        self._waiters = []
        self.running = False

    def connectionMade(self):
        self.running = True

    def outReceived(self, data):
        self.output.extend(data)
        self._check()

    errReceived = outReceived

    def _check(self):
        text = self.output.decode("utf-8", "replace")
        for waiter in list(self._waiters):
            pattern, start, d = waiter
            match = pattern.search(text, start)
            if match:
                self._waiters.remove(waiter)
                d.callback(match)

    def mark(self):
        """
        Return the current output length: L{waitFor} can look only after it.
        """
        return len(self.output.decode("utf-8", "replace"))

    def waitFor(self, pattern, timeout=START_TIMEOUT, after=0):
        """
        Fire with the first match of C{pattern} in the output after offset
        C{after}; fail after C{timeout} seconds or if the process ends.
        """
        d = defer.Deferred()
        self._waiters.append((re.compile(pattern), after, d))
        self._check()
        if not d.called:
            d.addTimeout(timeout, reactor)
        return d

    def processEnded(self, reason):
        self.running = False
        self.done = True
        self.exitCode = reason.value.exitCode
        self.signalled = reason.value.signal
        for _, _, d in self._waiters:
            d.errback(
                RuntimeError(
                    "{} ended (exit {}) before printing what was expected:\n{}".format(
                        self.name, self.exitCode, self.output.decode("utf-8", "replace")
                    )
                )
            )
        self._waiters = []
        ended, self._ended = self._ended, []
        for d in ended:
            d.callback(self.exitCode)

    def whenEnded(self):
        """
        Fire with the exit code when the process ends (at once if it has).
        """
        if self.done:
            return defer.succeed(self.exitCode)
        d = defer.Deferred()
        self._ended.append(d)
        return d

    def signal(self, name):
        """
        Send a signal by name (e.g. C{"KILL"}, C{"STOP"}).
        """
        if self.running:
            self.transport.signalProcess(getattr(signal, "SIG" + name))

    async def stop(self, timeout=10):
        """
        Stop with SIGTERM, then SIGKILL if it does not end in time.
        """
        if not self.running:
            return self.exitCode
        # A test may have stopped it with SIGSTOP.
        self.signal("CONT")
        self.signal("TERM")
        timer = reactor.callLater(timeout, self.signal, "KILL")
        try:
            return await self.whenEnded()
        finally:
            if timer.active():
                timer.cancel()


def spawn(case, name, args, env=None, path=None, program=TWISTD):
    """
    Start C{twistd} (or another C{program}) with C{args}; stop it in
    C{case}'s cleanup.
    """
    proto = ChildProcess(name)
    reactor.spawnProcess(
        proto, program, [program] + args, env=env or childEnv(), path=path or ROOT
    )

    async def cleanup():
        await proto.stop()

    case.addCleanup(lambda: defer.Deferred.fromCoroutine(cleanup()))
    return proto


class Server:
    """
    A running C{twistd jobmon-server}.
    """

    def __init__(self, proto, httpsPort, wakePort):
        self.proto = proto
        self.httpsPort = httpsPort
        self.wakePort = wakePort
        self.url = "https://127.0.0.1:{}/RPC2".format(httpsPort)


async def startServer(case, tpki, *extra, httpsPort=0, wakePort=0, admins=("admin",)):
    """
    Start a server on 127.0.0.1 and wait until it listens.
    """
    args = [
        "-n",
        "--pidfile=",
        "jobmon-server",
        "--interface",
        "127.0.0.1",
        "--https-port",
        str(httpsPort),
        "--wake-port",
        str(wakePort),
        "--hostcert",
        tpki.hostCert,
        "--hostkey",
        tpki.hostKey,
        "--ca-dir",
        tpki.caDir,
        "--audit-log",
        os.path.join(tpki.base, "audit.jsonl"),
        "--history",
        os.path.join(tpki.base, "history.sqlite3"),
    ]
    for name in admins:
        args += ["--admin", tpki.dn(name)]
    args += list(extra)
    proto = spawn(case, "jobmon-server", args)
    match = await proto.waitFor(r"XML-RPC on (\d+), TCP wake on (\d+)")
    return Server(proto, int(match.group(1)), int(match.group(2)))


async def startDaemon(case, server, jobId, workdir, proxy, caDir, *extra, wait=True):
    """
    Start a job daemon and, by default, wait until its wake channel is up.
    """
    args = [
        "-n",
        "--pidfile=",
        "jobmon-daemon",
        "--server",
        server.url,
        "--job-id",
        jobId,
        "--workdir",
        workdir,
        "--proxy",
        proxy,
        "--ca-dir",
        caDir,
        "--retry-initial-delay",
        "0.2",
        "--retry-max-delay",
        "1",
    ] + list(extra)
    proto = spawn(case, "jobmon-daemon " + jobId, args)
    if wait:
        await proto.waitFor(r"wake channel up")
    return proto


def inThread(f, *args, **kwargs):
    """
    Run a blocking client call off the reactor thread.
    """
    return deferToThread(f, *args, **kwargs)


def freeUDPPort():
    """
    A UDP port number free on this host now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def waitForPending(client, count, jobId="job.1", tries=50, interval=0.05):
    """
    List jobs with the blocking C{client} until C{jobId} has C{count}
    requests pending, at most C{tries} times C{interval} seconds apart.

    @return: the job's last pending count (the caller asserts it).
    """
    for attempt in range(tries):
        [job] = [j for j in await inThread(client.listJobs) if j["job_id"] == jobId]
        if job["pending"] == count or attempt == tries - 1:
            return job["pending"]
        await deferLater(reactor, interval, lambda: None)


class FaultAssertions:
    """
    A mixin for trial test cases that make blocking client calls.
    """

    async def assertFault(self, code, f, *args):
        """
        Assert that the blocking call C{f(*args)} raises a L{JobMonError}
        with C{code}; return it.
        """
        from jobmon.errors import JobMonError

        try:
            await inThread(f, *args)
        except JobMonError as e:
            self.assertEqual(e.code, code, e.message)
            return e
        self.fail("no error raised; expected code {}".format(code))

"""
Tests for L{jobmon.worker.tls}: the job daemon's TLS options, built in a
thread at start and again when the credential or the CA directory changes,
looked up in memory for each connection.
"""

import builtins
import datetime
import os
import time

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon.certificates import CredentialError
from jobmon.devtools import pki
from jobmon.worker.tls import (
    CREDENTIAL_RECHECK,
    CredentialPolicy,
    clientCredential,
    loadCredential,
)

HOST = "localhost"


class ThreadCalls:
    """
    A stand-in for C{deferToThread} that runs the call at once and counts
    the calls.
    """

    def __init__(self):
        self.calls = 0

    def __call__(self, f, *args):
        self.calls += 1
        return defer.maybeDeferred(f, *args)


def noSystemCalls(case):
    """
    Make every file access of the test fail loudly until it ends.
    """

    def boom(*args, **kwargs):
        raise AssertionError("system call during a connection's lookup")

    for name in ("stat", "lstat", "listdir", "open", "scandir"):
        case.patch(os, name, boom)
    case.patch(builtins, "open", boom)


class CredentialPolicyTests(SynchronousTestCase):
    """
    L{CredentialPolicy} with a L{Clock}, a synchronous thread stand-in and
    a throwaway PKI.
    """

    def setUp(self):
        self.base = self.mktemp()
        self.pki = pki.initPKI(self.base, users=("alice",))
        self.alice = self.pki.users["alice"]
        self.path = self.base + "/x509up"
        self.renewals = 0
        self.renew(hours=12)
        self.clock = Clock()
        self.clock.advance(time.time())
        self.threads = ThreadCalls()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def renew(self, **kwargs):
        """
        Write a new proxy for alice at L{path}, as a renewal does (the file
        replaced by another), dated apart from the last one.
        """
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, self.path, **kwargs)
        # Two renewals in one clock tick of the file system could look
        # alike; real ones are hours apart.
        self.renewals += 1
        stamp = time.time() + self.renewals
        os.utime(self.path, (stamp, stamp))

    def policy(self, credentialPath="default", runInThread=None, start=True):
        """
        A policy for alice's proxy (or C{credentialPath}) and L{HOST},
        started unless told otherwise, stopped at the end of the test.
        """
        policy = CredentialPolicy(
            self.clock,
            self.pki.ca.hashedDir,
            self.path if credentialPath == "default" else credentialPath,
            hostnames=[HOST],
            runInThread=runInThread or self.threads,
        )
        if start:
            policy.startService()
            self.addCleanup(self.stop, policy)
        return policy

    def stop(self, policy):
        """
        Stop C{policy} if it runs; no timer may be left behind.
        """
        if policy.running:
            self.successResultOf(defer.maybeDeferred(policy.stopService))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def tick(self, n=1):
        """
        Let C{n} looks at the files happen.
        """
        for _ in range(n):
            self.clock.advance(CREDENTIAL_RECHECK)

    def messages(self, level=None):
        """
        The log messages of the test so far (of C{level}, if given).
        """
        from twisted.logger import formatEvent

        return [
            formatEvent(e) for e in self.events
            if level is None or e["log_level"] == level
        ]

    def test_startBuildsOnce(self):
        """
        Starting the policy builds the options once, in the thread; a
        connection then gets them.
        """
        policy = self.policy()
        self.assertEqual(self.threads.calls, 1)
        self.successResultOf(policy.whenLoaded())
        self.assertIsNotNone(policy.creatorForNetloc(HOST.encode("ascii"), 8443))
        self.assertIs(
            policy.creatorForNetloc(HOST.encode("ascii"), 8443),
            policy.creatorForNetloc(HOST, 9999),
        )

    def test_unchangedNoRebuild(self):
        """
        While the files stay as they are, each look (in the thread) builds
        nothing: connections keep getting the same options.
        """
        policy = self.policy()
        before = policy.creatorForNetloc(HOST, 8443)
        self.tick(3)
        self.assertEqual(self.threads.calls, 4)
        self.assertIs(policy.creatorForNetloc(HOST, 8443), before)
        self.assertEqual(self.messages(), [])

    def test_changedProxyRebuilt(self):
        """
        A renewed proxy is picked up at the next look, without a restart.
        """
        policy = self.policy()
        before = policy.creatorForNetloc(HOST, 8443)
        self.renew(hours=24)
        self.tick()
        after = policy.creatorForNetloc(HOST, 8443)
        self.assertIsNot(after, before)
        self.assertEqual(
            [m for m in self.messages(LogLevel.info) if "reloaded" in m],
            ["TLS credentials reloaded from {} and CA directory {}".format(
                self.path, self.pki.ca.hashedDir)],
        )
        self.tick()
        self.assertIs(policy.creatorForNetloc(HOST, 8443), after)

    def test_changedCADirectoryRebuilt(self):
        """
        A new CA in the directory is picked up at the next look.
        """
        policy = self.policy()
        before = policy.creatorForNetloc(HOST, 8443)
        other = pki.makeCA(self.base + "/other", name="Other CA")
        pki.addHashedCert(other.cert, self.pki.ca.hashedDir)
        self.tick()
        self.assertIsNot(policy.creatorForNetloc(HOST, 8443), before)

    def test_failedRebuildLoggedLastGoodKept(self):
        """
        A half-written proxy is logged, naming the file and why, and the
        last good options stay in use; the load is tried again at each look
        (the same failure logged once), and the complete file is used once
        it is there.
        """
        policy = self.policy()
        before = policy.creatorForNetloc(HOST, 8443)
        with open(self.path, "rb") as f:
            data = f.read()
        with open(self.path, "wb") as f:
            f.write(data[: len(data) // 2])
        self.tick()
        self.assertIs(policy.creatorForNetloc(HOST, 8443), before)
        [error] = self.messages(LogLevel.error)
        self.assertIn("cannot load TLS credentials from " + self.path, error)
        self.assertIn("keeping the last good ones", error)
        self.assertIn(self.path, error.split(": ", 1)[1])
        self.tick(2)
        self.assertEqual(self.threads.calls, 4)
        self.assertEqual(len(self.messages(LogLevel.error)), 1)
        self.assertIs(policy.creatorForNetloc(HOST, 8443), before)
        self.renew()
        self.tick()
        self.assertIsNot(policy.creatorForNetloc(HOST, 8443), before)

    def test_badCADirectoryLogged(self):
        """
        A CA directory gone bad is logged, naming it, and the last good
        options stay in use.
        """
        policy = self.policy()
        before = policy.creatorForNetloc(HOST, 8443)
        for name in os.listdir(self.pki.ca.hashedDir):
            os.unlink(os.path.join(self.pki.ca.hashedDir, name))
        self.tick()
        self.assertIs(policy.creatorForNetloc(HOST, 8443), before)
        [error] = self.messages(LogLevel.error)
        self.assertIn("no CA certificate", error)
        self.assertIn(self.pki.ca.hashedDir, error)

    def test_unexpectedFailureLogged(self):
        """
        A failure that is not a known credential problem is logged with its
        traceback, and the next look tries again.
        """
        calls = []

        def broken(f, *args):
            calls.append(f)
            return defer.fail(RuntimeError("disk on fire"))

        policy = self.policy(runInThread=broken)
        self.successResultOf(policy.whenLoaded())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        e = self.assertRaises(CredentialError, policy.creatorForNetloc, HOST, 8443)
        self.assertIn("disk on fire", str(e))
        self.tick()
        self.assertEqual(len(calls), 2)

    def test_firstLoadFails(self):
        """
        When the first load fails, L{CredentialPolicy.whenLoaded} still
        fires and connections fail with the reason, until a load succeeds.
        """
        missing = self.base + "/missing"
        policy = self.policy(credentialPath=missing)
        self.successResultOf(policy.whenLoaded())
        e = self.assertRaises(CredentialError, policy.creatorForNetloc, HOST, 8443)
        self.assertIn("cannot read " + missing, str(e))
        [error] = self.messages(LogLevel.error)
        self.assertIn("no TLS connection until they load", error)
        os.rename(self.path, missing)
        self.tick()
        self.assertIsNotNone(policy.creatorForNetloc(HOST, 8443))

    def test_lookupMakesNoSystemCall(self):
        """
        A connection's lookup reads no file and calls no C{stat}, for a
        name known ahead and for a new one.
        """
        policy = self.policy()
        noSystemCalls(self)
        self.assertIsNotNone(policy.creatorForNetloc(HOST.encode("ascii"), 8443))
        self.assertIsNotNone(policy.creatorForNetloc(b"127.0.0.1", 8443))

    def test_newHostNameKept(self):
        """
        A name not known ahead gets options built from what is loaded, which
        the next loads build too.
        """
        policy = self.policy()
        first = policy.creatorForNetloc(b"server.example", 8443)
        self.assertIs(policy.creatorForNetloc("server.example", 8443), first)
        self.renew()
        self.tick()
        noSystemCalls(self)
        self.assertIsNot(policy.creatorForNetloc("server.example", 8443), first)

    def test_expiredThenRenewed(self):
        """
        An expired proxy gives a message naming the file and the time; a
        renewed file at the same path works without a restart.
        """
        now = self.clock.seconds()
        self.renew(
            notBefore=datetime.datetime.fromtimestamp(now - 7200, datetime.timezone.utc),
            notAfter=datetime.datetime.fromtimestamp(now - 60, datetime.timezone.utc),
        )
        policy = self.policy()
        e = self.assertRaises(CredentialError, policy.creatorForNetloc, b"localhost", 8443)
        self.assertIn("expired at", str(e))
        self.assertIn("renew it", str(e))
        self.assertIn(self.path, str(e))
        self.assertIn(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 60)), str(e))
        self.renew(hours=2)
        self.tick()
        self.assertIsNotNone(policy.creatorForNetloc(b"localhost", 8443))

    def test_expiresOnTheClock(self):
        """
        Expiry is judged per connection on the policy's clock: no new load
        is needed for a credential to run out.
        """
        policy = self.policy()
        self.assertIsNotNone(policy.creatorForNetloc(HOST, 8443))
        self.clock.advance(13 * 3600)
        noSystemCalls(self)
        e = self.assertRaises(CredentialError, policy.creatorForNetloc, HOST, 8443)
        self.assertIn("expired at", str(e))

    def test_expiryWarnedOncePerLoad(self):
        """
        A credential about to expire is warned about when it is loaded, not
        at each look or connection.
        """
        now = self.clock.seconds()
        self.renew(
            notBefore=datetime.datetime.fromtimestamp(now - 60, datetime.timezone.utc),
            notAfter=datetime.datetime.fromtimestamp(now + 1800, datetime.timezone.utc),
        )
        policy = self.policy()
        policy.creatorForNetloc(HOST, 8443)
        self.tick(3)
        policy.creatorForNetloc(HOST, 8443)
        self.assertEqual(
            self.messages(LogLevel.warn),
            ["credential {} expires in 30 minutes; renew it (the new file is picked up "
             "without a restart)".format(self.path)],
        )

    def test_bearerTokenDaemon(self):
        """
        With no credential file (a daemon with a bearer token), the options
        only trust the CA directory, and are built again when it changes.
        """
        policy = self.policy(credentialPath=None)
        before = policy.creatorForNetloc(HOST, 8443)
        self.tick()
        self.assertIs(policy.creatorForNetloc(HOST, 8443), before)
        other = pki.makeCA(self.base + "/other", name="Other CA")
        pki.addHashedCert(other.cert, self.pki.ca.hashedDir)
        self.tick()
        self.assertIsNot(policy.creatorForNetloc(HOST, 8443), before)

    def test_whenLoadedWaits(self):
        """
        L{CredentialPolicy.whenLoaded} waits for the first load; a waiter
        may give up.
        """
        pending = []

        def later(f, *args):
            d = defer.Deferred()
            pending.append((d, f, args))
            return d

        policy = self.policy(runInThread=later)
        first, second = policy.whenLoaded(), policy.whenLoaded()
        self.assertNoResult(first)
        second.cancel()
        self.failureResultOf(second, defer.CancelledError)
        self.assertRaises(CredentialError, policy.creatorForNetloc, HOST, 8443)
        d, f, args = pending.pop()
        d.callback(f(*args))
        self.successResultOf(first)
        self.successResultOf(policy.whenLoaded())

    def test_stopWaitsForLook(self):
        """
        Stopping waits for a look under way, and leaves no timer.
        """
        pending = []

        def later(f, *args):
            d = defer.Deferred()
            pending.append((d, f, args))
            return d

        policy = self.policy(runInThread=later)
        stopped = policy.stopService()
        self.assertNoResult(stopped)
        d, f, args = pending.pop()
        d.callback(f(*args))
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_loadNow(self):
        """
        L{CredentialPolicy.loadNow} loads in the calling thread, for tools
        that set up before the reactor runs.
        """
        policy = self.policy(start=False)
        policy.loadNow()
        self.assertIsNotNone(policy.creatorForNetloc(HOST, 8443))
        self.assertEqual(self.threads.calls, 0)


class LoadCredentialTests(SynchronousTestCase):
    """
    L{loadCredential} and L{clientCredential} read a credential file.
    """

    def setUp(self):
        self.base = self.mktemp()
        self.pki = pki.initPKI(self.base, users=("alice",))
        self.alice = self.pki.users["alice"]
        self.path = self.base + "/x509up"
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, self.path, hours=2)

    def test_proxy(self):
        """
        A proxy gives its certificate and key, its chain, and the earliest
        end of validity of its certificates.
        """
        credential = loadCredential(self.path)
        self.assertEqual(len(credential.chain), 1)
        self.assertLess(abs(credential.notAfter - (time.time() + 7200)), 120)
        private, chain = clientCredential(self.path)
        self.assertEqual(len(chain), 1)
        self.assertEqual(
            private.getSubject(), credential.certificate.getSubject()
        )

    def test_noKey(self):
        """
        A file without a key is refused, naming it.
        """
        e = self.assertRaises(CredentialError, loadCredential, self.pki.ca.certPath)
        self.assertIn("holds no private key", str(e))

    def test_corrupt(self):
        """
        A file whose certificate does not parse is refused, naming it.
        """
        with open(self.alice.keyPath, "rb") as f:
            key = f.read()
        with open(self.path, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n" + key)
        e = self.assertRaises(CredentialError, loadCredential, self.path)
        self.assertIn(self.path, str(e))

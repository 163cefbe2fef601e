"""
Tests for L{jobmon.server.identity}: who is behind a certificate chain.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.devtools import pki
from jobmon.errors import JobMonError
from jobmon.server.identity import Identity, identityFromChain


class IdentityFromChainTests(SynchronousTestCase):
    """
    L{identityFromChain} with chains made by L{jobmon.devtools.pki}.
    """

    def setUp(self):
        base = self.mktemp()
        self.pki = pki.initPKI(base, users=("alice",))
        self.alice = self.pki.users["alice"]
        self.base = base

    def chainOf(self, path):
        """
        The certificates of a credential file, leaf first, with the CA.
        """
        return pki.readCertificates(path) + [self.pki.ca.cert]

    def test_userCert(self):
        """
        A plain user certificate is its own identity, not a proxy.
        """
        chain = [pki.readCertificates(self.alice.certPath)[0], self.pki.ca.cert]
        self.assertEqual(identityFromChain(chain), Identity(self.alice.dn))

    def test_proxyAndProxyOfProxy(self):
        """
        A proxy and a proxy of a proxy both stand for the user.
        """
        first = "{}/p1.pem".format(self.base)
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, first)
        second = "{}/p2.pem".format(self.base)
        pki.makeProxy(first, first, second)
        for path in (first, second):
            self.assertEqual(
                identityFromChain(self.chainOf(path)),
                Identity(self.alice.dn, proxy=True, limited=False),
            )

    def test_limited(self):
        """
        A limited proxy anywhere in the chain marks the identity limited.
        """
        first = "{}/p1.pem".format(self.base)
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, first, limited=True)
        second = "{}/p2.pem".format(self.base)
        pki.makeProxy(first, first, second)
        self.assertTrue(identityFromChain(self.chainOf(second)).limited)

    def test_independentRefused(self):
        """
        An independent proxy does not speak for its issuer.
        """
        path = "{}/p.pem".format(self.base)
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, path, independent=True)
        e = self.assertRaises(JobMonError, identityFromChain, self.chainOf(path))
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertIn("independent", e.message)

    def test_hostCertRefused(self):
        """
        A host certificate (DNS names in subjectAltName) cannot act as a
        user.
        """
        chain = [pki.readCertificates(self.pki.hostCertPath)[0], self.pki.ca.cert]
        e = self.assertRaises(JobMonError, identityFromChain, chain)
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertIn("host or service certificate", e.message)

    def test_empty(self):
        """
        No chain, no identity.
        """
        e = self.assertRaises(JobMonError, identityFromChain, None)
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)

    def test_slashForm(self):
        """
        The DN is in slash form, in certificate order.
        """
        self.assertEqual(
            self.alice.dn, "/DC=org/DC=jobmon-test/OU=People/CN=Alice Example"
        )


class RefusalBudgetTests(SynchronousTestCase):
    """
    Refusals are logged a few per address per window; the rest counted.
    """

    def test_budget(self):
        """
        The first refusals are logged; later ones in the window are not, and
        the next one logged after the window says how many were skipped.
        """
        from jobmon.server.tls import RefusalBudget

        now = [0.0]
        budget = RefusalBudget(burst=2, window=60, now=lambda: now[0])
        self.assertEqual([budget.admit("a") for _ in range(5)], [0, 0, None, None, None])
        self.assertEqual(budget.admit("b"), 0)
        now[0] = 61
        self.assertEqual(budget.admit("a"), 3)
        self.assertEqual(budget.admit("a"), 0)
        self.assertIsNone(budget.admit("a"))

    def test_bounded(self):
        """
        The table of addresses stays bounded under a flood from many.
        """
        from jobmon.server.tls import RefusalBudget

        now = [0.0]
        budget = RefusalBudget(burst=1, window=10, now=lambda: now[0], maxPeers=100)
        for i in range(1000):
            now[0] = i
            budget.admit("10.0.{}.{}".format(i // 256, i % 256))
        self.assertLessEqual(len(budget._peers), 111)

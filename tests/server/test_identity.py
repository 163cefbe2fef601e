"""
Tests for L{jobmon.server.identity}: who is behind a certificate chain.
"""

import datetime
import os

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.devtools import pki
from jobmon.errors import JobMonError
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import (
    AdminList,
    ConnectionIdentities,
    CredentialWatch,
    Identity,
    identityFromChain,
    parseAdmin,
)
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import JobRecord, MemoryJobRegistry
from jobmon.server.tls import ServerContextFactory


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
        identity = identityFromChain(chain)
        self.assertEqual(identity, Identity(self.alice.dn, issuer=self.pki.ca.dn))
        self.assertEqual(identity.notAfter, chain[0].not_valid_after_utc.timestamp())
        self.assertEqual(identity.expiring, "your certificate")

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
                Identity(self.alice.dn, proxy=True, limited=False, issuer=self.pki.ca.dn),
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


class _Connection:
    """
    A pyOpenSSL connection as far as L{ConnectionIdentities} reads it.
    """

    def __init__(self, chain):
        self.chain = [crypto.X509.from_cryptography(c) for c in chain]

    def get_verified_chain(self):
        return self.chain


class _Transport:
    def __init__(self, connection):
        self.connection = connection

    def getHandle(self):
        return self.connection


class _Channel:
    persistent = True


class _Request:
    """
    Just what L{ConnectionIdentities} reads and sets of a request.
    """

    def __init__(self, channel, connection):
        self.channel = channel
        self.transport = _Transport(connection)
        self.headers = {}

    def setHeader(self, name, value):
        self.headers[name] = value

    def getClientAddress(self):
        return IPv4Address("TCP", "192.0.2.5", 40000)


class _Audit:
    def __init__(self):
        self.records = []

    def record(self, event, **fields):
        self.records.append(dict(fields, event=event))


class _Credentials:
    """
    A test PKI with Alice and Bob, the server's TLS context for it, and a
    clock at the present second.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.pki = pki.initPKI(self.base, users=("alice", "bob"))
        self.now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.clock = Clock()
        self.clock.advance(self.now.timestamp())
        self.ctx = ServerContextFactory(self.pki.hostCertPath, self.pki.hostKeyPath,
                                        self.pki.ca.hashedDir)
        self.ctx.load()
        self.audit = _Audit()
        self.identify = ConnectionIdentities(self.clock, trust=self.ctx, audit=self.audit)

    def proxy(self, user, seconds):
        """
        A chain: a proxy of C{user} that expires C{seconds} from now, the
        user certificate, the CA.
        """
        path = os.path.join(self.base, "{}-{}".format(user, seconds))
        cred = self.pki.users[user]
        pki.makeProxy(cred.certPath, cred.keyPath, path,
                      notAfter=self.now + datetime.timedelta(seconds=seconds))
        return pki.readCertificates(path) + [self.pki.ca.cert]

    def request(self, chain, channel=None):
        return _Request(channel or _Channel(), _Connection(chain))

class ConnectionIdentitiesTests(_Credentials, SynchronousTestCase):
    """
    L{ConnectionIdentities}: a connection's identity is kept, and checked
    again on every request against the clock and, after a reload, against
    the CA directory's CRLs.
    """

    def test_expiresOnOpenConnection(self):
        """
        A 20 s proxy works for 20 s on its connection; at 20 s the request
        is refused with a 401 saying when it expired, and the connection is
        closed once answered.
        """
        chain = self.proxy("alice", 20)
        channel = _Channel()
        self.assertEqual(self.identify(self.request(chain, channel)).dn, self.pki.users["alice"].dn)
        self.clock.advance(19.5)
        self.assertEqual(self.identify(self.request(chain, channel)).dn, self.pki.users["alice"].dn)
        self.assertTrue(channel.persistent)
        self.clock.advance(70)
        request = self.request(chain, channel)
        e = self.assertRaises(JobMonError, self.identify, request)
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertIn("your proxy expired at {}".format(
            self.now.replace(tzinfo=None) + datetime.timedelta(seconds=20)), e.message)
        self.assertFalse(channel.persistent)
        self.assertEqual(request.headers, {b"connection": b"close"})
        self.assertEqual(self.audit.records[0]["reason"][:24], "your proxy expired at 20")

    def test_earliestOfChain(self):
        """
        The first certificate of the chain to expire counts, whichever it
        is: here the user certificate, under a longer proxy.
        """
        short = os.path.join(self.base, "short.pem")
        pki.makeUserCert(self.pki.ca, short, short + ".key", "Alice Example",
                         notAfter=self.now + datetime.timedelta(seconds=30))
        path = os.path.join(self.base, "p")
        pki.makeProxy(short, short + ".key", path, hours=1,
                      notAfter=self.now + datetime.timedelta(hours=1))
        chain = pki.readCertificates(path) + [self.pki.ca.cert]
        channel = _Channel()
        self.identify(self.request(chain, channel))
        self.clock.advance(30)
        e = self.assertRaises(JobMonError, self.identify, self.request(chain, channel))
        self.assertIn("your certificate expired at", e.message)

    def test_revokedAfterReload(self):
        """
        A CRL loaded after the connection was opened stops it: Bob's next
        request is refused and his connection closed; Alice's goes on.
        """
        bobChain, aliceChain = self.proxy("bob", 3600), self.proxy("alice", 3600)
        bob, alice = _Channel(), _Channel()
        self.identify(self.request(bobChain, bob))
        self.identify(self.request(aliceChain, alice))
        pki.makeCRL(self.pki.ca, revoked=[self.pki.users["bob"].certPath])
        # Not reloaded yet: the connection goes on as before.
        self.identify(self.request(bobChain, bob))
        self.ctx.install(self.ctx.prepareReload())
        e = self.assertRaises(JobMonError, self.identify, self.request(bobChain, bob))
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertIn("the certificate {} is revoked by its CA".format(
            self.pki.users["bob"].dn), e.message)
        self.assertFalse(bob.persistent)
        self.assertEqual(self.identify(self.request(aliceChain, alice)).dn,
                         self.pki.users["alice"].dn)
        self.assertTrue(alice.persistent)
        self.assertEqual([r["dn"] for r in self.audit.records], [self.pki.users["bob"].dn])

    def test_forgedCRLIgnored(self):
        """
        A CRL not signed by the CA it names revokes nothing.
        """
        chain = self.proxy("bob", 3600)
        other = pki.makeCA(os.path.join(self.base, "other"), name="JobMon Test CA")
        forged = pki.CA(self.pki.ca.cert, other.key, self.pki.ca.certPath,
                        self.pki.ca.keyPath, self.pki.ca.hashedDir)
        pki.makeCRL(forged, revoked=[self.pki.users["bob"].certPath])
        self.ctx.install(self.ctx.prepareReload())
        self.assertEqual(self.identify(self.request(chain)).dn, self.pki.users["bob"].dn)

    def test_caRemoved(self):
        """
        A connection whose CA was taken out of the directory is refused
        after the reload.
        """
        chain = self.proxy("alice", 3600)
        other = pki.initPKI(os.path.join(self.base, "other"), users=())
        pki.addHashedCert(other.ca.cert, self.pki.ca.hashedDir)
        for name in os.listdir(self.pki.ca.hashedDir):
            path = os.path.join(self.pki.ca.hashedDir, name)
            if pki.readCertificates(path)[0] == self.pki.ca.cert:
                os.remove(path)
        self.ctx.install(self.ctx.prepareReload())
        e = self.assertRaises(JobMonError, self.identify, self.request(chain))
        self.assertIn("is no longer trusted by this server", e.message)

    def test_requireWithoutCRL(self):
        """
        With C{--crl-check require}, a CRL removed stops the connections of
        its CA's users.
        """
        crl = pki.makeCRL(self.pki.ca)
        self.ctx = ServerContextFactory(self.pki.hostCertPath, self.pki.hostKeyPath,
                                        self.pki.ca.hashedDir, crlCheck="require")
        self.ctx.load()
        self.identify = ConnectionIdentities(self.clock, trust=self.ctx)
        chain = self.proxy("alice", 3600)
        channel = _Channel()
        self.identify(self.request(chain, channel))
        os.remove(crl)
        self.ctx.install(self.ctx.prepareReload())
        e = self.assertRaises(JobMonError, self.identify, self.request(chain, channel))
        self.assertIn("requires a CRL of the CA", e.message)

    def test_noCertificate(self):
        """
        A connection without a verified chain has no identity.
        """
        e = self.assertRaises(JobMonError, self.identify, self.request([]))
        self.assertIn("no verified client certificate", e.message)


def _certificate(ca, subject):
    """
    A user certificate for C{subject} (an C{x509.Name}) signed by C{ca}, as
    a careless CA might sign it.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca.key, hashes.SHA256())
    )


ADMIN_DN = "/DC=org/DC=jobmon-test/OU=People/CN=Admin Example"


class AdminTests(SynchronousTestCase):
    """
    Admins are matched structurally, and per issuing CA when their entry
    names one.
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        self.pki = pki.initPKI(base, users=())
        self.other = pki.initPKI(os.path.join(base, "other"), users=(), caName="Other CA")

    def identityOf(self, ca, *rdns):
        """
        The identity behind a certificate of C{ca} for the RDNs C{rdns}
        (each a C{(oid, value)}).
        """
        subject = x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)])
                             for oid, value in rdns])
        return identityFromChain([_certificate(ca, subject), ca.cert])

    def hubAdmin(self, identity, *admins):
        """
        Whether the hub tells C{identity} it is an admin, under C{--admin}
        entries C{admins}.
        """
        hub = Hub(Clock(), MemoryJobRegistry(), MemoryRequestTable(), HubConfig(admins=admins))
        return hub.whoami(identity)["admin"]

    def test_slashInValueIsNotAdmin(self):
        """
        A certificate whose OU is C{People/CN=Admin Example} (one attribute
        holding C{/}) is not the admin C{.../OU=People/CN=Admin Example}; the
        real admin is.
        """
        forged = self.identityOf(self.pki.ca, (NameOID.DOMAIN_COMPONENT, "org"),
                                 (NameOID.DOMAIN_COMPONENT, "jobmon-test"),
                                 (NameOID.ORGANIZATIONAL_UNIT_NAME, "People/CN=Admin Example"))
        self.assertEqual(forged.dn, "/DC=org/DC=jobmon-test/OU=People\\/CN=Admin Example")
        self.assertFalse(self.hubAdmin(forged, ADMIN_DN))
        real = self.identityOf(self.pki.ca, (NameOID.DOMAIN_COMPONENT, "org"),
                               (NameOID.DOMAIN_COMPONENT, "jobmon-test"),
                               (NameOID.ORGANIZATIONAL_UNIT_NAME, "People"),
                               (NameOID.COMMON_NAME, "Admin Example"))
        self.assertEqual(real.dn, ADMIN_DN)
        self.assertTrue(self.hubAdmin(real, ADMIN_DN))

    def test_escapedEntry(self):
        """
        An entry written with an escaped C{/} names the one-RDN value, and
        grid-style spellings (lower-case types) name the same structure.
        """
        oddball = self.identityOf(self.pki.ca, (NameOID.COMMON_NAME, "robot/host.example.org"))
        self.assertTrue(self.hubAdmin(oddball, "/CN=robot\\/host.example.org"))
        self.assertTrue(self.hubAdmin(oddball, "/cn=robot/host.example.org"))
        self.assertFalse(self.hubAdmin(oddball, "/CN=robot/CN=host.example.org"))

    def test_perIssuer(self):
        """
        An entry naming its CA (C{DN|CA DN}) matches only certificates that
        CA issued; an entry without one matches any trusted CA's.
        """
        rdns = ((NameOID.DOMAIN_COMPONENT, "org"), (NameOID.COMMON_NAME, "Admin Example"))
        ours, theirs = self.identityOf(self.pki.ca, *rdns), self.identityOf(self.other.ca, *rdns)
        scoped = "/DC=org/CN=Admin Example|" + self.pki.ca.dn
        self.assertEqual(ours.issuer, self.pki.ca.dn)
        hub = Hub(Clock(), MemoryJobRegistry(), MemoryRequestTable(), HubConfig())
        self.assertEqual(hub.whoami(ours)["issuer"], self.pki.ca.dn)
        self.assertNotIn("issuer", hub.whoami(Identity("https://issuer.example#admin")))
        self.assertTrue(self.hubAdmin(ours, scoped))
        self.assertFalse(self.hubAdmin(theirs, scoped))
        self.assertTrue(self.hubAdmin(theirs, "/DC=org/CN=Admin Example"))
        self.assertTrue(self.hubAdmin(theirs, scoped, "/DC=org/CN=Admin Example | "
                                      + self.other.ca.dn))
        # A bare DN (no issuer to check) never satisfies a scoped entry.
        self.assertNotIn(ours.dn, AdminList([scoped]))
        self.assertIn(ours.dn, AdminList(["/DC=org/CN=Admin Example"]))

    def test_tokenAdmin(self):
        """
        A token identity entry matches that bearer only.
        """
        admins = AdminList(["https://issuer.example#admin"])
        self.assertIn(Identity("https://issuer.example#admin"), admins)
        self.assertNotIn(Identity("https://issuer.example#other"), admins)

    def test_badEntries(self):
        """
        Entries that are not DNs are refused, saying why.
        """
        for entry, why in (("/CN=x|/CN=y|/CN=z", "more than one |"), ("/CN=x|CN=y", "starts"),
                           ("admin", "starts with /")):
            e = self.assertRaises(ValueError, parseAdmin, entry)
            self.assertIn(why, str(e))


class _WakeTransport:
    """
    A wake channel's TLS transport, as L{CredentialWatch} uses it.
    """

    def __init__(self, chain):
        self.connection = _Connection(chain)
        self.closed = False

    def getHandle(self):
        return self.connection

    def loseConnection(self):
        self.closed = True


class CredentialWatchTests(_Credentials, SynchronousTestCase):
    """
    L{CredentialWatch}: long-lived wake channels are closed once their
    credential expires or a reload revokes it.
    """

    def setUp(self):
        super().setUp()
        self.watch = CredentialWatch(self.clock, trust=self.ctx, interval=10)
        self.watch.startService()
        self.addCleanup(self.watch.stopService)

    def watched(self, chain):
        transport = _WakeTransport(chain)
        self.watch.watch(transport, identityFromChain(chain))
        return transport

    def test_expired(self):
        """
        A channel is closed at the first check after its proxy expired.
        """
        short, long = self.watched(self.proxy("alice", 25)), self.watched(self.proxy("bob", 3600))
        self.clock.advance(20)
        self.assertFalse(short.closed)
        self.clock.advance(10)
        self.assertTrue(short.closed)
        self.assertFalse(long.closed)
        self.assertEqual(len(self.watch), 1)

    def test_revoked(self):
        """
        After a reload whose CRL revokes Bob, his channel is closed at
        once; Alice's stays open.
        """
        alice, bob = self.watched(self.proxy("alice", 3600)), self.watched(self.proxy("bob", 3600))
        self.clock.advance(10)
        pki.makeCRL(self.pki.ca, revoked=[self.pki.users["bob"].certPath])
        self.ctx.install(self.ctx.prepareReload())
        self.assertEqual((alice.closed, bob.closed), (False, True))
        self.clock.advance(10)
        self.assertFalse(alice.closed)

    def test_helloAfterReload(self):
        """
        A channel whose handshake came before a reload that revokes it is
        refused at its hello.
        """
        chain = self.proxy("bob", 3600)
        pki.makeCRL(self.pki.ca, revoked=[self.pki.users["bob"].certPath])
        self.ctx.install(self.ctx.prepareReload())
        e = self.assertRaises(JobMonError, self.watched, chain)
        self.assertIn("is revoked by its CA", e.message)
        self.assertEqual(len(self.watch), 0)

    def test_tokenChannel(self):
        """
        A channel without a certificate (a token daemon's) is not watched.
        """
        self.watch.watch(_WakeTransport([]), None)
        self.assertEqual(len(self.watch), 0)

    def sealedChannel(self, chain, jobId):
        """
        A sealed wake channel watched for the registration of C{chain}'s
        identity.
        """
        transport = _WakeTransport([])
        transport.sealed = True
        identity = identityFromChain(chain) if chain else None
        now = self.clock.seconds()
        self.watch.watchRegistration(transport, JobRecord(
            jobId, identity.dn if identity else "tok#x", "wn", "tcp", now, now, "s",
            notAfter=identity.notAfter if identity else None,
            revocation=identity.revocation if identity else None))
        return transport

    def test_sealedChannelExpires(self):
        """
        A sealed channel (no certificate of its own) is closed at the first
        check after the credential that registered its job expired; one
        registered with a token is not watched.
        """
        short = self.sealedChannel(self.proxy("alice", 25), "j1")
        long = self.sealedChannel(self.proxy("bob", 3600), "j2")
        self.sealedChannel(None, "j3")
        self.assertEqual(len(self.watch), 2)
        self.clock.advance(20)
        self.assertEqual((short.closed, long.closed), (False, False))
        self.clock.advance(10)
        self.assertEqual((short.closed, long.closed), (True, False))
        self.assertEqual(len(self.watch), 1)

    def test_sealedChannelRevoked(self):
        """
        A reload whose CRL revokes the credential that registered a sealed
        channel's job closes it at once, from the chain's revocation key;
        others stay open.
        """
        alice = self.sealedChannel(self.proxy("alice", 3600), "j1")
        bob = self.sealedChannel(self.proxy("bob", 3600), "j2")
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        pki.makeCRL(self.pki.ca, revoked=[self.pki.users["bob"].certPath])
        self.ctx.install(self.ctx.prepareReload())
        self.assertEqual((alice.closed, bob.closed), (False, True))
        self.assertIn("is revoked by its CA", logged[-1]["why"])
        self.clock.advance(10)
        self.assertFalse(alice.closed)

    def test_sealedAfterReload(self):
        """
        A sealed channel whose job was registered before a reload that
        revokes its credential is refused at its hello.
        """
        chain = self.proxy("bob", 3600)
        pki.makeCRL(self.pki.ca, revoked=[self.pki.users["bob"].certPath])
        self.ctx.install(self.ctx.prepareReload())
        e = self.assertRaises(JobMonError, self.sealedChannel, chain, "j2")
        self.assertIn("is revoked by its CA", e.message)
        self.assertEqual(len(self.watch), 0)

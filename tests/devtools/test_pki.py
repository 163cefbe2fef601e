"""
Tests for L{jobmon.devtools.pki}: the certificates it makes are checked with the
C{openssl} command (the system OpenSSL, as the stdlib C{ssl} module uses)
and with pyOpenSSL (the OpenSSL bundled with C{cryptography}), the two
verifiers JobMon's clients and server rely on.
"""

import datetime
import io
import os
import ssl
import stat
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st
from OpenSSL import crypto
from twisted.trial.unittest import SynchronousTestCase

from jobmon.devtools import certs, pki

OPENSSL = "/usr/bin/openssl"

# OpenSSL verification error codes (X509_V_ERR_*) the refusals must give.
ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
ERR_CERT_SIGNATURE_FAILURE = 7
ERR_CERT_HAS_EXPIRED = 10
ERR_CERT_NOT_YET_VALID = 9
ERR_PROXY_PATH_LENGTH_EXCEEDED = 38
ERR_PROXY_CERTIFICATES_NOT_ALLOWED = 40
# What a legacy proxy gets: its issuer, the user certificate, is taken for a
# CA that is not one ("invalid CA certificate" in OpenSSL 3 and 4).
ERR_INVALID_CA = 79


def modeOf(path):
    """
    The permission bits of C{path}.
    """
    return stat.S_IMODE(os.stat(path).st_mode)


def pemLabels(path):
    """
    The labels of the PEM blocks of C{path}, in order.
    """
    return [label for label, _ in certs._pemBlocks(certs._readFile(path))]


def opensslVerify(capath, path):
    """
    Verify the first certificate of C{path} with the C{openssl} command,
    the rest of C{path} being the untrusted chain, proxies allowed.

    @return: C{(exit status, output)}.
    """
    result = subprocess.run(
        [OPENSSL, "verify", "-allow_proxy_certs", "-CApath", capath, "-untrusted", path, path],
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout + result.stderr


def pyopensslVerify(capath, path):
    """
    Verify the first certificate of C{path} with pyOpenSSL, the rest of
    C{path} being the untrusted chain, proxies allowed.

    @raise crypto.X509StoreContextError: if verification fails.
    """
    certs = [crypto.X509.from_cryptography(c) for c in pki.readCertificates(path)]
    store = crypto.X509Store()
    store.load_locations(None, capath)
    store.set_flags(crypto.X509StoreFlags.ALLOW_PROXY_CERTS)
    crypto.X509StoreContext(store, certs[0], certs[1:]).verify_certificate()


class PKITestMixin:
    """
    Make a test PKI (one CA, alice) in a fresh directory per test.
    """

    def setUp(self):
        """
        Make the CA and alice's certificate.
        """
        self.dir = self.mktemp()
        self.pki = pki.initPKI(self.dir, users=["alice"])
        self.ca = self.pki.ca
        self.alice = self.pki.users["alice"]

    def proxyPath(self, name="x509up"):
        """
        A path for a proxy file in the test directory.
        """
        return os.path.join(self.dir, name)

    def assertVerifies(self, path):
        """
        Both verifiers accept the first certificate of C{path}.
        """
        status, output = opensslVerify(self.ca.hashedDir, path)
        self.assertEqual(status, 0, output)
        self.assertIn(": OK", output)
        pyopensslVerify(self.ca.hashedDir, path)

    def assertRefused(self, path, code=None):
        """
        Both verifiers refuse the first certificate of C{path}; pyOpenSSL
        with the error C{code} if given.
        """
        status, output = opensslVerify(self.ca.hashedDir, path)
        self.assertNotEqual(status, 0, output)
        e = self.assertRaises(
            crypto.X509StoreContextError, pyopensslVerify, self.ca.hashedDir, path
        )
        if code is not None:
            self.assertEqual(e.errors[0], code, e.errors)
        return e


class InitTests(PKITestMixin, SynchronousTestCase):
    """
    L{pki.initPKI} and the certificates it makes.
    """

    def test_files(self):
        """
        The CA, host and user files exist; keys are 0600.
        """
        for name in ["ca-cert.pem", "hostcert.pem", "alice/usercert.pem"]:
            self.assertEqual(modeOf(os.path.join(self.dir, name)), 0o644, name)
        for name in ["ca-key.pem", "hostkey.pem", "alice/userkey.pem"]:
            self.assertEqual(modeOf(os.path.join(self.dir, name)), 0o600, name)

    def test_hashedDirectory(self):
        """
        The hashed directory holds only the CA certificate, named as
        C{openssl x509 -hash} says, and no key.
        """
        output = subprocess.run(
            [OPENSSL, "x509", "-hash", "-noout", "-in", self.ca.certPath],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.assertEqual(os.listdir(self.ca.hashedDir), [output + ".0"])
        self.assertEqual(
            pki.readCertificates(os.path.join(self.ca.hashedDir, output + ".0")),
            [self.ca.cert],
        )

    def test_caCertificate(self):
        """
        The CA is self-signed, a CA (critical), and may sign certificates.
        """
        cert = self.ca.cert
        self.assertEqual(pki.dnOf(cert), "/DC=org/DC=jobmon-test/CN=JobMon Test CA")
        self.assertEqual(cert.subject, cert.issuer)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertTrue(bc.value.ca)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)

    def test_hostCertificate(self):
        """
        The host certificate names localhost, 127.0.0.1 and ::1 in its
        subjectAltName, has CN=localhost, serves and is a client, and
        verifies.
        """
        cert = pki.readCertificates(self.pki.hostCertPath)[0]
        self.assertEqual(self.pki.hostDN, "/DC=org/DC=jobmon-test/OU=Services/CN=localhost")
        self.assertEqual(
            cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "localhost"
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(
            [str(a) for a in san.get_values_for_type(x509.IPAddress)], ["127.0.0.1", "::1"]
        )
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(
            list(eku), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        self.assertVerifies(self.pki.hostCertPath)

    def test_userCertificate(self):
        """
        The user certificate has a multi-component DN, is not a CA
        (critically), may sign (proxies need it) and is for clients only.
        """
        cert = pki.readCertificates(self.alice.certPath)[0]
        self.assertEqual(self.alice.dn, "/DC=org/DC=jobmon-test/OU=People/CN=Alice Example")
        self.assertEqual(pki.dnOf(cert), self.alice.dn)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertFalse(bc.value.ca)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(ku.digital_signature)
        self.assertTrue(ku.key_encipherment)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.CLIENT_AUTH])
        self.assertIsNone(pki.proxyInfoOf(cert))
        self.assertVerifies(self.alice.certPath)

    def test_userValidityInsideCA(self):
        """
        By default a user certificate starts no earlier and ends no later
        than the CA.
        """
        cert = pki.readCertificates(self.alice.certPath)[0]
        self.assertGreaterEqual(cert.not_valid_before_utc, self.ca.cert.not_valid_before_utc)
        self.assertLessEqual(cert.not_valid_after_utc, self.ca.cert.not_valid_after_utc)

    def test_otherCA(self):
        """
        A certificate from a second CA, made in another directory with the
        same name, is refused: the CA is unknown.
        """
        other = pki.makeCA(self.mktemp())
        self.assertEqual(other.dn, self.ca.dn)
        path = os.path.join(self.dir, "mallory.pem")
        pki.makeUserCert(other, path, os.path.join(self.dir, "mallory-key.pem"), "Alice Example")
        self.assertRefused(path, ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)

    def test_existingCA(self):
        """
        L{pki.makeCA} refuses to overwrite a CA, which would orphan the
        certificates it signed.
        """
        e = self.assertRaises(pki.PKIError, pki.makeCA, self.dir)
        self.assertIn("already holds a CA", str(e))

    def test_loadCA(self):
        """
        L{pki.loadCA} reads back a CA that can sign more users.
        """
        ca = pki.loadCA(self.dir)
        self.assertEqual(ca.cert, self.ca.cert)
        path = os.path.join(self.dir, "carol.pem")
        dn = pki.makeUserCert(ca, path, os.path.join(self.dir, "carol-key.pem"), "Carol")
        self.assertEqual(dn, "/DC=org/DC=jobmon-test/OU=People/CN=Carol")
        self.assertVerifies(path)

    def test_expiredUser(self):
        """
        Explicit validity times are kept, even outside the CA's: an
        expired user certificate is refused.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        path = os.path.join(self.dir, "old.pem")
        pki.makeUserCert(
            self.ca,
            path,
            os.path.join(self.dir, "old-key.pem"),
            "Old Example",
            notBefore=now - datetime.timedelta(days=100),
            notAfter=now - datetime.timedelta(days=1),
        )
        self.assertRefused(path, ERR_CERT_HAS_EXPIRED)

    def test_badUserNames(self):
        """
        User names that would be bad directory names, C{ca} (the hashed
        directory) and duplicates are refused before anything is written.
        """
        for users in [["../x"], ["ca"], [""], ["bob", "bob"]]:
            directory = self.mktemp()
            self.assertRaises(pki.PKIError, pki.initPKI, directory, users=users)
            self.assertFalse(os.path.exists(directory))

    def test_rsa(self):
        """
        RSA keys work as well as EC keys, proxies included.
        """
        directory = self.mktemp()
        made = pki.initPKI(directory, users=["bob"], keyType="rsa")
        bob = made.users["bob"]
        path = os.path.join(directory, "x509up")
        pki.makeProxy(bob.certPath, bob.keyPath, path, keyType="rsa")
        self.ca = made.ca
        self.assertVerifies(path)


class ProxyTests(PKITestMixin, SynchronousTestCase):
    """
    L{pki.makeProxy}.
    """

    def test_layout(self):
        """
        The proxy file is the proxy certificate, its PKCS#8 key, then the
        user certificate, mode 0600.
        """
        path = self.proxyPath()
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, path)
        self.assertEqual(pemLabels(path), ["CERTIFICATE", "PRIVATE KEY", "CERTIFICATE"])
        self.assertEqual(modeOf(path), 0o600)
        certs = pki.readCertificates(path)
        self.assertEqual(certs[1], pki.readCertificates(self.alice.certPath)[0])
        key = pki.readPrivateKey(path)
        self.assertEqual(key.public_key(), certs[0].public_key())

    def test_subject(self):
        """
        The proxy's subject is the user's plus one CN, the serial number.
        """
        path = self.proxyPath()
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, path)
        self.assertEqual(pki.dnOf(cert), "%s/CN=%d" % (self.alice.dn, cert.serial_number))
        self.assertEqual(pki.dnOf(cert.issuer), self.alice.dn)

    def test_extensions(self):
        """
        The proxy has a critical ProxyCertInfo with the inheritAll policy
        and no path length, a critical keyUsage with digitalSignature, and
        no basicConstraints.
        """
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, self.proxyPath())
        ext = cert.extensions.get_extension_for_oid(pki.PROXY_CERT_INFO)
        self.assertTrue(ext.critical)
        self.assertEqual(pki.proxyInfoOf(cert), pki.ProxyInfo(None, pki.POLICY_INHERIT_ALL))
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        self.assertTrue(ku.critical)
        self.assertTrue(ku.value.digital_signature)
        self.assertRaises(
            x509.ExtensionNotFound, cert.extensions.get_extension_for_class, x509.BasicConstraints
        )

    def test_opensslReadsProxyCertInfo(self):
        """
        OpenSSL decodes the hand-made ProxyCertInfo as intended.
        """
        path = self.proxyPath()
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, path, limited=True, pathLength=2)
        text = subprocess.run(
            [OPENSSL, "x509", "-noout", "-text", "-in", path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.assertIn("Proxy Certificate Information: critical", text)
        self.assertIn("Path Length Constraint: 02", text)
        self.assertIn("Policy Language: 1.3.6.1.4.1.3536.1.1.1.9", text)

    def test_verifies(self):
        """
        A proxy verifies with both verifiers.
        """
        path = self.proxyPath()
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, path)
        self.assertVerifies(path)

    def test_proxyOfProxy(self):
        """
        A proxy of a proxy, made from a single proxy file, carries the
        whole chain and verifies.
        """
        first, second = self.proxyPath("first"), self.proxyPath("second")
        parent = pki.makeProxy(self.alice.certPath, self.alice.keyPath, first)
        cert = pki.makeProxy(first, first, second)
        self.assertEqual(
            pemLabels(second), ["CERTIFICATE", "PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]
        )
        certs = pki.readCertificates(second)
        self.assertEqual(certs[1:], pki.readCertificates(first))
        self.assertEqual(cert.issuer, parent.subject)
        self.assertEqual(
            pki.dnOf(cert),
            "%s/CN=%d/CN=%d" % (self.alice.dn, parent.serial_number, cert.serial_number),
        )
        self.assertVerifies(second)

    def test_pathLength(self):
        """
        A proxy with path length 0 verifies, but a proxy made from it is
        refused.
        """
        first, second = self.proxyPath("first"), self.proxyPath("second")
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, first, pathLength=0)
        self.assertEqual(pki.proxyInfoOf(pki.readCertificates(first)[0]).pathLength, 0)
        self.assertVerifies(first)
        pki.makeProxy(first, first, second)
        self.assertRefused(second, ERR_PROXY_PATH_LENGTH_EXCEEDED)

    def test_limited(self):
        """
        A limited proxy carries the Globus limited policy, and verifies:
        OpenSSL does not check policies.
        """
        path = self.proxyPath()
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, path, limited=True)
        info = pki.proxyInfoOf(cert)
        self.assertEqual(info.policyLanguage.dotted_string, "1.3.6.1.4.1.3536.1.1.1.9")
        self.assertEqual(info.policyName, "limited")
        self.assertVerifies(path)

    def test_independent(self):
        """
        An independent proxy carries id-ppl-independent, and verifies.
        """
        path = self.proxyPath()
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, path, independent=True)
        info = pki.proxyInfoOf(cert)
        self.assertEqual(info.policyLanguage.dotted_string, "1.3.6.1.5.5.7.21.2")
        self.assertEqual(info.policyName, "independent")
        self.assertVerifies(path)

    def test_limitedAndIndependent(self):
        """
        A proxy cannot be both limited and independent.
        """
        self.assertRaises(
            pki.PKIError,
            pki.makeProxy,
            self.alice.certPath,
            self.alice.keyPath,
            self.proxyPath(),
            limited=True,
            independent=True,
        )

    def test_forged(self):
        """
        A proxy signed by a key other than the user's is refused.
        """
        path = self.proxyPath()
        pki.makeProxy(
            self.alice.certPath,
            self.alice.keyPath,
            path,
            signingKey=ec.generate_private_key(ec.SECP256R1()),
        )
        self.assertRefused(path, ERR_CERT_SIGNATURE_FAILURE)

    def test_expired(self):
        """
        An expired proxy is refused.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        path = self.proxyPath()
        pki.makeProxy(
            self.alice.certPath,
            self.alice.keyPath,
            path,
            notBefore=now - datetime.timedelta(hours=2),
            notAfter=now - datetime.timedelta(hours=1),
        )
        self.assertRefused(path, ERR_CERT_HAS_EXPIRED)

    def test_notYetValid(self):
        """
        A proxy that starts in the future is refused.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        path = self.proxyPath()
        pki.makeProxy(
            self.alice.certPath,
            self.alice.keyPath,
            path,
            notBefore=now + datetime.timedelta(hours=1),
        )
        self.assertRefused(path, ERR_CERT_NOT_YET_VALID)

    def test_legacy(self):
        """
        A legacy Globus proxy (subject + CN=proxy, no ProxyCertInfo) is
        refused: OpenSSL takes it for a certificate issued by a non-CA.
        """
        path = self.proxyPath()
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, path, legacy=True)
        self.assertEqual(pki.dnOf(cert), self.alice.dn + "/CN=proxy")
        self.assertIsNone(pki.proxyInfoOf(cert))
        self.assertRefused(path, ERR_INVALID_CA)

    def test_flagNeeded(self):
        """
        Without C{ALLOW_PROXY_CERTS} a good proxy is refused: the server
        must set the flag.
        """
        path = self.proxyPath()
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, path)
        certs = [crypto.X509.from_cryptography(c) for c in pki.readCertificates(path)]
        store = crypto.X509Store()
        store.load_locations(None, self.ca.hashedDir)
        e = self.assertRaises(
            crypto.X509StoreContextError,
            crypto.X509StoreContext(store, certs[0], certs[1:]).verify_certificate,
        )
        self.assertEqual(e.errors[0], ERR_PROXY_CERTIFICATES_NOT_ALLOWED)

    def test_proxyFromOtherCA(self):
        """
        A valid proxy of a user of another CA is refused.
        """
        other = pki.initPKI(self.mktemp(), users=["alice"], caName="Other CA")
        path = self.proxyPath()
        pki.makeProxy(other.users["alice"].certPath, other.users["alice"].keyPath, path)
        self.assertRefused(path, ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)

    def test_validity(self):
        """
        By default a proxy starts a few minutes ago but not before its
        issuer, and lasts the hours asked for.
        """
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        cert = pki.makeProxy(self.alice.certPath, self.alice.keyPath, self.proxyPath(), hours=2)
        user = pki.readCertificates(self.alice.certPath)[0]
        self.assertGreaterEqual(cert.not_valid_before_utc, user.not_valid_before_utc)
        self.assertGreaterEqual(cert.not_valid_before_utc, before - pki.CLOCK_SKEW)
        self.assertLessEqual(cert.not_valid_before_utc, before)
        length = cert.not_valid_after_utc - before
        self.assertTrue(
            datetime.timedelta(hours=2) <= length <= datetime.timedelta(hours=2, minutes=1),
            length,
        )

    def test_cappedValidity(self):
        """
        A proxy ends no later than its issuer.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        certPath = os.path.join(self.dir, "short.pem")
        keyPath = os.path.join(self.dir, "short-key.pem")
        pki.makeUserCert(
            self.ca, certPath, keyPath, "Short Example", notAfter=now + datetime.timedelta(hours=1)
        )
        cert = pki.makeProxy(certPath, keyPath, self.proxyPath(), hours=12)
        self.assertEqual(
            cert.not_valid_after_utc, pki.readCertificates(certPath)[0].not_valid_after_utc
        )

    def test_expiredIssuer(self):
        """
        No proxy is made, by default, from an expired certificate.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        certPath = os.path.join(self.dir, "old.pem")
        keyPath = os.path.join(self.dir, "old-key.pem")
        pki.makeUserCert(
            self.ca,
            certPath,
            keyPath,
            "Old Example",
            notBefore=now - datetime.timedelta(days=2),
            notAfter=now - datetime.timedelta(days=1),
        )
        e = self.assertRaises(pki.PKIError, pki.makeProxy, certPath, keyPath, self.proxyPath())
        self.assertIn("expired", str(e))

    def test_stdlibLoads(self):
        """
        The stdlib C{ssl} module loads a proxy and a proxy of a proxy as a
        client certificate chain.
        """
        first, second = self.proxyPath("first"), self.proxyPath("second")
        pki.makeProxy(self.alice.certPath, self.alice.keyPath, first)
        pki.makeProxy(first, first, second)
        for path in [first, second]:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(path)

    def test_keyMismatch(self):
        """
        A key that does not belong to the certificate is refused.
        """
        e = self.assertRaises(
            pki.PKIError,
            pki.makeProxy,
            self.alice.certPath,
            self.pki.hostKeyPath,
            self.proxyPath(),
        )
        self.assertIn("does not match", str(e))
        self.assertFalse(os.path.exists(self.proxyPath()))

    def test_encryptedKey(self):
        """
        An encrypted user key needs its pass phrase.
        """
        key = pki.readPrivateKey(self.alice.keyPath)
        keyPath = os.path.join(self.dir, "encrypted.pem")
        with open(keyPath, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"secret"),
                )
            )
        path = self.proxyPath()
        self.assertRaises(
            pki.EncryptedKeyError, pki.makeProxy, self.alice.certPath, keyPath, path
        )
        self.assertRaises(
            pki.EncryptedKeyError,
            pki.makeProxy,
            self.alice.certPath,
            keyPath,
            path,
            password="wrong",
        )
        pki.makeProxy(self.alice.certPath, keyPath, path, password="secret")
        self.assertVerifies(path)


class ProxyCertInfoTests(SynchronousTestCase):
    """
    L{pki.encodeProxyCertInfo} and L{pki.parseProxyCertInfo}.
    """

    def test_encoding(self):
        """
        The DER is as RFC 3820 lays it out.
        """
        self.assertEqual(
            pki.encodeProxyCertInfo(pki.POLICY_INHERIT_ALL).hex(),
            "300c300a06082b06010505071501",
        )
        self.assertEqual(
            pki.encodeProxyCertInfo(pki.POLICY_INDEPENDENT, pathLength=128).hex(),
            "3010" "02020080" "300a06082b06010505071502",
        )

    @given(
        # cryptography refuses OIDs over about 63 bytes of DER: stay below.
        arcs=st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=8),
        pathLength=st.none() | st.integers(min_value=0, max_value=2**64),
        policy=st.none() | st.binary(max_size=300),
    )
    def test_roundTrip(self, arcs, pathLength, policy):
        """
        Whatever is encoded parses back the same.
        """
        language = x509.ObjectIdentifier("1.3." + ".".join(str(a) for a in arcs))
        der = pki.encodeProxyCertInfo(language, pathLength, policy)
        self.assertEqual(
            pki.parseProxyCertInfo(der), pki.ProxyInfo(pathLength, language, policy)
        )

    def test_malformed(self):
        """
        Malformed extension values raise L{ValueError}.
        """
        good = pki.encodeProxyCertInfo()
        for der in [b"", good[:-1], good + b"\x00", b"\x30\x03\x02\x01\x00", b"\x04\x00"]:
            self.assertRaises(ValueError, pki.parseProxyCertInfo, der)


class DNTests(SynchronousTestCase):
    """
    L{pki.dnOf}.
    """

    def test_shortNames(self):
        """
        Known attribute types get OpenSSL's short names, others their
        dotted OID; multi-valued RDNs are joined with C{+}.
        """
        name = x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Grid"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Site"),
                    ]
                ),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@example.org")]
                ),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.USER_ID, "alice")]),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.SERIAL_NUMBER, "42")]
                ),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "A B")]),
            ]
        )
        self.assertEqual(
            pki.dnOf(name),
            "/C=DE/O=Grid+OU=Site/emailAddress=a@example.org/UID=alice/2.5.4.5=42/CN=A B",
        )

    def test_pyOpenSSL(self):
        """
        A pyOpenSSL certificate, as a TLS connection gives, is accepted.
        """
        ca = pki.makeCA(self.mktemp())
        self.assertEqual(
            pki.dnOf(crypto.X509.from_cryptography(ca.cert)),
            "/DC=org/DC=jobmon-test/CN=JobMon Test CA",
        )


class MainTests(SynchronousTestCase):
    """
    The C{jobmon-pki} command, L{pki.main}.
    """

    def runMain(self, *argv):
        """
        Run L{pki.main} with C{argv}.

        @return: C{(exit code, stdout, stderr)}.
        """
        out, err = io.StringIO(), io.StringIO()
        code = pki.main(list(argv), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def test_init(self):
        """
        C{init} writes the CA, the host and the default users and prints
        their DNs.
        """
        directory = self.mktemp()
        code, out, err = self.runMain("init", directory)
        self.assertEqual((code, err), (0, ""))
        for login, name in [("alice", "Alice"), ("bob", "Bob"), ("admin", "Admin")]:
            self.assertEqual(modeOf(os.path.join(directory, login, "userkey.pem")), 0o600)
            self.assertIn("/DC=org/DC=jobmon-test/OU=People/CN=%s Example" % (name,), out)
        self.assertIn(os.path.join(directory, "hostcert.pem"), out)
        self.assertIn("/DC=org/DC=jobmon-test/CN=JobMon Test CA", out)

    def test_initOptions(self):
        """
        C{--users}, C{--host-names} and C{--days} are obeyed.
        """
        directory = self.mktemp()
        code, out, err = self.runMain(
            "init", directory, "--users", "carol, dave", "--host-names", "example.org,::1",
            "--days", "3",
        )
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(
            sorted(os.listdir(directory)),
            ["ca", "ca-cert.pem", "ca-key.pem", "carol", "dave", "hostcert.pem", "hostkey.pem"],
        )
        host = pki.readCertificates(os.path.join(directory, "hostcert.pem"))[0]
        san = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["example.org"])
        self.assertEqual([str(a) for a in san.get_values_for_type(x509.IPAddress)], ["::1"])
        carol = pki.readCertificates(os.path.join(directory, "carol", "usercert.pem"))[0]
        self.assertEqual(pki.dnOf(carol), "/DC=org/DC=jobmon-test/OU=People/CN=Carol Example")
        length = carol.not_valid_after_utc - carol.not_valid_before_utc
        self.assertLessEqual(length, datetime.timedelta(days=3, minutes=10))

    def test_initTwice(self):
        """
        C{init} refuses a directory that already holds a CA.
        """
        directory = self.mktemp()
        self.assertEqual(self.runMain("init", directory, "--users", "")[0], 0)
        code, out, err = self.runMain("init", directory)
        self.assertEqual(code, 2)
        self.assertIn("already holds a CA", err)

    def test_proxy(self):
        """
        C{proxy} writes a proxy, and a limited proxy of that proxy when
        C{--cert} names the proxy file alone; both verify.
        """
        directory = self.mktemp()
        self.runMain("init", directory, "--users", "alice")
        first = os.path.join(directory, "first")
        second = os.path.join(directory, "second")
        user = os.path.join(directory, "alice")
        code, out, err = self.runMain(
            "proxy", "--cert", os.path.join(user, "usercert.pem"),
            "--key", os.path.join(user, "userkey.pem"), "--out", first, "--hours", "1.5",
        )
        self.assertEqual((code, err), (0, ""))
        self.assertIn("inheritAll", out)
        self.assertEqual(modeOf(first), 0o600)
        code, out, err = self.runMain(
            "proxy", "--cert", first, "--key", first, "--out", second, "--limited",
            "--path-length", "0",
        )
        self.assertEqual((code, err), (0, ""))
        self.assertIn("limited, path length 0", out)
        info = pki.proxyInfoOf(pki.readCertificates(second)[0])
        self.assertEqual(info, pki.ProxyInfo(0, pki.POLICY_LIMITED))
        pyopensslVerify(os.path.join(directory, "ca"), second)

    def test_missingFile(self):
        """
        A missing input file gives one line on stderr and exit code 2.
        """
        missing = os.path.abspath(self.mktemp())
        code, out, err = self.runMain("proxy", "--cert", missing, "--out", self.mktemp())
        self.assertEqual(code, 2)
        self.assertEqual(err, "jobmon-pki: error: %s: No such file or directory\n" % (missing,))
        self.assertEqual(out, "")

    def test_notACertificate(self):
        """
        A file without a certificate gives one clear line and exit code 2.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("hello\n")
        code, out, err = self.runMain("proxy", "--cert", path, "--out", self.mktemp())
        self.assertEqual(code, 2)
        self.assertEqual(err, "jobmon-pki: error: %s: no PEM certificate in this file\n" % (path,))

    def test_usageErrors(self):
        """
        Bad arguments give argparse's usage message and exit code 2,
        without a traceback.
        """
        for argv in [
            [],
            ["frobnicate"],
            ["proxy", "--cert", "a", "--out", "b", "--limited", "--independent"],
            ["proxy", "--cert", "a", "--out", "b", "--hours", "0"],
            ["proxy", "--cert", "a", "--out", "b", "--path-length", "-1"],
            ["init", "x", "--days", "zero"],
        ]:
            code, out, err = self.runMain(*argv)
            self.assertEqual(code, 2, argv)
            self.assertIn("usage: jobmon-pki", err)
            self.assertNotIn("Traceback", err)

    def test_help(self):
        """
        C{--help} prints the usage on stdout and returns 0.
        """
        code, out, err = self.runMain("--help")
        self.assertEqual(code, 0)
        self.assertIn("usage: jobmon-pki", out)

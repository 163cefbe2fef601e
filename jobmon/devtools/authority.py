"""
The certificate authority of a test PKI and what it signs: the CA itself
(L{makeCA}, L{loadCA}, its hashed directory and CRL), host and user
certificates, and a whole PKI at once (L{initPKI}).

Only the standard library, C{cryptography} and (for the subject hash of
the hashed directory) pyOpenSSL are used: no Twisted.
"""

import datetime
import ipaddress
import os
import re

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from jobmon.certificates import SHORT_NAMES, asCryptography, dnOf
from jobmon.devtools.certs import (
    CLOCK_SKEW,
    PKIError,
    _certPEM,
    _keyPEM,
    _keyUsage,
    _now,
    readCertificates,
    readPrivateKey,
)
from jobmon.devtools.keys import newKey, writeFile

BASE_NAME = (("DC", "org"), ("DC", "jobmon-test"))
"""The DN prefix of every certificate this module makes."""

DEFAULT_USERS = ("alice", "bob", "admin")
"""The users C{jobmon-pki init} makes when none are named."""

DEFAULT_HOST_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names the host certificate is valid for by default."""

_OIDS = {short: oid for oid, short in SHORT_NAMES.items()}

_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@frozen
class CA:
    """
    A certificate authority made by L{makeCA} or read by L{loadCA}.

    @ivar cert: the CA certificate (C{cryptography} object).
    @ivar key: its private key.
    @ivar certPath: the PEM file of C{cert}.
    @ivar keyPath: the PEM file of C{key} (mode 0600, outside the hashed
        directory so that the directory can be handed out as is).
    @ivar hashedDir: the directory holding C{cert} as C{<hash>.0}, for
        C{capath} / C{X509_CERT_DIR}.
    """

    cert: x509.Certificate
    key: object
    certPath: str
    keyPath: str
    hashedDir: str

    @property
    def dn(self):
        """
        The slash-form DN of the CA.
        """
        return dnOf(self.cert)


@frozen
class UserCredential:
    """
    A user certificate and key written by L{initPKI}.

    @ivar login: the short name the user was made for (C{alice}).
    @ivar dn: the slash-form subject DN.
    @ivar certPath: the C{usercert.pem} file.
    @ivar keyPath: the C{userkey.pem} file (mode 0600, unencrypted).
    """

    login: str
    dn: str
    certPath: str
    keyPath: str


@frozen
class PKI:
    """
    Everything L{initPKI} wrote.

    @ivar directory: the top directory.
    @ivar ca: the L{CA}.
    @ivar hostDN: the slash-form DN of the host certificate.
    @ivar hostNames: the names in its subjectAltName.
    @ivar hostCertPath: C{hostcert.pem}.
    @ivar hostKeyPath: C{hostkey.pem} (mode 0600).
    @ivar users: L{UserCredential}s by login, in the order given.
    """

    directory: str
    ca: CA
    hostDN: str
    hostNames: tuple
    hostCertPath: str
    hostKeyPath: str
    users: dict


def _name(components):
    """
    Build an C{x509.Name} from C{(shortName, value)} pairs, one RDN each.
    """
    return x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(_OIDS[short], value)])
            for short, value in components
        ]
    )


def subjectHash(cert):
    """
    Return the OpenSSL subject-name hash of C{cert}, the value printed by
    C{openssl x509 -hash}, which names the file C{<hash>.0} of a hashed
    certificate directory.
    """
    # pyOpenSSL is only used here: reproducing OpenSSL's canonical name
    # encoding by hand (case folding, space squeezing) is easy to get
    # subtly wrong.
    from OpenSSL import crypto

    return crypto.X509.from_cryptography(asCryptography(cert)).subject_name_hash()


def makeCRL(ca, revoked=(), hours=24, lastUpdate=None):
    """
    Write a CRL of C{ca} into its hashed directory as C{<hash>.r0} (the
    name OpenSSL and fetch-crl use), replacing any earlier one.

    @param revoked: paths of certificates (PEM files) to list as revoked.
    @param hours: validity of the CRL (C{nextUpdate} is this far ahead of
        C{lastUpdate}).
    @return: the path of the CRL file.
    """
    now = lastUpdate or _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + datetime.timedelta(hours=hours))
    )
    for path in revoked:
        cert = readCertificates(path)[0]
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - CLOCK_SKEW)
            .build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    path = os.path.join(ca.hashedDir, "%08x.r0" % (subjectHash(ca.cert),))
    writeFile(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def addHashedCert(cert, directory):
    """
    Install a CA certificate in an OpenSSL hashed directory as
    C{<hash>.N}, using the first free C{N} (certificates with the same
    subject hash get C{.0}, C{.1}...).  A copy of the same certificate
    already there is reused.

    @param cert: a C{cryptography} certificate.
    @return: the path of the file.
    """
    os.makedirs(directory, exist_ok=True)
    pem = _certPEM(cert)
    base = "%08x" % (subjectHash(cert),)
    n = 0
    while True:
        path = os.path.join(directory, "%s.%d" % (base, n))
        if not os.path.exists(path):
            writeFile(path, pem, 0o644)
            return path
        if readCertificates(path)[0] == cert:
            return path
        n += 1


def makeCA(directory, name="JobMon Test CA", days=30, keyType="ec"):
    """
    Make a self-signed CA in C{directory}: C{ca-cert.pem}, C{ca-key.pem}
    (0600) and the hashed directory C{ca/} holding the certificate.

    Each call makes a new key, so a second CA in another directory is
    unrelated to the first even with the same C{name} (its certificates
    fail against the first CA with "unable to get local issuer
    certificate"); give another C{name} to also get another hash.

    @param name: the CN; the DN is C{/DC=org/DC=jobmon-test/CN=<name>}.
    @param days: validity from now.
    @raise PKIError: if C{directory} already holds a CA key: overwriting it
        would silently orphan every certificate it signed.
    @rtype: L{CA}
    """
    certPath = os.path.join(directory, "ca-cert.pem")
    keyPath = os.path.join(directory, "ca-key.pem")
    if os.path.exists(keyPath):
        raise PKIError(
            "%s already exists: %s already holds a CA (remove it or choose "
            "another directory)" % (keyPath, directory)
        )
    key = newKey(keyType)
    subject = _name(BASE_NAME + (("CN", name),))
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    writeFile(keyPath, _keyPEM(key), 0o600)
    writeFile(certPath, _certPEM(cert), 0o644)
    hashedDir = os.path.join(directory, "ca")
    addHashedCert(cert, hashedDir)
    return CA(cert, key, certPath, keyPath, hashedDir)


def loadCA(directory):
    """
    Read back a CA made by L{makeCA} in C{directory}, to sign more
    certificates with it.

    @rtype: L{CA}
    """
    certPath = os.path.join(directory, "ca-cert.pem")
    keyPath = os.path.join(directory, "ca-key.pem")
    return CA(
        readCertificates(certPath)[0],
        readPrivateKey(keyPath),
        certPath,
        keyPath,
        os.path.join(directory, "ca"),
    )


def _issue(ca, subject, publicKey, notBefore, notAfter, extensions):
    """
    Sign an end-entity certificate with C{ca}.
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(ca.key, hashes.SHA256())


def _validity(ca, notBefore, notAfter, days):
    """
    Default validity of a certificate signed by C{ca}: from a little in the
    past for C{days}, inside the CA's own validity.  Explicit times are
    kept as given, so that tests can make expired certificates.
    """
    now = _now()
    if notBefore is None:
        notBefore = max(now - CLOCK_SKEW, ca.cert.not_valid_before_utc)
    if notAfter is None:
        notAfter = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    return notBefore, notAfter


def _sanEntry(name):
    """
    A subjectAltName entry: an IP address if C{name} parses as one, else a
    DNS name.
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def makeHostCert(ca, certPath, keyPath, names=DEFAULT_HOST_NAMES, days=30, keyType="ec"):
    """
    Make a TLS server certificate signed by C{ca}: subjectAltName with
    every name in C{names} (DNS names and IP addresses), extendedKeyUsage
    serverAuth and clientAuth, CN the first DNS name of C{names}.  The key
    file is written 0600.

    @return: the slash-form DN
        (C{/DC=org/DC=jobmon-test/OU=Services/CN=localhost}).
    """
    names = list(names)
    if not names:
        raise PKIError("a host certificate needs at least one name")
    entries = [_sanEntry(n) for n in names]
    dnsNames = [e.value for e in entries if isinstance(e, x509.DNSName)]
    commonName = dnsNames[0] if dnsNames else names[0]
    key = newKey(keyType)
    notBefore, notAfter = _validity(ca, None, None, days)
    cert = _issue(
        ca,
        _name(BASE_NAME + (("OU", "Services"), ("CN", commonName))),
        key.public_key(),
        notBefore,
        notAfter,
        [
            (_keyUsage(), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
            (x509.SubjectAlternativeName(entries), False),
        ],
    )
    writeFile(keyPath, _keyPEM(key), 0o600)
    writeFile(certPath, _certPEM(cert), 0o644)
    return dnOf(cert)


def makeUserCert(
    ca,
    certPath,
    keyPath,
    commonName,
    notBefore=None,
    notAfter=None,
    days=30,
    keyType="ec",
    organizationalUnit="People",
):
    """
    Make a user certificate signed by C{ca}, as a grid CA would: not a CA
    (basicConstraints CA:FALSE, critical), keyUsage digitalSignature and
    keyEncipherment, extendedKeyUsage clientAuth.  It can sign proxies.
    The key file is written 0600, unencrypted.

    @param commonName: the CN, e.g. C{"Alice Example"}.
    @param notBefore: start of validity (aware or UTC datetime); default a
        few minutes ago.
    @param notAfter: end of validity; default C{days} from now, capped at
        the CA's end.  Explicit times may lie outside the CA's validity.
    @return: the slash-form DN
        (C{/DC=org/DC=jobmon-test/OU=People/CN=Alice Example}).
    """
    key = newKey(keyType)
    notBefore, notAfter = _validity(ca, notBefore, notAfter, days)
    cert = _issue(
        ca,
        _name(BASE_NAME + (("OU", organizationalUnit), ("CN", commonName))),
        key.public_key(),
        notBefore,
        notAfter,
        [
            (_keyUsage(), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
    writeFile(keyPath, _keyPEM(key), 0o600)
    writeFile(certPath, _certPEM(cert), 0o644)
    return dnOf(cert)


def commonNameFor(login):
    """
    The CN L{initPKI} gives a user: C{"alice"} becomes C{"Alice Example"}.
    """
    return "%s Example" % (login[:1].upper() + login[1:],)


def initPKI(
    directory,
    users=DEFAULT_USERS,
    hostNames=DEFAULT_HOST_NAMES,
    days=30,
    caName="JobMon Test CA",
    keyType="ec",
):
    """
    Make a whole test PKI in C{directory}, as C{jobmon-pki init} does: a CA
    (L{makeCA}), C{hostcert.pem}/C{hostkey.pem} (L{makeHostCert}) and, per
    user, C{<login>/usercert.pem} and C{<login>/userkey.pem}
    (L{makeUserCert}, CN from L{commonNameFor}).

    @param users: login names; letters, digits, C{_ . -}, not C{ca}
        (the hashed directory's name).
    @rtype: L{PKI}
    """
    users = list(users)
    for login in users:
        if not _LOGIN.match(login) or login == "ca":
            raise PKIError(
                "bad user name %r: use letters, digits, '_', '.', '-' "
                "(and not 'ca')" % (login,)
            )
    if len(set(users)) != len(users):
        raise PKIError("a user name is given twice")
    ca = makeCA(directory, name=caName, days=days, keyType=keyType)
    hostCertPath = os.path.join(directory, "hostcert.pem")
    hostKeyPath = os.path.join(directory, "hostkey.pem")
    hostDN = makeHostCert(ca, hostCertPath, hostKeyPath, hostNames, days=days, keyType=keyType)
    creds = {}
    for login in users:
        certPath = os.path.join(directory, login, "usercert.pem")
        keyPath = os.path.join(directory, login, "userkey.pem")
        dn = makeUserCert(ca, certPath, keyPath, commonNameFor(login), days=days, keyType=keyType)
        creds[login] = UserCredential(login, dn, certPath, keyPath)
    return PKI(directory, ca, hostDN, tuple(hostNames), hostCertPath, hostKeyPath, creds)

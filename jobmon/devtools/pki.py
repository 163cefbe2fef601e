"""
Throwaway test PKIs: a CA, a host certificate, user certificates and
RFC 3820 proxy certificates.

This module is both a library, used by the tests and the demo to make keys
and certificates at run time (no key is ever committed), and the console
script C{jobmon-pki}::

    jobmon-pki init DIR [--users alice,bob] [--host-names localhost,::1]
    jobmon-pki proxy --cert usercert.pem --key userkey.pem --out x509up

The layout follows what grid middleware expects: the CA certificate in an
OpenSSL hashed directory (usable as C{X509_CERT_DIR} or C{capath}), user
credentials as C{usercert.pem}/C{userkey.pem}, and proxies in the
C{x509up} layout (proxy certificate, its unencrypted key, then the issuer
chain), which both C{ssl.SSLContext.load_cert_chain} and pyOpenSSL load.

Only the standard library, C{cryptography} and (for the subject hash of
the hashed directory) pyOpenSSL are used: no Twisted.
"""

import argparse
import datetime
import getpass
import ipaddress
import os
import re
import secrets
import sys

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jobmon.devtools.keys import newKey, writeFile
from jobmon.certificates import (  # noqa: F401 (re-exported for tests and tools)
    SHORT_NAMES,
    POLICY_INDEPENDENT,
    POLICY_INHERIT_ALL,
    POLICY_LIMITED,
    POLICY_NAMES,
    PROXY_CERT_INFO,
    ProxyInfo,
    asCryptography,
    dnOf,
    parseProxyCertInfo,
    proxyInfoOf,
)

BASE_NAME = (("DC", "org"), ("DC", "jobmon-test"))
"""The DN prefix of every certificate this module makes."""

DEFAULT_USERS = ("alice", "bob", "admin")
"""The users C{jobmon-pki init} makes when none are named."""

DEFAULT_HOST_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names the host certificate is valid for by default."""

CLOCK_SKEW = datetime.timedelta(minutes=5)
"""How far in the past new certificates start, so that a peer whose clock
is a little behind does not see them as not yet valid."""

_OIDS = {short: oid for oid, short in SHORT_NAMES.items()}

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PKIError(Exception):
    """
    A problem with the caller's input (a missing certificate in a file, a
    key that does not match, an expired issuer), described in one line.
    """


class EncryptedKeyError(PKIError):
    """
    The private key is encrypted and no (or a wrong) pass phrase was given.
    """


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


# --- DER, by hand: cryptography cannot build or parse ProxyCertInfo -------


def _derLength(n):
    """
    Encode a DER length.
    """
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _derTLV(tag, content):
    """
    Encode one DER element.
    """
    return bytes([tag]) + _derLength(len(content)) + content


def _derInteger(n):
    """
    Encode a DER INTEGER.
    """
    # One spare bit for the sign, so that 128 is 00 80 and not 80 (-128).
    return _derTLV(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def _derOID(oid):
    """
    Encode a DER OBJECT IDENTIFIER.
    """
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _derTLV(0x06, bytes(body))


def encodeProxyCertInfo(policyLanguage=POLICY_INHERIT_ALL, pathLength=None, policy=None):
    """
    DER-encode an RFC 3820 ProxyCertInfo extension value::

        ProxyCertInfo ::= SEQUENCE {
            pCPathLenConstraint  INTEGER (0..MAX) OPTIONAL,
            proxyPolicy          ProxyPolicy }
        ProxyPolicy ::= SEQUENCE {
            policyLanguage       OBJECT IDENTIFIER,
            policy               OCTET STRING OPTIONAL }

    @param policyLanguage: an C{ObjectIdentifier}.
    @param pathLength: a non-negative int, or C{None} for no limit.
    @param policy: bytes, or C{None}.
    """
    proxyPolicy = _derOID(policyLanguage)
    if policy is not None:
        proxyPolicy += _derTLV(0x04, policy)
    content = b""
    if pathLength is not None:
        if pathLength < 0:
            raise ValueError("the proxy path length cannot be negative")
        content += _derInteger(pathLength)
    content += _derTLV(0x30, proxyPolicy)
    return _derTLV(0x30, content)


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


def _appendCN(name, value):
    """
    Return C{name} with one more RDN, C{CN=value}, at the end: the only
    subject OpenSSL accepts for a proxy of a certificate named C{name}.
    """
    return x509.Name(
        list(name.rdns)
        + [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, value)])]
    )


# --- files ----------------------------------------------------------------


def _certPEM(cert):
    """
    PEM-encode a certificate.
    """
    return cert.public_bytes(serialization.Encoding.PEM)


def _keyPEM(key):
    """
    PEM-encode a private key, unencrypted, as PKCS#8 (C{BEGIN PRIVATE KEY}).
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pemBlocks(data):
    """
    Split PEM data into C{(label, block bytes)} pairs, ignoring any text
    between the blocks.
    """
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def _readFile(path):
    """
    Read a whole file as bytes.
    """
    with open(path, "rb") as f:
        return f.read()


def readCertificates(path):
    """
    Return all the certificates of a PEM file, in file order.

    @raise PKIError: if the file holds none or a malformed one.
    """
    certs = []
    for label, block in _pemBlocks(_readFile(path)):
        if label in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError as e:
                raise PKIError("%s: bad certificate: %s" % (path, e)) from None
    if not certs:
        raise PKIError("%s: no PEM certificate in this file" % (path,))
    return certs


def readPrivateKey(path, password=None):
    """
    Return the first private key of a PEM file (a key file or a proxy).

    @param password: the pass phrase (str or bytes) if the key is
        encrypted.
    @raise EncryptedKeyError: if the key is encrypted and C{password} is
        missing or wrong.
    @raise PKIError: if the file holds no usable key.
    """
    if isinstance(password, str):
        password = password.encode("utf-8")
    for label, block in _pemBlocks(_readFile(path)):
        if not label.endswith("PRIVATE KEY"):
            continue
        try:
            return serialization.load_pem_private_key(block, password)
        except TypeError:
            # cryptography's way of saying "encrypted but no password" (or
            # "password given but not encrypted", which is harmless: retry).
            if password is not None:
                return serialization.load_pem_private_key(block, None)
            raise EncryptedKeyError(
                "%s: the private key is encrypted; a pass phrase is needed" % (path,)
            ) from None
        except ValueError as e:
            if password is not None:
                raise EncryptedKeyError(
                    "%s: cannot decrypt the private key (wrong pass phrase?)" % (path,)
                ) from None
            raise PKIError("%s: bad private key: %s" % (path, e)) from None
    raise PKIError("%s: no PEM private key in this file" % (path,))


def _publicDER(key):
    """
    The DER SubjectPublicKeyInfo of a public key, to compare keys.
    """
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _now():
    """
    The current time in UTC, to the second as in certificates.
    """
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


# --- CA, host and users ---------------------------------------------------


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


def _keyUsage(keyEncipherment=True):
    """
    keyUsage digitalSignature (which OpenSSL requires of the issuer of a
    proxy, and TLS of any client) and, by default, keyEncipherment.
    """
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=keyEncipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


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


# --- proxies ----------------------------------------------------------------


def makeProxy(
    certPath,
    keyPath,
    outPath,
    hours=12,
    limited=False,
    independent=False,
    pathLength=None,
    notBefore=None,
    notAfter=None,
    signingKey=None,
    legacy=False,
    password=None,
    keyType="ec",
):
    """
    Write an RFC 3820 proxy in the C{x509up} layout: the proxy certificate,
    its unencrypted private key (PKCS#8), then the issuer certificate and
    the issuer's own chain.

    The issuer is the first certificate of C{certPath}; any further
    certificates there are its chain.  C{certPath} and C{keyPath} may be
    the same proxy file, which makes a proxy of that proxy.

    The proxy's subject is the issuer's plus C{CN=<serial number>}; its
    ProxyCertInfo (critical) carries C{pathLength} and the policy
    inheritAll, limited or independent.  By default it is valid from a few
    minutes ago (not before the issuer) for C{hours}, capped at the end of
    the issuer chain's validity.

    @param notBefore: explicit start, kept as given (tests use it to make
        not-yet-valid proxies).
    @param notAfter: explicit end, kept as given (expired proxies).
    @param signingKey: sign with this key instead of the issuer's, to
        forge a proxy that verification must refuse.
    @param legacy: write a legacy Globus proxy instead (subject issuer +
        C{CN=proxy} or C{CN=limited proxy}, no ProxyCertInfo), which
        OpenSSL cannot verify.
    @param password: the pass phrase of an encrypted issuer key.
    @return: the proxy certificate (C{cryptography}).
    @raise PKIError: for unusable inputs (no certificate, key not matching,
        issuer expired).
    """
    if limited and independent:
        raise PKIError("a proxy cannot be both limited and independent")
    if legacy and (independent or pathLength is not None):
        raise PKIError("legacy proxies have neither policies nor path lengths")
    certs = readCertificates(certPath)
    issuer, chain = certs[0], certs[1:]
    issuerKey = readPrivateKey(keyPath, password)
    if _publicDER(issuerKey.public_key()) != _publicDER(issuer.public_key()):
        raise PKIError(
            "the key in %s does not match the certificate in %s" % (keyPath, certPath)
        )

    now = _now()
    if notBefore is None:
        notBefore = max(now - CLOCK_SKEW, issuer.not_valid_before_utc)
    if notAfter is None:
        # A proxy cannot outlive any certificate it depends on.
        end = min(c.not_valid_after_utc for c in [issuer] + chain)
        if end <= now:
            raise PKIError("%s: the certificate expired at %s" % (certPath, end))
        notAfter = min(now + datetime.timedelta(hours=hours), end)

    key = newKey(keyType)
    # RFC 3820 wants the new CN unique per issuer; like Globus, use a random
    # serial number as both serial and CN.
    serial = secrets.randbelow(2**31 - 1) + 1
    if legacy:
        cn = "limited proxy" if limited else "proxy"
    else:
        cn = str(serial)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_appendCN(issuer.subject, cn))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(_keyUsage(), critical=True)
    )
    if not legacy:
        if independent:
            language = POLICY_INDEPENDENT
        elif limited:
            language = POLICY_LIMITED
        else:
            language = POLICY_INHERIT_ALL
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                PROXY_CERT_INFO, encodeProxyCertInfo(language, pathLength)
            ),
            critical=True,
        )
    cert = builder.sign(signingKey if signingKey is not None else issuerKey, hashes.SHA256())
    writeFile(
        outPath,
        _certPEM(cert) + _keyPEM(key) + b"".join(_certPEM(c) for c in [issuer] + chain),
        0o600,
    )
    return cert


# --- command line -----------------------------------------------------------


def _commaList(text):
    """
    Split a comma-separated option value, dropping blanks.
    """
    return [item.strip() for item in text.split(",") if item.strip()]


def _positive(kind):
    """
    An argparse type: C{kind} (int or float) greater than zero.
    """

    def convert(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be greater than 0: %r" % (text,))
        return value

    convert.__name__ = kind.__name__
    return convert


def _nonNegative(text):
    """
    An argparse type: an int, zero or more.
    """
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more: %r" % (text,))
    return value


def _parser():
    """
    Build the C{jobmon-pki} argument parser.
    """
    parser = argparse.ArgumentParser(
        prog="jobmon-pki",
        description="Make throwaway test certificates and proxies for JobMon.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init",
        help="make a CA, a host certificate and user certificates",
        description="Make a CA (DIR/ca-cert.pem, DIR/ca-key.pem, hashed "
        "directory DIR/ca/), a host certificate (DIR/hostcert.pem, "
        "DIR/hostkey.pem) and DIR/<user>/usercert.pem, userkey.pem.",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument(
        "--users",
        type=_commaList,
        default=list(DEFAULT_USERS),
        help="comma-separated user names (default: %s)" % (",".join(DEFAULT_USERS),),
    )
    init.add_argument(
        "--host-names",
        type=_commaList,
        default=list(DEFAULT_HOST_NAMES),
        help="comma-separated DNS names and IP addresses of the host "
        "certificate (default: %s)" % (",".join(DEFAULT_HOST_NAMES),),
    )
    init.add_argument(
        "--days", type=_positive(int), default=30, help="validity (default: 30)"
    )
    init.add_argument(
        "--ca-name", default="JobMon Test CA", help="CN of the CA (default: %(default)s)"
    )
    init.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    proxy = sub.add_parser(
        "proxy",
        help="make an RFC 3820 proxy from a certificate or another proxy",
        description="Write a proxy (certificate, key, issuer chain) like "
        "grid-proxy-init.  --cert and --key may name the same proxy file "
        "to make a proxy of a proxy.",
    )
    proxy.add_argument("--cert", required=True, metavar="FILE", help="issuer certificate")
    proxy.add_argument(
        "--key", metavar="FILE", help="issuer private key (default: the --cert file)"
    )
    proxy.add_argument("--out", required=True, metavar="FILE", help="proxy file to write")
    proxy.add_argument(
        "--hours", type=_positive(float), default=12.0, help="validity (default: 12)"
    )
    policy = proxy.add_mutually_exclusive_group()
    policy.add_argument("--limited", action="store_true", help="limited proxy policy")
    policy.add_argument(
        "--independent", action="store_true", help="independent proxy policy"
    )
    proxy.add_argument(
        "--path-length",
        type=_nonNegative,
        metavar="N",
        help="at most N further proxies below this one",
    )
    proxy.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    issuer = sub.add_parser(
        "token-issuer",
        help="make a throwaway bearer-token issuer and a server token configuration",
        description="Write DIR/issuer-key.pem (the signing key), DIR/issuer.jwks (its "
        "public key) and DIR/tokens.toml, for the server's --token-issuers.",
    )
    issuer.add_argument("directory", metavar="DIR")
    issuer.add_argument("--iss", default="https://tokens.jobmon-test.example/vo",
                        help="the issuer URL (default: %(default)s)")
    issuer.add_argument("--audience", default="https://jobmon.jobmon-test.example",
                        help="the audience the server accepts (default: %(default)s)")
    issuer.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    token = sub.add_parser(
        "token",
        help="print a bearer token from an issuer made by token-issuer",
        description="Print a signed WLCG-profile token for SUB to standard output.",
    )
    token.add_argument("directory", metavar="DIR", help="the token-issuer directory")
    token.add_argument("--sub", required=True, help="the subject")
    token.add_argument("--scope", default="compute.read compute.modify compute.create",
                       help="space-separated scopes (default: %(default)s)")
    token.add_argument("--lifetime", type=float, default=3600.0,
                       help="seconds until it expires; negative: already expired "
                       "(default: %(default)s)")
    token.add_argument("--audience", help="the aud claim (default: the issuer's)")
    token.add_argument("--out", metavar="FILE", help="write it here (0600) instead")
    return parser


def _runInit(args, out):
    """
    Carry out C{jobmon-pki init} and print what was written.
    """
    pki = initPKI(
        args.directory,
        users=args.users,
        hostNames=args.host_names,
        days=args.days,
        caName=args.ca_name,
        keyType=args.key_type,
    )
    hashed = os.listdir(pki.ca.hashedDir)
    print("CA    %s" % (pki.ca.dn,), file=out)
    print("      %s, %s" % (pki.ca.certPath, pki.ca.keyPath), file=out)
    print(
        "      %s/ (hashed: %s; use as X509_CERT_DIR)"
        % (pki.ca.hashedDir, ", ".join(sorted(hashed))),
        file=out,
    )
    print("host  %s (%s)" % (pki.hostDN, ", ".join(pki.hostNames)), file=out)
    print("      %s, %s" % (pki.hostCertPath, pki.hostKeyPath), file=out)
    for cred in pki.users.values():
        print("user  %s: %s" % (cred.login, cred.dn), file=out)
        print("      %s, %s" % (cred.certPath, cred.keyPath), file=out)
    return 0


def _runProxy(args, out):
    """
    Carry out C{jobmon-pki proxy} and print what was written.
    """
    keyPath = args.key if args.key is not None else args.cert
    options = dict(
        hours=args.hours,
        limited=args.limited,
        independent=args.independent,
        pathLength=args.path_length,
        keyType=args.key_type,
    )
    try:
        cert = makeProxy(args.cert, keyPath, args.out, **options)
    except EncryptedKeyError:
        if not sys.stdin.isatty():
            raise
        password = getpass.getpass("Pass phrase for %s: " % (keyPath,))
        cert = makeProxy(args.cert, keyPath, args.out, password=password, **options)
    info = proxyInfoOf(cert)
    print("wrote %s" % (args.out,), file=out)
    print("  subject  %s" % (dnOf(cert),), file=out)
    print("  issuer   %s" % (dnOf(cert.issuer),), file=out)
    print(
        "  policy   %s, path length %s"
        % (
            info.policyName,
            "unlimited" if info.pathLength is None else info.pathLength,
        ),
        file=out,
    )
    print(
        "  valid    %s to %s"
        % (cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat()),
        file=out,
    )
    return 0


def _runTokens(args, out):
    """
    Carry out C{jobmon-pki token-issuer} and C{jobmon-pki token}.
    """
    from jobmon.devtools.issuer import loadIssuer, makeIssuer

    if args.command == "token-issuer":
        issuer = makeIssuer(args.directory, iss=args.iss, audience=args.audience,
                            keyType=args.key_type)
        print("issuer    %s (%s)" % (issuer.iss, issuer.algorithm), file=out)
        print("keys      %s, %s" % (issuer.keyPath, issuer.jwksPath), file=out)
        print("server    --token-issuers %s" % (issuer.configPath,), file=out)
        return 0
    try:
        issuer = loadIssuer(args.directory)
    except OSError:
        raise PKIError("%s holds no token issuer; run jobmon-pki token-issuer first"
                       % (args.directory,))
    token = issuer.mint(args.sub, scope=args.scope, lifetime=args.lifetime,
                        audience=args.audience)
    if args.out:
        writeFile(args.out, (token + "\n").encode("ascii"), 0o600)
        print("wrote %s (%s)" % (args.out, issuer.identity(args.sub)), file=out)
    else:
        print(token, file=out)
    return 0


def main(argv=None, stdout=None, stderr=None):
    """
    The C{jobmon-pki} console script.

    @param argv: the arguments, without the program name; default
        C{sys.argv[1:]}.
    @param stdout: where the summary goes; default C{sys.stdout}.
    @param stderr: where errors go; default C{sys.stderr}.
    @return: the exit code: 0 on success, 2 on a usage error or an unusable
        input, reported as one line on C{stderr}.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    # argparse writes to sys.stderr/sys.stdout and exits; keep that
    # behaviour for usage errors and --help but return the code instead.
    savedOut, savedErr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    finally:
        sys.stdout, sys.stderr = savedOut, savedErr
    try:
        if args.command == "init":
            return _runInit(args, out)
        if args.command in ("token-issuer", "token"):
            return _runTokens(args, out)
        return _runProxy(args, out)
    except PKIError as e:
        message = str(e)
    except OSError as e:
        if e.filename is not None:
            message = "%s: %s" % (e.filename, e.strerror)
        else:
            message = str(e)
    print("jobmon-pki: error: %s" % (message,), file=err)
    return 2


if __name__ == "__main__":
    sys.exit(main())

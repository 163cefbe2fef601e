"""
RFC 3820 proxy certificates (L{makeProxy}), as C{grid-proxy-init} makes
them, and the DER of their ProxyCertInfo extension
(L{encodeProxyCertInfo}), written by hand because C{cryptography} can
neither build nor parse it.

Only the standard library and C{cryptography} are used: no Twisted.
"""

import datetime
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from jobmon.certificates import (
    POLICY_INDEPENDENT,
    POLICY_INHERIT_ALL,
    POLICY_LIMITED,
    PROXY_CERT_INFO,
)
from jobmon.devtools.certs import (
    CLOCK_SKEW,
    PKIError,
    _certPEM,
    _keyPEM,
    _keyUsage,
    _now,
    _publicDER,
    readCertificates,
    readPrivateKey,
)
from jobmon.devtools.keys import newKey, writeFile


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


def _appendCN(name, value):
    """
    Return C{name} with one more RDN, C{CN=value}, at the end: the only
    subject OpenSSL accepts for a proxy of a certificate named C{name}.
    """
    return x509.Name(
        list(name.rdns)
        + [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, value)])]
    )


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
    extensions=(),
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
    @param extensions: more extensions, as C{(extension, critical)} pairs
        (the VOMS ACs of L{jobmon.devtools.vomsfake}).
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
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(signingKey if signingKey is not None else issuerKey, hashes.SHA256())
    writeFile(
        outPath,
        _certPEM(cert) + _keyPEM(key) + b"".join(_certPEM(c) for c in [issuer] + chain),
        0o600,
    )
    return cert

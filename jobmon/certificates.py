"""
Facts about X.509 files and certificates that the server, the job daemon and
the test PKI share: reading PEM files and CA directories, RFC 3820 proxy
policies, and the slash-form DN grid tools print.
"""

import os
import re

from attrs import frozen
from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.internet import ssl

from jobmon.credentials import whyUnreadable

PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
"""The RFC 3820 ProxyCertInfo extension; its presence makes a proxy."""


POLICY_INHERIT_ALL = x509.ObjectIdentifier("1.3.6.1.5.5.7.21.1")
"""id-ppl-inheritAll: the proxy has all the rights of its issuer."""


POLICY_INDEPENDENT = x509.ObjectIdentifier("1.3.6.1.5.5.7.21.2")
"""id-ppl-independent: the proxy has none of the rights of its issuer."""


POLICY_LIMITED = x509.ObjectIdentifier("1.3.6.1.4.1.3536.1.1.1.9")
"""The Globus limited-proxy policy: not to be used to start jobs."""


POLICY_NAMES = {
    POLICY_INHERIT_ALL: "inheritAll",
    POLICY_INDEPENDENT: "independent",
    POLICY_LIMITED: "limited",
}
"""Short names of the policy languages above, for messages."""


SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.USER_ID: "UID",
}


@frozen
class ProxyInfo:
    """
    The decoded ProxyCertInfo extension of a proxy certificate.

    @ivar pathLength: how many proxies may follow this one, or C{None} for
        no limit.
    @ivar policyLanguage: the policy OID (an C{ObjectIdentifier}), one of
        L{POLICY_INHERIT_ALL}, L{POLICY_LIMITED}, L{POLICY_INDEPENDENT} or
        another language.
    @ivar policy: the policy bytes, or C{None}.
    """

    pathLength: object
    policyLanguage: x509.ObjectIdentifier
    policy: object = None

    @property
    def policyName(self):
        """
        A short name of the policy language, or its dotted OID.
        """
        return POLICY_NAMES.get(
            self.policyLanguage, self.policyLanguage.dotted_string
        )


def _derRead(data, pos):
    """
    Read one DER element of C{data} at C{pos}.

    @return: C{(tag, content, next position)}.
    @raise ValueError: if the element is truncated or uses a form DER
        forbids.
    """
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise ValueError("truncated DER element")
    return tag, data[pos : pos + length], pos + length


def _derDecodeOID(body):
    """
    Decode the content of a DER OBJECT IDENTIFIER.
    """
    if not body or body[-1] & 0x80:
        raise ValueError("bad OBJECT IDENTIFIER")
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    arcs[0:1] = [first, arcs[0] - 40 * first]
    return x509.ObjectIdentifier(".".join(str(a) for a in arcs))


def parseProxyCertInfo(der):
    """
    Decode a ProxyCertInfo extension value (see
    L{jobmon.devtools.proxies.encodeProxyCertInfo}, the test tools' encoder).

    @rtype: L{ProxyInfo}
    @raise ValueError: if C{der} is not a well-formed ProxyCertInfo.
    """
    tag, content, end = _derRead(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("ProxyCertInfo is not one SEQUENCE")
    tag, body, pos = _derRead(content, 0)
    pathLength = None
    if tag == 0x02:
        pathLength = int.from_bytes(body, "big", signed=True)
        tag, body, pos = _derRead(content, pos)
    if tag != 0x30 or pos != len(content):
        raise ValueError("ProxyCertInfo lacks its ProxyPolicy")
    tag, oidBody, pos = _derRead(body, 0)
    if tag != 0x06:
        raise ValueError("ProxyPolicy lacks its policy language")
    policy = None
    if pos < len(body):
        tag, policy, pos = _derRead(body, pos)
        if tag != 0x04:
            raise ValueError("ProxyPolicy policy is not an OCTET STRING")
    if pos != len(body):
        raise ValueError("trailing data in ProxyPolicy")
    return ProxyInfo(pathLength, _derDecodeOID(oidBody), policy)


def proxyInfoOf(cert):
    """
    Return the decoded ProxyCertInfo of C{cert} (a C{cryptography} or
    pyOpenSSL certificate), or C{None} if C{cert} is not an RFC 3820 proxy.

    Legacy Globus proxies (subject ending in C{CN=proxy}) have no such
    extension and give C{None}: OpenSSL cannot verify them anyway.

    @raise ValueError: if the extension is present but malformed.
    """
    cert = asCryptography(cert)
    try:
        ext = cert.extensions.get_extension_for_oid(PROXY_CERT_INFO)
    except x509.ExtensionNotFound:
        return None
    return parseProxyCertInfo(ext.value.value)


def asCryptography(cert):
    """
    Accept a pyOpenSSL C{X509} where a C{cryptography} certificate is
    expected: a server gets the former from its TLS connection.
    """
    toCryptography = getattr(cert, "to_cryptography", None)
    return toCryptography() if toCryptography is not None else cert


def rdnsOf(name):
    """
    The structure of a name: a tuple of RDNs in their encoded order, each a
    tuple of C{(attribute, value)} pairs, attributes by their OpenSSL short
    names (C, ST, L, O, OU, CN, DC, emailAddress, UID) or dotted OIDs.

    @param name: a C{cryptography} C{x509.Name}, certificate or pyOpenSSL
        C{X509} (its subject).
    """
    if not isinstance(name, x509.Name):
        name = asCryptography(name).subject
    return tuple(
        tuple(
            (
                SHORT_NAMES.get(attr.oid, attr.oid.dotted_string),
                attr.value if isinstance(attr.value, str) else "#" + attr.value.hex(),
            )
            for attr in rdn
        )
        for rdn in name.rdns
    )


_SPECIAL = frozenset("\\/+|")
"""Characters escaped with a backslash inside a value, so that the slash
form of a name tells its structure: C{/} separates RDNs, C{+} the
attributes of one RDN, C{|} an admin entry's issuer."""


def _escapeValue(value):
    if value.isprintable() and not _SPECIAL.intersection(value):
        return value
    out = []
    for ch in value:
        if ch in _SPECIAL:
            out.append("\\" + ch)
        elif not ch.isprintable():
            code = ord(ch)
            out.append("\\x%02x" % code if code < 0x100 else
                       "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code)
        else:
            out.append(ch)
    return "".join(out)


def formatDN(rdns):
    """
    The slash form of a structure made by L{rdnsOf} or L{parseDN}:
    C{/DC=org/DC=jobmon-test/OU=People/CN=Alice Example}, the attributes of
    a multi-valued RDN joined with C{+}.

    Inside a value, C{/}, C{+}, C{|} and C{\\} are escaped with a backslash
    and non-printable characters written C{\\xNN} (C{\\uNNNN}): a value
    cannot pass for more RDNs (C{OU=People\\/CN=Admin} is one RDN), and
    two names are equal exactly when their slash forms are.
    """
    return "".join(
        "/" + "+".join("{}={}".format(attr, _escapeValue(value)) for attr, value in rdn)
        for rdn in rdns
    )


def dnOf(cert):
    """
    Return the slash-form DN (C{/DC=org/DC=jobmon-test/OU=People/CN=Alice
    Example}) of a certificate's subject: L{formatDN} of L{rdnsOf}.

    @param cert: a C{cryptography} certificate, a pyOpenSSL C{X509} or a
        C{cryptography} C{x509.Name}.
    """
    return formatDN(rdnsOf(cert))


_ATTRIBUTE = re.compile(r"^([A-Za-z][A-Za-z0-9.-]*|[0-9]+(?:\.[0-9]+)+)=")
"""The start of an attribute: its type and C{=}."""

_ATTRIBUTE_NAMES = {name.lower(): name for name in SHORT_NAMES.values()}
_ATTRIBUTE_NAMES.update({"e": "emailAddress", "email": "emailAddress", "userid": "UID"})
"""Attribute types by their lower-case spellings (types are not
case-sensitive): to the names L{rdnsOf} gives."""


def splitUnescaped(text, separator):
    """
    Split C{text} at each C{separator} not escaped by a backslash; the
    parts keep their escapes.
    """
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 == len(text):
                raise ValueError("it ends with a lone backslash")
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)


def _unescape(value):
    def one(match):
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) > 1 else code

    return _ESCAPE.sub(one, value)


def _joinContinued(parts, separator, what):
    """
    Join to the part before it each part that does not start with an
    attribute type: grid tools print a C{/} (or C{+}) inside a value
    unescaped, as in C{CN=host/name.example.org}.
    """
    joined = []
    for part in parts:
        if not part:
            raise ValueError("it has an empty {}".format(what))
        if _ATTRIBUTE.match(part):
            joined.append(part)
        elif joined:
            joined[-1] += separator + part
        else:
            raise ValueError("{!r} is not ATTRIBUTE=VALUE".format(part))
    return joined


def parseDN(text):
    """
    The structure (as L{rdnsOf} gives it) of a DN in slash form: as
    L{formatDN} writes it, or as grid tools print it.

    C{/} and C{+} separate RDNs and attributes unless escaped with a
    backslash; an unescaped one that is not followed by C{ATTRIBUTE=} is
    part of the value (C{/CN=host/name.example.org} is one RDN, as grid
    tools mean it).  So C{/OU=People/CN=Admin} is two RDNs, never the one
    RDN C{OU=People\\/CN=Admin}.  Attribute types are not case-sensitive
    (C{emailAddress}, C{Email} and C{E} are one); values are.

    @raise ValueError: not a DN in slash form, saying why.
    """
    if not text.startswith("/"):
        raise ValueError("a DN in slash form starts with /")
    rdns = []
    for rdn in _joinContinued(splitUnescaped(text[1:], "/"), "/", "part between two /"):
        attributes = []
        for attribute in _joinContinued(splitUnescaped(rdn, "+"), "+", "attribute after +"):
            kind, _, value = attribute.partition("=")
            if not value:
                raise ValueError("{} has no value".format(kind))
            attributes.append((_ATTRIBUTE_NAMES.get(kind.lower(), kind), _unescape(value)))
        rdns.append(tuple(attributes))
    return tuple(rdns)


def canonicalDN(text):
    """
    The slash form L{dnOf} gives a name written C{text} (which
    L{parseDN} reads): equal for equal names, whatever the spelling.

    @raise ValueError: as L{parseDN}.
    """
    return formatDN(parseDN(text))


_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)


_HASHED_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")


class CredentialError(Exception):
    """
    A credential, CA directory or host certificate could not be loaded; the
    message says which file and why.
    """


def readPEMFile(path):
    """
    Split a PEM file into its certificates and its private key.

    @return: C{(certs, key)}: a list of PEM certificate blocks in file order
        and the PEM key block (or L{None}).
    @raise CredentialError: the file is missing, unreadable or holds no
        certificate.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CredentialError("cannot read {}: {}".format(path, whyUnreadable(path, e)))
    certs, key = [], None
    for match in _PEM_BLOCK.finditer(data):
        kind = match.group(1)
        if kind == b"CERTIFICATE":
            certs.append(match.group(0))
        elif kind.endswith(b"PRIVATE KEY"):
            key = match.group(0)
    if not certs:
        raise CredentialError("{} holds no certificate".format(path))
    return certs, key


def caCertificates(caDir):
    """
    Load the CA certificates of an OpenSSL hashed directory (files named
    C{<hash>.<n>}).

    @return: a list of L{twisted.internet.ssl.Certificate}.
    @raise CredentialError: the directory is missing or holds no CA.
    """
    try:
        names = sorted(os.listdir(caDir))
    except OSError as e:
        raise CredentialError("cannot read CA directory {}: {}".format(caDir, e.strerror))
    result = []
    for name in names:
        if not _HASHED_NAME.match(name):
            continue
        certs, _ = readPEMFile(os.path.join(caDir, name))
        result.extend(ssl.Certificate.loadPEM(c) for c in certs)
    if not result:
        raise CredentialError("no CA certificate (<hash>.0 files) in {}".format(caDir))
    return result

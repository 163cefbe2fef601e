"""
Who is calling: the end-entity identity behind a verified certificate chain.

OpenSSL verifies RFC 3820 proxy chains (signatures, validity, path length and
subject form) once the store allows proxies, but it does not interpret proxy
policies.  This module does: the caller is the first certificate of the
verified chain that is not a proxy, a limited proxy is marked as such, and an
independent proxy (which by definition does not speak for its issuer) is
refused.
"""

from attrs import frozen
from cryptography import x509
from cryptography.x509.oid import NameOID

from jobmon.errors import NOT_AUTHENTICATED, JobMonError

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

_SHORT_NAMES = {
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


# --- Reading DER: cryptography cannot parse ProxyCertInfo ---


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
    Decode a ProxyCertInfo extension value (see L{encodeProxyCertInfo}).

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
    cert = _asCryptography(cert)
    try:
        ext = cert.extensions.get_extension_for_oid(PROXY_CERT_INFO)
    except x509.ExtensionNotFound:
        return None
    return parseProxyCertInfo(ext.value.value)


def _asCryptography(cert):
    """
    Accept a pyOpenSSL C{X509} where a C{cryptography} certificate is
    expected: a server gets the former from its TLS connection.
    """
    toCryptography = getattr(cert, "to_cryptography", None)
    return toCryptography() if toCryptography is not None else cert


def dnOf(cert):
    """
    Return the slash-form DN (C{/DC=org/DC=jobmon-test/OU=People/CN=Alice
    Example}) of a certificate's subject.

    RDNs come in their encoded order, the order grid tools print; the
    attributes of a multi-valued RDN are joined with C{+}.  Attribute types
    use OpenSSL's short names (C, ST, L, O, OU, CN, DC, emailAddress, UID)
    and dotted OIDs otherwise.

    @param cert: a C{cryptography} certificate, a pyOpenSSL C{X509} or a
        C{cryptography} C{x509.Name}.
    """
    name = cert if isinstance(cert, x509.Name) else _asCryptography(cert).subject
    parts = []
    for rdn in name.rdns:
        parts.append(
            "+".join(
                "%s=%s"
                % (_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string), attr.value)
                for attr in rdn
            )
        )
    return "".join("/" + part for part in parts)


@frozen
class Identity:
    """
    An authenticated caller.

    @ivar dn: the caller's name: the end-entity subject DN in slash form,
        e.g. C{/DC=org/DC=example/CN=Alice}, or for a bearer token
        C{ISSUER#SUBJECT} (or the name the token configuration maps the
        subject to).
    @ivar proxy: whether the caller presented a proxy certificate.
    @ivar limited: whether a limited proxy is anywhere in the chain.
    @ivar token: for a caller with a bearer token, its
        L{jobmon.tokens.TokenInfo}; else C{None}.
    """

    dn: str
    proxy: bool = False
    limited: bool = False
    token: object = None

    def may(self, capability):
        """
        Whether this caller's credential allows C{capability}: C{"read"}
        (list and read jobs), C{"act"} (site commands and signals) or
        C{"register"} (a job daemon's calls).

        A certificate allows all three, but a limited proxy may not act; a
        token allows what its scopes grant.
        """
        if self.token is not None:
            return capability in self.token.grants
        return not (capability == "act" and self.limited)


def _namesHosts(cert):
    """
    Whether a certificate names DNS names or IP addresses in its
    subjectAltName: the mark of a host or service certificate, which grid
    practice keeps apart from personal ones.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return bool(san.get_values_for_type(x509.DNSName) or san.get_values_for_type(x509.IPAddress))


def identityFromChain(chain):
    """
    Find the caller behind a verified chain.

    @param chain: the verified chain, leaf first, as C{cryptography}
        certificates or pyOpenSSL C{X509} objects.
    @return: an L{Identity}.
    @raise JobMonError: with L{NOT_AUTHENTICATED} when the chain is empty or
        the credential cannot act as a user.
    """
    if not chain:
        raise JobMonError(NOT_AUTHENTICATED, "no verified client certificate")
    limited = False
    for depth, cert in enumerate(chain):
        cert = _asCryptography(cert)
        try:
            info = proxyInfoOf(cert)
        except ValueError:
            raise JobMonError(
                NOT_AUTHENTICATED, "malformed proxy certificate (ProxyCertInfo)"
            )
        if info is None:
            if _namesHosts(cert):
                raise JobMonError(
                    NOT_AUTHENTICATED,
                    "a host or service certificate cannot act as a user "
                    "(it names hosts in subjectAltName)",
                )
            return Identity(dn=dnOf(cert), proxy=depth > 0, limited=limited)
        if info.policyLanguage == POLICY_INDEPENDENT:
            raise JobMonError(
                NOT_AUTHENTICATED,
                "independent proxies do not speak for their issuer; "
                "use a normal or limited proxy",
            )
        if info.policyLanguage == POLICY_LIMITED:
            limited = True
        elif info.policyLanguage != POLICY_INHERIT_ALL:
            raise JobMonError(
                NOT_AUTHENTICATED,
                "proxy policy {} is not supported".format(info.policyName),
            )
    raise JobMonError(NOT_AUTHENTICATED, "the certificate chain holds only proxies")


def identityOfConnection(connection):
    """
    Return the L{Identity} of the peer of a pyOpenSSL connection whose
    handshake has completed.

    C{get_verified_chain} is used, not C{get_peer_cert_chain}: only the
    former is verified and, on a server, includes the leaf.

    @raise JobMonError: as L{identityFromChain}.
    """
    return identityFromChain(connection.get_verified_chain())

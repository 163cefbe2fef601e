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
"""RFC 3820 ProxyCertInfo extension."""

POLICY_INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
POLICY_INDEPENDENT = "1.3.6.1.5.5.7.21.2"
POLICY_LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"

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
    NameOID.SERIAL_NUMBER: "serialNumber",
}


@frozen
class Identity:
    """
    An authenticated caller.

    @ivar dn: the end-entity subject DN in slash form, e.g.
        C{/DC=org/DC=example/CN=Alice}.
    @ivar proxy: whether the caller presented a proxy certificate.
    @ivar limited: whether a limited proxy is anywhere in the chain.
    """

    dn: str
    proxy: bool = False
    limited: bool = False


def dnOf(name):
    """
    Render a C{cryptography} L{x509.Name} in the slash form grid tools use,
    in the order the components appear in the certificate.

    @param name: an L{x509.Name}, or a certificate whose subject is wanted.
    @return: e.g. C{"/DC=org/DC=example/CN=Alice"}.
    """
    if isinstance(name, x509.Certificate):
        name = name.subject
    parts = []
    for rdn in name.rdns:
        parts.append(
            "+".join(
                "{}={}".format(
                    _SHORT_NAMES.get(a.oid, a.oid.dotted_string), a.value
                )
                for a in rdn
            )
        )
    return "/" + "/".join(parts)


def _derItem(data, pos):
    """
    Read one DER TLV at C{pos}; return C{(tag, content, nextPos)}.
    """
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:end], end


def _decodeOID(content):
    """
    Decode the content octets of a DER OBJECT IDENTIFIER to dotted form.
    """
    first = content[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(str(a) for a in arcs)


def proxyPolicy(cert):
    """
    Return the policy language OID of an RFC 3820 proxy certificate, or
    L{None} if C{cert} is not one.

    @param cert: a C{cryptography} certificate.
    @raise ValueError: the ProxyCertInfo extension is malformed.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(PROXY_CERT_INFO)
    except x509.ExtensionNotFound:
        return None
    # ProxyCertInfo ::= SEQUENCE { pCPathLenConstraint INTEGER OPTIONAL,
    #                              proxyPolicy SEQUENCE { policyLanguage OID,
    #                                                     policy OCTET STRING OPTIONAL } }
    tag, body, _ = _derItem(ext.value.value, 0)
    if tag != 0x30:
        raise ValueError("ProxyCertInfo is not a SEQUENCE")
    pos = 0
    while pos < len(body):
        tag, content, pos = _derItem(body, pos)
        if tag == 0x30:
            oidTag, oid, _ = _derItem(content, 0)
            if oidTag != 0x06:
                raise ValueError("proxyPolicy has no policy language")
            return _decodeOID(oid)
    raise ValueError("ProxyCertInfo has no proxyPolicy")


def identityFromChain(chain):
    """
    Find the caller behind a verified chain.

    @param chain: the verified chain, leaf first, as C{cryptography}
        certificates (or pyOpenSSL C{X509} objects, converted here).
    @return: an L{Identity}.
    @raise JobMonError: with L{NOT_AUTHENTICATED} when the chain is empty or
        the credential cannot act as a user.
    """
    if not chain:
        raise JobMonError(NOT_AUTHENTICATED, "no verified client certificate")
    certs = [c.to_cryptography() if hasattr(c, "to_cryptography") else c for c in chain]
    limited = False
    for depth, cert in enumerate(certs):
        try:
            policy = proxyPolicy(cert)
        except ValueError:
            raise JobMonError(
                NOT_AUTHENTICATED, "malformed proxy certificate (ProxyCertInfo)"
            )
        if policy is None:
            return Identity(dn=dnOf(cert), proxy=depth > 0, limited=limited)
        if policy == POLICY_INDEPENDENT:
            raise JobMonError(
                NOT_AUTHENTICATED,
                "independent proxies do not speak for their issuer; "
                "use a normal or limited proxy",
            )
        if policy == POLICY_LIMITED:
            limited = True
        elif policy != POLICY_INHERIT_ALL:
            raise JobMonError(
                NOT_AUTHENTICATED,
                "proxy policy {} is not supported".format(policy),
            )
    raise JobMonError(
        NOT_AUTHENTICATED, "the certificate chain holds only proxies"
    )


def identityOfConnection(connection):
    """
    Return the L{Identity} of the peer of a pyOpenSSL connection whose
    handshake has completed.

    C{get_verified_chain} is used, not C{get_peer_cert_chain}: only the
    former is verified and, on a server, includes the leaf.

    @raise JobMonError: as L{identityFromChain}.
    """
    return identityFromChain(connection.get_verified_chain())

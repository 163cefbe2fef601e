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

from jobmon.certificates import (
    POLICY_INDEPENDENT,
    POLICY_INHERIT_ALL,
    POLICY_LIMITED,
    asCryptography,
    dnOf,
    proxyInfoOf,
)
from jobmon.errors import NOT_AUTHENTICATED, JobMonError

# --- Reading DER: cryptography cannot parse ProxyCertInfo ---


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
        L{jobmon.server.tokens.TokenInfo}; else C{None}.
    @ivar fqans: the VOMS FQANs (L{jobmon.fqan.FQAN}) her proxy's verified
        ACs grant (see L{jobmon.server.voms}).
    @ivar fqansUntil: when the first of those ACs expires (POSIX time), or
        C{None}; see L{jobmon.server.voms.heldFqans}.
    """

    dn: str
    proxy: bool = False
    limited: bool = False
    token: object = None
    fqans: tuple = ()
    fqansUntil: object = None

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
        cert = asCryptography(cert)
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

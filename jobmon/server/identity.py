"""
Who is calling: the end-entity identity behind a verified certificate chain.

OpenSSL verifies RFC 3820 proxy chains (signatures, validity, path length and
subject form) once the store allows proxies, but it does not interpret proxy
policies.  This module does: the caller is the first certificate of the
verified chain that is not a proxy, a limited proxy is marked as such, and an
independent proxy (which by definition does not speak for its issuer) is
refused.

L{ConnectionIdentities} keeps the identity of each HTTPS connection and
checks it on every request: a credential that expires, or that a reload
of the CA directory revokes, stops working on connections opened before.
"""

from weakref import WeakKeyDictionary

from attrs import evolve, field, frozen
from cryptography import x509
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jobmon.certificates import (
    POLICY_INDEPENDENT,
    POLICY_INHERIT_ALL,
    POLICY_LIMITED,
    asCryptography,
    canonicalDN,
    dnOf,
    proxyInfoOf,
    splitUnescaped,
)
from jobmon.errors import NOT_AUTHENTICATED, JobMonError
from jobmon.server.tls import revocationKey
from jobmon.times import utc

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
    @ivar issuer: for a certificate caller, the slash-form DN of the CA
        that issued the user certificate (admins may be scoped to it);
        else C{""}.
    @ivar notAfter: for a certificate caller, when the first certificate
        of its verified chain expires (seconds since the epoch); else
        C{None}.  Not part of who the caller is: not compared.
    @ivar expiring: which certificate that is, for the message: C{"your
        proxy"}, C{"your certificate"} or C{"your CA's certificate"}.
    @ivar fqans: the VOMS FQANs (L{jobmon.fqan.FQAN}) her proxy's verified
        ACs grant (see L{jobmon.server.voms}).
    @ivar fqansUntil: when the first of those ACs expires (POSIX time), or
        C{None}; see L{jobmon.server.voms.heldFqans}.
    @ivar revocation: for a certificate caller, the
        L{jobmon.server.tls.revocationKey} of its verified chain, which a
        reload of the CA directory checks again (a sealed wake channel's
        registrant); else C{None}.  Not compared.

    Further attributes are added with defaults, so that token callers and
    tests need not give them.
    """

    dn: str
    proxy: bool = False
    limited: bool = False
    token: object = None
    issuer: str = ""
    notAfter: object = field(default=None, eq=False)
    expiring: str = field(default="", eq=False)
    fqans: tuple = ()
    fqansUntil: object = None
    revocation: object = field(default=None, eq=False, repr=False)

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


def parseAdmin(text):
    """
    Read an C{--admin} entry: a DN in slash form, optionally followed by
    C{|} and the DN of the CA that must have issued the admin's
    certificate (C{/DC=org/DC=example/CN=Site Admin|/DC=org/DC=example/CN=Example
    CA}); or a bearer token's identity (C{https://issuer#subject}).

    @return: C{(subject, issuer)}: the canonical slash forms
        (L{jobmon.certificates.canonicalDN}), C{issuer} C{""} for any CA; a
        token identity as given, with issuer C{""}.
    @raise ValueError: neither, saying why.
    """
    if text.startswith("https://") and "#" in text:
        return text, ""
    parts = splitUnescaped(text, "|")
    if len(parts) > 2:
        raise ValueError("it has more than one | (one separates the issuer's DN)")
    subject = canonicalDN(parts[0].rstrip())
    issuer = canonicalDN(parts[1].lstrip()) if len(parts) == 2 else ""
    return subject, issuer


class AdminList:
    """
    The server's admins (C{--admin}), compared with callers structurally:
    each entry is parsed (L{parseAdmin}) into the slash form L{dnOf} gives,
    in which a value holding C{/} or C{+} cannot pass for more RDNs.

    C{identity in admins} is true for an L{Identity} whose DN an entry
    names, when that entry names no issuer or the identity's issuer; a
    plain string (a DN) matches only entries that name no issuer.
    """

    def __init__(self, entries=()):
        self._issuers = {}
        for entry in entries:
            subject, issuer = entry if isinstance(entry, tuple) else parseAdmin(entry)
            self._issuers.setdefault(subject, set()).add(issuer)
        self._key = frozenset(
            (subject, issuer) for subject, issuers in self._issuers.items() for issuer in issuers
        )

    def __contains__(self, caller):
        if isinstance(caller, str):
            dn, issuer = caller, None
        else:
            dn, issuer = caller.dn, caller.issuer or None
        issuers = self._issuers.get(dn, ())
        return "" in issuers or (issuer is not None and issuer in issuers)

    def __iter__(self):
        return iter(sorted(self._key))

    def __len__(self):
        return len(self._key)

    def __eq__(self, other):
        return isinstance(other, AdminList) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        return "AdminList({!r})".format(sorted(self._key))


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
    chain = [asCryptography(cert) for cert in chain]
    limited = False
    for depth, cert in enumerate(chain):
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
            ends = [c.not_valid_after_utc.timestamp() for c in chain]
            first = ends.index(min(ends))
            expiring = ("your proxy" if first < depth else "your certificate"
                        if first == depth else "your CA's certificate")
            return Identity(dn=dnOf(cert), proxy=depth > 0, limited=limited,
                            issuer=dnOf(cert.issuer), notAfter=ends[first],
                            expiring=expiring, revocation=revocationKey(chain))
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


class ConnectionIdentities:
    """
    The C{identify} of the XML-RPC endpoint for certificate callers: the
    identity behind each HTTPS connection, read from its verified chain at
    its first request and kept with the connection, then checked again on
    every request:

      - against the clock: once the first certificate of the chain has
        expired (a short proxy, typically), requests are refused with a 401
        saying when it expired;
      - against what the server trusts now: after the CA directory was
        reloaded (new CRLs, a CA removed), the chain is checked again, and
        a revoked one is refused with a 401.

    Either refusal closes the connection once answered, so that the
    client's next request opens a new one, with its renewed credential.

    @ivar clock: the reactor (its C{seconds}).
    @ivar trust: what decides whether an earlier verified chain is still
        trusted: an object with C{generation} (changed by every reload),
        C{isCurrent(connection)} (whether the connection was verified under
        the credentials loaded now) and C{recheck(chain)} (why the chain is
        no longer trusted, or C{None}), such as
        L{jobmon.server.tls.ServerContextFactory}; or C{None} to check only
        expiry.
    @ivar audit: the audit log, or C{None}.
    @ivar voms: what reads the FQANs of the chain's VOMS attribute
        certificates (C{fqansOf(chain)} giving the FQANs and when the first
        lapses), such as L{jobmon.server.voms.VomsAttributes}; or C{None}:
        nobody holds an FQAN.
    """

    log = Logger()

    def __init__(self, clock, trust=None, audit=None, voms=None):
        self.clock = clock
        self.trust = trust
        self.audit = audit
        self.voms = voms
        # One entry per open HTTP connection, going with it.
        self._cache = WeakKeyDictionary()

    def __call__(self, request):
        """
        The identity of C{request}'s caller.

        @raise JobMonError: L{NOT_AUTHENTICATED}: no verified certificate,
            one that cannot act as a user, or one expired or revoked since
            the connection was opened.
        """
        channel = request.channel
        generation = getattr(self.trust, "generation", None)
        cached = self._cache.get(channel)
        if cached is None or cached[1] != generation:
            cached = (self._identify(request), generation)
            self._cache[channel] = cached
        identity = cached[0]
        if identity.notAfter is not None and self.clock.seconds() >= identity.notAfter:
            why = "{} expired at {}".format(identity.expiring, utc(identity.notAfter))
            self._close(request, identity.dn, why)
            raise JobMonError(
                NOT_AUTHENTICATED,
                "{}; renew it and connect again (this connection is closed)".format(why),
            )
        return identity

    def _identify(self, request):
        getHandle = getattr(request.transport, "getHandle", None)
        connection = getHandle() if getHandle else None
        if connection is None or not hasattr(connection, "get_verified_chain"):
            raise JobMonError(NOT_AUTHENTICATED, "a client certificate is required")
        verified = connection.get_verified_chain()
        chain = [asCryptography(cert) for cert in verified] if verified else verified
        identity = identityFromChain(chain)
        if self.voms is not None:
            fqans, until = self.voms.fqansOf(verified)
            if fqans:
                identity = evolve(identity, fqans=fqans, fqansUntil=until)
        why = None
        if self.trust is not None and not self.trust.isCurrent(connection):
            why = self.trust.recheck(chain)
        if why is not None:
            self._close(request, identity.dn, why)
            raise JobMonError(
                NOT_AUTHENTICATED,
                "your credential is no longer accepted: {} (this connection is "
                "closed)".format(why),
            )
        return identity

    def _close(self, request, dn, why):
        """
        Close the connection once this request is answered; log and audit
        why.
        """
        request.setHeader(b"connection", b"close")
        request.channel.persistent = False
        peer = getattr(request.getClientAddress(), "host", None)
        self.log.info("closing the connection of {dn} from {peer}: {why}",
                      dn=dn, peer=peer, why=why)
        if self.audit is not None:
            self.audit.record("refused", method="tls", dn=dn, peer=peer,
                              code=NOT_AUTHENTICATED, reason=why)


class CredentialWatch(Service):
    """
    Close long-lived connections (TCP wake channels) whose credential
    expired, or that a reload of the CA directory revoked, while they were
    open: checked every C{interval} seconds, and at once after a reload
    (through C{trust.afterInstall}, where C{trust} has it).  (HTTPS
    connections are checked on each request: L{ConnectionIdentities}.)

    @ivar clock: the reactor.
    @ivar trust: as L{ConnectionIdentities.trust}, or C{None}.
    @ivar interval: seconds between checks.
    """

    log = Logger()

    def __init__(self, clock, trust=None, interval=10.0):
        self.clock = clock
        self.trust = trust
        self.interval = interval
        # Transport to (identity, the trust generation it was checked
        # under), going with the connection.
        self._watched = WeakKeyDictionary()
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        getattr(trust, "afterInstall", []).append(self.check)

    def startService(self):
        """
        Check every C{interval} seconds.
        """
        super().startService()
        self._loop.start(self.interval, now=False)

    def stopService(self):
        """
        Stop checking.
        """
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def watch(self, transport, identity):
        """
        Watch the connection C{transport} (whose C{getHandle} is its pyOpenSSL
        connection) of C{identity}, until it closes.

        @raise JobMonError: L{NOT_AUTHENTICATED} if a reload since its
            handshake revoked it.
        """
        if identity is None or identity.notAfter is None:
            return
        generation = getattr(self.trust, "generation", None)
        if self.trust is not None and not self.trust.isCurrent(transport.getHandle()):
            # Verified under credentials reloaded since: check it at once.
            why = self.trust.recheck(transport.getHandle().get_verified_chain())
            if why is not None:
                raise JobMonError(NOT_AUTHENTICATED, "your credential is no longer "
                                  "accepted: {}".format(why))
        self._watched[transport] = (identity, generation)

    def watchRegistration(self, transport, record):
        """
        Watch a sealed wake channel (C{transport}, with no certificate of
        its own) until the credential that registered its job
        (C{record}, a L{jobmon.server.registry.JobRecord}) expires or a
        reload of the CA directory revokes it (checked by its
        L{jobmon.server.tls.revocationKey}, which the record keeps).

        @raise JobMonError: L{NOT_AUTHENTICATED} if a reload since the
            registration revoked it.
        """
        if record.notAfter is None:
            return
        registrant = Identity(record.owner, notAfter=record.notAfter,
                              expiring="the credential that registered the job",
                              revocation=record.revocation)
        if self.trust is not None and record.revocation is not None:
            # Registered under credentials that may have been reloaded
            # since: check it at once (cheap, from the key).
            why = self.trust.recheckKey(record.revocation)
            if why is not None:
                raise JobMonError(NOT_AUTHENTICATED, "your credential is no longer "
                                  "accepted: {}".format(why))
        self._watched[transport] = (registrant, getattr(self.trust, "generation", None))

    def __len__(self):
        return len(self._watched)

    def check(self):
        """
        Close the watched connections whose credential expired, and, if the
        CA directory was reloaded since the last check, those whose chain
        it no longer trusts.
        """
        now = self.clock.seconds()
        generation = getattr(self.trust, "generation", None)
        for transport, (identity, checked) in list(self._watched.items()):
            why = None
            if now >= identity.notAfter:
                why = "{} expired at {}".format(identity.expiring, utc(identity.notAfter))
            elif checked != generation:
                self._watched[transport] = (identity, generation)
                try:
                    if getattr(transport, "sealed", False):
                        # A sealed channel: its registrant's chain, by key.
                        why = self.trust.recheckKey(identity.revocation)
                    else:
                        why = self.trust.recheck(transport.getHandle().get_verified_chain())
                except Exception:
                    self.log.failure("cannot check the chain of {dn} again", dn=identity.dn)
            if why is not None:
                del self._watched[transport]
                self.log.info("closing the wake channel of {dn}: {why}", dn=identity.dn, why=why)
                transport.loseConnection()

"""
The server's TLS context: client certificates and RFC 3820 proxies
required, CRLs checked, refused handshakes logged a few at a time.
"""

import hashlib
import os
import re
import time
import weakref

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from jobmon.certificates import CredentialError, caCertificates, dnOf, proxyInfoOf
from jobmon.credentials import isEncryptedKey, whyUnreadable

_CRL_NAME = re.compile(r"^[0-9a-f]{8}\.r[0-9]+$")

UNABLE_TO_GET_CRL = 3
"""OpenSSL's X509_V_ERR_UNABLE_TO_GET_CRL."""

CRL_MODES = ("auto", "require", "off")
"""How the server checks revocation: C{auto} checks each certificate whose CA
has a CRL file (C{<hash>.r0}) in the CA directory, C{require} refuses a
certificate whose CA has none, C{off} never checks."""


class RefusalBudget:
    """
    How many refusals from one address are logged: the first C{burst} in
    each C{window} seconds; the rest are counted and reported with the next
    one logged, so that a flood of bad handshakes can flush neither the log
    nor the audit trail.
    """

    def __init__(self, burst=5, window=60.0, now=time.monotonic, maxPeers=10000):
        self.burst = burst
        self.window = window
        self.now = now
        self.maxPeers = maxPeers
        self._peers = {}

    def admit(self, peer):
        """
        Whether to log a refusal from C{peer}.

        @return: L{None} to stay quiet, else the number of refusals from
            there not logged since the last one that was.
        """
        now = self.now()
        start, logged, quiet = self._peers.get(peer, (now, 0, 0))
        if now - start >= self.window:
            start, logged = now, 0
        if logged >= self.burst:
            self._peers[peer] = (start, logged, quiet + 1)
            return None
        if peer not in self._peers and len(self._peers) >= self.maxPeers:
            # Forget peers whose window is over; the table stays bounded.
            self._peers = {
                p: v for p, v in self._peers.items() if now - v[0] < self.window
            }
        self._peers[peer] = (start, logged + 1, 0)
        return quiet


class TrustedNow:
    """
    What one load of the CA directory trusts, to check again the chains of
    connections verified under an earlier load: the CA certificates, and
    the serial numbers each CA's CRL revokes (CRLs whose signature does not
    verify with a CA of the directory are ignored, as OpenSSL ignores
    them).

    @ivar anchors: the DER encodings of the CA certificates.
    @ivar revoked: issuer name (C{x509.Name}) to revoked serial numbers.
    @ivar crlCheck: the server's C{--crl-check}.
    """

    def __init__(self, anchors, revoked, crlCheck):
        self.anchors = frozenset(anchors)
        self.revoked = revoked
        self.crlCheck = crlCheck
        self._byDigest = None

    @classmethod
    def read(cls, caDir, cas, crlNames, crlCheck):
        """
        Read the CRL files C{crlNames} of C{caDir} (blocking: in the
        reloader's thread), given the directory's CA certificates C{cas}
        (L{twisted.internet.ssl.Certificate}s).
        """
        cas = [c.original.to_cryptography() for c in cas]
        revoked = {}
        for name in crlNames:
            try:
                with open(os.path.join(caDir, name), "rb") as f:
                    data = f.read()
                crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN" in data
                       else x509.load_der_x509_crl(data))
            except (OSError, ValueError):
                continue
            if not any(ca.subject == crl.issuer and _signed(crl, ca) for ca in cas):
                continue
            revoked.setdefault(crl.issuer, set()).update(r.serial_number for r in crl)
        return cls((ca.public_bytes(Encoding.DER) for ca in cas), revoked, crlCheck)

    def recheck(self, chain):
        """
        Why a chain verified earlier is not trusted now, or C{None}.

        @param chain: the verified chain, leaf first, its CA last (pyOpenSSL
            or C{cryptography} certificates).
        """
        chain = [c.to_cryptography() if hasattr(c, "to_cryptography") else c for c in chain]
        if chain[-1].public_bytes(Encoding.DER) not in self.anchors:
            return "its CA {} is no longer trusted by this server".format(dnOf(chain[-1]))
        if self.crlCheck == "off":
            return None
        for cert in chain[:-1]:
            serials = self.revoked.get(cert.issuer)
            if serials is not None and cert.serial_number in serials:
                return "the certificate {} is revoked by its CA".format(dnOf(cert))
            if serials is None and self.crlCheck == "require" and proxyInfoOf(cert) is None:
                return "the server requires a CRL of the CA {}, and has none".format(
                    dnOf(cert.issuer))
        return None

    def recheckKey(self, key):
        """
        Why a chain verified earlier, known by its L{revocationKey} only,
        is not trusted now, or C{None}: the same checks as L{recheck}.
        """
        if self._byDigest is None:
            # Built at the first check after a load, for every key.
            self._byDigest = (
                frozenset(hashlib.sha256(a).digest() for a in self.anchors),
                {name.public_bytes(): serials for name, serials in self.revoked.items()},
            )
        anchors, revoked = self._byDigest
        if key[0] not in anchors:
            return "its CA is no longer trusted by this server"
        if self.crlCheck == "off":
            return None
        for issuer, serial, proxy in key[1:]:
            serials = revoked.get(issuer)
            if serials is not None and serial in serials:
                return "the certificate of serial {} is revoked by its CA".format(serial)
            if serials is None and self.crlCheck == "require" and not proxy:
                return "the server requires a CRL of the CA of the certificate of serial " \
                       "{}, and has none".format(serial)
        return None


def revocationKey(chain):
    """
    What L{TrustedNow.recheckKey} needs of a verified chain, in a few
    hundred bytes (the chain itself is some KB): the SHA-256 of its CA's
    DER, then C{(issuer DER, serial, is a proxy)} for each other
    certificate.

    @param chain: the verified chain, leaf first, its CA last, as
        C{cryptography} certificates.
    """
    return (hashlib.sha256(chain[-1].public_bytes(Encoding.DER)).digest(),) + tuple(
        (cert.issuer.public_bytes(), cert.serial_number, proxyInfoOf(cert) is not None)
        for cert in chain[:-1]
    )


def _signed(crl, ca):
    try:
        return crl.is_signature_valid(ca.public_key())
    except (TypeError, ValueError):
        return False


def _readFile(path, what):
    """
    Read a file of the host credential, or say why it cannot be read (the
    owner and mode beside the server's user, for a refused permission).

    @raise CredentialError: naming C{what} and the path.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CredentialError("cannot read the {} {}: {}".format(what, path, whyUnreadable(path, e)))


def encryptedHostKeyMessage(path):
    """
    What an encrypted host key is told with: the server (or daemon) runs
    unattended and takes no pass phrase.
    """
    return (
        "the host key {path} is encrypted and the server takes no pass phrase: store it "
        "decrypted (openssl pkey -in {path} -out NEW), readable by the server's user only"
    ).format(path=path)


@implementer(IOpenSSLContextFactory)
class ServerContextFactory:
    """
    The server's TLS context: host certificate, CA directory, client
    certificate required, proxy certificates allowed.

    Session tickets and the session cache are off: on a resumed session
    pyOpenSSL has no verified chain, and the chain is how the server knows
    who is calling.

    @ivar hostCert: path of the host certificate (PEM, may hold a chain).
    @ivar hostKey: path of its key.
    @ivar caDir: OpenSSL hashed CA directory.
    """

    log = Logger()

    def __init__(self, hostCert, hostKey, caDir, crlCheck="auto", audit=None,
                 maxVersion=None, requireCertificate=True):
        if crlCheck not in CRL_MODES:
            raise ValueError("crlCheck must be one of {}".format(", ".join(CRL_MODES)))
        self.hostCert = hostCert
        self.hostKey = hostKey
        self.caDir = caDir
        self.crlCheck = crlCheck
        self.audit = audit
        self.maxVersion = maxVersion
        self.requireCertificate = requireCertificate
        self.refusals = RefusalBudget()
        # The handshakes already refused: the verify callback runs for each
        # certificate of a chain, the refusal is logged once.
        self._refusedConnections = weakref.WeakSet()
        self.crls = 0
        self.trusted = None
        self.generation = 0
        # Called with no argument after each install: what checks open
        # connections at once (L{jobmon.server.identity.CredentialWatch}).
        self.afterInstall = []
        self._context = None
        self._stamp = None

    def load(self):
        """
        Build the context now, so that a bad file stops start-up with a clear
        message instead of failing the first handshake.

        @raise CredentialError: a file is missing or invalid.
        """
        stamp = self.stamp()
        self.install(self._build() + (stamp,))

    def stamp(self):
        """
        What the context is built from, as it is on disk now: the names,
        sizes and times of the host credential and of the CA directory's
        files.
        """
        entries = []
        for path in (self.hostCert, self.hostKey):
            try:
                st = os.stat(path)
                entries.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                entries.append((path, None, None))
        try:
            names = sorted(os.listdir(self.caDir))
        except OSError:
            names = []
        for name in names:
            try:
                st = os.stat(os.path.join(self.caDir, name))
                entries.append((name, st.st_mtime_ns, st.st_size))
            except OSError:
                continue
        return tuple(entries)

    def prepareReload(self):
        """
        Look at the files and, if they changed, build a new context without
        installing it.  Blocking: L{jobmon.server.reloader.CredentialReloader}
        calls it in a thread, then L{install} in the reactor's.

        @return: what L{install} takes, or L{None} if nothing changed.
        @raise CredentialError: the new files are invalid.
        """
        stamp = self.stamp()
        if stamp == self._stamp:
            return None
        return self._build() + (stamp,)

    def install(self, prepared):
        """
        Use a context made by L{prepareReload} for new connections;
        established ones keep theirs, but their chains are checked again
        (L{recheck}, by L{jobmon.server.identity.ConnectionIdentities}).
        """
        self._context, self.crls, self.trusted, self._stamp = prepared
        self.generation += 1
        for hook in self.afterInstall:
            hook()

    def isCurrent(self, connection):
        """
        Whether a pyOpenSSL connection was made with the context in use now
        (then its handshake checked the CRLs and CAs loaded now).
        """
        getContext = getattr(connection, "get_context", None)
        return getContext is not None and getContext() is self._context

    def recheck(self, chain):
        """
        Why a chain verified at an earlier handshake is not trusted by the
        credentials loaded now (revoked by a new CRL, its CA removed), or
        C{None}.
        """
        if self.trusted is None:
            return None
        return self.trusted.recheck(chain)

    def recheckKey(self, key):
        """
        As L{recheck}, for a chain known by its L{revocationKey}.
        """
        if self.trusted is None:
            return None
        return self.trusted.recheckKey(key)

    def _build(self):
        """
        Build a context from the files; touch no attribute of C{self} that
        connections read, since this runs in a thread.

        @return: the context, the number of CRL files it checks and the
            L{TrustedNow} to check earlier connections against.
        """
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        if self.maxVersion is not None:
            ctx.set_max_proto_version(self.maxVersion)
            # TLS 1.2 only with forward secrecy and authenticated encryption.
            ctx.set_cipher_list(b"ECDHE+AESGCM:ECDHE+CHACHA20")
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        # Idle wake channels are most connections: let OpenSSL free their
        # read and write buffers between messages.
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        _readFile(self.hostCert, "host certificate")
        if isEncryptedKey(_readFile(self.hostKey, "host key")):
            raise CredentialError(encryptedHostKeyMessage(self.hostKey))
        # Never let OpenSSL prompt on the terminal for a pass phrase.
        ctx.set_passwd_cb(lambda *args: b"")
        try:
            ctx.use_certificate_chain_file(self.hostCert)
        except SSL.Error as e:
            raise CredentialError("invalid host certificate {}: {}".format(self.hostCert, e))
        try:
            ctx.use_privatekey_file(self.hostKey)
            ctx.check_privatekey()
        except SSL.Error as e:
            raise CredentialError(
                "invalid host key {} (or it does not match {}): {}".format(
                    self.hostKey, self.hostCert, e
                )
            )
        # Fail early on an empty or missing CA directory.
        cas = caCertificates(self.caDir)
        ctx.load_verify_locations(None, self.caDir)
        flags = crypto.X509StoreFlags.ALLOW_PROXY_CERTS
        crlNames = [n for n in os.listdir(self.caDir) if _CRL_NAME.match(n)]
        crls = len(crlNames)
        check = self.crlCheck == "require" or (self.crlCheck == "auto" and crls)
        if check:
            # Every certificate of the chain, not only the leaf: the leaf is
            # usually a proxy, which CRLs do not list (OpenSSL skips proxies).
            flags |= crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
        ctx.get_cert_store().set_flags(flags)
        lenient = bool(check) and self.crlCheck == "auto"

        def verify(connection, cert, errno, depth, ok):
            if not ok and lenient and errno == UNABLE_TO_GET_CRL:
                # A CA without a CRL file is not an error (as in Globus GSI).
                return True
            if not ok:
                self._refused(connection, cert, errno, depth)
            return ok

        # With bearer tokens accepted, a certificate is optional at the
        # handshake (one that is presented is still verified), and a request
        # without either is refused with a fault that says so.
        mode = SSL.VERIFY_PEER
        if self.requireCertificate:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        ctx.set_verify(mode, verify)
        return ctx, crls, TrustedNow.read(self.caDir, cas, crlNames, self.crlCheck)

    def _refused(self, connection, cert, errno, depth):
        """
        Log (and audit) a certificate refused at the handshake, once per
        connection: the client learns only that it was refused.
        """
        if connection in self._refusedConnections:
            return
        self._refusedConnections.add(connection)
        protocol = connection.get_app_data()
        try:
            subject = dnOf(cert.to_cryptography())
        except Exception:
            subject = "?"
        reason = _verifyReason(errno)
        peer = getattr(getattr(protocol, "transport", None), "getPeer", lambda: None)()
        host = getattr(peer, "host", None)
        suppressed = self.refusals.admit(host)
        if suppressed is None:
            return
        self.log.info(
            "certificate refused from {peer}: {reason} (error {errno} at depth {depth}, "
            "{subject}){more}",
            peer=host,
            reason=reason,
            errno=errno,
            depth=depth,
            subject=subject,
            more="; {} more from there not logged".format(suppressed) if suppressed else "",
        )
        if self.audit is not None:
            self.audit.record(
                "refused", method="tls", dn=subject, peer=host, code=errno, reason=reason,
                suppressed=suppressed,
            )

    kind = "TLS credentials"

    def describe(self):
        """
        One line about what is loaded, for the log.
        """
        return "TLS credentials from {} ({} CRL files)".format(self.caDir, self.crls)

    def sibling(self, **changes):
        """
        A factory for the same credentials with some settings changed (the
        wake port's, for instance).
        """
        settings = dict(
            hostCert=self.hostCert, hostKey=self.hostKey, caDir=self.caDir,
            crlCheck=self.crlCheck, audit=self.audit, maxVersion=self.maxVersion,
            requireCertificate=self.requireCertificate,
        )
        settings.update(changes)
        return ServerContextFactory(**settings)

    def getContext(self):
        """
        Return the context (built on first use).
        """
        if self._context is None:
            self.load()
        return self._context


_VERIFY_REASONS = {
    2: "unknown issuer",
    7: "bad signature",
    9: "not yet valid",
    10: "expired",
    12: "CRL expired",
    18: "self-signed certificate",
    19: "self-signed certificate in chain",
    20: "unknown CA",
    23: "revoked",
    24: "invalid CA certificate",
    38: "proxy path length exceeded",
    40: "proxy certificates not allowed",
    72: "invalid proxy subject",
    79: "invalid CA certificate (a legacy proxy?)",
}


def _verifyReason(errno):
    """
    A few words for an OpenSSL verification error number.
    """
    return _VERIFY_REASONS.get(errno, "verification error")



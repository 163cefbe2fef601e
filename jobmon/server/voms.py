"""
VOMS groups and roles: the RFC 5755 attribute certificates (ACs) that
C{voms-proxy-init} embeds in a proxy, read from the verified chain and
checked against the server's C{--vomsdir}.

An AC grants its FQANs only when all of these hold:

  - the VOMS server's certificate it carries chains to a CA of the
    server's CA directory (at the reactor's time);
  - C{<vomsdir>/<vo>/<host>.lsc} exists for the VO and host the AC names,
    and its DNs are that certificate's subject and issuer (and, for longer
    chains, the issuers above);
  - the AC's issuer is that certificate's subject, and its signature
    verifies with that certificate's key;
  - the reactor's time is within the AC's validity;
  - the AC's holder is the end-entity certificate of the chain (its issuer,
    or as the VOMS C library writes it its subject, and its serial number);
  - every FQAN lies in the AC's VO, and no critical extension is unknown.

Anything else grants nothing: the caller keeps her DN, the AC is ignored,
and why is logged once per VOMS server and reason.
"""

import datetime
import hashlib
import os
import re

from attrs import field, frozen
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto
from twisted.logger import Logger

from jobmon.certificates import (
    CredentialError,
    _derDecodeOID,
    _derRead,
    asCryptography,
    caCertificates,
    dnOf,
    proxyInfoOf,
)
from jobmon.fqan import parseFqan

VOMS_AC_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
"""The proxy extension holding VOMS ACs: SEQUENCE OF SEQUENCE OF AC."""

VOMS_ATTRIBUTE = "1.3.6.1.4.1.8005.100.100.4"
"""The AC attribute holding FQANs (an IetfAttrSyntax)."""

AC_CERTS = "1.3.6.1.4.1.8005.100.100.10"
"""The AC extension carrying the VOMS server's certificate chain."""

AC_TAGS = "1.3.6.1.4.1.8005.100.100.11"
"""The AC extension carrying generic attributes (not used here)."""

_KNOWN_EXTENSIONS = {
    AC_CERTS,
    AC_TAGS,
    "2.5.29.56",  # noRevAvail
    "2.5.29.35",  # authorityKeyIdentifier
}
"""AC extensions this module understands (a critical one not here makes
the AC grant nothing; so does a critical targetInformation, 2.5.29.55, as
targets are not checked)."""

_RSA = {
    "1.2.840.113549.1.1.5": hashes.SHA1,
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
_ECDSA = {
    "1.2.840.10045.4.1": hashes.SHA1,
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A VO or host name that may be part of a path under the VOMS directory."""

_LSC_SEPARATOR = "------ NEXT CHAIN ------"

MAX_ACS = 8
"""Most ACs read from one chain: a credential is one AC per VO."""


def _printable(text, most=300):
    """
    C{text} fit for one log line: what the AC says comes from the caller, so
    control characters are escaped and the length capped.
    """
    text = text[:most]
    return "".join(c if c.isprintable() else "\\x{:02x}".format(ord(c)) if ord(c) < 256
                   else "\\u{:04x}".format(ord(c)) for c in text)


class ACError(ValueError):
    """
    An AC is malformed or grants nothing; the message says why (for the
    server's log, never for the caller).
    """


@frozen
class AttributeCertificate:
    """
    A decoded VOMS attribute certificate.

    @ivar signed: the DER of its AttributeCertificateInfo (what is signed).
    @ivar algorithm: the dotted OID of its signature algorithm.
    @ivar signature: the signature bytes.
    @ivar holderIssuer: the DER of the holder certificate's issuer name,
        or C{None} if the holder is not named by issuer and serial.
    @ivar holderSerial: the holder certificate's serial number, or C{None}.
    @ivar issuer: the DER of the AC issuer's name.
    @ivar serial: the AC's serial number.
    @ivar notBefore: start of validity, an aware C{datetime}.
    @ivar notAfter: end of validity, an aware C{datetime}.
    @ivar authority: the VOMS policy authority, C{vo://host:port}.
    @ivar fqans: the FQAN strings, as the AC lists them.
    @ivar certs: the VOMS server's certificate chain (C{cryptography}
        certificates), server first.
    @ivar critical: dotted OIDs of its critical extensions.
    """

    signed: bytes
    algorithm: str
    signature: bytes
    holderIssuer: object
    holderSerial: object
    issuer: bytes
    serial: int
    notBefore: datetime.datetime
    notAfter: datetime.datetime
    authority: str
    fqans: tuple
    certs: tuple
    critical: tuple = ()

    @property
    def vo(self):
        """
        The VO named by the policy authority (C{vo://host:port}).
        """
        return self.authority.partition("://")[0]

    @property
    def host(self):
        """
        The VOMS host named by the policy authority.
        """
        return self.authority.partition("://")[2].rpartition(":")[0]


# --- Reading DER ---


def _elements(data, what):
    """
    Split the content of a constructed DER element into its elements.

    @return: a list of C{(tag, content, raw)}, C{raw} the whole element.
    """
    result, pos = [], 0
    while pos < len(data):
        try:
            tag, content, end = _derRead(data, pos)
        except ValueError as e:
            raise ACError("{}: {}".format(what, e))
        result.append((tag, content, data[pos:end]))
        pos = end
    return result


def _one(data, tag, what):
    """
    Read C{data} as exactly one DER element with C{tag}.
    """
    items = _elements(data, what)
    if len(items) != 1 or items[0][0] != tag:
        raise ACError("{} is not one element of type {:#x}".format(what, tag))
    return items[0][1]


def _expect(item, tag, what):
    if item[0] != tag:
        raise ACError("{}: unexpected element {:#x}".format(what, item[0]))
    return item[1]


def _integer(content):
    if not content:
        raise ACError("empty INTEGER")
    return int.from_bytes(content, "big", signed=True)


def _time(content):
    text = content.decode("ascii", "replace")
    match = re.fullmatch(r"(\d{14})(?:\.\d+)?Z", text)
    if not match:
        raise ACError("bad GeneralizedTime {!r}".format(text[:40]))
    try:
        return datetime.datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise ACError("bad GeneralizedTime {!r}".format(text))


def _directoryName(generalNames, what):
    """
    The DER of the first directoryName ([4]) of a GeneralNames.
    """
    for tag, content, _ in _elements(generalNames, what):
        if tag == 0xA4:
            items = _elements(content, what)
            if len(items) == 1 and items[0][0] == 0x30:
                return items[0][2]
    raise ACError("{} names no directoryName".format(what))


def _holder(content):
    """
    Read an AC Holder: only its baseCertificateID ([0]) is used.

    @return: C{(issuer DER, serial)}, or C{(None, None)}.
    """
    for tag, body, _ in _elements(content, "holder"):
        if tag == 0xA0:
            parts = _elements(body, "holder baseCertificateID")
            if len(parts) < 2:
                raise ACError("short baseCertificateID")
            issuer = _directoryName(_expect(parts[0], 0x30, "holder issuer"), "holder issuer")
            return issuer, _integer(_expect(parts[1], 0x02, "holder serial"))
    return None, None


def _issuer(item):
    """
    Read an AC issuer: v2Form ([0]) with its issuerName, or (v1) GeneralNames.
    """
    tag, content, _ = item
    if tag == 0xA0:
        parts = _elements(content, "issuer v2Form")
        if not parts:
            raise ACError("v2Form without issuerName")
        return _directoryName(_expect(parts[0], 0x30, "issuerName"), "issuerName")
    if tag == 0x30:
        return _directoryName(content, "issuer")
    raise ACError("unknown AC issuer form")


def _attributes(content):
    """
    Read the VOMS attribute: C{(policy authority, FQAN strings)}.
    """
    for attr in _elements(content, "attributes"):
        parts = _elements(_expect(attr, 0x30, "attribute"), "attribute")
        if len(parts) != 2 or parts[0][0] != 0x06:
            raise ACError("malformed attribute")
        if _derDecodeOID(parts[0][1]).dotted_string != VOMS_ATTRIBUTE:
            continue
        values = _elements(_expect(parts[1], 0x31, "attribute values"), "attribute values")
        if len(values) != 1:
            raise ACError("the VOMS attribute has {} values, not one".format(len(values)))
        syntax = _elements(_expect(values[0], 0x30, "IetfAttrSyntax"), "IetfAttrSyntax")
        authority = None
        if syntax and syntax[0][0] == 0xA0:
            for tag, name, _ in _elements(syntax[0][1], "policyAuthority"):
                if tag == 0x86:  # uniformResourceIdentifier
                    authority = name.decode("utf-8", "replace")
            syntax = syntax[1:]
        if authority is None or len(syntax) != 1:
            raise ACError("the VOMS attribute names no policy authority")
        fqans = tuple(
            _expect(v, 0x04, "FQAN").decode("utf-8", "replace")
            for v in _elements(_expect(syntax[0], 0x30, "FQANs"), "FQANs")
        )
        return authority, fqans
    raise ACError("no VOMS attribute")


def _extensions(content):
    """
    Read AC extensions: C{(certificates, critical OIDs)}.
    """
    certs, critical = (), []
    for ext in _elements(content, "extensions"):
        parts = _elements(_expect(ext, 0x30, "extension"), "extension")
        if len(parts) < 2 or parts[0][0] != 0x06:
            raise ACError("malformed extension")
        oid = _derDecodeOID(parts[0][1]).dotted_string
        isCritical = len(parts) == 3 and parts[1] == (0x01, b"\xff", b"\x01\x01\xff")
        if isCritical:
            critical.append(oid)
        value = _expect(parts[-1], 0x04, "extension value")
        if oid == AC_CERTS:
            # SEQUENCE { SEQUENCE OF Certificate }
            outer = _one(value, 0x30, "AC certificates")
            stack = _elements(_one(outer, 0x30, "AC certificates"), "AC certificates")
            try:
                certs = tuple(x509.load_der_x509_certificate(raw) for _, _, raw in stack)
            except ValueError:
                raise ACError("unreadable certificate in the AC")
    return certs, tuple(critical)


def parseAC(der):
    """
    Decode one AttributeCertificate (RFC 5755) as VOMS makes it.

    @rtype: L{AttributeCertificate}
    @raise ACError: it is malformed, or not a VOMS AC.
    """
    top = _elements(_one(der, 0x30, "AC"), "AC")
    if len(top) != 3 or top[0][0] != 0x30 or top[1][0] != 0x30 or top[2][0] != 0x03:
        raise ACError("an AC is info, algorithm and signature")
    info = _elements(top[0][1], "AC info")
    if len(info) < 7:
        raise ACError("short AC info")
    if _integer(_expect(info[0], 0x02, "version")) != 1:
        raise ACError("not a version 2 AC")
    holderIssuer, holderSerial = _holder(_expect(info[1], 0x30, "holder"))
    issuer = _issuer(info[2])
    serial = _integer(_expect(info[4], 0x02, "serial"))
    validity = _elements(_expect(info[5], 0x30, "validity"), "validity")
    if len(validity) != 2:
        raise ACError("validity is two times")
    notBefore = _time(_expect(validity[0], 0x18, "notBefore"))
    notAfter = _time(_expect(validity[1], 0x18, "notAfter"))
    authority, fqans = _attributes(_expect(info[6], 0x30, "attributes"))
    certs, critical = (), ()
    for item in info[7:]:
        if item[0] == 0x30:
            certs, critical = _extensions(item[1])
    algorithm = _elements(top[1][1], "signature algorithm")
    if not algorithm or algorithm[0][0] != 0x06:
        raise ACError("malformed signature algorithm")
    bits = top[2][1]
    if not bits or bits[0] != 0:
        raise ACError("signature with unused bits")
    return AttributeCertificate(
        signed=top[0][2],
        algorithm=_derDecodeOID(algorithm[0][1]).dotted_string,
        signature=bits[1:],
        holderIssuer=holderIssuer,
        holderSerial=holderSerial,
        issuer=issuer,
        serial=serial,
        notBefore=notBefore,
        notAfter=notAfter,
        authority=authority,
        fqans=fqans,
        certs=certs,
        critical=critical,
    )


def acsOf(cert):
    """
    The VOMS ACs a certificate carries (a proxy made by
    C{voms-proxy-init}), decoded.

    @return: a list of L{AttributeCertificate}, empty if none.
    @raise ACError: the extension is malformed.
    """
    cert = asCryptography(cert)
    try:
        ext = cert.extensions.get_extension_for_oid(VOMS_AC_EXTENSION)
    except x509.ExtensionNotFound:
        return []
    result = []
    for tag, inner, _ in _elements(_one(ext.value.value, 0x30, "AC list"), "AC list"):
        if tag != 0x30:
            raise ACError("malformed AC list")
        for _, _, raw in _elements(inner, "AC list"):
            result.append(parseAC(raw))
            if len(result) > MAX_ACS:
                raise ACError("more than {} ACs".format(MAX_ACS))
    return result


# --- Trust ---


def _verifySignature(cert, ac):
    """
    Check the AC's signature with the public key of C{cert}.

    @raise ACError: it does not verify, or its algorithm is not supported.
    """
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and ac.algorithm in _RSA:
            key.verify(ac.signature, ac.signed, padding.PKCS1v15(), _RSA[ac.algorithm]())
        elif isinstance(key, ec.EllipticCurvePublicKey) and ac.algorithm in _ECDSA:
            key.verify(ac.signature, ac.signed, ec.ECDSA(_ECDSA[ac.algorithm]()))
        else:
            raise ACError("signature algorithm {} with a {} key is not supported".format(
                ac.algorithm, type(key).__name__))
    except InvalidSignature:
        raise ACError("bad AC signature")


def readVomsDir(vomsdir):
    """
    Read every C{<vomsdir>/<vo>/<host>.lsc}.

    @return: C{{(vo, host): [DN chain, ...]}}, each DN chain a tuple of
        slash-form DNs, the VOMS server's first.
    @raise CredentialError: the directory cannot be read.
    """
    try:
        vos = sorted(os.listdir(vomsdir))
    except OSError as e:
        raise CredentialError("cannot read VOMS directory {}: {}".format(vomsdir, e.strerror))
    result = {}
    for vo in vos:
        voDir = os.path.join(vomsdir, vo)
        if not _NAME_PART.fullmatch(vo) or not os.path.isdir(voDir):
            continue
        for name in sorted(os.listdir(voDir)):
            host, dot, ext = name.rpartition(".")
            if ext != "lsc" or not _NAME_PART.fullmatch(host):
                continue
            path = os.path.join(voDir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read(65536)
            except (OSError, UnicodeDecodeError) as e:
                raise CredentialError("cannot read {}: {}".format(path, e))
            chains, current = [], []
            for line in text.splitlines() + [_LSC_SEPARATOR]:
                line = line.strip()
                if line.startswith("------"):
                    if current:
                        chains.append(tuple(current))
                    current = []
                elif line and not line.startswith("#"):
                    current.append(line)
            if any(len(c) < 2 for c in chains) or not chains:
                raise CredentialError(
                    "{}: an .lsc file lists the VOMS server's DN, then its CA's DN".format(path))
            result[(vo, host)] = chains
    return result


def _storeOf(cas):
    store = crypto.X509Store()
    for ca in cas:
        store.add_cert(ca)
    return store


@frozen
class VomsTrust:
    """
    What the server trusts VOMS ACs from: the C{.lsc} files of its VOMS
    directory and the CAs of its CA directory.

    @ivar lsc: as L{readVomsDir} returns.
    @ivar cas: the CA certificates (pyOpenSSL C{X509}).
    """

    lsc: dict = field(factory=dict)
    cas: tuple = ()
    store: object = None

    @classmethod
    def load(cls, vomsdir, caDir):
        """
        Read the VOMS directory and the CA directory (blocking).

        @raise CredentialError: either cannot be read.
        """
        cas = tuple(crypto.X509.from_cryptography(c.original.to_cryptography())
                    for c in caCertificates(caDir))
        return cls(readVomsDir(vomsdir), cas, _storeOf(cas))

    def _serverChain(self, ac, when):
        """
        Verify the VOMS server's certificate against the CAs.

        @return: the verified chain, server first, as C{cryptography}
            certificates.
        """
        if not ac.certs:
            raise ACError("the AC carries no VOMS server certificate")
        # One store, built at load: the reactor thread alone uses it, and
        # sets its time before each verification.
        store = self.store if self.store is not None else _storeOf(self.cas)
        store.set_time(when.replace(tzinfo=None))
        context = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(ac.certs[0]),
            [crypto.X509.from_cryptography(c) for c in ac.certs[1:]],
        )
        try:
            chain = context.get_verified_chain()
        except crypto.X509StoreContextError as e:
            raise ACError("the VOMS server certificate does not verify: {}".format(e))
        return [c.to_cryptography() for c in chain]

    def verify(self, ac, holder, when):
        """
        Check one AC.

        @param holder: the end-entity certificate of the chain.
        @param when: the time, an aware C{datetime}.
        @return: C{(fqans, start, end)}: the FQANs it grants (parsed), and
            the times (POSIX) between which the answer holds: the AC's
            validity within that of the VOMS server's chain.
        @raise ACError: it grants nothing, and why.
        """
        vo, host = ac.vo, ac.host
        if not _NAME_PART.fullmatch(vo) or not _NAME_PART.fullmatch(host):
            raise ACError("bad policy authority {!r}".format(ac.authority[:100]))
        chains = self.lsc.get((vo, host))
        if chains is None:
            raise ACError("no {}/{}.lsc in the VOMS directory".format(vo, host))
        if ac.critical and set(ac.critical) - _KNOWN_EXTENSIONS:
            raise ACError("unknown critical AC extension {}".format(
                ", ".join(sorted(set(ac.critical) - _KNOWN_EXTENSIONS))))
        server = self._serverChain(ac, when)
        names = [dnOf(server[0])] + [dnOf(c.issuer) for c in server]
        if any("/" in a.value for c in server for n in (c.subject, c.issuer) for a in n
               if isinstance(a.value, str)):
            # The slash form of such a name is ambiguous.
            raise ACError("a DN of the VOMS server's chain holds '/'")
        if not any(list(chain) == names[: len(chain)] for chain in chains):
            raise ACError("{}/{}.lsc does not list {} issued by {}".format(
                vo, host, names[0], names[1]))
        if ac.issuer != server[0].subject.public_bytes():
            raise ACError("the AC issuer is not the VOMS server certificate's subject")
        _verifySignature(server[0], ac)
        if when < ac.notBefore:
            raise ACError("the AC is not valid yet")
        if when >= ac.notAfter:
            raise ACError("the AC expired")
        # RFC 5755 names the holder by its issuer and serial; the VOMS C
        # library (voms-proxy-init, voms-proxy-fake) writes the holder's
        # own subject with its serial: either names the end-entity
        # certificate of a verified chain.
        names = (holder.issuer.public_bytes(), holder.subject.public_bytes())
        if ac.holderIssuer not in names or ac.holderSerial != holder.serial_number:
            raise ACError("the AC holder is not the proxy's end-entity certificate")
        fqans = []
        for text in ac.fqans:
            try:
                fqan = parseFqan(text)
            except ValueError as e:
                raise ACError(str(e))
            if fqan.vo != vo:
                raise ACError("FQAN {} is outside VO {}".format(text, vo))
            fqans.append(fqan)
        start = max([ac.notBefore] + [c.not_valid_before_utc for c in server])
        end = min([ac.notAfter] + [c.not_valid_after_utc for c in server])
        return fqans, start.timestamp(), end.timestamp()


class VomsAttributes:
    """
    Reads callers' FQANs from their verified chains, with a reloadable
    L{VomsTrust} (a provider of the credential reloader's interface:
    C{prepareReload}, C{install}, C{describe}, C{kind}).

    @ivar clock: an L{twisted.internet.interfaces.IReactorTime}.
    """

    log = Logger()
    kind = "VOMS directory"
    maxLogged = 1024
    maxCached = 4096

    def __init__(self, vomsdir, caDir, clock):
        self.vomsdir = vomsdir
        self.caDir = caDir
        self.clock = clock
        self.trust = VomsTrust()
        self._logged = set()
        # Chains whose every AC was granted: (fqans, start, end), so that a
        # client's next connections cost no signature check.
        self._granted = {}
        self._stamp = None

    def _stampNow(self):
        stamp = []
        for root in (self.vomsdir, self.caDir):
            for dirpath, dirs, files in os.walk(root):
                for name in sorted(files) + sorted(dirs):
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue
                    stamp.append((dirpath, name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(stamp))

    def load(self):
        """
        Read the directories now (blocking: at startup).

        @raise CredentialError: one cannot be read.
        """
        self.install(self.prepareReload(force=True))

    def prepareReload(self, force=False):
        """
        Read the directories if they changed (in a thread).

        @return: what L{install} takes, or C{None} if nothing changed.
        """
        stamp = self._stampNow()
        if not force and stamp == self._stamp:
            return None
        return stamp, VomsTrust.load(self.vomsdir, self.caDir)

    def install(self, prepared):
        """
        Use what L{prepareReload} read.
        """
        self._stamp, self.trust = prepared
        self._logged.clear()
        self._granted.clear()

    def describe(self):
        """
        One line for the log.
        """
        return "VOMS directory {} ({} servers)".format(self.vomsdir, len(self.trust.lsc))

    def _refused(self, ac, why):
        authority = _printable(ac.authority if ac is not None else "?")
        why = _printable(why)
        key = (authority, why)
        if key in self._logged or len(self._logged) >= self.maxLogged:
            return
        self._logged.add(key)
        self.log.warn("VOMS AC from {authority} grants nothing: {why}",
                      authority=authority, why=why)

    def fqansOf(self, chain):
        """
        The FQANs the ACs of a verified chain grant.

        @param chain: the verified chain, leaf first.
        @return: C{(fqans, until)}: a tuple of L{jobmon.fqan.FQAN}, no
            duplicates, in the order the ACs list them, and the POSIX time
            the first of the ACs granting them expires (C{None} if none).
        """
        now = self.clock.seconds()
        when = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        chain = [asCryptography(c) for c in chain]
        proxies, holder = [], None
        for cert in chain:
            try:
                if proxyInfoOf(cert) is None:
                    holder = cert
                    break
            except ValueError:
                return (), None
            proxies.append(cert)
        if holder is None:
            return (), None
        carried = [_acExtension(p) for p in proxies]
        if not any(carried):
            return (), None
        key = hashlib.sha256(b"\0".join(
            [holder.public_bytes(Encoding.DER)] + [e or b"" for e in carried])).digest()
        cached = self._granted.get(key)
        if cached is not None and cached[1] <= now < cached[2]:
            return cached[0], cached[2]
        fqans, start, until, refused = [], None, None, False
        for proxy in proxies:
            try:
                acs = acsOf(proxy)
            except (ACError, ValueError) as e:
                self._refused(None, "malformed VOMS extension: {}".format(e))
                refused = True
                continue
            for ac in acs:
                try:
                    granted, acStart, acEnd = self.trust.verify(ac, holder, when)
                except ACError as e:
                    self._refused(ac, str(e))
                    refused = True
                    continue
                except Exception as e:
                    # Deny on anything unforeseen in hostile input.
                    self._refused(ac, "cannot be checked: {}".format(type(e).__name__))
                    refused = True
                    continue
                start = acStart if start is None else max(start, acStart)
                until = acEnd if until is None else min(until, acEnd)
                fqans.extend(f for f in granted if f not in fqans)
        fqans = tuple(fqans)
        if fqans and not refused:
            if len(self._granted) >= self.maxCached:
                self._granted.pop(next(iter(self._granted)))
            self._granted[key] = (fqans, start, until)
        return fqans, until


def _acExtension(cert):
    """
    The raw VOMS AC extension of a certificate, or C{None}.
    """
    try:
        return cert.extensions.get_extension_for_oid(VOMS_AC_EXTENSION).value.value
    except x509.ExtensionNotFound:
        return None


def heldFqans(identity, now):
    """
    The FQANs an identity holds at time C{now} (POSIX seconds): none once
    its ACs expired.
    """
    fqans = getattr(identity, "fqans", ())
    until = getattr(identity, "fqansUntil", None)
    if until is not None and now >= until:
        return ()
    return fqans

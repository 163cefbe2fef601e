"""
Test VOMS credentials: a VOMS server certificate from the test PKI, the
C{.lsc} files of a VOMS directory, RFC 5755 attribute certificates (ACs)
as a VOMS server signs them, and proxies that carry them, as
C{voms-proxy-init} makes them.  Test-time only; the DER is written by hand
(as C{voms-proxy-fake} from Debian's C{voms-clients} would, without needing
it), so that tests can also make the ACs a server must refuse: forged,
expired, for another holder, for another VO.
"""

import datetime
import os
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from jobmon.certificates import dnOf
from jobmon.devtools.authority import makeHostCert
from jobmon.devtools.certs import readCertificates, readPrivateKey
from jobmon.devtools.proxies import _derInteger, _derOID, _derTLV, makeProxy

VOMS_AC_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
VOMS_ATTRIBUTE = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.4")
AC_CERTS = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.10")
_SHA256_RSA = x509.ObjectIdentifier("1.2.840.113549.1.1.11")
_SHA256_ECDSA = x509.ObjectIdentifier("1.2.840.10045.4.3.2")
_NO_REV_AVAIL = x509.ObjectIdentifier("2.5.29.56")

DEFAULT_VOMS_HOST = "voms.jobmon-test.example"
DEFAULT_VOMS_PORT = 15000


def _seq(*parts):
    return _derTLV(0x30, b"".join(parts))


def _generalNames(name):
    """
    GeneralNames holding one directoryName.
    """
    return _seq(_derTLV(0xA4, name.public_bytes()))


def _time(when):
    return _derTLV(0x18, when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")
                   .encode("ascii"))


def _extension(oid, value, critical=False):
    return _seq(_derOID(oid), _derTLV(0x01, b"\xff") if critical else b"",
                _derTLV(0x04, value))


def encodeAC(
    holder,
    serverCert,
    serverKey,
    vo,
    fqans,
    host=DEFAULT_VOMS_HOST,
    port=DEFAULT_VOMS_PORT,
    notBefore=None,
    notAfter=None,
    hours=12,
    issuerName=None,
    certs=None,
    criticalExtension=None,
):
    """
    Make the DER of a VOMS AC.

    @param holder: the holder certificate (the user's end-entity certificate).
    @param serverCert: the VOMS server's certificate, carried in the AC.
    @param serverKey: the key that signs (another than the server's makes
        a forged AC).
    @param fqans: the FQAN strings.
    @param issuerName: the AC's issuer name [default: the server's subject].
    @param certs: the certificates carried [default: C{serverCert}].
    @param criticalExtension: a dotted OID to add as an unknown critical
        extension.
    """
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    notBefore = notBefore or now - datetime.timedelta(minutes=5)
    notAfter = notAfter or now + datetime.timedelta(hours=hours)
    isRSA = isinstance(serverKey, rsa.RSAPrivateKey)
    algorithm = _seq(_derOID(_SHA256_RSA), b"\x05\x00") if isRSA else _seq(
        _derOID(_SHA256_ECDSA))
    authority = "{}://{}:{}".format(vo, host, port).encode()
    attribute = _seq(
        _derOID(VOMS_ATTRIBUTE),
        _derTLV(0x31, _seq(
            _derTLV(0xA0, _derTLV(0x86, authority)),
            _seq(*[_derTLV(0x04, f.encode()) for f in fqans]),
        )),
    )
    carried = [serverCert] if certs is None else list(certs)
    extensions = [
        _extension(AC_CERTS, _seq(_seq(*[c.public_bytes(Encoding.DER) for c in carried]))),
        _extension(_NO_REV_AVAIL, b"\x05\x00"),
    ]
    if criticalExtension is not None:
        extensions.append(
            _extension(x509.ObjectIdentifier(criticalExtension), b"\x05\x00", critical=True))
    info = _seq(
        _derInteger(1),
        _seq(_derTLV(0xA0, _generalNames(holder.issuer) + _derInteger(holder.serial_number))),
        _derTLV(0xA0, _generalNames(issuerName or serverCert.subject)),
        algorithm,
        _derInteger(secrets.randbits(64)),
        _seq(_time(notBefore), _time(notAfter)),
        _seq(attribute),
        _seq(*extensions),
    )
    if isRSA:
        signature = serverKey.sign(info, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = serverKey.sign(info, ec.ECDSA(hashes.SHA256()))
    return _seq(info, algorithm, _derTLV(0x03, b"\x00" + signature))


def acExtension(acs):
    """
    The proxy extension carrying C{acs} (DER ACs), as C{(extension,
    critical)} for L{jobmon.devtools.proxies.makeProxy}.
    """
    return x509.UnrecognizedExtension(VOMS_AC_EXTENSION, _seq(_seq(*acs))), False


def makeVomsServer(ca, directory, host=DEFAULT_VOMS_HOST, keyType="rsa"):
    """
    Make a VOMS server's certificate and key from the test CA, in
    C{directory} (C{vomscert.pem}, C{vomskey.pem}).

    @return: C{(certificate, key)} (C{cryptography}).
    """
    os.makedirs(directory, exist_ok=True)
    certPath = os.path.join(directory, "vomscert.pem")
    keyPath = os.path.join(directory, "vomskey.pem")
    makeHostCert(ca, certPath, keyPath, names=[host], keyType=keyType)
    return readCertificates(certPath)[0], readPrivateKey(keyPath)


def writeLsc(vomsdir, vo, serverCert, host=DEFAULT_VOMS_HOST, dns=None):
    """
    Write C{<vomsdir>/<vo>/<host>.lsc} naming C{serverCert} (its subject,
    then its issuer), or the lines C{dns}.
    """
    os.makedirs(os.path.join(vomsdir, vo), exist_ok=True)
    lines = dns or [dnOf(serverCert), dnOf(serverCert.issuer)]
    with open(os.path.join(vomsdir, vo, host + ".lsc"), "w") as f:
        f.write("".join(line + "\n" for line in lines))


def makeVomsProxy(certPath, keyPath, outPath, acs, **kwargs):
    """
    Write a proxy of the user credential C{certPath}/C{keyPath} carrying
    the DER ACs C{acs} (see L{encodeAC}), as C{voms-proxy-init} does.
    """
    return makeProxy(certPath, keyPath, outPath, extensions=[acExtension(acs)], **kwargs)

"""
What every certificate of the test PKI shares: the PEM files it is written
to and read back from, the start-time slack (L{CLOCK_SKEW}), the key usage
of end-entity and proxy certificates, and L{PKIError} for unusable input.

Only the standard library and C{cryptography} are used: no Twisted.
"""

import datetime
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

CLOCK_SKEW = datetime.timedelta(minutes=5)
"""How far in the past new certificates start, so that a peer whose clock
is a little behind does not see them as not yet valid."""

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)


class PKIError(Exception):
    """
    A problem with the caller's input (a missing certificate in a file, a
    key that does not match, an expired issuer), described in one line.
    """


class EncryptedKeyError(PKIError):
    """
    The private key is encrypted and no (or a wrong) pass phrase was given.
    """


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

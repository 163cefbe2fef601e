"""
The job daemon's TLS: its proxy file (or certificate) as client credential,
the server checked against the CA directory and its host name.
"""

import os
import time

from OpenSSL import crypto
from twisted.internet import ssl
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from jobmon.certificates import CredentialError, caCertificates, readPEMFile


def clientCredential(path):
    """
    Load a client credential: a proxy file (proxy certificate, key, chain) or
    a single file holding a certificate and its key.

    @return: C{(privateCertificate, extraChain)} for
        L{twisted.internet.ssl.optionsForClientTLS}.
    @raise CredentialError: the file is missing, has no key, or the key does
        not match.
    """
    certs, key = readPEMFile(path)
    if key is None:
        raise CredentialError("{} holds no private key".format(path))
    try:
        private = ssl.PrivateCertificate.fromCertificateAndKeyPair(
            ssl.Certificate.loadPEM(certs[0]), ssl.KeyPair.load(key, crypto.FILETYPE_PEM)
        )
    except Exception as e:
        raise CredentialError("invalid credential {}: {}".format(path, e))
    chain = [ssl.Certificate.loadPEM(c).original for c in certs[1:]]
    return private, chain


def credentialExpiry(path):
    """
    When the credential in C{path} stops being valid: the earliest
    C{notAfter} of its certificates (a proxy cannot outlive its chain).

    @return: seconds since the epoch.
    @raise CredentialError: the file cannot be read or holds no certificate.
    """
    from cryptography import x509

    certs, _ = readPEMFile(path)
    return min(
        x509.load_pem_x509_certificate(c).not_valid_after_utc.timestamp() for c in certs
    )


def clientOptions(hostname, caDir, credentialPath):
    """
    TLS options for connecting to the JobMon server as a job daemon.

    @param hostname: the server's name as in its URL (a DNS name or an IP
        address); the server certificate must match it.
    @param credentialPath: the proxy or certificate file to present, or
        C{None} for none.
    """
    trust = ssl.trustRootFromCertificates(caCertificates(caDir))
    if credentialPath is None:
        # A daemon with a bearer token shows no certificate.
        return ssl.optionsForClientTLS(hostname, trustRoot=trust)
    private, chain = clientCredential(credentialPath)
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=trust,
        clientCertificate=private,
        extraCertificateOptions={"extraCertChain": chain},
    )


@implementer(IPolicyForHTTPS)
class CredentialPolicy:
    """
    An L{IPolicyForHTTPS} that presents the job's credential and trusts the
    CA directory.

    The credential file is read again when it changes on disk, so that a
    renewed proxy is used without a restart.  With no credential file
    (C{credentialPath} C{None}: a daemon with a bearer token), it only
    trusts the CA directory.
    """

    log = Logger()

    def __init__(self, caDir, credentialPath):
        self.caDir = caDir
        self.credentialPath = credentialPath
        self._cache = {}

    def _stamp(self):
        try:
            st = os.stat(self.credentialPath)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def creatorForNetloc(self, hostname, port):
        """
        Return connection options for C{hostname}.

        @raise CredentialError: the credential is missing, invalid, or
            expired (the message says when, and that a renewed file is
            picked up without a restart).
        """
        host = hostname.decode("ascii") if isinstance(hostname, bytes) else hostname
        if self.credentialPath is None:
            if host not in self._cache:
                self._cache[host] = clientOptions(host, self.caDir, None)
            return self._cache[host]
        stamp = self._stamp()
        cached = self._cache.get(host)
        if cached is None or cached[0] != stamp:
            notAfter = credentialExpiry(self.credentialPath)
            cached = (stamp, clientOptions(host, self.caDir, self.credentialPath), notAfter)
            self._cache[host] = cached
            left = notAfter - time.time()
            if 0 < left < 3600:
                self.log.warn(
                    "credential {path} expires in {minutes:.0f} minutes; renew it "
                    "(the new file is picked up without a restart)",
                    path=self.credentialPath,
                    minutes=left / 60,
                )
        if cached[2] <= time.time():
            raise CredentialError(
                "credential {} expired at {} UTC; renew it (the new file is picked up "
                "without a restart)".format(
                    self.credentialPath,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(cached[2])),
                )
            )
        return cached[1]

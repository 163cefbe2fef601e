"""
Throwaway test PKIs: a CA, a host certificate, user certificates and
RFC 3820 proxy certificates.

This module is both a library, used by the tests and the demo to make keys
and certificates at run time (no key is ever committed), and the console
script C{jobmon-pki}::

    jobmon-pki init DIR [--users alice,bob] [--host-names localhost,::1]
    jobmon-pki proxy --cert usercert.pem --key userkey.pem --out x509up

The layout follows what grid middleware expects: the CA certificate in an
OpenSSL hashed directory (usable as C{X509_CERT_DIR} or C{capath}), user
credentials as C{usercert.pem}/C{userkey.pem}, and proxies in the
C{x509up} layout (proxy certificate, its unencrypted key, then the issuer
chain), which both C{ssl.SSLContext.load_cert_chain} and pyOpenSSL load.

The module gathers the public names of its parts:
L{jobmon.devtools.authority} (the CA, host and user certificates, the
whole PKI), L{jobmon.devtools.proxies} (RFC 3820 proxies),
L{jobmon.devtools.certs} (PEM files, L{PKIError}) and
L{jobmon.devtools.pkicli} (the command line), with the certificate facts
of L{jobmon.certificates} that tests and tools use.

Only the standard library, C{cryptography} and (for the subject hash of
the hashed directory) pyOpenSSL are used: no Twisted.
"""

import sys

from jobmon.certificates import (  # noqa: F401 (re-exported for tests and tools)
    POLICY_INDEPENDENT,
    POLICY_INHERIT_ALL,
    POLICY_LIMITED,
    POLICY_NAMES,
    PROXY_CERT_INFO,
    SHORT_NAMES,
    ProxyInfo,
    asCryptography,
    dnOf,
    parseProxyCertInfo,
    proxyInfoOf,
)
from jobmon.devtools.authority import (  # noqa: F401 (re-exported)
    BASE_NAME,
    CA,
    DEFAULT_HOST_NAMES,
    DEFAULT_USERS,
    PKI,
    UserCredential,
    addHashedCert,
    commonNameFor,
    initPKI,
    loadCA,
    makeCA,
    makeCRL,
    makeHostCert,
    makeUserCert,
    subjectHash,
)
from jobmon.devtools.certs import (  # noqa: F401 (re-exported)
    CLOCK_SKEW,
    EncryptedKeyError,
    PKIError,
    readCertificates,
    readPrivateKey,
)
from jobmon.devtools.pkicli import main
from jobmon.devtools.proxies import encodeProxyCertInfo, makeProxy  # noqa: F401 (re-exported)

if __name__ == "__main__":
    sys.exit(main())

"""
The job daemon's TLS: its proxy file (or certificate) as client credential,
the server checked against the CA directory and its host name.

The files are read, and the TLS options built, in a thread: once when the
daemon starts and again when they change on disk (looked at every
L{CREDENTIAL_RECHECK} seconds, also in a thread).  A connection only looks
up options built beforehand, so the reactor never waits for a disk.
"""

import os
import re
import time

from attrs import define, frozen
from cryptography import x509
from OpenSSL import crypto
from twisted.application.service import Service
from twisted.internet import defer, ssl
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from jobmon.certificates import CredentialError, caCertificates, readPEMFile
from jobmon.credentials import isEncryptedKey
from jobmon.deferreds import threadRunner

CREDENTIAL_RECHECK = 15.0
"""Seconds between two looks at the credential file and the CA directory."""

EXPIRY_WARNING = 3600.0
"""A credential with less than this many seconds left is warned about."""

_CA_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
"""The CA directory's files L{caCertificates} reads (C{<hash>.<n>})."""


@frozen
class ClientCredential:
    """
    A client credential as read from its file.

    @ivar certificate: the L{ssl.PrivateCertificate} presented.
    @ivar chain: the rest of the chain (pyOpenSSL C{X509}s), as
        C{extraCertChain}.
    @ivar notAfter: when it stops being valid, in seconds since the epoch:
        the earliest C{notAfter} of its certificates (a proxy cannot
        outlive its chain).
    """

    certificate: ssl.PrivateCertificate
    chain: tuple
    notAfter: float


def loadCredential(path):
    """
    Load a client credential (see L{clientCredential}), reading its file
    once: a file being renewed is never read half old, half new.

    @rtype: L{ClientCredential}
    @raise CredentialError: the file is missing, has no key, or holds an
        invalid certificate or key.
    """
    certs, key = readPEMFile(path)
    if key is None:
        raise CredentialError("{} holds no private key".format(path))
    if isEncryptedKey(key):
        raise CredentialError(
            "the key in {} is encrypted and the daemon takes no pass phrase: give it a "
            "proxy (voms-proxy-init or grid-proxy-init makes one with a plain key)".format(path)
        )
    try:
        private = ssl.PrivateCertificate.fromCertificateAndKeyPair(
            ssl.Certificate.loadPEM(certs[0]), ssl.KeyPair.load(key, crypto.FILETYPE_PEM)
        )
        chain = tuple(ssl.Certificate.loadPEM(c).original for c in certs[1:])
        notAfter = min(
            x509.load_pem_x509_certificate(c).not_valid_after_utc.timestamp() for c in certs
        )
    except Exception as e:
        raise CredentialError("invalid credential {}: {}".format(path, e))
    return ClientCredential(private, chain, notAfter)


def clientCredential(path):
    """
    Load a client credential: a proxy file (proxy certificate, key, chain) or
    a single file holding a certificate and its key.

    @return: C{(privateCertificate, extraChain)} for
        L{twisted.internet.ssl.optionsForClientTLS}.
    @raise CredentialError: the file is missing, has no key, or the key does
        not match.
    """
    credential = loadCredential(path)
    return credential.certificate, list(credential.chain)


def clientOptions(hostname, trust, credential):
    """
    TLS options for connecting to the JobMon server as a job daemon; no
    file is read.

    @param hostname: the server's name as in its URL (a DNS name or an IP
        address); the server certificate must match it.
    @param trust: the trust root made of the CA directory.
    @param credential: the L{ClientCredential} to present, or C{None} for
        none.
    """
    if credential is None:
        # A daemon with a bearer token shows no certificate.
        return ssl.optionsForClientTLS(hostname, trustRoot=trust)
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=trust,
        clientCertificate=credential.certificate,
        extraCertificateOptions={"extraCertChain": list(credential.chain)},
    )


def _fileStamp(path):
    try:
        st = os.stat(path)
    except OSError as e:
        return (path, e.errno)
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


def filesStamp(caDir, credentialPath):
    """
    What the TLS options are built from, as it is on disk now: the identity,
    size and time of the credential file and of the CA directory's
    certificates.  Blocking.

    @param credentialPath: the credential file, or C{None} for none.
    @return: a value that compares equal while nothing changed.
    """
    entries = [_fileStamp(caDir)]
    if credentialPath is not None:
        entries.append(_fileStamp(credentialPath))
    try:
        names = sorted(os.listdir(caDir))
    except OSError:
        names = []
    entries.extend(_fileStamp(os.path.join(caDir, n)) for n in names if _CA_NAME.match(n))
    return tuple(entries)


@define
class _Loaded:
    """
    What one load of the files gave: the TLS options by host name, and
    what more are made of.
    """

    stamp: tuple
    trust: object
    credential: object
    options: dict


def _load(caDir, credentialPath, hostnames, stamp):
    """
    Read the CA directory and the credential and build the options of each
    host name.  Blocking.

    @rtype: L{_Loaded}
    @raise CredentialError: a file is missing or invalid.
    """
    try:
        trust = ssl.trustRootFromCertificates(caCertificates(caDir))
    except CredentialError:
        raise
    except Exception as e:
        raise CredentialError("invalid CA certificate in {}: {}".format(caDir, e))
    credential = None if credentialPath is None else loadCredential(credentialPath)
    options = {host: clientOptions(host, trust, credential) for host in hostnames}
    return _Loaded(stamp, trust, credential, options)


def _hostName(hostname):
    return hostname.decode("ascii") if isinstance(hostname, bytes) else hostname


@implementer(IPolicyForHTTPS)
class CredentialPolicy(Service):
    """
    An L{IPolicyForHTTPS} that presents the job's credential and trusts the
    CA directory; as a service, it keeps its TLS options up to date.

    When started, it reads the files and builds the options in a thread,
    then looks every C{interval} seconds (in a thread too) whether the
    credential file or the CA directory changed, and builds them again if
    so: a renewed proxy is used without a restart.  A load that fails is
    logged, the last good options kept, and it is tried again at the next
    look.  With no credential file (C{credentialPath} C{None}: a daemon with
    a bearer token), it only trusts the CA directory.

    L{creatorForNetloc} only looks the options up in memory.

    @ivar hostnames: the server names options are built for ahead (a name
        asked for later is added).
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        caDir,
        credentialPath,
        hostnames=(),
        interval=CREDENTIAL_RECHECK,
        runInThread=None,
    ):
        """
        @param reactor: an C{IReactorTime} (timer, expiry checks); also an
            C{IReactorThreads} unless C{runInThread} is given.
        @param runInThread: like C{deferToThread}: runs a blocking callable
            and returns a L{Deferred} of its result.
        """
        self.reactor = reactor
        self.caDir = caDir
        self.credentialPath = credentialPath
        self.hostnames = [_hostName(h) for h in hostnames]
        self.interval = interval
        self.runInThread = runInThread or threadRunner(reactor)
        self._loaded = None
        self._failure = None
        self._checking = None
        self._loop = None
        self._waiting = []

    def _what(self):
        if self.credentialPath is None:
            return "CA directory {}".format(self.caDir)
        return "{} and CA directory {}".format(self.credentialPath, self.caDir)

    def startService(self):
        """
        Load the files now (in a thread), then look for changes every
        C{interval} seconds.
        """
        super().startService()
        self._loop = LoopingCall(self.check)
        self._loop.clock = self.reactor
        # check never fails; should it, the loop stops: say so.
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("TLS credential checks stopped", f)
        )

    def stopService(self):
        """
        Stop looking for changes; wait for a look under way.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._checking is not None:
            done = defer.Deferred()
            self._checking.addBoth(lambda result: done.callback(None) or result)
            return done
        return None

    def whenLoaded(self):
        """
        Wait for the first load: until then no connection can be made.

        @return: a L{Deferred} firing with C{None} once the files were
            loaded or failed to (connections then fail with the reason
            until a load succeeds).
        """
        if self._loaded is not None or self._failure is not None:
            return defer.succeed(None)
        d = defer.Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def loadNow(self):
        """
        Load the files in the calling thread, for tools that set up before
        the reactor runs; the daemon starts the service instead.

        @raise CredentialError: a file is missing or invalid.
        """
        stamp = filesStamp(self.caDir, self.credentialPath)
        self._install(_load(self.caDir, self.credentialPath, self.hostnames, stamp))

    def check(self):
        """
        Look (in a thread) whether the files changed since the options were
        built, and if so build new ones (in the thread too) and use them.

        @return: a L{Deferred} that fires (with C{None}, never failing) when
            done.
        """
        if self._checking is not None:
            return self._checking
        built = None if self._loaded is None else self._loaded.stamp
        d = self.runInThread(self._prepare, built, tuple(self.hostnames))
        d.addCallbacks(self._install, self._failed)
        d.addErrback(lambda f: self.log.failure("cannot use new TLS credentials", f))
        self._checking = d
        d.addBoth(self._checked)
        return d

    def _prepare(self, built, hostnames):
        # In a thread.
        stamp = filesStamp(self.caDir, self.credentialPath)
        if stamp == built:
            return None
        return _load(self.caDir, self.credentialPath, hostnames, stamp)

    def _checked(self, result):
        self._checking = None

    def _install(self, loaded):
        if loaded is None:
            # The files are those the options were built from.
            self._failure = None
            return
        first = self._loaded is None
        self._loaded, self._failure = loaded, None
        if not first:
            self.log.info("TLS credentials reloaded from {what}", what=self._what())
        if loaded.credential is not None:
            left = loaded.credential.notAfter - self.reactor.seconds()
            if 0 < left < EXPIRY_WARNING:
                self.log.warn(
                    "credential {path} expires in {minutes:.0f} minutes; renew it "
                    "(the new file is picked up without a restart)",
                    path=self.credentialPath,
                    minutes=left / 60,
                )
        self._wake()

    def _failed(self, failure):
        if failure.check(CredentialError):
            why = str(failure.value)
        else:
            why = "{}: {}".format(type(failure.value).__name__, failure.getErrorMessage())
        keeping = (
            "no TLS connection until they load"
            if self._loaded is None
            else "keeping the last good ones"
        )
        # The same failure of the same files is said once, not at every
        # look; a different one, or one after a success, is said again.
        if why != self._failure:
            if failure.check(CredentialError):
                self.log.error(
                    "cannot load TLS credentials from {what}: {why}; {keeping}, "
                    "trying again every {interval:g} s",
                    what=self._what(), why=why, keeping=keeping, interval=self.interval,
                )
            else:
                self.log.failure(
                    "cannot load TLS credentials from {what}; {keeping}, trying again "
                    "every {interval:g} s",
                    failure, what=self._what(), keeping=keeping, interval=self.interval,
                )
        self._failure = why
        self._wake()

    def _wake(self):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def creatorForNetloc(self, hostname, port):
        """
        Return connection options for C{hostname}, built beforehand; no file
        is read.

        @raise CredentialError: the credential could not be loaded, or it
            expired (the message says when, and that a renewed file is
            picked up without a restart).
        """
        loaded = self._loaded
        if loaded is None:
            raise CredentialError(
                self._failure or "TLS credentials from {} not loaded yet".format(self._what())
            )
        if loaded.credential is not None and loaded.credential.notAfter <= self.reactor.seconds():
            raise CredentialError(
                "credential {} expired at {} UTC; renew it (the new file is picked up "
                "without a restart)".format(
                    self.credentialPath,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(loaded.credential.notAfter)),
                )
            )
        host = _hostName(hostname)
        options = loaded.options.get(host)
        if options is None:
            # A name not known ahead: build from what is loaded (memory
            # only), and keep it for the next loads.
            options = loaded.options[host] = clientOptions(host, loaded.trust, loaded.credential)
            self.hostnames.append(host)
        return options

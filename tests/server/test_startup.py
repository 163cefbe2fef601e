"""
Tests for the server's (and the daemon's) start-up messages: option and
configuration mistakes under C{twistd}, C{--version}, C{--admin} values,
ports that cannot be had, host keys that cannot be read or are encrypted.
"""

import errno
import io
import os
import shutil
import socket
import sys
import tempfile

from cryptography.hazmat.primitives import serialization
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from jobmon import __version__
from jobmon.certificates import CredentialError
from jobmon.credentials import whyUnreadable
from jobmon.devtools import pki
from jobmon.server.options import Options, checkAdmin
from jobmon.server.service import ServerService, StartupError, cannotListen, probePort
from jobmon.server.tls import ServerContextFactory
from jobmon.worker.daemon import Options as DaemonOptions
from jobmon.worker.tls import loadCredential

NOBODY = 65534
"""The user id a test takes as root to meet a refused permission."""


class UnderTwistd:
    """
    Stands for twistd's own options: a plugin's options with a C{parent}
    are parsed by C{twistd}.
    """


def parsedByTwistd(optionsClass, args):
    """
    Parse C{args} as twistd parses a plugin's options.
    """
    options = optionsClass()
    options.parent = UnderTwistd()
    options.parseOptions(args)
    return options


class OneLineTests(SynchronousTestCase):
    """
    Under twistd a mistake is one line and exit status 1, not twistd's
    usage text.
    """

    def test_badConfigValue(self):
        """
        A bad value in the configuration file: the program, the file, the
        key.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("https-port = 70000\n")
        error = self.assertRaises(SystemExit, parsedByTwistd, Options, ["--config", path])
        self.assertEqual(
            str(error), "jobmon-server: {}: https-port = 70000: not a port number".format(path)
        )

    def test_badTOML(self):
        """
        A TOML syntax error is one line too.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("https-port = [\n")
        error = self.assertRaises(SystemExit, parsedByTwistd, Options, ["--config", path])
        self.assertTrue(str(error).startswith("jobmon-server: {}: TOML syntax error".format(path)))
        self.assertNotIn("\n", str(error))

    def test_unknownOption(self):
        """
        An unknown option says where the list of options is.
        """
        error = self.assertRaises(SystemExit, parsedByTwistd, DaemonOptions, ["--bogus"])
        self.assertEqual(
            str(error),
            "jobmon-daemon: option --bogus not recognized "
            "(twistd jobmon-daemon --help lists the options)",
        )

    def test_alone(self):
        """
        Parsed on its own (tests, C{etc/jobmon.tac}), a mistake stays a
        L{usage.UsageError}.
        """
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--https-port", "x"])


class VersionTests(SynchronousTestCase):
    """
    C{--version} prints JobMon's version.
    """

    def test_version(self):
        """
        Both programs print their name and JobMon's version, and exit 0.
        """
        for optionsClass, name in ((Options, "jobmon-server"), (DaemonOptions, "jobmon-daemon")):
            out = io.StringIO()
            self.patch(sys, "stdout", out)
            error = self.assertRaises(SystemExit, parsedByTwistd, optionsClass, ["--version"])
            self.assertEqual(error.code, 0)
            self.assertEqual(out.getvalue(), "{} (JobMon) {}\n".format(name, __version__))


class AdminTests(SynchronousTestCase):
    """
    C{--admin} takes a DN in slash form (or a token identity).
    """

    def test_accepted(self):
        """
        Slash-form DNs (a value with C{/} too) and token identities pass.
        """
        for dn in ("/DC=org/DC=example/CN=Site Admin", "/C=DE/O=Grid/CN=Jane+UID=jd",
                   "/DC=ch/OU=computers/CN=robot/host.example.org",
                   "https://issuer.example#admin-sub"):
            self.assertEqual(checkAdmin(dn), dn)
        options = Options()
        options.parseOptions(["--admin", "/CN=One", "--admin", "/CN=Two"])
        self.assertEqual(options["admin"], ["/CN=One", "/CN=Two"])

    def test_refused(self):
        """
        Anything else is refused, saying what a DN looks like.
        """
        for value in ("admin", "", "/", "//CN=x", "/C=DE//CN=x", "CN", " /CN=x"):
            self.assertRaises(usage.UsageError, checkAdmin, value)
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--admin", "alice"])
        self.assertIn("'alice' is not a DN", str(error))
        self.assertIn("/DC=org/DC=example/CN=Site Admin", str(error))

    def test_issuerScoped(self):
        """
        A DN may name its issuing CA after C{|}, and escape a C{/} inside a
        value; a malformed DN says what is wrong with it.
        """
        for dn in ("/DC=org/CN=Admin|/DC=org/CN=Example CA",
                   "/DC=org/CN=Admin | /DC=org/CN=Example CA",
                   "/DC=org/OU=People\\/CN=Odd"):
            self.assertEqual(checkAdmin(dn), dn)
        error = self.assertRaises(usage.UsageError, checkAdmin, "/CN=Admin|CN=CA")
        self.assertIn("is not a DN; a DN in slash form starts with /", str(error))
        error = self.assertRaises(usage.UsageError, checkAdmin, "/CN=Admin/CN=")
        self.assertIn("is not a DN; CN has no value", str(error))

    def test_rfc4514(self):
        """
        An RFC 4514 DN is refused with its slash form as a hint.
        """
        error = self.assertRaises(usage.UsageError, checkAdmin, "CN=Site Admin,O=Example,C=DE")
        self.assertIn("in slash form this is '/C=DE/O=Example/CN=Site Admin'", str(error))

    def test_inFile(self):
        """
        In a configuration file, the message names the file.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('admin = ["root"]\n')
        error = self.assertRaises(SystemExit, parsedByTwistd, Options, ["--config", path])
        self.assertTrue(str(error).startswith(
            'jobmon-server: {}: admin = ["root"]: --admin \'root\' is not a DN'.format(path)))


class PortTests(SynchronousTestCase):
    """
    Ports that cannot be had are named with their listener.
    """

    def service(self):
        """
        A server whose listeners are only addresses.
        """
        service = ServerService(reactor=None, hub=None)
        service.addresses = {
            "https": ("tcp", "127.0.0.1", 8443),
            "wake": ("tcp", "127.0.0.1", 8444),
            "metrics": ("tcp", "127.0.0.1", 9100),
        }
        return service

    def test_checkPorts(self):
        """
        L{ServerService.checkPorts} tries each address and stops at the
        first that fails.
        """
        tried = []

        def probe(kind, interface, port):
            tried.append(port)
            if port == 8444:
                raise OSError(errno.EADDRINUSE, "Address already in use")

        error = self.assertRaises(StartupError, self.service().checkPorts, probe)
        self.assertEqual(
            str(error),
            "cannot listen on 127.0.0.1:8444 (TCP wake, --wake-port): address already in use",
        )
        self.assertEqual(tried, [8443, 8444])

    def test_reasons(self):
        """
        A privileged port and an address not of this host say what to do.
        """
        self.assertEqual(
            cannotListen("https", "0.0.0.0", 443, OSError(errno.EACCES, "Permission denied")),
            "cannot listen on 0.0.0.0:443 (XML-RPC, --https-port): permission denied "
            "(a port below 1024 needs root or CAP_NET_BIND_SERVICE)",
        )
        self.assertEqual(
            cannotListen("metrics", "10.9.9.9", 9100,
                         OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")),
            "cannot listen on 10.9.9.9:9100 (metrics, --metrics-port): cannot assign "
            "requested address (10.9.9.9 is not an address of this host)",
        )

    def test_probePort(self):
        """
        L{probePort} fails on a port something listens on, and leaves a
        free one free.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        error = self.assertRaises(OSError, probePort, "tcp", "127.0.0.1", port)
        self.assertEqual(error.errno, errno.EADDRINUSE)
        taken.close()
        probePort("tcp", "127.0.0.1", port)
        probePort("tcp", "127.0.0.1", port)
        probePort("udp", "127.0.0.1", 0)


class HostKeyTests(SynchronousTestCase):
    """
    A host key that cannot be used says why.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.pki = pki.initPKI(os.path.join(self.base, "pki"), users=("alice",))

    def encrypted(self, source, traditional=False):
        """
        A copy of the key in C{source}, encrypted with a pass phrase.
        """
        with open(source, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        path = os.path.join(self.base, "encrypted.pem")
        with open(path, "wb") as f:
            f.write(key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL if traditional
                else serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ))
        return path

    def test_encryptedHostKey(self):
        """
        An encrypted host key (PKCS#8 or traditional) is refused without
        a pass phrase prompt.
        """
        for traditional in (False, True):
            path = self.encrypted(self.pki.hostKeyPath, traditional)
            ctx = ServerContextFactory(self.pki.hostCertPath, path, self.pki.ca.hashedDir)
            error = self.assertRaises(CredentialError, ctx.load)
            self.assertTrue(str(error).startswith(
                "the host key {} is encrypted and the server takes no pass phrase".format(path)))

    def test_encryptedDaemonKey(self):
        """
        A daemon's credential with an encrypted key says so.
        """
        alice = self.pki.users["alice"]
        key = self.encrypted(alice.keyPath)
        path = os.path.join(self.base, "cred.pem")
        with open(alice.certPath, "rb") as c, open(key, "rb") as k, open(path, "wb") as f:
            f.write(c.read() + k.read())
        error = self.assertRaises(CredentialError, loadCredential, path)
        self.assertIn("is encrypted and the daemon takes no pass phrase", str(error))

    def test_permissionDenied(self):
        """
        A refused permission names the file's owner and mode and the
        process's user.
        """
        path = self.pki.hostKeyPath
        os.chmod(path, 0o640)
        why = whyUnreadable(path, PermissionError(errno.EACCES, "Permission denied"))
        self.assertRegex(
            why,
            r"^permission denied \(owner \S+, mode 0640; this process runs as uid \d+",
        )
        self.assertEqual(
            whyUnreadable(path, FileNotFoundError(errno.ENOENT, "No such file or directory")),
            "no such file or directory",
        )

    def test_unreadableHostKey(self):
        """
        The host key that cannot be read is named as such, with the reason.
        Root reads every file, so as root the load runs with the effective
        user C{nobody} over a copy of the credential in a directory that
        user may enter.
        """
        base = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, base)
        os.chmod(base, 0o755)
        cert, key = os.path.join(base, "hostcert.pem"), os.path.join(base, "hostkey.pem")
        shutil.copy(self.pki.hostCertPath, cert)
        shutil.copy(self.pki.hostKeyPath, key)
        os.chmod(cert, 0o644)
        os.chmod(key, 0)
        ctx = ServerContextFactory(cert, key, self.pki.ca.hashedDir)
        if os.geteuid() == 0:
            os.seteuid(NOBODY)
            try:
                error = self.assertRaises(CredentialError, ctx.load)
            finally:
                os.seteuid(0)
        else:
            error = self.assertRaises(CredentialError, ctx.load)
        self.assertIn("cannot read the host key {}: permission denied (owner ".format(
            key), str(error))

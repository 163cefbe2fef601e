"""
Start-up of real C{twistd} processes: a mistake (bad configuration, a
port in use, an encrypted host key) is one line on the terminal and exit
status 1, in the foreground (C{-n}) and when twistd would detach; and
C{--version} prints JobMon's version.
"""

import json
import os
import re
import signal
import socket
import ssl
import time
import urllib.request

from twisted.trial.unittest import TestCase

from jobmon import __version__
from jobmon.devtools import pki
from tests.support import TestPKI, inThread, spawn, startServer


class StartupTests(TestCase):
    """
    What a person starting the server or the daemon sees on the terminal.
    """

    timeout = 60

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.pki = pki.initPKI(os.path.join(self.base, "pki"), users=())

    def serverArgs(self, *extra):
        """
        The server's options for the test PKI, every port any free one.
        """
        return [
            "jobmon-server", "--interface", "127.0.0.1", "--https-port", "0",
            "--wake-port", "0", "--hostcert", self.pki.hostCertPath,
            "--hostkey", self.pki.hostKeyPath, "--ca-dir", self.pki.ca.hashedDir,
            "--audit-log", os.path.join(self.base, "audit.jsonl"),
            "--history", os.path.join(self.base, "history.sqlite3"),
        ] + list(extra)

    def takenPort(self):
        """
        A port on 127.0.0.1 that something listens on for the test.
        """
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    async def twistd(self, args, detach=False):
        """
        Run twistd with C{args} until it ends.

        @param detach: without C{-n}: twistd would detach (a pid file and a
            log file in the test's directory; a server that did start is
            killed by its pid).
        @return: C{(exit code, output)}, standard output and error together.
        """
        pidFile = os.path.join(self.base, "twistd.pid")
        if detach:
            head = ["--pidfile", pidFile, "--logfile", os.path.join(self.base, "twistd.log")]
        else:
            head = ["-n", "--pidfile="]
        proto = spawn(self, "twistd", head + args, path=self.base)
        code = await proto.whenEnded()
        if detach and os.path.exists(pidFile):
            with open(pidFile) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        return code, proto.output.decode("utf-8", "replace")

    async def assertOneLine(self, args, expected, detach=False):
        """
        twistd with C{args} exits with status 1 after printing one line,
        C{expected}.
        """
        code, output = await self.twistd(args, detach=detach)
        self.assertEqual((code, output), (1, expected + "\n"))

    async def test_portTaken(self):
        """
        A port in use is named with its listener, in the foreground and
        when twistd would detach (which it then does not).
        """
        port = self.takenPort()
        line = (
            "jobmon-server: cannot listen on 127.0.0.1:{} (TCP wake, --wake-port): "
            "address already in use".format(port)
        )
        await self.assertOneLine(self.serverArgs("--wake-port", str(port)), line)
        await self.assertOneLine(self.serverArgs("--wake-port", str(port)), line, detach=True)

    async def test_metricsPortTaken(self):
        """
        The metrics port too.
        """
        port = self.takenPort()
        await self.assertOneLine(
            self.serverArgs("--metrics-port", str(port)),
            "jobmon-server: cannot listen on 127.0.0.1:{} (metrics, --metrics-port): "
            "address already in use".format(port),
            detach=True,
        )

    async def test_badConfig(self):
        """
        A mistake in the configuration file is one line, not twistd's usage.
        """
        path = os.path.join(self.base, "server.toml")
        with open(path, "w") as f:
            f.write('https-port = "x"\n')
        await self.assertOneLine(
            self.serverArgs("--config", path),
            'jobmon-server: {}: https-port must be an integer, not a string ("x")'.format(path),
            detach=True,
        )

    async def test_badOption(self):
        """
        So is an unknown option, with a pointer to the help, for the
        daemon too.
        """
        await self.assertOneLine(
            ["jobmon-daemon", "--no-such-option"],
            "jobmon-daemon: option --no-such-option not recognized "
            "(twistd jobmon-daemon --help lists the options)",
        )

    async def test_encryptedHostKey(self):
        """
        An encrypted host key says so, without asking for a pass phrase.
        """
        from cryptography.hazmat.primitives import serialization

        with open(self.pki.hostKeyPath, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        path = os.path.join(self.base, "encrypted.pem")
        with open(path, "wb") as f:
            f.write(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ))
        code, output = await self.twistd(self.serverArgs("--hostkey", path), detach=True)
        self.assertEqual(code, 1)
        self.assertEqual(output.count("\n"), 1)
        self.assertTrue(output.startswith(
            "jobmon-server: the host key {} is encrypted and the server takes no "
            "pass phrase".format(path)), output)

    async def test_version(self):
        """
        C{--version} prints JobMon's version, for the server and the
        daemon.
        """
        for args in (["jobmon-server", "--version"], ["jobmon-daemon", "--version"]):
            code, output = await self.twistd(args)
            self.assertEqual(
                (code, output), (0, "{} (JobMon) {}\n".format(args[0], __version__))
            )


def tlsHandshakeSeconds(port):
    """
    Try a TLS handshake with 127.0.0.1:C{port}, giving up after 10 s.

    @return: the seconds until the server ended it, and the error.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
        except (OSError, ssl.SSLError) as e:
            return time.monotonic() - start, e
    return time.monotonic() - start, None


class MetricsPortTests(TestCase):
    """
    The plain-HTTP metrics port of a real server.
    """

    timeout = 60

    async def test_httpsAtPlainPort(self):
        """
        C{https://} at the metrics port fails at once (the server closes
        the connection as the ClientHello arrives), and the server logs
        it; C{http://} works.
        """
        tpki = TestPKI(os.path.abspath(self.mktemp()))
        logDir = os.path.join(tpki.base, "logs")
        server = await startServer(self, tpki, "--metrics-port", "0", "--log-dir", logDir)
        text = server.proto.output.decode("utf-8", "replace")
        port = int(re.search(r"metrics on (\d+)", text).group(1))
        seconds, error = await inThread(tlsHandshakeSeconds, port)
        self.assertIsNotNone(error)
        self.assertLess(seconds, 2.0)
        await server.proto.waitFor(r"TLS handshake from 127.0.0.1 on the plain-HTTP metrics port")
        body = await inThread(
            lambda: urllib.request.urlopen(
                "http://127.0.0.1:{}/healthz".format(port), timeout=10).read()
        )
        self.assertEqual(body, b"ok\n")
        # The log file has it as one flat JSON object.
        with open(os.path.join(logDir, "jobmon-server.jsonl")) as f:
            entries = [json.loads(line) for line in f]
        [entry] = [e for e in entries if e["message"].startswith("TLS handshake")]
        self.assertEqual(entry["peer"], "127.0.0.1")
        self.assertEqual((entry["level"], entry["category"]), ("info", "server"))
        self.assertTrue(entry["time"].endswith("Z"))
        self.assertEqual([k for e in entries for k in e if k.startswith("log_")], [])

"""
The installed package: twistd finds the plugins without the source tree on
the path, and the .tac file runs the server.
"""

import os
import shlex
import subprocess

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import ROOT, TWISTD, TestPKI, childEnv, spawn


class PluginTests(SynchronousTestCase):
    """
    The twistd plugins as a site installs them.
    """

    def test_pluginsListed(self):
        """
        C{twistd --help}, run outside the source tree with only the
        installed package, lists both plugins.
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run(
            [TWISTD, "--help"], cwd="/", env=env, capture_output=True, timeout=60
        ).stdout.decode()
        self.assertIn("jobmon-server", out)
        self.assertIn("jobmon-daemon", out)

    def test_badHostKey(self):
        """
        A missing host certificate stops the server at start-up with one
        clear line naming the file.
        """
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "jobmon-server", "--hostcert", "/nonexistent.pem",
             "--ca-dir", "/tmp"],
            env=childEnv(), capture_output=True, timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"cannot read the host certificate /nonexistent.pem: no such file",
                      result.stdout + result.stderr)
        self.assertNotIn(b"Traceback", result.stdout + result.stderr)


class TacTests(TestCase):
    """
    C{etc/jobmon.tac}.
    """

    timeout = 60

    def test_tacRunsServer(self):
        """
        C{twistd -n -y etc/jobmon.tac} runs the server with the options in
        C{JOBMON_SERVER_ARGS}.
        """
        tpki = TestPKI(os.path.abspath(self.mktemp()))
        args = [
            "--interface", "127.0.0.1", "--https-port", "0", "--wake-port", "0",
            "--hostcert", tpki.hostCert, "--hostkey", tpki.hostKey, "--ca-dir", tpki.caDir,
            "--audit-log", os.path.join(tpki.base, "audit.jsonl"),
            "--history", os.path.join(tpki.base, "history.sqlite3"),
        ]
        env = childEnv(JOBMON_SERVER_ARGS=" ".join(shlex.quote(a) for a in args))
        proto = spawn(
            self, "tac", ["-n", "--pidfile=", "-y", os.path.join(ROOT, "etc", "jobmon.tac")],
            env=env,
        )
        return proto.waitFor(r"XML-RPC on \d+, TCP wake on \d+")



"""
C{--version} of every program: C{jobmon-query}, C{jobmon-run} and
C{jobmon-pki} print C{"PROG VERSION"} and exit with status 0.
"""

import io
import sys
from importlib import metadata

from twisted.trial.unittest import SynchronousTestCase

import jobmon
from jobmon.devtools import pki
from jobmon.worker import run
from tests.cli.test_cli import run as runQuery


class VersionTests(SynchronousTestCase):
    """
    L{jobmon.version} and the C{--version} option of each program.
    """

    def test_installed(self):
        """
        The version is the installed package's, from its metadata.
        """
        self.patch(metadata, "version", lambda name: "9.8.7" if name == "jobmon" else None)
        self.assertEqual(jobmon.version(), "9.8.7")

    def test_notInstalled(self):
        """
        Without the package's metadata (a source tree), the version is
        L{jobmon.__version__}.
        """
        def missing(name):
            raise metadata.PackageNotFoundError(name)

        self.patch(metadata, "version", missing)
        self.assertEqual(jobmon.version(), jobmon.__version__)

    def test_query(self):
        """
        C{jobmon-query --version}, also after a command.
        """
        self.patch(metadata, "version", lambda name: "9.8.7")
        self.assertEqual(runQuery(["--version"]), (0, b"jobmon-query 9.8.7\n", ""))

    def test_run(self):
        """
        C{jobmon-run --version}: nothing is run.
        """
        self.patch(metadata, "version", lambda name: "9.8.7")
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        err = io.StringIO()
        self.assertEqual(run.main(["--version"], environ={}, stderr=err), 0)
        self.assertEqual((out.getvalue(), err.getvalue()), ("jobmon-run 9.8.7\n", ""))

    def test_pki(self):
        """
        C{jobmon-pki --version}.
        """
        self.patch(metadata, "version", lambda name: "9.8.7")
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(pki.main(["--version"], stdout=out, stderr=err), 0)
        self.assertEqual((out.getvalue(), err.getvalue()), ("jobmon-pki 9.8.7\n", ""))

    def test_scripts(self):
        """
        The programs with C{--version} tested here are the console scripts
        of C{pyproject.toml}.
        """
        import os
        import tomllib

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "pyproject.toml"), "rb") as f:
            scripts = tomllib.load(f)["project"]["scripts"]
        self.assertEqual(sorted(scripts), ["jobmon-pki", "jobmon-query", "jobmon-run"])

"""
The wheel the package builds holds what a site installs besides the code:
the manual page and the bash completion file of C{jobmon-query}, and the
browser view's assets.
"""

import os
import shutil
import subprocess
import sys
import zipfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import ROOT

OFFLINE = ("No matching distribution", "Could not find a version", "NewConnectionError",
           "Network is unreachable", "Temporary failure in name resolution")
"""What pip says when it cannot fetch the build backend (no package index)."""


class WheelTests(SynchronousTestCase):
    """
    C{pip wheel} of the source tree.
    """

    _built = None

    def wheel(self):
        """
        Build the wheel of a copy of the source tree, once for these tests.

        @return: its path.
        """
        if WheelTests._built is not None:
            return WheelTests._built
        tree = os.path.abspath(self.mktemp())
        os.makedirs(tree)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(os.path.join(ROOT, name), tree)
        for name in ("jobmon", "twisted", "man", "completion"):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(tree, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        out = os.path.join(tree, "dist")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, tree],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0 and any(s in result.stderr for s in OFFLINE):
            raise SkipTest("pip cannot fetch the build backend: " + result.stderr[-200:])
        self.assertEqual(result.returncode, 0, result.stderr)
        [wheel] = os.listdir(out)
        WheelTests._built = os.path.join(out, wheel)
        return WheelTests._built

    def test_dataFiles(self):
        """
        The wheel installs C{share/man/man1/jobmon-query.1} and
        C{share/bash-completion/completions/jobmon-query}, as committed.
        """
        with zipfile.ZipFile(self.wheel()) as z:
            names = {name.split("/", 1)[1]: name for name in z.namelist()
                     if ".data/data/" in name}
            self.assertEqual(sorted(names), [
                "data/share/bash-completion/completions/jobmon-query",
                "data/share/man/man1/jobmon-query.1",
            ])
            for inside, name in (("man/jobmon-query.1", "data/share/man/man1/jobmon-query.1"),
                                 ("completion/jobmon-query",
                                  "data/share/bash-completion/completions/jobmon-query")):
                with open(os.path.join(ROOT, inside), "rb") as f:
                    self.assertEqual(z.read(names[name]), f.read(), name)

    def test_webAssets(self):
        """
        The wheel holds the browser view's assets, every one that
        L{jobmon.server.web.pages} serves, under C{jobmon/server/web/static/}.
        """
        from jobmon.server.web.pages import ASSETS

        with zipfile.ZipFile(self.wheel()) as z:
            names = set(z.namelist())
        for asset in [b"index.html"] + sorted(ASSETS):
            self.assertIn("jobmon/server/web/static/" + asset.decode("ascii"), names)

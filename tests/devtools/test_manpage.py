"""
Tests for L{jobmon.devtools.manpage}: the committed manual page and bash
completion file are what the parser generates, and the page is valid troff.
"""

import os
import shutil
import subprocess
import tomllib

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from jobmon import cli
from jobmon.cli import completion
from jobmon.devtools import manpage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The source tree."""

REGENERATE = "run: .venv/bin/python -m jobmon.devtools.manpage regenerate"


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


class GeneratedTests(SynchronousTestCase):
    """
    The committed files match the parser.
    """

    def test_manPageUpToDate(self):
        """
        C{man/jobmon-query.1} is what the parser generates.
        """
        if read(manpage.MAN_PAGE) != manpage.manPage():
            self.fail("%s differs from the parser; %s" % (manpage.MAN_PAGE, REGENERATE))

    def test_completionUpToDate(self):
        """
        C{completion/jobmon-query} is what C{jobmon-query completion bash}
        prints.
        """
        if read(manpage.COMPLETION_FILE) != completion.BASH_SCRIPT:
            self.fail("%s differs; %s" % (manpage.COMPLETION_FILE, REGENERATE))

    def test_outOfDate(self):
        """
        A change to a help text changes the page (so the test above fails
        until it is regenerated).
        """
        parser = cli.buildParser()
        before = manpage.manPage(parser)
        ls = parser._subparsers._group_actions[0].choices["ls"]
        [depth] = [a for a in ls._actions if a.dest == "depth"]
        depth.help = "changed help"
        page = manpage.manPage(parser)
        self.assertTrue(page != before)
        self.assertIn("\nchanged help\n", page)

    def test_everyCommandAndOption(self):
        """
        The page has a section for every command, with each of its options.
        """
        page = manpage.manPage()
        parser = cli.buildParser()
        for name, sub in parser._subparsers._group_actions[0].choices.items():
            self.assertIn(".SS \\fB%s\\fR" % (name,), page)
            for action in sub._actions:
                for option in action.option_strings:
                    self.assertIn("\\fB%s\\fR" % (option.replace("-", "\\-"),), page)

    def test_regenerate(self):
        """
        C{regenerate} writes both files under the tree given.
        """
        root = self.mktemp()
        manpage.main(["regenerate", root])
        with open(os.path.join(root, manpage.MAN_PAGE)) as f:
            self.assertEqual(f.read(), manpage.manPage())
        with open(os.path.join(root, manpage.COMPLETION_FILE)) as f:
            self.assertEqual(f.read(), completion.BASH_SCRIPT)

    def test_escape(self):
        """
        Backslashes and lines starting with a dot or a quote are escaped.
        """
        self.assertEqual(manpage.escape("a\\b\n.x\n'y"), "a\\eb\n\\&.x\n\\&'y")

    def test_troff(self):
        """
        groff formats the page without a warning.
        """
        groff = shutil.which("groff")
        if groff is None:
            raise SkipTest("no groff")
        result = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z"],
                                input=manpage.manPage(), capture_output=True, text=True,
                                timeout=60)
        self.assertEqual((result.returncode, result.stderr), (0, ""))


class InstalledTests(SynchronousTestCase):
    """
    C{pyproject.toml} installs the page and the completion file.
    """

    def test_dataFiles(self):
        """
        The page goes to C{share/man/man1}, the completion file to
        C{share/bash-completion/completions}.
        """
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            dataFiles = tomllib.load(f)["tool"]["setuptools"]["data-files"]
        self.assertEqual(dataFiles, {
            "share/man/man1": [manpage.MAN_PAGE],
            "share/bash-completion/completions": [manpage.COMPLETION_FILE],
        })

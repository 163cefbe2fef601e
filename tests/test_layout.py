"""
Tests for the layout of the C{jobmon} package: who may import whom, no
import cycles, and no module or class too big to hold in one's head (see
C{docs/ARCHITECTURE.md}).

The rules are read from the source with L{ast}, so they hold for imports
inside functions too.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jobmon")

MAX_MODULE_LINES = 900
"""The longest a module may be."""

MAX_CLASS_LINES = 500
"""The longest a class may be."""

ROLES = ("server", "worker", "client", "cli", "devtools", "protocols")
"""The folders that say who runs the code; anything else in C{jobmon/} is
shared by them."""

FORBIDDEN = {
    "server": {"worker", "client", "cli", "devtools"},
    "worker": {"server", "cli", "devtools"},
    "client": {"server", "worker", "cli", "devtools"},
    "cli": {"server", "worker", "devtools"},
    "protocols": {"server", "worker", "client", "cli", "devtools"},
    "devtools": set(),
    "": {"server", "worker", "client", "cli", "devtools"},
}
"""For each role (C{""}: the shared modules), the roles it never imports."""


def modules():
    """
    Every module of the package: C{{dotted name: path}}.
    """
    found = {}
    for directory, _, names in os.walk(ROOT):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(ROOT))[: -len(".py")]
            parts = relative.split(os.sep)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def importsOf(name, path):
    """
    The C{jobmon} modules that module C{name} imports, wherever in it.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    result = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            result.update(a.name for a in node.names if a.name.startswith("jobmon"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("jobmon"):
                continue
            for alias in node.names:
                result.add(base + "." + alias.name)
                result.add(base)
    return result


def roleOf(name):
    """
    The role folder of module C{name}, or C{""} for a shared module.
    """
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROLES else ""


class LayoutTests(SynchronousTestCase):
    """
    The package keeps its shape.
    """

    def setUp(self):
        self.modules = modules()
        self.graph = {}
        for name, path in self.modules.items():
            self.graph[name] = {m for m in importsOf(name, path) if m in self.modules}

    def test_seesThePackage(self):
        """
        The rules look at the real package, imports inside functions
        included: were the walk to find nothing, every other test here
        would pass on an empty graph.
        """
        self.assertIn("jobmon.server.service", self.modules)
        self.assertIn("jobmon.worker.daemon", self.modules)
        self.assertIn("jobmon.server.hub", self.graph["jobmon.server.service"])
        # loadStartup imports the commands module when it runs.
        self.assertIn("jobmon.worker.commands", self.graph["jobmon.worker.daemon"])

    def test_rolesApart(self):
        """
        The worker and the server never import each other; the client and
        the CLI import neither; protocols and shared modules import no role;
        the product never imports the test tools (which may import the
        server, the worker and the CLI: they generate their documentation,
        the manual page of C{jobmon-query} among it).
        """
        bad = []
        for name, imported in sorted(self.graph.items()):
            forbidden = FORBIDDEN[roleOf(name)]
            for other in sorted(imported):
                if roleOf(other) in forbidden:
                    bad.append("{} imports {}".format(name, other))
        self.assertEqual(bad, [])

    def test_noCycles(self):
        """
        No module imports itself through others (a package counts as
        importing what its C{__init__} imports, not its submodules).
        """
        state, stack, cycles = {}, [], []

        def visit(node):
            state[node] = "open"
            stack.append(node)
            for other in sorted(self.graph[node]):
                if other == node or node.startswith(other + "."):
                    # A module imports its own package first: not a cycle.
                    continue
                if state.get(other) == "open":
                    cycles.append(stack[stack.index(other):] + [other])
                elif other not in state:
                    visit(other)
            stack.pop()
            state[node] = "done"

        for name in sorted(self.graph):
            if name not in state:
                visit(name)
        self.assertEqual(cycles, [])

    def test_moduleSize(self):
        """
        No module is over L{MAX_MODULE_LINES} lines.
        """
        big = []
        for name, path in sorted(self.modules.items()):
            with open(path, encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > MAX_MODULE_LINES:
                big.append((name, count))
        self.assertEqual(big, [])

    def test_classSize(self):
        """
        No class is over L{MAX_CLASS_LINES} lines.
        """
        big = []
        for name, path in sorted(self.modules.items()):
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    count = node.end_lineno - node.lineno + 1
                    if count > MAX_CLASS_LINES:
                        big.append(("{}.{}".format(name, node.name), count))
        self.assertEqual(big, [])

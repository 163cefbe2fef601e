"""
The files of C{etc/} agree: every file the example server configuration
makes the server write lies where the systemd unit lets it write.
"""

import os
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from jobmon.config import optionsOf
from jobmon.server.options import Options
from tests.support import ROOT

UNIT = os.path.join(ROOT, "etc", "jobmon-server.service")
EXAMPLE = os.path.join(ROOT, "etc", "server.toml.example")


def unitSettings(path=UNIT):
    """
    The settings of a systemd unit file, by name (a list each).
    """
    found = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                found.setdefault(key.strip(), []).append(value.strip())
    return found


def configDirectory(settings):
    """
    The directory of the configuration file the unit's C{ExecStart} names:
    relative paths in it are relative to there.
    """
    words = settings["ExecStart"][0].split()
    return os.path.dirname(words[words.index("--config") + 1])


def writablePlaces(settings):
    """
    Where the unit lets the server write: its C{ReadWritePaths}.
    """
    return [p for value in settings.get("ReadWritePaths", []) for p in value.split()]


def writtenPaths(settings, example=EXAMPLE):
    """
    What the server writes when run by the unit with the example
    configuration: each option of L{Options.writtenPaths}, from the file or
    its default, resolved as the server resolves it.

    @return: C{{option: absolute path}}, options not set left out.
    """
    with open(example, "rb") as f:
        table = tomllib.load(f)
    defaults = {o.key: o.default for o in optionsOf(Options)}
    found = {}
    for key in Options.writtenPaths:
        if key in table:
            value = os.path.join(configDirectory(settings), table[key])
        elif defaults[key] is not None:
            # A default relative path is relative to the working directory.
            value = os.path.join(settings["WorkingDirectory"][0], defaults[key])
        else:
            continue
        found[key] = os.path.normpath(value)
    return found


def inside(path, directory):
    """
    Whether C{path} is C{directory} or lies below it.
    """
    return path == directory or path.startswith(directory.rstrip("/") + "/")


class DeploymentTests(SynchronousTestCase):
    """
    C{etc/jobmon-server.service} and C{etc/server.toml.example} agree on
    where the server writes.
    """

    def test_unitDirectories(self):
        """
        The unit may write only its state and logs directories (made by
        systemd for its user), and works in the first; the rest is
        read-only.
        """
        s = unitSettings()
        self.assertEqual(s["ProtectSystem"], ["strict"])
        state = "/var/lib/" + s["StateDirectory"][0]
        logs = "/var/log/" + s["LogsDirectory"][0]
        self.assertEqual(sorted(writablePlaces(s)), sorted([state, logs]))
        self.assertEqual(s["WorkingDirectory"], [state])

    def test_exampleWritesWhereAllowed(self):
        """
        Every file the example configuration makes the server write lies in
        a writable place: the audit log in the logs directory, the history
        in the state directory.
        """
        s = unitSettings()
        places = writablePlaces(s)
        written = writtenPaths(s)
        self.assertEqual(sorted(written), ["audit-log", "history"])
        for key, path in written.items():
            self.assertTrue(any(inside(path, place) for place in places),
                            "{} = {} is not in {}".format(key, path, places))
        self.assertTrue(inside(written["audit-log"], "/var/log/" + s["LogsDirectory"][0]))
        self.assertTrue(inside(written["history"], "/var/lib/" + s["StateDirectory"][0]))

    def test_checkSeesMistakes(self):
        """
        The check would see an example that leaves the audit log at its
        default, next to the configuration file in read-only /etc.
        """
        s = unitSettings()
        example = self.mktemp()
        with open(example, "w") as f:
            f.write('history = "/var/lib/jobmon/h.sqlite3"\naudit-log = "audit.jsonl"\n')
        written = writtenPaths(s, example)
        self.assertEqual(written["audit-log"], "/etc/jobmon/audit.jsonl")
        self.assertFalse(any(inside(written["audit-log"], p) for p in writablePlaces(s)))

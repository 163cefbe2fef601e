"""
File names that are not UTF-8, or hold control characters, round-trip: the
daemon's results carry them exactly (C{name_bytes} beside the escaped
C{name}), and a request's C{path} given as bytes names them exactly, while
a string is always the name as written (a file literally named C{\\xff} is
not the byte 0xFF).  Real files in a temporary directory.
"""

import os
import xmlrpc.client

from twisted.trial.unittest import SynchronousTestCase

from jobmon.errors import NO_SUCH_FILE, JobMonError
from jobmon.worker.daemon import xmlSafe
from jobmon.worker.files import Workdir

NAMES = {
    b"\xff.log": b"latin byte",
    b"\\xff.log": b"a backslash, x, f, f",
    b"esc\x1b[2J": b"an escape sequence",
    b"cr\r": b"a carriage return",
    b"caf\xc3\xa9": b"UTF-8",
}
"""Files of the directory: name to contents."""


def wire(result):
    """
    Send C{result} through XML-RPC as the daemon does (L{xmlSafe}, then the
    marshaller and the parser), as the client gets it.
    """
    body = xmlrpc.client.dumps((xmlSafe(result, names=True),), methodresponse=True)
    (back,), _ = xmlrpc.client.loads(body.encode("utf-8"), use_builtin_types=True)
    return back


class RoundTripTests(SynchronousTestCase):
    """
    The names of a listing are given back as bytes when they need it, and
    those bytes open the files.
    """

    def setUp(self):
        self.root = self.mktemp()
        os.mkdir(self.root)
        for name, content in NAMES.items():
            with open(os.path.join(os.fsencode(self.root), name), "wb") as f:
                f.write(content)
        self.workdir = Workdir(self.root)

    def test_listing(self):
        """
        Entries whose names are not UTF-8 or hold control characters carry
        C{name_bytes}, the exact name; the others (a literal C{\\xff.log},
        a UTF-8 name) do not.  Every name stays distinguishable.
        """
        result = wire(self.workdir.run({"op": "ls", "path": "."}))
        byName = {}
        for entry in result["entries"]:
            byName[entry.get("name_bytes", entry["name"].encode())] = entry
        self.assertEqual(set(byName), set(NAMES))
        self.assertEqual(byName[b"\xff.log"]["name"], "\\xff.log")
        self.assertEqual(byName[b"\\xff.log"]["name"], "\\xff.log")
        self.assertNotIn("name_bytes", byName[b"\\xff.log"])
        self.assertNotIn("name_bytes", byName[b"caf\xc3\xa9"])
        self.assertEqual(byName[b"cr\r"]["name"], "cr\\x0d")

    def test_openByBytes(self):
        """
        The C{name_bytes} of an entry, sent back as the C{path}, opens that
        file; its escaped C{name}, sent as a string, names the literal file
        (or none).
        """
        result = wire(self.workdir.run({"op": "ls", "path": "."}))
        for entry in result["entries"]:
            path = entry.get("name_bytes", entry["name"])
            want = NAMES[path if isinstance(path, bytes) else path.encode()]
            for op in ("cat", "head", "tail"):
                got = wire(self.workdir.run({"op": op, "path": path}))
                self.assertEqual(got["data"], want, (op, path))
        got = wire(self.workdir.run({"op": "cat", "path": "\\xff.log"}))
        self.assertEqual(got["data"], b"a backslash, x, f, f")
        error = self.assertRaises(JobMonError, self.workdir.run,
                                  {"op": "cat", "path": "esc\\x1b[2J"})
        self.assertEqual(error.code, NO_SUCH_FILE)

    def test_bytesPathResults(self):
        """
        C{stat} and C{cat} of a path given as bytes answer with its C{path}
        escaped and exact (C{path_bytes}); a link's target too.
        """
        os.symlink(b"\xff.log", os.path.join(os.fsencode(self.root), b"link\xfe"))
        got = wire(self.workdir.run({"op": "stat", "path": b"link\xfe"}))
        self.assertEqual((got["path"], got["path_bytes"]), ("link\\xfe", b"link\xfe"))
        self.assertEqual((got["target"], got["target_bytes"]), ("\\xff.log", b"\xff.log"))
        got = wire(self.workdir.run({"op": "cat", "path": b"link\xfe"}))
        self.assertEqual((got["path_bytes"], got["data"]), (b"link\xfe", b"latin byte"))

    def test_followByBytes(self):
        """
        C{follow} checks and reads a path given as bytes.
        """
        path, offset, inode, wait = self.workdir.checkFollow(
            {"path": xmlrpc.client.Binary(b"\xff.log")})
        self.assertEqual(path, os.fsdecode(b"\xff.log"))
        got = self.workdir.run({"op": "follow", "path": b"\xff.log"})
        self.assertEqual(got["data"], b"latin byte")

    def test_badBytes(self):
        """
        A bytes path with a NUL is refused as a string one is.
        """
        error = self.assertRaises(JobMonError, self.workdir.run,
                                  {"op": "cat", "path": b"a\x00b"})
        self.assertIn("NUL", str(error))

    def test_onlyFileResults(self):
        """
        Only the results of file ops get C{_bytes} fields: an environment
        variable called C{name} is escaped, and no variable is added.
        """
        env = {"variables": {"name": "a\x1b", "path": "\udcff"}, "redacted": []}
        self.assertEqual(xmlSafe(env), {"variables": {"name": "a\\x1b", "path": "\\xff"},
                                        "redacted": []})
        self.assertIn("name_bytes", xmlSafe({"name": "a\x1b"}, names=True))

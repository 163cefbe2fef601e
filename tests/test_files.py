"""
Tests for L{jobmon.files}: confinement to the working directory, the
C{ls}, C{stat}, C{cat} and C{tail} operations, and request checking.
"""

import errno
import math
import os
import signal
import stat
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon import files
from jobmon.errors import (
    BAD_REQUEST,
    IS_A_DIRECTORY,
    NO_SUCH_FILE,
    NOT_A_DIRECTORY,
    OUTSIDE_WORKDIR,
    PERMISSION_DENIED,
    REMOTE_ERROR,
    REMOTE_IO_ERROR,
    UNSUPPORTED_OP,
    JobMonError,
)
from jobmon.files import Workdir



NOBODY = 65534


def unprivileged(f, *args):
    """
    Call C{f(*args)} as an account without privileges: as root, in a forked
    child that drops to uid/gid 65534 (root reads files whatever their
    mode, so a permission test run as root would prove nothing); otherwise
    directly.  A L{JobMonError} raised in the child is raised again here.
    """
    if os.geteuid() != 0:
        return f(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                f(*args)
                report = b"ok"
            except JobMonError as e:
                report = "{} {}".format(e.code, e.message).encode()
            except BaseException as e:
                report = "other {!r}".format(e).encode()
            os.write(w, report)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    code, _, message = report.partition(" ")
    if code.isdigit():
        raise JobMonError(int(code), message)
    if code != "ok":
        raise AssertionError("unprivileged call failed: " + report)

class CountingPread:
    """
    A stand-in for C{os.pread} that records how many bytes were read.

    @ivar total: bytes returned so far.
    @ivar calls: C{(length, offset)} of each call.
    """

    def __init__(self):
        self.total = 0
        self.calls = []

    def __call__(self, fd, length, offset):
        """
        Read as C{os.pread} does, and count.
        """
        self.calls.append((length, offset))
        data = os.pread(fd, length, offset)
        self.total += len(data)
        return data


class FailingPread:
    """
    A stand-in for C{os.pread} that always fails with a given error.
    """

    def __init__(self, error):
        self.error = error

    def __call__(self, fd, length, offset):
        """
        Raise the error.
        """
        raise self.error


@contextmanager
def noBlocking(testCase, seconds=5):
    """
    Fail the test, instead of hanging the run, if the body blocks.

    The alarm interrupts a blocking C{open} or C{read} in the main thread,
    where trial runs tests.
    """

    class Blocked(Exception):
        """The body blocked."""

    def onAlarm(signum, frame):
        raise Blocked()

    previous = signal.signal(signal.SIGALRM, onAlarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Blocked:
        testCase.fail("the operation blocked")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def referenceTail(data, lines):
    """
    Compute C{tail -n lines} of C{data} the simple way: split it all.
    """
    if lines == 0:
        return b""
    pieces = data.split(b"\n")
    allLines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        allLines.append(pieces[-1])
    return b"".join(allLines[-lines:])


class FixtureMixin:
    """
    Build a working directory with files, links and a sibling outside it.

    Layout, under a fresh temporary directory::

        w/                   the working directory (self.root)
          job.log            b"one\\ntwo\\nthree\\n"
          .hidden            b"dot"
          sub/inner.txt      b"inner"
          latest.log  ->     job.log              (inside: followed)
          subLink     ->     sub                  (inside: followed)
          dangling    ->     missing.txt          (inside, no target)
          leak        ->     ../w2/secret.txt     (outside)
          outdir      ->     <abs>/w2             (outside)
          w2link      ->     ../w2                (outside, prefix trick)
        w2/                  outside, and a string prefix of... w
          secret.txt         b"secret"
          backin      ->     <abs>/w/job.log      (outside link back in)
    """

    def buildFixture(self):
        """
        Create the layout above and set C{self.root}, C{self.outside} and
        C{self.workdir}.
        """
        base = os.path.realpath(os.path.abspath(self.mktemp()))
        self.root = os.path.join(base, "w")
        self.outside = os.path.join(base, "w2")
        os.makedirs(os.path.join(self.root, "sub"))
        os.makedirs(self.outside)
        self.write("job.log", b"one\ntwo\nthree\n")
        self.write(".hidden", b"dot")
        self.write("sub/inner.txt", b"inner")
        with open(os.path.join(self.outside, "secret.txt"), "wb") as f:
            f.write(b"secret")
        os.symlink("job.log", os.path.join(self.root, "latest.log"))
        os.symlink("sub", os.path.join(self.root, "subLink"))
        os.symlink("missing.txt", os.path.join(self.root, "dangling"))
        os.symlink("../w2/secret.txt", os.path.join(self.root, "leak"))
        os.symlink(self.outside, os.path.join(self.root, "outdir"))
        os.symlink("../w2", os.path.join(self.root, "w2link"))
        os.symlink(
            os.path.join(self.root, "job.log"), os.path.join(self.outside, "backin")
        )
        self.workdir = Workdir(self.root)

    def write(self, name, data):
        """
        Write C{data} to C{name} in the working directory.
        """
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)

    def assertFault(self, code, f, *args, **kwargs):
        """
        Assert that C{f(*args, **kwargs)} raises L{JobMonError} with C{code},
        and that its message does not reveal where the working directory is
        unless the arguments gave it.

        @return: the error.
        """
        error = self.assertRaises(JobMonError, f, *args, **kwargs)
        self.assertEqual(error.code, code, error.message)
        hidden = os.path.dirname(self.root)
        if hidden not in repr((args, kwargs)):
            self.assertNotIn(hidden, error.message)
        return error


class ConstructorTests(SynchronousTestCase):
    """
    Tests for building a L{Workdir}.
    """

    def test_defaults(self):
        """
        The limits default to 1 MiB of result and 10000 entries.
        """
        workdir = Workdir("/nonexistent/dir")
        self.assertEqual(workdir.maxResult, 1048576)
        self.assertEqual(workdir.maxEntries, 10000)

    def test_noIO(self):
        """
        Building a L{Workdir} for a directory that does not exist works: the
        constructor touches nothing.
        """
        Workdir(os.path.join(self.mktemp(), "missing"))

    def test_badLimits(self):
        """
        Limits must be positive integers.
        """
        for bad in (0, -1, 1.5, True, "10"):
            self.assertRaises(ValueError, Workdir, "/tmp", maxResult=bad)
            self.assertRaises(ValueError, Workdir, "/tmp", maxEntries=bad)


class ResolveTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for L{Workdir.resolve}: paths are confined to the working
    directory.
    """

    def setUp(self):
        self.buildFixture()

    def test_root(self):
        """
        C{""} and C{"."} name the working directory itself.
        """
        self.assertEqual(self.workdir.resolve(""), self.root)
        self.assertEqual(self.workdir.resolve("."), self.root)
        self.assertEqual(self.workdir.resolve("./"), self.root)

    def test_rootThroughSymlink(self):
        """
        A working directory given through a symbolic link is resolved, so
        that paths inside it are not taken for outside ones.
        """
        alias = os.path.join(self.outside, "alias")
        os.symlink(self.root, alias)
        workdir = Workdir(alias)
        self.assertEqual(
            workdir.resolve("job.log"), os.path.join(self.root, "job.log")
        )
        result = workdir.run({"op": "cat", "path": "job.log"})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")

    def test_relative(self):
        """
        A relative path is taken from the working directory and need not
        exist.
        """
        self.assertEqual(
            self.workdir.resolve("sub/new/file"),
            os.path.join(self.root, "sub", "new", "file"),
        )

    def test_dotDotInside(self):
        """
        C{..} that stays inside the working directory is fine.
        """
        self.assertEqual(
            self.workdir.resolve("sub/../job.log"), os.path.join(self.root, "job.log")
        )

    def test_dotDotEscape(self):
        """
        C{..} that leaves the working directory is refused, with a message
        naming the path as given.
        """
        error = self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "../etc/passwd")
        self.assertEqual(
            error.message, "'../etc/passwd' is outside the job's working directory"
        )
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.resolve, "sub/../../w2/secret.txt"
        )
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "..")

    def test_absoluteInside(self):
        """
        An absolute path inside the working directory is accepted.
        """
        path = os.path.join(self.root, "sub", "inner.txt")
        self.assertEqual(self.workdir.resolve(path), path)
        self.assertEqual(self.workdir.resolve(self.root), self.root)

    def test_absoluteOutside(self):
        """
        An absolute path outside the working directory is refused.
        """
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "/etc/passwd")
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "/")

    def test_prefixTrick(self):
        """
        A sibling whose name starts with the working directory's name (C{w2}
        next to C{w}) is outside, by absolute path or through a link.
        """
        self.assertFault(
            OUTSIDE_WORKDIR,
            self.workdir.resolve,
            os.path.join(self.outside, "secret.txt"),
        )
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, self.root + "2")
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "w2link/secret.txt")

    def test_symlinkToOutsideFile(self):
        """
        A link to a file outside is refused.
        """
        error = self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "leak")
        self.assertEqual(error.message, "'leak' is outside the job's working directory")

    def test_symlinkToOutsideDirectory(self):
        """
        A link to a directory outside is refused, itself and as an
        intermediate component.
        """
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "outdir")
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "outdir/secret.txt")
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "outdir/missing")

    def test_throughOutsideBackIn(self):
        """
        A path whose last component is a link outside the working directory
        is refused even when that link points back inside: the path goes
        through a directory outside.
        """
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.resolve, "outdir/backin")

    def test_symlinkInside(self):
        """
        Links that stay inside are followed.
        """
        self.assertEqual(
            self.workdir.resolve("latest.log"), os.path.join(self.root, "job.log")
        )
        self.assertEqual(
            self.workdir.resolve("subLink/inner.txt"),
            os.path.join(self.root, "sub", "inner.txt"),
        )

    def test_nulByte(self):
        """
        A path with a NUL byte is a bad request.
        """
        self.assertFault(BAD_REQUEST, self.workdir.resolve, "job.log\0.txt")

    def test_notAString(self):
        """
        A path must be a string.
        """
        for bad in (None, 1, b"job.log", ["job.log"]):
            self.assertFault(BAD_REQUEST, self.workdir.resolve, bad)

    def test_tooLong(self):
        """
        A path longer than PATH_MAX is a bad request.
        """
        self.assertFault(BAD_REQUEST, self.workdir.resolve, "a/" * 5000)

    def test_notEncodable(self):
        """
        A string that is no file name (a lone surrogate) is a bad request,
        not an unexpected exception.
        """
        self.assertFault(BAD_REQUEST, self.workdir.resolve, "bad\ud800name")

    @settings(deadline=None, max_examples=300)
    @given(
        components=st.lists(
            st.sampled_from(["..", ".", "", "a", "link", "up", "back", "f", "sub"]),
            max_size=8,
        ),
        absolute=st.booleans(),
    )
    def test_neverOutside(self, components, absolute):
        """
        Whatever the mix of C{..}, C{.}, names and links (one leading
        outside, one back to the parent, one outside back in), L{resolve}
        returns the real path when it is inside, and refuses it with
        C{OUTSIDE_WORKDIR} only when the path or its last entry is outside.
        """
        root = self.propertyRoot()
        path = "/".join(components)
        if absolute:
            path = os.path.join(root, path)
        joined = os.path.join(root, path)
        real = os.path.realpath(joined)
        try:
            resolved = self.propertyWorkdir.resolve(path)
        except JobMonError as e:
            self.assertEqual(e.code, OUTSIDE_WORKDIR)
            parent, last = os.path.split(joined)
            named = os.path.join(os.path.realpath(parent), last)
            inside = lambda p: os.path.commonpath([root, p]) == root
            self.assertFalse(inside(real) and inside(named))
        else:
            self.assertEqual(os.path.commonpath([root, resolved]), root)
            self.assertEqual(resolved, real)

    def propertyRoot(self):
        """
        Build, once per test, a working directory for L{test_neverOutside}:
        C{a/f}, C{sub}, C{link} to a sibling outside, C{a/up} to C{..}
        (the working directory), and C{a/back} to the working directory's
        parent.  The outside sibling has C{a} and C{back}, a link into the
        working directory.
        """
        if getattr(self, "_propertyRoot", None) is None:
            base = os.path.realpath(os.path.abspath(self.mktemp()))
            root = os.path.join(base, "w")
            outside = os.path.join(base, "w2")
            os.makedirs(os.path.join(root, "a"))
            os.makedirs(os.path.join(root, "sub"))
            os.makedirs(os.path.join(outside, "a"))
            open(os.path.join(root, "a", "f"), "w").close()
            os.symlink(outside, os.path.join(root, "link"))
            os.symlink("..", os.path.join(root, "a", "up"))
            os.symlink("../..", os.path.join(root, "a", "back"))
            os.symlink(root, os.path.join(outside, "back"))
            self._propertyRoot = root
            self.propertyWorkdir = Workdir(root)
        return self._propertyRoot


class LsTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{ls} operation.
    """

    def setUp(self):
        self.buildFixture()

    def test_directory(self):
        """
        C{ls} of the working directory lists every entry, dot files
        included, sorted by name, without following links.
        """
        result = self.workdir.run({"op": "ls"})
        self.assertEqual(result["path"], ".")
        self.assertIs(result["truncated"], False)
        names = [entry["name"] for entry in result["entries"]]
        self.assertEqual(
            names,
            sorted(
                [
                    ".hidden",
                    "dangling",
                    "job.log",
                    "latest.log",
                    "leak",
                    "outdir",
                    "sub",
                    "subLink",
                    "w2link",
                ]
            ),
        )
        byName = {entry["name"]: entry for entry in result["entries"]}
        st = os.lstat(os.path.join(self.root, "job.log"))
        self.assertEqual(
            byName["job.log"],
            {
                "name": "job.log",
                "type": "file",
                "size": 14.0,
                "mtime": float(st.st_mtime),
                "mode": stat.S_IMODE(st.st_mode),
            },
        )
        self.assertIsInstance(byName["job.log"]["size"], float)
        self.assertIsInstance(byName["job.log"]["mtime"], float)
        self.assertIsInstance(byName["job.log"]["mode"], int)
        self.assertEqual(byName["sub"]["type"], "dir")
        self.assertNotIn("target", byName["sub"])
        self.assertEqual(byName["latest.log"]["type"], "link")
        self.assertEqual(byName["latest.log"]["target"], "job.log")
        # A link leading outside is listed, not followed: its text is in
        # the working directory.
        self.assertEqual(byName["leak"]["type"], "link")
        self.assertEqual(byName["leak"]["target"], "../w2/secret.txt")

    def test_pathDefaults(self):
        """
        C{path} defaults to C{"."}; C{""} means the same.
        """
        self.assertEqual(
            self.workdir.run({"op": "ls"}), self.workdir.run({"op": "ls", "path": "."})
        )
        self.assertEqual(self.workdir.run({"op": "ls", "path": ""})["path"], ".")

    def test_subdirectory(self):
        """
        C{ls} of a subdirectory gives its path relative to the working
        directory, with C{..} resolved.
        """
        result = self.workdir.run({"op": "ls", "path": "sub/../sub/"})
        self.assertEqual(result["path"], "sub")
        self.assertEqual([e["name"] for e in result["entries"]], ["inner.txt"])

    def test_otherType(self):
        """
        An entry that is neither file, directory nor link has type
        C{other}.
        """
        os.mkfifo(os.path.join(self.root, "sub", "fifo"))
        result = self.workdir.ls("sub")
        self.assertEqual(
            {e["name"]: e["type"] for e in result["entries"]},
            {"fifo": "other", "inner.txt": "file"},
        )

    def test_file(self):
        """
        C{ls} of a file shows that file as a single entry.
        """
        result = self.workdir.run({"op": "ls", "path": "sub/inner.txt"})
        self.assertEqual(result["path"], "sub/inner.txt")
        self.assertIs(result["truncated"], False)
        [entry] = result["entries"]
        self.assertEqual(entry["name"], "inner.txt")
        self.assertEqual(entry["type"], "file")
        self.assertEqual(entry["size"], 5.0)

    def test_linkToFile(self):
        """
        C{ls} of a link to a file shows the link itself.
        """
        result = self.workdir.run({"op": "ls", "path": "latest.log"})
        self.assertEqual(result["path"], "latest.log")
        [entry] = result["entries"]
        self.assertEqual(entry["type"], "link")
        self.assertEqual(entry["target"], "job.log")

    def test_linkToDirectory(self):
        """
        C{ls} of a link to a directory inside lists the directory.
        """
        result = self.workdir.run({"op": "ls", "path": "subLink"})
        self.assertEqual([e["name"] for e in result["entries"]], ["inner.txt"])

    def test_danglingLink(self):
        """
        C{ls} of a link whose target is missing shows the link.
        """
        [entry] = self.workdir.run({"op": "ls", "path": "dangling"})["entries"]
        self.assertEqual(entry["type"], "link")
        self.assertEqual(entry["target"], "missing.txt")

    def test_outside(self):
        """
        C{ls} of a link to a directory outside is refused.
        """
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "ls", "path": "outdir"}
        )
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.run, {"op": "ls", "path": ".."})

    def test_missing(self):
        """
        C{ls} of a missing path fails with C{NO_SUCH_FILE}, naming the path
        as given.
        """
        error = self.assertFault(
            NO_SUCH_FILE, self.workdir.run, {"op": "ls", "path": "x.log"}
        )
        self.assertEqual(error.message, "no such file: 'x.log'")

    def test_componentNotADirectory(self):
        """
        A path going through a file fails with C{NOT_A_DIRECTORY}.
        """
        self.assertFault(
            NOT_A_DIRECTORY, self.workdir.run, {"op": "ls", "path": "job.log/x"}
        )

    def test_entryCap(self):
        """
        At most C{maxEntries} entries are returned, the first ones by name,
        and C{truncated} says so.
        """
        root = self.mktemp()
        os.makedirs(root)
        for name in ["e", "c", "a", "d", "b"]:
            open(os.path.join(root, name), "w").close()
        result = Workdir(root, maxEntries=3).ls(".")
        self.assertEqual([e["name"] for e in result["entries"]], ["a", "b", "c"])
        self.assertIs(result["truncated"], True)

    def test_entryCapExact(self):
        """
        A directory with exactly C{maxEntries} entries is not truncated.
        """
        root = self.mktemp()
        os.makedirs(root)
        for name in ["a", "b", "c"]:
            open(os.path.join(root, name), "w").close()
        result = Workdir(root, maxEntries=3).ls(".")
        self.assertEqual(len(result["entries"]), 3)
        self.assertIs(result["truncated"], False)

    def test_byteCap(self):
        """
        Names and link targets count against C{maxResult}: a listing whose
        names exceed it is cut.
        """
        root = self.mktemp()
        os.makedirs(root)
        for name in ["a" * 100, "b" * 100, "c" * 100]:
            open(os.path.join(root, name), "w").close()
        result = Workdir(root, maxResult=250).ls(".")
        self.assertEqual([e["name"][0] for e in result["entries"]], ["a", "b"])
        self.assertIs(result["truncated"], True)

    def test_permissionDenied(self):
        """
        A directory the job's account may not read fails with
        C{PERMISSION_DENIED}.
        """
        os.chmod(os.path.join(self.root, "sub"), 0)
        self.addCleanup(os.chmod, os.path.join(self.root, "sub"), 0o755)
        self.assertFault(
            PERMISSION_DENIED,
            unprivileged,
            self.workdir.run,
            {"op": "ls", "path": "sub"},
        )


class StatTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{stat} operation.
    """

    def setUp(self):
        self.buildFixture()

    def test_file(self):
        """
        C{stat} of a file gives its entry plus its path.
        """
        st = os.lstat(os.path.join(self.root, "sub", "inner.txt"))
        self.assertEqual(
            self.workdir.run({"op": "stat", "path": "sub/inner.txt"}),
            {
                "path": "sub/inner.txt",
                "name": "inner.txt",
                "type": "file",
                "size": 5.0,
                "mtime": float(st.st_mtime),
                "mode": stat.S_IMODE(st.st_mode),
            },
        )

    def test_root(self):
        """
        C{stat} of the working directory works, and calls it C{"."} rather
        than by its own name.
        """
        result = self.workdir.run({"op": "stat", "path": "."})
        self.assertEqual(result["path"], ".")
        self.assertEqual(result["name"], ".")
        self.assertEqual(result["type"], "dir")
        self.assertEqual(self.workdir.run({"op": "stat", "path": ""}), result)

    def test_link(self):
        """
        C{stat} of a link inside describes the link, not its target.
        """
        result = self.workdir.run({"op": "stat", "path": "latest.log"})
        self.assertEqual(result["type"], "link")
        self.assertEqual(result["target"], "job.log")
        self.assertEqual(result["path"], "latest.log")

    def test_throughLink(self):
        """
        The result's path resolves links in the directories it goes through.
        """
        result = self.workdir.run({"op": "stat", "path": "subLink/inner.txt"})
        self.assertEqual(result["path"], "sub/inner.txt")

    def test_outside(self):
        """
        C{stat} of a link to outside is refused.
        """
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "stat", "path": "leak"}
        )
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "stat", "path": "outdir/backin"}
        )

    def test_missing(self):
        """
        C{stat} of a missing file fails with C{NO_SUCH_FILE}.
        """
        self.assertFault(NO_SUCH_FILE, self.workdir.run, {"op": "stat", "path": "nope"})

    def test_pathRequired(self):
        """
        C{stat} needs a path.
        """
        self.assertFault(BAD_REQUEST, self.workdir.run, {"op": "stat"})


class CatTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{cat} operation.
    """

    def setUp(self):
        self.buildFixture()

    def test_whole(self):
        """
        C{cat} without offset or length reads the whole file.
        """
        self.assertEqual(
            self.workdir.run({"op": "cat", "path": "job.log"}),
            {
                "path": "job.log",
                "data": b"one\ntwo\nthree\n",
                "offset": 0.0,
                "size": 14.0,
                "truncated": False,
            },
        )

    def test_types(self):
        """
        C{offset} and C{size} are floats (they may exceed 2**31 - 1) and
        C{data} is raw bytes.
        """
        result = self.workdir.run({"op": "cat", "path": "job.log", "offset": 4})
        self.assertIsInstance(result["offset"], float)
        self.assertIsInstance(result["size"], float)
        self.assertIsInstance(result["data"], bytes)

    def test_offsetLength(self):
        """
        C{offset} and C{length} select a range.
        """
        result = self.workdir.run(
            {"op": "cat", "path": "job.log", "offset": 4, "length": 3}
        )
        self.assertEqual(result["data"], b"two")
        self.assertEqual(result["offset"], 4.0)
        self.assertEqual(result["size"], 14.0)
        self.assertIs(result["truncated"], False)

    def test_lengthPastEnd(self):
        """
        A length beyond the end reads to the end, and that is not a
        truncation.
        """
        result = self.workdir.run(
            {"op": "cat", "path": "job.log", "offset": 8, "length": 1000}
        )
        self.assertEqual(result["data"], b"three\n")
        self.assertIs(result["truncated"], False)

    def test_pastEnd(self):
        """
        An offset at or past the end gives empty data, not an error, even
        the largest offset accepted.
        """
        for offset in (14, 15, 2**40, 2**63 - 1):
            request = {"op": "cat", "path": "job.log", "offset": offset}
            result = self.workdir.run(request)
            self.assertEqual(result["data"], b"")
            self.assertIs(result["truncated"], False)
            self.assertEqual(result["offset"], float(offset))

    def test_capWithoutLength(self):
        """
        Reading to the end stops at C{maxResult} bytes, with C{truncated}.
        """
        workdir = Workdir(self.root, maxResult=5)
        result = workdir.cat("job.log")
        self.assertEqual(result["data"], b"one\nt")
        self.assertIs(result["truncated"], True)
        self.assertEqual(result["size"], 14.0)

    def test_capWithLength(self):
        """
        A length above C{maxResult} is cut to it, with C{truncated}; a
        length within it is not.
        """
        workdir = Workdir(self.root, maxResult=5)
        result = workdir.cat("job.log", offset=4, length=8)
        self.assertEqual(result["data"], b"two\nt")
        self.assertIs(result["truncated"], True)
        result = workdir.cat("job.log", offset=4, length=5)
        self.assertEqual(result["data"], b"two\nt")
        self.assertIs(result["truncated"], False)

    def test_capExactlyRemaining(self):
        """
        When what remains fits exactly in C{maxResult}, nothing is cut.
        """
        workdir = Workdir(self.root, maxResult=6)
        result = workdir.cat("job.log", offset=8)
        self.assertEqual(result["data"], b"three\n")
        self.assertIs(result["truncated"], False)

    def test_readsAtMostCap(self):
        """
        C{cat} of a large file without a length reads C{maxResult} bytes,
        not the whole file.
        """
        self.write("big", b"x" * 100000)
        pread = CountingPread()
        workdir = Workdir(self.root, maxResult=1000, pread=pread)
        result = workdir.cat("big")
        self.assertEqual(len(result["data"]), 1000)
        self.assertEqual(pread.total, 1000)
        self.assertTrue(all(length <= 1000 for length, offset in pread.calls))

    @settings(deadline=None, max_examples=100)
    @given(
        data=st.binary(max_size=40),
        offset=st.integers(0, 50),
        length=st.none() | st.integers(0, 50),
        maxResult=st.integers(1, 45),
    )
    def test_matchesSlicing(self, data, offset, length, maxResult):
        """
        C{cat} gives what slicing the file gives, cut to C{maxResult}, and
        C{truncated} exactly when the cut lost bytes that were asked for.
        """
        self.write("random", data)
        result = Workdir(self.root, maxResult=maxResult).cat("random", offset, length)
        asked = data[offset:] if length is None else data[offset : offset + length]
        self.assertEqual(result["data"], asked[:maxResult])
        self.assertEqual(result["truncated"], len(asked) > maxResult)
        self.assertEqual(result["size"], float(len(data)))

    def test_symlinkInside(self):
        """
        A link to a file inside is followed.
        """
        result = self.workdir.run({"op": "cat", "path": "latest.log"})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        self.assertEqual(result["path"], "latest.log")

    def test_symlinkOutside(self):
        """
        A link to a file outside, or a path through a link to a directory
        outside, is refused.
        """
        for path in ("leak", "outdir/secret.txt", "w2link/secret.txt", "outdir/backin"):
            self.assertFault(
                OUTSIDE_WORKDIR, self.workdir.run, {"op": "cat", "path": path}
            )

    def test_directory(self):
        """
        C{cat} of a directory fails with C{IS_A_DIRECTORY}.
        """
        error = self.assertFault(
            IS_A_DIRECTORY, self.workdir.run, {"op": "cat", "path": "sub"}
        )
        self.assertEqual(error.message, "is a directory: 'sub'")
        self.assertFault(IS_A_DIRECTORY, self.workdir.run, {"op": "cat", "path": "."})

    def test_missing(self):
        """
        C{cat} of a missing file fails with C{NO_SUCH_FILE}, naming the path
        as given; so does a dangling link.
        """
        error = self.assertFault(
            NO_SUCH_FILE, self.workdir.run, {"op": "cat", "path": "x.log"}
        )
        self.assertEqual(error.message, "no such file: 'x.log'")
        self.assertFault(
            NO_SUCH_FILE, self.workdir.run, {"op": "cat", "path": "dangling"}
        )

    def test_fifo(self):
        """
        C{cat} of a FIFO is refused at once rather than waiting for a
        writer.
        """
        os.mkfifo(os.path.join(self.root, "pipe"))
        with noBlocking(self):
            error = self.assertFault(
                REMOTE_ERROR, self.workdir.run, {"op": "cat", "path": "pipe"}
            )
        self.assertEqual(error.message, "not a regular file: 'pipe'")

    def test_permissionDenied(self):
        """
        A file the job's account may not read fails with
        C{PERMISSION_DENIED}.
        """
        os.chmod(os.path.join(self.root, "job.log"), 0)
        error = self.assertFault(
            PERMISSION_DENIED,
            unprivileged,
            self.workdir.run,
            {"op": "cat", "path": "job.log"},
        )
        self.assertEqual(error.message, "permission denied: 'job.log'")

    def test_ioError(self):
        """
        A failing read gives C{REMOTE_IO_ERROR} with the reason and the
        path as given, not the absolute path.
        """
        reason = os.strerror(errno.EIO)
        absolute = os.path.join(self.root, "job.log")
        workdir = Workdir(
            self.root, pread=FailingPread(OSError(errno.EIO, reason, absolute))
        )
        error = self.assertFault(REMOTE_IO_ERROR, workdir.cat, "job.log")
        self.assertEqual(error.message, "cannot read 'job.log': " + reason)

    def test_pathRequired(self):
        """
        C{cat} needs a path.
        """
        self.assertFault(BAD_REQUEST, self.workdir.run, {"op": "cat"})


class TailTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{tail} operation.
    """

    def setUp(self):
        self.buildFixture()

    def test_trailingNewline(self):
        """
        A newline ending the file does not count as an extra empty line.
        """
        self.assertEqual(
            self.workdir.run({"op": "tail", "path": "job.log", "lines": 2}),
            {
                "path": "job.log",
                "data": b"two\nthree\n",
                "offset": 4.0,
                "size": 14.0,
                "truncated": False,
            },
        )

    def test_noTrailingNewline(self):
        """
        Without a final newline, the last partial line counts as a line.
        """
        self.write("partial", b"one\ntwo\nthree")
        result = self.workdir.run({"op": "tail", "path": "partial", "lines": 2})
        self.assertEqual(result["data"], b"two\nthree")
        self.assertEqual(result["offset"], 4.0)
        self.assertEqual(result["size"], 13.0)
        result = self.workdir.run({"op": "tail", "path": "partial", "lines": 1})
        self.assertEqual(result["data"], b"three")

    def test_defaultLines(self):
        """
        C{lines} defaults to 10.
        """
        self.write("many", b"".join(b"%d\n" % i for i in range(20)))
        result = self.workdir.run({"op": "tail", "path": "many"})
        self.assertEqual(result["data"], b"".join(b"%d\n" % i for i in range(10, 20)))

    def test_zeroLines(self):
        """
        C{lines} 0 gives empty data at the end of the file.
        """
        result = self.workdir.run({"op": "tail", "path": "job.log", "lines": 0})
        self.assertEqual(result["data"], b"")
        self.assertEqual(result["offset"], 14.0)
        self.assertIs(result["truncated"], False)

    def test_moreLinesThanFile(self):
        """
        Asking for more lines than the file has gives the whole file.
        """
        result = self.workdir.run({"op": "tail", "path": "job.log", "lines": 100})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        self.assertEqual(result["offset"], 0.0)
        self.assertIs(result["truncated"], False)

    def test_emptyFile(self):
        """
        The tail of an empty file is empty.
        """
        self.write("empty", b"")
        result = self.workdir.run({"op": "tail", "path": "empty"})
        self.assertEqual(result["data"], b"")
        self.assertEqual(result["offset"], 0.0)

    def test_emptyLines(self):
        """
        Empty lines count as lines.
        """
        self.write("blank", b"a\n\n\n")
        self.assertEqual(self.workdir.tail("blank", 2)["data"], b"\n\n")
        self.assertEqual(self.workdir.tail("blank", 3)["data"], b"a\n\n\n")

    def test_cap(self):
        """
        Lines that do not fit in C{maxResult} give its last bytes, with
        C{truncated}.
        """
        workdir = Workdir(self.root, maxResult=8)
        result = workdir.tail("job.log", 2)
        self.assertEqual(result["data"], b"o\nthree\n")
        self.assertEqual(result["offset"], 6.0)
        self.assertIs(result["truncated"], True)

    def test_capAtLineStart(self):
        """
        Lines that fill C{maxResult} exactly are not reported as cut.
        """
        workdir = Workdir(self.root, maxResult=10)
        result = workdir.tail("job.log", 2)
        self.assertEqual(result["data"], b"two\nthree\n")
        self.assertIs(result["truncated"], False)

    def test_manyBlocks(self):
        """
        Lines spread over many read blocks are found and joined in order.
        """
        data = b"".join(b"line %d\n" % i for i in range(50000))
        self.write("long", data)
        result = self.workdir.tail("long", 20000)
        self.assertEqual(result["data"], referenceTail(data, 20000))
        self.assertEqual(result["offset"], float(len(data) - len(result["data"])))

    @settings(deadline=None, max_examples=200)
    @given(
        data=st.lists(st.sampled_from([b"a", b"bc", b"\n"]), max_size=30).map(b"".join),
        lines=st.integers(0, 12),
        maxResult=st.integers(1, 30),
        block=st.integers(1, 7),
    )
    def test_matchesReference(self, data, lines, maxResult, block):
        """
        For any content, line count, cap and block size, C{tail} gives the
        last lines as splitting the whole file would, cut to the last
        C{maxResult} bytes with C{truncated} exactly when bytes were lost.
        """
        self.patch(files, "TAIL_BLOCK", block)
        self.write("random", data)
        result = Workdir(self.root, maxResult=maxResult).tail("random", lines)
        expected = referenceTail(data, lines)
        self.assertEqual(result["data"], expected[-maxResult:] if expected else b"")
        self.assertEqual(result["truncated"], len(expected) > maxResult)
        self.assertEqual(result["offset"], float(len(data) - len(result["data"])))
        self.assertEqual(result["size"], float(len(data)))

    def test_largeSparseFile(self):
        """
        The tail of a 10 GiB file reads one block from its end, not the
        file: the cost does not grow with the file's size.
        """
        path = os.path.join(self.root, "huge.log")
        self.addCleanup(os.remove, path)
        size = 10 * 2**30
        with open(path, "wb") as f:
            f.truncate(size)
            f.seek(size)
            f.write(b"\nfirst\nsecond\nthird\n")
        pread = CountingPread()
        result = Workdir(self.root, pread=pread).tail("huge.log", 3)
        self.assertEqual(result["data"], b"first\nsecond\nthird\n")
        self.assertEqual(result["offset"], float(size + 1))
        self.assertEqual(result["size"], float(size + 20))
        self.assertIs(result["truncated"], False)
        self.assertLessEqual(pread.total, files.TAIL_BLOCK)
        lastBlock = size + 20 - files.TAIL_BLOCK
        self.assertTrue(all(offset >= lastBlock for _, offset in pread.calls))

    def test_largeSparseFileCapped(self):
        """
        Even when the lines asked for are not found, C{tail} of a 10 GiB
        file reads no more than C{maxResult} bytes (plus one to check the
        cut).
        """
        path = os.path.join(self.root, "huge.log")
        self.addCleanup(os.remove, path)
        with open(path, "wb") as f:
            f.truncate(10 * 2**30)
        pread = CountingPread()
        result = Workdir(self.root, maxResult=100000, pread=pread).tail("huge.log", 5)
        self.assertEqual(result["data"], b"\0" * 100000)
        self.assertIs(result["truncated"], True)
        self.assertLessEqual(pread.total, 100001)

    def test_symlinkInside(self):
        """
        A link to a file inside is followed.
        """
        self.assertEqual(self.workdir.tail("latest.log", 1)["data"], b"three\n")

    def test_directory(self):
        """
        C{tail} of a directory fails with C{IS_A_DIRECTORY}.
        """
        self.assertFault(
            IS_A_DIRECTORY, self.workdir.run, {"op": "tail", "path": "sub"}
        )

    def test_fifo(self):
        """
        C{tail} of a FIFO is refused at once rather than waiting for a
        writer.
        """
        os.mkfifo(os.path.join(self.root, "pipe"))
        with noBlocking(self):
            self.assertFault(
                REMOTE_ERROR, self.workdir.run, {"op": "tail", "path": "pipe"}
            )

    def test_outside(self):
        """
        C{tail} of a link to outside is refused.
        """
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "tail", "path": "leak"}
        )

    def test_shrunk(self):
        """
        A file cut while read gives C{REMOTE_IO_ERROR}, not wrong data.
        """
        self.write("log", b"a\nb\nc\n")

        def shortPread(fd, length, offset):
            return b""

        workdir = Workdir(self.root, pread=shortPread)
        error = self.assertFault(REMOTE_IO_ERROR, workdir.tail, "log", 1)
        self.assertEqual(error.message, "'log' shrank while being read")


class RequestTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the checking of request structs by L{Workdir.run}.
    """

    def setUp(self):
        self.buildFixture()

    def test_notAStruct(self):
        """
        A request must be a struct.
        """
        for bad in (None, "ls", ["ls"]):
            self.assertFault(BAD_REQUEST, self.workdir.run, bad)

    def test_missingOp(self):
        """
        A request without an op, or with an op that is not a string, is a
        bad request.
        """
        self.assertFault(BAD_REQUEST, self.workdir.run, {"path": "job.log"})
        self.assertFault(BAD_REQUEST, self.workdir.run, {"op": 1})

    def test_unknownOp(self):
        """
        An op the daemon does not know gives C{UNSUPPORTED_OP}.
        """
        error = self.assertFault(
            UNSUPPORTED_OP, self.workdir.run, {"op": "rm", "path": "x"}
        )
        self.assertEqual(error.message, "unsupported op: 'rm'")

    def test_extraFieldsIgnored(self):
        """
        Fields an op does not use, such as the server's C{timeout}, are
        ignored.
        """
        result = self.workdir.run(
            {"op": "cat", "path": "job.log", "timeout": 5, "lines": "junk"}
        )
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")

    def test_badPath(self):
        """
        A path that is not a string, or holds a NUL byte, is a bad request.
        """
        for op in ("ls", "stat", "cat", "tail"):
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": 3})
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": None})
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": "a\0b"})

    def test_badNumbers(self):
        """
        Offsets, lengths and line counts must be non-negative integers:
        negative numbers, booleans, letters, fractions, NaN and infinities
        are bad requests.
        """
        bads = [-1, -1.0, True, False, "abc", "-1", "1.5", "", " 1", "\u00b2"]
        bads += [1.5, math.nan, math.inf, -math.inf, None, [1], {"n": 1}]
        for bad in bads:
            for op, name in (("cat", "offset"), ("cat", "length"), ("tail", "lines")):
                request = {"op": op, "path": "job.log", name: bad}
                error = self.assertFault(BAD_REQUEST, self.workdir.run, request)
                self.assertIn(repr(name), error.message)

    def test_tooLarge(self):
        """
        C{lines} above 100000, and offsets past the largest file offset,
        are bad requests; a huge digit string is too.
        """
        for request in (
            {"op": "tail", "path": "job.log", "lines": 100001},
            {"op": "cat", "path": "job.log", "offset": 2**63},
            {"op": "cat", "path": "job.log", "length": float(2**64)},
            {"op": "cat", "path": "job.log", "offset": "9" * 5000},
        ):
            self.assertFault(BAD_REQUEST, self.workdir.run, request)

    def test_goodNumbers(self):
        """
        Integral floats and digit strings are accepted as integers, as are
        the limits themselves.
        """
        for offset in (4, 4.0, "4", "0004"):
            result = self.workdir.run(
                {"op": "cat", "path": "job.log", "offset": offset, "length": 3.0}
            )
            self.assertEqual(result["data"], b"two")
        result = self.workdir.run({"op": "tail", "path": "job.log", "lines": 100000})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        result = self.workdir.run({"op": "tail", "path": "job.log", "lines": "1"})
        self.assertEqual(result["data"], b"three\n")
        result = self.workdir.run(
            {"op": "cat", "path": "job.log", "offset": float(2**40)}
        )
        self.assertEqual(result["data"], b"")

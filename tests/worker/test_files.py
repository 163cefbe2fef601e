"""
Tests for L{jobmon.worker.files}: confinement to the working directory, the
C{ls}, C{stat}, C{cat}, C{head}, C{tail}, C{follow}, C{du} and C{df}
operations, and request checking.
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
from jobmon.worker import files
from jobmon.worker.files import Workdir, confine, reading

NOBODY = 65534

BAD_INTEGERS = (-1, -1.0, True, False, "abc", "-1", "1.5", "", " 1", "\u00b2")
BAD_INTEGERS += (1.5, math.nan, math.inf, -math.inf, None, [1], {"n": 1})
"""Values that no integer argument of a request accepts."""


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


def splitLines(data):
    """
    Split C{data} into lines as C{head} and C{tail} count them: each keeps
    its newline, and a last piece without one is a line too.
    """
    pieces = data.split(b"\n")
    allLines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        allLines.append(pieces[-1])
    return allLines


def referenceHead(data, lines):
    """
    Compute C{head -n lines} of C{data} the simple way: split it all.
    """
    return b"".join(splitLines(data)[:lines])


def referenceTail(data, lines):
    """
    Compute C{tail -n lines} of C{data} the simple way: split it all.
    """
    if lines == 0:
        return b""
    return b"".join(splitLines(data)[-lines:])


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
        # mktemp's directory is made by mkdtemp, mode 0700: open it, so that
        # only what a test closes is closed to an unprivileged account.
        os.makedirs(base)
        os.chmod(os.path.dirname(base), 0o755)
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
            self.assertRaises(ValueError, Workdir, "/tmp", maxDuEntries=bad)

    def test_duDefaults(self):
        """
        C{du} visits at most 100000 entries and spends at most 10 seconds
        by default.
        """
        workdir = Workdir("/nonexistent/dir")
        self.assertEqual(workdir.maxDuEntries, 100000)
        self.assertEqual(workdir.duSeconds, 10.0)

    def test_badDuSeconds(self):
        """
        The time bound of C{du} must be a positive, finite number; a
        fraction is fine.
        """
        for bad in (0, -1, math.inf, math.nan, True, "10"):
            self.assertRaises(ValueError, Workdir, "/tmp", duSeconds=bad)
        self.assertEqual(Workdir("/tmp", duSeconds=0.5).duSeconds, 0.5)


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
        self.patch(reading, "TAIL_BLOCK", block)
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
        self.assertLessEqual(pread.total, reading.TAIL_BLOCK)
        lastBlock = size + 20 - reading.TAIL_BLOCK
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
        for bad in BAD_INTEGERS:
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

    def test_badPathNewOps(self):
        """
        The new ops check their path as the old ones do.
        """
        for op in ("head", "follow", "du", "df"):
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": 3})
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": None})
            self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op, "path": "a\0b"})

    def test_pathRequiredNewOps(self):
        """
        C{head} and C{follow} need a path; C{du} and C{df} default to the
        working directory.
        """
        for op in ("head", "follow"):
            error = self.assertFault(BAD_REQUEST, self.workdir.run, {"op": op})
            self.assertEqual(error.message, "missing argument 'path'")
        self.assertEqual(self.workdir.run({"op": "du"})["path"], ".")
        self.assertEqual(self.workdir.run({"op": "df"})["path"], ".")

    def test_badNumbersNewOps(self):
        """
        The new integer arguments refuse what the old ones refuse, naming
        the argument.
        """
        cases = (
            ("head", "lines"),
            ("head", "bytes"),
            ("tail", "bytes"),
            ("follow", "offset"),
            ("ls", "depth"),
        )
        for bad in BAD_INTEGERS:
            for op, name in cases:
                request = {"op": op, "path": "job.log", name: bad}
                error = self.assertFault(BAD_REQUEST, self.workdir.run, request)
                self.assertIn(repr(name), error.message)

    def test_tooLargeNewOps(self):
        """
        C{depth} above 8 and C{head} lines above 100000 are bad requests.
        """
        for request in (
            {"op": "ls", "depth": 9},
            {"op": "head", "path": "job.log", "lines": 100001},
            {"op": "head", "path": "job.log", "bytes": 2**63},
            {"op": "tail", "path": "job.log", "bytes": 2**63},
        ):
            self.assertFault(BAD_REQUEST, self.workdir.run, request)

    def test_linesAndBytes(self):
        """
        C{head} and C{tail} take C{lines} or C{bytes}, not both.
        """
        for op in ("head", "tail"):
            request = {"op": op, "path": "job.log", "lines": 1, "bytes": 1}
            error = self.assertFault(BAD_REQUEST, self.workdir.run, request)
            self.assertEqual(error.message, "give 'lines' or 'bytes', not both")

    def test_allMustBeBoolean(self):
        """
        C{all} of C{ls} must be a real boolean.
        """
        for bad in (0, 1, "true", "false", None, 1.0):
            error = self.assertFault(
                BAD_REQUEST, self.workdir.run, {"op": "ls", "all": bad}
            )
            self.assertEqual(error.message, "'all' must be a boolean")

    def test_extraFieldsIgnoredNewOps(self):
        """
        The new ops ignore fields they do not use, such as C{timeout}.
        """
        for request in (
            {"op": "head", "path": "job.log", "offset": "junk", "timeout": 3},
            {"op": "follow", "path": "job.log", "lines": "junk", "timeout": 3},
            {"op": "du", "depth": "junk", "timeout": 3},
            {"op": "df", "all": "junk", "timeout": 3},
            {"op": "ls", "lines": "junk", "timeout": 3},
        ):
            self.workdir.run(request)


class LsTreeTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{depth} and C{all} options of C{ls}.
    """

    def setUp(self):
        self.buildFixture()

    def names(self, result):
        """
        Return the names of the entries of an C{ls} result.
        """
        return [entry["name"] for entry in result["entries"]]

    def makeTree(self, paths, root=None):
        """
        Create C{paths} under C{root} (the working directory by default):
        those ending with C{/} as directories, the others as files holding
        their own name.
        """
        root = root or self.root
        for path in paths:
            full = os.path.join(root, path)
            if path.endswith("/"):
                os.makedirs(full, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(path.encode())

    def test_depthOne(self):
        """
        With C{depth} 1 the entries of subdirectories are listed too, named
        relative to the path listed and sorted by that name; links to
        directories, inside or outside, are listed but not descended.
        """
        result = self.workdir.run({"op": "ls", "depth": 1})
        self.assertIs(result["truncated"], False)
        self.assertEqual(
            self.names(result),
            [
                ".hidden",
                "dangling",
                "job.log",
                "latest.log",
                "leak",
                "outdir",
                "sub",
                "sub/inner.txt",
                "subLink",
                "w2link",
            ],
        )
        byName = {entry["name"]: entry for entry in result["entries"]}
        self.assertEqual(byName["sub/inner.txt"]["type"], "file")
        self.assertEqual(byName["sub/inner.txt"]["size"], 5.0)
        self.assertEqual(byName["subLink"]["type"], "link")
        self.assertEqual(byName["outdir"]["type"], "link")

    def test_depthZeroIsDefault(self):
        """
        C{depth} 0, the default, lists only the directory itself.
        """
        self.assertEqual(
            self.workdir.run({"op": "ls"}), self.workdir.run({"op": "ls", "depth": 0})
        )
        self.assertNotIn("sub/inner.txt", self.names(self.workdir.run({"op": "ls"})))

    def test_sortedByRelativeName(self):
        """
        The listing is sorted by the whole relative name, as strings sort:
        C{"a.txt"} comes between C{"a"} and C{"a/b"}, since C{"."} sorts
        before C{"/"}.
        """
        self.makeTree(["t/a/b", "t/a.txt", "t/a-c", "t/a/0/", "t/B", "t/a0"])
        result = self.workdir.ls("t", depth=3)
        expected = ["B", "a", "a-c", "a.txt", "a/0", "a/b", "a0"]
        self.assertEqual(self.names(result), expected)
        self.assertEqual(expected, sorted(expected))

    def test_depthLimit(self):
        """
        C{depth} N lists N levels below the path, no more.
        """
        self.makeTree(["t/1/2/3/4/f"])
        self.assertEqual(self.names(self.workdir.ls("t", depth=1)), ["1", "1/2"])
        self.assertEqual(
            self.names(self.workdir.ls("t", depth=2)), ["1", "1/2", "1/2/3"]
        )
        self.assertEqual(
            self.names(self.workdir.ls("t", depth=8)),
            ["1", "1/2", "1/2/3", "1/2/3/4", "1/2/3/4/f"],
        )

    def test_maxDepth(self):
        """
        C{depth} 8, the most allowed, lists a chain of directories eight
        levels deep.
        """
        chain = "/".join("d%d" % i for i in range(10))
        self.makeTree(["t/" + chain + "/"])
        result = self.workdir.run({"op": "ls", "path": "t", "depth": 8})
        self.assertEqual(
            self.names(result),
            ["/".join("d%d" % i for i in range(n)) for n in range(1, 10)],
        )

    def test_relativeToPath(self):
        """
        Names are relative to the path listed, which may be a link to a
        directory inside.
        """
        self.makeTree(["sub/deeper/x"])
        expected = ["deeper", "deeper/x", "inner.txt"]
        self.assertEqual(self.names(self.workdir.ls("sub", depth=2)), expected)
        result = self.workdir.ls("subLink", depth=2)
        self.assertEqual(result["path"], "subLink")
        self.assertEqual(self.names(result), expected)

    def test_hidden(self):
        """
        C{all} false leaves out dot names, and does not descend hidden
        directories; the default includes them.
        """
        self.makeTree([".git/config", "sub/.swap", "sub/seen"])
        self.assertEqual(
            self.names(self.workdir.ls("sub", depth=1, includeHidden=False)),
            ["inner.txt", "seen"],
        )
        result = self.workdir.run({"op": "ls", "depth": 2, "all": False})
        names = self.names(result)
        self.assertFalse([n for n in names if "/." in n or n.startswith(".")], names)
        self.assertIn("sub/seen", names)
        result = self.workdir.run({"op": "ls", "depth": 2})
        self.assertIn(".git/config", self.names(result))
        self.assertIn("sub/.swap", self.names(result))
        self.assertIn(".hidden", self.names(result))

    def test_hiddenPathGiven(self):
        """
        A hidden file named explicitly is shown even with C{all} false.
        """
        result = self.workdir.run({"op": "ls", "path": ".hidden", "all": False})
        self.assertEqual(self.names(result), [".hidden"])

    def test_entryCapWholeListing(self):
        """
        C{maxEntries} caps the whole listing, subdirectories included: the
        first entries by relative name are kept.
        """
        self.makeTree(["t/a/1", "t/a/2", "t/b", "t/c/3"])
        workdir = Workdir(self.root, maxEntries=3)
        result = workdir.ls("t", depth=1)
        self.assertEqual(self.names(result), ["a", "a/1", "a/2"])
        self.assertIs(result["truncated"], True)

    def test_entryCapExact(self):
        """
        A tree with exactly C{maxEntries} entries is not truncated.
        """
        self.makeTree(["t/a/1", "t/a/2", "t/b"])
        result = Workdir(self.root, maxEntries=4).ls("t", depth=1)
        self.assertEqual(self.names(result), ["a", "a/1", "a/2", "b"])
        self.assertIs(result["truncated"], False)

    @settings(deadline=None, max_examples=50)
    @given(
        paths=st.lists(
            st.lists(st.sampled_from(["a", "b", ".c", "a.d"]), min_size=1, max_size=4),
            max_size=12,
        ),
        depth=st.integers(0, 4),
        maxEntries=st.integers(1, 12),
        includeHidden=st.booleans(),
    )
    def test_matchesFullWalk(self, paths, depth, maxEntries, includeHidden):
        """
        For any tree, depth and cap, the listing is the first C{maxEntries}
        names of a full C{os.walk} down to C{depth} (with hidden names left
        out as asked), and C{truncated} says whether there were more.
        """
        root = os.path.abspath(self.mktemp())
        # The last component of each path is a file, unless another path
        # goes through it.
        dirs = {"/".join(p[:i]) for p in paths for i in range(1, len(p))}
        for p in paths:
            name = "/".join(p)
            if name not in dirs:
                self.makeTree([name], root)
        for d in dirs:
            self.makeTree([d + "/"], root)
        os.makedirs(root, exist_ok=True)
        expected = []
        for top, subdirs, filenames in os.walk(root):
            relative = os.path.relpath(top, root)
            level = 0 if relative == "." else relative.count("/") + 1
            if not includeHidden:
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
                filenames = [f for f in filenames if not f.startswith(".")]
            for name in subdirs + filenames:
                expected.append(name if relative == "." else relative + "/" + name)
            if level >= depth:
                subdirs[:] = []
        expected.sort()
        result = Workdir(root, maxEntries=maxEntries).ls(".", depth, includeHidden)
        self.assertEqual(self.names(result), expected[:maxEntries])
        self.assertEqual(result["truncated"], len(expected) > maxEntries)

    def test_byteCapCountsRelativeNames(self):
        """
        The whole relative name counts against C{maxResult}.
        """
        self.makeTree(["t/" + "d" * 50 + "/" + "f" * 50])
        result = Workdir(self.root, maxResult=120).ls("t", depth=1)
        self.assertEqual(self.names(result), ["d" * 50])
        self.assertIs(result["truncated"], True)

    def test_skipsWhatCannotBeKept(self):
        """
        Once the cap is full, a subdirectory whose name sorts after every
        entry kept is not even opened: its entries could not be listed.
        """
        self.makeTree(["t/a/1", "t/a/2", "t/a/3", "t/z/1", "t/z/2"])
        opened = []
        original = Workdir._openDirectory

        def recording(workdir, path, identity):
            opened.append(os.path.relpath(path, self.root))
            return original(workdir, path, identity)

        self.patch(Workdir, "_openDirectory", recording)
        result = Workdir(self.root, maxEntries=2).ls("t", depth=1)
        self.assertEqual(self.names(result), ["a", "a/1"])
        self.assertIs(result["truncated"], True)
        self.assertEqual(opened, ["t", "t/a"])

    def test_subdirectoryReplacedByOutsideLink(self):
        """
        A subdirectory that the job replaces by a link to outside the
        working directory between being seen and being read is not read:
        nothing outside is listed.
        """
        original = Workdir._openDirectory

        def swapping(workdir, path, identity):
            if path == os.path.join(self.root, "sub"):
                os.rename(path, path + ".old")
                os.symlink(self.outside, path)
            return original(workdir, path, identity)

        self.patch(Workdir, "_openDirectory", swapping)
        result = self.workdir.ls(".", depth=1)
        self.assertIn("sub", self.names(result))
        self.assertFalse([n for n in self.names(result) if n.startswith("sub/")])
        self.assertNotIn("sub/secret.txt", self.names(result))

    def test_subdirectoryReplacedAbove(self):
        """
        A directory higher up replaced by a link to a look-alike outside is
        noticed too: the directory opened is not the one seen.
        """
        self.makeTree(["t/a/b/inner", "t2/a/b/secret"], os.path.dirname(self.root))
        original = Workdir._openDirectory
        top = os.path.join(os.path.dirname(self.root), "t")

        def swapping(workdir, path, identity):
            if path.endswith("/a/b") and not os.path.islink(os.path.join(top, "a")):
                os.rename(os.path.join(top, "a"), os.path.join(top, "a.old"))
                os.symlink(
                    os.path.join(os.path.dirname(self.root), "t2", "a"),
                    os.path.join(top, "a"),
                )
            return original(workdir, path, identity)

        # The tree is outside the working directory: list it from a
        # working directory around both.
        workdir = Workdir(os.path.dirname(self.root))
        self.patch(Workdir, "_openDirectory", swapping)
        names = self.names(workdir.ls("t", depth=3))
        self.assertNotIn("a/b/secret", names)
        self.assertNotIn("a/b/inner", names)

    def test_unreadableSubdirectory(self):
        """
        A subdirectory the job's account may not read is listed, without
        its contents, and the rest of the listing goes on.
        """
        self.makeTree(["t/closed/x", "t/open/y"])
        closed = os.path.join(self.root, "t", "closed")
        os.chmod(closed, 0)
        self.addCleanup(os.chmod, closed, 0o755)

        def check():
            result = self.workdir.ls("t", depth=1)
            if self.names(result) != ["closed", "open", "open/y"]:
                raise AssertionError(self.names(result))

        unprivileged(check)

    def test_subdirectoryVanishes(self):
        """
        A subdirectory removed between being seen and being read is listed
        without contents.
        """
        self.makeTree(["t/gone/x", "t/kept/y"])
        original = Workdir._openDirectory

        def removing(workdir, path, identity):
            if path.endswith("/gone"):
                os.remove(os.path.join(path, "x"))
                os.rmdir(path)
            return original(workdir, path, identity)

        self.patch(Workdir, "_openDirectory", removing)
        self.assertEqual(
            self.names(self.workdir.ls("t", depth=1)), ["gone", "kept", "kept/y"]
        )


class HeadTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{head} operation.
    """

    def setUp(self):
        self.buildFixture()

    def test_lines(self):
        """
        C{head} returns the first lines, with the fields of C{cat}.
        """
        self.assertEqual(
            self.workdir.run({"op": "head", "path": "job.log", "lines": 2}),
            {
                "path": "job.log",
                "data": b"one\ntwo\n",
                "offset": 0.0,
                "size": 14.0,
                "truncated": False,
            },
        )

    def test_defaultLines(self):
        """
        C{lines} defaults to 10.
        """
        self.write("many", b"".join(b"%d\n" % i for i in range(20)))
        result = self.workdir.run({"op": "head", "path": "many"})
        self.assertEqual(result["data"], b"".join(b"%d\n" % i for i in range(10)))

    def test_fewerLines(self):
        """
        A file with fewer lines than asked is returned whole, its last
        line with or without a newline.
        """
        result = self.workdir.head("job.log", 100)
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        self.write("partial", b"one\ntwo")
        result = self.workdir.head("partial", 5)
        self.assertEqual(result["data"], b"one\ntwo")
        self.assertIs(result["truncated"], False)

    def test_zeroLines(self):
        """
        C{lines} 0 gives nothing.
        """
        result = self.workdir.run({"op": "head", "path": "job.log", "lines": 0})
        self.assertEqual(result["data"], b"")
        self.assertIs(result["truncated"], False)

    def test_emptyFile(self):
        """
        The head of an empty file is empty.
        """
        self.write("empty", b"")
        self.assertEqual(self.workdir.head("empty")["data"], b"")

    def test_bytes(self):
        """
        C{bytes} gives the first bytes, whatever the lines.
        """
        result = self.workdir.run({"op": "head", "path": "job.log", "bytes": 5})
        self.assertEqual(
            result,
            {
                "path": "job.log",
                "data": b"one\nt",
                "offset": 0.0,
                "size": 14.0,
                "truncated": False,
            },
        )
        result = self.workdir.run({"op": "head", "path": "job.log", "bytes": 1000})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        result = self.workdir.run({"op": "head", "path": "job.log", "bytes": 0})
        self.assertEqual(result["data"], b"")

    def test_capLines(self):
        """
        Lines that do not fit in C{maxResult} give its first bytes, with
        C{truncated}.
        """
        result = Workdir(self.root, maxResult=6).head("job.log", 2)
        self.assertEqual(result["data"], b"one\ntw")
        self.assertIs(result["truncated"], True)

    def test_capAtLineEnd(self):
        """
        Lines that fill C{maxResult} exactly are not reported as cut, nor
        is a file that ends at the cap.
        """
        result = Workdir(self.root, maxResult=8).head("job.log", 2)
        self.assertEqual(result["data"], b"one\ntwo\n")
        self.assertIs(result["truncated"], False)
        result = Workdir(self.root, maxResult=14).head("job.log", 10)
        self.assertIs(result["truncated"], False)

    def test_capBytes(self):
        """
        C{bytes} above C{maxResult} gives the first C{maxResult} bytes, with
        C{truncated}.
        """
        result = Workdir(self.root, maxResult=5).head("job.log", byteCount=10)
        self.assertEqual(result["data"], b"one\nt")
        self.assertIs(result["truncated"], True)

    def test_readsAtMostCap(self):
        """
        C{head} of a file without newlines reads C{maxResult} bytes and one
        more, not the file.
        """
        self.write("big", b"x" * 1000000)
        pread = CountingPread()
        result = Workdir(self.root, maxResult=100000, pread=pread).head("big", 5)
        self.assertEqual(len(result["data"]), 100000)
        self.assertIs(result["truncated"], True)
        self.assertLessEqual(pread.total, 100001)

    def test_readsOnlyWhatIsNeeded(self):
        """
        C{head} stops reading once it has the lines: one block of a large
        file.
        """
        self.write("big", b"line\n" * 200000)
        pread = CountingPread()
        result = Workdir(self.root, pread=pread).head("big", 3)
        self.assertEqual(result["data"], b"line\n" * 3)
        self.assertLessEqual(pread.total, reading.HEAD_BLOCK)

    @settings(deadline=None, max_examples=200)
    @given(
        data=st.lists(st.sampled_from([b"a", b"bc", b"\n"]), max_size=30).map(b"".join),
        lines=st.integers(0, 12),
        maxResult=st.integers(1, 30),
        block=st.integers(1, 7),
    )
    def test_matchesReference(self, data, lines, maxResult, block):
        """
        For any content, line count, cap and block size, C{head} gives the
        first lines as splitting the whole file would, cut to C{maxResult}
        bytes, with C{truncated} exactly when bytes were lost.
        """
        self.patch(reading, "HEAD_BLOCK", block)
        self.write("random", data)
        result = Workdir(self.root, maxResult=maxResult).head("random", lines)
        expected = referenceHead(data, lines)
        self.assertEqual(result["data"], expected[:maxResult])
        self.assertEqual(result["truncated"], len(expected) > maxResult)
        self.assertEqual(result["offset"], 0.0)
        self.assertEqual(result["size"], float(len(data)))

    @settings(deadline=None, max_examples=100)
    @given(
        data=st.binary(max_size=40),
        count=st.integers(0, 50),
        maxResult=st.integers(1, 45),
    )
    def test_bytesMatchSlicing(self, data, count, maxResult):
        """
        C{head} with C{bytes} gives C{data[:bytes]}, cut to C{maxResult},
        with C{truncated} exactly when the cut lost bytes.
        """
        self.write("random", data)
        request = {"op": "head", "path": "random", "bytes": count}
        result = Workdir(self.root, maxResult=maxResult).run(request)
        self.assertEqual(result["data"], data[:count][:maxResult])
        self.assertEqual(result["truncated"], len(data[:count]) > maxResult)
        self.assertEqual(result["offset"], 0.0)

    def test_directory(self):
        """
        C{head} of a directory fails with C{IS_A_DIRECTORY}.
        """
        self.assertFault(
            IS_A_DIRECTORY, self.workdir.run, {"op": "head", "path": "sub"}
        )
        self.assertFault(
            IS_A_DIRECTORY, self.workdir.run, {"op": "head", "path": "sub", "bytes": 1}
        )

    def test_fifo(self):
        """
        C{head} of a FIFO is refused at once rather than waiting for a
        writer.
        """
        os.mkfifo(os.path.join(self.root, "pipe"))
        with noBlocking(self):
            self.assertFault(
                REMOTE_ERROR, self.workdir.run, {"op": "head", "path": "pipe"}
            )

    def test_outsideAndMissing(self):
        """
        C{head} of a link to outside is refused; of a missing file fails
        with C{NO_SUCH_FILE}.
        """
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "head", "path": "leak"}
        )
        self.assertFault(
            NO_SUCH_FILE, self.workdir.run, {"op": "head", "path": "nope"}
        )

    def test_permissionDenied(self):
        """
        A file the job's account may not read fails with
        C{PERMISSION_DENIED}.
        """
        os.chmod(os.path.join(self.root, "job.log"), 0)
        self.assertFault(
            PERMISSION_DENIED,
            unprivileged,
            self.workdir.run,
            {"op": "head", "path": "job.log"},
        )


class TailBytesTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for C{tail} with C{bytes} (C{tail -c}).
    """

    def setUp(self):
        self.buildFixture()

    def test_bytes(self):
        """
        C{bytes} gives the last bytes, with where they start.
        """
        self.assertEqual(
            self.workdir.run({"op": "tail", "path": "job.log", "bytes": 5}),
            {
                "path": "job.log",
                "data": b"hree\n",
                "offset": 9.0,
                "size": 14.0,
                "truncated": False,
            },
        )

    def test_moreThanFile(self):
        """
        Asking for more bytes than the file has gives the whole file.
        """
        result = self.workdir.run({"op": "tail", "path": "job.log", "bytes": 1000})
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")
        self.assertEqual(result["offset"], 0.0)
        self.assertIs(result["truncated"], False)

    def test_zero(self):
        """
        C{bytes} 0 gives nothing, at the end of the file.
        """
        result = self.workdir.run({"op": "tail", "path": "job.log", "bytes": 0})
        self.assertEqual(result["data"], b"")
        self.assertEqual(result["offset"], 14.0)

    def test_cap(self):
        """
        More bytes than C{maxResult} give its last bytes, with
        C{truncated}.
        """
        result = Workdir(self.root, maxResult=4).tail("job.log", byteCount=10)
        self.assertEqual(result["data"], b"ree\n")
        self.assertEqual(result["offset"], 10.0)
        self.assertIs(result["truncated"], True)

    @settings(deadline=None, max_examples=100)
    @given(
        data=st.binary(max_size=40),
        count=st.integers(0, 50),
        maxResult=st.integers(1, 45),
    )
    def test_matchesSlicing(self, data, count, maxResult):
        """
        C{tail} with C{bytes} gives the last C{bytes} bytes as slicing
        would, cut to the last C{maxResult}, with C{truncated} exactly when
        bytes were lost and C{offset} where the data starts.
        """
        self.write("random", data)
        request = {"op": "tail", "path": "random", "bytes": count}
        result = Workdir(self.root, maxResult=maxResult).run(request)
        asked = data[len(data) - min(count, len(data)) :]
        expected = asked[len(asked) - min(len(asked), maxResult) :]
        self.assertEqual(result["data"], expected)
        self.assertEqual(result["truncated"], len(asked) > maxResult)
        self.assertEqual(result["offset"], float(len(data) - len(expected)))
        self.assertEqual(result["size"], float(len(data)))

    def test_largeSparseFile(self):
        """
        The last bytes of a 10 GiB file are read from its end: the bytes
        asked for, no more.
        """
        path = os.path.join(self.root, "huge.log")
        self.addCleanup(os.remove, path)
        size = 10 * 2**30
        with open(path, "wb") as f:
            f.truncate(size)
            f.seek(size)
            f.write(b"end\n")
        pread = CountingPread()
        result = Workdir(self.root, pread=pread).tail("huge.log", byteCount=6)
        self.assertEqual(result["data"], b"\0\0end\n")
        self.assertEqual(result["offset"], float(size - 2))
        self.assertEqual(pread.total, 6)

    def test_shrunk(self):
        """
        A file cut while read gives C{REMOTE_IO_ERROR}, not wrong data.
        """
        workdir = Workdir(self.root, pread=lambda fd, length, offset: b"")
        error = self.assertFault(
            REMOTE_IO_ERROR, workdir.tail, "job.log", byteCount=3
        )
        self.assertEqual(error.message, "'job.log' shrank while being read")

    def test_directoryAndOutside(self):
        """
        C{tail -c} of a directory or of a link to outside is refused.
        """
        self.assertFault(
            IS_A_DIRECTORY, self.workdir.run, {"op": "tail", "path": "sub", "bytes": 1}
        )
        self.assertFault(
            OUTSIDE_WORKDIR,
            self.workdir.run,
            {"op": "tail", "path": "leak", "bytes": 1},
        )


class FollowTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for L{Workdir.followOnce} and the C{follow} op.
    """

    def setUp(self):
        self.buildFixture()

    def append(self, name, data):
        """
        Append C{data} to C{name} in the working directory.
        """
        with open(os.path.join(self.root, name), "ab") as f:
            f.write(data)

    def identity(self, name):
        """
        Return the C{"dev:ino"} of C{name} in the working directory.
        """
        st = os.stat(os.path.join(self.root, name))
        return "%d:%d" % (st.st_dev, st.st_ino)

    def test_first(self):
        """
        The first call, without an inode, reads the file from the offset
        to its end and names the file it read.
        """
        self.assertEqual(
            self.workdir.followOnce("job.log"),
            {
                "path": "job.log",
                "data": b"one\ntwo\nthree\n",
                "offset": 0.0,
                "next_offset": 14.0,
                "size": 14.0,
                "inode": self.identity("job.log"),
                "rotated": False,
                "missing": False,
                "truncated": False,
            },
        )
        result = self.workdir.followOnce("job.log", 8)
        self.assertEqual(result["data"], b"three\n")
        self.assertEqual(result["offset"], 8.0)

    def test_growth(self):
        """
        After the file grows, a call from the previous C{next_offset} with
        the previous C{inode} returns only the new bytes.
        """
        first = self.workdir.followOnce("job.log")
        self.append("job.log", b"four\n")
        result = self.workdir.followOnce(
            "job.log", int(first["next_offset"]), first["inode"]
        )
        self.assertEqual(result["data"], b"four\n")
        self.assertEqual(result["offset"], 14.0)
        self.assertEqual(result["next_offset"], 19.0)
        self.assertEqual(result["size"], 19.0)
        self.assertEqual(result["inode"], first["inode"])
        self.assertIs(result["rotated"], False)

    def test_noNews(self):
        """
        A file that did not grow gives empty data and the same offset.
        """
        inode = self.identity("job.log")
        result = self.workdir.followOnce("job.log", 14, inode)
        self.assertEqual(result["data"], b"")
        self.assertEqual(result["next_offset"], 14.0)
        self.assertIs(result["rotated"], False)
        self.assertIs(result["missing"], False)
        self.assertIs(result["truncated"], False)

    def test_truncated(self):
        """
        A file cut below the offset (C{copytruncate}) was rotated: it is
        read from 0.
        """
        inode = self.identity("job.log")
        self.write("job.log", b"new\n")
        self.assertEqual(self.identity("job.log"), inode)
        result = self.workdir.followOnce("job.log", 14, inode)
        self.assertIs(result["rotated"], True)
        self.assertEqual(result["data"], b"new\n")
        self.assertEqual(result["offset"], 0.0)
        self.assertEqual(result["next_offset"], 4.0)

    def test_truncatedWithoutInode(self):
        """
        A file shorter than the offset is taken as rotated even when the
        caller has no inode.
        """
        result = self.workdir.followOnce("job.log", 100)
        self.assertIs(result["rotated"], True)
        self.assertEqual(result["data"], b"one\ntwo\nthree\n")

    def test_replaced(self):
        """
        A file replaced by another (renamed over it) was rotated, even when
        the new one is longer than the offset: it is read from 0.
        """
        inode = self.identity("job.log")
        replacement = os.path.join(self.root, "job.log.new")
        with open(replacement, "wb") as f:
            f.write(b"a much longer new file\n")
        os.rename(replacement, os.path.join(self.root, "job.log"))
        result = self.workdir.followOnce("job.log", 14, inode)
        self.assertIs(result["rotated"], True)
        self.assertEqual(result["data"], b"a much longer new file\n")
        self.assertEqual(result["offset"], 0.0)
        self.assertEqual(result["inode"], self.identity("job.log"))
        self.assertNotEqual(result["inode"], inode)

    def test_missing(self):
        """
        A missing file gives C{missing}, no data, and keeps the offset and
        the inode given, so that the file's return is seen as a rotation.
        """
        inode = self.identity("job.log")
        os.rename(os.path.join(self.root, "job.log"), os.path.join(self.root, "old"))
        result = self.workdir.followOnce("job.log", 14, inode)
        self.assertEqual(
            result,
            {
                "path": "job.log",
                "data": b"",
                "offset": 14.0,
                "next_offset": 14.0,
                "size": 0.0,
                "inode": inode,
                "rotated": False,
                "missing": True,
                "truncated": False,
            },
        )
        self.write("job.log", b"back again, and longer than before\n")
        result = self.workdir.followOnce("job.log", 14, result["inode"])
        self.assertIs(result["rotated"], True)
        self.assertIs(result["missing"], False)
        self.assertEqual(result["data"], b"back again, and longer than before\n")

    def test_missingWithoutInode(self):
        """
        A file missing from the start has the empty inode C{""}, which
        the next call may pass back; so does a file whose directory is
        missing, or a dangling link.
        """
        for path in ("later.log", "logs/later.log", "dangling"):
            result = self.workdir.followOnce(path, 0, None)
            self.assertIs(result["missing"], True)
            self.assertEqual(result["inode"], "")
        self.write("later.log", b"hello\n")
        result = self.workdir.followOnce("later.log", 0, "")
        self.assertEqual(result["data"], b"hello\n")
        self.assertIs(result["rotated"], False)

    def test_cap(self):
        """
        At most C{maxResult} bytes are returned, with C{truncated}; the
        next call from C{next_offset} goes on.
        """
        workdir = Workdir(self.root, maxResult=5)
        result = workdir.followOnce("job.log")
        self.assertEqual(result["data"], b"one\nt")
        self.assertIs(result["truncated"], True)
        self.assertEqual(result["next_offset"], 5.0)
        result = workdir.followOnce("job.log", 5, result["inode"])
        self.assertEqual(result["data"], b"wo\nth")
        self.assertIs(result["truncated"], True)
        result = workdir.followOnce("job.log", 10, result["inode"])
        self.assertEqual(result["data"], b"ree\n")
        self.assertIs(result["truncated"], False)

    def test_capAfterRotation(self):
        """
        The cap applies to a rotated file read from 0 as well.
        """
        result = Workdir(self.root, maxResult=3).followOnce("job.log", 0, "1:1")
        self.assertIs(result["rotated"], True)
        self.assertEqual(result["data"], b"one")
        self.assertIs(result["truncated"], True)
        self.assertEqual(result["next_offset"], 3.0)

    def test_confinedEachTime(self):
        """
        The path is confined on every call: a log replaced by a link to a
        file outside is refused, though it was followed before.
        """
        first = self.workdir.followOnce("job.log")
        os.remove(os.path.join(self.root, "job.log"))
        os.symlink(
            os.path.join(self.outside, "secret.txt"), os.path.join(self.root, "job.log")
        )
        self.assertFault(
            OUTSIDE_WORKDIR,
            self.workdir.followOnce,
            "job.log",
            int(first["next_offset"]),
            first["inode"],
        )
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.followOnce, "leak")

    def test_notRegular(self):
        """
        Following a directory fails with C{IS_A_DIRECTORY}, a FIFO with
        C{REMOTE_ERROR} at once.
        """
        self.assertFault(IS_A_DIRECTORY, self.workdir.followOnce, "sub")
        os.mkfifo(os.path.join(self.root, "pipe"))
        with noBlocking(self):
            self.assertFault(REMOTE_ERROR, self.workdir.followOnce, "pipe")

    def test_permissionDenied(self):
        """
        A file the job's account may not read fails with
        C{PERMISSION_DENIED}, rather than passing for missing.
        """
        os.chmod(os.path.join(self.root, "job.log"), 0)
        self.assertFault(
            PERMISSION_DENIED, unprivileged, self.workdir.followOnce, "job.log"
        )

    def test_runDoesNotWait(self):
        """
        The C{follow} op runs one L{Workdir.followOnce}: with nothing new,
        it returns at once, whatever C{wait} says.
        """
        inode = self.identity("job.log")
        request = {
            "op": "follow",
            "path": "job.log",
            "offset": 14.0,
            "inode": inode,
            "wait": 25,
        }
        with noBlocking(self, 2):
            result = self.workdir.run(request)
        self.assertEqual(result, self.workdir.followOnce("job.log", 14, inode))
        self.assertEqual(result["data"], b"")

    def test_runPassesArguments(self):
        """
        The C{follow} op passes the request's offset and inode on.
        """
        result = self.workdir.run(
            {"op": "follow", "path": "job.log", "offset": "4", "inode": "0:0"}
        )
        self.assertIs(result["rotated"], True)
        result = self.workdir.run(
            {"op": "follow", "path": "latest.log", "offset": 4}
        )
        self.assertEqual(result["data"], b"two\nthree\n")
        self.assertEqual(result["path"], "latest.log")

    @settings(deadline=None, max_examples=50)
    @given(
        chunks=st.lists(st.binary(min_size=1, max_size=20), max_size=10),
        maxResult=st.integers(1, 25),
        pollsBetween=st.integers(0, 3),
    )
    def test_nothingLostOrRepeated(self, chunks, maxResult, pollsBetween):
        """
        A follower that feeds each result's C{next_offset} and C{inode} into
        the next call, while the file grows by appends, reads exactly what
        was written, whatever the cap and however often it looks.
        """
        self.write("growing", b"")
        workdir = Workdir(self.root, maxResult=maxResult)
        offset, inode, seen = 0, None, []

        def poll():
            nonlocal offset, inode
            while True:
                result = workdir.followOnce("growing", offset, inode)
                self.assertIs(result["rotated"], False)
                self.assertEqual(result["offset"], float(offset))
                seen.append(result["data"])
                offset, inode = int(result["next_offset"]), result["inode"]
                if not result["truncated"]:
                    return

        for chunk in chunks:
            self.append("growing", chunk)
            for _ in range(pollsBetween):
                poll()
        poll()
        self.assertEqual(b"".join(seen), b"".join(chunks))


class CheckFollowTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for L{Workdir.checkFollow}, the checking of C{follow} requests.
    """

    def setUp(self):
        self.buildFixture()

    def test_defaults(self):
        """
        C{offset} defaults to 0, C{inode} to none and C{wait} to 10
        seconds.
        """
        self.assertEqual(
            self.workdir.checkFollow({"op": "follow", "path": "job.log"}),
            ("job.log", 0, None, 10.0),
        )

    def test_values(self):
        """
        Given values come back checked: offsets as ints, waits as floats,
        inodes in canonical form.
        """
        request = {
            "op": "follow",
            "path": "sub/inner.txt",
            "offset": 2.0**40,
            "inode": "0042:7",
            "wait": 2.5,
        }
        self.assertEqual(
            self.workdir.checkFollow(request), ("sub/inner.txt", 2**40, "42:7", 2.5)
        )
        for wait, expected in ((0, 0.0), (25, 25.0), ("3", 3.0), ("0.25", 0.25)):
            request = {"path": "x", "wait": wait}
            self.assertEqual(self.workdir.checkFollow(request)[3], expected)

    def test_emptyInode(self):
        """
        The empty inode of a result for a missing file means none.
        """
        request = {"path": "x", "inode": ""}
        self.assertIsNone(self.workdir.checkFollow(request)[2])

    def test_badWait(self):
        """
        C{wait} must be a number from 0 to 25.
        """
        for bad in (-1, 25.5, 26, 10**400, True, "abc", "1e3", "", None, [1]):
            error = self.assertFault(
                BAD_REQUEST, self.workdir.checkFollow, {"path": "x", "wait": bad}
            )
            self.assertIn("'wait'", error.message)
        for bad in (math.nan, math.inf, -math.inf, -0.5):
            self.assertFault(
                BAD_REQUEST, self.workdir.checkFollow, {"path": "x", "wait": bad}
            )

    def test_badInode(self):
        """
        C{inode} must be a C{"dev:ino"} string as a result gave it.
        """
        for bad in (1, 1.5, True, "1", "1:", ":1", "a:b", "1:2:3", "-1:2", " 1:2",
                    "\u00b2:1", ["1:2"]):
            error = self.assertFault(
                BAD_REQUEST, self.workdir.checkFollow, {"path": "x", "inode": bad}
            )
            self.assertIn("'inode'", error.message)

    def test_badOffsetAndPath(self):
        """
        C{offset} must be a non-negative integer; C{path} is required and
        checked.
        """
        self.assertFault(
            BAD_REQUEST, self.workdir.checkFollow, {"path": "x", "offset": -1}
        )
        self.assertFault(BAD_REQUEST, self.workdir.checkFollow, {"offset": 0})
        for bad in (None, 3, "a\0b", "a/" * 5000, "bad\ud800name"):
            self.assertFault(BAD_REQUEST, self.workdir.checkFollow, {"path": bad})
        self.assertFault(BAD_REQUEST, self.workdir.checkFollow, "follow")

    def test_noIO(self):
        """
        Checking touches no file: it works for a working directory that
        does not exist, and does not confine the path (L{followOnce} does,
        each time).
        """
        workdir = Workdir(os.path.join(self.mktemp(), "missing"))
        self.assertEqual(
            workdir.checkFollow({"path": "../elsewhere"}),
            ("../elsewhere", 0, None, 10.0),
        )
        self.assertIsNone(workdir._root)


class TickingClock:
    """
    A stand-in for C{time.monotonic} that moves C{step} seconds each time
    it is read.
    """

    def __init__(self, step):
        self.now = 0.0
        self.step = step

    def __call__(self):
        """
        Return the time, then move it on.
        """
        now = self.now
        self.now += self.step
        return now


class DuTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the C{du} operation.
    """

    def setUp(self):
        self.buildFixture()
        self.makeDuTree()

    def makeDuTree(self):
        """
        Build C{tree/} in the working directory, with files of known
        sizes::

            tree/
              big              200000 bytes
              small            5 bytes
              empty            0 bytes
              sub/one          3000 bytes
              sub/deeper/two   70000 bytes
              link   ->        sub
              outside ->       the sibling outside the working directory
        """
        self.tree = os.path.join(self.root, "tree")
        os.makedirs(os.path.join(self.tree, "sub", "deeper"))
        for name, size in (
            ("big", 200000),
            ("small", 5),
            ("empty", 0),
            ("sub/one", 3000),
            ("sub/deeper/two", 70000),
        ):
            with open(os.path.join(self.tree, name), "wb") as f:
                f.write(b"x" * size)
        os.symlink("sub", os.path.join(self.tree, "link"))
        os.symlink(self.outside, os.path.join(self.tree, "outside"))

    def allocated(self, *names):
        """
        Return the bytes allocated to C{names} under C{tree}, by C{lstat}.
        """
        return sum(
            os.lstat(os.path.join(self.tree, name)).st_blocks * 512 for name in names
        )

    def test_totals(self):
        """
        C{total} is the blocks allocated under the directory, itself
        included; C{entries} give each direct child's total, largest
        first; links are counted as links, not followed.
        """
        result = self.workdir.run({"op": "du", "path": "tree"})
        everything = [
            ".",
            "big",
            "small",
            "empty",
            "sub",
            "sub/one",
            "sub/deeper",
            "sub/deeper/two",
            "link",
            "outside",
        ]
        self.assertEqual(result["path"], "tree")
        self.assertEqual(result["total"], float(self.allocated(*everything)))
        # Everything that is not a directory: files and links.
        self.assertEqual(result["files"], 7)
        self.assertEqual(result["dirs"], 2)
        self.assertEqual(result["unreadable"], 0)
        self.assertIs(result["truncated"], False)
        sizes = {e["name"]: (e["size"], e["type"]) for e in result["entries"]}
        self.assertEqual(
            sizes,
            {
                "big": (float(self.allocated("big")), "file"),
                "small": (float(self.allocated("small")), "file"),
                "empty": (float(self.allocated("empty")), "file"),
                "sub": (
                    float(
                        self.allocated("sub", "sub/one", "sub/deeper", "sub/deeper/two")
                    ),
                    "dir",
                ),
                "link": (float(self.allocated("link")), "link"),
                "outside": (float(self.allocated("outside")), "link"),
            },
        )
        ordered = [(-e["size"], e["name"]) for e in result["entries"]]
        self.assertEqual(ordered, sorted(ordered))
        self.assertEqual(
            [e["name"] for e in result["entries"]][:2], ["big", "sub"]
        )

    def test_types(self):
        """
        Sizes are floats; counts are ints.
        """
        result = self.workdir.du("tree")
        self.assertIsInstance(result["total"], float)
        for name in ("files", "dirs", "unreadable"):
            self.assertIsInstance(result[name], int)
        for entry in result["entries"]:
            self.assertIsInstance(entry["size"], float)

    def test_allocatedNotApparent(self):
        """
        A sparse file counts for the blocks it uses, not its length.
        """
        with open(os.path.join(self.tree, "sparse"), "wb") as f:
            f.truncate(2**30)
        result = self.workdir.du("tree")
        [sparse] = [e for e in result["entries"] if e["name"] == "sparse"]
        self.assertEqual(sparse["size"], float(self.allocated("sparse")))
        self.assertLess(sparse["size"], 2**20)

    def test_hardLinksOnce(self):
        """
        A file with several hard links under the directory counts once,
        in the total and in C{files}; the entries still add up to the
        total.
        """
        before = self.workdir.du("tree")
        os.link(os.path.join(self.tree, "big"), os.path.join(self.tree, "sub", "big2"))
        os.link(os.path.join(self.tree, "big"), os.path.join(self.tree, "big3"))
        result = self.workdir.du("tree")
        self.assertEqual(result["total"], before["total"])
        self.assertEqual(result["files"], before["files"])
        root = self.allocated(".")
        self.assertEqual(
            sum(e["size"] for e in result["entries"]) + root, result["total"]
        )

    def test_symlinkNotFollowed(self):
        """
        A link to a directory inside is not walked: the directory is
        counted once, through its real place.
        """
        result = self.workdir.du(".")
        inTree = self.workdir.du("tree")["total"]
        [tree] = [e for e in result["entries"] if e["name"] == "tree"]
        self.assertEqual(tree["size"], inTree)
        [subLink] = [e for e in result["entries"] if e["name"] == "subLink"]
        self.assertEqual(subLink["type"], "link")

    def test_pathIsLinkToDirectory(self):
        """
        A path that is a link to a directory inside measures the
        directory.
        """
        os.symlink("tree", os.path.join(self.root, "treeLink"))
        result = self.workdir.du("treeLink")
        self.assertEqual(result["path"], "treeLink")
        self.assertEqual(result["total"], self.workdir.du("tree")["total"])

    def test_file(self):
        """
        C{du} of a file gives that file's blocks.
        """
        result = self.workdir.run({"op": "du", "path": "tree/big"})
        self.assertEqual(
            result,
            {
                "path": "tree/big",
                "total": float(self.allocated("big")),
                "files": 1,
                "dirs": 0,
                "entries": [],
                "unreadable": 0,
                "truncated": False,
            },
        )

    def test_default(self):
        """
        C{path} defaults to the working directory.
        """
        result = self.workdir.run({"op": "du"})
        self.assertEqual(result["path"], ".")
        self.assertIn("tree", [e["name"] for e in result["entries"]])

    def test_timeBound(self):
        """
        When the clock passes C{duSeconds}, the walk stops: C{truncated}
        is set and the figures are lower bounds.
        """
        full = self.workdir.du("tree")
        workdir = Workdir(self.root, duSeconds=3, monotonic=TickingClock(1.0))
        result = workdir.du("tree")
        self.assertIs(result["truncated"], True)
        self.assertLess(result["files"] + result["dirs"], full["files"] + full["dirs"])
        self.assertLessEqual(result["files"] + result["dirs"], 3)
        self.assertLessEqual(result["total"], full["total"])

    def test_timeNotReached(self):
        """
        A clock that stays within C{duSeconds} does not cut the walk.
        """
        workdir = Workdir(self.root, duSeconds=3, monotonic=TickingClock(0.0))
        result = workdir.du("tree")
        self.assertIs(result["truncated"], False)
        self.assertEqual(result, self.workdir.du("tree"))

    def test_entryBound(self):
        """
        After C{maxDuEntries} entries the walk stops, with C{truncated}.
        """
        result = Workdir(self.root, maxDuEntries=2).du("tree")
        self.assertIs(result["truncated"], True)
        self.assertEqual(result["files"] + result["dirs"], 2)

    def test_entryBoundExact(self):
        """
        A directory with exactly C{maxDuEntries} entries is measured whole.
        """
        result = Workdir(self.root, maxDuEntries=2).du("sub")
        self.assertIs(result["truncated"], False)
        result = Workdir(self.root, maxDuEntries=1).du("sub")
        self.assertIs(result["truncated"], False)
        self.assertEqual(result["files"], 1)

    def test_entriesCapped(self):
        """
        At most C{maxEntries} children are returned, the largest, with
        C{truncated}; the totals still count them all.
        """
        result = Workdir(self.root, maxEntries=2).du("tree")
        self.assertEqual([e["name"] for e in result["entries"]], ["big", "sub"])
        self.assertIs(result["truncated"], True)
        self.assertEqual(result["total"], self.workdir.du("tree")["total"])

    def test_unreadable(self):
        """
        A directory inside that the job's account may not read is skipped
        and counted in C{unreadable}.
        """
        deeper = os.path.join(self.tree, "sub", "deeper")
        full = self.workdir.du("tree")
        # The closed directory itself counts; what is in it cannot.
        missing = self.allocated("sub/deeper/two")
        os.chmod(deeper, 0)
        self.addCleanup(os.chmod, deeper, 0o755)

        def check():
            result = self.workdir.du("tree")
            if result["unreadable"] != 1 or result["truncated"]:
                raise AssertionError(result)
            if result["total"] != full["total"] - missing:
                raise AssertionError(result)

        unprivileged(check)

    def test_searchDenied(self):
        """
        In a directory that may be listed but not searched, the entries
        that cannot be examined are counted in C{unreadable}.
        """
        sub = os.path.join(self.tree, "sub")
        os.chmod(sub, 0o444)
        self.addCleanup(os.chmod, sub, 0o755)

        def check():
            result = self.workdir.du("tree")
            if result["unreadable"] != 2:
                raise AssertionError(result)

        unprivileged(check)

    def test_topPermissionDenied(self):
        """
        A directory asked for that the job's account may not read fails
        with C{PERMISSION_DENIED}.
        """
        os.chmod(self.tree, 0)
        self.addCleanup(os.chmod, self.tree, 0o755)
        self.assertFault(
            PERMISSION_DENIED,
            unprivileged,
            self.workdir.run,
            {"op": "du", "path": "tree"},
        )

    def test_missingAndOutside(self):
        """
        C{du} of a missing path fails with C{NO_SUCH_FILE}; of a path
        outside with C{OUTSIDE_WORKDIR}.
        """
        self.assertFault(NO_SUCH_FILE, self.workdir.run, {"op": "du", "path": "nope"})
        self.assertFault(
            OUTSIDE_WORKDIR, self.workdir.run, {"op": "du", "path": "outdir"}
        )
        self.assertFault(OUTSIDE_WORKDIR, self.workdir.run, {"op": "du", "path": ".."})

    def test_replacedByOutsideLink(self):
        """
        A directory replaced by a link to outside between being seen and
        being read is not walked.
        """
        full = self.workdir.du("tree")
        original = Workdir._openDirectory
        sub = os.path.join(self.tree, "sub")

        def swapping(workdir, path, identity):
            if path == sub:
                os.rename(sub, sub + ".old")
                os.symlink(self.outside, sub)
            return original(workdir, path, identity)

        self.patch(Workdir, "_openDirectory", swapping)
        result = self.workdir.du("tree")
        self.assertEqual(result["files"], full["files"] - 2)
        self.assertEqual(result["unreadable"], 0)

    def test_iterative(self):
        """
        A tree deeper than Python's recursion limit is walked.
        """
        path = os.path.join(self.root, "deep")
        os.makedirs(path)
        # Made relative to stay under PATH_MAX while going deep.
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(path)
        levels = 1200
        for _ in range(levels):
            os.mkdir("d")
            os.chdir("d")
        os.chdir(here)

        def removeChain():
            # trial removes its temporary tree recursively, which this
            # depth would overflow: take the chain down from the bottom.
            os.chdir(path)
            for _ in range(levels):
                os.chdir("d")
            for _ in range(levels):
                os.chdir("..")
                os.rmdir("d")
            os.chdir(here)

        self.addCleanup(removeChain)
        result = self.workdir.du("deep")
        self.assertEqual(result["dirs"], levels)
        self.assertIs(result["truncated"], False)


class PartsTests(FixtureMixin, SynchronousTestCase):
    """
    Tests for the units behind L{Workdir}, used on their own:
    L{confine.ConfinedDirectory}, L{requests.parse}, and the helpers a
    L{Workdir} makes for each call.
    """

    def setUp(self):
        self.buildFixture()

    def test_locate(self):
        """
        L{confine.ConfinedDirectory.locate} gives the real path and the
        entry as named: a link inside keeps its own name in the second.
        """
        directory = confine.ConfinedDirectory(self.root)
        self.assertEqual(
            directory.locate("latest.log"),
            (os.path.join(self.root, "job.log"), os.path.join(self.root, "latest.log")),
        )
        self.assertEqual(directory.relative(os.path.join(self.root, "sub", "x")), "sub/x")
        self.assertEqual(directory.relative(self.root), ".")
        error = self.assertRaises(JobMonError, directory.locate, "leak")
        self.assertEqual(error.code, OUTSIDE_WORKDIR)

    def test_parse(self):
        """
        L{requests.parse} names the op and gives, in order, the arguments of
        the L{Workdir} method that runs it, defaults filled in.
        """
        cases = [
            ({"op": "ls"}, ("ls", (".", 0, True))),
            ({"op": "ls", "path": "sub", "depth": 2, "all": False}, ("ls", ("sub", 2, False))),
            ({"op": "stat", "path": "x"}, ("stat", ("x",))),
            ({"op": "cat", "path": "x", "offset": "5"}, ("cat", ("x", 5, None))),
            ({"op": "head", "path": "x"}, ("head", ("x", 10, None))),
            ({"op": "tail", "path": "x", "bytes": 3}, ("tail", ("x", 10, 3))),
            ({"op": "follow", "path": "x", "wait": 1}, ("follow", ("x", 0, None))),
            ({"op": "du"}, ("du", (".",))),
            ({"op": "df", "path": "sub"}, ("df", ("sub",))),
        ]
        for request, expected in cases:
            self.assertEqual(files.requests.parse(request), expected, request)
        error = self.assertRaises(JobMonError, files.requests.parse, {"op": "ps"})
        self.assertEqual(error.code, UNSUPPORTED_OP)

    def test_limitsAsTheyAreNow(self):
        """
        A limit changed after the L{Workdir} was built holds for the next
        call: the helpers are made for each call.
        """
        workdir = Workdir(self.root)
        workdir.maxResult = 3
        self.assertEqual(workdir.cat("job.log")["data"], b"one")
        workdir.maxResult = 1000
        workdir.maxEntries = 1
        self.assertEqual(len(workdir.ls(".")["entries"]), 1)

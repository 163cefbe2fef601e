"""
Tests for C{tail} with C{from_line} (C{tail -n +N}) in
L{jobmon.worker.files}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.errors import BAD_REQUEST, IS_A_DIRECTORY, NO_SUCH_FILE, TOO_LARGE
from jobmon.worker.files import Workdir, reading
from tests.worker.test_files import BAD_INTEGERS, CountingPread, FixtureMixin


def referenceFrom(data, line):
    """
    Compute C{tail -n +line} of C{data} the simple way: split it all.
    """
    return b"".join(data.splitlines(keepends=True)[max(line, 1) - 1:])


class TailFromTests(FixtureMixin, SynchronousTestCase):
    """
    C{{"op": "tail", "path": P, "from_line": N}}.
    """

    def setUp(self):
        self.buildFixture()

    def test_fromLine(self):
        """
        The file from line N on, where it starts, and the line echoed.
        """
        self.assertEqual(
            self.workdir.run({"op": "tail", "path": "job.log", "from_line": 2}),
            {"path": "job.log", "data": b"two\nthree\n", "offset": 4.0, "size": 14.0,
             "truncated": False, "from_line": 2.0},
        )

    def test_firstLine(self):
        """
        Lines count from 1; 0 means 1, as in coreutils.
        """
        for line in (0, 1):
            result = self.workdir.run({"op": "tail", "path": "job.log", "from_line": line})
            self.assertEqual((result["data"], result["offset"]), (b"one\ntwo\nthree\n", 0.0))
            self.assertEqual(result["from_line"], float(line))

    def test_pastEnd(self):
        """
        A line the file does not have gives empty data at its end.
        """
        for line in (4, 5, 10 ** 6):
            result = self.workdir.run({"op": "tail", "path": "job.log", "from_line": line})
            self.assertEqual((result["data"], result["offset"], result["truncated"]),
                             (b"", 14.0, False))

    def test_noTrailingNewline(self):
        """
        A last line without a newline is a line.
        """
        self.write("partial", b"a\nb")
        self.assertEqual(self.workdir.tailFrom("partial", 2)["data"], b"b")
        self.assertEqual(self.workdir.tailFrom("partial", 3)["data"], b"")

    def test_cap(self):
        """
        At most C{maxResult} bytes, with C{truncated} when more follow.
        """
        result = Workdir(self.root, maxResult=5).tailFrom("job.log", 2)
        self.assertEqual((result["data"], result["offset"], result["truncated"]),
                         (b"two\nt", 4.0, True))
        result = Workdir(self.root, maxResult=10).tailFrom("job.log", 2)
        self.assertEqual((result["data"], result["truncated"]), (b"two\nthree\n", False))

    def test_scanBound(self):
        """
        A line starting past L{reading.MAX_LINE_SCAN} bytes is refused with
        a message saying what to do, after reading no more than that.
        """
        self.patch(reading, "MAX_LINE_SCAN", 6)
        self.patch(reading, "HEAD_BLOCK", 4)
        self.assertEqual(self.workdir.tailFrom("job.log", 2)["data"], b"two\nthree\n")
        pread = CountingPread()
        workdir = Workdir(self.root, pread=pread)
        error = self.assertFault(TOO_LARGE, workdir.tailFrom, "job.log", 3)
        self.assertIn("cat --offset", error.message)
        self.assertEqual(pread.total, 6)

    def test_errors(self):
        """
        The errors of the other reads: a missing file, a directory.
        """
        self.assertFault(NO_SUCH_FILE, self.workdir.run,
                         {"op": "tail", "path": "nope", "from_line": 2})
        self.assertFault(IS_A_DIRECTORY, self.workdir.run,
                         {"op": "tail", "path": "sub", "from_line": 2})

    def test_badRequests(self):
        """
        C{from_line} is a non-negative integer, given without C{lines} or
        C{bytes}.
        """
        for value in BAD_INTEGERS:
            self.assertFault(BAD_REQUEST, self.workdir.run,
                             {"op": "tail", "path": "job.log", "from_line": value})
        for other in ("lines", "bytes"):
            self.assertFault(BAD_REQUEST, self.workdir.run,
                             {"op": "tail", "path": "job.log", "from_line": 2, other: 1})

    @settings(deadline=None, max_examples=200)
    @given(
        data=st.lists(st.sampled_from([b"a", b"bc", b"\n"]), max_size=30).map(b"".join),
        line=st.integers(0, 14),
        maxResult=st.integers(1, 30),
        block=st.integers(1, 7),
    )
    def test_matchesReference(self, data, line, maxResult, block):
        """
        For any content, line, cap and block size, the data is the file
        from that line on as splitting it would give, cut to C{maxResult}
        bytes with C{truncated} exactly when bytes were left.
        """
        self.patch(reading, "HEAD_BLOCK", block)
        self.write("random", data)
        result = Workdir(self.root, maxResult=maxResult).tailFrom("random", line)
        expected = referenceFrom(data, line)
        self.assertEqual(result["data"], expected[:maxResult])
        self.assertEqual(result["truncated"], len(expected) > maxResult)
        self.assertEqual(result["offset"], float(len(data) - len(expected)))

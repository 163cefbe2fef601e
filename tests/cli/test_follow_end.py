"""
C{tail -f} and C{cat -f} when the followed job ends: the rest of the file,
a note on standard error, status 0; a later query says the job ended.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.cli.exits import EXIT_GONE, exitCode
from jobmon.errors import JobMonError
from tests.cli.test_cli import FakeClient, FakeTime, Seq, data, followed, run

ENDED = "jobmon-query: job 1 ended; stopped following\n"


def last(payload, offset, **fields):
    """
    The daemon's last answer to a follow, as its job ends.
    """
    result = followed(payload, offset, **fields)
    result["ended"] = True
    return result


class FollowEndTests(SynchronousTestCase):
    """
    The end of a followed job ends the command, with status 0.
    """

    def test_lastAnswerSaysEnded(self):
        """
        The daemon's last answer carries the file's last bytes and says the
        job ended: they are written, and nothing more is asked.
        """
        fake = FakeClient({"tail": data(b"a\n", 0),
                           "follow": Seq(followed(b"b\n", 2), last(b"end\n", 4))})
        self.assertEqual(run(["tail", "-f", "1", "job.log"], fake),
                         (0, b"a\nb\nend\n", ENDED))
        self.assertEqual(len(fake.calls), 3)
        self.assertTrue(fake.closed)

    def test_lastAnswerCut(self):
        """
        A last answer cut by the result cap is read on from its end before
        the command stops.
        """
        cut = last(b"xx", 2)
        cut["truncated"] = True
        fake = FakeClient({"tail": data(b"a\n", 0),
                           "follow": Seq(cut, last(b"yy\n", 4))})
        self.assertEqual(run(["tail", "-f", "1", "job.log"], fake),
                         (0, b"a\nxxyy\n", ENDED))
        self.assertEqual(fake.calls[-1][3], 4)

    def test_endedMissingFile(self):
        """
        C{tail -F} of a file the job never wrote stops too when the job
        ends.
        """
        fake = FakeClient({"tail": JobMonError(errors.NO_SUCH_FILE, "no such file: f"),
                           "follow": Seq(followed(b"", 0, missing=True, inode=""),
                                         last(b"", 0, missing=True, inode=""))})
        status, out, err = run(["tail", "-F", "1", "job.log"], fake)
        self.assertEqual((status, out), (0, b""))
        self.assertTrue(err.endswith(ENDED), err)

    def test_serverSaysEnded(self):
        """
        The server says the job ended (its daemon unregistered it while the
        follow waited, or before it came): status 0, the note, no retry.
        """
        fake = FakeClient({
            "tail": data(b"a\n", 0),
            "follow": Seq(followed(b"b\n", 2),
                          JobMonError(errors.JOB_ENDED,
                                      "job 1 ended at 2026-12-03 08:00:40 UTC")),
        })
        clock = FakeTime()
        self.assertEqual(run(["tail", "-f", "1", "job.log"], fake, time_=clock),
                         (0, b"a\nb\n", ENDED))
        self.assertEqual(clock.sleeps, [])

    def test_catFollow(self):
        """
        C{cat -f} ends the same way.
        """
        fake = FakeClient({"cat": data(b"abc", 0),
                           "follow": Seq(last(b"d", 3))})
        self.assertEqual(run(["cat", "-f", "1", "job.log"], fake), (0, b"abcd", ENDED))

    def test_queryAfterEnd(self):
        """
        Any other query for a job that ended: the server's message, status 6.
        """
        message = "job 1 ended at 2026-12-03 08:00:40 UTC"
        fake = FakeClient({"ls": JobMonError(errors.JOB_ENDED, message)})
        self.assertEqual(run(["ls", "1"], fake), (EXIT_GONE, b"", "jobmon-query: %s\n" % message))
        self.assertEqual(exitCode(errors.JOB_ENDED), 6)

"""
Tests for L{jobmon.outcomes}: the words for how a query ended, and for
L{jobmon.prefixes.resolvePrefix}, which names a job by a prefix.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors, outcomes
from jobmon.outcomes import outcomeWord
from jobmon.prefixes import AmbiguousJobId, resolvePrefix


class OutcomeWordTests(SynchronousTestCase):
    """
    L{outcomeWord}.
    """

    def test_everyCodeHasAWord(self):
        """
        Every fault code has a word of its own, lower case, without spaces:
        a new code needs one (else it shows as C{error-N}).
        """
        self.assertEqual(set(outcomes.WORDS), set(errors.NAMES))
        words = list(outcomes.WORDS.values())
        self.assertEqual(len(set(words)), len(words))
        for word in words + [outcomes.OK, outcomes.CANCELLED]:
            self.assertRegex(word, r"^[a-z]+(-[a-z]+)*$")

    def test_codes(self):
        """
        Codes, as numbers or as the digit strings older history databases
        hold, become their words.
        """
        self.assertEqual(outcomeWord(errors.REMOTE_ERROR), "daemon-error")
        self.assertEqual(outcomeWord("1099"), "daemon-error")
        self.assertEqual(outcomeWord(1008), "daemon-timeout")
        self.assertEqual(outcomeWord(500.0), "server-error")
        self.assertEqual(outcomeWord(errors.NO_SUCH_JOB), "not-found")
        self.assertEqual(outcomeWord(errors.JOB_GONE), outcomes.JOB_GONE)
        self.assertEqual(outcomeWord(errors.JOB_ENDED), outcomes.JOB_ENDED)

    def test_wordsAndOthers(self):
        """
        Words stay as they are; unknown codes say so; nothing is empty.
        """
        for word in ("ok", "cancelled", "timeout", "job-ended", "something-new"):
            self.assertEqual(outcomeWord(word), word)
        self.assertEqual(outcomeWord(1234), "error-1234")
        self.assertEqual(outcomeWord(None), "")
        self.assertEqual(outcomeWord(""), "")


class ResolvePrefixTests(SynchronousTestCase):
    """
    L{resolvePrefix}: the rules by which a prefix names one of the
    caller's jobs, on the server and in C{jobmon-query}.
    """

    def test_rules(self):
        """
        An exact id wins; else the one id that starts with the prefix; else
        none.
        """
        ids = ["12.0", "12.1", "1234.0", "7"]
        self.assertEqual(resolvePrefix("1234", ids), "1234.0")
        self.assertEqual(resolvePrefix("12.1", ids), "12.1")
        self.assertEqual(resolvePrefix("7", ids + ["70"]), "7")
        self.assertIsNone(resolvePrefix("9", ids))
        self.assertIsNone(resolvePrefix("1", []))

    def test_ambiguous(self):
        """
        Several candidates: fault 404 naming the first five and how many
        more there are.
        """
        e = self.assertRaises(AmbiguousJobId, resolvePrefix, "1",
                              ["1.%d" % i for i in range(8)] + ["1.0"])
        self.assertEqual(e.code, errors.NO_SUCH_JOB)
        self.assertEqual(e.message, "job id '1' is ambiguous: 8 of your jobs start with it: "
                                    "1.0, 1.1, 1.2, 1.3, 1.4 and 3 more")

"""
The words that say how a query ended, in the audit log, the history, the
metrics' labels and C{jobmon-query}'s tables: C{ok}, C{cancelled}, or the
word of the fault it failed with (C{not-found}, C{timeout},
C{daemon-error}...).

Fault codes stay the API (see L{jobmon.errors}); words are for people and
for labels.  Audit files and history databases written before the words
held the bare code (C{1099}, C{"500"}): L{outcomeWord} reads those too.

This module imports only the standard library: the command-line client
uses it.
"""

from jobmon import errors

OK = "ok"
"""The query got its result."""

CANCELLED = "cancelled"
"""The user gave up before the answer came: the client closed its request
(Ctrl-C on C{tail -f}, for example)."""

JOB_ENDED = "job-ended"
"""The job ended (its daemon unregistered it) before the answer came, or
before the query (fault 411)."""

JOB_GONE = "job-gone"
"""The job went away: its daemon's wake channel closed or it stopped
re-registering (fault 410)."""

WORDS = {
    errors.BAD_REQUEST: "bad-request",
    errors.NOT_AUTHENTICATED: "not-authenticated",
    errors.NOT_AUTHORIZED: "not-authorized",
    errors.NO_SUCH_JOB: "not-found",
    errors.TIMEOUT: "timeout",
    errors.JOB_CONFLICT: "conflict",
    errors.JOB_GONE: JOB_GONE,
    errors.JOB_ENDED: JOB_ENDED,
    errors.TOO_LARGE: "too-large",
    errors.TOO_MANY: "too-many",
    errors.INTERNAL: "server-error",
    errors.UNAVAILABLE: "unavailable",
    errors.NO_SUCH_FILE: "no-such-file",
    errors.OUTSIDE_WORKDIR: "outside-workdir",
    errors.NOT_A_DIRECTORY: "not-a-directory",
    errors.IS_A_DIRECTORY: "is-a-directory",
    errors.PERMISSION_DENIED: "permission-denied",
    errors.REMOTE_IO_ERROR: "io-error",
    errors.UNSUPPORTED_OP: "unsupported-op",
    errors.REMOTE_TIMEOUT: "daemon-timeout",
    errors.NO_SUCH_COMMAND: "no-such-command",
    errors.NOT_ALLOWED: "not-allowed",
    errors.REMOTE_ERROR: "daemon-error",
}
"""The word of each fault code a query can end with."""


def outcomeWord(outcome):
    """
    Return the word for a stored or reported outcome: a word as it is; a
    fault code (an integer, or digits as older history databases hold it)
    as its word, or C{error-N} for a code without one.

    @param outcome: C{"ok"}, a word, a code, or L{None} (C{""} then).
    """
    if outcome is None:
        return ""
    if isinstance(outcome, bool):
        return str(outcome)
    if isinstance(outcome, float) and outcome.is_integer():
        outcome = int(outcome)
    if isinstance(outcome, str) and outcome.isdigit():
        outcome = int(outcome)
    if isinstance(outcome, int):
        return WORDS.get(outcome, "error-{}".format(outcome))
    return str(outcome)

"""
How a prefix of a job id names one of the caller's jobs: the same rules in
C{jobmon-query} (for every command about a job) and on the server (for
C{history}, which also knows the caller's past jobs).

This module imports only the standard library and L{jobmon.errors}: the
command-line client uses it.
"""

from jobmon.errors import NO_SUCH_JOB, JobMonError

AMBIGUOUS_SHOWN = 5
"""How many candidate ids an ambiguous job id prefix error names."""


class PrefixLookup(JobMonError):
    """
    Fault 404 for an id that no job has but that starts ids of the
    caller's own jobs: the caller is naming one of them by a prefix, which
    C{jobmon-query} resolves (it lists her jobs and asks again with the
    whole id).  Not a refusal: she reached for nothing that is not hers.
    """


class AmbiguousJobId(JobMonError):
    """
    A job id prefix that starts several of the caller's job ids: fault 404
    naming some of them.  Not a refusal: nobody reached for a job that is
    not theirs.
    """


def resolvePrefix(prefix, ids):
    """
    Find the job that C{prefix} names among C{ids}, the caller's job ids:
    the id itself if it is one of them, else the one id that starts with
    it.

    @return: the id, or L{None} if none starts with C{prefix}.
    @raise AmbiguousJobId: several start with it.
    """
    matches = sorted({i for i in ids if i.startswith(prefix)})
    if prefix in matches:
        return prefix
    if len(matches) > 1:
        shown = ", ".join(matches[:AMBIGUOUS_SHOWN])
        if len(matches) > AMBIGUOUS_SHOWN:
            shown += " and %d more" % (len(matches) - AMBIGUOUS_SHOWN,)
        raise AmbiguousJobId(
            NO_SUCH_JOB,
            "job id %r is ambiguous: %d of your jobs start with it: %s"
            % (prefix, len(matches), shown),
        )
    return matches[0] if matches else None

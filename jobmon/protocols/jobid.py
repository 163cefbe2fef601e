"""
What a job id is on the wire: the server checks every id it is sent, and a
daemon checks its own before it registers; and how a prefix names one of
the caller's jobs.
"""

import re

from jobmon.errors import BAD_REQUEST, NO_SUCH_JOB, JobMonError

JOB_ID = re.compile(r"[\x21-\x7e]{1,256}")
"""A job id: printable ASCII without white space, 1 to 256 characters."""


def checkJobId(jobId):
    """
    @raise JobMonError: C{jobId} is not a valid job id.
    """
    if not isinstance(jobId, str) or not JOB_ID.fullmatch(jobId):
        raise JobMonError(
            BAD_REQUEST,
            "invalid job id: 1 to 256 printable ASCII characters without spaces",
        )


AMBIGUOUS_SHOWN = 5
"""How many candidate ids an ambiguous job id prefix error names."""


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
    it.  The server (for C{query} and C{history}) and C{jobmon-query} follow
    these same rules.

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

"""
What a job id is on the wire: the server checks every id it is sent, and a
daemon checks its own before it registers.
"""

import re

from jobmon.errors import BAD_REQUEST, JobMonError

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

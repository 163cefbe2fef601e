"""
Query results relayed as the daemon encoded them: the XML-RPC C{<params>}
fragment a daemon sends on its wake channel (see L{jobmon.protocols.wake})
reaches the user inside the server's C{<methodResponse>} without being
parsed and encoded again.

The server cannot trust the job's bytes, so L{checkFragment} makes sure,
without parsing, that they cannot change the response's structure: exactly
one parameter, a struct, with no markup inside that could end it, add a
second one, make a fault or declare anything.  What is inside the struct is
the job's own answer, as an C{outputJobResult} struct is.
"""

import xmlrpc.client

from jobmon.errors import REMOTE_ERROR, JobMonError

PREFIX = b"<params>\n<param>\n<value><struct>\n"
"""How every relayed fragment starts: one parameter, a struct."""

SUFFIX = b"</struct></value>\n</param>\n</params>\n"
"""How every relayed fragment ends."""

_FORBIDDEN = (b"<param", b"</param", b"<fault", b"<!", b"<?")
"""Markup that may not appear between L{PREFIX} and L{SUFFIX}: it could end
the parameter, add one, make a fault, or bring a DTD, entity, comment,
CDATA section or processing instruction; nor may a C{methodResponse} tag
(see L{checkFragment}).  The encoder escapes every C{<} of the result's
text, so real results never hold it."""

_RESPONSE = b"methodResponse"

RESPONSE_HEAD = b"<?xml version='1.0'?>\n<methodResponse>\n"
RESPONSE_TAIL = b"</methodResponse>\n"


def encodeFragment(result):
    """
    Encode a result struct as the fragment a daemon relays.

    @raise TypeError: a value XML-RPC cannot carry (L{None}...).
    @raise OverflowError: an integer beyond 32 bits.
    """
    return xmlrpc.client.dumps((result,), allow_none=False).encode("utf-8")


def checkFragment(body):
    """
    Check that C{body} is a fragment the server may relay as it is (see the
    module's docstring): cheap byte searches, no parse.

    @return: the reason it may not, or L{None}.
    """
    if not body.startswith(PREFIX) or not body.endswith(SUFFIX):
        return "the result is not one XML-RPC struct"
    end = len(body) - len(SUFFIX)
    for marker in _FORBIDDEN:
        if body.find(marker, len(PREFIX), end) != -1:
            return "the result holds markup that is not allowed"
    # The word alone is text a result may hold (a command line); only a
    # tag ("<methodResponse", "</methodResponse") is refused.
    at = body.find(_RESPONSE, len(PREFIX), end)
    while at != -1:
        if body[at - 1:at] == b"<" or body[at - 2:at] == b"</":
            return "the result holds markup that is not allowed"
        at = body.find(_RESPONSE, at + 1, end)
    return None


class RawResult:
    """
    A query's result as the daemon encoded it, checked by L{checkFragment}.

    @ivar body: the fragment (bytes).
    @ivar size: the bytes of file data or command output in it, as the
        daemon counted them (for the audit record).
    """

    __slots__ = ("body", "size")

    def __init__(self, body, size):
        self.body = body
        self.size = size

    def response(self):
        """
        The whole XML-RPC response carrying this result.
        """
        return RESPONSE_HEAD + self.body + RESPONSE_TAIL

    def parsed(self):
        """
        The result as a struct, for the rare server that must change it.

        @raise JobMonError: L{REMOTE_ERROR} if the job's bytes are not
            well-formed XML-RPC.
        """
        try:
            (value,), _ = xmlrpc.client.loads(self.body, use_builtin_types=True)
        except Exception:
            raise JobMonError(REMOTE_ERROR, "the job's result is malformed")
        if not isinstance(value, dict):
            raise JobMonError(REMOTE_ERROR, "the job's result is malformed")
        return value

    def __repr__(self):
        return "<RawResult of {} bytes>".format(len(self.body))

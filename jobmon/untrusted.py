"""
Caller-controlled text made safe for messages and log lines.

A token's claims, a certificate's names, a job id or a host name sent by a
caller may hold line breaks (a forged log line), terminal escapes, bidi
overrides or megabytes.  L{shown} is what such a value looks like wherever
the server writes it into a message or a log line: every character that is
not printable escaped as in a Python string literal, and the whole cut to a
length.  (The audit log caps its own fields: L{jobmon.server.audit}.)

This module imports only the standard library: every role may use it.
"""

DEFAULT_LIMIT = 200
"""Characters of a value shown before it is cut."""


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escaped(text):
    """
    C{text} with every non-printable character (control characters, line
    and paragraph separators, format characters such as bidi overrides,
    lone surrogates) written as C{\\n}, C{\\r}, C{\\t}, C{\\xNN},
    C{\\uNNNN} or C{\\UNNNNNNNN}.
    Printable text, spaces and non-ASCII letters included, is kept as is.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        else:
            code = ord(ch)
            if code < 0x100:
                out.append("\\x%02x" % code)
            elif code < 0x10000:
                out.append("\\u%04x" % code)
            else:
                out.append("\\U%08x" % code)
    return "".join(out)


def shown(value, limit=DEFAULT_LIMIT):
    """
    How a caller-controlled value appears in a message or a log line: as
    text (bytes decoded as UTF-8, undecodable bytes escaped), non-printable
    characters escaped (L{escaped}), at most C{limit} characters of it
    followed by how many more there were.

    @param value: a string, bytes, or anything else (shown as C{str}).
    """
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    elif not isinstance(value, str):
        value = str(value)
    more = len(value) - limit
    if more > 0:
        return "{}... [{} more characters]".format(escaped(value[:limit]), more)
    return escaped(value)

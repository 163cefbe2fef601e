"""
Results made encodable as XML-RPC: file names and variables may hold bytes
that are not UTF-8 or control characters, which XML 1.0 cannot carry.
"""

import os
import re

# XML 1.0 cannot carry these; a carriage return would arrive as a newline.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")

EXACT_NAME_KEYS = ("name", "path", "target")
"""Fields of results that name files: when their text had to be escaped,
the exact name goes beside it as bytes (C{name_bytes}...)."""


def _escapeChar(match):
    char = match.group(0)
    if "\ud800" <= char <= "\udfff":
        # A byte that was not UTF-8 in a file name (surrogateescape).
        code = ord(char) - 0xDC00 if "\udc80" <= char <= "\udcff" else ord(char)
        return "\\x{:02x}".format(code)
    return "\\x{:02x}".format(ord(char)) if ord(char) < 0x100 else "\\u{:04x}".format(ord(char))


def xmlSafe(value, names=False):
    """
    Make a result encodable as XML-RPC: file names may hold bytes that are
    not UTF-8 or control characters, which XML 1.0 cannot carry; they are
    shown as C{\\xNN} escapes.  Such a name (a field of
    L{EXACT_NAME_KEYS}) also goes as it is, as bytes, in C{KEY_bytes}
    (C{name_bytes}): a client can show it exactly and send it back as the
    C{path} of a request.  A name that needed no escaping has no C{_bytes}
    field, so a file literally named C{\\xff} is told from one named by
    the byte 0xFF.

    @param names: whether C{value} is the result of a file op, whose
        structs (and theirs) get the C{_bytes} fields; other results (the
        variables of C{env}) are only escaped.
    """
    if isinstance(value, str):
        return _XML_UNSAFE.sub(_escapeChar, value)
    if isinstance(value, list):
        return [xmlSafe(v, names) for v in value]
    if isinstance(value, dict):
        safe = {xmlSafe(k): xmlSafe(v, names) for k, v in value.items()}
        if not names:
            return safe
        for key in EXACT_NAME_KEYS:
            text = value.get(key)
            if isinstance(text, str) and _XML_UNSAFE.search(text):
                safe[key + "_bytes"] = os.fsencode(text)
        return safe
    return value

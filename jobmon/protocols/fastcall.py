"""
A fast path for parsing the XML-RPC calls clients actually send.

L{parseFast} reads, with one compiled tokenizer over the decoded text, the
strict subset of XML-RPC that C{xmlrpc.client.dumps} (and so Twisted and
L{jobmon.client.wire}) writes: an optional C{<?xml version='1.0'?>}
declaration, C{methodCall}, C{methodName}, C{params}, C{param}, C{value}
(bare text too), C{string}, C{int}, C{i4}, C{i8}, C{boolean}, C{double},
C{base64}, C{nil}, C{struct}, C{member}, C{name}, C{array} and C{data},
whitespace between tags, the five predefined entities and character
references.  Its result is exactly what C{xmlrpc.client}'s unmarshaller
(with C{use_builtin_types=True}) gives for the same body.

For anything else (another declaration, a DTD, comments, CDATA, processing
instructions, attributes, namespaces, other tags, malformed nesting, a body
that might pass the depth or element limits, a body that is not UTF-8 or
is large) it returns L{None}, and the caller parses with expat as before,
so that errors and limits are exactly expat's.
"""

import binascii
import re

FAST_MAX = 256 * 1024
"""Largest body (in bytes) the fast path reads."""

_MIN_ELEMENT = 6
"""Fewest characters an element takes in the subset (C{<nil/>}): a body
of C{n} bytes holds at most C{n // 6} elements."""

_TEXT = (
    # Character data expat accepts unchanged: no markup, no ">" (so no
    # "]]>"), no "\r" (which expat turns into "\n"), no character XML
    # forbids; entities are checked (and expanded) by _unescape.
    r"[^<>&\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*"
    r"(?:&(?:amp|lt|gt|quot|apos|#[0-9]{1,8}|#x[0-9a-fA-F]{1,8});"
    r"[^<>&\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*)*"
)
_PLAIN = r"[^<>&\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*"
_W = r"[ \t\n]*"

_HEADER = re.compile(
    r"(?:<\?xml version=(?:'1\.0'|\"1\.0\")"
    r"(?: encoding=(?:'(?:utf|UTF)-8'|\"(?:utf|UTF)-8\"))?\?>)?"
    + _W + "<methodCall>" + _W + "<methodName>(" + _TEXT + ")</methodName>"
    + _W + "<params>"
)

_VALUE = (
    "(?P<str><value>" + _W + "<string>(?P<strt>" + _TEXT + ")</string>" + _W + "</value>)"
    "|(?P<bare><value>(?P<baret>" + _TEXT + ")</value>)"
    "|(?P<int><value>" + _W + "<(?P<it>int|i4|i8)>(?P<intt>" + _PLAIN + ")</(?P=it)>"
    + _W + "</value>)"
    "|(?P<bool><value>" + _W + "<boolean>(?P<boolt>[01])</boolean>" + _W + "</value>)"
    "|(?P<dbl><value>" + _W + "<double>(?P<dblt>" + _PLAIN + ")</double>" + _W + "</value>)"
    "|(?P<b64><value>" + _W + "<base64>)"
    "|(?P<nil><value>" + _W + "(?:<nil/>|<nil></nil>)" + _W + "</value>)"
    "|(?P<empty><value/>|<value>" + _W + "<string/>" + _W + "</value>)"
    "|(?P<struct><value>" + _W + "<struct>)"
    "|(?P<array><value>" + _W + "<array>" + _W + "<data>)"
)
"""One value: a whole scalar, or the opening of a struct or an array."""

_PARAMS = (
    "(?:<param>" + _W + "(?:" + _VALUE + ")"
    "|(?P<end></params>" + _W + "</methodCall>" + _W + r"\Z))"
)
_MEMBERS = (
    "(?:<member>" + _W + "<name>(?P<key>" + _TEXT + ")</name>" + _W + "(?:" + _VALUE + ")"
    "|(?P<close></struct>" + _W + "</value>))"
)
# What may come next, in each state: the next value (with what precedes
# it), or the end of the enclosing element.
_FIRSTPARAM = re.compile(_W + _PARAMS).match
_NEXTPARAM = re.compile(_W + "</param>" + _W + _PARAMS).match
_FIRSTMEMBER = re.compile(_W + _MEMBERS).match
_NEXTMEMBER = re.compile(_W + "</member>" + _W + _MEMBERS).match
_ITEM = re.compile(
    _W + "(?:" + _VALUE + "|(?P<close></data>" + _W + "</array>" + _W + "</value>))"
).match

_BASE64END = re.compile("</base64>" + _W + "</value>").match
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n"
"""What base64 text may hold on the fast path."""

_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class _Fallback(Exception):
    """
    The body is outside the subset: expat must parse it.
    """


def _character(match):
    ref = match.group(1)
    if ref[0] != "#":
        return _NAMED[ref]
    code = int(ref[2:], 16) if ref[1] == "x" else int(ref[1:])
    if (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        return chr(code)
    raise _Fallback()


def _unescape(text):
    if "&" not in text:
        return text
    return _ENTITY.sub(_character, text)


_TOP, _STRUCT, _ARRAY = range(3)
"""Where a value goes: the params, a struct or an array."""

_AFTER = (_NEXTPARAM, _NEXTMEMBER, _ITEM)
"""What may follow a value, in each of those."""


def parseFast(body, maxDepth, maxElements):
    """
    Parse an XML-RPC call in the common subset.

    @param body: the request body (L{bytes}).
    @return: C{(params, methodName)} as C{parseCall} returns it, or L{None}
        if the body is outside the subset or might pass a limit (then the
        caller must parse it with expat).
    """
    if (
        type(body) is not bytes
        or len(body) > FAST_MAX
        or len(body) > _MIN_ELEMENT * maxElements
        or maxDepth < 5
    ):
        return None
    try:
        text = body.decode("utf-8")
        return _parse(text, body if body.isascii() else None, maxDepth)
    except (_Fallback, ValueError, binascii.Error):
        # (UnicodeDecodeError is a ValueError.)
        return None


def _parse(text, ascii, maxDepth):
    """
    Parse C{text}, the decoded body; C{ascii} is the body itself if it is
    all ASCII (so that its offsets are the text's), or L{None}.
    """
    header = _HEADER.match(text)
    if header is None:
        raise _Fallback()
    name = _unescape(header.group(1))
    pos = header.end()
    params = []
    current = params
    where = _TOP
    key = None
    stack = []
    depth = 4
    """Depth of the value elements in the current container."""
    match = _FIRSTPARAM
    while True:
        m = match(text, pos)
        if m is None:
            raise _Fallback()
        pos = m.end()
        kind = m.lastgroup
        if where == _STRUCT and kind != "close":
            key = _unescape(m.group("key"))
        if kind == "str":
            value = _unescape(m.group("strt"))
        elif kind == "bare":
            value = _unescape(m.group("baret"))
        elif kind == "int":
            value = int(m.group("intt"))
        elif kind == "bool":
            value = m.group("boolt") == "1"
        elif kind == "dbl":
            value = float(m.group("dblt"))
        elif kind == "b64":
            # Found without a regular expression, which would take longer
            # than the decoding itself.
            end = text.find("</", pos)
            if end < 0:
                raise _Fallback()
            if ascii is None:
                data = text[pos:end].encode("ascii")
            else:
                data = ascii[pos:end]
            m = _BASE64END(text, end)
            if m is None or data.translate(None, _BASE64):
                raise _Fallback()
            pos = m.end()
            value = binascii.a2b_base64(data)
        elif kind == "nil":
            value = None
        elif kind == "empty":
            value = ""
        elif kind == "close":
            value = current
            current, key, where = stack.pop()
            depth -= 3
        elif kind == "end":
            return tuple(params), name
        else:
            # A struct or an array opens.
            depth += 3
            if depth + 1 > maxDepth:
                raise _Fallback()
            stack.append((current, key, where))
            if kind == "struct":
                current, where, match = {}, _STRUCT, _FIRSTMEMBER
            else:
                current, where, match = [], _ARRAY, _ITEM
            continue
        if where == _STRUCT:
            current[key] = value
        else:
            current.append(value)
        match = _AFTER[where]


__all__ = ["parseFast", "FAST_MAX"]

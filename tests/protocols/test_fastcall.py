"""
Tests for L{jobmon.protocols.fastcall}: the fast path of
L{jobmon.protocols.xmlrpc.parseCall} gives exactly what expat and
C{xmlrpc.client} give, and leaves everything else to them.
"""

import base64
import xmlrpc.client

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.client import wire
from jobmon.protocols import xmlrpc as rpc
from jobmon.protocols.fastcall import FAST_MAX, parseFast

# Characters XML can hold (no surrogates, no C0 controls but tab, newline
# and carriage return, no U+FFFE/U+FFFF).
xmlChars = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
    + ["\ufffe", "\uffff"],
)
texts = st.text(xmlChars, max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.floats(allow_nan=False),
    texts,
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=10,
)
calls = st.tuples(st.lists(values, max_size=4).map(tuple), texts)
# Method names as clients write them (dumps does not escape them).
methodNames = st.from_regex(r"[A-Za-z0-9_.]{1,20}", fullmatch=True)
dumpedCalls = st.tuples(st.lists(values, max_size=4).map(tuple), methodNames)

spaces = st.sampled_from(["", "\n", " ", "\t", " \n\t "])


def outcome(parse, body, maxDepth=rpc.MAX_DEPTH, maxElements=rpc.MAX_ELEMENTS):
    """
    What C{parse} makes of C{body}: its result, or its exception's type and
    message.
    """
    try:
        return ("result", parse(body, maxDepth, maxElements))
    except Exception as e:
        return ("error", type(e), str(e))


_expat = rpc._parseExpat


def expat(body, maxDepth=rpc.MAX_DEPTH, maxElements=rpc.MAX_ELEMENTS):
    """
    Today's parser, expat and C{xmlrpc.client}.
    """
    return _expat(body, maxDepth, maxElements)


class _Writer:
    """
    Write an XML-RPC call in the forms clients use, with random whitespace
    between tags, random spellings of equivalent values and random
    character references.
    """

    def __init__(self, draw):
        self.draw = draw
        self.out = []

    def w(self):
        self.out.append(self.draw(spaces))

    def text(self, s):
        for c in s:
            how = self.draw(st.integers(0, 9)) if c in "&<>\"'\r" or c > "~" else 9
            if c == "\r" or (how == 0):
                self.out.append("&#{};".format(ord(c)))
            elif how == 1:
                self.out.append("&#x{:X};".format(ord(c)))
            elif c == "&":
                self.out.append("&amp;")
            elif c == "<":
                self.out.append("&lt;")
            elif c == ">":
                self.out.append("&gt;")
            elif c == '"' and how == 2:
                self.out.append("&quot;")
            elif c == "'" and how == 2:
                self.out.append("&apos;")
            else:
                self.out.append(c)

    def value(self, v):
        write = self.out.append
        write("<value>")
        kind = type(v)
        if v is None:
            self.w()
            write(self.draw(st.sampled_from(["<nil/>", "<nil></nil>"])))
            self.w()
        elif kind is bool:
            self.w()
            write("<boolean>{}</boolean>".format(int(v)))
            self.w()
        elif kind is int:
            tag = self.draw(st.sampled_from(["int", "i4", "i8"]))
            self.w()
            write("<{}>{}</{}>".format(tag, v, tag))
            self.w()
        elif kind is float:
            self.w()
            write("<double>{!r}</double>".format(v))
            self.w()
        elif kind is str:
            form = self.draw(st.integers(0, 2))
            if form == 0 and v == "":
                if self.draw(st.booleans()):
                    self.out[-1] = "<value/>"
                    return
                self.w()
                write("<string/>")
                self.w()
            elif form == 1 and v.strip(" \t\n") == v:
                # Bare text, only where surrounding spaces could not be
                # mistaken for it.
                self.text(v)
            else:
                self.w()
                write("<string>")
                self.text(v)
                write("</string>")
                self.w()
        elif kind is bytes:
            self.w()
            write("<base64>")
            write(_base64(v, self.draw(spaces)))
            write("</base64>")
            self.w()
        elif kind is list:
            self.w()
            write("<array>")
            self.w()
            write("<data>")
            for item in v:
                self.w()
                self.value(item)
            self.w()
            write("</data>")
            self.w()
            write("</array>")
            self.w()
        else:
            self.w()
            write("<struct>")
            for k, item in v.items():
                self.w()
                write("<member>")
                self.w()
                write("<name>")
                self.text(k)
                write("</name>")
                self.w()
                self.value(item)
                self.w()
                write("</member>")
            self.w()
            write("</struct>")
            self.w()
        write("</value>")

    def call(self, params, name):
        write = self.out.append
        write(self.draw(st.sampled_from(
            ["<?xml version='1.0'?>", '<?xml version="1.0"?>', "",
             "<?xml version='1.0' encoding='utf-8'?>"]
        )))
        self.w()
        write("<methodCall>")
        self.w()
        write("<methodName>")
        self.text(name)
        write("</methodName>")
        self.w()
        write("<params>")
        for v in params:
            self.w()
            write("<param>")
            self.w()
            self.value(v)
            self.w()
            write("</param>")
        self.w()
        write("</params>")
        self.w()
        write("</methodCall>")
        self.w()
        return "".join(self.out).encode("utf-8")


def _base64(data, space):
    return base64.encodebytes(data).decode("ascii").replace("\n", space or "\n")


@st.composite
def bodies(draw):
    """
    An XML-RPC call in the fast path's subset, as bytes.
    """
    params, name = draw(calls)
    return _Writer(draw).call(params, name)


snippets = st.sampled_from([
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"<!DOCTYPE methodCall>", b"<!ENTITY a 'b'>",
    b"<!-- c -->", b"<![CDATA[x]]>", b"<?pi x?>", b' a="1"', b"<x:value>", b"</x:value>",
    b"&a;", b"&#0;", b"&#xFFFE;", b"\r", b"\r\n", b"\xff", b"\xef\xbf\xbe", b"\x00", b"]]>",
    b"<value>", b"</value>", b"<struct>", b"</struct>", b"<member>", b"<name>x</name>",
    b"<array><data>", b"</data></array>", b"<param>", b"</param>", b"<params/>",
    b"<dateTime.iso8601>20200101T00:00:00</dateTime.iso8601>", b"<bigdecimal>1</bigdecimal>",
    b"<int>99999999999999999999</int>", b"<boolean>2</boolean>", b"<double>x</double>",
    b"<base64>a</base64>", b"<base64>\xc3\xa9</base64>", b"<nil/>", b"<i4>1_0</i4>",
    b"<?xml version='1.0' encoding='iso-8859-1'?>", b"\xef\xbb\xbf", b"<unknown/>", b">", b"<",
    b"&", b"&amp", b"&#x110000;", b"</methodCall>", b"<methodName>n</methodName>",
])


@st.composite
def mutated(draw):
    """
    A call in the subset, edited at random: bytes cut, replaced or
    inserted (tags, DTDs, entities, bad characters), or truncated.
    """
    body = draw(bodies())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        edit = draw(st.integers(0, 4))
        if edit == 0:
            body = body[:at]
        elif edit == 1:
            body = body[:at] + body[at + draw(st.integers(1, 8)):]
        elif edit == 2:
            body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at + 1:]
        else:
            body = body[:at] + draw(snippets) + body[at:]
    return body


class FastPathEqualsExpatTests(SynchronousTestCase):
    """
    The fast path's result is exactly expat's; what it does not read is
    left to expat, so that every outcome is expat's.
    """

    @given(dumpedCalls)
    def test_stdlibDumps(self, call):
        """
        A body written by C{xmlrpc.client.dumps} is read by the fast path,
        and its result is C{xmlrpc.client.loads}'.
        """
        params, name = call
        body = xmlrpc.client.dumps(params, name, allow_none=True).encode("utf-8")
        expected = xmlrpc.client.loads(body, use_builtin_types=True)
        if "\\r" not in repr(params):
            # (A carriage return is left to expat, which turns it into a
            # newline.)
            self.assertEqual(parseFast(body, rpc.MAX_DEPTH, rpc.MAX_ELEMENTS), expected)
        self.assertEqual(rpc.parseCall(body), expected)
        self.assertEqual(rpc.parseCall(body), expat(body))

    @given(dumpedCalls)
    def test_wireDumps(self, call):
        """
        A body written by L{jobmon.client.wire.dumps} is read by the fast
        path, with expat's result.
        """
        params, name = call
        if any(v is None for v in params):
            return
        try:
            body = wire.dumps(params, name).encode("utf-8")
        except TypeError:
            # (None nested in a value.)
            return
        if "\\r" not in repr(params):
            self.assertEqual(parseFast(body, rpc.MAX_DEPTH, rpc.MAX_ELEMENTS), expat(body))
        self.assertEqual(outcome(rpc.parseCall, body), outcome(expat, body))

    @given(bodies())
    def test_variants(self, body):
        """
        Calls in the subset, with whitespace, spellings and character
        references varied, are read by the fast path with expat's result.
        """
        expected = expat(body)
        self.assertEqual(parseFast(body, rpc.MAX_DEPTH, rpc.MAX_ELEMENTS), expected)
        self.assertEqual(rpc.parseCall(body), expected)

    @given(mutated(), st.integers(1, 14), st.integers(1, 80))
    def test_mutated(self, body, maxDepth, maxElements):
        """
        Whatever a body becomes (cut, edited, given DTDs, entities, other
        tags or bad bytes), and whatever the limits, L{parseCall} gives
        expat's result or expat's exception.
        """
        self.assertEqual(
            outcome(rpc.parseCall, body, maxDepth, maxElements),
            outcome(expat, body, maxDepth, maxElements),
        )
        self.assertEqual(
            outcome(rpc.parseCall, body), outcome(expat, body)
        )

    @given(bodies(), st.integers(1, 14), st.integers(1, 80))
    def test_limits(self, body, maxDepth, maxElements):
        """
        Near the depth and element limits, L{parseCall} gives expat's
        result or expat's error.
        """
        self.assertEqual(
            outcome(rpc.parseCall, body, maxDepth, maxElements),
            outcome(expat, body, maxDepth, maxElements),
        )


STAT = xmlrpc.client.dumps(("job.1", {"op": "stat", "path": "job.log"}), "query").encode()
LS = xmlrpc.client.dumps(("job.1", {"op": "ls", "path": "."}), "query").encode()
RUN = xmlrpc.client.dumps(
    ("job.1", {"op": "run", "argv": ["sh", "-c", "cat > f"], "stdin": bytes(range(256)) * 256,
               "timeout": 2.5, "env": None, "tty": False, "n": 3}),
    "query", allow_none=True,
).encode()


class FastPathTakenTests(SynchronousTestCase):
    """
    The calls clients send are read without expat; the others with it.
    """

    def setUp(self):
        self.slow = []

        def recording(body, maxDepth, maxElements):
            self.slow.append(body)
            return expat(body, maxDepth, maxElements)

        self.patch(rpc, "_parseExpat", recording)

    def test_commonCalls(self):
        """
        The stat, ls and run calls of C{xmlrpc.client.dumps} and
        L{wire.dumps} never reach expat, and give its result.
        """
        bodies = [STAT, LS, RUN, wire.dumps(("job.1", {"op": "ls", "path": "a&b<c>"}),
                                            "query").encode()]
        for body in bodies:
            self.assertEqual(rpc.parseCall(body), expat(body))
        self.assertEqual(self.slow, [])

    def test_result(self):
        """
        The result has C{xmlrpc.client.loads}' types: bytes for base64,
        None for nil, and the method name.
        """
        params, name = rpc.parseCall(RUN)
        self.assertEqual(name, "query")
        self.assertEqual(params[1]["stdin"], bytes(range(256)) * 256)
        self.assertIs(type(params[1]["stdin"]), bytes)
        self.assertIsNone(params[1]["env"])
        self.assertIs(params[1]["tty"], False)
        self.assertEqual((params[1]["timeout"], params[1]["n"]), (2.5, 3))
        self.assertEqual(self.slow, [])

    def test_dtdRefused(self):
        """
        A body with a DTD goes to expat, which refuses it as before.
        """
        body = STAT.replace(b"?>", b"?><!DOCTYPE m [<!ENTITY a 'b'>]>", 1)
        e = self.assertRaises(ValueError, rpc.parseCall, body)
        self.assertEqual(str(e), "DTDs and entity declarations are not allowed in XML-RPC")
        self.assertEqual(self.slow, [body])

    def test_entityBomb(self):
        """
        An entity bomb is refused as a DTD.
        """
        body = (b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'>"
                b"<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
                b"<methodCall><methodName>&b;</methodName></methodCall>")
        self.assertRaises(ValueError, rpc.parseCall, body)
        self.assertEqual(self.slow, [body])

    def test_tooDeep(self):
        """
        A body that might pass the depth limit goes to expat, which gives
        its error.
        """
        body = xmlrpc.client.dumps(([[[[["x"]]]]],), "m").encode()
        self.assertEqual(outcome(rpc.parseCall, body, 10, 100), outcome(expat, body, 10, 100))
        self.assertEqual(outcome(rpc.parseCall, body, 10, 100)[:2], ("error", ValueError))
        self.assertEqual(len(self.slow), 2)

    def test_deepEnough(self):
        """
        A body well within the depth limit stays on the fast path.
        """
        body = xmlrpc.client.dumps(([["x"]],), "m").encode()
        self.assertEqual(rpc.parseCall(body, 11, 100), (([["x"]],), "m"))
        self.assertEqual(self.slow, [])

    def test_tooManyElements(self):
        """
        A body that might hold more elements than allowed goes to expat.
        """
        body = xmlrpc.client.dumps((list(range(20)),), "m").encode()
        self.assertEqual(outcome(rpc.parseCall, body, 40, 30), outcome(expat, body, 40, 30))
        self.assertEqual(outcome(rpc.parseCall, body, 40, 30)[:2], ("error", ValueError))

    def test_otherEncoding(self):
        """
        A body in another encoding is read by expat.
        """
        body = ("<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>m"
                "</methodName><params><param><value>\xe9</value></param></params>"
                "</methodCall>").encode("iso-8859-1")
        self.assertEqual(rpc.parseCall(body), (("\xe9",), "m"))
        self.assertEqual(self.slow, [body])

    def test_large(self):
        """
        A body larger than L{FAST_MAX} is read by expat.
        """
        body = xmlrpc.client.dumps(("x" * FAST_MAX,), "m").encode()
        self.assertEqual(rpc.parseCall(body), (("x" * FAST_MAX,), "m"))
        self.assertEqual(self.slow, [body])

    def test_dateTime(self):
        """
        A tag outside the subset (here C{dateTime.iso8601}) is read by
        expat.
        """
        body = xmlrpc.client.dumps((xmlrpc.client.DateTime(0),), "m").encode()
        self.assertEqual(rpc.parseCall(body), expat(body))
        self.assertEqual(self.slow, [body])

    def test_nonASCII(self):
        """
        Non-ASCII text, entities and character references before a base64
        value are read on the fast path.
        """
        body = xmlrpc.client.dumps(("\xe9\u20ac\U0001f600 &<>", b"\x00\xff" * 50), "m").encode()
        body = body.replace(b"&amp;", b"&#38;")
        self.assertEqual(rpc.parseCall(body), (("\xe9\u20ac\U0001f600 &<>", b"\x00\xff" * 50), "m"))
        self.assertEqual(self.slow, [])

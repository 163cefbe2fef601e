"""
Tests for L{jobmon.client.wire}: its XML-RPC bodies are
C{xmlrpc.client}'s, byte for byte going out and value for value coming
back, and what it does not read itself fails as C{xmlrpc.client} fails.
"""

import xmlrpc.client

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.client import wire

# Text XML can carry (expat refuses the rest; a carriage return comes back
# as a newline).
_text = st.text(st.characters(blacklist_categories=("Cs",),
                              blacklist_characters="\r\ufffe\uffff"
                              + "".join(map(chr, range(0, 9))) + "\x0b\x0c"
                              + "".join(map(chr, range(0x0e, 0x20)))))

_scalars = (
    _text
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=200)
)

_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _standardLoads(data):
    """
    What C{xmlrpc.client} reads, its fault as a tuple.
    """
    try:
        return xmlrpc.client.loads(data, use_builtin_types=True)
    except xmlrpc.client.Fault as f:
        return ("fault", f.faultCode, f.faultString)


def _wireLoads(data):
    """
    What L{wire.loads} reads, its fault as a tuple.
    """
    try:
        return wire.loads(data)
    except wire.Fault as f:
        return ("fault", f.faultCode, f.faultString)


class DumpsTests(SynchronousTestCase):
    """
    L{wire.dumps} writes what C{xmlrpc.client.dumps} writes.
    """

    @given(st.lists(_values, max_size=3), _text.filter(bool))
    def test_sameBody(self, params, method):
        """
        For any request JobMon could send, the same text.
        """
        params = tuple(params)
        self.assertEqual(wire.dumps(params, method),
                         xmlrpc.client.dumps(params, method, allow_none=False))

    def test_request(self):
        """
        A query as the client sends it, bytes and a bytearray included.
        """
        params = ("job.1", {"op": "tail", "path": b"\xff" * 100, "lines": 10,
                            "timeout": 60.0, "raw": bytearray(b"x"), "all": True,
                            "args": ["a", "<&>"]})
        self.assertEqual(wire.dumps(params, "jobmon.query"),
                         xmlrpc.client.dumps(params, "jobmon.query"))

    def test_refusedAlike(self):
        """
        What XML-RPC cannot carry is refused with C{xmlrpc.client}'s own
        exception and message.
        """
        recursive = []
        recursive.append(recursive)
        selfish = {}
        selfish["me"] = selfish
        for params, error in [((None,), TypeError), ((2**31,), OverflowError),
                              ((-(2**31) - 1,), OverflowError), ((object(),), TypeError),
                              (({1: 2},), TypeError), ((recursive,), TypeError),
                              ((selfish,), TypeError), ((1j,), TypeError)]:
            mine = self.assertRaises(error, wire.dumps, params, "m")
            theirs = self.assertRaises(error, xmlrpc.client.dumps, params, "m")
            self.assertEqual(str(mine), str(theirs))

    def test_otherTypesAlike(self):
        """
        A type the fast path does not write (a date, a subclass of a basic
        type, an object's attributes) is written by C{xmlrpc.client}.
        """
        import datetime

        class Thing:
            def __init__(self):
                self.a = 1

        for value in [datetime.datetime(2031, 5, 9, 12, 0, 0), Thing(),
                      xmlrpc.client.Binary(b"x")]:
            self.assertEqual(wire.dumps((value,), "m"), xmlrpc.client.dumps((value,), "m"))


class LoadsTests(SynchronousTestCase):
    """
    L{wire.loads} reads what C{xmlrpc.client.loads} reads.
    """

    @given(_values)
    def test_sameValue(self, value):
        """
        For any answer, the same value.
        """
        data = xmlrpc.client.dumps((value,), methodresponse=True).encode("utf-8")
        self.assertEqual(_wireLoads(data), _standardLoads(data))

    @given(st.integers(min_value=-(2**31), max_value=2**31 - 1), _text)
    def test_sameFault(self, code, message):
        """
        A fault is raised as L{wire.Fault} with the same code and string.
        """
        data = xmlrpc.client.dumps(xmlrpc.client.Fault(code, message)).encode("utf-8")
        self.assertEqual(_wireLoads(data), ("fault", code, message))
        self.assertEqual(_standardLoads(data), ("fault", code, message))

    def test_otherForms(self):
        """
        Forms the server does not write but XML-RPC allows (untyped
        strings, other integer tags, nil, whitespace, a date, namespaced
        tags, an empty value) read the same too.
        """
        bodies = [
            b"<methodResponse><params><param><value>bare</value></param></params>"
            b"</methodResponse>",
            b"<methodResponse><params><param><value><i8>12345678901</i8></value>"
            b"</param></params></methodResponse>",
            b"<methodResponse><params><param><value><nil/></value></param></params>"
            b"</methodResponse>",
            b"<methodResponse>\n <params>\n  <param>\n   <value><struct>\n"
            b"<member><name>a</name><value><i4> 7 </i4></value></member>\n"
            b"</struct></value></param></params></methodResponse>",
            b"<methodResponse><params><param><value><dateTime.iso8601>20310509T12:00:00"
            b"</dateTime.iso8601></value></param></params></methodResponse>",
            b"<methodResponse><params><param><value><ex:i8 xmlns:ex='x'>5</ex:i8>"
            b"</value></param></params></methodResponse>",
            b"<methodResponse><params><param><value/></param></params></methodResponse>",
            b"<methodResponse><params><param><value><base64>AAEC\n/w==</base64></value>"
            b"</param></params></methodResponse>",
            b"<methodResponse><fault><value><struct><member><name>faultCode</name>"
            b"<value><int>404</int></value></member><member><name>faultString</name>"
            b"<value>gone</value></member><member><name>more</name><value>x</value>"
            b"</member></struct></value></fault></methodResponse>",
        ]
        for data in bodies:
            self.assertEqual(_wireLoads(data), _standardLoads(data), data)

    def test_failuresAlike(self):
        """
        What is not XML-RPC raises what C{xmlrpc.client.loads} raises, with
        its message.
        """
        bodies = [
            b"", b"not xml", b"<methodResponse><params>",
            b"<methodResponse></methodResponse>",
            b"<methodResponse><params><param><value><boolean>2</boolean></value>"
            b"</param></params></methodResponse>",
            b"<methodResponse><params><param><value><int>x</int></value>"
            b"</param></params></methodResponse>",
            b"<methodResponse><params><param><value><blob>x</blob></value>"
            b"</param></params></methodResponse>",
            b"<methodResponse><fault><value><struct></struct></value></fault>"
            b"</methodResponse>",
        ]
        for data in bodies:
            try:
                xmlrpc.client.loads(data, use_builtin_types=True)
            except Exception as e:
                theirs = e
            else:
                self.fail("xmlrpc.client read %r" % (data,))
            mine = self.assertRaises(type(theirs), wire.loads, data)
            self.assertEqual(str(mine), str(theirs), data)

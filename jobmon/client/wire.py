"""
XML-RPC bodies for the client, without importing C{xmlrpc.client}: that
module imports C{http.client} (and with it the C{email} package),
C{datetime}, C{decimal} and C{gzip}, about half of C{jobmon-query}'s own
start-up time.

L{dumps} and L{loads} give the same results as C{xmlrpc.client.dumps(params,
method, allow_none=False)} and C{xmlrpc.client.loads(data,
use_builtin_types=True)} (their code is followed step by step), for the
values JobMon's requests and answers hold: strings, ints, booleans,
doubles, bytes (base64), arrays, structs and nil.  Anything else (a type
they do not know, C{dateTime.iso8601}, a namespaced tag, malformed XML or
XML-RPC, a value XML-RPC cannot carry) is handed to C{xmlrpc.client}
itself, imported then, so that its result or its exception is exactly the
standard library's.

This imports only the standard library's C modules C{pyexpat} and
C{binascii}.
"""

import binascii
from pyexpat import ParserCreate

_MAXINT = 2**31 - 1
_MININT = -(2**31)
_BASE64_LINE = 57
"""Bytes per line of base64, as C{base64.encodebytes} writes them."""


class Fault(Exception):
    """
    An XML-RPC fault in an answer, as C{xmlrpc.client.Fault} gives it:
    C{faultCode} and C{faultString}.
    """

    def __init__(self, faultCode, faultString):
        super().__init__(faultCode, faultString)
        self.faultCode = faultCode
        self.faultString = faultString


class _Unusual(Exception):
    """
    Something the fast path leaves to C{xmlrpc.client}.
    """


def _escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dumpValue(value, write, memo):
    kind = type(value)
    if kind is str:
        write("<value><string>")
        write(_escape(value))
        write("</string></value>\n")
    elif kind is int:
        if value > _MAXINT or value < _MININT:
            raise _Unusual()
        write("<value><int>")
        write(str(value))
        write("</int></value>\n")
    elif kind is bool:
        write("<value><boolean>")
        write(value and "1" or "0")
        write("</boolean></value>\n")
    elif kind is float:
        write("<value><double>")
        write(repr(value))
        write("</double></value>\n")
    elif kind is dict:
        if id(value) in memo:
            raise _Unusual()
        memo.add(id(value))
        write("<value><struct>\n")
        for k, v in value.items():
            if type(k) is not str:
                raise _Unusual()
            write("<member>\n")
            write("<name>%s</name>\n" % _escape(k))
            _dumpValue(v, write, memo)
            write("</member>\n")
        write("</struct></value>\n")
        memo.discard(id(value))
    elif kind is list or kind is tuple:
        if id(value) in memo:
            raise _Unusual()
        memo.add(id(value))
        write("<value><array><data>\n")
        for v in value:
            _dumpValue(v, write, memo)
        write("</data></array></value>\n")
        memo.discard(id(value))
    elif kind is bytes or kind is bytearray:
        write("<value><base64>\n")
        write("".join(
            binascii.b2a_base64(value[i:i + _BASE64_LINE]).decode("ascii")
            for i in range(0, len(value), _BASE64_LINE)
        ))
        write("</base64></value>\n")
    else:
        raise _Unusual()


def dumps(params, methodname):
    """
    The body of an XML-RPC call of C{methodname} with C{params} (a tuple),
    as text: C{xmlrpc.client.dumps(params, methodname, allow_none=False)}.

    @raise TypeError: (or C{OverflowError}...) as C{xmlrpc.client.dumps}
        raises for what XML-RPC cannot carry.
    """
    out = ["<?xml version='1.0'?>\n<methodCall>\n<methodName>", methodname,
           "</methodName>\n<params>\n"]
    write = out.append
    try:
        if type(params) is not tuple or not isinstance(methodname, str) or not methodname:
            raise _Unusual()
        memo = set()
        for v in params:
            write("<param>\n")
            _dumpValue(v, write, memo)
            write("</param>\n")
    except _Unusual:
        import xmlrpc.client

        return xmlrpc.client.dumps(params, methodname, allow_none=False)
    write("</params>\n</methodCall>\n")
    return "".join(out)


class _Unmarshaller:
    """
    C{xmlrpc.client.Unmarshaller} with C{use_builtin_types=True}, for the
    tags JobMon's answers use; any other tag raises L{_Unusual}.
    """

    def __init__(self):
        self._type = None
        self._stack = []
        self._marks = []
        self._data = []
        self._value = False
        self.append = self._stack.append

    def close(self):
        if self._type is None or self._marks:
            raise _Unusual()
        if self._type == "fault":
            fault = self._stack[0]
            if type(fault) is not dict or set(fault) != {"faultCode", "faultString"}:
                raise _Unusual()
            raise Fault(fault["faultCode"], fault["faultString"])
        return tuple(self._stack)

    def start(self, tag, attrs):
        if tag not in _END:
            raise _Unusual()
        if tag == "array" or tag == "struct":
            self._marks.append(len(self._stack))
        self._data = []
        self._value = tag == "value"

    def data(self, text):
        self._data.append(text)

    def end(self, tag):
        f = _END.get(tag)
        if f is None:
            raise _Unusual()
        f(self, "".join(self._data))

    def _nil(self, data):
        self.append(None)
        self._value = 0

    def _boolean(self, data):
        if data == "0":
            self.append(False)
        elif data == "1":
            self.append(True)
        else:
            raise _Unusual()
        self._value = 0

    def _int(self, data):
        self.append(int(data))
        self._value = 0

    def _double(self, data):
        self.append(float(data))
        self._value = 0

    def _string(self, data):
        self.append(data)
        self._value = 0

    def _array(self, data):
        mark = self._marks.pop()
        self._stack[mark:] = [self._stack[mark:]]
        self._value = 0

    def _struct(self, data):
        mark = self._marks.pop()
        struct = {}
        items = self._stack[mark:]
        for i in range(0, len(items), 2):
            struct[items[i]] = items[i + 1]
        self._stack[mark:] = [struct]
        self._value = 0

    def _base64(self, data):
        self.append(binascii.a2b_base64(data.encode("ascii")))
        self._value = 0

    def _valueEnd(self, data):
        if self._value:
            self._string(data)

    def _params(self, data):
        self._type = "params"

    def _fault(self, data):
        self._type = "fault"

    def _ignore(self, data):
        pass


_END = {
    "nil": _Unmarshaller._nil,
    "boolean": _Unmarshaller._boolean,
    "i1": _Unmarshaller._int,
    "i2": _Unmarshaller._int,
    "i4": _Unmarshaller._int,
    "i8": _Unmarshaller._int,
    "int": _Unmarshaller._int,
    "biginteger": _Unmarshaller._int,
    "double": _Unmarshaller._double,
    "float": _Unmarshaller._double,
    "string": _Unmarshaller._string,
    "name": _Unmarshaller._string,
    "array": _Unmarshaller._array,
    "struct": _Unmarshaller._struct,
    "base64": _Unmarshaller._base64,
    "value": _Unmarshaller._valueEnd,
    "params": _Unmarshaller._params,
    "fault": _Unmarshaller._fault,
    # Tags whose end does nothing in xmlrpc.client.
    "methodResponse": _Unmarshaller._ignore,
    "param": _Unmarshaller._ignore,
    "data": _Unmarshaller._ignore,
    "member": _Unmarshaller._ignore,
}
"""What the end of each known tag does (C{xmlrpc.client}'s dispatch)."""


def loads(data):
    """
    Read an XML-RPC answer (bytes): C{xmlrpc.client.loads(data,
    use_builtin_types=True)}, except that a fault is raised as L{Fault}.

    @return: C{(params, None)}: the tuple of values, and no method name.
    @raise Fault: the answer is a fault.
    @raise Exception: whatever C{xmlrpc.client.loads} raises for what is
        not XML-RPC.
    """
    target = _Unmarshaller()
    parser = ParserCreate(None, None)
    parser.StartElementHandler = target.start
    parser.EndElementHandler = target.end
    parser.CharacterDataHandler = target.data
    try:
        parser.Parse(data, True)
        return target.close(), None
    except Fault:
        raise
    except Exception:
        pass
    import xmlrpc.client

    try:
        return xmlrpc.client.loads(data, use_builtin_types=True)
    except xmlrpc.client.Fault as e:
        raise Fault(e.faultCode, e.faultString) from None

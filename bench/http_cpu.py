"""
CPU time of the server's HTTP layer per XML-RPC request, in process: N
identical POSTs fed one at a time through one kept-alive connection of the
server's site (C{QuietSite.buildProtocol} + a L{StringTransport}) to an
L{XMLRPCResource} whose method does nothing, and the same call's XML parse
and encode alone, so that their difference is the cost of the HTTP work and the resource's
dispatch; and the same POSTs to a stub endpoint that reads the body and
answers a fixed one: the HTTP layer alone (C{http_only_us}).

    PYTHONPATH=/path/to/tree .venv/bin/python bench/http_cpu.py [-n 20000] [--repeats 5]

It imports JobMon from C{PYTHONPATH} (run it with each tree's path to
compare trees: the script itself uses only what both have).  Figures are
process CPU time (C{time.process_time}) per request, best of the repeats.
"""

import argparse
import json
import time
import xmlrpc.client

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from jobmon.protocols.xmlrpc import XMLRPCResource, parseCall
from jobmon.server.site import QuietSite

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


class _Identity:
    dn = "/CN=bench"


class _Stub(Resource):
    """
    An endpoint that reads the body and answers a fixed body: what is left
    is the HTTP layer's own cost.
    """

    isLeaf = True
    answer = xmlrpc.client.dumps((0,), methodresponse=True).encode()

    def render_POST(self, request):
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        request.content.read()
        return self.answer


def _site(stub=False):
    if stub:
        resource = _Stub()
    else:
        resource = XMLRPCResource({"t.ping": lambda identity, jobId: 0},
                                  lambda request: _Identity)
    root = Resource()
    root.putChild(b"RPC2", resource)
    return QuietSite(root, reactor=Clock(), trim=None, connectionRate=1e9,
                     connectionBurst=10**9)


def _request():
    body = xmlrpc.client.dumps(("1234.0",), "t.ping").encode()
    return (
        b"POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nAccept-Encoding: gzip\r\n"
        b"Content-Type: text/xml\r\nUser-Agent: Python-xmlrpc/3.12\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    ), body


def perRequest(n, stub=False):
    """
    CPU seconds per request through the site, keep-alive.
    """
    site = _site(stub)
    channel = site.buildProtocol(PEER)
    transport = StringTransport()
    channel.makeConnection(transport)
    data, _ = _request()
    channel.dataReceived(data)
    assert b"200 OK" in transport.value(), transport.value()
    transport.clear()
    start = time.process_time()
    for _ in range(n):
        channel.dataReceived(data)
        transport.clear()
    return (time.process_time() - start) / n


def perCall(n):
    """
    CPU seconds of the call's XML parse and answer encoding alone.
    """
    _, body = _request()
    start = time.process_time()
    for _ in range(n):
        parseCall(body)
        xmlrpc.client.dumps((0,), methodresponse=True, allow_none=False).encode()
    return (time.process_time() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    request = min(perRequest(args.n) for _ in range(args.repeats))
    call = min(perCall(args.n) for _ in range(args.repeats))
    stub = min(perRequest(args.n, stub=True) for _ in range(args.repeats))
    print(json.dumps({
        "request_us": round(request * 1e6, 1),
        "http_only_us": round(stub * 1e6, 1),
        "xml_us": round(call * 1e6, 1),
        "http_us": round((request - call) * 1e6, 1),
    }))


if __name__ == "__main__":
    main()

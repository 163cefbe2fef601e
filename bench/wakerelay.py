"""
The server's own CPU per query for a TCP-wake job, in process, without
sockets or TLS: the previous protocol against requests on the wake
channel with relayed results.

Both run the real L{jobmon.server.hub.Hub} and
L{jobmon.protocols.wake.WakeServerProtocol} (on a L{StringTransport}) and
the real XML-RPC parse and encode of L{jobmon.protocols.xmlrpc}:

  - C{wake}: C{query}, the wake line, the daemon's C{getJobToDo} (call
    parsed, answer encoded), its C{outputJobResult} (call with the result
    parsed, answer encoded), the user's answer encoded;
  - C{requests}: C{query}, the request line, the daemon's result frame
    received, checked and relayed, the user's answer wrapped.

What the HTTP and TLS layers and the kernel cost per message comes on
top (see L{roundtrip}): the previous protocol has two HTTPS calls more per
query.

Usage::

    PYTHONPATH=. .venv/bin/python bench/wakerelay.py [-n 20000] [--op stat|cat]
"""

import argparse
import os
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from jobmon.protocols.relay import encodeFragment  # noqa: E402
from jobmon.protocols.wake import payloadSize  # noqa: E402
from jobmon.protocols.xmlrpc import XMLRPCResource, parseCall  # noqa: E402
from jobmon.server.hub import Hub, HubConfig  # noqa: E402
from jobmon.server.identity import Identity  # noqa: E402
from jobmon.server.pending import MemoryRequestTable  # noqa: E402
from jobmon.server.registry import MemoryJobRegistry  # noqa: E402
from jobmon.server.wakes import WakeServerFactory  # noqa: E402

ALICE = Identity("/DC=org/DC=test/CN=Alice")

RESULTS = {
    "stat": ({"op": "stat", "path": "job.log"},
             {"name": "job.log", "type": "file", "size": 1048576.0, "mtime": 1796290000.5,
              "mode": "-rw-r--r--", "inode": 1234567.0}),
    "cat": ({"op": "cat", "path": "small.bin", "offset": 0, "length": 4096},
            {"data": bytes(range(256)) * 16, "size": 4096.0, "offset": 0.0, "eof": True}),
}


def setUp(requests):
    """
    A hub with job C{job.1} and its channel, which asks for requests or not.
    """
    clock = Clock()
    # The per-user query rate lifted, as bench/common does for real servers.
    config = HubConfig(queryTimeout=30, queryRate=1e9, queryBurst=10**9)
    hub = Hub(clock, MemoryJobRegistry(), MemoryRequestTable(), config)
    reply = hub.registerJob(ALICE, "job.1", {"host": "wn", "wake": "tcp"})
    proto = WakeServerFactory(hub, lambda t: ALICE, clock).buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    hello = b'{"type":"hello","job_id":"job.1","token":"%s"%s}\n' % (
        reply["wake"]["token"].encode(), b',"features":["requests"]' if requests else b"")
    proto.dataReceived(hello)
    transport.clear()
    return hub, proto, transport


def wakePath(n, request, result):
    hub, proto, transport = setUp(False)
    resource = XMLRPCResource({}, lambda r: None)
    fetch = xmlrpc.client.dumps(("job.1",), "jobmon.getJobToDo").encode()
    answers = []
    elapsed = 0.0
    for _ in range(n):
        t = time.process_time()
        d = hub.query(ALICE, "job.1", request)
        d.addCallback(resource._encode).addCallback(answers.append)
        transport.clear()
        params, _ = parseCall(fetch)
        items = hub.getJobToDo(ALICE, *params)
        resource._encode(items)
        elapsed += time.process_time() - t
        # The daemon encodes its post (not counted).
        post = xmlrpc.client.dumps(("job.1", items[0]["id"], result),
                                   "jobmon.outputJobResult").encode()
        t = time.process_time()
        params, _ = parseCall(post)
        resource._encode(hub.outputJobResult(ALICE, *params))
        elapsed += time.process_time() - t
    assert len(answers) == n
    return elapsed


def requestsPath(n, request, result):
    hub, proto, transport = setUp(True)
    resource = XMLRPCResource({}, lambda r: None)
    answers = []
    body = encodeFragment(result)
    frame = b'{"type":"result","id":"%s","length":%d,"bytes":%d}\n' + body
    elapsed = 0.0
    for _ in range(n):
        t = time.process_time()
        d = hub.query(ALICE, "job.1", request)
        d.addCallback(resource._encode).addCallback(answers.append)
        line = transport.value()
        transport.clear()
        elapsed += time.process_time() - t
        requestId = line.split(b'"id":"', 1)[1].split(b'"', 1)[0]
        data = frame % (requestId, len(body), payloadSize(result))
        t = time.process_time()
        proto.dataReceived(data)
        elapsed += time.process_time() - t
    assert len(answers) == n
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--op", choices=sorted(RESULTS), default="stat")
    args = parser.parse_args()
    request, result = RESULTS[args.op]
    print("| path | server CPU us/query ({}, n={}) |".format(args.op, args.n))
    print("|---|---:|")
    for name, path in (("wake + getJobToDo + outputJobResult", wakePath),
                       ("requests on the channel, result relayed", requestsPath)):
        path(min(args.n, 500), request, result)  # warm-up
        elapsed = path(args.n, request, result)
        print("| {} | {:.1f} |".format(name, elapsed * 1e6 / args.n))


if __name__ == "__main__":
    main()

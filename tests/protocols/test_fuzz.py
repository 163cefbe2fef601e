"""
Property-based attacks on what the server parses from strangers: the TCP
wake channel, XML-RPC bodies, and the hub's methods called with arbitrary
values.  The server must never crash, never leave state behind, and answer a
well-behaved client afterwards.
"""

import xmlrpc.client

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from jobmon.errors import JobMonError
from jobmon.protocols.xmlrpc import XMLRPCResource
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.site import QuietSite
from jobmon.server.wakes import WakeServerFactory
from tests.server.test_hub import FakeChannel

ALICE = Identity("/CN=Alice")
MALLORY = Identity("/CN=Mallory")

# Values XML-RPC can carry, and then some: huge integers, odd floats, lone
# surrogates, bytes, nesting.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=50),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=12,
)


def newHub():
    """
    A hub with one registered, connected job of Alice's.
    """
    clock = Clock()
    hub = Hub(clock, MemoryJobRegistry(), MemoryRequestTable(), HubConfig(admins=["/CN=Admin"]))
    reply = hub.registerJob(ALICE, "job.1", {"host": "wn", "wake": "tcp"})
    hub.channelHello(FakeChannel("job.1"), ALICE, "job.1", reply["wake"]["token"])
    return clock, hub


class HubFuzzTests(SynchronousTestCase):
    """
    The hub's methods with arbitrary arguments.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        method=st.sampled_from(
            ["query", "registerJob", "getJobToDo", "waitForWork", "outputJobResult",
             "unregisterJob", "listJobs", "auditLog"]
        ),
        who=st.sampled_from([ALICE, MALLORY]),
        args=st.lists(values, min_size=1, max_size=3),
    )
    def test_methods(self, method, who, args):
        """
        Any arguments give a result or a L{JobMonError} (or a signature
        mismatch the XML-RPC layer turns into a fault): never another
        exception.  Mallory never gets a result about Alice's job.
        """
        clock, hub = newHub()
        fn = getattr(hub, method)
        try:
            result = fn(who, *args)
        except JobMonError:
            return
        except TypeError as e:
            # Only argument-count mismatches, which the resource refuses
            # before calling.
            self.assertIn("argument", str(e))
            return
        if hasattr(result, "addBoth"):
            result.addErrback(lambda f: f.trap(JobMonError))
            result.cancel()
        if who is MALLORY:
            self.assertNotIn("job.1", repr(result))
        hub.stop()

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.text(max_size=8), values), max_size=8))
    def test_resultsNeverEscapeTheRemoteRange(self, fields):
        """
        Whatever a daemon posts as an error, the user sees a remote code
        (or 400), never a server-side one such as 403 or 404.
        """
        clock, hub = newHub()
        d = hub.query(ALICE, "job.1", {"op": "ls"})
        [item] = hub.getJobToDo(ALICE, "job.1")
        error = dict(fields)
        hub.outputJobResult(ALICE, "job.1", item["id"], {"error": error})
        failure = self.failureResultOf(d, JobMonError)
        code = failure.value.code
        self.assertTrue(code == 400 or 1000 <= code < 2000, code)
        self.assertEqual(len(hub.table), 0)


class WakeFuzzTests(SynchronousTestCase):
    """
    The wake channel fed random and truncated frames.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=10))
    def test_randomFrames(self, chunks):
        """
        Random bytes never raise out of the protocol and never bind a
        channel; the connection is closed or still usable.
        """
        clock, hub = newHub()
        factory = WakeServerFactory(hub, lambda transport: MALLORY, clock)
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        for chunk in chunks:
            proto.dataReceived(chunk)
        self.assertIsNone(proto.jobId)
        proto.connectionLost(None)
        self.assertEqual(factory.peers, {})

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.text(max_size=10), values, max_size=5), st.integers(0, 200))
    def test_jsonMessages(self, message, cut):
        """
        Well-formed JSON of any shape, whole or cut, is refused cleanly
        unless it is a valid hello of the job's owner.
        """
        import json

        clock, hub = newHub()
        factory = WakeServerFactory(hub, lambda transport: MALLORY, clock)
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        data = json.dumps(message, default=repr).encode() + b"\n"
        proto.dataReceived(data[:cut])
        proto.dataReceived(data[cut:])
        self.assertIsNone(proto.jobId)
        proto.connectionLost(None)


class XMLRPCFuzzTests(SynchronousTestCase):
    """
    The XML-RPC endpoint fed arbitrary bodies.
    """

    def setUp(self):
        self.clock, self.hub = newHub()
        resource = XMLRPCResource(
            {"jobmon.query": self.hub.query, "jobmon.listJobs": self.hub.listJobs},
            lambda request: ALICE,
            maxBody=100000,
        )
        root = Resource()
        root.putChild(b"RPC2", resource)
        # No idle timeout or request deadline on the global reactor: tests
        # that want them set them with a Clock.  Every body comes from the
        # same (no) address: no limit on how many may be malformed.
        self.site = QuietSite(root, timeout=None, requestDeadline=None,
                              connectionBurst=10**9, trim=None)

    def post(self, body):
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return transport.value()

    def assertAnswered(self, response):
        """
        The server answered with HTTP 200 and an XML-RPC response, or is
        still waiting for the job (a valid query), never an error page.
        """
        if response:
            self.assertTrue(response.startswith(b"HTTP/1.1 200"), response[:200])

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=2000))
    def test_randomBodies(self, body):
        """
        Random bodies get an XML-RPC fault.
        """
        response = self.post(body)
        self.assertIn(b"faultCode", response)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(values, max_size=3), st.integers(0, 3000))
    def test_truncatedCalls(self, params, cut):
        """
        Real calls with arbitrary parameters, whole or cut short, are
        answered; a well-behaved call still works afterwards.
        """
        try:
            body = xmlrpc.client.dumps(tuple(params), "jobmon.query", allow_none=True)
        except (OverflowError, TypeError, ValueError):
            return
        body = body.encode("utf-8", "surrogatepass")[:cut]
        self.assertAnswered(self.post(body))
        ok = self.post(xmlrpc.client.dumps((), "jobmon.listJobs").encode())
        self.assertIn(b"job.1", ok)
        for d in list(self.hub.table._entries.values()):
            d.deferred.addErrback(lambda f: None)
        self.hub.stop()
        self.setUp()

"""
Helpers for the browser view's unit tests: a real L{Hub} on a L{Clock},
its methods rate limited as the server wires them, and requests rendered
through the site's resource tree with L{DummyRequest}.
"""

import json
from io import BytesIO
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from jobmon.errors import NOT_AUTHENTICATED, JobMonError
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.service import apiMethods
from jobmon.server.web import WebRoot
from tests.server.test_hub import FakeChannel

ALICE = Identity("/DC=org/DC=test/CN=Alice")
BOB = Identity("/DC=org/DC=test/CN=Bob")
ADMIN = Identity("/DC=org/DC=test/CN=Admin")
IDENTITIES = {who.dn.encode("utf-8"): who for who in (ALICE, BOB, ADMIN)}

HOST = b"jobmon.test:8443"
ORIGIN = b"https://" + HOST


def identify(request):
    """
    The test's C{identify}: the identity named by C{X-Test-DN}; without it,
    no credential.
    """
    dn = request.getHeader(b"x-test-dn")
    if dn is None or dn not in IDENTITIES:
        raise JobMonError(NOT_AUTHENTICATED, "no credential")
    return IDENTITIES[dn]


class WebTestCase(SynchronousTestCase):
    """
    The browser view's resources over a real hub.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = MemoryRequestTable()
        self.registry = MemoryJobRegistry()
        self.hub = Hub(self.clock, self.registry, self.table, self.config())
        self.hub.wakePort = 8444
        self.root = WebRoot(self.hub.limits.wrapAll(apiMethods(self.hub)), identify, self.clock)

    def config(self):
        """
        The hub's configuration.
        """
        return HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20, connectGrace=10)

    def register(self, who=ALICE, jobId="job.1"):
        """
        Register a job with its wake channel up.
        """
        reply = self.hub.registerJob(who, jobId, {"host": "wn01", "wake": "tcp"})
        channel = FakeChannel(jobId)
        self.hub.channelHello(channel, who, jobId, reply["wake"]["token"])
        return channel

    def request(self, target, method=b"GET", who=ALICE, headers=None, body=b""):
        """
        Render C{target} (a path with its query string) as the site would.

        @return: the L{DummyRequest}, finished or not.
        """
        parts = urlsplit(target)
        segments = parts.path.split("/")[1:]
        request = DummyRequest([unquote(s).encode("utf-8") for s in segments])
        request.method = method
        request.uri = target.encode("utf-8")
        request.path = parts.path.encode("utf-8")
        request.isSecure = lambda: True
        for name, values in parse_qs(parts.query, keep_blank_values=True).items():
            request.args[name.encode("utf-8")] = [v.encode("utf-8") for v in values]
        request.requestHeaders.setRawHeaders(b"host", [HOST])
        if who is not None:
            request.requestHeaders.setRawHeaders(b"x-test-dn", [who.dn.encode("utf-8")])
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name, [value])
        request.content = BytesIO(body)
        resource = getChildForRequest(self.root, request)
        result = resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request

    def post(self, name, value, who=ALICE, headers=None):
        """
        POST C{value} as JSON to C{/api/NAME} the way the page does.
        """
        allHeaders = {b"content-type": b"application/json", b"x-jobmon-request": b"1",
                      b"origin": ORIGIN, b"sec-fetch-site": b"same-origin"}
        allHeaders.update(headers or {})
        allHeaders = {k: v for k, v in allHeaders.items() if v is not None}
        return self.request("/api/" + name, b"POST", who, allHeaders,
                            json.dumps(value).encode("utf-8"))

    def header(self, request, name):
        """
        The one value of a response header.
        """
        values = request.responseHeaders.getRawHeaders(name)
        self.assertIsNotNone(values, name)
        self.assertEqual(len(values), 1, (name, values))
        return values[0]

    def json(self, request, status=200):
        """
        The JSON body of a finished request, after checking its status.
        """
        self.assertTrue(request.finished, "the request is not finished")
        self.assertEqual(request.responseCode or 200, status, b"".join(request.written))
        self.assertEqual(self.header(request, b"content-type"), b"application/json; charset=utf-8")
        return json.loads(b"".join(request.written))

    def answer(self, who=ALICE, jobId="job.1", result=None, error=None):
        """
        Answer the one request queued for the job as its daemon would.

        @return: the request struct answered.
        """
        [item] = self.hub.getJobToDo(who, jobId)
        self.hub.outputJobResult(who, jobId, item["id"], result if error is None else
                                 {"error": error})
        return item["request"]

"""
Tests for L{jobmon.server.web.api}: the browser view's JSON API over a real
hub: authorization as the XML-RPC endpoint's, no state change on GET, the
CSRF checks of POSTs, error mapping and headers.
"""

from jobmon.errors import NO_SUCH_FILE
from jobmon.server.hub import HubConfig
from jobmon.server.ratelimit import LimitsConfig
from jobmon.server.web.common import jsonable
from tests.server.web.support import ADMIN, ALICE, BOB, ORIGIN, WebTestCase


class AuthorizationTests(WebTestCase):
    """
    Who sees what: the hub decides, as for XML-RPC.
    """

    def setUp(self):
        super().setUp()
        self.register(ALICE, "a.1")
        self.register(ALICE, "a.2")
        self.register(BOB, "b.1")

    def test_noCredential(self):
        """
        A request without a credential is 401, JSON with the fault code, and
        tells a token user how to authenticate.
        """
        request = self.request("/api/whoami", who=None)
        body = self.json(request, 401)
        self.assertEqual(body["code"], 401)
        self.assertEqual(self.header(request, b"www-authenticate"), b'Bearer realm="jobmon"')

    def test_whoami(self):
        """
        C{/api/whoami} describes the caller.
        """
        body = self.json(self.request("/api/whoami"))
        self.assertEqual(body["dn"], ALICE.dn)
        self.assertFalse(body["admin"])
        self.assertTrue(self.json(self.request("/api/whoami", who=ADMIN))["admin"])

    def test_ownJobsOnly(self):
        """
        Alice lists her jobs only; Bob his.
        """
        self.assertEqual([j["job_id"] for j in self.json(self.request("/api/jobs"))],
                         ["a.1", "a.2"])
        self.assertEqual([j["job_id"] for j in self.json(self.request("/api/jobs", who=BOB))],
                         ["b.1"])

    def test_adminAll(self):
        """
        An admin lists every job with C{all=1}; anyone else gets 403.
        """
        self.assertEqual(
            [j["job_id"] for j in self.json(self.request("/api/jobs?all=1", who=ADMIN))],
            ["a.1", "a.2", "b.1"])
        self.assertEqual(self.json(self.request("/api/jobs?all=1"), 403)["code"], 403)

    def test_paging(self):
        """
        C{limit} and C{after} page the listing.
        """
        page = self.json(self.request("/api/jobs?limit=1&after=a.1"))
        self.assertEqual([j["job_id"] for j in page], ["a.2"])

    def test_othersJob(self):
        """
        Bob querying Alice's job gets 404, and nothing is queued.
        """
        body = self.json(self.request("/api/query?job=a.1&op=ps", who=BOB), 404)
        self.assertEqual(body["code"], 404)
        self.assertEqual(len(self.table), 0)

    def test_adminQuery(self):
        """
        An admin may query anyone's job; the answer names its owner.
        """
        request = self.request("/api/query?job=a.1&op=ps", who=ADMIN)
        self.assertFalse(request.finished)
        self.answer(ALICE, "a.1", {"root": 1, "processes": []})
        body = self.json(request)
        self.assertEqual(body["job_owner"], ALICE.dn)

    def test_history(self):
        """
        C{/api/history} calls the hub's history (this hub keeps none: 400
        saying so).
        """
        body = self.json(self.request("/api/history?job=a.1&limit=5"), 400)
        self.assertEqual(body, {"code": 400, "message": "this server keeps no history"})

    def test_auditAdminsOnly(self):
        """
        C{/api/audit} is for admins: 403 for anyone else (this hub keeps no
        audit log: 400 for the admin).
        """
        self.assertEqual(self.json(self.request("/api/audit?job=a.1"), 403)["code"], 403)
        self.assertEqual(self.json(self.request("/api/audit?job=a.1", who=ADMIN), 400)["code"],
                         400)


class QueryTests(WebTestCase):
    """
    C{/api/query}: reading ops, results as JSON.
    """

    def setUp(self):
        super().setUp()
        self.register()

    def test_resultAsJson(self):
        """
        The request struct is built from the query string; bytes come back
        as base64 and, when UTF-8, as text; the answer is not to be stored.
        """
        request = self.request("/api/query?job=job.1&op=cat&path=out.log&offset=3&length=10")
        sent = self.answer(result={"path": "out.log", "data": b"<b>hi</b>\n", "offset": 3.0,
                                   "size": 13.0})
        self.assertEqual(sent, {"op": "cat", "path": "out.log", "offset": 3, "length": 10})
        body = self.json(request)
        self.assertEqual(body["data_base64"], "PGI+aGk8L2I+Cg==")
        self.assertEqual(body["data_text"], "<b>hi</b>\n")
        self.assertEqual(self.header(request, b"cache-control"), b"no-store")
        self.assertEqual(self.header(request, b"x-content-type-options"), b"nosniff")

    def test_pathBytes(self):
        """
        C{path_base64} names a file by its exact bytes.
        """
        self.request("/api/query?job=job.1&op=stat&path_base64=%2Fy4%3D")
        self.assertEqual(self.answer(result={"type": "file"}), {"op": "stat", "path": b"\xff."})

    def test_remoteError(self):
        """
        A daemon's error keeps its fault code; the HTTP status is its
        nearest (no such file: 404).
        """
        request = self.request("/api/query?job=job.1&op=stat&path=nope")
        self.answer(error={"code": NO_SUCH_FILE, "message": "no such file: nope"})
        body = self.json(request, 404)
        self.assertEqual(body, {"code": NO_SUCH_FILE, "message": "no such file: nope"})

    def test_timeout(self):
        """
        A query the job does not answer in time is 504 (not 408, which
        browsers repeat), code 408.
        """
        request = self.request("/api/query?job=job.1&op=ps")
        self.clock.advance(31)
        self.assertEqual(self.json(request, 504)["code"], 408)

    def test_badInteger(self):
        """
        A non-integer argument is 400.
        """
        self.assertEqual(self.json(self.request("/api/query?job=job.1&op=head&lines=x"),
                                   400)["code"], 400)

    def test_clientGone(self):
        """
        A browser that goes away withdraws its query.
        """
        request = self.request("/api/query?job=job.1&op=ps")
        self.assertEqual(len(self.table), 1)
        request.processingFailed(Exception("gone"))
        self.assertEqual(len(self.table), 0)

    def test_unknownApi(self):
        """
        An unknown name is 404.
        """
        self.assertEqual(self.json(self.request("/api/nothing"), 404)["code"], 404)

    def test_rateLimited(self):
        """
        The page's calls are charged as XML-RPC calls: past the user burst,
        429.
        """
        for _ in range(3):
            self.json(self.request("/api/whoami", who=BOB))
        body = self.json(self.request("/api/whoami", who=BOB), 429)
        self.assertEqual(body["code"], 429)

    def config(self):
        return HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20, connectGrace=10,
                         limits=LimitsConfig(userRate=0.001, userBurst=3))


class NoStateChangeOnGetTests(WebTestCase):
    """
    No GET acts on a job.
    """

    def setUp(self):
        super().setUp()
        self.register()

    def test_actingOpsRefused(self):
        """
        C{run}, C{signal} (and C{follow}, which has its own endpoint) are
        not ops of C{/api/query}: 400, nothing queued.
        """
        for op in ("run", "signal", "follow"):
            body = self.json(self.request("/api/query?job=job.1&op={}&name=x&signal=TERM"
                                          .format(op)), 400)
            self.assertEqual(body["code"], 400)
        self.assertEqual(len(self.table), 0)

    def test_postEndpointsByGet(self):
        """
        A GET of C{/api/run} or C{/api/signal} runs nothing.
        """
        for name in ("run?job=job.1&name=x", "signal?job=job.1&signal=TERM"):
            self.json(self.request("/api/" + name), 404)
        self.assertEqual(len(self.table), 0)


class CSRFTests(WebTestCase):
    """
    POSTs act only when the page itself sent them.
    """

    def setUp(self):
        super().setUp()
        self.register()

    def assertRefused(self, request, status=403):
        self.json(request, status)
        self.assertEqual(len(self.table), 0)

    def test_signal(self):
        """
        A POST from the page sends the signal and answers its result.
        """
        request = self.post("signal", {"job": "job.1", "signal": "TERM"})
        self.assertEqual(self.answer(result={"signal": "TERM", "pid": 42}),
                         {"op": "signal", "signal": "TERM"})
        self.assertEqual(self.json(request), {"signal": "TERM", "pid": 42})

    def test_run(self):
        """
        A POST of C{run} runs the command with its arguments; its output
        comes back as text and base64.
        """
        request = self.post("run", {"job": "job.1", "name": "disk", "args": ["-h"]})
        self.assertEqual(self.answer(result={"exit_code": 0, "stdout": b"ok\n", "stderr": b""}),
                         {"op": "run", "name": "disk", "args": ["-h"]})
        body = self.json(request)
        self.assertEqual(body["stdout_text"], "ok\n")

    def test_noCustomHeader(self):
        """
        Without C{X-JobMon-Request}: 403.
        """
        self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"},
                                     headers={b"x-jobmon-request": None}))

    def test_crossOrigin(self):
        """
        An C{Origin} other than the server's own: 403.
        """
        self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"},
                                     headers={b"origin": b"https://evil.example"}))
        self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"},
                                     headers={b"origin": ORIGIN.replace(b"https", b"http")}))

    def test_crossSite(self):
        """
        C{Sec-Fetch-Site} other than same-origin: 403.
        """
        for value in (b"cross-site", b"same-site", b"none"):
            self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"},
                                         headers={b"sec-fetch-site": value}))

    def test_formContentType(self):
        """
        A body a plain HTML form could send (not JSON): 400.
        """
        self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"},
                                     headers={b"content-type": b"text/plain"}), 400)

    def test_badBody(self):
        """
        A body that is not the expected JSON: 400.
        """
        self.assertRefused(self.post("run", {"job": "job.1", "name": "x", "args": "rm -rf"}),
                           400)
        self.assertRefused(self.post("signal", ["TERM"]), 400)

    def test_unauthorizedSignal(self):
        """
        Bob may not signal Alice's job: 404, as for XML-RPC.
        """
        self.assertRefused(self.post("signal", {"job": "job.1", "signal": "TERM"}, who=BOB),
                           404)

    def test_crossSiteRead(self):
        """
        Even a GET is refused when the browser says another site sent it.
        """
        self.assertRefused(self.request("/api/jobs", headers={b"sec-fetch-site": b"cross-site"}))


class JsonableTests(WebTestCase):
    """
    L{jsonable}.
    """

    def test_binary(self):
        """
        Bytes that are not UTF-8 come only as base64.
        """
        self.assertEqual(jsonable({"data": b"\xff\x00", "n": [1.5, {"name_bytes": b"a"}]}),
                         {"data_base64": "/wA=", "n": [1.5, {"name_bytes_base64": "YQ==",
                                                             "name_bytes_text": "a"}]})


class ListEveryPageTests(WebTestCase):
    """
    C{/api/jobs} without C{limit} gathers every page of C{listJobs}.
    """

    def test_everyPage(self):
        """
        2,500 jobs come in one answer, sorted.
        """
        for i in range(2500):
            self.hub.registerJob(ALICE, "j{:05d}".format(i), {"host": "wn", "wake": "poll"})
        request = self.request("/api/jobs")
        # A page at a time, letting other requests in between.
        self.assertFalse(request.finished)
        self.clock.advance(0)
        jobs = self.json(request)
        self.assertEqual(len(jobs), 2500)
        self.assertEqual(jobs[0]["job_id"], "j00000")
        self.assertEqual(jobs[-1]["job_id"], "j02499")

    def config(self):
        return HubConfig(admins=[ADMIN.dn], queryTimeout=30, keepalive=20, connectGrace=10,
                         limits=LimitsConfig(maxJobsPerOwner=10000, registrationBurst=10000))

"""
The authorization matrix: every server method and op, for the job's owner
(with a full and a limited proxy), another user, and an admin.  Deny by
default: each cell says what is allowed; everything else must be refused
with the stated fault.

The TLS-level rows (expired, not yet valid, revoked, unknown CA, forged,
legacy and independent proxies, host certificates) are in
L{tests.e2e.test_queries.CertificateTests} and L{tests.server.test_identity}.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from tests.server.test_hub import FakeChannel

OWNER = Identity("/DC=org/CN=Alice", proxy=True)
OWNER_LIMITED = Identity("/DC=org/CN=Alice", proxy=True, limited=True)
OTHER = Identity("/DC=org/CN=Bob", proxy=True)
ADMIN = Identity("/DC=org/CN=Admin")
CALLERS = {"owner": OWNER, "limited": OWNER_LIMITED, "other": OTHER, "admin": ADMIN}

OK = "ok"
READ_OPS = ["ls", "stat", "cat", "head", "tail", "follow", "du", "df", "ps", "top", "res",
            "env", "commands"]
ACT_OPS = ["run", "signal"]

# method -> {caller: expected outcome (OK or a fault code)}
MATRIX = {
    "query(read)": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB, "admin": OK},
    "query(act)": {"owner": OK, "limited": errors.NOT_AUTHORIZED,
                   "other": errors.NO_SUCH_JOB, "admin": OK},
    "listJobs": {"owner": ["j1"], "limited": ["j1"], "other": [], "admin": []},
    "listJobs(all)": {"owner": errors.NOT_AUTHORIZED, "limited": errors.NOT_AUTHORIZED,
                      "other": errors.NOT_AUTHORIZED, "admin": ["j1"]},
    "registerJob": {"owner": OK, "limited": OK, "other": errors.JOB_CONFLICT,
                    "admin": errors.JOB_CONFLICT},
    "getJobToDo": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB,
                   "admin": errors.NO_SUCH_JOB},
    "waitForWork": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB,
                    "admin": errors.NO_SUCH_JOB},
    "outputJobResult": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB,
                        "admin": errors.NO_SUCH_JOB},
    "unregisterJob": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB,
                      "admin": errors.NO_SUCH_JOB},
    "channelHello": {"owner": OK, "limited": OK, "other": errors.NO_SUCH_JOB,
                     "admin": errors.NO_SUCH_JOB},
    "auditLog": {"owner": errors.NOT_AUTHORIZED, "limited": errors.NOT_AUTHORIZED,
                 "other": errors.NOT_AUTHORIZED, "admin": OK},
    "whoami": {"owner": OK, "limited": OK, "other": OK, "admin": OK},
}


class JobIds(list):
    """
    The job ids a listing returned (compared as such, not as "ok").
    """


class Audit:
    def record(self, event, **fields):
        pass

    def read(self, jobId, limit):
        return []


class MatrixTests(SynchronousTestCase):
    """
    Walk the matrix, each cell on a fresh hub holding Alice's job C{j1}.
    """

    def newHub(self):
        hub = Hub(
            Clock(), MemoryJobRegistry(), MemoryRequestTable(), HubConfig(admins=[ADMIN.dn]),
            audit=Audit(), runInThread=lambda f, *a: defer.maybeDeferred(f, *a),
        )
        self.reply = hub.registerJob(OWNER, "j1", {"host": "wn", "wake": "tcp"})
        hub.channelHello(FakeChannel("j1"), OWNER, "j1", self.reply["wake"]["token"])
        return hub

    def call(self, hub, method, who, op=None):
        if method.startswith("query"):
            request = {"op": op}
            if op == "run":
                request["name"] = "diag"
            if op == "signal":
                request["signal"] = "USR1"
            return hub.query(who, "j1", request)
        if method == "listJobs":
            return JobIds(j["job_id"] for j in hub.listJobs(who))
        if method == "listJobs(all)":
            return JobIds(j["job_id"] for j in hub.listJobs(who, {"all": True}))
        if method == "registerJob":
            return hub.registerJob(who, "j1", {"host": "wn"})
        if method == "getJobToDo":
            return hub.getJobToDo(who, "j1")
        if method == "waitForWork":
            return hub.waitForWork(who, "j1", 0)
        if method == "outputJobResult":
            return hub.outputJobResult(who, "j1", "no-such-request", {})
        if method == "unregisterJob":
            return hub.unregisterJob(who, "j1")
        if method == "channelHello":
            return hub.channelHello(FakeChannel("j1"), who, "j1", self.reply["wake"]["token"])
        if method == "auditLog":
            return hub.auditLog(who, "j1", 10)
        if method == "whoami":
            return hub.whoami(who)
        raise AssertionError(method)

    def outcome(self, result):
        if isinstance(result, defer.Deferred):
            if not result.called:
                result.addErrback(lambda f: None)
                result.cancel()
                return OK
            box = []
            result.addBoth(box.append)
            if isinstance(box[0], Failure):
                # A refusal is a JobMonError; any other failure is raised.
                box[0].trap(JobMonError)
                return box[0].value.code
            return OK
        if isinstance(result, JobIds):
            return list(result)
        return OK

    def test_matrix(self):
        """
        Every cell of the matrix holds.
        """
        checked = 0
        for method, row in MATRIX.items():
            ops = READ_OPS if method == "query(read)" else ACT_OPS if method == "query(act)" \
                else [None]
            for caller, expected in row.items():
                for op in ops:
                    hub = self.newHub()
                    try:
                        got = self.outcome(self.call(hub, method, CALLERS[caller], op))
                    except JobMonError as e:
                        got = e.code
                    self.assertEqual(
                        got, expected, "{} {} by {}".format(method, op or "", caller)
                    )
                    hub.stop()
                    checked += 1
        self.assertEqual(checked, len(READ_OPS) * 4 + len(ACT_OPS) * 4 + 10 * 4)

    def test_unknownCallerSeesNothing(self):
        """
        A refusal to another user reveals nothing of the job: the same fault
        and message as for a job that does not exist.
        """
        hub = self.newHub()
        messages = []
        for jobId in ("j1", "j2"):
            e = self.assertRaises(JobMonError, hub.query, OTHER, jobId, {"op": "ls"})
            messages.append((e.code, e.message.replace(jobId, "JOB")))
        self.assertEqual(messages[0], messages[1])

    def test_daemonCallsLeakNothing(self):
        """
        A daemon method called by another identity on a registered job is
        answered as for a job that does not exist: the same fault, the
        same message; so is a wake channel's hello, whatever is wrong in
        it (another's job, a wrong or non-ASCII token, no such job).
        """
        calls = {
            "getJobToDo": lambda hub, jobId: hub.getJobToDo(OTHER, jobId),
            "waitForWork": lambda hub, jobId: hub.waitForWork(OTHER, jobId, 0),
            "outputJobResult": lambda hub, jobId: hub.outputJobResult(OTHER, jobId, "r", {}),
            "unregisterJob": lambda hub, jobId: hub.unregisterJob(OTHER, jobId),
            "unregisterJob(admin)": lambda hub, jobId: hub.unregisterJob(ADMIN, jobId),
        }
        for name, call in calls.items():
            answers = set()
            for jobId in ("j1", "j2"):
                e = self.assertRaises(JobMonError, call, self.newHub(), jobId)
                answers.add((e.code, e.message.replace(jobId, "JOB")))
            self.assertEqual(answers, {(errors.NO_SUCH_JOB, "no job JOB registered by you")},
                             name)
        answers = set()
        for who, jobId, token in (
            (OTHER, "j1", None), (None, "j1", "guess"), (OWNER, "j1", "guess"),
            (OWNER, "j1", "\u00e9t\u00e9"), (OWNER, "j2", None), (None, "j2", "\u00e9"),
        ):
            hub = self.newHub()
            e = self.assertRaises(JobMonError, hub.channelHello, FakeChannel(jobId), who, jobId,
                                  token or self.reply["wake"]["token"])
            answers.add((e.code, e.message.replace(jobId, "JOB")))
        self.assertEqual(
            answers, {(errors.NO_SUCH_JOB, "no job JOB registered by you with this wake token")}
        )

"""
VO groups and roles in the hub's authorization: C{--admin-fqan} admins and
jobs shared with a group (L{jobmon.server.groups}).
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.fqan import FQAN, parseFqan, tokenGroups
from jobmon.server.hub import Hub, HubConfig
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry
from jobmon.server.tokens import TokenInfo
from tests.server.test_hub import FakeChannel

NOW = 1_000_000.0

OWNER = Identity("/DC=org/CN=Alice", proxy=True, fqans=(FQAN("/cms"),), fqansUntil=NOW + 3600)
MEMBER = Identity("/DC=org/CN=Bob", proxy=True, fqans=(FQAN("/cms"),), fqansUntil=NOW + 3600)
SUBGROUP = Identity("/DC=org/CN=Bob", proxy=True, fqans=(FQAN("/cms/higgs"),),
                    fqansUntil=NOW + 3600)
OTHER_VO = Identity("/DC=org/CN=Bob", proxy=True, fqans=(FQAN("/atlas"),),
                    fqansUntil=NOW + 3600)
PLAIN = Identity("/DC=org/CN=Bob", proxy=True)
VO_ADMIN = Identity("/DC=org/CN=Carol", proxy=True,
                    fqans=(FQAN("/cms"), FQAN("/cms", "lcgadmin")), fqansUntil=NOW + 3600)
EXPIRED_ADMIN = Identity("/DC=org/CN=Carol", proxy=True,
                         fqans=(FQAN("/cms"), FQAN("/cms", "lcgadmin")), fqansUntil=NOW - 1)


def token(groups, grants=("read", "act")):
    """
    An identity with a bearer token whose C{wlcg.groups} is C{groups}.
    """
    info = TokenInfo("https://iss.example", "dave", frozenset(), frozenset(grants),
                     NOW + 3600, groups=tokenGroups(groups))
    return Identity("https://iss.example#dave", token=info)


CALLERS = {
    "owner": OWNER, "member": MEMBER, "subgroup": SUBGROUP, "other-vo": OTHER_VO,
    "plain": PLAIN, "vo-admin": VO_ADMIN, "expired-admin": EXPIRED_ADMIN,
    "token-member": token(["/cms"]), "token-role": token(["/cms/Role=lcgadmin"]),
    "token-other": token(["/atlas", "not a group", 7]),
}

OK = "ok"
HIDDEN = errors.NO_SUCH_JOB
DENIED = errors.NOT_AUTHORIZED

# caller -> (read, act, listed, list all)
MATRIX = {
    "owner": (OK, OK, True, DENIED),
    "member": (OK, DENIED, True, DENIED),
    "subgroup": (HIDDEN, HIDDEN, False, DENIED),
    "other-vo": (HIDDEN, HIDDEN, False, DENIED),
    "plain": (HIDDEN, HIDDEN, False, DENIED),
    "vo-admin": (OK, OK, True, OK),
    "expired-admin": (HIDDEN, HIDDEN, False, DENIED),
    "token-member": (OK, DENIED, True, DENIED),
    "token-role": (HIDDEN, HIDDEN, False, DENIED),
    "token-other": (HIDDEN, HIDDEN, False, DENIED),
}


class Audit:
    """
    Keeps the audit records.
    """

    def __init__(self):
        self.records = []

    def record(self, event, **fields):
        self.records.append(dict(fields, event=event))


class GroupTests(SynchronousTestCase):
    """
    Alice's job C{j1}, shared with C{/cms}, on a hub whose admins include
    the holders of C{/cms/Role=lcgadmin}.
    """

    def newHub(self, share=("/cms",)):
        clock = Clock()
        clock.advance(NOW)
        self.audit = Audit()
        hub = Hub(
            clock, MemoryJobRegistry(), MemoryRequestTable(),
            HubConfig(adminFqans=[parseFqan("/cms/Role=lcgadmin")]),
            audit=self.audit, runInThread=lambda f, *a: defer.maybeDeferred(f, *a),
        )
        reply = hub.registerJob(OWNER, "j1", {"host": "wn", "wake": "tcp",
                                              "share": list(share)})
        hub.channelHello(FakeChannel("j1"), OWNER, "j1", reply["wake"]["token"])
        self.addCleanup(hub.stop)
        return hub

    def outcome(self, hub, who, request):
        try:
            d = hub.query(who, "j1", request)
        except JobMonError as e:
            return e.code
        box = []
        d.addBoth(box.append)
        if box and isinstance(box[0], Failure):
            box[0].trap(JobMonError)
            return box[0].value.code
        d.addErrback(lambda f: None)
        d.cancel()
        return OK

    def listed(self, hub, who, everything=False):
        try:
            return [j["job_id"] for j in hub.listJobs(who, {"all": everything})] == ["j1"]
        except JobMonError as e:
            return e.code

    def test_matrix(self):
        """
        Members read a shared job but may not act on it; an FQAN admin does
        both; an expired AC, another group, a subgroup, a role in a token
        grant nothing.
        """
        for name, (read, act, listed, everything) in MATRIX.items():
            who = CALLERS[name]
            hub = self.newHub()
            got = (
                self.outcome(hub, who, {"op": "ls"}),
                self.outcome(hub, who, {"op": "signal", "signal": "USR1"}),
                self.listed(hub, who),
                OK if self.listed(hub, who, True) is True else self.listed(hub, who, True),
            )
            self.assertEqual(got, (read, act, listed, everything), name)

    def test_actRefusal(self):
        """
        A member who tries to signal a shared job is told it is shared for
        reading.
        """
        hub = self.newHub()
        e = self.assertRaises(JobMonError, hub.query, MEMBER, "j1",
                              {"op": "run", "name": "diag"})
        self.assertIn("shared with you for reading only", e.message)

    def test_notShared(self):
        """
        A job not shared is hidden from the group's members.
        """
        hub = self.newHub(share=())
        self.assertEqual(self.outcome(hub, MEMBER, {"op": "ls"}), HIDDEN)

    def test_audit(self):
        """
        The audit says which FQAN or token group granted access.
        """
        hub = self.newHub()
        for who in (MEMBER, CALLERS["token-member"], VO_ADMIN, OWNER):
            d = hub.query(who, "j1", {"op": "ls"})
            d.addErrback(lambda f: None)
            d.cancel()
        granted = [r.get("granted") for r in self.audit.records if r["event"] == "query"]
        self.assertEqual(granted, [
            "FQAN /cms for share /cms",
            "token group /cms for share /cms",
            "admin by FQAN /cms/Role=lcgadmin",
            None,
        ])

    def test_whoami(self):
        """
        whoami lists the FQANs held now, and admin status by FQAN.
        """
        hub = self.newHub()
        me = hub.whoami(VO_ADMIN)
        self.assertEqual(me["fqans"], ["/cms", "/cms/Role=lcgadmin"])
        self.assertTrue(me["admin"])
        me = hub.whoami(EXPIRED_ADMIN)
        self.assertEqual((me["fqans"], me["admin"]), ([], False))

    def test_badShare(self):
        """
        A registration with a malformed share list is refused.
        """
        hub = self.newHub()
        for share in ("/cms", ["cms"], ["/cms"] * 17, [3]):
            e = self.assertRaises(JobMonError, hub.registerJob, OWNER, "j2",
                                  {"host": "wn", "share": share})
            self.assertEqual(e.code, errors.BAD_REQUEST)

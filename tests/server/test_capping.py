"""
Tests for L{jobmon.server.capping}: what callers write into the audit log
and the history is capped, field by field, record by record, and each
caller's refusals within a budget; and for the history's retention.
"""

import json
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.errors import JobMonError
from jobmon.server.audit import AuditLog
from jobmon.server.capping import (
    RECORD_BYTES,
    RefusalBudget,
    capRecord,
    capText,
    capValue,
)
from jobmon.server.history import History
from jobmon.server.hub import Hub
from jobmon.server.identity import Identity
from jobmon.server.pending import MemoryRequestTable
from jobmon.server.registry import MemoryJobRegistry

ALICE = Identity("/CN=Alice")
BOB = Identity("/CN=Bob")
MALLORY = Identity("/CN=Mallory")


def sync(f, *args):
    """
    The "database thread", at once.
    """
    return defer.maybeDeferred(f, *args)


class CapTests(SynchronousTestCase):
    """
    L{capText}, L{capValue}, L{capRecord}.
    """

    def test_longTextMarked(self):
        """
        Text past the cap is cut there and marked with its length.
        """
        self.assertEqual(capText("x" * 20, 8), "xxxxxxxx...[truncated: 20 characters]")
        self.assertEqual(capText("short", 8), "short")

    def test_controlCharacters(self):
        """
        Newlines, terminal escapes, bidirectional overrides and lone
        surrogates are escaped: what is recorded reads as one line.
        """
        self.assertEqual(capText("a\nb\x1b[31m\u202ec\ud800"),
                         "a\\x0ab\\x1b[31m\\u202ec\\ud800")
        self.assertEqual(capText("\x1b" * 10, 8), "\\x1b\\x1b...[truncated: 10 characters]")

    def test_nested(self):
        """
        Structs and lists keep their first entries and a few levels;
        numbers past 64 bits become text.
        """
        value = capValue({"k" * 100: list(range(100)), "deep": {"a": {"b": {"c": {"d": 1}}}},
                          "n": 10**30})
        self.assertEqual(len(value["k" * 64 + "...[truncated: 100 characters]"]), 33)
        self.assertEqual(value["deep"]["a"]["b"]["c"], "[struct of 1 entries, nested too deep]")
        self.assertEqual(value["n"], "1" + "0" * 30)
        many = capValue({str(i): i for i in range(100)})
        self.assertEqual(many["..."], "[68 more entries]")

    def test_recordBounded(self):
        """
        A record of many large fields fits L{RECORD_BYTES}; its time and
        event are kept.
        """
        entry = {"time": "t", "event": "query"}
        entry.update({"f{}".format(i): "\x00" * 1000 for i in range(40)})
        line = capRecord(entry)
        self.assertLessEqual(len(line), RECORD_BYTES)
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        parsed = json.loads(line)
        self.assertEqual((parsed["time"], parsed["event"]), ("t", "query"))
        self.assertIn("[omitted:", line)


class AuditCapTests(SynchronousTestCase):
    """
    The audit log survives any caller.
    """

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "a.jsonl")
        self.clock = Clock()
        self.clock.advance(1795675255.25)

    def hubWith(self, audit):
        return Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(), audit=audit)

    def test_hugeJobIdCannotWipeTrail(self):
        """
        The attack found: refused queries with a huge job id each wrote the
        whole id, and a dozen rotated every earlier record away.  Now the
        id is cut, marked with its length, and the earlier records stay.
        """
        audit = AuditLog(self.path, self.clock, rotateBytes=1024 * 1024, keep=3)
        self.addCleanup(audit.close)
        hub = self.hubWith(audit)
        hub.registerJob(ALICE, "alice.1", {"wake": "poll"})
        huge = "A" * (1100 * 1024)
        for _ in range(12):
            e = self.assertRaises(JobMonError, hub.query, MALLORY, huge, {"op": "ls"})
            self.assertEqual(e.code, errors.BAD_REQUEST)
        [registered] = audit.read("alice.1")
        self.assertEqual(registered["event"], "register")
        self.assertLess(os.path.getsize(self.path), 64 * 1024)
        with open(self.path) as f:
            refused = [json.loads(line) for line in f if '"refused"' in line]
        self.assertTrue(refused[0]["job_id"].endswith("...[truncated: 1126400 characters]"))
        self.assertEqual(len(refused[0]["job_id"]), 512 + len("...[truncated: 1126400 characters]"))

    def test_newlineInjection(self):
        """
        A value with a newline and escape sequences stays on its record's
        line, escaped.
        """
        audit = AuditLog(self.path, self.clock)
        audit.record("refused", dn="/CN=x\n{\"event\":\"forged\"}\x1b]0;pwn\x07", method="m")
        audit.close()
        with open(self.path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertEqual(json.loads(lines[0])["dn"],
                         "/CN=x\\x0a{\"event\":\"forged\"}\\x1b]0;pwn\\x07")

    def test_refusalBudget(self):
        """
        One caller's refusals past its budget are not written but counted:
        the others' records stay, the caller's next record written says
        how many were left out, and a caller gone quiet gets a summary.
        """
        audit = AuditLog(self.path, self.clock, refusalBytes=2000)
        self.addCleanup(audit.close)
        audit.record("register", dn=ALICE.dn, job_id="alice.1")
        for _ in range(1000):
            audit.record("refused", dn=MALLORY.dn, method="query", job_id="x" * 256,
                         code=400, reason="invalid job id")
        audit.record("refused", dn=BOB.dn, method="query", job_id="b", code=404,
                     reason="no job")
        self.assertLess(os.path.getsize(self.path), 3000)
        self.assertEqual(audit.refusals.unrecorded, 1000 - 5)
        self.clock.advance(3600)
        audit.record("refused", dn=MALLORY.dn, method="query", job_id="m", code=404,
                     reason="no job")
        records = audit.read(limit=1000)
        self.assertEqual([r["event"] for r in records[:1]], ["register"])
        self.assertEqual(records[-2]["dn"], BOB.dn)
        self.assertEqual(records[-1]["unrecorded"], 995)
        before = audit.refusals.unrecorded
        for _ in range(100):
            audit.record("refused", dn=MALLORY.dn, method="query", job_id="m", code=404,
                         reason="no job")
        audit.summarise()
        self.assertEqual(audit.read(limit=1)[0]["event"], "refused")
        self.clock.advance(600)
        audit.summarise()
        [summary] = audit.read(limit=1)
        self.assertEqual((summary["event"], summary["caller"], summary["unrecorded"]),
                         ("refusals", MALLORY.dn, audit.refusals.unrecorded - before))
        self.assertGreater(summary["unrecorded"], 50)
        audit.summarise()
        self.assertEqual(audit.read(limit=1), [summary])

    def test_unidentifiedByAddress(self):
        """
        The refusals of a caller that could not be identified count against
        its address, not the (unverified) name it gave.
        """
        audit = AuditLog(self.path, self.clock, refusalBytes=400)
        self.addCleanup(audit.close)
        for i in range(50):
            audit.record("refused", method="tls", dn="/CN=fake{}".format(i),
                         peer="192.0.2.7", code=20, reason="unknown CA")
        self.assertEqual(audit.written, 2)
        self.assertEqual(list(audit.refusals.callers), ["192.0.2.7"])

    def test_callerTableBounded(self):
        """
        Past C{maxCallers}, new callers share one budget.
        """
        budget = RefusalBudget(perHour=100, maxCallers=2)
        self.assertEqual(budget.admit("a", 100, 0), 0)
        self.assertEqual(budget.admit("b", 100, 0), 0)
        self.assertEqual(budget.admit("c", 100, 0), 0)
        self.assertIsNone(budget.admit("d", 100, 0))
        self.assertEqual(sorted(budget.callers), ["*", "a", "b"])


class HistoryCapTests(SynchronousTestCase):
    """
    The history's fields are capped, and its rows pruned by age and per
    identity.
    """

    def setUp(self):
        self.path = self.mktemp() + ".sqlite3"
        self.clock = Clock()
        self.clock.advance(1000)
        self.history = History(self.path, self.clock, runInThread=sync, retentionDays=1,
                               maxRows=3, pruneInterval=600)
        self.successResultOf(self.history.start())
        self.hub = Hub(self.clock, MemoryJobRegistry(), MemoryRequestTable(),
                       history=self.history)

    def test_fieldsCapped(self):
        """
        A huge host name or batch is cut and marked; a newline escaped.
        (The registration keeps at most 255 characters of either; the
        history caps whatever other fields it is given.)
        """
        self.hub.registerJob(ALICE, "j1", {"host": "h\n" + "x" * 1000, "batch": "b" * 2000})
        self.clock.advance(0)
        [job] = self.successResultOf(self.hub.historyOf(ALICE))["jobs"]
        self.assertTrue(job["host"].startswith("h\\nxxx"))
        self.assertLessEqual(len(job["host"]), 255 + 1 + len("..."))  # one escape: 2 characters
        self.assertTrue(job["batch"].endswith("..."))
        self.history.record("register", dn=ALICE.dn, job_id="j2", host="h\n" + "x" * 1000,
                            mode="tcp", registration="r2")
        self.clock.advance(0)
        [job] = [j for j in self.successResultOf(self.hub.historyOf(ALICE))["jobs"]
                 if j["job_id"] == "j2"]
        self.assertTrue(job["host"].startswith("h\\x0axxx"))
        self.assertTrue(job["host"].endswith("...[truncated: 1002 characters]"))

    def test_pruned(self):
        """
        The cleanup cycle prunes rows older than the retention, and each
        identity's rows past C{maxRows} (its oldest), at most once per
        C{pruneInterval}.
        """
        self.hub.registerJob(BOB, "old", {})
        self.hub.unregisterJob(BOB, "old")
        self.clock.advance(0)
        self.clock.advance(86400 + 1)
        for i in range(5):
            self.hub.registerJob(ALICE, "a{}".format(i), {})
            self.clock.advance(1)
        self.hub.cleanup()
        self.assertEqual(self.history.pruned, 3)
        result = self.successResultOf(self.history.read(ALICE.dn))
        self.assertEqual([j["job_id"] for j in result["jobs"]], ["a2", "a3", "a4"])
        self.assertEqual(self.successResultOf(self.history.read(BOB.dn))["jobs"], [])
        self.hub.registerJob(ALICE, "a5", {})
        self.clock.advance(1)
        self.hub.cleanup()
        self.assertEqual(self.history.pruned, 3)
        self.clock.advance(600)
        self.hub.cleanup()
        self.assertEqual(self.history.pruned, 4)
        self.successResultOf(self.history.stop())

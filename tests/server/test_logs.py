"""
Tests for L{jobmon.server.logs}: JSON-lines log files by category.
"""

import json
import os
import re

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python import log as legacyLog
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jobmon.server.logs import LogFiles, eventAsJSON


class LogFilesTests(SynchronousTestCase):
    """
    Events go to their category's file, as JSON lines.
    """

    def setUp(self):
        self.publisher = LogPublisher()
        self.log = Logger(namespace="jobmon.test", observer=self.publisher)
        self.dir = self.mktemp()

    def lines(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_split(self):
        """
        Each category has its file; uncategorized events go to the server
        file; debug events are left out.
        """
        files = LogFiles(self.dir, publisher=self.publisher)
        files.start()
        self.log.info("job {job_id} registered", job_id="j1", category="registration")
        self.log.info("wake channel up for {job_id}", job_id="j1", category="wake")
        self.log.info("job {job_id} removed (expired)", job_id="j2", category="cleanup")
        self.log.info("listening")
        self.log.debug("noise", category="query")
        files.stop()
        [registration] = self.lines("jobmon-registration.jsonl")
        self.assertEqual(registration["job_id"], "j1")
        self.assertEqual(registration["message"], "job j1 registered")
        self.assertEqual(len(self.lines("jobmon-wake.jsonl")), 1)
        self.assertEqual(len(self.lines("jobmon-cleanup.jsonl")), 1)
        self.assertEqual(len(self.lines("jobmon-server.jsonl")), 1)
        self.assertEqual(self.lines("jobmon-query.jsonl"), [])

    def test_single(self):
        """
        One file holds everything, each line with its category.
        """
        files = LogFiles(self.dir, split=False, publisher=self.publisher)
        files.start()
        self.log.info("a", category="query")
        self.log.info("b")
        files.stop()
        self.assertEqual(
            [e["category"] for e in self.lines("jobmon.jsonl")], ["query", "server"]
        )


class Unpersistable:
    """
    An object JSON cannot hold (as a Twisted event's logger or protocol).
    """

    def __repr__(self):
        return "<Unpersistable>"


class FormatTests(SynchronousTestCase):
    """
    Each line is one flat JSON object: time, level, category, namespace,
    message, then the event's own fields.
    """

    def setUp(self):
        self.events = []
        self.publisher = LogPublisher(self.events.append)
        self.log = Logger(namespace="jobmon.server.registrations.Registrations",
                          observer=self.publisher)

    def line(self, event=None):
        """
        The JSON line of the last event (or C{event}), parsed; it is one
        line.
        """
        text = eventAsJSON(event if event is not None else self.events[-1])
        self.assertTrue(text.endswith("\n"))
        self.assertNotIn("\n", text[:-1])
        return json.loads(text)

    def test_fields(self):
        """
        An event with fields: the rendered message and each field, the
        time in ISO 8601 UTC, no Twisted internals.
        """
        self.log.warn(
            "{dn} refused by {method} on job {job_id} from {peer}: {reason}",
            category="registration", dn="/CN=Mallory", method="registerJob",
            job_id="42", peer="10.0.0.9", reason="not the owner", outcome="refused",
            connection=Unpersistable(), sizes=(1, 2.5),
        )
        self.events[-1]["log_time"] = 1796285096.1234
        entry = self.line()
        self.assertEqual(list(entry)[:5], ["time", "level", "category", "namespace", "message"])
        self.assertEqual(entry["time"], "2026-12-03T08:04:56.123Z")
        self.assertEqual(entry["level"], "warn")
        self.assertEqual(entry["category"], "registration")
        self.assertEqual(entry["namespace"], "jobmon.server.registrations.Registrations")
        self.assertEqual(
            entry["message"],
            "/CN=Mallory refused by registerJob on job 42 from 10.0.0.9: not the owner",
        )
        for key, value in (("dn", "/CN=Mallory"), ("method", "registerJob"), ("job_id", "42"),
                           ("peer", "10.0.0.9"), ("outcome", "refused"),
                           ("connection", "<Unpersistable>"), ("sizes", [1, 2.5])):
            self.assertEqual(entry[key], value, key)
        self.assertEqual([k for k in entry if k.startswith("log_")], [])
        self.assertNotIn("unpersistable", json.dumps(entry))

    def test_noCategory(self):
        """
        An event without a JobMon category is the server's.
        """
        self.log.info("listening on {port}", port=8443)
        entry = self.line()
        self.assertEqual((entry["category"], entry["message"], entry["port"]),
                         ("server", "listening on 8443", 8443))
        self.assertRegex(entry["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_failure(self):
        """
        A failure gives its message, type and traceback as fields; the
        message stays the event's.
        """
        try:
            1 / 0
        except ZeroDivisionError:
            self.log.failure("cannot open the history database", Failure(),
                             path="/var/lib/jobmon/h.sqlite3")
        entry = self.line()
        self.assertEqual(entry["level"], "critical")
        self.assertEqual(entry["message"], "cannot open the history database")
        self.assertEqual(entry["error"], "division by zero")
        self.assertEqual(entry["error_type"], "builtins.ZeroDivisionError")
        self.assertIn("Traceback", entry["traceback"])
        self.assertEqual(entry["path"], "/var/lib/jobmon/h.sqlite3")

    def test_legacy(self):
        """
        Events of C{twisted.python.log} (Twisted's own, some libraries')
        are flat too, without their repeated fields.
        """
        observer = self.events.append
        legacyLog.addObserver(observer)
        self.addCleanup(legacyLog.removeObserver, observer)
        legacyLog.msg("Starting factory {!r}".format(Unpersistable()), system="-")
        entry = self.line()
        self.assertEqual(entry["message"], "Starting factory <Unpersistable>")
        self.assertEqual(entry["level"], "info")
        for key in ("isError", "system", "format", "log_text"):
            self.assertNotIn(key, entry)

    def test_levels(self):
        """
        Each level by its name.
        """
        for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error):
            self.log.emit(level, "x")
            self.assertEqual(self.line()["level"], level.name)

    def test_file(self):
        """
        The files hold these lines, one per event.
        """
        path = self.mktemp()
        files = LogFiles(path, split=False, publisher=self.publisher)
        files.start()
        self.log.info("job {job_id} registered", job_id="j1", category="registration",
                      protocol=Unpersistable())
        files.stop()
        with open(os.path.join(path, "jobmon.jsonl")) as f:
            text = f.read()
        self.assertEqual(len(text.splitlines()), 1)
        entry = json.loads(text)
        self.assertEqual((entry["message"], entry["job_id"], entry["protocol"]),
                         ("job j1 registered", "j1", "<Unpersistable>"))
        self.assertIsNone(re.search(r'"log_', text))

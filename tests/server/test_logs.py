"""
Tests for L{jobmon.server.logs}: JSON-lines log files by category.
"""

import json
import os

from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from jobmon.server.logs import LogFiles


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
        self.assertEqual(registration["log_format"], "job {job_id} registered")
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

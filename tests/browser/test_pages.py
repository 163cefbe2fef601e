"""
The browser view (docs/WEB.md) in a real browser: headless Chromium
presenting alice's (or bob's) certificate to a real server, which has a
real job daemon behind it.  The pages are read through the DOM contract of
C{jobmon/server/web/static/app.js}.
"""

import os
import time

from tests.browser import harness
from tests.browser.case import HOSTILE_CONTENT, HOSTILE_NAME, JOB_LOG, BrowserCase
from tests.support import inThread

FOLLOW_LATENCY = 2.0
"""Seconds a line appended to a followed file has to appear."""


class NavigationTests(BrowserCase):
    """
    The jobs list, a job, its files, one file.
    """

    async def test_navigation(self):
        """
        The jobs list shows who the browser's certificate says the user is,
        and alice's job (the filter hides what does not match); from there
        to the job (its process, its environment, its signals), to its
        files, to one file shown line by line.
        """
        pid = self.job.transport.pid

        def steps(b):
            b.go("/")
            self.assertEqual(b.texts("#who"), [self.tpki.dn("alice")])
            self.assertEqual(b.attributes("#jobs-table tr[data-job-id]", "data-job-id"),
                             [self.jobId])
            self.assertEqual(b.texts("#error"), [""])
            b.find("#jobs-filter").send_keys("no-such-job")
            self.assertEqual(b.texts("#jobs-table tr[data-job-id]"), [])
            b.find("#jobs-filter").clear()
            b.find("#jobs-filter").send_keys("job.")
            self.assertEqual(b.attributes("#jobs-table tr[data-job-id]", "data-job-id"),
                             [self.jobId])

            b.follow('#jobs-table tr[data-job-id="job.1"] a', "/jobs/job.1")
            self.assertIn("job.1", b.texts("#job-title")[0])
            b.wait(lambda d: str(pid) in b.attributes("#processes tr[data-pid]", "data-pid"),
                   message="the job's process is not listed")
            self.assertIn("PYTHONPATH", b.attributes("#env tr[data-name]", "data-name"))
            self.assertIn("USR1", b.attributes("#signals button[data-signal]", "data-signal"))

            b.follow("#files-link", "/jobs/job.1/files/")
            names = b.attributes("#file-listing tr[data-name]", "data-name")
            for name in ("job.log", "follow.log", "hostile.log", "sub", HOSTILE_NAME):
                self.assertIn(name, names)
            b.follow('#file-listing tr[data-name="job.log"] a', "/jobs/job.1/files/job.log")
            self.assertEqual(b.texts("#file-content .line-text"), JOB_LOG)
            self.assertEqual(b.texts("#error"), [""])

        await inThread(steps, await self.browser("alice"))


class FollowTests(BrowserCase):
    """
    Following a file while the job writes it.
    """

    async def test_follow(self):
        """
        Each line appended to a followed file appears within
        L{FOLLOW_LATENCY} seconds; Stop ends the follow.
        """
        path = os.path.join(self.workdir, "follow.log")

        def steps(b):
            b.go("/jobs/job.1/files/follow.log")
            b.find("#follow-start").click()
            b.wait(lambda d: b.find("#follow-stop").is_enabled(),
                   message="the follow did not start")
            latencies = []
            for i in range(1, 6):
                line = "appended line {}".format(i)
                written = harness.appendLine(path, line)
                b.wait(lambda d: line in b.texts("#follow-output .line-text"),
                       FOLLOW_LATENCY, "{!r} not shown within {} s".format(line, FOLLOW_LATENCY))
                latencies.append(time.monotonic() - written)
            print("follow latencies (s): " + ", ".join("%.3f" % t for t in latencies))
            self.assertEqual(b.texts("#follow-output .line-text"),
                             ["appended line {}".format(i) for i in range(1, 6)])
            b.find("#follow-stop").click()
            b.wait(lambda d: b.find("#follow-start").is_enabled(),
                   message="the follow did not stop")
            return latencies

        latencies = await inThread(steps, await self.browser("alice"))
        self.assertTrue(all(t < FOLLOW_LATENCY for t in latencies), latencies)


class HostileTests(BrowserCase):
    """
    Names and contents that are markup are shown as text.
    """

    def assertInert(self, b):
        """
        No element came from the data, and no dialog opened.
        """
        self.assertEqual(b.driver.execute_script(
            "return document.querySelectorAll('main img, main script, main b').length;"), 0)
        self.assertTrue(b.noAlert(), "a JavaScript dialog opened")

    async def test_hostile(self):
        """
        A file named C{<img src=x onerror=alert(1)>} is listed, and shown,
        under its name as text; a log line
        C{<script>alert(1)</script><b>bold</b>} is shown as that text, in
        the file view and when followed.
        """

        def steps(b):
            b.go("/jobs/job.1/files/")
            rows = b.attributes("#file-listing tr[data-name]", "data-name")
            self.assertIn(HOSTILE_NAME, rows)
            self.assertIn(HOSTILE_NAME, b.texts("#file-listing tr[data-name] a"))
            self.assertInert(b)
            b.driver.execute_script(
                "document.querySelectorAll('#file-listing tr[data-name] a')[arguments[0]].click();",
                rows.index(HOSTILE_NAME))
            b.wait(lambda d: "/files/%3Cimg" in d.current_url,
                   message="the hostile link went elsewhere")
            b.ready()
            self.assertEqual(b.texts("#job-title"), [HOSTILE_NAME])
            self.assertEqual(b.texts("#file-content .line-text"), ["a file with a hostile name"])
            self.assertInert(b)

            b.go("/jobs/job.1/files/hostile.log")
            self.assertEqual(b.texts("#file-content .line-text"), [HOSTILE_CONTENT])
            self.assertEqual(b.find("#file-content .line-text").text, HOSTILE_CONTENT)
            self.assertInert(b)
            b.find("#follow-start").click()
            b.wait(lambda d: b.texts("#follow-output .line-text") == [HOSTILE_CONTENT],
                   message="the followed hostile line is not shown as text")
            self.assertInert(b)

        await inThread(steps, await self.browser("alice"))


class OtherUserTests(BrowserCase):
    """
    bob's browser, beside alice's.
    """

    logins = ("alice", "bob")

    async def test_otherUsersJobs(self):
        """
        bob sees his job and none of alice's, and neither her job's page
        nor its files; alice does not see bob's job.
        """
        await self.startBobsJob("job.2")

        def bobsSteps(b):
            b.go("/")
            self.assertEqual(b.texts("#who"), [self.tpki.dn("bob")])
            self.assertEqual(b.attributes("#jobs-table tr[data-job-id]", "data-job-id"),
                             ["job.2"])
            b.go("/jobs/job.1")
            b.wait(lambda d: b.texts("#error") != [""], message="no error for alice's job")
            self.assertEqual(b.texts("#processes tr[data-pid]"), [])
            self.assertNotIn(str(self.job.transport.pid), b.driver.find_element(
                "css selector", "main").text)
            b.go("/jobs/job.1/files/job.log")
            self.assertNotEqual(b.texts("#error"), [""])
            self.assertEqual(b.texts("#file-content .line-text"), [])
            self.assertNotIn(JOB_LOG[0], b.driver.page_source)

        def alicesSteps(b):
            b.go("/")
            self.assertEqual(b.attributes("#jobs-table tr[data-job-id]", "data-job-id"),
                             ["job.1"])

        await inThread(bobsSteps, await self.browser("bob"))
        await inThread(alicesSteps, await self.browser("alice"))


class SignalTests(BrowserCase):
    """
    A signal is sent only once confirmed.
    """

    async def test_signalNeedsConfirmation(self):
        """
        The signal button asks first; Cancel sends nothing (the job gets no
        signal, the server logs none); Send sends it and the page says so.
        """
        pid = self.job.transport.pid
        logged = "signal USR1 on job job.1"

        def ask(b):
            b.go("/jobs/job.1")
            b.find('#signals button[data-signal="USR1"]').click()
            b.wait(lambda d: b.find("#confirm").is_displayed(), message="no confirmation asked")
            self.assertIn("SIGUSR1", b.texts("#confirm-text")[0])
            b.find("#confirm-no").click()
            b.wait(lambda d: not b.find("#confirm").is_displayed())
            b.wait(lambda d: b.texts("#result") == ["signal not sent"])

        def send(b):
            b.find('#signals button[data-signal="USR1"]').click()
            b.wait(lambda d: b.find("#confirm").is_displayed(), message="no confirmation asked")
            b.find("#confirm-yes").click()
            b.wait(lambda d: b.texts("#result") == ["signal USR1 sent to process {}".format(pid)],
                   message="the result does not say the signal was sent")
            b.wait(lambda d: self.trace(), message="the job did not get SIGUSR1")

        b = await self.browser("alice")
        await inThread(ask, b)
        # Whatever a cancelled click might have sent would have reached the
        # job by now: the daemon answers within a fraction of a second.
        await inThread(time.sleep, 1.0)
        self.assertFalse(self.trace())
        self.assertNotIn(logged, self.server.proto.output.decode("utf-8", "replace"))
        await inThread(send, b)
        await self.server.proto.waitFor(logged, timeout=5)


class HistoryAndAuditTests(BrowserCase):
    """
    The user's history; the audit log, for admins only.
    """

    logins = ("alice", "admin")

    async def test_historyAndAudit(self):
        """
        alice's history lists her job; the audit log is refused to her and
        shown to an admin.
        """

        def alicesSteps(b):
            b.go("/history")
            b.wait(lambda d: "job.1" in b.texts("#history-jobs a"),
                   message="alice's job is not in her history")
            b.go("/audit")
            self.assertIn("admin", b.texts("#error")[0])

        def adminsSteps(b):
            b.go("/audit?job=job.1")
            b.wait(lambda d: len(b.texts("#audit tbody tr")) > 0,
                   message="no audit record for the job")
            self.assertEqual(b.texts("#error"), [""])

        await inThread(alicesSteps, await self.browser("alice"))
        await inThread(adminsSteps, await self.browser("admin"))

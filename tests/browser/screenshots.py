"""
Screenshots of the browser view, for docs/WEB.md and README.md::

    PYTHONPATH=. .venv/bin/python tests/browser/screenshots.py [DIR]

runs L{Screenshots} with trial (a real server, alice's jobs and daemons,
headless Chromium with alice's certificate, as the browser tests do), which
saves a PNG of each page, at the harness's fixed window size, into C{DIR}
(C{docs/img} by default).  Not part of the test suite: the class is skipped
unless C{JOBMON_SCREENSHOTS} names the directory.
"""

import os
import subprocess
import sys
import time

from twisted.trial.unittest import SkipTest

from tests.browser import harness
from tests.browser.case import JOB, BrowserCase
from tests.support import ROOT, inThread, startDaemon

ENV = "JOBMON_SCREENSHOTS"
"""The environment variable naming the directory to save the PNGs in."""

MAX_BYTES = 300 * 1024
"""The most a screenshot may weigh: they are committed."""

LOG = [
    "2026-12-03 09:12:04 INFO  simulation 4711 starting on 16 cores",
    "2026-12-03 09:12:05 INFO  reading geometry from geometry/detector.gdml",
    "2026-12-03 09:12:09 INFO  physics list FTFP_BERT, seed 271828",
    "2026-12-03 09:14:31 INFO  events 0-999 done (2.4 s/event)",
    "2026-12-03 09:16:55 INFO  events 1000-1999 done (2.4 s/event)",
    "2026-12-03 09:17:02 WARN  track 18812 left the world volume",
    "2026-12-03 09:19:20 INFO  events 2000-2999 done (2.5 s/event)",
    "2026-12-03 09:21:44 INFO  events 3000-3999 done (2.4 s/event)",
    "2026-12-03 09:21:45 INFO  checkpoint written to output/checkpoint-3999.root",
]


COMMANDS = """
[commands.progress]
description = "the last progress line of the log"
argv = ["/bin/sh", "-c", "grep 'events' job.log | tail -n 1"]
"""


class Screenshots(BrowserCase):
    """
    One walk through the pages, saving each.
    """

    timeout = 120
    jobId = "sim-4711"

    def jobArgs(self):
        """
        The job as a script of its working directory, so that its command
        line reads as a job's does.
        """
        with open(os.path.join(self.workdir, "simulate.py"), "w") as f:
            f.write(JOB)
        return ["simulate.py", "--events", "10000"]

    @property
    def daemonArgs(self):
        path = os.path.join(self.tpki.base, "commands.toml")
        with open(path, "w") as f:
            f.write(COMMANDS)
        return ("--commands", path)

    def setUp(self):
        self.out = os.environ.get(ENV)
        if not self.out:
            raise SkipTest("screenshots are made by tests/browser/screenshots.py")
        os.makedirs(self.out, exist_ok=True)
        return super().setUp()

    @staticmethod
    def makeWorkdir(workdir):
        os.makedirs(os.path.join(workdir, "output"))
        os.makedirs(os.path.join(workdir, "geometry"))
        files = {
            "job.log": "".join(line + "\n" for line in LOG),
            "job.err": "",
            "run.sh": "#!/bin/sh\nexec python3 simulate.py --events 10000\n",
            os.path.join("output", "checkpoint-3999.root"): "x" * 48000,
            os.path.join("output", "histograms.csv"): "bin,count\n" * 300,
            os.path.join("geometry", "detector.gdml"): "<gdml/>\n" * 200,
        }
        for name, text in files.items():
            with open(os.path.join(workdir, name), "w") as f:
                f.write(text)

    def save(self, b, name):
        path = os.path.join(self.out, name + ".png")
        b.screenshot(path)
        size = os.path.getsize(path)
        print("{}: {} bytes".format(path, size))
        self.assertLess(size, MAX_BYTES, path)

    async def test_screenshots(self):
        """
        The jobs list, a job, its files, a file, a follow, the confirmation
        of a signal, the history.
        """
        for jobId in ("analysis-17", "merge-2026-12"):
            workdir = os.path.join(self.tpki.base, jobId)
            os.makedirs(workdir)
            with open(os.path.join(workdir, "job.log"), "w") as f:
                f.write("started\n")
            await startDaemon(self, self.server, jobId, workdir,
                              self.tpki.proxies["alice"], self.tpki.caDir)
        log = os.path.join(self.workdir, "job.log")

        def steps(b):
            b.go("/")
            b.wait(lambda d: len(b.texts("#jobs-table tr[data-job-id]")) == 3)
            self.save(b, "jobs")
            b.go("/jobs/" + self.jobId)
            # Three samples (at 0, 1.5 and 6.5 s) draw the plot's first lines.
            b.wait(lambda d: len(b.texts("#processes tr[data-pid]")) > 0)
            b.find('#commands button[data-command="progress"]').click()
            b.wait(lambda d: "events" in b.texts("#result")[0])
            time.sleep(7)
            b.driver.execute_script("window.scrollTo(0, 0);")
            self.save(b, "job")
            b.go("/jobs/{}/files/".format(self.jobId))
            self.save(b, "files")
            b.go("/jobs/{}/files/job.log".format(self.jobId))
            self.save(b, "file")
            b.find("#follow-start").click()
            b.wait(lambda d: len(b.texts("#follow-output .line-text")) >= len(LOG))
            for i, line in enumerate([
                "2026-12-03 09:24:08 INFO  events 4000-4999 done (2.4 s/event)",
                "2026-12-03 09:26:31 INFO  events 5000-5999 done (2.4 s/event)",
            ]):
                harness.appendLine(log, line)
                b.wait(lambda d: line in b.texts("#follow-output .line-text"))
            b.driver.execute_script(
                "document.getElementById('follow-output').scrollIntoView();")
            self.save(b, "follow")
            b.find("#follow-stop").click()
            b.go("/jobs/" + self.jobId)
            b.find('#signals button[data-signal="USR1"]').click()
            b.wait(lambda d: b.find("#confirm").is_displayed())
            self.save(b, "signal")
            b.find("#confirm-no").click()
            b.go("/history")
            b.wait(lambda d: len(b.texts("#history-jobs tbody tr")) >= 3)
            self.save(b, "history")

        await inThread(steps, await self.browser("alice"))


def main(argv):
    """
    Run L{Screenshots} with trial, saving into C{argv[1]} (C{docs/img}).
    """
    out = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(ROOT, "docs", "img"))
    env = dict(os.environ)
    env[ENV] = out
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.call(
        [sys.executable, "-m", "twisted.trial", "--temp-directory=_trial_temp_screenshots",
         "tests.browser.screenshots"], env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

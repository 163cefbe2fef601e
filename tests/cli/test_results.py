"""
Tests for what C{jobmon-query} shows of results: file contents and command
output as text in JSON, the progress line of a long C{cat}, the suggestion
of C{run} on a typo, and C{whoami}'s credential and server lines.
"""

import base64
import io
import json

from twisted.trial.unittest import SynchronousTestCase

from jobmon import cli
from jobmon.cli import jobs, output
from jobmon.errors import JobMonError
from tests.cli.test_cli import (
    ALICE,
    SERVER,
    CappedFile,
    FakeClient,
    FakeTime,
    Seq,
    TTYBytes,
    data,
    followed,
    run,
)


def jsonLines(out):
    """
    The JSON objects of C{out}, one per line.
    """
    return [json.loads(line) for line in out.decode().splitlines()]


class JSONTextTests(SynchronousTestCase):
    """
    With C{--json}, bytes that are valid UTF-8 are given as text too.
    """

    def test_catText(self):
        """
        C{cat}, C{head} and C{tail}: C{text} beside C{data_base64} when the
        bytes are UTF-8; only C{data_base64} when they are not.
        """
        content = "h\xe9llo \u2603\n".encode()
        for method in ("cat", "head", "tail"):
            fake = FakeClient({method: data(content)})
            status, out, err = run(["--json", method, "1", "f"], fake)
            doc = json.loads(out)
            self.assertEqual((status, err), (0, ""))
            self.assertEqual(doc["text"], "h\xe9llo \u2603\n")
            self.assertEqual(base64.b64decode(doc["data_base64"]), content)
            fake = FakeClient({method: data(b"\xffabc")})
            doc = json.loads(run(["--json", method, "1", "f"], fake)[1])
            self.assertNotIn("text", doc)
            self.assertEqual(doc["data_base64"], "/2FiYw==")

    def test_streamedText(self):
        """
        A file read in chunks that cut characters gets its whole C{text}
        (kept on disk past its memory limit) after C{data_base64}.
        """
        self.patch(output.JSONStream, "SPOOL_MEMORY", 16)
        content = ("\xe9\u2603\"\\\n" * 700 + "end").encode()
        for cap in (999, 1000, 1001):
            fake = FakeClient({"cat": CappedFile(content, cap).cat})
            status, out, err = run(["--json", "cat", "1", "f"], fake)
            self.assertEqual((status, err), (0, ""))
            self.assertGreater(len(fake.calls), 2)
            doc = json.loads(out)
            self.assertEqual(doc.pop("text").encode(), content)
            self.assertEqual(base64.b64decode(doc.pop("data_base64")), content)
            self.assertEqual(doc, {"path": "f", "offset": 0, "size": len(content),
                                   "truncated": False})

    def test_streamedNotText(self):
        """
        A file read in chunks with a byte that is not UTF-8 anywhere, or a
        character cut at its end, has no C{text}.
        """
        for content in (b"a" * 2500 + b"\xff" + b"b" * 10, b"a" * 2500 + "\xe9".encode()[:1]):
            fake = FakeClient({"cat": CappedFile(content, 1000).cat})
            doc = json.loads(run(["--json", "cat", "1", "f"], fake)[1])
            self.assertNotIn("text", doc)
            self.assertEqual(base64.b64decode(doc["data_base64"]), content)

    def test_followText(self):
        """
        C{tail -f --json}: each line has C{text}; a character cut between
        two results is given whole in the later one; a result that is not
        UTF-8 has none, and the next starts afresh; so does a rotated file.
        """
        snow = "\u2603".encode()
        fake = FakeClient({
            "tail": data(b"a" + snow[:1], 0, path="job.log"),
            "follow": Seq(followed(snow[1:] + b"b", 2), followed(b"\xff", 5),
                          followed(b"c", 6), followed(b"x" + snow[:2], 7),
                          followed(b"y", 0, rotated=True, inode="9:9"),
                          KeyboardInterrupt()),
        })
        status, out, err = run(["--json", "tail", "-f", "1", "job.log"], fake)
        self.assertEqual(status, 130)
        docs = jsonLines(out)
        self.assertEqual([d.get("text") for d in docs],
                         ["a", "\u2603b", None, "c", "x", "y"])
        self.assertEqual([base64.b64decode(d["data_base64"]) for d in docs],
                         [b"a" + snow[:1], snow[1:] + b"b", b"\xff", b"c",
                          b"x" + snow[:2], b"y"])

    def test_catFollowText(self):
        """
        C{cat -f --json}: the text carries over from the chunks of the
        file to what is added.
        """
        content = "\xe9\xe9".encode()
        fake = FakeClient({"cat": CappedFile(content, 3).cat,
                           "follow": Seq(followed(b"!", 4), KeyboardInterrupt())})
        out = run(["cat", "-f", "--json", "1", "job.log"], fake)[1]
        self.assertEqual([d["text"] for d in jsonLines(out)], ["\xe9", "\xe9", "!"])

    def test_runText(self):
        """
        C{run --json}: C{stdout_text} and C{stderr_text} beside the base64
        when the output is UTF-8.
        """
        fake = FakeClient({"run": {"name": "gpu", "argv": ["gpu"], "exit_code": 0,
                                   "stdout": "GPU \xe9\n".encode(), "stderr": b"\xff",
                                   "truncated": False, "duration": 0.1}})
        status, out, err = run(["--json", "run", "1", "gpu"], fake)
        doc = json.loads(out)
        self.assertEqual((status, doc["stdout_text"], doc["stdout_base64"]),
                         (0, "GPU \xe9\n", "R1BVIMOpCg=="))
        self.assertNotIn("stderr_text", doc)
        self.assertEqual(doc["stderr_base64"], "/w==")


class RunSuggestionTests(SynchronousTestCase):
    """
    C{run} of a name that is not offered.
    """

    commands = {"commands": [{"name": "disk"}, {"name": "gpu"}]}

    def test_daemonSuggests(self):
        """
        A daemon that suggests a name itself is reported as it is, without
        asking for the commands.
        """
        message = ("no command 'dsk' on this job; did you mean 'disk'? ('jobmon-query "
                   "commands JOB' lists them)")
        fake = FakeClient({"run": JobMonError(1010, message), "commands": self.commands})
        self.assertEqual(run(["run", "1", "dsk"], fake),
                         (1, b"", "jobmon-query: %s\n" % (message,)))
        self.assertEqual([c[0] for c in fake.calls], ["run"])

    def test_olderDaemon(self):
        """
        For a daemon that does not suggest, the nearest of the job's
        commands is added; none if nothing is near, or the listing fails.
        """
        message = "no command 'dsk' on this job; 'jobmon-query commands JOB' lists them"
        fake = FakeClient({"run": JobMonError(1010, message), "commands": self.commands})
        self.assertEqual(run(["run", "1", "dsk"], fake),
                         (1, b"", "jobmon-query: %s; did you mean 'disk'?\n" % (message,)))
        self.assertEqual(run(["run", "1", "zzzz"], fake),
                         (1, b"", "jobmon-query: %s\n" % (message,)))
        fake = FakeClient({"run": JobMonError(1010, message),
                           "commands": JobMonError(408, "timeout")})
        self.assertEqual(run(["run", "1", "dsk"], fake),
                         (1, b"", "jobmon-query: %s\n" % (message,)))


class CredentialClient(FakeClient):
    """
    A L{FakeClient} that describes its credential.
    """

    def __init__(self, results, credential):
        FakeClient.__init__(self, results)
        self.credential = credential

    def credentialInfo(self):
        """
        Fake L{JobMonClient.credentialInfo}.
        """
        if isinstance(self.credential, BaseException):
            raise self.credential
        return self.credential


NOW = 1796284658.0
"""2026-12-03 07:57:38 UTC."""


class WhoamiTests(SynchronousTestCase):
    """
    C{whoami}: the identity, the credential's expiry, the server's version.
    """

    def setUp(self):
        self.patch(jobs.time, "time", lambda: NOW)

    def test_proxy(self):
        """
        A proxy: its file, when it expires and how long is left; the
        server's version.
        """
        fake = CredentialClient(
            {"whoami": {"dn": ALICE, "admin": False, "proxy": True, "limited": False,
                        "server_version": "0.2.0"}},
            {"type": "x509", "path": "/tmp/x509up_u1000", "expires": NOW + 3 * 3600 + 600})
        self.assertEqual(run(["whoami"], fake), (0, (
            ALICE + " (via proxy)\n"
            "credential: proxy /tmp/x509up_u1000, expires 2026-12-03 11:07:38 UTC "
            "(in 3h10m)\n"
            "server: JobMon 0.2.0\n").encode(), ""))
        doc = json.loads(run(["--json", "whoami"], fake)[1])
        self.assertEqual(doc["server_version"], "0.2.0")
        self.assertEqual(doc["credential"], {
            "type": "x509", "path": "/tmp/x509up_u1000", "expires": NOW + 11400,
            "expires_utc": "2026-12-03T11:07:38Z", "seconds_left": 11400})

    def test_olderServer(self):
        """
        A server that does not report its version (an older one): the rest
        is shown, and a line says so; the JSON has no C{server_version}.
        """
        info = {"dn": ALICE, "admin": False, "proxy": False, "limited": False}
        fake = CredentialClient({"whoami": info},
                                {"type": "x509", "path": "usercert.pem", "expires": None})
        self.assertEqual(run(["whoami"], fake), (0, (
            ALICE + "\ncredential: certificate usercert.pem, expiry unknown\n"
            "server: version not reported (an older server)\n").encode(), ""))
        doc = json.loads(run(["--json", "whoami"], fake)[1])
        self.assertNotIn("server_version", doc)
        self.assertEqual(doc["credential"],
                         {"type": "x509", "path": "usercert.pem", "expires": None})

    def test_token(self):
        """
        A bearer token: the server's reading of its expiry wins over the
        client's; where it was found.
        """
        info = {"dn": "https://iss.example#carol", "admin": False, "proxy": False,
                "limited": False, "server_version": "0.2.0",
                "token": {"scopes": ["compute.read"], "expires": NOW + 59}}
        fake = CredentialClient({"whoami": info}, {
            "type": "token", "source": "$BEARER_TOKEN_FILE", "expires": NOW + 1})
        self.assertEqual(run(["whoami"], fake)[1].decode().splitlines(), [
            "https://iss.example#carol (bearer token, scopes: compute.read)",
            "credential: bearer token $BEARER_TOKEN_FILE, expires 2026-12-03 07:58:37 UTC "
            "(in 59s)",
            "server: JobMon 0.2.0",
        ])
        # A client that cannot describe its credential: the server's expiry.
        fake = CredentialClient({"whoami": info}, RuntimeError("no"))
        self.assertEqual(run(["whoami"], fake)[1].decode().splitlines()[1],
                         "credential: bearer token, expires 2026-12-03 07:58:37 UTC (in 59s)")

    def test_expired(self):
        """
        A credential past its expiry (the server judged it still fine: a
        skewed clock) says how long ago.
        """
        fake = CredentialClient(
            {"whoami": {"dn": ALICE, "proxy": True, "server_version": "0.2.0"}},
            {"type": "x509", "path": "/p", "expires": NOW - 120})
        self.assertEqual(run(["whoami"], fake)[1].decode().splitlines()[1],
                         "credential: proxy /p, expired 2026-12-03 07:55:38 UTC (2m ago)")


class TickingCat(CappedFile):
    """
    A L{CappedFile} whose every read takes C{seconds} of a L{FakeTime}.
    """

    def __init__(self, content, cap, clock, seconds):
        CappedFile.__init__(self, content, cap)
        self.clock = clock
        self.seconds = seconds

    def cat(self, *args):
        self.clock.seconds += self.seconds
        return CappedFile.cat(self, *args)


class ProgressTests(SynchronousTestCase):
    """
    The progress line of a long C{cat} into a file.
    """

    content = b"x" * 10000

    def catTo(self, stdoutTTY, stderrTTY, seconds=0.3, argv=("cat", "1", "f")):
        """
        Run C{cat} of L{content} in chunks of 1000 bytes, each taking
        C{seconds}; return the status, the output and the standard error.
        """
        clock = FakeTime()
        fake = FakeClient({"cat": TickingCat(self.content, 1000, clock, seconds).cat})
        stdout = io.TextIOWrapper(TTYBytes() if stdoutTTY else io.BytesIO(), encoding="utf-8")
        stderr = io.TextIOWrapper(TTYBytes() if stderrTTY else io.BytesIO(), encoding="utf-8")
        status = cli.main(list(argv), stdout=stdout, stderr=stderr,
                          environ={"JOBMON_SERVER": SERVER}, clientFactory=fake.factory,
                          sleep=clock.sleep, now=clock.now)
        stdout.flush()
        stderr.flush()
        return status, stdout.buffer.getvalue(), stderr.buffer.getvalue().decode()

    def test_terminal(self):
        """
        With standard error on a terminal and the data going elsewhere, a
        line is drawn in place (done / total, share, rate, time left), at
        most every 0.2 s and not before 0.5 s, then erased.
        """
        status, out, err = self.catTo(False, True)
        self.assertEqual((status, out), (0, self.content))
        frames = err.split("\r")
        self.assertEqual(frames[0], "")
        self.assertEqual(frames[-1], "\x1b[K")
        shown = [f[:-len("\x1b[K")] for f in frames[1:-1]]
        self.assertEqual(shown[0], "2.0K / 9.8K  20%  3.3K/s  2s left")
        self.assertEqual(shown[-1], "8.8K / 9.8K  90%  3.3K/s  0s left")
        self.assertEqual(len(shown), 8)

    def test_fastCopy(self):
        """
        A copy that ends within 0.5 s shows nothing.
        """
        self.assertEqual(self.catTo(False, True, seconds=0.01), (0, self.content, ""))

    def test_notTerminal(self):
        """
        Nothing when standard error is not a terminal, or when the data
        goes to the terminal, or as JSON.
        """
        self.assertEqual(self.catTo(False, False), (0, self.content, ""))
        self.assertEqual(self.catTo(True, True), (0, self.content, ""))
        status, out, err = self.catTo(False, True, argv=("--json", "cat", "1", "f"))
        self.assertEqual((status, err), (0, ""))

    def test_line(self):
        """
        The line's parts, in binary units.
        """
        progress = output.Progress(io.StringIO(), 3 * 1024 ** 3, lambda: 0.0)
        self.assertEqual(progress.line(1024 ** 3, 10.0), "1.0G / 3.0G  33%  102M/s  20s left")
        self.assertEqual(progress.line(0, 0.0), "0 / 3.0G  0%")
        empty = output.Progress(io.StringIO(), 0, lambda: 0.0)
        self.assertEqual(empty.line(0, 1.0), "0 / 0")

"""
Tests for L{jobmon.cli}, the C{jobmon-query} command, driven through
L{jobmon.cli.main} with a fake client.
"""

import base64
import io
import json
import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from jobmon import cli, client, errors
from jobmon.errors import JobMonError

SERVER = "https://jobmon.example.org:8443/RPC2"
ALICE = "/DC=org/DC=example/OU=People/CN=Alice Example"


class FakeClient:
    """
    Stands for L{jobmon.client.JobMonClient}: records how it was made and
    called, and answers from C{results} (a dict: method name to result, or
    to an exception to raise).
    """

    def __init__(self, results=None):
        self.results = dict(results or {})
        self.made = []
        self.calls = []
        self.closed = False

    def factory(self, server, **kw):
        """
        The C{clientFactory} for L{cli.main}.
        """
        self.made.append((server, kw))
        if "factory" in self.results:
            raise self.results["factory"]
        return self

    def _answer(self, name, *args):
        """
        Record the call and answer it.
        """
        self.calls.append((name,) + args)
        result = self.results[name]
        if isinstance(result, BaseException):
            raise result
        return result

    def whoami(self):
        """
        Fake L{JobMonClient.whoami}.
        """
        return self._answer("whoami")

    def listJobs(self):
        """
        Fake L{JobMonClient.listJobs}.
        """
        return self._answer("listJobs")

    def ls(self, jobId, path="."):
        """
        Fake L{JobMonClient.ls}.
        """
        return self._answer("ls", jobId, path)

    def stat(self, jobId, path):
        """
        Fake L{JobMonClient.stat}.
        """
        return self._answer("stat", jobId, path)

    def cat(self, jobId, path, offset=0, length=None):
        """
        Fake L{JobMonClient.cat}.
        """
        return self._answer("cat", jobId, path, offset, length)

    def tail(self, jobId, path, lines=10):
        """
        Fake L{JobMonClient.tail}.
        """
        return self._answer("tail", jobId, path, lines)

    def close(self):
        """
        Fake L{JobMonClient.close}.
        """
        self.closed = True


def run(argv, fake=None, environ=None):
    """
    Run C{main(argv)} with C{fake} and return C{(exit status, stdout bytes,
    stderr text)}.
    """
    if environ is None:
        environ = {"JOBMON_SERVER": SERVER}
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    status = cli.main(
        argv, stdout=stdout, stderr=stderr, environ=environ,
        clientFactory=(fake or FakeClient()).factory,
    )
    stdout.flush()
    return status, stdout.buffer.getvalue(), stderr.getvalue()


def entry(name, type_="file", size=0, mtime=None, mode=0o644, **extra):
    """
    An C{ls} entry as the client returns it.
    """
    result = {"name": name, "type": type_, "size": size,
              "mtime": time.time() - 60 if mtime is None else mtime, "mode": mode}
    result.update(extra)
    return result


class ExitCodeTests(SynchronousTestCase):
    """
    Tests for L{cli.exitCode} and the one-line error report.
    """

    expected = {
        errors.BAD_REQUEST: 2, errors.NOT_AUTHENTICATED: 3, errors.NOT_AUTHORIZED: 4,
        errors.NO_SUCH_JOB: 5, errors.TIMEOUT: 7, errors.JOB_CONFLICT: 8,
        errors.JOB_GONE: 6, errors.TOO_LARGE: 2, errors.TOO_MANY: 8,
        errors.INTERNAL: 8, errors.UNAVAILABLE: 8, errors.NO_SUCH_FILE: 1,
        errors.OUTSIDE_WORKDIR: 1, errors.NOT_A_DIRECTORY: 1, errors.IS_A_DIRECTORY: 1,
        errors.PERMISSION_DENIED: 1, errors.REMOTE_IO_ERROR: 1, errors.UNSUPPORTED_OP: 1,
        errors.REMOTE_TIMEOUT: 7, errors.REMOTE_ERROR: 1,
        client.NO_CREDENTIAL: 3, client.CREDENTIAL_EXPIRED: 3, client.BAD_CREDENTIAL: 3,
        client.NO_CA_DIR: 3, client.BAD_URL: 2, client.BAD_ARGUMENT: 2,
        client.UNREACHABLE: 8, client.SERVER_NOT_TRUSTED: 3,
        client.CERTIFICATE_REFUSED: 3, client.TLS_ERROR: 8, client.CLIENT_TIMEOUT: 7,
        client.CONNECTION_LOST: 8, client.HTTP_ERROR: 8, client.PROTOCOL_ERROR: 8,
    }

    def test_everyCodeCovered(self):
        """
        The table above names every server and client code.
        """
        self.assertEqual(set(self.expected),
                         set(errors.NAMES) | set(client.CLIENT_NAMES))

    def test_exitCode(self):
        """
        Each code maps to its documented exit status.
        """
        for code, status in self.expected.items():
            self.assertEqual(cli.exitCode(code), status, code)

    def test_unknownCodes(self):
        """
        Unknown worker codes are remote errors; anything else is a server
        error.
        """
        self.assertEqual(cli.exitCode(1050), 1)
        self.assertEqual(cli.exitCode(599), 8)
        self.assertEqual(cli.exitCode("weird"), 8)

    def test_mainReportsEveryCode(self):
        """
        For every code, C{main} exits with the status of L{cli.exitCode},
        prints nothing on stdout and exactly one prefixed line on stderr.
        """
        for code, status in self.expected.items():
            fake = FakeClient({"ls": JobMonError(code, "it failed:\nbadly")})
            result = run(["ls", "1.0"], fake)
            self.assertEqual(result, (status, b"", "jobmon-query: it failed: badly\n"),
                             code)
            self.assertTrue(fake.closed)

    def test_clientConstructionFails(self):
        """
        An error making the client (a bad URL) is reported the same way.
        """
        fake = FakeClient({"factory": client.ClientError(client.BAD_URL, "bad server URL")})
        self.assertEqual(run(["whoami"], fake), (2, b"", "jobmon-query: bad server URL\n"))

    def test_internalError(self):
        """
        An unexpected exception: one line, status 8, no traceback.
        """
        fake = FakeClient({"whoami": RuntimeError("boom")})
        status, out, err = run(["whoami"], fake)
        self.assertEqual((status, out), (8, b""))
        self.assertEqual(err, "jobmon-query: internal error: RuntimeError: boom\n")

    def test_interrupted(self):
        """
        Ctrl-C: status 130, one line.
        """
        fake = FakeClient({"whoami": KeyboardInterrupt()})
        self.assertEqual(run(["whoami"], fake), (130, b"", "jobmon-query: interrupted\n"))

    def test_controlCharacters(self):
        """
        A message cannot drive the terminal.
        """
        fake = FakeClient({"whoami": JobMonError(500, "a\x1b[31mb")})
        self.assertEqual(run(["whoami"], fake)[2], "jobmon-query: a\\x1b[31mb\n")

    def test_documented(self):
        """
        The exit status table is in the module docstring and in C{--help}.
        """
        for line in cli.EXIT_STATUS_HELP.splitlines()[1:]:
            self.assertIn(line, cli.__doc__)
        status, out, err = run(["--help"])
        self.assertEqual((status, err), (0, ""))
        self.assertIn(cli.EXIT_STATUS_HELP.encode(), out)
        self.assertIn(b"examples:\n  export JOBMON_SERVER=", out)


class UsageTests(SynchronousTestCase):
    """
    Command-line parsing and defaults.
    """

    def test_noServer(self):
        """
        Without C{--server} or C{$JOBMON_SERVER}: a clear message, status 2.
        """
        fake = FakeClient()
        self.assertEqual(
            run(["whoami"], fake, environ={}),
            (2, b"", "jobmon-query: no server given: use --server URL or set "
                     "JOBMON_SERVER\n"),
        )
        self.assertEqual(fake.made, [])

    def test_defaultsFromEnvironment(self):
        """
        The server, credential and CA directory come from the environment;
        the timeout defaults to 60 s.
        """
        fake = FakeClient({"whoami": {"dn": ALICE}})
        run(["whoami"], fake, environ={"JOBMON_SERVER": SERVER, "X509_USER_PROXY": "/p",
                                       "X509_CERT_DIR": "/c"})
        self.assertEqual(fake.made, [(SERVER, {"proxy": "/p", "key": None, "caDir": "/c",
                                               "timeout": 60.0})])

    def test_builtinDefaults(self):
        """
        Without the environment, C{/tmp/x509up_u<uid>} and
        C{/etc/grid-security/certificates}.
        """
        fake = FakeClient({"whoami": {"dn": ALICE}})
        run(["--server", "https://s", "whoami"], fake, environ={})
        self.assertEqual(fake.made, [("https://s", {
            "proxy": "/tmp/x509up_u%d" % os.getuid(), "key": None,
            "caDir": "/etc/grid-security/certificates", "timeout": 60.0})])

    def test_optionsBeforeAndAfter(self):
        """
        Global options work before and after the command; given twice, the
        later one wins.
        """
        fake = FakeClient({"ls": {"path": ".", "entries": [], "truncated": False}})
        run(["--server", "https://a", "--timeout", "5", "ls", "1.0", "--proxy", "/x",
             "--key", "/k", "--ca-dir", "/y"], fake)
        run(["--server", "https://a", "ls", "1.0", "--server", "https://b"], fake)
        self.assertEqual(fake.made, [
            ("https://a", {"proxy": "/x", "key": "/k", "caDir": "/y", "timeout": 5.0}),
            ("https://b", {"proxy": "/tmp/x509up_u%d" % os.getuid(), "key": None,
                           "caDir": "/etc/grid-security/certificates",
                           "timeout": 60.0}),
        ])

    def test_usageErrors(self):
        """
        Usage errors: status 2 and one line on stderr.
        """
        for argv, text in [
            ([], "the following arguments are required: COMMAND"),
            (["frobnicate"], "invalid choice: 'frobnicate'"),
            (["ls"], "ls: the following arguments are required: JOB"),
            (["cat", "1.0", "f", "--offset", "-1"], "must not be negative"),
            (["tail", "1.0", "f", "-n", "x"], "not a whole number"),
            (["--timeout", "0", "whoami"], "must be a positive number"),
        ]:
            status, out, err = run(argv)
            self.assertEqual((status, out), (2, b""), argv)
            self.assertTrue(err.startswith("jobmon-query: "), err)
            self.assertIn(text, err)
            self.assertEqual(err.count("\n"), 1, err)

    def test_subcommandHelp(self):
        """
        Each command has its own help.
        """
        for name in ["whoami", "jobs", "ls", "stat", "cat", "tail"]:
            status, out, err = run([name, "--help"])
            self.assertEqual((status, err), (0, ""))
            self.assertIn(b"usage: jobmon-query " + name.encode(), out)

    def test_version(self):
        """
        C{--version} prints the version.
        """
        from jobmon import __version__

        self.assertEqual(run(["--version"]),
                         (0, ("jobmon-query %s\n" % __version__).encode(), ""))


class OutputTests(SynchronousTestCase):
    """
    What each command prints.
    """

    def test_whoami(self):
        """
        The DN, with notes.
        """
        for info, line in [
            ({"dn": ALICE, "admin": False, "proxy": False, "limited": False}, ALICE),
            ({"dn": ALICE, "admin": True, "proxy": True, "limited": False},
             ALICE + " (admin, via proxy)"),
            ({"dn": ALICE, "admin": False, "proxy": True, "limited": True},
             ALICE + " (limited proxy)"),
        ]:
            self.assertEqual(run(["whoami"], FakeClient({"whoami": info})),
                             (0, (line + "\n").encode(), ""))

    def test_jobs(self):
        """
        A table with the owner's last CN, the mode, the age and how long
        ago the daemon was last heard from.
        """
        now = time.time()
        jobs = [
            {"job_id": "1234.0", "owner": ALICE, "host": "wn01.example.org",
             "mode": "tcp", "state": "ready", "registered": now - 7805,
             "last_seen": now, "pending": 0},
            {"job_id": "77", "owner": "/DC=org/CN=host/svc.example.org", "host": "wn2",
             "mode": "udp", "state": "ready", "registered": now - 5,
             "last_seen": now - 42, "pending": 12},
        ]
        status, out, err = run(["jobs"], FakeClient({"listJobs": jobs}))
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.decode().splitlines(), [
            "JOB     OWNER                 HOST              MODE  STATE    AGE  SEEN  PENDING",
            "1234.0  Alice Example         wn01.example.org  tcp   ready  2h10m    0s        0",
            "77      host/svc.example.org  wn2               udp   ready     5s   42s       12",
        ])

    def test_jobsLong(self):
        """
        C{jobs -l} shows full DNs.
        """
        jobs = [{"job_id": "1", "owner": ALICE, "host": "h", "mode": "tcp",
                 "state": "ready", "registered": time.time(), "pending": 0}]
        out = run(["jobs", "-l"], FakeClient({"listJobs": jobs}))[1].decode()
        self.assertIn(ALICE, out)

    def test_noJobs(self):
        """
        No jobs: says so.
        """
        self.assertEqual(run(["jobs"], FakeClient({"listJobs": []})), (0, b"No jobs.\n", ""))

    def test_ls(self):
        """
        C{ls -l} lines: mode, right-aligned size, time, name and link
        target; the job and path are passed on.
        """
        recent = time.time() - 3600
        old = time.mktime((2020, 3, 5, 12, 0, 0, 0, 0, -1))
        t = time.localtime(recent)
        recentText = "%s %2d %02d:%02d" % (cli._MONTHS[t.tm_mon - 1], t.tm_mday,
                                          t.tm_hour, t.tm_min)
        fake = FakeClient({"ls": {"path": "out", "truncated": False, "entries": [
            entry("data", "dir", 4096, recent, 0o755),
            entry("job.log", "file", 12345678901, recent, 0o644),
            entry("latest", "link", 7, old, 0o777, target="job.log"),
            entry("fifo", "other", 0, old, 0o600),
            entry("run.sh", "file", 12, old, 0o4755),
        ]}})
        status, out, err = run(["ls", "1.0", "out"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.calls, [("ls", "1.0", "out")])
        self.assertEqual(out.decode().splitlines(), [
            "drwxr-xr-x        4096 %s data" % recentText,
            "-rw-r--r-- 12345678901 %s job.log" % recentText,
            "lrwxrwxrwx           7 Mar  5  2020 latest -> job.log",
            "?rw-------           0 Mar  5  2020 fifo",
            "-rwsr-xr-x          12 Mar  5  2020 run.sh",
        ])

    def test_lsDefaultPath(self):
        """
        The path defaults to C{.}; an empty directory prints nothing.
        """
        fake = FakeClient({"ls": {"path": ".", "truncated": False, "entries": []}})
        self.assertEqual(run(["ls", "1.0"], fake), (0, b"", ""))
        self.assertEqual(fake.calls, [("ls", "1.0", ".")])

    def test_lsTruncated(self):
        """
        A truncated listing gets a note on stderr.
        """
        fake = FakeClient({"ls": {"path": ".", "truncated": True,
                                  "entries": [entry("a"), entry("b")]}})
        status, out, err = run(["ls", "1.0"], fake)
        self.assertEqual(status, 0)
        self.assertEqual(len(out.splitlines()), 2)
        self.assertEqual(err, "jobmon-query: listing truncated (entry cap): 2 entries shown\n")

    def test_lsEscapesNames(self):
        """
        Control characters in names are escaped: one entry, one line.
        """
        fake = FakeClient({"ls": {"path": ".", "truncated": False,
                                  "entries": [entry("a\nb\x1b")]}})
        out = run(["ls", "1.0"], fake)[1]
        self.assertTrue(out.endswith(b" a\\nb\\x1b\n"), out)

    def test_stat(self):
        """
        C{key: value} lines, the mtime in local ISO-8601.
        """
        mtime = 1700000000.0
        fake = FakeClient({"stat": dict(entry("job.log", "file", 42, mtime, 0o640),
                                        path="logs/job.log")})
        status, out, err = run(["stat", "1.0", "logs/job.log"], fake)
        from datetime import datetime

        iso = datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.decode().splitlines(), [
            "path: logs/job.log", "type: file", "size: 42", "mode: 0640 (-rw-r-----)",
            "mtime: " + iso,
        ])
        self.assertEqual(fake.calls, [("stat", "1.0", "logs/job.log")])

    def test_statLink(self):
        """
        A link shows its target.
        """
        fake = FakeClient({"stat": dict(entry("l", "link", 3, 0, 0o777, target="x"),
                                        path="l")})
        out = run(["stat", "1.0", "l"], fake)[1].decode()
        self.assertIn("mode: 0777 (lrwxrwxrwx)\n", out)
        self.assertTrue(out.endswith("target: x\n"))

    def test_cat(self):
        """
        The raw bytes, nothing added; offset and length passed on.
        """
        data = b"\x00\xff\xfe not utf-8 \r\n"
        fake = FakeClient({"cat": {"path": "f", "data": data, "offset": 5, "size": 100,
                                   "truncated": False}})
        self.assertEqual(run(["cat", "1.0", "f", "--offset", "5", "--length", "20"], fake),
                         (0, data, ""))
        self.assertEqual(fake.calls, [("cat", "1.0", "f", 5, 20)])

    def test_catTruncated(self):
        """
        A cut result says where to read on.
        """
        fake = FakeClient({"cat": {"path": "f", "data": b"x" * 1000, "offset": 0,
                                   "size": 5000, "truncated": True}})
        status, out, err = run(["cat", "1.0", "f"], fake)
        self.assertEqual((status, len(out)), (0, 1000))
        self.assertEqual(err, "jobmon-query: output cut at 1000 bytes (result cap); "
                              "use --offset 1000 to read on\n")
        self.assertEqual(fake.calls, [("cat", "1.0", "f", 0, None)])

    def test_tail(self):
        """
        C{tail -n}: the raw bytes; 10 lines by default.
        """
        fake = FakeClient({"tail": {"path": "f", "data": b"a\nb\n", "offset": 9,
                                    "size": 13, "truncated": False}})
        self.assertEqual(run(["tail", "1.0", "f", "-n", "2"], fake), (0, b"a\nb\n", ""))
        run(["tail", "1.0", "f"], fake)
        self.assertEqual(fake.calls, [("tail", "1.0", "f", 2), ("tail", "1.0", "f", 10)])

    def test_tailTruncated(self):
        """
        A cut tail says so on stderr.
        """
        fake = FakeClient({"tail": {"path": "f", "data": b"y" * 10, "offset": 90,
                                    "size": 100, "truncated": True}})
        status, out, err = run(["tail", "1.0", "f"], fake)
        self.assertEqual((status, out), (0, b"y" * 10))
        self.assertTrue(err.startswith("jobmon-query: output cut at 10 bytes (result cap)"))
        self.assertIn("before offset 90", err)
        self.assertEqual(err.count("\n"), 1)

    def test_json(self):
        """
        C{--json}, before or after the command, prints one JSON document;
        bytes go to C{data_base64}.
        """
        result = {"path": "f", "data": b"\x00\xff", "offset": 0, "size": 2,
                  "truncated": False}
        for argv in (["--json", "cat", "1.0", "f"], ["cat", "1.0", "f", "--json"]):
            status, out, err = run(argv, FakeClient({"cat": dict(result)}))
            self.assertEqual((status, err), (0, ""))
            doc = json.loads(out)
            self.assertEqual(base64.b64decode(doc.pop("data_base64")), b"\x00\xff")
            self.assertEqual(doc, {"path": "f", "offset": 0, "size": 2,
                                   "truncated": False})

    def test_jsonOtherCommands(self):
        """
        Every command's result comes out as JSON, without notes.
        """
        jobs = [{"job_id": "1", "owner": ALICE, "pending": 0}]
        listing = {"path": ".", "truncated": True, "entries": [entry("a", mtime=1.5)]}
        for argv, method, result in [
            (["whoami"], "whoami", {"dn": ALICE, "admin": True}),
            (["jobs"], "listJobs", jobs),
            (["jobs"], "listJobs", []),
            (["ls", "1"], "ls", listing),
            (["stat", "1", "a"], "stat", entry("a", mtime=1.5)),
        ]:
            status, out, err = run(["--json"] + argv, FakeClient({method: result}))
            self.assertEqual((status, err), (0, ""))
            self.assertEqual(json.loads(out), result)

    def test_brokenPipe(self):
        """
        A reader that goes away (C{| head}) ends the command quietly.
        """

        class Closed(io.RawIOBase):
            def writable(self):
                return True

            def write(self, data):
                raise BrokenPipeError(32, "Broken pipe")

        stdout = io.TextIOWrapper(Closed(), encoding="utf-8")
        stderr = io.StringIO()
        fake = FakeClient({"cat": {"path": "f", "data": b"x" * 100, "offset": 0,
                                   "size": 100, "truncated": False}})
        status = cli.main(["cat", "1.0", "f"], stdout=stdout, stderr=stderr,
                          environ={"JOBMON_SERVER": SERVER}, clientFactory=fake.factory)
        self.assertEqual((status, stderr.getvalue()), (0, ""))


class FormatTests(SynchronousTestCase):
    """
    Tests for the formatting helpers.
    """

    def test_formatAge(self):
        """
        Seconds, minutes, hours and minutes, days.
        """
        for seconds, text in [(-3, "0s"), (0, "0s"), (59, "59s"), (60, "1m"),
                              (3599, "59m"), (3600, "1h"), (7805, "2h10m"),
                              (86399, "23h59m"), (86400 * 4 + 5, "4d")]:
            self.assertEqual(cli.formatAge(seconds), text, seconds)

    def test_formatMode(self):
        """
        Type letter and permission bits, with setuid, setgid and sticky.
        """
        self.assertEqual(cli.formatMode("dir", 0o1777), "drwxrwxrwt")
        self.assertEqual(cli.formatMode("file", 0o2750), "-rwxr-s---")
        self.assertEqual(cli.formatMode("file", 0o4644), "-rwSr--r--")
        self.assertEqual(cli.formatMode("other", 0o644), "?rw-r--r--")
        self.assertEqual(cli.formatMode("link", 0o777), "lrwxrwxrwx")

    def test_formatTime(self):
        """
        Recent times show the clock, old and future ones the year.
        """
        now = time.mktime((2026, 6, 15, 12, 0, 0, 0, 0, -1))
        self.assertEqual(cli.formatTime(now - 86400, now), "Jun 14 12:00")
        self.assertEqual(cli.formatTime(now - 200 * 86400, now).split()[-1], "2025")
        self.assertEqual(cli.formatTime(now + 2 * 86400, now), "Jun 17  2026")
        self.assertEqual(cli.formatTime(1e30, now), "?" * 12)

    def test_shortDN(self):
        """
        The last CN, which may contain slashes.
        """
        self.assertEqual(cli.shortDN(ALICE), "Alice Example")
        self.assertEqual(cli.shortDN("/DC=org/CN=host/a.example.org"), "host/a.example.org")
        self.assertEqual(cli.shortDN("/O=x/OU=y"), "/O=x/OU=y")

    def test_toJSON(self):
        """
        Bytes become base64 text.
        """
        self.assertEqual(cli.toJSON({"data": b"\x01", "l": [b"\x02"], "n": 1}),
                         {"data_base64": "AQ==", "l": ["Ag=="], "n": 1})


class ImportTests(SynchronousTestCase):
    """
    The command stays fast to start.
    """

    def test_onlyStandardLibrary(self):
        """
        Importing L{jobmon.cli} loads neither Twisted nor C{cryptography}
        nor pyOpenSSL.
        """
        code = ("import sys, jobmon.cli; print(' '.join(sorted(m for m in sys.modules "
                "if m.split('.')[0] in ('twisted', 'cryptography', 'OpenSSL', 'attr', "
                "'attrs', 'zope'))))")
        here = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
        env = dict(os.environ, PYTHONPATH=here)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             env=env, check=True, text=True).stdout
        self.assertEqual(out.strip(), "")


_PIPE_SCRIPT = """
import sys
from jobmon import cli

class Fake:
    def __init__(self, server, **kw):
        pass
    def cat(self, jobId, path, offset=0, length=None):
        return {"path": path, "data": b"x" * 4000000, "offset": 0,
                "size": 4000000, "truncated": False}
    def close(self):
        pass

sys.exit(cli.main(["--server", "https://s", "cat", "1", "f"], clientFactory=Fake))
"""


class BrokenPipeTests(SynchronousTestCase):
    """
    C{jobmon-query cat ... | head} in a real process.
    """

    def test_quietExit(self):
        """
        When the reader closes the pipe, the process exits with status 0
        and writes nothing on stderr, not even at interpreter shutdown.
        """
        here = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
        process = subprocess.Popen(
            [sys.executable, "-c", _PIPE_SCRIPT], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=here))
        self.assertEqual(process.stdout.read(10), b"x" * 10)
        process.stdout.close()
        err = process.stderr.read()
        process.stderr.close()
        self.assertEqual((process.wait(30), err), (0, b""))

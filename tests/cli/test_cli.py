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
from jobmon.cli import files, output, parser, processes
from jobmon.cli import format as fmt
from jobmon.errors import JobMonError

SERVER = "https://jobmon.example.org:8443/RPC2"
ALICE = "/DC=org/DC=example/OU=People/CN=Alice Example"

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__))))
"""The folder holding the C{jobmon} package under test (C{jobmon/cli/} is a
package): the C{PYTHONPATH} of the child processes, so that they run this
code and not an installed copy."""


class Seq:
    """
    Answers for L{FakeClient} given in turn, one per call.
    """

    def __init__(self, *answers):
        self.answers = list(answers)


class FakeClient:
    """
    Stands for L{jobmon.client.JobMonClient}: records how it was made and
    called, and answers from C{results}: a dict from method name to a
    result, an exception to raise, a function of the call's arguments, or a
    L{Seq} of those.
    """

    def __init__(self, results=None):
        self.results = dict(results or {})
        self.made = []
        self.calls = []
        self.closed = False
        self.closes = 0

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
        if isinstance(result, Seq):
            result = result.answers.pop(0)
        if callable(result):
            result = result(*args)
        if isinstance(result, BaseException):
            raise result
        return result

    def whoami(self):
        """
        Fake L{JobMonClient.whoami}.
        """
        return self._answer("whoami")

    def listJobs(self, all=False):
        """
        Fake L{JobMonClient.listJobs}; C{all} is recorded only when true.
        """
        return self._answer("listJobs", *((True,) if all else ()))

    def history(self, jobId=None, limit=100):
        """
        Fake L{JobMonClient.history}.
        """
        return self._answer("history", jobId, limit)

    def ls(self, jobId, path=".", timeout=None, depth=None, all=None):
        """
        Fake L{JobMonClient.ls}.
        """
        return self._answer("ls", jobId, path, depth, all)

    def stat(self, jobId, path, timeout=None):
        """
        Fake L{JobMonClient.stat}.
        """
        return self._answer("stat", jobId, path)

    def cat(self, jobId, path, offset=0, length=None, timeout=None):
        """
        Fake L{JobMonClient.cat}.
        """
        return self._answer("cat", jobId, path, offset, length)

    def head(self, jobId, path, lines=None, timeout=None, bytes=None):
        """
        Fake L{JobMonClient.head}.
        """
        return self._answer("head", jobId, path, lines, bytes)

    def tail(self, jobId, path, lines=None, timeout=None, bytes=None, fromLine=None):
        """
        Fake L{JobMonClient.tail}; C{fromLine} is recorded only when given.
        """
        return self._answer("tail", jobId, path, lines, bytes,
                            *(() if fromLine is None else (fromLine,)))

    def follow(self, jobId, path, offset=0, inode=None, wait=10.0, timeout=None):
        """
        Fake L{JobMonClient.follow}.
        """
        return self._answer("follow", jobId, path, offset, inode, wait)

    def ps(self, jobId, timeout=None):
        """
        Fake L{JobMonClient.ps}.
        """
        return self._answer("ps", jobId)

    def top(self, jobId, interval=1.0, timeout=None):
        """
        Fake L{JobMonClient.top}.
        """
        return self._answer("top", jobId, interval)

    def res(self, jobId, timeout=None):
        """
        Fake L{JobMonClient.res}.
        """
        return self._answer("res", jobId)

    def du(self, jobId, path=".", timeout=None):
        """
        Fake L{JobMonClient.du}.
        """
        return self._answer("du", jobId, path)

    def df(self, jobId, path=".", timeout=None):
        """
        Fake L{JobMonClient.df}.
        """
        return self._answer("df", jobId, path)

    def env(self, jobId, timeout=None):
        """
        Fake L{JobMonClient.env}.
        """
        return self._answer("env", jobId)

    def commands(self, jobId, timeout=None):
        """
        Fake L{JobMonClient.commands}.
        """
        return self._answer("commands", jobId)

    def run(self, jobId, name, args=(), timeout=None):
        """
        Fake L{JobMonClient.run}.
        """
        return self._answer("run", jobId, name, list(args))

    def signal(self, jobId, sig, timeout=None):
        """
        Fake L{JobMonClient.signal}.
        """
        return self._answer("signal", jobId, sig)

    def close(self):
        """
        Fake L{JobMonClient.close}.
        """
        self.closed = True
        self.closes += 1


class TTYBytes(io.BytesIO):
    """
    A byte buffer that says it is a terminal.
    """

    def isatty(self):
        return True


class ClosedPipe(io.RawIOBase):
    """
    A pipe whose reader went away: every write fails.
    """

    def writable(self):
        return True

    def write(self, data):
        raise BrokenPipeError(32, "Broken pipe")


class FakeTime:
    """
    A clock and a C{sleep} that only advances it, recording the sleeps.
    """

    def __init__(self):
        self.seconds = 1000.0
        self.sleeps = []

    def now(self):
        return self.seconds

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.seconds += seconds


def run(argv, fake=None, environ=None, tty=False, stdout=None, time_=None):
    """
    Run C{main(argv)} with C{fake} and return C{(exit status, stdout bytes,
    stderr text)}.

    @param tty: make standard output look like a terminal.
    @param stdout: the standard output to use (a text stream over a
        C{BytesIO}).
    @param time_: a L{FakeTime} for the follow loop's clock and sleeps (by
        default one that is thrown away: tests never sleep).
    """
    if environ is None:
        environ = {"JOBMON_SERVER": SERVER}
    if stdout is None:
        stdout = io.TextIOWrapper(TTYBytes() if tty else io.BytesIO(), encoding="utf-8")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    if time_ is None:
        time_ = FakeTime()
    status = cli.main(
        argv, stdout=stdout, stderr=stderr, environ=environ,
        clientFactory=(fake or FakeClient()).factory,
        sleep=time_.sleep, now=time_.now,
    )
    stdout.flush()
    stderr.flush()
    return (status, stdout.buffer.getvalue(),
            stderr.buffer.getvalue().decode("utf-8", "backslashreplace"))


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
        errors.JOB_GONE: 6, errors.JOB_ENDED: 6, errors.TOO_LARGE: 2, errors.TOO_MANY: 8,
        errors.INTERNAL: 8, errors.UNAVAILABLE: 8, errors.NO_SUCH_FILE: 1,
        errors.OUTSIDE_WORKDIR: 1, errors.NOT_A_DIRECTORY: 1, errors.IS_A_DIRECTORY: 1,
        errors.PERMISSION_DENIED: 1, errors.REMOTE_IO_ERROR: 1, errors.UNSUPPORTED_OP: 1,
        errors.REMOTE_TIMEOUT: 7, errors.REMOTE_ERROR: 1, errors.NO_SUCH_COMMAND: 1,
        errors.NOT_ALLOWED: 4,
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
            fake = FakeClient({"ls": JobMonError(code, "it failed:\nbadly"),
                               "listJobs": []})
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
        The exit status table is shown by C{--help}; the module docstring
        points to it.
        """
        self.assertIn("EXIT_STATUS_HELP", cli.__doc__)
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
        for name in cli.COMMANDS:
            status, out, err = run([name, "--help"])
            self.assertEqual((status, err), (0, ""), name)
            self.assertIn(b"usage: jobmon-query " + name.encode(), out)
            self.assertIn(b"\nexamples:\n  jobmon-query " , out)

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
        The DN, with notes; then the server's version.
        """
        for info, line in [
            ({"dn": ALICE, "admin": False, "proxy": False, "limited": False}, ALICE),
            ({"dn": ALICE, "admin": True, "proxy": True, "limited": False},
             ALICE + " (admin, via proxy)"),
            ({"dn": ALICE, "admin": False, "proxy": True, "limited": True},
             ALICE + " (limited proxy)"),
        ]:
            info["server_version"] = "0.1.0"
            self.assertEqual(run(["whoami"], FakeClient({"whoami": info})),
                             (0, (line + "\nserver: JobMon 0.1.0\n").encode(), ""))

    def test_whoamiFqans(self):
        """
        The VOMS FQANs the server read from the proxy, and a token's groups,
        each on a line of their own.
        """
        info = {"dn": ALICE, "admin": True, "proxy": True, "limited": False,
                "fqans": ["/cms", "/cms/Role=lcgadmin"], "server_version": "0.1.0"}
        self.assertEqual(
            run(["whoami"], FakeClient({"whoami": info})),
            (0, (ALICE + " (admin, via proxy)\nfqans: /cms /cms/Role=lcgadmin\n"
                 "server: JobMon 0.1.0\n").encode(), ""))
        info = {"dn": "https://iss#bob", "fqans": [], "server_version": "0.1.0",
                "token": {"scopes": ["compute.read"], "groups": ["/cms", "/cms/higgs"]}}
        self.assertEqual(
            run(["whoami"], FakeClient({"whoami": info}))[1].decode().splitlines()[1],
            "groups: /cms /cms/higgs")

    def test_jobs(self):
        """
        A table with the owner's last CN, the mode, the age and how long
        ago the daemon was last heard from.
        """
        now = time.time()
        jobs = [
            {"job_id": "1234.0", "owner": ALICE, "host": "wn01.example.org",
             "batch": "slurm", "mode": "tcp", "state": "ready", "registered": now - 7805,
             "last_seen": now, "pending": 0},
            {"job_id": "77", "owner": "/DC=org/CN=host/svc.example.org", "host": "wn2",
             "mode": "udp", "state": "ready", "registered": now - 5,
             "last_seen": now - 42, "pending": 12},
        ]
        status, out, err = run(["jobs"], FakeClient({"listJobs": jobs}))
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.decode().splitlines(), [
            "JOB     OWNER                 HOST              BATCH  MODE  STATE    AGE  SEEN  PENDING",
            "1234.0  Alice Example         wn01.example.org  slurm  tcp   ready  2h10m    0s        0",
            "77      host/svc.example.org  wn2               -      udp   ready     5s   42s       12",
        ])

    def test_jobsCluster(self):
        """
        A server of a cluster says which server holds each job: a SERVER
        column.
        """
        now = time.time()
        jobs = [{"job_id": "1", "owner": ALICE, "host": "h", "mode": "tcp", "state": "ready",
                 "registered": now, "last_seen": now, "pending": 0, "server": "jm1-4242-a1b2c3"},
                {"job_id": "2", "owner": ALICE, "host": "h", "mode": "udp", "state": "ready",
                 "registered": now, "last_seen": now, "pending": 0, "server": "jm2-77-d4e5f6"}]
        lines = run(["jobs"], FakeClient({"listJobs": jobs}))[1].decode().splitlines()
        self.assertTrue(lines[0].endswith("PENDING  SERVER"))
        self.assertTrue(lines[1].endswith("0  jm1-4242-a1b2c3"))
        self.assertTrue(lines[2].endswith("0  jm2-77-d4e5f6"))

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
        recentText = "%s %2d %02d:%02d" % (fmt._MONTHS[t.tm_mon - 1], t.tm_mday,
                                          t.tm_hour, t.tm_min)
        fake = FakeClient({"ls": {"path": "out", "truncated": False, "entries": [
            entry("data", "dir", 4096, recent, 0o755),
            entry("job.log", "file", 12345678901, recent, 0o644),
            entry("latest", "link", 7, old, 0o777, target="job.log"),
            entry("fifo", "other", 0, old, 0o600),
            entry("run.sh", "file", 12, old, 0o4755),
        ]}})
        status, out, err = run(["ls", "1.0", "out", "-l"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.calls, [("ls", "1.0", "out", None, False)])
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
        self.assertEqual(fake.calls, [("ls", "1.0", ".", None, False)])

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
        Control characters in names are escaped, in the shell's C{$'...'}
        form: one entry, one line.
        """
        fake = FakeClient({"ls": {"path": ".", "truncated": False,
                                  "entries": [entry("a\nb\x1b")]}})
        self.assertEqual(run(["ls", "1.0"], fake)[1], b"$'a\\nb\\033'\n")
        out = run(["ls", "-l", "1.0"], fake)[1]
        self.assertTrue(out.endswith(b" $'a\\nb\\033'\n"), out)

    def test_ownerNamed(self):
        """
        A result of someone else's job (an admin's query) makes the CLI say
        once on standard error whose job it is.
        """
        fake = FakeClient({"stat": dict(entry("job.log", "file", 42, 1700000000.0),
                                        path="job.log", job_owner="/DC=org/CN=Alice")})
        status, out, err = run(["stat", "1.0", "job.log"], fake)
        self.assertEqual(status, 0)
        self.assertEqual(err, "jobmon-query: job 1.0 belongs to /DC=org/CN=Alice\n")
        self.assertNotIn(b"job_owner", out)

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
        A cut result that cannot be read on (the size is unknown) says
        where to read on.
        """
        fake = FakeClient({"cat": {"path": "f", "data": b"x" * 1000, "offset": 0,
                                   "truncated": True}})
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
        self.assertEqual(fake.calls, [("tail", "1.0", "f", 2, None),
                                      ("tail", "1.0", "f", None, None)])

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
        stdout = io.TextIOWrapper(ClosedPipe(), encoding="utf-8")
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
            self.assertEqual(fmt.formatAge(seconds), text, seconds)

    def test_formatMode(self):
        """
        Type letter and permission bits, with setuid, setgid and sticky.
        """
        self.assertEqual(fmt.formatMode("dir", 0o1777), "drwxrwxrwt")
        self.assertEqual(fmt.formatMode("file", 0o2750), "-rwxr-s---")
        self.assertEqual(fmt.formatMode("file", 0o4644), "-rwSr--r--")
        self.assertEqual(fmt.formatMode("other", 0o644), "?rw-r--r--")
        self.assertEqual(fmt.formatMode("link", 0o777), "lrwxrwxrwx")

    def test_formatTime(self):
        """
        Recent times show the clock, old and future ones the year.
        """
        now = time.mktime((2026, 6, 15, 12, 0, 0, 0, 0, -1))
        self.assertEqual(fmt.formatTime(now - 86400, now), "Jun 14 12:00")
        self.assertEqual(fmt.formatTime(now - 200 * 86400, now).split()[-1], "2025")
        self.assertEqual(fmt.formatTime(now + 2 * 86400, now), "Jun 17  2026")
        self.assertEqual(fmt.formatTime(1e30, now), "?" * 12)

    def test_shortDN(self):
        """
        The last CN, which may contain slashes.
        """
        self.assertEqual(fmt.shortDN(ALICE), "Alice Example")
        self.assertEqual(fmt.shortDN("/DC=org/CN=host/a.example.org"), "host/a.example.org")
        self.assertEqual(fmt.shortDN("/O=x/OU=y"), "/O=x/OU=y")
        self.assertEqual(fmt.shortDN("https://iss.example:8443/vo#carol-42"),
                         "carol-42@iss.example:8443")

    def test_toJSON(self):
        """
        Bytes become base64 text; in a dict, UTF-8 bytes are given as text
        too: C{data} as C{text}, another key C{k} as C{k_text}.
        """
        self.assertEqual(output.toJSON({"data": b"\x01", "l": [b"\x02"], "n": 1}),
                         {"data_base64": "AQ==", "text": "\x01", "l": ["Ag=="], "n": 1})
        self.assertEqual(output.toJSON({"stdout": "\xe9".encode(), "stderr": b"\xe9"}),
                         {"stdout_base64": "w6k=", "stdout_text": "\xe9",
                          "stderr_base64": "6Q=="})


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
        here = SOURCE_ROOT
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
        here = SOURCE_ROOT
        process = subprocess.Popen(
            [sys.executable, "-c", _PIPE_SCRIPT], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=here))
        self.assertEqual(process.stdout.read(10), b"x" * 10)
        process.stdout.close()
        err = process.stderr.read()
        process.stderr.close()
        self.assertEqual((process.wait(30), err), (0, b""))


def job(jobId, **extra):
    """
    A job as L{JobMonClient.listJobs} returns it.
    """
    result = {"job_id": jobId, "owner": ALICE, "host": "wn01.example.org",
              "mode": "tcp", "state": "ready", "registered": time.time() - 60,
              "last_seen": time.time(), "pending": 0}
    result.update(extra)
    return result


def data(payload, offset=0, size=None, truncated=False, path="f"):
    """
    A C{cat}/C{head}/C{tail} result.
    """
    return {"path": path, "data": payload, "offset": offset,
            "size": offset + len(payload) if size is None else size,
            "truncated": truncated}


def followed(payload=b"", offset=0, inode="8:1", rotated=False, missing=False,
             path="job.log"):
    """
    A C{follow} result.
    """
    return {"path": path, "data": payload, "offset": offset,
            "next_offset": offset + len(payload), "size": offset + len(payload),
            "inode": inode, "rotated": rotated, "missing": missing,
            "truncated": False}


class FakeClientTests(SynchronousTestCase):
    """
    The fake stays true to the real client.
    """

    def test_signatures(self):
        """
        Each fake method takes the parameters of the real one.
        """
        import inspect

        for name in dir(FakeClient):
            if name.startswith("_") or name == "factory":
                continue
            fake = inspect.signature(getattr(FakeClient, name))
            real = inspect.signature(getattr(client.JobMonClient, name))
            self.assertEqual(list(fake.parameters), list(real.parameters), name)


class JobsTests(SynchronousTestCase):
    """
    C{jobs}: options and filters.
    """

    jobs = [
        job("1.0", host="wn01.example.org", mode="tcp", state="ready"),
        job("2.0", host="wn02.example.org", mode="udp", state="connecting"),
        job("3.0", host="login.example.org", mode="poll", state="ready"),
    ]

    def ids(self, argv, fake=None):
        """
        Run C{jobs} with C{argv}; return the ids printed.
        """
        fake = fake or FakeClient({"listJobs": self.jobs})
        status, out, err = run(["jobs"] + argv, fake)
        self.assertEqual((status, err), (0, ""))
        return [line.split()[0] for line in out.decode().splitlines()[1:]]

    def test_filters(self):
        """
        C{--state}, C{--mode} and C{--host} (a shell pattern) filter on the
        client side, ignoring case.
        """
        self.assertEqual(self.ids([]), ["1.0", "2.0", "3.0"])
        self.assertEqual(self.ids(["--state", "ready"]), ["1.0", "3.0"])
        self.assertEqual(self.ids(["--mode", "UDP"]), ["2.0"])
        self.assertEqual(self.ids(["--host", "wn*"]), ["1.0", "2.0"])
        self.assertEqual(self.ids(["--host", "WN0[2-9].*", "--state", "connecting"]),
                         ["2.0"])
        self.assertEqual(run(["jobs", "--mode", "tcp", "--state", "connecting"],
                             FakeClient({"listJobs": self.jobs}))[1], b"No jobs.\n")

    def test_all(self):
        """
        C{--all} asks the server for every job; without it, no argument.
        """
        fake = FakeClient({"listJobs": self.jobs})
        self.ids(["--all"], fake)
        self.ids([], fake)
        self.assertEqual(fake.calls, [("listJobs", True), ("listJobs",)])

    def test_allRefused(self):
        """
        A user who is not an admin gets 403: status 4.
        """
        fake = FakeClient({"listJobs": JobMonError(403, "only admins may list all jobs")})
        self.assertEqual(run(["jobs", "--all"], fake),
                         (4, b"", "jobmon-query: only admins may list all jobs\n"))

    def test_json(self):
        """
        C{--json} prints the filtered list.
        """
        out = run(["--json", "jobs", "--state", "connecting"],
                  FakeClient({"listJobs": self.jobs}))[1]
        self.assertEqual([j["job_id"] for j in json.loads(out)], ["2.0"])


class PrefixTests(SynchronousTestCase):
    """
    A job named by a unique prefix of its id.
    """

    def lsByJob(self, jobs):
        """
        A fake whose C{ls} knows only the jobs C{jobs}.
        """
        def ls(jobId, path, depth, all):
            if jobId not in [j["job_id"] for j in jobs]:
                return JobMonError(errors.NO_SUCH_JOB, "no such job: " + jobId)
            return {"path": path, "entries": [entry("job.log")], "truncated": False}

        return FakeClient({"ls": ls, "listJobs": jobs})

    def test_exactIdNoListing(self):
        """
        A full id works at once: the jobs are not listed.
        """
        fake = self.lsByJob([job("1234.0")])
        self.assertEqual(run(["ls", "1234.0"], fake), (0, b"job.log\n", ""))
        self.assertEqual([c[0] for c in fake.calls], ["ls"])

    def test_uniquePrefix(self):
        """
        After a 404, the one job whose id starts with the text is used.
        """
        fake = self.lsByJob([job("1234.0"), job("99.0")])
        self.assertEqual(run(["ls", "12"], fake), (0, b"job.log\n", ""))
        self.assertEqual(fake.calls, [("ls", "12", ".", None, False), ("listJobs",),
                                      ("ls", "1234.0", ".", None, False)])

    def test_ambiguous(self):
        """
        Several candidates: one line naming at most five, status 5.
        """
        jobs = [job("12%02d.0" % i) for i in range(7)] + [job("3.0")]
        status, out, err = run(["ls", "12"], self.lsByJob(jobs))
        self.assertEqual((status, out), (5, b""))
        self.assertEqual(err, "jobmon-query: job id '12' is ambiguous: 7 of your jobs "
                              "start with it: 1200.0, 1201.0, 1202.0, 1203.0, 1204.0 "
                              "and 2 more\n")

    def test_noMatch(self):
        """
        No candidate: the server's 404.
        """
        self.assertEqual(run(["stat", "7", "f"], FakeClient({
            "stat": JobMonError(404, "no such job: 7"), "listJobs": [job("1.0")]})),
            (5, b"", "jobmon-query: no such job: 7\n"))

    def test_listingFails(self):
        """
        If the jobs cannot be listed, the original 404 is reported.
        """
        self.assertEqual(run(["stat", "7", "f"], FakeClient({
            "stat": JobMonError(404, "no such job: 7"),
            "listJobs": JobMonError(500, "oops")})),
            (5, b"", "jobmon-query: no such job: 7\n"))

    def test_resolvedJobGone(self):
        """
        The job found by prefix is tried once: a second 404 is reported.
        """
        fake = FakeClient({"stat": JobMonError(404, "no such job"),
                           "listJobs": [job("1234.0")]})
        self.assertEqual(run(["stat", "12", "f"], fake)[0], 5)
        self.assertEqual([c[0] for c in fake.calls], ["stat", "listJobs", "stat"])

    def test_otherCommands(self):
        """
        Every job command resolves prefixes, here C{res}.
        """
        def res(jobId):
            if jobId != "1234.0":
                return JobMonError(404, "no such job")
            return {"processes": 1}

        fake = FakeClient({"res": res, "listJobs": [job("1234.0")]})
        self.assertEqual(run(["res", "1"], fake), (0, b"processes: 1\n", ""))


class LsTests(SynchronousTestCase):
    """
    C{ls}: names, columns, options.
    """

    listing = {"path": ".", "truncated": False, "entries": [
        entry("a.txt"), entry("bb", "dir"), entry("ccc.log"), entry("d"),
        entry("eeeee")]}

    def test_namesToPipe(self):
        """
        Into a pipe: one name per line.
        """
        fake = FakeClient({"ls": self.listing})
        self.assertEqual(run(["ls", "1"], fake),
                         (0, b"a.txt\nbb\nccc.log\nd\neeeee\n", ""))

    def test_columnsOnTerminal(self):
        """
        On a terminal: columns, filled top to bottom, fitting its width.
        """
        fake = FakeClient({"ls": self.listing})
        status, out, err = run(["ls", "1"], fake, tty=True,
                               environ={"JOBMON_SERVER": SERVER, "COLUMNS": "30"})
        self.assertEqual(out.decode().splitlines(), [
            "a.txt    ccc.log  eeeee",
            "bb       d",
        ])
        self.assertEqual(files.formatNames(["a", "b"], 1), ["a", "b"])

    def test_options(self):
        """
        C{-a} lets dotfiles through (else C{all} is false so that the daemon
        leaves them out); C{--depth} is passed on, and names relative to the
        path are printed as they come.
        """
        fake = FakeClient({"ls": {"path": "out", "truncated": False, "entries": [
            entry("sub", "dir"), entry("sub/.hidden"), entry("sub/inner.txt")]}})
        status, out, err = run(["ls", "1", "out", "-a", "--depth", "2"], fake)
        self.assertEqual(out, b"sub\nsub/.hidden\nsub/inner.txt\n")
        run(["ls", "1", "--depth", "0"], fake)
        run(["ls", "1", "-la"], fake)
        self.assertEqual(fake.calls, [("ls", "1", "out", 2, True), ("ls", "1", ".", 0, False),
                                      ("ls", "1", ".", None, True)])

    def test_json(self):
        """
        C{--json} prints the result whatever the format options.
        """
        fake = FakeClient({"ls": self.listing})
        out = run(["ls", "1", "--json", "-l"], fake)[1]
        self.assertEqual(len(json.loads(out)["entries"]), 5)


class BinaryTests(SynchronousTestCase):
    """
    Binary data is not written to a terminal.
    """

    notice = ("jobmon-query: binary data (%d bytes) not shown on a terminal; use "
              "--raw or redirect\n")

    def test_looksBinary(self):
        """
        NUL bytes or bytes that are not UTF-8 make data binary; a character
        cut at either end of the sample does not.
        """
        self.assertFalse(output.looksBinary(b""))
        self.assertFalse(output.looksBinary("h\u00e9llo \u2603\n".encode()))
        self.assertTrue(output.looksBinary(b"abc\x00def"))
        self.assertTrue(output.looksBinary(b"caf\xe9 latin-1"))
        self.assertFalse(output.looksBinary("\u2603".encode()[1:] + b"abc"))
        self.assertFalse(output.looksBinary(b"abc" + "\u2603".encode()[:2]))
        self.assertFalse(output.looksBinary(b"x" * 8191 + "\u2603".encode()))
        self.assertFalse(output.looksBinary(b"x" * 8192 + b"\x00"))

    def test_terminal(self):
        """
        On a terminal, binary data becomes a one-line notice, for C{cat},
        C{head} and C{tail}; the status is 0.
        """
        blob = b"\x7fELF\x00\x01" * 10
        for argv, method in [(["cat", "1", "f"], "cat"),
                             (["head", "1", "f", "-c", "60"], "head"),
                             (["tail", "1", "f"], "tail")]:
            fake = FakeClient({method: data(blob)})
            self.assertEqual(run(argv, fake, tty=True), (0, b"", self.notice % 60), argv)

    def test_raw(self):
        """
        C{--raw} writes the bytes to the terminal anyway.
        """
        blob = b"\x00\xff"
        fake = FakeClient({"cat": data(blob)})
        self.assertEqual(run(["cat", "1", "f", "--raw"], fake, tty=True), (0, blob, ""))

    def test_pipe(self):
        """
        Into a pipe or a file the bytes go as they are.
        """
        blob = b"\x00\xff"
        for method in ("cat", "head", "tail"):
            fake = FakeClient({method: data(blob)})
            self.assertEqual(run([method, "1", "f"], fake), (0, blob, ""))

    def test_text(self):
        """
        Text is shown on a terminal.
        """
        fake = FakeClient({"tail": data("r\u00e9sum\u00e9\n".encode())})
        self.assertEqual(run(["tail", "1", "f"], fake, tty=True)[1],
                         "r\u00e9sum\u00e9\n".encode())

    def test_json(self):
        """
        JSON is text: no notice.
        """
        fake = FakeClient({"cat": data(b"\x00")})
        status, out, err = run(["--json", "cat", "1", "f"], fake, tty=True)
        self.assertEqual((status, json.loads(out)["data_base64"], err), (0, "AA==", ""))


class CappedFile:
    """
    A file on a fake worker whose results are capped at C{cap} bytes; it
    records the length of the output already written at each request.
    """

    def __init__(self, content, cap, stdout=None):
        self.content = content
        self.cap = cap
        self.stdout = stdout
        self.written = []

    def cat(self, jobId, path, offset, length):
        """
        Answer a C{cat} as the daemon would.
        """
        if self.stdout is not None:
            self.stdout.flush()
            self.written.append(len(self.stdout.buffer.getvalue()))
        end = len(self.content) if length is None else min(len(self.content),
                                                            offset + length)
        chunk = self.content[offset:min(end, offset + self.cap)]
        return data(chunk, offset, len(self.content),
                    truncated=offset + len(chunk) < end)


class StreamingCatTests(SynchronousTestCase):
    """
    C{cat} of a file larger than one result.
    """

    content = bytes(range(256)) * 40 + b"end"

    def test_chunks(self):
        """
        The file is read in chunks up to its size, each written (and
        flushed) before the next request; the output is complete.
        """
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        capped = CappedFile(self.content, 4000, stdout)
        fake = FakeClient({"cat": capped.cat})
        status, out, err = run(["cat", "1", "f"], fake, stdout=stdout)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, self.content)
        self.assertEqual(fake.calls, [("cat", "1", "f", 0, None),
                                      ("cat", "1", "f", 4000, 6243),
                                      ("cat", "1", "f", 8000, 2243)])
        self.assertEqual(capped.written, [0, 4000, 8000])

    def test_offsetAndLength(self):
        """
        C{--offset} and C{--length} bound the loop.
        """
        fake = FakeClient({"cat": CappedFile(self.content, 1000).cat})
        status, out, err = run(["cat", "1", "f", "--offset", "100", "--length", "2500"],
                               fake)
        self.assertEqual((status, out, err), (0, self.content[100:2600], ""))
        self.assertEqual([c[3:] for c in fake.calls],
                         [(100, 2500), (1100, 1500), (2100, 500)])

    def test_sizeAtStart(self):
        """
        The loop stops at the size seen at the first read, though the file
        grows.
        """
        capped = CappedFile(self.content[:3000], 1000)

        def cat(*args):
            result = capped.cat(*args)
            capped.content += b"more"
            return result

        fake = FakeClient({"cat": cat})
        out = run(["cat", "1", "f"], fake)[1]
        self.assertEqual(out, self.content[:3000])
        self.assertEqual(len(fake.calls), 3)

    def test_shrunk(self):
        """
        A file that gets shorter during the loop: what was read, and a
        note.
        """
        fake = FakeClient({"cat": Seq(data(b"a" * 10, 0, 30, truncated=True),
                                      data(b"", 10, 10))})
        status, out, err = run(["cat", "1", "f"], fake)
        self.assertEqual((status, out), (0, b"a" * 10))
        self.assertEqual(err, "jobmon-query: f got shorter while it was read: 10 of 30 "
                              "bytes written\n")

    def test_binaryOnTerminal(self):
        """
        On a terminal, a binary file is not fetched past its first chunk.
        """
        fake = FakeClient({"cat": CappedFile(self.content, 4000).cat})
        status, out, err = run(["cat", "1", "f"], fake, tty=True)
        self.assertEqual((status, out), (0, b""))
        self.assertEqual(err, BinaryTests.notice % len(self.content))
        self.assertEqual(len(fake.calls), 1)

    def test_json(self):
        """
        C{--json}: one document, its data streamed as base64.
        """
        for cap in (999, 1000, 1001, 4000):
            fake = FakeClient({"cat": CappedFile(self.content, cap).cat})
            status, out, err = run(["cat", "1", "f", "--json"], fake)
            self.assertEqual((status, err), (0, ""))
            doc = json.loads(out)
            self.assertEqual(base64.b64decode(doc.pop("data_base64")), self.content)
            self.assertEqual(doc, {"path": "f", "offset": 0, "size": len(self.content),
                                   "truncated": False})

    def test_brokenPipe(self):
        """
        A reader that goes away stops the loop quietly.
        """
        stdout = io.TextIOWrapper(ClosedPipe(), encoding="utf-8")
        fake = FakeClient({"cat": CappedFile(self.content, 4000).cat})
        stderr = io.StringIO()
        status = cli.main(["cat", "1", "f"], stdout=stdout, stderr=stderr,
                          environ={"JOBMON_SERVER": SERVER}, clientFactory=fake.factory)
        self.assertEqual((status, stderr.getvalue(), len(fake.calls)), (0, "", 1))


def lost():
    """
    The error of a connection lost while following.
    """
    return client.ClientError(client.CONNECTION_LOST, "the connection was lost")


class FollowTests(SynchronousTestCase):
    """
    C{tail -f}, C{tail -F} and C{cat -f}.
    """

    def test_follow(self):
        """
        The tail first, then new bytes from where it ended, asking with the
        inode of the previous answer, until Ctrl-C: status 130, quietly,
        the connection closed.
        """
        fake = FakeClient({
            "tail": data(b"one\ntwo\n", 100, path="job.log"),
            "follow": Seq(followed(b"three\n", 108), followed(b"", 114),
                          followed(b"four\n", 114, inode="8:1"), KeyboardInterrupt()),
        })
        status, out, err = run(["tail", "-f", "1", "job.log", "-n", "2"], fake)
        self.assertEqual((status, out, err), (130, b"one\ntwo\nthree\nfour\n", ""))
        self.assertEqual(fake.calls, [
            ("tail", "1", "job.log", 2, None),
            ("follow", "1", "job.log", 108, None, files.FOLLOW_WAIT),
            ("follow", "1", "job.log", 114, "8:1", files.FOLLOW_WAIT),
            ("follow", "1", "job.log", 114, "8:1", files.FOLLOW_WAIT),
            ("follow", "1", "job.log", 119, "8:1", files.FOLLOW_WAIT),
        ])
        self.assertTrue(fake.closed)

    def test_flushedAsTheyCome(self):
        """
        Each piece is written before the next request.
        """
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        seen = []

        def follow(*args):
            seen.append(stdout.buffer.getvalue())
            return followed(b"x", args[2]) if len(seen) < 3 else KeyboardInterrupt()

        fake = FakeClient({"tail": data(b"t", 0), "follow": follow})
        run(["tail", "-f", "1", "job.log"], fake, stdout=stdout)
        self.assertEqual(seen, [b"t", b"tx", b"txx"])

    def test_rotatedAndMissing(self):
        """
        A replaced file gets a notice and is read from its start; a
        missing one is waited for with one notice.
        """
        fake = FakeClient({
            "tail": data(b"old\n", 0, path="job.log"),
            "follow": Seq(followed(b"", 4, missing=True, inode=""),
                          followed(b"", 4, missing=True, inode=""),
                          followed(b"new\n", 0, inode="8:2", rotated=True),
                          followed(b"", 4, missing=True, inode=""),
                          KeyboardInterrupt()),
        })
        status, out, err = run(["tail", "-F", "1", "job.log"], fake)
        self.assertEqual((status, out), (130, b"old\nnew\n"))
        self.assertEqual(err.splitlines(), [
            "jobmon-query: job.log is missing; waiting for it",
            "jobmon-query: job.log was replaced/truncated; following from its start",
            "jobmon-query: job.log is missing; waiting for it",
        ])
        self.assertEqual([c[3:5] for c in fake.calls[1:]],
                         [(4, None), (4, None), (4, None), (4, "8:2"), (4, "8:2")])

    def test_reconnect(self):
        """
        Connection errors mid-way: the same offset and inode are asked
        again after a growing, capped pause; no byte is lost or repeated.
        """
        clock = FakeTime()
        errorsInARow = [lost() for _ in range(8)]
        fake = FakeClient({
            "tail": data(b"a", 0),
            "follow": Seq(followed(b"b", 1, inode="7:7"), *errorsInARow,
                          followed(b"c", 2, inode="7:7"),
                          client.ClientError(client.UNREACHABLE, "connection refused"),
                          followed(b"d", 3, inode="7:7"), KeyboardInterrupt()),
        })
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, time_=clock)
        self.assertEqual((status, out), (130, b"abcd"))
        self.assertEqual([c[3:5] for c in fake.calls[1:]],
                         [(1, None)] + [(2, "7:7")] * 9 + [(3, "7:7")] * 2 + [(4, "7:7")])
        self.assertEqual(clock.sleeps, [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 0.2])
        self.assertEqual(err.splitlines(), [
            "jobmon-query: the connection was lost; retrying from offset 2 (Ctrl-C to "
            "stop)",
            "jobmon-query: reconnected; following job.log from offset 2",
            "jobmon-query: connection refused; retrying from offset 3 (Ctrl-C to stop)",
            "jobmon-query: reconnected; following job.log from offset 3",
        ])
        self.assertGreaterEqual(fake.closes, 10)

    def test_serverRestart(self):
        """
        A restarting server: unreachable, HTTP 502, fault 503, then 404
        while the daemon registers again: all retried.
        """
        bad = client.ClientError(client.HTTP_ERROR, "HTTP 502")
        bad.status = 502
        fake = FakeClient({
            "tail": data(b"a", 0),
            "follow": Seq(client.ClientError(client.UNREACHABLE, "refused"), bad,
                          JobMonError(503, "shutting down"),
                          JobMonError(408, "timeout"),
                          JobMonError(404, "no such job"), JobMonError(404, "no such job"),
                          followed(b"b", 1), KeyboardInterrupt()),
        })
        status, out, err = run(["tail", "-f", "1", "job.log"], fake)
        self.assertEqual((status, out), (130, b"ab"))
        self.assertEqual([c[3] for c in fake.calls[1:]], [1] * 7 + [2])

    def test_unknownJobTooLong(self):
        """
        A job unknown to the server for more than a minute: status 5.
        """
        fake = FakeClient({"tail": data(b"a", 0),
                           "follow": JobMonError(404, "no such job: 1")})
        clock = FakeTime()
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, time_=clock)
        self.assertEqual((status, out), (5, b"a"))
        self.assertTrue(err.endswith("jobmon-query: no such job: 1\n"), err)
        self.assertTrue(60 < sum(clock.sleeps) < 70, clock.sleeps)

    def test_notRetried(self):
        """
        Other errors end the command: a wrong path (HTTP 404), a file error.
        """
        wrong = client.ClientError(client.HTTP_ERROR, "HTTP 404")
        wrong.status = 404
        for error, status in [(wrong, 8), (JobMonError(1005, "permission denied"), 1)]:
            fake = FakeClient({"tail": data(b"a", 0), "follow": error})
            self.assertEqual(run(["tail", "-f", "1", "f"], fake)[0], status)
            self.assertEqual(len(fake.calls), 2)

    def test_jobGone(self):
        """
        The job goes away (its wake channel closed: it may register again):
        retried for a minute, then status 6 with its message.
        """
        clock = FakeTime()
        fake = FakeClient({"tail": data(b"a", 0),
                           "follow": Seq(followed(b"b", 1),
                                         *[JobMonError(410, "job 1 went away")] * 100)})
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, time_=clock)
        self.assertEqual((status, out), (6, b"ab"))
        self.assertTrue(err.endswith("jobmon-query: job 1 went away\n"), err)
        self.assertTrue(60 < sum(clock.sleeps) < 70, clock.sleeps)

    def test_missingAtStart(self):
        """
        C{-F} waits for a file that does not exist yet; C{-f} does not.
        """
        fake = FakeClient({"tail": JobMonError(1001, "no such file: job.log"),
                           "follow": Seq(followed(b"", 0, missing=True, inode=""),
                                         followed(b"hi\n", 0, inode="1:2"),
                                         KeyboardInterrupt())})
        status, out, err = run(["tail", "-F", "1", "job.log"], fake)
        self.assertEqual((status, out), (130, b"hi\n"))
        self.assertEqual(err, "jobmon-query: job.log is missing; waiting for it\n")
        fake = FakeClient({"tail": JobMonError(1001, "no such file: job.log")})
        self.assertEqual(run(["tail", "-f", "1", "job.log"], fake),
                         (1, b"", "jobmon-query: no such file: job.log\n"))

    def test_catFollow(self):
        """
        C{cat -f}: the whole file (in chunks), then what is added.
        """
        content = b"x" * 2500
        fake = FakeClient({"cat": CappedFile(content, 1000).cat,
                           "follow": Seq(followed(b"tail", 2500), KeyboardInterrupt())})
        status, out, err = run(["cat", "-f", "1", "job.log"], fake)
        self.assertEqual((status, out), (130, content + b"tail"))
        self.assertEqual(fake.calls[-2][:4], ("follow", "1", "job.log", 2500))
        self.assertEqual(run(["cat", "-f", "1", "f", "--length", "3"], fake)[0], 2)

    def test_interruptedAtStart(self):
        """
        Ctrl-C before following began is quiet too.
        """
        fake = FakeClient({"tail": KeyboardInterrupt()})
        self.assertEqual(run(["tail", "-f", "1", "job.log"], fake), (130, b"", ""))

    def test_catFollowJSON(self):
        """
        C{cat -f --json}: one object per chunk of the file, then per chunk
        added.
        """
        fake = FakeClient({"cat": CappedFile(b"abc", 2).cat,
                           "follow": Seq(followed(b"d", 3), KeyboardInterrupt())})
        out = run(["cat", "-f", "--json", "1", "job.log"], fake)[1]
        docs = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual([(d["offset"], base64.b64decode(d["data_base64"])) for d in docs],
                         [(0, b"ab"), (2, b"c"), (3, b"d")])

    def test_prefix(self):
        """
        The job named by a prefix is followed under its full id.
        """
        def tail(jobId, path, lines, count):
            return data(b"a", 0) if jobId == "1234.0" else JobMonError(404, "no")

        fake = FakeClient({"tail": tail, "listJobs": [job("1234.0")],
                           "follow": Seq(followed(b"b", 1), KeyboardInterrupt())})
        self.assertEqual(run(["tail", "-f", "12", "job.log"], fake)[:2], (130, b"ab"))
        self.assertEqual(fake.calls[-1][1], "1234.0")

    def test_binaryOnTerminal(self):
        """
        On a terminal, binary chunks become notices.
        """
        fake = FakeClient({"tail": data(b"text\n", 0),
                           "follow": Seq(followed(b"\x00\x01", 5), followed(b"ok\n", 7),
                                         KeyboardInterrupt())})
        status, out, err = run(["tail", "-f", "1", "job.log"], fake, tty=True)
        self.assertEqual((status, out, err), (130, b"text\nok\n", BinaryTests.notice % 2))

    def test_jsonLines(self):
        """
        C{--json} with C{-f}: one JSON object per line, for the tail and
        for each chunk, rotation or disappearance; empty waits print
        nothing.
        """
        fake = FakeClient({
            "tail": data(b"a", 0, path="job.log"),
            "follow": Seq(followed(b"", 1), followed(b"\x00b", 1),
                          followed(b"c", 0, rotated=True, inode="9:9"),
                          followed(b"", 1, missing=True),
                          followed(b"", 1, missing=True), KeyboardInterrupt()),
        })
        status, out, err = run(["--json", "tail", "-f", "1", "job.log"], fake, tty=True)
        self.assertEqual(status, 130)
        docs = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual([base64.b64decode(d["data_base64"]) for d in docs],
                         [b"a", b"\x00b", b"c", b""])
        self.assertEqual([d.get("rotated") for d in docs], [None, False, True, False])
        self.assertEqual(docs[3]["missing"], True)
        self.assertEqual(docs[1]["next_offset"], 3)


class ProcessTests(SynchronousTestCase):
    """
    C{ps}, C{top}, C{res}.
    """

    processes = [
        {"pid": 100, "ppid": 1, "user": "alice", "state": "sleeping", "cpu_percent": 0.0,
         "rss": 3 * 1024 * 1024, "vms": 0, "elapsed": 3725, "threads": 1, "name": "bash",
         "cmdline": "/bin/bash job.sh", "daemon": False},
        {"pid": 101, "ppid": 100, "user": "alice", "state": "running",
         "cpu_percent": 98.5, "rss": 2 * 1024 ** 3, "vms": 0, "elapsed": 3600,
         "threads": 4, "name": "python", "cmdline": "python train.py", "daemon": False},
        {"pid": 102, "ppid": 101, "user": "alice", "state": "sleeping",
         "cpu_percent": 1.25, "rss": 900, "vms": 0, "elapsed": 86400 + 59,
         "threads": 1, "name": "worker", "cmdline": "", "daemon": False},
        {"pid": 103, "ppid": 100, "user": "alice", "state": "sleeping",
         "cpu_percent": 0.5, "rss": 20 * 1024 * 1024, "vms": 0, "elapsed": 59,
         "threads": 2, "name": "jobmon", "cmdline": "twistd jobmon-daemon",
         "daemon": True},
    ]

    def test_ps(self):
        """
        A table in tree order, commands indented by depth, the daemon
        marked.
        """
        fake = FakeClient({"ps": {"root": 100, "processes": self.processes,
                                  "truncated": False}})
        status, out, err = run(["ps", "1"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.decode().splitlines(), [
            "PID  PPID  USER   STATE     %CPU   RSS     ELAPSED  COMMAND",
            "100     1  alice  sleeping   0.0  3.0M    01:02:05  /bin/bash job.sh",
            "101   100  alice  running   98.5  2.0G    01:00:00    python train.py",
            "102   101  alice  sleeping   1.2   900  1-00:00:59      [worker]",
            "103   100  alice  sleeping   0.5   20M       00:59    twistd jobmon-daemon "
            "(jobmon)",
        ])

    def test_top(self):
        """
        C{top}: C{-n} samples over C{-d} seconds, each sorted by %CPU.
        """
        fake = FakeClient({"top": {"root": 100, "processes": self.processes,
                                   "truncated": False}})
        status, out, err = run(["top", "1", "-d", "2", "-n", "2"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.calls, [("top", "1", 2.0), ("top", "1", 2.0)])
        lines = out.decode().splitlines()
        self.assertTrue(lines[0].endswith("  4 processes, CPU over 2s"), lines[0])
        self.assertEqual([line.split()[0] for line in lines[2:6]],
                         ["101", "102", "103", "100"])
        self.assertEqual(lines[6], "")
        self.assertEqual(len(lines), 13)
        self.assertNotIn(b"\x1b", out)

    def test_topTerminal(self):
        """
        On a terminal, the screen is cleared before each sample.
        """
        fake = FakeClient({"top": {"processes": self.processes}})
        out = run(["top", "1", "-n", "3"], fake, tty=True)[1]
        self.assertEqual(out.count(b"\x1b[H\x1b[2J"), 3)
        out = run(["top", "1"], fake, tty=True)[1]
        self.assertNotIn(b"\x1b", out)

    def test_topJSON(self):
        """
        One sample: a document; several: one object per line.
        """
        result = {"root": 100, "processes": self.processes[:1], "truncated": False}
        stamped = dict(result, sampled_at="2026-12-03T07:57:38.250Z",
                       sampled_at_epoch=1796284658.25)
        self.patch(processes.time, "time", lambda: 1796284658.25)
        fake = FakeClient({"top": result})
        self.assertEqual(json.loads(run(["--json", "top", "1"], fake)[1]), stamped)
        out = run(["--json", "top", "1", "-n", "2"], fake)[1]
        self.assertEqual([json.loads(line) for line in out.splitlines()], [stamped] * 2)

    def test_res(self):
        """
        C{key: value} lines in human units, each saying whether it is a sum
        over the job's processes or the largest single process; unreported
        fields left out.
        """
        fake = FakeClient({"res": {
            "processes": 4, "threads": 8, "cpu_user": 3725.5, "cpu_system": 12.25,
            "rss": 1536 * 1024 * 1024, "rss_peak": 2 * 1024 ** 3, "open_files": 17,
            "read_bytes": 512, "elapsed": 7200, "write_bytes": None}})
        self.assertEqual(run(["res", "1"], fake)[1].decode().splitlines(), [
            "processes: 4",
            "threads: 8  (sum over 4 processes)",
            "cpu_user: 1h02m  (sum over 4 processes)",
            "cpu_system: 12.2s  (sum over 4 processes)",
            "rss: 1.5G  (sum over 4 processes)",
            "rss_peak: 2.0G  (largest single process)",
            "open_files: 17  (sum over 4 processes)",
            "read_bytes: 512  (sum over 4 processes)",
            "elapsed: 2h00m  (since the job's root process started)",
        ])
        fake = FakeClient({"res": {"processes": 1, "rss": 10}})
        self.assertEqual(run(["res", "1"], fake)[1].decode().splitlines(),
                         ["processes: 1", "rss: 10  (sum over 1 process)"])

    def test_json(self):
        """
        C{--json} for C{ps} and C{res}.
        """
        for argv, method, result in [
            (["ps", "1"], "ps", {"root": 1, "processes": self.processes,
                                 "truncated": False}),
            (["res", "1"], "res", {"processes": 4, "rss": 10}),
        ]:
            out = run(["--json"] + argv, FakeClient({method: result}))[1]
            self.assertEqual(json.loads(out), result)


class DiskTests(SynchronousTestCase):
    """
    C{du}, C{df}.
    """

    du = {"path": "out", "total": 3 * 1024 ** 3 + 10, "files": 12, "dirs": 3,
          "truncated": False, "entries": [
              {"name": "small.txt", "size": 100, "type": "file"},
              {"name": "data", "size": 3 * 1024 ** 3, "type": "dir"},
              {"name": "mid.log", "size": 5000, "type": "file"}]}

    def test_du(self):
        """
        Children largest first, then the total; sizes in bytes.
        """
        fake = FakeClient({"du": self.du})
        status, out, err = run(["du", "1", "out"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.decode().splitlines(), [
            "3221225472  data/",
            "      5000  mid.log",
            "       100  small.txt",
            "3221225482  total (12 files, 3 dirs)",
        ])
        self.assertEqual(fake.calls, [("du", "1", "out")])

    def test_duHuman(self):
        """
        C{-h}: human sizes (not help); a bounded walk gets a note.
        """
        fake = FakeClient({"du": dict(self.du, truncated=True)})
        status, out, err = run(["du", "-h", "1"], fake)
        self.assertEqual(out.decode().splitlines(), [
            "3.0G  data/", "4.9K  mid.log", " 100  small.txt",
            "3.0G  total (12 files, 3 dirs)"])
        self.assertEqual(err, "jobmon-query: du stopped at a bound (entries or time): "
                              "the figures are lower bounds\n")
        self.assertEqual(fake.calls, [("du", "1", ".")])

    def test_df(self):
        """
        One row under a header, with or without C{-h}.
        """
        result = {"total": 100 * 1024 ** 3, "used": 40 * 1024 ** 3,
                  "free": 60 * 1024 ** 3, "percent": 40.0, "inodes_total": 6553600,
                  "inodes_free": 6000000}
        fake = FakeClient({"df": result})
        self.assertEqual(run(["df", "1", "-h"], fake)[1].decode().splitlines(), [
            "SIZE  USED  AVAIL  USE%  INODES  IFREE  PATH",
            "100G   40G    60G   40%    6.2M   5.7M  .",
        ])
        lines = run(["df", "1", "sub"], fake)[1].decode().splitlines()
        self.assertEqual(lines[1].split(), ["107374182400", "42949672960", "64424509440",
                                            "40%", "6553600", "6000000", "sub"])

    def test_help(self):
        """
        C{du --help} still shows the help.
        """
        status, out, err = run(["du", "--help"])
        self.assertEqual(status, 0)
        self.assertIn(b"-h, --human-readable", out)

    def test_json(self):
        """
        C{--json} for both.
        """
        for method in ("du", "df"):
            fake = FakeClient({method: self.du})
            self.assertEqual(json.loads(run([method, "1", "--json"], fake)[1]), self.du)


class JobInfoTests(SynchronousTestCase):
    """
    C{env}, C{commands}, C{run}, C{signal}.
    """

    def test_env(self):
        """
        Sorted C{NAME=value} lines; redacted names show C{<redacted>};
        control characters are escaped.
        """
        fake = FakeClient({"env": {"variables": {
            "PATH": "/usr/bin", "HOME": "/home/alice", "API_TOKEN": "<redacted>",
            "ODD": "a\nb", "MY_KEY": "leaked?"}, "redacted": ["API_TOKEN", "MY_KEY"]}})
        self.assertEqual(run(["env", "1"], fake), (0, (
            "API_TOKEN=<redacted>\nHOME=/home/alice\nMY_KEY=<redacted>\nODD=a\\nb\n"
            "PATH=/usr/bin\n").encode(), ""))

    def test_commands(self):
        """
        A table of the commands offered; a program missing on the worker
        says so (C{?} from a daemon that does not say).
        """
        fake = FakeClient({"commands": {"commands": [
            {"name": "nvidia-smi", "description": "GPU status", "usage": "nvidia-smi [-q]",
             "timeout": 10, "max_output": 65536, "available": False},
            {"name": "grep", "description": "search a file", "usage": "grep PATTERN FILE",
             "timeout": 300, "max_output": 1048576, "available": True},
            {"name": "old", "timeout": 1}]}})
        self.assertEqual(run(["commands", "1"], fake)[1].decode().splitlines(), [
            "NAME        PROGRAM  TIMEOUT  USAGE              DESCRIPTION",
            "nvidia-smi  missing      10s  nvidia-smi [-q]    GPU status",
            "grep        ok            5m  grep PATTERN FILE  search a file",
            "old         ?             1s",
        ])
        fake = FakeClient({"commands": {"commands": []}})
        self.assertEqual(run(["commands", "1"], fake)[1], b"No commands.\n")
        fake = FakeClient({"commands": {"commands": [], "signals": ["TERM", "USR1"]}})
        self.assertEqual(run(["commands", "1"], fake)[1],
                         b"No commands.\nSignals allowed: TERM USR1\n")
        fake = FakeClient({"commands": {"commands": [{"name": "x"}], "signals": []}})
        self.assertEqual(run(["commands", "1"], fake)[1].decode().splitlines()[-1],
                         "Signals allowed: none")

    def runResult(self, code, out=b"", err=b"", **extra):
        """
        A C{run} result.
        """
        result = {"name": "grep", "argv": ["/bin/grep"], "exit_code": code,
                  "stdout": out, "stderr": err, "truncated": False, "duration": 0.1}
        result.update(extra)
        return result

    def test_run(self):
        """
        The command's stdout and stderr bytes go to ours; arguments that
        start with a dash are passed on; exit status 0.
        """
        fake = FakeClient({"run": self.runResult(0, b"\xff match\n", b"warning\n")})
        status, out, err = run(["run", "1", "grep", "-i", "--count", "x"], fake)
        self.assertEqual((status, out, err), (0, b"\xff match\n", "warning\n"))
        self.assertEqual(fake.calls, [("run", "1", "grep", ["-i", "--count", "x"])])
        run(["run", "1", "grep", "--", "-v"], fake)
        run(["--json", "run", "1", "grep", "--json"], fake)
        self.assertEqual([c[3] for c in fake.calls[1:]], [["-v"], ["--json"]])

    def test_runFailed(self):
        """
        A command that exits with another status: status 1 and a line;
        killed by a signal, the same, saying which.
        """
        fake = FakeClient({"run": self.runResult(2, b"", b"grep: nope\n")})
        self.assertEqual(run(["run", "1", "grep", "x"], fake), (
            1, b"", "grep: nope\njobmon-query: grep exited with status 2\n"))
        fake = FakeClient({"run": self.runResult(-9, truncated=True)})
        self.assertEqual(run(["run", "1", "grep", "x"], fake), (1, b"", (
            "jobmon-query: the output of grep was cut (its output limit)\n"
            "jobmon-query: grep exited with status -9 (killed by signal 9)\n")))

    def test_runErrors(self):
        """
        An unknown command (1010) is a failure in the job: status 1.
        """
        fake = FakeClient({"run": JobMonError(1010, "no such command: rm"),
                           "commands": {"commands": [{"name": "grep"}]}})
        self.assertEqual(run(["run", "1", "rm", "-rf", "/"], fake),
                         (1, b"", "jobmon-query: no such command: rm\n"))
        status, out, err = run(["run", "1"])
        self.assertEqual(status, 2)
        self.assertIn("required: NAME", err)

    def test_runJSON(self):
        """
        C{--json}: the result, output as base64; the status follows the
        command's.
        """
        fake = FakeClient({"run": self.runResult(3, b"o", b"e")})
        status, out, err = run(["--json", "run", "1", "grep"], fake)
        doc = json.loads(out)
        self.assertEqual((status, doc["stdout_base64"], doc["stderr_base64"],
                          doc["exit_code"]), (1, "bw==", "ZQ==", 3))
        self.assertEqual(err, "jobmon-query: grep exited with status 3\n")

    def test_signal(self):
        """
        Names are normalized (C{term}, C{SIGTERM}, C{-TERM}, C{15} all send
        C{TERM}); the answer is one line.
        """
        fake = FakeClient({"signal": {"signal": "TERM", "pid": 4242}})
        for name in ("term", "SIGTERM", "15", "TERM"):
            self.assertEqual(run(["signal", "1", name], fake),
                             (0, b"sent SIGTERM to process 4242\n", ""))
        self.assertEqual({c[2] for c in fake.calls}, {"TERM"})
        self.assertEqual(json.loads(run(["--json", "signal", "1", "TERM"], fake)[1]),
                         {"signal": "TERM", "pid": 4242})
        self.assertEqual(run(["signal", "1", "999"])[0], 2)

    def test_signalRefused(self):
        """
        A signal the job does not allow (1011): status 4, as for what the
        server does not authorize; the daemon's message (which lists the
        signals allowed) as it is.
        """
        message = ("signal KILL is not allowed on this job; allowed: TERM, USR1 (the "
                   "daemon's --allow-signal)")
        fake = FakeClient({"signal": JobMonError(1011, message)})
        self.assertEqual(run(["signal", "1", "KILL"], fake),
                         (4, b"", "jobmon-query: %s\n" % (message,)))

    def test_json(self):
        """
        C{--json} for C{env} and C{commands}.
        """
        for method, result in [("env", {"variables": {"A": "1"}, "redacted": []}),
                               ("commands", {"commands": []})]:
            out = run(["--json", method, "1"], FakeClient({method: result}))[1]
            self.assertEqual(json.loads(out), result)


class HeadTailTests(SynchronousTestCase):
    """
    C{head} and C{tail} by lines or bytes.
    """

    def test_head(self):
        """
        C{-n} or C{-c}, not both; the bytes as they are.
        """
        fake = FakeClient({"head": data(b"a\nb\n")})
        self.assertEqual(run(["head", "1", "f", "-n", "2"], fake), (0, b"a\nb\n", ""))
        run(["head", "1", "f"], fake)
        run(["head", "1", "f", "-c", "100"], fake)
        self.assertEqual([c[3:] for c in fake.calls], [(2, None), (None, None),
                                                        (None, 100)])
        status, out, err = run(["head", "1", "f", "-n", "1", "-c", "2"], fake)
        self.assertEqual(status, 2)
        self.assertIn("not allowed with argument", err)

    def test_headTruncated(self):
        """
        A cut C{head} says where to read on.
        """
        fake = FakeClient({"head": data(b"z" * 10, 0, 100, truncated=True)})
        self.assertEqual(run(["head", "1", "f"], fake)[2],
                         "jobmon-query: output cut at 10 bytes (result cap); use cat "
                         "--offset 10 to read on\n")

    def test_tailBytes(self):
        """
        C{tail -c N}.
        """
        fake = FakeClient({"tail": data(b"end", 7, 10)})
        self.assertEqual(run(["tail", "-c", "3", "1", "f"], fake), (0, b"end", ""))
        self.assertEqual(fake.calls, [("tail", "1", "f", None, 3)])

    def test_json(self):
        """
        C{--json}: one document.
        """
        for method in ("head", "tail"):
            fake = FakeClient({method: data(b"\x00")})
            doc = json.loads(run([method, "1", "f", "--json"], fake)[1])
            self.assertEqual(doc["data_base64"], "AA==")


class ParserTests(SynchronousTestCase):
    """
    The parser is filled in only for the command run, and completion is
    optional.
    """

    def test_wantedCommand(self):
        """
        The command is the first word that is not an option or a global
        option's value.
        """
        for argv, name in [
            (["ls", "1"], "ls"),
            (["--server", "ls", "--timeout", "5", "--json", "tail", "1"], "tail"),
            (["--timeout=5", "cat"], "cat"),
            (["--help"], None),
            (["--", "ls"], None),
        ]:
            self.assertEqual(parser.wantedCommand(argv), name, argv)

    def test_guessedWrong(self):
        """
        An abbreviated global option whose value hides the command still
        works: every command's parser is then filled in.
        """
        fake = FakeClient({"stat": entry("f", path="f")})
        status, out, err = run(["--serv", "https://other", "stat", "1", "f"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.made[0][0], "https://other")

    def test_onlyWantedParser(self):
        """
        When the arguments surely name the command (every word before it is
        a global option spelt in full, or its value), only that command's
        parser is made; otherwise (an abbreviation, C{--help}, no command)
        every command's is.
        """
        def made(argv):
            parser = cli.buildParser(argv=argv)
            return list(parser._subparsers._group_actions[0].choices)

        everything = list(cli.COMMANDS)
        for argv, name in [(["ls", "1"], "ls"),
                           (["--json", "--server", "https://s", "tail", "1", "f"], "tail"),
                           (["--timeout=5", "cat", "1", "f", "--help"], "cat")]:
            self.assertEqual(made(argv), [name], argv)
        for argv in [["--serv", "https://s", "ls", "1"], ["-h", "ls"], ["--he", "ls"],
                     ["--version", "ls"], ["--json"], ["bogus"], ["--", "ls"], None]:
            self.assertEqual(made(argv), everything, argv)

    def test_table(self):
        """
        Each entry of L{cli.COMMANDS} names the module and class of the
        command of that name, which has a help line and examples.
        """
        for name in cli.COMMANDS:
            command = cli.command(name)
            self.assertEqual(command.name, name)
            self.assertIs(cli.command(name), command)
            self.assertTrue(command.help, name)
            self.assertTrue(command.examples, name)

    def test_onlyItsModule(self):
        """
        A run imports only the module of the command it runs.
        """
        code = ("import sys\nfrom jobmon import cli\n"
                "class C:\n"
                "    def __init__(self, *a, **k): pass\n"
                "    def ps(self, *a, **k): return {'processes': []}\n"
                "    def close(self): pass\n"
                "cli.main(['--server', 'https://s', 'ps', '1'], clientFactory=C)\n"
                "print(sorted(m for m in ('jobmon.cli.jobs', 'jobmon.cli.files', "
                "'jobmon.cli.processes', 'jobmon.cli.commands') if m in sys.modules))\n")
        here = SOURCE_ROOT
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             env=dict(os.environ, PYTHONPATH=here), check=True,
                             text=True).stdout
        self.assertEqual(out.splitlines()[-1], "['jobmon.cli.processes']", out)

    def test_epilog(self):
        """
        The main help shows every command, examples, completion and the
        exit status table.
        """
        out = run(["--help"])[1].decode()
        for name in cli.COMMANDS:
            self.assertIn("\n    %s " % (name,), out)
        self.assertIn('eval "$(jobmon-query completion bash)"', out)
        self.assertIn('jobmon-query completion bash', cli.__doc__)
        self.assertIn("exited with a status other than 0", out)

    def test_notImported(self):
        """
        A normal run imports neither C{argcomplete} nor C{json}.
        """
        code = ("import sys\nfrom jobmon import cli\n"
                "class C:\n"
                "    def __init__(self, *a, **k): pass\n"
                "    def tail(self, *a, **k): return {'data': b'x\\n'}\n"
                "    def close(self): pass\n"
                "cli.main(['--server', 'https://s', 'tail', '1', 'f'], clientFactory=C)\n"
                "print(sorted(m for m in ('json', 'argcomplete') "
                "if m in sys.modules))\n")
        here = SOURCE_ROOT
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             env=dict(os.environ, PYTHONPATH=here), check=True,
                             text=True).stdout
        self.assertEqual(out, "x\n[]\n")


class AuditFormatTests(SynchronousTestCase):
    """
    C{jobmon-query audit}'s lines.
    """

    def test_lines(self):
        """
        One line per record: time, event, who (short), what, outcome, and
        for queries the bytes and duration.
        """
        from jobmon.cli.jobs import formatAudit

        lines = formatAudit([
            {"time": "2026-11-26T06:40:55.250Z", "event": "query",
             "dn": "/DC=org/CN=Alice Example", "op": "cat", "args": {"path": "log"},
             "outcome": "ok", "bytes": 12, "duration": 0.5},
            {"time": "2026-11-26T06:40:56.000Z", "event": "refused",
             "dn": "/DC=org/CN=Bob", "method": "query", "code": 404},
        ])
        self.assertEqual(lines, [
            "2026-11-26T06:40:55.250Z query    Alice Example cat path=log -> ok 12B 0.500s",
            "2026-11-26T06:40:56.000Z refused  Bob query -> not-found",
        ])
        self.assertEqual(formatAudit([]), ["No records."])

    def test_oldCodesShownAsWords(self):
        """
        Records written before outcomes were words hold the fault code (a
        number): it is shown as its word, like the new records.
        """
        from jobmon.cli.jobs import formatAudit

        lines = formatAudit([
            {"time": "T", "event": "query", "dn": "/CN=A", "op": "ls", "outcome": 1099,
             "bytes": 0, "duration": 1},
            {"time": "T", "event": "query", "dn": "/CN=A", "op": "tail", "outcome": 500,
             "bytes": 0, "duration": 1},
            {"time": "T", "event": "query", "dn": "/CN=A", "op": "tail",
             "outcome": "cancelled", "code": 500, "bytes": 0, "duration": 1},
        ])
        self.assertEqual([line.split(" -> ")[1].split()[0] for line in lines],
                         ["daemon-error", "server-error", "cancelled"])


class HistoryFormatTests(SynchronousTestCase):
    """
    C{jobmon-query history}: its lines, and the job it asks about.
    """

    def test_outcomeWords(self):
        """
        Query outcomes show as words, also the codes an older server sends.
        """
        from jobmon.cli.jobs import formatHistory

        queries = [{"time": 0, "job_id": "j1", "op": "ls", "args": {}, "outcome": o}
                   for o in ("ok", "1099", 408, "cancelled")]
        lines = formatHistory({"jobs": [], "queries": queries})
        self.assertEqual([line.split()[-1] for line in lines[1:]],
                         ["ok", "daemon-error", "timeout", "cancelled"])

    def test_prefixPassedOn(self):
        """
        C{history JOB} hands the id or prefix as given to the server, which
        resolves it among the caller's present and past jobs.
        """
        fake = FakeClient({"history": {"jobs": [], "queries": []}})
        self.assertEqual(run(["history", "12", "-n", "5"], fake), (0, b"No history.\n", ""))
        self.assertEqual(fake.calls, [("history", "12", 5)])

"""
Tests for the command line of C{jobmon-query} (L{jobmon.cli.parser}):
options anywhere among the positional arguments, C{--help} and C{-h},
choices, C{--version}.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon import cli, errors
from jobmon.cli import files, parser
from jobmon.errors import JobMonError
from tests.cli.test_cli import FakeClient, Seq, data, entry, followed, run

LISTING = {"path": "sub", "entries": [entry("big", size=3 * 1024 * 1024)],
           "truncated": False}
DU = {"path": "sub", "entries": [{"name": "a", "type": "file", "size": 2048}],
      "total": 2048, "files": 1, "dirs": 0, "truncated": False}
DF = {"path": "sub", "total": 1024 ** 3, "used": 512 * 1024 ** 2,
      "free": 512 * 1024 ** 2, "percent": 50.0, "inodes_total": 1000,
      "inodes_free": 500}


class IntermixedTests(SynchronousTestCase):
    """
    Options may come anywhere among a command's positional arguments; a
    C{--} ends them.
    """

    def test_lsOptionBetween(self):
        """
        C{ls 1234 -l sub}: the option between JOB and PATH.
        """
        fake = FakeClient({"ls": LISTING})
        status, out, err = run(["ls", "1234", "-l", "sub"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.calls, [("ls", "1234", "sub", None, False)])
        self.assertIn(b" 3145728 ", out)

    def test_lsHuman(self):
        """
        C{ls 1234 -lh sub}: C{-h} gives human sizes in C{ls -l}, not the help.
        """
        fake = FakeClient({"ls": LISTING})
        status, out, err = run(["ls", "1234", "-lh", "sub"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(fake.calls, [("ls", "1234", "sub", None, False)])
        self.assertIn(b" 3.0M ", out)
        self.assertNotIn(b"usage:", out)

    def test_duDfHumanBetween(self):
        """
        C{du 1234 -h sub} and C{df 1234 -h sub}.
        """
        fake = FakeClient({"du": DU, "df": DF})
        status, out, err = run(["du", "1234", "-h", "sub"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b"2.0K", out)
        status, out, err = run(["df", "1234", "-h", "sub"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b"1.0G", out)
        self.assertEqual(fake.calls, [("du", "1234", "sub"), ("df", "1234", "sub")])

    def test_everyCommand(self):
        """
        For every command with positional arguments, an option (here the
        global C{--json}, which every command has) may come before, between
        or after them.
        """
        results = {"ls": LISTING, "stat": entry("f", path="f"),
                   "cat": {"path": "f", "data": b"x", "offset": 0, "size": 1,
                           "truncated": False},
                   "head": {"path": "f", "data": b"x", "offset": 0, "size": 1,
                            "truncated": False},
                   "tail": {"path": "f", "data": b"x", "offset": 0, "size": 1,
                            "truncated": False},
                   "du": DU, "df": DF, "ps": {"processes": []}, "res": {},
                   "env": {"variables": {}}, "commands": {"commands": []},
                   "signal": {"signal": "USR1", "pid": 1},
                   "history": {"jobs": [], "queries": []}, "auditLog": []}
        lines = {"ls": ["1", "sub"], "stat": ["1", "f"], "cat": ["1", "f"],
                 "head": ["1", "f"], "tail": ["1", "f"], "du": ["1", "sub"],
                 "df": ["1", "sub"], "signal": ["1", "USR1"], "history": ["1"],
                 "audit": ["1"], "ps": ["1"], "res": ["1"], "env": ["1"],
                 "commands": ["1"]}
        for name, words in lines.items():
            for at in range(len(words) + 1):
                fake = FakeClient(results)
                fake.history = lambda job, lines: fake._answer("history", job, lines)
                fake.auditLog = lambda job, lines: fake._answer("auditLog", job, lines)
                argv = [name] + words[:at] + ["--json"] + words[at:]
                status, out, err = run(argv, fake)
                self.assertEqual((status, err), (0, ""), argv)
                self.assertTrue(out.startswith((b"{", b"[")), (argv, out))
                self.assertEqual(fake.calls[-1][1], "1", argv)

    def test_valueOptionBetween(self):
        """
        An option with a value may come between the positional arguments:
        C{tail 1234 -n 3 job.log}, C{ls 1234 --depth 2 sub}.
        """
        fake = FakeClient({"tail": {"data": b"x\n"}, "ls": LISTING})
        self.assertEqual(run(["tail", "1234", "-n", "3", "job.log"], fake)[0], 0)
        self.assertEqual(run(["ls", "1234", "--depth", "2", "sub"], fake)[0], 0)
        self.assertEqual(fake.calls, [("tail", "1234", "job.log", 3, None),
                                      ("ls", "1234", "sub", 2, False)])

    def test_endOfOptions(self):
        """
        After C{--}, a word that looks like an option is a positional
        argument: a file named C{-x}, the dash form of a signal.
        """
        fake = FakeClient({"stat": entry("-x", path="-x"), "ls": LISTING,
                           "signal": {"signal": "TERM", "pid": 7}})
        self.assertEqual(run(["stat", "1234", "--", "-x"], fake)[:1], (0,))
        self.assertEqual(run(["ls", "-l", "1234", "--", "-l"], fake)[:1], (0,))
        self.assertEqual(run(["ls", "--", "1234", "-l"], fake)[:1], (0,))
        self.assertEqual(run(["signal", "1234", "--", "-TERM"], fake)[:1], (0,))
        self.assertEqual(fake.calls, [("stat", "1234", "-x"), ("ls", "1234", "-l", None, False),
                                      ("ls", "1234", "-l", None, False),
                                      ("signal", "1234", "TERM")])

    def test_unknownOption(self):
        """
        An unknown option among the positional arguments is a usage error
        naming it.
        """
        status, out, err = run(["ls", "1234", "-z", "sub"])
        self.assertEqual((status, out), (2, b""))
        self.assertIn("unrecognized arguments: -z", err)
        status, out, err = run(["ls", "1234", "sub", "extra"])
        self.assertEqual((status, out), (2, b""))
        self.assertIn("unrecognized arguments: extra", err)

    def test_runKeepsRest(self):
        """
        C{run} still passes every word after NAME on, options included.
        """
        fake = FakeClient({"run": {"stdout": b"", "stderr": b"", "exit_code": 0}})
        self.assertEqual(run(["run", "1234", "grep", "-i", "--json", "x"], fake)[0], 0)
        self.assertEqual(fake.calls, [("run", "1234", "grep", ["-i", "--json", "x"])])


class HelpTests(SynchronousTestCase):
    """
    Every command's help is C{--help}; C{-h} is never a command's help.
    """

    def test_help(self):
        """
        C{COMMAND --help} shows the help, wherever it is; the usage line
        shows C{--help}.
        """
        for name in cli.COMMANDS:
            status, out, err = run([name, "1", "--help"])
            self.assertEqual((status, err), (0, ""), name)
            self.assertIn(b"  --help  ", out.replace(b"--help ", b"--help  "), name)

    def test_usageShowsArguments(self):
        """
        The help of a command shows its positional arguments in the usage,
        also when C{--help} comes after them.
        """
        for argv in (["ls", "--help"], ["ls", "1", "--help"]):
            out = run(argv)[1].decode()
            self.assertIn("JOB [PATH]\n", out, argv)

    def test_dashHNotHelp(self):
        """
        In a command without a C{-h} option, C{-h} is a usage error that
        points to C{--help}.
        """
        status, out, err = run(["ps", "1", "-h"])
        self.assertEqual((status, out), (2, b""))
        self.assertIn("unrecognized arguments: -h (see jobmon-query ps --help)", err)

    def test_mainHelp(self):
        """
        The main help is still C{-h} or C{--help}.
        """
        self.assertEqual(run(["-h"])[0], 0)
        self.assertIn(b"usage: jobmon-query", run(["-h"])[1])


class ChoiceTests(SynchronousTestCase):
    """
    Options with a fixed set of values refuse the others.
    """

    def test_jobsState(self):
        """
        C{jobs --state bogus} is a usage error listing the valid states.
        """
        fake = FakeClient({"listJobs": []})
        status, out, err = run(["jobs", "--state", "bogus"], fake)
        self.assertEqual((status, out), (2, b""))
        self.assertIn("invalid choice: 'bogus' (choose from 'connecting', 'ready')", err)
        self.assertEqual(err.count("\n"), 1)
        self.assertEqual(fake.made, [])

    def test_jobsMode(self):
        """
        C{jobs --mode} takes tcp, udp or poll.
        """
        status, out, err = run(["jobs", "--mode", "ftp"])
        self.assertEqual(status, 2)
        self.assertIn("(choose from 'tcp', 'udp', 'poll')", err)

    def test_caseIgnored(self):
        """
        The states are matched ignoring case, as before.
        """
        fake = FakeClient({"listJobs": [{"job_id": "1", "state": "ready"},
                                        {"job_id": "2", "state": "connecting"}]})
        status, out, err = run(["--json", "jobs", "--state", "READY"], fake)
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b'"1"', out)
        self.assertNotIn(b'"2"', out)


class ParseIntermixedTests(SynchronousTestCase):
    """
    L{parser.parseIntermixed} on its own.
    """

    def makeParser(self):
        p = parser.Parser(prog="t", add_help=False)
        p.add_argument("job")
        p.add_argument("path", nargs="?", default=".")
        p.add_argument("-l", action="store_true")
        p.add_argument("-n", type=int)
        return p

    def test_cases(self):
        """
        Options before, between and after; C{--} anywhere; C{-} is a word.
        """
        p = self.makeParser()
        for argv, expected in [
            (["1", "-l", "x"], ("1", "x", True, None, [])),
            (["-n", "3", "1", "x"], ("1", "x", False, 3, [])),
            (["1", "x", "-n", "3", "-l"], ("1", "x", True, 3, [])),
            (["--", "-1", "-l"], ("-1", "-l", False, None, [])),
            (["-l", "--", "1", "-x"], ("1", "-x", True, None, [])),
            (["1", "--", "--"], ("1", "--", False, None, [])),
            (["1", "-"], ("1", "-", False, None, [])),
            (["1", "-q", "x"], ("1", "x", False, None, ["-q"])),
        ]:
            ns, extras = parser.parseIntermixed(p, argv)
            self.assertEqual((ns.job, ns.path, ns.l, ns.n, extras), expected, argv)

    def test_restored(self):
        """
        The parser is left as it was: a plain parse after an intermixed one
        behaves as before.
        """
        p = self.makeParser()
        parser.parseIntermixed(p, ["1", "-l", "x"])
        ns, extras = argparseKnown(p, ["1", "-l", "x"])
        self.assertEqual((ns.job, ns.path, extras), ("1", ".", ["x"]))
        self.assertEqual(p.prefix_chars, "-")


def argparseKnown(p, argv):
    """
    Parse C{argv} with C{p} as plain argparse does.
    """
    import argparse

    return argparse.ArgumentParser.parse_known_args(p, argv)


class TailFromTests(SynchronousTestCase):
    """
    C{tail -n +N} and C{tail -c +N}: from line or byte N on, as coreutils'
    C{tail}; plain and with C{-f}.
    """

    def test_fromLine(self):
        """
        C{tail -n +2}: a C{tail} query with C{fromLine}.
        """
        answer = dict(data(b"two\nthree\n", 4, path="job.log"), from_line=2)
        fake = FakeClient({"tail": answer})
        status, out, err = run(["tail", "1", "job.log", "-n", "+2"], fake)
        self.assertEqual((status, out, err), (0, b"two\nthree\n", ""))
        self.assertEqual(fake.calls, [("tail", "1", "job.log", None, None, 2)])

    def test_fromLineRest(self):
        """
        A file larger than one result: the rest is read with C{cat}, to its
        end.
        """
        answer = dict(data(b"two\n", 4, size=14, truncated=True, path="job.log"),
                      from_line=2)
        fake = FakeClient({"tail": answer, "cat": data(b"three\n", 8, size=14)})
        status, out, err = run(["tail", "1", "job.log", "-n", "+2"], fake)
        self.assertEqual((status, out, err), (0, b"two\nthree\n", ""))
        self.assertEqual(fake.calls, [("tail", "1", "job.log", None, None, 2),
                                      ("cat", "1", "job.log", 8, None)])

    def test_fromLineFollow(self):
        """
        C{tail -f -n +2}: then follow from where it ended.
        """
        answer = dict(data(b"two\n", 4, size=8, path="job.log"), from_line=2)
        fake = FakeClient({"tail": answer,
                           "follow": Seq(followed(b"more\n", 8), KeyboardInterrupt())})
        status, out, err = run(["tail", "-f", "1", "job.log", "-n", "+2"], fake)
        self.assertEqual((status, out, err), (130, b"two\nmore\n", ""))
        self.assertEqual(fake.calls, [
            ("tail", "1", "job.log", None, None, 2),
            ("follow", "1", "job.log", 8, None, files.FOLLOW_WAIT),
            ("follow", "1", "job.log", 13, "8:1", files.FOLLOW_WAIT),
        ])

    def test_fromLineFollowMissing(self):
        """
        C{tail -F -n +1} of a file that does not exist yet waits for it.
        """
        fake = FakeClient({"tail": JobMonError(errors.NO_SUCH_FILE, "no such file"),
                           "follow": Seq(followed(b"new\n", 0), KeyboardInterrupt())})
        status, out, err = run(["tail", "-F", "1", "job.log", "-n", "+1"], fake)
        self.assertEqual((status, out), (130, b"new\n"))
        self.assertEqual(fake.calls[1], ("follow", "1", "job.log", 0, None, files.FOLLOW_WAIT))

    def test_fromByte(self):
        """
        C{tail -c +5}: the bytes from the fifth on, as C{cat --offset 4}.
        """
        fake = FakeClient({"cat": data(b"two\n", 4, size=8)})
        status, out, err = run(["tail", "1", "job.log", "-c", "+5"], fake)
        self.assertEqual((status, out, err), (0, b"two\n", ""))
        self.assertEqual(fake.calls, [("cat", "1", "job.log", 4, None)])

    def test_fromByteFollow(self):
        """
        C{tail -f -c +5}: then follow.
        """
        fake = FakeClient({"cat": data(b"two\n", 4, size=8),
                           "follow": Seq(followed(b"x", 8), KeyboardInterrupt())})
        status, out, err = run(["tail", "-f", "1", "job.log", "-c", "+5"], fake)
        self.assertEqual((status, out), (130, b"two\nx"))
        self.assertEqual(fake.calls[1], ("follow", "1", "job.log", 8, None, files.FOLLOW_WAIT))

    def test_lastStill(self):
        """
        C{-n N} and C{-n -N} still mean the last N lines.
        """
        fake = FakeClient({"tail": data(b"x\n")})
        run(["tail", "1", "f", "-n", "3"], fake)
        run(["tail", "1", "f", "-n", "-3"], fake)
        self.assertEqual(fake.calls, [("tail", "1", "f", 3, None)] * 2)

    def test_badCount(self):
        """
        C{+x} and C{+-1} are usage errors.
        """
        for argv in (["tail", "1", "f", "-n", "+x"], ["tail", "1", "f", "-c", "+-1"]):
            status, out, err = run(argv)
            self.assertEqual((status, out), (2, b""), argv)
            self.assertIn("not a whole number", err)

    def test_oldDaemon(self):
        """
        An older daemon's answer (the last lines, no C{from_line}) is not
        written: the real client raises L{errors.UNSUPPORTED_OP}, status 1
        and one line saying why.
        """
        fake = FakeClient({"tail": JobMonError(errors.UNSUPPORTED_OP,
                                               "this job's daemon is too old")})
        status, out, err = run(["tail", "1", "f", "-n", "+2"], fake)
        self.assertEqual((status, out), (1, b""))
        self.assertEqual(err, "jobmon-query: this job's daemon is too old\n")

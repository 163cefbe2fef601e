"""
Tests for L{jobmon.cli.completion}: the scripts C{jobmon-query completion
bash|zsh} prints, and what C{completion complete} offers.
"""

import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from jobmon import cli, client
from jobmon.cli import completion
from jobmon.errors import JobMonError
from tests.cli.test_cli import SERVER, SOURCE_ROOT, FakeClient, run

JOBS = [{"job_id": "1234.0"}, {"job_id": "1235.0"}, {"job_id": "99"}]


def complete(line, word=None, fake=None, environ=None):
    """
    Run C{jobmon-query completion complete} for C{line} (the cursor at its
    end) as the script does; return C{(status, candidates, stderr)}.
    """
    if word is None:
        word = "" if not line or line[-1] == " " else line.split()[-1]
    status, out, err = run(["completion", "complete", "--", str(len(line)), line, word],
                           fake or FakeClient({"listJobs": JOBS}), environ=environ)
    return status, out.decode().splitlines(), err


class ScriptTests(SynchronousTestCase):
    """
    C{completion bash} and C{completion zsh}.
    """

    def test_bash(self):
        """
        The bash script, without a server or a client.
        """
        fake = FakeClient()
        status, out, err = run(["completion", "bash"], fake, environ={})
        self.assertEqual((status, out.decode(), err), (0, completion.BASH_SCRIPT, ""))
        self.assertIn("complete -F _jobmon_query jobmon-query", out.decode())
        self.assertEqual(fake.made, [])

    def test_zsh(self):
        """
        The zsh script: the bash one through bashcompinit.
        """
        status, out, err = run(["completion", "zsh"], environ={})
        self.assertEqual((status, err), (0, ""))
        self.assertIn(b"bashcompinit", out)
        self.assertIn(b"complete -F _jobmon_query jobmon-query", out)

    def test_badShell(self):
        """
        Another shell is a usage error.
        """
        status, out, err = run(["completion", "fish"], environ={})
        self.assertEqual((status, out), (2, b""))
        self.assertIn("invalid choice: 'fish'", err)


class CompleteTests(SynchronousTestCase):
    """
    C{completion complete}: candidates from the parser, job ids from the
    server.
    """

    def test_commands(self):
        """
        The first word is a command.
        """
        self.assertEqual(complete("jobmon-query "), (0, list(cli.COMMANDS), ""))
        self.assertEqual(complete("jobmon-query h")[1], ["head", "history"])
        self.assertEqual(complete("jobmon-query --json --server https://s t")[1],
                         ["tail", "top"])

    def test_options(self):
        """
        Options: the main parser's before the command, the command's after.
        """
        self.assertEqual(complete("jobmon-query --ser")[1], ["--server"])
        self.assertEqual(complete("jobmon-query ls 1 --d")[1], ["--depth"])
        self.assertEqual(complete("jobmon-query du 1 -")[1][:3], ["--auth", "--ca-dir",
                                                                  "--help"])
        self.assertIn("-h", complete("jobmon-query du 1 -")[1])
        self.assertEqual(complete("jobmon-query tail 1 f --fo")[1], ["--follow"])

    def test_values(self):
        """
        The values of an option with choices; files and directories for
        options that take them.
        """
        self.assertEqual(complete("jobmon-query jobs --state ")[1], ["connecting", "ready"])
        self.assertEqual(complete("jobmon-query --auth t")[1], ["token"])
        self.assertEqual(complete("jobmon-query --proxy ")[1], [":files"])
        self.assertEqual(complete("jobmon-query ls 1 --ca-dir /e")[1], [":dirs"])
        self.assertEqual(complete("jobmon-query ls 1 --depth ")[1], [])
        self.assertEqual(complete("jobmon-query completion ")[1], ["bash", "zsh"])

    def test_jobIds(self):
        """
        Where a command takes a JOB, the ids of the caller's jobs, asked of
        the server with the global options given on the line and a short
        timeout.
        """
        fake = FakeClient({"listJobs": JOBS})
        line = "jobmon-query --server https://other --timeout 60 ls --proxy /p 12"
        status, ids, err = complete(line, fake=fake)
        self.assertEqual((status, ids, err), (0, ["1234.0", "1235.0"], ""))
        self.assertEqual(fake.calls, [("listJobs",)])
        self.assertEqual(fake.made, [("https://other", {
            "proxy": "/p", "key": None, "caDir": "/etc/grid-security/certificates",
            "timeout": completion.ID_TIMEOUT})])
        self.assertTrue(fake.closed)

    def test_jobIdsEveryCommand(self):
        """
        Every command whose first argument is a JOB completes ids there,
        and not in the next argument.
        """
        for name in cli.COMMANDS:
            sub = cli.buildParser()._subparsers._group_actions[0].choices[name]
            positionals = sub._get_positional_actions()
            expected = ["1234.0", "1235.0", "99"] if (
                positionals and positionals[0].dest == "job") else None
            if expected is None:
                continue
            self.assertEqual(complete("jobmon-query %s " % (name,))[1], expected, name)
            self.assertEqual(complete("jobmon-query %s -- 99 " % (name,))[1], [], name)

    def test_quietFailure(self):
        """
        When the jobs cannot be listed (no server, an error), nothing is
        offered, nothing is said, and the status is 0.
        """
        self.assertEqual(complete("jobmon-query ls ", environ={}), (0, [], ""))
        for error in (JobMonError(403, "refused"),
                      client.ClientError(client.UNREACHABLE, "no"), RuntimeError("x")):
            fake = FakeClient({"listJobs": error})
            self.assertEqual(complete("jobmon-query ls ", fake=fake), (0, [], ""))
        fake = FakeClient({"factory": client.ClientError(client.NO_CREDENTIAL, "none")})
        self.assertEqual(complete("jobmon-query ls ", fake=fake), (0, [], ""))

    def test_wordBreaks(self):
        """
        bash replaces only what follows a C{:} or C{=} of the word: the
        candidates are cut to that.
        """
        fake = FakeClient({"listJobs": [{"job_id": "site:1"}, {"job_id": "site:2"}]})
        self.assertEqual(complete("jobmon-query ls site:", "", fake=fake)[1], ["1", "2"])
        self.assertEqual(complete("jobmon-query --auth=t", "t")[1], [])
        self.assertEqual(complete("jobmon-query ls site:1", "1", fake=fake)[1], ["1"])

    def test_quotes(self):
        """
        Quoted words count as one; an open quote is taken as closed.
        """
        self.assertEqual(completion.splitLine('a "b c" d'), (["a", "b c"], "d"))
        self.assertEqual(completion.splitLine('a "b c'), (["a"], "b c"))
        self.assertEqual(completion.splitLine("a b "), (["a", "b"], ""))

    def test_badCall(self):
        """
        C{complete} needs the position, the line and the word.
        """
        status, out, err = run(["completion", "complete", "x"], environ={})
        self.assertEqual((status, out), (2, b""))
        status, out, err = run(["completion", "bash", "x"], environ={})
        self.assertEqual((status, out), (2, b""))


class BashTests(SynchronousTestCase):
    """
    The bash script, run by bash against this tree's C{jobmon-query}.
    """

    def setUp(self):
        bash = shutil.which("bash")
        if bash is None:
            raise SkipTest("no bash")
        self.bash = bash
        self.bin = os.path.abspath(self.mktemp())
        os.makedirs(self.bin)
        program = os.path.join(self.bin, "jobmon-query")
        with open(program, "w") as f:
            f.write('#!/bin/sh\nexec "%s" -m jobmon.cli "$@"\n' % (sys.executable,))
        os.chmod(program, 0o755)

    def words(self, line):
        """
        What the script offers for C{line}, the cursor at its end.
        """
        script = completion.BASH_SCRIPT + (
            'COMP_LINE="$1"; COMP_POINT=${#1}; read -ra COMP_WORDS <<< "$1"\n'
            '[[ $1 == *" " ]] && COMP_WORDS+=("")\n'
            "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
            '_jobmon_query jobmon-query "${COMP_WORDS[COMP_CWORD]}" '
            '"${COMP_WORDS[COMP_CWORD-1]}"\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
        env = dict(os.environ, PATH=self.bin + os.pathsep + os.environ.get("PATH", ""),
                   PYTHONPATH=SOURCE_ROOT, JOBMON_SERVER=SERVER)
        result = subprocess.run([self.bash, "-c", script, "bash", line], env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.stderr, "")
        return [w for w in result.stdout.splitlines() if w]

    def test_commandsAndOptions(self):
        """
        Commands and options, completed through the script.
        """
        self.assertEqual(self.words("jobmon-query he"), ["head"])
        self.assertEqual(self.words("jobmon-query ls 1 --de"), ["--depth"])
        self.assertEqual(self.words("jobmon-query jobs --state r"), ["ready"])

    def test_files(self):
        """
        Local files for C{--proxy}.
        """
        open(os.path.join(self.bin, "proxy.pem"), "w").close()
        self.assertEqual(self.words("jobmon-query --proxy %s/pro" % (self.bin,)),
                         [os.path.join(self.bin, "proxy.pem")])

    def test_serverDown(self):
        """
        A job id with no server answering: nothing, quietly.
        """
        self.assertEqual(self.words("jobmon-query --server https://127.0.0.1:1 ls "), [])

"""
Tests for L{jobmon.worker.run}, the job wrapper C{jobmon-run}: job id detection
for each batch system, option handling, and end to end with a real server,
real daemons and real commands (exit status, signals, server down, bad
credentials, and no daemon left behind).
"""

import os
import secrets
import signal
import socket
import sys
import time

import psutil
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from jobmon.client import JobMonClient
from jobmon.worker import run
from tests.support import ROOT, TestPKI, childEnv, inThread, spawn, startServer


class DetectJobTests(SynchronousTestCase):
    """
    L{run.detectJob} finds the job id and batch system from the
    environment.
    """

    def detect(self, environ, files=None):
        """
        Call L{run.detectJob} with C{files} (path to text) as the file
        system.
        """
        files = files or {}

        def readFile(path):
            if path not in files:
                raise FileNotFoundError(2, "No such file or directory", path)
            return files[path]

        return run.detectJob(environ, readFile)

    def test_nothing(self):
        """
        Outside a batch job there is no id and no batch system; blank
        variables do not count.
        """
        self.assertEqual(self.detect({}), (None, None))
        self.assertEqual(self.detect({"SLURM_JOB_ID": " ", "PBS_JOBID": ""}), (None, None))

    def test_slurm(self):
        """
        A Slurm job is its C{SLURM_JOB_ID}, or the older C{SLURM_JOBID}.
        """
        self.assertEqual(self.detect({"SLURM_JOB_ID": "4242"}), ("4242", "slurm"))
        self.assertEqual(self.detect({"SLURM_JOBID": "4243"}), ("4243", "slurm"))

    def test_slurmArray(self):
        """
        An array task is named as Slurm prints it: C{ARRAYJOB_TASK}, not by
        its own job id.
        """
        environ = {
            "SLURM_JOB_ID": "4250",
            "SLURM_ARRAY_JOB_ID": "4242",
            "SLURM_ARRAY_TASK_ID": "7",
        }
        self.assertEqual(self.detect(environ), ("4242_7", "slurm"))

    def test_slurmStep(self):
        """
        Inside a job step, C{.STEP} follows the job (or array task).
        """
        self.assertEqual(
            self.detect({"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0"}), ("4242.0", "slurm")
        )
        environ = {
            "SLURM_JOB_ID": "4250",
            "SLURM_ARRAY_JOB_ID": "4242",
            "SLURM_ARRAY_TASK_ID": "7",
            "SLURM_STEPID": "2",
        }
        self.assertEqual(self.detect(environ), ("4242_7.2", "slurm"))

    def test_slurmSpecialSteps(self):
        """
        The batch, extern and other special steps add nothing: the batch
        script is the job itself.
        """
        for step in ("4294967291", "4294967292", "4294967294", "batch", "extern"):
            environ = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": step}
            self.assertEqual(self.detect(environ), ("4242", "slurm"), step)

    def test_slurmStepOfSeveralTasks(self):
        """
        Each task of a step of several tasks has its rank after the step,
        so that their daemons do not take each other's registration.
        """
        environ = {
            "SLURM_JOB_ID": "4242",
            "SLURM_STEP_ID": "1",
            "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_PROCID": "3",
        }
        self.assertEqual(self.detect(environ), ("4242.1.3", "slurm"))
        environ["SLURM_STEP_NUM_TASKS"] = "1"
        self.assertEqual(self.detect(environ), ("4242.1", "slurm"))

    def test_htcondor(self):
        """
        An HTCondor job is C{ClusterId.ProcId} from the job ad that
        C{_CONDOR_JOB_AD} names.
        """
        ad = (
            'GlobalJobId = "submit.example.org#1234.5#1700000000"\n'
            "ClusterId = 1234\n"
            "ProcId = 5\n"
            'Owner = "alice"\n'
        )
        environ = {"_CONDOR_JOB_AD": "/scratch/dir_1/.job.ad"}
        self.assertEqual(
            self.detect(environ, {"/scratch/dir_1/.job.ad": ad}), ("1234.5", "htcondor")
        )

    def test_htcondorNamesAnyCase(self):
        """
        ClassAd attribute names are case-insensitive; spacing varies.
        """
        environ = {"_CONDOR_JOB_AD": "ad"}
        self.assertEqual(
            self.detect(environ, {"ad": "clusterid=77\nPROCID   =   0\n"}), ("77.0", "htcondor")
        )

    def test_htcondorBeforeOthers(self):
        """
        An HTCondor job inside a pilot that runs in a Slurm job is the
        HTCondor job.
        """
        environ = {"_CONDOR_JOB_AD": "ad", "SLURM_JOB_ID": "99"}
        self.assertEqual(
            self.detect(environ, {"ad": "ClusterId = 3\nProcId = 1\n"}), ("3.1", "htcondor")
        )

    def test_htcondorUnreadable(self):
        """
        A job ad that cannot be read is an error that names it.
        """
        e = self.assertRaises(
            run.JobIdError, self.detect, {"_CONDOR_JOB_AD": "/nonexistent/.job.ad"}
        )
        self.assertIn("/nonexistent/.job.ad", str(e))
        self.assertIn("No such file", str(e))
        self.assertEqual(e.batchSystem, "htcondor")

    def test_htcondorIncomplete(self):
        """
        A job ad without ClusterId and ProcId is an error.
        """
        e = self.assertRaises(
            run.JobIdError, self.detect, {"_CONDOR_JOB_AD": "ad"}, {"ad": "ClusterId = 3\n"}
        )
        self.assertIn("ClusterId and ProcId", str(e))

    def test_pbs(self):
        """
        A PBS job is its C{PBS_JOBID} as it is, array index included.
        """
        self.assertEqual(
            self.detect({"PBS_JOBID": "1234.pbs.example.org"}), ("1234.pbs.example.org", "pbs")
        )
        self.assertEqual(self.detect({"PBS_JOBID": "1234[5].pbs"}), ("1234[5].pbs", "pbs"))

    def test_lsf(self):
        """
        An LSF job is its C{LSB_JOBID}, with C{[INDEX]} for an array
        element (C{LSB_JOBINDEX} is 0 outside arrays).
        """
        self.assertEqual(self.detect({"LSB_JOBID": "99"}), ("99", "lsf"))
        self.assertEqual(self.detect({"LSB_JOBID": "99", "LSB_JOBINDEX": "0"}), ("99", "lsf"))
        self.assertEqual(self.detect({"LSB_JOBID": "99", "LSB_JOBINDEX": "12"}), ("99[12]", "lsf"))

    def test_parseJobAd(self):
        """
        L{run.parseJobAd} lower-cases names and unquotes strings.
        """
        ad = run.parseJobAd('A = 1\nGlobalJobId = "s#1.0#2"\nQuote = "a \\"b\\""\nnot a line\n')
        self.assertEqual(ad, {"a": "1", "globaljobid": "s#1.0#2", "quote": 'a "b"'})


class ArgumentTests(SynchronousTestCase):
    """
    L{run.parseArguments} finds the options and the command.
    """

    def test_separator(self):
        """
        Everything after C{--} is the command, options included.
        """
        options, command, problem = run.parseArguments(
            ["--server", "https://s/", "--commands", "a.toml", "--commands", "b.toml",
             "--redact", "TOKEN", "--daemon-arg=--op-timeout=60", "--", "prog", "--server", "x"]
        )
        self.assertIsNone(problem)
        self.assertEqual(command, ["prog", "--server", "x"])
        self.assertEqual(options.server, "https://s/")
        self.assertEqual(options.commands, ["a.toml", "b.toml"])
        self.assertEqual(options.redact, ["TOKEN"])
        self.assertEqual(options.daemon_arg, ["--op-timeout=60"])
        self.assertEqual(options.stop_grace, run.STOP_GRACE)
        self.assertFalse(options.no_monitor)

    def test_noSeparator(self):
        """
        Without C{--}, the command starts at the first argument that is not
        an option.
        """
        options, command, problem = run.parseArguments(["--job-id", "1", "sleep", "10", "-x"])
        self.assertIsNone(problem)
        self.assertEqual(options.job_id, "1")
        self.assertEqual(command, ["sleep", "10", "-x"])

    def test_badOptionStillRuns(self):
        """
        Wrong options before C{--} are a problem, but the command is still
        found, so that the job can run.
        """
        for before in (["--bogus"], ["--stop-grace", "-1"], ["--wake", "smoke"], ["stray"],
                       ["--share", "cms"]):
            options, command, problem = run.parseArguments(before + ["--", "true"])
            self.assertIsNone(options, before)
            self.assertEqual(command, ["true"])
            self.assertTrue(problem)

    def test_noCommand(self):
        """
        Without a command there is nothing to run.
        """
        for argv in ([], ["--server", "x"], ["--server", "x", "--"], ["--bogus"]):
            _, command, _ = run.parseArguments(argv)
            self.assertIsNone(command, argv)

    def test_main(self):
        """
        L{run.main} without a command is a usage error, one line after the
        usage.
        """
        import io

        err = io.StringIO()
        self.assertEqual(run.main(["--bogus"], {}, err), run.EXIT_USAGE)
        lines = err.getvalue().splitlines()
        self.assertTrue(lines[0].startswith("usage: jobmon-run"))
        self.assertEqual(lines[-1], "jobmon-run: unrecognized arguments: --bogus")


class PlanTests(SynchronousTestCase):
    """
    L{run.planDaemon} builds the daemon's command line.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.base, "certificates"))
        os.makedirs(os.path.join(self.base, "work"))
        self.proxy = os.path.join(self.base, "x509up")
        with open(self.proxy, "w") as f:
            f.write("not checked here")
        self.environ = {
            "JOBMON_SERVER": "https://env.example.org:8443/RPC2",
            "X509_USER_PROXY": self.proxy,
            "X509_CERT_DIR": os.path.join(self.base, "certificates"),
            "SLURM_JOB_ID": "4242",
        }

    def plan(self, *argv, environ=None):
        options, command, problem = run.parseArguments(list(argv) + ["--", "job"])
        self.assertIsNone(problem)
        return run.planDaemon(options, self.environ if environ is None else environ,
                              os.path.join(self.base, "work"), uid=123456789)

    def test_defaults(self):
        """
        The server, credential and CA directory come from the environment,
        the job id and batch system from the batch system, the working
        directory is the current one, and the log a hidden file in it.
        """
        plan = self.plan()
        work = os.path.join(self.base, "work")
        self.assertEqual(plan.args, [
            "--server", "https://env.example.org:8443/RPC2",
            "--job-id", "4242",
            "--workdir", work,
            "--auth", "x509",
            "--proxy", self.proxy,
            "--ca-dir", os.path.join(self.base, "certificates"),
        ])
        self.assertEqual((plan.jobId, plan.batchSystem), ("4242", "slurm"))
        self.assertEqual(plan.log, os.path.join(work, ".jobmon-daemon-4242.log"))

    def test_severalServers(self):
        """
        C{--server} given again, or a comma-separated C{$JOBMON_SERVER},
        names several servers: each goes to the daemon as a C{--server},
        in order.
        """
        plan = self.plan("--server", "https://a.example/", "--server",
                         "https://b.example/, https://c.example/")
        self.assertEqual(plan.args[:6], [
            "--server", "https://a.example/", "--server", "https://b.example/",
            "--server", "https://c.example/",
        ])
        plan = self.plan(environ=dict(self.environ,
                                      JOBMON_SERVER=" https://a.example/ ,https://b.example/"))
        self.assertEqual(plan.args[:4], [
            "--server", "https://a.example/", "--server", "https://b.example/",
        ])
        self.assertEqual(plan.args[4], "--job-id")

    def test_tokenFromEnvironment(self):
        """
        A token named by C{$BEARER_TOKEN_FILE} wins over the proxy: the
        daemon authenticates with it (and finds it the same way, in the
        environment it inherits).
        """
        token = os.path.join(self.base, "bt")
        with open(token, "w") as f:
            f.write("a.b.c\n")
        plan = self.plan(environ=dict(self.environ, BEARER_TOKEN_FILE=token))
        self.assertEqual(plan.args[6:], [
            "--auth", "token", "--ca-dir", os.path.join(self.base, "certificates"),
        ])
        self.assertNotIn("--proxy", plan.args)

    def test_tokenFileOption(self):
        """
        C{--token-file} is made absolute and passed on; C{--auth x509} keeps
        the proxy even when a token is in the environment.
        """
        with open(os.path.join(self.base, "work", "tok"), "w") as f:
            f.write("a.b.c")
        plan = self.plan("--token-file", "tok")
        self.assertEqual(plan.args[6:10], [
            "--auth", "token", "--token-file", os.path.join(self.base, "work", "tok"),
        ])
        plan = self.plan("--auth", "x509", environ=dict(self.environ, BEARER_TOKEN="a.b.c"))
        self.assertEqual(plan.args[6:10], ["--auth", "x509", "--proxy", self.proxy])

    def test_tokenMissing(self):
        """
        A token file that cannot be read: no monitoring, and the line says
        which file.
        """
        e = self.assertRaises(run.NoMonitoring, self.plan, "--token-file", "/nonexistent/tok")
        self.assertIn("/nonexistent/tok", str(e))
        e = self.assertRaises(run.NoMonitoring, self.plan, "--auth", "token",
                              environ={k: v for k, v in self.environ.items()
                                       if k != "X509_USER_PROXY"} | {"XDG_RUNTIME_DIR": self.base})
        self.assertIn("no bearer token", str(e))

    def test_options(self):
        """
        Options override the environment; the pass-through options reach
        the daemon, relative paths made absolute; the command's pid comes
        last.
        """
        other = os.path.join(self.base, "other-ca")
        os.makedirs(other)
        plan = self.plan(
            "--server", "https://opt.example.org/", "--job-id", "mine", "--workdir", "..",
            "--proxy", "../x509up", "--ca-dir", other, "--wake", "poll",
            "--commands", "site.toml", "--commands", "/etc/more.toml",
            "--allow-signal", "USR1,TERM", "--redact", "SECRET", "--redact", "PASS",
            "--share", "/cms", "--share", "/cms/Role=lcgadmin",
            "--daemon-arg=--op-timeout=60", "--daemon-log", "d.log",
        )
        work = os.path.join(self.base, "work")
        self.assertEqual(plan.args, [
            "--server", "https://opt.example.org/",
            "--job-id", "mine",
            "--workdir", self.base,
            "--auth", "x509",
            "--proxy", self.proxy,
            "--ca-dir", other,
            "--wake", "poll",
            "--commands", os.path.join(work, "site.toml"),
            "--commands", "/etc/more.toml",
            "--allow-signal", "USR1,TERM",
            "--redact", "SECRET",
            "--redact", "PASS",
            "--share", "/cms",
            "--share", "/cms/Role=lcgadmin",
            "--op-timeout=60",
        ])
        # An explicit id: the batch system is still detected.
        self.assertEqual((plan.jobId, plan.batchSystem), ("mine", "slurm"))
        self.assertEqual(plan.log, os.path.join(work, "d.log"))
        self.assertEqual(
            run.daemonCommand(["/venv/bin/twistd"], plan, 4321),
            ["/venv/bin/twistd", "-n", "--pidfile=", "jobmon-daemon"] + plan.args
            + ["--job-pid", "4321"],
        )

    def test_logToStderr(self):
        """
        C{--daemon-log -} sends the daemon's output to standard error.
        """
        self.assertIsNone(self.plan("--daemon-log", "-").log)

    def test_defaultLogName(self):
        """
        The default log is named after the job, with only safe characters.
        """
        self.assertEqual(run.defaultDaemonLog("/w", "1234[5].pbs/x"),
                         "/w/.jobmon-daemon-1234_5_.pbs_x.log")

    def test_noServer(self):
        """
        Without a server there is no monitoring.
        """
        del self.environ["JOBMON_SERVER"]
        e = self.assertRaises(run.NoMonitoring, self.plan)
        self.assertEqual(str(e), "no JobMon server: give --server or set JOBMON_SERVER")

    def test_noJobId(self):
        """
        Outside a batch job, a job id must be given.
        """
        del self.environ["SLURM_JOB_ID"]
        e = self.assertRaises(run.NoMonitoring, self.plan)
        self.assertIn("no job id", str(e))
        self.assertIn("--job-id", str(e))
        plan = self.plan("--job-id", "mine")
        self.assertEqual((plan.jobId, plan.batchSystem), ("mine", None))

    def test_badJobAd(self):
        """
        An unreadable HTCondor job ad is the reason given, unless a job id
        is given.
        """
        self.environ["_CONDOR_JOB_AD"] = os.path.join(self.base, "missing.ad")
        e = self.assertRaises(run.NoMonitoring, self.plan)
        self.assertIn("missing.ad", str(e))
        plan = self.plan("--job-id", "mine")
        self.assertEqual((plan.jobId, plan.batchSystem), ("mine", "htcondor"))

    def test_missingCredential(self):
        """
        A credential that cannot be read stops monitoring before the
        daemon starts; the default is C{/tmp/x509up_u<uid>}.
        """
        e = self.assertRaises(run.NoMonitoring, self.plan, "--proxy", "/nonexistent/x509up")
        self.assertEqual(str(e), "cannot read the credential /nonexistent/x509up: "
                                 "No such file or directory")
        del self.environ["X509_USER_PROXY"]
        e = self.assertRaises(run.NoMonitoring, self.plan)
        self.assertIn("/tmp/x509up_u123456789", str(e))

    def test_missingCADir(self):
        """
        A CA directory that does not exist stops monitoring.
        """
        e = self.assertRaises(run.NoMonitoring, self.plan, "--ca-dir", "/nonexistent/ca")
        self.assertIn("/nonexistent/ca", str(e))


class HelperTests(SynchronousTestCase):
    """
    Exit statuses, the daemon's exit reason, and finding C{twistd}.
    """

    def test_exitStatus(self):
        """
        The command's exit status is passed on; a signal N gives 128+N.
        """
        self.assertEqual(run.exitStatus(0), 0)
        self.assertEqual(run.exitStatus(3 << 8), 3)
        self.assertEqual(run.exitStatus(255 << 8), 255)
        self.assertEqual(run.exitStatus(signal.SIGKILL), 128 + signal.SIGKILL)
        self.assertEqual(run.exitStatus(signal.SIGTERM), 128 + signal.SIGTERM)

    def test_daemonReason(self):
        """
        The reason is the daemon's last line, without twistd's prefix.
        """
        text = (
            "Usage: twistd [options]\n  --help  Display this help.\n\n"
            "/venv/bin/twistd -n: cannot read /x: No such file or directory\n\n"
        )
        self.assertEqual(run.daemonReason(text), "cannot read /x: No such file or directory")
        self.assertEqual(
            run.daemonReason("jobmon-daemon: no CA certificate in /ca\n"),
            "no CA certificate in /ca",
        )
        self.assertEqual(run.daemonReason("2026-01-01 [-] something broke\n"),
                         "2026-01-01 [-] something broke")
        self.assertIsNone(run.daemonReason("\n \n"))
        self.assertEqual(run.describeDaemonExit(1), "exited with status 1")
        self.assertEqual(run.describeDaemonExit(-9), "was killed by SIGKILL")

    def test_twistdCommand(self):
        """
        C{twistd} is the script beside the interpreter, or the interpreter
        running twistd's entry point.
        """
        bin_ = os.path.abspath(self.mktemp())
        os.makedirs(bin_)
        python = os.path.join(bin_, "python")
        self.assertEqual(run.twistdCommand(python)[:2], [python, "-c"])
        script = os.path.join(bin_, "twistd")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(script, 0o755)
        self.assertEqual(run.twistdCommand(python), [script])

    def test_forwarder(self):
        """
        Signals that come before the command starts are passed on when it
        does; none after it has ended.
        """
        sent = []
        forwarder = run._Forwarder(kill=lambda pid, signum: sent.append((pid, signum)))
        forwarder.handle(signal.SIGTERM, None)
        self.assertEqual(sent, [])
        forwarder.started(77)
        self.assertEqual(sent, [(77, signal.SIGTERM)])
        forwarder.handle(signal.SIGUSR1, None)
        forwarder.ended = True
        forwarder.handle(signal.SIGHUP, None)
        self.assertEqual(sent, [(77, signal.SIGTERM), (77, signal.SIGUSR1)])


# Commands the end-to-end tests run under the wrapper.

WAIT_FOR_FILE = """
import os, sys, time
print("ready", os.getpid(), flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(int(sys.argv[2]))
"""

TRAP_SIGNALS = """
import os, signal, sys, time
def note(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
def stop(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(signal.Signals(signum).name)
    sys.exit(7)
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, note)
signal.signal(signal.SIGTERM, stop)
print("ready", os.getpid(), flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(99)
"""

KILL_SELF = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"

BATCH_VARIABLES = ("SLURM_", "PBS_", "LSB_", "_CONDOR_", "JOBMON_")


def wrapperEnv(**extra):
    """
    The wrapper's environment: no credentials and no batch system of the
    person running the tests.
    """
    env = {k: v for k, v in childEnv().items() if not k.startswith(BATCH_VARIABLES)}
    env.update(extra)
    return env


def daemonsOf(jobId):
    """
    The running daemon processes of job C{jobId}, anywhere on the host.
    """
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            "jobmon-daemon" in cmdline
            and jobId in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def sleep(seconds):
    """
    A Deferred that fires after C{seconds}.
    """
    return deferLater(reactor, seconds, lambda: None)


class WrapperEndToEndTests(TestCase):
    """
    C{python -m jobmon.worker.run} with a real server, daemons and commands.
    """

    timeout = 90

    def setUp(self):
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self):
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.workdir = os.path.join(self.tpki.base, "work")
        os.makedirs(self.workdir)
        self.server = await startServer(self, self.tpki)
        self.jobIds = []

    def tearDown(self):
        # Whatever a failed test left behind.
        for jobId in self.jobIds:
            for proc in daemonsOf(jobId):
                proc.kill()

    def newJobId(self):
        """
        A job id no other test (or test run) uses.
        """
        jobId = "run-" + secrets.token_hex(6)
        self.jobIds.append(jobId)
        return jobId

    def wrapper(self, command, *options, server=None, jobId=None, env=None, proxy=None):
        """
        Start C{jobmon-run OPTIONS --job-id JOB ... -- COMMAND} in the
        working directory.
        """
        args = ["-m", "jobmon.worker.run"]
        args += ["--server", server or self.server.url]
        args += ["--proxy", proxy or self.tpki.proxies["alice"], "--ca-dir", self.tpki.caDir]
        if jobId is not None:
            args += ["--job-id", jobId]
        args += ["--daemon-arg=--retry-initial-delay=0.2", "--daemon-arg=--retry-max-delay=1"]
        args += list(options) + ["--"] + list(command)
        return spawn(self, "jobmon-run", args, env=env or wrapperEnv(), path=self.workdir,
                     program=sys.executable)

    def python(self, script, *args):
        """
        A command running C{script} with this Python.
        """
        return [sys.executable, "-c", script] + [str(a) for a in args]

    def client(self):
        """
        Alice's client; closed in cleanup.
        """
        c = JobMonClient(self.server.url, proxy=self.tpki.proxies["alice"],
                         caDir=self.tpki.caDir, timeout=30)
        self.addCleanup(c.close)
        return c

    async def jobs(self, client):
        """
        Alice's jobs, by id.
        """
        return {job["job_id"]: job for job in await inThread(client.listJobs)}

    async def waitUntilReady(self, client, jobId, timeout=20):
        """
        Wait until job C{jobId} is listed, ready for queries.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = (await self.jobs(client)).get(jobId)
            if job is not None and job["state"] == "ready":
                return job
            if time.monotonic() > deadline:
                self.fail("job {} not ready after {} s: {}".format(jobId, timeout, job))
            await sleep(0.1)

    async def waitUntilGone(self, client, jobId, timeout=15):
        """
        Wait until job C{jobId} is no longer listed.
        """
        deadline = time.monotonic() + timeout
        while jobId in await self.jobs(client):
            if time.monotonic() > deadline:
                self.fail("job {} still listed after {} s".format(jobId, timeout))
            await sleep(0.1)

    def assertNoDaemon(self, jobId):
        """
        No daemon of job C{jobId} is running.
        """
        self.assertEqual(daemonsOf(jobId), [])

    def wrapperLines(self, proto):
        """
        The lines the wrapper itself wrote.
        """
        return [line for line in proto.output.decode().splitlines()
                if line.startswith("jobmon-run: ")]

    def daemonLog(self, jobId):
        """
        The daemon's log, from its default place ("" before it exists).
        """
        try:
            with open(run.defaultDaemonLog(self.workdir, jobId)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    async def test_exitStatus(self):
        """
        The wrapper exits with the command's status, 128+N when signal N
        killed it; it says nothing and leaves no daemon behind, even when
        the command ends before its daemon has started.
        """
        cases = [
            (self.python("import sys; sys.exit(0)"), 0),
            (self.python("import sys; sys.exit(3)"), 3),
            (self.python(KILL_SELF), 128 + signal.SIGKILL),
            (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
        ]
        started = []
        for command, expected in cases:
            jobId = self.newJobId()
            started.append((self.wrapper(command, jobId=jobId), jobId, expected))
        for proto, jobId, expected in started:
            self.assertEqual(await proto.whenEnded(), expected, proto.output)
            self.assertEqual(self.wrapperLines(proto), [])
            self.assertNoDaemon(jobId)
        c = self.client()
        for _, jobId, _ in started:
            await self.waitUntilGone(c, jobId)

    async def test_visibleWhileRunning(self):
        """
        While the command runs its job is listed, under the id the batch
        system gives (here a Slurm array task), and C{ps} shows the command
        as the job's root; when it ends the daemon unregisters before the
        wrapper exits.
        """
        array = str(secrets.randbelow(10**9) + 10**9)
        jobId = array + "_3"
        self.jobIds.append(jobId)
        go = os.path.join(self.workdir, "go")
        proto = self.wrapper(
            self.python(WAIT_FOR_FILE, go, 0),
            env=wrapperEnv(SLURM_JOB_ID="77", SLURM_ARRAY_JOB_ID=array, SLURM_ARRAY_TASK_ID="3"),
        )
        pid = int((await proto.waitFor(r"ready (\d+)")).group(1))
        c = self.client()
        job = await self.waitUntilReady(c, jobId)
        self.assertEqual(job["owner"], self.tpki.dn("alice"))
        ps = await inThread(c.query, jobId, {"op": "ps"})
        self.assertEqual(ps["root"], pid)
        self.assertEqual(ps["processes"][0]["pid"], pid)
        self.assertIn(WAIT_FOR_FILE.strip().splitlines()[0], ps["processes"][0]["cmdline"])
        self.assertFalse(any(p["daemon"] for p in ps["processes"]))
        listing = await inThread(c.query, jobId, {"op": "ls", "path": "."})
        self.assertIn(".jobmon-daemon-{}.log".format(jobId),
                      [e["name"] for e in listing["entries"]])

        [daemon] = daemonsOf(jobId)
        self.assertEqual(daemon.ppid(), proto.transport.pid)
        self.assertEqual(daemon.environ().get("JOBMON_BATCH_SYSTEM"), "slurm")
        cmdline = daemon.cmdline()
        self.assertEqual(cmdline[cmdline.index("--job-pid") + 1], str(pid))
        self.assertEqual(cmdline[cmdline.index("--workdir") + 1], self.workdir)

        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 0)
        self.assertNotIn(jobId, await self.jobs(c))
        self.assertIn("job {} unregistered".format(jobId), self.daemonLog(jobId))
        self.assertEqual(self.wrapperLines(proto), [])
        self.assertNoDaemon(jobId)
        self.assertFalse(psutil.pid_exists(daemon.pid) and daemon.is_running())

    async def test_signalsForwarded(self):
        """
        INT, HUP, USR1 and USR2 sent to the wrapper reach the command; so
        does TERM, after which the command exits 7, the wrapper exits 7,
        and the daemon has unregistered and is gone.
        """
        jobId = self.newJobId()
        stopped = os.path.join(self.workdir, "stopped")
        proto = self.wrapper(self.python(TRAP_SIGNALS, stopped), jobId=jobId)
        await proto.waitFor(r"ready \d+")
        c = self.client()
        await self.waitUntilReady(c, jobId)
        for name in ("USR1", "HUP", "INT", "USR2"):
            mark = proto.mark()
            proto.signal(name)
            await proto.waitFor(r"got SIG" + name, timeout=10, after=mark)
        self.assertTrue(proto.running)
        proto.signal("TERM")
        self.assertEqual(await proto.whenEnded(), 7)
        with open(stopped) as f:
            self.assertEqual(f.read(), "SIGTERM")
        self.assertNotIn(jobId, await self.jobs(c))
        self.assertIn("job {} unregistered".format(jobId), self.daemonLog(jobId))
        self.assertEqual(self.wrapperLines(proto), [])
        self.assertNoDaemon(jobId)

    async def test_serverDown(self):
        """
        With no server listening, or one that accepts connections and
        never answers, the command runs and its status is passed on; the
        wrapper exits soon after the command.
        """
        refused = socket.socket()
        refused.bind(("127.0.0.1", 0))
        refusedURL = "https://127.0.0.1:{}/RPC2".format(refused.getsockname()[1])
        refused.close()
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        silentURL = "https://127.0.0.1:{}/RPC2".format(silent.getsockname()[1])
        started = []
        for url, status in ((refusedURL, 5), (silentURL, 0)):
            jobId = self.newJobId()
            go = os.path.join(self.workdir, "go-" + jobId)
            proto = self.wrapper(self.python(WAIT_FOR_FILE, go, status), server=url, jobId=jobId)
            started.append((proto, jobId, go, status))
        for proto, jobId, go, status in started:
            await proto.waitFor(r"ready \d+")
            # The command runs while the daemon tries to register.
            deadline = time.monotonic() + 20
            while "reactor class" not in self.daemonLog(jobId):
                self.assertLess(time.monotonic(), deadline, "the daemon did not start")
                await sleep(0.1)
            await sleep(1)
            self.assertTrue(proto.running)
            ended = time.monotonic()
            open(go, "w").close()
            self.assertEqual(await proto.whenEnded(), status, proto.output)
            self.assertLess(time.monotonic() - ended, run.STOP_GRACE + 3)
            self.assertEqual(self.wrapperLines(proto), [])
            self.assertNoDaemon(jobId)

    async def test_missingCredential(self):
        """
        A credential that does not exist: one clear line, and the command
        runs as it would without the wrapper.
        """
        jobId = self.newJobId()
        proto = self.wrapper(self.python("print('ran'); raise SystemExit(4)"),
                             jobId=jobId, proxy="/nonexistent/x509up_alice")
        self.assertEqual(await proto.whenEnded(), 4)
        self.assertEqual(self.wrapperLines(proto), [
            "jobmon-run: cannot read the credential /nonexistent/x509up_alice: "
            "No such file or directory; the job runs unmonitored",
        ])
        self.assertIn("ran", proto.output.decode())
        self.assertNoDaemon(jobId)

    async def test_badCredential(self):
        """
        A credential the daemon refuses: it exits, the wrapper says so in
        one line with the daemon's reason, and the command runs on.
        """
        jobId = self.newJobId()
        garbage = os.path.join(self.tpki.base, "garbage")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        go = os.path.join(self.workdir, "go")
        proto = self.wrapper(self.python(WAIT_FOR_FILE, go, 0), jobId=jobId, proxy=garbage)
        await proto.waitFor(r"jobmon-run: the JobMon daemon exited with status 1: .*garbage.*"
                            r"the job runs on unmonitored \(log: .*\)")
        self.assertTrue(proto.running)
        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 0)
        self.assertEqual(len(self.wrapperLines(proto)), 1, proto.output)
        self.assertNoDaemon(jobId)

    async def test_noJobIdOrServer(self):
        """
        Outside a batch job without C{--job-id}, or without a server, the
        wrapper says why in one line and runs the command.
        """
        noJob = self.wrapper(self.python("raise SystemExit(6)"))
        args = ["-m", "jobmon.worker.run", "--job-id", self.newJobId(), "--",
                sys.executable, "-c", "raise SystemExit(0)"]
        noServer = spawn(self, "jobmon-run", args, env=wrapperEnv(), path=self.workdir,
                         program=sys.executable)
        self.assertEqual(await noJob.whenEnded(), 6)
        [line] = self.wrapperLines(noJob)
        self.assertIn("no job id", line)
        self.assertEqual(await noServer.whenEnded(), 0)
        self.assertEqual(self.wrapperLines(noServer), [
            "jobmon-run: no JobMon server: give --server or set JOBMON_SERVER; "
            "the job runs unmonitored",
        ])

    async def test_daemonDies(self):
        """
        If the daemon dies, the wrapper says so once and the command runs
        on to its end.
        """
        jobId = self.newJobId()
        go = os.path.join(self.workdir, "go")
        proto = self.wrapper(self.python(WAIT_FOR_FILE, go, 2), jobId=jobId)
        await proto.waitFor(r"ready \d+")
        c = self.client()
        await self.waitUntilReady(c, jobId)
        [daemon] = daemonsOf(jobId)
        daemon.kill()
        await proto.waitFor(r"jobmon-run: the JobMon daemon was killed by SIGKILL; "
                            r"the job runs on unmonitored")
        await self.waitUntilGone(c, jobId)
        self.assertTrue(proto.running)
        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 2)
        self.assertEqual(len(self.wrapperLines(proto)), 1, proto.output)

    async def test_stuckDaemonKilled(self):
        """
        A daemon that does not stop after SIGTERM is killed after the
        grace period: the wrapper still exits in bounded time.
        """
        jobId = self.newJobId()
        go = os.path.join(self.workdir, "go")
        proto = self.wrapper(self.python(WAIT_FOR_FILE, go, 0), "--stop-grace", "1",
                             jobId=jobId)
        await proto.waitFor(r"ready \d+")
        c = self.client()
        await self.waitUntilReady(c, jobId)
        [daemon] = daemonsOf(jobId)
        daemon.suspend()
        self.addCleanup(lambda: daemon.is_running() and daemon.kill())
        ended = time.monotonic()
        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 0)
        self.assertLess(time.monotonic() - ended, 5)
        self.assertEqual(self.wrapperLines(proto), [
            "jobmon-run: the JobMon daemon did not stop within 1 s; killed",
        ])
        self.assertNoDaemon(jobId)
        # The server notices the closed wake channel.
        await self.waitUntilGone(c, jobId)

    async def test_wrapperKilled(self):
        """
        When the wrapper itself is killed, its daemon is told to stop (by
        the kernel, on Linux) and unregisters.
        """
        if not sys.platform.startswith("linux"):
            self.skipTest("parent-death signal is Linux only")
        jobId = self.newJobId()
        go = os.path.join(self.workdir, "go")
        self.addCleanup(lambda: open(go, "w").close())
        proto = self.wrapper(self.python(WAIT_FOR_FILE, go, 0), jobId=jobId)
        pid = int((await proto.waitFor(r"ready (\d+)")).group(1))
        command = psutil.Process(pid)
        self.addCleanup(lambda: command.is_running() and command.kill())
        c = self.client()
        await self.waitUntilReady(c, jobId)
        [daemon] = daemonsOf(jobId)
        proto.signal("KILL")
        await self.waitUntilGone(c, jobId)
        deadline = time.monotonic() + 10
        while daemonsOf(jobId) and time.monotonic() < deadline:
            await sleep(0.1)
        self.assertNoDaemon(jobId)
        self.assertIn("job {} unregistered".format(jobId), self.daemonLog(jobId))
        # The command, left alone, holds the wrapper's output pipe open.
        self.assertTrue(command.is_running())
        command.kill()
        self.assertIsNone(await proto.whenEnded())
        self.assertEqual(proto.signalled, signal.SIGKILL)


    async def condorJob(self, proc, **environ):
        """
        Run C{examples/htcondor-wrapper.sh} as HTCondor would: a job ad for
        a new cluster, C{jobmon-run} on the C{PATH}, the CA directory and
        C{environ} in the environment; its command waits for a file.

        @return: the job id, the file that ends the command, and the
            wrapper's process, once the command runs.
        """
        cluster = secrets.randbelow(10**8) + 10**8
        jobId = "{}.{}".format(cluster, proc)
        self.jobIds.append(jobId)
        ad = os.path.join(self.workdir, ".job.ad")
        with open(ad, "w") as f:
            f.write('ClusterId = {}\nProcId = {}\nOwner = "alice"\n'.format(cluster, proc))
        bin_ = os.path.join(self.tpki.base, "bin")
        os.makedirs(bin_, exist_ok=True)
        shim = os.path.join(bin_, "jobmon-run")
        with open(shim, "w") as f:
            f.write('#!/bin/sh\nexec "{}" -m jobmon.worker.run "$@"\n'.format(sys.executable))
        os.chmod(shim, 0o755)
        env = wrapperEnv(_CONDOR_JOB_AD=ad, X509_CERT_DIR=self.tpki.caDir, **environ)
        env["PATH"] = bin_ + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        go = os.path.join(self.workdir, "go")
        script = os.path.join(ROOT, "examples", "htcondor-wrapper.sh")
        proto = spawn(self, "htcondor-wrapper.sh", self.python(WAIT_FOR_FILE, go, 0),
                      env=env, path=self.workdir, program=script)
        await proto.waitFor(r"ready \d+")
        return jobId, go, proto

    async def test_htcondorExample(self):
        """
        C{examples/htcondor-wrapper.sh} in the environment HTCondor gives a
        job (job ad, proxy, server, CA directory): the job registers as
        C{Cluster.Proc} with no option given.
        """
        jobId, go, proto = await self.condorJob(
            4, X509_USER_PROXY=self.tpki.proxies["alice"], JOBMON_SERVER=self.server.url)
        c = self.client()
        await self.waitUntilReady(c, jobId)
        [daemon] = daemonsOf(jobId)
        self.assertEqual(daemon.environ().get("JOBMON_BATCH_SYSTEM"), "htcondor")
        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 0)
        self.assertNotIn(jobId, await self.jobs(c))
        self.assertNoDaemon(jobId)

    async def test_htcondorTokenExample(self):
        """
        With a bearer token in HTCondor's credentials directory and no
        proxy, C{examples/htcondor-wrapper.sh} points C{BEARER_TOKEN_FILE}
        at it and the job registers as the token's bearer.
        """
        from jobmon.devtools.issuer import makeIssuer

        issuer = makeIssuer(os.path.join(self.tpki.base, "issuer"))
        server = await startServer(self, self.tpki, "--token-issuers", issuer.configPath)
        creds = os.path.join(self.tpki.base, "creds")
        os.makedirs(creds, mode=0o700)
        with open(os.path.join(creds, "scitokens.use"), "w") as f:
            f.write(issuer.mint("condor-user", scope="compute.create") + "\n")
        jobId, go, proto = await self.condorJob(0, _CONDOR_CREDS=creds,
                                                JOBMON_SERVER=server.url)
        c = JobMonClient(server.url, caDir=self.tpki.caDir, timeout=30, auth="token",
                         token=issuer.mint("condor-user", scope="compute.read"))
        self.addCleanup(c.close)
        job = await self.waitUntilReady(c, jobId)
        self.assertEqual(job["owner"], issuer.identity("condor-user"))
        open(go, "w").close()
        self.assertEqual(await proto.whenEnded(), 0)
        self.assertNoDaemon(jobId)


class ExamplesTests(SynchronousTestCase):
    """
    The example job scripts are well formed.
    """

    def test_scripts(self):
        """
        The shell scripts parse and are executable; the HTCondor submit
        file runs the wrapper script with the proxy.
        """
        import subprocess

        examples = os.path.join(ROOT, "examples")
        for name, shell in (("slurm-job.sh", "bash"), ("htcondor-wrapper.sh", "sh")):
            path = os.path.join(examples, name)
            self.assertTrue(os.access(path, os.X_OK), name)
            subprocess.run([shell, "-n", path], check=True)
            with open(path) as f:
                self.assertIn("exec jobmon-run ", f.read())
        with open(os.path.join(examples, "htcondor-job.sub")) as f:
            submit = {
                key.strip(): value.strip()
                for key, _, value in (
                    line.partition("=") for line in f if "=" in line and not line.startswith("#")
                )
            }
        self.assertEqual(submit["executable"], "htcondor-wrapper.sh")
        self.assertIn("x509userproxy", submit)
        self.assertIn("JOBMON_SERVER=", submit["environment"])


class WrapperProcessTests(TestCase):
    """
    C{python -m jobmon.worker.run} without monitoring.
    """

    timeout = 30

    def wrapper(self, *args):
        """
        Start C{jobmon-run ARGS}.
        """
        return spawn(self, "jobmon-run", ["-m", "jobmon.worker.run"] + list(args), env=wrapperEnv(),
                     path=ROOT, program=sys.executable)

    async def test_noMonitor(self):
        """
        C{--no-monitor} just runs the command, its exit status passed on.
        """
        proto = self.wrapper("--no-monitor", "--", "sh", "-c", "echo out; exit 3")
        self.assertEqual(await proto.whenEnded(), 3)
        self.assertEqual(proto.output.decode(), "out\n")

    async def test_commandNotFound(self):
        """
        A command that cannot be found: 127, as shells do, with one line.
        """
        proto = self.wrapper("--no-monitor", "--", "/nonexistent/command")
        self.assertEqual(await proto.whenEnded(), run.EXIT_NOT_FOUND)
        self.assertEqual(proto.output.decode(),
                         "jobmon-run: cannot run /nonexistent/command: No such file or directory\n")

    async def test_badOptionRunsCommand(self):
        """
        A wrong option of the wrapper's own does not stop the job.
        """
        proto = self.wrapper("--bogus", "--", "sh", "-c", "exit 5")
        self.assertEqual(await proto.whenEnded(), 5)
        self.assertEqual(proto.output.decode(),
                         "jobmon-run: unrecognized arguments: --bogus; the job runs unmonitored\n")

    async def test_usage(self):
        """
        Without a command the wrapper exits 2.
        """
        proto = self.wrapper("--server", "https://x/")
        self.assertEqual(await proto.whenEnded(), run.EXIT_USAGE)
        self.assertIn("jobmon-run: no command given", proto.output.decode())

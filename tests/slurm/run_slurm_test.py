"""
C{make test-slurm}: JobMon against a real Slurm, end to end.

On a Debian machine where we are root, it installs Slurm from Debian's
packages if it is not there, starts a one-node cluster on this machine (its own
munged, slurmctld and slurmd, all on 127.0.0.1, state and logs in a temporary
run directory), a JobMon server with a PKI made for the run, submits
C{examples/slurm-job.sh} with C{sbatch}, and asks the running job with
C{jobmon-query}.  Then it signals the job with C{scancel --batch --signal=USR1},
checks that the job left the server and that Slurm recorded the command's exit
status, and stops everything it started, also when a step fails.

Standard library only: run it with the venv's Python (C{.venv/bin/python}),
whose directory holds C{jobmon-pki}, C{twistd}, C{jobmon-run} and
C{jobmon-query}.  Prints each step, and last C{slurm end-to-end: N passed, N
failed}; exits non-zero on any failure, keeping the run directory for its logs.
"""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(os.path.abspath(sys.executable))
JOB_SCRIPT = os.path.join(ROOT, "examples", "slurm-job.sh")
SBIN_PATH = os.pathsep.join([BIN, os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# Every process the test starts carries this variable, naming its run
# directory: teardown finds stragglers (slurmstepd, the job) by it, and a later
# run stops those of a run whose test process died.
MARK = "JOBMON_SLURM_TEST_RUN"
RUN_WALL = 240
"""Seconds the whole run may take once Slurm is installed."""

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED")
"""Job states (squeue's %T) of a job that has ended."""

INPUT = "".join("{} {}\n".format(i, i * i) for i in range(1, 101))


class Fatal(Exception):
    """
    A step failed that the later steps need.
    """


class Timeout(Exception):
    """
    The whole run took longer than L{RUN_WALL}.
    """


class Test:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.run = None
        self.procs = []  # (name, Popen), in start order
        self.jobIds = []
        self.env = None

    # -- reporting ---------------------------------------------------------

    def step(self, text):
        print("\n== " + text, flush=True)

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("  ok    " + what, flush=True)
        else:
            self.failed += 1
            print("  FAIL  " + what, flush=True)
            if detail:
                for line in detail.rstrip().splitlines()[-25:]:
                    print("        | " + line, flush=True)
        return ok

    def need(self, ok, what, detail=""):
        if not self.check(ok, what, detail):
            raise Fatal(what)

    def info(self, text):
        for line in text.rstrip().splitlines():
            print("        " + line, flush=True)

    # -- processes ---------------------------------------------------------

    def sh(self, args, timeout=30, env=None, check=False, **kw):
        """
        Run C{args}; return (exit status, stdout + stderr text).
        """
        try:
            result = subprocess.run(
                args, env=env or self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)
        except subprocess.TimeoutExpired:
            return None, "{}: no answer in {} s".format(args[0], timeout)
        except OSError as e:
            return None, "{}: {}".format(args[0], e)
        out = result.stdout.decode("utf-8", "replace")
        if check and result.returncode != 0:
            raise Fatal("{} exited {}:\n{}".format(" ".join(args), result.returncode, out))
        return result.returncode, out

    def start(self, name, args, **kw):
        log = open(os.path.join(self.run, "log", name + ".out"), "wb")
        kw.setdefault("cwd", self.run)
        proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, **kw)
        log.close()
        self.procs.append((name, proc))
        self.info("started {} (pid {})".format(name, proc.pid))
        return proc

    def waitFor(self, what, probe, timeout, proc=None, interval=0.2):
        """
        Call C{probe} until it returns something true, for at most C{timeout}
        seconds; L{Fatal} if it does not (or C{proc} exits meanwhile).
        """
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if proc is not None and proc.poll() is not None:
                raise Fatal("{}: process exited with status {}".format(what, proc.returncode))
            if time.monotonic() > deadline:
                raise Fatal("{}: not within {} s".format(what, timeout))
            time.sleep(interval)

    def logTail(self, name, lines=15):
        path = os.path.join(self.run, "log", name)
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(["-- " + path] + text.rstrip().splitlines()[-lines:])

    # -- the steps ---------------------------------------------------------

    def install(self):
        self.step("Slurm and MUNGE from Debian's packages")
        if os.geteuid() != 0:
            raise Fatal("needs root: it installs packages and runs slurmctld, slurmd and munged")
        have = shutil.which("slurmctld", path=SBIN_PATH)
        if have:
            code, out = self.sh([have, "-V"])
            self.info("already installed: {} ({})".format(have, out.strip()))
        else:
            if not shutil.which("apt-get"):
                raise Fatal("slurmctld is not installed and there is no apt-get to install it")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            start = time.monotonic()
            for args in (["apt-get", "update", "-q"],
                         ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]):
                self.info("$ " + " ".join(args))
                code, out = self.sh(args, timeout=900, env=env)
                if code != 0:
                    raise Fatal("{} failed:\n{}".format(" ".join(args), out))
            self.info("installed in {:.0f} s".format(time.monotonic() - start))
        for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo",
                     "munged", "munge", "unmunge"):
            self.need(shutil.which(tool, path=SBIN_PATH), "{} is installed".format(tool))
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            raise Fatal("there is no 'munge' user (the munge package makes it)")
        key = "/etc/munge/munge.key"
        if not os.path.exists(key):
            self.info("no {}: making one".format(key))
            code, out = self.sh([shutil.which("mungekey", path=SBIN_PATH) or "mungekey",
                                 "--create", "--keyfile", key])
            if code != 0:
                with open("/dev/urandom", "rb") as r, open(key, "wb") as f:
                    f.write(r.read(1024))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o400)
        self.check(os.path.getsize(key) > 0, "MUNGE key {} (owned by munge, mode 0400)".format(key))
        return munge

    def stopStale(self):
        """
        Stop what an earlier run left behind when its test process died.
        """
        for pid, run in _marked():
            if run == self.run:
                continue
            owner = _readInt(os.path.join(run, "owner.pid"))
            if owner and _alive(owner) and owner != os.getpid():
                continue  # another run, still going
            self.info("stopping pid {} left by an earlier run ({})".format(pid, run))
            _kill(pid, signal.SIGKILL)
        for run in glob.glob(os.path.join(tempfile.gettempdir(), "jobmon-slurm-*")):
            owner = _readInt(os.path.join(run, "owner.pid"))
            if run != self.run and owner and not _alive(owner):
                self.info("removing an earlier run's directory " + run)
                shutil.rmtree(run, ignore_errors=True)

    def makeRun(self):
        self.run = tempfile.mkdtemp(prefix="jobmon-slurm-")
        # munged runs as the munge user and must reach its socket directory.
        os.chmod(self.run, 0o755)
        for sub in ("log", "state", "spool", "munge", "job", "server"):
            os.makedirs(os.path.join(self.run, sub))
        with open(os.path.join(self.run, "owner.pid"), "w") as f:
            f.write("{}\n".format(os.getpid()))
        self.env = dict(os.environ, PATH=SBIN_PATH, SLURM_CONF=os.path.join(self.run, "slurm.conf"))
        for name in list(self.env):
            if name.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "JOBMON_", "X509_")) \
                    and name != "SLURM_CONF":
                del self.env[name]
        self.env[MARK] = self.run
        self.info("run directory " + self.run)

    def startMunge(self, munge):
        self.step("munged (as the munge user, its socket in the run directory)")
        mdir = os.path.join(self.run, "munge")
        os.chown(mdir, munge.pw_uid, munge.pw_gid)
        self.socket = os.path.join(mdir, "munge.socket")
        proc = self.start("munged", [
            shutil.which("munged", path=SBIN_PATH), "--foreground",
            "--socket=" + self.socket, "--pid-file=" + os.path.join(mdir, "munged.pid"),
            "--seed-file=" + os.path.join(mdir, "munged.seed"),
        ], user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])

        def roundTrip():
            code, cred = self.sh(["munge", "--socket", self.socket, "--no-input"], timeout=5)
            if code != 0:
                return False
            code, out = self._unmunge(cred)
            return code == 0 and "Success" in out

        try:
            self.waitFor("munged answers", roundTrip, 20, proc)
        except Fatal as e:
            raise Fatal("{}\n{}".format(e, self.logTail("munged.out")))
        self.check(True, "munge | unmunge round trip on " + self.socket)

    def _unmunge(self, cred):
        try:
            result = subprocess.run(["unmunge", "--socket", self.socket], env=self.env,
                                    input=cred.encode(), capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:
            return None, ""
        return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")

    def configure(self):
        self.step("slurm.conf: one node, this machine, on 127.0.0.1")
        # slurmctld and slurmd bind to the address their names resolve to:
        # this machine's name only if that is a loopback address.
        host = socket.gethostname().split(".")[0]
        try:
            loopback = host and socket.gethostbyname(host).startswith("127.")
        except OSError:
            loopback = False
        if not loopback:
            self.info("{!r} does not resolve to 127.x: the node is 'localhost'".format(host))
            host = "localhost"
        slurmd = shutil.which("slurmd", path=SBIN_PATH)
        code, out = self.sh([slurmd, "-C"], timeout=30)
        match = re.search(r"^NodeName=\S+ (.*)$", out, re.M)
        if code == 0 and match:
            hardware = match.group(1).strip()
        else:
            hardware = "CPUs={} RealMemory={}".format(os.cpu_count() or 1, _memoryMiB())
        ctld, slurmdPort = _freePorts(2)
        with open(os.path.join(HERE, "slurm.conf.in")) as f:
            template = string.Template(f.read())
        text = template.substitute(host=host, ctld_port=ctld, slurmd_port=slurmdPort,
                                   run=self.run, hardware=hardware)
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write(text)
        self.host = host
        self.info("NodeName={} {}; slurmctld on 127.0.0.1:{}, slurmd on 127.0.0.1:{}".format(
            host, hardware, ctld, slurmdPort))
        self.check(True, "wrote " + self.env["SLURM_CONF"])

    def startSlurm(self):
        self.step("slurmctld and slurmd in the foreground (-D), logs in the run directory")
        ctld = self.start("slurmctld", [shutil.which("slurmctld", path=SBIN_PATH), "-D", "-i"])

        def ping():
            code, out = self.sh(["scontrol", "ping"], timeout=10)
            return code == 0 and "UP" in out

        try:
            self.waitFor("slurmctld answers scontrol ping", ping, 30, ctld, interval=0.5)
        except Fatal as e:
            raise Fatal("{}\n{}".format(e, self.logTail("slurmctld.log")))
        self.check(True, "slurmctld is up (scontrol ping)")
        slurmd = self.start("slurmd", [shutil.which("slurmd", path=SBIN_PATH), "-D", "-N", self.host])

        def idle():
            code, out = self.sh(["sinfo", "--noheader", "--Node", "--format=%N %T"], timeout=10)
            return code == 0 and re.search(r"^{} idle".format(re.escape(self.host)), out, re.M)

        try:
            self.waitFor("node {} idle in sinfo".format(self.host), idle, 60, slurmd, interval=0.5)
        except Fatal as e:
            raise Fatal("{}\n{}\n{}".format(e, self.logTail("slurmd.log"),
                                            self.logTail("slurmctld.log")))
        code, out = self.sh(["sinfo"])
        self.info(out)
        self.check(True, "slurmd registered; node {} is idle".format(self.host))
        code, out = self.sh(["ss", "-Hltnp"], timeout=10)
        if code == 0:
            slurmSockets = [line for line in out.splitlines()
                            if '"slurmctld"' in line or '"slurmd"' in line]
            self.check(slurmSockets and all(" 127.0.0.1:" in line for line in slurmSockets),
                       "slurmctld and slurmd listen on 127.0.0.1 only", "\n".join(slurmSockets))

    def startServer(self):
        self.step("JobMon server on 127.0.0.1, with a PKI made for this run")
        pkiDir = os.path.join(self.run, "pki")
        self.sh([os.path.join(BIN, "jobmon-pki"), "init", pkiDir, "--users", "alice,bob"],
                timeout=60, check=True)
        proxy = os.path.join(self.run, "x509up_alice")
        self.sh([os.path.join(BIN, "jobmon-pki"), "proxy",
                 "--cert", os.path.join(pkiDir, "alice", "usercert.pem"),
                 "--key", os.path.join(pkiDir, "alice", "userkey.pem"),
                 "--out", proxy, "--hours", "2"], timeout=60, check=True)
        caDir = os.path.join(pkiDir, "ca")
        self.check(os.path.exists(proxy), "jobmon-pki: CA, host certificate, alice's proxy")
        ports = os.path.join(self.run, "server", "ports.json")
        server = self.start("jobmon-server", [
            os.path.join(BIN, "twistd"), "-n", "--pidfile=", "jobmon-server",
            "--interface", "127.0.0.1", "--https-port", "0", "--wake-port", "0",
            "--hostcert", os.path.join(pkiDir, "hostcert.pem"),
            "--hostkey", os.path.join(pkiDir, "hostkey.pem"),
            "--ca-dir", caDir, "--port-file", ports,
        ], cwd=os.path.join(self.run, "server"))

        def portsWritten():
            try:
                with open(ports) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None

        try:
            bound = self.waitFor("the server's port file", portsWritten, 30, server)
        except Fatal as e:
            raise Fatal("{}\n{}".format(e, self.logTail("jobmon-server.out")))
        self.url = "https://127.0.0.1:{}/RPC2".format(bound["https"])
        self.env.update(JOBMON_SERVER=self.url, X509_USER_PROXY=proxy, X509_CERT_DIR=caDir)
        self.check(True, "server listening: XML-RPC {}, TCP wake port {}".format(
            self.url, bound["wake"]))
        code, out = self.query("whoami")
        self.check(code == 0 and "CN=Alice" in out, "jobmon-query whoami: alice's proxy", out)

    def query(self, *args, show=True, timeout=30):
        code, out = self.sh([os.path.join(BIN, "jobmon-query")] + list(args), timeout=timeout)
        if show:
            self.info("$ jobmon-query " + " ".join(args) + "   (exit {})".format(code))
            self.info("\n".join("  " + line for line in out.rstrip().splitlines()[:20]))
        return code, out

    def submit(self):
        self.step("sbatch examples/slurm-job.sh: jobmon-run -- ./analyse.sh input.dat")
        self.jobDir = os.path.join(self.run, "job")
        shutil.copy(os.path.join(HERE, "analyse.sh"), self.jobDir)
        with open(os.path.join(self.jobDir, "input.dat"), "w") as f:
            f.write(INPUT)
        code, out = self.sh(["sbatch", "--parsable", "--chdir", self.jobDir,
                             "--time", "00:10:00", JOB_SCRIPT], timeout=30)
        match = re.match(r"^(\d+)", out.strip()) if code == 0 else None
        self.need(match, "sbatch accepted the job", out)
        self.jobId = match.group(1)
        self.jobIds.append(self.jobId)
        self.info("Slurm job id " + self.jobId)

        def running():
            code, out = self.sh(["squeue", "--noheader", "--jobs", self.jobId,
                                 "--format=%T %R"], timeout=10)
            state = out.split()[0] if code == 0 and out.split() else ""
            if state in ("RUNNING",):
                return state
            if code == 0 and not out.strip():
                raise Fatal("job {} left the queue before it ran:\n{}".format(
                    self.jobId, self.showJob()))
            return None

        try:
            self.waitFor("job {} RUNNING in squeue".format(self.jobId), running, 60, interval=0.5)
        except Fatal as e:
            raise Fatal("{}\n{}\n{}".format(e, self.showJob(), self.logTail("slurmd.log")))
        self.check(True, "squeue: job {} is RUNNING on {}".format(self.jobId, self.host))

        def registered():
            output = self.fileTail("analysis-{}.out".format(self.jobId))
            if "jobmon-run:" in output:
                raise Fatal("jobmon-run could not start monitoring:\n" + output)
            code, out = self.query("--json", "jobs", show=False, timeout=15)
            if code != 0:
                return None
            for job in _jsonObjects(out):
                if str(job.get("job_id")) == self.jobId:
                    return job
            return None

        try:
            job = self.waitFor("job {} in jobmon-query jobs".format(self.jobId), registered, 60,
                               interval=0.5)
        except Fatal as e:
            if "could not start monitoring" in str(e):
                raise
            raise Fatal("{}\n{}\n{}".format(
                e, self.fileTail(".jobmon-daemon-{}.log".format(self.jobId)),
                self.fileTail("analysis-{}.out".format(self.jobId))))
        code, out = self.query("jobs")
        self.check(job.get("batch") == "slurm",
                   "jobmon-query jobs: job {} with batch system slurm".format(self.jobId),
                   json.dumps(job))
        self.check(str(job.get("host", "")).split(".")[0] in (self.host, socket.gethostname()),
                   "... on host {}".format(self.host), json.dumps(job))

    def queries(self):
        self.step("Queries to the running Slurm job")
        jid = self.jobId
        # Let the command write a few events.
        try:
            self.waitFor("analysis.log has 5 events", lambda: "event 5 processed" in
                         self.fileTail("analysis.log"), 20)
        except Fatal as e:
            self.check(False, str(e), self.fileTail("analysis-{}.out".format(jid)))
        code, out = self.query("ls", jid)
        names = set(out.split())
        want = {"analyse.sh", "input.dat", "analysis.log", "output", "analysis-{}.out".format(jid)}
        self.check(code == 0 and want <= names,
                   "ls {}: the submission directory ({})".format(jid, ", ".join(sorted(want))), out)
        code, out = self.query("ls", jid, "-a")
        self.check(code == 0 and ".jobmon-daemon-{}.log".format(jid) in out.split(),
                   "ls -a {}: the daemon's log .jobmon-daemon-{}.log".format(jid, jid), out)
        code, out = self.query("tail", jid, "analysis.log", "-n", "3")
        lines = out.strip().splitlines()
        self.check(code == 0 and len(lines) == 3
                   and all(re.match(r"^event \d+ processed$", line) for line in lines),
                   "tail {} analysis.log -n 3: the last three events".format(jid), out)
        code, out = self.query("head", jid, "analysis.log", "-n", "1")
        self.check(code == 0 and "in job {}".format(jid) in out,
                   "head {} analysis.log: the command saw SLURM_JOB_ID={}".format(jid, jid), out)
        code, out = self.query("cat", jid, "input.dat", show=False)
        self.info("$ jobmon-query cat {} input.dat   (exit {}, {} bytes)".format(
            jid, code, len(out)))
        self.check(code == 0 and out == INPUT, "cat {} input.dat: the file, byte for byte".format(jid),
                   out[-500:])
        code, out = self.query("ps", jid)
        self.check(code == 0 and "analyse.sh" in out and "sleep" in out,
                   "ps {}: analyse.sh and its sleep".format(jid), out)
        code, out = self.query("env", jid, show=False)
        self.info("$ jobmon-query env {} | grep SLURM_JOB_ID   (exit {})".format(jid, code))
        self.info("\n".join("  " + l for l in out.splitlines() if l.startswith("SLURM_JOB_ID")))
        self.check(code == 0 and re.search(r"^SLURM_JOB_ID=\s*{}$".format(jid), out, re.M),
                   "env {}: SLURM_JOB_ID={}".format(jid, jid), out[-1500:])
        code, out = self.query("cat", jid, "../slurm.conf")
        self.check(code == 1, "cat {} ../slurm.conf: refused, outside the job (exit 1)".format(jid),
                   out)

    def signalJob(self):
        self.step("scancel --batch --signal=USR1: the command ends with status 7")
        jid = self.jobId
        code, out = self.sh(["scancel", "--batch", "--signal=USR1", jid], timeout=15)
        self.check(code == 0, "scancel --batch --signal=USR1 {}".format(jid), out)

        def gone():
            code, out = self.sh(["squeue", "--noheader", "--jobs", jid, "--format=%T"], timeout=10)
            return code == 0 and (not out.strip() or out.split()[0] in FINAL_STATES)

        try:
            self.waitFor("job {} finished".format(jid), gone, 30, interval=0.5)
            self.check(True, "job {} finished".format(jid))
        except Fatal as e:
            self.check(False, str(e), self.showJob())
        log = self.fileTail("analysis.log")
        self.check("got USR1" in log, "analysis.log: the command got USR1 (through jobmon-run)", log)

        def unregistered():
            code, out = self.query("--json", "jobs", show=False, timeout=15)
            return code == 0 and not any(str(j.get("job_id")) == jid for j in _jsonObjects(out))

        try:
            self.waitFor("job {} gone from jobmon-query jobs".format(jid), unregistered, 30,
                         interval=0.5)
            self.query("jobs")
            self.check(True, "jobmon-query jobs: job {} unregistered".format(jid))
        except Fatal as e:
            self.check(False, str(e), self.fileTail(".jobmon-daemon-{}.log".format(jid)))
        code, out = self.query("ls", jid)
        self.check(code == 6 and "job {} ended at ".format(jid) in out,
                   "ls {} now: the job ended, and when (exit 6)".format(jid), out)

        fields = {}

        def recorded():
            text = self.showJob()
            fields.update(re.findall(r"(\w+)=(\S*)", text))
            return fields.get("JobState") not in (None, "RUNNING", "COMPLETING", "PENDING")

        try:
            self.waitFor("scontrol show job {}: a final state".format(jid), recorded, 20)
        except Fatal as e:
            self.check(False, str(e), self.showJob())
        self.info("$ scontrol show job {}: JobState={} ExitCode={}".format(
            jid, fields.get("JobState"), fields.get("ExitCode")))
        self.check(fields.get("ExitCode") == "7:0" and fields.get("JobState") == "FAILED",
                   "scontrol: job {} FAILED with ExitCode=7:0, the command's status".format(jid),
                   self.showJob())

        def completion():
            try:
                with open(os.path.join(self.run, "log", "jobcomp.log")) as f:
                    return [l for l in f if re.search(r"\bJobId={}\b".format(jid), l)]
            except OSError:
                return None

        try:
            record = self.waitFor("the job completion record", completion, 10)[-1]
            self.info("jobcomp: " + " ".join(
                w for w in record.split() if w.split("=")[0] in ("JobId", "JobState", "ExitCode")))
            self.check("ExitCode=7:0" in record, "job completion log: ExitCode=7:0", record)
        except Fatal as e:
            self.check(False, str(e))
        daemonLog = self.fileTail(".jobmon-daemon-{}.log".format(jid), lines=200)
        self.check("job {} registered with {}".format(jid, self.url) in daemonLog
                   and "job {} unregistered".format(jid) in daemonLog,
                   ".jobmon-daemon-{}.log: the daemon registered and, at the end, "
                   "unregistered".format(jid), daemonLog)
        output = self.fileTail("analysis-{}.out".format(jid), lines=200)
        self.check("jobmon" not in output,
                   "analysis-{}.out (the job's output): nothing from monitoring".format(jid), output)

    def showJob(self):
        if not getattr(self, "jobId", None):
            return ""
        code, out = self.sh(["scontrol", "show", "job", self.jobId], timeout=10)
        return out

    def fileTail(self, name, lines=30):
        try:
            with open(os.path.join(self.jobDir, name), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return "({})".format(e)
        return "\n".join(text.rstrip().splitlines()[-lines:])

    # -- teardown ----------------------------------------------------------

    def teardown(self):
        self.step("Teardown")
        if self.env is None:
            return
        for jid in self.jobIds:
            code, out = self.sh(["squeue", "--noheader", "--jobs", jid, "--format=%T"], timeout=10)
            if code == 0 and out.strip() and out.split()[0] not in FINAL_STATES:
                self.info("scancel {} ({})".format(jid, out.strip()))
                self.sh(["scancel", jid], timeout=10)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    code, out = self.sh(["squeue", "--noheader", "--jobs", jid], timeout=10)
                    if code != 0 or not out.strip():
                        break
                    time.sleep(0.5)
        # slurmd before slurmctld, the server, munged last (slurm needs it to the end).
        order = {"slurmd": 0, "slurmctld": 1, "jobmon-server": 2, "munged": 3}
        for name, proc in sorted(self.procs, key=lambda p: order.get(p[0], 0)):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.info("{} did not stop on SIGTERM: SIGKILL".format(name))
                    proc.kill()
                    proc.wait(5)
                self.info("stopped {} (pid {})".format(name, proc.pid))
        # Whatever else carries this run's mark: slurmstepd, the job, its daemon.
        for pid, run in _marked():
            if run == self.run and pid != os.getpid():
                self.info("stopping straggler pid {} ({})".format(pid, _cmdline(pid)))
                _kill(pid, signal.SIGKILL)


# -- helpers -----------------------------------------------------------------


def _readInt(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _cmdline(pid):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def _marked():
    """
    Yield (pid, run directory) of every process whose environment carries
    L{MARK}.
    """
    key = MARK.encode() + b"="
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/environ".format(entry), "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(key):
                yield int(entry), item[len(key):].decode("utf-8", "replace")
                break


def _freePorts(n):
    """
    Return C{n} distinct TCP ports free on 127.0.0.1 just now.
    """
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _memoryMiB():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def _jsonObjects(text):
    """
    The job records in C{jobmon-query --json jobs} output: a JSON list, or
    JSON lines.
    """
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = []
        for line in text.splitlines():
            try:
                value.append(json.loads(line))
            except ValueError:
                pass
    if isinstance(value, dict):
        value = value.get("jobs", [value])
    return [v for v in value if isinstance(v, dict)]


def _onAlarm(signum, frame):
    raise Timeout("the run took longer than {} s".format(RUN_WALL))


def _onTerm(signum, frame):
    raise SystemExit("interrupted by signal {}".format(signum))


def main():
    test = Test()
    error = None
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _onTerm)
    try:
        munge = test.install()
        signal.signal(signal.SIGALRM, _onAlarm)
        signal.alarm(RUN_WALL)
        test.makeRun()
        test.stopStale()
        test.startMunge(munge)
        test.configure()
        test.startSlurm()
        test.startServer()
        test.submit()
        test.queries()
        test.signalJob()
    except (Fatal, Timeout) as e:
        error = str(e)
    except KeyboardInterrupt:
        error = "interrupted"
    except SystemExit as e:
        error = str(e.code)
    except Exception as e:  # a bug in the test itself: still tear down
        import traceback
        traceback.print_exc(file=sys.stdout)
        error = "{}: {}".format(type(e).__name__, e)
    finally:
        signal.alarm(0)
        try:
            test.teardown()
        except Exception as e:
            error = error or "teardown: {}".format(e)
            print("teardown failed: {}".format(e), flush=True)
    if error:
        test.failed += 1
        print("\nFAILED: " + error.splitlines()[0], flush=True)
        for line in error.splitlines()[1:][-40:]:
            print("  | " + line, flush=True)
    if test.run:
        if test.failed:
            print("run directory kept for its logs (until the next run): " + test.run)
        else:
            shutil.rmtree(test.run, ignore_errors=True)
    print("slurm end-to-end: {} passed, {} failed ({:.0f} s)".format(
        test.passed, test.failed, time.monotonic() - started), flush=True)
    return 1 if test.failed else 0


if __name__ == "__main__":
    sys.exit(main())

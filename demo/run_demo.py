"""
The JobMon demo (C{make demo}): a local server, a sample job with its daemon,
and real C{jobmon-query} commands, all on 127.0.0.1 with a throwaway PKI.

Everything it starts is stopped before it exits.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
RUN = os.path.join(ROOT, "demo-run")

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


COMMANDS = """
[commands.loadavg]
description = "the worker's load average"
argv = ["/bin/cat", "/proc/loadavg"]
timeout = 5
"""


def say(text):
    print("\n" + BOLD + "== " + text + RESET, flush=True)


class Process:
    """
    A background process whose output goes to a log file.
    """

    def __init__(self, name, args, cwd, env=None):
        self.name = name
        self.logPath = os.path.join(RUN, name + ".log")
        self.log = open(self.logPath, "wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def waitFor(self, pattern, timeout=30):
        try:
            return waitForFile(self.logPath, pattern, timeout, self.proc)
        except SystemExit:
            with open(self.logPath, "rb") as f:
                sys.stderr.write(f.read().decode("utf-8", "replace"))
            raise SystemExit("demo: {} did not start (see above)".format(self.name))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def waitForFile(path, pattern, timeout=30, proc=None):
    """
    Wait until the file at C{path} holds C{pattern}, for at most C{timeout}
    seconds and no longer than the C{subprocess.Popen} C{proc} runs.

    @return: the match.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                match = re.search(pattern, f.read().decode("utf-8", "replace"))
        except OSError:
            match = None
        if match:
            return match
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise SystemExit("demo: {} did not show {!r}".format(path, pattern))
        time.sleep(0.05)


def query(env, *args, show=True):
    """
    Run C{jobmon-query ARGS}, show the command and its output.
    """
    cmd = [os.path.join(BIN, "jobmon-query")] + list(args)
    if show:
        print(DIM + "$ jobmon-query " + " ".join(args) + RESET, flush=True)
    start = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    elapsed = (time.monotonic() - start) * 1000
    sys.stdout.write(result.stdout.decode("utf-8", "replace"))
    sys.stdout.write(result.stderr.decode("utf-8", "replace"))
    print(DIM + "(exit {}, {:.0f} ms)".format(result.returncode, elapsed) + RESET, flush=True)
    return result.returncode


def main():
    sys.path.insert(0, ROOT)
    from jobmon.devtools import pki

    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    processes = []
    try:
        say("A throwaway PKI: a CA, a host certificate, users alice and bob")
        tpki = pki.initPKI(os.path.join(RUN, "pki"), users=("alice", "bob"))
        proxies = {}
        for name, user in tpki.users.items():
            proxies[name] = os.path.join(RUN, "x509up_" + name)
            pki.makeProxy(user.certPath, user.keyPath, proxies[name], hours=2)
            print("{:6s} {}  (proxy {})".format(name, user.dn, proxies[name]))

        say("A throwaway bearer-token issuer (WLCG profile), trusted by the server")
        from jobmon.devtools.issuer import makeIssuer

        issuer = makeIssuer(os.path.join(RUN, "issuer"))
        print("issuer {}: keys in {}, server configuration {}".format(
            issuer.iss, issuer.jwksPath, issuer.configPath))

        say("The central server on 127.0.0.1 (TCP, UDP broadcast and long-poll wakes)")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            udpPort = s.getsockname()[1]
        server = Process(
            "server",
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "jobmon-server",
             "--interface", "127.0.0.1", "--https-port", "0", "--wake-port", "0",
             "--udp-broadcast", "127.255.255.255:{}".format(udpPort),
             "--hostcert", tpki.hostCertPath, "--hostkey", tpki.hostKeyPath,
             "--ca-dir", tpki.ca.hashedDir, "--token-issuers", issuer.configPath],
            cwd=RUN,
        )
        processes.append(server)
        match = server.waitFor(r"XML-RPC on (\d+), TCP wake on (\d+)")
        url = "https://127.0.0.1:{}/RPC2".format(match.group(1))
        print("twistd jobmon-server: XML-RPC at {}, TCP wake port {}".format(url, match.group(2)))

        say("Three sample jobs, one per wake mode, each started by jobmon-run with its daemon")
        daemons = {}
        commands = os.path.join(RUN, "commands.toml")
        with open(commands, "w") as f:
            f.write(COMMANDS)
        for jobId, mode in (("4711.0", "tcp"), ("4712.0", "udp"), ("4713.0", "poll")):
            workdir = os.path.join(RUN, "job-" + jobId)
            os.makedirs(workdir)
            daemonLog = os.path.join(RUN, "daemon-{}.log".format(jobId))
            wrapper = [
                os.path.join(BIN, "jobmon-run"), "--server", url, "--job-id", jobId,
                "--wake", mode, "--proxy", proxies["alice"], "--ca-dir", tpki.ca.hashedDir,
                "--commands", commands, "--allow-signal", "USR1",
                "--daemon-log", daemonLog, "--",
                sys.executable, os.path.join(HERE, "sample_job.py"), "600",
            ]
            if jobId == "4711.0":
                print(DIM + "$ jobmon-run --job-id 4711.0 --wake tcp ... -- python "
                      "sample_job.py 600" + RESET)
            job = Process(
                "job-" + jobId, wrapper, cwd=workdir,
                env=dict(os.environ, ANALYSIS_TOKEN="s3cr3t", DATASET="run2026B"))
            processes.append(job)
            daemons[jobId] = job
            waitForFile(daemonLog, r"registered with .*\({} wake\)".format(mode), proc=job.proc)
            print("job {} running in {}; its daemon registered ({} wake)".format(
                jobId, workdir, mode))
        daemon = daemons["4711.0"]
        for jobId, job in daemons.items():
            # Five lines in its log (tail -n 5 below), its checkpoint and histograms.
            waitForFile(os.path.join(RUN, "job-" + jobId, "job.log"), r"step +4:", proc=job.proc)

        env = dict(os.environ, JOBMON_SERVER=url, X509_USER_PROXY=proxies["alice"],
                   X509_CERT_DIR=tpki.ca.hashedDir)
        say("Alice asks her job")
        failures = 0
        for args in (["whoami"], ["jobs"], ["ls", "4711.0"], ["tail", "4711.0", "job.log", "-n", "5"],
                     ["cat", "4711.0", "checkpoint.txt"], ["stat", "4711.0", "output/histograms.dat"],
                     ["tail", "4712.0", "job.log", "-n", "2"], ["tail", "4713.0", "job.log", "-n", "2"]):
            failures += query(env, *args) != 0

        say("What is the job doing? Processes, resources, environment, a diagnostic")
        for args in (["ps", "4711"], ["res", "4711"], ["du", "-h", "4711"],
                     ["commands", "4711"], ["run", "4711", "loadavg"]):
            failures += query(env, *args) != 0
        print(DIM + "$ jobmon-query env 4711 | grep -E 'TOKEN|DATASET'" + RESET)
        out = subprocess.run([os.path.join(BIN, "jobmon-query"), "env", "4711"], env=env,
                             capture_output=True, timeout=60).stdout.decode()
        print("\n".join(l for l in out.splitlines() if "TOKEN" in l or "DATASET" in l))

        say("Following the log for three seconds: jobmon-query tail -f 4711.0 job.log")
        follow = subprocess.Popen([os.path.join(BIN, "jobmon-query"), "tail", "-f", "-n", "2",
                                   "4711.0", "job.log"], env=env)
        time.sleep(3)
        follow.send_signal(signal.SIGINT)
        failures += follow.wait(10) != 130

        say("Clear errors: a missing file, a path outside the job, an unknown job")
        codes = [
            query(env, "cat", "4711.0", "results.root"),
            query(env, "cat", "4711.0", "../../pki/ca-key.pem"),
            query(env, "ls", "9999.0"),
        ]
        failures += codes != [1, 1, 5]

        say("Bob may not see Alice's job")
        bobEnv = dict(env, X509_USER_PROXY=proxies["bob"])
        failures += query(bobEnv, "jobs") != 0
        failures += query(bobEnv, "tail", "4711.0", "job.log") != 5

        say("Carol has no certificate, only bearer tokens: her job registers with one "
            "(scope compute.create), she asks it with another (compute.read)")
        carolJob = os.path.join(RUN, "job-4714.0")
        os.makedirs(carolJob)
        daemonToken = os.path.join(RUN, "carol-job.token")
        carolToken = os.path.join(RUN, "carol.token")
        for path, scope in ((daemonToken, "compute.create"), (carolToken, "compute.read")):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(issuer.mint("carol", scope=scope, lifetime=3600) + "\n")
        daemonLog = os.path.join(RUN, "daemon-4714.0.log")
        print(DIM + "$ BEARER_TOKEN_FILE=carol-job.token jobmon-run --job-id 4714.0 -- python "
              "sample_job.py 600" + RESET)
        job = Process(
            "job-4714.0",
            [os.path.join(BIN, "jobmon-run"), "--server", url, "--job-id", "4714.0",
             "--ca-dir", tpki.ca.hashedDir, "--daemon-log", daemonLog, "--",
             sys.executable, os.path.join(HERE, "sample_job.py"), "600"],
            cwd=carolJob,
            env={k: v for k, v in os.environ.items() if k != "X509_USER_PROXY"}
            | {"BEARER_TOKEN_FILE": daemonToken},
        )
        processes.append(job)
        waitForFile(daemonLog, r"wake channel up", proc=job.proc)
        carolEnv = {k: v for k, v in env.items() if k != "X509_USER_PROXY"}
        carolEnv["BEARER_TOKEN_FILE"] = carolToken
        print(DIM + "export BEARER_TOKEN_FILE=carol.token" + RESET)
        for args in (["whoami"], ["jobs"], ["tail", "4714.0", "job.log", "-n", "2"]):
            failures += query(carolEnv, *args) != 0
        failures += query(carolEnv, "signal", "4714.0", "USR1") != 4
        print(DIM + "an expired token:" + RESET)
        expiredEnv = dict(carolEnv, BEARER_TOKEN=issuer.mint("carol", lifetime=-600))
        failures += query(expiredEnv, "jobs") != 3

        say("Job 4711.0 is stopped (SIGTERM to its wrapper): the job ends, its daemon unregisters")
        daemon.stop()
        failures += query(env, "jobs") != 0

        if failures:
            raise SystemExit("demo: {} step(s) did not behave as expected".format(failures))
        say("Demo finished: logs in demo-run/")
    finally:
        for p in reversed(processes):
            p.stop()


if __name__ == "__main__":
    main()

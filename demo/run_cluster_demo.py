"""
The JobMon cluster demo (C{make demo-cluster}): a Redis and two servers
sharing jobs on 127.0.0.1, three sample jobs (one per wake mode) whose
daemons know both servers, real C{jobmon-query} commands through either
server; then the server holding the jobs is killed (SIGKILL) and the jobs
answer again through the other, and a server stopped cleanly hands its jobs
over at once.

Everything it starts is stopped before it exits.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run_demo  # noqa: E402
from run_demo import BIN, DIM, HERE, RESET, Process, query, say, waitForFile  # noqa: E402

RUN = run_demo.RUN = os.path.join(os.path.dirname(HERE), "demo-cluster-run")
"""Where the demo's files and logs go (L{Process} writes its logs there)."""


def freePort(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startServer(name, tpki, redisURL, udpPort, processes, ports):
    server = Process(
        name,
        [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "jobmon-server",
         "--interface", "127.0.0.1", "--https-port", str(ports[0]),
         "--wake-port", str(ports[1]),
         "--udp-broadcast", "127.255.255.255:{}".format(udpPort),
         "--reregister-interval", "20",
         "--hostcert", tpki.hostCertPath, "--hostkey", tpki.hostKeyPath,
         "--ca-dir", tpki.ca.hashedDir, "--redis", redisURL,
         "--audit-log", os.path.join(RUN, name + "-audit.jsonl"),
         "--history", os.path.join(RUN, name + "-history.sqlite3")],
        cwd=RUN,
    )
    processes.append(server)
    match = server.waitFor(r"XML-RPC on (\d+), TCP wake on (\d+)")
    joined = server.waitFor(r"joined the cluster as (\S+)")
    url = "https://127.0.0.1:{}/RPC2".format(match.group(1))
    print("{}: XML-RPC at {}, in the cluster as {}".format(name, url, joined.group(1)))
    return server, url, joined.group(1)


def timedQuery(env, *args):
    """
    Run C{jobmon-query ARGS}; return its exit status and seconds taken.
    """
    start = time.monotonic()
    status = query(env, *args)
    return status, time.monotonic() - start


def main():
    sys.path.insert(0, os.path.dirname(HERE))
    from jobmon.devtools import pki

    redisBinary = shutil.which("redis-server")
    if redisBinary is None:
        raise SystemExit("demo-cluster: redis-server is not installed "
                         "(make redis-server as root, or apt-get install redis-server)")
    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    processes = []
    try:
        say("A throwaway PKI: a CA, a host certificate, user alice")
        tpki = pki.initPKI(os.path.join(RUN, "pki"), users=("alice",))
        proxy = os.path.join(RUN, "x509up_alice")
        user = tpki.users["alice"]
        pki.makeProxy(user.certPath, user.keyPath, proxy, hours=2)

        say("A Redis on 127.0.0.1, with a password")
        redisPort = freePort()
        redis = Process("redis", [
            redisBinary, "--port", str(redisPort), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--requirepass", "demo-password", "--dir", RUN],
            cwd=RUN)
        processes.append(redis)
        redis.waitFor(r"Ready to accept connections")
        redisURL = "redis://:demo-password@127.0.0.1:{}/0".format(redisPort)
        print("redis-server on 127.0.0.1:{}".format(redisPort))

        say("Two servers sharing their jobs through it (--redis)")
        udpPort = freePort(socket.SOCK_DGRAM)
        ports1, ports2 = (freePort(), freePort()), (freePort(), freePort())
        one, url1, name1 = startServer("server-1", tpki, redisURL, udpPort, processes, ports1)
        two, url2, name2 = startServer("server-2", tpki, redisURL, udpPort, processes, ports2)

        say("Three jobs, one per wake mode; their daemons know both servers")
        print(DIM + "$ JOBMON_SERVER={},{} jobmon-run --job-id 4711.0 --wake tcp ... -- "
              "python sample_job.py 600".format(url1, url2) + RESET)
        jobs = {}
        for jobId, mode in (("4711.0", "tcp"), ("4712.0", "udp"), ("4713.0", "poll")):
            workdir = os.path.join(RUN, "job-" + jobId)
            os.makedirs(workdir)
            daemonLog = os.path.join(RUN, "daemon-{}.log".format(jobId))
            job = Process(
                "job-" + jobId,
                [os.path.join(BIN, "jobmon-run"), "--job-id", jobId, "--wake", mode,
                 "--proxy", proxy, "--ca-dir", tpki.ca.hashedDir,
                 "--daemon-log", daemonLog, "--",
                 sys.executable, os.path.join(HERE, "sample_job.py"), "600"],
                cwd=workdir, env=dict(os.environ, JOBMON_SERVER=url1 + "," + url2))
            processes.append(job)
            jobs[jobId] = (job, daemonLog)
            waitForFile(daemonLog, r"registered with .*\({} wake\)".format(mode), proc=job.proc)
            waitForFile(os.path.join(workdir, "job.log"), r"step +2:", proc=job.proc)
            print("job {} ({} wake) registered with server-1".format(jobId, mode))

        env1 = dict(os.environ, JOBMON_SERVER=url1, X509_USER_PROXY=proxy,
                    X509_CERT_DIR=tpki.ca.hashedDir)
        env2 = dict(env1, JOBMON_SERVER=url2)
        both = dict(env1, JOBMON_SERVER=url1 + "," + url2)
        failures = 0

        say("Any server answers: the jobs are held by server-1, asked through server-2")
        failures += query(env2, "jobs") != 0
        for jobId in jobs:
            failures += query(env2, "tail", jobId, "job.log", "-n", "2") != 0

        say("server-1 is killed (SIGKILL): its jobs register with server-2")
        one.proc.send_signal(signal.SIGKILL)
        one.proc.wait(10)
        print("killed {} (pid {})".format(name1, one.proc.pid))
        print(DIM + "A query asked now waits while its job moves, then answers:" + RESET)
        for jobId in jobs:
            status, seconds = timedQuery(env2, "tail", jobId, "job.log", "-n", "1")
            failures += status != 0
            print("job {} answered through server-2 {:.1f} s after it was asked".format(
                jobId, seconds))
        failures += query(env2, "jobs") != 0

        say("server-1 comes back (same address); server-2 is stopped cleanly and hands "
            "its jobs over")
        one, url1, name1 = startServer("server-1b", tpki, redisURL, udpPort, processes, ports1)
        start = time.monotonic()
        two.stop()
        for jobId in jobs:
            failures += query(both, "stat", jobId, "job.log") != 0
        print("all three answered through server-1 {:.1f} s after server-2 began "
              "to stop".format(time.monotonic() - start))
        failures += query(dict(env1, JOBMON_SERVER=url1), "jobs") != 0

        if failures:
            raise SystemExit("demo-cluster: {} step(s) did not behave as expected".format(
                failures))
        say("Demo finished: logs in demo-cluster-run/")
    finally:
        for p in reversed(processes):
            p.stop()


if __name__ == "__main__":
    main()

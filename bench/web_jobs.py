"""
The browser view's jobs list with many jobs: how long until headless
Chromium shows the page (issue 16: 10,000 jobs in under 1 s).

A real server on 127.0.0.1 (throwaway PKI, UDP jobs registered by the
capacity benchmark's load generator under alice's proxy, so that no daemon
process per job is needed), and alice's Chromium presenting her certificate
as the browser tests do (tests/browser/harness.py: NSS database, managed
policy; root is needed for the policy).  Each load of C{/} is timed from
navigation start to the page's C{data-ready} mark (its first data shown),
as the page itself measures it (C{performance.now()}); the rows drawn and
the server's time for the listing are reported too.

    .venv/bin/python bench/web_jobs.py [--jobs 10000] [--loads 7]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.cluster import Generator  # noqa: E402
from tests.browser import harness  # noqa: E402
from tests.support import TestPKI  # noqa: E402


def say(text):
    print(text, flush=True)


def freeUDPPort():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startServer(tmp, tpki):
    log = open(os.path.join(tmp, "server.log"), "wb")
    args = [common.TWISTD, "-n", "--pidfile=", "jobmon-server", "--interface", "127.0.0.1",
            "--https-port", "0", "--wake-port", "0",
            "--udp-broadcast", "127.255.255.255:{}".format(freeUDPPort()),
            "--reregister-interval", "3600",
            "--hostcert", tpki.hostCert, "--hostkey", tpki.hostKey, "--ca-dir", tpki.caDir,
            "--audit-log", os.path.join(tmp, "audit.jsonl"),
            "--history", os.path.join(tmp, "history.sqlite3"),
            "--port-file", os.path.join(tmp, "ports.json")] + common.QUERY_LIMITS_LIFTED
    popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                             env=common.childEnv(), preexec_fn=common.dieWithParent)
    ports = os.path.join(tmp, "ports.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(ports):
        if popen.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start: see " + log.name)
        time.sleep(0.05)
    with open(ports) as f:
        return popen, json.load(f)["https"]


def loadTimes(browser, loads):
    """
    Load C{/} C{loads} times; return, for each, the page's own time to ready
    (ms), the wall time seen from here (ms) and the rows drawn.
    """
    out = []
    for _ in range(loads):
        start = time.monotonic()
        browser.open("/")
        browser.driver.execute_script("")  # the navigation has committed
        browser.wait(lambda d: d.execute_script(
            "return document.body && document.body.dataset.ready === '1'"), timeout=60,
            message="the jobs page did not become ready")
        wall = (time.monotonic() - start) * 1000
        page, rows = browser.driver.execute_script(
            "return [performance.now(), "
            "document.querySelectorAll('#jobs-table tr[data-job-id]').length]")
        out.append({"page_ms": round(page, 1), "wall_ms": round(wall, 1), "rows": rows})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    why = harness._missing()
    if why is not None:
        raise SystemExit("web_jobs: " + why)
    tmp = tempfile.mkdtemp(prefix="jobmon-bench-web-")
    server = generator = browser = None
    wrote = False
    try:
        tpki = TestPKI(os.path.join(tmp, "pki"))
        server, port = startServer(tmp, tpki)
        url = "https://127.0.0.1:{}/RPC2".format(port)
        say("registering {} UDP jobs of alice".format(args.jobs))
        generator = Generator(SimpleNamespace(tmp=tmp, caDir=tpki.caDir,
                                              proxy=tpki.proxies["alice"]),
                              url, "generator", 10)
        t0 = time.monotonic()
        done = 0
        while done < args.jobs:
            count = min(2000, args.jobs - done)
            generator.send("register", mode="udp", start=done, count=count)
            reply = generator.reply()
            if reply["failed"]:
                raise SystemExit("registrations failed: {}".format(reply.get("first_error")))
            done += count
        say("registered in {:.1f} s".format(time.monotonic() - t0))
        wrote = harness.writePolicy()
        home = harness.makeProfile(os.path.join(tmp, "home"), tpki, "alice")
        browser = harness.Browser(home, "https://127.0.0.1:{}".format(port), "alice",
                                  os.path.join(tmp, "chromium"))
        browser.start()
        loadTimes(browser, 1)  # warm: the browser's caches, the TLS session
        times = loadTimes(browser, args.loads)
        pages = sorted(t["page_ms"] for t in times)
        result = {"jobs": args.jobs, "loads": times,
                  "page_ms_p50": pages[len(pages) // 2], "page_ms_max": pages[-1],
                  "load_average": os.getloadavg()[0]}
        say("| load | page ms (navigation to ready) | wall ms | rows drawn |")
        say("|---|---|---|---|")
        for i, t in enumerate(times, 1):
            say("| {} | {} | {} | {} |".format(i, t["page_ms"], t["wall_ms"], t["rows"]))
        say("{} jobs: ready in {} ms (p50), {} ms (max) of {} loads; target < 1000 ms: {}".format(
            args.jobs, result["page_ms_p50"], result["page_ms_max"], args.loads,
            "met" if result["page_ms_max"] < 1000 else "NOT met"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        if browser is not None:
            browser.quit()
        if generator is not None:
            generator.close()
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if wrote:
            harness.removePolicy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

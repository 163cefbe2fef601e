"""
Live follow in the browser view against C{jobmon-query tail -f} (issue 16:
the page no slower than the CLI by more than 100 ms).

A real server and job daemon (L{common.BenchEnv}); the page's event stream
(C{GET /api/follow}, Server-Sent Events, over TLS with the user's proxy,
as the page's C{fetch} reads it) and the client library's C{follow} (what
C{jobmon-query tail -f} calls) both wait at the end of a file; a line is
appended, and the time from the write to each one's answer is taken.
Repeated, interleaved; the machine's other work shows in the spread.

    .venv/bin/python bench/web_follow.py [--rounds 30]
"""

import argparse
import http.client
import os
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402


def connection(env):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(capath=env.caDir)
    context.load_cert_chain(env.proxy)
    context.check_hostname = False
    return http.client.HTTPSConnection("127.0.0.1", env.httpsPort, context=context,
                                       timeout=30)


def race(env, client, path, n):
    """
    One round: both followers wait at the end of C{path}; a line is
    written; return the seconds until each saw it (web, cli).
    """
    size = os.path.getsize(path)
    times = {}
    started = threading.Event()

    def cli():
        started.set()
        client.follow("job.1", os.path.basename(path), offset=size, wait=20)
        times["cli"] = time.monotonic()

    conn = connection(env)
    try:
        conn.request("GET", "/api/follow?job=job.1&path={}&offset={}".format(
            os.path.basename(path), size), headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        thread = threading.Thread(target=cli)
        thread.start()
        started.wait(5)
        # Both requests are on their way to the daemon: let them reach it.
        time.sleep(0.3)
        with open(path, "a") as f:
            f.write("line {}\n".format(n))
        written = time.monotonic()
        text = b""
        while b"event: data" not in text:
            chunk = response.read1(65536)
            if not chunk:
                break
            text += chunk
        times["web"] = time.monotonic()
        thread.join(30)
    finally:
        conn.close()
    return times["web"] - written, times["cli"] - written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with common.BenchEnv(quiet=True) as env:
        path = os.path.join(env.workdir, "follow.log")
        with open(path, "w") as f:
            f.write("start\n")
        client = env.client()
        try:
            race(env, client, path, 0)  # warm up
            web, cli = [], []
            for n in range(1, args.rounds + 1):
                w, c = race(env, client, path, n)
                web.append(w * 1000)
                cli.append(c * 1000)
        finally:
            client.close()
    # Each round's page minus its CLI, then each list in order.
    diff = sorted(w - c for w, c in zip(web, cli))
    web.sort()
    cli.sort()

    def pct(values, p):
        return values[min(len(values) - 1, int(len(values) * p))]

    print("| follower | p50 ms | p90 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in (("page (event stream)", web), ("jobmon-query tail -f", cli)):
        print("| {} | {:.1f} | {:.1f} | {:.1f} |".format(
            name, pct(values, 0.5), pct(values, 0.9), values[-1]))
    print("page - CLI in the same round: p50 {:+.1f} ms, max {:+.1f} ms "
          "(target: no more than +100 ms): {}".format(
              pct(diff, 0.5), diff[-1], "met" if diff[-1] <= 100 else "NOT met"))


if __name__ == "__main__":
    main()

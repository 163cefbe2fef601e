"""
What bearer tokens cost, beside X.509 proxies.

  1. In process: L{jobmon.server.tokens.TokenPolicy.check} of a token seen
     for the first time (signature and claims verified) for ES256 and RS256
     issuers (made with L{jobmon.devtools.issuer}), and of a token already
     in the cache (what every later call of a daemon or a kept-alive client
     costs).  The server's own policy object, run in this process: a token
     check cannot be timed from outside the server.
  2. Through a real server and daemon: C{whoami} and C{stat} round trips on
     one kept-alive connection, with alice's proxy and with alice's token
     (the issuer maps subject C{alice} to her DN, so both reach her job).
  3. The same C{stat} round trips with a daemon that authenticates with a
     token (read from its file in a thread, kept for 10 s) instead of the
     proxy.
  4. A new connection per call (handshake included): C{whoami} with the
     proxy (a client certificate chain to verify) and with the token (no
     client certificate; one token check per new token, cached after).

Usage::

    .venv/bin/python bench/tokens.py [-n 2000] [--connections 300] [--json [PATH]]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import JOB_ID  # noqa: E402


def checkCosts(n):
    """
    Microseconds per L{TokenPolicy.check}: new tokens and cached ones.
    """
    from jobmon.devtools.issuer import makeIssuer
    from jobmon.server.tokens import TokenPolicy

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for keyType, label in (("ec", "ES256"), ("rsa", "RS256")):
            issuer = makeIssuer(os.path.join(tmp, keyType), keyType=keyType)
            policy = TokenPolicy(issuer.configPath, cacheSize=n + 10)
            policy.load()
            tokens = [issuer.mint("user%d" % i) for i in range(n)]
            start = time.perf_counter()
            for token in tokens:
                policy.check(token)
            fresh = (time.perf_counter() - start) / n
            start = time.perf_counter()
            for token in tokens:
                policy.check(token)
            cached = (time.perf_counter() - start) / n
            rows[label] = {"new_us": round(fresh * 1e6, 1), "cached_us": round(cached * 1e6, 2)}
    return rows


def roundTrips(env, n, warmup):
    """
    p50/p99 of whoami and stat with the proxy and with the token, on one
    kept-alive connection each.
    """
    results = {}
    for auth, make in (("proxy", env.client), ("token", env.tokenClient)):
        client = make()
        try:
            for name, call in (("whoami", lambda c: c.whoami()),
                               ("stat", lambda c: c.stat(JOB_ID, "job.log"))):
                first = call(client)
                if name == "whoami":
                    assert first["dn"].endswith("CN=Alice Example"), first
                for _ in range(warmup):
                    call(client)
                durations, _ = common.timed(lambda: call(client), n)
                results["{} {}".format(name, auth)] = common.summarize(durations)
        finally:
            client.close()
    return results


def newConnections(env, count):
    """
    p50/p99 of whoami on a new connection each time.
    """
    results = {}
    for auth, make in (("proxy", env.client), ("token", env.tokenClient)):
        client = make()
        try:
            client.whoami()
            durations = []
            for _ in range(count):
                client.close()
                t0 = time.perf_counter()
                client.whoami()
                durations.append(time.perf_counter() - t0)
            results["whoami, new connection, " + auth] = common.summarize(durations)
        finally:
            client.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--connections", type=int, default=300,
                        help="new connections per credential")
    common.jsonOption(parser)
    args = parser.parse_args(argv)
    if not (1 <= args.n <= 100000 and 0 <= args.warmup <= 10000
            and 1 <= args.connections <= 10000):
        parser.error("-n 1..100000, --warmup 0..10000, --connections 1..10000")

    common.installSignalHandlers()
    out = {"machine": common.machine(), "check": checkCosts(args.n)}
    with common.BenchEnv(tokens=True) as env:
        out["round_trip"] = roundTrips(env, args.n, args.warmup)
        out["new_connection"] = newConnections(env, args.connections)
    with common.BenchEnv(tokens=True, daemonToken=True) as env:
        trips = roundTrips(env, args.n, args.warmup)
        out["round_trip"].update(
            ("{}, daemon with a token".format(name), s) for name, s in trips.items()
            if name.startswith("stat"))

    rows = [[alg, v["new_us"], v["cached_us"]] for alg, v in out["check"].items()]
    text = "### Token check, in process\n\n" + common.markdownTable(
        ["algorithm", "new token µs", "cached µs"], rows)
    rows = []
    for section in ("round_trip", "new_connection"):
        for name, s in out[section].items():
            rows.append([name, s["n"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["mean_ms"]])
    text += "\n\n### Through the server (one client, sequential)\n\n" + common.markdownTable(
        ["call", "n", "p50 ms", "p90 ms", "p99 ms", "mean ms"], rows)
    common.emit(out, text, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

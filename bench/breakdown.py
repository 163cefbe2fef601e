"""
Where the round-trip time of a query goes (C{stat}), measured four ways:

  1. time stamps: the server and the daemon run under
     L{traced_twistd} (classes wrapped at run time, the sources unchanged)
     and stamp each step of the path with C{time.monotonic_ns}, one clock
     for all processes; the client stamps its side.  Queries are
     sequential, so each one's steps are found in its own time window;
  2. variants: the same queries, untraced, against processes changed in
     one way each (see L{VARIANTS}: log level, twisted.web form parsing,
     one write per client request, file op in the reactor thread, poll
     wake), in interleaved rounds with fresh processes, to price each cost;
  3. the XML-RPC cost of real results (C{stat}, C{ls} of 20 files), and
     the rare long pause: C{whoami} calls against a server that logs its
     slow garbage collections, as shipped and with C{gc.freeze()};
  4. optionally (C{--py-spy}), sampling profiles of the server and the
     daemon during the queries (C{py-spy record}, if installed).

Usage::

    .venv/bin/python bench/breakdown.py [-n 1000] [--warmup 100] [--rounds 3]
        [--py-spy] [--json [PATH]]
"""

import argparse
import collections
import http.client
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import JOB_ID  # noqa: E402

TRACED = os.path.join(common.BENCH, "traced_twistd.py")

PATH = [
    ("C.send", None, None),
    ("C.req", "client: XML encode, check the kept-alive connection",
     "1 client -> server XML-RPC"),
    ("S.in.client", "client: HTTP headers, TLS write (stdlib); loopback; server wakes",
     "1 client -> server XML-RPC"),
    ("S.recv.jobmon.query",
     "server: TLS read, HTTP parse (request arrives as 2 TLS records: headers, body)",
     "1 client -> server XML-RPC"),
    ("S.call.jobmon.query", "server: identify, XML parse", "1 client -> server XML-RPC"),
    ("S.wake", "server: hub.query (checks, queue, debug log line)", "2 server -> daemon wake"),
    ("S.out.wake", "server: wake line waits for the reactor to write it",
     "2 server -> daemon wake"),
    ("D.in.wake", "loopback, daemon reactor wakes", "2 server -> daemon wake"),
    ("D.wake", "daemon: TLS read, JSON line", "2 server -> daemon wake"),
    ("D.call.jobmon.getJobToDo", "daemon: start the fetch", "2 server -> daemon wake"),
    ("D.out.http", "daemon: Agent builds and writes the request", "3 getJobToDo HTTP call"),
    ("S.in.dhttp", "loopback, server reactor wakes", "3 getJobToDo HTTP call"),
    ("S.recv.jobmon.getJobToDo", "server: TLS read, HTTP parse", "3 getJobToDo HTTP call"),
    ("S.sent.jobmon.getJobToDo", "server: identify, XML parse, hub, encode, write",
     "3 getJobToDo HTTP call"),
    ("S.out.dhttp", "server: answer waits for the reactor to write it",
     "3 getJobToDo HTTP call"),
    ("D.in.http", "loopback, daemon reactor wakes", "3 getJobToDo HTTP call"),
    ("D.ret.jobmon.getJobToDo", "daemon: TLS read, HTTP response, XML parse",
     "3 getJobToDo HTTP call"),
    ("D.op0", "daemon: semaphore, hand to the thread pool", "4 file op + thread hops"),
    ("D.op1", "daemon: the stat itself (in a thread)", "4 file op + thread hops"),
    ("D.opback", "daemon: thread -> reactor hop", "4 file op + thread hops"),
    ("D.call.jobmon.outputJobResult", "daemon: xmlSafe, start the call",
     "5 outputJobResult HTTP call"),
    ("D.out.http", "daemon: Agent builds and writes the request",
     "5 outputJobResult HTTP call"),
    ("S.in.dhttp", "loopback, server reactor wakes", "5 outputJobResult HTTP call"),
    ("S.recv.jobmon.outputJobResult", "server: TLS read, HTTP parse",
     "5 outputJobResult HTTP call"),
    ("S.sent.jobmon.query", "server: identify, XML parse, hub, encode the query's answer",
     "5 outputJobResult HTTP call"),
    ("S.out.client", "server: answer waits for the reactor to write it", "6 response"),
    ("C.resp", "loopback, client reads status and headers", "6 response"),
    ("C.done", "client: read body, XML parse", "6 response"),
]
"""The steps of a query, in order: (event, what the time before it was
spent on, category)."""


VARIANTS = [
    dict(name="as shipped: TCP wake, twistd -n default log (debug lines on)"),
    dict(name="log level info and up (twistd --logger)", quiet=True),
    dict(name="server Site(parsePOSTFormSubmission=False)", variants="noformparse"),
    dict(name="client sends headers and body in one TLS record", oneSend=True),
    dict(name="daemon runs the file op in the reactor thread", variants="inline"),
    dict(name="those four together", variants="inline,noformparse", quiet=True,
         oneSend=True),
    dict(name="--wake poll (the request comes in the poll's answer: no getJobToDo)",
         wake="poll"),
]
"""Each: a name, the variants of L{traced_twistd} (C{-}: none), whether
the processes log at info and up only, whether the client sends each
request in one write, the wake mode."""


def _quiet(args):
    """
    Insert the info-level log observer into twistd's arguments.
    """
    return ["--logger", "traced_twistd.infoObserver"] + args


def _startEnv(variants, quietLog=False, wake="tcp"):
    """
    A L{common.BenchEnv} whose server and daemon run under
    L{traced_twistd} with C{variants}; traces go to its temporary directory.
    """

    def command(role, args, tmp):
        return [
            sys.executable, TRACED, role, os.path.join(tmp, role + ".trace"), variants, "--",
        ] + (_quiet(args) if quietLog else args)

    return common.BenchEnv(wrapper=command, quiet=True, wake=wake)


def _queries(env, n, warmup, clientStamps=None):
    """
    Run C{warmup} then C{n} stat queries; return their durations (s).
    """
    client = env.client()
    try:
        for _ in range(warmup):
            client.stat(JOB_ID, "job.log")
        durations = []
        clock = time.perf_counter
        for _ in range(n):
            if clientStamps is not None:
                clientStamps.append((time.monotonic_ns(), "C.send", "", 0))
            t0 = clock()
            client.stat(JOB_ID, "job.log")
            durations.append(clock() - t0)
            if clientStamps is not None:
                clientStamps.append((time.monotonic_ns(), "C.done", "", 0))
        port = client._conn.sock.getsockname()[1] if client._conn is not None else 0
        return durations, port
    finally:
        client.close()


class _OneSend:
    """
    Make the stdlib client send an HTTP request's headers and body in one
    C{send} (one TLS record) instead of two, while in effect.  A client-side
    variant: C{http.client} writes them separately.
    """

    def __enter__(self):
        self._orig = http.client.HTTPConnection._send_output
        orig = self._orig

        def _send_output(conn, message_body=None, encode_chunked=False):
            if isinstance(message_body, bytes) and not encode_chunked:
                conn._buffer.extend((b"", b""))
                msg = b"\r\n".join(conn._buffer) + message_body
                del conn._buffer[:]
                conn.send(msg)
                return None
            return orig(conn, message_body, encode_chunked)

        http.client.HTTPConnection._send_output = _send_output
        return self

    def __exit__(self, *exc):
        http.client.HTTPConnection._send_output = self._orig
        return False


class _ClientTrace:
    """
    Stamp the in-process client's request about to be written and response
    headers read (http.client wrapped while tracing).
    """

    def __init__(self, events):
        self.events = events

    def __enter__(self):
        self._request = http.client.HTTPConnection.request
        self._getresponse = http.client.HTTPConnection.getresponse
        events, request, getresponse = self.events, self._request, self._getresponse

        def traced_request(conn, *args, **kwargs):
            # Stamped before: the kernel may switch to the woken server
            # inside send(), and this process resume much later.
            events.append((time.monotonic_ns(), "C.req", "", 0))
            return request(conn, *args, **kwargs)

        def traced_getresponse(conn):
            result = getresponse(conn)
            events.append((time.monotonic_ns(), "C.resp", "", 0))
            return result

        http.client.HTTPConnection.request = traced_request
        http.client.HTTPConnection.getresponse = traced_getresponse
        return self

    def __exit__(self, *exc):
        http.client.HTTPConnection.request = self._request
        http.client.HTTPConnection.getresponse = self._getresponse
        return False


def _readTrace(path, clientPort):
    events = []
    with open(path) as f:
        for line in f:
            t, name, kind, port = line.split()
            port = int(port)
            if name in ("S.in", "S.out"):
                if kind == "http":
                    name += ".client" if port == clientPort else ".dhttp"
                else:
                    name += "." + kind
            elif name in ("D.in", "D.out"):
                name += "." + kind
            events.append((int(t), name))
    return events


def analyze(events):
    """
    Split each query's time (C{C.send} to C{C.done}) into the steps of
    L{PATH}.

    @param events: C{(t_ns, name)} from every process.
    @return: C{(steps, totals, incomplete)}: per step the list of durations
        (s), the list of totals (s), and the number of queries whose steps
        could not all be found.
    """
    events.sort()
    steps = [[] for _ in PATH[1:]]
    totals = []
    incomplete = 0
    i = 0
    n = len(events)
    while i < n:
        if events[i][1] != "C.send":
            i += 1
            continue
        start = i
        # This query's window ends at its C.done.
        end = start + 1
        while end < n and events[end][1] not in ("C.done", "C.send"):
            end += 1
        if end >= n or events[end][1] != "C.done":
            incomplete += 1
            i = end
            continue
        found = [events[start][0]]
        j = start + 1
        for name, _, _ in PATH[1:-1]:
            while j < end and events[j][1] != name:
                j += 1
            if j >= end:
                break
            found.append(events[j][0])
            j += 1
        if len(found) != len(PATH) - 1:
            incomplete += 1
            i = end + 1
            continue
        found.append(events[end][0])
        for k in range(1, len(found)):
            steps[k - 1].append((found[k] - found[k - 1]) / 1e9)
        totals.append((found[-1] - found[0]) / 1e9)
        i = end + 1
    return steps, totals, incomplete


def breakdownTable(steps, totals):
    """
    The steps as a Markdown table with their category subtotals.
    """
    rows = []
    categories = collections.OrderedDict()
    for (name, what, category), values in zip(PATH[1:], steps):
        s = common.summarize(values)
        rows.append([category, what, s["p50_ms"], s["mean_ms"], s["p90_ms"]])
        categories.setdefault(category, 0.0)
        categories[category] += s["mean_ms"]
    total = common.summarize(totals)
    text = common.markdownTable(["part", "step", "p50 ms", "mean ms", "p90 ms"], rows)
    catRows = [
        [c, round(v, 3), round(100.0 * v / total["mean_ms"], 1)]
        for c, v in categories.items()
    ]
    catRows.append(["total (C.send to C.done)", total["mean_ms"], 100.0])
    text += "\n\n" + common.markdownTable(["part", "mean ms", "% of mean"], catRows)
    text += "\n\nTraced queries: p50 {:.2f} ms, mean {:.2f} ms, p99 {:.2f} ms.".format(
        total["p50_ms"], total["mean_ms"], total["p99_ms"])
    return text, categories, total


def tracedRun(n, warmup):
    """
    Start traced processes, run the queries, stop them (which writes the
    traces), and analyze.
    """
    clientEvents = []
    with _startEnv("trace") as env:
        traceDir = env.tmp
        with _ClientTrace(clientEvents):
            durations, port = _queries(env, n, warmup, clientEvents)
        for proc in (env.daemon, env.server):
            proc.stop()
        events = [(t, name) for t, name, _, _ in clientEvents]
        for role in ("server", "daemon"):
            events += _readTrace(os.path.join(traceDir, role + ".trace"), port)
    return analyze(events), durations


def variantRun(n, warmup, variants="-", quiet=False, oneSend=False, wake="tcp", **_):
    """
    Measure stat queries against processes run with C{variants} (see
    L{traced_twistd}).

    @return: the durations (s).
    """
    with _startEnv(variants, quietLog=quiet, wake=wake) as env:
        if oneSend:
            with _OneSend():
                durations, _ = _queries(env, n, warmup)
        else:
            durations, _ = _queries(env, n, warmup)
    return durations


def variantRounds(n, warmup, rounds, say):
    """
    Run every variant C{rounds} times, interleaved, each time with fresh
    processes, so that drift of the machine and luck of a start touch all
    alike.

    @return: a list of dicts: the variant's name, its summary over all its
        queries, and the p50 of each round.
    """
    perVariant = {v["name"]: ([], []) for v in VARIANTS}
    for r in range(rounds):
        for v in VARIANTS:
            name = v["name"]
            say("breakdown: round {}/{}, variant {!r}".format(r + 1, rounds, name))
            durations = variantRun(n, warmup, **v)
            perVariant[name][0].extend(durations)
            perVariant[name][1].append(common.summarize(durations)["p50_ms"])
    results = []
    for name in (v["name"] for v in VARIANTS):
        durations, p50s = perVariant[name]
        s = common.summarize(durations)
        s["variant"] = name
        s["round_p50_ms"] = p50s
        results.append(s)
    return results


IDLE = ("EPollReactor.doPoll ", "Condition.wait ", "_wait_for_tstate_lock ")
"""Leaf functions where a thread waits: py-spy counts them as active."""


def gcRun(n=1000):
    """
    The rare long pause: C{n} C{whoami} calls against a server that logs its
    slow garbage collections, as shipped and with C{gc.freeze()} after
    start-up.

    @return: a list of dicts: variant, max and p99 in ms, the calls over
        5 ms, and the server's slow collections.
    """
    results = []
    for name, variants in [("as shipped", "gclog"),
                           ("gc.collect(); gc.freeze() once running", "gclog,gcfreeze")]:
        with _startEnv(variants) as env:
            client = env.client()
            try:
                client.whoami()
                durations, _ = common.timed(client.whoami, n)
            finally:
                client.close()
            collections_ = [
                line.split("bench-gc: ", 1)[1]
                for line in env.server.output(10000).splitlines()
                if "bench-gc: " in line
            ]
        s = common.summarize(durations)
        results.append({
            "variant": name,
            "max_ms": s["max_ms"],
            "p99_ms": s["p99_ms"],
            "slow_calls": [(i, round(d * 1000, 1)) for i, d in enumerate(durations)
                           if d > 0.005],
            "server_gc": collections_,
        })
    return results


def xmlCosts(number=500):
    """
    What XML-RPC costs for real results: the C{outputJobResult} call body
    the daemon sends for C{stat} and for C{ls} of 20 files, and the answer
    the server sends the user; each is encoded once on one side and parsed
    once on the other, in pure Python (C{xmlrpc.client} and expat).

    @return: a list of dicts: op, sizes in bytes, microseconds per
        C{loads} and C{dumps}.
    """
    import timeit
    import xmlrpc.client

    with common.BenchEnv(quiet=True) as env:
        client = env.client()
        try:
            results = {
                "stat": client.query(JOB_ID, {"op": "stat", "path": "job.log"}),
                "ls": client.query(JOB_ID, {"op": "ls", "path": "dir20"}),
            }
        finally:
            client.close()
    rows = []
    for op, result in results.items():
        post = xmlrpc.client.dumps((JOB_ID, "id-1", result), "jobmon.outputJobResult")
        answer = xmlrpc.client.dumps((result,), methodresponse=True)
        rows.append({
            "op": op,
            "post_bytes": len(post),
            "answer_bytes": len(answer),
            "post_loads_us": round(1e6 * timeit.timeit(
                lambda: xmlrpc.client.loads(post, use_builtin_types=True),
                number=number) / number, 1),
            "answer_dumps_us": round(1e6 * timeit.timeit(
                lambda: xmlrpc.client.dumps((result,), methodresponse=True),
                number=number) / number, 1),
            "answer_loads_us": round(1e6 * timeit.timeit(
                lambda: xmlrpc.client.loads(answer, use_builtin_types=True),
                number=number) / number, 1),
        })
    return rows


def xmlTable(rows):
    """
    The XML-RPC costs as Markdown.
    """
    return "XML-RPC work on a result (pure Python, this machine):\n\n" + common.markdownTable(
        ["op", "outputJobResult body bytes", "server parses it, us",
         "server encodes the answer, us", "answer bytes", "client parses it, us"],
        [[r["op"], r["post_bytes"], r["post_loads_us"], r["answer_dumps_us"],
          r["answer_bytes"], r["answer_loads_us"]] for r in rows])


def gcTable(results, n):
    """
    The garbage-collection experiment as Markdown.
    """
    return "Rare pauses ({} whoami calls after the first; server's collections over 1 ms):" \
        "\n\n".format(n) + common.markdownTable(
            ["server", "p99 ms", "max ms", "calls over 5 ms (index, ms)",
             "server collections over 1 ms"],
            [[r["variant"], r["p99_ms"], r["max_ms"],
              ", ".join("#{} {}".format(i, d) for i, d in r["slow_calls"]) or "none",
              "; ".join(r["server_gc"]) or "none"] for r in results])


def _classify(frame):
    if frame.startswith(IDLE):
        return "idle (epoll_wait, pool threads waiting)"
    rules = [
        ("TLS (pyOpenSSL / OpenSSL, twisted.protocols.tls)",
         ("OpenSSL/", "protocols/tls.py", "_sslverify", "cffi")),
        ("XML-RPC encode/parse (xmlrpc.client, expat)", ("xmlrpc/client.py", "expat")),
        ("logging (twisted.logger)", ("twisted/logger/",)),
        ("HTTP (twisted.web)", (
            "twisted/web/http.py", "twisted/web/_newclient.py", "twisted/web/client.py",
            "twisted/web/server.py", "twisted/web/http_headers.py", "twisted/web/_abnf",
            "twisted/web/_http",
        )),
        ("thread pool", ("threadpool.py", "_threads/", "threading.py", "queue.py",
                         "twisted/internet/threads.py")),
        ("JobMon code", ("jobmon/",)),
        ("Deferreds / coroutines", ("twisted/internet/defer.py",)),
        ("reactor, sockets", ("twisted/internet/",)),
    ]
    for label, needles in rules:
        if any(needle in frame for needle in needles):
            return label
    return None


def summarizeProfile(path, top=12):
    """
    Summarize a C{py-spy record -f raw} file: share of samples per category
    (the frame nearest the leaf that matches decides) and the busiest leaf
    functions.
    """
    byCategory = collections.Counter()
    byLeaf = collections.Counter()
    total = 0
    for frames, count in common.pyspyStacks(path):
        total += count
        byLeaf[frames[-1]] += count
        label = _classify(frames[-1]) if frames[-1].startswith(IDLE) else None
        for frame in reversed(frames if label is None else ()):
            label = _classify(frame)
            if label:
                break
        byCategory[label or "other"] += count
    return {
        "samples": total,
        "categories": [(k, v, round(100.0 * v / total, 1)) for k, v in byCategory.most_common()]
        if total else [],
        "leaves": [(k, v, round(100.0 * v / total, 1)) for k, v in byLeaf.most_common(top)]
        if total else [],
    }


def pyspyRun(seconds, rate=250):
    """
    Profile the server and the daemon with py-spy while queries run for
    about C{seconds}.
    """
    if common.PYSPY is None:
        return None
    results = {}
    with common.BenchEnv(quiet=True) as env:
        spies = []
        try:
            for role, proc in (("server", env.server), ("daemon", env.daemon)):
                out = os.path.join(env.tmp, role + ".pyspy")
                spy = common.startPySpy(proc.pid, out, seconds, rate, "py-spy " + role)
                spies.append((role, spy, out))
            try:
                for role, spy, _ in spies:
                    spy.waitFor(r"Sampling process", timeout=15)
            except RuntimeError as e:
                # No permission to attach (ptrace), or an unsupported build.
                return {"error": str(e).splitlines()[0]}
            client = env.client()
            count = 0
            try:
                deadline = time.monotonic() + seconds + 0.5
                while time.monotonic() < deadline:
                    client.stat(JOB_ID, "job.log")
                    count += 1
            finally:
                client.close()
            for role, spy, out in spies:
                spy.popen.wait(seconds + 30)
                spy.stop()
                if os.path.exists(out):
                    results[role] = summarizeProfile(out)
            results["queries"] = count
        finally:
            for _, spy, _ in spies:
                spy.stop()
    return results


def profileTables(profile):
    """
    The py-spy summaries as Markdown.
    """
    parts = []
    for role in ("server", "daemon"):
        p = profile.get(role)
        if not p:
            continue
        parts.append("{} ({} samples while {} stat queries ran):\n\n".format(
            role, p["samples"], profile.get("queries")) + common.markdownTable(
            ["category (frame nearest the leaf)", "samples", "%"],
            [list(r) for r in p["categories"]]))
        parts.append("{} busiest leaf functions:\n\n".format(role) + common.markdownTable(
            ["function", "samples", "%"], [list(r) for r in p["leaves"]]))
    return "\n\n".join(parts)


def run(n, warmup, rounds=3, pyspy=False, progress=True):
    """
    Run the traced queries and the variants (and py-spy if asked).

    @return: C{(document, markdown)}.
    """
    def say(m):
        if progress:
            common.say(m)

    say("breakdown: traced server and daemon, {} stat queries".format(n))
    (steps, totals, incomplete), _ = tracedRun(n, warmup)
    text, categories, total = breakdownTable(steps, totals)
    if incomplete:
        text += " {} queries left out (steps not all found).".format(incomplete)
    document = {
        "steps": [
            dict(common.summarize(v), event=name, step=what, part=cat)
            for (name, what, cat), v in zip(PATH[1:], steps)
        ],
        "parts_mean_ms": dict(categories),
        "total": total,
        "incomplete": incomplete,
    }
    variants = variantRounds(n, warmup, rounds, say)
    document["variants"] = variants
    text += (
        "\n\nVariants (untraced; {} rounds of {} stat queries each, fresh processes "
        "every round, rounds interleaved):\n\n".format(rounds, n)
    )
    text += common.markdownTable(
        ["variant", "p50 ms", "p90 ms", "p99 ms", "mean ms", "p50 of each round"],
        [[v["variant"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["mean_ms"],
          " / ".join("{:.2f}".format(p) for p in v["round_p50_ms"])]
         for v in variants],
    )
    say("breakdown: XML-RPC costs of results")
    xml = xmlCosts()
    document["xml"] = xml
    text += "\n\n" + xmlTable(xml)
    say("breakdown: garbage collection pauses")
    gc = gcRun()
    document["gc"] = gc
    text += "\n\n" + gcTable(gc, 1000)
    if pyspy:
        say("breakdown: py-spy profiles")
        profile = pyspyRun(max(3, min(20, n * 0.003)))
        if profile is None:
            text += "\n\npy-spy is not installed: no profiles."
        elif "error" in profile:
            text += "\n\npy-spy could not profile: {}".format(profile["error"])
        else:
            document["pyspy"] = profile
            text += "\n\n" + profileTables(profile)
    return document, text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="stat queries per run (1000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed queries first (100)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the variants, each with fresh processes (3)")
    parser.add_argument("--py-spy", dest="pyspy", action="store_true",
                        help="also profile the server and daemon with py-spy")
    common.jsonOption(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 1000000 or args.warmup < 0 or not 1 <= args.rounds <= 100:
        parser.error("-n must be 1..1000000, --warmup >= 0, --rounds 1..100")
    common.installSignalHandlers()
    document, text = run(args.n, args.warmup, rounds=args.rounds, pyspy=args.pyspy)
    document = {"benchmark": "breakdown", "machine": common.machine(), "n": args.n,
                **document}
    common.emit(document, text, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

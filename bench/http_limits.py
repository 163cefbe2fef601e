"""
The HTTPS connection layer under clients that misbehave: the server's memory
and responsiveness (issue 13).

One real server and a daemon for job.1 (L{common.BenchEnv}; the daemon with
C{--max-result} (8 MiB: a cat answer of about 11 MiB)), a 16 MiB
C{big.bin} in the job's directory, then, each part bounded in time:

  1. C{unread}: C{--unread} (20) connections each ask for a C{cat} of
     C{big.bin} (about 11 MiB of XML-RPC) and never
     read; the server's RSS is read once its CPU settles (at most
     C{--settle} s) while they are open, then after they are closed (what
     was given back).
  2. C{pipelined}: with C{--jobs} (10,000) poll-mode jobs registered by
     alice, C{--conns} (1) TLS connections each send C{--pipeline} (60)
     pipelined C{jobmon.listJobs({"limit": L})} calls and never read; RSS
     as above.  For L = 1000 and L = 10000 (a server that refuses pages over
     1000 answers fault 400).
  3. C{bigbody}: a kept-alive client times C{jobmon.whoami} in a loop
     (the baseline for 2 s), while another connection sends C{--bodies} (5)
     requests of about 10 MB (an array of 200,000 short strings, refused
     after parsing since C{whoami} takes no argument), reading each answer.
  4. C{handshakes}: 400 TCP connections to the HTTPS port from 127.0.0.1
     that never start their TLS handshake: how many the server still
     holds after 12 s, and its descriptors.
  5. C{contentlength}: a request announcing a 1 GiB body, headers only:
     how long until the server answers (5 s at most), and with what; and
     the C{Server} header of an answer.

Usage::

    .venv/bin/python bench/http_limits.py [--jobs 10000] [--pipeline 60]
        [--conns 1] [--unread 20] [--bodies 5] [--settle 60]
        [--max-result 8388608] [--parts unread,pipelined,bigbody,contentlength,handshakes]
        [--json [PATH]]

Everything runs on loopback and is stopped at the end.  Run it from another
checkout (C{git worktree}) to measure another version: the server comes from
the tree the script is in.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import threading
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    BenchEnv,
    cpuSeconds,
    installSignalHandlers,
    markdownTable,
    mib,
    procStatus,
    say,
    settle,
    summarize,
)

PARTS = ("unread", "pipelined", "bigbody", "contentlength", "handshakes")


def tlsContext(env):
    """
    A client TLS context with alice's proxy, trusting the bench CA.
    """
    ctx = ssl.create_default_context(capath=env.caDir)
    ctx.check_hostname = False
    ctx.load_cert_chain(env.proxy)
    return ctx


def connectTLS(env, ctx, timeout=30.0):
    """
    A TLS connection to the server, handshake done.
    """
    raw = socket.create_connection(("127.0.0.1", env.httpsPort), timeout=timeout)
    return ctx.wrap_socket(raw)


def request(method, *params, extra=b""):
    """
    The bytes of one HTTP/1.1 XML-RPC request.
    """
    body = xmlrpc.client.dumps(params, method).encode()
    return (b"POST /RPC2 HTTP/1.1\r\nHost: bench\r\nContent-Type: text/xml\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (extra, len(body), body))


def readResponse(sock):
    """
    Read one HTTP response (Content-Length or chunked) from C{sock}.

    @return: C{(head, body)}.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed: {!r}".format(data[:200]))
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head, rest[:length]
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size, rest = rest.split(b"\r\n", 1)
        n = int(size, 16)
        while len(rest) < n + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed in a chunk")
            rest += chunk
        if n == 0:
            return head, body
        body, rest = body + rest[:n], rest[n + 2:]


def settleAll(pids, limit, interval=0.5, quiet=0.05, calm=2):
    """
    Wait until processes C{pids} together use less than C{quiet} CPU
    seconds per C{interval}, C{calm} intervals in a row (the server waits
    on the daemon while the daemon works), for at most C{limit} seconds.
    """
    deadline = time.monotonic() + limit
    before = sum(cpuSeconds(p) or 0 for p in pids)
    still = 0
    while time.monotonic() < deadline and still < calm:
        time.sleep(interval)
        now = sum(cpuSeconds(p) or 0 for p in pids)
        still = still + 1 if now - before < quiet else 0
        before = now


def rss(env):
    return procStatus(env.server.pid)


def registerJobs(env, n):
    """
    Register C{n} poll-mode jobs as alice.
    """
    client = env.client()
    for i in range(n):
        client._call("jobmon.registerJob", ("bench.{:06d}".format(i), {
            "host": "wn{:03d}.example.org".format(i % 500), "wake": "poll",
            "instance": "bench", "batch": "slurm", "pid": 1000 + i,
            "workdir": "/scratch/job{}".format(i)}))
    page = client._call("jobmon.listJobs", ({"limit": 1000},))
    size = len(xmlrpc.client.dumps((page,), methodresponse=True).encode())
    client.close()
    return size


def pipelined(env, ctx, conns, count, limit, settleLimit):
    """
    C{conns} connections, each sending C{count} pipelined listJobs calls
    and reading nothing.
    """
    before = rss(env)
    socks = []
    for _ in range(conns):
        s = connectTLS(env, ctx)
        s.sendall(request("jobmon.listJobs", {"limit": limit}) * count)
        socks.append(s)
    time.sleep(0.5)
    settle(env.server.pid, limit=settleLimit)
    during = rss(env)
    for s in socks:
        s.close()
    time.sleep(1.5)
    settle(env.server.pid, limit=10)
    after = rss(env)
    return {"limit": limit, "conns": conns, "pipelined": count, "before": before,
            "during": during, "after": after}


def unread(env, ctx, conns, settleLimit):
    """
    C{conns} connections, each asking for a C{cat} of C{big.bin} (the
    daemon's result cap: about 11 MiB of XML-RPC) and reading nothing.
    """
    before = rss(env)
    socks = []
    for _ in range(conns):
        s = connectTLS(env, ctx)
        s.sendall(request("jobmon.query", "job.1", {"op": "cat", "path": "big.bin"}))
        socks.append(s)
    time.sleep(0.5)
    settleAll([env.server.pid, env.daemon.pid], settleLimit)
    during = rss(env)
    for s in socks:
        s.close()
    time.sleep(1.5)
    settleAll([env.server.pid, env.daemon.pid], 10)
    after = rss(env)
    return {"conns": conns, "before": before, "during": during, "after": after}


def resultSize(env):
    """
    The bytes of the answer to a C{cat} of C{big.bin}.
    """
    client = env.client()
    result = client._call("jobmon.query", ("job.1", {"op": "cat", "path": "big.bin"}))
    client.close()
    return len(xmlrpc.client.dumps((result,), methodresponse=True).encode())


def bigBodies(env, ctx, bodies, baseline=2.0):
    """
    Time whoami on a kept-alive connection alone, then while large bodies
    are sent on another.
    """
    client = env.client()
    client.whoami()
    samples = {"alone": [], "during": []}
    phase = ["alone"]
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t0 = time.perf_counter()
            client.whoami()
            samples[phase[0]].append(time.perf_counter() - t0)
            time.sleep(0.005)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(baseline)
    big = request("jobmon.whoami", ["x" * 16] * 200000)
    answers = []
    s = connectTLS(env, ctx, timeout=60)
    phase[0] = "during"
    t0 = time.perf_counter()
    for _ in range(bodies):
        s.sendall(big)
        head, body = readResponse(s)
        answers.append(b"<int>400</int>" in body)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join(10)
    s.close()
    client.close()
    return {"body_bytes": len(big), "bodies": bodies, "seconds": elapsed,
            "all_400": all(answers),
            "alone": summarize(sorted(samples["alone"])),
            "during": summarize(sorted(samples["during"]))}


def stalledHandshakes(env, count=400, wait=12.0):
    """
    C{count} TCP connections that never start their TLS handshake: how many
    are still open after C{wait} seconds.
    """
    before = rss(env)
    socks = []
    t0 = time.monotonic()
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", env.httpsPort), timeout=5)
        socks.append(s)
    opening = time.monotonic() - t0
    time.sleep(1.0)
    early = _open(socks)
    time.sleep(wait - 1.0)
    late = _open(socks)
    during = rss(env)
    for s in socks:
        s.close()
    return {"count": count, "opening": opening, "open_after_1s": early, "open_after": late, "wait": wait,
            "fds_before": before["fds"], "fds_during": during["fds"]}


def _open(socks):
    """
    How many of C{socks} the server has not closed.
    """
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(1)
            if data:
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
        finally:
            s.setblocking(True)
    return n


def contentLength(env, ctx, wait=5.0):
    """
    Headers announcing a 1 GiB body: how long until the server answers.
    """
    s = connectTLS(env, ctx, timeout=wait)
    t0 = time.perf_counter()
    s.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: bench\r\nContent-Type: text/xml\r\n"
              b"Content-Length: 1073741824\r\n\r\n")
    try:
        head, _ = readResponse(s)
        answer = head.split(b"\r\n", 1)[0].decode()
        seconds = time.perf_counter() - t0
    except (socket.timeout, EOFError, OSError) as e:
        answer, seconds = "none ({})".format(type(e).__name__), None
    s.close()
    s = connectTLS(env, ctx)
    s.sendall(request("jobmon.whoami"))
    head, _ = readResponse(s)
    s.close()
    server = [line for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
    return {"answer": answer, "seconds": seconds,
            "server_header": server[0].decode() if server else "(none)"}


def report(doc):
    lines = []
    rows = []
    if "unread" in doc:
        lines.append("The answer to a cat of big.bin: {} bytes.".format(doc["result"]))
        u = doc["unread"]
        rows.append([u["conns"], 1, "cat big.bin", mib(u["before"]["VmRSS"]),
                     mib(u["during"]["VmRSS"]), mib(u["after"]["VmRSS"])])
    if "pipelined" in doc:
        lines.append("Jobs registered: {}; one listJobs page of 1000: {} bytes of "
                     "XML.".format(doc["jobs"], doc["page"]))
        rows += [[r["conns"], r["pipelined"], "listJobs limit {}".format(r["limit"]),
                  mib(r["before"]["VmRSS"]), mib(r["during"]["VmRSS"]),
                  mib(r["after"]["VmRSS"])] for r in doc["pipelined"]]
    if rows:
        lines.append("\n" + markdownTable(
            ["connections", "pipelined", "call", "RSS before (MiB)",
             "RSS not reading (MiB)", "RSS after close (MiB)"], rows))
    if "bigbody" in doc:
        b = doc["bigbody"]
        lines.append("\n{} bodies of {:.1f} MB in {:.2f} s (all fault 400: {}).\n".format(
            b["bodies"], b["body_bytes"] / 1e6, b["seconds"], b["all_400"]))
        rows = [[k, b[k]["n"], b[k]["p50_ms"], b[k]["p99_ms"], b[k]["max_ms"]]
                for k in ("alone", "during")]
        lines.append(markdownTable(["whoami", "calls", "p50 (ms)", "p99 (ms)", "max (ms)"],
                                   rows))
    if "handshakes" in doc:
        lines.append("\nStalled handshakes: {count} opened in {opening:.1f} s, "
                     "{open_after_1s} open 1 s later, {open_after} after {wait:g} s; "
                     "server descriptors {fds_before} before, {fds_during} at the "
                     "end.".format(**doc["handshakes"]))
    if "contentlength" in doc:
        c = doc["contentlength"]
        lines.append("\nContent-Length 1 GiB, headers only: answer {} after {}; {}.".format(
            c["answer"], "{:.1f} ms".format(c["seconds"] * 1000) if c["seconds"] else "-",
            c["server_header"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--pipeline", type=int, default=60)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--unread", type=int, default=20)
    parser.add_argument("--bodies", type=int, default=5)
    parser.add_argument("--settle", type=float, default=60.0)
    parser.add_argument("--max-result", type=int, default=8 * 1024 * 1024,
                        help="the daemon's --max-result (8 MiB: an 11 MiB answer)")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--json", nargs="?", const="-", default=None)
    args = parser.parse_args(argv)
    installSignalHandlers()
    doc = {"jobs": args.jobs}
    parts = set(args.parts.split(","))
    with BenchEnv(daemon=False) as env:
        ctx = tlsContext(env)
        with open(os.path.join(env.workdir, "big.bin"), "wb") as f:
            f.write(os.urandom(16 * 1024 * 1024))
        env.daemon = env.startDaemon(
            "job.1", env.workdir, ["--max-result", str(args.max_result)])
        if "unread" in parts:
            doc["result"] = resultSize(env)
            say("connections not reading")
            doc["unread"] = unread(env, ctx, args.unread, args.settle)
        if "pipelined" in parts:
            say("registering {} jobs".format(args.jobs))
            doc["page"] = registerJobs(env, args.jobs)
            doc["pipelined"] = []
            for limit in (1000, 10000):
                say("pipelined listJobs, limit {}".format(limit))
                doc["pipelined"].append(
                    pipelined(env, ctx, args.conns, args.pipeline, limit, args.settle))
        if "bigbody" in parts:
            say("large bodies")
            doc["bigbody"] = bigBodies(env, ctx, args.bodies)
        if "contentlength" in parts:
            say("content-length")
            doc["contentlength"] = contentLength(env, ctx)
        if "handshakes" in parts:
            say("stalled handshakes")
            doc["handshakes"] = stalledHandshakes(env)
    if args.json:
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
            return
        with open(args.json, "w") as f:
            f.write(text)
    print(report(doc))


if __name__ == "__main__":
    main()

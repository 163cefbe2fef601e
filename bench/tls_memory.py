"""
Memory of one idle server-side TLS connection, by configuration: pyOpenSSL
connections handshaken in memory, in one process, with the JobMon server's
own TLS context (L{jobmon.server.tls.ServerContextFactory}) and alice's proxy on the
client side: what one idle TLS connection (a wake channel) costs the server,
and what each TLS setting changes.  It runs in this process, not through a
server: the variants change the server's context in ways no server option
does.

For each variant a fresh process makes N server connections the way
Twisted's TLS transport does (memory BIOs), completes each handshake with a
client connection, exchanges one line each way (the wake channel's hello
and welcome), reads the peer's verified chain as the server does to learn
who is calling, then frees every client connection.  It reports, per server
connection, the growth of the C heap in use (glibc C{mallinfo2}) and of the
RSS.  Variants:

  - C{server}: as the JobMon server (TLS 1.3, client certificate required,
    C{MODE_RELEASE_BUFFERS}, no tickets, no session cache);
  - C{bare}: a server connection object before any handshake (the floor);
  - C{no-release}: without C{MODE_RELEASE_BUFFERS};
  - C{no-client-cert}: the server does not ask for a client certificate;
  - C{tls12}: TLS 1.2;
  - C{handshake-only}: no line exchanged after the handshake;
  - C{socket-bio}: OpenSSL reads and writes a socket itself (a
    C{socketpair}) instead of memory BIOs;
  - C{bio-reset}: as C{server}, then the connection's memory BIOs are
    replaced by fresh ones once idle (what a transport could do to give back
    the handshake's buffers);
  - C{p256}: the server's key exchange groups restricted to P-256
    (C{Context.set_tmp_ecdh}) instead of OpenSSL's defaults.

Variants combine with C{+} (C{no-client-cert+p256}); a few combinations
are measured by default.  Beside them, C{sealed} is the sealed wake
transport that replaces TLS on the wake channel
(L{jobmon.protocols.sealed}): the server's L{SealedServerProtocol} after its
handshake and one line each way (the wake protocol above it excluded, as
the TLS variants exclude Twisted's TLS transport).

Usage::

    .venv/bin/python bench/tls_memory.py [-n 2000] [--variants server,...]
        [--key-type ec|rsa] [--json [PATH]]
"""

import argparse
import ctypes
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

COMBINED = ["no-client-cert+p256", "no-client-cert+p256+bio-reset",
            "p256+bio-reset"]
"""Combinations measured by default, after the single variants."""

VARIANTS = [
    ("server", "as the JobMon server"),
    ("bare", "a server connection before any handshake"),
    ("no-release", "without MODE_RELEASE_BUFFERS"),
    ("no-client-cert", "no client certificate asked"),
    ("tls12", "TLS 1.2 instead of 1.3"),
    ("handshake-only", "no line exchanged after the handshake"),
    ("socket-bio", "socket BIO (socketpair) instead of memory BIOs"),
    ("bio-reset", "memory BIOs replaced by fresh ones once idle"),
    ("p256", "key exchange restricted to P-256 (set_tmp_ecdh)"),
    ("sealed", "the sealed wake transport instead of TLS"),
]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2


def heapInUse():
    """
    Bytes of the C heap in use (glibc).
    """
    return _libc.mallinfo2().uordblks


def rssKiB():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pump(src, dst):
    try:
        data = src.bio_read(65536)
    except Exception:
        return False
    if data:
        dst.bio_write(data)
        return True
    return False


def _step(conn, fn):
    from OpenSSL import SSL

    try:
        fn()
        return True
    except SSL.WantReadError:
        return False


def makePair(features, serverCtx, clientCtx):
    """
    One server connection, handshaken with a fresh client connection;
    returns C{(server, client, keep)} where C{keep} holds what must live as
    long as the server connection (sockets).
    """
    from OpenSSL import SSL

    keep = ()
    if "bare" in features:
        server = SSL.Connection(serverCtx, None)
        server.set_accept_state()
        return server, None, keep
    if "socket-bio" in features:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        server = SSL.Connection(serverCtx, a)
        client = SSL.Connection(clientCtx, b)
        keep = (a, b)
    else:
        server = SSL.Connection(serverCtx, None)
        client = SSL.Connection(clientCtx, None)
    server.set_accept_state()
    client.set_connect_state()
    memory = "socket-bio" not in features
    done = {"s": False, "c": False}
    for _ in range(20):
        if not done["c"]:
            done["c"] = _step(client, client.do_handshake)
        if memory:
            _pump(client, server)
        if not done["s"]:
            done["s"] = _step(server, server.do_handshake)
        if memory:
            _pump(server, client)
        if done["s"] and done["c"]:
            break
    if not (done["s"] and done["c"]):
        raise RuntimeError("handshake did not complete")

    def recv(conn):
        for _ in range(5):
            try:
                return conn.recv(4096)
            except SSL.WantReadError:
                if memory:
                    _pump(client, server)
                    _pump(server, client)
        raise RuntimeError("no data")

    if "handshake-only" not in features:
        client.send(b'{"type":"hello","job_id":"x","token":"y"}\n')
        if memory:
            _pump(client, server)
        recv(server)
        server.send(b'{"type":"welcome","keepalive":20}\n')
        if memory:
            _pump(server, client)
        recv(client)
        if memory:
            # Session tickets, if any, and the client's reply.
            _pump(client, server)
    # The server learns who calls from the verified chain.
    if "no-client-cert" not in features:
        from jobmon.server.identity import identityOfConnection

        identityOfConnection(server)
    return server, client, keep


def _resetBIOs(server):
    """
    Give the connection fresh, empty memory BIOs (the old ones, and the
    buffers they grew to during the handshake, are freed).  pyOpenSSL has
    no public way to do this: this variant reaches into its private
    C{_lib}, C{_ssl}, C{_into_ssl} and C{_from_ssl}, to price what a change
    in Twisted or pyOpenSSL would save.
    """
    from OpenSSL.SSL import _lib

    # SSL_set_bio frees the old BIOs; the SSL object owns the new ones, as
    # pyOpenSSL's own (raw pointers, freed by SSL_free).
    into = _lib.BIO_new(_lib.BIO_s_mem())
    out = _lib.BIO_new(_lib.BIO_s_mem())
    _lib.SSL_set_bio(server._ssl, into, out)
    server._into_ssl = into
    server._from_ssl = out


def contexts(features, pkiDir, proxy):
    """
    The server's context (as JobMon builds it, then changed by the variant)
    and a client context presenting C{proxy}.
    """
    from OpenSSL import SSL, crypto

    from jobmon.certificates import readPEMFile
    from jobmon.server.tls import ServerContextFactory

    factory = ServerContextFactory(
        os.path.join(pkiDir, "hostcert.pem"), os.path.join(pkiDir, "hostkey.pem"),
        os.path.join(pkiDir, "ca"))
    serverCtx = factory.getContext()
    if "no-release" in features:
        serverCtx.clear_mode(SSL.MODE_RELEASE_BUFFERS)
    if "no-client-cert" in features:
        serverCtx.set_verify(SSL.VERIFY_NONE)
    if "p256" in features:
        from cryptography.hazmat.primitives.asymmetric import ec

        serverCtx.set_tmp_ecdh(ec.SECP256R1())
    clientCtx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if "tls12" in features:
        clientCtx.set_max_proto_version(SSL.TLS1_2_VERSION)
    certs, key = readPEMFile(proxy)
    clientCtx.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, certs[0]))
    for c in certs[1:]:
        clientCtx.add_extra_chain_cert(crypto.load_certificate(crypto.FILETYPE_PEM, c))
    clientCtx.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, key))
    clientCtx.set_verify(SSL.VERIFY_NONE)
    return serverCtx, clientCtx


def _sealedPair():
    """
    A sealed server connection after its handshake and one line each way.
    """
    from twisted.internet.protocol import Protocol
    from twisted.internet.testing import StringTransport

    from jobmon.protocols.sealed import SealedClientProtocol, SealedServerProtocol

    secret = "x" * 32
    server = SealedServerProtocol(Protocol(), lambda jobId, kid: secret, lambda t, w: None)
    client = SealedClientProtocol(Protocol(), "job.1", secret)
    serverT, clientT = StringTransport(), StringTransport()
    server.makeConnection(serverT)
    client.makeConnection(clientT)
    server.dataReceived(clientT.value())
    client.dataReceived(serverT.value())
    clientT.clear()
    serverT.clear()
    client.write(b'{"type":"hello","job_id":"job.1","token":"' + secret.encode() + b'"}\n')
    server.dataReceived(clientT.value())
    server.write(b'{"type":"welcome","keepalive":20}\n')
    client.dataReceived(serverT.value())
    serverT.clear()
    # The TCP transport is not the transport's own memory (as for TLS).
    server.transport = None
    return server


def measureSealed(n):
    """
    As L{measureVariant}, for the sealed transport.
    """
    for _ in range(20):
        _sealedPair()
    gc.collect()
    heap0, rss0 = heapInUse(), rssKiB()
    servers = [_sealedPair() for _ in range(n)]
    gc.collect()
    heap1, rss1 = heapInUse(), rssKiB()
    del servers
    gc.collect()
    heap2 = heapInUse()
    return {
        "variant": "sealed",
        "n": n,
        "protocol": "sealed v1",
        "cipher": "AES-256-GCM",
        "group": "X25519",
        "heap_bytes_per_connection": round((heap1 - heap0) / n),
        "rss_kib_per_connection": round((rss1 - rss0) / n, 1),
        "heap_bytes_left_after_free": round((heap2 - heap0) / n),
    }


def measureVariant(variant, n, pkiDir, proxy):
    """
    Make C{n} idle server connections in this process; return the growth
    per connection.
    """
    if variant == "sealed":
        return measureSealed(n)
    features = set(variant.split("+")) - {"server"}
    serverCtx, clientCtx = contexts(features, pkiDir, proxy)
    # Warm-up: lazily loaded CA files, provider caches.
    for _ in range(20):
        makePair(features, serverCtx, clientCtx)
    gc.collect()
    heap0, rss0 = heapInUse(), rssKiB()
    servers = []
    for _ in range(n):
        server, client, keep = makePair(features, serverCtx, clientCtx)
        if "bio-reset" in features:
            _resetBIOs(server)
        servers.append((server, keep[0] if keep else None))
        if keep:
            keep[1].close()
        del client
    gc.collect()
    heap1, rss1 = heapInUse(), rssKiB()
    bare = "bare" in features
    tls = servers[0][0].get_protocol_version_name() if not bare else "-"
    cipher = servers[0][0].get_cipher_name()
    group = servers[0][0].get_group_name() if not bare else None
    del servers
    gc.collect()
    heap2 = heapInUse()
    return {
        "variant": variant,
        "n": n,
        "protocol": tls,
        "cipher": cipher,
        "group": group,
        "heap_bytes_per_connection": round((heap1 - heap0) / n),
        "rss_kib_per_connection": round((rss1 - rss0) / n, 1),
        "heap_bytes_left_after_free": round((heap2 - heap0) / n),
    }


def run(n=2000, variants=None, keyType="ec"):
    """
    Measure each variant in its own process.
    """
    chosen = variants or [v for v, _ in VARIANTS] + COMBINED
    tmp = tempfile.mkdtemp(prefix="jobmon-tlsmem-")
    results = []
    try:
        thePKI, proxy = common.makePKI(tmp, keyType)
        pkiDir = thePKI.directory
        for variant in chosen:
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", variant, "-n", str(n),
                 "--pki", pkiDir, "--proxy", proxy],
                env=common.childEnv(), cwd=common.ROOT, stdout=subprocess.PIPE, timeout=600,
                check=True)
            results.append(json.loads(out.stdout))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return results


def table(results):
    """
    The results as Markdown.
    """
    names = dict(VARIANTS)
    return common.markdownTable(
        ["variant", "protocol", "key exchange", "C heap bytes/connection", "RSS KiB/connection",
         "bytes left after freeing"],
        [[" + ".join(names.get(v, v) for v in r["variant"].split("+")), r["protocol"],
          r.get("group") or "-", r["heap_bytes_per_connection"], r["rss_kib_per_connection"],
          r["heap_bytes_left_after_free"]] for r in results])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="connections per variant (2000)")
    parser.add_argument("--variants", help="comma-separated subset of " +
                        ",".join(v for v, _ in VARIANTS) + "; join with + to combine")
    parser.add_argument("--key-type", choices=("ec", "rsa"), default="ec")
    common.jsonOption(parser, "table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 20000:
        parser.error("-n must be 1..20000")
    if args.child:
        print(json.dumps(measureVariant(args.child, args.n, args.pki, args.proxy)))
        return 0
    variants = args.variants.split(",") if args.variants else None
    known = {v for v, _ in VARIANTS}
    if variants and not all(set(v.split("+")) <= known for v in variants):
        parser.error("unknown variant")
    results = run(args.n, variants, args.key_type)
    common.emit(results, table(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

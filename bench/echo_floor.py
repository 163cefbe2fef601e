"""
The floor under the server's CPU per query: what one message exchange
(a read and a write of a few hundred bytes) costs a Twisted server on this
machine with no JobMon code at all.

A server process runs a Twisted echo protocol on 127.0.0.1, over plain TCP
or TLS (pyOpenSSL, as the JobMon server), on Twisted's own port or on
JobMon's eager one (L{jobmon.protocols.eager}); a blocking client sends
C{-n} messages of C{--size} bytes one at a time and reads each echo.  The
server's CPU time per echo (user and system, from C{/proc}) is printed.

A query through JobMon is two such exchanges for the server (the user's
HTTPS call and the job's wake channel) plus JobMon's own work.

Usage::

    .venv/bin/python bench/echo_floor.py [-n 5000] [--size 400]
"""

import argparse
import datetime
import os
import socket
import ssl
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SERVER = r"""
import sys
sys.path.insert(0, sys.argv[4])
from twisted.internet import endpoints, protocol, reactor, ssl
from jobmon.protocols.eager import EagerServerEndpoint

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

mode, eager, base = sys.argv[1], sys.argv[2] == "eager", sys.argv[3]
if mode == "tls":
    ctx = ssl.DefaultOpenSSLContextFactory(base + "/key.pem", base + "/cert.pem")
    endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, ctx, interface="127.0.0.1")
else:
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
if eager:
    endpoint = EagerServerEndpoint(endpoint)
endpoint.listen(protocol.Factory.forProtocol(Echo)).addCallback(
    lambda port: print(port.getHost().port, flush=True))
reactor.run()
"""


def makeCertificate(base):
    """
    Write a throwaway self-signed P-256 certificate and key into C{base}.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with open(os.path.join(base, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(base, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))


def cpu(pid):
    """
    C{(user, system)} CPU seconds of process C{pid}.
    """
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def measure(base, mode, eager, n, size):
    """
    Server CPU microseconds per echo: C{(user, system)}.
    """
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, mode, "eager" if eager else "plain", base, ROOT],
        stdout=subprocess.PIPE,
    )
    try:
        port = int(server.stdout.readline())
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(base, "cert.pem"))
            conn = ctx.wrap_socket(conn, server_hostname="localhost")
        message = b"x" * size

        def echo():
            conn.sendall(message)
            got = 0
            while got < size:
                got += len(conn.recv(65536))

        for _ in range(min(500, n)):
            echo()
        before = cpu(server.pid)
        for _ in range(n):
            echo()
        after = cpu(server.pid)
        conn.close()
        return tuple((a - b) * 1e6 / n for a, b in zip(after, before))
    finally:
        server.kill()
        server.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="timed echoes per variant (5000)")
    parser.add_argument("--size", type=int, default=400, help="bytes per message (400)")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 1000000 or not 1 <= args.size <= 65536:
        parser.error("-n must be 1..1000000 and --size 1..65536")
    with tempfile.TemporaryDirectory(prefix="jobmon-echo-") as base:
        makeCertificate(base)
        print("| transport | port | server CPU us/echo | user | system |")
        print("|---|---|--:|--:|--:|")
        for mode in ("tcp", "tls"):
            for eager in (False, True):
                user, system = measure(base, mode, eager, args.n, args.size)
                print("| {} | {} | {:.0f} | {:.0f} | {:.0f} |".format(
                    mode.upper(), "eager" if eager else "Twisted's", user + system, user, system))
    return 0


if __name__ == "__main__":
    sys.exit(main())

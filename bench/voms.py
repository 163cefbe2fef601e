"""
What reading VOMS attributes costs the server per new connection: the time
of L{jobmon.server.voms.VomsAttributes.fqansOf} for a proxy with one valid
AC (two FQANs), the first time (signature and chain checked) and again (the
answer kept for the chain until its AC expires), and for a proxy without an
AC.

Usage::

    .venv/bin/python bench/voms.py [-n 1000]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from jobmon.devtools import pki, vomsfake  # noqa: E402
from jobmon.server.voms import VomsAttributes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("-n", type=int, default=1000, help="calls per row")
    n = parser.parse_args().n
    base = tempfile.mkdtemp()
    ca = pki.initPKI(os.path.join(base, "pki"), users=("alice",))
    alice = ca.users["alice"]
    holder = pki.readCertificates(alice.certPath)[0]
    server, key = vomsfake.makeVomsServer(ca.ca, os.path.join(base, "voms"))
    vomsdir = os.path.join(base, "vomsdir")
    vomsfake.writeLsc(vomsdir, "cms", server)
    ac = vomsfake.encodeAC(holder, server, key, "cms", ["/cms", "/cms/Role=lcgadmin"])
    path = os.path.join(base, "x509up")
    vomsfake.makeVomsProxy(alice.certPath, alice.keyPath, path, [ac])
    withAC = pki.readCertificates(path) + [ca.ca.cert]
    withoutAC = pki.readCertificates(alice.certPath) + [ca.ca.cert]
    clock = Clock()
    clock.advance(time.time())
    voms = VomsAttributes(vomsdir, ca.ca.hashedDir, clock)
    voms.load()
    assert len(voms.fqansOf(withAC)[0]) == 2

    def timed(label, chain, forget):
        start = time.perf_counter()
        for _ in range(n):
            if forget:
                voms._granted.clear()
            voms.fqansOf(chain)
        print("{:32} {:7.3f} ms".format(label, (time.perf_counter() - start) / n * 1000))

    timed("AC, first time (checked)", withAC, True)
    timed("AC, again (kept)", withAC, False)
    timed("no AC", withoutAC, False)


if __name__ == "__main__":
    main()

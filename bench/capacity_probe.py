"""
Run C{twistd jobmon-server} with memory probes, for L{capacity}'s
diagnosis of where a TCP wake channel's memory goes.

    python bench/capacity_probe.py VARIANTS STATSFILE -- TWISTD-ARGS...

VARIANTS is a comma-separated list (or C{-}):

  - C{tracemalloc}: trace Python allocations from the start (one frame per
    allocation); each dump then lists the source lines that grew most since
    the first dump.  Tracing costs memory itself: RSS figures of such a run
    are not the production figures.
  - C{plainwake}: the wake port without TLS (plain TCP); a channel's hello is
    taken as coming from the DN in C{$PROBE_DN}.  The difference with a TLS
    run is the cost of TLS per channel.

On SIGUSR1 the server appends one JSON object to STATSFILE: RSS
(C{/proc/self/status}), the C heap (glibc C{mallinfo2}: bytes in use, free,
mmapped), pymalloc blocks in use, the Python objects by type, the bytes
traced by tracemalloc (if on), and the RSS after C{malloc_trim(0)} (heap
pages that were free but kept).  The JobMon sources are not changed: the
probes are installed before C{twistd} builds the service.
"""

import collections
import ctypes
import gc
import json
import os
import signal
import sys

_state = {"first": None, "types": None, "variants": set(), "path": None}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def _status():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def _mallinfo():
    if _LIBC is None:
        return {}
    info = _LIBC.mallinfo2()
    return {"heap_in_use": info.uordblks, "heap_free": info.fordblks,
            "heap_arena": info.arena, "heap_mmapped": info.hblkhd}


def dump(label=""):
    """
    Append the memory figures to the stats file.
    """
    import tracemalloc

    gc.collect()
    record = {"label": label, "pid": os.getpid()}
    record.update(_status())
    record.update(_mallinfo())
    record["pymalloc_blocks"] = sys.getallocatedblocks()
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    record["gc_objects"] = sum(counts.values())
    if _state["types"] is None:
        _state["types"] = counts
    else:
        grown = counts - _state["types"]
        record["types_grown"] = grown.most_common(30)
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        record["traced"] = tracemalloc.get_traced_memory()[0]
        sizes = [t.size for t in snapshot.traces]
        record["traced_large"] = sum(s for s in sizes if s > 512)
        record["traced_small"] = sum(s for s in sizes if s <= 512)
        if _state["first"] is None:
            _state["first"] = snapshot
        else:
            stats = snapshot.compare_to(_state["first"], "lineno")
            record["lines_grown"] = [
                [str(s.traceback[0]), s.size_diff, s.count_diff] for s in stats[:40]
            ]
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
        record["VmRSS_after_trim"] = _status()["VmRSS"]
    with open(_state["path"], "a") as f:
        f.write(json.dumps(record) + "\n")


def _onSignal(signum, frame):
    from twisted.internet import reactor

    reactor.callLater(0, dump, "signal")


def _plainWake():
    """
    Make the server's second TLS endpoint (the wake port) plain TCP, and
    take a wake channel without TLS as coming from C{$PROBE_DN}.
    """
    from twisted.internet import endpoints

    import jobmon.server.service as server
    from jobmon.server.identity import Identity

    made = []
    original = endpoints.SSL4ServerEndpoint

    class Endpoints:
        def __getattr__(self, name):
            return getattr(endpoints, name)

        def SSL4ServerEndpoint(self, reactor, port, ctx, interface=""):
            made.append(port)
            if len(made) == 2:
                return endpoints.TCP4ServerEndpoint(reactor, port, interface=interface)
            return original(reactor, port, ctx, interface=interface)

    server.endpoints = Endpoints()
    identity = Identity(dn=os.environ["PROBE_DN"], proxy=True)
    real = server.identityOfConnection

    def identityOfConnection(connection):
        if not hasattr(connection, "get_verified_chain"):
            return identity
        return real(connection)

    server.identityOfConnection = identityOfConnection


def main():
    variants, path = sys.argv[1:3]
    if sys.argv[3] != "--":
        raise SystemExit("usage: capacity_probe.py VARIANTS STATSFILE -- TWISTD-ARGS...")
    chosen = set() if variants == "-" else set(variants.split(","))
    _state["variants"] = chosen
    _state["path"] = path
    if "tracemalloc" in chosen:
        import tracemalloc

        tracemalloc.start(1)
    if "plainwake" in chosen:
        _plainWake()
    signal.signal(signal.SIGUSR1, _onSignal)
    from twisted.scripts.twistd import run

    sys.argv = [os.path.join(os.path.dirname(sys.executable), "twistd")] + sys.argv[4:]
    run()


if __name__ == "__main__":
    main()

"""
Run C{twistd} with time stamps added to the JobMon server or daemon, for
L{breakdown}.

    python bench/traced_twistd.py ROLE TRACEFILE VARIANTS -- TWISTD-ARGS...

ROLE is C{server} or C{daemon}; VARIANTS a comma-separated list (or C{-}):

  - C{trace}: record time stamps (C{time.monotonic_ns}, one clock for every
    process on the machine) at the points of a query's path, written to
    TRACEFILE when the process exits;
  - C{inline}: (daemon) run file operations in the reactor thread instead of
    the thread pool, to measure the thread hop;
  - C{noformparse}: (server) make the L{twisted.web.server.Site} with
    C{parsePOSTFormSubmission=False};
  - C{gclog}: print a line for every garbage collection that takes more
    than 1 ms (C{gc.callbacks});
  - C{gcfreeze}: once the reactor runs, collect and C{gc.freeze()} the
    objects left from start-up, so later full collections skip them.

The JobMon sources are not changed: the classes are wrapped at run time,
before C{twistd} builds the service.  C{--logger traced_twistd.infoObserver}
(a C{twistd} option) logs at level info and above only, to measure the cost
of the per-query debug lines.
"""

import atexit
import os
import sys
import time

_events = []
_stamp = _events.append
_now = time.monotonic_ns


def stamp(name, kind="", port=0):
    """
    Record an event now.
    """
    _stamp((_now(), name, kind, port))


def _dump(path):
    if not _events and os.path.exists(path):
        return
    with open(path, "w") as f:
        for t, name, kind, port in _events:
            f.write("{} {} {} {}\n".format(t, name, kind or "-", port))


def infoObserver():
    """
    A C{twistd --logger} factory: text lines on stdout, level info and up.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        textFileLogObserver,
    )

    return FilteringLogObserver(
        textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(LogLevel.info)]
    )


def _kind(protocol):
    # Unwrap TLS, endpoint and ClientService wrappers down to the real
    # protocol.
    inner = protocol
    for _ in range(6):
        nested = None
        for attribute in ("wrappedProtocol", "_wrappedProtocol", "_protocol"):
            nested = getattr(inner, attribute, None)
            if nested is not None:
                break
        if nested is None:
            break
        inner = nested
    # By the classes it derives from: the server's HTTP channel is a
    # subclass of twisted.web's HTTPChannel with a name of its own.
    names = " ".join(c.__name__ for c in type(inner).__mro__)
    if "Wake" in names:
        return "wake"
    if "HTTP" in names:
        return "http"
    return type(inner).__name__


def _peerPort(transport):
    try:
        return transport.getPeer().port
    except Exception:
        return 0


def _traceTransport(prefix):
    """
    Stamp raw TLS bytes arriving and bytes leaving through the socket, with
    the connection's kind (http, wake) and peer port.
    """
    from twisted.internet import tcp
    from twisted.protocols import tls

    origData = tls.TLSMemoryBIOProtocol.dataReceived

    def dataReceived(self, data):
        stamp(prefix + "in", _kind(self), _peerPort(self.transport))
        return origData(self, data)

    tls.TLSMemoryBIOProtocol.dataReceived = dataReceived

    origWrite = tcp.Connection.writeSomeData

    def writeSomeData(self, data):
        # Stamped before the send: on a busy machine the kernel may switch to
        # the woken receiver inside send(), and the sender resumes much later.
        stamp(prefix + "out", _kind(self.protocol), _peerPort(self))
        return origWrite(self, data)

    tcp.Connection.writeSomeData = writeSomeData


def _traceServer():
    from jobmon.protocols import wake, xmlrpc

    _traceTransport("S.")
    state = {"render": 0, "method": None}

    origInit = xmlrpc.XMLRPCResource.__init__

    def __init__(self, methods, *args, **kwargs):
        origInit(self, methods, *args, **kwargs)
        for name, fn in list(self.methods.items()):
            self.methods[name] = _wrapMethod(name, fn)

    def _wrapMethod(name, fn):
        def traced(identity, *params):
            _stamp((state["render"], "S.recv." + name, "", 0))
            stamp("S.call." + name)
            state["method"] = name
            return fn(identity, *params)

        return traced

    origRender = xmlrpc.XMLRPCResource.render_POST

    def render_POST(self, request):
        state["render"] = _now()
        state["method"] = None
        result = origRender(self, request)
        request._benchMethod = state["method"]
        return result

    origWrite = xmlrpc.XMLRPCResource._write

    def _write(self, body, request):
        result = origWrite(self, body, request)
        # A method that answers at once is written before render_POST
        # returns: it is the one being rendered.
        method = getattr(request, "_benchMethod", None) or state["method"]
        stamp("S.sent." + str(method))
        return result

    xmlrpc.XMLRPCResource.__init__ = __init__
    xmlrpc.XMLRPCResource.render_POST = render_POST
    xmlrpc.XMLRPCResource._write = _write

    origWake = wake.WakeServerProtocol.wake

    def wake_(self):
        stamp("S.wake")
        return origWake(self)

    wake.WakeServerProtocol.wake = wake_


def _noFormParsing():
    """
    Make the server's L{Site} skip twisted.web's parsing of POST bodies as
    forms (a public C{Site} option), which parses every request's
    Content-Type with the C{email} package.
    """
    from jobmon.protocols import xmlrpc

    origInit = xmlrpc.QuietSite.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        origInit(self, *args, **kwargs)

    xmlrpc.QuietSite.__init__ = __init__


def _traceDaemon(trace, inline):
    from twisted.internet import defer

    from jobmon.worker import daemon
    from jobmon.worker import files
    from jobmon.worker import operations
    from jobmon.protocols import xmlrpc

    # The daemon's ops hop to the thread pool through Operations.
    origInit = operations.Operations.__init__

    def __init__(self, *args, **kwargs):
        origInit(self, *args, **kwargs)
        if inline:
            run = lambda f, *a: defer.maybeDeferred(f, *a)  # noqa: E731
        else:
            run = self._runInThread
        if trace:
            def traced(f, *a):
                d = run(f, *a)

                def back(result):
                    stamp("D.opback")
                    return result

                return d.addCallback(back)

            self._runInThread = traced
        else:
            self._runInThread = run

    operations.Operations.__init__ = __init__
    if not trace:
        return

    _traceTransport("D.")

    origWakeUp = daemon.JobDaemon.wakeUp

    def wakeUp(self):
        stamp("D.wake")
        return origWakeUp(self)

    daemon.JobDaemon.wakeUp = wakeUp

    origCall = xmlrpc.XMLRPCClient.call

    async def call(self, method, *args):
        stamp("D.call." + method)
        try:
            return await origCall(self, method, *args)
        finally:
            stamp("D.ret." + method)

    xmlrpc.XMLRPCClient.call = call

    origRun = files.Workdir.run

    def run(self, request):
        stamp("D.op0")
        try:
            return origRun(self, request)
        finally:
            stamp("D.op1")

    files.Workdir.run = run


def _gcLog():
    import gc

    started = {}

    def callback(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
            return
        took = (time.perf_counter() - started.get("t", time.perf_counter())) * 1000.0
        if took > 1.0:
            sys.stdout.write("bench-gc: generation {} took {:.1f} ms ({} collected)\n".format(
                info["generation"], took, info["collected"]))
            sys.stdout.flush()

    gc.callbacks.append(callback)


def _gcFreeze():
    import gc

    # twistd would install this same default reactor; installing it here
    # lets the freeze be scheduled for when it runs.
    from twisted.internet import reactor

    def freeze():
        gc.collect()
        gc.freeze()
        sys.stdout.write("bench-gc: froze {} objects\n".format(gc.get_freeze_count()))
        sys.stdout.flush()

    reactor.callWhenRunning(freeze)


def main():
    role, traceFile, variants = sys.argv[1:4]
    if sys.argv[4] != "--":
        raise SystemExit("usage: traced_twistd.py ROLE TRACEFILE VARIANTS -- ARGS...")
    args = sys.argv[5:]
    chosen = set() if variants == "-" else set(variants.split(","))
    trace = "trace" in chosen
    if role == "server":
        if trace:
            _traceServer()
        if "noformparse" in chosen:
            _noFormParsing()
    elif role == "daemon":
        _traceDaemon(trace, "inline" in chosen)
    else:
        raise SystemExit("unknown role " + role)
    if "gclog" in chosen:
        _gcLog()
    if "gcfreeze" in chosen:
        _gcFreeze()
    if trace:
        # twistd ends a SIGTERM shutdown by killing itself with the signal
        # again (no atexit): write the trace just before.
        from twisted.application import app

        origExit = app._exitWithSignal

        def exitWithSignal(sig):
            _dump(traceFile)
            origExit(sig)

        app._exitWithSignal = exitWithSignal
        atexit.register(_dump, traceFile)
    from twisted.scripts.twistd import run

    sys.argv = [os.path.join(os.path.dirname(sys.executable), "twistd")] + args
    run()


if __name__ == "__main__":
    main()

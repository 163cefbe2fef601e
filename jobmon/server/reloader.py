"""
The server's credentials kept current: the TLS contexts (host credential,
CA directory, CRLs) and the token issuers are re-read when their files
change, checked every few seconds and on SIGHUP.
"""

import signal

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jobmon.certificates import CredentialError
from jobmon.deferreds import threadRunner
from jobmon.server.tokens import TokenConfigError

EXPECTED = (CredentialError, TokenConfigError)
"""What a reload raises for a bad new file: its message says what is wrong,
and is logged without a traceback."""


class CredentialReloader(Service):
    """
    Reload the TLS context when the CA directory (certificates, CRLs) or the
    host credential change on disk, and the token issuers when their files
    do, checked every C{interval} seconds and on SIGHUP.  New connections
    use the new context.

    A reload that fails, for whatever reason, is logged (a bad file as one
    error line, anything else with its traceback) and the credentials
    loaded last stay in use; the next check tries again.

    @ivar contextFactories: what to reload: objects with C{prepareReload}
        (called in a thread), C{install}, C{describe} and C{kind}.
    @ivar reactor: the reactor whose clock runs the checks and whose
        thread installs what was read.
    @ivar installSignal: whether SIGHUP checks at once while the service
        runs.
    """

    log = Logger()

    def __init__(self, reactor, contextFactories, interval, installSignal=True,
                 runInThread=None):
        self.reactor = reactor
        self.contextFactories = contextFactories
        self.runInThread = runInThread or threadRunner(reactor)
        self._checking = False
        self.interval = interval
        self.installSignal = installSignal
        self._loop = LoopingCall(self.check)
        self._loop.clock = reactor
        self._previousHandler = None
        self._signalInstalled = False

    def startService(self):
        """
        Check every C{interval} seconds, and on SIGHUP.
        """
        super().startService()
        self._loop.start(self.interval, now=False)
        if self.installSignal:
            self._previousHandler = signal.signal(
                signal.SIGHUP, lambda *args: self.reactor.callFromThread(self.check)
            )
            self._signalInstalled = True

    def stopService(self):
        """
        Stop checking; SIGHUP gets its previous handler back.
        """
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self._signalInstalled:
            # None: the handler was not set from Python; the default is the
            # nearest Python can restore.
            previous = self._previousHandler
            signal.signal(signal.SIGHUP, signal.SIG_DFL if previous is None else previous)
            self._signalInstalled = False

    def check(self):
        """
        Reload if anything changed: the files are read and the contexts
        built in a thread, then installed in the reactor's.

        @return: a L{Deferred} that fires (never fails) when the check is
            over, or L{None} if one is already under way.
        """
        if self._checking:
            return None
        self._checking = True
        d = self.runInThread(self._prepare)
        d.addCallback(self._install)
        d.addErrback(
            lambda f: self.log.failure(
                "cannot reload credentials, keeping the old ones", f
            )
        )
        d.addBoth(self._done)
        return d

    def _prepare(self):
        """
        Read what changed, in a thread: each one apart, so that one that
        fails does not keep the others from reloading.

        @return: C{(factory, prepared, error)} for each, C{error} an
            exception or a L{Failure}.
        """
        prepared = []
        for factory in self.contextFactories:
            try:
                prepared.append((factory, factory.prepareReload(), None))
            except EXPECTED as e:
                prepared.append((factory, None, e))
            except Exception:
                prepared.append((factory, None, Failure()))
        return prepared

    def _install(self, prepared):
        said = set()
        for factory, p, error in prepared:
            if isinstance(error, Failure):
                self.log.failure(
                    "cannot reload {what}, keeping the old ones", error, what=factory.kind
                )
            elif error is not None:
                self.log.error("cannot reload {what}, keeping the old ones: {why}",
                               what=factory.kind, why=str(error))
            elif p is not None:
                try:
                    factory.install(p)
                    line = factory.describe()
                except Exception:
                    self.log.failure(
                        "cannot install the reloaded {what}, keeping the old ones",
                        what=factory.kind,
                    )
                    continue
                if line not in said:
                    said.add(line)
                    self.log.info("reloaded {what}", what=line)

    def _done(self, result):
        self._checking = False

"""
The job daemon's wake loops for the modes without a held channel: UDP
datagrams (re-register at the server's interval, listen for wakes) and
HTTPS long polls (keep one C{waitForWork} pending).  The TCP wake channel
is a L{ClientService} the daemon builds itself.
"""

import random

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger

from jobmon.deferreds import deferredAsync
from jobmon.errors import JOB_CONFLICT, JobMonError
from jobmon.protocols.udp import UDPWakeListener
from jobmon.worker.servers import isServerLoss


class LoopService(Service):
    """
    A service that runs one coroutine loop while it runs; stopping cancels
    the loop wherever it waits.
    """

    log = Logger()

    def __init__(self, daemon):
        self.daemon = daemon
        self._loop = None

    def startService(self):
        super().startService()
        self._loop = self.run()
        self._loop.addErrback(self._ended)

    def _ended(self, failure):
        if not failure.check(defer.CancelledError):
            self.log.failure("wake loop failed", failure)

    def sleep(self, seconds):
        """
        Wait C{seconds} on the daemon's clock.
        """
        return deferLater(self.daemon.reactor, seconds, lambda: None)

    def stopService(self):
        super().stopService()
        if self._loop is not None:
            loop, self._loop = self._loop, None
            loop.cancel()

    def run(self):
        """
        The loop.

        @return: a L{Deferred} that cancelling stops (subclasses write it as
            a L{deferredAsync} coroutine).
        """
        raise NotImplementedError()


class UDPWakeLoop(LoopService):
    """
    UDP broadcast wakes: listen on the port the server names, and
    re-register at the interval it names (looking for work each time, in
    case wakes were lost).
    """

    def __init__(self, daemon, listenUDP):
        super().__init__(daemon)
        self.listenUDP = listenUDP
        self.listener = UDPWakeListener(daemon.jobId, daemon.wakeUp, daemon.reactor)
        self.port = None
        self.portNumber = None
        self._nap = None
        self._hurry = False

    def _listen(self, number):
        if self.port is not None and self.portNumber == number:
            return
        if self.port is not None:
            self.port.stopListening()
        self.port = self.listenUDP(number, self.listener)
        self.portNumber = number
        self.log.info("listening for UDP wakes on port {port}", port=number)

    @deferredAsync
    async def run(self):
        failures = 0
        while not self.daemon.stopping:
            self._hurry = False
            try:
                reply = await self.daemon.register()
                wake = reply["wake"]
                self._listen(int(wake["port"]))
                self.listener.setSecret(bytes.fromhex(wake["secret"]))
                failures = 0
                # Look for work at each registration: a wake may be lost.
                self.daemon.wakeUp()
                interval = float(reply.get("reregister", 60))
                # Spread re-registrations of daemons started together.
                delay = interval * (0.9 + 0.1 * random.random())
            except defer.CancelledError:
                raise
            except Exception as e:
                if isServerLoss(e) and self.daemon.serverLost(describe(e)):
                    continue
                failures += 1
                delay = self.daemon.retryPolicy(failures)
                if not isinstance(e, JobMonError) or failures == 1:
                    self.log.warn("UDP wake set-up failed: {why}", why=describe(e))
            if not self._hurry:
                await self.nap(delay)

    def nap(self, seconds):
        """
        Wait C{seconds} on the daemon's clock, or until L{serverLost} ends
        the wait.
        """
        call = None

        def cancel(d):
            if call.active():
                call.cancel()

        self._nap = d = defer.Deferred(cancel)
        call = self.daemon.reactor.callLater(seconds, d.callback, None)

        def done(result):
            self._nap = None
            if call.active():
                call.cancel()
            return result

        return d.addBoth(done)

    def serverLost(self, why):
        """
        Fetching work from the server failed as if it were gone: with
        several servers, move to the next one and register there at once
        (with one, the next re-registration comes as planned).
        """
        if self.daemon.serverLost(why):
            self._hurry = True
            if self._nap is not None:
                self._nap.callback(None)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


class PollWakeLoop(LoopService):
    """
    HTTPS long-poll wakes: keep one C{waitForWork} call pending; it returns
    the work as soon as it is queued.  Any failure (server restarted, job
    dropped) leads to a new registration, with backoff.
    """

    @deferredAsync
    async def run(self):
        failures = 0
        registered = False
        maxWait = 60.0
        while not self.daemon.stopping:
            try:
                if not registered:
                    reply = await self.daemon.register()
                    maxWait = float(reply["wake"].get("max_wait", maxWait))
                    registered = True
                d = self.daemon.rpc.callRemote(
                    "jobmon.waitForWork", self.daemon.jobId, maxWait, *self.daemon.tokenArgs()
                )
                d.addTimeout(maxWait + self.daemon.callTimeout, self.daemon.reactor)
                items = await d
                if failures:
                    self.log.info("polling again")
                failures = 0
                self.daemon.dispatch(items)
                continue
            except defer.CancelledError:
                raise
            except Exception as e:
                if self.daemon.stopping:
                    return
                if registered and isinstance(e, JobMonError) and e.code == JOB_CONFLICT:
                    # The server ended the poll to say a second daemon was
                    # refused this job: this one keeps it.
                    self.log.warn("the server says: {notice}", notice=e.message)
                    continue
                registered = False
                if isServerLoss(e) and self.daemon.serverLost(describe(e)):
                    # A lost server: the next one at once.
                    continue
                failures += 1
                if failures == 1:
                    self.log.warn("poll failed: {why}", why=describe(e))
            await self.sleep(self.daemon.retryPolicy(failures))


def describe(error):
    """
    One line about a failure to reach the server.
    """
    from twisted.internet.error import ConnectError
    from twisted.web._newclient import _WrapperException

    if isinstance(error, _WrapperException) and error.reasons:
        # The agent's "response never received" and the like hold the
        # failures that caused them.
        return "no answer: {}".format(describe(error.reasons[0].value))
    if isinstance(error, JobMonError):
        return "fault {}: {}".format(error.code, error.message)
    if isinstance(error, ConnectError):
        what = (error.__class__.__doc__ or "cannot connect").strip().splitlines()[0]
        return "cannot connect to the server: {}".format(what.rstrip(".").lower())
    if isinstance(error, defer.TimeoutError):
        return "no answer in time"
    text = str(error) or error.__class__.__name__
    return text.splitlines()[0] if text else repr(error)

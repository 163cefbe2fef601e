"""
What a job's daemon can be asked, and how each op runs without blocking the
reactor.

Blocking work (file reads, process listings, directory walks) runs in the
reactor's thread pool; waiting (following a file, sampling CPU over an
interval) is done with the reactor's clock; commands run as child processes.
Each op has a time limit.
"""

from attrs import evolve
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger

from jobmon.deferreds import threadRunner
from jobmon.errors import BAD_REQUEST, UNSUPPORTED_OP, JobMonError

FILE_OPS = frozenset({"ls", "stat", "cat", "head", "tail", "du", "df"})
"""Ops the L{jobmon.worker.files.Workdir} answers in one blocking call."""

OPS = FILE_OPS | frozenset(
    {"follow", "ps", "top", "res", "env", "commands", "run", "signal"}
)
"""Every op a daemon of this version answers."""

FOLLOW_CHECK_INTERVAL = 0.25
"""Seconds between two looks at a followed file that cannot be watched (see
L{jobmon.worker.watching})."""


FOLLOW_MIN_GAP = 0.1
"""Seconds between two answers with news to one follower (the same path,
asked from where the last answer ended): a file written many times a second
is sent in batches, at most ten a second, rather than one round trip per
write, which would cost the daemon and the server a query each.  A write
after a quiet spell is sent at once."""


class Operations:
    """
    Run requests for one job.

    @ivar workdir: the job's L{jobmon.worker.files.Workdir}.
    @ivar processes: the job's L{jobmon.worker.procs.JobProcesses}.
    @ivar commands: the L{jobmon.worker.commands.CommandTable} of site-approved
        commands.
    @ivar allowedSignals: signal names (C{"TERM"}) users may send.
    @ivar redact: extra environment-name patterns to redact.
    @ivar opTimeout: time limit of an op, in seconds (commands have their
        own).
    @ivar watcher: tells a waiting C{follow} that its file may have changed
        (L{jobmon.worker.watching}); by default none, and follows poll.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        workdir,
        processes,
        commands,
        allowedSignals=frozenset(),
        redact=(),
        opTimeout=30.0,
        runInThread=None,
        runCommand=None,
        watcher=None,
    ):
        self.reactor = reactor
        self.workdir = workdir
        self.processes = processes
        self.commands = commands
        self.allowedSignals = frozenset(allowedSignals)
        self.redact = tuple(redact)
        self.opTimeout = opTimeout
        self._runInThread = runInThread or threadRunner(reactor)
        if runCommand is None:
            from jobmon.worker.commands import runCommand
        self._runCommand = runCommand
        if watcher is None:
            from jobmon.worker.watching import PollingWatcher

            watcher = PollingWatcher()
        self.watcher = watcher
        self.ending = False
        self._pauses = {}
        self._answered = {}

    def end(self):
        """
        The job ended (the daemon is stopping): every C{follow}, waiting or
        to come, looks at its file once more and answers at once, saying
        C{ended}, so that its follower gets the file's last bytes and
        stops.
        """
        self.ending = True
        for d, call in list(self._pauses.items()):
            call.cancel()
            self._resume(d)

    def _pause(self, seconds):
        """
        Wait C{seconds} on the reactor's clock, or until L{end}.
        """

        def cancel(d):
            self._pauses.pop(d).cancel()

        d = defer.Deferred(cancel)
        self._pauses[d] = self.reactor.callLater(seconds, self._resume, d)
        return d

    def _resume(self, d):
        del self._pauses[d]
        d.callback(None)

    def _wake(self, d):
        """
        End the pause C{d} early, if it still runs.
        """
        call = self._pauses.get(d)
        if call is not None:
            call.cancel()
            self._resume(d)

    def close(self):
        """
        Release what follows use (the daemon stops).
        """
        self.watcher.close()

    def timeoutFor(self, request):
        """
        The time limit for C{request}: a command's own limit (plus a little,
        so that its own timeout error is the one reported), or the op limit.
        """
        if isinstance(request, dict) and request.get("op") == "run":
            try:
                prepared = self.commands.prepare(request.get("name"), request.get("args", []))
            except JobMonError:
                return self.opTimeout
            from jobmon.worker.commands import KILL_GRACE, KILL_WAIT

            # Past the command's own limit the runner still kills its process
            # group and waits for the pipes: leave room for its own, clearer
            # timeout error.
            return max(self.opTimeout, prepared.timeout + KILL_GRACE + KILL_WAIT + 1)
        return self.opTimeout

    async def run(self, request):
        """
        Run one request and return its result struct.

        @raise JobMonError: the request is malformed or the op failed.
        """
        if not isinstance(request, dict):
            raise JobMonError(BAD_REQUEST, "the request must be a struct")
        op = request.get("op")
        if op in FILE_OPS:
            return await self._runInThread(self.workdir.run, request)
        handler = getattr(self, "op_" + op, None) if isinstance(op, str) else None
        if handler is None or op not in OPS:
            raise JobMonError(
                UNSUPPORTED_OP, "this job's daemon does not know the op {!r}".format(op)
            )
        return await handler(request)

    async def op_follow(self, request):
        """
        Return new bytes of a file as soon as there are any, or after the
        request's wait; once the job ended (L{end}), at once, saying
        C{ended}.

        Between looks the follow waits for the L{watcher} to say the file
        may have changed (inotify); where it cannot, it looks every
        L{FOLLOW_CHECK_INTERVAL} seconds.  The watch is set after a first
        look found nothing, and the file is looked at once more then, so a
        write between the two is not missed.
        """
        path, offset, inode, wait = self.workdir.checkFollow(request)
        now = self.reactor.seconds()
        deadline = now + wait
        # A follower asking again right after an answer: let a chatty file
        # gather a little first (see FOLLOW_MIN_GAP).
        gap = self._answered.get((path, int(offset)), now - FOLLOW_MIN_GAP) + FOLLOW_MIN_GAP - now
        if gap > 0 and not self.ending:
            await self._pause(min(gap, wait))
        watch = None
        watched = False
        try:
            while True:
                ending = self.ending
                if watch is not None:
                    watch.clear()
                result = await self._runInThread(self.workdir.followOnce, path, offset, inode)
                if ending:
                    # A look begun after the job's end saw its last bytes.
                    result["ended"] = True
                    return result
                if result.get("data") or result.get("rotated"):
                    self._noteAnswer(path, result)
                    return result
                # Carry what this look learned: without it, a file replaced
                # during the wait by a longer one would be read from the old
                # offset, losing its start.
                offset = int(result.get("next_offset", offset))
                inode = result.get("inode") or inode
                if self.ending:
                    continue
                if not watched:
                    watched = True
                    watch = await self.watcher.watch(
                        lambda: self.workdir.followTargets(path)
                    )
                    if watch is not None:
                        # Look again: the file may have grown before the
                        # watch was set.
                        continue
                left = deadline - self.reactor.seconds()
                if watch is not None and not watch.broken:
                    if left <= 0:
                        return result
                    if await self._waitForChange(watch, left) or self.ending:
                        continue
                    # The wait is over and nothing changed: the last look
                    # stands.
                    return result
                if left < FOLLOW_CHECK_INTERVAL:
                    return result
                await self._pause(FOLLOW_CHECK_INTERVAL)
        finally:
            if watch is not None:
                watch.close()

    def _noteAnswer(self, path, result):
        """
        Remember when a follow of C{path} answered with news, by where its
        follower will ask from next; answers older than L{FOLLOW_MIN_GAP}
        are forgotten.
        """
        now = self.reactor.seconds()
        self._answered = {
            key: when for key, when in self._answered.items() if now - when < FOLLOW_MIN_GAP
        }
        self._answered[(path, int(result.get("next_offset", 0)))] = now

    async def _waitForChange(self, watch, seconds):
        """
        Wait until C{watch} tells of a change, C{seconds} pass, or L{end}.

        @return: whether C{watch} told of a change.
        """
        d = self._pause(seconds)
        changed = []

        def wake():
            changed.append(True)
            self._wake(d)

        watch.notify(wake)
        try:
            await d
        finally:
            watch.notify(None)
        return bool(changed)

    async def op_ps(self, request):
        """
        The job's process tree.
        """
        return capProcesses(await self._runInThread(self.processes.ps), self.workdir.maxResult)

    async def op_top(self, request):
        """
        The job's processes, CPU measured over an interval.
        """
        from jobmon.worker.procs import checkTop

        interval = checkTop(request)
        sample = await self._runInThread(self.processes.topStart)
        await deferLater(self.reactor, interval, lambda: None)
        result = await self._runInThread(self.processes.topFinish, sample)
        return capProcesses(result, self.workdir.maxResult)

    async def op_res(self, request):
        """
        The job's resource totals.
        """
        return await self._runInThread(self.processes.res)

    async def op_env(self, request):
        """
        The job's environment, secrets redacted.
        """
        return await self._runInThread(self.processes.environment, self.redact)

    async def op_commands(self, request):
        """
        The commands this job offers, each program looked at again (in a
        thread: the file system may hang) to say whether it is there, and
        the signals users may send it.
        """
        return {"commands": await self._runInThread(self.commands.describe, True),
                "signals": sorted(self.allowedSignals)}

    async def op_run(self, request):
        """
        Run a site-approved command.
        """
        args = request.get("args", [])
        prepared = self.commands.prepare(request.get("name"), args)
        # Both streams together must fit in one result.
        cap = max(1, self.workdir.maxResult // 2)
        if prepared.maxOutput > cap:
            prepared = evolve(prepared, maxOutput=cap)
        # The first use of root resolves it on the file system, which may
        # hang (a working directory on NFS): not in the reactor thread.
        cwd = await self._runInThread(lambda: self.workdir.root)
        self.log.info(
            "running {name} {args} for a user", name=prepared.name, args=prepared.argv[1:]
        )
        return await self._runCommand(self.reactor, prepared, cwd)

    async def op_signal(self, request):
        """
        Send an allowed signal to the job.
        """
        name = request.get("signal")
        if not isinstance(name, str):
            raise JobMonError(BAD_REQUEST, "signal must be a name such as TERM")
        result = await self._runInThread(
            self.processes.sendSignal, name, self.allowedSignals
        )
        self.log.info("sent SIG{signal} to {pid} for a user", **result)
        return result


PROCESS_OVERHEAD = 400
"""Bytes a process struct costs in XML-RPC, besides its command line."""


def capProcesses(result, maxResult):
    """
    Hold a C{ps} or C{top} result to the result cap: first shorten long
    command lines, then leave out the last processes; say so with
    C{truncated}.
    """
    processes = result.get("processes", [])

    def cost(p):
        return PROCESS_OVERHEAD + len(p.get("cmdline", ""))

    def size():
        return sum(cost(p) for p in processes)

    if size() <= maxResult:
        return result
    result["truncated"] = True
    for limit in (1024, 256, 64):
        for p in processes:
            cmdline = p.get("cmdline", "")
            if len(cmdline) > limit:
                p["cmdline"] = cmdline[: limit - 3] + "..."
        if size() <= maxResult:
            return result
    # A running total: this runs in the reactor thread, and summing again
    # after each pop would be quadratic in the processes.
    total = size()
    while processes and total > maxResult:
        total -= cost(processes.pop())
    return result


def runWithTimeout(operations, request):
    """
    Run C{request} under its time limit.

    @return: a L{Deferred} firing with the result; it fails with
        L{defer.TimeoutError} when the limit passes.
    """
    d = defer.Deferred.fromCoroutine(operations.run(request))
    d.addTimeout(operations.timeoutFor(request), operations.reactor)
    return d

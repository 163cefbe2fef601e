"""
What a command of C{jobmon-query} runs with: its arguments, the client, the
output, and the job's id, resolved from a unique prefix when the server
knows no job by the name given.
"""

from jobmon import errors
from jobmon.cli.output import TextCarry, looksBinary
from jobmon.errors import JobMonError


class Session:
    """
    What a command needs: the parsed arguments, the client, the output, and
    the job id, resolved from a prefix when needed.

    @ivar job: the job's id, as given, then as resolved.
    @ivar following: whether the command is following a file (Ctrl-C then
        ends it quietly).
    @ivar followText: the L{TextCarry} of the JSON lines of a followed
        file.
    """

    def __init__(self, args, client, out, say, stderr, environ, sleep, now):
        self.args = args
        self.client = client
        self.out = out
        self.say = say
        self.stderr = stderr
        self.environ = environ
        self.sleep = sleep
        self.now = now
        self.json = args.json
        self.job = getattr(args, "job", None)
        self._resolved = False
        self._ownerSaid = False
        self.following = False
        self.followText = TextCarry()
        self.guardBinary = (
            not self.json and not getattr(args, "raw", False) and out.isatty()
        )
        # On a terminal (without --raw), file bytes are written with their
        # control characters shown, not obeyed.  (Imported only then: start-up
        # time.)
        self.terminalText = None
        if self.guardBinary:
            from jobmon.cli.terminal import TerminalText

            self.terminalText = TerminalText(out.encoding)

    def query(self, method, *args, **kw):
        """
        Call the client's C{method} for the job.  If the server knows no
        such job the first time, and the id is a unique prefix of one of the
        caller's jobs, call again with that job's id.
        """
        call = getattr(self.client, method)
        try:
            result = call(self.job, *args, **kw)
        except JobMonError as e:
            if e.code != errors.NO_SUCH_JOB or self._resolved:
                raise
            self._resolved = True
            self._resolve(e)
            result = call(self.job, *args, **kw)
        self._resolved = True
        self._sayOwner(result)
        return result

    def _sayOwner(self, result):
        """
        Say once on standard error whose job answered, when it is not the
        caller's (an admin's query, or a job shared with her group): the
        server names the owner in C{job_owner}.
        """
        owner = result.get("job_owner") if isinstance(result, dict) else None
        if owner and not self._ownerSaid:
            self._ownerSaid = True
            self.say("job %s belongs to %s" % (self.job, owner))

    def _resolve(self, error):
        """
        Find the caller's job whose id starts with L{job}, by the rules of
        L{resolvePrefix} (which the server follows for C{history}).

        @raise JobMonError: C{error} if there is none, L{errors.NO_SUCH_JOB}
            naming the candidates if there are several.
        """
        from jobmon.prefixes import resolvePrefix

        try:
            jobs = self.client.listJobs()
        except JobMonError:
            raise error from None
        match = resolvePrefix(self.job, (str(j.get("job_id", "")) for j in jobs))
        if match is None or match == self.job:
            raise error
        self.job = match

    def emit(self, data, total=None):
        """
        Write file bytes and flush; on a terminal, binary data becomes a
        notice on standard error (unless C{--raw}).

        @param total: the size to report in the notice (default: that of
            C{data}).
        @return: whether the bytes were written.
        """
        if not data:
            return True
        if self.guardBinary and looksBinary(data):
            self.say("binary data (%d bytes) not shown on a terminal; use --raw "
                     "or redirect" % (len(data) if total is None else total,))
            return False
        self.write(data)
        return True

    def write(self, data):
        """
        Write file bytes and flush: as they are, or, on a terminal without
        C{--raw}, with their control characters made visible (see
        L{TerminalText}).
        """
        if self.terminalText is not None:
            data = self.terminalText.feed(data)
        self.out.raw(data)
        self.out.flush()

    def endOutput(self):
        """
        Write what L{write} still holds (a character cut at the end).
        """
        if self.terminalText is not None:
            rest = self.terminalText.end()
            if rest:
                self.out.raw(rest)
                self.out.flush()

    def show(self, result, format):
        """
        Print C{result}: as one JSON document with C{--json}, else as the
        lines C{format(result)} gives.
        """
        if self.json:
            self.out.json(result)
        else:
            self.out.lines(format(result))

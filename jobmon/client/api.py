"""
L{JobMonClient}: one method per op of C{docs/API.md}, over the transport
of L{jobmon.client.connection}.

Like the rest of L{jobmon.client}, this imports only the standard library
and L{jobmon.errors}, L{jobmon.credentials} and L{jobmon.options}.
"""

from jobmon import errors
from jobmon.client.connection import _Connection
from jobmon.client.credential import _TokenCredential, chooseCredential
from jobmon.client.errors import BAD_ARGUMENT, ClientError
from jobmon.client.values import (
    _integralFields,
    _linesOrBytes,
    _normalizeData,
    _normalizeEntry,
    _normalizeProcesses,
    _xmlNumber,
    wirePath,
)
from jobmon.errors import JobMonError

LIST_PAGE = 1000
"""Jobs asked for per C{listJobs} call: long lists come a page at a time."""

FOLLOW_EXTRA = 10.0
"""Seconds a C{follow} (or C{top}) query's timeout allows beyond its wait
(or interval), as the server does."""

TIMEOUT_GRACE = 2.0
"""Seconds the client waits beyond a query's own C{timeout} field, so that
the server's timeout fault (408) arrives before the client gives up."""


class JobMonClient(_Connection):
    """
    A connection to a JobMon server.

    Nothing is read or opened when the client is made: the credential is
    loaded and the connection opened at the first call.  A new connection
    reloads the credential if its file changed, so a long-lived client picks
    up a renewed proxy.

    @ivar url: the server's URL, normalized (C{https://host:port/path}).
    @ivar timeout: seconds to wait for the connection and for each answer.
    """

    def __init__(self, server, proxy=None, caDir=None, timeout=60.0, key=None,
                 auth="auto", token=None, tokenFile=None, environ=None):
        """
        @param server: the server URL, C{https://host[:port][/path]}; the
            port defaults to 8443 and the path to C{/RPC2}.
        @param proxy: the credential file: a proxy (cert, key and chain in
            one file) or a user certificate; default
            L{jobmon.credentials.defaultProxyPath}.
        @param caDir: the directory of trusted CA certificates in hashed
            layout (a single PEM bundle file also works); default
            L{jobmon.options.defaultCADir}.
        @param timeout: seconds to wait for the connection and for an answer;
            also sent as the C{timeout} of the queries made by the methods
            for each op (L{ls}, L{stat}, L{cat}...), except L{follow}, whose
            timeout follows its wait.
        @param key: the private key file, if C{proxy} holds only a
            certificate (C{usercert.pem}/C{userkey.pem}).  An encrypted key's
            pass phrase is asked for on the terminal; without one, or with a
            wrong pass phrase, the L{ClientError} says so.
        @param auth: C{"auto"} (a bearer token if one is given or discovery
            finds one and no C{proxy} or C{key} is named, else the proxy),
            C{"x509"} or C{"token"}; see L{chooseCredential}.
        @param token: a bearer token to send as it is.
        @param tokenFile: a file holding the bearer token, read for each
            request.
        @param environ: the environment for discovery (default
            C{os.environ}).

        @raise ClientError: L{jobmon.client.errors.BAD_URL} if C{server} is
            malformed.
        """
        _Connection.__init__(
            self, server, timeout,
            lambda: chooseCredential(auth, proxy, key, caDir, token, tokenFile, environ),
        )

    def __repr__(self):
        return "<JobMonClient %s>" % (self.url,)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def authMode(self):
        """
        C{"x509"} or C{"token"}: how this client authenticates.
        """
        return "token" if isinstance(self._credential, _TokenCredential) else "x509"

    # -- the API -----------------------------------------------------------

    def whoami(self):
        """
        Return the server's view of the caller: a dict with C{dn},
        C{admin}, C{proxy} and C{limited} (and C{token} for a bearer token,
        C{server_version} from a server that reports it).
        """
        return self._call("jobmon.whoami", ())

    def credentialInfo(self):
        """
        Describe the credential this client authenticates with, as read on
        this machine (nothing is sent): a dict with C{type} (C{"x509"} or
        C{"token"}), C{expires} (seconds since the epoch, or L{None} if
        unknown) and C{path} (the credential file) or C{source} (where the
        token was found).
        """
        return self._credential.describe()

    def listJobs(self, all=False):
        """
        Return the list of the caller's jobs, as dicts (C{job_id}, C{owner},
        C{host}, C{mode}, C{state}, C{registered}, C{last_seen},
        C{pending}).

        @param all: list every job (the server's admins only: anyone else
            gets fault 403).  Long lists are fetched a page at a time.
        """
        jobs = []
        while True:
            options = {"limit": LIST_PAGE}
            if all:
                options["all"] = True
            if jobs:
                options["after"] = jobs[-1]["job_id"]
            page = self._call("jobmon.listJobs", (options,))
            jobs.extend(page)
            if len(page) < LIST_PAGE:
                return jobs

    def query(self, jobId, request):
        """
        Send C{request} (a dict, see C{docs/API.md}) to job C{jobId} and
        return its result as the server sent it.

        The client waits for the answer up to the request's C{timeout} field
        plus L{TIMEOUT_GRACE} if it has one, else up to L{timeout}.
        """
        wait = self.timeout
        if isinstance(request, dict) and request.get("timeout") is not None:
            try:
                wait = float(request["timeout"]) + TIMEOUT_GRACE
            except (TypeError, ValueError):
                pass
        return self._call("jobmon.query", (jobId, request), wait)

    def _request(self, op, timeout, **fields):
        """
        Build a request struct with the client's timeout.
        """
        request = {"op": op}
        request.update(fields)
        if "path" in request:
            request["path"] = wirePath(request["path"])
        request["timeout"] = _xmlNumber(
            self.timeout if timeout is None else timeout, "timeout"
        )
        return request

    def ls(self, jobId, path=".", timeout=None, depth=None, all=None):
        """
        List directory C{path} of the job: a dict with C{path}, C{entries}
        (dicts with C{name}, C{type}, C{size} (an int), C{mtime}, C{mode},
        and C{target} for links) and C{truncated}.

        @param depth: also list subdirectories down to this many levels
            (names are then relative to C{path}); not sent if C{None}.
        @param all: whether names starting with a dot are listed (the
            daemon's default is true); not sent if C{None}.
        """
        fields = {"path": path}
        if depth is not None:
            fields["depth"] = _xmlNumber(depth, "depth")
        if all is not None:
            fields["all"] = bool(all)
        result = self.query(jobId, self._request("ls", timeout, **fields))
        for entry in result.get("entries", ()):
            _normalizeEntry(entry)
        return result

    def stat(self, jobId, path, timeout=None):
        """
        Return the entry of C{path}: C{path}, C{name}, C{type}, C{size} (an
        int), C{mtime}, C{mode} and for links C{target}.
        """
        return _normalizeEntry(
            self.query(jobId, self._request("stat", timeout, path=path))
        )

    def cat(self, jobId, path, offset=0, length=None, timeout=None):
        """
        Read bytes of C{path} from C{offset}, C{length} of them or to the
        end: a dict with C{path}, C{data} (bytes), C{offset}, C{size} (ints)
        and C{truncated}.
        """
        fields = {"path": path, "offset": _xmlNumber(offset, "offset")}
        if length is not None:
            fields["length"] = _xmlNumber(length, "length")
        return _normalizeData(
            self.query(jobId, self._request("cat", timeout, **fields))
        )

    def head(self, jobId, path, lines=None, timeout=None, bytes=None):
        """
        Read the first C{lines} lines (default 10) or, if C{bytes} is given,
        the first C{bytes} bytes of C{path}: fields as for L{cat}.
        """
        return _normalizeData(
            self.query(jobId, self._request(
                "head", timeout, **_linesOrBytes(path, lines, bytes)))
        )

    def tail(self, jobId, path, lines=None, timeout=None, bytes=None, fromLine=None):
        """
        Read the last C{lines} lines (default 10) or, if C{bytes} is given,
        the last C{bytes} bytes of C{path}: fields as for L{cat}.

        @param fromLine: read the file from this line on instead (C{tail -n
            +N}, lines counted from 1), at most one result's worth; the
            result then also has C{from_line}.
        @raise JobMonError: L{errors.UNSUPPORTED_OP} when C{fromLine} is
            given and the job's daemon is too old to know it (it answers
            with the last lines, which are not what was asked).
        """
        if fromLine is None:
            fields = _linesOrBytes(path, lines, bytes)
        elif lines is not None or bytes is not None:
            raise ClientError(BAD_ARGUMENT, "give fromLine alone, without lines or bytes")
        else:
            fields = {"path": path, "from_line": _xmlNumber(fromLine, "fromLine")}
        result = _normalizeData(self.query(jobId, self._request("tail", timeout, **fields)))
        if fromLine is not None and "from_line" not in result:
            raise JobMonError(
                errors.UNSUPPORTED_OP,
                "this job's daemon is too old for tail from a line (-n +N): update "
                "JobMon where the job runs, or use cat --offset",
            )
        return result

    def follow(self, jobId, path, offset=0, inode=None, wait=10.0, timeout=None):
        """
        Wait up to C{wait} seconds for bytes of C{path} beyond C{offset}:
        a dict with C{path}, C{data} (bytes), C{offset}, C{next_offset},
        C{size} (ints), C{inode}, C{rotated}, C{missing} and C{truncated};
        C{ended} (true) in the last answer of a daemon whose job ended.
        Fails with C{JOB_ENDED} (411) when the job ended before an answer.

        @param inode: the C{inode} of the previous result; C{None} on the
            first call.
        @param timeout: the query's timeout; default C{wait} + 10 s, as the
            server allows a C{follow}.
        """
        fields = {
            "path": path,
            "offset": _xmlNumber(offset, "offset"),
            "wait": _xmlNumber(wait, "wait"),
        }
        if inode is not None:
            fields["inode"] = inode
        if timeout is None:
            timeout = wait + FOLLOW_EXTRA
        return _normalizeData(
            self.query(jobId, self._request("follow", timeout, **fields))
        )

    def ps(self, jobId, timeout=None):
        """
        Return the job's processes: a dict with C{root}, C{processes} (dicts
        with C{pid}, C{ppid}, C{user}, C{state}, C{cpu_percent}, C{rss} and
        C{vms} (ints), C{elapsed}, C{threads}, C{name}, C{cmdline},
        C{daemon}), in tree order, and C{truncated}.
        """
        return _normalizeProcesses(self.query(jobId, self._request("ps", timeout)))

    def top(self, jobId, interval=1.0, timeout=None):
        """
        Like L{ps}, but with CPU use measured over C{interval} seconds, and
        the processes sorted by it, highest first.

        The query's timeout is at least C{interval} + 10 s.
        """
        if timeout is None:
            timeout = max(self.timeout, interval + FOLLOW_EXTRA)
        return _normalizeProcesses(self.query(jobId, self._request(
            "top", timeout, interval=_xmlNumber(interval, "interval"))))

    def res(self, jobId, timeout=None):
        """
        Return the job's resource totals: C{processes}, C{threads},
        C{cpu_user}, C{cpu_system}, C{rss}, C{rss_peak}, C{open_files},
        C{read_bytes}, C{write_bytes} (byte counts as ints) and C{elapsed}.
        """
        return _integralFields(
            self.query(jobId, self._request("res", timeout)),
            ("rss", "rss_peak", "read_bytes", "write_bytes"),
        )

    def du(self, jobId, path=".", timeout=None):
        """
        Return the disk usage under C{path}: C{path}, C{total} (an int),
        C{files}, C{dirs}, C{entries} (C{name}, C{size} (an int), C{type})
        and C{truncated}.
        """
        result = _integralFields(
            self.query(jobId, self._request("du", timeout, path=path)), ("total",))
        for entry in result.get("entries", ()):
            _normalizeEntry(entry)
        return result

    def df(self, jobId, path=".", timeout=None):
        """
        Return the filesystem holding C{path}: C{total}, C{used}, C{free},
        C{inodes_total}, C{inodes_free} (ints) and C{percent}.
        """
        return _integralFields(
            self.query(jobId, self._request("df", timeout, path=path)),
            ("total", "used", "free", "inodes_total", "inodes_free"),
        )

    def env(self, jobId, timeout=None):
        """
        Return the job's environment: C{variables} (a dict) and C{redacted}
        (the names whose values were replaced by C{"<redacted>"}).
        """
        return self.query(jobId, self._request("env", timeout))

    def commands(self, jobId, timeout=None):
        """
        Return what L{run} offers on the job: C{commands}, dicts with
        C{name}, C{description}, C{usage}, C{timeout} and C{max_output}.
        """
        return self.query(jobId, self._request("commands", timeout))

    def run(self, jobId, name, args=(), timeout=None):
        """
        Run the job's command C{name} with C{args} (strings): a dict with
        C{name}, C{argv}, C{exit_code}, C{stdout} and C{stderr} (bytes),
        C{truncated} and C{duration}.
        """
        args = list(args)
        for arg in args:
            if not isinstance(arg, str):
                raise ClientError(
                    BAD_ARGUMENT, "command arguments must be strings, not %r" % (arg,))
        return self.query(jobId, self._request("run", timeout, name=name, args=args))

    def signal(self, jobId, sig, timeout=None):
        """
        Send signal C{sig} (a name such as C{"TERM"}) to the job's root
        process: a dict with C{signal} and C{pid}.
        """
        return self.query(jobId, self._request("signal", timeout, signal=sig))

    def history(self, jobId=None, limit=100):
        """
        The caller's own history: C{{"jobs": [...], "queries": [...]}},
        about one job if C{jobId} is given.
        """
        options = {"limit": limit}
        if jobId is not None:
            options["job_id"] = jobId
        return self._call("jobmon.history", (options,))

    def auditLog(self, jobId, limit=100):
        """
        The last C{limit} audit records about a job, oldest first (the
        server's admins only).
        """
        return self._call("jobmon.auditLog", (jobId, limit))

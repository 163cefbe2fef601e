"""
The commands about jobs rather than inside one: C{whoami}, C{jobs},
C{history} and C{audit}.  Each is one L{Command} with the functions that
format its result.
"""

import time

from jobmon.cli.format import formatAge, printable, shortDN, table
from jobmon.cli.parser import Command, positive
from jobmon.outcomes import outcomeWord

JOB_STATES = ("connecting", "ready")
"""The states a job may be in on the server: C{connecting} until its wake
channel is up, then C{ready}."""

WAKE_MODES = ("tcp", "udp", "poll")
"""The wake modes a job's daemon may use."""

# -- whoami -------------------------------------------------------------------


class Whoami(Command):
    """
    C{whoami}: the caller's identity, the credential's expiry and the
    server's version.
    """

    name = "whoami"
    help = "show the identity the server sees for your credential"
    description = (
        "Show the identity the server sees for your credential, when the\n"
        "credential expires (a proxy's notAfter, a token's exp) and how long\n"
        "is left, and the server's version.  With --json: the server's answer\n"
        "and 'credential' (type, path or source, expires, expires_utc,\n"
        "seconds_left), read here.")
    examples = ("jobmon-query whoami", "jobmon-query --json whoami")

    def run(self, s):
        """
        Print the identity, credential and server lines, or the server's
        answer with the credential as JSON.
        """
        result = s.client.whoami()
        credential = describeCredential(s.client, result, time.time())
        if s.json:
            if credential is not None:
                result = dict(result, credential=credential)
            s.out.json(result)
        else:
            s.out.lines(formatWhoami(result, credential))


def describeCredential(client, info, now):
    """
    Describe the client's credential for C{whoami}: its type, its file or
    source, when it expires (C{expires}, seconds since the epoch, and
    C{expires_utc}, ISO 8601) and C{seconds_left} (negative once expired);
    or L{None} if the client cannot say.  A token's expiry is the server's
    reading (C{info["token"]["expires"]}) when it gives one.
    """
    credential = None
    describe = getattr(client, "credentialInfo", None)
    if describe is not None:
        try:
            credential = dict(describe())
        except Exception:
            # Only a note: whoami has its answer.
            pass
    token = info.get("token")
    if isinstance(token, dict) and isinstance(token.get("expires"), (int, float)):
        if credential is None:
            credential = {"type": "token", "source": None}
        credential["expires"] = token["expires"]
    if credential is None:
        return None
    expires = credential.get("expires")
    try:
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            raise ValueError(expires)
        credential["expires_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    except (OverflowError, OSError, ValueError):
        credential["expires"] = None
        return credential
    credential["seconds_left"] = int(expires - now)
    return credential


def formatWhoami(info, credential=None):
    """
    Return the lines C{whoami} prints: the DN with notes in parentheses;
    the credential and its expiry, if known; the server's version, or that
    the server does not say (an older server).
    """
    notes = []
    if info.get("admin"):
        notes.append("admin")
    if info.get("limited"):
        notes.append("limited proxy")
    elif info.get("proxy"):
        notes.append("via proxy")
    token = info.get("token")
    if isinstance(token, dict):
        notes.append("bearer token, scopes: %s" % (" ".join(token.get("scopes") or []) or "none",))
    line = printable(info.get("dn", "?"))
    if notes:
        line += " (%s)" % (", ".join(notes),)
    lines = [line]
    fqans = info.get("fqans")
    if isinstance(fqans, list) and fqans:
        lines.append("fqans: %s" % (" ".join(printable(str(f)) for f in fqans),))
    groups = token.get("groups") if isinstance(token, dict) else None
    if isinstance(groups, list) and groups:
        lines.append("groups: %s" % (" ".join(printable(str(g)) for g in groups),))
    if credential is not None:
        lines.append(_credentialLine(info, credential))
    version = info.get("server_version")
    if version is None:
        lines.append("server: version not reported (an older server)")
    else:
        lines.append("server: JobMon %s" % (printable(str(version)),))
    return lines


def _credentialLine(info, credential):
    """
    The C{credential:} line of C{whoami}.
    """
    if credential.get("type") == "token":
        what = "bearer token"
        where = credential.get("source")
    else:
        what = "proxy" if info.get("proxy") else "certificate"
        where = credential.get("path")
    if where:
        what += " " + printable(str(where))
    expires = credential.get("expires")
    if expires is None:
        return "credential: %s, expiry unknown" % (what,)
    left = credential.get("seconds_left", 0)
    when = credential["expires_utc"].replace("T", " ").replace("Z", " UTC")
    if left < 0:
        return "credential: %s, expired %s (%s ago)" % (what, when, formatAge(-left))
    return "credential: %s, expires %s (in %s)" % (what, when, formatAge(left))


# -- jobs ---------------------------------------------------------------------


class Jobs(Command):
    """
    C{jobs}: the caller's jobs (or everyone's), filtered here.
    """

    name = "jobs"
    help = "list your jobs (--all: everyone's, for admins)"
    examples = ("jobmon-query jobs", "jobmon-query jobs --state ready --host 'wn*'",
                "jobmon-query jobs --all -l        # admins: every user's jobs")

    def configure(self, sub):
        """
        C{--all}, the filters and C{-l}.
        """
        sub.add_argument("--all", action="store_true",
                         help="every user's jobs (the server's admins only)")
        sub.add_argument("--state", type=str.lower, choices=JOB_STATES,
                         help="only jobs in this state")
        sub.add_argument("--mode", type=str.lower, choices=WAKE_MODES,
                         help="only jobs with this wake mode")
        sub.add_argument("--host", metavar="GLOB",
                         help="only jobs on hosts matching this shell pattern")
        sub.add_argument("-l", "--long", action="store_true",
                         help="show owners' full DNs, not their last CN")

    def run(self, s):
        """
        Print the table of the jobs that pass the filters.
        """
        a = s.args
        jobs = s.client.listJobs(all=True) if a.all else s.client.listJobs()
        jobs = filterJobs(jobs, a.state, a.mode, a.host)
        if s.json:
            s.out.json(jobs)
        else:
            s.out.lines(formatJobs(jobs, time.time(), a.long))


def filterJobs(jobs, state=None, mode=None, host=None):
    """
    Return the jobs whose state and mode are C{state} and C{mode} (ignoring
    case) and whose host matches the shell pattern C{host}; C{None} matches
    anything.
    """
    if host is not None:
        from fnmatch import fnmatchcase

        host = host.lower()
    kept = []
    for job in jobs:
        if state is not None and str(job.get("state", "")).lower() != state.lower():
            continue
        if mode is not None and str(job.get("mode", "")).lower() != mode.lower():
            continue
        if host is not None and not fnmatchcase(str(job.get("host", "")).lower(), host):
            continue
        kept.append(job)
    return kept


def formatJobs(jobs, now, long=False):
    """
    Return the lines of the C{jobs} table, or C{["No jobs."]}.

    @param long: show owners' full DNs instead of their last CN.
    """
    if not jobs:
        return ["No jobs."]
    rows = []
    for job in jobs:
        owner = job.get("owner", "")
        registered = job.get("registered")
        seen = job.get("last_seen")
        rows.append([
            printable(str(job.get("job_id", ""))),
            printable(owner if long else shortDN(owner)),
            printable(str(job.get("host", ""))),
            printable(str(job.get("batch") or "-")),
            printable(str(job.get("mode", ""))),
            printable(str(job.get("state", ""))),
            formatAge(now - registered) if registered is not None else "-",
            formatAge(now - seen) if seen is not None else "-",
            str(job.get("pending", "")),
        ])
    header = ["JOB", "OWNER", "HOST", "BATCH", "MODE", "STATE", "AGE", "SEEN", "PENDING"]
    if any("server" in job for job in jobs):
        # A cluster's server says which of its servers holds each job.
        header.append("SERVER")
        for row, job in zip(rows, jobs):
            row.append(printable(str(job.get("server") or "-")))
    return table(header, rows, right=(6, 7, 8))


# -- history ------------------------------------------------------------------


class History(Command):
    """
    C{history}: the caller's own jobs and queries.
    """

    name = "history"
    help = "show your jobs and queries, kept across server restarts"
    examples = ("jobmon-query history", "jobmon-query history 1234      # a prefix names the job")

    def configure(self, sub):
        """
        An optional C{JOB} (its id, or a prefix naming one of the caller's
        jobs, present or past: the server resolves it) and C{-n}.
        """
        sub.add_argument("job", metavar="JOB", nargs="?",
                         help="only this job: its id, or a prefix of it that names one of "
                              "your jobs, registered now or in the past")
        sub.add_argument("-n", "--lines", metavar="N", type=positive, default=50,
                         help="how many jobs and queries, newest last (default: 50)")

    def run(self, s):
        """
        Print the jobs, then the queries.
        """
        s.show(s.client.history(s.args.job, s.args.lines), formatHistory)


def formatHistory(result):
    """
    Return the lines of a C{history} result: the jobs, then the queries,
    whose outcomes are words (also those an older server sends as codes).
    """
    def when(t):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"

    jobs = result.get("jobs", [])
    queries = result.get("queries", [])
    lines = []
    if jobs:
        rows = [[printable(str(j.get("job_id", ""))), printable(str(j.get("host", ""))),
                 printable(str(j.get("mode", ""))), when(j.get("registered")),
                 when(j.get("ended")) if j.get("ended") else "running",
                 printable(str(j.get("why", "")))] for j in jobs]
        lines += table(["JOB", "HOST", "MODE", "REGISTERED", "ENDED", "WHY"], rows)
    if queries:
        if lines:
            lines.append("")
        rows = []
        for q in queries:
            args = q.get("args") or {}
            what = " ".join("%s=%s" % (k, args[k]) for k in sorted(args)) if isinstance(
                args, dict) else ""
            rows.append([when(q.get("time")), printable(str(q.get("job_id", ""))),
                         printable(str(q.get("op", ""))), printable(what),
                         printable(outcomeWord(q.get("outcome")))])
        lines += table(["TIME", "JOB", "OP", "ARGS", "OUTCOME"], rows)
    return lines or ["No history."]


# -- audit --------------------------------------------------------------------


class Audit(Command):
    """
    C{audit}: the server's audit records about a job (admins only).
    """

    name = "audit"
    help = "show the server's audit records about a job (admins)"
    examples = ("jobmon-query audit 1234.0", "jobmon-query --json audit 1234.0 -n 1000")

    def configure(self, sub):
        """
        C{JOB} (a whole id) and C{-n}.
        """
        sub.add_argument("job", metavar="JOB", help="the job's id (the whole id)")
        sub.add_argument("-n", "--lines", metavar="N", type=positive, default=50,
                         help="how many records, newest last (default: 50)")

    def run(self, s):
        """
        Print one line per record.
        """
        s.show(s.client.auditLog(s.args.job, s.args.lines), formatAudit)


def formatAudit(records):
    """
    Return one line per audit record: time, event, who, what, outcome (a
    word, also for records that hold a fault code).
    """
    if not records:
        return ["No records."]
    lines = []
    for r in records:
        what = r.get("op") or r.get("method") or r.get("mode") or r.get("why") or ""
        args = r.get("args")
        if isinstance(args, dict) and args:
            what += " " + " ".join("%s=%s" % (k, args[k]) for k in sorted(args))
        outcome = outcomeWord(r.get("outcome", r.get("code")))
        extra = ""
        if r.get("event") == "query":
            extra = " %sB %.3fs" % (int(r.get("bytes", 0)), float(r.get("duration", 0)))
        lines.append(printable("%s %-8s %s %s -> %s%s" % (
            r.get("time", "?"), r.get("event", "?"), shortDN(str(r.get("dn", r.get("owner", "")))),
            what, outcome, extra)))
    return lines

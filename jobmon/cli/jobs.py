"""
The commands about jobs rather than inside one: C{whoami}, C{jobs},
C{history} and C{audit}.  Each is one L{Command} with the functions that
format its result.
"""

import time

from jobmon.cli.format import formatAge, printable, shortDN, table
from jobmon.cli.parser import Command, positive
from jobmon.outcomes import outcomeWord

# -- whoami -------------------------------------------------------------------


class Whoami(Command):
    """
    C{whoami}: the caller's identity.
    """

    name = "whoami"
    help = "show the identity the server sees for your credential"
    examples = ("jobmon-query whoami", "jobmon-query --json whoami")

    def run(self, s):
        """
        Print the identity line, or the server's answer as JSON.
        """
        result = s.client.whoami()
        if s.json:
            s.out.json(result)
        else:
            s.out.line(formatWhoami(result))


def formatWhoami(info):
    """
    Return the line C{whoami} prints: the DN and notes in parentheses.
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
        expires = token.get("expires")
        if isinstance(expires, (int, float)):
            notes.append("expires %s" % (
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires)),))
    line = printable(info.get("dn", "?"))
    if notes:
        line += " (%s)" % (", ".join(notes),)
    return line


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
        sub.add_argument("--state", metavar="S",
                         help="only jobs in this state (ready, connecting)")
        sub.add_argument("--mode", metavar="M", help="only jobs with this wake mode "
                                                     "(tcp, udp, poll)")
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

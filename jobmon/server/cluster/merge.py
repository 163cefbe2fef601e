"""
Answers of several servers made one: a user's history, a job's audit
records, each kept by the server where it happened.
"""

from twisted.internet import defer

from jobmon.server.requests import checkLimit


def _newest(rows, key, keep):
    rows = sorted(rows, key=lambda row: row.get(key) or 0)
    return rows[-keep:] if keep else []


def mergeHistory(answers, keep):
    """
    Merge C{history} answers (C{{"jobs": [...], "queries": [...]}}): each
    list in time order, the newest C{keep} of each.
    """
    jobs = [row for answer in answers for row in answer.get("jobs", ())]
    queries = [row for answer in answers for row in answer.get("queries", ())]
    merged = dict(answers[0])
    merged["jobs"] = _newest(jobs, "registered", keep)
    merged["queries"] = _newest(queries, "time", keep)
    return merged


def mergeAudit(answers, keep):
    """
    Merge C{auditLog} answers (lists of records), oldest first, the newest
    C{keep}.
    """
    return _newest([record for answer in answers for record in answer], "time", keep)


def serveHistory(hub, message):
    """
    Another server asks for a user's history kept here.
    """
    if hub.history is None:
        return {"jobs": [], "queries": []}
    options = message.get("options") or {}
    jobId = options.get("job_id")
    current = [r.jobId for r in hub.registry.ofOwner(message["dn"])
               if jobId is not None and r.jobId.startswith(jobId)]
    return hub.history.read(message["dn"], jobId,
                            checkLimit(options.get("limit", 100)), current)


def serveAudit(hub, message):
    """
    Another server asks for a job's audit records kept here.
    """
    if hub.audit is None:
        return []
    return hub._runInThread(hub.audit.read, message["j"], checkLimit(message["n"]))


def fanOut(node, kind, merge, mine, keep, **fields):
    """
    This server's answer C{mine} merged with every other live server's.
    """
    others = [node.call(server, kind, **fields)
              for server in node.live if server != node.serverId]
    d = defer.DeferredList([defer.maybeDeferred(lambda: mine)] + others, consumeErrors=True)

    def merged(results):
        ok, first = results[0]
        if not ok:
            return first
        answers = [first] + [value for ok, value in results[1:] if ok]
        return merge(answers, keep)

    return d.addCallback(merged)

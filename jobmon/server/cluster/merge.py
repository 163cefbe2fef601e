"""
Answers of several servers made one: a user's history, a job's audit
records, each kept by the server where it happened.
"""


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

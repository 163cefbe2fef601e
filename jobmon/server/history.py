"""
Job and query history in SQLite: when each job registered, from which host,
in which mode, when it ended and why, and the queries made to it.  It
survives server restarts, and users read their own back
(C{jobmon-query history}).

The database is used from one thread of its own, never the reactor's: the
hub hands events over with L{History.record}, which batches them.  Queries
wait: one transaction at most every C{flushInterval} seconds (half a
second), or as soon as C{flushRows} events wait.  Registrations and
removals, which the job ids reserved across a restart are read from, are
written at the next reactor turn (with the queries waiting).  A read
(L{History.read}) writes what waits first, so users see their latest
queries; a clean stop writes everything.  A server that dies (killed,
power lost) loses the queries of the last C{flushInterval} seconds from
the history; the audit log (written before each answer leaves) still has
them.  Fields are capped as the audit log's are
(L{jobmon.server.capping}); rows older than C{retentionDays} are pruned,
and each identity keeps at most C{maxRows} rows of each table (L{prune},
from the hub's cleanup cycle, in the database's thread).

Each row of C{jobs} is one registration (C{registration}: its name in the
hub's events, see L{jobmon.server.registry.JobRecord.registration}); an
update touches only the row of its job id, owner and registration.  Rows
still open when the server starts are closed as "server restarted".
"""

import json
import sqlite3

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from jobmon.outcomes import outcomeWord
from jobmon.prefixes import resolvePrefix
from jobmon.server.capping import capValue
from jobmon.server.health import Writability, describeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT NOT NULL, owner TEXT NOT NULL, host TEXT, mode TEXT, batch TEXT,
    registered REAL NOT NULL, ended REAL, why TEXT, registration TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, registered);
CREATE INDEX IF NOT EXISTS jobs_id ON jobs (job_id, registered);
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (ended);
CREATE TABLE IF NOT EXISTS queries (
    time REAL NOT NULL, dn TEXT NOT NULL, job_id TEXT NOT NULL, owner TEXT, op TEXT,
    args TEXT, outcome TEXT, bytes INTEGER, duration REAL
);
CREATE INDEX IF NOT EXISTS queries_dn ON queries (dn, time);
PRAGMA user_version = 2;
"""

RESTARTED = "server restarted"
"""Why a job's row still open at start-up ended."""


class History:
    """
    The history database at C{path}.

    @ivar lost: events that could not be written (disk full, database
        locked); logged once (and again when writing works again), never
        raised, and named by C{/healthz} meanwhile.
    @ivar retentionDays: rows older than this many days are pruned (a job's
        row by when it ended, or registered if it has not).
    @ivar maxRows: most rows kept of each table for one identity (its
        newest).
    @ivar pruneInterval: least time between two prunes, in seconds.
    @ivar pruned: rows pruned so far.
    @ivar flushInterval: longest time an event waits before it is written,
        in seconds.
    @ivar flushRows: events that are written at once, without waiting for
        C{flushInterval}.
    """

    log = Logger()

    def __init__(self, path, clock, threadPool=None, runInThread=None, writability=None,
                 retentionDays=30.0, maxRows=10000, pruneInterval=600.0, flushInterval=0.5,
                 flushRows=1000):
        self.path = path
        self.clock = clock
        self.writability = writability if writability is not None else Writability()
        self._pool = threadPool
        self._runInThread = runInThread
        self._connection = None
        self._pending = []
        self._flushing = None
        self.lost = 0
        self.retentionDays = retentionDays
        self.maxRows = maxRows
        self.pruneInterval = pruneInterval
        self.flushInterval = flushInterval
        self.flushRows = flushRows
        self.pruned = 0
        self._pruning = False
        self._lastPrune = None

    def start(self):
        """
        Start the database thread and create the tables.

        @return: a L{Deferred} that fires when the database is ready.
        """
        if self._runInThread is None:
            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="jobmon-history")
            self._pool.start()
            pool = self._pool
            self._runInThread = lambda f, *a: deferToThreadPool(self.clock, pool, f, *a)
        d = self._runInThread(self._open, self.clock.seconds())

        def failed(failure):
            self.writability.failed("history", self.path, describeError(failure.value))
            return failure

        return d.addErrback(failed)

    def _open(self, now):
        c = sqlite3.connect(self.path, check_same_thread=False)
        columns = [row[1] for row in c.execute("PRAGMA table_info(jobs)")]
        if columns and "registration" not in columns:
            # A database of a server before version 2 of the schema.
            c.execute("ALTER TABLE jobs ADD COLUMN registration TEXT")
        c.executescript(SCHEMA)
        with c:
            # Whatever was registered when the server stopped is no longer.
            c.execute("UPDATE jobs SET ended = ?, why = ? WHERE ended IS NULL",
                      (now, RESTARTED))
        self._connection = c

    def recentOwners(self, now, reserveFor):
        """
        The owners of the job ids registered within C{reserveFor} seconds
        before C{now}: still registered then, or ended since.

        @return: a L{Deferred} firing with C{(jobId, owner, ended)}
            triples, in the order the jobs registered.
        """
        return self._runInThread(self._recentOwners, now - reserveFor)

    def _recentOwners(self, since):
        c = self._connection
        if c is None:
            raise sqlite3.OperationalError("the database could not be opened")
        return c.execute(
            "SELECT job_id, owner, ended FROM jobs WHERE ended >= ? ORDER BY registered",
            (since,),
        ).fetchall()

    def record(self, event, **fields):
        """
        Take one hub event (as for the audit log); the ones history keeps
        are written in a batch: queries within C{flushInterval} seconds (at
        once when C{flushRows} wait), one transaction and one trip to the
        database's thread for many queries, not one each; registrations and
        removals at the next reactor turn.
        """
        if event not in ("register", "removed", "query"):
            return
        fields = {k: capValue(v) for k, v in fields.items()}
        self._pending.append((event, self.clock.seconds(), fields))
        if len(self._pending) >= self.flushRows:
            self._flush()
            return
        # Registrations and removals are rare, and the job ids reserved
        # across a restart (even after a kill) are read from them: they are
        # written at the next reactor turn.  Queries wait for the batch.
        delay = self.flushInterval if event == "query" else 0
        if self._flushing is not None:
            if self._flushing.getTime() <= self.clock.seconds() + delay:
                return
            self._flushing.cancel()
        self._flushing = self.clock.callLater(delay, self._flush)

    def _flush(self):
        """
        Write the waiting events now, in one transaction in the database's
        thread.

        @return: a L{Deferred} that fires once they are written (or lost),
            or L{None} if none waited.
        """
        if self._flushing is not None:
            if self._flushing.active():
                self._flushing.cancel()
            self._flushing = None
        rows, self._pending = self._pending, []
        if not rows or self._runInThread is None:
            return None
        d = self._runInThread(self._write, rows)

        def written(_):
            self.writability.worked("history", lost=self.lost)

        def failed(failure):
            # Logged once by the writability, not per batch; /healthz
            # answers 503 meanwhile.
            self.lost += len(rows)
            self.writability.failed("history", self.path, describeError(failure.value))

        d.addCallbacks(written, failed)
        return d

    def _write(self, rows):
        c = self._connection
        if c is None:
            raise sqlite3.OperationalError("the database could not be opened")
        with c:
            for kind, now, f in rows:
                if kind == "register":
                    # A new registration of the owner's job ends the one it
                    # replaces.
                    if f.get("replaces") is not None:
                        c.execute(
                            "UPDATE jobs SET ended = ?, why = ? WHERE job_id = ? AND owner = ? "
                            "AND registration = ? AND ended IS NULL",
                            (now, "registered again", f.get("job_id"), f.get("dn"),
                             f.get("replaces")),
                        )
                    c.execute(
                        "INSERT INTO jobs (job_id, owner, host, mode, batch, registered, "
                        "registration) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (f.get("job_id"), f.get("dn"), f.get("host"), f.get("mode"),
                         f.get("batch") or "", now, f.get("registration")),
                    )
                elif kind == "removed":
                    c.execute(
                        "UPDATE jobs SET ended = ?, why = ? WHERE job_id = ? AND owner = ? "
                        "AND registration = ? AND ended IS NULL",
                        (now, f.get("why"), f.get("job_id"), f.get("owner"),
                         f.get("registration")),
                    )
                else:
                    c.execute(
                        "INSERT INTO queries (time, dn, job_id, owner, op, args, outcome, bytes, "
                        "duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (now - (f.get("duration") or 0), f.get("dn"), f.get("job_id"),
                         f.get("owner"), f.get("op"), json.dumps(f.get("args") or {}, default=str),
                         str(f.get("outcome")), f.get("bytes") or 0, f.get("duration") or 0),
                    )

    def prune(self):
        """
        Delete the rows past their retention and each identity's rows past
        L{maxRows}, in the database's thread, if the last prune was
        C{pruneInterval} ago or more (and none is running).

        @return: a L{Deferred} firing with the number of rows deleted, or
            L{None} if no prune was due.
        """
        now = self.clock.seconds()
        if self._runInThread is None or self._connection is None or self._pruning:
            return None
        if self._lastPrune is not None and now - self._lastPrune < self.pruneInterval:
            return None
        self._lastPrune = now
        self._pruning = True
        d = self._runInThread(self._prune, now - self.retentionDays * 86400, self.maxRows)

        def pruned(count):
            self.pruned += count
            if count:
                self.log.info("history: {count} old row(s) pruned", count=count)
            return count

        def failed(failure):
            self.writability.failed("history", self.path, describeError(failure.value))

        def done(result):
            self._pruning = False
            return result

        return d.addCallbacks(pruned, failed).addBoth(done)

    def _prune(self, cutoff, maxRows):
        c = self._connection
        deleted = 0
        with c:
            deleted += c.execute(
                "DELETE FROM jobs WHERE COALESCE(ended, registered) < ?", (cutoff,)
            ).rowcount
            deleted += c.execute("DELETE FROM queries WHERE time < ?", (cutoff,)).rowcount
            for table, who, when in (("jobs", "owner", "registered"), ("queries", "dn", "time")):
                over = c.execute(
                    "SELECT {who}, COUNT(*) FROM {table} GROUP BY {who} HAVING COUNT(*) > ?"
                    .format(who=who, table=table),
                    (maxRows,),
                ).fetchall()
                for name, count in over:
                    deleted += c.execute(
                        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                        "WHERE {who} = ? ORDER BY {when} LIMIT ?)".format(
                            table=table, who=who, when=when),
                        (name, count - maxRows),
                    ).rowcount
        return deleted

    def read(self, dn, jobId=None, limit=100, current=()):
        """
        The history of C{dn}: the jobs it registered and the queries it
        made (about C{jobId} only, if given), newest last, at most C{limit}
        of each.  Query outcomes are words (see L{jobmon.outcomes}), also
        those written as fault codes by older servers.

        @param jobId: a job id, or a prefix naming one of the jobs of C{dn},
            registered now (in C{current}) or in the past (see
            L{resolvePrefix}).
        @param current: the ids of the jobs C{dn} has registered now that
            start with C{jobId}.
        @return: a L{Deferred} firing with C{{"jobs": [...], "queries": [...]}},
            or failing with L{jobmon.prefixes.AmbiguousJobId}.
        """
        pending = self._flush() or defer.succeed(None)
        return pending.addCallback(
            lambda _: self._runInThread(self._read, dn, jobId, limit, list(current))
        )

    def _resolve(self, dn, prefix, current):
        """
        The job id C{prefix} names among the present and past jobs of
        C{dn}, or C{prefix} itself if it names none.
        """
        past = self._connection.execute(
            "SELECT DISTINCT job_id FROM jobs WHERE owner = ? AND substr(job_id, 1, ?) = ?",
            (dn, len(prefix), prefix),
        ).fetchall()
        match = resolvePrefix(prefix, current + [j for (j,) in past])
        return prefix if match is None else match

    def _read(self, dn, jobId, limit, current=()):
        c = self._connection
        if jobId is not None:
            jobId = self._resolve(dn, jobId, list(current))

        def latest(columns, table, who, order):
            # The newest rows of one table for this identity (and job).
            where, params = who + " = ?", [dn]
            if jobId is not None:
                where += " AND job_id = ?"
                params.append(jobId)
            return c.execute(
                "SELECT {} FROM {} WHERE {} ORDER BY {} DESC LIMIT ?".format(
                    columns, table, where, order
                ),
                params + [limit],
            ).fetchall()

        jobs = latest("job_id, host, mode, batch, registered, ended, why", "jobs", "owner",
                      "registered")
        queries = latest("time, job_id, op, args, outcome, bytes, duration", "queries", "dn",
                         "time")
        return {
            "jobs": [
                {"job_id": j, "host": h or "", "mode": m or "", "batch": b or "",
                 "registered": float(r), "ended": float(e) if e is not None else 0.0,
                 "why": w or ""}
                for j, h, m, b, r, e, w in reversed(jobs)
            ],
            "queries": [
                {"time": float(t), "job_id": j, "op": o or "", "args": json.loads(a or "{}"),
                 "outcome": outcomeWord(out), "bytes": float(n or 0),
                 "duration": float(d or 0)}
                for t, j, o, a, out, n, d in reversed(queries)
            ],
        }

    def stop(self):
        """
        Write what is pending, then close the database and its thread.
        """
        d = self._flush() or defer.succeed(None)

        def close(_):
            if self._connection is not None and self._runInThread is not None:
                return self._runInThread(self._connection.close)

        d.addCallback(close)
        d.addBoth(lambda _: self._pool.stop() if self._pool is not None else None)
        return d

"""
The audit trail: one JSON object per line for every query, refusal and
registration, in an append-only file rotated by size.

Each record has C{time} (ISO 8601, UTC), C{event} and the fields of that
event (see C{docs/SECURITY.md}).  Arguments are recorded (paths, command
names), never file contents or command output.  Every field and record is
capped, and each caller's refusals are kept within a budget (see
L{jobmon.server.capping}).
"""

import json
import os
import time

from twisted.logger import Logger
from twisted.python.logfile import LogFile

from jobmon.server.capping import RECORD_BYTES, RefusalBudget, capRecord
from jobmon.server.health import Writability, describeError

_second = [None, ""]
"""The last whole second L{_iso} formatted, and its text."""


def _iso(now):
    """
    C{now} (seconds since the epoch) as ISO 8601 in UTC, with milliseconds.
    The text of the whole second is kept: records come many a second.
    """
    second = int(now)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return _second[1] + ".%03dZ" % (int(now * 1000) % 1000)


class AuditLog:
    """
    Append audit records to C{path}, rotating it past C{rotateBytes} and
    keeping C{keep} old files (C{path.1} is the newest).

    The file is opened by L{open} (the server does when it starts), or by
    the first record.  Writing never raises: a full or read-only disk is
    logged once (and again when writing works again), and the server goes
    on, and C{/healthz} names the file (see L{jobmon.server.health}).

    @ivar name: the path as given, for messages.
    @ivar path: the absolute path.
    @ivar written: records written.
    @ivar lost: records that could not be written.
    @ivar refusals: the L{RefusalBudget} of each caller's refusal records.
    """

    log = Logger()

    def __init__(self, path, clock=None, rotateBytes=10 * 1024 * 1024, keep=10,
                 writability=None, refusalBytes=64 * 1024, maxRecord=RECORD_BYTES):
        self.name = path
        self.path = os.path.abspath(path)
        self.clock = clock
        self.keep = keep
        self.rotateBytes = rotateBytes
        self.writability = writability if writability is not None else Writability()
        self._file = None
        self.written = 0
        self.lost = 0
        self._failing = False
        self.maxRecord = maxRecord
        self.refusals = RefusalBudget(perHour=refusalBytes)

    def _now(self):
        return self.clock.seconds() if self.clock is not None else time.time()

    def open(self):
        """
        Open the file (created, private to its owner, if missing); nothing
        if it is open already.

        @raise OSError: it cannot be opened.
        """
        if self._file is None:
            directory, name = os.path.split(self.path)
            self._file = LogFile(
                name, directory, rotateLength=self.rotateBytes, maxRotatedFiles=self.keep,
                defaultMode=0o600,
            )

    def record(self, event, **fields):
        """
        Write one record.

        Written in the caller's thread, the reactor's, on purpose: a line of
        a few hundred bytes and a flush to the page cache (no fsync) costs
        tens of microseconds, rotation is rare, and a query's record is
        written before its answer leaves, so that the trail is complete and
        in order even if the server process dies.

        Every field and the record are capped (L{capRecord}); a refusal is
        written only within its caller's budget (L{RefusalBudget}), and
        the next one written says how many were not.
        """
        now = self._now()
        entry = {"time": _iso(now), "event": event}
        entry.update(fields)
        line = capRecord(entry, self.maxRecord)
        if event == "refused":
            # An unidentified caller is known by its address.
            caller = fields.get("peer") or fields.get("dn")
            left = self.refusals.admit(str(caller), len(line), now)
            if left is None:
                return
            if left:
                entry["unrecorded"] = left
                line = capRecord(entry, self.maxRecord)
        self._write(line)

    def summarise(self):
        """
        Write, for each caller whose refusals were left out and that has had
        no record for a while, one C{"refusals"} record saying how many,
        and when the first and last of them came (the hub's cleanup cycle
        calls this).
        """
        now = self._now()
        for caller, count, first, last in self.refusals.summaries(now):
            self._write(capRecord({
                "time": _iso(now), "event": "refusals", "caller": caller,
                "unrecorded": count, "first": _iso(first), "last": _iso(last),
                "reason": "over the caller's audit budget for refusals",
            }, self.maxRecord))

    def _write(self, line):
        try:
            if self._file is None:
                self.open()
            self._file.write(line)
            self._file.flush()
        except OSError as e:
            # Logged by the writability once, not per record; /healthz
            # answers 503 meanwhile.
            self.lost += 1
            self._failing = True
            self.writability.failed("audit log", self.path, describeError(e))
            return
        self.written += 1
        if self._failing:
            self._failing = False
            self.writability.worked("audit log", lost=self.lost)

    def read(self, jobId=None, limit=100):
        """
        Return the last C{limit} records (about C{jobId} only, if given),
        oldest first, from the current file and the rotated ones.  Blocking:
        call it in a thread.
        """
        found = []
        paths = [self.path] + ["{}.{}".format(self.path, i) for i in range(1, self.keep + 1)]
        for path in paths:
            try:
                with open(path, "rb") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            batch = []
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if jobId is None or entry.get("job_id") == jobId:
                    batch.append(entry)
            found = batch + found
            if len(found) >= limit:
                break
        return found[-limit:]

    def close(self):
        """
        Close the file, if it is open.
        """
        if self._file is not None:
            self._file.close()
            self._file = None

"""
The server's log files: JSON lines, split by category as the seed's server
split them (registrations, queries, wake channels, cleanup), or one file
with all.  The console (C{twistd -n}) keeps its human-readable lines.

Each line is one flat JSON object, for jq and log shippers (L{eventAsJSON}):

    {"time": "2026-12-03T08:00:00.123Z", "level": "info", "category": "registration",
     "namespace": "jobmon.server.registrations.Registrations",
     "message": "job 42 registered by /CN=Alice from node7 (tcp)",
     "job_id": "42", "dn": "/CN=Alice", "host": "node7", "mode": "tcp"}

C{time} is ISO 8601 in UTC (milliseconds), C{level} one of C{debug},
C{info}, C{warn}, C{error}, C{critical}, C{message} the event's text as the
console shows it, then the event's own fields (the peer address, DN, job
id, method, outcome... whatever it carries), each a string, number,
boolean, null or list of those.  An event with a failure adds C{error},
C{error_type} and C{traceback}.  Twisted's internal fields (C{log_*}, the
logger object, the format string) are left out.
"""

import json
import math
import os
import time

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure

CATEGORIES = ("registration", "query", "wake", "cleanup")
"""The categories JobMon's events carry; anything else is C{server}."""

_BASE = ("time", "level", "category", "namespace", "message")

_LEGACY = frozenset(["message", "time", "system", "isError", "format", "printed", "failure",
                     "why"])
"""Fields of a C{twisted.python.log} event that repeat what the line says."""


def _category(event):
    category = event.get("category")
    return category if category in CATEGORIES else "server"


def isoTime(seconds):
    """
    C{seconds} since the epoch as ISO 8601 in UTC with milliseconds:
    C{2026-12-03T08:00:00.123Z}.
    """
    millis = int(round(seconds * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + ".%03dZ" % (
        millis % 1000,
    )


def _plain(value, depth=0):
    """
    A field's value as JSON takes it: scalars as they are, lists and tuples
    of them as lists, anything else as its text.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, set, frozenset)) and depth == 0:
        return [_plain(v, 1) for v in value]
    return str(value)


def eventAsJSON(event):
    """
    One log event as one line of flat JSON (see the module's description).

    @return: the line, with its newline.
    """
    level = event.get("log_level")
    entry = {
        "time": isoTime(event.get("log_time", time.time())),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "category": _category(event),
        "namespace": event.get("log_namespace", "-"),
    }
    message = formatEvent(event)
    failure = event.get("log_failure") or event.get("failure")
    if isinstance(failure, Failure):
        # A legacy error's text holds the traceback too: it has a field.
        message = message.split("\nTraceback (most recent call last):", 1)[0].rstrip()
    entry["message"] = message
    legacy = "isError" in event
    for key, value in event.items():
        if key.startswith(("log_", "_")) or key in _BASE or (legacy and key in _LEGACY):
            continue
        entry[key] = _plain(value)
    if isinstance(failure, Failure):
        entry["error"] = failure.getErrorMessage()
        entry["error_type"] = failure.type.__module__ + "." + failure.type.__qualname__
        entry["traceback"] = failure.getTraceback()
    return json.dumps(entry, ensure_ascii=False, separators=(", ", ": ")) + "\n"


class LogFiles:
    """
    Observers writing JSON lines to files in C{directory}: C{jobmon-CATEGORY.jsonl}
    each (C{split}), or C{jobmon.jsonl} for all.

    @ivar level: the lowest level written (default info).
    """

    def __init__(self, directory, split=True, level=LogLevel.info, publisher=None):
        self.directory = directory
        self.split = split
        self.level = level
        self.publisher = publisher or globalLogPublisher
        self._files = []
        self._observers = []

    def start(self):
        """
        Open the files and start observing.

        @raise OSError: a file cannot be opened.
        """
        os.makedirs(self.directory, exist_ok=True)
        levels = LogLevelFilterPredicate(defaultLogLevel=self.level)
        names = (CATEGORIES + ("server",)) if self.split else (None,)
        for name in names:
            path = os.path.join(
                self.directory, "jobmon-{}.jsonl".format(name) if name else "jobmon.jsonl"
            )
            f = open(path, "a", encoding="utf-8")
            self._files.append(f)
            predicates = [levels]
            if name is not None:
                predicates.append(_only(name))
            else:
                predicates.append(_tagged)
            # Plain JSON lines (no RFC 7464 record separators), flat: what
            # log shippers and jq expect.
            observer = FilteringLogObserver(FileLogObserver(f, eventAsJSON), predicates)
            self._observers.append(observer)
            self.publisher.addObserver(observer)

    def stop(self):
        """
        Stop observing and close the files.
        """
        for observer in self._observers:
            self.publisher.removeObserver(observer)
        for f in self._files:
            f.close()
        self._observers, self._files = [], []


def _only(name):
    def predicate(event):
        return PredicateResult.maybe if _category(event) == name else PredicateResult.no

    return predicate


def _tagged(event):
    """
    The single file takes every event (each line says its category).
    """
    return PredicateResult.maybe

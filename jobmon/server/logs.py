"""
The server's log files: structured JSON lines, split by category as the
seed's server split them (registrations, queries, wake channels, cleanup),
or one file with a C{category} field.  The console (C{twistd -n}) keeps its
human-readable lines.
"""

import os

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogPublisher,
    jsonFileLogObserver,
)

CATEGORIES = ("registration", "query", "wake", "cleanup")
"""The categories JobMon's events carry; anything else is C{server}."""


def _category(event):
    category = event.get("category")
    return category if category in CATEGORIES else "server"


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
            # Plain JSON lines (no RFC 7464 record separators): what log
            # shippers and jq expect.
            observer = FilteringLogObserver(
                jsonFileLogObserver(f, recordSeparator=""), predicates
            )
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
    In the single file, every event says its category.
    """
    event.setdefault("category", _category(event))
    return PredicateResult.maybe

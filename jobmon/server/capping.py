"""
Caps on what callers write into the audit log and the history: every
field, every record, and the bytes of refusals each caller may have
recorded.

A caller chooses much of what is recorded about it (a job id, a path, a
reason): without caps, a few calls with a huge job id would rotate every
earlier audit record away.  L{capValue} truncates long text, marking where
and how long it was, escapes control characters (no newline, no terminal
escape sequence reaches a reader), and bounds nested values;
L{capRecord} bounds a whole record; L{RefusalBudget} bounds the refusal
records of each caller, counting the rest.
"""

import json
import re

FIELD_CHARS = 512
"""Longest text kept in one field (a job id has at most 256 characters)."""

KEY_CHARS = 64
"""Longest key kept in a nested struct."""

ITEMS = 32
"""Most entries kept of a nested struct or list."""

DEPTH = 4
"""Deepest nesting kept."""

RECORD_BYTES = 4096
"""Longest audit record, in bytes (a JSON line)."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""Control characters (C0, DEL, C1), Unicode line separators, bidirectional
overrides and lone surrogates: escaped, so that what is recorded reads as
one line and cannot drive a terminal."""


def _escape(match):
    code = ord(match.group())
    return "\\x{:02x}".format(code) if code < 0x100 else "\\u{:04x}".format(code)


def capText(text, limit=FIELD_CHARS):
    """
    C{text} with control characters escaped (C{\\x1b}), and, if longer than
    C{limit} characters, cut there and marked with its length:
    C{"abc...[truncated: 11534336 characters]"}.
    """
    if len(text) <= limit and text.isprintable():
        # Nothing unprintable, so nothing to escape (the common case).
        return text
    safe = _UNSAFE.sub(_escape, text[:limit])
    if len(text) <= limit and len(safe) <= limit:
        return safe
    return safe[:limit] + "...[truncated: {} characters]".format(len(text))


def capValue(value, depth=0):
    """
    C{value} made fit for a record: text capped by L{capText}, structs and
    lists to L{ITEMS} entries and L{DEPTH} levels, numbers beyond 64 bits
    as capped text.
    """
    if isinstance(value, str):
        return capText(value)
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else capText(str(value), 40)
    if isinstance(value, (bytes, bytearray)):
        return capText(bytes(value[:FIELD_CHARS + 1]).decode("utf-8", "replace"))
    if isinstance(value, dict):
        if depth >= DEPTH:
            return "[struct of {} entries, nested too deep]".format(len(value))
        capped = {}
        for i, (k, v) in enumerate(value.items()):
            if i == ITEMS:
                capped["..."] = "[{} more entries]".format(len(value) - ITEMS)
                break
            capped[capText(str(k), KEY_CHARS)] = capValue(v, depth + 1)
        return capped
    if isinstance(value, (list, tuple)):
        if depth >= DEPTH:
            return "[list of {} items, nested too deep]".format(len(value))
        capped = [capValue(v, depth + 1) for v in value[:ITEMS]]
        if len(value) > ITEMS:
            capped.append("[{} more items]".format(len(value) - ITEMS))
        return capped
    return capText(str(value))


def _dumps(value):
    return json.dumps(value, separators=(",", ":"), default=str)


def capRecord(entry, maxBytes=RECORD_BYTES):
    """
    The JSON line (newline included) of C{entry}, each field capped by
    L{capValue}; if the line is still longer than C{maxBytes}, its largest
    fields (never C{time} and C{event}) are replaced, one by one, by
    C{"[omitted: N bytes]"}.
    """
    capped = {capText(str(k), KEY_CHARS): capValue(v) for k, v in entry.items()}
    line = _dumps(capped)
    if len(line) >= maxBytes:
        sizes = sorted(
            ((len(_dumps(v)), k) for k, v in capped.items() if k not in ("time", "event")),
            reverse=True,
        )
        for size, k in sizes:
            capped[k] = "[omitted: {} bytes]".format(size)
            line = _dumps(capped)
            if len(line) < maxBytes:
                break
    return line + "\n"


class RefusalBudget:
    """
    How many bytes of refusal records each caller (an identity, or the
    address of one that could not be identified) may have written: a token
    bucket of C{perHour} bytes an hour, in bursts of as many.  A refusal
    over it is not written but counted; the caller's next record written
    says how many were not (C{"unrecorded": N}), and L{summaries} gives the
    counts of callers that went quiet, at most once per C{interval}
    seconds each.  So no caller, whatever it sends, can rotate the others'
    records out of the audit log.

    @ivar callers: C{[allowance, when, unrecorded, first, last, written]}
        by caller: its allowance in bytes as of C{when}; how many of its
        refusals were left out, the first and last of them; when its last
        record (or summary) was written.
    @ivar unrecorded: refusals left out in all.
    """

    OVERFLOW = "*"
    """The caller all new ones share while the table is full."""

    def __init__(self, perHour=64 * 1024, interval=600.0, maxCallers=1000):
        self.perHour = perHour
        self.interval = interval
        self.maxCallers = maxCallers
        self.callers = {}
        self.unrecorded = 0

    def _state(self, caller, now):
        state = self.callers.get(caller)
        if state is None:
            if len(self.callers) >= self.maxCallers:
                self.forget(now)
                if len(self.callers) >= self.maxCallers:
                    caller = self.OVERFLOW
            state = self.callers.setdefault(caller, [self.perHour, now, 0, None, None, now])
        rate = self.perHour / 3600.0
        state[0] = min(self.perHour, state[0] + (now - state[1]) * rate)
        state[1] = now
        return state

    def admit(self, caller, size, now):
        """
        Whether a refusal record of C{size} bytes about C{caller} may be
        written at C{now}.

        @return: L{None} to leave it out (it is counted), else how many of
            the caller's refusals were left out since its last record.
        """
        state = self._state(caller, now)
        if state[0] < size:
            state[2] += 1
            self.unrecorded += 1
            state[3] = now if state[3] is None else state[3]
            state[4] = now
            return None
        state[0] -= size
        left, state[2], state[3], state[4] = state[2], 0, None, None
        state[5] = now
        return left

    def summaries(self, now):
        """
        The callers with refusals left out and no record for C{interval}
        seconds: C{(caller, count, first, last)} each, their counts reset.
        """
        due = []
        for caller, state in self.callers.items():
            if state[2] and now - state[5] >= self.interval:
                due.append((caller, state[2], state[3], state[4]))
                state[2], state[3], state[4], state[5] = 0, None, None, now
        return due

    def forget(self, now):
        """
        Forget the callers whose allowance is whole again and that have
        nothing left out.
        """
        rate = self.perHour / 3600.0
        for caller, state in list(self.callers.items()):
            if not state[2] and state[0] + (now - state[1]) * rate >= self.perHour:
                del self.callers[caller]

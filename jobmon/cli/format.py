"""
How C{jobmon-query} shows single values (names, sizes, times, modes,
identities) and lays rows out in columns: the formatters several commands
share.  Each command's module formats its own results with these.
"""

import stat as _stat
import time

from jobmon.untrusted import escaped

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_SIX_MONTHS = 31556952 // 2
"""Half a Gregorian year, as GNU C{ls} counts it."""

_FUTURE_SLACK = 3600
"""Seconds an mtime may lie in the future and still count as recent: the
worker's clock may be ahead of ours."""

_TYPE_BITS = {"file": _stat.S_IFREG, "dir": _stat.S_IFDIR, "link": _stat.S_IFLNK}


def printable(text):
    """
    Return C{text} with control and other unprintable characters escaped
    (C{\\n}, C{\\x1b}...), so that a file name or a server message cannot
    break a line or drive the terminal.
    """
    return escaped(text)


_SHELL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}


def _unprintable(text):
    """
    Tell whether C{text} holds a character a name cannot show as it is: a
    control or other unprintable character, or a byte that was not UTF-8
    (a lone surrogate, as Python decodes file names).
    """
    return not text.isprintable()


def quoteName(name):
    """
    Return a file name as C{ls} shows it, in a form a shell takes back as
    the same name (GNU C{ls}'s C{shell-escape} style, for the names that
    need it):

      - a name of printable characters without quote or backslash, as it
        is: C{job.log}, C{my file};
      - a name of printable characters with a quote or a backslash, in
        single quotes: C{'\\xff'} (a file literally named so);
      - a name with control characters or bytes that are not UTF-8, as
        C{$'...'}: C{$'\\377.log'} (the byte 0xFF), C{$'a\\033[2J'}
        (an escape sequence), C{$'\\u202e'}.

    @param name: the exact name: bytes that are not UTF-8 as lone
        surrogates (see L{jobmon.client.exactName}).
    """
    if not _unprintable(name):
        if "'" not in name and "\\" not in name:
            return name
        return "'" + name.replace("'", "'\\''") + "'"
    out = []
    for ch in name:
        code = ord(ch)
        if ch in _SHELL_ESCAPES:
            out.append(_SHELL_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append("\\%03o" % (code - 0xDC00,))
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append("\\%03o" % (code,))
        elif code <= 0xFFFF:
            out.append("\\u%04x" % (code,))
        else:
            out.append("\\U%08x" % (code,))
    return "$'" + "".join(out) + "'"


def formatMode(type_, mode):
    """
    Return the C{ls -l} mode string (C{drwxr-xr-x}) of an entry of type
    C{type_} (C{file}, C{dir}, C{link}, C{other}) with permission bits
    C{mode}.
    """
    return _stat.filemode(_TYPE_BITS.get(type_, 0) | (int(mode) & 0o7777))


def formatTime(mtime, now):
    """
    Return an mtime as C{ls -l} shows it: C{Nov 26 06:30} if it is within
    the last six months, else C{Nov 26  2024}.
    """
    try:
        t = time.localtime(mtime)
    except (OverflowError, OSError, ValueError):
        return "?" * 12
    month = _MONTHS[t.tm_mon - 1]
    if now - _SIX_MONTHS <= mtime <= now + _FUTURE_SLACK:
        return "%s %2d %02d:%02d" % (month, t.tm_mday, t.tm_hour, t.tm_min)
    return "%s %2d  %d" % (month, t.tm_mday, t.tm_year)


def formatAge(seconds):
    """
    Return a duration the short way: C{5s}, C{3m}, C{2h10m}, C{4d}.
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % (seconds,)
    if seconds < 3600:
        return "%dm" % (seconds // 60,)
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return "%dh%dm" % (hours, minutes) if minutes else "%dh" % (hours,)
    return "%dd" % (seconds // 86400,)


def formatISO(seconds):
    """
    Return a time as ISO 8601 in UTC, to the millisecond:
    C{2026-12-03T07:57:38.123Z}.
    """
    whole = int(seconds // 1)
    millis = int(round((seconds - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)), millis)


def formatDuration(seconds):
    """
    Return an amount of (CPU) time for a person: C{0.4s}, C{12.5s},
    C{3m07s}, C{2h05m}, C{4d03h}.
    """
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return "%.1fs" % (seconds,)
    whole = int(seconds)
    if whole < 3600:
        return "%dm%02ds" % divmod(whole, 60)
    if whole < 86400:
        return "%dh%02dm" % divmod(whole // 60, 60)
    return "%dd%02dh" % divmod(whole // 3600, 24)


def formatElapsed(seconds):
    """
    Return a process's running time as C{ps} shows it: C{MM:SS},
    C{HH:MM:SS} or C{D-HH:MM:SS}.
    """
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%d-%02d:%02d:%02d" % (days, hours, minutes, secs)
    if hours:
        return "%02d:%02d:%02d" % (hours, minutes, secs)
    return "%02d:%02d" % (minutes, secs)


def humanSize(size):
    """
    Return a byte count the way C{ls -h} and C{du -h} show it, in powers of
    1024: C{512}, C{1.5K}, C{12K}, C{3.4G}.
    """
    size = float(size)
    if abs(size) < 1024:
        return "%d" % (size,)
    for unit in "KMGTPE":
        size /= 1024.0
        if abs(size) < 1024 or unit == "E":
            break
    if abs(size) < 9.95:
        return "%.1f%s" % (size, unit)
    return "%.0f%s" % (size, unit)


def formatSize(value, human):
    """
    Return a byte count, human-readable or in full.
    """
    if value is None:
        return "-"
    return humanSize(value) if human else "%d" % (value,)


def shortDN(dn):
    """
    Return the last CN of a slash-form DN (C{/DC=org/CN=Alice} gives
    C{Alice}; C{/CN=host/node1.example.org} gives C{host/node1.example.org}),
    or the DN itself if it has no CN.  A bearer token's identity,
    C{https://issuer.example/vo#carol}, gives C{carol@issuer.example}.
    """
    if dn.startswith("https://") and "#" in dn:
        issuer, _, subject = dn.partition("#")
        return "%s@%s" % (subject, issuer[len("https://"):].split("/")[0])
    at = dn.rfind("/CN=")
    if at < 0:
        return dn
    return dn[at + 4:] or dn


def table(header, rows, right=()):
    """
    Lay out rows in columns two spaces apart; columns whose index is in
    C{right} are right-aligned.
    """
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = []
    for row in [header] + rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines

"""
Times as messages show them.  Standard library only: every role uses it.
"""

import time


def utc(seconds):
    """
    A time in seconds since the epoch as C{YYYY-MM-DD HH:MM:SS UTC}; a time
    no calendar holds (a signed but absurd claim) still gives a message.
    """
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "{} seconds since 1970".format(seconds)


def ago(seconds):
    """
    A short span, as in "expired 5 min ago": seconds, minutes or hours.
    """
    seconds = int(seconds)
    if seconds < 120:
        return "{} s".format(seconds)
    if seconds < 7200:
        return "{} min".format(seconds // 60)
    return "{:.1f} h".format(seconds / 3600)


def duration(seconds):
    """
    A lifetime, as in "tokens live at most 12.0 h": minutes, hours or days.
    """
    if seconds < 7200:
        return "{:.0f} min".format(seconds / 60)
    if seconds < 3 * 86400:
        return "{:.1f} h".format(seconds / 3600)
    return "{:.0f} days".format(seconds / 86400)

"""
The address of the cluster's Redis, as given to C{jobmon-server --redis}:

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
    rediss://[[USER]:PASSWORD@]HOST[:PORT][/DB][?ca=PATH]

C{rediss} speaks TLS and verifies the server's certificate and host name,
against the CA certificates of C{PATH} (a PEM bundle) when given, else the
system's trust store.
"""

from urllib.parse import parse_qsl, quote, unquote, urlsplit

from attrs import field, frozen

DEFAULT_PORT = 6379


@frozen
class RedisTarget:
    """
    Where the cluster's Redis is and how to log in to it.

    @ivar host: host name or address (an IPv6 address without brackets).
    @ivar port: TCP port.
    @ivar db: database number (C{SELECT}).
    @ivar username: ACL user name, or L{None} (the C{default} user).
    @ivar password: password, or L{None}: never written to logs.
    @ivar tls: whether to speak TLS (C{rediss://}).
    @ivar ca: file of the CA certificates (PEM) that may sign the server's
        certificate, or L{None} for the system's trust store.
    """

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca: str | None = None

    def address(self):
        """
        @return: C{HOST:PORT}, with an IPv6 address in brackets.
        """
        host = "[%s]" % (self.host,) if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def redacted(self):
        """
        @return: the URL with the password replaced by C{***}: for logs
            and messages.
        """
        scheme = "rediss" if self.tls else "redis"
        login = ""
        if self.username is not None or self.password is not None:
            login = "%s:%s@" % (
                quoteLogin(self.username or ""),
                "***" if self.password is not None else "")
        query = "?ca=%s" % (self.ca,) if self.ca is not None else ""
        return "%s://%s%s/%d%s" % (scheme, login, self.address(), self.db, query)

    def __str__(self):
        return self.redacted()


def quoteLogin(text):
    """
    @return: C{text} percent-encoded for the user part of a URL.
    """
    return quote(text, safe="")


def parseRedisURL(url):
    """
    Parse a C{redis://} or C{rediss://} URL.

    @param url: the URL.
    @return: a L{RedisTarget}.
    @raise ValueError: when C{url} is not such a URL; the message never
        contains the password.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ValueError("bad Redis URL %s: %s" % (_hidePassword(url), e)) from None
    shown = _hidePassword(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            "bad Redis URL %s: the scheme must be redis:// or rediss:// (TLS)" % (shown,))
    tls = parts.scheme == "rediss"
    if parts.fragment:
        raise ValueError("bad Redis URL %s: a fragment (#...) means nothing here" % (shown,))
    host = parts.hostname
    if not host:
        raise ValueError("bad Redis URL %s: no host" % (shown,))
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            "bad Redis URL %s: the port must be a number from 1 to 65535" % (shown,)) from None
    if port is None:
        if parts.netloc.rsplit("]", 1)[-1].endswith(":"):
            raise ValueError("bad Redis URL %s: empty port" % (shown,))
        port = DEFAULT_PORT
    elif port == 0:
        raise ValueError(
            "bad Redis URL %s: the port must be a number from 1 to 65535" % (shown,))
    path = parts.path
    db = 0
    if path not in ("", "/"):
        dbText = path[1:]
        if not (dbText.isascii() and dbText.isdigit()) or len(dbText) > 5:
            raise ValueError(
                "bad Redis URL %s: the path must be a database number (/0, /1...)" % (shown,))
        db = int(dbText)
    username = password = None
    if "@" in parts.netloc:
        login = parts.netloc.rsplit("@", 1)[0]
        user, colon, secret = login.partition(":")
        if colon:
            password = unquote(secret)
            username = unquote(user) or None
        else:
            # redis://PASSWORD@host is a common shorthand, but ambiguous
            # with a user name: refuse it rather than guess.
            raise ValueError(
                "bad Redis URL %s: give the password as redis://:PASSWORD@host "
                "(or redis://USER:PASSWORD@host)" % (shown,))
    ca = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key == "ca" and tls:
            if not value:
                raise ValueError("bad Redis URL %s: ca= needs a file" % (shown,))
            ca = value
        elif key == "ca":
            raise ValueError(
                "bad Redis URL %s: ca= is for rediss:// (TLS) only" % (shown,))
        else:
            raise ValueError(
                "bad Redis URL %s: unknown query parameter %r (known: ca)" % (shown, key))
    return RedisTarget(host=host, port=port, db=db, username=username,
                       password=password, tls=tls, ca=ca)


def _hidePassword(url):
    """
    @return: C{url} with whatever is between the first C{:} of the login and
        its C{@} replaced by C{***}.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(unreadable)" if "@" in url else url
    authority, slash, tail = rest.partition("/")
    head, query, after = authority.partition("?")
    if "@" not in head:
        return url
    login, at, hostPart = head.rpartition("@")
    user, colon, _ = login.partition(":")
    hidden = user + ":***" if colon else "***"
    return "%s://%s@%s%s%s%s%s" % (scheme, hidden, hostPart, query, after, slash, tail)

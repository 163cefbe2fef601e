"""
A look at the cluster's Redis before the server starts (before the reactor
runs, and before C{twistd} leaves the terminal), so that a Redis that cannot
be used stops start-up with one line that says why: unreachable, a password
missing or refused, a database that does not exist, TLS that fails.

Blocking, with a timeout, and done once.
"""

import socket
import ssl

from jobmon.errors import StartupError


def _command(*words):
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode("utf-8") if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(stream):
    """
    The first line of a reply: C{+OK}, C{-ERR ...} (enough for the
    commands sent here).
    """
    line = stream.readline(4096)
    if not line:
        raise ConnectionError("the connection closed without a reply")
    return line.rstrip(b"\r\n").decode("utf-8", "replace")


def _tlsContext(target):
    context = ssl.create_default_context(cafile=target.ca)
    return context


def probeRedis(target, timeout=5.0, connect=socket.create_connection):
    """
    Connect to the Redis of C{target}, log in, select its database and
    ping it.

    @param target: a L{jobmon.server.cluster.redisurl.RedisTarget}.
    @raise StartupError: it cannot be used; the message says why and what
        to do, and never shows the password.
    """
    where = "Redis at {}".format(target.address())
    try:
        sock = connect((target.host, target.port), timeout=timeout)
    except OSError as e:
        raise StartupError("cannot reach {}: {}".format(
            where, e.strerror or e or "timed out")) from None
    try:
        if target.tls:
            try:
                sock = _tlsContext(target).wrap_socket(sock, server_hostname=target.host)
            except (ssl.SSLError, OSError) as e:
                raise StartupError(
                    "cannot speak TLS to {} (rediss://): {}; is it a TLS port, and "
                    "is its certificate signed by {}?".format(
                        where, getattr(e, "reason", None) or e,
                        target.ca or "a CA the system trusts")) from None
        stream = sock.makefile("rb")
        if target.password is not None:
            login = ("AUTH", target.username, target.password) if target.username \
                else ("AUTH", target.password)
            sock.sendall(_command(*login))
            answer = _reply(stream)
            if answer.startswith("-"):
                raise StartupError(_loginRefused(where, answer))
        sock.sendall(_command("SELECT", str(target.db)) + _command("PING"))
        selected, pong = _reply(stream), _reply(stream)
        for answer in (selected, pong):
            if answer.startswith("-NOAUTH"):
                raise StartupError(
                    "{} requires a password (NOAUTH): give it in the redis URL, "
                    "redis://:PASSWORD@{}/{} (in the configuration file, key redis, "
                    "rather than on the command line)".format(
                        where, target.address(), target.db))
        if selected.startswith("-"):
            raise StartupError("{} refused database {}: {}".format(
                where, target.db, selected[1:]))
        if not pong.startswith("+PONG"):
            raise StartupError("{} does not answer PING as Redis does: {}".format(
                where, pong[:200]))
    except StartupError:
        raise
    except (OSError, ConnectionError) as e:
        raise StartupError("cannot talk to {}: {}{}".format(
            where, getattr(e, "strerror", None) or e or "timed out",
            "" if target.tls else " (a TLS port needs rediss://)")) from None
    finally:
        sock.close()


def _loginRefused(where, answer):
    if answer.startswith("-WRONGPASS") or "invalid password" in answer \
            or "invalid username-password" in answer:
        return "{} refused the user name or password (WRONGPASS): check the redis URL".format(
            where)
    if "without any password configured" in answer or "no password is set" in answer:
        return ("{} has no password set, yet the redis URL gives one: remove it from the "
                "URL, or set requirepass on Redis".format(where))
    return "{} refused the login: {}".format(where, answer[1:200])

"""
A real C{redis-server} for tests, on a free port of 127.0.0.1, in a
temporary directory, persisting nothing.

Without C{redis-server} the tests that need it are skipped, unless the
environment variable C{CI} is set: CI installs it (C{make redis-server}),
so there its absence is a failure.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def redisServer():
    """
    @return: the path of C{redis-server}.
    @raise SkipTest: when there is none and C{CI} is not set.
    @raise RuntimeError: when there is none and C{CI} is set.
    """
    path = shutil.which("redis-server")
    if path is None:
        why = ("redis-server is not installed (Debian: apt-get install redis-server, "
               "or make redis-server as root)")
        if os.environ.get("CI"):
            raise RuntimeError(why + ": CI must have it")
        raise SkipTest(why)
    return path


def freePort():
    """
    @return: a TCP port of 127.0.0.1 that nothing listens on now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """
    One C{redis-server}, which can be stopped, killed and started again on
    the same port.

    @ivar port: its port.
    @ivar password: the C{requirepass} password, or L{None}.
    @ivar tls: L{None}, or C{(certFile, keyFile)}: it speaks TLS only.
    """

    def __init__(self, testCase, password=None, tls=None):
        """
        Start it; stop it and remove its directory when C{testCase} ends.
        """
        self._binary = redisServer()
        self.password = password
        self.tls = tls
        self.port = freePort()
        self._dir = tempfile.mkdtemp(prefix="jobmon-redis-")
        self._process = None
        self._log = None
        testCase.addCleanup(self._cleanUp)
        self.start()

    def url(self, password=None, db=0):
        """
        @return: its C{redis://} URL, with C{password} (default: its own).
        """
        password = self.password if password is None else password
        login = ":%s@" % (password,) if password else ""
        scheme = "rediss" if self.tls else "redis"
        return "%s://%s127.0.0.1:%d/%d" % (scheme, login, self.port, db)

    def start(self):
        """
        Start it and wait (boundedly) until it answers C{PING}.
        """
        assert self._process is None, "already running"
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls[0],
                     "--tls-key-file", self.tls[1], "--tls-auth-clients", "no"]
        else:
            ports = ["--port", str(self.port)]
        args = [self._binary, *ports, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self._dir,
                "--daemonize", "no", "--logfile", "redis.log", "--protected-mode", "yes"]
        if self.password:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(args, cwd=self._dir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError("redis-server exited at once: %s" % (self.log(),))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("redis-server did not answer within %s s" % (START_TIMEOUT,))
            time.sleep(0.01)

    def _answers(self):
        try:
            reply = self._send([[b"PING"]], login=False)
        except OSError:
            return False
        # +PONG, or -NOAUTH when it requires a password: either way it is up.
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _send(self, commands, login=True):
        """
        Send C{commands} (lists of bytes) on a new connection, logged in
        when C{login}.

        @return: the start of the replies.
        """
        if login and self.password:
            commands = [[b"AUTH", self.password.encode()]] + commands
        data = b"".join(
            b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in c)
            for c in commands)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            s = raw
            if self.tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                s = context.wrap_socket(raw)
            s.sendall(data)
            replies = b""
            while replies.count(b"\r\n") < len(commands):
                more = s.recv(4096)
                if not more:
                    break
                replies += more
            return replies

    def command(self, *args):
        """
        Run one command as the C{default} user.

        @return: its reply's first line (e.g. C{"+OK"}).
        """
        replies = self._send([[a.encode() if isinstance(a, str) else a for a in args]])
        return replies.split(b"\r\n")[-2].decode()

    def log(self):
        """
        @return: the end of its log.
        """
        try:
            with open(os.path.join(self._dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self):
        """
        Stop it (C{SIGTERM}) and wait until it has gone.
        """
        self._end(signal.SIGTERM)

    def kill(self):
        """
        Kill it (C{SIGKILL}) and wait until it has gone.
        """
        self._end(signal.SIGKILL)

    def pause(self):
        """
        Freeze it (C{SIGSTOP}): it keeps its connections but answers nothing.
        """
        self._process.send_signal(signal.SIGSTOP)

    def resume(self):
        """
        Undo L{pause}.
        """
        self._process.send_signal(signal.SIGCONT)

    def _end(self, sig):
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def _cleanUp(self):
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

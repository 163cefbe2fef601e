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
    """

    def __init__(self, testCase, password=None):
        """
        Start it; stop it and remove its directory when C{testCase} ends.
        """
        self._binary = redisServer()
        self.password = password
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
        return "redis://%s127.0.0.1:%d/%d" % (login, self.port, db)

    def start(self):
        """
        Start it and wait (boundedly) until it answers C{PING}.
        """
        assert self._process is None, "already running"
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
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
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        # +PONG, or -NOAUTH when it requires a password: either way it is up.
        return reply.startswith((b"+PONG", b"-NOAUTH"))

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

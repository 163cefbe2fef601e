"""
Tests for L{jobmon.server.cluster.probe}: a Redis the server cannot use
stops its start-up with one line that says why.
"""

import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from jobmon.errors import StartupError
from jobmon.server.cluster.probe import probeRedis
from jobmon.server.cluster.redisurl import parseRedisURL
from tests.redisproc import RedisProcess, freePort


class ProbeTests(SynchronousTestCase):
    def assertRefused(self, url, *words, timeout=5.0):
        e = self.assertRaises(StartupError, probeRedis, parseRedisURL(url), timeout)
        for word in words:
            self.assertIn(word, str(e))
        self.assertNotIn("s3cret", str(e))
        self.assertNotIn("wrong-one", str(e))
        return str(e)

    def test_fine(self):
        """
        A Redis that answers, with the password it demands: nothing
        raised.
        """
        redis = RedisProcess(self, password="s3cret")
        probeRedis(parseRedisURL(redis.url()))
        plain = RedisProcess(self)
        probeRedis(parseRedisURL(plain.url(db=3)))

    def test_passwordMissing(self):
        """
        A Redis that demands a password the URL lacks: NOAUTH, and how to
        give one.
        """
        redis = RedisProcess(self, password="s3cret")
        self.assertRefused(redis.url(password=""), "requires a password", "NOAUTH",
                           "redis://:PASSWORD@")

    def test_passwordWrong(self):
        """
        A wrong password: WRONGPASS, the password not shown.
        """
        redis = RedisProcess(self, password="s3cret")
        self.assertRefused(redis.url(password="wrong-one"), "refused", "password")

    def test_passwordUnwanted(self):
        """
        A password for a Redis that has none set.
        """
        redis = RedisProcess(self)
        self.assertRefused(redis.url(password="wrong-one"), "no password")

    def test_badDatabase(self):
        """
        A database number the Redis does not have.
        """
        redis = RedisProcess(self)
        self.assertRefused(redis.url(db=9999), "refused database 9999")

    def test_unreachable(self):
        """
        Nothing listening: cannot reach, naming the address.
        """
        port = freePort()
        self.assertRefused("redis://127.0.0.1:{}/0".format(port),
                           "cannot reach Redis at 127.0.0.1:{}".format(port))

    def test_notRedis(self):
        """
        Something that is not Redis (it closes at once, or says something
        else).
        """
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        self.addCleanup(server.close)

        def answer():
            connection, _ = server.accept()
            connection.recv(100)
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            connection.close()

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        self.assertRefused("redis://127.0.0.1:{}/0".format(server.getsockname()[1]),
                           "Redis at 127.0.0.1")
        thread.join(5)

    def test_tlsToPlain(self):
        """
        rediss:// to a plain Redis: TLS fails, and the message says so.
        """
        redis = RedisProcess(self)
        self.assertRefused("rediss://127.0.0.1:{}/0".format(redis.port), "TLS",
                           timeout=1.0)

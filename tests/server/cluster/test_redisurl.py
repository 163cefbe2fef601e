"""
Tests for L{jobmon.server.cluster.redisurl}.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon.server.cluster.redisurl import RedisTarget, parseRedisURL


class ParseTests(SynchronousTestCase):
    """
    L{parseRedisURL} reads every part of the URL.
    """

    def test_defaults(self):
        self.assertEqual(parseRedisURL("redis://redis.example.org"),
                         RedisTarget(host="redis.example.org"))

    def test_everything(self):
        target = parseRedisURL("redis://jobmon:s3cret@10.0.0.5:6390/3")
        self.assertEqual(target, RedisTarget(
            host="10.0.0.5", port=6390, db=3, username="jobmon", password="s3cret"))

    def test_passwordOnly(self):
        target = parseRedisURL("redis://:s3cret@localhost/1")
        self.assertEqual((target.username, target.password, target.db), (None, "s3cret", 1))

    def test_percentDecoded(self):
        target = parseRedisURL("redis://us%40er:p%3Aa%2Fs%40s@localhost")
        self.assertEqual((target.username, target.password), ("us@er", "p:a/s@s"))

    def test_ipv6(self):
        target = parseRedisURL("redis://[::1]:7000/2")
        self.assertEqual((target.host, target.port, target.db), ("::1", 7000, 2))
        self.assertEqual(target.address(), "[::1]:7000")

    def test_tls(self):
        target = parseRedisURL("rediss://redis.example.org?ca=/etc/jobmon/redis-ca.pem")
        self.assertEqual((target.tls, target.ca, target.port),
                         (True, "/etc/jobmon/redis-ca.pem", 6379))

    def test_tlsWithoutCA(self):
        target = parseRedisURL("rediss://:pw@redis.example.org:6380/0")
        self.assertEqual((target.tls, target.ca, target.password), (True, None, "pw"))

    def test_slashOnly(self):
        self.assertEqual(parseRedisURL("redis://h/").db, 0)


class BadURLTests(SynchronousTestCase):
    """
    L{parseRedisURL} refuses what is not a Redis URL with a message that says
    why, and never shows the password.
    """

    def refused(self, url, why):
        e = self.assertRaises(ValueError, parseRedisURL, url)
        self.assertIn(why, str(e))
        self.assertNotIn("hunter2", str(e))
        return e

    def test_scheme(self):
        self.refused("http://:hunter2@localhost", "redis:// or rediss://")
        self.refused("localhost:6379", "redis:// or rediss://")

    def test_port(self):
        self.refused("redis://:hunter2@localhost:http", "port")
        self.refused("redis://:hunter2@localhost:70000", "port")
        self.refused("redis://:hunter2@localhost:0", "port")
        self.refused("redis://localhost:/0", "port")

    def test_db(self):
        self.refused("redis://:hunter2@localhost/x", "database number")
        self.refused("redis://localhost/1/2", "database number")
        self.refused("redis://localhost/-1", "database number")

    def test_noHost(self):
        self.refused("redis://:hunter2@/0", "no host")

    def test_unknownQuery(self):
        self.refused("rediss://:hunter2@localhost?cert=x", "unknown query parameter 'cert'")

    def test_caWithoutTLS(self):
        self.refused("redis://:hunter2@localhost?ca=/x", "rediss://")

    def test_emptyCA(self):
        self.refused("rediss://localhost?ca=", "ca= needs a file")

    def test_passwordWithoutColon(self):
        self.refused("redis://hunter2@localhost", "redis://:PASSWORD@host")


class RedactedTests(SynchronousTestCase):
    """
    L{RedisTarget.redacted} and C{str} show everything but the password.
    """

    def test_password(self):
        target = parseRedisURL("redis://jobmon:hunter2@localhost:6390/3")
        self.assertEqual(str(target), "redis://jobmon:***@localhost:6390/3")
        self.assertNotIn("hunter2", repr(target))

    def test_noPassword(self):
        self.assertEqual(parseRedisURL("rediss://[::1]?ca=/ca.pem").redacted(),
                         "rediss://[::1]:6379/0?ca=/ca.pem")

    def test_userQuoted(self):
        target = parseRedisURL("redis://a%40b:x@h")
        self.assertEqual(str(target), "redis://a%40b:***@h:6379/0")

"""
Tests for L{jobmon.worker.redaction}: what the C{env} operation hides.
"""

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.worker.redaction import (
    DEFAULT_REDACT,
    DEFAULT_REDACT_WORDS,
    REDACTED,
    checkRedactPatterns,
    parseRedactPatterns,
    redact,
    scrubValue,
)


class RedactTests(SynchronousTestCase):
    """
    Tests for L{redact}, L{checkRedactPatterns} and L{parseRedactPatterns}.
    """

    def test_examples(self):
        """
        Names containing a pattern, in any case, have their values hidden.
        """
        env = {"MY_TOKEN": "abc", "api_key": "k", "HOME": "/home/a",
               "HTTPS_PROXY": "http://u:pw@squid:3128", "PATH": "/bin"}
        variables, names = redact(env, DEFAULT_REDACT)
        self.assertEqual(
            variables,
            {"MY_TOKEN": REDACTED, "api_key": REDACTED, "HOME": "/home/a",
             "HTTPS_PROXY": REDACTED, "PATH": "/bin"},
        )
        self.assertEqual(names, ["HTTPS_PROXY", "MY_TOKEN", "api_key"])
        self.assertEqual(env["MY_TOKEN"], "abc")

    def test_credentialPathsShown(self):
        """
        The paths of credentials and trust anchors (X509_CERT_DIR,
        X509_USER_PROXY...) are shown: a path is not a secret.  Secrets in
        look-alike variables stay hidden: a PEM block or lines in a path
        variable, a value that is not an absolute path under a C{_FILE} or
        C{_DIR} name, a proxy URL.
        """
        shown = {
            "X509_CERT_DIR": "/etc/grid-security/certificates",
            "X509_USER_PROXY": "/tmp/x509up_u1000",
            "x509_user_cert": "usercert.pem",
            "X509_USER_KEY": "/home/a/.globus/userkey.pem",
            "SSL_CERT_FILE": "/etc/pki/tls/cert.pem",
            "BEARER_TOKEN_FILE": "/run/user/1000/bt_u1000",
            "MYAPP_KEY_FILE": "/etc/myapp/key.pem",
            "MYAPP_CERT_PATH": "/a/cert.pem:/b/cert.pem",
        }
        hidden = {
            "X509_USER_PROXY_DATA": "-----BEGIN CERTIFICATE-----",
            "X509_USER_CERT": "-----BEGIN CERTIFICATE-----\nMIIB...",
            "MYAPP_KEY_FILE_CONTENT": "/etc/x",
            "MYAPP_TOKEN_FILE": "eyJhbGciOi",
            "MYAPP_SECRET_DIR": "/a b",
            "MYAPP_SECRET_PATH": "",
            "HTTP_PROXY": "http://user:pw@proxy:3128",
            "BEARER_TOKEN": "/looks/like/a/path",
        }
        variables, names = redact(dict(shown, **hidden), DEFAULT_REDACT)
        self.assertEqual(names, sorted(hidden))
        for name, value in shown.items():
            self.assertEqual(variables[name], value)

    def test_alwaysPatterns(self):
        """
        The daemon's own patterns (C{always}) hide a name even when its
        value is a path: the site asked for it.
        """
        env = {"X509_USER_PROXY": "/tmp/x509up_u1", "SITE_DIR": "/site"}
        variables, names = redact(env, DEFAULT_REDACT, ["x509", "SITE"])
        self.assertEqual(names, ["SITE_DIR", "X509_USER_PROXY"])

    def test_asciiCaseOnly(self):
        """
        Only ASCII letters are matched without regard to case: a dotless i
        is not an I.
        """
        variables, names = redact({"\u0131D": "v", "id": "w"}, ["ID"])
        self.assertEqual(names, ["id"])

    @given(
        st.dictionaries(
            st.text(st.sampled_from("aAkKeEyYtTnN_1\u0131\u212a\xe9"), max_size=8)
            | st.text(max_size=6),
            st.text(max_size=5),
            max_size=10,
        ),
        st.lists(st.from_regex(r"[A-Za-z0-9_]{1,3}", fullmatch=True), max_size=4),
    )
    def test_property(self, env, patterns):
        """
        A name is redacted exactly when it contains a pattern of C{always}
        (ASCII case ignored); other values are untouched; names come back
        sorted.
        """
        before = dict(env)
        variables, names = redact(env, (), patterns)
        self.assertEqual(env, before)
        self.assertEqual(set(variables), set(env))
        self.assertEqual(names, sorted(names))
        for name, value in env.items():
            matches = any(
                re.search(re.escape(p), name, re.IGNORECASE | re.ASCII)
                for p in patterns
            )
            if name in names:
                self.assertTrue(matches, (name, patterns))
                self.assertEqual(variables[name], REDACTED)
            else:
                self.assertFalse(matches, (name, patterns))
                self.assertEqual(variables[name], value)

    def test_checkPatterns(self):
        """
        Extra patterns are non-empty strings of letters, digits and
        underscores.
        """
        self.assertEqual(checkRedactPatterns(["PIN", "my_2"]), ("PIN", "my_2"))
        for bad in ("", "A-B", "A B", "\u00c9", 3, None, "PIN\n"):
            self.assertRaises(ValueError, checkRedactPatterns, [bad])

    def test_parsePatterns(self):
        """
        C{--redact} takes patterns separated by commas or white space.
        """
        self.assertEqual(parseRedactPatterns("PIN, LICENSE  x"), ("PIN", "LICENSE", "x"))
        self.assertEqual(parseRedactPatterns(""), ())
        self.assertRaises(ValueError, parseRedactPatterns, "PIN,A-B")


def defaultRedact(env):
    """
    Redact C{env} as the C{env} operation does, without the daemon's own
    patterns.
    """
    return redact(env, DEFAULT_REDACT, (), DEFAULT_REDACT_WORDS)


SECRET = "s3cr3t-Value"
"""A secret the tests below hide in values."""


class SecretNamesTests(SynchronousTestCase):
    """
    The names of secrets found missing by the security review are hidden,
    the paths of credentials and the look-alike names that hold none stay
    shown.
    """

    def test_hidden(self):
        """
        Database passwords and DSNs, JSON web tokens, personal access tokens,
        PINs, netrc data, webhook URLs, credentials, session tokens: their
        values are hidden.
        """
        hidden = [
            "MYSQL_PWD", "PGPASSWORD", "DATABASE_DSN", "SENTRY_DSN", "DSN",
            "JWT", "MY_JWT", "GH_PAT", "GITHUB_PAT", "SIM_PIN", "GPG_PIN2",
            "NETRC_DATA", "WEBHOOK_URL", "SLACK_WEBHOOK", "MY_WEBHOOK_SECRET",
            "MYAPP_CREDENTIALS", "AWS_SESSION_TOKEN", "CLIENT_SECRET_ID",
            "AZURE_SAS", "MY_OTP", "BEARER",
        ]
        variables, names = defaultRedact({name: SECRET for name in hidden})
        self.assertEqual(names, sorted(hidden))
        self.assertEqual(set(variables.values()), {REDACTED})

    def test_lookAlikesShown(self):
        """
        Words are whole: C{PATH}, C{SPINNER}, C{SIGNAL} or C{PATTERN} are not
        C{PAT}, C{PIN} or C{SIG}; C{PWD} and C{OLDPWD} are directories; a
        C{*_CREDENTIALS} that is an absolute path is a path.
        """
        shown = {
            "PATH": "/bin", "SPINNER": "dots", "SIGNAL_NAME": "TERM",
            "PATTERN": "x", "PWD": "/home/a", "OLDPWD": "/tmp",
            "MYAPP_CREDENTIALS": "/etc/myapp/credentials.json",
            "DATABASE_HOST": "db.example.org", "HOSTNAME": "wn1",
        }
        variables, names = defaultRedact(shown)
        self.assertEqual(names, [])
        self.assertEqual(variables, shown)

    def test_pwdNotAPath(self):
        """
        A C{PWD} holding several lines or a PEM block is not a directory.
        """
        variables, names = defaultRedact({"PWD": "-----BEGIN PRIVATE KEY-----"})
        self.assertEqual(names, ["PWD"])


class SecretValuesTests(SynchronousTestCase):
    """
    Secrets inside values whose names look harmless: URLs with passwords,
    C{key=value} settings with secret-looking keys.
    """

    def test_urlPassword(self):
        """
        The password of a URL is hidden, the rest of the URL shown.
        """
        env = {
            "DATABASE_URL": "postgres://app:%s@db.example.org:5432/app" % SECRET,
            "REDIS_URL": "redis://:%s@cache:6379/0" % SECRET,
            "MONGO": "mongodb+srv://u:%s@x/y@z@cluster.example/db" % SECRET,
            "REPO": "https://x-access-token:%s@github.com/o/r.git" % SECRET,
            "SITE": "https://www.example.org/a?b=c",
            "GIT": "ssh://git@github.com/o/r.git",
        }
        variables, names = defaultRedact(env)
        self.assertEqual(names, ["DATABASE_URL", "MONGO", "REDIS_URL", "REPO"])
        self.assertEqual(
            variables["DATABASE_URL"],
            "postgres://app:%s@db.example.org:5432/app" % REDACTED,
        )
        self.assertEqual(variables["REDIS_URL"], "redis://:%s@cache:6379/0" % REDACTED)
        self.assertEqual(variables["SITE"], env["SITE"])
        self.assertEqual(variables["GIT"], env["GIT"])
        for value in variables.values():
            self.assertNotIn(SECRET, value)

    def test_keyValues(self):
        """
        A libpq DSN, a URL query, a connection string or a Java option with a
        secret-looking key has that value hidden, the others shown.
        """
        env = {
            "PGCONN": "host=db port=5432 password=%s dbname=app" % SECRET,
            "HOOK": "https://hooks.example.org/x?access_token=%s&a=b" % SECRET,
            "STORAGE": "AccountName=a;AccountKey=%s;Protocol=https" % SECRET,
            "JAVA_OPTS": "-Xmx1g -Djavax.net.ssl.keyStorePassword=%s" % SECRET,
            "MYSQL": "--user=app --pwd=%s" % SECRET,
            "CURL_HEADER": "Authorization: Bearer %s" % SECRET,
            "APP_CONFIG": '{"user": "a", "password": "%s", "n": 1}' % SECRET,
        }
        variables, names = defaultRedact(env)
        self.assertEqual(names, sorted(env))
        self.assertEqual(
            variables["PGCONN"], "host=db port=5432 password=%s dbname=app" % REDACTED
        )
        self.assertEqual(variables["CURL_HEADER"], "Authorization: %s" % REDACTED)
        self.assertEqual(variables["APP_CONFIG"],
                         '{"user": "a", "password": "%s", "n": 1}' % REDACTED)
        self.assertEqual(
            variables["STORAGE"],
            "AccountName=a;AccountKey=%s;Protocol=https" % REDACTED,
        )
        for value in variables.values():
            self.assertNotIn(SECRET, value)

    @given(
        st.sampled_from([
            "%s://%s:%s@host/db", "%s://%s:%s@host", "%s://%s:%s@h@host:1/p",
        ]),
        st.from_regex(r"[a-z][a-z0-9+.\-]{0,8}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_.\-]{0,8}", fullmatch=True),
        st.text(
            st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
            min_size=1, max_size=20,
        ),
        st.sampled_from(["", "pre ", "a=b "]),
    )
    def test_urlPasswordProperty(self, shape, scheme, user, password, prefix):
        """
        Whatever the scheme, user or password (without white space), the
        password of a URL never shows, and the URL's scheme and user do.
        """
        value = prefix + shape % (scheme, user, password)
        scrubbed = scrubValue(value)
        self.assertNotIn(":" + password + "@", scrubbed)
        self.assertIn("%s://%s:%s@" % (scheme, user, REDACTED), scrubbed)

    @given(
        st.sampled_from(["password", "PASSWD", "token", "api_key", "pwd",
                         "client_secret", "sig", "pin"]),
        st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=20),
        st.sampled_from(["%s=%s", "-%s=%s --", "?%s=%s&", "%s: %s", "%s=%s;"]),
    )
    def test_keyValueProperty(self, key, secret, shape):
        """
        The value of a secret-looking key never shows.
        """
        self.assertEqual(scrubValue(shape % (key, secret)), shape % (key, REDACTED))

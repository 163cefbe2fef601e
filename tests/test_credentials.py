"""
Tests for L{jobmon.credentials} (finding the caller's bearer token, as the WLCG
Bearer Token Discovery convention says) and its users: the client's choice
between a certificate and a token (L{jobmon.client.resolveAuth},
L{jobmon.client.chooseCredential}), the client's token credential, and
the job daemon's C{Authorization} header
(L{jobmon.worker.daemon.bearerAuthorization}).

The environment and the uid are given explicitly; token files live under a
temporary C{$XDG_RUNTIME_DIR}, or for C{/tmp/bt_u<uid>} under a uid no
account has, removed afterwards.
"""

import base64
import json
import os
import random

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import client, credentials
from jobmon.certificates import CredentialError
from jobmon.client import ClientError, _Credential, _TokenCredential
from jobmon.client import credential as clientCredential
from jobmon.credentials import (
    TokenNotFound,
    discoverToken,
    discoveryPaths,
    expiredAt,
    readTokenFile,
    tokenSource,
    unverifiedClaims,
)
from jobmon.worker.daemon import CachedAuthorization, bearerAuthorization

NOW = 1700000000
"""The tests' present: 2023-11-14 22:13:20 UTC."""


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fakeJWT(claims, header=None):
    """
    A JWT-shaped token with C{claims} and a meaningless signature: the
    client and the daemon never check signatures.
    """
    header = {"alg": "ES256", "typ": "JWT"} if header is None else header
    return ".".join([
        _b64(json.dumps(header).encode()),
        _b64(json.dumps(claims).encode()),
        _b64(b"not a signature"),
    ])


def write(path, data):
    """
    Write C{data} (text or bytes) to C{path}.
    """
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def unusedUid():
    """
    A uid no account has, for which no C{/tmp/bt_u<uid>} exists.
    """
    while True:
        uid = random.randrange(3 * 10**9, 4 * 10**9)
        if not os.path.exists("/tmp/bt_u%d" % (uid,)):
            return uid


class _FilesMixin:
    """
    A temporary directory as C{$XDG_RUNTIME_DIR} and an unused uid.
    """

    def setUp(self):
        self.runtime = os.path.abspath(self.mktemp())
        os.makedirs(self.runtime)
        self.uid = unusedUid()
        self.runtimeToken = os.path.join(self.runtime, "bt_u%d" % (self.uid,))

    def tokenFile(self, token, name="token"):
        """
        A file under the temporary directory holding C{token}.
        """
        path = os.path.join(self.runtime, name)
        write(path, token)
        return path

    def tmpToken(self, token):
        """
        Create C{/tmp/bt_u<uid>} holding C{token}, removed after the test.
        """
        path = "/tmp/bt_u%d" % (self.uid,)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.addCleanup(os.remove, path)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        return path


class DiscoveryPathsTests(SynchronousTestCase):
    """
    L{discoveryPaths}: the files discovery looks at.
    """

    def test_withRuntimeDir(self):
        """
        C{$XDG_RUNTIME_DIR/bt_u<uid>} comes before C{/tmp/bt_u<uid>}.
        """
        self.assertEqual(
            discoveryPaths({"XDG_RUNTIME_DIR": "/run/user/42"}, 42),
            ["/run/user/42/bt_u42", "/tmp/bt_u42"],
        )

    def test_withoutRuntimeDir(self):
        """
        Without C{$XDG_RUNTIME_DIR}, or with it empty, only C{/tmp}.
        """
        self.assertEqual(discoveryPaths({}, 42), ["/tmp/bt_u42"])
        self.assertEqual(discoveryPaths({"XDG_RUNTIME_DIR": ""}, 42), ["/tmp/bt_u42"])

    def test_defaultUid(self):
        """
        Without a uid, the process's own.
        """
        self.assertEqual(discoveryPaths({}), ["/tmp/bt_u%d" % (os.getuid(),)])


class DiscoverTokenTests(_FilesMixin, SynchronousTestCase):
    """
    L{discoverToken}: the first source set or present wins.
    """

    def test_bearerTokenFirst(self):
        """
        C{$BEARER_TOKEN} wins over every file.
        """
        environ = {
            "BEARER_TOKEN": "from.env",
            "BEARER_TOKEN_FILE": self.tokenFile("from.file"),
            "XDG_RUNTIME_DIR": self.runtime,
        }
        write(self.runtimeToken, "from.runtime")
        self.tmpToken("from.tmp")
        self.assertEqual(discoverToken(environ, self.uid), ("from.env", "$BEARER_TOKEN"))

    def test_bearerTokenFileSecond(self):
        """
        C{$BEARER_TOKEN_FILE} wins over the discovered files, and the
        source names it.
        """
        path = self.tokenFile("from.file")
        write(self.runtimeToken, "from.runtime")
        self.tmpToken("from.tmp")
        environ = {"BEARER_TOKEN_FILE": path, "XDG_RUNTIME_DIR": self.runtime}
        self.assertEqual(
            discoverToken(environ, self.uid),
            ("from.file", "$BEARER_TOKEN_FILE (%s)" % (path,)),
        )

    def test_runtimeDirThird(self):
        """
        C{$XDG_RUNTIME_DIR/bt_u<uid>} wins over C{/tmp/bt_u<uid>}.
        """
        write(self.runtimeToken, "from.runtime")
        self.tmpToken("from.tmp")
        self.assertEqual(
            discoverToken({"XDG_RUNTIME_DIR": self.runtime}, self.uid),
            ("from.runtime", self.runtimeToken),
        )

    def test_tmpLast(self):
        """
        C{/tmp/bt_u<uid>} is used when nothing else is there.
        """
        path = self.tmpToken("from.tmp\n")
        self.assertEqual(discoverToken({"XDG_RUNTIME_DIR": self.runtime}, self.uid),
                         ("from.tmp", path))
        self.assertEqual(discoverToken({}, self.uid), ("from.tmp", path))

    def test_nothing(self):
        """
        No variable and no file: no token.
        """
        self.assertIsNone(discoverToken({"XDG_RUNTIME_DIR": self.runtime}, self.uid))
        self.assertIsNone(discoverToken({}, self.uid))

    def test_whiteSpaceStripped(self):
        """
        White space around a token, in a variable or a file, is not part of
        it.
        """
        self.assertEqual(discoverToken({"BEARER_TOKEN": " \tabc.def\n"}, self.uid)[0], "abc.def")
        path = self.tokenFile("\n  abc.def \r\n\n")
        self.assertEqual(discoverToken({"BEARER_TOKEN_FILE": path}, self.uid)[0], "abc.def")

    def test_blankBearerTokenIgnored(self):
        """
        A C{$BEARER_TOKEN} of white space only counts as unset.
        """
        path = self.tokenFile("from.file")
        self.assertEqual(
            discoverToken({"BEARER_TOKEN": "  \n", "BEARER_TOKEN_FILE": path}, self.uid)[0],
            "from.file",
        )

    def test_missingBearerTokenFile(self):
        """
        A C{$BEARER_TOKEN_FILE} that is not there is an error naming it,
        even if other files hold a token: the user asked for that file.
        """
        path = os.path.join(self.runtime, "gone")
        write(self.runtimeToken, "from.runtime")
        e = self.assertRaises(
            TokenNotFound, discoverToken,
            {"BEARER_TOKEN_FILE": path, "XDG_RUNTIME_DIR": self.runtime}, self.uid,
        )
        self.assertEqual(
            str(e),
            "cannot read the bearer token $BEARER_TOKEN_FILE (%s): no such file or directory"
            % (path,),
        )

    def test_emptyFile(self):
        """
        An empty (or blank) token file is an error naming it.
        """
        path = self.tokenFile(" \n")
        e = self.assertRaises(TokenNotFound, discoverToken, {"BEARER_TOKEN_FILE": path},
                              self.uid)
        self.assertEqual(str(e), "the bearer token in $BEARER_TOKEN_FILE (%s) is empty" % (path,))

    def test_emptyDiscoveredFile(self):
        """
        An empty discovered file is reported, not skipped.
        """
        write(self.runtimeToken, "")
        e = self.assertRaises(TokenNotFound, discoverToken,
                              {"XDG_RUNTIME_DIR": self.runtime}, self.uid)
        self.assertIn(self.runtimeToken, str(e))
        self.assertIn("is empty", str(e))

    def test_notTokenCharacters(self):
        """
        A variable or file holding other than token characters is refused,
        naming it.
        """
        e = self.assertRaises(TokenNotFound, discoverToken, {"BEARER_TOKEN": "abc def"},
                              self.uid)
        self.assertEqual(
            str(e), "$BEARER_TOKEN does not hold a bearer token (unexpected characters)"
        )
        path = self.tokenFile('{"access_token": "abc"}')
        e = self.assertRaises(TokenNotFound, discoverToken, {"BEARER_TOKEN_FILE": path},
                              self.uid)
        self.assertIn("(%s) does not hold a bearer token (unexpected characters)" % (path,),
                      str(e))

    def test_notASCII(self):
        """
        A file that is not ASCII is refused.
        """
        path = self.tokenFile("t\u00f6ken")
        e = self.assertRaises(TokenNotFound, discoverToken, {"BEARER_TOKEN_FILE": path},
                              self.uid)
        self.assertIn("does not hold a bearer token (not ASCII)", str(e))

    def test_readTokenFileDirectory(self):
        """
        L{readTokenFile} on a directory reports it, naming it.
        """
        e = self.assertRaises(TokenNotFound, readTokenFile, self.runtime)
        self.assertEqual(
            str(e), "cannot read the bearer token %s: is a directory" % (self.runtime,)
        )

    def test_readTokenFileSource(self):
        """
        L{readTokenFile} names the source it is given in its messages.
        """
        e = self.assertRaises(TokenNotFound, readTokenFile, os.path.join(self.runtime, "no"),
                              "the token file")
        self.assertTrue(str(e).startswith("cannot read the bearer token the token file: "))


class TokenSourceTests(_FilesMixin, SynchronousTestCase):
    """
    L{tokenSource}: a token read afresh on every call.
    """

    def test_tokenFileRenewed(self):
        """
        A renewed token file is read at the next call.
        """
        path = self.tokenFile("first.token")
        source = tokenSource(path)
        self.assertEqual(source(), ("first.token", path))
        write(path, "second.token\n")
        self.assertEqual(source(), ("second.token", path))

    def test_tokenFileOverEnvironment(self):
        """
        A token file given explicitly is used even when C{$BEARER_TOKEN}
        is set.
        """
        path = self.tokenFile("from.file")
        source = tokenSource(path, {"BEARER_TOKEN": "from.env"}, self.uid)
        self.assertEqual(source(), ("from.file", path))

    def test_discoveryRenewed(self):
        """
        Without a file, discovery runs on every call: a token file that
        appears later, or is renewed, is used.
        """
        source = tokenSource(environ={"XDG_RUNTIME_DIR": self.runtime}, uid=self.uid)
        e = self.assertRaises(TokenNotFound, source)
        self.assertEqual(
            str(e),
            "no bearer token: set BEARER_TOKEN or BEARER_TOKEN_FILE, or put it in "
            "%s or /tmp/bt_u%d" % (self.runtimeToken, self.uid),
        )
        write(self.runtimeToken, "first.token")
        self.assertEqual(source(), ("first.token", self.runtimeToken))
        write(self.runtimeToken, "second.token")
        self.assertEqual(source(), ("second.token", self.runtimeToken))

    def test_missingTokenFile(self):
        """
        A token file that is not there raises L{TokenNotFound} when the
        token is wanted, not before.
        """
        path = os.path.join(self.runtime, "gone")
        source = tokenSource(path)
        e = self.assertRaises(TokenNotFound, source)
        self.assertIn(path, str(e))


class UnverifiedClaimsTests(SynchronousTestCase):
    """
    L{unverifiedClaims}: reading a token's claims for messages.
    """

    def test_claims(self):
        """
        The payload of a JWT, padded or not, is read.
        """
        for claims in [{"exp": NOW, "sub": "alice"}, {"sub": "ab"}, {"sub": "abc"}]:
            self.assertEqual(unverifiedClaims(fakeJWT(claims)), claims)

    def test_garbage(self):
        """
        What cannot be read gives no claims.
        """
        for token in ["", "opaque-token", "a.!!!!.c", "a.\u00e9.c", "a." + _b64(b"{") + ".c",
                      "a." + _b64(b"\xff\xfe") + ".c"]:
            self.assertEqual(unverifiedClaims(token), {}, token)

    def test_notAnObject(self):
        """
        A payload that is JSON but not an object gives no claims.
        """
        for payload in [[1, 2], "exp", 7, None]:
            self.assertEqual(unverifiedClaims(fakeJWT(payload)), {})

    def test_deeplyNested(self):
        """
        A payload nested too deeply for the JSON reader gives no claims
        rather than an exception.
        """
        self.assertEqual(unverifiedClaims("a." + _b64(b"[" * 100000) + ".c"), {})


class ExpiredAtTests(SynchronousTestCase):
    """
    L{expiredAt}: whether a client still sends a token, by its C{exp}.
    """

    def test_leeway(self):
        """
        A token is expired once C{now} is more than the leeway past its
        C{exp}, which is then returned.
        """
        token = fakeJWT({"exp": NOW})
        self.assertIsNone(expiredAt(token, NOW + 60))
        self.assertEqual(expiredAt(token, NOW + 61), NOW)

    def test_noExpiry(self):
        """
        Without a numeric C{exp} (none, a boolean, text, not a JWT) a token
        is never expired here.
        """
        for token in [fakeJWT({"sub": "alice"}), fakeJWT({"exp": True}),
                      fakeJWT({"exp": str(NOW)}), "opaque"]:
            self.assertIsNone(expiredAt(token, NOW + 10**9), token)


class ResolveAuthTests(_FilesMixin, SynchronousTestCase):
    """
    L{client.resolveAuth}: a certificate or a token, for C{auth="auto"}.

    The default proxy path and, where it matters, the discovery paths are
    under the test's own directory, so the files of whoever runs the tests
    play no part.
    """

    def setUp(self):
        _FilesMixin.setUp(self)
        self.proxyPath = os.path.join(self.runtime, "x509up")
        proxyPath = lambda environ=None, uid=None: self.proxyPath  # noqa: E731
        self.patch(clientCredential, "defaultProxyPath", proxyPath)
        self.patch(credentials, "defaultProxyPath", proxyPath)
        self.btPath = os.path.join(self.runtime, "bt_u%d" % (os.getuid(),))

    def resolve(self, environ, **kw):
        """
        L{client.resolveAuth} for C{"auto"} in C{environ}.
        """
        return client.resolveAuth("auto", environ=environ, **kw)

    def test_explicitX509(self):
        """
        A proxy or key given explicitly means X.509, whatever tokens exist.
        """
        environ = {"BEARER_TOKEN": "abc", "XDG_RUNTIME_DIR": self.runtime}
        write(self.btPath, "abc")
        self.assertEqual(self.resolve(environ, proxy="/p.pem"), "x509")
        self.assertEqual(self.resolve(environ, key="/k.pem"), "x509")
        self.assertEqual(self.resolve(environ, proxy="/p.pem", token="abc"), "x509")

    def test_explicitToken(self):
        """
        A token or token file given explicitly means a token, even with a
        proxy at hand.
        """
        write(self.proxyPath, "proxy")
        environ = {"X509_USER_PROXY": self.proxyPath}
        self.assertEqual(self.resolve(environ, token="abc"), "token")
        self.assertEqual(self.resolve(environ, token=""), "token")
        self.assertEqual(self.resolve(environ, tokenFile="/t"), "token")

    def test_bearerTokenEnvironment(self):
        """
        C{$BEARER_TOKEN} or C{$BEARER_TOKEN_FILE} means a token, even with
        C{$X509_USER_PROXY} set and the proxy there.
        """
        write(self.proxyPath, "proxy")
        for name in ["BEARER_TOKEN", "BEARER_TOKEN_FILE"]:
            environ = {name: "abc", "X509_USER_PROXY": self.proxyPath}
            self.assertEqual(self.resolve(environ), "token", name)

    def test_blankBearerToken(self):
        """
        A blank C{$BEARER_TOKEN} does not count.
        """
        write(self.proxyPath, "proxy")
        self.assertEqual(self.resolve({"BEARER_TOKEN": " "}), "x509")

    def test_x509UserProxySet(self):
        """
        C{$X509_USER_PROXY} set means X.509, even if its file is missing and
        a discovered token file exists.
        """
        write(self.btPath, "abc")
        environ = {"X509_USER_PROXY": "/nonexistent/x509up", "XDG_RUNTIME_DIR": self.runtime}
        self.assertEqual(self.resolve(environ), "x509")

    def test_proxyExists(self):
        """
        An existing default proxy means X.509, even if a token file exists.
        """
        write(self.proxyPath, "proxy")
        write(self.btPath, "abc")
        self.assertEqual(self.resolve({"XDG_RUNTIME_DIR": self.runtime}), "x509")

    def test_onlyTokenFile(self):
        """
        Without a proxy, a discovered token file means a token.
        """
        write(self.btPath, "abc")
        self.assertEqual(self.resolve({"XDG_RUNTIME_DIR": self.runtime}), "token")

    def test_nothing(self):
        """
        With neither, X.509, whose missing file is then reported.
        """
        self.patch(credentials, "discoveryPaths",
                   lambda environ=None, uid=None: [self.btPath, self.btPath + ".tmp"])
        self.assertEqual(self.resolve({"XDG_RUNTIME_DIR": self.runtime}), "x509")
        write(self.btPath + ".tmp", "abc")
        self.assertEqual(self.resolve({"XDG_RUNTIME_DIR": self.runtime}), "token")

    def test_explicitMode(self):
        """
        C{"x509"} and C{"token"} are taken as given.
        """
        environ = {"BEARER_TOKEN": "abc"}
        self.assertEqual(client.resolveAuth("x509", environ=environ), "x509")
        write(self.proxyPath, "proxy")
        self.assertEqual(client.resolveAuth("token", proxy="/p", environ={}), "token")

    def test_badAuth(self):
        """
        Another C{auth} is a L{client.BAD_ARGUMENT} error naming it and the
        modes.
        """
        e = self.assertRaises(ClientError, client.resolveAuth, "kerberos", environ={})
        self.assertEqual(e.code, client.BAD_ARGUMENT)
        self.assertEqual(e.message, "auth must be one of auto, x509, token, not 'kerberos'")


class ChooseCredentialTests(_FilesMixin, SynchronousTestCase):
    """
    L{client.chooseCredential}: the credential object for the choice.
    """

    def setUp(self):
        _FilesMixin.setUp(self)
        self.proxyPath = os.path.join(self.runtime, "x509up")
        proxyPath = lambda environ=None, uid=None: self.proxyPath  # noqa: E731
        self.patch(clientCredential, "defaultProxyPath", proxyPath)
        self.patch(credentials, "defaultProxyPath", proxyPath)

    def test_tokenGiven(self):
        """
        A token given as a string is used as it is.
        """
        credential = client.chooseCredential("auto", None, None, "/ca", token="abc.def",
                                             environ={})
        self.assertIsInstance(credential, _TokenCredential)
        self.assertEqual(credential.caDir, "/ca")
        self.assertEqual(credential.authorization(NOW), "Bearer abc.def")

    def test_tokenFileRenewed(self):
        """
        A token from C{$BEARER_TOKEN_FILE} is read for every request.
        """
        path = self.tokenFile("first.token")
        credential = client.chooseCredential(
            "auto", None, None, "/ca", environ={"BEARER_TOKEN_FILE": path}
        )
        self.assertEqual(credential.authorization(NOW), "Bearer first.token")
        write(path, "second.token")
        self.assertEqual(credential.authorization(NOW), "Bearer second.token")

    def test_x509(self):
        """
        X.509 gives a certificate credential for the proxy given, or the
        default one.
        """
        credential = client.chooseCredential("auto", "/p.pem", None, "/ca", environ={})
        self.assertIsInstance(credential, _Credential)
        credential = client.chooseCredential("x509", None, None, "/ca", environ={})
        self.assertIsInstance(credential, _Credential)


class TokenCredentialTests(_FilesMixin, SynchronousTestCase):
    """
    L{client._TokenCredential.authorization}: the header, or why there is
    none.
    """

    def credential(self, token, where="the test"):
        """
        A credential whose source always gives C{token}.
        """
        return _TokenCredential(lambda: (token, where), "/ca")

    def test_bearer(self):
        """
        A token still valid is sent as C{Bearer <token>}.
        """
        token = fakeJWT({"exp": NOW + 60})
        self.assertEqual(self.credential(token).authorization(NOW), "Bearer " + token)

    def test_opaque(self):
        """
        A token the client cannot read (not a JWT, or without C{exp}) is
        sent: the server judges it.
        """
        self.assertEqual(self.credential("opaque").authorization(NOW), "Bearer opaque")
        token = fakeJWT({"sub": "alice"})
        self.assertEqual(self.credential(token).authorization(NOW), "Bearer " + token)
        token = fakeJWT({"exp": True})
        self.assertEqual(self.credential(token).authorization(NOW), "Bearer " + token)

    def test_expired(self):
        """
        A token expired longer than the server's default leeway is a
        L{client.CREDENTIAL_EXPIRED} error saying where it came from and
        when it expired; within the leeway, it is sent (the server judges).
        """
        token = fakeJWT({"exp": NOW - 1})
        self.assertEqual(self.credential(token).authorization(NOW + 59), "Bearer " + token)
        e = self.assertRaises(ClientError, self.credential(token, "/run/bt").authorization,
                              NOW + 61)
        self.assertEqual(e.code, client.CREDENTIAL_EXPIRED)
        self.assertEqual(
            e.message,
            "your bearer token from /run/bt expired at 2023-11-14 22:13:19 UTC; "
            "get a new one (oidc-token, htgettoken)",
        )

    def test_expiredBeforeConnecting(self):
        """
        L{client._TokenCredential.context} reports an expired token before
        any connection is made.
        """
        token = fakeJWT({"exp": NOW - 61})
        e = self.assertRaises(ClientError, self.credential(token).context, NOW)
        self.assertEqual(e.code, client.CREDENTIAL_EXPIRED)

    def test_missing(self):
        """
        No token is a L{client.NO_CREDENTIAL} error with discovery's
        message.
        """
        path = os.path.join(self.runtime, "gone")
        credential = _TokenCredential(tokenSource(path), "/ca")
        e = self.assertRaises(ClientError, credential.authorization, NOW)
        self.assertEqual(e.code, client.NO_CREDENTIAL)
        self.assertIn("cannot read the bearer token " + path, e.message)


class DaemonBearerAuthorizationTests(_FilesMixin, SynchronousTestCase):
    """
    L{bearerAuthorization}: a job daemon's header, from a file a site
    renews.
    """

    def setUp(self):
        _FilesMixin.setUp(self)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.path = os.path.join(self.runtime, "token")

    def test_renewed(self):
        """
        The header carries the file's token, read again for every call.
        """
        first = fakeJWT({"exp": NOW + 60, "jti": "1"})
        write(self.path, first + "\n")
        authorization = bearerAuthorization(tokenSource(self.path), self.clock.seconds)
        self.assertEqual(authorization(), "Bearer " + first)
        self.clock.advance(120)
        second = fakeJWT({"exp": NOW + 3600, "jti": "2"})
        write(self.path, second)
        self.assertEqual(authorization(), "Bearer " + second)

    def test_expired(self):
        """
        An expired token is a L{CredentialError} saying so, when, and that
        a renewed token needs no restart.
        """
        write(self.path, fakeJWT({"exp": NOW + 60}))
        authorization = bearerAuthorization(tokenSource(self.path), self.clock.seconds)
        authorization()
        self.clock.advance(120)
        authorization()
        self.clock.advance(1)
        e = self.assertRaises(CredentialError, authorization)
        self.assertEqual(
            str(e),
            "bearer token from %s expired at 2023-11-14 22:14:20 UTC; renew it (the new "
            "token is picked up without a restart)" % (self.path,),
        )

    def test_missing(self):
        """
        A token file that is not there is a L{CredentialError} naming it.
        """
        authorization = bearerAuthorization(tokenSource(self.path), self.clock.seconds)
        e = self.assertRaises(CredentialError, authorization)
        self.assertIn("cannot read the bearer token " + self.path, str(e))


class CachedAuthorizationTests(SynchronousTestCase):
    """
    L{CachedAuthorization}: the daemon's token, read in a thread at most
    every few seconds.
    """

    def setUp(self):
        self.clock = Clock()
        self.reads = []
        self.threads = []

        def read():
            self.reads.append(self.clock.seconds())
            return "Bearer t%d" % (len(self.reads),)

        def runInThread(f):
            self.threads.append(f)
            return defer.maybeDeferred(f)

        self.authorization = CachedAuthorization(read, runInThread, self.clock, interval=10)

    def test_readInThreadThenCached(self):
        """
        The first call reads the token in a thread; calls within the
        interval use it as it was; the next after it reads again.
        """
        self.assertEqual(self.successResultOf(self.authorization()), "Bearer t1")
        self.assertEqual(len(self.threads), 1)
        self.clock.advance(9.9)
        self.assertEqual(self.authorization(), "Bearer t1")
        self.assertEqual(len(self.reads), 1)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(self.authorization()), "Bearer t2")
        self.assertEqual(self.reads, [0, 10.0])

    def test_failedReadNotCached(self):
        """
        A read that fails (no token, expired) fails the call, and the next
        call reads again.
        """
        answers = [CredentialError("no bearer token"), "Bearer renewed"]

        def read():
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        authorization = CachedAuthorization(
            read, lambda f: defer.maybeDeferred(f), self.clock, interval=10)
        self.failureResultOf(authorization(), CredentialError)
        self.assertEqual(self.successResultOf(authorization()), "Bearer renewed")
        self.assertEqual(answers, [])

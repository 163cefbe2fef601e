"""
Tests for L{jobmon.server.tokens}: the server's check of bearer tokens against
its configured issuers, the token configuration and its reloading, and
L{jobmon.server.identity.Identity.may} for certificate and token callers.

Keys and tokens come from L{jobmon.devtools.issuer}; tokens of shapes a real issuer
would never make are assembled by hand (L{rawToken}).  Time is a
L{Clock}, so no test depends on the wall clock.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jobmon import errors
from jobmon.devtools.issuer import makeIssuer, newSigningKey, publicJWK
from jobmon.errors import JobMonError
from jobmon.server import tokens
from jobmon.server.identity import Identity
from jobmon.server.tokens import (
    MAX_TOKEN_BYTES,
    RETRY_FETCH,
    WLCG_ANY_AUDIENCE,
    TokenConfigError,
    TokenInfo,
    TokenPolicy,
    loadJWKS,
    loadTokenConfig,
    splitAuthorization,
)

NOW = 1700000000
"""The tests' present: 2023-11-14 22:13:20 UTC, long past on the wall clock,
so a check that used the real time would refuse every token."""

OTHER_AUDIENCE = "https://elsewhere.jobmon-test.example"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rawToken(header, payload, sign=None):
    """
    A JWT assembled by hand, for shapes PyJWT will not encode.

    @param header: the header, a dictionary.
    @param payload: the claims, a dictionary (or anything JSON).
    @param sign: callable from the signing input (bytes) to the signature,
        or C{None} for an empty signature.
    """
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = sign(signing.encode("ascii")) if sign is not None else b""
    return signing + "." + _b64(signature)


def privateKeyOf(issuer):
    """
    The signing key of a L{jobmon.devtools.issuer.LocalIssuer}.
    """
    with open(issuer.keyPath, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def signerFor(key, algorithm):
    """
    A C{sign} for L{rawToken}: C{algorithm} with C{key}.
    """
    implementation = jwt.algorithms.get_default_algorithms()[algorithm]
    return lambda message: implementation.sign(message, key)


def writeFile(path, data):
    """
    Write C{data} (text) to C{path} and give it a modification time later
    than any it had, so that a change is seen even within one clock tick.
    """
    try:
        before = os.stat(path).st_mtime_ns
    except OSError:
        before = None
    with open(path, "w") as f:
        f.write(data)
    if before is not None:
        later = before + 10**9
        os.utime(path, ns=(later, later))


class _IssuerMixin:
    """
    An issuer from L{makeIssuer} (EC) and a L{TokenPolicy} trusting it,
    whose clock is at L{NOW}.
    """

    def setUp(self):
        self.issuer = makeIssuer(self.mktemp())
        self.clock = Clock()
        self.clock.advance(NOW)
        self.policy = self.policyFor(self.issuer.configPath)

    def policyFor(self, path):
        """
        A loaded L{TokenPolicy} for the configuration at C{path}, on
        C{self.clock}.
        """
        policy = TokenPolicy(path, now=self.clock.seconds)
        policy.load()
        return policy

    def mint(self, sub="alice", **kw):
        """
        A token from C{self.issuer}, made at L{NOW} unless told otherwise.
        """
        kw.setdefault("now", NOW)
        return self.issuer.mint(sub, **kw)

    def claims(self, **overrides):
        """
        The claims of a good token, changed by C{overrides} (C{None}
        removes a claim).
        """
        payload = {
            "iss": self.issuer.iss,
            "sub": "alice",
            "aud": self.issuer.audience,
            "iat": NOW,
            "nbf": NOW,
            "exp": NOW + 3600,
            "scope": "compute.read",
        }
        for name, value in overrides.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    def signed(self, header=None, **overrides):
        """
        A hand-made token signed by C{self.issuer}'s key.
        """
        if header is None:
            header = {"alg": "ES256", "kid": self.issuer.kid}
        return rawToken(header, self.claims(**overrides),
                        signerFor(privateKeyOf(self.issuer), "ES256"))

    def refusal(self, token, policy=None):
        """
        Check C{token}, which must be refused, and return the message.
        """
        policy = self.policy if policy is None else policy
        e = self.assertRaises(JobMonError, policy.check, token)
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertTrue(e.message.startswith("bearer token refused: "), e.message)
        return e.message

    def configWith(self, text, jwks=None):
        """
        Write a token configuration beside a copy of C{self.issuer}'s JWKS
        (or C{jwks}, a dictionary or text) named C{vo.jwks}.

        @param text: the TOML, formatted with C{iss} and C{aud}.
        @return: the configuration's path.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        if jwks is None:
            with open(self.issuer.jwksPath) as f:
                jwks = f.read()
        elif not isinstance(jwks, str):
            jwks = json.dumps(jwks)
        writeFile(os.path.join(directory, "vo.jwks"), jwks)
        path = os.path.join(directory, "tokens.toml")
        writeFile(path, text.format(iss=self.issuer.iss, aud=self.issuer.audience))
        return path


BASE = """\
audience = ["{aud}"]
leeway = 60

[[issuer]]
iss = "{iss}"
jwks = "vo.jwks"
"""
"""A configuration trusting the test issuer with the default scopes (to
which tests append keys with C{.replace} or concatenation)."""


class ValidTokenTests(_IssuerMixin, SynchronousTestCase):
    """
    What L{TokenPolicy.check} makes of tokens it accepts.
    """

    def test_valid(self):
        """
        A good token gives its issuer, subject, scopes, the capabilities
        they grant and its expiry; the caller is C{ISSUER#SUBJECT}.
        """
        info, name = self.policy.check(
            self.mint("alice", scope="compute.read compute.create openid")
        )
        self.assertEqual(
            info,
            TokenInfo(
                issuer=self.issuer.iss,
                subject="alice",
                scopes=frozenset(["compute.read", "compute.create", "openid"]),
                grants=frozenset(["read", "register"]),
                expires=float(NOW + 3600),
                needs=(
                    ("read", ("compute.read",)),
                    ("act", ("compute.modify",)),
                    ("register", ("compute.create",)),
                ),
            ),
        )
        self.assertEqual(name, "https://tokens.jobmon-test.example/vo#alice")
        self.assertEqual(name, self.issuer.identity("alice"))

    def test_describe(self):
        """
        L{TokenInfo.describe} gives what C{jobmon.whoami} shows: sorted
        scopes, grants in L{tokens.CAPABILITIES} order, a whole expiry.
        """
        info, _ = self.policy.check(self.mint(scope="compute.modify compute.read"))
        self.assertEqual(
            info.describe(),
            {
                "issuer": self.issuer.iss,
                "subject": "alice",
                "scopes": ["compute.modify", "compute.read"],
                "grants": ["read", "act"],
                "expires": NOW + 3600,
            },
        )

    def test_usersTable(self):
        """
        A subject named in the issuer's C{users} table is that name; other
        subjects of the same issuer stay C{ISSUER#SUBJECT}.
        """
        dn = "/DC=org/DC=jobmon-test/CN=Alice Example"
        issuer = makeIssuer(self.mktemp(), users={"e1eb758b-b73c": dn})
        policy = self.policyFor(issuer.configPath)
        info, name = policy.check(issuer.mint("e1eb758b-b73c", now=NOW))
        self.assertEqual(name, dn)
        self.assertEqual(info.subject, "e1eb758b-b73c")
        _, other = policy.check(issuer.mint("bob", now=NOW))
        self.assertEqual(other, issuer.iss + "#bob")

    def test_usersTableDNsCanonical(self):
        """
        A DN in the C{users} table is read as the server compares DNs: the
        slash form a certificate of that name gives (a value holding C{/}
        escaped, attribute types in their usual case); a name that starts
        with C{/} but is no DN stops the configuration.
        """
        issuer = makeIssuer(self.mktemp(), users={"s1": "/dc=org/CN=robot/host.example.org"})
        _, name = self.policyFor(issuer.configPath).check(issuer.mint("s1", now=NOW))
        self.assertEqual(name, "/DC=org/CN=robot\\/host.example.org")
        bad = makeIssuer(self.mktemp(), users={"s1": "/CN="})
        e = self.assertRaises(TokenConfigError, loadTokenConfig, bad.configPath)
        self.assertIn("users: a name starting with / is a DN: CN has no value", str(e))

    def test_scpList(self):
        """
        Scopes in an C{scp} list (instead of a C{scope} string) count.
        """
        info, _ = self.policy.check(
            self.mint(scope=None, scp=["compute.modify", "compute.read", 7])
        )
        self.assertEqual(info.scopes, frozenset(["compute.modify", "compute.read"]))
        self.assertEqual(info.grants, frozenset(["read", "act"]))

    def test_scpString(self):
        """
        An C{scp} given as a space-separated string counts too.
        """
        info, _ = self.policy.check(self.mint(scope=None, scp="compute.create"))
        self.assertEqual(info.grants, frozenset(["register"]))

    def test_noScopes(self):
        """
        A token without scopes is valid but grants nothing.
        """
        info, _ = self.policy.check(self.mint(scope=None))
        self.assertEqual(info.scopes, frozenset())
        self.assertEqual(info.grants, frozenset())

    def test_audienceList(self):
        """
        An C{aud} list is accepted if it holds one of the server's
        audiences.
        """
        info, _ = self.policy.check(
            self.mint(audience=[OTHER_AUDIENCE, self.issuer.audience])
        )
        self.assertEqual(info.subject, "alice")

    def test_withinLeewayAfterExpiry(self):
        """
        A token that expired less than the leeway (60 s) ago is accepted,
        with its real expiry.
        """
        info, _ = self.policy.check(self.mint(now=NOW - 3650, lifetime=3600))
        self.assertEqual(info.expires, float(NOW - 50))

    def test_withinLeewayBeforeStart(self):
        """
        A token whose C{nbf} and C{iat} are less than the leeway ahead of
        this server's clock is accepted: clocks differ a little.
        """
        info, _ = self.policy.check(self.mint(now=NOW + 50))
        self.assertEqual(info.expires, float(NOW + 50 + 3600))

    def test_policyClock(self):
        """
        Validity is judged by the policy's clock, not the wall clock: a
        token long expired in real time is good at the clock's time, and a
        token valid now in real time is not yet valid at it.
        """
        info, _ = self.policy.check(self.mint(now=NOW))
        self.assertEqual(info.expires, float(NOW + 3600))
        message = self.refusal(self.mint(now=time.time()))
        self.assertIn("not valid before", message)

    def test_noKidSingleKey(self):
        """
        A token without C{kid} is checked with the issuer's key when it
        has only one.
        """
        token = self.signed(header={"alg": "ES256"})
        info, _ = self.policy.check(token)
        self.assertEqual(info.subject, "alice")

    def test_rsaIssuer(self):
        """
        An RSA issuer's RS256 tokens are accepted, and so are PS256 ones
        signed with the same key.
        """
        issuer = makeIssuer(self.mktemp(), keyType="rsa")
        policy = self.policyFor(issuer.configPath)
        info, _ = policy.check(issuer.mint("carol", now=NOW))
        self.assertEqual(info.subject, "carol")
        payload = {"iss": issuer.iss, "sub": "dave", "aud": issuer.audience, "exp": NOW + 60}
        token = jwt.encode(payload, privateKeyOf(issuer), algorithm="PS256",
                           headers={"kid": issuer.kid})
        info, _ = policy.check(token)
        self.assertEqual(info.subject, "dave")

    def test_eddsaIssuer(self):
        """
        An issuer with an Ed25519 key (JWK type OKP) is trusted for EdDSA
        tokens.
        """
        key = ed25519.Ed25519PrivateKey.generate()
        path = self.configWith(BASE, jwks={"keys": [publicJWK(key, "ed-1", "EdDSA")]})
        policy = self.policyFor(path)
        token = jwt.encode(self.claims(sub="erin"), key, algorithm="EdDSA",
                           headers={"kid": "ed-1"})
        info, _ = policy.check(token)
        self.assertEqual(info.subject, "erin")

    def test_wlcgAnyAudienceConfigured(self):
        """
        The WLCG "any audience" is accepted when the configuration lists it.
        """
        path = self.configWith(BASE.replace(
            'audience = ["{aud}"]',
            'audience = ["{aud}", "' + WLCG_ANY_AUDIENCE + '"]',
        ))
        policy = self.policyFor(path)
        info, _ = policy.check(self.mint(audience=WLCG_ANY_AUDIENCE))
        self.assertEqual(info.subject, "alice")


class RefusedTokenTests(_IssuerMixin, SynchronousTestCase):
    """
    Tokens L{TokenPolicy.check} refuses, each with a message saying why.
    """

    def test_expired(self):
        """
        An expired token is refused with when it expired and how long ago.
        """
        message = self.refusal(self.mint(now=NOW - 4200, lifetime=3600))
        self.assertIn("it expired at 2023-11-14 22:03:20 UTC (10 min ago)", message)
        self.assertIn("get a new token", message)

    def test_expiredAtLeewayEnd(self):
        """
        A token is refused from the moment the leeway after its expiry is
        over.
        """
        message = self.refusal(self.mint(now=NOW - 3660, lifetime=3600))
        self.assertIn("expired", message)
        self.assertIn("(60 s ago)", message)

    def test_notYetValid(self):
        """
        A token whose C{nbf} is further ahead than the leeway is refused,
        with the time it becomes valid.
        """
        message = self.refusal(self.mint(now=NOW + 3600))
        self.assertIn("it is not valid before 2023-11-14 23:13:20 UTC", message)
        self.assertIn("check the clocks", message)

    def test_issuedInFuture(self):
        """
        A token without C{nbf} but issued (C{iat}) beyond the leeway ahead
        is refused too.
        """
        message = self.refusal(self.mint(nbf=None, iat=NOW + 600))
        self.assertIn("not valid before 2023-11-14 22:23:20 UTC", message)

    def test_wrongAudience(self):
        """
        A token for another service is refused, naming its audience and the
        accepted ones.
        """
        message = self.refusal(self.mint(audience=OTHER_AUDIENCE))
        self.assertIn("its audience " + OTHER_AUDIENCE + " is not this server's", message)
        self.assertIn(self.issuer.audience, message)

    def test_audienceListWithoutOurs(self):
        """
        An C{aud} list without any of the server's audiences is refused.
        """
        message = self.refusal(self.mint(audience=[OTHER_AUDIENCE, 5]))
        self.assertIn("is not this server's", message)

    def test_noAudience(self):
        """
        A token without C{aud} is refused: it could be meant for anyone.
        """
        message = self.refusal(self.mint(audience=False))
        self.assertIn("it names no audience (aud)", message)
        self.assertIn(self.issuer.audience, message)

    def test_wlcgAnyAudienceNotConfigured(self):
        """
        The WLCG "any audience" is refused unless configured.
        """
        message = self.refusal(self.mint(audience=WLCG_ANY_AUDIENCE))
        self.assertIn(WLCG_ANY_AUDIENCE, message)
        self.assertIn("is not this server's", message)

    def test_untrustedIssuer(self):
        """
        A token from an issuer not configured is refused, naming it but not
        the trusted ones: a stranger need not learn them.
        """
        message = self.refusal(self.mint(iss="https://evil.example/vo"))
        self.assertIn("its issuer https://evil.example/vo is not trusted", message)
        self.assertNotIn(self.issuer.iss, message)

    def test_noIssuer(self):
        """
        A token without C{iss} is refused.
        """
        message = self.refusal(self.signed(iss=None))
        self.assertIn("it names no issuer (iss)", message)

    def test_emptyIssuer(self):
        """
        An empty C{iss} is no issuer either.
        """
        message = self.refusal(self.mint(iss=""))
        self.assertIn("it names no issuer (iss)", message)

    def test_badSignature(self):
        """
        A token signed by another key under the issuer's key id is refused.
        """
        forged = self.mint(key=newSigningKey("ec"))
        message = self.refusal(forged)
        self.assertIn("its signature does not verify with issuer " + self.issuer.iss, message)

    def test_tamperedClaims(self):
        """
        A token whose claims were changed after signing is refused.
        """
        header, _, signature = self.mint(scope="compute.read").split(".")
        payload = _b64(json.dumps(self.claims(scope="compute.modify")).encode())
        message = self.refusal(".".join([header, payload, signature]))
        self.assertIn("signature does not verify", message)

    def test_unknownKid(self):
        """
        A token naming a key id the issuer does not have is refused, naming
        the key id and the issuer.
        """
        message = self.refusal(self.mint(kid="rotated-away"))
        self.assertIn("signed with key 'rotated-away'", message)
        self.assertIn("issuer " + self.issuer.iss, message)

    def test_noKidTwoKeys(self):
        """
        Without C{kid}, an issuer with two keys cannot tell which to use:
        the token is refused.
        """
        with open(self.issuer.jwksPath) as f:
            jwks = json.load(f)
        jwks["keys"].append(publicJWK(newSigningKey("ec"), "second", "ES256"))
        policy = self.policyFor(self.configWith(BASE, jwks=jwks))
        message = self.refusal(self.signed(header={"alg": "ES256"}), policy)
        self.assertIn("signed with key None", message)
        # With its kid, the same issuer's token is fine.
        info, _ = policy.check(self.mint())
        self.assertEqual(info.subject, "alice")

    def test_algNone(self):
        """
        An unsigned token (C{alg} C{none}) is refused.
        """
        token = rawToken({"alg": "none", "kid": self.issuer.kid}, self.claims())
        message = self.refusal(token)
        self.assertIn("its algorithm 'none' does not fit the issuer's EC key", message)

    def test_hmacWithPublicKey(self):
        """
        The algorithm-confusion forgery, an HS256 token whose HMAC key is
        the issuer's public key (which anyone has), is refused.
        """
        issuer = makeIssuer(self.mktemp(), keyType="rsa")
        policy = self.policyFor(issuer.configPath)
        public = privateKeyOf(issuer).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        payload = {"iss": issuer.iss, "sub": "mallory", "aud": issuer.audience,
                   "exp": NOW + 3600, "scope": "compute.modify"}
        token = rawToken(
            {"alg": "HS256", "kid": issuer.kid},
            payload,
            lambda message: hmac.new(public, message, hashlib.sha256).digest(),
        )
        message = self.refusal(token, policy)
        self.assertIn("its algorithm 'HS256' does not fit the issuer's RSA key", message)

    def test_algNotFittingKey(self):
        """
        An RSA algorithm named on a token of an EC issuer is refused, with
        the algorithms its key allows.
        """
        token = self.signed(header={"alg": "RS256", "kid": self.issuer.kid})
        message = self.refusal(token)
        self.assertIn("its algorithm 'RS256' does not fit the issuer's EC key", message)
        self.assertIn("accepted: ES256, ES384, ES512", message)

    def test_missingSub(self):
        """
        A token without C{sub} is refused.
        """
        message = self.refusal(self.mint(None))
        self.assertIn("it lacks the sub claim", message)

    def test_missingExp(self):
        """
        A token without C{exp} is refused: it would never expire.
        """
        message = self.refusal(self.mint(exp=None))
        self.assertIn("it lacks the exp claim", message)

    def test_expNotANumber(self):
        """
        A C{exp} that is not a number of seconds is refused.
        """
        message = self.refusal(self.mint(exp="tomorrow"))
        self.assertIn("its exp claim is not a number of seconds", message)

    def test_nbfNotANumber(self):
        """
        So is an C{nbf} that is not a number.
        """
        message = self.refusal(self.mint(nbf=True))
        self.assertIn("its nbf claim is not a number of seconds", message)

    def test_emptySub(self):
        """
        An empty C{sub} is refused: the caller would have no name.
        """
        message = self.refusal(self.mint(""))
        self.assertIn("its subject (sub) is empty", message)

    def test_subNotAString(self):
        """
        A C{sub} that is not a string is refused.
        """
        message = self.refusal(self.mint(42))
        self.assertIn("Subject must be a string", message)

    def test_garbage(self):
        """
        Things that are not JSON Web Tokens are refused as such.
        """
        for garbage in ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30"]:
            message = self.refusal(garbage)
            self.assertIn("it is not a JSON Web Token", message)

    def test_payloadNotAnObject(self):
        """
        A token whose payload is JSON but not an object is refused.
        """
        message = self.refusal(rawToken({"alg": "ES256"}, ["iss", "sub"]))
        self.assertIn("it is not a JSON Web Token", message)

    def test_kidNotAString(self):
        """
        A C{kid} that is not a string is refused like any malformed token,
        not left to escape as another error.
        """
        message = self.refusal(self.signed(header={"alg": "ES256", "kid": 7}))
        self.assertIn("it is not a JSON Web Token", message)
        self.assertIn("Key ID", message)

    def test_oversized(self):
        """
        A token longer than L{MAX_TOKEN_BYTES} is refused before any
        decoding.
        """
        message = self.refusal("a" * (MAX_TOKEN_BYTES + 1))
        self.assertIn("it is {} bytes long, more than the {} accepted".format(
            MAX_TOKEN_BYTES + 1, MAX_TOKEN_BYTES), message)

    def test_refusalNotCached(self):
        """
        A refused token is not remembered: the same token is checked (and
        refused) again.
        """
        token = self.mint(audience=OTHER_AUDIENCE)
        self.refusal(token)
        self.assertNotIn(token, self.policy._cache)
        self.refusal(token)


class HostileClaimTests(_IssuerMixin, SynchronousTestCase):
    """
    Claims chosen to break messages and logs: what an unverified or a signed
    token says reaches a message only escaped and capped, a subject with
    control characters never becomes a caller's name, and absurd times are
    refused as such (a 401, never a 500).
    """

    def test_issuerNewline(self):
        """
        An unverified C{iss} with a line break is shown escaped: it cannot
        start a forged log line.
        """
        iss = "https://evil.example/vo\n2026-01-01 [jobmon] FORGED LINE"
        message = self.refusal(self.mint(iss=iss))
        self.assertNotIn("\n", message)
        self.assertIn("https://evil.example/vo\\n2026-01-01", message)

    def test_issuerCapped(self):
        """
        An enormous C{iss} is cut in the message.
        """
        message = self.refusal(self.mint(iss="https://evil.example/" + "x" * 10000))
        self.assertLess(len(message), 600)
        self.assertIn("more characters", message)

    def test_audienceEscaped(self):
        """
        A signed token's foreign audience is escaped too.
        """
        message = self.refusal(self.mint(audience="https://a.example\r\nX: y"))
        self.assertNotIn("\r", message)
        self.assertNotIn("\n", message)

    def test_subjectControlCharacters(self):
        """
        A subject with a line break, another control character or a bidi
        override is refused: it would be the caller's name in every log
        line and audit record.
        """
        for sub in ("alice\nbob", "alice\x00", "alice\x1b[31m", "alice\u202e"):
            message = self.refusal(self.mint(sub))
            self.assertIn("its subject (sub) holds control characters", message)
            self.assertNotIn(sub, message)

    def test_subjectTooLong(self):
        """
        A subject longer than any real one is refused.
        """
        message = self.refusal(self.mint("a" * (tokens.MAX_SUBJECT + 1)))
        self.assertIn("its subject (sub) is longer than", message)
        self.policy.check(self.mint("a" * tokens.MAX_SUBJECT))

    def test_expOutOfRange(self):
        """
        A signed C{exp} of 1e20 is refused as out of range, not a server
        error; so are huge or negative C{nbf} and C{iat}.
        """
        for claim, value in (("exp", 1e20), ("exp", 2**31), ("exp", -5),
                             ("nbf", -1e20), ("nbf", 1e20), ("iat", 1e300), ("iat", -1)):
            message = self.refusal(self.signed(**{claim: value}))
            self.assertIn("its {} claim is out of range".format(claim), message)

    def test_lastValidTime(self):
        """
        The latest time accepted is the last second XML-RPC integers carry
        (C{whoami} shows C{exp}): 2038-01-19.
        """
        info, _ = self.policy.check(self.signed(exp=2**31 - 1))
        self.assertEqual(info.describe()["expires"], 2**31 - 1)


class GrantTests(_IssuerMixin, SynchronousTestCase):
    """
    Scopes to capabilities, per issuer.
    """

    def test_defaultScopes(self):
        """
        An issuer whose configuration names no scopes uses the WLCG compute
        scopes.
        """
        policy = self.policyFor(self.configWith(BASE))
        issuer = policy.config.issuers[self.issuer.iss]
        self.assertEqual(
            issuer.scopes,
            {
                "read": frozenset(["compute.read"]),
                "act": frozenset(["compute.modify"]),
                "register": frozenset(["compute.create"]),
            },
        )
        for scope, grant in [("compute.read", "read"), ("compute.modify", "act"),
                             ("compute.create", "register")]:
            info, _ = policy.check(self.mint(scope=scope))
            self.assertEqual(info.grants, frozenset([grant]))

    def test_customScopes(self):
        """
        An issuer's own scope lists decide; any scope of a list grants it,
        and a single string is a list of one.
        """
        path = self.configWith(
            BASE + 'read = ["jobmon.read", "jobmon.admin"]\n'
            'act = "jobmon.admin"\nregister = ["jobmon.daemon"]\n'
        )
        policy = self.policyFor(path)
        info, _ = policy.check(self.mint(scope="jobmon.admin compute.create"))
        self.assertEqual(info.grants, frozenset(["read", "act"]))
        info, _ = policy.check(self.mint(scope="jobmon.daemon"))
        self.assertEqual(info.grants, frozenset(["register"]))
        info, _ = policy.check(self.mint(scope="compute.read compute.modify"))
        self.assertEqual(info.grants, frozenset())

    def test_refusalNamesScope(self):
        """
        L{TokenInfo.refusal} says what was wanted, the scope that allows it
        and the scopes the token has.
        """
        info, _ = self.policy.check(self.mint(scope="compute.read openid"))
        self.assertEqual(
            info.refusal("act"),
            "your bearer token does not allow you to run site commands or send "
            "signals: that needs scope compute.modify (the token has compute.read openid)",
        )

    def test_refusalSeveralScopes(self):
        """
        With several scopes granting a capability, the refusal names them
        all, and a token without scopes says so.
        """
        path = self.configWith(BASE + 'register = ["jobmon.daemon", "compute.create"]\n')
        info, _ = self.policyFor(path).check(self.mint(scope=None))
        message = info.refusal("register")
        self.assertIn("register a job", message)
        self.assertIn("needs scope compute.create or jobmon.daemon", message)
        self.assertIn("(the token has no scopes)", message)

    def test_refusalNothingConfigured(self):
        """
        A capability no scope grants (an empty list) is said to have none.
        """
        path = self.configWith(BASE + "act = []\n")
        info, _ = self.policyFor(path).check(self.mint(scope="compute.modify"))
        self.assertEqual(info.grants, frozenset())
        self.assertIn("needs scope (none configured)", info.refusal("act"))


class CacheTests(_IssuerMixin, SynchronousTestCase):
    """
    Validated tokens are remembered until they expire.
    """

    def setUp(self):
        _IssuerMixin.setUp(self)
        self.decoded = []
        realDecode = jwt.decode

        def countingDecode(*args, **kwargs):
            self.decoded.append(args[0])
            return realDecode(*args, **kwargs)

        self.patch(tokens.jwt, "decode", countingDecode)

    def test_secondCheckCached(self):
        """
        The second check of a token gives the same result without decoding
        it again.
        """
        token = self.mint()
        first = self.policy.check(token)
        decodes = len(self.decoded)
        self.assertGreater(decodes, 0)
        second = self.policy.check(token)
        self.assertIs(second, first)
        self.assertEqual(len(self.decoded), decodes)

    def test_cachedTokenExpires(self):
        """
        A cached token is good until its expiry plus the leeway, then
        refused as expired.
        """
        token = self.mint(lifetime=600)
        self.policy.check(token)
        decodes = len(self.decoded)
        self.clock.advance(600 + 59)
        self.policy.check(token)
        self.assertEqual(len(self.decoded), decodes)
        self.clock.advance(1)
        message = self.refusal(token)
        self.assertIn("expired", message)
        self.assertIn("(60 s ago)", message)
        self.assertNotIn(token, self.policy._cache)

    def test_size(self):
        """
        Beyond C{cacheSize} tokens, the least recently used is forgotten
        and checked again when it comes back.
        """
        policy = TokenPolicy(self.issuer.configPath, now=self.clock.seconds, cacheSize=2)
        policy.load()
        first, second, third = [self.mint(sub) for sub in ("a", "b", "c")]
        policy.check(first)
        policy.check(second)
        policy.check(first)  # now second is the oldest
        policy.check(third)
        self.assertEqual(list(policy._cache), [first, third])
        decodes = len(self.decoded)
        policy.check(first)
        self.assertEqual(len(self.decoded), decodes)
        policy.check(second)
        self.assertGreater(len(self.decoded), decodes)

    def test_installClears(self):
        """
        A newly installed configuration forgets the tokens checked under
        the old one.
        """
        token = self.mint()
        self.policy.check(token)
        self.policy.install((self.policy.config, None, {}, []))
        decodes = len(self.decoded)
        self.policy.check(token)
        self.assertGreater(len(self.decoded), decodes)


class ConfigTests(_IssuerMixin, SynchronousTestCase):
    """
    L{loadTokenConfig} and L{loadJWKS}: a usable configuration, and one
    L{TokenConfigError} naming the file and key for each mistake.
    """

    def configError(self, text, jwks=None):
        """
        Load a configuration that must fail; return the message after
        checking it names the configuration file.
        """
        path = self.configWith(text, jwks)
        e = self.assertRaises(TokenConfigError, loadTokenConfig, path)
        self.assertIn(path, str(e))
        return str(e)

    def jwksError(self, jwks):
        """
        Load a configuration whose key file must fail; return the message
        after checking it names the key file.
        """
        path = self.configWith(BASE, jwks)
        e = self.assertRaises(TokenConfigError, loadTokenConfig, path)
        self.assertIn(os.path.join(os.path.dirname(os.path.abspath(path)), "vo.jwks"), str(e))
        return str(e)

    def test_loaded(self):
        """
        A configuration gives its audiences, leeway, issuers and the files
        read; the policy describes it in one line.
        """
        config = self.policy.config
        self.assertEqual(config.audience, frozenset([self.issuer.audience]))
        self.assertEqual(config.leeway, 60.0)
        self.assertEqual(list(config.issuers), [self.issuer.iss])
        self.assertEqual(config.files, (self.issuer.configPath, self.issuer.jwksPath))
        self.assertEqual(set(config.issuers[self.issuer.iss].keys), {self.issuer.kid})
        self.assertEqual(
            self.policy.describe(), "1 token issuer(s) from " + self.issuer.configPath
        )

    def test_defaultLeeway(self):
        """
        Without C{leeway}, 60 s of skew are allowed.
        """
        config = loadTokenConfig(self.configWith(BASE.replace("leeway = 60\n", "")))
        self.assertEqual(config.leeway, 60.0)

    def test_relativeJWKS(self):
        """
        A relative C{jwks} is found beside the configuration, not in the
        current directory.
        """
        path = self.configWith(BASE.replace('jwks = "vo.jwks"', 'jwks = "keys/vo.jwks"'))
        directory = os.path.dirname(path)
        os.makedirs(os.path.join(directory, "keys"))
        os.rename(os.path.join(directory, "vo.jwks"), os.path.join(directory, "keys", "vo.jwks"))
        self.assertFalse(os.path.exists(os.path.join("keys", "vo.jwks")))
        config = loadTokenConfig(path)
        self.assertEqual(config.files[1], os.path.join(os.path.abspath(directory), "keys/vo.jwks"))
        self.assertEqual(set(config.issuers[self.issuer.iss].keys), {self.issuer.kid})

    def test_absoluteJWKS(self):
        """
        An absolute C{jwks} is used as it is.
        """
        path = self.configWith(BASE.replace('"vo.jwks"', json.dumps(self.issuer.jwksPath)))
        self.assertEqual(loadTokenConfig(path).files[1], self.issuer.jwksPath)

    def test_unreadable(self):
        """
        A configuration file that cannot be read is named.
        """
        path = os.path.abspath(self.mktemp())
        e = self.assertRaises(TokenConfigError, loadTokenConfig, path)
        self.assertIn("cannot read the token configuration " + path, str(e))
        self.assertIn("No such file", str(e))

    def test_badTOML(self):
        """
        A file that is not TOML says so.
        """
        self.assertIn("not valid TOML", self.configError("audience = [\n"))

    def test_unknownTopKey(self):
        """
        A misspelt top-level key is named, with the known ones.
        """
        message = self.configError('audiences = ["{aud}"]\n' + BASE)
        self.assertIn("unknown key 'audiences' (known: audience, fetch-ca, fetch-timeout, issuer, leeway, "
                      "max-lifetime)", message)

    def test_unknownIssuerKey(self):
        """
        A misspelt key of an issuer is named, with the issuer's position.
        """
        message = self.configError(BASE + 'scopes = ["compute.read"]\n')
        self.assertIn("[[issuer]] 1: unknown key 'scopes'", message)

    def test_missingAudience(self):
        """
        A configuration without audiences is refused: tokens for any
        service would do.
        """
        message = self.configError(BASE.replace('audience = ["{aud}"]\n', ""))
        self.assertIn("audience is required", message)

    def test_emptyAudience(self):
        """
        An empty audience list is no audience.
        """
        message = self.configError(BASE.replace('["{aud}"]', "[]"))
        self.assertIn("audience is required", message)

    def test_audienceNotStrings(self):
        """
        Audiences must be strings.
        """
        message = self.configError(BASE.replace('["{aud}"]', '["{aud}", 3]'))
        self.assertIn("audience must be a string or an array of strings", message)

    def test_noIssuers(self):
        """
        A configuration without issuers is refused.
        """
        message = self.configError('audience = ["{aud}"]\n')
        self.assertIn("no [[issuer]]", message)

    def test_nonHttpsIssuer(self):
        """
        An issuer URL must be https.
        """
        message = self.configError(BASE.replace('"{iss}"', '"http://tokens.example/vo"'))
        self.assertIn("[[issuer]] 1: iss must be the issuer's https:// URL", message)
        self.assertIn("'http://tokens.example/vo'", message)

    def test_issuerWithFragment(self):
        """
        An issuer URL with C{#} is refused: it would make caller names
        ambiguous.
        """
        message = self.configError(BASE.replace('"{iss}"', '"https://tokens.example/vo#x"'))
        self.assertIn("(no fragment)", message)

    def test_missingIss(self):
        """
        An issuer without C{iss} is refused.
        """
        message = self.configError(BASE.replace('iss = "{iss}"\n', ""))
        self.assertIn("iss must be", message)
        self.assertIn("not None", message)

    def test_duplicateIssuer(self):
        """
        The same issuer twice is refused, at the second.
        """
        message = self.configError(BASE + '\n[[issuer]]\niss = "{iss}"\njwks = "vo.jwks"\n')
        self.assertIn("[[issuer]] 2: issuer " + self.issuer.iss + " appears twice", message)

    def test_missingJWKS(self):
        """
        An issuer without a key file is refused.
        """
        message = self.configError(BASE.replace('jwks = "vo.jwks"\n', ""))
        self.assertIn("[[issuer]] 1: give exactly one of jwks (the issuer's key file), jwks-url", message)

    def test_scopesNotStrings(self):
        """
        A scope list holding other things than strings is refused.
        """
        message = self.configError(BASE + "read = [1]\n")
        self.assertIn("[[issuer]] 1: read must be a string or an array of strings", message)

    def test_usersNotStrings(self):
        """
        C{users} must map subjects to non-empty strings.
        """
        for users in ['\n[issuer.users]\n"alice" = 1\n', '\n[issuer.users]\n"alice" = ""\n',
                      'users = "alice"\n']:
            message = self.configError(BASE + users)
            self.assertIn("[[issuer]] 1: users must map subjects to names", message)

    def test_leewayOutOfRange(self):
        """
        The leeway must be a number of seconds from 0 to 600.
        """
        for leeway in ["601", "-1", '"60"', "true", "nan"]:
            message = self.configError(BASE.replace("leeway = 60", "leeway = " + leeway))
            self.assertIn("leeway must be a number of seconds from 0 to 600", message)

    def test_leewayBounds(self):
        """
        0 and 600 are allowed, and so are fractions.
        """
        for leeway, expected in [("0", 0.0), ("600", 600.0), ("2.5", 2.5)]:
            config = loadTokenConfig(self.configWith(BASE.replace("60", leeway, 1)))
            self.assertEqual(config.leeway, expected)

    def test_jwksUnreadable(self):
        """
        A key file that is not there is named.
        """
        path = self.configWith(BASE.replace('"vo.jwks"', '"gone.jwks"'))
        e = self.assertRaises(TokenConfigError, loadTokenConfig, path)
        self.assertIn("cannot read the key file ", str(e))
        self.assertIn("gone.jwks", str(e))

    def test_jwksNotJSON(self):
        """
        A key file that is not JSON says so.
        """
        self.assertIn("is not JSON", self.jwksError("-----BEGIN PUBLIC KEY-----\n"))

    def test_jwksNotJWKS(self):
        """
        JSON without a C{keys} list is not a JWKS.
        """
        for jwks in [{"kty": "EC"}, {"keys": {}}, [1]]:
            self.assertIn("is not a JWKS", self.jwksError(jwks))

    def test_jwksPrivateKey(self):
        """
        A key file holding a private key is refused: a server needs only
        public keys, and a leaked private key would let anyone mint tokens.
        """
        private = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(privateKeyOf(self.issuer))
        )
        self.assertIn("d", private)
        message = self.jwksError({"keys": [private]})
        self.assertIn("key 1: holds a private key", message)

    def test_jwksUnsupportedType(self):
        """
        Symmetric and unknown key types are refused, naming the type.
        """
        message = self.jwksError({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
        self.assertIn("key 1: key type 'oct' is not supported", message)
        message = self.jwksError({"keys": [{"kty": ["EC"]}]})
        self.assertIn("key type ['EC'] is not supported", message)

    def test_jwksDuplicateKid(self):
        """
        Two keys with one key id are refused, at the second.
        """
        with open(self.issuer.jwksPath) as f:
            jwks = json.load(f)
        jwks["keys"].append(publicJWK(newSigningKey("ec"), self.issuer.kid, "ES256"))
        message = self.jwksError(jwks)
        self.assertIn("key 2: key id 'jobmon-test-1' appears twice", message)

    def test_jwksKidNotString(self):
        """
        A key id that is not a string is refused.
        """
        jwk = publicJWK(newSigningKey("ec"), "x", "ES256")
        jwk["kid"] = ["x"]
        self.assertIn("key 1: its kid must be a string", self.jwksError({"keys": [jwk]}))

    def test_jwksEmpty(self):
        """
        A key file without keys, or with encryption keys only, is refused.
        """
        self.assertIn("holds no signing key", self.jwksError({"keys": []}))
        jwk = publicJWK(newSigningKey("ec"), "enc-1", "ES256")
        jwk["use"] = "enc"
        self.assertIn("holds no signing key", self.jwksError({"keys": [jwk]}))

    def test_jwksBadKey(self):
        """
        A key whose numbers are not a key is refused.
        """
        message = self.jwksError({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]})
        self.assertIn("key 1: not a usable key", message)

    def test_jwksNotObject(self):
        """
        A key that is not a JSON object is refused.
        """
        self.assertIn("key 1: not a JSON object", self.jwksError({"keys": ["EC"]}))

    def test_loadJWKS(self):
        """
        L{loadJWKS} maps each key id to its type and public key, skipping
        encryption keys; a key without C{kid} is under C{None}.
        """
        rsaKey = newSigningKey("rsa")
        encKey = publicJWK(newSigningKey("ec"), "enc", "ES256")
        encKey["use"] = "enc"
        noKid = publicJWK(newSigningKey("ec"), "x", "ES256")
        del noKid["kid"]
        path = self.mktemp()
        writeFile(path, json.dumps({"keys": [publicJWK(rsaKey, "r", "RS256"), encKey, noKid]}))
        keys = loadJWKS(path)
        self.assertEqual(set(keys), {"r", None})
        self.assertEqual(keys["r"][0], "RSA")
        self.assertEqual(keys["r"][1].public_numbers(), rsaKey.public_key().public_numbers())
        self.assertEqual(keys[None][0], "EC")


class ReloadTests(_IssuerMixin, SynchronousTestCase):
    """
    L{TokenPolicy.prepareReload} and L{TokenPolicy.install}: changed files
    are read again, unchanged ones are not.
    """

    def rotate(self):
        """
        Replace the issuer's key file with one holding only a new key.

        @return: the new private key and its key id.
        """
        key = newSigningKey("ec")
        writeFile(self.issuer.jwksPath,
                  json.dumps({"keys": [publicJWK(key, "jobmon-test-2", "ES256")]}))
        return key, "jobmon-test-2"

    def test_unchanged(self):
        """
        Nothing changed: nothing to install.
        """
        self.assertIsNone(self.policy.prepareReload())
        self.assertIsNone(self.policy.prepareReload())

    def test_notLoaded(self):
        """
        A policy not yet loaded reads its files.
        """
        policy = TokenPolicy(self.issuer.configPath, now=self.clock.seconds)
        prepared = policy.prepareReload()
        self.assertIsNotNone(prepared)
        policy.install(prepared)
        info, _ = policy.check(self.mint())
        self.assertEqual(info.subject, "alice")

    def test_keyRotation(self):
        """
        A new key file is read; once installed, tokens signed with the new
        key are accepted and those of the old key refused.  Until then the
        old configuration holds.
        """
        oldToken = self.mint("alice")
        self.policy.check(oldToken)
        key, kid = self.rotate()
        newToken = self.mint("bob", key=key, kid=kid)
        prepared = self.policy.prepareReload()
        self.assertIsNotNone(prepared)
        self.assertEqual(self.policy.check(oldToken)[0].subject, "alice")
        self.assertIn("signed with key 'jobmon-test-2'", self.refusal(newToken))
        self.policy.install(prepared)
        self.assertEqual(self.policy.check(newToken)[0].subject, "bob")
        self.assertIn("signed with key 'jobmon-test-1'", self.refusal(oldToken))
        self.assertIsNone(self.policy.prepareReload())

    def test_sameSizeSameTime(self):
        """
        A key file rewritten in place with a new key of the same size, its
        modification time put back: still seen as changed (the content is
        compared, not only times and sizes).
        """
        st = os.stat(self.issuer.jwksPath)
        with open(self.issuer.jwksPath) as f:
            old = json.load(f)
        key = newSigningKey("ec")
        jwk = publicJWK(key, "jobmon-test-1", "ES256")
        text = json.dumps({"keys": [jwk]}, indent=2)
        self.assertEqual(len(old["keys"][0]["x"]), len(jwk["x"]))
        with open(self.issuer.jwksPath, "w") as f:
            f.write(text)
        os.utime(self.issuer.jwksPath, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.assertEqual(os.stat(self.issuer.jwksPath).st_size, st.st_size)
        prepared = self.policy.prepareReload()
        self.assertIsNotNone(prepared)
        self.policy.install(prepared)
        self.assertEqual(self.policy.check(self.mint("bob", key=key))[0].subject, "bob")

    def test_configChanged(self):
        """
        A changed configuration file is read: a new C{users} entry names
        the subject.
        """
        with open(self.issuer.configPath) as f:
            text = f.read()
        writeFile(self.issuer.configPath, text + '\n[issuer.users]\n"alice" = "/CN=Alice"\n')
        prepared = self.policy.prepareReload()
        self.assertIsNotNone(prepared)
        self.policy.install(prepared)
        self.assertEqual(self.policy.check(self.mint("alice"))[1], "/CN=Alice")

    def test_brokenChange(self):
        """
        A changed file that cannot be used raises L{TokenConfigError} and
        leaves the policy as it was.
        """
        token = self.mint()
        writeFile(self.issuer.jwksPath, "{not json")
        e = self.assertRaises(TokenConfigError, self.policy.prepareReload)
        self.assertIn(self.issuer.jwksPath, str(e))
        self.assertIn("is not JSON", str(e))
        self.assertEqual(self.policy.check(token)[0].subject, "alice")

    def test_removedFile(self):
        """
        A key file that disappears is a change, and an error.
        """
        os.remove(self.issuer.jwksPath)
        e = self.assertRaises(TokenConfigError, self.policy.prepareReload)
        self.assertIn("cannot read the key file " + self.issuer.jwksPath, str(e))


class SplitAuthorizationTests(SynchronousTestCase):
    """
    L{splitAuthorization}: the token of an C{Authorization} header.
    """

    def test_bearer(self):
        """
        The scheme is C{Bearer} in any case; white space around the token
        is not part of it.
        """
        for header in ["Bearer abc.def", "bearer abc.def", "BEARER abc.def",
                       "  Bearer    abc.def  "]:
            self.assertEqual(splitAuthorization(header), "abc.def")

    def test_otherScheme(self):
        """
        Other schemes are refused, naming the scheme.
        """
        for header, scheme in [("Basic YWxpY2U6cHc=", "'Basic'"), ("abc", "'abc'"),
                               ("", "''")]:
            e = self.assertRaises(JobMonError, splitAuthorization, header)
            self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
            self.assertIn("Authorization scheme " + scheme + " is not supported", e.message)

    def test_longSchemeShortened(self):
        """
        A long scheme is cut in the message.
        """
        e = self.assertRaises(JobMonError, splitAuthorization, "x" * 1000 + " token")
        self.assertIn("'" + "x" * 20 + "'", e.message)
        self.assertNotIn("x" * 21, e.message)

    def test_emptyToken(self):
        """
        C{Bearer} without a token is refused.
        """
        for header in ["Bearer", "Bearer ", "Bearer    "]:
            e = self.assertRaises(JobMonError, splitAuthorization, header)
            self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
            self.assertEqual(e.message, "Authorization: Bearer carries no token")


class IdentityMayTests(_IssuerMixin, SynchronousTestCase):
    """
    L{Identity.may}: what a caller's credential allows.
    """

    def test_fullProxy(self):
        """
        A certificate or full proxy may do everything.
        """
        for identity in [Identity("/CN=Alice"), Identity("/CN=Alice", proxy=True)]:
            self.assertEqual(
                [identity.may(c) for c in ("read", "act", "register")], [True, True, True]
            )

    def test_limitedProxy(self):
        """
        A limited proxy may read and register but not act.
        """
        identity = Identity("/CN=Alice", proxy=True, limited=True)
        self.assertTrue(identity.may("read"))
        self.assertTrue(identity.may("register"))
        self.assertFalse(identity.may("act"))

    def test_token(self):
        """
        A token caller may do what its scopes grant, and nothing else.
        """
        info, name = self.policy.check(self.mint(scope="compute.read compute.create"))
        identity = Identity(name, token=info)
        self.assertTrue(identity.may("read"))
        self.assertTrue(identity.may("register"))
        self.assertFalse(identity.may("act"))

    def test_tokenWithoutScopes(self):
        """
        A token without scopes allows nothing, even if it came with a
        certificate-like name.
        """
        info, _ = self.policy.check(self.mint(scope=None))
        identity = Identity("/CN=Alice", token=info)
        self.assertEqual(
            [identity.may(c) for c in ("read", "act", "register")], [False, False, False]
        )


class _FakeRequest:
    """
    Just what L{jobmon.server.service.identifyCaller} reads of a request.
    """

    def __init__(self, authorization=None, host="192.0.2.7"):
        self.authorization = authorization
        self.host = host

    def getHeader(self, name):
        assert name == b"authorization"
        return self.authorization

    def getClientAddress(self):
        from twisted.internet.address import IPv4Address

        return IPv4Address("TCP", self.host, 40000)


class _RecordingAudit:
    def __init__(self):
        self.records = []

    def record(self, event, **fields):
        self.records.append(dict(fields, event=event))


class IdentifyCallerTests(_IssuerMixin, SynchronousTestCase):
    """
    L{jobmon.server.service.identifyCaller}: a token, when sent, decides; refusals
    are counted, logged and audited a few per address.
    """

    def setUp(self):
        super().setUp()
        from jobmon.server.metrics import Metrics
        from jobmon.server.service import identifyCaller

        self.certificateCalls = []
        self.metrics = Metrics()
        self.audit = _RecordingAudit()

        def certificate(request):
            self.certificateCalls.append(request)
            if request.host == "198.51.100.1":
                raise JobMonError(errors.NOT_AUTHENTICATED, "no verified client certificate")
            return Identity("/CN=Alice")

        self.identify = identifyCaller(certificate, self.policy, self.audit, self.metrics)
        self.noTokens = identifyCaller(certificate, None, self.audit, self.metrics)

    def refusals(self, reason):
        return self.metrics.registry.get_sample_value(
            "jobmon_refusals_total", {"reason": reason}) or 0

    def test_certificateWithoutHeader(self):
        """
        Without C{Authorization}, the certificate identifies the caller.
        """
        self.assertEqual(self.identify(_FakeRequest()).dn, "/CN=Alice")
        self.assertEqual(len(self.certificateCalls), 1)

    def test_tokenWins(self):
        """
        With a token, the token's bearer is the caller and the certificate
        is not looked at.
        """
        identity = self.identify(_FakeRequest(b"Bearer " + self.mint("bob").encode()))
        self.assertEqual(identity.dn, self.issuer.identity("bob"))
        self.assertEqual(identity.token.subject, "bob")
        self.assertEqual(self.certificateCalls, [])

    def test_neither(self):
        """
        Neither a certificate nor a token: the fault says what to send.
        """
        e = self.assertRaises(JobMonError, self.identify, _FakeRequest(host="198.51.100.1"))
        self.assertEqual(e.code, errors.NOT_AUTHENTICATED)
        self.assertIn("send a bearer token", e.message)

    def test_serverWithoutTokens(self):
        """
        A server that takes no tokens says so, and counts the refusal.
        """
        e = self.assertRaises(JobMonError, self.noTokens,
                              _FakeRequest(b"Bearer " + self.mint().encode()))
        self.assertIn("does not accept bearer tokens", e.message)
        self.assertEqual(self.refusals("token"), 1)

    def test_refusalsCountedAndAudited(self):
        """
        Every refused token is counted; the first five per address per
        minute are audited, with the address and reason.
        """
        expired = self.mint(lifetime=-3600).encode()
        for _ in range(7):
            self.assertRaises(JobMonError, self.identify, _FakeRequest(b"Bearer " + expired))
        self.assertEqual(self.refusals("token"), 7)
        self.assertEqual(len(self.audit.records), 5)
        record = self.audit.records[0]
        self.assertEqual((record["event"], record["method"], record["peer"]),
                         ("refused", "token", "192.0.2.7"))
        self.assertIn("expired", record["reason"])
        self.assertRaises(JobMonError, self.identify,
                          _FakeRequest(b"Bearer " + expired, host="192.0.2.8"))
        self.assertEqual(len(self.audit.records), 6)


class FetchedKeysTests(_IssuerMixin, SynchronousTestCase):
    """
    Issuers whose keys the server fetches (C{jwks-url}, C{discover}):
    fetched at load, refreshed, fetched again soon after a failure or an
    unknown key id, the last good keys kept.
    """

    ISS = "https://tokens.jobmon-test.example/vo"

    def setUp(self):
        super().setUp()
        with open(self.issuer.jwksPath) as f:
            self.jwks = json.load(f)
        self.documents = {}
        self.fetches = []

    def fetch(self, url, caPath, timeout):
        self.fetches.append((url, caPath, timeout))
        document = self.documents.get(url)
        if isinstance(document, Exception):
            raise document
        if document is None:
            raise TokenConfigError("GET {}: HTTP 404 Not Found".format(url))
        return document

    def configure(self, source, extra=""):
        """
        A configuration for the issuer with keys from C{source} (a TOML
        line), loaded with this test's fetcher.
        """
        path = os.path.join(self.mktemp() + "-cfg", "tokens.toml")
        os.makedirs(os.path.dirname(path))
        writeFile(path, 'audience = ["{}"]\n{}\n[[issuer]]\niss = "{}"\n{}\n'.format(
            self.issuer.audience, extra, self.ISS, source))
        policy = TokenPolicy(path, now=self.clock.seconds, fetch=self.fetch)
        policy.load()
        return policy

    def test_jwksURL(self):
        """
        C{jwks-url}: fetched at load, with the configured CA and timeout.
        """
        self.documents["https://keys.example/jwks"] = self.jwks
        policy = self.configure('jwks-url = "https://keys.example/jwks"',
                                'fetch-timeout = 5\nfetch-ca = "/"')
        self.assertEqual(policy.check(self.mint())[0].subject, "alice")
        self.assertEqual(self.fetches, [("https://keys.example/jwks", "/", 5.0)])

    def test_discovery(self):
        """
        C{discover}: the issuer's discovery document names its jwks_uri.
        """
        self.documents[self.ISS + "/.well-known/openid-configuration"] = {
            "issuer": self.ISS, "jwks_uri": "https://keys.example/certs"}
        self.documents["https://keys.example/certs"] = self.jwks
        policy = self.configure("discover = true")
        self.assertEqual(policy.check(self.mint())[0].subject, "alice")
        self.assertEqual([f[0] for f in self.fetches], [
            self.ISS + "/.well-known/openid-configuration", "https://keys.example/certs"])

    def test_discoveryOfAnotherIssuer(self):
        """
        A discovery document naming another issuer, or no https jwks_uri,
        gives no keys; tokens are refused saying why.
        """
        self.documents[self.ISS + "/.well-known/openid-configuration"] = {
            "issuer": "https://evil.example", "jwks_uri": "https://keys.example/certs"}
        self.documents["https://keys.example/certs"] = self.jwks
        policy = self.configure("discover = true")
        message = self.refusal(self.mint(), policy)
        self.assertIn("could not be fetched", message)
        self.assertIn("names issuer 'https://evil.example'", message)
        self.documents[self.ISS + "/.well-known/openid-configuration"] = {
            "issuer": self.ISS, "jwks_uri": "http://keys.example/certs"}
        self.clock.advance(RETRY_FETCH)
        policy.install(policy.prepareReload())
        self.assertIn("gives no https:// jwks_uri", self.refusal(self.mint(), policy))

    def test_unreachableAtLoad(self):
        """
        Keys that cannot be fetched at load do not stop the server: tokens
        are refused with the reason, and the next attempt, a minute later,
        brings the keys.
        """
        policy = self.configure('jwks-url = "https://keys.example/jwks"')
        message = self.refusal(self.mint(), policy)
        self.assertIn("the keys of its issuer {} could not be fetched (GET "
                      "https://keys.example/jwks: HTTP 404 Not Found)".format(self.ISS), message)
        self.documents["https://keys.example/jwks"] = self.jwks
        self.clock.advance(RETRY_FETCH - 1)
        self.assertIsNone(policy.prepareReload())
        self.clock.advance(1)
        policy.install(policy.prepareReload())
        self.assertEqual(policy.check(self.mint())[0].subject, "alice")

    def test_refreshKeepsKeysOnFailure(self):
        """
        Keys are fetched again after C{refresh} seconds; a failed fetch
        keeps the previous keys (and is tried again a minute later).
        """
        self.documents["https://keys.example/jwks"] = self.jwks
        policy = self.configure('jwks-url = "https://keys.example/jwks"\nrefresh = 600')
        self.clock.advance(599)
        self.assertIsNone(policy.prepareReload())
        self.documents["https://keys.example/jwks"] = TokenConfigError("GET: timed out")
        self.clock.advance(1)
        policy.install(policy.prepareReload())
        self.assertEqual(len(self.fetches), 2)
        self.assertEqual(policy.check(self.mint())[0].subject, "alice")
        self.clock.advance(RETRY_FETCH - 1)
        self.assertIsNone(policy.prepareReload())
        self.clock.advance(1)
        self.assertIsNotNone(policy.prepareReload())
        self.assertEqual(len(self.fetches), 3)

    def test_unknownKidFetchesSooner(self):
        """
        A token signed with a key id the server lacks (the issuer rotated
        its keys) makes the server fetch again within a minute, not at the
        next refresh.
        """
        self.documents["https://keys.example/jwks"] = self.jwks
        policy = self.configure('jwks-url = "https://keys.example/jwks"')
        key = newSigningKey()
        token = self.mint(key=key, kid="rotated")
        self.assertIn("fetches the issuer's keys again", self.refusal(token, policy))
        self.documents["https://keys.example/jwks"] = {
            "keys": self.jwks["keys"] + [publicJWK(key, "rotated", "ES256")]}
        self.clock.advance(RETRY_FETCH)
        policy.install(policy.prepareReload())
        self.assertEqual(policy.check(token)[0].subject, "alice")
        # Satisfied: the next fetch waits for the refresh interval.
        self.clock.advance(RETRY_FETCH)
        self.assertIsNone(policy.prepareReload())

    def test_configErrors(self):
        """
        Key sources: exactly one, jwks-url over https, discover a boolean,
        refresh at least a minute, fetch-ca existing.
        """
        for source, extra, words in [
            ('jwks = "a.jwks"\njwks-url = "https://k"', "", "give exactly one of jwks"),
            ("", "", "give exactly one of jwks"),
            ('jwks-url = "http://keys.example/jwks"', "", "jwks-url must be an https:// URL"),
            ('discover = "yes"', "", "discover must be true or false"),
            ('jwks-url = "https://k"\nrefresh = 5', "", "refresh must be a number of seconds"),
            ('jwks-url = "https://k"', 'fetch-ca = "nowhere"', "fetch-ca"),
            ('jwks-url = "https://k"', "fetch-timeout = 0", "fetch-timeout must be"),
            ('jwks-url = "https://k"', "max-lifetime = -1", "max-lifetime must be"),
        ]:
            e = self.assertRaises(TokenConfigError, self.configure, source, extra)
            self.assertIn(words, str(e))


class MaxLifetimeTests(_IssuerMixin, SynchronousTestCase):
    """
    C{max-lifetime}: tokens that live longer, or whose lifetime cannot be
    told, are refused.
    """

    def setUp(self):
        super().setUp()
        with open(self.issuer.configPath) as f:
            text = f.read()
        writeFile(self.issuer.configPath, "max-lifetime = 21600\n" + text)
        self.policy = self.policyFor(self.issuer.configPath)

    def test_limit(self):
        """
        Six hours pass; a day does not, and the fault says both.
        """
        self.assertEqual(self.policy.check(self.mint(lifetime=21600))[0].subject, "alice")
        message = self.refusal(self.mint(lifetime=86400))
        self.assertIn("it lives 24.0 h, longer than the 6.0 h this server accepts", message)

    def test_noStart(self):
        """
        Without iat and nbf the lifetime is unknown: refused.
        """
        message = self.refusal(self.mint(iat=None, nbf=None))
        self.assertIn("neither iat nor nbf", message)

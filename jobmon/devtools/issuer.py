"""
A throwaway bearer-token issuer for tests and demonstrations: a signing
key, its public JWKS, a server token configuration naming it, and tokens
in the WLCG profile's shape.  C{jobmon-pki token-issuer} and
C{jobmon-pki token} use it; a site uses its real issuers instead.
"""

import json
import os
import time
import uuid

import jwt
from attrs import frozen
from cryptography.hazmat.primitives import serialization

from jobmon.devtools.keys import newKey, writeFile

ISSUER_KEY = "issuer-key.pem"
ISSUER_JWKS = "issuer.jwks"
ISSUER_META = "issuer.json"
TOKEN_CONFIG = "tokens.toml"

_ALGORITHM = {"ec": "ES256", "rsa": "RS256"}


@frozen
class LocalIssuer:
    """
    The files of an issuer made by L{makeIssuer}.

    @ivar directory: where they are.
    @ivar iss: the issuer URL.
    @ivar audience: the audience the configuration accepts.
    @ivar kid: the key id.
    @ivar algorithm: the signature algorithm.
    """

    directory: str
    iss: str
    audience: str
    kid: str
    algorithm: str

    @property
    def keyPath(self):
        return os.path.join(self.directory, ISSUER_KEY)

    @property
    def jwksPath(self):
        return os.path.join(self.directory, ISSUER_JWKS)

    @property
    def configPath(self):
        return os.path.join(self.directory, TOKEN_CONFIG)

    def identity(self, sub):
        """
        The name the server gives the bearer of a token for C{sub}.
        """
        return "{}#{}".format(self.iss, sub)

    def mint(self, sub, scope="compute.read compute.modify compute.create", lifetime=3600.0,
             audience=None, now=None, kid=None, iss=None, key=None, **claims):
        """
        Make a signed token.

        @param scope: the C{scope} claim, or C{None} for none.
        @param lifetime: seconds from C{now} to C{exp} (negative: already
            expired).
        @param audience: the C{aud} claim (default: the issuer's audience);
            C{None} leaves it out only if given as C{audience=False}.
        @param kid: the key id in the header (default: this issuer's).
        @param iss: the C{iss} claim (default: this issuer's).
        @param key: another private key to sign with (a forgery).
        @param claims: more claims, or C{None} values to remove defaults.
        """
        now = time.time() if now is None else now
        payload = {
            "wlcg.ver": "1.0",
            "iss": self.iss if iss is None else iss,
            "sub": sub,
            "aud": self.audience if audience is None else audience,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "jti": str(uuid.uuid4()),
        }
        if scope is not None:
            payload["scope"] = scope
        if audience is False:
            del payload["aud"]
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        if key is None:
            with open(self.keyPath, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
        return jwt.encode(
            payload, key, algorithm=self.algorithm,
            headers={"kid": self.kid if kid is None else kid, "typ": "JWT"},
        )


def newSigningKey(keyType="ec"):
    """
    A fresh private key of the kind L{makeIssuer} makes: P-256 or RSA 2048,
    as for the test PKI's certificates.
    """
    return newKey(keyType)


def publicJWK(key, kid, algorithm):
    """
    The public JWK of a private key.
    """
    public = key.public_key()
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(public))
    jwk.update({"kid": kid, "use": "sig", "alg": algorithm})
    return jwk


def makeIssuer(directory, iss="https://tokens.jobmon-test.example/vo",
               audience="https://jobmon.jobmon-test.example", keyType="ec",
               kid="jobmon-test-1", users=None):
    """
    Make an issuer in C{directory}: its private key (0600), its JWKS and a
    server token configuration (C{tokens.toml}) trusting it with the
    default WLCG compute scopes.

    @param users: optional subject to name table for the configuration.
    @return: a L{LocalIssuer}.
    """
    os.makedirs(directory, exist_ok=True)
    algorithm = _ALGORITHM[keyType]
    key = newSigningKey(keyType)
    issuer = LocalIssuer(os.path.abspath(directory), iss, audience, kid, algorithm)
    writeFile(
        issuer.keyPath,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    writeFile(
        issuer.jwksPath,
        json.dumps({"keys": [publicJWK(key, kid, algorithm)]}, indent=2).encode(),
        0o644,
    )
    lines = [
        "# Made by jobmon-pki token-issuer: a throwaway test issuer.",
        "audience = [{}]".format(json.dumps(audience)),
        "leeway = 60",
        "",
        "[[issuer]]",
        "iss = {}".format(json.dumps(iss)),
        "jwks = {}".format(json.dumps(ISSUER_JWKS)),
        'read = ["compute.read"]',
        'act = ["compute.modify"]',
        'register = ["compute.create"]',
    ]
    if users:
        lines += ["", "[issuer.users]"]
        lines += ["{} = {}".format(json.dumps(s), json.dumps(n)) for s, n in users.items()]
    writeFile(issuer.configPath, ("\n".join(lines) + "\n").encode(), 0o644)
    writeFile(
        os.path.join(directory, ISSUER_META),
        json.dumps({"iss": iss, "audience": audience, "kid": kid,
                    "algorithm": algorithm}).encode(),
        0o644,
    )
    return issuer


def loadIssuer(directory):
    """
    The L{LocalIssuer} made earlier in C{directory}.

    @raise OSError: it is not there.
    """
    with open(os.path.join(directory, ISSUER_META), "rb") as f:
        meta = json.loads(f.read())
    return LocalIssuer(os.path.abspath(directory), meta["iss"], meta["audience"],
                      meta["kid"], meta["algorithm"])

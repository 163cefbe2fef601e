"""
Bearer tokens: WLCG and SciTokens JSON Web Tokens, beside X.509.

A client or job daemon sends C{Authorization: Bearer <token>} over the same
HTTPS connection it would authenticate with a certificate.  The server
checks the token against the issuers of its token configuration
(C{--token-issuers FILE}, a TOML file)::

    # A token's "aud" must name one of these.
    audience = ["https://jobmon.example.org"]
    # Seconds of clock skew allowed on exp, nbf and iat.
    leeway = 60

    [[issuer]]
    iss = "https://tokens.example.org/vo"
    jwks = "vo.jwks"                 # the issuer's public keys (JWKS)
    read = ["compute.read"]          # scopes that let a user list and read jobs
    act = ["compute.modify"]         # ... run site commands and send signals
    register = ["compute.create"]    # ... let a job daemon register its job

    [issuer.users]                   # optional: a subject's X.509 name
    "e1eb758b-b73c-4761" = "/DC=org/DC=example/CN=Alice"

The caller is the issuer and subject, C{ISSUER#SUBJECT} (an issuer URL has
no fragment, so the C{#} cannot be ambiguous), unless the issuer's C{users}
table names the subject, in which case the caller is that name: a user
whose jobs registered with her proxy can query them with her token.

What each scope allows is the issuer's C{read}, C{act} and C{register}
lists (any one scope of a list grants it); the defaults are the WLCG
profile's compute scopes above.

Only asymmetric signatures are accepted (RSA, RSA-PSS, ECDSA, EdDSA), with
the algorithm matching the key's type: never C{none}, never HMAC.  A token
must carry C{iss}, C{sub}, C{exp} and an C{aud} this server accepts.

The configuration and the key files are read by L{TokenPolicy.load} and
re-read when they change (L{TokenPolicy.prepareReload}, which the server's
credential reloader calls from a thread); validated tokens are cached until
they expire, so a daemon's frequent calls cost one signature check.
"""

import hashlib
import http.client
import json
import math
import os
import ssl
import time
import tomllib
import urllib.error
import urllib.request
from collections import OrderedDict

import jwt
from attrs import frozen
from twisted.logger import Logger

from jobmon.certificates import canonicalDN
from jobmon.errors import NOT_AUTHENTICATED, JobMonError
from jobmon.fqan import tokenGroups
from jobmon.times import ago, duration, utc
from jobmon.untrusted import escaped, shown

WLCG_ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
"""The WLCG profile's audience meaning "any service": accepted only when a
configuration lists it."""

CAPABILITIES = ("read", "act", "register")
"""What a scope may grant: reading jobs, acting on them (site commands,
signals), registering a job (a daemon)."""

DEFAULT_SCOPES = {
    "read": ("compute.read",),
    "act": ("compute.modify",),
    "register": ("compute.create",),
}
"""The WLCG token profile's compute scopes, the default for each issuer."""

_ALGORITHMS = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
"""Signature algorithms accepted, by the JWK key type that must sign them."""

MAX_TOKEN_BYTES = 16 * 1024
"""Longest token accepted; WLCG tokens are a few hundred bytes to 2 KB."""

MAX_SUBJECT = 256
"""Longest C{sub} accepted: it becomes the caller's name in every log line
and audit record (WLCG subjects are UUIDs, SciTokens ones user names)."""

MAX_TIME = 2**31 - 1
"""Latest C{exp}, C{nbf} or C{iat} accepted (2038-01-19): C{whoami} shows
C{exp}, and XML-RPC integers are 32-bit; earlier than 1970 is refused too."""

_PURPOSES = {
    "read": "list and read jobs",
    "act": "run site commands or send signals",
    "register": "register a job (a job daemon's calls)",
}

_TOP_KEYS = frozenset(
    ["audience", "leeway", "issuer", "max-lifetime", "fetch-ca", "fetch-timeout"]
)
_ISSUER_KEYS = frozenset(
    ["iss", "jwks", "jwks-url", "discover", "refresh", "users"]
) | frozenset(CAPABILITIES)

RETRY_FETCH = 60.0
"""Seconds between attempts to fetch an issuer's keys after a failure, or
after a token named a key the server does not have (a rotation)."""

MAX_DOCUMENT_BYTES = 1024 * 1024
"""Largest discovery or JWKS document fetched."""


class TokenConfigError(Exception):
    """
    The token configuration or a key file cannot be used; the message
    names the file (and the key).
    """


@frozen
class TokenInfo:
    """
    What a validated bearer token says about its bearer.

    @ivar issuer: the C{iss} claim.
    @ivar subject: the C{sub} claim.
    @ivar scopes: the token's scopes (C{scope}, or the C{scp} list).
    @ivar grants: the capabilities (L{CAPABILITIES}) those scopes grant.
    @ivar expires: the C{exp} claim, seconds since the epoch.
    @ivar groups: the groups of its C{wlcg.groups} claim, as
        L{jobmon.fqan.FQAN}s without roles (see L{jobmon.fqan.tokenGroups}).
    """

    issuer: str
    subject: str
    scopes: frozenset
    grants: frozenset
    expires: float
    needs: tuple = ()
    groups: tuple = ()

    def refusal(self, capability):
        """
        Why this token may not do C{capability}, in words for its bearer.
        """
        wanted = dict(self.needs).get(capability, ())
        return "your bearer token does not allow you to {}: that needs scope {} " \
            "(the token has {})".format(
                _PURPOSES[capability],
                " or ".join(wanted) or "(none configured)",
                " ".join(sorted(self.scopes)) or "no scopes",
            )

    def describe(self):
        """
        A dictionary for C{jobmon.whoami}.
        """
        described = {
            "issuer": self.issuer,
            "subject": self.subject,
            "scopes": sorted(self.scopes),
            "grants": [c for c in CAPABILITIES if c in self.grants],
            "expires": int(self.expires),
        }
        if self.groups:
            described["groups"] = [str(g) for g in self.groups]
        return described


@frozen
class Issuer:
    """
    One trusted token issuer.

    @ivar iss: its URL, as in the tokens' C{iss} claim.
    @ivar keys: key id (C{kid}, or C{None} for a key without one) to
        C{(key type, public key object)}.
    @ivar scopes: capability to the scopes that grant it.
    @ivar users: subject to the name the caller takes.
    """

    iss: str
    keys: dict
    scopes: dict
    users: dict
    source: str = "file"
    location: str = ""
    refresh: float = 3600.0
    unavailable: str = ""

    @property
    def fetched(self):
        """
        Whether the server fetches this issuer's keys (C{jwks-url},
        C{discover}) rather than reading a file.
        """
        return self.source != "file"

    def withKeys(self, keys, unavailable=""):
        """
        This issuer with fetched keys (or none, and why).
        """
        return Issuer(self.iss, keys, self.scopes, self.users, self.source, self.location,
                      self.refresh, unavailable)

    def key(self, kid):
        """
        The key that signed a token whose header names C{kid}.

        @raise JobMonError: no such key.
        """
        if not self.keys and self.unavailable:
            raise _refused(
                "the keys of its issuer {} could not be fetched ({}); the server tries "
                "again every {:.0f} s".format(self.iss, self.unavailable, RETRY_FETCH)
            )
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        found = self.keys.get(kid)
        if found is None:
            later = ""
            if self.fetched:
                later = "; the server fetches the issuer's keys again within {:.0f} s".format(
                    RETRY_FETCH)
            raise _refused(
                "it was signed with key {}, which is not among the keys of issuer {} "
                "this server has{}".format(shown(repr(kid), 80), self.iss, later),
            )
        return found

    @property
    def needs(self):
        """
        The scopes each capability needs, as L{TokenInfo.needs} keeps them.
        """
        return tuple((c, tuple(sorted(self.scopes[c]))) for c in CAPABILITIES)

    def grants(self, scopes):
        """
        The capabilities a token with C{scopes} has.
        """
        return frozenset(c for c, wanted in self.scopes.items() if wanted & scopes)


def _strings(path, key, value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TokenConfigError(
            "{}: {} must be a string or an array of strings".format(path, key)
        )
    return value


def loadJWKS(path):
    """
    Read a JWKS file: C{{"keys": [...]}}.

    @return: key id to C{(key type, public key)}.
    @raise TokenConfigError: unreadable, not JSON, no usable key, a private
        key, or two keys with one id.
    """
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as e:
        raise TokenConfigError(
            "cannot read the key file {}: {}".format(path, e.strerror or e)
        )
    except ValueError as e:
        raise TokenConfigError("the key file {} is not JSON: {}".format(path, e))
    return parseJWKS(data, "the key file " + path)


def parseJWKS(data, source):
    """
    The signing keys of a JWKS document.

    @param data: the parsed JSON.
    @param source: what it came from, for messages (C{"the key file F"}).
    @raise TokenConfigError: as L{loadJWKS}.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise TokenConfigError('{} is not a JWKS ({{"keys": [...]}})'.format(source))
    keys = {}
    for n, jwk in enumerate(data["keys"]):
        where = "{} key {}".format(source, n + 1)
        if not isinstance(jwk, dict):
            raise TokenConfigError("{}: not a JSON object".format(where))
        if jwk.get("use", "sig") != "sig":
            continue
        kty = jwk.get("kty")
        if not isinstance(kty, str) or kty not in _ALGORITHMS:
            raise TokenConfigError(
                "{}: key type {!r} is not supported (RSA, EC, OKP)".format(where, kty)
            )
        if "d" in jwk:
            raise TokenConfigError(
                "{}: holds a private key; give the issuer's public keys only".format(where)
            )
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as e:
            raise TokenConfigError("{}: not a usable key: {}".format(where, e))
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenConfigError("{}: its kid must be a string".format(where))
        if kid in keys:
            raise TokenConfigError("{}: key id {!r} appears twice".format(where, kid))
        keys[kid] = (kty, key)
    if not keys:
        raise TokenConfigError("{} holds no signing key".format(source))
    return keys


@frozen
class TokenConfig:
    """
    A parsed token configuration.

    @ivar issuers: C{iss} to L{Issuer}.
    @ivar audience: the audiences accepted.
    @ivar leeway: clock skew allowed, seconds.
    @ivar files: every file read, for noticing changes.
    @ivar maxLifetime: the longest token lifetime accepted (C{exp} minus
        C{iat} or C{nbf}), seconds; 0 for no limit.
    @ivar fetchCA: the CA file or directory trusted when fetching keys, or
        C{None} for the system's.
    @ivar fetchTimeout: seconds one fetch may take.
    """

    issuers: dict
    audience: frozenset
    leeway: float
    files: tuple
    maxLifetime: float = 0.0
    fetchCA: object = None
    fetchTimeout: float = 10.0


def loadTokenConfig(path):
    """
    Read a token configuration and the key files it names.

    @raise TokenConfigError: with a message naming the file and the key.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise TokenConfigError(
            "cannot read the token configuration {}: {}".format(path, e.strerror or e)
        )
    except tomllib.TOMLDecodeError as e:
        raise TokenConfigError("{}: not valid TOML: {}".format(path, e))
    for key in data:
        if key not in _TOP_KEYS:
            raise TokenConfigError(
                "{}: unknown key {!r} (known: {})".format(path, key, ", ".join(sorted(_TOP_KEYS)))
            )
    audience = _strings(path, "audience", data.get("audience", []))
    if not audience:
        raise TokenConfigError(
            "{}: audience is required: the audiences (this server's URL) a token "
            "must name".format(path)
        )
    leeway = _seconds(path, "leeway", data.get("leeway", 60), 0, 600)
    maxLifetime = _seconds(path, "max-lifetime", data.get("max-lifetime", 0), 0, 10 * 365 * 86400)
    fetchTimeout = _seconds(path, "fetch-timeout", data.get("fetch-timeout", 10), 1, 120)
    entries = data.get("issuer", [])
    if not isinstance(entries, list) or not entries:
        raise TokenConfigError(
            "{}: no [[issuer]]: name at least one trusted issuer".format(path)
        )
    base = os.path.dirname(os.path.abspath(path))
    fetchCA = data.get("fetch-ca")
    if fetchCA is not None:
        if not isinstance(fetchCA, str) or not fetchCA:
            raise TokenConfigError("{}: fetch-ca must be a path".format(path))
        fetchCA = os.path.join(base, fetchCA)
        if not os.path.exists(fetchCA):
            raise TokenConfigError("{}: fetch-ca {} does not exist".format(path, fetchCA))
    issuers, files = {}, [path]
    for n, entry in enumerate(entries):
        where = "{} [[issuer]] {}".format(path, n + 1)
        if not isinstance(entry, dict):
            raise TokenConfigError("{}: not a table".format(where))
        for key in entry:
            if key not in _ISSUER_KEYS:
                raise TokenConfigError(
                    "{}: unknown key {!r} (known: {})".format(
                        where, key, ", ".join(sorted(_ISSUER_KEYS))
                    )
                )
        iss = entry.get("iss")
        if not isinstance(iss, str) or not iss.startswith("https://") or "#" in iss:
            raise TokenConfigError(
                "{}: iss must be the issuer's https:// URL (no fragment), not {!r}".format(
                    where, iss
                )
            )
        if iss in issuers:
            raise TokenConfigError("{}: issuer {} appears twice".format(where, iss))
        sources = [k for k in ("jwks", "jwks-url", "discover") if entry.get(k)]
        if len(sources) != 1:
            raise TokenConfigError(
                "{}: give exactly one of jwks (the issuer's key file), jwks-url (where "
                "the server fetches them) or discover = true (from the issuer's "
                "/.well-known/openid-configuration)".format(where)
            )
        source = sources[0]
        location = entry[source]
        if source == "discover" and location is not True:
            raise TokenConfigError("{}: discover must be true or false".format(where))
        if source != "discover" and not isinstance(location, str):
            raise TokenConfigError("{}: {} must be a string".format(where, source))
        if source == "jwks-url" and not location.startswith("https://"):
            raise TokenConfigError("{}: jwks-url must be an https:// URL".format(where))
        refresh = _seconds(where, "refresh", entry.get("refresh", 3600), RETRY_FETCH, 7 * 86400)
        if source == "jwks":
            location = os.path.join(base, location)
            files.append(location)
            keys = loadJWKS(location)
        else:
            keys = {}
            if source == "discover":
                location = iss.rstrip("/") + "/.well-known/openid-configuration"
        scopes = {
            capability: frozenset(
                _strings(where, capability,
                         entry.get(capability, list(DEFAULT_SCOPES[capability])))
            )
            for capability in CAPABILITIES
        }
        users = entry.get("users", {})
        if not isinstance(users, dict) or not all(
            isinstance(v, str) and v for v in users.values()
        ):
            raise TokenConfigError("{}: users must map subjects to names (strings)".format(where))
        try:  # A DN as certificate callers have it, so that the two compare equal.
            users = {k: canonicalDN(v) if v.startswith("/") else v for k, v in users.items()}
        except ValueError as e:
            raise TokenConfigError("{}: users: a name starting with / is a DN: {}".format(where, e))
        issuers[iss] = Issuer(iss, keys, scopes, dict(users), "file" if source == "jwks"
                              else source, location, refresh)
    return TokenConfig(issuers, frozenset(audience), leeway, tuple(files), maxLifetime,
                       fetchCA, fetchTimeout)


def _seconds(where, key, value, least, most):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        least <= value <= most
    ):
        raise TokenConfigError(
            "{}: {} must be a number of seconds from {:g} to {:g}".format(where, key, least, most)
        )
    return float(value)


class _HTTPSOnly(urllib.request.HTTPRedirectHandler):
    """
    Follow redirects only to https: URLs.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.startswith("https://"):
            raise urllib.error.URLError("redirected to {}, not https".format(newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetchJSON(url, caPath=None, timeout=10.0):
    """
    GET a JSON document over HTTPS (blocking: the server calls it from a
    thread).

    @param caPath: a CA file or hashed directory to trust, or C{None} for
        the system's.
    @raise TokenConfigError: any failure, in one line.
    """
    if caPath is None:
        context = ssl.create_default_context()
    elif os.path.isdir(caPath):
        context = ssl.create_default_context(capath=caPath)
    else:
        context = ssl.create_default_context(cafile=caPath)
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _HTTPSOnly()
    )
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "jobmon-server"}
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise TokenConfigError("GET {}: HTTP {} {}".format(url, e.code, e.reason))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise TokenConfigError("GET {}: {}".format(url, reason))
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TokenConfigError("GET {}: larger than {} bytes".format(url, MAX_DOCUMENT_BYTES))
    try:
        return json.loads(data)
    except ValueError as e:
        raise TokenConfigError("GET {}: not JSON ({})".format(url, e))


def fetchKeys(issuer, config, fetch=fetchJSON):
    """
    Fetch the signing keys of an issuer whose keys are not in a file: from
    its C{jwks-url}, or from the C{jwks_uri} of its discovery document.

    @raise TokenConfigError: the fetch failed or the document is not usable.
    """
    url = issuer.location
    if issuer.source == "discover":
        document = fetch(url, config.fetchCA, config.fetchTimeout)
        if not isinstance(document, dict):
            raise TokenConfigError("{} is not a discovery document".format(url))
        if document.get("issuer") != issuer.iss:
            raise TokenConfigError(
                "{} names issuer {!r}, not {}".format(url, document.get("issuer"), issuer.iss)
            )
        url = document.get("jwks_uri")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise TokenConfigError("{} gives no https:// jwks_uri".format(issuer.location))
    return parseJWKS(fetch(url, config.fetchCA, config.fetchTimeout), url)


def _fileStamp(paths):
    """
    What the files hold now: a digest of each one's content.  (Times and
    sizes are not enough: a rotated EC key has the size of the old one, and
    a rewrite within one timestamp tick keeps the time.)  The files are a
    few kilobytes, read in a thread.
    """
    stamp = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                stamp.append((path, hashlib.sha256(f.read(1024 * 1024)).hexdigest()))
        except OSError:
            stamp.append((path, None))
    return tuple(stamp)


@frozen
class _Fetched:
    """
    What the server has of an issuer's fetched keys.

    @ivar keys: the keys of the last successful fetch (empty: none yet).
    @ivar fetchedAt: when that was, or C{None}.
    @ivar attemptedAt: when the last attempt was, or C{None}.
    @ivar error: why the last attempt failed, or C{""}.
    """

    keys: dict
    fetchedAt: object = None
    attemptedAt: object = None
    error: str = ""


class TokenPolicy:
    """
    The server's trusted token issuers, and the check of a token against
    them.

    Issuers whose keys are fetched (C{jwks-url}, C{discover}) are fetched
    when the policy is loaded, then again every C{refresh} seconds, and
    sooner (at most every L{RETRY_FETCH} seconds) after a failure or after
    a token named a key the server does not have; a failed fetch keeps the
    keys of the last good one.  All fetches happen in L{prepareReload},
    which the server runs in a thread.

    @ivar path: the token configuration file.
    @ivar now: the current time in seconds since the epoch (a function).
    @ivar fetch: how a document is fetched (L{fetchJSON}).
    """

    log = Logger()

    def __init__(self, path, now=time.time, cacheSize=4096, fetch=fetchJSON):
        self.path = path
        self.now = now
        self.cacheSize = cacheSize
        self.fetch = fetch
        self.config = None
        self.issuers = {}
        self._stamp = None
        self._fetched = {}
        self._wanted = set()
        self._cache = OrderedDict()

    # -- loading, and reloading through the server's CredentialReloader --

    def load(self):
        """
        Read the configuration and key files, and fetch the keys of issuers
        that are fetched, now.  An issuer whose keys cannot be fetched is
        logged, not fatal: its tokens are refused, saying why, until a
        later fetch works.

        @raise TokenConfigError: as L{loadTokenConfig}.
        """
        self.install(self.prepareReload())

    def prepareReload(self):
        """
        Re-read the files if any changed, and fetch the keys that are due
        (blocking: run it in a thread).

        @return: what L{install} takes, or C{None} if nothing changed.
        @raise TokenConfigError: a changed file cannot be used.
        """
        now = self.now()
        config = self.config
        stamp = self._stamp
        changed = config is None or _fileStamp(config.files) != stamp
        if changed:
            config = loadTokenConfig(self.path)
            stamp = _fileStamp(config.files)
        fetched, notes = {}, []
        for iss, issuer in config.issuers.items():
            if not issuer.fetched:
                continue
            old = self.config.issuers.get(iss) if self.config is not None else None
            state = self._fetched.get(iss)
            if state is None or old is None or old.location != issuer.location:
                state = _Fetched({})
            if self._due(issuer, state, now):
                try:
                    keys = fetchKeys(issuer, config, self.fetch)
                except TokenConfigError as e:
                    state = _Fetched(state.keys, state.fetchedAt, now, str(e))
                    notes.append((iss, str(e)))
                else:
                    state = _Fetched(keys, now, now, "")
                    notes.append((iss, ""))
                changed = True
            fetched[iss] = state
        if not changed:
            return None
        return config, stamp, fetched, notes

    def _due(self, issuer, state, now):
        if state.attemptedAt is None:
            return True
        if state.error or issuer.iss in self._wanted:
            return now - state.attemptedAt >= RETRY_FETCH
        return now - state.fetchedAt >= issuer.refresh

    def install(self, prepared):
        """
        Use a configuration read by L{prepareReload}.
        """
        config, self._stamp, self._fetched, notes = prepared
        self.config = config
        issuers = {}
        for iss, issuer in config.issuers.items():
            state = self._fetched.get(iss)
            if state is not None:
                issuer = issuer.withKeys(state.keys, state.error)
            issuers[iss] = issuer
        self.issuers = issuers
        for iss, error in notes:
            self._wanted.discard(iss)
            if error:
                self.log.error("cannot fetch the keys of token issuer {iss}{kept}: {why}",
                               iss=iss, why=error,
                               kept=" (keeping the previous ones)" if issuers[iss].keys else "")
            else:
                self.log.info("fetched {count} key(s) of token issuer {iss}", iss=iss,
                              count=len(issuers[iss].keys))
        self._cache.clear()

    kind = "token issuers"

    def describe(self):
        """
        One line about what was loaded, for the log.
        """
        return "{} token issuer(s) from {}".format(len(self.issuers), self.path)

    # -- checking a token ------------------------------------------------

    def check(self, token):
        """
        Validate a bearer token.

        @param token: the token, as sent after C{Bearer}.
        @return: its L{TokenInfo}, and the name the caller takes.
        @raise JobMonError: L{NOT_AUTHENTICATED}, with a message saying what
            is wrong with the token.
        """
        now = self.now()
        cached = self._cache.get(token)
        if cached is not None:
            info, name = cached
            if now < info.expires + self.config.leeway:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        result = self._check(token, now)
        self._cache[token] = result
        if len(self._cache) > self.cacheSize:
            self._cache.popitem(last=False)
        return result

    def _check(self, token, now):
        config = self.config
        if len(token) > MAX_TOKEN_BYTES:
            raise _refused("it is {} bytes long, more than the {} accepted".format(
                len(token), MAX_TOKEN_BYTES))
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as e:
            raise _refused("it is not a JSON Web Token ({})".format(shown(str(e))))
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise _refused("it names no issuer (iss)")
        issuer = self.issuers.get(iss)
        if issuer is None:
            # Unverified: shown escaped and cut; and a stranger does not
            # learn which issuers are trusted.
            raise _refused("its issuer {} is not trusted by this server".format(shown(iss)))
        kid = header.get("kid")
        if issuer.fetched and kid not in issuer.keys:
            # Perhaps the issuer rotated its keys: fetch them again soon.
            self._wanted.add(iss)
        kty, key = issuer.key(kid)
        alg = header.get("alg")
        if alg not in _ALGORITHMS[kty]:
            raise _refused(
                "its algorithm {} does not fit the issuer's {} key (accepted: {})".format(
                    shown(repr(alg), 40), kty, ", ".join(_ALGORITHMS[kty])
                )
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=iss,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": False,
                    # PyJWT would use its own clock; the times are checked
                    # below against self.now, as the cache is.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _refused("its signature does not verify with issuer {}'s key".format(iss))
        except jwt.MissingRequiredClaimError as e:
            raise _refused("it lacks the {} claim".format(e.claim))
        except jwt.InvalidTokenError as e:
            raise _refused(shown(str(e)) or e.__class__.__name__)
        times = {}
        for claim in ("exp", "nbf", "iat"):
            value = claims.get(claim)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value)
            ):
                raise _refused("its {} claim is not a number of seconds".format(claim))
            if not 0 <= value <= MAX_TIME:
                raise _refused("its {} claim is out of range ({:.6g}; accepted: 0 to {}, "
                               "2038-01-19)".format(claim, value, MAX_TIME))
            times[claim] = value
        expires = times["exp"]
        if now >= expires + config.leeway:
            raise _refused(
                "it expired at {} ({} ago); get a new token".format(
                    utc(expires), ago(now - expires)
                )
            )
        start = max(times.get("nbf", -math.inf), times.get("iat", -math.inf))
        if start > now + config.leeway:
            raise _refused("it is not valid before {}; check the clocks".format(utc(start)))
        if config.maxLifetime:
            if start == -math.inf:
                raise _refused(
                    "it has neither iat nor nbf, so its lifetime cannot be checked "
                    "against the {} this server accepts".format(duration(config.maxLifetime))
                )
            if expires - start > config.maxLifetime:
                raise _refused(
                    "it lives {}, longer than the {} this server accepts".format(
                        duration(expires - start), duration(config.maxLifetime)
                    )
                )
        audience = claims.get("aud")
        if audience is None:
            raise _refused(
                "it names no audience (aud); this server accepts {}".format(
                    ", ".join(sorted(config.audience))
                )
            )
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not config.audience.intersection(
            a for a in audiences if isinstance(a, str)
        ):
            raise _refused(
                "its audience {} is not this server's (accepted: {})".format(
                    shown(audience), ", ".join(sorted(config.audience))
                )
            )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise _refused("its subject (sub) is empty")
        if not sub.isprintable():
            raise _refused("its subject (sub) holds control characters: {}".format(shown(sub)))
        if len(sub) > MAX_SUBJECT:
            raise _refused("its subject (sub) is longer than {} characters".format(MAX_SUBJECT))
        scopes = _scopesOf(claims)
        info = TokenInfo(
            issuer=iss,
            subject=sub,
            scopes=scopes,
            grants=issuer.grants(scopes),
            expires=float(expires),
            needs=issuer.needs,
            groups=tokenGroups(claims.get("wlcg.groups")),
        )
        name = issuer.users.get(sub) or "{}#{}".format(iss, sub)
        return info, name


def _scopesOf(claims):
    """
    The scopes of a token: WLCG and SciTokens put them in C{scope}, a
    space-separated string; some issuers use C{scp}, a list.
    """
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


def _refused(why):
    # Escaped once more as a whole: no caller's text starts a new line.
    return JobMonError(NOT_AUTHENTICATED, "bearer token refused: " + escaped(why))


def splitAuthorization(header):
    """
    The token of an C{Authorization} header value.

    @raise JobMonError: another scheme, or no token.
    """
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise JobMonError(
            NOT_AUTHENTICATED,
            "Authorization scheme {!r} is not supported; send Bearer <token> or use "
            "an X.509 certificate".format(scheme[:20]),
        )
    token = token.strip()
    if not token:
        raise JobMonError(NOT_AUTHENTICATED, "Authorization: Bearer carries no token")
    return token

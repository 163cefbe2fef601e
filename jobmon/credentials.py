"""
Finding the caller's credential with the standard library only: the
client, the CLI, the job daemon and C{jobmon-run} share it.

A certificate: L{defaultProxyPath}.  Or a bearer token (L{resolveAuth}
chooses between them), found as the WLCG Bearer Token Discovery
convention says.

In order, the first that is set or exists wins:

  1. C{$BEARER_TOKEN}: the token itself;
  2. C{$BEARER_TOKEN_FILE}: a file holding it (an error if it cannot be
     read: the user asked for that file);
  3. C{$XDG_RUNTIME_DIR/bt_u<uid>};
  4. C{/tmp/bt_u<uid>}.

Leading and trailing white space is not part of the token.  A token is
read again for every request, so a renewed file (C{oidc-agent},
C{htgettoken}, HTCondor's credential directory) is used at once.
"""

import errno
import os
import stat

_TOKEN_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
)


CLIENT_LEEWAY = 60
"""Seconds past a token's C{exp} before a client refuses to send it: the
server allows as much clock skew by default, and is the judge."""


class TokenNotFound(Exception):
    """
    A token source that was asked for cannot be used; the message says
    which and why.
    """


def discoveryPaths(environ=None, uid=None):
    """
    The files discovery looks at, in order, after the environment.
    """
    environ = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    paths = []
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(os.path.join(runtime, "bt_u%d" % (uid,)))
    paths.append("/tmp/bt_u%d" % (uid,))
    return paths


def _clean(token, source):
    token = token.strip()
    if not token:
        raise TokenNotFound("the bearer token in %s is empty" % (source,))
    if not set(token) <= _TOKEN_CHARS:
        raise TokenNotFound(
            "%s does not hold a bearer token (unexpected characters)" % (source,)
        )
    return token


def readTokenFile(path, source=None):
    """
    Read a token file.

    @raise TokenNotFound: it cannot be read or holds no token.
    """
    source = source or path
    try:
        with open(path, "rb") as f:
            data = f.read(64 * 1024)
    except OSError as e:
        raise TokenNotFound(
            "cannot read the bearer token %s: %s" % (source, (e.strerror or str(e)).lower())
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TokenNotFound("%s does not hold a bearer token (not ASCII)" % (source,))
    return _clean(text, source)


def discoverToken(environ=None, uid=None):
    """
    Find the caller's token.

    @return: C{(token, source)}, the source in words for messages (C{"$BEARER_TOKEN"},
        C{"$BEARER_TOKEN_FILE (/path)"}, or the path), or C{None} if there
        is none.
    @raise TokenNotFound: C{$BEARER_TOKEN} or C{$BEARER_TOKEN_FILE} is set
        but unusable.
    """
    environ = os.environ if environ is None else environ
    value = environ.get("BEARER_TOKEN")
    if value is not None and value.strip():
        return _clean(value, "$BEARER_TOKEN"), "$BEARER_TOKEN"
    path = environ.get("BEARER_TOKEN_FILE")
    if path:
        source = "$BEARER_TOKEN_FILE (%s)" % (path,)
        return readTokenFile(path, source), source
    for path in discoveryPaths(environ, uid):
        if os.path.exists(path):
            return readTokenFile(path), path
    return None


def tokenSource(tokenFile=None, environ=None, uid=None):
    """
    A callable returning C{(token, source)} afresh on each call: from
    C{tokenFile} if given, else by discovery.

    @raise TokenNotFound: (from the callable) no token, or an unusable one.
    """

    def current():
        if tokenFile is not None:
            return readTokenFile(tokenFile), tokenFile
        found = discoverToken(environ, uid)
        if found is None:
            raise TokenNotFound(
                "no bearer token: set BEARER_TOKEN or BEARER_TOKEN_FILE, or put it in %s"
                % (" or ".join(discoveryPaths(environ, uid)),)
            )
        return found

    return current


def unverifiedClaims(token):
    """
    The claims of a JWT, read without checking its signature: for the
    client's own messages (its expiry), never for a decision that matters.

    @return: a dictionary, empty if the token cannot be read.
    """
    # Imported here: jobmon-query's start-up does without them.
    import base64
    import json

    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (IndexError, ValueError, UnicodeError, RecursionError):
        # RecursionError: a payload nested deeper than json can read.
        return {}
    return claims if isinstance(claims, dict) else {}


def expiredAt(token, now):
    """
    When a token expired, if that was more than L{CLIENT_LEEWAY} seconds
    before C{now}: its C{exp} claim, read with L{unverifiedClaims}.  A
    token without a numeric C{exp} is never expired here: the server
    judges it.

    @return: the C{exp} claim, or C{None} if the token may be sent.
    """
    expires = unverifiedClaims(token).get("exp")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        return None
    return expires if now > expires + CLIENT_LEEWAY else None


AUTH_MODES = ("auto", "x509", "token")
"""How a client, a daemon or C{jobmon-run} authenticates: C{auth}."""


def defaultProxyPath(environ=None, uid=None):
    """
    Return the credential file to use when none is given:
    C{$X509_USER_PROXY}, else C{/tmp/x509up_u<uid>}.

    @param environ: the environment (default C{os.environ}).
    @param uid: the user id (default C{os.getuid()}).
    """
    if environ is None:
        environ = os.environ
    path = environ.get("X509_USER_PROXY")
    if path:
        return path
    return "/tmp/x509up_u%d" % (os.getuid() if uid is None else uid,)


def resolveAuth(auth, proxy=None, key=None, token=None, tokenFile=None, environ=None,
                uid=None):
    """
    Decide between a certificate and a bearer token.

    C{"auto"} takes, in order: the credential named explicitly (C{proxy} or
    C{key}: X.509; C{token} or C{tokenFile}: a token); a token named by
    C{$BEARER_TOKEN} or C{$BEARER_TOKEN_FILE}; the X.509 proxy if
    C{$X509_USER_PROXY} is set or C{/tmp/x509up_u$UID} exists; a token file
    found by discovery (C{$XDG_RUNTIME_DIR/bt_u$UID}, C{/tmp/bt_u$UID});
    else X.509 (whose missing file is then reported).  So a user with a
    proxy keeps using it until she asks for a token or has only a token.

    @param uid: the user id in the default file names (default
        C{os.getuid()}).
    @return: C{"x509"} or C{"token"}.
    @raise ValueError: an unknown C{auth}.
    """
    environ = os.environ if environ is None else environ
    if auth not in AUTH_MODES:
        raise ValueError("auth must be one of %s, not %r" % (", ".join(AUTH_MODES), auth))
    if auth != "auto":
        return auth
    if proxy or key:
        return "x509"
    if token is not None or tokenFile is not None:
        return "token"
    if (environ.get("BEARER_TOKEN") or "").strip() or environ.get("BEARER_TOKEN_FILE"):
        return "token"
    if environ.get("X509_USER_PROXY") or os.path.exists(defaultProxyPath(environ, uid)):
        return "x509"
    if any(os.path.exists(p) for p in discoveryPaths(environ, uid)):
        return "token"
    return "x509"


def whyUnreadable(path, error):
    """
    Why a file cannot be read, in words, from the C{OSError} of the attempt:
    its C{strerror} in lower case and, for a refused permission, the file's
    owner and mode beside this process's user, which is usually the
    mistake (a host key left to root, a proxy made by another account).

    For example C{"permission denied (owner root, mode 0600; this process
    runs as uid 998 (jobmon))"}.
    """
    why = (error.strerror or str(error)).lower()
    if getattr(error, "errno", None) not in (errno.EACCES, errno.EPERM):
        return why
    try:
        st = os.stat(path)
    except OSError:
        return why + " (on a directory above it: check their modes too)"
    return "{} (owner {}, mode {:04o}; this process runs as uid {}{})".format(
        why, _userName(st.st_uid), stat.S_IMODE(st.st_mode), os.geteuid(),
        _nameSuffix(os.geteuid()),
    )


def _userName(uid):
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "uid {}".format(uid)


def _nameSuffix(uid):
    name = _userName(uid)
    return "" if name.startswith("uid ") else " ({})".format(name)


_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def isEncryptedKey(pem):
    """
    Tell whether PEM text holds an encrypted private key (PKCS#8
    C{ENCRYPTED PRIVATE KEY}, or a traditional key with C{Proc-Type:
    4,ENCRYPTED}).
    """
    return any(marker in pem for marker in _ENCRYPTED_MARKERS)


def encryptedKeyMessage(path, how):
    """
    The message for an encrypted key no pass phrase was given for:
    C{"PATH is encrypted; give a pass phrase HOW"}.
    """
    return "{} is encrypted; give a pass phrase {}".format(path, how)


def wrongPassPhraseMessage(path):
    """
    The message for an encrypted key whose pass phrase did not open it.
    """
    return "wrong pass phrase for {}".format(path)

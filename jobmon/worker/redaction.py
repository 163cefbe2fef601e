"""
Redaction of the environment the C{env} operation shows: values of names
that look secret are hidden, and so are the secrets inside other values (a
URL's password, C{password=...}); the paths of credentials are shown.
"""

import re

DEFAULT_REDACT = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "KEY",
    "PROXY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "PRIVATE",
    "CERT",
    "SESSION",
    "JWT",
    "NETRC",
    "WEBHOOK",
    "BEARER",
)
"""Environment variables whose names contain one of these (in any case) have
their values hidden by C{env}, except L{isPathVariable}s."""

DEFAULT_REDACT_WORDS = (
    "PWD",
    "PAT",
    "PIN",
    "DSN",
    "OTP",
    "PSK",
    "SAS",
    "SIG",
)
"""Environment variables with one of these as a whole word of their names
(words are runs of ASCII letters: C{MYSQL_PWD}, C{GH_PAT}, C{SIM_PIN2},
C{SENTRY_DSN}) have their values hidden too.  As substrings they would hide
C{PATH}, C{SPINNER} or C{SIGNAL}."""

PATH_VARIABLES = frozenset({
    "X509_CERT_DIR",
    "X509_USER_PROXY",
    "X509_USER_CERT",
    "X509_USER_KEY",
    "X509_VOMS_DIR",
    "X509_VOMSES",
    "SSL_CERT_DIR",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "BEARER_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "PWD",
    "OLDPWD",
})
"""Variables whose values are, by convention, the paths of credentials or
trust anchors (or, for C{PWD} and C{OLDPWD}, of directories): their names
contain CERT, PROXY, KEY, TOKEN or PWD, but a path says where a secret is,
not what it is, and users need to see it."""

PATH_SUFFIXES = ("_DIR", "_FILE", "_PATH", "_CREDENTIALS")
"""Other names that end so, and whose values are absolute paths, are paths
too (C{MYAPP_KEY_FILE=/etc/myapp/key.pem}, C{MYAPP_CREDENTIALS=/etc/a.json})."""

REDACTED = "<redacted>"
"""The value C{env} shows in place of a hidden one."""

_PATTERN = re.compile(r"[A-Za-z0-9_]+\Z")

# Only ASCII letters change case: patterns are ASCII, and full Unicode case
# mapping would let, say, a dotless i in a name match the pattern "I".
_ASCII_UPPER = str.maketrans(
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

_NOT_LETTERS = re.compile(r"[^A-Z]+")

# The password of a URL's user information: "scheme://user:" then everything
# up to the last "@" before white space.  A password may hold "/" or "@"
# (unencoded); taking too much (a path with "@" after a port) only hides
# more.
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)(?P<secret>\S*)@"
)

# "key=value" inside a value: a libpq DSN ("host=db password=x"), a URL query
# ("?access_token=x&a=b"), a connection string ("AccountKey=x;"), a Java
# option ("-Dapp.password=x").  The value is hidden when the key looks secret.
_KEY_VALUE = re.compile(
    r"(?P<key>[A-Za-z0-9_.\-]+)(?P<sep>=|:[ \t]+)"
    # An HTTP authorization scheme is followed by the secret.
    r"(?P<value>(?:(?i:bearer|basic|digest|negotiate|token)[ \t]+)?[^\s&;,'\"]*)"
)

# The same in JSON: "password": "x".
_JSON_KEY_VALUE = re.compile(
    r'"(?P<key>[A-Za-z0-9_.\-]{1,100})"(?P<sep>\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)"'
)


def _asciiUpper(text):
    """
    Upper-case the ASCII letters of C{text}, and only those.
    """
    return text.translate(_ASCII_UPPER)


def isPathVariable(name, value):
    """
    Tell whether C{name=value} gives the path of a credential rather than a
    secret: C{name} is one of L{PATH_VARIABLES} (ASCII case ignored) and
    C{value} does not hold a PEM block or several lines; or C{name} ends
    with one of L{PATH_SUFFIXES} and C{value} is an absolute path, or
    several separated by colons, without white space.
    """
    if not isinstance(value, str) or not value:
        return False
    upper = _asciiUpper(name)
    if upper in PATH_VARIABLES:
        return "\n" not in value and "-----BEGIN" not in value
    if not upper.endswith(PATH_SUFFIXES):
        return False
    return all(
        part.startswith("/") and not any(ch.isspace() for ch in part)
        for part in value.split(":")
    )


def _looksSecret(upper, patterns, words):
    """
    Tell whether the upper-cased name C{upper} contains one of C{patterns}
    or has one of C{words} as a word.
    """
    if any(pattern in upper for pattern in patterns):
        return True
    if words:
        return any(word in words for word in _NOT_LETTERS.split(upper))
    return False


def scrubValue(value, patterns=DEFAULT_REDACT, words=DEFAULT_REDACT_WORDS):
    """
    Hide the secrets inside a value whose name does not look secret: the
    password of a URL (C{postgres://app:<redacted>@db/app}), and the value of
    each C{key=value} whose key looks secret (C{password=<redacted>}).

    @return: C{value} with those parts replaced by L{REDACTED}.
    """
    if not isinstance(value, str):
        return value
    patterns = [_asciiUpper(pattern) for pattern in patterns]
    words = frozenset(_asciiUpper(word) for word in words)
    value = _URL_PASSWORD.sub(
        lambda match: match.group("head") + REDACTED + "@", value
    )

    def secret(match):
        found = match.group("value")
        return (
            bool(found) and found != REDACTED
            and _looksSecret(_asciiUpper(match.group("key")), patterns, words)
        )

    def jsonValue(match):
        if not secret(match):
            return match.group(0)
        return '"%s"%s"%s"' % (match.group("key"), match.group("sep"), REDACTED)

    def keyValue(match):
        if not secret(match):
            return match.group(0)
        return match.group("key") + match.group("sep") + REDACTED

    value = _JSON_KEY_VALUE.sub(jsonValue, value)
    return _KEY_VALUE.sub(keyValue, value)


def redact(env, patterns, always=(), words=()):
    """
    Hide the values of the variables of C{env} whose names look secret, and
    the secrets inside the other values (L{scrubValue}).

    A name looks secret when it contains one of C{always}, or, unless its
    value is a path (L{isPathVariable}), one of C{patterns} as a substring
    or one of C{words} as a word (a run of ASCII letters), ignoring the case
    of ASCII letters.

    @param env: a mapping of variable names to values; it is not changed.
    @param patterns: strings of ASCII letters, digits and underscores (see
        L{checkRedactPatterns}): L{DEFAULT_REDACT}.
    @param always: more such strings, whose names are hidden even when
        their values are paths (the daemon's C{--redact}: the site asked).
    @param words: strings of ASCII letters: L{DEFAULT_REDACT_WORDS}.  When
        C{patterns} and C{words} are empty, other values are not scrubbed.
    @return: C{(variables, names)}: a new dict, with L{REDACTED} as the value
        of each secret-looking name (or in place of the secrets inside a
        value), and the sorted list of the names whose values changed.
    """
    wanted = [_asciiUpper(pattern) for pattern in patterns]
    forced = [_asciiUpper(pattern) for pattern in always]
    wordSet = frozenset(_asciiUpper(word) for word in words)
    variables = {}
    names = []
    for name, value in env.items():
        upper = _asciiUpper(name)
        if any(pattern in upper for pattern in forced) or (
            _looksSecret(upper, wanted, wordSet) and not isPathVariable(name, value)
        ):
            variables[name] = REDACTED
            names.append(name)
            continue
        if wanted or wordSet:
            scrubbed = scrubValue(value, wanted, wordSet)
            if scrubbed != value:
                names.append(name)
            variables[name] = scrubbed
        else:
            variables[name] = value
    names.sort()
    return variables, names


def checkRedactPatterns(patterns):
    """
    Check extra redaction patterns (the daemon's C{--redact}).

    @param patterns: an iterable of non-empty strings of ASCII letters,
        digits and underscores.
    @return: them, as a tuple.
    @raise ValueError: if one is not such a string.
    """
    checked = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN.match(pattern):
            raise ValueError(
                "invalid redaction pattern %r: use letters, digits and "
                "underscores, such as TOKEN" % (pattern,)
            )
        checked.append(pattern)
    return tuple(checked)


def parseRedactPatterns(text):
    """
    Parse the daemon's C{--redact} option: patterns separated by commas or
    white space, such as C{"MYAPP_PIN,LICENSE"}.

    @return: a tuple of patterns.
    @raise ValueError: if a pattern is not made of letters, digits and
        underscores.
    """
    return checkRedactPatterns(part for part in re.split(r"[,\s]+", text) if part)

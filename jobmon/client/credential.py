"""
What the client authenticates with: a certificate (L{_Credential}) or a
bearer token (L{_TokenCredential}), chosen by L{chooseCredential}.

Each gives the SSL context of a new connection (trusting the CA directory,
see L{_trustingContext}) and the C{Authorization} header of each request,
and checks the credential first, so that a missing or expired one is
reported by the client rather than refused by the server.

Like the rest of L{jobmon.client}, this imports only the standard library
and L{jobmon.errors}, L{jobmon.credentials} and L{jobmon.options}.
"""

import os
import time
from _ssl import _test_decode_cert

from jobmon import credentials
from jobmon.client import tls
from jobmon.client.errors import (
    BAD_ARGUMENT,
    BAD_CREDENTIAL,
    CREDENTIAL_EXPIRED,
    NO_CA_DIR,
    NO_CREDENTIAL,
    ClientError,
    _sslReason,
)
from jobmon.credentials import (
    TokenNotFound,
    defaultProxyPath,
    expiredAt,
    tokenSource,
    unverifiedClaims,
)
from jobmon.options import defaultCADir
from jobmon.times import utc

_REFUSED_MESSAGE = (
    "the server refused your certificate (expired, unknown CA, revoked or "
    "unsupported proxy type)"
)

_TOKEN_REFUSED_MESSAGE = (
    "the server closed the connection at the TLS handshake: it wants a client "
    "certificate and does not accept bearer tokens; use --auth x509"
)


def certificateDates(path):
    """
    Return C{(notBefore, notAfter)} of the first certificate in the PEM file
    C{path}, in seconds since the epoch, or C{(None, None)} if they cannot be
    read.

    This uses C{_ssl._test_decode_cert}, private but part of the
    standard library, to avoid depending on C{cryptography}; any failure just
    skips the check.
    """
    try:
        info = _test_decode_cert(path)
        return (
            certTimeToSeconds(info["notBefore"]),
            certTimeToSeconds(info["notAfter"]),
        )
    except Exception:
        return None, None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _daysFromCivil(year, month, day):
    """
    Days from 1970-01-01 to the given date of the proleptic Gregorian
    calendar (a day beyond the month's last runs into the next month, as
    with C{calendar.timegm}).
    """
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + day - 1


def certTimeToSeconds(text):
    """
    C{ssl.cert_time_to_seconds(text)}: a certificate time as the C{ssl}
    module gives it (C{"May  9 12:00:00 2031 GMT"}) in seconds since the
    epoch.  The usual form is read here; any other is left to the C{ssl}
    module, whose C{time.strptime} imports C{_strptime}, C{calendar} and
    C{locale} (start-up time).

    @raise ValueError: as C{ssl.cert_time_to_seconds}.
    """
    fields = text[3:].split(" ")
    fields = [f for f in fields if f]
    month = text[:3].title()
    if (month in _MONTHS and text[3:4] == " " and len(fields) == 4
            and fields[3] == "GMT" and text.isascii()):
        day, clock, year = fields[0], fields[1].split(":"), fields[2]
        if (len(day) <= 2 and day.isdigit() and len(year) == 4 and year.isdigit()
                and len(clock) == 3 and all(len(f) == 2 and f.isdigit() for f in clock)):
            day, year = int(day), int(year)
            hour, minute, second = (int(f) for f in clock)
            if (1 <= day <= 31 and year >= 1 and hour <= 23 and minute <= 59
                    and second <= 61):
                days = _daysFromCivil(year, _MONTHS.index(month) + 1, day)
                return days * 86400 + hour * 3600 + minute * 60 + second
    import ssl

    return ssl.cert_time_to_seconds(text)


def _trustingContext(caDir):
    """
    An SSL context that verifies the server against C{caDir} (a hashed
    directory or one PEM bundle) and presents no certificate.
    """
    if not os.path.exists(caDir):
        raise ClientError(
            NO_CA_DIR,
            "the CA directory %s does not exist; set X509_CERT_DIR" % (caDir,),
        )
    context = tls.newContext()
    context.check_hostname = True
    context.verify_mode = tls.CERT_REQUIRED
    try:
        if os.path.isdir(caDir):
            context.load_verify_locations(capath=caDir)
        else:
            # A single PEM bundle works too.
            context.load_verify_locations(cafile=caDir)
    except (OSError, ValueError) as e:
        raise ClientError(NO_CA_DIR, "cannot load CA certificates from %s: %s" % (caDir, e))
    return context


class _TokenCredential:
    """
    A bearer token, read afresh for every request, over a TLS connection
    that shows no certificate.

    @ivar source: callable returning C{(token, where)}; see
        L{jobmon.credentials.tokenSource}.
    """

    refusedMessage = _TOKEN_REFUSED_MESSAGE

    def __init__(self, source, caDir):
        self.source = source
        self.caDir = caDir
        self._context = None

    def context(self, now=None):
        """
        The SSL context for a new connection (the token is checked too, so
        that a missing or expired one is reported before connecting).
        """
        self.authorization(now)
        if self._context is None:
            self._context = _trustingContext(self.caDir)
        return self._context

    def authorization(self, now=None):
        """
        The C{Authorization} header value for the next request.

        @raise ClientError: L{NO_CREDENTIAL} (no token, unreadable) or
            L{CREDENTIAL_EXPIRED}.
        """
        try:
            token, where = self.source()
        except TokenNotFound as e:
            raise ClientError(NO_CREDENTIAL, str(e))
        expires = expiredAt(token, time.time() if now is None else now)
        if expires is not None:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your bearer token from %s expired at %s; get a new one "
                "(oidc-token, htgettoken)" % (where, utc(expires)),
            )
        return "Bearer " + token

    def describe(self):
        """
        Describe the token as read here: C{{"type": "token", "source":
        WHERE, "expires": EXP}}, C{expires} being its C{exp} claim (not
        verified), or L{None} without one.
        """
        try:
            token, where = self.source()
        except TokenNotFound:
            return {"type": "token", "source": None, "expires": None}
        expires = unverifiedClaims(token).get("exp")
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            expires = None
        return {"type": "token", "source": where, "expires": expires}


def resolveAuth(auth, proxy=None, key=None, token=None, tokenFile=None, environ=None,
                uid=None):
    """
    L{jobmon.credentials.resolveAuth}, with an unknown C{auth} reported as
    a L{ClientError} (L{BAD_ARGUMENT}).
    """
    try:
        return credentials.resolveAuth(auth, proxy, key, token, tokenFile, environ, uid)
    except ValueError as e:
        raise ClientError(BAD_ARGUMENT, str(e))


def chooseCredential(auth, proxy, key, caDir, token=None, tokenFile=None, environ=None):
    """
    Make the credential a client authenticates with (see L{resolveAuth}).

    @param token: a token string, used as given.
    @param tokenFile: a file holding the token, read for every request.
    """
    auth = resolveAuth(auth, proxy, key, token, tokenFile, environ)
    caDir = caDir if caDir else defaultCADir(environ)
    if token is not None:
        where = "the token argument"
        source = lambda: (token, where)  # noqa: E731
    else:
        source = tokenSource(tokenFile, environ)
    if auth == "token":
        return _TokenCredential(source, caDir)
    return _Credential(proxy if proxy else defaultProxyPath(environ), key, caDir)


PASS_PHRASE_HOW = (
    "at a terminal (jobmon-query asks for it there), or use a proxy instead "
    "(voms-proxy-init or grid-proxy-init)"
)
"""How a user gives an encrypted key's pass phrase, for the message."""


def _encrypted(path):
    """
    Whether the PEM file C{path} holds an encrypted key (C{False} if it
    cannot be read: that is reported otherwise).
    """
    try:
        with open(path, "rb") as f:
            return credentials.isEncryptedKey(f.read(1024 * 1024))
    except OSError:
        return False


def _terminal():
    """
    Whether this process has a terminal to ask on.
    """
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def askPassPhrase(path, terminal=None, ask=None):
    """
    The pass phrase of the encrypted key in C{path}, asked for on the
    terminal.

    @param terminal: whether there is a terminal [default: L{_terminal}].
    @param ask: C{ask(prompt)} [default: C{getpass.getpass}].
    @raise ClientError: L{BAD_CREDENTIAL}: there is no terminal to ask on.
    """
    if not (terminal if terminal is not None else _terminal()):
        raise ClientError(
            BAD_CREDENTIAL, credentials.encryptedKeyMessage(path, PASS_PHRASE_HOW)
        )
    if ask is None:
        import getpass

        ask = getpass.getpass
    return ask("Pass phrase for %s: " % (path,))


class _Credential:
    """
    The SSL context built from a credential file, reloaded when the file
    changes (a renewed proxy).
    """

    def __init__(self, proxy, key, caDir):
        self.proxy = proxy
        self.key = key
        self.caDir = caDir
        self._signature = None
        self._context = None
        self._dates = (None, None)

    def _stat(self, path, what):
        """
        Stat a credential file, turning failures into L{NO_CREDENTIAL}.
        """
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: %s does not exist; run voms-proxy-init or set "
                "X509_USER_PROXY" % (path,)
                if what == "credential"
                else "no credential: the key file %s does not exist" % (path,),
            )
        except OSError as e:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: cannot read %s: %s"
                % (path, (e.strerror or str(e)).lower()),
            )
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def context(self, now=None):
        """
        Return the SSL context for a new connection, after checking that the
        files exist and the certificate is currently valid.

        @raise ClientError: L{NO_CREDENTIAL}, L{CREDENTIAL_EXPIRED},
            L{BAD_CREDENTIAL} or L{NO_CA_DIR}.
        """
        signature = [self._stat(self.proxy, "credential")]
        if self.key is not None:
            signature.append(self._stat(self.key, "key"))
        signature = tuple(signature)
        if signature != self._signature or self._context is None:
            self._context = self._load()
            self._dates = certificateDates(self.proxy)
            self._signature = signature
        self._checkDates(time.time() if now is None else now)
        return self._context

    def _checkDates(self, now):
        """
        Refuse a certificate outside its validity period, with a message
        better than the server's bare refusal.
        """
        notBefore, notAfter = self._dates
        if notAfter is not None and now > notAfter:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your credential %s expired at %s; renew it (voms-proxy-init)"
                % (self.proxy, utc(notAfter)),
            )
        # A little slack: a proxy made a moment ago on a machine whose clock
        # is slightly ahead still works on most servers.
        if notBefore is not None and now + 300 < notBefore:
            raise ClientError(
                CREDENTIAL_EXPIRED,
                "your credential %s is not valid before %s; check the clock"
                % (self.proxy, utc(notBefore)),
            )

    def authorization(self, now=None):
        """
        A certificate needs no C{Authorization} header.
        """
        return None

    def describe(self):
        """
        Describe the credential file as read here: C{{"type": "x509",
        "path": PATH, "expires": NOT_AFTER}}, C{expires} being the notAfter
        of its certificate (a proxy's own), or L{None} if it cannot be
        read.
        """
        if self._signature is not None:
            notAfter = self._dates[1]
        else:
            notAfter = certificateDates(self.proxy)[1]
        return {"type": "x509", "path": self.proxy, "expires": notAfter}

    refusedMessage = _REFUSED_MESSAGE

    def _load(self):
        """
        Build the SSL context.  An encrypted key's pass phrase is asked for
        on the terminal (never by OpenSSL itself); without a terminal, or
        with a wrong pass phrase, the message says so.
        """
        context = _trustingContext(self.caDir)
        keyPath = self.key or self.proxy
        asked = []

        def passPhrase():
            asked.append(True)
            return askPassPhrase(keyPath)

        try:
            context.load_cert_chain(self.proxy, self.key, password=passPhrase)
        except tls.SSLError as e:
            if asked or _encrypted(keyPath):
                raise ClientError(BAD_CREDENTIAL, credentials.wrongPassPhraseMessage(keyPath))
            raise ClientError(
                BAD_CREDENTIAL,
                "cannot use the credential %s: %s" % (self.proxy, _sslReason(e)),
            )
        except OSError as e:
            raise ClientError(
                NO_CREDENTIAL,
                "no credential: cannot read %s: %s"
                % (self.proxy, (e.strerror or str(e)).lower()),
            )
        return context

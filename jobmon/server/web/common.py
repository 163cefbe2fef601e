"""
What every answer of the browser view shares: its security headers, JSON
answers and errors, results made fit for JSON, and the checks that keep
another site from acting in the user's name (CSRF).
"""

import base64
import json

from jobmon.errors import BAD_REQUEST, NOT_AUTHORIZED, JobMonError

CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: its own scripts and styles only
(none inline), no framing, no plugins."""

REQUEST_HEADER = b"x-jobmon-request"
"""The header every state-changing request must carry: a browser sends a
custom header to another origin only after a CORS preflight, which this
server never grants."""

HTTP_STATUS = {
    400: 400, 401: 401, 403: 403, 404: 404, 408: 504, 409: 409, 410: 410, 411: 410,
    413: 413, 429: 429, 500: 500, 503: 503,
    1001: 404, 1002: 403, 1003: 400, 1004: 400, 1005: 403, 1006: 502, 1007: 501,
    1008: 504, 1010: 404, 1011: 403, 1099: 502,
}
"""The HTTP status of each fault code (L{jobmon.errors}); the fault code
itself is in the JSON body.  A timeout is 504, not 408, which browsers may
repeat on their own."""


def securityHeaders(request, noStore=True):
    """
    Set the headers every answer carries: the CSP, no MIME sniffing, no
    referrer, no framing; and C{Cache-Control: no-store} unless the answer
    is a static asset.
    """
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"cross-origin-opener-policy", b"same-origin")
    request.setHeader(b"cross-origin-resource-policy", b"same-origin")
    if noStore:
        request.setHeader(b"cache-control", b"no-store")


def jsonBody(request, value, status=200):
    """
    Answer with C{value} as JSON, with the security headers and
    C{no-store}.

    @return: the body, for a C{render} method to return.
    """
    request.setResponseCode(status)
    securityHeaders(request)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def errorBody(request, error):
    """
    Answer with a L{JobMonError} as JSON C{{"code", "message"}} and the
    HTTP status of its code.
    """
    status = HTTP_STATUS.get(error.code, 502 if error.code >= 1000 else 500)
    if status == 401:
        request.setHeader(b"www-authenticate", b'Bearer realm="jobmon"')
    return jsonBody(request, {"code": error.code, "message": error.message}, status)


def jsonable(value):
    """
    Make a result fit for JSON: a bytes field C{k} becomes C{k_base64}
    (always, the exact bytes) and C{k_text} (only when the bytes are
    UTF-8); other values as they are, recursively.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            k = str(k)
            if isinstance(v, (bytes, bytearray)):
                v = bytes(v)
                out[k + "_base64"] = base64.b64encode(v).decode("ascii")
                try:
                    out[k + "_text"] = v.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            else:
                out[k] = jsonable(v)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "timestamp") and not isinstance(value, (int, float, str)):
        return str(value)
    return value


def arg(request, name, default=None):
    """
    A query-string argument as text, or C{default}.
    """
    values = request.args.get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


def intArg(request, name, default=None):
    """
    A query-string argument as an integer.

    @raise JobMonError: L{BAD_REQUEST} if it is not one.
    """
    value = arg(request, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise JobMonError(BAD_REQUEST, "{} must be an integer, not {!r}".format(name, value[:40]))


def ownOrigin(request):
    """
    The origin of this server as the browser addressed it:
    C{https://HOST[:PORT]}, from the C{Host} header.
    """
    host = request.getHeader(b"host") or b""
    scheme = b"https" if request.isSecure() else b"http"
    return scheme + b"://" + host


def refuseCrossSite(request):
    """
    Refuse a request that a browser sent on behalf of another site: its
    C{Sec-Fetch-Site} says so, or its C{Origin} is not this server's.

    @raise JobMonError: L{NOT_AUTHORIZED}.
    """
    site = request.getHeader(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        raise JobMonError(NOT_AUTHORIZED, "cross-site request refused")
    origin = request.getHeader(b"origin")
    if origin is not None and origin != ownOrigin(request):
        raise JobMonError(NOT_AUTHORIZED, "cross-origin request refused")


def checkStateChange(request):
    """
    Check a request that acts on a job (a POST): same origin (see
    L{refuseCrossSite}), C{X-JobMon-Request}, and a JSON body.

    @raise JobMonError: L{NOT_AUTHORIZED} or L{BAD_REQUEST}.
    """
    refuseCrossSite(request)
    if request.getHeader(b"sec-fetch-site") == b"none":
        raise JobMonError(NOT_AUTHORIZED, "cross-site request refused")
    if not request.getHeader(REQUEST_HEADER):
        raise JobMonError(NOT_AUTHORIZED, "missing the X-JobMon-Request header")
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if kind != b"application/json":
        raise JobMonError(BAD_REQUEST, "the body must be application/json")


def readJson(request, limit=65536):
    """
    The request's JSON body, an object.

    @raise JobMonError: L{BAD_REQUEST} if it is not one (or too long).
    """
    content = request.content
    content.seek(0)
    data = content.read(limit + 1)
    if len(data) > limit:
        raise JobMonError(BAD_REQUEST, "request body too large")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise JobMonError(BAD_REQUEST, "the body is not JSON")
    if not isinstance(value, dict):
        raise JobMonError(BAD_REQUEST, "the body must be a JSON object")
    return value

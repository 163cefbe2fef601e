"""
The browser view's pages and assets: every page address (C{/},
C{/jobs/JOB}, C{/jobs/JOB/files/PATH}, C{/history}, C{/audit}) answers
the same shell, C{index.html}, whose script reads the address and asks the
JSON API for the data; the assets come from the package
(C{jobmon/server/web/static/}), never from elsewhere.
"""

import os

from twisted.web.resource import Resource

from jobmon.server.web.common import securityHeaders

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
"""Where the assets are: package data."""

ASSETS = {
    b"app.js": b"text/javascript; charset=utf-8",
    b"files.js": b"text/javascript; charset=utf-8",
    b"style.css": b"text/css; charset=utf-8",
    b"favicon.svg": b"image/svg+xml",
}
"""The assets served under C{/static/}, with their types: no other file
of the directory is served."""


def readAsset(name):
    """
    The bytes of an asset of L{STATIC}.
    """
    with open(os.path.join(STATIC, name), "rb") as f:
        return f.read()


class Shell(Resource):
    """
    The page shell, at every page address below it (a leaf): the same
    HTML, which holds no data.  It needs no credential: a token user
    gives hers in the page.
    """

    isLeaf = True

    def render_GET(self, request):
        securityHeaders(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return readAsset("index.html")


class Static(Resource):
    """
    C{/static/NAME}: one of L{ASSETS}.
    """

    isLeaf = True

    def render_GET(self, request):
        name = b"/".join(request.postpath)
        kind = ASSETS.get(name)
        securityHeaders(request, noStore=kind is None)
        if kind is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such asset\n"
        request.setHeader(b"content-type", kind)
        request.setHeader(b"cache-control", b"no-cache")
        return readAsset(name.decode("ascii"))


class NotFound(Resource):
    """
    Any other address: 404, with the security headers.
    """

    isLeaf = True

    def render(self, request):
        securityHeaders(request)
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"not found\n"

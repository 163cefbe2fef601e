"""
The browser view of the server (C{docs/WEB.md}): pages, assets, a JSON
API and Server-Sent Events on the server's HTTPS port, beside the XML-RPC
endpoint at C{/RPC2}, with the same identities, authorization and rate
limits.
"""

from twisted.web.resource import Resource

from jobmon.server.web.api import APIResource
from jobmon.server.web.follow import FollowStream
from jobmon.server.web.pages import NotFound, Shell, Static

__all__ = ["WebRoot"]


class WebRoot(Resource):
    """
    The root of the server's HTTPS site: the browser view's pages
    (C{/}, C{/jobs/...}, C{/history}, C{/audit}), C{/static/} and
    C{/api/}; the XML-RPC endpoint is put beside them as C{RPC2}.

    @param methods: the XML-RPC methods by name, as the endpoint calls them
        (rate limited: L{jobmon.server.ratelimit.Limits.wrapAll}).
    @param identify: the endpoint's C{identify(request)}.
    @param clock: the reactor, for the follow stream's keep-alives.
    """

    def __init__(self, methods, identify, clock):
        super().__init__()
        shell = Shell()
        self.putChild(b"", shell)
        for page in (b"jobs", b"history", b"audit"):
            self.putChild(page, shell)
        self.putChild(b"static", Static())
        follow = FollowStream(methods["jobmon.query"], identify, clock)
        self.putChild(b"api", APIResource(methods, identify, follow, clock))

    def getChild(self, path, request):
        return NotFound()

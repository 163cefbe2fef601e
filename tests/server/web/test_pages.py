"""
Tests for L{jobmon.server.web.pages} and the assets: the shell at every
page address, the security headers, and a script that never turns data
into HTML.
"""

import os
import re

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from jobmon.server.web.pages import ASSETS, STATIC
from tests.server.web.support import ALICE, WebTestCase

PAGES = ["/", "/jobs/job.1", "/jobs/a%2Fb", "/jobs/job.1/files/", "/jobs/job.1/files/a/b.log",
         "/history", "/audit"]


class HeaderTests(WebTestCase):
    """
    The headers of pages, assets and errors.
    """

    def assertSecurityHeaders(self, request):
        csp = self.header(request, b"content-security-policy")
        self.assertIn(b"default-src 'self'", csp)
        self.assertIn(b"frame-ancestors 'none'", csp)
        self.assertIn(b"script-src 'self';", csp)
        self.assertIn(b"style-src 'self';", csp)
        self.assertNotIn(b"unsafe-inline", csp)
        self.assertNotIn(b"unsafe-eval", csp)
        self.assertEqual(self.header(request, b"x-content-type-options"), b"nosniff")
        self.assertEqual(self.header(request, b"referrer-policy"), b"no-referrer")
        self.assertEqual(self.header(request, b"x-frame-options"), b"DENY")

    def test_pages(self):
        """
        Every page address answers the shell, which needs no credential
        (a token user types hers in it), with the security headers.
        """
        for page in PAGES:
            request = self.request(page, who=None)
            self.assertEqual(request.responseCode or 200, 200, page)
            self.assertEqual(self.header(request, b"content-type"), b"text/html; charset=utf-8")
            self.assertIn(b'<script src="/static/app.js" defer></script>',
                          b"".join(request.written))
            self.assertSecurityHeaders(request)

    def test_assets(self):
        """
        The assets are served with their types and the security headers.
        """
        for name, kind in ASSETS.items():
            request = self.request("/static/" + name.decode(), who=None)
            self.assertEqual(self.header(request, b"content-type"), kind)
            self.assertSecurityHeaders(request)
            with open(os.path.join(STATIC, name.decode()), "rb") as f:
                self.assertEqual(b"".join(request.written), f.read())

    def test_noOtherFile(self):
        """
        Only the listed assets: not the directory's other files, nor
        anything reached with C{..}.
        """
        for target in ("/static/index.html", "/static/..%2Fpages.py", "/static/", "/nowhere",
                       "/favicon.ico"):
            request = self.request(target, who=None)
            self.assertEqual(request.responseCode, 404, target)
            self.assertNotIn(b"import", b"".join(request.written))
            self.assertSecurityHeaders(request)

    def test_apiHeaders(self):
        """
        API answers, errors included, carry the security headers and
        C{no-store}.
        """
        for who in (None, ALICE):
            request = self.request("/api/jobs", who=who)
            self.assertSecurityHeaders(request)
            self.assertEqual(self.header(request, b"cache-control"), b"no-store")

    def test_realSite(self):
        """
        Through a real L{Site}, C{GET /} answers the shell with the
        headers.
        """
        site = Site(self.root)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: jobmon.test\r\n\r\n")
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:100])
        self.assertIn(b"Content-Security-Policy: default-src 'self'", answer)
        self.assertIn(b"<title>JobMon</title>", answer)
        channel.connectionLost(Failure(ConnectionDone()))


class NoHTMLFromDataTests(WebTestCase):
    """
    The page's script puts data in the page as text only.
    """

    FORBIDDEN = [r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"document\.write",
                 r"\beval\s*\(", r"\bnew\s+Function\b", r"setTimeout\s*\(\s*['\"`]",
                 r"setInterval\s*\(\s*['\"`]", r"createContextualFragment", r"DOMParser",
                 r"\.srcdoc\b", r"javascript:"]

    def scripts(self):
        for name in os.listdir(STATIC):
            if name.endswith(".js"):
                with open(os.path.join(STATIC, name), encoding="utf-8") as f:
                    yield name, f.read()

    def test_scanScripts(self):
        """
        No asset script uses a sink that parses HTML or code.
        """
        found = list(self.scripts())
        self.assertTrue(found)
        for name, text in found:
            for pattern in self.FORBIDDEN:
                self.assertIsNone(re.search(pattern, text), "{} uses {}".format(name, pattern))

    def test_scanCatches(self):
        """
        The scan finds what it looks for.
        """
        bad = 'row.innerHTML = name; document.write(x); eval("1")'
        self.assertEqual(
            sum(1 for p in self.FORBIDDEN if re.search(p, bad)), 3)

    def test_shellHasNoInlineCode(self):
        """
        The shell holds no inline script, style or event handler (the CSP
        would block them).
        """
        with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
            html = f.read()
        for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            self.assertEqual(tag.strip(), "")
        self.assertNotIn("<style", html)
        self.assertIsNone(re.search(r"\sstyle\s*=", html))
        self.assertIsNone(re.search(r"\son[a-z]+\s*=", html))

    def test_domContract(self):
        """
        The ids of the DOM contract (docs/WEB.md) are in the script or the
        shell.
        """
        with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
            text = f.read()
        text += "".join(t for _, t in self.scripts())
        for name in ("jobs-table", "jobs-filter", "job-title", "processes", "env", "commands",
                     "signals", "confirm", "confirm-yes", "confirm-no", "result",
                     "file-listing", "file-content", "follow-start", "follow-stop",
                     "follow-output", "history", "audit", "who", "error"):
            self.assertTrue(re.search(r"""id[:=] ?["']{}["']""".format(name), text), name)
        for attribute in ("data-job-id", "data-command", "data-signal", "data-name",
                          "line-text"):
            self.assertIn('"{}"'.format(attribute), text)

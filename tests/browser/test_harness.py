"""
The harness itself: the browser presents the user's certificate to the
server through the real TLS handshake.
"""

from tests.browser.case import BrowserCase
from tests.support import inThread

WHOAMI = """
const done = arguments[arguments.length - 1];
fetch("/RPC2", {method: "POST", headers: {"Content-Type": "text/xml"},
                body: "<?xml version='1.0'?><methodCall>" +
                      "<methodName>jobmon.whoami</methodName><params/></methodCall>"})
  .then(r => r.text()).then(done, e => done("error: " + e));
"""


class HarnessTests(BrowserCase):
    """
    The browser's certificate reaches the server.
    """

    async def test_certificate(self):
        """
        An XML-RPC call made by the page (same origin, no header added)
        tells alice's DN: the server took it from the certificate Chromium
        chose by the managed policy.
        """

        def check(b):
            b.open("/RPC2")
            answer = b.driver.execute_async_script(WHOAMI)
            self.assertIn(self.tpki.dn("alice"), answer)

        await inThread(check, await self.browser("alice"))

    async def test_noCertificate(self):
        """
        A browser without a certificate gets no page: the server refuses
        the TLS handshake, and nothing in the harness works around it.
        """

        def check(b):
            from selenium.common.exceptions import WebDriverException

            try:
                b.open("/RPC2")
            except WebDriverException as e:
                page = e.msg
            else:
                page = b.driver.page_source
            self.assertIn("ERR_BAD_SSL_CLIENT_AUTH_CERT", page, page[:2000])
            self.assertNotIn(self.tpki.dn("alice"), page)

        await inThread(check, await self.browser(None))

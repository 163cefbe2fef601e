"""
The harness itself: the certificate the browser presents is what lets it
in (that it is the user's, C{#who} tells: L{tests.browser.test_pages}).
"""

from tests.browser.case import BrowserCase
from tests.support import inThread


class HarnessTests(BrowserCase):
    """
    Nothing in the harness lets a browser in without a certificate.
    """

    logins = ()

    async def test_noCertificate(self):
        """
        A browser without a certificate gets no page: the server refuses
        the TLS handshake, and nothing in the harness works around it.
        """

        def check(b):
            from selenium.common.exceptions import WebDriverException

            try:
                b.open("/")
            except WebDriverException as e:
                page = e.msg
            else:
                # Chromium's error page, filled in by its own script.
                b.wait(lambda d: "ERR_" in d.page_source or "data-ready" in d.page_source,
                       message="neither an error page nor the page")
                page = b.driver.page_source
            self.assertIn("ERR_BAD_SSL_CLIENT_AUTH_CERT", page, page[:3000])
            self.assertNotIn(self.tpki.dn("alice"), page)

        await inThread(check, await self.browser(None))

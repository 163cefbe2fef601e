"""
The harness itself: the certificate the browser presents is what lets it
in (that it is the user's, C{#who} tells: L{tests.browser.test_pages}).
"""

import json
import os

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.browser import harness
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


class RequirementTests(SynchronousTestCase):
    """
    What the harness does without a browser, and the policy it writes (no
    browser needed).
    """

    def test_skippedWithoutBrowser(self):
        """
        Without what the tests need they are skipped, saying why; under CI
        they fail.
        """
        self.patch(harness, "_missing", lambda: "chromium not installed")
        self.patch(os, "environ", {})
        e = self.assertRaises(SkipTest, harness.requireBrowser)
        self.assertIn("chromium not installed", str(e))
        self.patch(os, "environ", {"CI": "1"})
        e = self.assertRaises(RuntimeError, harness.requireBrowser)
        self.assertIn("CI must have it", str(e))

    def test_policy(self):
        """
        The managed policy picks the certificate the test CA issued for any
        port of 127.0.0.1; each entry is a JSON string, as Chromium wants.
        Written once, then left as is; removed.
        """
        path = os.path.join(self.mktemp(), "jobmon-test.json")
        self.patch(harness, "POLICY_DIR", os.path.dirname(path))
        self.patch(harness, "POLICY_FILE", path)
        self.assertTrue(harness.writePolicy())
        self.assertFalse(harness.writePolicy())
        with open(path) as f:
            policy = json.load(f)
        [entry] = policy["AutoSelectCertificateForUrls"]
        self.assertEqual(json.loads(entry), {
            "pattern": "https://127.0.0.1:*",
            "filter": {"ISSUER": {"CN": "JobMon Test CA"}},
        })
        harness.removePolicy()
        self.assertFalse(os.path.exists(path))
        harness.removePolicy()

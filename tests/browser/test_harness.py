"""
The harness itself: the certificate the browser presents is what lets it
in (that it is the user's, C{#who} tells: L{tests.browser.test_pages}).
"""

import json
import os
import re

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.browser import harness
from tests.browser.case import BrowserCase
from tests.support import inThread

ERROR_CODE = re.compile(r"ERR_[A-Z_]+")
"""A network error code of Chromium."""

REFUSED = {"ERR_BAD_SSL_CLIENT_AUTH_CERT", "ERR_SOCKET_NOT_CONNECTED", "ERR_CONNECTION_RESET",
           "ERR_CONNECTION_CLOSED"}
"""What Chromium says when the server ends the handshake for want of a
certificate: with TLS 1.3 the refusal comes after the client's side of the
handshake, so that the browser may see a closed socket rather than the
alert."""


class HarnessTests(BrowserCase):
    """
    Nothing in the harness lets a browser in without a certificate.
    """

    logins = ()

    async def test_noCertificate(self):
        """
        A browser without a certificate gets no page: the server refuses
        the TLS handshake (and says so), and nothing in the harness works
        around it.
        """

        def check(b):
            from selenium.common.exceptions import WebDriverException

            try:
                b.open("/")
            except WebDriverException as e:
                text = e.msg
            else:
                # Chromium's error page shows its code once its own script
                # has filled it in (its source names many codes).
                text = b.wait(lambda d: (lambda t: t if ERROR_CODE.search(t) else False)(
                    d.execute_script("return document.body ? document.body.innerText : '';")),
                    message="no error page")
                self.assertEqual(b.findAll("#who"), [])
            self.assertIn(ERROR_CODE.search(text).group(0), REFUSED, text)

        await inThread(check, await self.browser(None))
        await self.server.proto.waitFor("sent no certificate: refused", timeout=5)


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

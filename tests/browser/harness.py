"""
A real browser for the tests of the browser view: Debian's headless
Chromium driven by selenium, presenting a user's certificate to a real
C{twistd jobmon-server} the way a person's browser does.

The user's certificate and key go, as PKCS#12, into the NSS database of a
browser profile of its own (Chromium on Linux reads C{$HOME/.pki/nssdb},
so each browser gets its own C{HOME}), next to the test CA, trusted for
TLS.  A managed policy (C{AutoSelectCertificateForUrls} in
C{/etc/chromium/policies/managed/}) makes Chromium present it without a
dialog for C{https://127.0.0.1:*} when the issuer is the test CA.  Nothing
is bypassed: no C{--ignore-certificate-errors}, no injected header; the
page learns who the user is from the server, which learns it from the TLS
handshake.

What is missing (Chromium, chromedriver, certutil/pk12util, selenium, or a
writable policy directory) skips the tests, unless the environment variable
C{CI} is set: C{.ci/run} installs it (C{tests/install-browser.sh}), so
there its absence is a failure.
"""

import json
import os
import shutil
import subprocess
import time

from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    pkcs12,
)
from twisted.trial.unittest import FailTest, SkipTest

from jobmon.devtools import pki

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
POLICY_DIR = "/etc/chromium/policies/managed"
POLICY_FILE = os.path.join(POLICY_DIR, "jobmon-test.json")
CA_NAME = "JobMon Test CA"
"""The CN of the test CA (L{tests.support.TestPKI}): the policy's filter."""

URL_PATTERN = "https://127.0.0.1:*"
"""The servers the policy answers for: any port of 127.0.0.1, since each
test's server listens on a port of its own."""

P12_PASSWORD = "jobmon-test"
WINDOW = (1280, 860)
"""The window size, fixed so that screenshots are comparable."""

PAGE_TIMEOUT = 15
"""Seconds a page has to load."""

WAIT = 10
"""Seconds an element has to appear (the follow test asks for less)."""


def _missing():
    """
    @return: why the browser tests cannot run here, or C{None}.
    """
    tools = [
        (CHROMIUM, "chromium"),
        (CHROMEDRIVER, "chromium-driver"),
        (shutil.which("certutil"), "libnss3-tools"),
        (shutil.which("pk12util"), "libnss3-tools"),
    ]
    packages = sorted({pkg for path, pkg in tools if not (path and os.access(path, os.X_OK))})
    if packages:
        return ("{} not installed (Debian: apt-get install {}, or "
                "sh tests/install-browser.sh as root)".format(", ".join(packages),
                                                               " ".join(packages)))
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    try:
        os.makedirs(POLICY_DIR, exist_ok=True)
    except OSError:
        pass
    if not os.access(POLICY_DIR, os.W_OK):
        return ("{} is not writable (run as root): the managed policy that picks "
                "the user's certificate cannot be set".format(POLICY_DIR))
    return None


def requireBrowser():
    """
    @raise SkipTest: when the browser tests cannot run and C{CI} is not set.
    @raise RuntimeError: when they cannot run and C{CI} is set.
    """
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI"):
        raise RuntimeError(why + ": CI must have it")
    raise SkipTest(why)


def writePolicy():
    """
    Write the managed policy that makes Chromium present the certificate
    issued by the test CA to C{https://127.0.0.1:*}, without a dialog.
    Chromium reads policies when it starts: write it before.

    @return: whether this call wrote the file (it was missing or different).
    """
    entry = {"pattern": URL_PATTERN, "filter": {"ISSUER": {"CN": CA_NAME}}}
    # Each entry is itself a JSON string, as the policy's schema says.
    content = json.dumps({"AutoSelectCertificateForUrls": [json.dumps(entry)]}, indent=2) + "\n"
    try:
        with open(POLICY_FILE) as f:
            if f.read() == content:
                return False
    except OSError:
        pass
    os.makedirs(POLICY_DIR, exist_ok=True)
    tmp = POLICY_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, POLICY_FILE)
    return True


def removePolicy():
    """
    Remove the managed policy of L{writePolicy}, if present.
    """
    try:
        os.remove(POLICY_FILE)
    except FileNotFoundError:
        pass


def exportPKCS12(user, path, password=P12_PASSWORD):
    """
    Write a user's certificate and key as a PKCS#12 file, as a user
    exports them for a browser.

    @param user: a L{jobmon.devtools.authority.UserCredential}.
    """
    [cert] = pki.readCertificates(user.certPath)[:1]
    key = pki.readPrivateKey(user.keyPath)
    data = pkcs12.serialize_key_and_certificates(
        user.login.encode("ascii"), key, pki.asCryptography(cert), None,
        BestAvailableEncryption(password.encode("ascii")),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _run(*argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError("{} failed ({}): {}{}".format(
            " ".join(argv), result.returncode, result.stdout, result.stderr))
    return result.stdout


def makeProfile(home, tpki, login):
    """
    A browser profile for C{login}: C{home/.pki/nssdb} holding the test CA
    (trusted for TLS) and the user's certificate and key, imported from
    PKCS#12 with C{pk12util} (none when C{login} is C{None}: a browser
    without a certificate).

    @param tpki: a L{tests.support.TestPKI}.
    @return: C{home}.
    """
    nssdb = os.path.join(home, ".pki", "nssdb")
    os.makedirs(nssdb, mode=0o700)
    db = "sql:" + nssdb
    _run("certutil", "-N", "--empty-password", "-d", db)
    _run("certutil", "-A", "-d", db, "-n", CA_NAME, "-t", "CT,C,C",
         "-i", tpki.pki.ca.certPath)
    if login is None:
        return home
    p12 = exportPKCS12(tpki.users[login], os.path.join(home, login + ".p12"))
    _run("pk12util", "-i", p12, "-d", db, "-W", P12_PASSWORD, "-K", "")
    listed = _run("certutil", "-L", "-d", db)
    if login not in listed:
        raise RuntimeError("{}'s certificate is not in {}:\n{}".format(login, nssdb, listed))
    return home


class Browser:
    """
    A headless Chromium of its own (C{HOME} with the NSS database of
    L{makeProfile}, and C{dataDir} for its profile) driven by selenium.
    Every method blocks: call them off the reactor thread.

    @ivar driver: the selenium WebDriver, once L{start}ed.
    @ivar base: the server's URL, C{https://127.0.0.1:PORT}.
    """

    def __init__(self, home, base, login, dataDir):
        self.home = home
        self.base = base
        self.login = login
        self.dataDir = dataDir
        self.driver = None
        self._pids = []

    def start(self):
        """
        Start chromedriver and Chromium.
        """
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in [
            "--headless=new",
            "--user-data-dir=" + self.dataDir,
            "--window-size={},{}".format(*WINDOW),
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--password-store=basic",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ]:
            options.add_argument(arg)
        if os.geteuid() == 0:
            options.add_argument("--no-sandbox")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("XDG_", "CHROME", "DISPLAY", "WAYLAND"))}
        env.update(HOME=self.home, SE_OFFLINE="true")
        os.makedirs(self.dataDir, exist_ok=True)
        service = Service(CHROMEDRIVER, env=env,
                          log_output=os.path.join(self.dataDir, "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(PAGE_TIMEOUT)
        self.driver.set_script_timeout(PAGE_TIMEOUT)
        self._pids = self._processTree(service.process.pid)

    @staticmethod
    def _processTree(pid):
        """
        C{pid} and its descendants now: what L{quit} makes sure is gone.
        """
        import psutil

        try:
            top = psutil.Process(pid)
            return [top] + top.children(recursive=True)
        except psutil.Error:
            return []

    def quit(self):
        """
        Quit the browser and chromedriver; kill, by pid, whatever of them
        is still running.
        """
        import psutil

        if self.driver is not None:
            try:
                self._pids = self._pids + self._processTree(self.driver.service.process.pid)
                self.driver.quit()
            except Exception:
                pass
            self.driver = None
        alive = [p for p in self._pids if p.is_running()]
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        self._pids = []

    def open(self, path):
        """
        Load C{path} of the server.
        """
        self.driver.get(self.base + path)

    def go(self, path):
        """
        Load C{path} of the server and wait until the page has shown its
        first data (L{ready}).
        """
        self.open(path)
        self.ready()

    def ready(self, timeout=WAIT):
        """
        Wait until the page says it has shown its first data, or an error:
        C{document.body.dataset.ready} is C{"1"} (the DOM contract).
        """
        self.wait(lambda d: d.execute_script(
            "return !!(document.body && document.body.dataset.ready === '1');"),
            timeout, "the page {} never got ready".format(self.driver.current_url))

    def follow(self, css, path, timeout=WAIT):
        """
        Click the link C{css} and wait until the page of C{path} (the
        address, percent-encoded as the page has it) is ready.
        """
        self.find(css).click()
        self.wait(lambda d: d.current_url == self.base + path, timeout,
                  "the link {} did not lead to {} but {}".format(
                      css, path, self.driver.current_url))
        self.ready(timeout)

    def texts(self, css):
        """
        The C{textContent} of each element matching C{css}, now (exact
        text, not the rendered one).
        """
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " (e) => e.textContent);", css)

    def attributes(self, css, name):
        """
        The attribute C{name} of each element matching C{css}, now.
        """
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " (e) => e.getAttribute(arguments[1]));", css, name)

    def wait(self, condition, timeout=WAIT, message=""):
        """
        Wait until C{condition(driver)} is true; return its value.

        @raise FailTest: with C{message}, if it is still false after
            C{timeout} seconds.
        """
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)
        except TimeoutException:
            raise FailTest("{} (after {} s)".format(message or "condition not met", timeout))

    def find(self, css, timeout=WAIT):
        """
        Wait for an element matching C{css}; return it.
        """
        from selenium.webdriver.common.by import By

        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css)
                         if d.find_elements(By.CSS_SELECTOR, css) else False,
                         timeout, "no element {} on {}".format(css, self.driver.current_url))

    def findAll(self, css):
        """
        The elements matching C{css} now.
        """
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css, timeout=WAIT):
        """
        Wait for an element matching C{css} with some text; return the text.
        """
        from selenium.webdriver.common.by import By

        def visibleText(d):
            for e in d.find_elements(By.CSS_SELECTOR, css):
                if e.text.strip():
                    return e.text
            return False

        return self.wait(visibleText, timeout,
                         "no text in {} on {}".format(css, self.driver.current_url))

    def noAlert(self):
        """
        @return: whether no JavaScript dialog is open.
        """
        from selenium.common.exceptions import NoAlertPresentException

        try:
            self.driver.switch_to.alert
        except NoAlertPresentException:
            return True
        return False

    def screenshot(self, path):
        """
        Save a PNG of the window.
        """
        self.driver.save_screenshot(path)


def appendLine(path, text):
    """
    Append a line to a file, flushed to the file system at once.

    @return: the time of the write (C{time.monotonic}).
    """
    with open(path, "ab") as f:
        f.write(text.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return time.monotonic()

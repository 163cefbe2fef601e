"""
Tests for the slash-form DN of L{jobmon.certificates}: a name's structure,
its slash form, and reading the slash form back.
"""

from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from jobmon.certificates import canonicalDN, dnOf, formatDN, parseDN, rdnsOf


def name(*rdns):
    """
    An C{x509.Name} from RDNs given as lists of C{(oid, value)}.
    """
    return x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(oid, v) for oid, v in rdn])
        for rdn in rdns
    ])


class SlashFormTests(SynchronousTestCase):
    """
    L{dnOf}, L{formatDN}, L{parseDN} and L{canonicalDN}.
    """

    def test_familiar(self):
        """
        An ordinary name has its familiar slash form.
        """
        n = name([(NameOID.DOMAIN_COMPONENT, "org")], [(NameOID.ORGANIZATIONAL_UNIT_NAME, "People")],
                 [(NameOID.COMMON_NAME, "Jürgen Müller"), (NameOID.USER_ID, "jm")])
        self.assertEqual(dnOf(n), "/DC=org/OU=People/CN=Jürgen Müller+UID=jm")
        self.assertEqual(parseDN(dnOf(n)), rdnsOf(n))

    def test_slashInValue(self):
        """
        A value holding C{/} is escaped: C{OU=People/CN=Admin Example} in one
        attribute is not the two RDNs of the admin's name.
        """
        forged = name([(NameOID.DOMAIN_COMPONENT, "org")],
                      [(NameOID.ORGANIZATIONAL_UNIT_NAME, "People/CN=Admin Example")])
        real = name([(NameOID.DOMAIN_COMPONENT, "org")],
                    [(NameOID.ORGANIZATIONAL_UNIT_NAME, "People")],
                    [(NameOID.COMMON_NAME, "Admin Example")])
        self.assertEqual(dnOf(forged), "/DC=org/OU=People\\/CN=Admin Example")
        self.assertEqual(dnOf(real), "/DC=org/OU=People/CN=Admin Example")
        self.assertEqual(canonicalDN("/DC=org/OU=People/CN=Admin Example"), dnOf(real))
        self.assertNotEqual(canonicalDN("/DC=org/OU=People/CN=Admin Example"), dnOf(forged))

    def test_plusInValue(self):
        """
        A value holding C{+ATTRIBUTE=} is not a multi-valued RDN.
        """
        forged = name([(NameOID.COMMON_NAME, "Eve+UID=root")])
        real = name([(NameOID.COMMON_NAME, "Eve"), (NameOID.USER_ID, "root")])
        self.assertEqual(dnOf(forged), "/CN=Eve\\+UID=root")
        self.assertEqual(dnOf(real), "/CN=Eve+UID=root")
        self.assertEqual(canonicalDN("/CN=Eve+UID=root"), dnOf(real))

    def test_controlCharacters(self):
        """
        A line break or escape in a value is shown escaped: a DN cannot
        start a log line.
        """
        n = name([(NameOID.COMMON_NAME, "a\nb\x1b[0m\\c|d")])
        self.assertEqual(dnOf(n), "/CN=a\\x0ab\\x1b[0m\\\\c\\|d")
        self.assertEqual(parseDN(dnOf(n)), rdnsOf(n))

    def test_gridSpelling(self):
        """
        As grid tools print them, a C{/} or C{+} not followed by an attribute
        is inside the value; attribute types are not case-sensitive.
        """
        self.assertEqual(parseDN("/DC=ch/CN=robot/host.example.org"),
                         ((("DC", "ch"),), (("CN", "robot/host.example.org"),)))
        self.assertEqual(canonicalDN("/dc=org/cn=Ann+Bob/E=a@b"),
                         "/DC=org/CN=Ann\\+Bob/emailAddress=a@b")

    def test_refused(self):
        """
        What is not a slash-form DN is refused, saying why.
        """
        for text, why in (("CN=x", "starts with /"), ("/", "empty part"),
                          ("/C=DE//CN=x", "empty part"), ("/CN", "not ATTRIBUTE=VALUE"),
                          ("/CN=", "has no value"), ("/CN=x\\", "lone backslash"),
                          ("/CN=a+", "empty attribute")):
            e = self.assertRaises(ValueError, parseDN, text)
            self.assertIn(why, str(e))

    @given(st.lists(st.lists(st.tuples(
        st.sampled_from(["C", "O", "OU", "CN", "DC", "UID", "emailAddress", "2.5.4.5"]),
        st.text(min_size=1, max_size=12)), min_size=1, max_size=3), min_size=1, max_size=5))
    def test_roundTrip(self, rdns):
        """
        Any structure survives its slash form, and two structures have the
        same slash form only if they are the same.
        """
        rdns = tuple(tuple(rdn) for rdn in rdns)
        text = formatDN(rdns)
        self.assertEqual(parseDN(text), rdns)
        self.assertTrue(text.isprintable())

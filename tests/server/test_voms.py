"""
Tests for L{jobmon.server.voms}: VOMS attribute certificates read from
proxies and checked against the VOMS directory, and for L{jobmon.fqan}.
"""

import datetime
import os
import shutil
import subprocess

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from jobmon.devtools import pki, vomsfake
from jobmon.fqan import FQAN, checkShares, firstGrant, parseFqan
from jobmon.server.identity import Identity
from jobmon.server.voms import VomsAttributes, acsOf, heldFqans

CMS = ["/cms/Role=NULL/Capability=NULL", "/cms/Role=lcgadmin/Capability=NULL",
       "/cms/higgs/Role=NULL/Capability=NULL"]


class FQANTests(SynchronousTestCase):
    """
    L{parseFqan} and how FQANs grant one another.
    """

    def test_parse(self):
        """
        Groups, roles and a NULL capability parse; C{Role=NULL} is no role.
        """
        self.assertEqual(parseFqan("/cms"), FQAN("/cms"))
        self.assertEqual(parseFqan("/cms/Role=NULL/Capability=NULL"), FQAN("/cms"))
        self.assertEqual(parseFqan("/cms/higgs/Role=prod"), FQAN("/cms/higgs", "prod"))
        self.assertEqual(str(parseFqan("/cms/Role=lcgadmin")), "/cms/Role=lcgadmin")
        self.assertEqual(parseFqan("/cms/higgs").vo, "cms")

    def test_refused(self):
        """
        Anything else is refused with a message.
        """
        for bad in ["", "cms", "/", "/Role=x", "/cms/Role=a/Role=b", "/cms/Role=a/sub",
                    "/cms/Capability=x", "/cms/..", "/c m s", "/cms/" + "a" * 300, 5]:
            self.assertRaises(ValueError, parseFqan, bad)

    def test_grants(self):
        """
        Membership asks for the group (any role); a role asks for that role.
        """
        member, admin = FQAN("/cms"), FQAN("/cms", "lcgadmin")
        self.assertTrue(admin.grants(member))
        self.assertTrue(member.grants(member))
        self.assertFalse(member.grants(admin))
        self.assertFalse(FQAN("/cms/higgs").grants(member))
        self.assertFalse(FQAN("/atlas").grants(member))
        self.assertEqual(firstGrant([admin], [member, admin]), (admin, admin))
        self.assertIsNone(firstGrant([admin], [member]))

    def test_shares(self):
        """
        A share list is a short list of FQANs.
        """
        self.assertEqual(checkShares(["/cms"]), (FQAN("/cms"),))
        self.assertRaises(ValueError, checkShares, "/cms")
        self.assertRaises(ValueError, checkShares, ["/cms"] * 17)
        self.assertRaises(ValueError, checkShares, ["cms"])


class VomsTests(SynchronousTestCase):
    """
    L{VomsAttributes} with ACs made by L{jobmon.devtools.vomsfake}.
    """

    def setUp(self):
        self.base = self.mktemp()
        self.pki = pki.initPKI(self.base, users=("alice", "bob"))
        self.alice = self.pki.users["alice"]
        self.aliceCert = pki.readCertificates(self.alice.certPath)[0]
        self.bobCert = pki.readCertificates(self.pki.users["bob"].certPath)[0]
        self.server, self.serverKey = vomsfake.makeVomsServer(
            self.pki.ca, os.path.join(self.base, "voms"))
        self.vomsdir = os.path.join(self.base, "vomsdir")
        vomsfake.writeLsc(self.vomsdir, "cms", self.server)
        self.clock = Clock()
        self.clock.advance(datetime.datetime.now(datetime.timezone.utc).timestamp())
        self.voms = VomsAttributes(self.vomsdir, self.pki.ca.hashedDir, self.clock)
        self.voms.load()
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def proxyWith(self, *acs, name="x509up"):
        """
        A chain (leaf first, with the CA) of a proxy of alice carrying C{acs}.
        """
        path = os.path.join(self.base, name)
        vomsfake.makeVomsProxy(self.alice.certPath, self.alice.keyPath, path, list(acs))
        return pki.readCertificates(path) + [self.pki.ca.cert]

    def ac(self, fqans=CMS, **kwargs):
        """
        An AC for alice from the listed VOMS server, unless told otherwise.
        """
        kwargs.setdefault("holder", self.aliceCert)
        kwargs.setdefault("serverCert", self.server)
        kwargs.setdefault("serverKey", self.serverKey)
        kwargs.setdefault("vo", "cms")
        return vomsfake.encodeAC(fqans=fqans, **kwargs)

    def warnings(self):
        """
        The messages of the warnings logged.
        """
        return [e for e in self.observer if e["log_level"].name == "warn"]

    def test_parse(self):
        """
        The ACs of a proxy are read: policy authority, FQANs, carried
        certificate, holder.
        """
        chain = self.proxyWith(self.ac())
        [ac] = acsOf(chain[0])
        self.assertEqual(ac.vo, "cms")
        self.assertEqual(ac.host, vomsfake.DEFAULT_VOMS_HOST)
        self.assertEqual(list(ac.fqans), CMS)
        self.assertEqual(ac.certs, (self.server,))
        self.assertEqual(ac.holderSerial, self.aliceCert.serial_number)
        self.assertEqual(acsOf(self.aliceCert), [])

    def test_valid(self):
        """
        A valid AC from a listed server grants its FQANs, until it expires.
        """
        fqans, until = self.voms.fqansOf(self.proxyWith(self.ac(hours=2)))
        self.assertEqual([str(f) for f in fqans], ["/cms", "/cms/Role=lcgadmin", "/cms/higgs"])
        identity = Identity("/CN=x", fqans=fqans, fqansUntil=until)
        self.assertEqual(heldFqans(identity, self.clock.seconds()), fqans)
        self.assertEqual(heldFqans(identity, self.clock.seconds() + 7201), ())
        self.assertEqual(self.warnings(), [])

    def test_cachedUntilExpiry(self):
        """
        A chain checked once is not checked again on the next connection,
        but only until its AC expires; a reload forgets what was checked.
        """
        chain = self.proxyWith(self.ac(hours=1))
        self.assertTrue(self.voms.fqansOf(chain)[0])
        self.assertTrue(self.voms.fqansOf(chain)[0])
        self.clock.advance(3600)
        self.assertGrantsNothing(chain, "expired")
        self.clock.advance(-3600)
        self.assertTrue(self.voms.fqansOf(chain)[0])
        os.remove(os.path.join(self.vomsdir, "cms", vomsfake.DEFAULT_VOMS_HOST + ".lsc"))
        self.voms.install(self.voms.prepareReload())
        self.assertEqual(self.voms.fqansOf(chain), ((), None))

    def assertGrantsNothing(self, chain, why):
        """
        The chain grants no FQAN, and C{why} is logged once.
        """
        self.assertEqual(self.voms.fqansOf(chain), ((), None))
        self.assertEqual(self.voms.fqansOf(chain), ((), None))
        warnings = self.warnings()
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn(why, warnings[0]["why"])

    def test_forged(self):
        """
        An AC in the listed server's name signed by another key grants
        nothing.
        """
        _, otherKey = vomsfake.makeVomsServer(self.pki.ca, os.path.join(self.base, "other"))
        self.assertGrantsNothing(self.proxyWith(self.ac(serverKey=otherKey)), "bad AC signature")

    def test_unlistedServer(self):
        """
        An AC signed by a server of the trusted CA that no .lsc lists grants
        nothing, though its signature and chain are fine.
        """
        other, otherKey = vomsfake.makeVomsServer(
            self.pki.ca, os.path.join(self.base, "other"), host="rogue.jobmon-test.example")
        ac = self.ac(serverCert=other, serverKey=otherKey)
        self.assertGrantsNothing(self.proxyWith(ac), "does not list")

    def test_wrongLscDN(self):
        """
        An .lsc naming another CA for the server: nothing.
        """
        vomsfake.writeLsc(self.vomsdir, "cms", self.server,
                          dns=[pki.dnOf(self.server), "/DC=org/CN=Another CA"])
        self.voms.load()
        self.assertGrantsNothing(self.proxyWith(self.ac()), "does not list")

    def test_outsiderCA(self):
        """
        A VOMS server whose certificate does not chain to a trusted CA grants
        nothing even if the .lsc lists its DNs.
        """
        outsider = pki.makeCA(os.path.join(self.base, "outsider"), name="JobMon Test CA")
        other, otherKey = vomsfake.makeVomsServer(outsider, os.path.join(self.base, "other"))
        ac = self.ac(serverCert=other, serverKey=otherKey)
        self.assertGrantsNothing(self.proxyWith(ac), "does not verify")

    def test_expired(self):
        """
        An expired AC grants nothing; so does one not valid yet.
        """
        now = datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)
        ac = self.ac(notBefore=now - datetime.timedelta(hours=2),
                     notAfter=now - datetime.timedelta(seconds=1))
        self.assertGrantsNothing(self.proxyWith(ac), "expired")
        self.clock.advance(-3 * 3600)
        self.assertEqual(self.voms.fqansOf(self.proxyWith(self.ac()))[0], ())

    def test_otherHolder(self):
        """
        Bob's AC in alice's proxy grants nothing.
        """
        self.assertGrantsNothing(self.proxyWith(self.ac(holder=self.bobCert)), "holder")

    def test_otherVO(self):
        """
        A server listed for cms cannot grant atlas FQANs, nor act for
        another VO.
        """
        self.assertGrantsNothing(self.proxyWith(self.ac(fqans=["/atlas/Role=lcgadmin"])),
                                 "outside VO")

    def test_otherVOName(self):
        """
        The cms server's AC claiming VO atlas finds no atlas .lsc.
        """
        self.assertGrantsNothing(self.proxyWith(self.ac(vo="atlas", fqans=["/atlas"])),
                                 "no atlas/")

    def test_unknownCritical(self):
        """
        An AC with a critical extension not understood grants nothing.
        """
        self.assertGrantsNothing(
            self.proxyWith(self.ac(criticalExtension="1.2.3.4")), "critical")

    def test_wrongIssuerName(self):
        """
        An AC whose issuer is not its certificate's subject grants nothing.
        """
        ac = self.ac(issuerName=self.aliceCert.subject)
        self.assertGrantsNothing(self.proxyWith(ac), "issuer")

    def test_logInjection(self):
        """
        What the AC says reaches the log escaped, on one line.
        """
        chain = self.proxyWith(self.ac(host="evil\nFORGED LINE"))
        self.assertEqual(self.voms.fqansOf(chain), ((), None))
        [warning] = self.warnings()
        self.assertNotIn("\n", warning["authority"] + warning["why"])
        self.assertIn("evil\\x0aFORGED", warning["authority"])

    def test_malformed(self):
        """
        A malformed AC extension grants nothing and raises nothing.
        """
        from cryptography import x509

        from jobmon.devtools.proxies import makeProxy

        path = os.path.join(self.base, "bad")
        makeProxy(self.alice.certPath, self.alice.keyPath, path, extensions=[(
            x509.UnrecognizedExtension(vomsfake.VOMS_AC_EXTENSION, b"\x30\x03\x30\x01\x00"),
            False)])
        chain = pki.readCertificates(path) + [self.pki.ca.cert]
        self.assertEqual(self.voms.fqansOf(chain), ((), None))

    def test_onlyGoodOnesCount(self):
        """
        Of two ACs, the forged one grants nothing and the valid one its
        FQANs.
        """
        _, otherKey = vomsfake.makeVomsServer(self.pki.ca, os.path.join(self.base, "other"))
        forged = self.ac(fqans=["/cms/Role=production"], serverKey=otherKey)
        fqans, _ = self.voms.fqansOf(self.proxyWith(forged, self.ac(fqans=["/cms"])))
        self.assertEqual(fqans, (FQAN("/cms"),))

    def test_reload(self):
        """
        A new .lsc is read on reload: the server it lists then counts.
        """
        self.assertIsNone(self.voms.prepareReload())
        other, otherKey = vomsfake.makeVomsServer(
            self.pki.ca, os.path.join(self.base, "other"), host="voms2.jobmon-test.example")
        vomsfake.writeLsc(self.vomsdir, "cms", other, host="voms2.jobmon-test.example")
        self.voms.install(self.voms.prepareReload())
        ac = self.ac(serverCert=other, serverKey=otherKey, host="voms2.jobmon-test.example")
        self.assertEqual(self.voms.fqansOf(self.proxyWith(ac))[0][0], FQAN("/cms"))

    def test_vomsProxyFake(self):
        """
        A proxy made by Debian's C{voms-proxy-fake} (C{voms-clients}) is
        read the same way.
        """
        tool = shutil.which("voms-proxy-fake")
        if tool is None:
            raise SkipTest("voms-proxy-fake (Debian package voms-clients) is not installed")
        vomsDir = os.path.join(self.base, "voms")
        out = os.path.join(self.base, "fake")
        subprocess.run(
            [tool, "-q", "-cert", self.alice.certPath, "-key", self.alice.keyPath,
             "-certdir", self.pki.ca.hashedDir, "-hostcert", os.path.join(vomsDir, "vomscert.pem"),
             "-hostkey", os.path.join(vomsDir, "vomskey.pem"), "-voms", "cms",
             "-uri", vomsfake.DEFAULT_VOMS_HOST + ":15000", "-fqan", CMS[0], "-fqan", CMS[1],
             "-rfc", "-hours", "1", "-vomslife", "1", "-out", out],
            check=True, capture_output=True, timeout=60,
        )
        chain = pki.readCertificates(out) + [self.pki.ca.cert]
        fqans, _ = self.voms.fqansOf(chain)
        self.assertEqual(self.warnings(), [])
        self.assertEqual([str(f) for f in fqans], ["/cms", "/cms/Role=lcgadmin"])

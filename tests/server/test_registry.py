"""
Tests for L{jobmon.server.registry}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jobmon.server.registry import IJobRegistry, JobRecord, MemoryJobRegistry


def record(jobId, owner):
    return JobRecord(jobId=jobId, owner=owner, host="wn1", mode="tcp",
                     registered=0.0, lastSeen=0.0, wakeSecret="s")


class MemoryJobRegistryTests(SynchronousTestCase):
    """
    Tests for L{MemoryJobRegistry}.
    """

    def setUp(self):
        self.registry = MemoryJobRegistry()

    def test_interface(self):
        """
        It provides L{IJobRegistry}.
        """
        self.assertTrue(verifyObject(IJobRegistry, self.registry))

    def test_ofOwner(self):
        """
        C{ofOwner} gives one owner's records and no one else's.
        """
        self.registry.put(record("a.1", "/CN=alice"))
        self.registry.put(record("a.2", "/CN=alice"))
        self.registry.put(record("b.1", "/CN=bob"))
        self.assertEqual(sorted(r.jobId for r in self.registry.ofOwner("/CN=alice")),
                         ["a.1", "a.2"])
        self.assertEqual([r.jobId for r in self.registry.ofOwner("/CN=bob")], ["b.1"])
        self.assertEqual(self.registry.ofOwner("/CN=carol"), [])

    def test_ofOwnerFollowsChanges(self):
        """
        A record replaced by another owner's, or removed, leaves the first
        owner's list; an owner with no job left holds no memory.
        """
        self.registry.put(record("x.1", "/CN=alice"))
        self.registry.put(record("x.1", "/CN=bob"))
        self.assertEqual(self.registry.ofOwner("/CN=alice"), [])
        self.assertEqual([r.owner for r in self.registry.ofOwner("/CN=bob")], ["/CN=bob"])
        self.registry.remove("x.1")
        self.assertEqual(self.registry.ofOwner("/CN=bob"), [])
        self.assertEqual(self.registry._byOwner, {})
        self.assertEqual(len(self.registry), 0)


class JobRecordTests(SynchronousTestCase):
    """
    L{JobRecord}: an immutable record of one registration.
    """

    def test_touched(self):
        """
        A touched record is a copy with its new time (and state, if given),
        every other field kept; the original is unchanged.
        """
        old = JobRecord("j1", "/CN=A", "wn1", "udp", 1.0, 2.0, "secret", udpKey="ab",
                        info={"instance": "i"}, state="ready", notAfter=99.0,
                        revocation=("ca", 7))
        new = old.touched(5.0)
        self.assertEqual((new.notAfter, new.revocation), (99.0, ("ca", 7)))
        self.assertEqual(new, JobRecord("j1", "/CN=A", "wn1", "udp", 1.0, 5.0, "secret",
                                        udpKey="ab", info={"instance": "i"}, state="ready"))
        self.assertEqual((new.wakeSecret, new.udpKey, new.info), ("secret", "ab", old.info))
        self.assertEqual(old.lastSeen, 2.0)
        self.assertEqual(old.touched(6.0, state="connecting").state, "connecting")

"""
Tests for L{jobmon.server.web.follow}: the Server-Sent Events of a
followed file, resumed by C{Last-Event-ID}, and withdrawn when the browser
goes away.
"""

import json

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from jobmon.errors import JOB_ENDED
from jobmon.server.web.follow import event
from tests.server.web.support import ALICE, BOB, WebTestCase


def events(request):
    """
    The events written so far: C{(id, name, data)} for each, comments left
    out.
    """
    found = []
    for block in b"".join(request.written).decode("utf-8").split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if "event" in fields:
            found.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return found


class FollowTests(WebTestCase):
    """
    C{/api/follow}.
    """

    def setUp(self):
        super().setUp()
        self.register()

    def follow(self, query="job=job.1&path=out.log&offset=5", **kwargs):
        return self.request("/api/follow?" + query, **kwargs)

    def test_stream(self):
        """
        The endpoint loops C{follow} queries from the offset asked for;
        each answer with data is an event whose id is the next offset; the
        answer is an event stream not to be stored.
        """
        request = self.follow()
        self.assertEqual(self.header(request, b"content-type"), b"text/event-stream; charset=utf-8")
        self.assertEqual(self.header(request, b"cache-control"), b"no-store")
        sent = self.answer(result={"data": b"<b>1</b>\n", "offset": 5.0, "next_offset": 14.0,
                                   "size": 14.0, "inode": "1:2"})
        self.assertEqual(sent, {"op": "follow", "path": "out.log", "offset": 5, "wait": 20})
        [(eventId, name, data)] = events(request)
        self.assertEqual((eventId, name), ("14", "data"))
        self.assertEqual(data["text"], "<b>1</b>\n")
        self.assertEqual(data["base64"], "PGI+MTwvYj4K")
        self.assertEqual(data["next_offset"], 14.0)
        # The next query goes on from there, with the file's identity.
        sent = self.answer(result={"data": b"", "offset": 14.0, "next_offset": 14.0,
                                   "size": 14.0, "inode": "1:2"})
        self.assertEqual(sent["offset"], 14)
        self.assertEqual(sent["inode"], "1:2")
        self.assertEqual(len(events(request)), 1)
        self.assertFalse(request.finished)
        self.assertEqual(len(self.table), 1)

    def test_resume(self):
        """
        C{Last-Event-ID}, sent by a browser that reconnects, is where the
        follow starts again, whatever C{offset} says.
        """
        self.follow(headers={b"last-event-id": b"42"})
        self.assertEqual(self.answer(result={"data": b""})["offset"], 42)

    def test_badResume(self):
        """
        A C{Last-Event-ID} that is no offset is 400.
        """
        self.assertEqual(self.json(self.follow(headers={b"last-event-id": b"x"}), 400)["code"],
                         400)

    def test_ended(self):
        """
        The daemon's last answer (C{ended}) is sent, then an C{end} event,
        and the stream finishes.
        """
        request = self.follow()
        self.answer(result={"data": b"bye\n", "offset": 5.0, "next_offset": 9.0,
                            "ended": True})
        self.assertEqual([e[1] for e in events(request)], ["data", "end"])
        self.assertTrue(events(request)[0][2]["ended"])
        self.assertTrue(request.finished)
        self.assertEqual(len(self.table), 0)

    def test_failure(self):
        """
        A fault ends the stream with a C{failure} event carrying its code.
        """
        request = self.follow()
        self.answer(error={"code": 1001, "message": "no such file: out.log"})
        [(_, name, data)] = events(request)
        self.assertEqual((name, data["code"]), ("failure", 1001))
        self.assertTrue(request.finished)

    def test_jobEnded(self):
        """
        A job that ended before the query: a C{failure} event with 411.
        """
        request = self.follow()
        self.hub.unregisterJob(ALICE, "job.1")
        [(_, name, data)] = events(request)
        self.assertEqual((name, data["code"]), ("failure", JOB_ENDED))

    def test_browserGone(self):
        """
        A browser that goes away withdraws the pending query and stops the
        keep-alives.
        """
        request = self.follow()
        self.assertEqual(len(self.table), 1)
        request.processingFailed(Exception("gone"))
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keepalive(self):
        """
        While the file is quiet, a comment every 15 s (so that a browser
        gone is noticed).
        """
        request = self.follow()
        written = len(request.written)
        self.clock.advance(15)
        self.assertEqual(request.written[written:], [b": keep-alive\n\n"])
        request.processingFailed(Exception("gone"))

    def test_othersJob(self):
        """
        Bob cannot follow Alice's file: a C{failure} event with 404.
        """
        request = self.follow(who=BOB)
        self.assertEqual(events(request)[0][2]["code"], 404)
        self.assertEqual(len(self.table), 0)

    def test_needsPath(self):
        """
        A follow without a path is 400.
        """
        self.assertEqual(self.json(self.follow("job=job.1"), 400)["code"], 400)

    def test_eventFraming(self):
        """
        An event is its id, name and one line of JSON, then a blank line,
        whatever the data holds.
        """
        self.assertEqual(event("data", {"text": "a\n\nb"}, 7),
                         b'id: 7\nevent: data\ndata: {"text":"a\\n\\nb"}\n\n')

    def test_realSiteFlushes(self):
        """
        Through a real L{Site}, each event is on the wire as soon as it is
        known (chunked, not buffered).
        """
        site = Site(self.root)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /api/follow?job=job.1&path=out.log HTTP/1.1\r\n"
                             b"Host: jobmon.test\r\nX-Test-DN: " + ALICE.dn.encode() +
                             b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", transport.value())
        self.answer(result={"data": b"line\n", "offset": 0.0, "next_offset": 5.0})
        self.assertIn(b'id: 5\nevent: data\ndata: {"offset":0.0', transport.value())
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.table), 0)


class FollowExactNameTests(WebTestCase):
    """
    A file whose name is not UTF-8 is followed by its bytes.
    """

    def test_pathBytes(self):
        """
        C{path_base64} is sent as the exact name.
        """
        self.register()
        self.request("/api/follow?job=job.1&path_base64=%2Fy4%3D&offset=0")
        self.assertEqual(self.answer(result={"data": b""})["path"], b"\xff.")

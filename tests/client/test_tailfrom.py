"""
L{JobMonClient.tail} with C{fromLine} (C{tail -n +N}).
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon import client, errors
from jobmon.client import ClientError
from jobmon.errors import JobMonError
from tests.client import test_client


class TailFromTests(SynchronousTestCase):
    """
    The request C{tail(fromLine=N)} sends, and what it does with an older
    daemon's answer.
    """

    setUp = test_client.OpRequestTests.setUp
    sent = test_client.OpRequestTests.sent

    def test_request(self):
        """
        C{from_line} is sent alone; the offsets come back as ints.
        """
        self.answer = {"data": b"x\n", "offset": 4.0, "size": 6.0, "truncated": False,
                       "from_line": 2.0}
        request, _, result = self.sent("tail", "f", fromLine=2)
        self.assertEqual(request, {"op": "tail", "path": "f", "from_line": 2, "timeout": 7.0})
        self.assertEqual((result["offset"], result["size"]), (4, 6))

    def test_notWithLinesOrBytes(self):
        """
        C{fromLine} with C{lines} or C{bytes} is refused before sending.
        """
        for kw in ({"lines": 3}, {"bytes": 3}):
            e = self.assertRaises(ClientError, self.client.tail, "1", "f", fromLine=2, **kw)
            self.assertEqual(e.code, client.BAD_ARGUMENT)
        self.assertEqual(self.calls, [])

    def test_oldDaemon(self):
        """
        A daemon that does not know C{from_line} ignores it and answers
        with the last lines: no C{from_line} in the result, and the client
        raises L{errors.UNSUPPORTED_OP} rather than return the wrong lines.
        """
        self.answer = {"data": b"last\n", "offset": 9.0, "size": 14.0, "truncated": False}
        e = self.assertRaises(JobMonError, self.client.tail, "1.0", "f", fromLine=2)
        self.assertEqual(e.code, errors.UNSUPPORTED_OP)
        self.assertIn("too old", e.message)

    def test_intSubclass(self):
        """
        A subclass of int (the command line's count of C{+N}) is sent as a
        plain int, which XML-RPC can carry.
        """
        import xmlrpc.client

        class Count(int):
            pass

        self.answer = {"data": b"", "offset": 0.0, "size": 0.0, "from_line": 2.0}
        request, _, _ = self.sent("tail", "f", fromLine=Count(2))
        self.assertIs(type(request["from_line"]), int)
        xmlrpc.client.dumps((request,))

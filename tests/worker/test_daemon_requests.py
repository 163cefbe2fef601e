"""
Tests for the job daemon serving requests sent on its TCP wake channel: run
as fetched ones, answered on the channel while it is up, over HTTPS
otherwise.
"""

import json
import xmlrpc.client

from jobmon import errors
from jobmon.protocols.wake import encodeRequest
from jobmon.worker import daemon as daemonModule
from jobmon.worker.operations import FOLLOW_CHECK_INTERVAL
from tests.worker.test_ending import DaemonEndCase, follow


def results(transport):
    """
    Return and clear the results the daemon sent on the channel, as
    C{(requestId, result or error struct)}.
    """
    data = transport.value()
    transport.clear()
    found = []
    while data:
        line, data = data.split(b"\n", 1)
        message = json.loads(line)
        if message["type"] != "result":
            continue
        if "error" in message:
            found.append((message["id"], {"error": message["error"]}))
            continue
        body, data = data[:message["length"]], data[message["length"]:]
        (value,), _ = xmlrpc.client.loads(body, use_builtin_types=True)
        found.append((message["id"], value))
    return found


class ChannelRequestTests(DaemonEndCase):
    """
    A TCP daemon welcomed by a server that sends requests on the channel.
    """

    def startTCP(self, operations=None):
        daemon = self.daemon(operations=operations)
        daemon.startService()
        protocol, transport = self.connections[-1]
        hello = json.loads(transport.value().splitlines()[0])
        self.assertEqual(hello["features"], ["requests"])
        protocol.dataReceived(b'{"type":"welcome","keepalive":10,"requests":true}\n')
        transport.clear()
        self.transport = transport
        return daemon, protocol

    def send(self, protocol, *items):
        for item in items:
            protocol.dataReceived(encodeRequest(item["id"], item["request"]) + b"\n")

    def test_answeredOnChannel(self):
        """
        Requests on the channel run and are answered on it, errors
        included; nothing is fetched or posted over HTTPS.
        """
        daemon, protocol = self.startTCP()
        self.send(protocol,
                  {"id": "r1", "request": {"op": "tail", "path": "log.txt", "lines": 1}},
                  {"id": "r2", "request": {"op": "cat", "path": "missing"}},
                  {"id": "r3", "request": ["not", "a", "struct"]})
        got = dict(results(self.transport))
        self.assertEqual(got["r1"]["data"], b"two\n")
        self.assertEqual(got["r2"]["error"]["code"], errors.NO_SUCH_FILE)
        self.assertEqual(got["r3"]["error"]["code"], errors.BAD_REQUEST)
        self.assertEqual(self.rpc.methods(), ["jobmon.registerJob"])
        d = daemon.stopService()
        protocol.connectionLost(None)
        self.successResultOf(d)

    def test_followHeld(self):
        """
        A follow on the channel waits for its file to grow, then answers on
        the channel.
        """
        daemon, protocol = self.startTCP()
        self.send(protocol, follow(8))
        self.clock.advance(2)
        self.assertEqual(results(self.transport), [])
        self.write(b"three\n")
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        [(rid, result)] = results(self.transport)
        self.assertEqual((rid, result["data"]), ("r1", b"three\n"))
        d = daemon.stopService()
        protocol.connectionLost(None)
        self.successResultOf(d)

    def test_followAtEnd(self):
        """
        A follow waiting when the job ends is answered on the channel with
        the last bytes before the job is unregistered; the follower coming
        back is served on the channel too.
        """
        daemon, protocol = self.startTCP(self.operations(maxResult=4))
        self.send(protocol, follow(8))
        self.write(b"three\n")
        d = daemon.stopService()
        [(_, first)] = results(self.transport)
        self.assertEqual((first["data"], first["truncated"]), (b"thre", True))
        self.assertNotIn("jobmon.unregisterJob", self.rpc.methods())
        self.clock.advance(0.1)
        self.send(protocol, follow(12, "r2"))
        [(rid, second)] = results(self.transport)
        self.assertEqual((rid, second["data"]), ("r2", b"e\n"))
        self.clock.advance(daemonModule.COME_BACK)
        self.assertEqual(self.rpc.methods(), ["jobmon.registerJob", "jobmon.unregisterJob"])
        protocol.connectionLost(None)
        self.successResultOf(d)
        self.assertQuiet()

    def test_channelLostBeforeAnswer(self):
        """
        A result ready after its channel was lost is posted over HTTPS.
        """
        daemon, protocol = self.startTCP()
        self.send(protocol, follow(8))
        protocol.connectionLost(None)
        self.write(b"three\n")
        self.clock.advance(FOLLOW_CHECK_INTERVAL)
        [post] = self.posts()
        self.assertEqual(post["data"], b"three\n")
        d = daemon.stopService()
        self.successResultOf(d)

    def test_ignoredWhileStopping(self):
        """
        Requests sent once the daemon is stopping are not run (the server
        fails them when the job unregisters).
        """
        daemon, protocol = self.startTCP()
        self.rpc.answers["jobmon.unregisterJob"] = "hang"
        d = daemon.stopService()
        self.send(protocol, {"id": "r1", "request": {"op": "ls"}})
        self.assertEqual(results(self.transport), [])
        self.rpc.pending.pop().callback(True)
        protocol.connectionLost(None)
        self.successResultOf(d)

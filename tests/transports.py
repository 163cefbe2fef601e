"""
String transports standing for the server's connections in unit tests of
its HTTP channels.
"""

from twisted.internet.interfaces import INegotiated
from twisted.internet.testing import StringTransport
from zope.interface import implementer


class SlowReader(StringTransport):
    """
    A transport whose client does not read: past C{threshold} bytes
    written, it pauses its producer (as a TCP transport does when its
    buffer fills) until the test drains it.
    """

    threshold = 100
    drained = 0
    full = False

    def write(self, data):
        super().write(data)
        if len(self.value()) - self.drained > self.threshold and not self.full:
            self.full = True
            self.producer.pauseProducing()

    def drain(self):
        """
        The client read everything: resume the producer.
        """
        self.drained = len(self.value())
        self.full = False
        self.producer.resumeProducing()


@implementer(INegotiated)
class TLSTransport(StringTransport):
    """
    A transport standing for a TLS connection, handshake not done.
    """

    negotiatedProtocol = None

    def setTcpNoDelay(self, enabled):
        """
        Accept the HTTP channel's setting.
        """

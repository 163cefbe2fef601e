"""
TLS connections for the client, made with the C modules C{_ssl} and
C{_socket} that the standard library's C{ssl} and C{socket} wrap.

Importing C{ssl} (which imports C{socket}) costs more than a third of
C{jobmon-query}'s own start-up, nearly all of it in building C{enum}
classes for constants the client never looks at.  The TLS itself is the
same: L{newContext} is the C{_SSLContext} that C{ssl.SSLContext(
ssl.PROTOCOL_TLS_CLIENT)} is (it verifies the server's certificate and host
name by default); L{connect} does what C{socket.create_connection} and
C{SSLContext.wrap_socket(sock, server_hostname=host)} do, with the same
OpenSSL calls; and L{TLSSocket} reads and writes as C{ssl.SSLSocket} does
(C{suppress_ragged_eofs}: an EOF without close_notify reads as the end of
the data).  The exceptions are the standard library's own classes:
C{ssl.SSLError} and its subclasses are C{_ssl}'s, re-exported here,
C{socket.gaierror} is C{_socket.gaierror}, and timeouts raise
C{TimeoutError}.

C{_ssl}'s context and socket methods are what the C{ssl} module calls;
C{_wrap_socket} is private but has kept its signature since Python 3.7.
"""

import _socket
import _ssl
import io

SSLError = _ssl.SSLError
SSLCertVerificationError = _ssl.SSLCertVerificationError
SSLEOFError = _ssl.SSLEOFError
SSLZeroReturnError = _ssl.SSLZeroReturnError
gaierror = _socket.gaierror
CERT_REQUIRED = _ssl.CERT_REQUIRED

_BUFFER = io.DEFAULT_BUFFER_SIZE


class _Socket(_socket.socket):
    """
    A socket C{_ssl} can wrap: it keeps a weak reference to it, which
    C{_socket.socket} itself does not allow (C{socket.socket} adds the slot
    too).
    """

    __slots__ = ("__weakref__",)


def newContext():
    """
    A client context, as C{ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)} makes
    it: the server's certificate and host name are checked.  Its methods
    (C{load_verify_locations}, C{load_cert_chain}...) and attributes
    (C{check_hostname}, C{verify_mode}) are C{ssl.SSLContext}'s.
    """
    return _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)


def _tcp(host, port, timeout):
    """
    C{socket.create_connection((host, port), timeout)}: try each address
    in turn, raise the last error.
    """
    error = None
    for family, kind, proto, _, address in _socket.getaddrinfo(
            host, port, 0, _socket.SOCK_STREAM):
        sock = None
        try:
            sock = _Socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as e:
            error = e
            if sock is not None:
                sock.close()
    if error is None:
        raise OSError("getaddrinfo returns an empty list")
    try:
        raise error
    finally:
        error = None


def connect(host, port, timeout, context):
    """
    Open a TCP connection to C{host} and C{port} (with C{TCP_NODELAY}) and
    make the TLS handshake, checking the server's certificate for C{host}.

    The name goes to the resolver as ASCII bytes, which spares the C{idna}
    codec (and C{unicodedata}) its import; a non-ASCII one goes as it did
    through C{ssl} and C{socket}.

    @return: a L{TLSSocket}.
    """
    try:
        resolve = host.encode("ascii")
        name = host
    except UnicodeError:
        resolve = host
        name = host.encode("idna").decode("ascii")
    sock = _tcp(resolve, port, timeout)
    try:
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        tls = context._wrap_socket(sock, False, name)
        tls.do_handshake()
    except BaseException:
        sock.close()
        raise
    return TLSSocket(sock, tls)


class TLSSocket:
    """
    A TLS connection: what the client uses of C{ssl.SSLSocket}.
    """

    def __init__(self, sock, tls):
        self._sock = sock
        self._tls = tls

    def fileno(self):
        """
        The socket's file descriptor (for C{select}).
        """
        return self._sock.fileno()

    def settimeout(self, timeout):
        """
        Seconds each read or write may wait.
        """
        self._sock.settimeout(timeout)

    def pending(self):
        """
        Decrypted bytes waiting to be read.
        """
        return self._tls.pending()

    def sendall(self, data):
        """
        Write all of C{data}.
        """
        with memoryview(data) as view, view.cast("B") as octets:
            count = 0
            while count < len(octets):
                count += self._tls.write(octets[count:])

    def recv_into(self, buffer):
        """
        Read into C{buffer}: the number of bytes read, 0 at the end.
        """
        try:
            return self._tls.read(len(buffer), buffer)
        except SSLError as e:
            if e.args[0] == _ssl.SSL_ERROR_EOF:
                return 0
            raise

    def makefile(self, mode="rb"):
        """
        A buffered binary reader of the connection (C{readline},
        C{read}); closing it leaves the connection open.
        """
        if mode != "rb":
            raise ValueError("only mode 'rb' is supported")
        return io.BufferedReader(_Raw(self), _BUFFER)

    def close(self):
        """
        Close the connection (without a TLS close_notify, as
        C{ssl.SSLSocket.close} does).
        """
        self._sock.close()


class _Raw(io.RawIOBase):
    """
    The unbuffered reader under L{TLSSocket.makefile}.
    """

    def __init__(self, sock):
        self._sock = sock

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._sock.recv_into(buffer)

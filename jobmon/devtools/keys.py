"""
Keys and key files for the throwaway PKI and token issuer: new keys, and
files written atomically with the right mode.
"""

import os
import tempfile

from cryptography.hazmat.primitives.asymmetric import ec, rsa


def writeFile(path, data, mode):
    """
    Write C{data} to C{path} atomically, with permission bits C{mode}.

    The data goes to a temporary file in the same directory, created 0600,
    that is renamed over C{path}: a private key is never readable by
    others, even for a moment, and readers never see half a proxy.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".jobmon-pki-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def newKey(keyType):
    """
    Make a private key: C{"ec"} (P-256, fast) or C{"rsa"} (2048 bits).
    """
    if keyType == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if keyType == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("unknown key type %r (use 'ec' or 'rsa')" % (keyType,))

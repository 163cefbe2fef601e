"""
Tests for encrypted user keys in L{jobmon.client.credential}: the pass
phrase is asked for on the terminal, and a missing or wrong one is said in
words, not as an OpenSSL error.
"""

import getpass
import os

from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SynchronousTestCase

from jobmon.client import credential
from jobmon.client.credential import _Credential, askPassPhrase
from jobmon.client.errors import BAD_CREDENTIAL, ClientError
from jobmon.devtools import pki


class PassPhraseTests(SynchronousTestCase):
    """
    A user certificate with an encrypted key (C{--proxy usercert.pem --key
    userkey.pem}).
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        self.pki = pki.initPKI(os.path.join(base, "pki"), users=("alice",))
        alice = self.pki.users["alice"]
        self.cert = alice.certPath
        with open(alice.keyPath, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        self.key = os.path.join(base, "userkey.pem")
        with open(self.key, "wb") as f:
            f.write(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"right"),
            ))
        self.prompts = []

    def terminal(self, answer):
        """
        Pretend to have a terminal where the user types C{answer}.
        """
        self.patch(credential, "_terminal", lambda: True)

        def ask(prompt):
            self.prompts.append(prompt)
            return answer

        self.patch(getpass, "getpass", ask)

    def test_noTerminal(self):
        """
        Without a terminal, the message says the key is encrypted and how
        to give a pass phrase.
        """
        self.patch(credential, "_terminal", lambda: False)
        error = self.assertRaises(ClientError, _Credential(self.cert, self.key,
                                                           self.pki.ca.hashedDir).context)
        self.assertEqual(error.code, BAD_CREDENTIAL)
        self.assertEqual(
            str(error),
            "{} is encrypted; give a pass phrase at a terminal (jobmon-query asks for it "
            "there), or use a proxy instead (voms-proxy-init or grid-proxy-init)".format(self.key),
        )

    def test_wrong(self):
        """
        A wrong pass phrase is called that.
        """
        self.terminal("wrong")
        error = self.assertRaises(ClientError, _Credential(self.cert, self.key,
                                                           self.pki.ca.hashedDir).context)
        self.assertEqual(error.code, BAD_CREDENTIAL)
        self.assertEqual(str(error), "wrong pass phrase for {}".format(self.key))
        self.assertEqual(self.prompts, ["Pass phrase for {}: ".format(self.key)])

    def test_right(self):
        """
        The right pass phrase opens the key, asked once.
        """
        self.terminal("right")
        cred = _Credential(self.cert, self.key, self.pki.ca.hashedDir)
        self.assertIsNotNone(cred.context())
        cred.context()
        self.assertEqual(len(self.prompts), 1)

    def test_plainKeyNotAsked(self):
        """
        A key that is not encrypted asks nothing.
        """
        self.terminal("unused")
        alice = self.pki.users["alice"]
        _Credential(alice.certPath, alice.keyPath, self.pki.ca.hashedDir).context()
        self.assertEqual(self.prompts, [])

    def test_askPassPhrase(self):
        """
        L{askPassPhrase} asks with the key's name, or refuses without a
        terminal.
        """
        self.assertEqual(askPassPhrase("k.pem", terminal=True, ask=lambda p: p),
                         "Pass phrase for k.pem: ")
        self.assertRaises(ClientError, askPassPhrase, "k.pem", terminal=False)

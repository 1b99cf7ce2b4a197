"""Keys and frame encryption for password-protected connections (sans-IO).

Built from `cryptography`'s primitives, nothing home-made:

* the password becomes a 32-byte pre-shared key once per process, with
  scrypt (n=2**15, r=8, p=1), so each guess in an offline attack costs about
  as much as a login;
* every connection does an ephemeral X25519 exchange; HKDF-SHA256 mixes the
  shared secret with the pre-shared key (as the salt) and the SHA-256 of both
  hello messages (as the info: both names, uids, connection ids and public
  keys), and yields four keys: one AEAD key per direction and one
  confirmation key per side;
* each side proves it derived the same keys with an HMAC-SHA256 of the
  transcript under its confirmation key, before any payload moves;
* every later frame is sealed with ChaCha20-Poly1305, the nonce being a
  per-direction frame counter, so a frame that is replayed, reordered,
  dropped or forged fails to open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256

from .framing import AuthenticationError

# cryptography is imported where it is used: a peer without a password never needs
# it, and importing it is a tenth of a peer's start-up.

__all__ = [
    "KEY_SIZE",
    "TAG_SIZE",
    "Ephemeral",
    "Keys",
    "Session",
    "confirmation",
    "derive_keys",
    "derive_psk",
]

KEY_SIZE = 32
TAG_SIZE = 16
_PSK_SALT = b"weavek-tcp/1 password"
_KEYS_INFO = b"weavek-tcp/1 keys "


@lru_cache(maxsize=8)
def derive_psk(password: bytes) -> bytes:
    """The pre-shared key every peer with ``password`` derives (slow on purpose; cached)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    # A fixed salt: every peer must derive the same key and there is nowhere to share a salt.
    return Scrypt(salt=_PSK_SALT, length=KEY_SIZE, n=2**15, r=8, p=1).derive(password)


class Ephemeral:
    """One side's X25519 key pair for one connection."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's public key."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError as e:  # a low-order point gives an all-zero secret
            raise AuthenticationError(f"bad public key: {e}") from e


@dataclass(frozen=True, slots=True)
class Keys:
    """What one connection's key schedule yields."""

    initiator_to_responder: bytes
    responder_to_initiator: bytes
    initiator_confirm: bytes
    responder_confirm: bytes


def derive_keys(psk: bytes, shared: bytes, transcript: bytes) -> Keys:
    """Expand the X25519 secret, the password key and the transcript hash into four keys."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    okm = HKDF(
        algorithm=hashes.SHA256(), length=4 * KEY_SIZE, salt=psk, info=_KEYS_INFO + transcript
    ).derive(shared)
    k = [okm[i : i + KEY_SIZE] for i in range(0, 4 * KEY_SIZE, KEY_SIZE)]
    return Keys(k[0], k[1], k[2], k[3])


def confirmation(key: bytes, transcript: bytes) -> bytes:
    """The MAC a side sends to prove it holds the keys (and so the password)."""
    return hmac.new(key, b"weavek-tcp/1 confirm " + transcript, sha256).digest()


class Session:
    """Seals outgoing and opens incoming frames of one connection, in order."""

    def __init__(self, send_key: bytes, receive_key: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self._invalid_tag = InvalidTag
        self._send = ChaCha20Poly1305(send_key)
        self._receive = ChaCha20Poly1305(receive_key)
        self._sent = 0
        self._received = 0

    @staticmethod
    def _nonce(counter: int) -> bytes:
        # Counters never wrap in practice (2**64 frames); a fresh key per connection
        # means (key, nonce) is never reused.
        return b"\0\0\0\0" + counter.to_bytes(8, "big")

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate the next outgoing frame."""
        out = self._send.encrypt(self._nonce(self._sent), plaintext, None)
        self._sent += 1
        return out

    def open(self, ciphertext: bytes) -> bytes:
        """Decrypt the next incoming frame; a forged or out-of-order frame raises."""
        try:
            out = self._receive.decrypt(self._nonce(self._received), ciphertext, None)
        except self._invalid_tag as e:
            raise AuthenticationError("frame failed authentication") from e
        self._received += 1
        return out

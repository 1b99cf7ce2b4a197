"""Length-prefixed frames on a byte stream (sans-IO).

Every frame is a 4-byte big-endian length ``N`` then ``N`` bytes. Before the
handshake completes a frame may be at most :data:`MAX_HANDSHAKE_FRAME`
bytes; afterwards at most :data:`MAX_FRAME` (room for the kernel codec's
largest message plus our header and the AEAD tag). A length over the limit
is refused *before* anything is buffered, so a stranger cannot make us
allocate memory by announcing a huge frame.

:class:`ProtocolError` is the one exception the sans-IO modules raise for bad
input from the wire; the transport drops the connection on it.
"""

from __future__ import annotations

import struct

from weavek.core.codec import MAX_MESSAGE

__all__ = [
    "LENGTH",
    "MAX_FRAME",
    "MAX_HANDSHAKE_FRAME",
    "AuthenticationError",
    "FrameDecoder",
    "ProtocolError",
    "encode_frame",
]

LENGTH = struct.Struct(">I")
MAX_HANDSHAKE_FRAME = 64 * 1024
MAX_FRAME = MAX_MESSAGE + 1024
"""The kernel's largest payload, plus a message header and the AEAD tag."""


class ProtocolError(Exception):
    """The peer sent something we cannot accept; the connection must be dropped."""


class AuthenticationError(ProtocolError):
    """The peer could not prove it knows the password (or a frame was forged)."""


def encode_frame(body: bytes, max_size: int = MAX_FRAME) -> bytes:
    """Prefix ``body`` with its length; refuse what the other side would refuse."""
    if len(body) > max_size:
        raise ValueError(f"frame of {len(body)} bytes exceeds {max_size} bytes")
    return LENGTH.pack(len(body)) + body


class FrameDecoder:
    """Splits received bytes into frames, enforcing a maximum frame size.

    Feed bytes with :meth:`feed`, take complete frames with :meth:`next_frame`.
    :attr:`max_size` may be raised once the peer is authenticated.
    """

    def __init__(self, max_size: int = MAX_HANDSHAKE_FRAME) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Append bytes read from the stream."""
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes arrive."""
        if len(self._buffer) < LENGTH.size:
            return None
        (size,) = LENGTH.unpack_from(self._buffer)
        if size > self.max_size:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self.max_size}")
        end = LENGTH.size + size
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[LENGTH.size : end])
        del self._buffer[:end]
        return frame

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned frame."""
        return len(self._buffer)

"""The connection handshake, as a state machine with no I/O.

Both sides send a *hello* frame as soon as the TCP connection is up:

======  =====  ===========================================================
bytes   field  meaning
======  =====  ===========================================================
6       magic  ``b"weavek"``
1       vmin   lowest protocol version we speak
1       vmax   highest protocol version we speak
1       flags  bit 0: we have a password (the connection must be encrypted)
6       name   our 48-bit peer name
8       uid    random per process: tells a restart or a name clash apart
8       conn   random per connection: settles duplicate connections
2       port   the port we listen on (0: we accept no connections)
1+n     nick   our nickname, UTF-8
32      key    with flag bit 0 only: our ephemeral X25519 public key
======  =====  ===========================================================

The magic and the version range come first and keep their place in every
version, so any release can refuse an incompatible one with a clear reason.
The highest common version is used (only version 1 exists).

Without passwords, the handshake is done once the hellos are exchanged. With
a password on both sides, each side then sends a 32-byte *confirm* frame
(:func:`weavek_tcp.crypto.confirmation`) and checks the other's; a wrong
password fails here, before any payload. A password on one side only is
refused. Everything raises :class:`~weavek_tcp.framing.ProtocolError` (or
its :class:`~weavek_tcp.framing.AuthenticationError`).
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass
from hashlib import sha256

from .crypto import Ephemeral, Session, confirmation, derive_keys
from .framing import AuthenticationError, ProtocolError

__all__ = ["MAGIC", "PROTOCOL_MAX", "PROTOCOL_MIN", "Handshake", "Hello", "decode_hello"]

MAGIC = b"weavek"
PROTOCOL_MIN = 1
PROTOCOL_MAX = 1
_FIXED = struct.Struct(">6sBBB6sQQH")
_FLAG_PASSWORD = 0x01
_KEY = 32


@dataclass(frozen=True, slots=True)
class Hello:
    """What each side says about itself first."""

    name: int
    uid: int
    conn_id: int
    port: int
    nickname: str
    public_key: bytes | None = None
    """Present exactly when the sender has a password."""
    vmin: int = PROTOCOL_MIN
    vmax: int = PROTOCOL_MAX

    def encode(self) -> bytes:
        """The hello frame's body."""
        flags = _FLAG_PASSWORD if self.public_key is not None else 0
        nick = self.nickname.encode()[:255].decode(errors="ignore").encode()
        fixed = _FIXED.pack(
            MAGIC,
            self.vmin,
            self.vmax,
            flags,
            self.name.to_bytes(6, "big"),
            self.uid,
            self.conn_id,
            self.port,
        )
        return fixed + bytes([len(nick)]) + nick + (self.public_key or b"")


def decode_hello(data: bytes) -> Hello:
    """Parse a hello frame, refusing strangers and incompatible versions."""
    if len(data) < 8 or data[:6] != MAGIC:
        raise ProtocolError("not a weavek peer (bad magic)")
    vmin, vmax = data[6], data[7]
    if vmin > vmax or vmax < PROTOCOL_MIN or vmin > PROTOCOL_MAX:
        raise ProtocolError(
            f"incompatible protocol versions: peer speaks {vmin}..{vmax}, "
            f"we speak {PROTOCOL_MIN}..{PROTOCOL_MAX}"
        )
    if len(data) < _FIXED.size + 1:
        raise ProtocolError("truncated hello")
    _, _, _, flags, name, uid, conn_id, port = _FIXED.unpack_from(data)
    nick_end = _FIXED.size + 1 + data[_FIXED.size]
    if nick_end > len(data):
        raise ProtocolError("truncated hello")
    try:
        nickname = data[_FIXED.size + 1 : nick_end].decode()
    except UnicodeDecodeError as e:
        raise ProtocolError("nickname is not UTF-8") from e
    rest = data[nick_end:]
    key_len = _KEY if flags & _FLAG_PASSWORD else 0
    if len(rest) != key_len:
        raise ProtocolError("malformed hello")
    return Hello(
        name=int.from_bytes(name, "big"),
        uid=uid,
        conn_id=conn_id,
        port=port,
        nickname=nickname,
        public_key=rest if key_len else None,
        vmin=vmin,
        vmax=vmax,
    )


class State(enum.Enum):
    """Where a handshake is."""

    AWAIT_HELLO = "await hello"
    AWAIT_CONFIRM = "await confirm"
    DONE = "done"


class Handshake:
    """One side of one connection's handshake.

    Send :meth:`hello` first; feed the peer's frames to :meth:`receive` until
    :attr:`state` is ``DONE``, sending whatever it returns. Then
    :attr:`peer`, :attr:`link_id` and :attr:`session` (None without a
    password) describe the connection.
    """

    def __init__(self, mine: Hello, *, initiator: bool, psk: bytes | None) -> None:
        self.initiator = initiator
        self._psk = psk
        self._ephemeral = Ephemeral() if psk is not None else None
        if self._ephemeral is not None:
            mine = Hello(mine.name, mine.uid, mine.conn_id, mine.port, mine.nickname,
                         self._ephemeral.public, mine.vmin, mine.vmax)  # fmt: skip
        self.mine = mine
        self._hello = mine.encode()
        self.state = State.AWAIT_HELLO
        self.peer: Hello | None = None
        self.version = 0
        self.session: Session | None = None
        self._expect = b""

    def hello(self) -> bytes:
        """Our hello frame's body."""
        return self._hello

    @property
    def link_id(self) -> int:
        """The same number on both ends of this connection: both conn ids, combined."""
        assert self.peer is not None
        return self.mine.conn_id ^ self.peer.conn_id

    def receive(self, frame: bytes) -> bytes | None:
        """Take the peer's next handshake frame; return a frame body to send, if any."""
        if self.state is State.AWAIT_HELLO:
            return self._on_hello(frame)
        if self.state is State.AWAIT_CONFIRM:
            if not hmac.compare_digest(frame, self._expect):
                raise AuthenticationError("key confirmation failed")
            self.state = State.DONE
            return None
        raise ProtocolError("handshake already complete")

    def _on_hello(self, frame: bytes) -> bytes | None:
        peer = decode_hello(frame)
        self.peer = peer
        self.version = min(peer.vmax, PROTOCOL_MAX)
        theirs = peer.public_key is not None
        if self._ephemeral is None and theirs:
            raise ProtocolError("peer requires a password and we have none")
        if self._ephemeral is not None and not theirs:
            raise ProtocolError("peer has no password and we require one")
        if self._ephemeral is None or self._psk is None or peer.public_key is None:
            self.state = State.DONE
            return None
        first, second = (self._hello, frame) if self.initiator else (frame, self._hello)
        transcript = sha256(
            len(first).to_bytes(4, "big") + first + len(second).to_bytes(4, "big") + second
        ).digest()
        keys = derive_keys(self._psk, self._ephemeral.exchange(peer.public_key), transcript)
        i2r, r2i = keys.initiator_to_responder, keys.responder_to_initiator
        if self.initiator:
            self.session = Session(send_key=i2r, receive_key=r2i)
            ours, self._expect = keys.initiator_confirm, keys.responder_confirm
        else:
            self.session = Session(send_key=r2i, receive_key=i2r)
            ours, self._expect = keys.responder_confirm, keys.initiator_confirm
        self._expect = confirmation(self._expect, transcript)
        self.state = State.AWAIT_CONFIRM
        return confirmation(ours, transcript)

"""The messages inside frames once a connection is up (sans-IO).

A message is one tag byte then a body; integers are big-endian, peer names
are 6 bytes, text is a length byte then UTF-8:

====  ==========  ============================================================
tag   message     body
====  ==========  ============================================================
0     Heartbeat   (empty): keeps an idle connection alive
1     Topology    version(1)=1, origin(6), seq(8), nick, count(2),
                  count x [name(6), port(2), host]: the origin's connections
2     Broadcast   origin(6), id(8), hops(1), payload: flooded to everyone
3     Unicast     src(6), dst(6), hops(1), payload: routed hop by hop
4     Gossip      payload: for the receiving neighbour only
5     Close       reason (UTF-8, rest of the frame): why the sender hangs up
====  ==========  ============================================================

Payloads are the kernel's opaque bytes and are never looked into. A tag or a
topology version this code does not know decodes to None and is ignored, so
a later release can add messages without breaking this one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .framing import ProtocolError

__all__ = [
    "MAX_HOPS",
    "TOPOLOGY_VERSION",
    "Broadcast",
    "Close",
    "Gossip",
    "Heartbeat",
    "Message",
    "Neighbour",
    "Topology",
    "Unicast",
    "clip",
    "decode_message",
    "encode_message",
]

TOPOLOGY_VERSION = 1
MAX_HOPS = 64
"""A relayed message dies after this many hops, whatever the routing tables say."""

_NAME = struct.Struct(">Q")  # a peer name is the low 6 bytes of this


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing: proves the connection is alive."""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One direct connection of a topology report's origin, and where to dial that peer."""

    name: int
    host: str
    port: int
    """The neighbour's listening port, 0 when it does not accept connections."""


@dataclass(frozen=True, slots=True)
class Topology:
    """``origin``'s direct connections; a higher ``seq`` replaces a lower one."""

    origin: int
    seq: int
    nickname: str
    neighbours: tuple[Neighbour, ...]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A payload for every peer, flooded; ``(origin, msg_id)`` is seen once."""

    origin: int
    msg_id: int
    hops: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Unicast:
    """A payload for ``dst``, relayed along shortest paths."""

    src: int
    dst: int
    hops: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Gossip:
    """A payload for the receiving neighbour only; never relayed."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The sender is about to close the connection, and says why."""

    reason: str


Message = Heartbeat | Topology | Broadcast | Unicast | Gossip | Close


def _name(value: int) -> bytes:
    if not 0 <= value < 1 << 48:
        raise ValueError(f"peer name {value} out of range")
    return _NAME.pack(value)[2:]


def clip(text: str, limit: int = 255) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _text(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"text of {len(raw)} bytes exceeds 255 bytes")
    return bytes([len(raw)]) + raw


def encode_message(msg: Message) -> bytes:
    """The tag byte and body of ``msg``."""
    match msg:
        case Heartbeat():
            return b"\x00"
        case Topology(origin, seq, nickname, neighbours):
            parts = [b"\x01", bytes([TOPOLOGY_VERSION]), _name(origin), struct.pack(">Q", seq)]
            parts += [_text(nickname), struct.pack(">H", len(neighbours))]
            for n in neighbours:
                parts += [_name(n.name), struct.pack(">H", n.port), _text(n.host)]
            return b"".join(parts)
        case Broadcast(origin, msg_id, hops, payload):
            return b"\x02" + _name(origin) + struct.pack(">QB", msg_id, hops) + payload
        case Unicast(src, dst, hops, payload):
            return b"\x03" + _name(src) + _name(dst) + bytes([hops]) + payload
        case Gossip(payload):
            return b"\x04" + payload
        case Close(reason):
            return b"\x05" + reason.encode()
    raise TypeError(f"not a message: {msg!r}")  # pragma: no cover


class _Reader:
    """Reads fields off a body, turning any shortfall into a ProtocolError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError("truncated message")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def text(self) -> str:
        raw = self.take(self.int(1))
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise ProtocolError("text is not UTF-8") from e

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError("trailing bytes after message")


def decode_message(data: bytes) -> Message | None:
    """Parse one frame's message; None for a kind this code does not know."""
    r = _Reader(data)
    tag = r.int(1)
    if tag == 0:
        r.end()
        return Heartbeat()
    if tag == 1:
        if r.int(1) != TOPOLOGY_VERSION:
            return None
        origin, seq, nickname = r.int(6), r.int(8), r.text()
        neighbours = tuple(
            Neighbour(name=r.int(6), port=r.int(2), host=r.text()) for _ in range(r.int(2))
        )
        r.end()
        return Topology(origin, seq, nickname, neighbours)
    if tag == 2:
        return Broadcast(origin=r.int(6), msg_id=r.int(8), hops=r.int(1), payload=r.rest())
    if tag == 3:
        return Unicast(src=r.int(6), dst=r.int(6), hops=r.int(1), payload=r.rest())
    if tag == 4:
        return Gossip(r.rest())
    if tag == 5:
        try:
            return Close(r.rest().decode())
        except UnicodeDecodeError as e:
            raise ProtocolError("close reason is not UTF-8") from e
    return None

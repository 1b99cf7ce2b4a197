"""What an allocator asks its shell to do: the effects it returns.

:meth:`weavek.core.allocator.Allocator.handle` returns a list of these, in the
order they must be carried out. The order matters for safety: a
:class:`SaveRing` or :class:`Allocated` comes before the :class:`Reply` or the
:class:`Broadcast` that depends on it, so nothing is acknowledged or told to
other peers before it is durable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .address import CIDR, Range
from .messages import RingData

__all__ = [
    "Allocated",
    "Broadcast",
    "ClearStore",
    "Effect",
    "Failed",
    "Gossip",
    "Log",
    "Refuse",
    "Released",
    "Reply",
    "RingChanged",
    "SaveRing",
    "SendTo",
]


@dataclass(frozen=True, slots=True)
class Failed:
    """A request's error: ``message`` is the one line a user sees."""

    message: str
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request with token ``request``.

    ``result`` is a :class:`~weavek.core.address.CIDR` for an allocation, a
    tuple of them for a lookup, an int for rmpeer (addresses taken over),
    None for other successes, or :class:`Failed`.
    """

    request: object
    result: object


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send encoded state to every reachable peer."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send an encoded message to one peer (relayed if not a neighbour)."""

    peer: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Gossip:
    """Our current state for periodic gossip; the transport picks the neighbours."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Refuse:
    """A peer sent something we cannot accept; drop the connection it came on and say why."""

    peer: int
    reason: str


@dataclass(frozen=True, slots=True)
class SaveRing:
    """Persist the ring, and our peer name with it, before anything that follows."""

    ring: RingData
    peer: int


@dataclass(frozen=True, slots=True)
class ClearStore:
    """Throw away everything persisted: it belongs to another name or range (``reason``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Allocated:
    """``ident`` now holds ``cidr``: persist it (and tell observers)."""

    ident: str
    cidr: CIDR
    is_container: bool


@dataclass(frozen=True, slots=True)
class Released:
    """``ident`` no longer holds ``cidr``: persist that (and tell observers)."""

    ident: str
    cidr: CIDR


@dataclass(frozen=True, slots=True)
class RingChanged:
    """Who owns what changed. ``before``/``after`` are this peer's owned ranges."""

    before: tuple[Range, ...]
    after: tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the operator. ``level`` is a :mod:`logging` level name."""

    level: str
    message: str


Effect = (
    Reply
    | Broadcast
    | SendTo
    | Gossip
    | Refuse
    | SaveRing
    | ClearStore
    | Allocated
    | Released
    | RingChanged
    | Log
)

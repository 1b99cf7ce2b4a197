"""What peers say to each other, as plain frozen records.

The allocator builds these and :mod:`weavek.core.codec` turns them into bytes.
There are three kinds, as in Weave's IPAM channel:

* :class:`PeerState` -- a peer's whole IPAM state: nicknames it knows, and
  either its ring or (while it has none) its init strategy's election state.
  It travels by broadcast, by periodic gossip, and as the unicast reply that
  hands the ring to a peer that asked ("RingUpdate").
* :class:`SpaceRequest` -- "give me some of your free space in this range".
* :class:`SpaceDenied` -- "I have nothing free there" (followed by a ring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "PeerState", "RingData", "SpaceDenied", "SpaceRequest"]


@dataclass(frozen=True, slots=True)
class RingData:
    """A snapshot of a ring in columns, for the wire and for stores.

    ``tokens`` are sorted; entry *i* is ``(tokens[i], peers[i], versions[i],
    frees[i])``. ``start``/``end`` bound the universe; ``version`` is the IP
    version (4 or 6) so the receiver can print addresses.
    """

    start: int
    end: int
    version: int
    seeds: tuple[int, ...]
    tokens: tuple[int, ...]
    peers: tuple[int, ...]
    versions: tuple[int, ...]
    frees: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PeerState:
    """A peer's full IPAM state. Exactly one of ``ring``/``election`` is set, or neither.

    ``election`` is opaque to the kernel: plain CBOR-able data (ints, strings,
    bytes, lists, maps) owned by the init strategy. Neither set means the
    sender has no ring and no vote: a ring request.
    """

    nicknames: tuple[tuple[int, str], ...]
    ring: RingData | None = None
    election: Any = None


@dataclass(frozen=True, slots=True)
class SpaceRequest:
    """Ask the receiver to donate free space inside ``[start, end)``."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SpaceDenied:
    """The receiver had nothing free inside ``[start, end)``."""

    start: int
    end: int


Message = PeerState | SpaceRequest | SpaceDenied

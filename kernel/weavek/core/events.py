"""What happens to an allocator: the events its shell feeds in.

Every input is one of these frozen records, handed to
:meth:`weavek.core.allocator.Allocator.handle`. Requests carry an opaque
``request`` token chosen by the caller; the :class:`~weavek.core.effects.Reply`
that answers it carries the same token back. Time enters only through
:class:`Tick`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .address import CIDR

__all__ = [
    "AllocateRequested",
    "Cancelled",
    "ClaimRequested",
    "ContainerDestroyed",
    "ContainerDied",
    "ContainerStarted",
    "DeleteRequested",
    "Event",
    "FreeRequested",
    "GossipReceived",
    "LookupRequested",
    "PeersChanged",
    "PrimeRequested",
    "PruneRequested",
    "RmPeerRequested",
    "ShutdownRequested",
    "Tick",
    "Via",
]


class Via(Enum):
    """How a message reached us; it decides whether we may answer the sender."""

    BROADCAST = "broadcast"
    UNICAST = "unicast"
    GOSSIP = "gossip"


@dataclass(frozen=True, slots=True)
class AllocateRequested:
    """Give ``ident`` an address in ``subnet`` (None: the default subnet).

    ``is_container`` marks the ident as a container whose death releases it
    (Weave's ``check-alive``).
    """

    request: object
    ident: str
    subnet: CIDR | None = None
    is_container: bool = False


@dataclass(frozen=True, slots=True)
class ClaimRequested:
    """Record ``cidr.addr`` for ``ident``.

    ``no_error_on_unknown`` answers OK at once when the ring does not exist yet.
    """

    request: object
    ident: str
    cidr: CIDR
    is_container: bool = False
    no_error_on_unknown: bool = False


@dataclass(frozen=True, slots=True)
class LookupRequested:
    """The ident's addresses inside ``subnet`` (None: the default subnet)."""

    request: object
    ident: str
    subnet: CIDR | None = None


@dataclass(frozen=True, slots=True)
class FreeRequested:
    """Release one address of an ident."""

    request: object
    ident: str
    addr: int


@dataclass(frozen=True, slots=True)
class DeleteRequested:
    """Release every address of an ident."""

    request: object
    ident: str


@dataclass(frozen=True, slots=True)
class PrimeRequested:
    """Answer once this peer has a ring (starting consensus if need be)."""

    request: object


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The client behind a pending request went away; drop it."""

    request: object


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """Hand every range we own to an heir and stop allocating (``weavek reset``)."""

    request: object


@dataclass(frozen=True, slots=True)
class RmPeerRequested:
    """Take over the ranges of a dead peer, named by peer name or nickname."""

    request: object
    peer: str


@dataclass(frozen=True, slots=True)
class ContainerDied:
    """A container stopped; its addresses are released after the grace period."""

    ident: str


@dataclass(frozen=True, slots=True)
class ContainerStarted:
    """A container (re)started; cancel any pending release."""

    ident: str


@dataclass(frozen=True, slots=True)
class ContainerDestroyed:
    """A container is gone for good; release its addresses now."""

    ident: str


@dataclass(frozen=True, slots=True)
class PruneRequested:
    """Release every container ident not in ``running`` (start-up reconciliation)."""

    running: frozenset[str]


@dataclass(frozen=True, slots=True)
class GossipReceived:
    """Encoded bytes from ``sender``. Decoding happens in the allocator."""

    sender: int
    payload: bytes
    via: Via


@dataclass(frozen=True, slots=True)
class PeersChanged:
    """The set of peers the transport can currently reach, with their nicknames."""

    reachable: frozenset[int]


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock moved on: retry pending work, expire dead containers, gossip."""

    now: float


Event = (
    AllocateRequested
    | ClaimRequested
    | LookupRequested
    | FreeRequested
    | DeleteRequested
    | PrimeRequested
    | Cancelled
    | ShutdownRequested
    | RmPeerRequested
    | ContainerDied
    | ContainerStarted
    | ContainerDestroyed
    | PruneRequested
    | GossipReceived
    | PeersChanged
    | Tick
)

"""What a store gives back at start-up: the state a peer persisted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .address import CIDR
from .messages import RingData

__all__ = ["Holding", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Holding:
    """The addresses one ident holds, and whether it is a container (released when it dies)."""

    cidrs: tuple[CIDR, ...]
    is_container: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A peer's persisted state: its name, its ring, and what its idents hold."""

    peer: int
    ring: RingData | None
    owned: Mapping[str, Holding] = field(default_factory=dict)

"""What a store gives back at start-up: the state a peer persisted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from .address import CIDR
from .messages import RingData

__all__ = ["AddressRow", "Holding", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Holding:
    """The addresses one ident holds, and whether it is a container (released when it dies)."""

    cidrs: tuple[CIDR, ...]
    is_container: bool = False


AddressRow = tuple[int, int, int, str, bool]
"""One held address: ``(addr, prefix, version, ident, is_container)``."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A peer's persisted state: its name, its ring, and what its idents hold.

    ``owned`` may also have an ``address_rows()`` method returning what
    :meth:`address_rows` does: a store that loads a million rows (weavedb)
    then never builds a :class:`Holding` or a CIDR for them.
    """

    peer: int
    ring: RingData | None
    owned: Mapping[str, Holding] = field(default_factory=dict)

    def address_rows(self) -> list[AddressRow]:
        """Every held address as an :data:`AddressRow`, in ascending address order."""
        rows: list[AddressRow] | None = getattr(self.owned, "address_rows", lambda: None)()
        if rows is None:
            rows = [
                (cidr.addr, cidr.prefix, cidr.version, ident, holding.is_container)
                for ident, holding in self.owned.items()
                for cidr in holding.cidrs
            ]
            rows.sort(key=itemgetter(0))
        return rows

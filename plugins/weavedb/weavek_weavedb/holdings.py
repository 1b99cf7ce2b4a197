"""The holdings a weavedb file loads, kept compact until the allocator reads them once.

A restart with a million allocations must fit in a few hundred megabytes and
a couple of seconds. A ``dict`` of a million :class:`~weavek.core.snapshot.Holding`
objects, each with a tuple and a :class:`~weavek.core.address.CIDR`, costs
about 250 bytes an allocation before the allocator has restored a single one,
and the allocator keeps its own copy. :class:`Holdings` keeps each ident's
text, and for the usual case -- one IPv4 address -- the address in an
``array`` and its prefix and container flag in byte arrays: about 130 bytes
an allocation, most of it the ident itself. The Holdings the allocator asks
for are made as it iterates, and dropped as soon as it has read them.
"""

from __future__ import annotations

from array import array
from collections.abc import ItemsView, Iterator, Mapping
from itertools import repeat
from operator import itemgetter

from weavek.core.address import CIDR
from weavek.core.snapshot import AddressRow, Holding

__all__ = ["Holdings"]


class Holdings(Mapping[str, Holding]):
    """Ident -> :class:`Holding`, filled with :meth:`add` in ident order, then read-only."""

    __slots__ = ("_addrs", "_extra", "_flags", "_idents", "_index", "_prefixes")

    def __init__(self) -> None:
        self._idents: list[str] = []
        self._addrs = array("Q")
        """The one IPv4 address of each ident (0 where :attr:`_extra` has its addresses)."""
        self._prefixes = bytearray()
        self._flags = bytearray()
        self._extra: dict[int, tuple[CIDR, ...]] = {}
        """Position -> the addresses of an ident with several, or with an IPv6 one."""
        self._index: dict[str, int] | None = None

    def add(self, ident: str, addr: int, prefix: int, version: int, is_container: bool) -> None:
        """Record one row, already checked; rows of one ident must come one after another."""
        idents = self._idents
        if idents and idents[-1] == ident:
            at = len(idents) - 1
            self._extra[at] = (*self._cidrs(at), CIDR(addr, prefix, version))
            if is_container:
                self._flags[at] = 1
            return
        idents.append(ident)
        self._flags.append(is_container)
        if version == 4:
            self._addrs.append(addr)
            self._prefixes.append(prefix)
        else:
            self._addrs.append(0)
            self._prefixes.append(0)
            self._extra[len(idents) - 1] = (CIDR(addr, prefix, version),)

    def _cidrs(self, at: int) -> tuple[CIDR, ...]:
        extra = self._extra.get(at)
        if extra is not None:
            return extra
        return (CIDR(self._addrs[at], self._prefixes[at], 4),)

    def _holding(self, at: int) -> Holding:
        return Holding(self._cidrs(at), self._flags[at] == 1)

    def __getitem__(self, ident: str) -> Holding:
        if self._index is None:  # only tests look idents up; the allocator iterates
            self._index = {name: at for at, name in enumerate(self._idents)}
        return self._holding(self._index[ident])

    def __iter__(self) -> Iterator[str]:
        return iter(self._idents)

    def __len__(self) -> int:
        return len(self._idents)

    def items(self) -> _Items:
        return _Items(self)

    def address_rows(self) -> list[AddressRow]:
        """What :meth:`Snapshot.address_rows` gives, straight from the arrays (no CIDRs)."""
        rows = list(
            zip(self._addrs, self._prefixes, repeat(4), self._idents, map(bool, self._flags))
        )
        extra = self._extra
        if extra:
            rows = [row for at, row in enumerate(rows) if at not in extra]
            rows += (
                (cidr.addr, cidr.prefix, cidr.version, self._idents[at], self._flags[at] == 1)
                for at, cidrs in extra.items()
                for cidr in cidrs
            )
        rows.sort(key=itemgetter(0))
        return rows


class _Items(ItemsView[str, Holding]):
    """``holdings.items()`` in one pass, without looking each ident up."""

    _mapping: Holdings

    def __iter__(self) -> Iterator[tuple[str, Holding]]:
        holdings = self._mapping
        make = holdings._holding
        for at, ident in enumerate(holdings._idents):
            yield ident, make(at)

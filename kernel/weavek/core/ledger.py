"""The ledger: which ident holds which addresses on this peer (Weave's ``owned`` map).

It is the biggest structure a busy peer keeps -- one entry per live
allocation -- so it is built for memory: an ident that is lower-case hex (a
container ID) is stored as the bytes it spells, half the size of the string;
a single address is stored as a bare int rather than a tuple. Idents travel
in and out as strings; the compact key is an internal detail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .address import CIDR

if TYPE_CHECKING:
    from .snapshot import AddressRow

__all__ = ["Key", "Ledger"]

Key = str | bytes


def key_of(ident: str) -> Key:
    """The compact dictionary key for ``ident``."""
    if len(ident) >= 16 and not len(ident) & 1:
        try:
            raw = bytes.fromhex(ident)
        except ValueError:
            return ident
        # fromhex also takes upper case and spaces; only an exact round trip is compact.
        if raw.hex() == ident:
            return raw
    return ident


def ident_of(key: Key) -> str:
    return key.hex() if type(key) is bytes else key  # type: ignore[return-value]


class Ledger:
    """Idents and the addresses they hold; also who is a container and who is dead."""

    __slots__ = ("_cidrs", "_containers", "_dead", "_held", "_outside", "_total")

    def __init__(self) -> None:
        self._held: dict[Key, int | tuple[int, ...]] = {}
        self._containers: set[Key] = set()
        self._dead: dict[Key, float] = {}
        # Holders of addresses outside the universe: those are checked only here.
        self._outside: dict[int, Key] = {}
        # The prefix (and family) of each address allocated or claimed with another one
        # than the default subnet's: rare, so the common case costs nothing.
        self._cidrs: dict[int, CIDR] = {}
        self._total = 0

    def __len__(self) -> int:
        """How many addresses are held."""
        return self._total

    def addresses(self, ident: str) -> tuple[int, ...]:
        held = self._held.get(key_of(ident))
        if held is None:
            return ()
        return (held,) if type(held) is int else held  # type: ignore[return-value]

    def find(self, key: Key, lo: int, hi: int) -> int | None:
        """The first address ``key`` holds inside ``[lo, hi)``."""
        held = self._held.get(key)
        if held is None:
            return None
        if type(held) is int:
            return held if lo <= held < hi else None
        for addr in held:  # type: ignore[union-attr]
            if lo <= addr < hi:
                return addr
        return None

    def cidr_of(self, addr: int) -> CIDR | None:
        """The CIDR ``addr`` was recorded with, if it was not in the default subnet's shape."""
        return self._cidrs.get(addr)

    def add(
        self,
        key: Key,
        addr: int,
        is_container: bool,
        outside: bool = False,
        cidr: CIDR | None = None,
    ) -> None:
        """Record that ``key`` holds ``addr`` (``cidr``: only for an unusual prefix, see
        :meth:`cidr_of`)."""
        held = self._held.get(key)
        if held is None:
            self._held[key] = addr
        elif type(held) is int:
            self._held[key] = (held, addr)
        else:
            self._held[key] = (*held, addr)  # type: ignore[misc]
        if is_container:
            self._containers.add(key)
        if outside:
            self._outside[addr] = key
        if cidr is not None:
            self._cidrs[addr] = cidr
        self._total += 1

    def add_many(self, rows: Iterable[AddressRow], usual: tuple[int, int]) -> None:
        """:meth:`add` for every row, all inside the universe: a restore, in bulk.

        :param usual: the default subnet's (prefix, version); other rows keep theirs.
        """
        held = self._held
        containers = self._containers
        fromhex = bytes.fromhex
        usual_prefix, usual_version = usual
        count = 0
        for addr, prefix, version, ident, is_container in rows:
            if prefix != usual_prefix or version != usual_version:
                self._cidrs[addr] = CIDR(addr, prefix, version)
            key: Key = ident
            if len(ident) >= 16 and not len(ident) & 1:  # key_of, inlined for a million rows
                try:
                    raw = fromhex(ident)
                except ValueError:
                    pass
                else:
                    if raw.hex() == ident:
                        key = raw
            old = held.get(key)
            if old is None:
                held[key] = addr
            elif type(old) is int:
                held[key] = (old, addr)
            else:
                held[key] = (*old, addr)  # type: ignore[misc]
            if is_container:
                containers.add(key)
            count += 1
        self._total += count

    def remove(self, key: Key, addr: int) -> bool:
        """Drop one address of ``key``; False if it did not hold it."""
        held = self._held.get(key)
        if held is None:
            return False
        if type(held) is int:
            if held != addr:
                return False
            self._forget(key)
        else:
            if addr not in held:  # type: ignore[operator]
                return False
            rest = tuple(a for a in held if a != addr)  # type: ignore[union-attr]
            self._held[key] = rest[0] if len(rest) == 1 else rest
        self._outside.pop(addr, None)
        self._cidrs.pop(addr, None)
        self._total -= 1
        return True

    def pop(self, key: Key) -> tuple[int, ...]:
        """Drop every address of ``key`` and return them."""
        held = self._held.get(key)
        if held is None:
            return ()
        addrs: tuple[int, ...] = (held,) if type(held) is int else held  # type: ignore[assignment]
        self._forget(key)
        for addr in addrs:
            self._outside.pop(addr, None)
            self._cidrs.pop(addr, None)
        self._total -= len(addrs)
        return addrs

    def _forget(self, key: Key) -> None:
        del self._held[key]
        self._containers.discard(key)
        self._dead.pop(key, None)

    def holds(self, key: Key) -> bool:
        return key in self._held

    def outside_holder(self, addr: int) -> Key | None:
        return self._outside.get(addr)

    def holder(self, addr: int) -> str | None:
        """Who holds ``addr``: a scan, for error messages and audits only."""
        key = self._outside.get(addr)
        if key is not None:
            return ident_of(key)
        for key, held in self._held.items():
            if held == addr or (type(held) is tuple and addr in held):
                return ident_of(key)
        return None

    def is_container(self, key: Key) -> bool:
        return key in self._containers

    # -- dead containers ---------------------------------------------------

    def mark_dead(self, key: Key, now: float) -> None:
        self._dead[key] = now

    def revive(self, key: Key) -> None:
        self._dead.pop(key, None)

    def is_dead(self, key: Key) -> bool:
        return key in self._dead

    def dead_since(self, before: float) -> list[Key]:
        """Containers marked dead at or before ``before``."""
        return [key for key, when in self._dead.items() if when <= before]

    # -- iteration ---------------------------------------------------------

    def items(self) -> Iterator[tuple[str, tuple[int, ...], bool]]:
        """``(ident, addresses, is_container)`` for every ident."""
        for key, held in self._held.items():
            addrs = (held,) if type(held) is int else held
            yield ident_of(key), addrs, key in self._containers  # type: ignore[misc]

    def container_keys(self) -> list[Key]:
        return list(self._containers)

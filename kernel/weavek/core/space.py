"""One peer's exact record of the addresses it owns.

The ring says which ranges a peer owns; the :class:`Space` says, inside those
ranges, which addresses are handed out ("ours") and which are still free. A
peer allocates from its Space without talking to anyone, and donates free
blocks from it when another peer runs short.

Both sets are kept as Weave keeps them: a sorted list of boundaries where even
positions are inclusive starts and odd positions exclusive ends, with adjacent
ranges always coalesced. An address is in a set iff an odd number of
boundaries are <= it, so every question is one :func:`bisect.bisect_right`.
Memory and time depend on the number of ranges, never on how many addresses
they hold, so an IPv6 /64 works as well as an IPv4 /30. Allocation and free
are the allocator's hot path: two bisects and at most one small list splice.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from weavek.core.address import Range, format_address

__all__ = ["Space", "SpaceError"]


class SpaceError(ValueError):
    """An operation on a Space was refused; the message is a user-facing line."""


def _splice(bounds: list[int], start: int, end: int, adding: bool) -> int:
    """Union ``[start, end)`` into (or subtract it from) ``bounds`` in place.

    Returns how many addresses of ``[start, end)`` were in the set before,
    so callers can keep their counters exact without rescanning.
    """
    if start >= end:
        return 0
    lo = bisect_left(bounds, start)
    hi = bisect_right(bounds, end, lo)
    covered = 0
    inside = lo & 1
    prev = start
    for i in range(lo, hi):
        x = bounds[i]
        if inside:
            covered += x - prev
        prev = x
        inside ^= 1
    if inside:
        covered += end - prev
    # A new boundary is needed where start/end falls outside (when adding) or
    # inside (when subtracting) an existing range; otherwise ranges coalesce.
    sense = 0 if adding else 1
    new: list[int] = []
    if lo & 1 == sense:
        new.append(start)
    if hi & 1 == sense:
        new.append(end)
    bounds[lo:hi] = new
    return covered


def _take(bounds: list[int], j: int, addr: int) -> None:
    """Remove ``addr`` from the range starting at ``bounds[j]`` (which holds it)."""
    if bounds[j] == addr:
        if bounds[j + 1] == addr + 1:
            del bounds[j : j + 2]
        else:
            bounds[j] = addr + 1
    elif bounds[j + 1] == addr + 1:
        bounds[j + 1] = addr
    else:
        bounds[j + 1 : j + 1] = (addr, addr + 1)


def _put(bounds: list[int], addr: int) -> None:
    """Add ``addr``, known to be absent, to ``bounds``, joining neighbours."""
    k = bisect_right(bounds, addr)
    left = k > 0 and bounds[k - 1] == addr
    if k < len(bounds) and bounds[k] == addr + 1:
        if left:
            del bounds[k - 1 : k + 1]
        else:
            bounds[k] = addr
    elif left:
        bounds[k - 1] = addr + 1
    else:
        bounds[k:k] = (addr, addr + 1)


def _union(a: list[int], b: list[int]) -> list[int]:
    """The union of two disjoint bounds lists, coalesced."""
    if not a or not b:
        return a or b
    out: list[int] = []
    for start, end in heapq.merge(_pairs(a), _pairs(b)):
        if out and out[-1] == start:
            out[-1] = end
        else:
            out += (start, end)
    return out


def _pairs(bounds: list[int]) -> list[Range]:
    return list(zip(bounds[::2], bounds[1::2], strict=True))


def _aligned_block(start: int, size: int) -> Range:
    """Weave's BiggestCIDRRange: the largest power-of-two block, aligned to its
    size, inside ``[start, start + size)``; the lowest such block when several fit.
    """
    m = 1 << (size.bit_length() - 1)
    k = start & (m - 1)
    if k == 0:
        return (start, start + m)
    if m - k <= size & (m - 1):
        return (start + m - k, start + 2 * m - k)
    h = m >> 1
    if h >= k:
        return (start + h - k, start + 2 * h - k)
    return (start + m - k, start + m - k + h)


class Space:
    """Allocated ("ours") and free addresses inside the ranges a peer owns."""

    __slots__ = ("_free", "_num_free", "_num_ours", "_ours", "version")

    def __init__(self, version: int = 4) -> None:
        self.version = version  # only used to print addresses in messages
        self._ours: list[int] = []
        self._free: list[int] = []
        self._num_ours = 0
        self._num_free = 0

    def _text(self, addr: int) -> str:
        try:
            return format_address(addr, self.version)
        except ValueError:  # outside the family: still say which number it was
            return str(addr)

    def add(self, start: int, end: int) -> None:
        """Add ``[start, end)`` as free wherever we do not hold it already.

        Never removes anything: an address we have handed out stays ours.
        """
        ours = self._ours
        i = bisect_right(ours, start)
        pos = start
        if i & 1:  # start is allocated: resume after that allocated run
            pos = ours[i]
            i += 1
        while pos < end:
            gap_end = min(ours[i], end) if i < len(ours) else end
            self._num_free += (gap_end - pos) - _splice(self._free, pos, gap_end, True)
            if i >= len(ours):
                break
            pos = ours[i + 1]
            i += 2

    def update_ranges(self, ranges: Iterable[Range]) -> None:
        for start, end in ranges:
            self.add(start, end)

    def remove(self, start: int, end: int) -> None:
        """Forget ``[start, end)`` entirely, free and allocated alike."""
        self._num_free -= _splice(self._free, start, end, False)
        self._num_ours -= _splice(self._ours, start, end, False)

    def clear(self) -> None:
        self._ours.clear()
        self._free.clear()
        self._num_ours = self._num_free = 0

    def allocate(self, start: int, end: int) -> int | None:
        """Move the lowest free address of ``[start, end)`` to ours and return it.

        Lowest-first keeps allocation deterministic ("first address in the
        subnet"), which tests and users rely on.
        """
        if start >= end:
            return None
        free = self._free
        i = bisect_right(free, start)
        if i & 1:  # start itself is free
            addr = start
            i -= 1
        elif i < len(free) and free[i] < end:
            addr = free[i]
        else:
            return None
        _take(free, i, addr)
        _put(self._ours, addr)
        self._num_free -= 1
        self._num_ours += 1
        return addr

    def claim(self, addr: int) -> None:
        """Move one specific free address to ours."""
        free = self._free
        i = bisect_right(free, addr)
        if not i & 1:
            raise SpaceError(f"Address {self._text(addr)} is not free to claim")
        _take(free, i - 1, addr)
        _put(self._ours, addr)
        self._num_free -= 1
        self._num_ours += 1

    def claim_many(self, addrs: Sequence[int]) -> list[int]:
        """Move each of ``addrs`` (ascending) that is free to ours, in one pass.

        A restart with a million allocations is one merge of two sorted lists,
        not a million list splices. Returns the positions in ``addrs`` of the
        addresses that were not free (a repeated address is not free the
        second time), which stay as they were.
        """
        free = self._free
        n = len(free)
        kept: list[int] = []  # the free bounds after the claims
        claimed: list[int] = []  # the bounds of what this call claims
        refused: list[int] = []
        j = 0
        pos = free[0] if n else 0  # where the unclaimed part of free range j starts
        for k, addr in enumerate(addrs):
            while j < n and free[j + 1] <= addr:  # ranges wholly below addr are done
                if pos < free[j + 1]:
                    kept += (pos, free[j + 1])
                j += 2
                if j < n:
                    pos = free[j]
            if j >= n or addr < pos:
                refused.append(k)
                continue
            if pos < addr:
                kept += (pos, addr)
            pos = addr + 1
            if claimed and claimed[-1] == addr:
                claimed[-1] = pos
            else:
                claimed += (addr, pos)
        while j < n:
            if pos < free[j + 1]:
                kept += (pos, free[j + 1])
            j += 2
            if j < n:
                pos = free[j]
        self._free = kept
        self._ours = _union(self._ours, claimed)
        count = len(addrs) - len(refused)
        self._num_free -= count
        self._num_ours += count
        return refused

    def free(self, addr: int) -> None:
        """Return an allocated address to the free set."""
        ours = self._ours
        i = bisect_right(ours, addr)
        if not i & 1:
            # Only on the error path do we look at the free list, to say why.
            why = "is already free" if self.is_free(addr) else "is not ours"
            raise SpaceError(f"Address {self._text(addr)} {why}")
        _take(ours, i - 1, addr)
        _put(self._free, addr)
        self._num_ours -= 1
        self._num_free += 1

    def is_free(self, addr: int) -> bool:
        return bool(bisect_right(self._free, addr) & 1)

    def is_allocated(self, addr: int) -> bool:
        return bool(bisect_right(self._ours, addr) & 1)

    def owns(self, addr: int) -> bool:
        return self.is_free(addr) or self.is_allocated(addr)

    def num_free(self) -> int:
        return self._num_free

    def num_allocated(self) -> int:
        return self._num_ours

    def _free_chunks(self, start: int, end: int) -> Iterable[Range]:
        """The free ranges meeting ``[start, end)``, clipped to it, lowest first."""
        if start >= end:
            return
        free = self._free
        i = bisect_right(free, start) & ~1  # the range holding start, or the next
        while i < len(free) and free[i] < end:
            yield (max(free[i], start), min(free[i + 1], end))
            i += 2

    def num_free_in(self, start: int, end: int) -> int:
        return sum(e - s for s, e in self._free_chunks(start, end))

    def has_allocations_in(self, start: int, end: int) -> bool:
        """True iff some address of ``[start, end)`` is not free here.

        Addresses we do not hold at all count as allocated: only a range that
        is wholly free in our Space is safe to give up (Weave's hasAllocations).
        """
        if start >= end:
            return False
        free = self._free
        i = bisect_right(free, start)
        return not i & 1 or free[i] < end

    def biggest_free_range(self, start: int, end: int) -> Range | None:
        """The aligned block :meth:`donate` would pick, before halving.

        Each free chunk in the range yields its largest aligned power-of-two
        block; the largest block wins and a later chunk wins a tie, as in Weave.
        """
        best: Range | None = None
        best_size = 0
        for s, e in self._free_chunks(start, end):
            if e - s >= best_size:  # a smaller chunk cannot hold a bigger block
                bs, be = _aligned_block(s, e - s)
                if be - bs >= best_size:
                    best, best_size = (bs, be), be - bs
        return best

    def donate(self, start: int, end: int) -> Range | None:
        """Give away a free block of ``[start, end)``: remove and return it.

        A donor never gives away most of its free space in the range at once:
        a block bigger than half of it is cut to its upper half (a one-address
        block stays whole, so a donation is never empty).
        """
        block = self.biggest_free_range(start, end)
        if block is None:
            return None
        bs, be = block
        size = be - bs
        if size > self.num_free_in(start, end) // 2:
            bs += size // 2
        self._num_free -= _splice(self._free, bs, be, False)
        return (bs, be)

    def free_ranges(self) -> list[Range]:
        return _pairs(self._free)

    def allocated_ranges(self) -> list[Range]:
        return _pairs(self._ours)

    def owned_ranges(self) -> list[Range]:
        """Everything we hold, free or allocated, coalesced and sorted."""
        merged: list[list[int]] = []
        for s, e in sorted(_pairs(self._ours) + _pairs(self._free)):
            if merged and merged[-1][1] == s:
                merged[-1][1] = e
            else:
                merged.append([s, e])
        return [(s, e) for s, e in merged]

    def _check(self) -> None:
        """Assert the representation invariants (tests call this after each step)."""
        for name, bounds in (("ours", self._ours), ("free", self._free)):
            assert len(bounds) % 2 == 0, f"{name} has an odd number of boundaries"
            # Strictly increasing means sorted, no empty ranges and coalesced.
            ok = all(bounds[i] < bounds[i + 1] for i in range(len(bounds) - 1))
            assert ok, f"{name} is not strictly increasing"
        assert self._num_ours == sum(e - s for s, e in self.allocated_ranges())
        assert self._num_free == sum(e - s for s, e in self.free_ranges())
        for s, e in self.allocated_ranges():
            assert self.num_free_in(s, e) == 0, f"[{s}, {e}) is both free and ours"

    def __repr__(self) -> str:
        def show(bounds: list[int]) -> str:
            return ", ".join(f"{self._text(s)}+{e - s}" for s, e in _pairs(bounds)) or "-"

        return f"Space(ours: {show(self._ours)}; free: {show(self._free)})"

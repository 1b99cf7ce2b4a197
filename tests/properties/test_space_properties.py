"""Space against a model made of plain Python sets over a small universe.

The universe is 72 addresses placed at one of a few bases (0, an IPv4 /12, an
IPv6 /64) so big integers are exercised too; every base is aligned far beyond
the universe, so alignment-dependent donation results do not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from weavek.core.address import parse_address
from weavek.core.space import Space, SpaceError, _aligned_block

SIZE = 72
BASES = [0, parse_address("10.32.0.0")[0], parse_address("fd00:1::")[0]]

offsets = st.integers(min_value=0, max_value=SIZE - 1)
spans = st.tuples(st.integers(0, SIZE), st.integers(0, SIZE)).map(sorted)


def runs(addrs: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal half-open runs of consecutive addresses."""
    out: list[list[int]] = []
    for a in sorted(addrs):
        if out and out[-1][1] == a:
            out[-1][1] = a + 1
        else:
            out.append([a, a + 1])
    return [(s, e) for s, e in out]


def largest_aligned(start: int, end: int) -> tuple[int, int]:
    """Brute force: the biggest size-aligned power-of-two block, lowest first."""
    for bits in range((end - start).bit_length(), -1, -1):
        size = 1 << bits
        first = -(-start // size) * size
        if first + size <= end:
            return (first, first + size)
    raise AssertionError("a non-empty range always holds a one-address block")


def model_block(free: set[int], start: int, end: int) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for s, e in runs(a for a in free if start <= a < end):
        block = largest_aligned(s, e)
        if best is None or block[1] - block[0] >= best[1] - best[0]:
            best = block  # ">=": a later chunk wins a tie
    return best


class SpaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = 0
        self.space = Space()
        self.free: set[int] = set()
        self.ours: set[int] = set()

    @initialize(base=st.sampled_from(BASES), start=offsets, end=offsets)
    def setup(self, base: int, start: int, end: int) -> None:
        self.base = base
        self.space = Space(6 if base >= 1 << 32 else 4)
        self.do_add(start, max(start, end) + 1)

    def span(self, pair: list[int]) -> tuple[int, int]:
        return (self.base + pair[0], self.base + pair[1])

    def do_add(self, start: int, end: int) -> None:
        s, e = self.span([start, end])
        self.space.add(s, e)
        self.free |= set(range(s, e)) - self.ours

    @rule(pair=spans)
    def add(self, pair: list[int]) -> None:
        self.do_add(*pair)

    @rule(pair=spans)
    def remove(self, pair: list[int]) -> None:
        s, e = self.span(pair)
        self.space.remove(s, e)
        self.free -= set(range(s, e))
        self.ours -= set(range(s, e))

    @rule(pair=spans)
    def allocate(self, pair: list[int]) -> None:
        s, e = self.span(pair)
        candidates = [a for a in self.free if s <= a < e]
        expected = min(candidates) if candidates else None
        assert self.space.allocate(s, e) == expected
        if expected is not None:
            self.free.remove(expected)
            self.ours.add(expected)

    @rule(offset=offsets)
    def claim(self, offset: int) -> None:
        addr = self.base + offset
        if addr in self.free:
            self.space.claim(addr)
            self.free.remove(addr)
            self.ours.add(addr)
        else:
            with pytest.raises(SpaceError, match="is not free to claim"):
                self.space.claim(addr)

    @rule(offset=offsets)
    def release(self, offset: int) -> None:
        addr = self.base + offset
        if addr in self.ours:
            self.space.free(addr)
            self.ours.remove(addr)
            self.free.add(addr)
        else:
            why = "is already free" if addr in self.free else "is not ours"
            with pytest.raises(SpaceError, match=why):
                self.space.free(addr)

    @rule(pair=spans)
    def donate(self, pair: list[int]) -> None:
        s, e = self.span(pair)
        block = model_block(self.free, s, e)
        assert self.space.biggest_free_range(s, e) == block
        if block is not None:
            size = block[1] - block[0]
            if size > len([a for a in self.free if s <= a < e]) // 2:
                block = (block[0] + size // 2, block[1])
            self.free -= set(range(*block))
        assert self.space.donate(s, e) == block

    @rule()
    def allocate_everything_then_free_it(self) -> None:
        got = []
        while (addr := self.space.allocate(self.base, self.base + SIZE)) is not None:
            got.append(addr)
        assert got == sorted(self.free)
        for addr in got:
            self.space.free(addr)

    @invariant()
    def matches_model(self) -> None:
        space = self.space
        space._check()
        assert not self.free & self.ours
        assert space.free_ranges() == runs(self.free)
        assert space.allocated_ranges() == runs(self.ours)
        assert space.owned_ranges() == runs(self.free | self.ours)
        assert space.num_free() == len(self.free)
        assert space.num_allocated() == len(self.ours)

    @rule(pair=spans)
    def range_queries(self, pair: list[int]) -> None:
        s, e = self.span(pair)
        inside = set(range(s, e))
        assert self.space.num_free_in(s, e) == len(inside & self.free)
        assert self.space.has_allocations_in(s, e) == bool(inside - self.free)
        for addr in (s, e - 1):
            assert self.space.is_free(addr) == (addr in self.free)
            assert self.space.is_allocated(addr) == (addr in self.ours)
            assert self.space.owns(addr) == (addr in self.free or addr in self.ours)


SpaceMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=25, deadline=None)
TestSpace = SpaceMachine.TestCase


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, (1 << 128) - 1),
    size=st.integers(1, 1 << 70) | st.integers(1, 300),
)
def test_aligned_block_is_the_largest_aligned_block(start: int, size: int) -> None:
    assert _aligned_block(start, size) == largest_aligned(start, start + size)


@settings(max_examples=300)
@given(
    st.lists(spans, max_size=4),
    st.lists(offsets, max_size=8),
    st.lists(offsets, max_size=40),
    st.sampled_from(BASES),
)
def test_claim_many_is_claim_one_by_one(
    ranges: list[list[int]], taken: list[int], wanted: list[int], base: int
) -> None:
    """The bulk claim of a restore leaves the space as claiming each address in turn would."""

    def fresh() -> Space:
        space = Space()
        for start, end in ranges:
            space.add(base + start, base + end)
        for offset in taken:
            if space.is_free(base + offset):
                space.claim(base + offset)
        return space

    addrs = sorted(base + offset for offset in wanted)
    one_by_one, refused = fresh(), []
    for k, addr in enumerate(addrs):
        try:
            one_by_one.claim(addr)
        except SpaceError:
            refused.append(k)
    bulk = fresh()
    assert bulk.claim_many(addrs) == refused
    assert bulk._free == one_by_one._free and bulk._ours == one_by_one._ours
    assert bulk.num_free() == one_by_one.num_free()
    assert bulk.num_allocated() == one_by_one.num_allocated()

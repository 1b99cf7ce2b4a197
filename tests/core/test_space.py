"""Space: one peer's allocated and free addresses (reference §2, scenarios of §9.2)."""

from __future__ import annotations

import pytest

from weavek.core.address import parse_address, parse_cidr
from weavek.core.space import Space, SpaceError, _aligned_block


def ip(text: str) -> int:
    return parse_address(text)[0]


def space_with(start: int, end: int, version: int = 4) -> Space:
    space = Space(version)
    space.add(start, end)
    space._check()
    return space


# -- interval bookkeeping (TestLowlevel, first half) ---------------------------


def test_adding_ranges_coalesces_neighbours() -> None:
    space = Space()
    steps = [
        ((100, 200), [(100, 200)]),
        ((700, 800), [(100, 200), (700, 800)]),
        ((300, 400), [(100, 200), (300, 400), (700, 800)]),
        ((400, 500), [(100, 200), (300, 500), (700, 800)]),
        ((600, 700), [(100, 200), (300, 500), (600, 800)]),
        ((500, 600), [(100, 200), (300, 800)]),
    ]
    for (start, end), expected in steps:
        space.add(start, end)
        space._check()
        assert space.free_ranges() == expected
    assert not space.is_free(99)
    assert space.is_free(100)
    assert space.is_free(199)
    assert not space.is_free(200)
    assert space.num_free() == 600


def test_removing_ranges_unwinds_the_additions() -> None:
    space = space_with(100, 200)
    space.add(300, 800)
    steps = [
        ((500, 600), [(100, 200), (300, 500), (600, 800)]),
        ((600, 700), [(100, 200), (300, 500), (700, 800)]),
        ((400, 500), [(100, 200), (300, 400), (700, 800)]),
        ((300, 400), [(100, 200), (700, 800)]),
        ((700, 800), [(100, 200)]),
        ((100, 200), []),
    ]
    for (start, end), expected in steps:
        space.remove(start, end)
        space._check()
        assert space.free_ranges() == expected
    assert space.num_free() == 0


def test_add_keeps_allocations_and_fills_only_the_gaps() -> None:
    space = space_with(10, 20)
    space.claim(12)
    space.remove(14, 16)
    space.add(0, 30)
    space._check()
    assert space.allocated_ranges() == [(12, 13)]
    assert space.free_ranges() == [(0, 12), (13, 30)]
    assert space.num_free() == 29
    assert space.num_allocated() == 1


def test_update_ranges_adds_each_range_and_never_removes() -> None:
    space = space_with(0, 8)
    space.claim(3)
    space.update_ranges([(4, 16), (32, 40)])
    space._check()
    assert space.owned_ranges() == [(0, 16), (32, 40)]
    assert space.allocated_ranges() == [(3, 4)]
    assert space.num_free() == 23


def test_empty_or_backwards_ranges_change_nothing() -> None:
    space = space_with(10, 20)
    space.add(5, 5)
    space.add(30, 25)
    space.remove(15, 15)
    space._check()
    assert space.free_ranges() == [(10, 20)]
    assert space.allocate(12, 12) is None
    assert space.num_free_in(12, 12) == 0
    assert space.donate(12, 12) is None
    assert not space.has_allocations_in(12, 12)


def test_remove_forgets_free_and_allocated_addresses() -> None:
    space = space_with(0, 16)
    for addr in (2, 3, 9):
        space.claim(addr)
    space.remove(3, 10)
    space._check()
    assert space.allocated_ranges() == [(2, 3)]
    assert space.free_ranges() == [(0, 2), (10, 16)]
    assert space.owned_ranges() == [(0, 3), (10, 16)]
    assert space.num_allocated() == 1
    assert space.num_free() == 8
    assert not space.owns(5)
    with pytest.raises(SpaceError, match="is not ours"):
        space.free(9)


# -- allocate / claim / free (TestLowlevel second half, TestSpaceAllocate) ----


def test_allocate_claim_and_free_on_small_numbers() -> None:
    space = Space()
    assert space.num_free() == 0
    assert space.allocate(0, 1000) is None

    space.add(100, 200)
    assert space.num_free() == 100
    assert space.allocate(0, 1000) == 100
    assert space.num_free() == 99
    space.claim(150)
    assert space.num_free() == 98
    space.free(100)
    assert space.num_free() == 99
    with pytest.raises(SpaceError):
        space.free(0)
    with pytest.raises(SpaceError):
        space.free(100)
    space._check()
    # Free chunks [100,150) and [151,200): blocks [112,128) and [160,192); the
    # later, bigger one goes whole since 32 <= 98 // 2.
    assert space.donate(0, 1000) == (0xA0, 0xC0)
    space._check()
    assert space.num_free() == 98 - 32 + 1


def test_twenty_addresses_allocate_in_order_and_count() -> None:
    start = ip("10.0.3.4")
    space = space_with(start, start + 20)
    assert (space.num_free(), space.num_allocated()) == (20, 0)

    first = space.allocate(start, start + 20)
    assert first == ip("10.0.3.4")
    assert (space.num_free(), space.num_allocated()) == (19, 1)

    second = space.allocate(start, start + 20)
    assert second is not None and second != first
    assert (space.num_free(), space.num_allocated()) == (18, 2)
    assert space.num_free_in(start, ip("10.0.3.19")) == 13
    assert space.num_free_in(start, ip("10.0.9.19")) == 18
    space._check()

    space.free(second)
    space._check()
    with pytest.raises(SpaceError, match=r"^Address 10\.0\.3\.5 is already free$"):
        space.free(second)
    with pytest.raises(SpaceError, match=r"^Address 10\.0\.3\.19 is already free$"):
        space.free(ip("10.0.3.19"))
    with pytest.raises(SpaceError, match=r"^Address 10\.0\.9\.19 is not ours$"):
        space.free(ip("10.0.9.19"))
    space._check()


def test_allocate_returns_lowest_free_address_inside_the_range() -> None:
    space = space_with(0, 32)
    for addr in (0, 1, 2, 5):
        space.claim(addr)
    assert space.allocate(0, 32) == 3
    assert space.allocate(5, 32) == 6
    assert space.allocate(4, 5) == 4
    assert space.allocate(4, 6) is None  # 4 and 5 are both taken now
    assert space.allocate(40, 50) is None  # not ours at all
    space._check()


def test_claim_errors() -> None:
    space = space_with(ip("10.0.0.0"), ip("10.0.0.8"))
    space.claim(ip("10.0.0.3"))
    assert space.is_allocated(ip("10.0.0.3"))
    with pytest.raises(SpaceError, match=r"^Address 10\.0\.0\.3 is not free to claim$"):
        space.claim(ip("10.0.0.3"))
    with pytest.raises(SpaceError, match=r"^Address 10\.0\.0\.9 is not free to claim$"):
        space.claim(ip("10.0.0.9"))
    space._check()


def test_error_message_for_a_number_outside_the_family_still_names_it() -> None:
    with pytest.raises(SpaceError, match=r"^Address 4294967296 is not ours$"):
        Space().free(1 << 32)


def test_has_allocations_counts_addresses_we_do_not_hold() -> None:
    space = space_with(0, 16)
    assert not space.has_allocations_in(0, 16)
    assert not space.has_allocations_in(4, 8)
    assert space.has_allocations_in(0, 17)  # 16 is not ours at all
    assert space.has_allocations_in(20, 24)
    space.claim(6)
    assert space.has_allocations_in(0, 16)
    assert space.has_allocations_in(6, 7)
    assert not space.has_allocations_in(0, 6)
    assert not space.has_allocations_in(7, 16)


def test_owns_is_free_or_allocated() -> None:
    space = space_with(0, 4)
    space.claim(1)
    assert [space.owns(a) for a in range(-1, 6)] == [False, True, True, True, True, False, False]
    assert [space.is_allocated(a) for a in range(4)] == [False, True, False, False]


# -- donation (TestSpaceFree, TestDonateSimple, TestDonateHard, §2.3) ---------


def test_biggest_free_range_respects_alignment() -> None:
    start = ip("10.0.3.16")
    end = start + 16
    space = space_with(start, end)
    assert space.biggest_free_range(start, end) == (start, end)

    for _ in range(16):
        assert space.allocate(start, end) is not None
    assert space.allocate(start, end) is None
    assert space.donate(start, end) is None
    assert space.biggest_free_range(start, end) is None

    space.free(ip("10.0.3.23"))
    assert space.biggest_free_range(start, end) == (ip("10.0.3.23"), ip("10.0.3.24"))
    space.free(ip("10.0.3.31"))
    assert space.biggest_free_range(start, end) == (ip("10.0.3.31"), ip("10.0.3.32"))
    space.free(ip("10.0.3.30"))
    space.free(ip("10.0.3.29"))
    assert space.num_free() == 4
    # .29-.31 are free, but the biggest aligned block among them is .30/31.
    assert space.biggest_free_range(start, end) == (ip("10.0.3.30"), ip("10.0.3.32"))
    for addr in ("10.0.3.24", "10.0.3.22", "10.0.3.21"):
        space.free(ip(addr))
    assert space.num_free() == 7
    assert space.biggest_free_range(start, end) == (ip("10.0.3.30"), ip("10.0.3.32"))
    assert space.owned_ranges() == [parse_cidr("10.0.3.16/28").range]
    space._check()


def test_donating_a_fresh_block_gives_the_upper_half_then_the_rest() -> None:
    start = ip("10.0.1.0")
    space = space_with(start, start + 64)
    assert space.donate(start, start + 64) == (ip("10.0.1.32"), ip("10.0.1.64"))
    assert space.num_free() == 32
    given = 32
    for _ in range(100):
        block = space.donate(start, start + 64)
        if block is None:
            break
        space._check()
        given += block[1] - block[0]
    assert space.num_free() == 0
    assert given == 64


def test_donating_around_one_allocation_halves_the_biggest_block() -> None:
    start = ip("10.0.1.0")
    end = start + 48
    space = space_with(start, end)
    for _ in range(48):
        assert space.allocate(start, end) is not None
    assert space.num_free() == 0
    for offset in range(47):
        space.free(start + offset)

    # Free [.0, .47): block [.0, .32) is more than 47 // 2, so its upper half goes.
    assert space.donate(start, end) == (ip("10.0.1.16"), ip("10.0.1.32"))
    assert space.num_free() == 31
    assert space.allocated_ranges() == [(ip("10.0.1.47"), ip("10.0.1.48"))]
    assert space.free_ranges() == [
        (ip("10.0.1.0"), ip("10.0.1.16")),
        (ip("10.0.1.32"), ip("10.0.1.47")),
    ]
    space._check()


def test_donating_when_addresses_are_scarce() -> None:
    assert Space().donate(0, 1000) is None
    space = space_with(0, 3)
    space.claim(0)
    space.claim(2)
    assert space.donate(0, 1000) == (1, 2)
    assert space.donate(0, 1000) is None
    assert space.owned_ranges() == [(0, 1), (2, 3)]
    space._check()


def test_later_chunk_wins_a_tie() -> None:
    space = space_with(0, 64)
    space.claim(8)
    # Chunks [0,8) and [9,64): blocks [0,8) and [32,64); the /27 is bigger.
    assert space.biggest_free_range(0, 64) == (32, 64)
    space = space_with(0, 16)
    space.claim(4)
    space.claim(12)
    # Chunks [0,4), [5,12), [13,16): blocks [0,4), [8,12), [14,16).
    assert space.biggest_free_range(0, 16) == (8, 12)


def test_a_block_of_exactly_half_the_free_space_goes_whole() -> None:
    space = space_with(0, 8)
    space.add(16, 24)
    # Two equal /29 blocks: the later wins, and 8 is not more than 16 // 2.
    assert space.donate(0, 32) == (16, 24)
    # Now the lone /29 is more than half of 8 free: only its upper half goes.
    assert space.donate(0, 32) == (4, 8)


def test_donation_only_looks_inside_the_requested_range() -> None:
    space = space_with(0, 256)
    # Clipped to [10, 40): block [16, 32), more than 30 // 2, so [24, 32) goes.
    assert space.donate(10, 40) == (24, 32)
    assert space.num_free() == 248
    assert space.owned_ranges() == [(0, 24), (32, 256)]


def test_lone_peer_gives_half_of_a_slash_12_to_a_newcomer() -> None:
    universe = parse_cidr("10.32.0.0/12")
    space = space_with(*universe.range)
    assert space.donate(*universe.range) == parse_cidr("10.40.0.0/13").range
    assert space.owned_ranges() == [parse_cidr("10.32.0.0/13").range]


def test_one_allocation_shrinks_the_donation_to_a_slash_14() -> None:
    universe = parse_cidr("10.32.0.0/12")
    space = space_with(*universe.range)
    space.claim(ip("10.32.0.1"))
    assert space.num_free() == 1048575
    assert space.donate(*universe.range) == parse_cidr("10.44.0.0/14").range


def test_repeated_donations_of_a_slash_30() -> None:
    subnet = parse_cidr("10.40.0.0/30")
    space = space_with(*subnet.range)
    assert space.donate(*subnet.range) == (ip("10.40.0.2"), ip("10.40.0.4"))
    assert space.donate(*subnet.range) == (ip("10.40.0.1"), ip("10.40.0.2"))
    assert space.free_ranges() == [(ip("10.40.0.0"), ip("10.40.0.1"))]


@pytest.mark.parametrize(
    ("start", "size", "expected"),
    [
        (100, 50, (112, 128)),
        (151, 49, (160, 192)),
        (0, 47, (0, 32)),
        (64, 64, (64, 128)),
        (5, 12, (8, 16)),  # the m-aligned block past start still fits
        (6, 9, (8, 12)),  # it does not, and half of it sits past start
        (1, 8, (4, 8)),
        (7, 1, (7, 8)),
    ],
)
def test_aligned_block_procedure(start: int, size: int, expected: tuple[int, int]) -> None:
    assert _aligned_block(start, size) == expected


# -- IPv6, listings, repr -------------------------------------------------------


def test_ipv6_slash_64_is_handled_without_sizing_by_addresses() -> None:
    subnet = parse_cidr("fd00:1::/64")
    space = space_with(*subnet.range, version=6)
    assert space.num_free() == 1 << 64
    lo, hi = subnet.host_range
    assert space.allocate(lo, hi) == ip("fd00:1::1")
    assert space.allocate(lo, hi) == ip("fd00:1::2")
    assert space.num_free() == (1 << 64) - 2
    assert space.num_free_in(*subnet.range) == (1 << 64) - 2
    block = space.donate(*subnet.range)
    # The /65 above the allocations is more than half the free space: a /66 goes.
    assert block == parse_cidr("fd00:1:0:0:c000::/66").range
    with pytest.raises(SpaceError, match=r"^Address fd00:1::3 is already free$"):
        space.free(ip("fd00:1::3"))
    with pytest.raises(SpaceError, match=r"^Address fd00:2:: is not ours$"):
        space.free(ip("fd00:2::"))
    with pytest.raises(SpaceError, match=r"^Address fd00:1::1 is not free to claim$"):
        space.claim(ip("fd00:1::1"))
    space._check()
    assert "fd00:1::1+2" in repr(space)


def test_listings_and_clear() -> None:
    space = space_with(0, 10)
    space.add(20, 30)
    space.claim(9)
    space.claim(20)
    assert space.allocated_ranges() == [(9, 10), (20, 21)]
    assert space.free_ranges() == [(0, 9), (21, 30)]
    assert space.owned_ranges() == [(0, 10), (20, 30)]
    space.clear()
    space._check()
    assert space.owned_ranges() == []
    assert (space.num_free(), space.num_allocated()) == (0, 0)
    assert space.allocate(0, 30) is None


def test_repr_shows_both_lists() -> None:
    space = space_with(ip("10.0.0.0"), ip("10.0.0.16"))
    space.claim(ip("10.0.0.0"))
    assert repr(space) == "Space(ours: 10.0.0.0+1; free: 10.0.0.1+15)"
    assert repr(Space()) == "Space(ours: -; free: -)"


def test_sequential_allocate_then_free_keeps_one_interval_each() -> None:
    subnet = parse_cidr("10.32.0.0/12")
    space = space_with(*subnet.range)
    lo, hi = subnet.host_range
    got = [space.allocate(lo, hi) for _ in range(1000)]
    assert got == list(range(lo, lo + 1000))
    assert space.allocated_ranges() == [(lo, lo + 1000)]
    assert space.free_ranges() == [(subnet.start, lo), (lo + 1000, subnet.end)]
    for addr in range(lo, lo + 1000):
        space.free(addr)
    assert space.free_ranges() == [subnet.range]
    assert space.num_allocated() == 0
    space._check()

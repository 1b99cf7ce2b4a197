"""Ring: the ownership CRDT (reference §1, every scenario of Weave's ring tests in §9.1).

Entries are written as ``(token, peer, free, version)``, the order of the
reference's ``{token peer free vN}`` shorthand. The ring under test is Weave's
10.0.0.0-10.0.1.0 unless a test says otherwise.

Merges use Weave's test rule for allocations: an entry *has allocations* iff
its Free is below its range size, and a range has allocations iff an entry of
the receiving ring that covers part of it has.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pytest

from weavek.core.address import Range, parse_address, parse_cidr
from weavek.core.peer import UNKNOWN_PEER, parse_peer_name
from weavek.core.ring import (
    TRANSFER_VERSION_JUMP,
    DifferentRangeError,
    DifferentSeedsError,
    InvalidRingError,
    MergeConflictError,
    Ring,
    RingError,
)


def ip(text: str) -> int:
    return parse_address(text)[0]


P1 = parse_peer_name("01:00:00:00:02:00")
P2 = parse_peer_name("02:00:00:00:02:00")
P3 = parse_peer_name("03:00:00:00:02:00")

START, END = ip("10.0.0.0"), ip("10.0.1.0")
DOT8, DOT10, DOT245, DOT250 = ip("10.0.0.8"), ip("10.0.0.10"), ip("10.0.0.245"), ip("10.0.0.250")
MIDDLE = ip("10.0.0.128")


def dot(n: int) -> int:
    return START + n


class E(NamedTuple):
    token: int
    peer: int
    free: int = 0
    version: int = 0


def make_ring(
    me: int, entries: Iterable[tuple[int, ...]] = (), start: int = START, end: int = END
) -> Ring:
    """A replica with the given entries, set column by column and not checked."""
    ring = Ring(start, end, me)
    for token, peer, free, version in (E(*e) for e in entries):
        ring.tokens.append(token)
        ring.peers.append(peer)
        ring.frees.append(free)
        ring.versions.append(version)
    return ring


def entries(ring: Ring) -> list[E]:
    return [E(*row) for row in zip(ring.tokens, ring.peers, ring.frees, ring.versions, strict=True)]


def entry_size(ring: Ring, i: int) -> int:
    return ring.distance(ring.tokens[i], ring.tokens[(i + 1) % len(ring)])


def has_allocations_in(ring: Ring) -> Callable[[list[Range]], bool]:
    """Weave's test rule, looked up in ``ring`` (the receiver, unchanged while it merges)."""

    def has_allocations(ranges: list[Range]) -> bool:
        for lo, hi in ranges:
            for i in range(len(ring)):
                covers = any(a < hi and lo < b for a, b in ring.entry_ranges(i))
                if covers and ring.frees[i] < entry_size(ring, i):
                    return True
        return False

    return has_allocations


def merge(ring: Ring, other: Ring) -> bool:
    """``ring`` merges ``other``'s copy; a failed merge must leave ``ring`` untouched."""
    before = ring.to_data()
    try:
        return ring.merge(other.to_data(), has_allocations_in(ring))
    except RingError:
        assert ring.to_data() == before
        raise


# -- invariants (TestInvariants) --------------------------------------------------


def test_check_refuses_unsorted_tokens() -> None:
    ring = make_ring(P1, [(DOT245, P1), (DOT10, P2)])
    with pytest.raises(InvalidRingError, match="not sorted"):
        ring.check()


def test_check_refuses_a_repeated_token() -> None:
    ring = make_ring(P1, [(DOT245, P1), (DOT245, P2)])
    with pytest.raises(InvalidRingError, match="appears twice"):
        ring.check()


@pytest.mark.parametrize("token", [START, END])
def test_check_refuses_tokens_outside_the_universe(token: int) -> None:
    ring = make_ring(P1, [(token, P1)], start=DOT10, end=DOT245)
    with pytest.raises(InvalidRingError, match="out of range"):
        ring.check()


def test_check_refuses_more_free_than_the_range_holds() -> None:
    ring = make_ring(P1, [(START, P1, 128), (MIDDLE, P2, 129)])
    with pytest.raises(InvalidRingError, match=r"too much free space: 129 > 128"):
        ring.check()
    make_ring(P1, [(START, P1, 128), (MIDDLE, P2, 128)]).check()


def test_check_refuses_negative_numbers_and_ragged_columns() -> None:
    with pytest.raises(InvalidRingError, match="Negative"):
        make_ring(P1, [(START, P1, -1)]).check()
    with pytest.raises(InvalidRingError, match="Negative"):
        make_ring(P1, [(START, P1, 0, -1)]).check()
    ring = make_ring(P1, [(START, P1)])
    ring.frees.append(3)
    with pytest.raises(InvalidRingError, match="different lengths"):
        ring.check()


def test_from_data_checks_what_it_rebuilds() -> None:
    data = make_ring(P1, [(MIDDLE, P1), (START, P1)]).to_data()
    with pytest.raises(InvalidRingError):
        Ring.from_data(data, P1)


def test_a_ring_needs_a_non_empty_universe() -> None:
    with pytest.raises(ValueError):
        Ring(START, START, P1)


# -- inserting tokens (TestInsert, through grants to ourselves) --------------------


def test_tokens_inserted_by_grants_split_the_range_info() -> None:
    ring = Ring(START, END, P1)
    ring.claim_it_all()
    ring.grant(DOT245, END, P1)
    assert ring.range_info() == [(P1, (START, DOT245), 1), (P1, (DOT245, END), 0)]
    ring.grant(DOT10, DOT245, P1)
    assert ring.range_info() == [
        (P1, (START, DOT10), 2),
        (P1, (DOT10, DOT245), 0),
        (P1, (DOT245, END), 0),
    ]
    # Granting between existing tokens adds no token twice.
    ring.grant(DOT10, DOT245, P1)
    assert ring.tokens == [START, DOT10, DOT245]
    ring.check()


# -- which entry holds an address (TestBetween, through index_of/owner) ----------


def test_a_single_token_ring_holds_everything_in_its_one_entry() -> None:
    ring = make_ring(P1, [(START, P1, 256)])
    for n in range(256):
        assert ring.index_of(dot(n)) == 0
        assert ring.owner(dot(n)) == P1


def test_addresses_below_the_first_token_belong_to_the_last_entry() -> None:
    ring = make_ring(P1, [(DOT10, P1), (DOT245, P2)])
    ring.check()
    for n in range(256):
        inside_first = 10 <= n < 245
        assert (ring.index_of(dot(n)) % len(ring) == 0) == inside_first
        assert ring.owner(dot(n)) == (P1 if inside_first else P2)


def test_index_of_refuses_addresses_outside_the_ring() -> None:
    ring = make_ring(P1, [(START, P1, 256)])
    with pytest.raises(ValueError):
        ring.index_of(END)
    with pytest.raises(ValueError):
        ring.index_of(START - 1)


# -- grants (TestGrantSimple, TestGrantSplit) ----------------------------------------


def test_grant_sequence_gives_exact_free_counts_and_versions() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    assert entries(ring1) == [E(START, P1, 256, 0)]

    ring1.grant(START, END, P2)  # give away the whole ring: only the owner changes
    assert entries(ring1) == [E(START, P2, 256, 1)]

    assert merge(ring2, ring1)
    ring2.grant(DOT10, END, P1)  # split off the tail
    assert entries(ring2) == [E(START, P2, 10, 2), E(DOT10, P1, 246, 0)]

    assert merge(ring1, ring2)
    assert entries(ring1) == entries(ring2)
    ring1.grant(DOT245, END, P2)  # and again
    assert entries(ring1) == [E(START, P2, 10, 2), E(DOT10, P1, 235, 1), E(DOT245, P2, 11, 0)]
    ring1.check()


def test_grant_spanning_a_live_token_keeps_its_smaller_free_count() -> None:
    ring = make_ring(P1, [(START, P1, 10, 2), (DOT10, P1, 235), (DOT245, P1, 10)])
    ring.grant(DOT10, END, P2)
    assert entries(ring) == [E(START, P1, 10, 2), E(DOT10, P2, 235, 1), E(DOT245, P2, 10, 1)]
    ring.check()


def test_grant_punching_a_hole_inserts_two_tokens() -> None:
    ring1, ring2 = make_ring(P1, [(START, P1, 256)]), Ring(START, END, P2)
    merge(ring2, ring1)
    assert entries(ring2) == entries(ring1)
    ring1.grant(DOT10, DOT245, P2)
    assert entries(ring1) == [E(START, P1, 10, 1), E(DOT10, P2, 235, 0), E(DOT245, P1, 11, 0)]
    ring1.check()


def test_hole_spanning_a_live_token_caps_its_free_at_the_distance_to_the_end() -> None:
    ring = make_ring(P1, [(START, P1, 10, 2), (DOT10, P1, 118), (MIDDLE, P1, 127)])
    ring.grant(DOT10, DOT245, P2)
    assert entries(ring) == [
        E(START, P1, 10, 2),
        E(DOT10, P2, 118, 1),
        E(MIDDLE, P2, 117, 1),
        E(DOT245, P1, 11, 0),
    ]
    ring.check()


def test_grant_refuses_ranges_we_do_not_own_or_cannot_hold() -> None:
    ring = make_ring(P1, [(START, P1, 128), (MIDDLE, P2, 128)])
    with pytest.raises(ValueError, match="not owned"):
        ring.grant(DOT10, DOT245, P3)  # runs into P2's range
    with pytest.raises(ValueError, match="not owned"):
        ring.grant(DOT245, END, P3)
    with pytest.raises(ValueError):
        ring.grant(DOT10, DOT10, P3)
    with pytest.raises(ValueError):
        ring.grant(DOT10, END + 1, P3)
    with pytest.raises(ValueError):
        Ring(START, END, P1).grant(START, END, P2)
    assert entries(ring) == [E(START, P1, 128), E(MIDDLE, P2, 128)]


# -- merges (TestMergeSimple, TestMergeMore, TestMergeSplit, TestMergeSplit2) -------


def test_concurrent_grants_on_both_sides_converge() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    ring1.grant(MIDDLE, END, P2)
    assert merge(ring2, ring1)
    assert entries(ring1) == [E(START, P1, 128, 1), E(MIDDLE, P2, 128, 0)]
    assert entries(ring2) == entries(ring1)

    ring1.grant(START, MIDDLE, P2)
    ring2.grant(MIDDLE, END, P1)
    assert merge(ring2, ring1)
    assert merge(ring1, ring2)
    assert entries(ring1) == [E(START, P2, 128, 2), E(MIDDLE, P1, 128, 1)]
    assert entries(ring2) == entries(ring1)


def test_merging_back_and_forth_step_by_step() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    assert entries(ring1) == entries(ring2) == []

    ring1.claim_it_all()
    assert entries(ring1) == [E(START, P1, 256)]
    assert entries(ring2) == []

    assert merge(ring2, ring1)
    assert entries(ring2) == [E(START, P1, 256)]

    ring1.grant(START, END, P2)
    assert entries(ring1) == [E(START, P2, 256, 1)]
    assert entries(ring2) == [E(START, P1, 256)]

    assert merge(ring2, ring1)
    assert entries(ring2) == [E(START, P2, 256, 1)]

    ring2.grant(MIDDLE, END, P1)
    final = [E(START, P2, 128, 2), E(MIDDLE, P1, 128, 0)]
    assert entries(ring2) == final
    assert entries(ring1) == [E(START, P2, 256, 1)]

    assert merge(ring1, ring2)
    assert entries(ring1) == entries(ring2) == final

    assert not merge(ring2, ring1)  # nothing new: a no-op
    assert entries(ring1) == entries(ring2) == final


def test_a_split_by_the_owner_reaches_the_other_ring() -> None:
    ring1, ring2 = make_ring(P1, [(START, P2, 256)]), Ring(START, END, P2)
    assert merge(ring2, ring1)
    assert entries(ring2) == entries(ring1)

    ring2.grant(DOT10, DOT245, P1)
    split = [E(START, P2, 10, 1), E(DOT10, P1, 235), E(DOT245, P2, 11)]
    assert entries(ring2) == split
    assert merge(ring1, ring2)
    assert entries(ring1) == entries(ring2) == split


def test_a_split_ending_inside_a_range_inserts_a_token_with_the_right_free() -> None:
    ring1 = make_ring(P1, [(START, P2, 250), (DOT250, P2, 5)])
    ring2 = Ring(START, END, P2)
    assert merge(ring2, ring1)
    assert entries(ring2) == entries(ring1)

    ring2.grant(DOT10, DOT245, P1)
    split = [E(START, P2, 10, 1), E(DOT10, P1, 235), E(DOT245, P2, 5), E(DOT250, P2, 5)]
    assert entries(ring2) == split
    assert merge(ring1, ring2)
    assert entries(ring1) == entries(ring2) == split


# -- merge conflicts (TestMergeWithConflicts a-f) ---------------------------------


def test_conflict_a_same_version_other_owner_without_allocations_is_tie_broken() -> None:
    ring1 = make_ring(P1, [(START, P1, 256, 1)])
    ring2 = make_ring(P2, [(START, P2, 256, 1)])
    assert not merge(ring1, ring2)  # equal free: ours stays
    assert entries(ring1) == [E(START, P1, 256, 1)]


def test_tie_break_takes_the_entry_with_more_free() -> None:
    # Between two other peers: no allocations of ours are involved.
    ring3 = make_ring(P3, [(START, P1, 100, 4)])
    assert merge(ring3, make_ring(P2, [(START, P2, 200, 4)]))
    assert entries(ring3) == [E(START, P2, 200, 4)]
    assert not merge(ring3, make_ring(P1, [(START, P1, 100, 4)]))
    assert entries(ring3) == [E(START, P2, 200, 4)]


def test_conflict_b_same_version_other_owner_with_allocations_fails() -> None:
    ring1 = make_ring(P1, [(START, P1, 128, 1)])
    ring2 = make_ring(P2, [(START, P2, 256, 1)])
    with pytest.raises(MergeConflictError, match=r"Inconsistent entries for 10\.0\.0\.0"):
        merge(ring1, ring2)


def test_conflict_c_newer_copy_of_our_own_entry_is_reasserted() -> None:
    ring1 = make_ring(P1, [(START, P1)])
    ring2 = make_ring(P2, [(START, P1, 0, 1)])
    assert not merge(ring1, ring2)  # our entry wins, one version above theirs
    assert entries(ring1) == [E(START, P1, 0, 2)]


def test_conflict_d_newer_other_owner_without_allocations_is_accepted() -> None:
    ring1 = make_ring(P1, [(START, P1, 256)])
    ring2 = make_ring(P2, [(START, P2, 256, 1)])
    assert merge(ring1, ring2)  # the "repair"
    assert entries(ring1) == [E(START, P2, 256, 1)]


def test_conflict_e_newer_other_owner_with_allocations_fails() -> None:
    ring1 = make_ring(P1, [(START, P1, 128)])
    ring2 = make_ring(P2, [(START, P2, 0, 1)])
    with pytest.raises(MergeConflictError, match="Received update for IP range I own"):
        merge(ring1, ring2)


def test_conflict_f_split_of_our_allocation_free_range_is_accepted() -> None:
    ring1 = make_ring(P1, [(START, P1, 256, 1)])
    ring2 = make_ring(P2, [(START, P1, 128, 2), (MIDDLE, P2, 128)])
    assert merge(ring1, ring2)
    # Our token is reasserted above their version; its free is clamped to the new size.
    assert entries(ring1) == [E(START, P1, 128, 3), E(MIDDLE, P2, 128, 0)]


# -- merge errors (TestMergeErrors) ------------------------------------------------


def test_merge_refuses_an_invalid_ring() -> None:
    ring1 = Ring(START, END, P1)
    ring2 = make_ring(P2, [(MIDDLE, P2), (START, P2)])
    with pytest.raises(InvalidRingError, match="not sorted"):
        merge(ring1, ring2)


def test_merge_refuses_another_universe() -> None:
    ring1 = Ring(START, END, P1)
    with pytest.raises(DifferentRangeError) as info:
        merge(ring1, Ring(START, MIDDLE, P2))
    assert info.value.theirs == (START, MIDDLE)
    assert info.value.ours == (START, END)


def test_merge_refuses_other_seeds_before_looking_at_the_universe() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, MIDDLE, P2)
    ring1.claim_it_all()
    ring2.claim_it_all()
    with pytest.raises(DifferentSeedsError) as info:
        merge(ring1, ring2)
    assert (info.value.theirs, info.value.ours) == ((P2,), (P1,))


def test_merge_adopts_seeds_only_when_it_has_none() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_for_peers([P2, P1])
    assert merge(ring2, ring1)
    assert ring2.seeds == (P1, P2)
    ring3 = make_ring(P3, [(START, P3, 256)])
    ring3.seeds = (P3,)
    with pytest.raises(DifferentSeedsError):
        merge(ring2, ring3)
    seedless = make_ring(P3, entries(ring1))
    assert not merge(ring2, seedless)  # a ring without seeds is not another cluster's
    assert ring2.seeds == (P1, P2)


def test_merge_refuses_same_version_other_owner_where_we_have_allocations() -> None:
    ring1 = make_ring(P1, [(START, P1)])
    ring2 = make_ring(P2, [(START, P2)])
    with pytest.raises(MergeConflictError):
        merge(ring1, ring2)


def test_merge_refuses_a_token_inside_our_range_where_we_have_allocations() -> None:
    ring1 = make_ring(P1, [(START, P1)])
    ring2 = make_ring(P2, [(MIDDLE, P2)])
    with pytest.raises(MergeConflictError, match=r"says it owns the IP range from 10\.0\.0\.128"):
        merge(ring1, ring2)


def test_trailing_token_splitting_our_allocation_free_last_range_is_accepted() -> None:
    # Deliberate difference from Weave (ring.py docstring): Weave refuses any trailing
    # entry of theirs that splits our last range; we refuse it only if we hold
    # allocations there, like every other split.
    ring1 = make_ring(P1, [(START, P1, 256)])
    ring2 = make_ring(P2, [(MIDDLE, P2, 128)])
    assert merge(ring1, ring2)
    assert entries(ring1) == [E(START, P1, 128), E(MIDDLE, P2, 128)]


def test_leading_token_splitting_our_wrapped_last_range_is_checked_too() -> None:
    # Our last entry (.128) wraps round to cover [.0, .10); their token at .5 splits it.
    theirs = make_ring(P3, [(dot(5), P3, 5), (DOT10, P2, 118), (MIDDLE, P1, 133)])
    ring1 = make_ring(P1, [(DOT10, P2, 118), (MIDDLE, P1, 137)])  # 138 addresses, 1 in use
    with pytest.raises(MergeConflictError, match=r"says it owns the IP range from 10\.0\.0\.5"):
        merge(ring1, theirs)

    ring1 = make_ring(P1, [(DOT10, P2, 118), (MIDDLE, P1, 138)])  # all free
    assert merge(ring1, theirs)
    assert entries(ring1) == [E(dot(5), P3, 5), E(DOT10, P2, 118), E(MIDDLE, P1, 133)]


def test_merge_refuses_a_result_that_breaks_the_invariants() -> None:
    # Their newer entry claims 256 free, but our (other-owned) token at .128 halves it.
    ring3 = make_ring(P3, [(START, P2, 128), (MIDDLE, P2, 128)])
    ring2 = make_ring(P2, [(START, P2, 256, 1)])
    with pytest.raises(InvalidRingError, match=r"Merge of incoming data causes: .*too much free"):
        merge(ring3, ring2)


# -- gossip (TestGossip, TestEmptyGossip, TestMergeOldMessage) ------------------------


def test_an_empty_ring_copies_a_claimed_ring_exactly() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    assert merge(ring2, ring1)
    assert ring2.to_data() == ring1.to_data()
    assert ring2.me == P2


def test_merging_an_empty_ring_changes_nothing() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    before = ring1.to_data()
    assert not merge(ring1, ring2)
    assert ring1.to_data() == before


def test_an_old_copy_of_our_ring_merges_as_a_no_op() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    assert merge(ring2, ring1)
    ring1.grant(MIDDLE, END, P1)  # a grant to ourselves still bumps and inserts
    before = ring1.to_data()
    assert not merge(ring1, ring2)
    assert ring1.to_data() == before


def test_re_owning_the_first_token_merges_cleanly() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    assert merge(ring2, ring1)
    ring1.grant(START, MIDDLE, P2)
    assert merge(ring2, ring1)
    assert entries(ring2) == entries(ring1) == [E(START, P2, 128, 1), E(MIDDLE, P1, 128, 0)]


# -- donors (TestFindFree) ---------------------------------------------------------


def donors(ring: Ring, start: int = START, end: int = END, seed: int = 0) -> list[int]:
    return ring.donors_for(start, end, random.Random(seed).random)


def test_no_donors_in_an_empty_ring_or_among_our_own_entries() -> None:
    ring = Ring(START, END, P1)
    assert donors(ring) == []
    ring = make_ring(P1, [(START, P1)])
    assert donors(ring) == []
    assert ring.set_free(0, 10)
    assert donors(ring) == []  # never ourselves, even with free space
    ring = make_ring(P1, [(START, P1, 1), (MIDDLE, P1, 1)])
    ring.check()
    assert donors(ring) == []


def test_donors_are_the_other_peers_with_free_space_near_the_range() -> None:
    ring = make_ring(P1, [(START, P2, 1)])
    assert donors(ring) == [P2]

    ring = make_ring(P1, [(START, P2, 1), (MIDDLE, P3, 1)])
    ring.check()
    assert donors(ring, START, MIDDLE) == [P2]
    assert donors(ring, MIDDLE, END) == [P3]
    assert sorted(donors(ring)) == [P2, P3]

    ring = make_ring(P1, [(START, P2, 0), (MIDDLE, P3, 1)])
    assert donors(ring) == [P3]  # nothing gossiped free: never asked


def test_donor_order_is_total_free_times_a_random_draw() -> None:
    ring = make_ring(P1, [(START, P2, 10), (DOT10, P3, 100), (MIDDLE, P2, 5)])
    ring.check()
    draws = iter([0.5, 0.1])  # P2: 15 * 0.5 = 7.5; P3: 100 * 0.1 = 10
    assert ring.donors_for(START, END, lambda: next(draws)) == [P3, P2]
    assert ring.donors_for(START, END, lambda: 0.5) == [P3, P2]
    # Every entry overlapping the range counts, with its whole free count.
    ring = make_ring(P1, [(START, P2, 200), (DOT245, P3, 11)])
    assert ring.donors_for(DOT10, DOT250, lambda: 0.5) == [P2, P3]


# -- free counts (TestReportFree) -------------------------------------------------


def test_reporting_free_counts_bumps_only_entries_that_changed() -> None:
    ring1, ring2 = Ring(START, END, P1), Ring(START, END, P2)
    ring1.claim_it_all()
    ring1.grant(MIDDLE, END, P2)
    assert merge(ring2, ring1)
    mine = [i for i, peer in enumerate(ring2.peers) if peer == P2]
    assert mine == [1]
    for i in mine:
        assert ring2.set_free(i, 0)
    ring2.check()
    assert entries(ring2)[1] == E(MIDDLE, P2, 0, 1)
    assert not ring2.set_free(1, 0)  # unchanged: no new version
    assert entries(ring2)[1] == E(MIDDLE, P2, 0, 1)
    assert merge(ring1, ring2)
    assert entries(ring1) == entries(ring2)


# -- misc (TestMisc, TestOwner, TestOwnedRange, TestTransfer) -------------------------


def test_a_new_ring_is_empty_until_claimed() -> None:
    ring = Ring(START, END, P1)
    assert ring.empty
    assert len(ring) == 0
    ring.claim_it_all()
    assert not ring.empty
    assert ring.seeds == (P1,)
    text = repr(ring)
    assert "10.0.0.0" in text
    assert "01:00:00:00:02:00" in text
    with pytest.raises(ValueError):
        ring.claim_it_all()
    with pytest.raises(ValueError):
        Ring(START, END, P1).claim_for_peers([])


def test_owner_and_contains() -> None:
    ring = Ring(START, END, P1)
    assert ring.contains(START)
    assert not ring.contains(END)
    assert ring.owner(START) == UNKNOWN_PEER
    with pytest.raises(ValueError):
        ring.owner(END)
    ring.claim_it_all()
    ring.grant(MIDDLE, END, P2)
    assert ring.owner(START) == P1
    assert ring.owner(MIDDLE - 1) == P1
    assert ring.owner(MIDDLE) == P2
    assert ring.owner(END - 1) == P2
    with pytest.raises(ValueError):
        ring.owner(END)
    assert ring.peer_names() == {P1, P2}


def test_owned_ranges_after_grant_and_merge_are_not_coalesced() -> None:
    ring1 = Ring(START, END, P1)
    ring1.claim_it_all()
    assert ring1.owned_ranges() == [(START, END)]
    ring1.grant(MIDDLE, END, P2)
    assert ring1.owned_ranges() == [(START, MIDDLE)]

    ring2 = Ring(START, END, P2)
    assert merge(ring2, ring1)
    assert ring2.owned_ranges() == [(MIDDLE, END)]
    assert ring2.owned_ranges(P1) == [(START, MIDDLE)]

    ring2 = make_ring(P2, [(MIDDLE, P2)])
    assert ring2.owned_ranges() == [(START, MIDDLE), (MIDDLE, END)]
    ring2 = make_ring(P2, [(DOT10, P2), (MIDDLE, P2)])
    assert ring2.owned_ranges() == [(START, DOT10), (DOT10, MIDDLE), (MIDDLE, END)]
    assert ring2.owned_ranges(P3) == []


def test_transfer_gives_back_ranges_with_versions_jumped_by_100() -> None:
    ring = Ring(START, END, P1)
    ring.claim_it_all()
    ring.grant(MIDDLE, END, P2)
    assert ring.transfer(P2, P1) == [(MIDDLE, END)]
    assert ring.owned_ranges() == [(START, MIDDLE), (MIDDLE, END)]
    assert entries(ring) == [E(START, P1, 128, 1), E(MIDDLE, P1, 128, TRANSFER_VERSION_JUMP)]
    assert ring.transfer(P2, P1) == []  # nothing left to take


def test_a_transferred_token_is_reused_by_a_later_grant() -> None:
    ring = Ring(START, END, P1)
    ring.claim_it_all()
    ring.grant(MIDDLE, END, P2)
    ring.transfer(P2, P1)
    ring.grant(DOT10, MIDDLE, P2)
    assert ring.owned_ranges() == [(START, DOT10), (MIDDLE, END)]
    assert ring.owned_ranges(P2) == [(DOT10, MIDDLE)]
    ring.check()


def test_transfer_of_a_wrapped_range_is_split_at_zero() -> None:
    ring = make_ring(P1, [(DOT10, P1, 118), (MIDDLE, P2, 138)])
    assert ring.transfer(P2, P1) == [(START, DOT10), (MIDDLE, END)]


def test_transfer_wins_over_a_late_free_report_in_either_order() -> None:
    ring2 = Ring(START, END, P2)
    ring2.claim_for_peers([P1, P2])
    ring1, ring3 = Ring.from_data(ring2.to_data(), P1), Ring.from_data(ring2.to_data(), P3)
    ring2.set_free(1, 100)  # P2's last report, still on its way when P3 removes P2
    ring3.transfer(P2, P3)
    for first, second in [(ring2, ring3), (ring3, ring2)]:
        ring = ring1.copy()
        merge(ring, first)
        merge(ring, second)
        assert entries(ring)[1] == E(MIDDLE, P3, 128, TRANSFER_VERSION_JUMP)


def test_heir_is_the_first_known_peer_in_token_order() -> None:
    ring = make_ring(P1, [(START, P1, 10), (DOT10, P3, 118), (MIDDLE, P2, 128)])
    assert ring.heir(lambda peer: True) == P3
    assert ring.heir(lambda peer: peer == P2) == P2
    assert ring.heir(lambda peer: peer == P1) == UNKNOWN_PEER


# -- initial division (TestClaimForPeers and the /12 share table of §1.4) ---------


def name(i: int) -> int:
    return parse_peer_name(f"{i // 100:02x}:{i % 100:02x}:00:00:00:ff")


def names(count: int) -> list[int]:
    return [name(i) for i in range(count)]


@pytest.mark.parametrize("count", range(1, 13))
def test_claim_for_peers_on_an_eight_address_ring(count: int) -> None:
    peers = names(count)
    ring = Ring(START, DOT8, peers[0])
    ring.claim_for_peers(reversed(peers))
    ring.check()
    assert ring.tokens[-1] + ring.frees[-1] == DOT8
    assert ring.seeds == tuple(sorted(peers))
    assert len(ring) == min(count, 8)  # surplus peers get nothing
    assert len(set(ring.peers)) == len(ring)
    assert ring.versions == [0] * len(ring)
    assert sum(ring.frees) == 8


SLASH12 = {
    1: [("10.32.0.0", 1048576)],
    2: [("10.32.0.0", 524288), ("10.40.0.0", 524288)],
    3: [("10.32.0.0", 524288), ("10.40.0.0", 262144), ("10.44.0.0", 262144)],
    4: [("10.32.0.0", 262144), ("10.36.0.0", 262144), ("10.40.0.0", 262144), ("10.44.0.0", 262144)],
    5: [
        ("10.32.0.0", 262144),
        ("10.36.0.0", 262144),
        ("10.40.0.0", 262144),
        ("10.44.0.0", 131072),
        ("10.46.0.0", 131072),
    ],
}


@pytest.mark.parametrize("count", sorted(SLASH12))
def test_claim_for_peers_shares_a_slash12_by_recursive_halving(count: int) -> None:
    universe = parse_cidr("10.32.0.0/12")
    peers = names(count)
    ring = Ring(universe.start, universe.end, peers[-1])
    ring.claim_for_peers(peers[::-1] + peers)  # order and duplicates do not matter
    assert [(t, f) for t, _, f, _ in entries(ring)] == [(ip(t), f) for t, f in SLASH12[count]]
    assert ring.peers == peers  # lowest name first
    assert ring.seeds == tuple(peers)


def test_odd_sized_universe_leaves_one_address_outside_the_free_counts() -> None:
    ring = Ring(START, START + 7, P1)
    ring.claim_for_peers([P1, P2])
    assert entries(ring) == [E(START, P1, 3), E(START + 4, P2, 3)]
    ring.check()


# -- wrap-round: a first token above the universe's start --------------------------


def test_owned_ranges_of_a_wrapping_last_entry_are_split_at_zero() -> None:
    ring = make_ring(P1, [(DOT10, P2, 118), (MIDDLE, P1, 138)])
    ring.check()
    assert ring.owned_ranges() == [(START, DOT10), (MIDDLE, END)]
    assert ring.owned_ranges(P2) == [(DOT10, MIDDLE)]
    assert ring.range_info() == [
        (P1, (START, DOT10), 0),
        (P2, (DOT10, MIDDLE), 0),
        (P1, (MIDDLE, END), 0),
    ]


def test_grant_below_the_first_token_splits_the_wrapped_last_entry() -> None:
    ring = make_ring(P1, [(MIDDLE, P1, 256, 3)])
    ring.grant(DOT10, ip("10.0.0.20"), P2)
    assert entries(ring) == [
        E(DOT10, P2, 10, 0),
        E(ip("10.0.0.20"), P1, 108, 0),
        E(MIDDLE, P1, 138, 4),
    ]
    ring.check()
    assert ring.owned_ranges() == [(START, DOT10), (ip("10.0.0.20"), MIDDLE), (MIDDLE, END)]


def test_grant_from_the_universe_start_below_the_first_token() -> None:
    ring = make_ring(P1, [(MIDDLE, P1, 256)])
    ring.grant(START, DOT10, P2)
    assert entries(ring) == [E(START, P2, 10, 0), E(DOT10, P1, 118, 0), E(MIDDLE, P1, 128, 1)]
    ring.check()


def test_grant_below_the_first_token_running_past_it() -> None:
    ring = make_ring(P1, [(DOT10, P1, 118), (MIDDLE, P1, 138)])
    ring.grant(dot(5), dot(50), P2)
    assert entries(ring) == [
        E(dot(5), P2, 5, 0),
        E(DOT10, P2, 40, 1),
        E(dot(50), P1, 78, 0),
        E(MIDDLE, P1, 133, 1),
    ]
    ring.check()


def test_grant_of_the_top_of_the_universe_adds_a_token_at_its_start() -> None:
    ring = make_ring(P1, [(MIDDLE, P1, 256)])
    ring.grant(ip("10.0.0.200"), END, P2)
    assert entries(ring) == [
        E(START, P1, 128, 0),
        E(MIDDLE, P1, 72, 1),
        E(ip("10.0.0.200"), P2, 56, 0),
    ]
    ring.check()


def test_grant_of_a_whole_wrapped_entry_from_below_the_first_token() -> None:
    ring = make_ring(P1, [(DOT10, P2, 118), (MIDDLE, P1, 138)])
    ring.grant(START, DOT10, P3)  # the wrapped piece of our last entry
    assert entries(ring) == [
        E(START, P3, 10, 0),
        E(DOT10, P2, 118, 0),
        E(MIDDLE, P1, 128, 1),
    ]
    with pytest.raises(ValueError, match="not owned"):
        make_ring(P1, [(DOT10, P2, 118), (MIDDLE, P1, 138)]).grant(START, DOT245, P3)


def test_wrapped_grant_merges_into_the_other_ring() -> None:
    ring1 = make_ring(P1, [(MIDDLE, P1, 256)])
    ring2 = make_ring(P2, [(MIDDLE, P1, 256)])
    ring1.grant(DOT10, ip("10.0.0.20"), P2)
    assert merge(ring2, ring1)
    assert entries(ring2) == entries(ring1)
    assert ring2.owned_ranges() == [(DOT10, ip("10.0.0.20"))]


# -- an IPv6 /64 universe: the same code with huge ints ------------------------------


def test_ipv6_slash64_grant_merge_and_owned_ranges() -> None:
    universe = parse_cidr("fd00:1:2:3::/64")
    start, end, half = universe.start, universe.end, 1 << 63
    ring1, ring2 = Ring(start, end, P1, 6), Ring(start, end, P2, 6)
    ring1.claim_for_peers([P1, P2])
    ring2.claim_for_peers([P1, P2])
    assert entries(ring1) == [E(start, P1, half), E(start + half, P2, half)]

    hole = (start + (1 << 40), start + (1 << 62))
    ring1.grant(*hole, P2)
    ring1.check()
    assert ring1.owned_ranges() == [(start, hole[0]), (hole[1], start + half)]
    assert merge(ring2, ring1)
    assert entries(ring2) == entries(ring1)
    assert ring2.owned_ranges() == [hole, (start + half, end)]

    ring2.grant(end - 1, end, P1)  # the very last address
    assert merge(ring1, ring2)
    assert ring1.owned_ranges()[-1] == (end - 1, end)
    assert ring1.owner(end - 1) == P1
    assert "fd00:1:2:3:ffff:ffff:ffff:ffff" in repr(ring1)
    ring1.check()


def test_ipv6_wrapping_entry_and_transfer() -> None:
    universe = parse_cidr("fd00::/64")
    start, end = universe.start, universe.end
    token = start + (1 << 63) + 12345
    ring = make_ring(P1, [(token, P2, 1 << 64)], start=start, end=end)
    ring.check()
    assert ring.owned_ranges(P2) == [(start, token), (token, end)]
    assert ring.transfer(P2, P1) == [(start, token), (token, end)]
    ring.grant(start + 1, start + 2, P3)
    ring.check()
    assert ring.owned_ranges(P3) == [(start + 1, start + 2)]
    assert sum(ring.frees) == 1 << 64
    assert ring.donors_for(start, end, lambda: 0.5) == [P3]


# -- what merge does not promise for arbitrary (conflicting) rings -------------------


def test_merge_of_conflicting_rings_is_not_commutative() -> None:
    # Same token and version, different owners, equal free: each side keeps its own.
    ring1 = make_ring(P3, [(START, P1, 100, 4)])
    ring2 = make_ring(P1, [(START, P2, 100, 4)])
    a, b = ring1.copy(), ring2.copy()
    merge(a, ring2)
    merge(b, ring1)
    assert entries(a) != entries(b)
    # Same entry with other free counts: free alone never wins, so each keeps its own.
    ring1 = make_ring(P3, [(START, P1, 100, 4)])
    ring2 = make_ring(P2, [(START, P1, 50, 4)])
    assert not merge(ring1, ring2)
    assert entries(ring1) == [E(START, P1, 100, 4)]


# -- fuzzing (TestFuzzRing, TestFuzzRingHard) ------------------------------------------


def random_good_ring(rng: random.Random, peers: list[int]) -> Ring:
    tokens = sorted(rng.sample(range(256), rng.randrange(256)))
    ring = make_ring(rng.choice(peers), [(dot(t), rng.choice(peers)) for t in tokens])
    ring.check()
    return ring


def random_bad_ring(rng: random.Random, peers: list[int]) -> Ring:
    tokens = [rng.randrange(-2, 258) for _ in range(rng.randrange(256))]
    return make_ring(
        rng.choice(peers), [(dot(t), rng.choice(peers), rng.randrange(3)) for t in tokens]
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_merging_random_rings_never_breaks_either(seed: int) -> None:
    rng = random.Random(seed)
    peers = names(25)
    for _ in range(500):
        ring1, ring2 = random_good_ring(rng, peers), random_good_ring(rng, peers)
        with contextlib.suppress(RingError):
            merge(ring1, ring2)
        ring1.check()
        ring2.check()
    for _ in range(500):
        ring1, bad = random_good_ring(rng, peers), random_bad_ring(rng, peers)
        with contextlib.suppress(RingError):
            merge(ring1, bad)
        ring1.check()


@pytest.mark.parametrize("seed", [1])
def test_fuzz_valid_histories_always_merge(seed: int) -> None:
    """Weave's hard fuzz: grants, gossip, and peers removed with rmpeer and replaced."""
    rng = random.Random(seed)
    num_peers, iterations = 100, 3000
    peers: list[int] = []
    rings: list[Ring] = []
    next_id = 0

    def add_peer() -> None:
        nonlocal next_id
        peers.append(name(next_id))
        rings.append(Ring(START, END, peers[-1]))
        next_id += 1

    def random_peer(exclude: int = -1) -> int:
        if exclude < 0:
            return rng.randrange(len(peers))
        index = rng.randrange(len(peers) - 1)
        return index + 1 if index >= exclude else index

    for _ in range(num_peers):
        add_peer()
    rings[0].claim_it_all()
    owned: dict[int, list[Range]] = {0: rings[0].owned_ranges()}

    def add_or_remove_peer() -> None:
        nonlocal owned
        if len(peers) < num_peers:
            add_peer()
            return
        victim = random_peer()
        heir = random_peer(exclude=victim)
        heir_ring = rings[heir]
        for ring in rings:  # rmpeer is only safe on a converged ring
            merge(heir_ring, ring)
        heir_ring.transfer(peers[victim], peers[heir])
        del peers[victim], rings[victim]
        owned = {}
        for i, ring in enumerate(rings):  # and the takeover is told to everyone
            merge(ring, heir_ring)
            owned[i] = ring.owned_ranges()

    def grant_or_gossip() -> None:
        with_ranges = sorted(i for i, ranges in owned.items() if ranges)
        if with_ranges:
            giver = rng.choice(with_ranges)
            ring = rings[giver]
            lo, hi = rng.choice(owned[giver])
            ring.grant(lo + rng.randrange(hi - lo), hi, peers[random_peer()])
            ring.check()
            receiver = random_peer()
            merge(rings[receiver], ring)
            owned[giver] = ring.owned_ranges()
            owned[receiver] = rings[receiver].owned_ranges()
            return
        # Nobody knows it owns anything yet: gossip some ring to someone.
        source = rng.choice([ring for ring in rings if not ring.empty])
        receiver = random_peer()
        merge(rings[receiver], source)
        owned[receiver] = rings[receiver].owned_ranges()

    for _ in range(iterations):
        if rng.randrange(10) < 1:
            add_or_remove_peer()
        else:
            grant_or_gossip()
    for ring in rings:
        ring.check()

"""The ring's CRDT laws over random *valid histories* (reference §1).

A history is a handful of peers, each holding its own replica. It starts with
every seed peer dividing the universe by ``claim_for_peers`` on a shared seed
list (seed peers may also do so late), or with one peer claiming it all; other
peers start empty. Then, in any order:

* an owner grants a random sub-range of its own (possibly several adjacent
  entries) to a random live peer, itself included;
* an owner reports a random free count for one of its entries (``set_free``);
* a peer merges a copy sent by another: the sender's current ring or any
  older copy ever sent, by a live or a removed peer (late, reordered or
  repeated messages);
* ``rmpeer``: a peer takes over a removed peer's ranges (``transfer``), after
  merging every replica, the removed one's last state included -- rmpeer is
  only safe on a converged ring, as in Weave;
* a new, empty peer joins.

Replicas hold no allocations. What is asserted:

(a) merge is a join. Merging a copy twice is merging it once (and the second
    merge reports no update); replicas that merged the same copies in other
    orders or groupings are identical -- tokens, owners, versions *and* free
    counts -- and equal the per-token highest-version union of those copies.
    This holds exactly because in a valid history a (token, version) pair
    names one entry everywhere (checked on every copy ever made): only the
    owner changes an entry, always bumping its version, and merge's clamp of
    our own free counts never fires. Merge's conflict branches (tie-break,
    repair, re-assert, split checks) are never reached, so ``has_allocations``
    is never even asked. For rings outside valid histories none of this holds:
    see ``test_merge_of_conflicting_rings_is_not_commutative`` in
    tests/core/test_ring.py.
(b) gossip to a fixpoint leaves every replica identical, owned only by live
    peers.
(c) after every step every replica passes ``check()``, and the owned ranges of
    its peers are disjoint and cover the universe exactly; the ranges each live
    peer believes *it* owns never overlap another live peer's.
(d) no merge in a valid history raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from weavek.core.address import CIDR, Range, parse_cidr
from weavek.core.messages import RingData
from weavek.core.ring import Ring

UNIVERSES = [
    (parse_cidr("10.0.0.0/24"), 4),
    (parse_cidr("10.32.0.0/28"), 4),
    (parse_cidr("fd00:1::/64"), 6),
]
ODD_UNIVERSE = (parse_cidr("10.0.0.0/24").start, parse_cidr("10.0.0.0/24").start + 77, 4)
MAX_PEERS = 7
RELAY = 0xFFFF_FFFF_FFFF
"""A peer name never used by the history: a replica that owns nothing."""

Copy = tuple[int, RingData]
"""A copy of a ring as sent by a peer: the sender and the snapshot."""

Entry = tuple[int, int, int, int]  # token, peer, version, free


def rows(data: RingData) -> list[Entry]:
    return list(zip(data.tokens, data.peers, data.versions, data.frees, strict=True))


def join(copies: Iterable[RingData]) -> list[Entry]:
    """The per-token highest-version union: what merging all ``copies`` must give."""
    best: dict[int, Entry] = {}
    for data in copies:
        for row in rows(data):
            if row[0] not in best or row[2] > best[row[0]][2]:
                best[row[0]] = row
    return [best[token] for token in sorted(best)]


def never_asked(ranges: list[Range]) -> bool:
    raise AssertionError(f"a valid history reached a merge conflict branch over {ranges}")


def merged(ring: Ring, *copies: RingData) -> Ring:
    """A copy of ``ring`` after merging ``copies`` in order."""
    out = ring.copy()
    for data in copies:
        out.merge(data, never_asked)
    return out


def assert_partition(ring: Ring) -> None:
    """The owned ranges of all peers are disjoint and cover [start, end) exactly."""
    if ring.empty:
        return
    pieces = sorted(r for peer in ring.peer_names() for r in ring.owned_ranges(peer))
    assert pieces[0][0] == ring.start
    assert pieces[-1][1] == ring.end
    for (_, hi), (lo, _) in pairwise(pieces):
        assert hi == lo, f"gap or overlap at {hi}/{lo} in {ring!r}"


def coalesce(ranges: list[Range]) -> list[Range]:
    out: list[list[int]] = []
    for lo, hi in ranges:
        if out and out[-1][1] == lo:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


class ValidHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.replicas: dict[int, Ring] = {}
        self.seeds: tuple[int, ...] = ()
        self.sent: list[Copy] = []  # every copy ever made, in order
        self.entry_of: dict[tuple[int, int], tuple[int, int]] = {}  # (token, version) -> entry
        self.next_name = 1

    # -- bookkeeping ---------------------------------------------------------

    def record(self, peer: int) -> None:
        """Remember the peer's current ring as a copy it may send (now or later)."""
        ring = self.replicas[peer]
        ring.check()
        data = ring.to_data()
        for token, owner, version, free in rows(data):
            seen = self.entry_of.setdefault((token, version), (owner, free))
            assert seen == (owner, free), (
                f"token {token} v{version} is {seen} in one copy, {(owner, free)} in another"
            )
        if not self.sent or self.sent[-1] != (peer, data):
            self.sent.append((peer, data))

    def new_peer(self) -> int:
        name = self.next_name
        self.next_name += 1
        self.replicas[name] = Ring(self.start, self.end, name, self.version)
        return name

    def owners(self) -> list[int]:
        return sorted(p for p, ring in self.replicas.items() if ring.owned_ranges())

    def copy_of(self, data: st.DataObject) -> Copy:
        """Another peer's current ring, or any copy ever sent (perhaps our own, or stale)."""
        if not self.sent or data.draw(st.booleans(), label="current"):
            sender = data.draw(st.sampled_from(sorted(self.replicas)), label="sender")
            return sender, self.replicas[sender].to_data()
        return data.draw(st.sampled_from(self.sent), label="old copy")

    # -- the history ----------------------------------------------------------

    @initialize(
        universe=st.sampled_from([*UNIVERSES, None]),
        count=st.integers(min_value=1, max_value=5),
        seeded=st.booleans(),
        late=st.sets(st.integers(min_value=0, max_value=4)),
    )
    def start_history(
        self, universe: tuple[CIDR, int] | None, count: int, seeded: bool, late: set[int]
    ) -> None:
        if universe is None:
            self.start, self.end, self.version = ODD_UNIVERSE
        else:
            cidr, self.version = universe
            self.start, self.end = cidr.start, cidr.end
        peers = [self.new_peer() for _ in range(count)]
        if seeded:
            self.seeds = tuple(peers)
            for i, peer in enumerate(peers):
                if i not in late:  # the others divide the ring when they first need it
                    self.replicas[peer].claim_for_peers(self.seeds)
        else:
            self.replicas[peers[0]].claim_it_all()
            self.seeds = (peers[0],)
        for peer in peers:
            if not self.replicas[peer].empty:
                self.record(peer)

    def late_seeds(self) -> list[int]:
        return [p for p in self.seeds if p in self.replicas and self.replicas[p].empty]

    @precondition(lambda self: self.late_seeds())
    @rule(data=st.data())
    def late_seed_claims(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from(self.late_seeds()))
        self.replicas[peer].claim_for_peers(self.seeds)
        self.record(peer)

    @precondition(lambda self: self.owners())
    @rule(data=st.data())
    def grant(self, data: st.DataObject) -> None:
        for _ in range(data.draw(st.integers(1, 3), label="grants")):
            owners = self.owners()
            if not owners:
                return
            giver = data.draw(st.sampled_from(owners), label="giver")
            ring = self.replicas[giver]
            lo, hi = data.draw(st.sampled_from(coalesce(ring.owned_ranges())), label="run")
            start = data.draw(st.integers(lo, hi - 1), label="start")
            end = data.draw(st.integers(start + 1, hi), label="end")
            to = data.draw(st.sampled_from(sorted(self.replicas)), label="to")
            tokens_before = len(ring)
            ring.grant(start, end, to)
            assert len(ring) - tokens_before <= 2
            assert all(ring.owner(a) == to for a in {start, (start + end) // 2, end - 1})
            self.record(giver)

    @precondition(lambda self: self.owners())
    @rule(data=st.data())
    def report_free(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from(self.owners()), label="peer")
        ring = self.replicas[peer]
        i = data.draw(st.sampled_from([i for i, p in enumerate(ring.peers) if p == peer]))
        size = ring.distance(ring.tokens[i], ring.tokens[(i + 1) % len(ring)])
        free = data.draw(st.integers(0, size), label="free")
        version = ring.versions[i]
        assert ring.set_free(i, free) == (ring.versions[i] == version + 1)
        self.record(peer)

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        receiver = data.draw(st.sampled_from(sorted(self.replicas)), label="receiver")
        _, theirs = self.copy_of(data)
        ring = self.replicas[receiver]
        expected = join([ring.to_data(), theirs])
        ring.merge(theirs, never_asked)
        assert rows(ring.to_data()) == expected
        if theirs.seeds:
            assert ring.seeds == theirs.seeds
        once = ring.to_data()
        assert not ring.merge(theirs, never_asked)  # (a) idempotent
        assert ring.to_data() == once
        if not ring.empty:
            self.record(receiver)

    @rule(data=st.data())
    def merge_in_any_order(self, data: st.DataObject) -> None:
        """(a) on the side: the same copies, merged in other orders and groupings."""
        receiver = data.draw(st.sampled_from(sorted(self.replicas)), label="receiver")
        ring = self.replicas[receiver]
        copies = [self.copy_of(data) for _ in range(3)]
        datas = [d for _, d in copies]
        forward = merged(ring, *datas)
        backward = merged(ring, *reversed(datas))
        shuffled = merged(ring, *data.draw(st.permutations(datas), label="order"))
        # Associativity: A and B joined first (by a relay that owns nothing, since an old
        # copy cannot stand in for a replica), then merged into the receiver.
        relay = merged(Ring.from_data(datas[0], RELAY), datas[1])
        grouped = merged(ring, relay.to_data())
        expected = join([ring.to_data(), *datas])
        for other in (forward, backward, shuffled):
            assert rows(other.to_data()) == expected
        assert rows(grouped.to_data()) == join([ring.to_data(), datas[0], datas[1]])

    @precondition(lambda self: len(self.replicas) > 2)
    @rule(data=st.data())
    def remove_peer(self, data: st.DataObject) -> None:
        victim = data.draw(st.sampled_from(sorted(self.replicas)), label="victim")
        heir = data.draw(
            st.sampled_from(sorted(p for p in self.replicas if p != victim)), label="heir"
        )
        ring = self.replicas[heir]
        for other in self.replicas.values():  # converge first: the victim's last state too
            ring.merge(other.to_data(), never_asked)
        if ring.empty:
            return
        expected = ring.owned_ranges(victim)
        assert ring.transfer(victim, heir) == expected
        assert victim not in ring.peer_names()
        del self.replicas[victim]
        self.record(heir)

    @precondition(lambda self: len(self.replicas) < MAX_PEERS)
    @rule()
    def join_peer(self) -> None:
        self.new_peer()

    @rule(commit=st.sampled_from([False, True]))
    def gossip_to_fixpoint(self, commit: bool) -> None:
        """(b): everyone merges everyone until nothing changes; all replicas agree.

        Unless ``commit``, this runs on copies and the history goes on diverging.
        """
        if commit:
            rings = list(self.replicas.values())
        else:
            rings = [ring.copy() for ring in self.replicas.values()]
        expected = join(r.to_data() for r in rings)
        for _ in range(len(rings) + 1):
            before = [r.to_data() for r in rings]
            for ring in rings:
                for other in rings:
                    ring.merge(other.to_data(), never_asked)
            if [r.to_data() for r in rings] == before:
                break
        else:
            raise AssertionError("gossip did not reach a fixpoint")
        assert all(r.to_data() == rings[0].to_data() for r in rings), "replicas differ"
        assert rows(rings[0].to_data()) == expected
        if expected:
            assert rings[0].peer_names() <= set(self.replicas), "a removed peer still owns space"
        if commit:
            for peer, ring in self.replicas.items():
                if not ring.empty:
                    self.record(peer)

    # -- (c) after every step ----------------------------------------------------

    @invariant()
    def every_replica_is_a_partition(self) -> None:
        for ring in self.replicas.values():
            ring.check()
            assert_partition(ring)

    @invariant()
    def own_views_never_overlap(self) -> None:
        mine = sorted(
            (r, peer) for peer, ring in self.replicas.items() for r in ring.owned_ranges()
        )
        for ((_, hi), a), ((lo, _), b) in pairwise(mine):
            assert hi <= lo, f"peers {a} and {b} both think they own {lo}..{hi}"


ValidHistory.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_valid_histories = ValidHistory.TestCase

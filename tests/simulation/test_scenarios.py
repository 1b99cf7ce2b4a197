"""Named cluster scenarios: the stories weavek must get right, each on a simulated network."""

from __future__ import annotations

from collections.abc import Callable

from weavek.core.address import CIDR, parse_cidr
from weavek.core.effects import Failed, SendTo
from weavek.core.messages import SpaceRequest
from weavek.testing import Cluster, check_converged, check_safety
from weavek.testing.cluster import peer_name
from weavek.testing.strategies import FixedSeeds

Factory = Callable[..., Cluster]


def space_requests(c: Cluster) -> int:
    from weavek.core import codec

    return sum(
        1
        for _, _, e in c.log
        if isinstance(e, SendTo) and isinstance(codec.decode(e.payload), SpaceRequest)
    )


def test_thousand_allocations_on_a_22_with_space_requests(cluster_factory: Factory) -> None:
    c = cluster_factory(5, universe="10.32.0.0/22", seed=1, seeds=[0, 3])
    rids = []
    for i in range(1000):
        rids.append(c.allocate(c.rng.randrange(5), f"c{i}"))
        if i % 20 == 19:
            c.run(0.3)
        if i % 200 == 199:
            check_safety(c)
    assert c.settle(600)
    results = [c.replies[r] for r in rids]
    assert all(isinstance(r, CIDR) for r in results), [
        r for r in results if not isinstance(r, CIDR)
    ]
    addrs = {r.addr for r in results if isinstance(r, CIDR)}
    assert len(addrs) == 1000
    lo, hi = c.universe.host_range
    assert all(lo <= a < hi for a in addrs)
    assert space_requests(c) > 0
    assert all(len(c.allocator(i).ledger) > 0 for i in range(5))
    assert c.converge()
    check_converged(c)
    assert not c.refusals


def test_partition_each_side_allocates_what_it_owns(cluster_factory: Factory) -> None:
    c = cluster_factory(4, universe="10.32.0.0/24", seed=2)
    c.partition([0], [1, 2, 3])
    alone = c.allocator(0)
    owned_before = alone.space.owned_ranges()
    free = alone.space.num_free() - 1  # .0, the network address, is never handed out
    mine = [c.allocate(0, f"a{i}") for i in range(free)]
    theirs = [c.allocate(1 + i % 3, f"b{i}") for i in range(150)]
    stuck = c.allocate(0, "one-too-many")
    c.run(30)
    assert all(isinstance(c.replies.get(r), CIDR) for r in mine + theirs)
    assert stuck not in c.replies  # nobody it can reach has space to give
    assert alone.space.owned_ranges() == owned_before
    check_safety(c)
    c.heal()
    assert c.settle(60)
    assert isinstance(c.replies[stuck], CIDR)
    assert c.converge()
    check_safety(c)
    check_converged(c)


def test_crash_and_restart_restores_allocations(cluster_factory: Factory) -> None:
    c = cluster_factory(3, universe="10.32.0.0/24", seed=3, seeds=[0])
    rids = {f"c{i}": c.allocate(1, f"c{i}") for i in range(20)}
    assert c.settle()
    held = {ident: c.replies[r] for ident, r in rids.items()}
    assert all(isinstance(r, CIDR) for r in held.values())
    c.crash(1)
    others = [c.allocate(2, f"d{i}") for i in range(40)]
    c.run(10)
    check_safety(c)
    c.restart(1)
    assert c.settle()
    again = {ident: c.allocate(1, ident) for ident in held}
    assert {ident: c.replies[r] for ident, r in again.items()} == held
    fresh = c.allocate(1, "fresh")  # may need more space from peer-0 first
    assert c.settle()
    assert isinstance(c.replies[fresh], CIDR) and c.replies[fresh] not in held.values()
    assert all(isinstance(c.replies[r], CIDR) for r in others)
    assert c.converge()
    check_converged(c)


def test_crash_halfway_through_a_donation(cluster_factory: Factory) -> None:
    c = cluster_factory(2, universe="10.32.0.0/24", seed=4, seeds=[0])
    c.crash(0, midway=2)  # the donor persists the grant, then dies before telling anyone
    first = c.allocate(1, "x")
    c.run(5)
    assert c.peer(0).allocator is None
    check_safety(c)
    c.restart(0)
    assert c.settle()
    assert isinstance(c.replies[first], CIDR)
    assert c.converge()
    check_converged(c)


def test_ipv6_64_universe(cluster_factory: Factory) -> None:
    c = cluster_factory(4, universe="fd00::/64", seed=5, seeds=[0, 1])
    rids = [c.allocate(i % 4, f"c{i}") for i in range(40)]
    assert c.settle()
    results = [c.replies[r] for r in rids]
    universe = parse_cidr("fd00::/64")
    assert all(isinstance(r, CIDR) and r.version == 6 for r in results)
    assert len({r.addr for r in results if isinstance(r, CIDR)}) == 40
    assert all(universe.contains(r.addr) for r in results if isinstance(r, CIDR))
    assert c.allocator(3).space.owned_ranges()  # a non-seed got space
    assert c.converge()
    check_converged(c)


def test_rmpeer_of_a_crashed_peer_frees_its_space(cluster_factory: Factory) -> None:
    c = cluster_factory(3, universe="10.32.0.0/24", seed=6)
    for i in range(10):
        c.allocate(2, f"gone{i}")
    assert c.settle()
    size = sum(hi - lo for lo, hi in c.allocator(2).space.owned_ranges())
    c.crash(2)
    rid = c.rmpeer(0, 2)
    assert c.replies[rid] == size
    rids = [c.allocate(i % 2, f"c{i}") for i in range(200)]  # more than two thirds of a /24
    assert c.settle()
    assert all(isinstance(c.replies[r], CIDR) for r in rids)
    assert c.converge()
    check_converged(c)
    assert peer_name(2) not in c.allocator(0).ring.peers


def test_shutdown_hands_ranges_to_a_live_heir(cluster_factory: Factory) -> None:
    c = cluster_factory(3, universe="10.32.0.0/24", seed=7)
    assert c.settle()
    c.crash(0)  # not reachable, so it cannot be the heir
    leaving = c.allocator(1).space.owned_ranges()
    rid = c.shutdown(1)
    assert c.replies[rid] is None
    c.run(1)
    ring = c.allocator(2).ring
    assert peer_name(1) not in ring.peers
    assert all(ring.owner(lo) == peer_name(2) for lo, _ in leaving)
    c.restart(0)
    assert c.converge()
    check_converged(c)
    last = c.allocate(2, "x")
    assert c.settle()
    assert isinstance(c.replies[last], CIDR)


def test_deferred_ring_is_built_on_first_use(cluster_factory: Factory) -> None:
    seeds = (peer_name(0), peer_name(1))
    c = cluster_factory(
        3, seed=8, strategy=lambda me, _all: FixedSeeds(seeds, me=me, at_start=False)
    )
    assert all(c.allocator(i).ring.empty for i in range(3))
    rid = c.allocate(2, "first")
    assert c.settle()
    assert isinstance(c.replies[rid], CIDR)
    assert c.converge()
    check_converged(c)


def test_claims_across_peers(cluster_factory: Factory) -> None:
    c = cluster_factory(3, universe="10.32.0.0/24", seed=9)
    owner_of_200 = c.allocator(0).ring.owner(parse_cidr("10.32.0.200").addr)
    other = next(i for i in range(3) if c.peer(i).name != owner_of_200)
    ok = c.claim(other, "mine", "10.32.0.200/24")
    assert c.settle()
    assert c.replies[ok] is None
    taken = c.claim(c.peer(owner_of_200).index, "thief", "10.32.0.200/24")
    assert c.settle()
    assert isinstance(c.replies[taken], Failed)
    assert c.converge()
    check_converged(c)

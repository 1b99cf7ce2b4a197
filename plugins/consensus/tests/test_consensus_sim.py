"""Consensus on weavek's simulated cluster: one ring, the quorum, wrong peer counts, faults.

``WEAVEK_SIM_SEEDS`` sets how many seeds each scenario runs (default 50); a
failing seed replays exactly.
"""

from __future__ import annotations

import random

import pytest
from simhelp import SEEDS, addresses, consensus_cluster, names, rings_built, waiting

from weavek.core.status import state_text
from weavek.testing import Cluster, check_converged, check_safety


def allocate_here_and_there(c: Cluster, rng: random.Random, peers: list[int], k: int) -> list[int]:
    rids = []
    for i in range(k):
        rids.append(c.allocate(rng.choice(peers), f"c{i}"))
        c.run(rng.uniform(0.0, 0.3))
    return rids


def assert_one_ring_everywhere(c: Cluster, rids: list[int]) -> tuple[int, ...]:
    assert c.settle(300), f"seed={c.seed}: requests still pending"
    got = addresses(c, rids)
    assert len(set(got)) == len(got)
    assert c.converge(), f"seed={c.seed}: rings did not converge"
    check_converged(c)
    check_safety(c)
    assert not c.refusals, c.refusals
    [seeds] = rings_built(c)
    return seeds


@pytest.mark.parametrize("seed", range(SEEDS))
def test_one_ring_for_one_to_nine_peers(seed: int) -> None:
    n = 1 + seed % 9
    rng = random.Random(seed)
    c = consensus_cluster(n, n, seed)
    c.run(rng.uniform(0.0, 10.0))
    assert c.network.stats.sent == 0  # deferred: nothing at all until the ring is needed
    assert state_text(c.allocator(0)) == "idle"
    rids = allocate_here_and_there(c, rng, list(range(n)), rng.randint(1, 2 * n))
    seeds = assert_one_ring_everywhere(c, rids)
    assert n // 2 + 1 <= len(seeds) and set(seeds) <= set(names(range(n)))


@pytest.mark.parametrize("seed", range(SEEDS))
def test_one_ring_despite_drops_duplicates_and_reordering(seed: int) -> None:
    n = 2 + seed % 8
    rng = random.Random(seed)
    c = consensus_cluster(n, n, seed, drop=0.2, duplicate=0.2, max_delay=0.6)
    rids = allocate_here_and_there(c, rng, list(range(n)), rng.randint(1, 2 * n))
    assert_one_ring_everywhere(c, rids)


@pytest.mark.parametrize("seed", range(SEEDS // 5 or 1))
def test_a_minority_waits_and_joins_the_majoritys_ring(seed: int) -> None:
    c = consensus_cluster(5, 5, seed)
    c.partition([0, 1], [2, 3, 4])
    lonely, crowd = c.allocate(0, "lonely"), c.allocate(3, "crowd")
    c.run(20)
    assert waiting(c, [0, 1]) and lonely not in c.replies
    assert state_text(c.allocator(0)) == "awaiting consensus (quorum: 3, known: 2)"
    assert c.allocator(0).strategy.report() == {"Elector": True, "KnownNodes": 2, "Quorum": 3}
    assert not waiting(c, [2, 3, 4]) and crowd in c.replies
    [seeds] = rings_built(c)
    assert set(seeds) <= set(names([2, 3, 4]))  # the proposer knew only its side
    c.heal()
    assert_one_ring_everywhere(c, [lonely, crowd])
    assert c.allocator(0).strategy.report() is None


@pytest.mark.parametrize("seed", range(SEEDS // 5 or 1))
def test_an_over_estimate_waits_until_enough_peers_arrive(seed: int) -> None:
    """consensus=7 with five peers: a quorum of four; two start, then the rest come."""
    c = consensus_cluster(5, 7, seed)
    for i in (2, 3, 4):
        c.crash(i)
    first = c.allocate(0, "first")
    c.run(15)
    assert state_text(c.allocator(0)) == "awaiting consensus (quorum: 4, known: 2)"
    c.restart(2)
    c.run(15)
    assert waiting(c, [0, 1, 2]) and first not in c.replies
    c.restart(3)
    assert c.run_until(lambda: first in c.replies, 30)
    c.restart(4)
    seeds = assert_one_ring_everywhere(c, [first, c.allocate(4, "late")])
    assert peer_count(seeds) >= 4


def peer_count(seeds: tuple[int, ...]) -> int:
    return len(seeds)


@pytest.mark.parametrize("seed", range(SEEDS // 5 or 1))
def test_an_under_estimate_can_form_two_rings_that_refuse_each_other(seed: int) -> None:
    """consensus=2 with four peers in two pairs: each pair is a quorum and builds a ring."""
    c = consensus_cluster(4, 2, seed)  # not cluster_factory: two rings overlap by design
    c.partition([0, 1], [2, 3])
    left = [c.allocate(0, f"left{i}") for i in range(5)]
    c.prime(3)  # the right pair needs its ring too, but allocates nothing
    assert c.settle(60)
    assert rings_built(c) == {names([0, 1]), names([2, 3])}
    c.heal()
    c.run(30)
    reasons = {reason for _, _, _, reason in c.refusals}
    assert reasons and all("IP allocation was seeded by different peers" in r for r in reasons)
    assert {c.allocator(i).ring.seeds for i in (0, 1)} == {names([0, 1])}
    assert {c.allocator(i).ring.seeds for i in (2, 3)} == {names([2, 3])}
    more = [c.allocate(1, f"more{i}") for i in range(5)]
    assert c.settle(60)
    got = addresses(c, left + more)
    assert len(set(got)) == len(got)
    assert not c.holdings.violations
    for i in range(4):
        c.allocator(i).audit()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_crash_and_restart_mid_consensus(seed: int) -> None:
    n = 3 + seed % 5
    rng = random.Random(seed)
    c = consensus_cluster(n, n, seed)
    rids = [c.allocate(i, f"c{i}") for i in rng.sample(range(n), rng.randint(1, n))]
    victims = rng.sample(range(n), rng.randint(1, (n - 1) // 2))
    for victim in victims:
        c.run(rng.uniform(0.0, 0.4))
        c.crash(victim, midway=rng.choice([None, 0, 1, 2]))
    c.run(rng.uniform(0.0, 3.0))
    for victim in victims:
        if c.peer(victim).allocator is not None:
            c.crash(victim)  # a midway crash that has not struck yet strikes now
        c.restart(victim)
    answered = [r for r in rids if not c.requests[r].lost]
    rids = answered + [c.allocate(v, f"again{v}") for v in victims]
    assert_one_ring_everywhere(c, rids)


def test_a_restart_with_a_persisted_ring_runs_no_election(cluster_factory: object) -> None:
    c = consensus_cluster(3, 3, seed=4)
    first = c.allocate(1, "first")
    assert c.settle()
    c.crash(0)
    c.restart(0)
    restarted = c.allocator(0)
    assert not restarted.ring.empty
    assert restarted.strategy.payload() is None and not restarted.awaiting
    again = c.allocate(0, "again")
    assert c.settle()
    assert restarted.strategy.payload() is None
    assert_one_ring_everywhere(c, [first, again])

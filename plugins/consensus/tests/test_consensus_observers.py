"""Electors with observers (weavek-observer is a test dependency of this plugin).

Observers never vote and never count towards the quorum, but can start an
election by asking for the ring, and receive it once it exists.
"""

from __future__ import annotations

import random

import pytest
from simhelp import SEEDS, Extra, addresses, consensus_cluster, names, rings_built

import weavek_observer as observer
from weavek.core.status import state_text
from weavek.core.strategy import InitStrategy
from weavek.testing import check_converged, check_safety
from weavek.testing.cluster import peer_name


def observers(*indices: int) -> Extra:
    chosen = {peer_name(i) for i in indices}

    def pick(me: int) -> InitStrategy | None:
        return observer.ObserverStrategy(None, me=me) if me in chosen else None

    return pick


@pytest.mark.parametrize("seed", range(SEEDS // 5 or 1))
def test_one_elector_and_an_observer_wait_for_a_second_elector(seed: int) -> None:
    """Weave's test 340: consensus=2, one elector and one observer hang until another elector."""
    c = consensus_cluster(3, 2, seed, others=observers(1))
    c.crash(2)
    first = c.allocate(0, "first")
    watcher = c.allocate(1, "watcher")
    c.run(20)
    assert first not in c.replies and watcher not in c.replies
    assert state_text(c.allocator(0)) == "awaiting consensus (quorum: 2, known: 1)"
    assert state_text(c.allocator(1)) == "priming"
    assert c.allocator(1).strategy.report() == {"Elector": False, "KnownNodes": 0, "Quorum": 0}
    c.restart(2)
    assert c.settle(60)
    got = addresses(c, [first, watcher])
    assert len(set(got)) == 2
    assert c.converge()
    check_converged(c)
    check_safety(c)
    assert rings_built(c) == {names([0, 2])}  # the observer got no share: it asks for space
    assert c.allocator(1).strategy.report() is None


@pytest.mark.parametrize("seed", range(SEEDS // 5 or 1))
def test_an_observer_can_call_the_election(seed: int) -> None:
    """Integration test "Observers can call election": only the observer asks for an address."""
    c = consensus_cluster(3, 2, seed, others=observers(2))
    asked = c.allocate(2, "asked")
    assert c.settle(60)
    addresses(c, [asked])
    assert c.converge()
    check_converged(c)
    assert rings_built(c) == {names([0, 1])}


@pytest.mark.parametrize("seed", range(SEEDS))
def test_electors_and_observers_converge(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, 9)
    watchers = rng.sample(range(n), rng.randint(1, n - 1))
    electors = [i for i in range(n) if i not in watchers]
    c = consensus_cluster(n, len(electors), seed, others=observers(*watchers), drop=0.1)
    rids = []
    for k in range(rng.randint(1, 2 * n)):
        rids.append(c.allocate(rng.randrange(n), f"c{k}"))
        c.run(rng.uniform(0.0, 0.3))
    assert c.settle(300)
    got = addresses(c, rids)
    assert len(set(got)) == len(got)
    assert c.converge()
    check_converged(c)
    check_safety(c)
    assert not c.refusals
    [seeds] = rings_built(c)
    assert set(seeds) <= set(names(electors))

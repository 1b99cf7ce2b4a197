"""Observers on weavek's simulated cluster, with peers that hold or build the ring.

Only the kernel is needed: the other peers use the kernel's test strategy
:class:`~weavek.testing.strategies.FixedSeeds`, at start-up or deferred.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import pytest

from weavek.core.address import CIDR
from weavek.core.effects import Broadcast
from weavek.core.status import state_text
from weavek.core.strategy import InitStrategy
from weavek.testing import Cluster, check_converged, check_safety
from weavek.testing.cluster import peer_name
from weavek.testing.strategies import FixedSeeds
from weavek_observer import ObserverStrategy

SEEDS = int(os.environ.get("WEAVEK_SIM_SEEDS", "50"))


def cluster(n: int, watchers: Collection[int], seed: int, *, at_start: bool, **kw: Any) -> Cluster:
    """``n`` peers; ``watchers`` are observers, the rest divide the ring among themselves."""
    seeds = [peer_name(i) for i in range(n) if i not in watchers]

    def make(me: int, _names: tuple[int, ...]) -> InitStrategy:
        if me in {peer_name(i) for i in watchers}:
            return ObserverStrategy(None, me=me)
        return FixedSeeds(seeds, me=me, at_start=at_start)

    return Cluster(n, seed=seed, strategy=make, universe="10.32.0.0/16", **kw)


def test_observers_alone_never_get_a_ring() -> None:
    c = cluster(3, [0, 1, 2], seed=1, at_start=True)
    asked = c.allocate(0, "asked")
    c.run(60)
    assert asked not in c.replies
    assert all(c.allocator(i).ring.empty for i in range(3))
    assert state_text(c.allocator(0)) == "priming"
    assert state_text(c.allocator(1)) == "idle"
    # It asked again on every retry tick (1 s in the simulator), with nobody to answer.
    asks = [e for _, i, e in c.log if i == 0 and isinstance(e, Broadcast)]
    assert len(asks) >= 55
    check_safety(c)


@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("at_start", [True, False], ids=["seeded", "deferred"])
def test_an_observer_gets_the_ring_and_space(seed: int, at_start: bool) -> None:
    """Seeded peers answer the ring request; deferred ones build the ring for the observer."""
    n = 2 + seed % 4
    c = cluster(n, [n - 1], seed, at_start=at_start, drop=0.3)
    rids = [c.allocate(n - 1, f"c{i}") for i in range(3)]
    assert c.settle(120)
    got = [c.replies[r] for r in rids]
    assert all(isinstance(r, CIDR) for r in got) and len({str(r) for r in got}) == 3
    assert c.converge()
    check_converged(c)
    check_safety(c)
    assert peer_name(n - 1) not in c.allocator(0).ring.seeds
    assert c.allocator(n - 1).strategy.report() is None

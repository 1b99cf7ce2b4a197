"""Everything at once, over many seeds: the long run of ``tox -e sim`` (``-m slow``).

Each seed draws a cluster of one to nine peers, some of them observers
(weavek-observer is a test dependency), a peer count N between the number of
electors and the most that still leaves them a quorum, a lossy, duplicating,
reordering network, a partition that heals, and electors that crash and
restart while the election runs. However it goes, exactly one ring forms,
every allocation is answered, and no address is handed out twice.
"""

from __future__ import annotations

import random

import pytest
from simhelp import SEEDS, addresses, consensus_cluster, names, rings_built

from weavek.core.strategy import InitStrategy
from weavek.testing import check_converged, check_safety
from weavek.testing.cluster import peer_name
from weavek_observer import ObserverStrategy


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEEDS))
def test_mixed(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    watchers: list[int] = []
    if n > 1 and rng.random() < 0.5:
        watchers = rng.sample(range(n), rng.randint(1, n - 1))
    electors = [i for i in range(n) if i not in watchers]
    count = rng.randint(len(electors), 2 * len(electors) - 1)
    watching = {peer_name(i) for i in watchers}

    def others(me: int) -> InitStrategy | None:
        return ObserverStrategy(None, me=me) if me in watching else None

    c = consensus_cluster(
        n,
        count,
        seed,
        others=others,
        drop=rng.choice([0.0, 0.05, 0.2]),
        duplicate=rng.choice([0.0, 0.1]),
        max_delay=rng.choice([0.1, 0.5]),
    )
    if n > 1 and rng.random() < 0.5:
        cut = rng.sample(range(n), rng.randint(1, n - 1))
        c.partition(cut)
    rids = []
    for k in range(rng.randint(1, 2 * n)):
        rids.append(c.allocate(rng.randrange(n), f"c{k}"))
        c.run(rng.uniform(0.0, 0.5))
    victims = rng.sample(electors, rng.randint(0, (len(electors) - 1) // 2))
    for victim in victims:
        c.crash(victim)
        c.run(rng.uniform(0.0, 1.0))
    c.run(rng.uniform(0.0, 5.0))
    c.heal()
    for victim in victims:
        c.restart(victim)
        rids.append(c.allocate(victim, f"back{victim}"))
    rids = [r for r in rids if not c.requests[r].lost]
    assert c.settle(600), f"seed={seed}: requests still pending"
    got = addresses(c, rids)
    assert len(set(got)) == len(got)
    assert c.converge(600), f"seed={seed}: rings did not converge"
    check_converged(c)
    check_safety(c)
    assert not c.refusals, c.refusals
    [seeds] = rings_built(c)
    assert set(seeds) <= set(names(electors))

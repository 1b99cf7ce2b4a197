"""Randomised whole-cluster runs: faults, partitions, crashes, and safety throughout.

Each seed builds a different cluster and history from :func:`run_scenario`.
``WEAVEK_SIM_SEEDS`` sets how many seeds run (default 200); a failing seed
replays exactly with ``run_scenario(seed)``.
"""

from __future__ import annotations

import os
import random

import pytest

from weavek.core.address import CIDR, format_address
from weavek.core.effects import Failed
from weavek.core.events import ContainerDied, ContainerStarted
from weavek.testing import Cluster, FixedSeeds, check_converged, check_safety, peer_name

SEEDS = int(os.environ.get("WEAVEK_SIM_SEEDS", "200"))
UNIVERSES = [
    "10.32.0.0/22",
    "10.32.0.0/24",
    "10.32.0.0/26",
    "10.32.0.0/27",
    "10.32.0.0/12",
    "fd00::/64",
]


class Workload:
    """Random client traffic against a cluster, remembering what it was given."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.c = cluster
        self.rng = rng
        self.count = 0
        lo, hi = cluster.universe.host_range
        self.host_range = (lo, hi)
        u = cluster.universe
        # Half the time some allocations ask for one half of the universe as their subnet.
        self.subnets: list[CIDR | None] = [None]
        if rng.random() < 0.5:
            half = 1 << (u.bits - u.prefix - 1)
            self.subnets += [CIDR(u.start + i * half, u.prefix + 1, u.version) for i in (0, 1)]
            lo, hi = self.subnets[1].host_range  # type: ignore[union-attr]
        # Never ask for more than the smallest subnet holds, or a request would wait forever.
        self.limit = min(150, (hi - lo) * 3 // 4)

    def held(self) -> list[tuple[int, str, CIDR]]:
        """(peer, ident, cidr) for every successful, not yet released allocation or claim."""
        out = []
        for rid, req in self.c.requests.items():
            result = self.c.replies.get(rid)
            if req.kind == "allocate" and isinstance(result, CIDR):
                out.append((req.peer, req.ident, result))
        live = self.c.holdings.by_addr
        return [h for h in out if h[2].addr in live and (f"peer-{h[0]}", h[1]) in live[h[2].addr]]

    def in_use(self) -> int:
        """Addresses held (told or not: a crash can eat a reply) plus allocations waiting."""
        held = sum(len(p.store.addresses()) for p in self.c.peers if not p.removed)
        return held + self.c.pending()

    def step(self) -> None:
        c, rng = self.c, self.rng
        running = [p.index for p in c.live()]
        if not running:
            return
        peer = rng.choice(running)
        roll = rng.random()
        held = [h for h in self.held() if h[0] == peer] if roll < 0.45 else []
        if roll < 0.25 and held:
            _, ident, cidr = rng.choice(held)
            c.free(peer, ident, cidr.addr)
        elif roll < 0.35 and held:
            c.delete(peer, rng.choice(held)[1])
        elif roll < 0.45 and held:
            c.allocate(peer, rng.choice(held)[1])  # idempotent: same address again
        elif roll < 0.55 and self.in_use() < self.limit:
            lo, hi = self.host_range
            addr = rng.randrange(lo, hi)
            self.count += 1
            c.claim(peer, f"k{self.count}", CIDR(addr, c.universe.prefix, c.universe.version))
        elif roll < 0.58:
            pending = [r for r, q in c.requests.items() if r not in c.replies and not q.lost]
            if pending:
                c.cancel(rng.choice(pending))
        elif roll < 0.62:
            held = [h for h in self.held() if h[0] == peer and h[1].startswith("box")]
            if held:  # released after the grace period, unless it starts again
                event = rng.choice([ContainerDied, ContainerDied, ContainerStarted])
                c.feed(peer, event(rng.choice(held)[1]))
        elif self.in_use() < self.limit:
            self.count += 1
            box = rng.random() < 0.3
            subnet = rng.choice(self.subnets)
            c.allocate(peer, f"{'box' if box else 'c'}{self.count}", subnet, container=box)

    def burst(self, ops: int, span: float) -> None:
        """``ops`` random requests spread over ``span`` virtual seconds."""
        for _ in range(ops):
            self.step()
            self.c.run(self.rng.uniform(0, 2 * span / max(ops, 1)))


def check_ledgers_match_replies(c: Cluster) -> None:
    """What the ledgers hold inside the universe is exactly what replies handed out."""
    ledgers = set()
    for p in c.live():
        assert p.allocator is not None
        for ident, addrs, _ in p.allocator.ledger.items():
            ledgers |= {(a, p.nickname, ident) for a in addrs if c.universe.contains(a)}
    told = {(a, who, ident) for a, hs in c.holdings.by_addr.items() for who, ident in hs}
    # A peer that died between persisting an allocation and replying keeps it unannounced.
    unanswered = {(f"peer-{q.peer}", q.ident) for r, q in c.requests.items() if r not in c.replies}
    v = c.universe.version
    extra = sorted(
        (format_address(a, v), w, i) for a, w, i in ledgers - told if (w, i) not in unanswered
    )
    missing = sorted((format_address(a, v), w, i) for a, w, i in told - ledgers)
    assert not extra and not missing, f"seed={c.seed}: unreplied {extra}; lost {missing}"


def settle_and_converge(c: Cluster) -> None:
    assert c.settle(300), f"seed={c.seed}: did not settle; pending={c.pending()}"
    check_safety(c)
    assert c.converge(300), f"seed={c.seed}: rings did not converge"
    check_safety(c)


def run_scenario(seed: int) -> Cluster:
    """One random history; raises AssertionError (naming the seed) if anything breaks."""
    rng = random.Random(f"scenario-{seed}")
    n = rng.randint(3, 6)
    seeds = tuple(peer_name(i) for i in rng.sample(range(n), rng.randint(1, n)))
    at_start = rng.random() < 0.7  # else the ring is built when first needed
    c = Cluster(
        n,
        universe=rng.choice(UNIVERSES),
        seed=seed,
        strategy=lambda me, _all: FixedSeeds(seeds, me=me, at_start=at_start),
        keep_log=False,
        drop=rng.choice([0.0, rng.uniform(0, 0.2)]),
        duplicate=rng.choice([0.0, rng.uniform(0, 0.1)]),
        max_delay=rng.uniform(0.01, 0.5),
        fifo=rng.random() < 0.3,
        allocator={"grace_period": rng.uniform(0.5, 10.0)},
    )
    work = Workload(c, rng)
    work.burst(rng.randint(10, 40), 3.0)
    check_safety(c)

    peers = list(range(n))
    rng.shuffle(peers)
    cut = rng.randint(1, n - 1)
    c.partition(peers[:cut], peers[cut:])
    work.burst(rng.randint(10, 40), 5.0)
    check_safety(c)

    victim = rng.randrange(n)
    if rng.random() < 0.5:
        c.crash(victim, midway=rng.randint(0, 3))  # dies half-way through some event
        work.burst(rng.randint(5, 20), 3.0)
    c.crash(victim)
    work.burst(rng.randint(0, 10), 3.0)
    check_safety(c)
    if rng.random() < 0.5:
        c.heal()
    c.restart(victim)
    work.burst(rng.randint(5, 15), 3.0)
    check_safety(c)

    c.heal()
    work.burst(rng.randint(0, 10), 2.0)
    settle_and_converge(c)
    if n > 2 and rng.random() < 0.5:
        # A peer leaves for good and its ranges move to the others. Not while partitioned:
        # rmpeer by a peer that has not seen the leaver's last grants takes them twice.
        gone = rng.randrange(n)
        if rng.random() < 0.5:
            c.shutdown(gone)
        else:
            c.crash(gone)
            c.rmpeer(rng.choice([p.index for p in c.live()]), gone)
        work.burst(rng.randint(5, 15), 3.0)
        settle_and_converge(c)
        if c.peer(gone).name in c.allocator(c.live()[0].index).ring.peers:
            # Every copy of the shutdown's hand-over was lost: the operator runs rmpeer.
            c.rmpeer(c.live()[0].index, gone)
            settle_and_converge(c)
    check_converged(c)
    check_ledgers_match_replies(c)
    assert not c.refusals, f"seed={seed}: refusals {c.refusals}"
    for rid, req in c.requests.items():
        if req.lost or req.kind in ("free", "delete", "claim", "lookup"):
            continue
        result = c.replies.get(rid)
        assert rid in c.replies, f"seed={seed}: {req} never answered"
        if isinstance(result, Failed):
            assert result.cancelled, f"seed={seed}: {req} failed: {result.message}"
    return c


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_cluster(seed: int) -> None:
    run_scenario(seed)


# -- the harness itself ------------------------------------------------------------------------


def test_a_seed_replays_exactly() -> None:
    a, b = run_scenario(7), run_scenario(7)
    assert a.replies == b.replies
    assert a.network.stats == b.network.stats
    assert a.now == b.now


def test_partition_feeds_reachability_and_blocks_messages() -> None:
    c = Cluster(4, seed=1)
    c.partition([0, 1], [2])  # peer 3, not named, is a group of its own
    names = [p.name for p in c.peers]
    assert c.allocator(0).reachable == {names[1]}
    assert c.allocator(2).reachable == frozenset()
    assert c.allocator(3).reachable == frozenset()
    c.heal()
    assert c.allocator(3).reachable == set(names[:3])
    c.cut(0, 1)  # still connected through the others
    assert c.allocator(0).reachable == set(names[1:])
    c.crash(2)
    assert c.allocator(0).reachable == {names[1], names[3]}


def test_memory_store_restores_what_was_persisted() -> None:
    c = Cluster(2, universe="10.32.0.0/24", seed=2)
    rid = c.allocate(0, "web")
    snap = c.peer(0).store.snapshot()
    assert snap is not None and snap.ring is not None
    assert snap.peer == c.peer(0).name
    assert snap.ring == c.allocator(0).ring.to_data()
    assert [h.cidrs for h in snap.owned.values()] == [(c.replies[rid],)]
    c.free(0, "web", c.replies[rid])  # type: ignore[arg-type]
    snap = c.peer(0).store.snapshot()
    assert snap is not None and not snap.owned


def test_check_safety_notices_overlapping_spaces() -> None:
    c = Cluster(2, universe="10.32.0.0/24", seed=3)
    check_safety(c)
    lo, _ = c.allocator(0).space.owned_ranges()[0]
    c.allocator(1).space.add(lo, lo + 4)  # peer-1 now thinks it may hand out peer-0's addresses
    with pytest.raises(AssertionError, match="seed=3"):
        check_safety(c)


def test_check_safety_notices_an_address_handed_out_twice() -> None:
    c = Cluster(2, universe="10.32.0.0/24", seed=4)
    first = c.allocate(0, "a")
    c.holdings.granted("peer-1", "b", c.replies[first].addr, 4, c.now)  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="more than one holder"):
        check_safety(c)

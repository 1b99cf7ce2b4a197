"""Consensus benchmarks on the simulator (issue 3), printed beside their targets.

Run with ``tox -e bench`` or ``python benchmarks/consensus.py [--quick]``.
Both figures use the real allocators and the real consensus plugin on
weavek's deterministic simulator:

* bootstrap: 5 peers launched with ``consensus=5`` on a /22 elect the ring,
  then 1000 allocations spread over the peers complete (space requests
  included); wall time, median over rounds;
* spread: 100 peers with ``consensus=100`` and 5% of messages lost; one peer
  asks for an address, and we count *gossip rounds* -- virtual time divided
  by the gossip interval -- from that request until every peer has the ring;
  p99 over 1000 seeds (``--seeds N`` for another count; ``--quick``: 20).
  A seed is about 19,000 deliveries and takes about a second here, so the
  1000 seeds take 10 to 20 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable

from weavek.core.address import CIDR
from weavek.core.strategy import InitStrategy
from weavek.testing.cluster import Cluster
from weavek_consensus import ConsensusStrategy

GOSSIP_INTERVAL = 3.0


def consensus_factory(count: int, seed: int) -> Callable[[int, tuple[int, ...]], InitStrategy]:
    uids = random.Random(f"uids-{seed}")

    def make(me: int, _names: tuple[int, ...]) -> InitStrategy:
        return ConsensusStrategy(str(count), me=me, uid=uids.getrandbits(64) or 1)

    return make


def bootstrap(rounds: int) -> float:
    """Median seconds: consensus among 5 on a /22, then 1000 allocations answered."""
    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        cluster = Cluster(
            5, seed=r, universe="10.32.0.0/22", strategy=consensus_factory(5, r), keep_log=False
        )
        requests = [cluster.allocate(i % 5, f"c{i}") for i in range(1000)]
        settled = cluster.settle()
        times.append(time.perf_counter() - t0)
        answers = [cluster.replies.get(q) for q in requests]
        assert settled and all(isinstance(a, CIDR) for a in answers), f"round {r} incomplete"
        assert len({a.addr for a in answers if isinstance(a, CIDR)}) == 1000, "duplicates"
    return statistics.median(times)


def spread_one(seed: int, peers: int = 100) -> float:
    """Gossip rounds, for one seed, from the first request until every peer has the ring."""
    cluster = Cluster(
        peers,
        seed=seed,
        universe="10.32.0.0/12",
        strategy=consensus_factory(peers, seed),
        drop=0.05,
        gossip_interval=GOSSIP_INTERVAL,
        keep_log=False,
    )
    start = cluster.now
    cluster.prime(0)
    everyone = cluster.run_until(
        lambda: all(not cluster.allocator(i).ring.empty for i in range(peers)), timeout=600.0
    )
    assert everyone, f"seed {seed}: not every peer got the ring"
    return (cluster.now - start) / GOSSIP_INTERVAL


def spread(seeds: int, peers: int = 100, *, progress: bool = False) -> list[float]:
    """Gossip rounds, per seed, from the first request until every peer has the ring."""
    rounds = []
    t0 = time.perf_counter()
    for seed in range(seeds):
        if progress and seed and seed % 100 == 0:
            spent = time.perf_counter() - t0
            print(f"  spread: {seed} seeds in {spent:.0f} s", file=sys.stderr, flush=True)
        rounds.append(spread_one(seed, peers))
    return rounds


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and seeds")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--seeds", type=int, help="seeds of the 100-peer run (default 1000)")
    args = parser.parse_args()
    boot_rounds, spread_seeds = (3, 20) if args.quick else (9, 1000)
    spread_seeds = args.seeds or spread_seeds
    boot = bootstrap(boot_rounds)
    t0 = time.perf_counter()
    spreads = spread(spread_seeds, progress=True)
    spread_wall = time.perf_counter() - t0
    rows = [
        (
            "simulator: 5 peers, consensus=5, /22, bootstrap + 1000 allocations",
            "26 ms (Weave Go)",
            "<= 26 ms",
            "<= 100 ms",
            f"{boot * 1000:.0f} ms",
            boot <= 0.026,
            boot <= 0.100,
        ),
        (
            f"simulator: 100 peers, consensus=100, 5% loss, gossip rounds, {spread_seeds} seeds",
            "(none)",
            "p99 <= 10",
            "p99 <= 30",
            f"p99 {p99(spreads):.2f} (median {statistics.median(spreads):.2f}, "
            f"max {max(spreads):.2f}; {spread_wall / spread_seeds:.2f} s a seed)",
            p99(spreads) <= 10,
            p99(spreads) <= 30,
        ),
    ]
    head = ("figure", "anchor", "target", "floor", "measured", "")
    lines = [head] + [
        (*row[:5], "target" if row[5] else ("floor" if row[6] else "BELOW FLOOR")) for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if k == 0:
            print("-+-".join("-" * w for w in widths))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dict(zip(head[:5], row[:5], strict=True)) for row in rows], f, indent=2)
    print(f"(python {sys.version.split()[0]})", file=sys.stderr)
    return 0 if all(row[6] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

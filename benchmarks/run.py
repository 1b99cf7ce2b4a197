"""weavek's kernel benchmarks: each issue target beside the measured value.

Run with ``tox -e bench`` (or ``python benchmarks/run.py``). Everything goes
through the allocator's public request path -- ``Allocator.handle(event)`` --
with invariant checks on, pinned to one core, as the Weave Go anchor was
measured. Each figure is the median of several rounds; these machines are
noisy, so compare medians from the same run.

``--quick`` shrinks the sizes (for a smoke test); ``--json FILE`` writes the
figures for the record in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from weavek.core import codec
from weavek.core.address import parse_cidr
from weavek.core.allocator import Allocator
from weavek.core.events import AllocateRequested, DeleteRequested
from weavek.core.messages import PeerState
from weavek.core.ring import Ring
from weavek.testing.strategies import FixedSeeds

T = TypeVar("T")
ME = 0x0A0000000001
UNIVERSE = parse_cidr("10.32.0.0/12")


@dataclass
class Row:
    figure: str
    anchor: str
    target: str
    floor: str
    measured: str
    ok_target: bool
    ok_floor: bool


def lone_peer() -> Allocator:
    alloc = Allocator(
        me=ME, universe=UNIVERSE, strategy=FixedSeeds([ME], me=ME), rng=random.Random(1).random
    )
    alloc.start(0.0)
    return alloc


def idents(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"{rnd.getrandbits(256):064x}" for _ in range(n)]


def allocate_then_delete(n: int, rounds: int) -> tuple[float, float]:
    """Median ops/s of n sequential allocations of new idents, then of deleting them."""
    alloc_rates, delete_rates = [], []
    for r in range(rounds):
        names = idents(n, r)
        alloc = lone_peer()
        handle = alloc.handle
        requests = [AllocateRequested(i, name) for i, name in enumerate(names)]
        deletes = [DeleteRequested(i, name) for i, name in enumerate(names)]
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        for ev in requests:
            handle(ev)
        t1 = time.perf_counter()
        for dv in deletes:
            handle(dv)
        t2 = time.perf_counter()
        gc.enable()
        assert len(alloc.ledger) == 0 and alloc.space.num_allocated() == 0
        alloc_rates.append(n / (t1 - t0))
        delete_rates.append(n / (t2 - t1))
    return statistics.median(alloc_rates), statistics.median(delete_rates)


def bytes_per_allocation(n: int) -> float:
    """What the allocator retains per live allocation, by tracemalloc."""
    names = idents(n, 99)
    requests = [AllocateRequested(i, name) for i, name in enumerate(names)]
    alloc = lone_peer()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for ev in requests:
        alloc.handle(ev)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(alloc.ledger) == n
    return (after - before) / n


def ring_with_peers(n: int, seed: int) -> tuple[Ring, list[int]]:
    rnd = random.Random(seed)
    peers = sorted({rnd.getrandbits(48) | 1 for _ in range(n)})
    while len(peers) < n:
        peers = sorted({*peers, rnd.getrandbits(48) | 1})
    ring = Ring(UNIVERSE.start, UNIVERSE.end, peers[0])
    ring.claim_for_peers(peers)
    # Realistic free counts: each owner has handed out part of its share.
    for i in range(len(ring)):
        size = ring.distance(ring.tokens[i], ring.tokens[(i + 1) % len(ring)])
        ring.frees[i] = rnd.randrange(size + 1)
    return ring, peers


def gossip_receive(n: int, rounds: int) -> tuple[float, int]:
    """Median seconds to decode and merge an updated n-peer ring; and its encoded size."""
    ring, peers = ring_with_peers(n, n)
    rnd = random.Random(7)
    nicks = tuple((p, f"host-{i}") for i, p in enumerate(peers))
    times = []
    size = 0
    for _ in range(rounds):
        mine = Ring.from_data(ring.to_data(), peers[-1])
        newer = Ring.from_data(ring.to_data(), peers[0])
        # An updated copy: a tenth of the owners reported new free counts.
        for i in rnd.sample(range(len(newer)), max(1, len(newer) // 10)):
            newer.versions[i] += 1
            newer.frees[i] = rnd.randrange(newer.frees[i] + 1)
        payload = codec.encode(PeerState(nicks, newer.to_data(), None))
        size = len(codec.encode(PeerState((), ring.to_data(), None)))
        t0 = time.perf_counter()
        msg = codec.decode(payload)
        assert isinstance(msg, PeerState) and msg.ring is not None
        mine.merge(msg.ring, lambda _ranges: False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def simulate(rounds: int) -> float:
    """Median wall time: 5 peers on a /22, seed init, 1000 allocations spread over them."""
    from weavek.testing.cluster import Cluster

    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        cluster = Cluster(5, seed=r, universe="10.32.0.0/22", seeds=[0, 1], keep_log=False)
        requests = [cluster.allocate(i % 5, f"c{i}") for i in range(1000)]
        cluster.settle()
        times.append(time.perf_counter() - t0)
        got = [cluster.replies[q] for q in requests]
        assert len({str(c) for c in got}) == 1000, "allocations not unique"
    return statistics.median(times)


def table(rows: list[Row]) -> str:
    head = ("figure", "anchor (Weave Go)", "target", "floor", "measured", "")
    lines = [head]
    for row in rows:
        verdict = "target" if row.ok_target else ("floor" if row.ok_floor else "BELOW FLOOR")
        lines.append((row.figure, row.anchor, row.target, row.floor, row.measured, verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for k, line in enumerate(lines):
        out.append(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if k == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    result = fn()
    print(f"  {label}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n, big, rounds = (10_000, 50_000, 3) if args.quick else (100_000, 1_000_000, 5)

    print(f"weavek kernel benchmarks ({sys.executable}, one core)", file=sys.stderr)
    alloc_rate, delete_rate = timed("allocate/delete", lambda: allocate_then_delete(n, rounds))
    mem_small = timed("memory small", lambda: bytes_per_allocation(n))
    mem_big = timed("memory big", lambda: bytes_per_allocation(big))
    gossip = {k: timed(f"gossip {k}", lambda k=k: gossip_receive(k, 51)) for k in (10, 100, 1000)}
    sim = timed("simulator", lambda: simulate(rounds))

    g10, g100, g1000 = (gossip[k][0] * 1000 for k in (10, 100, 1000))
    size1000 = gossip[1000][1]
    worst_mem = max(mem_small, mem_big)
    rows = [
        Row(
            f"allocate, one peer, /12, {n:,} new idents",
            "258k ops/s",
            ">= 250k",
            ">= 100k",
            f"{alloc_rate / 1000:.0f}k ops/s",
            alloc_rate >= 250e3,
            alloc_rate >= 100e3,
        ),
        Row(
            "delete of those idents",
            "375k ops/s",
            ">= 375k",
            ">= 150k",
            f"{delete_rate / 1000:.0f}k ops/s",
            delete_rate >= 375e3,
            delete_rate >= 150e3,
        ),
        Row(
            f"memory per live allocation at {n:,} / {big:,}",
            "157 B",
            "<= 160 B",
            "<= 400 B, linear",
            f"{mem_small:.0f} B / {mem_big:.0f} B",
            worst_mem <= 160,
            worst_mem <= 400,
        ),
        Row(
            "gossip receive, ring of 10 / 100 / 1000 peers",
            "0.05 / 0.10 / 0.64 ms",
            "<= 0.64 ms",
            "<= 3 ms",
            f"{g10:.3f} / {g100:.3f} / {g1000:.3f} ms",
            g1000 <= 0.64,
            g1000 <= 3,
        ),
        Row(
            "encoded size of a 1000-peer ring",
            "13.2 KB",
            "<= 6.6 KB",
            "<= 13.2 KB",
            f"{size1000 / 1000:.1f} KB",
            size1000 <= 6600,
            size1000 <= 13200,
        ),
        Row(
            "simulator: 5 peers, /22, seed init, 1000 allocations",
            "26 ms",
            "<= 26 ms",
            "<= 100 ms",
            f"{sim * 1000:.0f} ms",
            sim <= 0.026,
            sim <= 0.100,
        ),
    ]
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([row.__dict__ for row in rows], f, indent=2)
    return 0 if all(row.ok_floor for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Helpers for running the consensus strategy on weavek's simulated cluster."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Iterable
from typing import Any

from weavek.core.address import CIDR
from weavek.core.effects import SaveRing
from weavek.core.strategy import InitStrategy
from weavek.testing import Cluster
from weavek.testing.cluster import peer_name
from weavek_consensus import ConsensusStrategy

SEEDS = int(os.environ.get("WEAVEK_SIM_SEEDS", "50"))
"""Simulator seeds per scenario; ``tox -e sim`` sets 10,000."""

Extra = Callable[[int], InitStrategy | None]


def consensus_cluster(
    n: int,
    count: int,
    seed: int,
    *,
    others: Extra | None = None,
    **kwargs: Any,
) -> Cluster:
    """``n`` peers launched with ``--init consensus=count`` (or what ``others`` returns for a peer).

    Each boot draws a new uid from a generator seeded by ``seed``, so a run
    replays exactly and a restarted peer is a new Paxos node, as in real life.
    """
    uids = random.Random(f"uids-{seed}")

    def make(me: int, _names: tuple[int, ...]) -> InitStrategy:
        special = others(me) if others is not None else None
        if special is not None:
            return special
        return ConsensusStrategy(str(count), me=me, uid=uids.getrandbits(64) or 1)

    kwargs.setdefault("universe", "10.32.0.0/16")
    return Cluster(n, seed=seed, strategy=make, **kwargs)


def names(indices: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(peer_name(i) for i in indices))


def rings_built(c: Cluster) -> set[tuple[int, ...]]:
    """The seeds of every ring any peer ever persisted: one entry means one ring ever formed."""
    return {e.ring.seeds for _, _, e in c.log if isinstance(e, SaveRing) and e.ring.seeds}


def addresses(c: Cluster, rids: Iterable[int]) -> list[int]:
    """The addresses the given requests were answered with (all must have succeeded)."""
    out = []
    for rid in rids:
        reply = c.replies.get(rid)
        assert isinstance(reply, CIDR), f"seed={c.seed}: request {rid} got {reply!r}"
        out.append(reply.addr)
    return out


def waiting(c: Cluster, peers: Collection[int]) -> bool:
    """Every one of ``peers`` still has no ring."""
    return all(c.allocator(i).ring.empty for i in peers)

"""Test support shipped with weavek, for plugin authors and weavek's own tests.

* :class:`~weavek.testing.cluster.Cluster`: real allocators on a simulated,
  seeded, faulty network with virtual time.
* :class:`~weavek.testing.store.MemoryStore`: persistence in memory, for restarts.
* :class:`~weavek.testing.network.SimNetwork`: the network and clock alone.
* :func:`~weavek.testing.invariants.check_safety` and
  :func:`~weavek.testing.invariants.check_converged`: what must always hold,
  and what must hold once the network heals.
* :class:`~weavek.testing.strategies.FixedSeeds`: an init strategy needing no plugin.

Submodules are imported lazily, so ``import weavek.testing`` (done by the
pytest plugin in every test run) costs nothing until something is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Cluster, SimPeer, peer_name
    from .invariants import Holdings, check_converged, check_safety, is_converged
    from .network import SimNetwork
    from .store import MemoryStore
    from .strategies import FixedSeeds

__all__ = [
    "Cluster",
    "FixedSeeds",
    "Holdings",
    "MemoryStore",
    "SimNetwork",
    "SimPeer",
    "check_converged",
    "check_safety",
    "is_converged",
    "peer_name",
]

_WHERE = {
    "Cluster": "cluster",
    "SimPeer": "cluster",
    "peer_name": "cluster",
    "Holdings": "invariants",
    "check_converged": "invariants",
    "check_safety": "invariants",
    "is_converged": "invariants",
    "SimNetwork": "network",
    "MemoryStore": "store",
    "FixedSeeds": "strategies",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'weavek.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)

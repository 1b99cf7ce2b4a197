"""Pytest fixtures for simulated weavek clusters (registered through the ``pytest11`` entry point).

Installed with weavek, so plugin authors get them without configuration:

* ``cluster_factory``: ``cluster_factory(n, **kwargs)`` builds a
  :class:`~weavek.testing.cluster.Cluster`; every cluster it built is
  checked with :func:`~weavek.testing.invariants.check_safety` at teardown.
* ``cluster``: a default three-peer cluster from that factory.

Pytest imports this module in every run of every project that has weavek
installed, so it imports nothing from weavek until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from weavek.testing.cluster import Cluster

__all__ = ["cluster", "cluster_factory"]


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., Cluster]]:
    """Build simulated clusters (``Cluster`` arguments); each is safety-checked at teardown."""
    from weavek.testing.cluster import Cluster
    from weavek.testing.invariants import check_safety

    made: list[Cluster] = []

    def make(n: int = 3, **kwargs: Any) -> Cluster:
        built = Cluster(n, **kwargs)
        made.append(built)
        return built

    yield make
    for built in made:
        check_safety(built)


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    """Three peers sharing 10.32.0.0/12, all of them seeds, on a fault-free network."""
    return cluster_factory(3)

"""Real etcd for the tests: a fresh single member per test, or a three-member cluster.

Members run on free loopback ports with their data in /dev/shm
(:mod:`weavek.testing.etcd`) and are killed, their data removed, when the
test ends, passed or failed. An etcd that cannot start fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from weavek.testing.etcd import EtcdCluster, EtcdError


def _cluster(size: int) -> Iterator[EtcdCluster]:
    try:
        cluster = EtcdCluster(size).__enter__()
    except EtcdError as exc:
        pytest.fail(f"etcd did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    """One etcd member of its own."""
    yield from _cluster(1)


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """A three-member etcd cluster of its own."""
    yield from _cluster(3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

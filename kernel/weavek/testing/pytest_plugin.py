"""Pytest fixtures for simulated weavek clusters (registered through the ``pytest11`` entry point).

Installed with weavek, so plugin authors get them without configuration:

* ``cluster_factory``: ``cluster_factory(n, **kwargs)`` builds a
  :class:`~weavek.testing.cluster.Cluster`; every cluster it built is
  checked with :func:`~weavek.testing.invariants.check_safety` at teardown.
* ``cluster``: a default three-peer cluster from that factory.
* ``dockerd`` / ``containerd``: one real daemon per test session, on private
  sockets and directories, with a busybox image
  (:mod:`weavek.testing.daemons`); ``dockerd_factory`` /
  ``containerd_factory`` start fresh ones for a single test (to stop or
  restart them). They need root; a daemon that cannot start fails the test.
* ``peer_host``: ``peer_host(*runtimes, **PeerHost options)`` starts a peer
  in a network namespace of its own (:class:`~weavek.testing.peerhost.PeerHost`);
  all are deleted at teardown, and a failed test shows the end of each log.

Pytest imports this module in every run of every project that has weavek
installed, so it imports nothing from weavek until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from weavek.testing.cluster import Cluster
    from weavek.testing.daemons import Containerd, Dockerd
    from weavek.testing.peerhost import PeerHosts

__all__ = [
    "cluster",
    "cluster_factory",
    "containerd",
    "containerd_factory",
    "dockerd",
    "dockerd_factory",
    "peer_host",
]


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


def _daemons(kind: str) -> Iterator[Callable[..., Any]]:
    """Start daemons of ``kind`` on demand; every one is stopped and removed at the end."""
    import contextlib

    from weavek.testing import daemons

    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> Any:
            start = daemons.docker_daemon if kind == "dockerd" else daemons.containerd_daemon
            try:
                return stack.enter_context(start(**kwargs))
            except daemons.DaemonError as exc:
                pytest.fail(str(exc))

        daemons.remove_stale()
        yield make


@pytest.fixture
def dockerd_factory() -> Iterator[Callable[..., Dockerd]]:
    """``dockerd_factory(containerd=None, live_restore=False)``: a private dockerd for this test."""
    yield from _daemons("dockerd")


@pytest.fixture
def containerd_factory() -> Iterator[Callable[..., Containerd]]:
    """``containerd_factory(namespace="weavek-test")`` starts a private containerd for this test."""
    yield from _daemons("containerd")


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """One private dockerd for the session (no network; busybox as ``daemons.BUSYBOX_IMAGE``)."""
    for make in _daemons("dockerd"):
        yield make()


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """One private containerd for the session (busybox imported in namespace ``weavek-test``)."""
    for make in _daemons("containerd"):
        yield make()


@pytest.fixture
def peer_host() -> Iterator[PeerHosts]:
    """``peer_host(*runtimes, **PeerHost options)``: a started peer in a namespace of its own."""
    from weavek.testing.peerhost import PeerHosts

    hosts = PeerHosts()
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used ``peer_host`` shows the end of each peer's log."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        hosts = getattr(item, "funcargs", {}).get("peer_host")
        for host in getattr(hosts, "made", ()):
            report.sections.append((f"log of the peer in {host.netns}", host.log_tail(60)))
    return report

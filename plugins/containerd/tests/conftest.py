"""Fixtures: test "hosts", network namespaces each running one weavek peer with this runtime.

The daemons come from weavek's pytest plugin (``containerd``, ``containerd_factory``:
:mod:`weavek.testing.daemons`). Nothing here is skipped: without root,
containerd, ctr, runc or busybox the fixtures fail the test with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from weavek.testing.peerhost import PeerHost

_names = itertools.count()


class PeerHosts:
    """Starts :class:`PeerHost` s for one test; :meth:`close` deletes them all."""

    def __init__(self) -> None:
        self.made: list[PeerHost] = []

    def __call__(self, *runtimes: str, start: bool = True, **options: Any) -> PeerHost:
        host = PeerHost(*runtimes, **options)
        self.made.append(host)
        return host.start() if start else host

    def close(self) -> None:
        for host in self.made:
            host.close()


@pytest.fixture
def peer_host() -> Iterator[PeerHosts]:
    """``peer_host(*runtimes, **PeerHost options)``: a started peer in a namespace of its own."""
    hosts = PeerHosts()
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def name() -> Callable[[], str]:
    """A new container name each call (the session shares one daemon)."""
    return lambda: f"wkc{next(_names)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test shows the end of each peer's log."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        hosts = getattr(item, "funcargs", {}).get("peer_host")
        if isinstance(hosts, PeerHosts):
            for host in hosts.made:
                report.sections.append((f"log of the peer in {host.netns}", host.log_tail(60)))
    return report

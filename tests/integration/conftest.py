"""Fixtures for the integration tests: real peer processes, and hosts made of network namespaces.

``peers`` starts :class:`~peers.PeerProcess` es and kills every one of them
when the test ends, passed or failed. ``network`` builds
:class:`~hosts.Network` s (a bridge namespace and host namespaces) and deletes
them, with anything still running inside, when the test ends. Both fail the
test -- never skip it -- when what they need is missing: a plugin the peers
are launched with, or root and iproute2 for the namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from hosts import Network, check_netns_usable, remove_stale
from peers import Peers

NEEDED_PLUGINS = {
    ("transport", "tcp"): "weavek-tcp (pip install -e plugins/tcp)",
    ("store", "weavedb"): "weavek-weavedb (pip install -e plugins/weavedb)",
    ("init", "seed"): "weavek-seed (pip install -e plugins/seed)",
    ("init", "consensus"): "weavek-consensus (pip install -e plugins/consensus)",
}


@pytest.fixture(scope="session")
def plugins_installed() -> None:
    """Fail (never skip) when a plugin the peers are launched with is not installed."""
    listed = subprocess.run(
        [sys.executable, "-m", "weavek", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    have = {(row["family"], row["name"]) for row in json.loads(listed.stdout)}
    missing = [dist for key, dist in NEEDED_PLUGINS.items() if key not in have]
    if missing:
        pytest.fail("integration tests need these plugins installed: " + "; ".join(missing))


@pytest.fixture(scope="session")
def netns_usable() -> None:
    """Fail loudly when network namespaces cannot be made; clear those of dead test runs."""
    reason = check_netns_usable()
    if reason is not None:
        pytest.fail(f"multi-host tests cannot run: {reason}")
    remove_stale()


@pytest.fixture
def peers(tmp_path: Path, plugins_installed: None) -> Iterator[Peers]:
    started = Peers(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def network(netns_usable: None) -> Iterator[Callable[[int], Network]]:
    made: list[Network] = []

    def make(size: int) -> Network:
        net = Network(size)
        made.append(net)
        return net

    try:
        yield make
    finally:
        for net in made:
            net.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test shows the end of every peer's log."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        started = getattr(item, "funcargs", {}).get("peers")
        if isinstance(started, Peers):
            for peer in started.started:
                report.sections.append((f"log of {peer}", peer.log_tail(60)))
    return report

"""Fixtures for the netns tests: namespaces, a test "host", processes; all removed at the end.

Helpers live in :mod:`netns_helpers` (a unique name, so that this folder's
tests can run in one pytest session with other folders' conftest modules).
Missing root or iproute2 fails the tests; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import PREFIX, Namespaces, Processes, delete_netns, ip


@pytest.fixture(scope="session")
def netns_usable() -> None:
    """Fail loudly without root or iproute2; clear namespaces of dead test runs."""
    if os.geteuid() != 0:
        pytest.fail("the netns plugin's tests must run as root (they create namespaces)")
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.fail("the netns plugin's tests need iproute2 and util-linux (ip, unshare)")
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        found = re.match(rf"{PREFIX}(\d+)x", name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            delete_netns(name)


@pytest.fixture
def namespaces(netns_usable: None) -> Iterator[Namespaces]:
    made = Namespaces()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def host(namespaces: Namespaces) -> str:
    """A namespace standing for the host: the bridge and the host ends go here."""
    return namespaces.add("host")


@pytest.fixture
def processes() -> Iterator[Processes]:
    made = Processes()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

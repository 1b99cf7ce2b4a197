"""Fixtures: a real dockerd (weavek.testing's ``dockerd``), and a fresh volume name per test.

Every test uses a volume and data-only container name of its own on the
session's daemon, and removes both at the end, passed or failed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from weavek.testing.daemons import DaemonError, Dockerd


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def remove_volume(daemon: Dockerd, name: str) -> None:
    """Remove the data-only container and the volume ``name`` (best effort: Docker may be down)."""
    if not daemon.running:
        return
    with contextlib.suppress(DaemonError):
        daemon.docker("rm", "-f", "-v", name)
    with contextlib.suppress(DaemonError):
        daemon.docker("volume", "rm", "-f", name)


@pytest.fixture
def volume_name(dockerd: Dockerd) -> Iterator[str]:
    """A name no other test uses, for the data-only container and its volume."""
    name = f"wkv-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        remove_volume(dockerd, name)

"""Shared fixtures: real peers in one process on the in-memory transport and store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pluggy
import pytest

from weavek.node import PeerConfig
from weavek.plugins import make_plugin_manager
from weavek.testing.memory_transport import MemoryPlugin


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def memory() -> MemoryPlugin:
    return MemoryPlugin()


@pytest.fixture
def make_pm(memory: MemoryPlugin) -> Callable[..., pluggy.PluginManager]:
    def make(*plugins: object) -> pluggy.PluginManager:
        return make_plugin_manager(plugins=[memory, *plugins])

    return make


def _config(name: int | None, *, init: str = "seed=::1", **kwargs: Any) -> PeerConfig:
    """A peer on the memory network and store (key: the name), HTTP on a free loopback port."""
    key = f"{name}" if name is not None else "anonymous"
    options: dict[str, Any] = {
        "name": name,
        "nickname": f"peer{name}",
        "init": init,
        "transport": "memory",
        "persist": f"memory={key}",
        "http": ("127.0.0.1", 0),
        "tick": 0.05,
    }
    options.update(kwargs)
    return PeerConfig(**options)


@asynccontextmanager
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail if the block leaves tasks behind."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    left = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and "TestRunner" not in getattr(t.get_coro(), "__qualname__", "")
    ]
    assert not left, left


@pytest.fixture
def peer_config() -> Callable[..., PeerConfig]:
    """``peer_config(name, init=..., **PeerConfig fields)``."""
    return _config


@pytest.fixture
def no_leaks() -> Callable[[], Any]:
    """``async with no_leaks():`` fails if the block leaves asyncio tasks running."""
    return _no_leaked_tasks

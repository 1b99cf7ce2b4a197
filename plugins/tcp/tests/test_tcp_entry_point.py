"""Installed, the transport is found through its ``weavek`` entry point."""

from __future__ import annotations

import importlib.metadata

import pytest

from weavek.interfaces import Transport
from weavek.plugins import make_plugin_manager, registry, resolve
from weavek_tcp import TcpTransport


@pytest.fixture(autouse=True)
def _no_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)


def test_the_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="weavek", name="tcp")
    assert [ep.value for ep in eps] == ["weavek_tcp.hooks"]
    assert eps["tcp"].dist is not None
    assert eps["tcp"].dist.metadata["Name"] == "weavek-tcp"


def test_resolve_finds_tcp_among_the_installed_transports() -> None:
    pm = make_plugin_manager()
    cls: type[Transport] = resolve(pm, "transport", "tcp")
    assert cls is TcpTransport
    assert registry(pm, "transport")["tcp"] is TcpTransport

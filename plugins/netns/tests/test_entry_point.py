"""Installed, the runtime is found through its ``weavek`` entry point."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from weavek.interfaces import Runtime
from weavek.plugins import make_plugin_manager, registry, resolve
from weavek_netns.runtime import NetnsRuntime


@pytest.fixture(autouse=True)
def _no_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)


def test_the_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="weavek", name="netns")
    assert [ep.value for ep in eps] == ["weavek_netns.hooks"]
    assert eps["netns"].dist is not None
    assert eps["netns"].dist.metadata["Name"] == "weavek-netns"


def test_resolve_finds_netns_among_the_installed_runtimes() -> None:
    pm = make_plugin_manager()
    cls: type[Runtime] = resolve(pm, "runtime", "netns")
    assert cls is NetnsRuntime
    assert registry(pm, "runtime")["netns"] is NetnsRuntime


def test_weavek_plugins_lists_it() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "weavek", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [row for row in json.loads(listed.stdout) if row["name"] == "netns"]
    assert [(row["family"], row["name"]) for row in rows] == [("runtime", "netns")]

"""Installed, the plugin is found through its ``weavek`` entry point."""

from __future__ import annotations

import importlib.metadata

import pytest

from weavek.interfaces import InitStrategy
from weavek.plugins import installed_plugins, make_plugin_manager, registry, resolve
from weavek_seed import SeedStrategy


@pytest.fixture(autouse=True)
def _no_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)


def test_the_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="weavek", name="seed")
    assert [ep.value for ep in eps] == ["weavek_seed.hooks"]
    assert eps["seed"].dist is not None
    assert eps["seed"].dist.metadata["Name"] == "weavek-seed"


def test_resolve_finds_seed_among_the_installed_plugins() -> None:
    pm = make_plugin_manager()
    cls: type[InitStrategy] = resolve(pm, "init", "seed")
    assert cls is SeedStrategy
    assert registry(pm, "init")["seed"] is SeedStrategy


def test_only_the_allowed_entry_point_loads() -> None:
    pm = make_plugin_manager(allow=["seed"])
    assert pm.has_plugin("seed")
    assert [name for name, _ in pm.list_name_plugin()] == ["seed"]
    assert list(registry(pm, "init")) == ["seed"]


def test_blocking_seed_hides_it() -> None:
    pm = make_plugin_manager(block=["seed"])
    assert not pm.has_plugin("seed")
    assert "seed" not in registry(pm, "init")


def test_it_is_listed_with_its_distribution() -> None:
    pm = make_plugin_manager(allow=["seed"])
    [info] = [i for i in installed_plugins(pm) if i.name == "seed"]
    assert (info.family, info.distribution) == ("init", "weavek-seed")
    assert info.version == importlib.metadata.version("weavek-seed")

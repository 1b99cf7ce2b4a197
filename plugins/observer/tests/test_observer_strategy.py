"""The observer: never votes, asks for the ring, reports itself as waiting; and its entry point."""

from __future__ import annotations

import importlib.metadata

import pytest

from weavek.core.strategy import NO_DECISION, Decision, InitArgumentError
from weavek.plugins import installed_plugins, make_plugin_manager, registry, resolve
from weavek_observer import ObserverStrategy

ME = 0x0A << 40


@pytest.fixture(autouse=True)
def _no_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)


def test_it_never_votes() -> None:
    strategy = ObserverStrategy(None, me=ME, peers_named=3)
    assert strategy.name == "observer" and strategy.elector is False
    assert strategy.seeds_at_start() is None
    assert strategy.payload() is None  # always a ring request, never a vote
    assert strategy.receive(1, {"v": 1, "nodes": {}, "values": []}) == NO_DECISION


@pytest.mark.parametrize("arg", ["", "3", "x"])
def test_it_takes_no_argument(arg: str) -> None:
    with pytest.raises(InitArgumentError) as info:
        ObserverStrategy(arg, me=ME)
    assert str(info.value) == f"--init observer={arg}: observer takes no argument"


def test_it_asks_for_the_ring_until_it_arrives() -> None:
    strategy = ObserverStrategy(None, me=ME)
    assert strategy.tick(now=1.0) == NO_DECISION  # nothing asked for yet
    assert strategy.status(waiting=False) == "idle" and strategy.report() is None
    assert strategy.establish(now=2.0) == Decision(broadcast=True)
    assert strategy.status(waiting=True) == "priming"
    assert strategy.report() == {"Elector": False, "KnownNodes": 0, "Quorum": 0}
    assert strategy.tick(now=7.0) == Decision(broadcast=True)
    assert strategy.tick(now=12.0) == Decision(broadcast=True)
    strategy.ring_formed()
    assert strategy.tick(now=17.0) == NO_DECISION
    assert strategy.report() is None and strategy.status(waiting=False) == "idle"


def test_the_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="weavek", name="observer")
    assert [ep.value for ep in eps] == ["weavek_observer.hooks"]
    assert eps["observer"].dist is not None
    assert eps["observer"].dist.metadata["Name"] == "weavek-observer"


def test_resolve_finds_observer() -> None:
    pm = make_plugin_manager()
    assert resolve(pm, "init", "observer") is ObserverStrategy
    assert registry(pm, "init")["observer"] is ObserverStrategy


def test_it_is_listed_with_its_distribution() -> None:
    pm = make_plugin_manager(allow=["observer"])
    assert list(registry(pm, "init")) == ["observer"]
    [info] = [i for i in installed_plugins(pm) if i.name == "observer"]
    assert (info.family, info.distribution) == ("init", "weavek-observer")
    assert info.version == importlib.metadata.version("weavek-observer")

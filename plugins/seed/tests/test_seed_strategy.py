"""The seed list: parsing, errors, and the decisions the allocator gets."""

from __future__ import annotations

import pytest

from weavek.core.strategy import Decision, InitArgumentError
from weavek_seed import SeedStrategy
from weavek_seed.strategy import parse_seeds

ME = 0x0A


@pytest.mark.parametrize(
    ("arg", "seeds"),
    [
        ("::1", (1,)),
        ("::1,::2", (1, 2)),
        ("::2,::1", (1, 2)),
        ("::2, ::1 ,::2", (1, 2)),
        ("00:00:00:00:00:03,::1", (1, 3)),
        ("01:23:45:67:89:ab", (0x0123456789AB,)),
    ],
)
def test_seeds_are_sorted_and_distinct(arg: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(arg) == seeds
    assert SeedStrategy(arg, me=ME).seeds_at_start() == seeds


@pytest.mark.parametrize("arg", [None, "", "  "])
def test_a_seed_list_is_required(arg: str | None) -> None:
    with pytest.raises(InitArgumentError) as info:
        SeedStrategy(arg, me=ME)
    assert str(info.value) == "--init seed needs a list of peer names, e.g. seed=::1,::2"


@pytest.mark.parametrize(
    ("arg", "reason"),
    [
        ("::1,,::2", "empty peer name"),
        ("::1,", "empty peer name"),
        ("::1,host2", "invalid peer name 'host2'"),
        ("::1::2", "more than one '::'"),
        ("::0", "unknown peer"),
    ],
)
def test_bad_names_are_refused_with_the_reason(arg: str, reason: str) -> None:
    with pytest.raises(InitArgumentError) as info:
        SeedStrategy(arg, me=ME)
    assert str(info.value).startswith(f"--init seed={arg}: ")
    assert reason in str(info.value)


def test_establish_rebuilds_the_same_ring() -> None:
    strategy = SeedStrategy("::3,::1", me=ME)
    assert strategy.establish(now=12.5) == Decision(seeds=(1, 3))
    assert strategy.establish(now=99.0) == Decision(seeds=strategy.seeds_at_start())


def test_a_peer_need_not_be_a_seed() -> None:
    assert ME not in SeedStrategy("::1,::2", me=ME).seeds_at_start()


def test_the_rest_is_the_quiet_default() -> None:
    strategy = SeedStrategy("::1", me=1, peers_named=2)
    assert strategy.name == "seed"
    assert strategy.arg == "::1"
    assert strategy.payload() is None
    assert strategy.report() is None
    assert strategy.status(waiting=False) == "idle"

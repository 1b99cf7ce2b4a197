"""What every :class:`~weavek.interfaces.Store` must do, as tests a store's package inherits.

Subclass :class:`StoreContract` in a test module and provide ``store_factory``:
an async callable that returns a fresh, not yet entered store over the SAME
backing data each time (the same file, key prefix or volume), so that
opening it again is a restart::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path: Path) -> StoreFactory:
            async def make() -> Store:
                return MyStore(str(tmp_path / "db"))
            return make

Every test opens a store the way the peer's shell does: ``async with``, then
:meth:`~weavek.interfaces.Store.load` once, then any number of
:meth:`~weavek.interfaces.Store.apply` calls. The tests run under anyio's
pytest plugin on asyncio.

What a store returns is what it was given: it does not check peer names or
ranges (the allocator discards data that belongs to another name or range),
and the order of an ident's addresses is not part of the contract.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

import anyio
import pytest

from weavek.core.address import CIDR
from weavek.core.effects import (
    Allocated,
    Broadcast,
    ClearStore,
    Effect,
    Gossip,
    Log,
    Refuse,
    Released,
    Reply,
    RingChanged,
    SaveRing,
    SendTo,
)
from weavek.core.messages import RingData
from weavek.core.ring import Ring
from weavek.core.snapshot import Snapshot
from weavek.interfaces import Store

__all__ = ["PEER_A", "PEER_B", "StoreContract", "StoreFactory", "make_ring", "state_of", "v4", "v6"]

StoreFactory = Callable[[], Awaitable[Store]]
"""Returns a new store over the same backing data: each call after the first is a restart."""

PEER_A, PEER_B = 0x0A0000000001, 0x0B0000000002
_NET4 = 0x0A200000  # 10.32.0.0/12
_NET6 = 0xFD00 << 112  # fd00::/64, addresses above 2**64 on purpose

Holdings = dict[str, tuple[frozenset[CIDR], bool]]


def make_ring(peers: Sequence[int] = (PEER_A, PEER_B), version: int = 4) -> RingData:
    """A valid ring divided among ``peers``: 10.32.0.0/12, or fd00::/64 for ``version=6``."""
    start, size = (_NET4, 1 << 20) if version == 4 else (_NET6, 1 << 64)
    ring = Ring(start, start + size, peers[0], version)
    ring.claim_for_peers(peers)
    return ring.to_data()


def v4(host: int) -> CIDR:
    """Host number ``host`` of 10.32.0.0/12."""
    return CIDR(_NET4 + host, 12)


def v6(host: int) -> CIDR:
    """Host number ``host`` of fd00::/64."""
    return CIDR(_NET6 + host, 64, 6)


def state_of(snap: Snapshot | None) -> tuple[int | None, RingData | None, Holdings] | None:
    """A snapshot as plain, comparable values; the peer only counts beside a ring."""
    if snap is None:
        return None
    owned = {i: (frozenset(h.cidrs), h.is_container) for i, h in snap.owned.items()}
    return (snap.peer if snap.ring is not None else None), snap.ring, owned


class StoreContract:
    """Tests any store passes; the subclass provides the ``store_factory`` fixture."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        pytest.fail("a StoreContract subclass must provide the store_factory fixture")

    @staticmethod
    async def session(factory: StoreFactory, *batches: Sequence[Effect]) -> Snapshot | None:
        """Start a store as the shell does, apply ``batches``, stop it; returns what load gave."""
        async with await factory() as store:
            loaded = await store.load()
            for batch in batches:
                await store.apply(batch)
        return loaded

    async def restart(self, factory: StoreFactory) -> Snapshot | None:
        """What a restarted peer loads."""
        return await self.session(factory)

    # -- the tests -------------------------------------------------------------

    @pytest.mark.anyio
    async def test_load_on_empty_is_none(self, store_factory: StoreFactory) -> None:
        assert await self.session(store_factory, []) is None
        assert await self.restart(store_factory) is None

    @pytest.mark.anyio
    async def test_ring_and_peer_name_round_trip(self, store_factory: StoreFactory) -> None:
        ring = make_ring([PEER_A, PEER_B, 3, 4, 5])
        await self.session(store_factory, [SaveRing(ring, PEER_A)])
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, {})

    @pytest.mark.anyio
    async def test_holdings_round_trip(self, store_factory: StoreFactory) -> None:
        ring = make_ring()
        odd = "c'\"; DROP TABLE x -- \u00e9\u6f22"
        batch: list[Effect] = [SaveRing(ring, PEER_A)]
        batch += [Allocated("c1", v4(1), True), Allocated("c1", v4(2), True)]
        batch += [Allocated("c1", v6(3), True), Allocated("weave:expose", v4(4), False)]
        batch += [Allocated("v6", v6((1 << 63) + 5), False), Allocated(odd, v4(6), True)]
        await self.session(store_factory, batch)
        expected = {
            "c1": (frozenset({v4(1), v4(2), v6(3)}), True),
            "weave:expose": (frozenset({v4(4)}), False),
            "v6": (frozenset({v6((1 << 63) + 5)}), False),
            odd: (frozenset({v4(6)}), True),
        }
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, expected)

    @pytest.mark.anyio
    async def test_ipv6_ring_round_trips(self, store_factory: StoreFactory) -> None:
        ring = make_ring([PEER_A, PEER_B, 7], version=6)
        await self.session(store_factory, [SaveRing(ring, PEER_B), Allocated("c", v6(9), True)])
        expected = {"c": (frozenset({v6(9)}), True)}
        assert state_of(await self.restart(store_factory)) == (PEER_B, ring, expected)

    @pytest.mark.anyio
    async def test_released_removes_the_address(self, store_factory: StoreFactory) -> None:
        ring = make_ring()
        allocs = [Allocated("c1", v4(1), True), Allocated("c1", v4(2), True)]
        await self.session(store_factory, [SaveRing(ring, PEER_A), *allocs])
        await self.session(store_factory, [Released("c1", v4(1))])
        expected = {"c1": (frozenset({v4(2)}), True)}
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, expected)
        await self.session(store_factory, [Released("c1", v4(2))])
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, {})

    @pytest.mark.anyio
    async def test_releasing_what_is_not_held_changes_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        ring = make_ring()
        await self.session(store_factory, [SaveRing(ring, PEER_A), Allocated("c", v4(1), False)])
        await self.session(store_factory, [Released("c", v4(2)), Released("other", v4(1))])
        expected = {"c": (frozenset({v4(1)}), False)}
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, expected)

    @pytest.mark.anyio
    async def test_clear_store_empties_it(self, store_factory: StoreFactory) -> None:
        batch: list[Effect] = [SaveRing(make_ring(), PEER_A), Allocated("c", v4(1), True)]
        await self.session(store_factory, batch)
        await self.session(store_factory, [ClearStore("Deleting persisted data for peername X")])
        assert await self.restart(store_factory) is None

    @pytest.mark.anyio
    async def test_clear_then_write_in_one_batch_keeps_the_new(
        self, store_factory: StoreFactory
    ) -> None:
        old, new = make_ring(), make_ring([PEER_B, 9])
        await self.session(store_factory, [SaveRing(old, PEER_A), Allocated("old", v4(1), True)])
        batch: list[Effect] = [ClearStore("range changed"), SaveRing(new, PEER_B)]
        batch.append(Allocated("new", v4(2), True))
        await self.session(store_factory, batch)
        expected = {"new": (frozenset({v4(2)}), True)}
        assert state_of(await self.restart(store_factory)) == (PEER_B, new, expected)

    @pytest.mark.anyio
    async def test_order_within_a_batch(self, store_factory: StoreFactory) -> None:
        ring = make_ring()
        gone: list[Effect] = [Allocated("a", v4(1), True), Released("a", v4(1))]
        back: list[Effect] = [Released("b", v4(2)), Allocated("b", v4(2), True)]
        await self.session(store_factory, [SaveRing(ring, PEER_A), *gone, *back])
        expected = {"b": (frozenset({v4(2)}), True)}
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, expected)

    @pytest.mark.anyio
    async def test_latest_ring_and_name_win(self, store_factory: StoreFactory) -> None:
        first, second, third = make_ring(), make_ring([PEER_A, PEER_B, 3]), make_ring([PEER_B])
        await self.session(store_factory, [SaveRing(first, PEER_A), SaveRing(second, PEER_A)])
        assert state_of(await self.restart(store_factory)) == (PEER_A, second, {})
        await self.session(store_factory, [SaveRing(third, PEER_B)])
        assert state_of(await self.restart(store_factory)) == (PEER_B, third, {})

    @pytest.mark.anyio
    async def test_name_and_range_changes_are_returned_as_stored(
        self, store_factory: StoreFactory
    ) -> None:
        # Discarding another name's or range's data is the allocator's decision (ClearStore).
        v4_ring, v6_ring = make_ring(), make_ring([PEER_B], version=6)
        await self.session(store_factory, [SaveRing(v4_ring, PEER_A), Allocated("c", v4(1), True)])
        await self.session(store_factory, [SaveRing(v6_ring, PEER_B)])
        expected = {"c": (frozenset({v4(1)}), True)}
        assert state_of(await self.restart(store_factory)) == (PEER_B, v6_ring, expected)

    @pytest.mark.anyio
    async def test_holdings_without_a_ring_are_returned(self, store_factory: StoreFactory) -> None:
        await self.session(store_factory, [Allocated("c", v4(1), True)])
        snap = await self.restart(store_factory)
        assert snap is not None and snap.ring is None
        assert state_of(snap) == (None, None, {"c": (frozenset({v4(1)}), True)})

    @pytest.mark.anyio
    async def test_effects_that_are_not_storage_are_ignored(
        self, store_factory: StoreFactory
    ) -> None:
        ring = make_ring()
        noise: list[Effect] = [Reply(object(), v4(1)), Broadcast(b"x"), SendTo(PEER_B, b"y")]
        noise += [Gossip(b"z"), Refuse(PEER_B, "r"), RingChanged((), ((1, 2),)), Log("info", "l")]
        await self.session(store_factory, noise)
        assert await self.restart(store_factory) is None
        await self.session(store_factory, [*noise, SaveRing(ring, PEER_A), *noise])
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, {})

    @pytest.mark.anyio
    async def test_a_big_batch(self, store_factory: StoreFactory) -> None:
        ring, n = make_ring(), 10_000
        allocs = [Allocated(f"c{i}", v4(i + 1), i % 2 == 0) for i in range(n)]
        await self.session(store_factory, [SaveRing(ring, PEER_A), *allocs])
        snap = await self.restart(store_factory)
        assert snap is not None and len(snap.owned) == n
        expected = {a.ident: (frozenset({a.cidr}), a.is_container) for a in allocs}
        assert state_of(snap) == (PEER_A, ring, expected)
        await self.session(store_factory, [Released(a.ident, a.cidr) for a in allocs])
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, {})

    @pytest.mark.anyio
    async def test_concurrent_applies_all_land(self, store_factory: StoreFactory) -> None:
        async with await store_factory() as store:
            assert await store.load() is None
            async with anyio.create_task_group() as tg:
                for t in range(20):
                    batch = [Allocated(f"t{t}-{i}", v4(t * 100 + i), True) for i in range(50)]
                    tg.start_soon(store.apply, batch)
        snap = await self.restart(store_factory)
        assert snap is not None and len(snap.owned) == 1000

    @pytest.mark.anyio
    async def test_restarts_see_exactly_what_was_applied(self, store_factory: StoreFactory) -> None:
        # A seeded random history over several restarts, checked against a plain model.
        rng = random.Random(20240601)
        idents = [f"c{i}" for i in range(12)]
        cidrs = [v4(i) for i in range(1, 20)] + [v6(i) for i in range(1, 8)]
        model: Holdings = {}
        peer, ring = None, None
        for _ in range(6):
            assert state_of(await self.restart(store_factory)) == (
                None if ring is None and not model else (peer, ring, model)
            )
            batches: list[list[Effect]] = []
            for _ in range(rng.randrange(1, 5)):
                batch: list[Effect] = []
                for _ in range(rng.randrange(0, 12)):
                    roll, ident, cidr = rng.random(), rng.choice(idents), rng.choice(cidrs)
                    if roll < 0.5:
                        flag = rng.random() < 0.5
                        batch.append(Allocated(ident, cidr, flag))
                        held = model.get(ident, (frozenset(), flag))[0]
                        model[ident] = (held | {cidr}, flag)
                    elif roll < 0.85:
                        batch.append(Released(ident, cidr))
                        if ident in model:
                            rest = model[ident][0] - {cidr}
                            model[ident] = (rest, model[ident][1])
                            if not rest:
                                del model[ident]
                    elif roll < 0.97:
                        peer = rng.choice([PEER_A, PEER_B])
                        ring = make_ring([PEER_A, PEER_B, rng.randrange(1, 99)])
                        batch.append(SaveRing(ring, peer))
                    else:
                        batch.append(ClearStore("random"))
                        model, peer, ring = {}, None, None
                batches.append(batch)
            await self.session(store_factory, *batches)
        assert state_of(await self.restart(store_factory)) == (
            None if ring is None and not model else (peer, ring, model)
        )

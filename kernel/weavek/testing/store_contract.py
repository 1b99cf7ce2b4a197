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

A store that keeps data across processes inherits :class:`PersistentStoreContract`
instead, which adds a real ``kill -9`` of a writing process and foreign or
corrupt data (refused with a clear error, nothing overwritten); it provides
``store_spec`` (how a child process builds the store) and ``damage`` (how to
spoil the backing data). A store with a service behind it (etcd, Docker)
inherits :class:`ServiceStoreContract`, which adds the service going away and
coming back; it provides ``outage``.
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.to_thread
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
from weavek.interfaces import Store, StoreUnavailable

__all__ = [
    "PEER_A",
    "PEER_B",
    "Damage",
    "Outage",
    "CrashWriter",
    "PersistentStoreContract",
    "ServiceStoreContract",
    "StoreContract",
    "StoreFactory",
    "StoreSpec",
    "WriterState",
    "make_ring",
    "parse_batches",
    "replay_batch",
    "state_of",
    "v4",
    "v6",
    "writer_state",
]

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


# -- stores that outlive the process ---------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    """How a child process builds the store: ``module:Class``, its argument and keywords.

    ``settings`` are class attributes the child sets first (e.g. a smaller
    compaction interval, so a short test crosses it).
    """

    cls: str
    arg: str | None
    keywords: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Store:
        module, _, name = self.cls.partition(":")
        store_cls = getattr(importlib.import_module(module), name)
        for key, value in self.settings.items():
            setattr(store_cls, key, value)
        store: Store = store_cls(self.arg, **self.keywords)
        return store


class Damage(Protocol):
    """Spoils a store's backing data the way another program or a broken disk would."""

    async def foreign(self) -> None:
        """Put another program's data where the store would keep its own (nothing there yet)."""

    async def corrupt(self) -> None:
        """Damage data the store wrote (a session has run before)."""

    async def raw(self) -> object:
        """The backing data as a comparable value (to check that nothing was written)."""


class Outage(Protocol):
    """Takes a store's service away and brings it back (etcd stopped, Docker stopped)."""

    async def begin(self) -> None: ...

    async def end(self) -> None: ...


WriterState = tuple[dict[str, int], int | None]
"""What the child writer's output describes: ident -> host number, and the ring's marker."""


class PersistentStoreContract(StoreContract):
    """The contract plus a real ``kill -9`` and foreign or corrupt data.

    The subclass also provides ``store_spec`` (a :class:`StoreSpec` building,
    in a child process, a store over the same data as ``store_factory``) and
    ``damage`` (a :class:`Damage`).
    """

    crash_rounds = int(os.environ.get("WEAVEK_STORE_CRASH_ROUNDS", "6"))

    @pytest.fixture
    def store_spec(self) -> StoreSpec:
        pytest.fail("a PersistentStoreContract subclass must provide the store_spec fixture")

    @pytest.fixture
    def damage(self) -> Damage:
        pytest.fail("a PersistentStoreContract subclass must provide the damage fixture")

    @staticmethod
    async def refused(factory: StoreFactory) -> Exception:
        """Open, load and write; the error that stopped it (which must not be StoreUnavailable)."""
        try:
            await StoreContract.session(factory, [SaveRing(make_ring(), PEER_A)])
        except StoreUnavailable as exc:
            pytest.fail(f"bad data must not read as an outage: {exc}")
        except Exception as exc:
            return exc
        pytest.fail("the store accepted data it should have refused")

    @pytest.mark.anyio
    async def test_foreign_data_is_refused_and_left_alone(
        self, store_factory: StoreFactory, damage: Damage
    ) -> None:
        await damage.foreign()
        before = await damage.raw()
        error = await self.refused(store_factory)
        assert str(error).strip() and "\n" not in str(error), f"not one line: {error!r}"
        assert await damage.raw() == before, "the store wrote over data that is not its own"

    @pytest.mark.anyio
    async def test_corrupt_data_is_refused_and_left_alone(
        self, store_factory: StoreFactory, damage: Damage
    ) -> None:
        batch: list[Effect] = [SaveRing(make_ring(), PEER_A)]
        batch += [Allocated(f"c{i}", v4(i + 1), True) for i in range(200)]
        await self.session(store_factory, batch)
        await damage.corrupt()
        before = await damage.raw()
        error = await self.refused(store_factory)
        assert str(error).strip() and "\n" not in str(error), f"not one line: {error!r}"
        assert await damage.raw() == before, "the store wrote over data it could not read"

    @pytest.mark.anyio
    async def test_kill_9_between_writes_keeps_every_acknowledged_batch(
        self, store_factory: StoreFactory, store_spec: StoreSpec
    ) -> None:
        # A child process writes batches and says "ok" once apply returned; it is SIGKILLed
        # at a random moment, several rounds over the same data. After each kill the data
        # must hold every acknowledged batch and all or none of the one in flight.
        rng = random.Random(int(os.environ.get("WEAVEK_STORE_CRASH_SEED", "7")))
        state: WriterState = ({}, None)
        acked_total = 0
        for round_ in range(self.crash_rounds):
            child = CrashWriter(store_spec, round_)
            try:
                if round_ % 3 == 0:
                    await anyio.sleep(rng.uniform(0.0, 0.8))  # anywhere in start-up too
                else:
                    ready = await anyio.to_thread.run_sync(child.ready.wait, 60)
                    assert ready, f"the writer did not load:\n{child.errors()}"
                    await anyio.sleep(rng.uniform(0.05, 0.5))
            finally:
                lines = child.kill()
            acked, in_flight = parse_batches(lines)
            for batch in acked:
                state = replay_batch(state, batch)
            acked_total += sum(line[0] == "+" for b in acked for line in b)
            loaded = writer_state(await self.restart(store_factory))
            landed = None if in_flight is None else replay_batch(state, in_flight)
            assert loaded in (state, landed), (
                f"round {round_}: not what was acknowledged (in flight: {in_flight})"
            )
            state = loaded
        assert acked_total > 0, "no batch was acknowledged in any round"


class ServiceStoreContract(PersistentStoreContract):
    """The persistent contract plus the store's service going away and coming back.

    The subclass also provides ``outage`` (an :class:`Outage`).
    """

    recovery_timeout = 30.0

    @pytest.fixture
    def outage(self) -> Outage:
        pytest.fail("a ServiceStoreContract subclass must provide the outage fixture")

    @pytest.mark.anyio
    async def test_unavailable_refuses_then_recovers_by_itself(
        self, store_factory: StoreFactory, outage: Outage
    ) -> None:
        ring = make_ring()
        first: list[Effect] = [SaveRing(ring, PEER_A), Allocated("before", v4(1), True)]
        held: list[Effect] = [Allocated("during", v4(2), True), Released("before", v4(1))]
        async with await store_factory() as store:
            assert await store.load() is None
            await store.apply(first)
            assert store.health() is None
            await outage.begin()
            try:
                with pytest.raises(StoreUnavailable) as caught:
                    await store.apply(held)
                message = str(caught.value)
                assert message.strip() and "\n" not in message, f"not one line: {message!r}"
                health = store.health()
                assert health and "\n" not in health, f"health() says {health!r} while down"
            finally:
                await outage.end()
            # The peer retries the held batch until it lands; the store recovers by itself.
            deadline = time.monotonic() + self.recovery_timeout
            while True:
                try:
                    await store.apply(held)
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline, "the store did not recover"
                    await anyio.sleep(0.2)
            assert store.health() is None
            await store.apply([Allocated("after", v4(3), False)])
        expected = {"during": (frozenset({v4(2)}), True), "after": (frozenset({v4(3)}), False)}
        assert state_of(await self.restart(store_factory)) == (PEER_A, ring, expected)

    @pytest.mark.anyio
    async def test_load_while_unavailable_raises_store_unavailable(
        self, store_factory: StoreFactory, outage: Outage
    ) -> None:
        await self.session(store_factory, [SaveRing(make_ring(), PEER_A)])
        await outage.begin()
        try:
            with pytest.raises(StoreUnavailable):
                await self.restart(store_factory)
        finally:
            await outage.end()
        assert state_of(await self.restart(store_factory)) == (PEER_A, make_ring(), {})


# -- the child writer of the kill -9 test (also used by a store's own crash tests) -------


class CrashWriter:
    """The writer (``python -m weavek.testing.store_contract SPEC ROUND``), started at once.

    It prints ``ready N`` after load, then for each batch ``batch K`` and one
    line per effect before ``apply``, and ``ok K`` once ``apply`` returned. A
    thread drains its output; :meth:`kill` SIGKILLs it and returns the lines.
    """

    def __init__(self, spec: StoreSpec, round_: int) -> None:
        import json

        command = [sys.executable, "-m", "weavek.testing.store_contract"]
        self.proc = subprocess.Popen(
            [*command, json.dumps(spec.__dict__), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ready"):
                self.ready.set()

    def errors(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()[-3000:]

    def kill(self) -> list[str]:
        if self.proc.poll() is not None:
            raise AssertionError(f"the writer died before the kill:\n{self.errors()}")
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        return self.lines


def parse_batches(lines: list[str]) -> tuple[list[list[str]], list[str] | None]:
    """The acknowledged batches in order, and the batch in flight at the kill (if any)."""
    acked: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("batch "):
            current = []
        elif line.startswith("ok "):
            assert current is not None
            acked.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return acked, current


def replay_batch(state: WriterState, batch: list[str]) -> WriterState:
    """``state`` after one batch of the writer's lines."""
    owned, ring = dict(state[0]), state[1]
    for line in batch:
        kind, *rest = line.split()
        if kind == "+":
            owned[rest[0]] = int(rest[1])
        elif kind == "-":
            owned.pop(rest[0], None)
        else:
            ring = int(rest[0])
    return owned, ring


def writer_state(snap: Snapshot | None) -> WriterState:
    """What a store loaded, in the writer's terms (to compare with its replayed lines)."""
    if snap is None:
        return {}, None
    base = v4(0).addr
    owned = {}
    for ident, holding in snap.owned.items():
        [cidr] = holding.cidrs
        owned[ident] = cidr.addr - base
    return owned, None if snap.ring is None else snap.ring.seeds[0] - 1000


async def _write_until_killed(spec: StoreSpec, round_: int) -> None:
    rng = random.Random(round_)
    async with spec.build() as store:
        snap = await store.load()
        _say(["ready " + str(0 if snap is None else len(snap.owned))])
        held: list[tuple[str, int]] = []
        i = 0
        while True:
            batch: list[Effect] = []
            for _ in range(rng.choice((1, 1, 2, 3, 8, 32))):
                i += 1
                # Addresses unique across rounds: 20,000 a round inside the /12.
                batch.append(Allocated(f"r{round_}-{i}", v4(round_ * 20_000 + i), True))
            if held and rng.random() < 0.3:
                ident, host = held.pop(rng.randrange(len(held)))
                batch.append(Released(ident, v4(host)))
            if rng.random() < 0.05:
                batch.append(SaveRing(make_ring([PEER_A, PEER_B, 1000 + i]), PEER_A))
            # The intent first, then the acknowledgement once apply returned.
            _say([f"batch {i}", *map(_describe, batch)])
            await store.apply(batch)
            _say([f"ok {i}"])
            held += [(e.ident, e.cidr.addr - v4(0).addr) for e in batch if isinstance(e, Allocated)]


def _describe(effect: Effect) -> str:
    if isinstance(effect, Allocated):
        return f"+ {effect.ident} {effect.cidr.addr - v4(0).addr}"
    if isinstance(effect, Released):
        return f"- {effect.ident} {effect.cidr.addr - v4(0).addr}"
    assert isinstance(effect, SaveRing)
    return f"ring {effect.ring.seeds[0] - 1000}"


def _say(lines: list[str]) -> None:
    # One write of whole lines (well under PIPE_BUF): the test never reads half a batch.
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


if __name__ == "__main__":
    import json

    anyio.run(_write_until_killed, StoreSpec(**json.loads(sys.argv[1])), int(sys.argv[2]))

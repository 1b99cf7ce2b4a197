"""The worker: applies never overlap, the event loop keeps running, and how fast commits are."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from weavek.core.effects import Allocated, Effect
from weavek.testing.store_contract import v4
from weavek_weavedb import WeavedbStore
from weavek_weavedb.database import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_concurrent_applies_are_serialised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    active, peak = 0, 0
    lock = threading.Lock()
    real_apply = Database.apply

    def watched(self: Database, effects: Sequence[Effect]) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.002)  # widen the window an overlap would need
        try:
            real_apply(self, effects)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(Database, "apply", watched)
    async with WeavedbStore(str(tmp_path / "w.sqlite")) as store:
        assert await store.load() is None
        async with anyio.create_task_group() as tg:
            for t in range(30):
                batch = [Allocated(f"t{t}-{i}", v4(t * 100 + i), True) for i in range(20)]
                tg.start_soon(store.apply, batch)
    assert peak == 1
    async with WeavedbStore(str(tmp_path / "w.sqlite")) as store:
        snap = await store.load()
    assert snap is not None and len(snap.owned) == 600


async def test_the_event_loop_runs_while_a_commit_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply = Database.apply

    def slow(self: Database, effects: Sequence[Effect]) -> None:
        time.sleep(0.3)  # a slow disk
        real_apply(self, effects)

    monkeypatch.setattr(Database, "apply", slow)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with WeavedbStore(str(tmp_path / "w.sqlite")) as store:
        await store.load()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await store.apply([Allocated("c", v4(1), True)])
            tg.cancel_scope.cancel()
    assert ticks >= 10


async def test_a_cancelled_caller_still_gets_its_commit(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sqlite")
    async with WeavedbStore(path) as store:
        await store.load()
        with anyio.move_on_after(0):
            await store.apply([Allocated("c", v4(1), True)])
    # Cancelled before it reached the worker, or committed in full: never half a batch.
    async with WeavedbStore(path) as store:
        snap = await store.load()
    assert snap is None or set(snap.owned) == {"c"}


class _Normal(WeavedbStore):
    synchronous = "NORMAL"


async def test_throughput(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Allocations per second at batch sizes 1, 8 and 64; printed, never asserted."""
    rows = []
    for cls in (WeavedbStore, _Normal):
        async with cls(str(tmp_path / f"{cls.synchronous}.sqlite")) as store:
            await store.load()
            rates = []
            n = 0
            for size in (1, 8, 64):
                applies = 300 if cls is _Normal else 100
                start = time.perf_counter()
                for _ in range(applies):
                    batch = [Allocated(f"c{n + j}", v4(n + j), True) for j in range(size)]
                    await store.apply(batch)
                    n += size
                rate = applies * size / (time.perf_counter() - start)
                rates.append(f"batch {size:>2}: {rate:>8,.0f}/s")
            rows.append(f"synchronous={cls.synchronous:<6} " + "  ".join(rates))
    with capsys.disabled():
        print("\nweavedb allocations/s on this disk:", *rows, sep="\n  ", file=sys.stderr)

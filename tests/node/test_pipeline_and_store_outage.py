"""Pipelined group commit, and a peer whose store goes away and comes back.

The store is :class:`~weavek.testing.journal_store.JournalStore`: fsynced
lines in a real directory, unavailable while the directory is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pluggy
import pytest

from weavek.core.address import CIDR, parse_cidr
from weavek.core.events import AllocateRequested, DeleteRequested, LookupRequested
from weavek.node import Peer, PeerConfig
from weavek.node.actor import Actor
from weavek.node.mailbox import StoreUnavailableError
from weavek.node.status import ServiceHealth
from weavek.testing.journal_store import JournalPlugin, journal_idents

pytestmark = pytest.mark.anyio

PeerConfigFactory = Callable[..., PeerConfig]


def allocate(ident: str) -> Callable[[object], AllocateRequested]:
    return lambda token: AllocateRequested(token, ident)


def lookup(ident: str) -> Callable[[object], LookupRequested]:
    return lambda token: LookupRequested(token, ident)


@pytest.fixture
def journal() -> JournalPlugin:
    return JournalPlugin()


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """The journal store's "service": a directory that tests remove and recreate."""
    path = tmp_path / "service"
    path.mkdir()
    return path


class Outage:
    """Takes the journal's directory away (renamed, data kept) and brings it back."""

    def __init__(self, service: Path) -> None:
        self.service = service
        self.away = service.with_name("away")

    def begin(self) -> None:
        self.service.rename(self.away)

    def end(self) -> None:
        self.away.rename(self.service)


@pytest.fixture
def outage(service: Path) -> Outage:
    return Outage(service)


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(Actor, "store_wait", 0.6)
    return 0.6


def journal_config(peer_config: PeerConfigFactory, service: Path) -> PeerConfig:
    return peer_config(1, persist=f"journal={service}")


async def test_replies_come_only_after_their_write(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
) -> None:
    with anyio.fail_after(30):
        async with Peer(journal_config(peer_config, service), make_pm(journal)) as peer:

            async def client(k: int) -> None:
                for i in range(30):
                    ident = f"c{k}-{i}"
                    cidr = await peer.request(allocate(ident))
                    assert isinstance(cidr, CIDR)
                    # Acknowledged, so it must already be in the file a restart reads.
                    assert journal_idents(service)[ident] == [str(cidr)]

            async with anyio.create_task_group() as tasks:
                for k in range(8):
                    tasks.start_soon(client, k)
            assert peer.stats.allocations == 240
            assert sum(journal.writes) >= 240
            assert len(journal.writes) <= 240 // 2, journal.writes


async def test_next_batch_is_handled_while_a_write_is_in_flight(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
) -> None:
    config = peer_config(1, persist=f"journal={service}", tick=60)  # no ticks: count events
    with anyio.fail_after(30):
        async with Peer(config, make_pm(journal)) as peer:
            durable = await peer.request(allocate("durable"))
            base = peer.stats.events
            journal.gate = gate = anyio.Event()  # the disk stalls from now on
            results: dict[str, object] = {}

            async def ask(ident: str) -> None:
                results[ident] = await peer.request(allocate(ident))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(ask, "first")
                while journal.stalled < 1:  # "first" is in the write that stalls
                    await anyio.sleep(0.01)
                writes = len(journal.writes)
                assert peer.stats.events == base + 1
                for k in range(5):
                    tasks.start_soon(ask, f"later{k}")
                # The actor handles the later requests while the first write waits...
                while peer.stats.events < base + 6:
                    await anyio.sleep(0.01)
                # ... answers a lookup of a written ident at once ...
                assert await peer.request(lookup("durable")) == (durable,)
                # ... and acknowledges nothing that is not written.
                await anyio.sleep(0.1)
                assert results == {} and len(journal.writes) == writes
                gate.set()
            assert set(results) == {"first", *(f"later{k}" for k in range(5))}
            # The later allocations share the write after the stalled one.
            assert journal.writes[writes:] == [1, 5]
            assert len(set(results.values())) == 6


async def test_allocations_wait_for_a_store_that_comes_back(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
    outage: Outage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with anyio.fail_after(30):
        async with Peer(journal_config(peer_config, service), make_pm(journal)) as peer:
            await peer.request(allocate("before"))
            outage.begin()
            got: list[object] = []

            async def ask() -> None:
                got.append(await peer.request(allocate("during")))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(ask)
                while (store := (await peer.status()).services[0]).problem is None:
                    await anyio.sleep(0.01)
                assert store.problem.startswith("unavailable: cannot open")
                assert store.waiting == 1
                await anyio.sleep(0.2)
                assert got == []  # not acknowledged while it cannot be written
                outage.end()
            assert isinstance(got[0], CIDR)
            assert journal_idents(service)["during"] == [str(got[0])]
            assert (await peer.status()).services[0].problem is None
    assert "store journal unavailable" in caplog.text
    assert "store journal available again" in caplog.text


async def test_outage_fails_held_requests_keeps_lookups_and_recovers(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
    outage: Outage,
    short_wait: float,
) -> None:
    with anyio.fail_after(30):
        config = journal_config(peer_config, service)
        async with Peer(config, make_pm(journal)) as peer:
            kept = await peer.request(allocate("kept"))
            outage.begin()
            started = anyio.current_time()
            with pytest.raises(StoreUnavailableError, match=r"^store unavailable: cannot open .*"):
                await peer.request(allocate("new"))
            assert anyio.current_time() - started >= short_wait
            with pytest.raises(StoreUnavailableError):
                await peer.request(lambda t: DeleteRequested(t, "kept"))
            # Lookups of what was written keep being answered, and so does status...
            with anyio.fail_after(0.5):
                assert await peer.request(lookup("other")) == ()
                status = await peer.status()
            store = status.services[0]
            assert (store.family, store.name) == ("store", "journal")
            assert store.problem is not None and store.waiting == 2
            # ... but not lookups of an ident with a change waiting for the store.
            with pytest.raises(StoreUnavailableError):
                await peer.request(lookup("kept"))
            outage.end()
            # Recovery is automatic; the held changes are written in order.
            new = await peer.request(allocate("new"))
            assert journal_idents(service) == {"new": [str(new)]}  # "kept" was deleted
            assert await peer.request(lookup("kept")) == ()
            assert (await peer.status()).services[0] == ServiceHealth("store", "journal", None)
        service_before = journal_idents(service)
        async with Peer(config, make_pm(journal)) as again:
            assert await again.request(lookup("new")) == (new,)
            assert journal_idents(service) == service_before
    assert new != kept


async def test_another_store_error_stops_the_peer(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
) -> None:
    with anyio.fail_after(30), pytest.raises(BaseExceptionGroup) as raised:
        async with Peer(journal_config(peer_config, service), make_pm(journal)) as peer:
            (service / "journal").unlink()
            (service / "journal").mkdir()  # not a missing service: broken data
            await peer.request(allocate("x"))
            pytest.fail("the allocation must not be acknowledged")
    assert raised.group_contains(IsADirectoryError)


async def test_status_lists_store_and_transport_health(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
) -> None:
    with anyio.fail_after(10):
        async with Peer(journal_config(peer_config, service), make_pm(journal)) as peer:
            services = (await peer.status()).services
            assert [(s.family, s.name, s.problem) for s in services] == [
                ("store", "journal", None),
                ("transport", "memory", None),
            ]


async def test_start_effects_are_written_first_and_lookups_stay_fast_after(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    journal: JournalPlugin,
    service: Path,
) -> None:
    with anyio.fail_after(30):
        async with Peer(journal_config(peer_config, service), make_pm(journal)) as peer:
            await peer.request(allocate("old"))
        # Another range: the start-up effects clear the store before anything else.
        other = peer_config(1, persist=f"journal={service}", universe=parse_cidr("10.40.0.0/16"))
        async with Peer(other, make_pm(journal)) as peer:
            assert journal_idents(service) == {}
            assert await peer.request(lookup("old")) == ()
            journal.gate = gate = anyio.Event()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(peer.request, allocate("stalled"))
                while journal.stalled < 1:
                    await anyio.sleep(0.01)
                # The clear is written: a lookup of another ident need not wait.
                with anyio.fail_after(1):
                    assert await peer.request(lookup("old")) == ()
                gate.set()

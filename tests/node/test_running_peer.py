"""A running Peer: start-up choices, the actor, cancellation, hooks, restarts, shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pluggy
import pytest

from weavek.core.address import CIDR, parse_cidr
from weavek.core.effects import Failed
from weavek.core.events import AllocateRequested, DeleteRequested, PrimeRequested
from weavek.node import Peer, PeerConfig, PeerStoppedError, run_peer
from weavek.plugin import hookimpl
from weavek.plugins import UnknownPluginError
from weavek.testing.memory_transport import MemoryPlugin

pytestmark = pytest.mark.anyio

PeerConfigFactory = Callable[..., PeerConfig]


def allocate(ident: str) -> Callable[[object], AllocateRequested]:
    return lambda token: AllocateRequested(token, ident)


async def test_seeded_peer_allocates_at_once(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory, no_leaks: Any
) -> None:
    with anyio.fail_after(10):
        async with no_leaks(), Peer(peer_config(1), make_pm()) as peer:
            assert peer.name == 1
            assert peer.http_address is not None and peer.http_address[1] > 0
            first = await peer.request(allocate("a"))
            again = await peer.request(allocate("a"))
            other = await peer.request(allocate("b"))
            assert first == again == parse_cidr("10.32.0.1/12")
            assert other == parse_cidr("10.32.0.2/12")
            status = await peer.status()
            assert status.state == "ready"
            assert status.active == 2


async def test_unknown_init_strategy_names_the_installed_ones(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory
) -> None:
    with pytest.raises(UnknownPluginError, match=r"installed: .*seed"):
        async with Peer(peer_config(1, init="nope"), make_pm()):
            pass


async def test_default_init_is_deferred_consensus(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory
) -> None:
    with anyio.fail_after(10):
        async with Peer(peer_config(1, init=None), make_pm()) as peer:
            assert (await peer.status()).state == "idle"


async def test_cancelling_a_waiting_request_drops_it_in_the_allocator(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory
) -> None:
    # consensus=3 alone: quorum 2 can never be reached, so the allocation waits.
    with anyio.fail_after(10):
        async with Peer(peer_config(1, init="consensus=3"), make_pm()) as peer:
            with anyio.move_on_after(0.3):
                await peer.request(allocate("waiting"))
                pytest.fail("the allocation should have waited")
            status = await peer.status()
            assert status.pending_allocates == ()
            assert status.state.startswith("awaiting consensus")


async def test_abandon_cancels_only_a_pending_request(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory
) -> None:
    gone = anyio.Event()
    with anyio.fail_after(10):
        async with Peer(peer_config(1, init="consensus=3"), make_pm()) as peer:
            async with anyio.create_task_group() as tasks:
                results: list[object] = []

                async def ask() -> None:
                    results.append(await peer.request(PrimeRequested, gone.wait))

                tasks.start_soon(ask)
                await anyio.sleep(0.1)
                assert not results
                gone.set()
            assert results == [Failed("Prime request cancelled", cancelled=True)]


async def test_stopping_fails_waiting_requests(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory
) -> None:
    errors: list[BaseException] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer:
            stopped = anyio.Event()

            async def waiter(peer: Peer) -> None:
                try:
                    await peer.request(allocate("x"))
                except PeerStoppedError as exc:
                    errors.append(exc)

            async with Peer(peer_config(1, init="consensus=3"), make_pm()) as peer:
                outer.start_soon(waiter, peer)
                await anyio.sleep(0.1)
            stopped.set()
    assert len(errors) == 1


async def test_restart_keeps_name_ring_and_allocations(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    memory: MemoryPlugin,
) -> None:
    with anyio.fail_after(10):
        async with Peer(peer_config(5, init="seed=::5", persist="memory=disk"), make_pm()) as p:
            got = await p.request(allocate("kept"))
        # No name given: the persisted one is used.
        restarted = peer_config(None, init="seed=::5", persist="memory=disk")
        async with Peer(restarted, make_pm()) as peer:
            assert peer.name == 5
            assert await peer.request(allocate("kept")) == got
            assert (await peer.status()).active == 1


async def test_group_commit_one_store_write_per_batch(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    memory: MemoryPlugin,
) -> None:
    with anyio.fail_after(20):
        async with Peer(peer_config(1), make_pm()) as peer:
            before = memory.applies["1"]

            async def client(k: int) -> None:
                for i in range(50):
                    assert isinstance(await peer.request(allocate(f"c{k}-{i}")), CIDR)

            async with anyio.create_task_group() as tasks:
                for k in range(8):
                    tasks.start_soon(client, k)
            writes = memory.applies["1"] - before
            assert peer.stats.allocations == 400
            # Eight clients keep about eight requests queued: each write carries several.
            assert 0 < writes <= 400 // 4, writes


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def weavek_peer_started(self, peer: Peer) -> None:
        self.calls.append(("started", peer.name))

    @hookimpl
    def weavek_peer_stopping(self, peer: Peer) -> None:
        self.calls.append(("stopping", peer.name))

    @hookimpl
    def weavek_ring_changed(self, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
        self.calls.append(("ring", (before, after)))

    @hookimpl
    def weavek_address_allocated(self, ident: str, cidr: CIDR) -> None:
        self.calls.append(("allocated", (ident, str(cidr))))

    @hookimpl
    def weavek_address_released(self, ident: str, cidr: CIDR) -> None:
        self.calls.append(("released", (ident, str(cidr))))


class Broken:
    @hookimpl
    def weavek_address_allocated(self) -> None:
        raise RuntimeError("observer bug")


async def test_hooks_are_called_and_a_failing_one_is_only_logged(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: PeerConfigFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    with anyio.fail_after(10), caplog.at_level(logging.ERROR, logger="weavek"):
        async with Peer(peer_config(1), make_pm(recorder, Broken())) as peer:
            await peer.request(allocate("a"))
            assert await peer.request(lambda t: DeleteRequested(t, "a")) is None
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds[0] == "ring" and kinds[1] == "started" and kinds[-1] == "stopping"
    assert ("allocated", ("a", "10.32.0.1/12")) in recorder.calls
    assert ("released", ("a", "10.32.0.1/12")) in recorder.calls
    assert "observer bug" in caplog.text


async def test_run_peer_serves_until_cancelled(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: PeerConfigFactory, no_leaks: Any
) -> None:
    with anyio.fail_after(10):
        async with no_leaks(), anyio.create_task_group() as tasks:
            peer = await tasks.start(partial(run_peer, peer_config(1), pm=make_pm()))
            assert isinstance(await peer.request(allocate("a")), CIDR)
            tasks.cancel_scope.cancel()

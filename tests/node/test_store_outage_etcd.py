"""A peer on a real etcd that stops and starts again: nothing acknowledged that is not in etcd."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.to_thread
import pluggy
import pytest

from weavek.core.address import CIDR
from weavek.core.events import AllocateRequested, LookupRequested
from weavek.node import Peer, PeerConfig
from weavek.node.actor import Actor
from weavek.node.mailbox import StoreUnavailableError
from weavek.testing.etcd import EtcdCluster

pytestmark = pytest.mark.anyio


def allocate(ident: str) -> Callable[[object], AllocateRequested]:
    return lambda token: AllocateRequested(token, ident)


def lookup(ident: str) -> Callable[[object], LookupRequested]:
    return lambda token: LookupRequested(token, ident)


async def test_peer_rides_out_an_etcd_outage(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Actor, "store_wait", 1.0)
    with EtcdCluster(1) as etcd, anyio.fail_after(120):
        config = peer_config(7, init="seed=::7", persist=f"etcd={etcd.endpoints}")
        async with Peer(config, make_pm()) as peer:
            before = await peer.request(allocate("before"))
            assert isinstance(before, CIDR)
            await anyio.to_thread.run_sync(etcd.stop)

            with pytest.raises(StoreUnavailableError, match=r"^store unavailable: "):
                await peer.request(allocate("during"))
            assert await peer.request(lookup("before")) == (before,)
            store = (await peer.status()).services[0]
            assert store.name == "etcd" and store.problem is not None
            assert store.problem.startswith("unavailable: ") and store.waiting == 1

            await anyio.to_thread.run_sync(etcd.start)
            during = await peer.request(allocate("during"))  # waits for the held write
            assert isinstance(during, CIDR) and during != before
            assert (await peer.status()).services[0].problem is None
        # A restart reads back from etcd what was acknowledged, the held write included.
        async with Peer(config, make_pm()) as again:
            assert await again.request(lookup("before")) == (before,)
            assert await again.request(lookup("during")) == (during,)

"""A dead container's grace period, measured on a running peer's real clock."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pluggy
import pytest

from weavek.core.address import CIDR
from weavek.core.events import AllocateRequested, ContainerDied, LookupRequested
from weavek.node import Peer, PeerConfig

pytestmark = pytest.mark.anyio


async def test_the_grace_period_starts_when_the_death_is_reported(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
) -> None:
    # Ticks 1 s apart and a 1 s grace: a death reported just before a tick must
    # survive the next tick, which comes well inside the grace period.
    config = peer_config(1, tick=1.0, grace_period=1.0)
    with anyio.fail_after(20):
        async with Peer(config, make_pm()) as peer:
            cidr = await peer.request(lambda t: AllocateRequested(t, "c1", is_container=True))
            assert isinstance(cidr, CIDR)
            start = anyio.current_time()
            await anyio.sleep(0.9)
            await peer.deliver(ContainerDied("c1"))
            died = anyio.current_time()
            await anyio.sleep(0.6)  # past the next tick (~1.0 s after start), within grace
            assert await peer.request(lambda t: LookupRequested(t, "c1")) == (cidr,), (
                f"released {anyio.current_time() - died:.2f} s after its death "
                f"(ticks from {start:.2f}), inside a 1 s grace period"
            )
            await anyio.sleep(1.6)  # past the grace period and the tick after it
            assert await peer.request(lambda t: LookupRequested(t, "c1")) == ()

"""Several peers on one memory network, watched through their HTTP APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import pluggy
import pytest
from prometheus_client.parser import text_string_to_metric_families

from weavek.node import Peer, PeerConfig
from weavek.testing.memory_transport import MemoryPlugin

pytestmark = pytest.mark.anyio

SEEDS = "seed=::1,::2,::3"


@asynccontextmanager
async def cluster(
    pm: pluggy.PluginManager, make: Callable[..., PeerConfig], n: int = 3, **kwargs: Any
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = []
        for name in range(1, n + 1):
            peer = await stack.enter_async_context(Peer(make(name, **kwargs), pm))
            host, port = peer.http_address or ("", 0)
            http = httpx.AsyncClient(base_url=f"http://{host}:{port}")
            clients.append(await stack.enter_async_context(http))
        yield clients


def metrics(text: str) -> dict[str, float]:
    return {
        sample.name + "".join(f"{{{v}}}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_concurrent_allocations_on_three_peers_are_unique(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: Callable[..., PeerConfig]
) -> None:
    with anyio.fail_after(20):
        async with cluster(make_pm(), peer_config, init=SEEDS) as clients:
            got: list[str] = []

            async def client(http: httpx.AsyncClient, k: int) -> None:
                for i in range(25):
                    r = await http.post(f"/ip/{k}-{i}")
                    assert r.status_code == 200, r.text
                    got.append(r.text)

            async with anyio.create_task_group() as tasks:
                for k in range(9):
                    tasks.start_soon(client, clients[k % 3], k)
            assert len(got) == len(set(got)) == 225


async def test_status_report_and_metrics_of_a_partitioned_cluster(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    memory: MemoryPlugin,
) -> None:
    with anyio.fail_after(20):
        async with cluster(make_pm(), peer_config, init=SEEDS) as (one, _, _):
            assert (await one.post("/ip/a")).text == "10.32.0.1/12"
            status = await one.get("/status")
            assert status.text == (
                "        Service: ipam\n"
                "         Status: ready\n"
                "          Range: 10.32.0.0/12\n"
                "  DefaultSubnet: 10.32.0.0/12\n"
            )
            memory.network.partition([1])
            await anyio.sleep(0.1)  # PeersChanged reaches the actor
            lines = (await one.get("/status/ipam")).text.splitlines()
            assert lines[0] == (
                "00:00:00:00:00:01(peer1)                524288 IPs (50.0% of total) (1 active)"
            )
            far = "262144 IPs (25.0% of total) - unreachable!"
            assert sorted(lines[1:]) == [
                f"00:00:00:00:00:02(peer2)                {far}",
                f"00:00:00:00:00:03(peer3)                {far}",
            ]
            report = (await one.get("/report", headers={"Accept": "application/json"})).json()
            ipam = report["IPAM"]
            assert report["Peer"] == {
                "Name": "00:00:00:00:00:01",
                "NickName": "peer1",
                "Version": "0.1.0",
            }
            assert ipam["Range"] == "10.32.0.0/12" and ipam["RangeNumIPs"] == 1 << 20
            assert ipam["ActiveIPs"] == 1 and ipam["Paxos"] is None
            assert ipam["PendingClaims"] == [] and ipam["PendingAllocates"] == []
            assert sum(e["Size"] for e in ipam["Entries"]) == 1 << 20
            assert {e["Peer"] for e in ipam["Entries"] if not e["IsKnownPeer"]} == {
                "00:00:00:00:00:02",
                "00:00:00:00:00:03",
            }
            assert (await one.get("/report?format=json")).json() == report
            r = await one.get("/report", params={"format": "{{.IPAM.DefaultSubnet}}"})
            assert r.text == "10.32.0.0/12"
            r = await one.get("/report", params={"format": "{{range .IPAM.Entries}}"})
            assert r.status_code == 400
            values = metrics((await one.get("/metrics")).text)
            assert values["weave_ips{local-used}"] == 1
            assert values["weave_max_ips"] == 1 << 20
            assert values["weave_ipam_unreachable_count"] == 2
            assert values["weave_ipam_unreachable_percentage"] == 50.0
            assert values["weave_ipam_pending_allocates"] == 0
            assert values["weavek_allocations_total"] == 1
            assert values["weavek_owned_ips"] == 1 << 19


async def test_waiting_allocation_is_cancelled_when_the_client_disconnects(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: Callable[..., PeerConfig]
) -> None:
    # consensus=3 alone: no quorum, so the allocation waits for ever.
    with anyio.fail_after(20):
        async with cluster(make_pm(), peer_config, n=1, init="consensus=3") as (http,):
            with anyio.move_on_after(0.5):  # the client gives up and closes its connection
                async with httpx.AsyncClient(base_url=http.base_url) as impatient:
                    await impatient.post("/ip/waiting?check-alive=true")
                pytest.fail("the allocation should have waited")

            async def pending() -> list[str]:
                r = await http.get("/report", headers={"Accept": "application/json"})
                return list(r.json()["IPAM"]["PendingAllocates"])

            while await pending():
                await anyio.sleep(0.02)
            assert (await http.get("/status")).text.splitlines()[1] == (
                "         Status: awaiting consensus (quorum: 2, known: 1)"
            )
            values = metrics((await http.get("/metrics")).text)
            assert values["weave_ipam_pending_allocates"] == 0


async def test_group_commit_through_http(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    memory: MemoryPlugin,
) -> None:
    with anyio.fail_after(30):
        async with cluster(make_pm(), peer_config, n=1) as (http,):
            before = memory.applies["1"]

            async def client(k: int) -> None:
                async with httpx.AsyncClient(base_url=http.base_url) as own:
                    for i in range(40):
                        assert (await own.post(f"/ip/{k}-{i}")).status_code == 200

            async with anyio.create_task_group() as tasks:
                for k in range(8):
                    tasks.start_soon(client, k)
            writes = memory.applies["1"] - before
            assert 0 < writes < 320 / 2, writes
            values = metrics((await http.get("/metrics")).text)
            assert values["weavek_allocations_total"] == 320
            assert values["weavek_store_applies_total"] == memory.applies["1"]

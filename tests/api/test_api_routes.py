"""Every route of the HTTP API over real loopback HTTP: codes and bodies as Weave's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pluggy
import pytest

from weavek.node import Peer, PeerConfig

pytestmark = pytest.mark.anyio

JSON = {"Accept": "application/json"}


@pytest.fixture
async def client(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    no_leaks: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    with anyio.fail_after(20):
        async with no_leaks(), Peer(peer_config(1, nickname="one"), make_pm()) as peer:
            host, port = peer.http_address or ("", 0)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                yield http


async def test_allocate_lookup_free_delete(client: httpx.AsyncClient) -> None:
    r = await client.post("/ip/c1")
    assert (r.status_code, r.text) == (200, "10.32.0.1/12")
    assert (await client.post("/ip/c1")).text == "10.32.0.1/12"  # idempotent
    r = await client.post("/ip/c1/10.40.0.0/24")
    assert (r.status_code, r.text) == (200, "10.40.0.1/24")
    assert (await client.get("/ip/c1")).text == "10.32.0.1/12 10.40.0.1/24"  # as allocated
    assert (await client.get("/ip/c1/10.40.0.0/24")).text == "10.40.0.1/24"
    assert (await client.get("/ip/nobody")).text == ""
    r = await client.get("/ip")
    assert r.json() == {"owned": [{"containerid": "c1", "addrs": ["10.32.0.1/12", "10.40.0.1/24"]}]}
    r = await client.delete("/ip/c1/10.40.0.1")
    assert (r.status_code, r.text) == (204, "")
    r = await client.delete("/ip/c1/10.40.0.1")
    assert r.status_code == 400
    assert r.text == "Unable to free: Free: address 10.40.0.1 not found for ID c1\n"
    assert (await client.delete("/ip/c1")).status_code == 204
    r = await client.delete("/ip/c1")
    assert (r.status_code, r.text) == (400, "Delete: no addresses for c1\n")
    assert (await client.get("/ip")).json() == {"owned": None}


async def test_bad_input_is_400_and_changes_nothing(client: httpx.AsyncClient) -> None:
    cases = {
        "/ip/c/10.32.0.1/24": "invalid subnet - 10.32.0.1/24 is not aligned",
        "/ip/c/10.32.0.0/31": "invalid subnet - 10.32.0.0/31 has fewer than 4 addresses",
        "/ip/c/banana/24": "invalid subnet - invalid CIDR",
        "/ip/c/10.32.0.0/x": "invalid subnet - invalid prefix length",
    }
    for path, message in cases.items():
        r = await client.post(path)
        assert r.status_code == 400, path
        assert r.text.startswith(message) and r.text.count("\n") == 1, r.text
    r = await client.post("/ip/c/192.168.0.0/24")
    assert (r.status_code, r.text) == (
        400,
        "range 192.168.0.0/24 out of bounds: 10.32.0.0/12\n",
    )
    assert (await client.get("/ip/c/10.32.0.3/24")).status_code == 400
    assert (await client.put("/ip/c/nonsense/24")).text.startswith("Unable to claim: ")
    assert (await client.delete("/ip/c/nonsense")).text.startswith("Unable to free: ")
    r = await client.delete("/peer/12::34::56")
    assert r.status_code == 400 and "invalid peer name" in r.text
    assert (await client.get("/ip")).json() == {"owned": None}


async def test_claim(client: httpx.AsyncClient) -> None:
    r = await client.put("/ip/c1/10.32.0.9/12")
    assert (r.status_code, r.text) == (204, "")
    assert (await client.get("/ip/c1")).text == "10.32.0.9/12"
    r = await client.put("/ip/c2/10.32.0.9/12")
    assert r.status_code == 400
    assert r.text == "Unable to claim: address 10.32.0.9 is already owned by c1\n"
    r = await client.put("/ip/c3/192.168.1.5/24?check-alive=true&noErrorOnUnknown=true")
    assert r.status_code == 204


async def test_ring_peer_and_info_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/ring")
    assert (r.status_code, r.text) == (200, "")
    assert (await client.get("/ipinfo/defaultsubnet")).text == "10.32.0.0/12"
    assert (await client.get("/ipinfo/tracker")).text == "\n"
    r = await client.delete("/peer/00:00:00:00:00:09")
    assert (r.status_code, r.text) == (200, "0 IPs taken over from 00:00:00:00:00:09\n")
    r = await client.delete("/peer/one")  # our own nickname: nothing to take
    assert r.text == "0 IPs taken over from one\n"
    assert (await client.delete("/peer")).status_code == 204
    # After a reset, allocations are cancelled at once.
    assert (await client.post("/ip/late")).text == "cancelled"
    assert (await client.get("/ring")).text == "cancelled"


async def test_unknown_path_and_wrong_verb(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.put("/ring")).status_code == 405
    assert (await client.patch("/ip/x")).status_code == 405
    assert (await client.post("/status")).status_code == 405


async def test_json_variants(client: httpx.AsyncClient) -> None:
    r = await client.post("/ip/c1", headers=JSON)
    assert r.json() == {"address": "10.32.0.1/12"}
    assert (await client.get("/ip/c1", headers=JSON)).json() == {"addresses": ["10.32.0.1/12"]}
    r = await client.post("/ip/c/10.32.0.1/24", headers=JSON)
    assert r.status_code == 400 and r.json()["error"].startswith("invalid subnet - ")
    r = await client.delete("/peer/::9", headers=JSON)
    assert r.json() == {"peer": "::9", "taken_over": 0}
    r = await client.get("/ipinfo/defaultsubnet", headers=JSON)
    assert r.json() == {"subnet": "10.32.0.0/12"}
    r = await client.get("/status", headers=JSON)
    assert r.json()["Status"] == "ready" and r.json()["ActiveIPs"] == 1
    r = await client.get("/status/ipam", headers=JSON)
    assert r.json() == [
        {
            "Peer": "00:00:00:00:00:01",
            "Nickname": "one",
            "IPs": 1 << 20,
            "Percentage": 100.0,
            "Active": 1,
            "Reachable": True,
        }
    ]

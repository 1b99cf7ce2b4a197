"""The HTTP API of a peer whose store is unavailable: 503 for what cannot be made durable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pluggy
import pytest

from weavek.node import Peer, PeerConfig
from weavek.node.actor import Actor
from weavek.testing.journal_store import JournalPlugin, journal_idents

pytestmark = pytest.mark.anyio


async def test_allocation_gets_503_while_the_store_is_away_and_200_after(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Actor, "store_wait", 0.5)
    service, away = tmp_path / "service", tmp_path / "away"
    service.mkdir()
    config = peer_config(1, persist=f"journal={service}")
    with anyio.fail_after(30):
        async with Peer(config, make_pm(JournalPlugin())) as peer:
            host, port = peer.http_address or ("", 0)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                assert (await http.post("/ip/kept")).text == "10.32.0.1/12"
                healthy = (await http.get("/status")).text
                service.rename(away)  # the store's service goes away, its data kept

                r = await http.post("/ip/new")
                assert r.status_code == 503
                assert r.text.startswith("store unavailable: cannot open ")
                assert r.text.endswith(": No such file or directory\n")
                assert r.text.count("\n") == 1
                r = await http.post("/ip/json", headers={"Accept": "application/json"})
                assert r.status_code == 503
                assert r.json()["error"].startswith("store unavailable: ")

                # Lookups, status and report keep answering.
                assert (await http.get("/ip/kept")).text == "10.32.0.1/12"
                status = (await http.get("/status")).text
                assert status.startswith(healthy)
                store_line = status[len(healthy) :]
                assert store_line.startswith("          Store: journal: unavailable: cannot open")
                assert store_line.endswith("(2 changes not yet stored)\n")
                report = (await http.get("/report", headers={"Accept": "application/json"})).json()
                store = report["Services"][0]
                assert store["Family"] == "store" and store["Name"] == "journal"
                assert not store["Healthy"] and store["Waiting"] == 2
                assert store["Problem"].startswith("unavailable: cannot open")
                as_json = (await http.get("/status", headers={"Accept": "application/json"})).json()
                assert as_json["Services"] == report["Services"]
                metrics = (await http.get("/metrics")).text
                assert 'weavek_service_up{family="store",name="journal"} 0.0' in metrics
                assert "weavek_store_unwritten 2.0" in metrics

                away.rename(service)
                r = await http.post("/ip/new")  # the same ident: the same address, now durable
                assert r.status_code == 200 and r.text == "10.32.0.2/12"
                assert journal_idents(service)["new"] == ["10.32.0.2/12"]
                assert (await http.get("/status")).text == healthy
                report = (await http.get("/report", headers={"Accept": "application/json"})).json()
                assert [s["Healthy"] for s in report["Services"]] == [True, True]
                metrics = (await http.get("/metrics")).text
                assert 'weavek_service_up{family="store",name="journal"} 1.0' in metrics
                assert 'weavek_service_up{family="transport",name="memory"} 1.0' in metrics
                assert "weavek_store_unwritten 0.0" in metrics

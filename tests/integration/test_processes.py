"""Several peers as separate processes on loopback: consensus, allocation, restart, rmpeer, reset.

Every peer is ``python -m weavek launch --foreground`` with its own free
loopback ports and weavedb file; the tests talk to them over HTTP only, as
a user's scripts would.
"""

from __future__ import annotations

import ipaddress
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from peers import Peers, owned_addresses, wait_for_same_ring, wait_until

RANGE = "10.32.0.0/12"
SMALL = "10.40.0.0/26"  # 64 addresses: small enough to fill


def names(n: int) -> list[str]:
    return [f"00:00:00:00:00:0{i}" for i in range(1, n + 1)]


def test_consensus_forms_and_every_peer_allocates_uniquely(peers: Peers) -> None:
    a = peers.start("a", name="::1", init="consensus=3")
    # Consensus is deferred until the first request that needs the ring.
    assert a.status() == "idle"
    assert a.report()["IPAM"]["Entries"] == []
    try:
        a.get("/ring", timeout=1)
        raise AssertionError("prime answered with one peer of three")
    except httpx.TimeoutException:
        pass
    wait_until(
        lambda: a.status() == "awaiting consensus (quorum: 2, known: 1)",
        10,
        "a lone peer awaiting consensus",
    )
    paxos = a.report()["IPAM"]["Paxos"]
    assert paxos is not None and paxos["Quorum"] == 2, paxos

    b = peers.start("b", name="::2", init="consensus=3", peers=[a.listen])
    c = peers.start("c", name="::3", init="consensus=3", peers=[a.listen])
    cluster = [a, b, c]
    with ThreadPoolExecutor(3) as pool:
        primes = list(pool.map(lambda p: p.get("/ring", timeout=30), cluster))
    assert [(r.status_code, r.text) for r in primes] == [(200, "")] * 3
    assert [p.status() for p in cluster] == ["ready"] * 3

    # 50 allocations per peer, all 150 at once.
    per_peer = 50
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(
                lambda p: p.allocate_many([f"{p.nickname}-{i}" for i in range(per_peer)]),
                cluster,
            )
        )
    addresses = [addr for got in results for addr in got.values()]
    assert len(addresses) == 3 * per_peer
    assert len(set(addresses)) == len(addresses), "an address was given twice"
    universe = ipaddress.ip_network(RANGE)
    for addr in addresses:
        assert addr.endswith("/12")
        assert ipaddress.ip_address(addr.split("/")[0]) in universe
    # Each ident keeps its address: lookup and a second allocation agree.
    for peer, got in zip(cluster, results, strict=True):
        for ident in list(got)[:5]:
            assert peer.get(f"/ip/{ident}").text == got[ident]
            assert peer.allocate(ident) == got[ident]
        assert {i: a[0] for i, a in peer.owned().items()} == got

    wait_for_same_ring(cluster, 30)
    for peer in cluster:
        report = peer.report()
        assert report["Peer"]["Name"] == f"00:00:00:00:00:0{peer.name[-1]}"
        assert report["Peer"]["NickName"] == peer.nickname
        ipam = report["IPAM"]
        assert ipam["Range"] == RANGE
        assert ipam["RangeNumIPs"] == universe.num_addresses
        assert ipam["DefaultSubnet"] == RANGE
        assert ipam["ActiveIPs"] == per_peer
        assert ipam["Paxos"] is None
        assert ipam["PendingClaims"] == [] and ipam["PendingAllocates"] == []
        assert sum(e["Size"] for e in ipam["Entries"]) == universe.num_addresses
        assert {e["Peer"] for e in ipam["Entries"]} <= set(names(3))
        for entry in ipam["Entries"]:
            assert set(entry) >= {"Token", "Size", "Peer", "Nickname", "IsKnownPeer", "Version"}

        metrics = peer.metrics()
        assert metrics['weave_ips{state="local-used"}'] == per_peer
        assert metrics["weave_max_ips"] == universe.num_addresses
        assert metrics["weave_ipam_unreachable_count"] == 0
        assert metrics["weave_ipam_pending_allocates"] == 0
        assert metrics["weavek_allocations_total"] == per_peer

        lines = peer.get("/status/ipam").text.splitlines()
        assert lines[0].startswith(f"{report['Peer']['Name']}({peer.nickname})")
        assert lines[0].endswith(f"({per_peer} active)")


def test_sigkill_mid_stream_loses_no_acknowledged_allocation(peers: Peers) -> None:
    seeds = "seed=::1,::2"
    a = peers.start("a", name="::1", init=seeds)
    b = peers.start("b", name="::2", init=seeds, peers=[a.listen])
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def allocate(ident: str) -> None:
        try:
            response = b.post(f"/ip/{ident}", timeout=10)
        except httpx.HTTPError:
            return  # the peer died under this request: not acknowledged
        if response.status_code == 200 and response.text.strip() not in ("", "cancelled"):
            with lock:
                acknowledged[ident] = response.text.strip()
                if len(acknowledged) >= 150:
                    enough.set()

    with ThreadPoolExecutor(24) as pool:
        for i in range(2000):
            pool.submit(allocate, f"k{i}")
        assert enough.wait(30), f"only {len(acknowledged)} allocations acknowledged"
        b.kill()  # SIGKILL, with requests still in flight
    assert not b.alive
    # Replies the peer wrote before it died may still be read after the kill: they count too.
    assert len(acknowledged) < 2000, "the peer was killed after every request was answered"
    assert len(set(acknowledged.values())) == len(acknowledged)

    b.restart()
    lost = {}
    for ident, addr in acknowledged.items():
        found = b.get(f"/ip/{ident}", timeout=5).text
        if found != addr:
            lost[ident] = (addr, found)
    assert not lost, f"{len(lost)} acknowledged allocations changed after SIGKILL: {lost}"
    # New allocations never reuse an acknowledged address.
    fresh = b.allocate_many([f"after{i}" for i in range(30)])
    assert not set(fresh.values()) & set(acknowledged.values())
    assert b.status() == "ready"


def test_rmpeer_gives_a_killed_peers_space_to_a_survivor(peers: Peers) -> None:
    seeds = "seed=::1,::2,::3"
    a = peers.start("a", name="::1", init=seeds, ipalloc_range=SMALL)
    b = peers.start("b", name="::2", init=seeds, ipalloc_range=SMALL, peers=[a.listen])
    c = peers.start("c", name="::3", init=seeds, ipalloc_range=SMALL, peers=[a.listen])
    cluster = [a, b, c]
    for peer in cluster:
        peer.allocate(f"first-{peer.nickname}")
    wait_for_same_ring(cluster, 20)
    entries = a.entries()
    a_before = owned_addresses(entries, names(3)[0], SMALL)
    c_before = owned_addresses(entries, names(3)[2], SMALL)
    c_size = sum(e["Size"] for e in entries if e["Peer"] == names(3)[2])
    assert c_before and c_size > 0

    c.kill()
    response = a.delete(f"/peer/{names(3)[2]}")
    assert response.status_code == 200, response.text
    assert response.text == f"{c_size} IPs taken over from {names(3)[2]}\n"
    a_after = owned_addresses(a.entries(), names(3)[0], SMALL)
    assert a_after == a_before | c_before
    ipam = a.json("/status/ipam")
    assert {row["Peer"] for row in ipam} == set(names(2)), ipam

    # The survivor can now fill all of it, the dead peer's old space included.
    want = len(a_after) - 1  # one is already allocated
    got = a.allocate_many([f"fill{i}" for i in range(want)], timeout=15)
    assert c_before <= {addr.split("/")[0] for addr in got.values()}
    # The other survivor learns the news and never hands out the same addresses.
    wait_for_same_ring([a, b], 20)
    on_b = b.allocate_many([f"b{i}" for i in range(5)])
    assert not set(on_b.values()) & set(got.values())


def test_reset_hands_the_ranges_to_a_live_heir(peers: Peers) -> None:
    seeds = "seed=::1,::2"
    a = peers.start("a", name="::1", init=seeds, ipalloc_range=SMALL)
    b = peers.start("b", name="::2", init=seeds, ipalloc_range=SMALL, peers=[a.listen])
    b.allocate("on-b")
    wait_until(lambda: all(r["Reachable"] for r in a.json("/status/ipam")), 20, "a to see b")
    response = b.delete("/peer")
    assert response.status_code == 204, response.text

    def heir_owns_all() -> bool:
        rows = a.json("/status/ipam")
        return [(r["Peer"], r["IPs"]) for r in rows] == [(names(1)[0], 64)]

    wait_until(heir_owns_all, 20, "a to own the whole range")
    assert a.get("/status/ipam").text.startswith(f"{names(1)[0]}(a)")
    assert "100.0% of total" in a.get("/status/ipam").text
    # The reset peer answers, but no longer allocates; the heir allocates anywhere.
    assert b.post("/ip/again", timeout=5).text == "cancelled"
    assert b.get("/ip/on-b").text != ""  # lookups still work
    got = a.allocate_many([f"x{i}" for i in range(61)], timeout=15)
    assert len(set(got.values())) == 61

"""Peers on separate "hosts": network namespaces on a bridge, one peer per namespace.

Each peer listens on its host's address (``10.99.0.1N:6783``) and dials the
others there; its HTTP API is on the namespace's own ``127.0.0.1:6784``,
reached through the host's Unix-socket relay. Partitions are real: a bridge
port set down, or an nft drop rule inside one namespace.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
from hosts import Host, Network
from peers import PeerProcess, Peers, owned_addresses, wait_for_same_ring, wait_until

SMALL = "10.40.0.0/26"  # 64 addresses, 62 allocatable: easy to exhaust
WAITING = "waiting for IP(s) to become available"


def peer_name(i: int) -> str:
    return f"00:00:00:00:00:0{i}"


def all_reachable(cluster: list[PeerProcess]) -> Callable[[], bool]:
    def check() -> bool:
        for peer in cluster:
            rows = peer.json("/status/ipam")
            if len(rows) != len(cluster) or not all(r["Reachable"] for r in rows):
                return False
        return True

    return check


PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 6783), timeout=1).close()
    print("connected")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
except OSError as exc:
    print(type(exc).__name__)
"""


def probe(host: Host, address: str) -> str:
    """Try a TCP connection from inside ``host`` to ``address:6783``: how did it end?"""
    return host.run(sys.executable, "-c", PROBE, address).strip()


def no_address_twice(cluster: list[PeerProcess]) -> list[str]:
    everything = [addr for p in cluster for addrs in p.owned().values() for addr in addrs]
    assert len(everything) == len(set(everything)), sorted(everything)
    return everything


def test_a_partitioned_host_keeps_its_space_and_the_rings_converge_after_healing(
    peers: Peers, network: Callable[[int], Network]
) -> None:
    net = network(3)
    h3 = net.hosts[2]
    seeds = "seed=::1,::2,::3"
    cluster = [
        peers.start(
            f"h{h.index}",
            name=f"::{h.index}",
            init=seeds,
            ipalloc_range=SMALL,
            host=h,
            peers=[o.address for o in net.hosts if o.index < h.index],
            wait=False,
        )
        for h in net.hosts
    ]
    for peer in cluster:
        peer.wait_ready()
    p1, p2, p3 = cluster
    wait_until(all_reachable(cluster), 20, "every peer to reach every other")
    for peer in cluster:
        peer.allocate(f"before-{peer.nickname}")
    entries = p1.entries()
    own3 = owned_addresses(entries, peer_name(3), SMALL)
    assert own3, entries

    net.set_port(h3, up=False)  # h3 is cut off from h1 and h2
    # Both sides keep allocating from the space they own.
    majority = {**p1.allocate_many(["m1", "m2", "m3"]), **p2.allocate_many(["m4", "m5"])}
    assert len(set(majority.values())) == 5
    # The isolated side fills its own space (one address is in use already)...
    isolated = p3.allocate_many([f"iso{i}" for i in range(len(own3) - 1)], timeout=10)
    assert {a.split("/")[0] for a in isolated.values()} <= own3
    # ...and then cannot get more: the request waits for space nobody can give.
    outcome: dict[str, Any] = {}

    def one_more() -> None:
        try:
            outcome["response"] = p3.post("/ip/one-more", timeout=4)
        except httpx.TimeoutException as exc:
            outcome["timeout"] = exc

    waiter = threading.Thread(target=one_more)
    waiter.start()
    # (It still owns space, so it is never "all IP ranges owned by unreachable peers".)
    wait_until(lambda: p3.status() == WAITING, 3, "the isolated peer to say it waits")
    pending = p3.report()["IPAM"]["PendingAllocates"]
    assert any(item.startswith("one-more ") for item in pending), pending
    waiter.join(10)
    assert "timeout" in outcome, f"an allocation succeeded while partitioned: {outcome}"
    # The client gave up: the request is cancelled, not left to be granted to nobody.
    wait_until(lambda: p3.report()["IPAM"]["PendingAllocates"] == [], 5, "the request to go")

    net.set_port(h3, up=True)
    # Once healed, the isolated peer gets space from the others again.
    healed = p3.allocate("after-heal", timeout=40)
    assert healed.split("/")[0] not in own3
    assert p3.get("/ip/one-more").text == ""  # the abandoned request got nothing, even now
    wait_for_same_ring(cluster, 40)
    wait_until(lambda: [p.status() for p in cluster] == ["ready"] * 3, 10, "all ready")
    everything = no_address_twice(cluster)
    assert len(everything) == 3 + 5 + len(isolated) + 1


def test_a_space_request_is_relayed_around_a_cut_link(
    peers: Peers, network: Callable[[int], Network]
) -> None:
    net = network(3)
    h1, h2, h3 = net.hosts
    # h1 and h3 both reach h2, but not each other.
    h1.cut_from(h3)
    # Nothing listens yet: a reachable host refuses at once, a cut one never answers.
    assert probe(h1, h2.address) == "refused"
    assert probe(h3, h2.address) == "refused"
    assert probe(h1, h3.address) == "timeout"
    assert probe(h3, h1.address) == "timeout"
    seeds = "seed=::3"  # h3 owns the whole range: the only donor there is
    p3 = peers.start("h3", name="::3", init=seeds, ipalloc_range=SMALL, host=h3, wait=False)
    p2 = peers.start(
        "h2",
        name="::2",
        init=seeds,
        ipalloc_range=SMALL,
        host=h2,
        peers=[h1.address, h3.address],
        wait=False,
    )
    p1 = peers.start("h1", name="::1", init=seeds, ipalloc_range=SMALL, host=h1, wait=False)
    # h2 dials both; h1 and h3 learn of each other from topology reports and fail to connect.
    for peer in (p1, p2, p3):
        peer.wait_ready()
    p3.allocate("on-h3")
    assert p1.get("/ring", timeout=20).status_code == 200  # the ring reached h1 through h2

    got = p1.allocate("relayed", timeout=30)
    entries = p1.entries()
    assert got.split("/")[0] in owned_addresses(entries, peer_name(1), SMALL)
    assert {e["Peer"] for e in entries} == {peer_name(1), peer_name(3)}
    assert p1.json("/status/ipam")[0]["IPs"] > 0
    # Never a direct connection between h1 and h3: the request and the donation went via h2.
    for peer, other in ((p1, peer_name(3)), (p3, peer_name(1))):
        assert f"connected to {other}" not in peer.log_text(), peer.log_tail()
    wait_for_same_ring([p1, p2, p3], 30)
    no_address_twice([p1, p2, p3])

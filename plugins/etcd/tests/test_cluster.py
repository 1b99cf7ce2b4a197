"""Real peers on a real etcd cluster: members going away, the whole cluster going away, moving.

Peers are ``weavek launch`` processes with ``--persist etcd=...`` on
loopback; etcd members run on loopback with their data in /dev/shm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from peer_process import PeerProcess

from weavek.core.effects import Allocated, SaveRing
from weavek.interfaces import StoreUnavailable
from weavek.testing.etcd import EtcdCluster
from weavek.testing.store_contract import PEER_A, make_ring, v4
from weavek_etcd import EtcdStore

NAME = "02:00:00:00:00:0a"


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[list[PeerProcess]]:
    started: list[PeerProcess] = []
    try:
        yield started
    finally:
        for peer in started:
            peer.close()


def launch(machines: list[PeerProcess], tmp_path: Path, etcd: EtcdCluster) -> PeerProcess:
    peer = PeerProcess(tmp_path, f"machine-{len(machines)}", NAME, etcd.endpoints)
    machines.append(peer)
    return peer.wait_ready()


def allocate_all(
    peer: PeerProcess, idents: list[str], after: threading.Event | None = None
) -> dict[str, str]:
    """Allocate with 8 concurrent clients; every answer must be 200.

    With ``after``, also check that some answers came after it was set.
    """
    late = []

    def one(ident: str) -> tuple[str, str]:
        answer = peer.allocate(ident)
        assert answer.status_code == 200, (ident, answer.status_code, answer.text, peer.tail())
        if after is not None and after.is_set():
            late.append(ident)
        return ident, answer.text.strip()

    with ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(one, idents))
    assert after is None or late, "every allocation was done before the event"
    return got


@pytest.mark.anyio
async def test_a_store_keeps_writing_while_members_stop(etcd3: EtcdCluster) -> None:
    # The store fails over between endpoints; a batch whose commit was in doubt is
    # written again under the same key, so nothing is lost and nothing doubled.
    written: list[str] = []
    outages = 0
    async with EtcdStore(etcd3.endpoints, peer=7) as store:
        await store.load()
        await store.apply([SaveRing(make_ring(), PEER_A)])
        stopper = threading.Thread(
            target=lambda: (time.sleep(0.3), etcd3.members[0].stop(), time.sleep(0.5),
                            etcd3.members[0].start(), etcd3.members[0].wait_healthy(),
                            time.sleep(0.3), etcd3.members[1].kill()),
        )  # fmt: skip
        stopper.start()
        i = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline or stopper.is_alive():
            batch = [Allocated(f"c{i + j}", v4(i + j + 1), True) for j in range(4)]
            while True:
                try:
                    await store.apply(batch)
                    break
                except StoreUnavailable:
                    outages += 1  # a leader election: retried, as the peer does
                    await anyio.sleep(0.05)
            written += [a.ident for a in batch]
            i += 4
        stopper.join()
    async with EtcdStore(etcd3.endpoints, peer=7) as store:
        snap = await store.load()
    assert snap is not None and sorted(snap.owned) == sorted(written)
    print(f"\n{len(written)} allocations across two member outages, {outages} retries")


def test_one_member_down_loses_nothing_and_a_new_machine_gets_it_all(
    etcd3: EtcdCluster, machines: list[PeerProcess], tmp_path: Path
) -> None:
    first = launch(machines, tmp_path, etcd3)
    idents = [f"c{i:04d}" for i in range(1500)]
    stopped = threading.Event()
    # The member the store talks to first, while the clients allocate.
    stopper = threading.Timer(0.3, lambda: (etcd3.members[0].stop(), stopped.set()))
    stopper.start()
    try:
        got = allocate_all(first, idents, after=stopped)
    finally:
        stopper.join()
    assert not etcd3.members[0].running
    assert len(set(got.values())) == len(idents)
    more = allocate_all(first, [f"d{i}" for i in range(50)])  # allocations continue
    got |= more
    first.close()  # the machine dies (SIGKILL): its disk is gone with it

    second = launch(machines, tmp_path, etcd3)  # new run dir, same --name, same etcd
    for ident, address in got.items():
        answer = second.lookup(ident)
        assert answer.status_code == 200 and answer.text.strip() == address, (ident, answer.text)
    assert allocate_all(second, ["e0"])["e0"] not in got.values()


def test_whole_cluster_down_refuses_allocations_then_resumes(
    etcd3: EtcdCluster, machines: list[PeerProcess], tmp_path: Path
) -> None:
    peer = launch(machines, tmp_path, etcd3)
    before = allocate_all(peer, [f"c{i}" for i in range(20)])
    etcd3.stop()
    refused = peer.allocate("during")
    assert refused.status_code == 503, (refused.status_code, refused.text)
    assert "etcd unreachable" in refused.text and "\n" not in refused.text.strip()
    # Lookups go on from memory, and status says what is wrong.
    assert peer.lookup("c1").text.strip() == before["c1"]
    status = peer.client.get("/status").text
    assert "etcd unreachable" in status, status
    etcd3.start()
    # The held change is written once etcd is back; asking again gets the same answer.
    deadline = time.monotonic() + 30
    while True:
        answer = peer.allocate("during")
        if answer.status_code == 200:
            break
        assert time.monotonic() < deadline, (answer.status_code, answer.text, peer.tail())
        time.sleep(0.2)
    after = allocate_all(peer, [f"d{i}" for i in range(20)])
    everything = before | after | {"during": answer.text.strip()}
    peer.close()
    moved = launch(machines, tmp_path, etcd3)
    for ident, address in everything.items():
        assert moved.lookup(ident).text.strip() == address, ident


def test_range_and_name_changes(
    etcd: EtcdCluster, machines: list[PeerProcess], tmp_path: Path
) -> None:
    first = launch(machines, tmp_path, etcd)
    old = allocate_all(first, ["c1", "c2"])
    first.close()
    # Another range under the same name: the old data is discarded, with a log line.
    ranged = PeerProcess(
        tmp_path, "ranged", NAME, etcd.endpoints, "--ipalloc-range", "10.40.0.0/16"
    )
    machines.append(ranged)
    ranged.wait_ready()
    assert "Deleting persisted data for IPAM range 10.32.0.0/12" in ranged.tail(200)
    assert ranged.lookup("c1").text.strip() == ""  # nothing held any more
    assert allocate_all(ranged, ["c3"])["c3"].startswith("10.40.")
    ranged.close()
    # Another name: another prefix, empty; the first name's data is not ours to delete.
    other = PeerProcess(tmp_path, "other", "02:00:00:00:00:0b", etcd.endpoints)
    machines.append(other)
    other.wait_ready()
    assert other.lookup("c3").text.strip() == ""
    assert allocate_all(other, ["c1"])["c1"] == old["c1"]  # a fresh peer, the same first address
    other.close()
    back = PeerProcess(tmp_path, "back", NAME, etcd.endpoints, "--ipalloc-range", "10.40.0.0/16")
    machines.append(back)
    back.wait_ready()
    assert back.lookup("c3").text.strip().startswith("10.40.")


def test_a_peer_started_before_etcd_comes_up_when_etcd_does(
    etcd: EtcdCluster, machines: list[PeerProcess], tmp_path: Path
) -> None:
    etcd.stop()
    peer = PeerProcess(tmp_path, "early", NAME, etcd.endpoints)
    machines.append(peer)
    time.sleep(1.5)
    assert peer.proc.poll() is None, f"the peer gave up at once:\n{peer.tail()}"
    assert "etcd unreachable" in peer.tail(), peer.tail()
    etcd.start()
    peer.wait_ready()
    assert allocate_all(peer, ["c1"])["c1"] == "10.32.0.1/12"

"""What a peer refuses on its peer port, and that it keeps serving afterwards.

Peers from another cluster (other seeds, another range), a wrong password,
and things that are not peers at all (garbage, an oversized frame, a client
that says nothing) must each be turned away with a log line that says why,
while the peer keeps running and answering HTTP.
"""

from __future__ import annotations

import socket
import struct
import time
from functools import partial

import httpx
import pytest
from peers import PeerProcess, Peers, wait_until


def keeps_serving(*cluster: PeerProcess) -> None:
    for peer in cluster:
        assert peer.alive, peer.log_tail()
        assert peer.get("/status").status_code == 200


def no_tracebacks(*cluster: PeerProcess) -> None:
    for peer in cluster:
        log = peer.log_text()
        if "Traceback" not in log:
            continue
        raise AssertionError(f"a traceback in the log of {peer}:\n{peer.log_tail()}")


def says_why(peer: PeerProcess, other: str, reason: str) -> bool:
    """``peer`` logged that it refused ``other`` for ``reason``, or that ``other`` did."""
    for line in peer.log_text().splitlines():
        if "weavek.tcp" in line and reason in line:
            ours = f"refusing connection to {other}: {reason}" in line
            theirs = line.split("weavek.tcp: ")[-1].startswith(f"{other} at ")
            if ours or (theirs and f"closed the connection: {reason}" in line):
                return True
    return False


def ring_peers(peer: PeerProcess) -> set[str]:
    return {row["Peer"] for row in peer.json("/status/ipam")}


@pytest.mark.parametrize(
    ("first", "second", "says"),
    [
        (
            ("::1", "seed=::1", "10.32.0.0/12"),
            ("::2", "seed=::2", "10.32.0.0/12"),
            "IP allocation was seeded by different peers",
        ),
        (
            ("::1", "seed=::1,::2", "10.32.0.0/12"),
            ("::2", "seed=::1,::2", "10.40.0.0/16"),
            "Incompatible IP allocation ranges",
        ),
    ],
    ids=["other-seeds", "other-range"],
)
def test_a_peer_of_another_cluster_is_refused(
    peers: Peers, first: tuple[str, str, str], second: tuple[str, str, str], says: str
) -> None:
    a = peers.start("a", name=first[0], init=first[1], ipalloc_range=first[2])
    a.allocate("mine")
    b = peers.start("b", name=second[0], init=second[1], ipalloc_range=second[2], peers=[a.listen])
    b.allocate("mine")
    # Each side logs why: its own refusal, or the other's reason when that came first
    # (the refusing side closes the connection telling the other why).
    for me, other in ((a, "00:00:00:00:00:02(b)"), (b, "00:00:00:00:00:01(a)")):
        wait_until(partial(says_why, me, other, says), 20, f"{me} to log why", interval=0.1)
    # Each keeps its own ring and goes on serving.
    keeps_serving(a, b)
    if first[1] != second[1]:  # separately seeded: neither ring ever took in the other
        assert ring_peers(a) == {"00:00:00:00:00:01"}
        assert ring_peers(b) == {"00:00:00:00:00:02"}
    assert a.report()["IPAM"]["Range"] == first[2]
    assert b.report()["IPAM"]["Range"] == second[2]
    assert a.allocate("more") != ""
    assert b.allocate("more") != ""
    assert [a.status(), b.status()] == ["ready", "ready"]
    no_tracebacks(a, b)


def test_a_wrong_password_is_refused_and_no_ring_is_exchanged(peers: Peers) -> None:
    a = peers.start("a", name="::1", init="consensus=2", password="right horse battery")
    b = peers.start("b", name="::2", init="consensus=2", password="wrong horse", peers=[a.listen])
    for peer in (a, b):
        assert "wrong password?" in peer.wait_for_log("authentication failed")
    # Neither can reach consensus with the other.
    for peer in (a, b):
        with pytest.raises(httpx.TimeoutException):
            peer.get("/ring", timeout=1.5)
        assert peer.status() == "awaiting consensus (quorum: 2, known: 1)"
        assert peer.report()["IPAM"]["Entries"] == []
    keeps_serving(a, b)
    # The right password gets in: a third peer and the first reach consensus.
    right = "right horse battery"
    c = peers.start("c", name="::3", init="consensus=2", password=right, peers=[a.listen])
    assert c.get("/ring", timeout=30).status_code == 200
    assert a.get("/ring", timeout=30).status_code == 200
    assert ring_peers(a) <= {"00:00:00:00:00:01", "00:00:00:00:00:03"}
    assert b.status() == "awaiting consensus (quorum: 2, known: 1)"
    keeps_serving(a, b, c)
    no_tracebacks(a, b, c)


def _peer_closes(sock: socket.socket, timeout: float) -> bool:
    """True once the peer closes ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_garbage_oversized_frames_and_silent_clients_are_dropped(peers: Peers) -> None:
    a = peers.start("a", name="::1", init="seed=::1")
    host, port = a.listen.split(":")
    addr = (host, int(port))
    # A client that connects and says nothing: dropped at the handshake deadline (10 s).
    silent = socket.create_connection(addr)
    started = time.monotonic()
    try:
        # Garbage in a frame of acceptable size: not a hello.
        with socket.create_connection(addr) as junk:
            junk.sendall(struct.pack(">I", 32) + b"\x13" * 32)
            assert _peer_closes(junk, 5)
        a.wait_for_log("bad magic")
        # A length prefix far beyond the limit: refused before anything is buffered.
        with socket.create_connection(addr) as huge:
            huge.sendall(struct.pack(">I", 0x7FFFFFF0) + b"x" * 1024)
            assert _peer_closes(huge, 5)
        a.wait_for_log("exceeds the limit")
        # Plain text, as a port scanner or an HTTP client would send.
        with socket.create_connection(addr) as http:
            http.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _peer_closes(http, 5)
        keeps_serving(a)
        # A real peer still gets in while the silent client hangs on.
        b = peers.start("b", name="::2", init="seed=::1", peers=[a.listen])
        wait_until(lambda: ring_peers(b) == {"00:00:00:00:00:01"}, 20, "b to learn the ring")
        assert b.allocate("x") != ""
        assert _peer_closes(silent, 15), "the silent client was never dropped"
        assert time.monotonic() - started >= 9  # at the deadline, not before
        a.wait_for_log("timed out")
    finally:
        silent.close()
    keeps_serving(a, b)
    assert a.allocate("still") != ""
    no_tracebacks(a, b)

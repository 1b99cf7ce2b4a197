"""The sans-IO mesh: topology table, routes, reachability, dedup, fan-out, back-off."""

from __future__ import annotations

import random

import pytest

from weavek_tcp.dialer import parse_address
from weavek_tcp.mesh import Backoff, SeenCache, TopologyTable, gossip_fanout
from weavek_tcp.messages import Neighbour, Topology


def report(origin: int, seq: int, *neighbours: int, port: int = 7000) -> Topology:
    return Topology(
        origin,
        seq,
        f"n{origin}",
        tuple(Neighbour(n, "127.0.0.1", port + n) for n in neighbours),
    )


def test_newer_reports_replace_older_ones_and_only_news_is_passed_on() -> None:
    t = TopologyTable(1, "a", seq=100)
    assert t.merge(report(2, 5, 1))
    assert not t.merge(report(2, 5, 1))
    assert not t.merge(report(2, 4))
    assert t.merge(report(2, 6, 1, 3))
    assert t.reports[2].seq == 6
    assert t.nickname(2) == "n2" and t.nickname(9) == ""


def test_a_report_of_ours_newer_than_our_own_makes_us_jump_past_it() -> None:
    t = TopologyTable(1, "a", seq=100)
    assert not t.merge(report(1, 500))
    assert t.set_own([]).seq == 502


def test_routes_go_through_the_first_hop_of_a_shortest_path() -> None:
    # 1 - 2 - 3 - 4, and 1 - 5 - 4: 4 is two hops away through 5.
    t = TopologyTable(1, "a", seq=0)
    for r in (report(2, 1, 1, 3), report(3, 1, 2, 4), report(4, 1, 3, 5), report(5, 1, 1, 4)):
        t.merge(r)
    assert t.routes({2, 5}) == {2: 2, 5: 5, 3: 2, 4: 5}


def test_an_edge_counts_only_when_both_ends_report_it() -> None:
    t = TopologyTable(1, "a", seq=0)
    t.merge(report(2, 1, 1, 3))  # 2 says it is connected to 3 ...
    assert t.routes({2}) == {2: 2}  # ... but 3 has not said so
    t.merge(report(3, 1, 2))
    assert t.routes({2}) == {2: 2, 3: 2}


def test_our_own_edges_are_our_live_connections() -> None:
    t = TopologyTable(1, "a", seq=0)
    t.merge(report(2, 1, 1, 3))
    t.merge(report(3, 1, 2))
    assert t.routes(set()) == {}  # reports listing us do not make a connection
    assert t.routes({3}) == {3: 3, 2: 3}


def test_addresses_come_from_the_neighbours_reports() -> None:
    t = TopologyTable(1, "a", seq=0)
    t.merge(report(2, 1, 3))
    t.merge(report(4, 9, 3, port=8000))
    assert t.addresses(3) == [("127.0.0.1", 8003), ("127.0.0.1", 7003)]
    t.merge(Topology(5, 1, "", (Neighbour(6, "10.0.0.6", 0),)))
    assert t.addresses(6) == []  # port 0: it accepts no connections


def test_forget_drops_the_reports_of_peers_not_kept() -> None:
    t = TopologyTable(1, "a", seq=0)
    t.merge(report(2, 1))
    t.merge(report(3, 1))
    t.forget({2})
    assert set(t.reports) == {2}


def test_seen_cache_says_new_once_and_stays_bounded() -> None:
    seen = SeenCache(capacity=3)
    assert seen.add((1, 1)) and not seen.add((1, 1))
    for i in range(2, 6):
        seen.add((1, i))
    assert seen.add((1, 1))  # evicted, the oldest


@pytest.mark.parametrize(
    ("n", "k"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (8, 7), (100, 13)]
)
def test_gossip_fanout_is_2_log2_n_plus_1(n: int, k: int) -> None:
    assert gossip_fanout(n) == k


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    rng = random.Random(1)
    b = Backoff(0.5, 4.0)
    delays = [b.next(rng) for _ in range(6)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 4, 4], strict=True):
        assert 0.75 * base <= delay <= 1.25 * base
    b.reset()
    assert b.next(rng) <= 0.625


@pytest.mark.parametrize(
    ("text", "addr"),
    [
        ("host", ("host", 6783)),
        ("10.0.0.1:7000", ("10.0.0.1", 7000)),
        ("[::1]:7000", ("::1", 7000)),
        ("[::1]", ("::1", 6783)),
        ("fe80::1", ("fe80::1", 6783)),
    ],
)
def test_peer_addresses_parse(text: str, addr: tuple[str, int]) -> None:
    assert parse_address(text) == addr

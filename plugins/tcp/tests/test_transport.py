"""Real transports on loopback ports: delivery, topology, relaying, re-dialling, conflicts."""

from __future__ import annotations

import logging

import anyio
import pytest
from tcp_helpers import free_port, handshaken_raw_client, node, running, timeout

from weavek.core.events import GossipReceived, Via

pytestmark = pytest.mark.anyio


@timeout(15)
async def test_broadcast_unicast_and_gossip_among_four_peers() -> None:
    a = node(1)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        c = await stack.enter_async_context(node(3, peers=[b.addr]))
        d = await stack.enter_async_context(node(4, peers=[c.addr]))
        for t, others in ((a, (2, 3, 4)), (b, (1, 3, 4)), (c, (1, 2, 4)), (d, (1, 2, 3))):
            await t.inbox.reach(*others)
            # Everyone dials whom it learns of. Let duplicate connections settle first:
            # a message sent on the losing one as it closes is lost (sends are best effort).
            await t.inbox.wait(lambda t=t: len(t.links) == 3)
        await anyio.sleep(0.2)

        await a.broadcast(b"to all")
        for t in (b, c, d):
            await t.inbox.wait(lambda t=t: bool(t.inbox.received(Via.BROADCAST)))
        await d.send(1, b"to a")
        await a.inbox.wait(lambda: bool(a.inbox.received(Via.UNICAST)))
        await d.gossip(b"gossip")
        for t in (a, b, c):
            await t.inbox.wait(lambda t=t: bool(t.inbox.received(Via.GOSSIP)))
        await anyio.sleep(0.3)  # anything relayed twice would have arrived by now

        for t in (b, c, d):
            assert t.inbox.received(Via.BROADCAST) == [GossipReceived(1, b"to all", Via.BROADCAST)]
        assert a.inbox.received(Via.UNICAST) == [GossipReceived(4, b"to a", Via.UNICAST)]
        for t in (a, b, c):  # 3 neighbours: fan-out 3, and nobody relays gossip
            assert t.inbox.received(Via.GOSSIP) == [GossipReceived(4, b"gossip", Via.GOSSIP)]
        assert a.inbox.received(Via.BROADCAST) == []  # our own broadcast never comes back


@timeout(10)
async def test_a_peer_learns_of_its_neighbours_neighbours_and_dials_them() -> None:
    a = node(1)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        c = await stack.enter_async_context(node(3, peers=[b.addr]))
        await a.inbox.reach(2, 3)
        await a.inbox.wait(lambda: set(a.links) == {2, 3})
        assert c.links[1].link_id == a.links[3].link_id
        await a.send(3, b"direct")
        await c.inbox.wait(lambda: c.inbox.payloads(Via.UNICAST) == [b"direct"])


@timeout(10)
async def test_unicast_and_broadcast_are_relayed_when_no_direct_connection_is_allowed() -> None:
    a = node(1, connect_filter=lambda peer: peer != 3)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        c = await stack.enter_async_context(
            node(3, peers=[b.addr, a.addr], connect_filter=lambda peer: peer != 1)
        )
        await a.inbox.reach(2, 3)
        await c.inbox.reach(1, 2)
        await anyio.sleep(0.3)  # time enough for a and c to try each other
        assert 3 not in a.links and 1 not in c.links
        await a.send(3, b"via a relay")
        await c.inbox.wait(lambda: bool(c.inbox.received(Via.UNICAST)))
        assert c.inbox.received(Via.UNICAST) == [GossipReceived(1, b"via a relay", Via.UNICAST)]
        await c.broadcast(b"from c")
        await a.inbox.wait(lambda: a.inbox.payloads(Via.BROADCAST) == [b"from c"])
        assert b.inbox.payloads(Via.BROADCAST) == [b"from c"]


@timeout(10)
async def test_a_killed_connection_is_redialled() -> None:
    a = node(1)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        await a.inbox.reach(2)
        first = b.links[1]
        first.abort()  # the socket closes under both ends
        await b.inbox.wait(lambda: 1 in b.links and b.links[1] is not first)
        await a.inbox.wait(lambda: 2 in a.links)
        await b.send(1, b"again")
        await a.inbox.wait(lambda: a.inbox.payloads(Via.UNICAST) == [b"again"])


@timeout(10)
async def test_a_restarted_peer_is_redialled_and_reachability_follows() -> None:
    port = free_port()
    b = node(2, peers=[f"127.0.0.1:{port}"])
    async with running(b):
        async with running(node(1, listen=("127.0.0.1", port))):
            await b.inbox.reach(1)
        await b.inbox.reach()  # lost
        async with running(node(1, listen=("127.0.0.1", port))) as stack:
            del stack
            await b.inbox.reach(1)


@timeout(10)
async def test_a_connection_to_ourselves_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "weavek.tcp")
    port = free_port()
    a = node(1, listen=("127.0.0.1", port), peers=[f"127.0.0.1:{port}"])
    async with running(a):
        while "refusing connection to ourselves" not in caplog.text:
            await anyio.sleep(0.05)
        await anyio.sleep(0.1)
        seen = caplog.text.count("refusing connection to ourselves")  # by both ends
        await anyio.sleep(0.5)  # several back-offs
        assert a.links == {}
        assert caplog.text.count("refusing connection to ourselves") == seen  # never retried


@timeout(10)
async def test_duplicate_connections_settle_on_the_same_one_at_both_ends() -> None:
    pa, pb = free_port(), free_port()
    a = node(1, listen=("127.0.0.1", pa), peers=[f"127.0.0.1:{pb}"])
    b = node(2, listen=("127.0.0.1", pb), peers=[f"127.0.0.1:{pa}"])
    async with running(a, b):
        await a.inbox.reach(2)
        await b.inbox.reach(1)
        await anyio.sleep(0.5)  # both dial loops have run; nothing churns
        kept = a.links[2]
        assert kept.link_id == b.links[1].link_id
        await anyio.sleep(0.5)
        assert a.links[2] is kept
        await a.send(2, b"once")
        await b.inbox.wait(lambda: b.inbox.payloads(Via.UNICAST) == [b"once"])


@timeout(10)
async def test_a_second_peer_with_a_connected_name_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = node(1)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        await a.inbox.reach(2)
        await stack.enter_async_context(node(2, peers=[a.addr]))
        while "name collision" not in caplog.text:
            await anyio.sleep(0.05)
        assert a.links[2].uid == b.uid


@timeout(10)
async def test_refuse_closes_logs_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    a = node(1, backoff_initial=0.5)
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr]))
        await a.inbox.reach(2)
        await a.refuse(2, "Incompatible IP allocation ranges")
        assert "refusing connection to 00:00:00:00:00:02(n2): Incompatible" in caplog.text
        await a.inbox.reach()
        await b.broadcast(b"ignored while refused")
        await b.inbox.wait(lambda: 1 in b.links)  # b re-dials after the back-off ...
        await a.inbox.reach(2)  # ... and a takes it back once it is over
        await b.broadcast(b"heard")
        await a.inbox.wait(lambda: b"heard" in a.inbox.payloads())
        assert a.inbox.payloads() == [b"heard"]


@timeout(10)
async def test_heartbeats_keep_an_idle_connection_alive() -> None:
    quiet = {"heartbeat_interval": 0.1, "idle_timeout": 0.5, "topology_interval": 60.0}
    a = node(1, **quiet)
    async with running(a) as stack:
        await stack.enter_async_context(node(2, peers=[a.addr], **quiet))
        await a.inbox.reach(2)
        kept = a.links[2]
        await anyio.sleep(1.5)  # three idle timeouts with nothing but heartbeats
        assert a.links[2] is kept


@timeout(10)
async def test_a_silent_peer_is_dropped_after_the_idle_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = node(1, heartbeat_interval=0.1, idle_timeout=0.5)
    async with running(a):
        stream, _ = await handshaken_raw_client(a, None)
        async with stream:
            await a.inbox.reach(7)
            started = anyio.current_time()
            await a.inbox.reach()  # it never sends a heartbeat
            assert anyio.current_time() - started < 2
        assert "connection from 00:00:00:00:00:07(raw)" in caplog.text
        assert "timed out (no heartbeat)" in caplog.text


@timeout(10)
async def test_reachability_is_reported_as_peers_come_and_go() -> None:
    a = node(1)
    async with running(a):
        async with running(node(2, peers=[a.addr])) as stack:
            await a.inbox.reach(2)
            await stack.enter_async_context(node(3, peers=[a.addr]))
            await a.inbox.reach(2, 3)
        await a.inbox.reach()

"""Passwords, and strangers: what a peer without the password or a hostile client gets.

Raw clients here are plain sockets speaking (or not) the protocol by hand; the
listener must drop them with a log line and keep serving real peers.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from anyio.abc import SocketStream
from tcp_helpers import Node, handshaken_raw_client, node, running, timeout

from weavek.core.events import Via
from weavek_tcp.framing import MAX_FRAME, encode_frame
from weavek_tcp.handshake import Hello
from weavek_tcp.messages import Gossip, encode_message

pytestmark = pytest.mark.anyio


async def closed_by_peer(stream: SocketStream) -> bool:
    """Read until the other end closes (True) or resets."""
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return True
    return True  # pragma: no cover


async def still_serves(a: Node, password: bytes | None = None) -> None:
    """A real peer can still connect to ``a`` and be heard."""
    async with running(node(9, peers=[a.addr], password=password)) as stack:
        del stack
        await a.inbox.wait(lambda: 9 in a.inbox.reachable)


async def wait_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    while text not in caplog.text:
        await anyio.sleep(0.02)


@timeout(15)
async def test_the_same_password_on_both_sides_connects_encrypted() -> None:
    a = node(1, password=b"s3cret")
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr], password=b"s3cret"))
        await a.inbox.reach(2)
        assert a.links[2]._session is not None
        await b.broadcast(b"sealed")
        await a.send(2, b"reply")
        await a.inbox.wait(lambda: a.inbox.payloads(Via.BROADCAST) == [b"sealed"])
        await b.inbox.wait(lambda: b.inbox.payloads(Via.UNICAST) == [b"reply"])


@timeout(15)
async def test_a_wrong_password_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    a = node(1, password=b"right")
    async with running(a) as stack:
        b = await stack.enter_async_context(node(2, peers=[a.addr], password=b"wrong"))
        await wait_log(caplog, "authentication failed from 127.0.0.1:")
        assert "wrong password?" in caplog.text
        await b.broadcast(b"let me in")
        await still_serves(a, b"right")
        assert a.inbox.received() == [] and 2 not in a.inbox.reachable
        assert b.links == {}


@pytest.mark.parametrize(
    ("mine", "theirs", "log"),
    [
        (b"pw", None, "peer has no password and we require one"),
        (None, b"pw", "peer requires a password and we have none"),
    ],
)
@timeout(15)
async def test_a_password_on_one_side_only_is_refused(
    caplog: pytest.LogCaptureFixture, mine: bytes | None, theirs: bytes | None, log: str
) -> None:
    a = node(1, password=mine)
    async with running(a) as stack:
        await stack.enter_async_context(node(2, peers=[a.addr], password=theirs))
        await wait_log(caplog, "refusing connection from 127.0.0.1:")
        await wait_log(caplog, log)
        assert a.links == {}


@pytest.mark.parametrize(
    ("garbage", "log"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds the limit of 65536"),
        (b"\x00\x00\x00\x10" + bytes(range(16)), "not a weavek peer (bad magic)"),
        (b"\xff\xff\xff\xff", "exceeds the limit"),
    ],
)
@timeout(15)
async def test_garbage_and_oversized_frames_are_dropped_and_others_still_served(
    caplog: pytest.LogCaptureFixture, garbage: bytes, log: str
) -> None:
    a = node(1)
    async with running(a):
        async with await anyio.connect_tcp("127.0.0.1", a.port) as raw:
            await raw.send(garbage)
            assert await closed_by_peer(raw)
        assert log in caplog.text
        await still_serves(a)


@timeout(15)
async def test_a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = node(1, handshake_timeout=0.5)
    async with running(a):
        async with await anyio.connect_tcp("127.0.0.1", a.port) as raw:
            started = anyio.current_time()
            assert await closed_by_peer(raw)
            assert 0.4 < anyio.current_time() - started < 3
        assert "handshake from 127.0.0.1:" in caplog.text and "timed out" in caplog.text
        await still_serves(a)


@timeout(15)
async def test_unauthenticated_connections_per_address_are_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = node(1, handshake_timeout=5.0, max_handshakes_per_ip=2)
    async with running(a):
        first = await anyio.connect_tcp("127.0.0.1", a.port)
        second = await anyio.connect_tcp("127.0.0.1", a.port)
        await anyio.sleep(0.1)
        async with first, second, await anyio.connect_tcp("127.0.0.1", a.port) as third:
            assert await closed_by_peer(third)
            assert "too many unauthenticated connections from 127.0.0.1" in caplog.text
        await still_serves(a)


@timeout(15)
async def test_after_the_handshake_forged_or_oversized_frames_drop_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = node(1, password=b"pw")
    async with running(a):
        stream, hs = await handshaken_raw_client(a, b"pw")
        assert hs.session is not None
        async with stream:
            await stream.send(encode_frame(hs.session.seal(encode_message(Gossip(b"real")))))
            await a.inbox.wait(lambda: a.inbox.payloads(Via.GOSSIP) == [b"real"])
            await stream.send(encode_frame(b"\x04not sealed" + bytes(16)))
            assert await closed_by_peer(stream)
        await wait_log(caplog, "frame failed authentication")

        stream, hs = await handshaken_raw_client(a, b"pw")
        async with stream:
            await stream.send((MAX_FRAME + 1).to_bytes(4, "big"))
            assert await closed_by_peer(stream)
        await wait_log(caplog, f"exceeds the limit of {MAX_FRAME}")
        assert a.inbox.payloads() == [b"real"]
        await still_serves(a, b"pw")


@timeout(15)
async def test_incompatible_protocol_versions_are_refused_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "weavek.tcp")
    a = node(1)
    async with running(a):
        async with await anyio.connect_tcp("127.0.0.1", a.port) as raw:
            await raw.send(encode_frame(Hello(5, 1, 1, 0, "future", vmin=3, vmax=4).encode()))
            assert await closed_by_peer(raw)
        assert "incompatible protocol versions: peer speaks 3..4, we speak 1..1" in caplog.text

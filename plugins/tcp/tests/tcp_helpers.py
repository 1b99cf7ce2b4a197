"""Helpers for running real transports on loopback ports in one process."""

from __future__ import annotations

import functools
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, ParamSpec

import anyio
from anyio.abc import SocketStream

from weavek.core.events import GossipReceived, PeersChanged, Via
from weavek.interfaces import TransportEvent
from weavek_tcp import TcpTransport
from weavek_tcp.crypto import derive_psk
from weavek_tcp.framing import FrameDecoder, encode_frame
from weavek_tcp.handshake import Handshake, Hello, State

P = ParamSpec("P")

FAST: dict[str, Any] = {
    "handshake_timeout": 2.0,
    "heartbeat_interval": 0.3,
    "idle_timeout": 3.0,
    "topology_interval": 0.5,
    "backoff_initial": 0.05,
    "backoff_cap": 0.5,
}
"""Timings small enough that tests finish in seconds."""


AsyncTest = Callable[P, Awaitable[None]]


def timeout(seconds: float) -> Callable[[AsyncTest[P]], AsyncTest[P]]:
    """Fail an async test that runs longer than ``seconds`` (no pytest-timeout here)."""

    def wrap(fn: AsyncTest[P]) -> AsyncTest[P]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> None:
            with anyio.fail_after(seconds):
                await fn(*args, **kwargs)

        return run

    return wrap


class Inbox:
    """Records what a transport delivers, and waits for conditions on it."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed = anyio.Event()

    async def deliver(self, event: TransportEvent) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds (the test's own timeout bounds the wait).

        Wakes at each delivery, and polls too: the predicate may look at the transport.
        """
        while True:
            changed = self._changed
            if predicate():
                return
            with anyio.move_on_after(0.02):
                await changed.wait()

    def received(self, via: Via | None = None) -> list[GossipReceived]:
        return [e for e in self.events if isinstance(e, GossipReceived) and via in (None, e.via)]

    def payloads(self, via: Via | None = None) -> list[bytes]:
        return [e.payload for e in self.received(via)]

    @property
    def reachable(self) -> frozenset[int]:
        changes = [e.reachable for e in self.events if isinstance(e, PeersChanged)]
        return changes[-1] if changes else frozenset()

    async def reach(self, *peers: int) -> None:
        await self.wait(lambda: self.reachable == frozenset(peers))


class Node(TcpTransport):
    """A transport on a free loopback port, with an :class:`Inbox`."""

    inbox: Inbox

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


def node(me: int, peers: Sequence[str] = (), **kwargs: Any) -> Node:
    inbox = Inbox()
    options = {"listen": ("127.0.0.1", 0), **FAST, **kwargs}
    t = Node(
        None,
        me=me,
        deliver=inbox.deliver,
        nickname=f"n{me}",
        peers=peers,
        **options,
    )
    t.inbox = inbox
    return t


@asynccontextmanager
async def running(*transports: Node) -> AsyncIterator[AsyncExitStack]:
    """Enter transports in order; leave them all at the end."""
    async with AsyncExitStack() as stack:
        for t in transports:
            await stack.enter_async_context(t)
        yield stack


def free_port() -> int:
    """A loopback port nobody listens on right now (for tests that must know it in advance)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def handshaken_raw_client(a: Node, password: bytes | None) -> tuple[SocketStream, Handshake]:
    """A hand-made client, peer ``::7``, that completes the handshake with ``a`` and no more."""
    stream = await anyio.connect_tcp("127.0.0.1", a.port)
    hello = Hello(7, secrets.randbits(64), secrets.randbits(64), 0, "raw")
    hs = Handshake(hello, initiator=True, psk=derive_psk(password) if password else None)
    decoder = FrameDecoder()
    await stream.send(encode_frame(hs.hello()))
    while hs.state is not State.DONE:
        while (frame := decoder.next_frame()) is None:
            decoder.feed(await stream.receive())
        reply = hs.receive(frame)
        if reply is not None:
            await stream.send(encode_frame(reply))
    return stream, hs

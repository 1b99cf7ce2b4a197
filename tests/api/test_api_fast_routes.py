"""The hot /ip/{id} routes answered in front of Starlette: byte for byte the same answers.

A request with a query string Starlette ignores (``?x=1``) takes the Starlette
route; the same request without it takes :class:`~weavek.api.fast.FastRoutes`.
Both are read off the socket whole, status line and headers included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pluggy
import pytest
from anyio.abc import SocketStream

from weavek.node import Peer, PeerConfig
from weavek.node.actor import Actor
from weavek.testing.journal_store import JournalPlugin

pytestmark = pytest.mark.anyio


class Raw:
    """One keep-alive HTTP/1.1 connection that returns each response exactly as sent."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def ask(self, method: str, path: str, *headers: str) -> bytes:
        extra = "".join(f"{h}\r\n" for h in headers)
        request = f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: 0\r\n\r\n"
        await self.stream.send(request.encode())
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        size = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                size = int(value)
        while len(rest) < size:
            rest += await self.stream.receive()
        self.buffer = rest[size:]
        return head + b"\r\n\r\n" + rest[:size]


@asynccontextmanager
async def raw(peer: Peer) -> AsyncIterator[Raw]:
    host, port = peer.http_address or ("", 0)
    async with await anyio.connect_tcp(host, port) as stream:
        yield Raw(stream)


async def test_fast_and_starlette_routes_answer_alike(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: Callable[..., PeerConfig]
) -> None:
    with anyio.fail_after(20):
        async with Peer(peer_config(1), make_pm()) as peer, raw(peer) as http:
            fast = await http.ask("POST", "/ip/a")
            assert fast == (
                b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n"
                b"content-type: text/plain; charset=utf-8\r\n\r\n10.32.0.1/12"
            )
            assert await http.ask("POST", "/ip/a?x=1") == fast  # the same ident again
            for path in ("/ip/a", "/ip/nobody"):
                assert await http.ask("GET", path) == await http.ask("GET", path + "?x=1")
            await http.ask("POST", "/ip/b")
            gone = await http.ask("DELETE", "/ip/a")
            assert gone.startswith(b"HTTP/1.1 204 No Content\r\n")
            assert await http.ask("DELETE", "/ip/b?x=1") == gone
            assert await http.ask("GET", "/ip/a") == await http.ask("GET", "/ip/b?x=1")
            # JSON, other verbs and longer paths are Starlette's, and still answered.
            json = await http.ask("GET", "/ip/c", "Accept: application/json")
            assert json.endswith(b'{"addresses":[]}')
            assert (await http.ask("PUT", "/ip/c")).startswith(b"HTTP/1.1 405 ")
            assert (await http.ask("HEAD", "/ip/c")).startswith(b"HTTP/1.1 200 ")


async def test_fast_route_failures_match_starlette(
    make_pm: Callable[..., pluggy.PluginManager], peer_config: Callable[..., PeerConfig]
) -> None:
    with anyio.fail_after(20):
        async with Peer(peer_config(1), make_pm()) as peer, raw(peer) as http:
            failed = await http.ask("DELETE", "/ip/nobody")
            assert failed == (
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 32\r\n"
                b"content-type: text/plain; charset=utf-8\r\n\r\n"
                b"Delete: no addresses for nobody\n"
            )
            assert await http.ask("DELETE", "/ip/nobody?x=1") == failed
            assert (await http.ask("DELETE", "/peer")).startswith(b"HTTP/1.1 204 ")
            cancelled = await http.ask("POST", "/ip/late")  # the peer is shutting down
            assert cancelled.endswith(b"\r\n\r\ncancelled")
            assert await http.ask("POST", "/ip/late?x=1") == cancelled


async def test_fast_route_503_matches_starlette(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Actor, "store_wait", 0.3)
    service = tmp_path / "service"
    service.mkdir()
    config = peer_config(1, persist=f"journal={service}")
    with anyio.fail_after(20):
        async with Peer(config, make_pm(JournalPlugin())) as peer, raw(peer) as http:
            service.rename(tmp_path / "away")
            fast = await http.ask("POST", "/ip/a")
            assert fast.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b"\r\n\r\nstore unavailable: cannot open " in fast
            assert await http.ask("POST", "/ip/a?x=1") == fast

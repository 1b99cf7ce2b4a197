"""Serving the HTTP API inside the peer's task group, with uvicorn.

uvicorn's :meth:`Server.serve` is an ordinary coroutine, so it runs as one of
the peer's tasks. Two things are adjusted for that: the peer binds the
listening socket itself (so port 0 works and the real port is known before
the first request), and cancellation is turned into uvicorn's own graceful
shutdown -- a plain cancellation would leave its listening socket and
connections open. Signal handling stays with whoever runs the peer (the CLI),
not with uvicorn.

Two things make each request cheaper: the hot ``/ip/{id}`` routes are
answered by :class:`~weavek.api.fast.FastRoutes` in front of the Starlette
app, and each connection's writes are coalesced (:class:`_Coalescing`), so a
response goes out in one ``send`` rather than one for its headers and one for
its body. No proxy-header middleware either: the API serves local clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import anyio
import uvicorn
from anyio.abc import TaskStatus
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # httptools: a dependency

from .app import build_app
from .fast import FastRoutes

if TYPE_CHECKING:
    from weavek.node.peer import Peer

__all__ = ["serve"]

GRACEFUL_SHUTDOWN = 2
"""Seconds open requests get to finish when the peer stops."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Ctrl-C belongs to the process that runs the peer; it cancels us.
        yield


class _Coalescing:
    """A connection's transport whose writes in one go reach the socket as one ``send``.

    uvicorn writes a response's headers and its body separately. The first
    write is held, and goes out joined with the next one (the body, written
    right after) or, at the latest, on the event loop's next turn.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held:
            held.append(bytes(data))
            self.flush()
        else:
            held.append(bytes(data))
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a :class:`_Coalescing` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _Coalescing(transport)))


def bind(address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket on ``(host, port)``; port 0 picks a free port."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    # Accepted connections inherit it. uvicorn writes headers and body separately, and
    # with Nagle on, each response then waits for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def serve(
    peer: Peer,
    address: tuple[str, int],
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``peer``'s API on ``address`` until cancelled; ``task_status`` gets the address."""
    sock = bind(address)
    config = uvicorn.Config(
        FastRoutes(peer, build_app(peer)),
        http=_Protocol,
        proxy_headers=False,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = _Server(config)
    host, port = sock.getsockname()[:2]

    async def stop_when_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(stop_when_cancelled)
        # The socket already listens: connections made from now on wait in its backlog.
        task_status.started((host, port))
        with anyio.CancelScope(shield=True):
            # Shielded so that cancellation reaches uvicorn as should_exit and it can close
            # its socket and connections itself.
            await server.serve(sockets=[sock])
        tasks.cancel_scope.cancel()

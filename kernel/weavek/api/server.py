"""Serving the HTTP API inside the peer's task group, with uvicorn.

uvicorn's :meth:`Server.serve` is an ordinary coroutine, so it runs as one of
the peer's tasks. Two things are adjusted for that: the peer binds the
listening socket itself (so port 0 works and the real port is known before
the first request), and cancellation is turned into uvicorn's own graceful
shutdown -- a plain cancellation would leave its listening socket and
connections open. Signal handling stays with whoever runs the peer (the CLI),
not with uvicorn.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
import uvicorn
from anyio.abc import TaskStatus

from .app import build_app

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
        build_app(peer),
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

"""The hot routes without the framework: ``POST``, ``GET`` and ``DELETE /ip/{id}``.

A container runtime allocates, looks up and releases addresses thousands of
times a second; everything else (status, report, claims, subnets) is asked
for rarely. Starlette's router, middleware stack and Request/Response objects
cost about as much CPU per request as the allocator itself, so
:class:`FastRoutes` answers the three hot requests in their plainest form --
no query string, no JSON asked for -- straight from the ASGI scope, and hands
every other request to the Starlette application unchanged. The answers are
byte for byte what the Starlette routes in :mod:`weavek.api.app` send
(``tests/api`` compares them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from weavek.core import events as ev
from weavek.core.effects import Failed
from weavek.node.mailbox import PeerStoppedError, StoreUnavailableError

if TYPE_CHECKING:
    from weavek.node.peer import Peer

__all__ = ["FastRoutes"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT: Final = b"text/plain; charset=utf-8"
_NO_CONTENT: Final = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY_BODY: Final = {"type": "http.response.body", "body": b""}


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


class FastRoutes:
    """An ASGI application: the hot ``/ip/{id}`` requests itself, the rest to ``app``."""

    def __init__(self, peer: Peer, app: App) -> None:
        self.peer = peer
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["query_string"]:
            path: str = scope["path"]
            if path.startswith("/ip/") and path.find("/", 4) < 0 and len(path) > 4:
                method = scope["method"]
                if method in ("POST", "GET", "DELETE") and not _wants_json(scope):
                    await self._ip(method, path[4:], receive, send)
                    return
        await self.app(scope, receive, send)

    async def _ip(self, method: str, ident: str, receive: Receive, send: Send) -> None:
        request = self.peer.request
        try:
            if method == "POST":
                result = await request(
                    lambda t: ev.AllocateRequested(t, ident, None, False),
                    lambda: _disconnected(receive),
                )
            elif method == "GET":
                result = await request(lambda t: ev.LookupRequested(t, ident, None))
                found = " ".join(str(c) for c in result) if isinstance(result, tuple) else ""
                await _text(send, 200, found.encode())
                return
            else:
                result = await request(lambda t: ev.DeleteRequested(t, ident))
        except (PeerStoppedError, StoreUnavailableError) as exc:
            await _text(send, 503, f"{exc}\n".encode())
            return
        if isinstance(result, Failed):
            if result.cancelled:
                await _text(send, 200, b"cancelled")
            else:
                await _text(send, 400, f"{result.message}\n".encode())
        elif method == "POST":
            await _text(send, 200, str(result).encode())
        else:
            await send(_NO_CONTENT)
            await send(_EMPTY_BODY)


def _wants_json(scope: Scope) -> bool:
    # As Starlette's request.headers.get("accept"): the first Accept header counts.
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"application/json" in value
    return False


async def _text(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", _TEXT)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

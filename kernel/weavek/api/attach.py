"""The container routes: attach, detach, expose and hide (:mod:`weavek.node.containers`).

| route | does |
|---|---|
| ``POST /attach/{container}?addr=T&addr=T&runtime=NAME`` | attach; prints the CIDRs |
| ``DELETE /attach/{container}[?addr=T...][&runtime=NAME]`` | detach; prints what was released |
| ``POST /expose[?addr=T...][&runtime=NAME]`` | give the bridge addresses |
| ``DELETE /expose[?addr=T...][&runtime=NAME]`` | take them back |

``T`` is a target: ``net:default`` (the default when there is none),
``net:CIDR``, ``ip:CIDR``. ``{container}`` is what the runtime resolves (a
name, an ID, ``pid:1234``); it may contain ``/``. The answer is the CIDRs,
space-separated, or with ``Accept: application/json``
``{"container", "ident", "runtime", "addresses"}``. Errors are one line
(``{"error": ...}`` in JSON): 400 for bad targets and allocator refusals,
404 for an unknown or vanished container, 500 when plumbing fails, 503 when
a runtime's daemon cannot be reached.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from weavek.node.containers import Attached, ContainerError, parse_targets

from .app import _disconnected, _error, _text, _wants_json

if TYPE_CHECKING:
    from weavek.node.peer import Peer

__all__ = ["attach_routes"]


class _ContainerApi:
    def __init__(self, peer: Peer) -> None:
        self.containers = peer.containers

    async def attach(self, request: Request) -> Response:
        return await self._run(request, "attach")

    async def detach(self, request: Request) -> Response:
        return await self._run(request, "detach")

    async def expose(self, request: Request) -> Response:
        return await self._run(request, "expose")

    async def hide(self, request: Request) -> Response:
        return await self._run(request, "hide")

    async def _run(self, request: Request, verb: str) -> Response:
        params = request.query_params
        runtime = params.get("runtime") or None
        gone = partial(_disconnected, request)  # cancels an allocation that waits
        try:
            addrs = params.getlist("addr")
            done: Attached
            if verb == "attach":
                container = request.path_params["container"]
                done = await self.containers.attach(container, parse_targets(addrs), runtime, gone)
            elif verb == "detach":
                container = request.path_params["container"]
                targets = parse_targets(addrs) if addrs else []
                done = await self.containers.detach(container, targets, runtime)
            elif verb == "expose":
                done = await self.containers.expose(parse_targets(addrs), runtime, gone)
            else:
                targets = parse_targets(addrs) if addrs else []
                done = await self.containers.hide(targets, runtime)
        except ContainerError as exc:
            return _error(request, str(exc), exc.status)
        addresses = [str(cidr) for cidr in done.cidrs]
        if _wants_json(request):
            return JSONResponse(
                {
                    "container": done.container,
                    "ident": done.ident,
                    "runtime": done.runtime,
                    "addresses": addresses,
                }
            )
        return _text(" ".join(addresses))


def attach_routes(peer: Peer) -> list[Any]:
    """The container routes of ``peer``, for :func:`weavek.api.app.build_app`."""
    api = _ContainerApi(peer)
    return [
        Route("/attach/{container:path}", api.attach, methods=["POST"]),
        Route("/attach/{container:path}", api.detach, methods=["DELETE"]),
        Route("/expose", api.expose, methods=["POST"]),
        Route("/expose", api.hide, methods=["DELETE"]),
    ]

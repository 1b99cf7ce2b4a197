"""The HTTP API: Weave's routes, verbs, status codes and text bodies, plus JSON and metrics.

Every route turns into one allocator request (or a status query) through
:meth:`Peer.request`. Routes that may wait -- an allocation with no space, a
claim before the ring exists, a prime -- also watch their connection: if the
client goes away, the request is cancelled in the allocator, as Weave did
with the request context. A client that sends ``Accept: application/json``
gets the same answers as JSON objects; see ``docs/reference/http-api.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from weavek.core import events as ev
from weavek.core.effects import Failed
from weavek.core.peer import PeerNameError, parse_peer_name
from weavek.node.mailbox import PeerStoppedError, StoreUnavailableError
from weavek.node.status import owned_map

from .metrics import CONTENT_TYPE, PeerMetrics
from .parse import BadInput, address, claim_cidr, subnet
from .report import TemplateError, ipam_peers, render_template, report, services, status_text

if TYPE_CHECKING:
    from weavek.node.peer import Peer

__all__ = ["build_app"]


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


def _text(body: str, status: int = 200) -> Response:
    return PlainTextResponse(body, status)


def _no_content(_: object) -> Response:
    return Response(status_code=204)


def _error(request: Request, message: str, status: int = 400) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status)
    return _text(message + "\n", status)  # as Go's http.Error


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Api:
    """The route handlers of one peer."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.exporter = PeerMetrics(peer)

    async def _ask(
        self, request: Request, make: Callable[[object], ev.Event], *, waits: bool = False
    ) -> object:
        """The allocator's answer; for ``waits``, cancelled if the client disconnects first."""
        return await self.peer.request(make, partial(_disconnected, request) if waits else None)

    def _answer(
        self, request: Request, result: object, ok: Callable[[object], Response], prefix: str = ""
    ) -> Response:
        if isinstance(result, Failed) and result.cancelled:
            if _wants_json(request):
                return JSONResponse({"cancelled": True})
            return _text("cancelled")
        if isinstance(result, Failed):
            return _error(request, prefix + result.message)
        return ok(result)

    # -- /ip ---------------------------------------------------------------

    async def allocate(self, request: Request) -> Response:
        params = request.path_params
        ident = params["id"]
        try:
            within = subnet(params["ip"], params["prefixlen"]) if "ip" in params else None
        except BadInput as exc:
            return _error(request, str(exc))
        alive = _flag(request, "check-alive")
        result = await self._ask(
            request, lambda t: ev.AllocateRequested(t, ident, within, alive), waits=True
        )

        def ok(cidr: object) -> Response:
            if _wants_json(request):
                return JSONResponse({"address": str(cidr)})
            return _text(str(cidr))

        return self._answer(request, result, ok)

    async def lookup(self, request: Request) -> Response:
        params = request.path_params
        ident = params["id"]
        try:
            within = subnet(params["ip"], params["prefixlen"]) if "ip" in params else None
        except BadInput as exc:
            return _error(request, str(exc))
        result = await self._ask(request, lambda t: ev.LookupRequested(t, ident, within))
        found = [str(c) for c in result] if isinstance(result, tuple) else []
        if _wants_json(request):
            return JSONResponse({"addresses": found})
        return _text(" ".join(found))

    async def claim(self, request: Request) -> Response:
        params = request.path_params
        ident = params["id"]
        try:
            cidr = claim_cidr(params["ip"], params["prefixlen"])
        except BadInput as exc:
            return _error(request, f"Unable to claim: {exc}")
        alive = _flag(request, "check-alive")
        quiet = _flag(request, "noErrorOnUnknown")
        result = await self._ask(
            request, lambda t: ev.ClaimRequested(t, ident, cidr, alive, quiet), waits=True
        )
        return self._answer(request, result, _no_content, "Unable to claim: ")

    async def free(self, request: Request) -> Response:
        ident = request.path_params["id"]
        try:
            addr = address(request.path_params["ip"])
        except BadInput as exc:
            return _error(request, f"Unable to free: {exc}")
        result = await self._ask(request, lambda t: ev.FreeRequested(t, ident, addr))
        return self._answer(request, result, _no_content, "Unable to free: ")

    async def delete(self, request: Request) -> Response:
        ident = request.path_params["id"]
        result = await self._ask(request, lambda t: ev.DeleteRequested(t, ident))
        return self._answer(request, result, _no_content)

    async def dump(self, request: Request) -> Response:
        owned = await self.peer.query(owned_map)
        listed = [{"containerid": ident, "addrs": addrs} for ident, addrs in owned.items()]
        return JSONResponse({"owned": listed or None})

    # -- ring and peers ----------------------------------------------------

    async def prime(self, request: Request) -> Response:
        result = await self._ask(request, ev.PrimeRequested, waits=True)
        return self._answer(request, result, lambda _: _text(""))

    async def shutdown(self, request: Request) -> Response:
        result = await self._ask(request, ev.ShutdownRequested)
        return self._answer(request, result, _no_content)

    async def rmpeer(self, request: Request) -> Response:
        name = request.path_params["name"]
        nicknames = await self.peer.query(lambda alloc: set(alloc.nicknames.values()))
        if name not in nicknames:
            try:
                parse_peer_name(name)
            except PeerNameError as exc:
                return _error(request, str(exc))
        result = await self._ask(request, lambda t: ev.RmPeerRequested(t, name))

        def ok(taken: object) -> Response:
            if _wants_json(request):
                return JSONResponse({"peer": name, "taken_over": taken})
            return _text(f"{taken} IPs taken over from {name}\n")

        return self._answer(request, result, ok)

    # -- information -------------------------------------------------------

    async def default_subnet(self, request: Request) -> Response:
        config = self.peer.config
        cidr = (config.default_subnet or config.universe).network()
        if _wants_json(request):
            return JSONResponse({"subnet": str(cidr)})
        return _text(str(cidr))

    async def tracker(self, request: Request) -> Response:
        if _wants_json(request):
            return JSONResponse({"tracker": None})
        return _text("\n")  # no local range tracker

    async def status(self, request: Request) -> Response:
        status = await self.peer.status()
        if _wants_json(request):
            fields = {"Status": status.state, "Services": services(status)}
            return JSONResponse(report(status)["IPAM"] | fields)
        return _text(status_text(status))

    async def status_ipam(self, request: Request) -> Response:
        status = await self.peer.status()
        if _wants_json(request):
            return JSONResponse(ipam_peers(status))
        return _text("".join(line + "\n" for line in status.ipam_lines))

    async def report(self, request: Request) -> Response:
        data = report(await self.peer.status())
        template = request.query_params.get("format")
        if template is None or template == "json" or _wants_json(request):
            indent = None if _wants_json(request) else 2
            return Response(json.dumps(data, indent=indent) + "\n", media_type="application/json")
        try:
            return _text(render_template(template, data))
        except TemplateError as exc:
            return _error(request, f"template: {exc}")

    async def metrics(self, request: Request) -> Response:
        return Response(await self.exporter.render(), media_type=CONTENT_TYPE)


def _stopped(request: Request, exc: Exception) -> Response:
    return _error(request, str(exc), 503)


def build_app(peer: Peer) -> Starlette:
    """The ASGI application serving ``peer``."""
    api = Api(peer)
    ip = "/ip/{id}/{ip}/{prefixlen}"
    routes: list[Any] = [
        Route("/ip", api.dump, methods=["GET"]),
        Route("/ip/{id}", api.allocate, methods=["POST"]),
        Route("/ip/{id}", api.lookup, methods=["GET"]),
        Route("/ip/{id}", api.delete, methods=["DELETE"]),
        Route("/ip/{id}/{ip}", api.free, methods=["DELETE"]),
        Route(ip, api.allocate, methods=["POST"]),
        Route(ip, api.lookup, methods=["GET"]),
        Route(ip, api.claim, methods=["PUT"]),
        Route("/ring", api.prime, methods=["GET"]),
        Route("/peer", api.shutdown, methods=["DELETE"]),
        Route("/peer/{name}", api.rmpeer, methods=["DELETE"]),
        Route("/ipinfo/defaultsubnet", api.default_subnet, methods=["GET"]),
        Route("/ipinfo/tracker", api.tracker, methods=["GET"]),
        Route("/status", api.status, methods=["GET"]),
        Route("/status/ipam", api.status_ipam, methods=["GET"]),
        Route("/report", api.report, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    from .attach import attach_routes  # it reuses this module's helpers

    routes += attach_routes(peer)
    handlers: dict[Any, Any] = {PeerStoppedError: _stopped, StoreUnavailableError: _stopped}
    return Starlette(routes=routes, exception_handlers=handlers)

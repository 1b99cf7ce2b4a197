"""``weavek attach|detach|expose|hide``: connect containers and the host to the network.

Weave's commands of the same names, done by the peer (``/attach`` and
``/expose`` routes, :mod:`weavek.api.attach`): the peer resolves the
container with its runtimes, allocates, plumbs, and undoes the allocation
if the plumbing fails.

| command | request |
|---|---|
| ``attach [TARGET...] CONTAINER`` | ``POST /attach/{container}?addr=TARGET...`` -> the CIDRs |
| ``detach [TARGET...] CONTAINER`` | ``DELETE /attach/{container}[?addr=TARGET...]`` |
| ``expose [TARGET...]`` | ``POST /expose?addr=TARGET...`` -> the CIDRs |
| ``hide [TARGET...]`` | ``DELETE /expose[?addr=TARGET...]`` |
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import typer

from ._client import PeerClient, path
from ._options import DEFAULT_HTTP_ADDR, AsJson, HttpAddr

__all__ = ["attach", "detach", "expose", "hide"]

_TARGET_HELP = (
    "net:default (the default subnet), net:CIDR (a subnet), ip:CIDR or CIDR (that address)"
)

Container = Annotated[
    str,
    typer.Argument(
        metavar="CONTAINER",
        help="The container, as its runtime knows it: a Docker or containerd name or ID, "
        "a named network namespace (NAME), or a process (pid:1234).",
    ),
]
Runtime = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="The runtime to ask (default: the first active one that knows the container, "
        "or for expose and hide, that can do it).",
        show_default=False,
    ),
]


def _targets(help_default: str) -> object:
    return typer.Argument(
        metavar="TARGET", help=f"{_TARGET_HELP} (default: {help_default}).", show_default=False
    )


def attach(
    targets: Annotated[list[str] | None, _targets("net:default")] = None,
    *,
    container: Container,
    runtime: Runtime = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    as_json: AsJson = False,
) -> None:
    """Give CONTAINER an address per TARGET on an interface of its own, and print them."""
    _send("POST", path("attach", container), targets, runtime, http_addr, as_json)


def detach(
    targets: Annotated[list[str] | None, _targets("all of its addresses")] = None,
    *,
    container: Container,
    runtime: Runtime = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    as_json: AsJson = False,
) -> None:
    """Take CONTAINER's addresses off it and release them; print what was released."""
    _send("DELETE", path("attach", container), targets, runtime, http_addr, as_json)


def expose(
    targets: Annotated[list[str] | None, _targets("net:default")] = None,
    runtime: Runtime = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    as_json: AsJson = False,
) -> None:
    """Give the host's bridge an address per TARGET, so the host reaches containers; print them."""
    _send("POST", "/expose", targets, runtime, http_addr, as_json)


def hide(
    targets: Annotated[list[str] | None, _targets("all of the bridge's addresses")] = None,
    runtime: Runtime = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    as_json: AsJson = False,
) -> None:
    """Take the bridge's addresses off it and release them; print what was released."""
    _send("DELETE", "/expose", targets, runtime, http_addr, as_json)


def _send(
    method: str,
    url: str,
    targets: list[str] | None,
    runtime: str | None,
    http_addr: str,
    as_json: bool,
) -> None:
    params: list[tuple[str, str]] = [("addr", target) for target in targets or ()]
    if runtime:
        params.append(("runtime", runtime))
    if params:  # repeated keys: encoded here, the client takes a dict
        url += "?" + urlencode(params)
    with PeerClient(http_addr) as client:
        reply = client.call(method, url, as_json=as_json).text.strip()
    if reply:
        typer.echo(reply)

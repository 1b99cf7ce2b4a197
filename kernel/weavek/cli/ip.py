"""``weavek ip allocate|claim|release|lookup``: Weave's ``/ip`` routes from the shell.

IDENT is what the addresses are filed under: a container ID, or any name.
``_`` means "no container" (Weave files such an address under itself). With
``--check-alive`` the ident is a container that the runtime watches, so its
addresses are released when it dies.

| command | request |
|---|---|
| ``allocate [IDENT] [--subnet CIDR]`` | ``POST /ip/{id}[/{ip}/{len}]`` -> prints ``a.b.c.d/len`` |
| ``claim IDENT CIDR`` | ``PUT /ip/{id}/{ip}/{len}`` |
| ``release IDENT [ADDRESS]`` | ``DELETE /ip/{id}[/{ip}]`` |
| ``lookup IDENT [--subnet CIDR]`` | ``GET /ip/{id}[/{ip}/{len}]`` -> prints the CIDRs |
"""

from __future__ import annotations

from typing import Annotated

import typer

from weavek.core.address import CIDR, AddressError, parse_cidr

from ._client import PeerClient, path
from ._options import DEFAULT_HTTP_ADDR, HttpAddr

__all__ = ["app"]

app = typer.Typer(
    help="Allocate, claim, release and look up addresses on the running peer.",
    no_args_is_help=True,
)

Ident = Annotated[
    str, typer.Argument(help="What the address is for: a container ID or a name; _ for none.")
]
Subnet = Annotated[
    str | None,
    typer.Option(
        metavar="CIDR",
        help="The subnet to use, e.g. 10.40.0.0/16 (default: the peer's default subnet).",
        show_default=False,
    ),
]
CheckAlive = Annotated[
    bool,
    typer.Option(
        "--check-alive",
        help="IDENT is a container: release its addresses when the runtime sees it die "
        "(default: off).",
    ),
]


@app.command()
def allocate(
    ident: Ident = "_",
    subnet: Subnet = None,
    check_alive: CheckAlive = False,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Allocate a free address for IDENT (the same one again if IDENT has one) and print it."""
    url = path("ip", ident, *_subnet_segments(subnet))
    with PeerClient(http_addr) as client:
        reply = client.call("POST", url, params=_alive(check_alive)).text.strip()
    typer.echo(reply)


@app.command()
def claim(
    ident: Ident,
    cidr: Annotated[
        str, typer.Argument(metavar="CIDR", help="The address to claim, with its prefix.")
    ],
    check_alive: CheckAlive = False,
    no_error_on_unknown: Annotated[
        bool,
        typer.Option(
            "--no-error-on-unknown",
            help="Succeed even when the address is owned by a peer this one does not know "
            "(default: off).",
        ),
    ] = False,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Claim a specific address for IDENT (e.g. one it had before a restart)."""
    address = _cidr(cidr, "CIDR")
    if "/" not in cidr:
        raise typer.BadParameter(f"{cidr!r} has no prefix length (like /12)", param_hint="CIDR")
    params = _alive(check_alive)
    if no_error_on_unknown:
        params["noErrorOnUnknown"] = "true"
    url = path("ip", ident, address.address_text(), str(address.prefix))
    with PeerClient(http_addr) as client:
        client.call("PUT", url, params=params)


@app.command()
def release(
    ident: Ident,
    address: Annotated[
        str | None,
        typer.Argument(
            help="Release only this address (a prefix is ignored) (default: all of IDENT's).",
            show_default=False,
        ),
    ] = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Release IDENT's addresses, or just ADDRESS."""
    segments = ["ip", ident]
    if address is not None:
        segments.append(_cidr(address, "ADDRESS").address_text())
    with PeerClient(http_addr) as client:
        client.call("DELETE", path(*segments))


@app.command()
def lookup(
    ident: Ident,
    subnet: Subnet = None,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Print IDENT's addresses in the subnet, space-separated (nothing if it has none)."""
    url = path("ip", ident, *_subnet_segments(subnet))
    with PeerClient(http_addr) as client:
        reply = client.call("GET", url).text.strip()
    if reply:
        typer.echo(reply)


def _subnet_segments(subnet: str | None) -> list[str]:
    if subnet is None:
        return []
    cidr = _cidr(subnet, "--subnet")
    if "/" not in subnet:
        raise typer.BadParameter(f"{subnet!r} has no prefix length", param_hint="--subnet")
    return [cidr.address_text(), str(cidr.prefix)]


def _cidr(text: str, hint: str) -> CIDR:
    try:
        return parse_cidr(text)
    except AddressError as err:
        raise typer.BadParameter(str(err), param_hint=hint) from None


def _alive(check_alive: bool) -> dict[str, str]:
    return {"check-alive": "true"} if check_alive else {}

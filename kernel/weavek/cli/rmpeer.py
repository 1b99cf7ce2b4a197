"""``weavek rmpeer PEER...``: take over the ranges of peers that are gone for good.

Each PEER (a peer name or nickname) is one ``DELETE /peer/{peer}``; the
peer's answer, ``"<n> IPs taken over from <peer>"``, is printed. Use it only
for peers that will never come back: if one does, two peers own the same
addresses (Weave's warning, and ours).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._client import PeerClient, path
from ._options import DEFAULT_HTTP_ADDR, HttpAddr

__all__ = ["rmpeer"]


def rmpeer(
    peers: Annotated[
        list[str],
        typer.Argument(
            metavar="PEER...", help="Names or nicknames of the dead peers.", show_default=False
        ),
    ],
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Give the address ranges of dead PEERs to this peer."""
    with PeerClient(http_addr) as client:
        for peer in peers:
            text = client.call("DELETE", path("peer", peer)).text.rstrip("\n")
            if text:
                typer.echo(text)

"""``weavek status [ipam|peers]``: what the peer says about itself, in Weave's words.

``status`` and ``status ipam`` print ``GET /status`` and ``GET /status/ipam``
as the peer writes them (Weave's layout, reference §8). The peer answers 503
on those routes until it is ready, with the same body: that is still a status
(it says why it waits), so it is printed and the exit code is 0. ``peers``
asks ``GET /status/peers``; a peer without that route is described from the
ring entries of its ``/report``.
"""

from __future__ import annotations

import contextlib
import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from ._client import CommandError, PeerClient, error_text, path
from ._options import DEFAULT_HTTP_ADDR, AsJson, HttpAddr

__all__ = ["Section", "status"]

_READY_OR_WAITING = (200, 503)


class Section(StrEnum):
    ipam = "ipam"
    peers = "peers"


def status(
    section: Annotated[
        Section | None,
        typer.Argument(
            help="What to show: ipam (who owns how much), peers (default: overview).",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
) -> None:
    """Show the peer's status: the overview, the IPAM share of every peer, or the peers."""
    with PeerClient(http_addr) as client:
        if section is Section.peers:
            _peers(client, as_json)
            return
        url = "/status/ipam" if section is Section.ipam else "/status"
        response = client.request("GET", url, as_json=as_json)
        if response.status_code not in _READY_OR_WAITING:
            raise CommandError(error_text(response))
        _print(response.text, as_json)


def _peers(client: PeerClient, as_json: bool) -> None:
    response = client.request("GET", path("status", "peers"), as_json=as_json)
    if response.status_code in _READY_OR_WAITING:
        _print(response.text, as_json)
        return
    if response.status_code != 404:
        raise CommandError(error_text(response))
    rows = peers_from_report(client.json("/report"))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        where = "" if row["reachable"] else " - unreachable!"
        label = f"{row['name']}({row['nickname']})"
        typer.echo(f"{label:<37} {row['ips']:>8} IPs{where}")


def peers_from_report(report: Any) -> list[dict[str, Any]]:
    """One row per peer in the report's ring entries: name, nickname, IPs owned, reachable."""
    ipam = report.get("IPAM") if isinstance(report, dict) else None
    entries = ipam.get("Entries") if isinstance(ipam, dict) else None
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries or ():
        name = str(entry.get("Peer", "?"))
        row = rows.setdefault(
            name,
            {
                "name": name,
                "nickname": str(entry.get("Nickname", "")),
                "ips": 0,
                "reachable": bool(entry.get("IsKnownPeer", True)),
            },
        )
        row["ips"] += int(entry.get("Size", 0))
    return list(rows.values())


def _print(body: str, as_json: bool) -> None:
    if as_json:
        with contextlib.suppress(json.JSONDecodeError):
            body = json.dumps(json.loads(body), indent=2)
    text = body.rstrip("\n")
    if text:  # status ipam is empty while there is no ring, as Weave's was
        typer.echo(text)

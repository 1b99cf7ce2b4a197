"""``weavek report``: everything the peer knows about its IPAM (Weave's ``/report``).

With ``--json`` the report is ``GET /report`` with ``Accept: application/json``
(Weave's structure: an ``IPAM`` object with ``Range``, ``Entries``,
``PendingAllocates``, ...), pretty-printed. Without it, the peer's text
rendering of the same report is printed as it comes.
"""

from __future__ import annotations

import json

import typer

from ._client import PeerClient
from ._options import DEFAULT_HTTP_ADDR, AsJson, HttpAddr

__all__ = ["report"]


def report(as_json: AsJson = False, http_addr: HttpAddr = DEFAULT_HTTP_ADDR) -> None:
    """Print the peer's full report: range, ring entries, pending requests."""
    with PeerClient(http_addr) as client:
        if as_json:
            typer.echo(json.dumps(client.json("/report"), indent=2))
            return
        text = client.call("GET", "/report").text.rstrip("\n")
    if text:
        typer.echo(text)

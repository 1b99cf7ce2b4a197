"""``weavek plugins``: what is installed, by family, with versions."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from weavek.plugins import installed_plugins, make_plugin_manager


def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the installed plugins: family, name, distribution and version."""
    rows = installed_plugins(make_plugin_manager())
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    if not rows:
        typer.echo("no plugins installed (try: pip install weavek-seed)")
        return
    table = [("FAMILY", "NAME", "DISTRIBUTION", "VERSION")]
    table += [(r.family, r.name, r.distribution or "-", r.version or "-") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

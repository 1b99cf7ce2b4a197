"""The ``weavek`` command line: one typer app, one module per noun.

Plugins add their own commands through the ``weavek_add_commands`` hook.
Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from weavek.plugins import PluginError, make_plugin_manager

from . import plugins, simulate

__all__ = ["app", "main"]

app = typer.Typer(
    name="weavek",
    help="A distributed IP address manager for containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("plugins")(plugins.plugins)
app.command("simulate")(simulate.simulate)


def main() -> None:
    """Entry point of the ``weavek`` script."""
    try:
        pm = make_plugin_manager()
        pm.hook.weavek_add_commands(app=app)
    except PluginError as err:
        print(f"weavek: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    app()

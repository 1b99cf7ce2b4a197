"""The ``weavek`` command line: one typer app, one module per noun.

Plugins add their own commands through the ``weavek_add_commands`` hook.
Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

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
    """Entry point of the ``weavek`` script: errors become one line on stderr and exit 2."""
    try:
        pm = make_plugin_manager()
        pm.hook.weavek_add_commands(app=app)
        code = app(standalone_mode=False)
    except PluginError as err:
        _fail(str(err))
    except typer.TyperException as err:
        # Usage errors carry the command they belong to: point at its --help.
        ctx = getattr(err, "ctx", None)
        path = ctx.command_path if ctx is not None else "weavek"
        _fail(f"{err.format_message()} (see '{path} --help')")
    except typer.Abort:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _fail(message: str) -> NoReturn:
    print(f"weavek: {message}", file=sys.stderr)
    raise SystemExit(2)

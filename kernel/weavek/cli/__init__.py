"""The ``weavek`` command line: one typer app, one module per noun.

Plugins add their own commands through the ``weavek_add_commands`` hook.
Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import pluggy
import typer

from weavek.plugins import PluginError, make_plugin_manager

from . import ip, launch, plugins, prime, report, reset, rmpeer, simulate, status, stop
from ._client import CommandError

__all__ = ["app", "main"]

app = typer.Typer(
    name="weavek",
    help="A distributed IP address manager for containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("launch")(launch.launch)
app.command("stop")(stop.stop)
app.command("prime")(prime.prime)
app.command("status")(status.status)
app.command("report")(report.report)
app.command("rmpeer")(rmpeer.rmpeer)
app.command("reset")(reset.reset)
app.add_typer(ip.app, name="ip")
app.command("plugins")(plugins.plugins)
app.command("simulate")(simulate.simulate)


def main() -> None:
    """Entry point of the ``weavek`` script: errors become one line on stderr.

    Bad usage exits 2; a command that ran and failed (:class:`CommandError`) exits 1.
    """
    try:
        pm = _plugin_manager()
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
    except CommandError as err:
        # The command ran and failed: no peer, the peer said no, a timeout.
        _fail(str(err), err.code)
    raise SystemExit(code if isinstance(code, int) else 0)


def _plugin_manager() -> pluggy.PluginManager:
    try:
        return make_plugin_manager()
    except PluginError:
        raise
    except Exception as err:  # an installed plugin that does not even import
        _fail(f"a plugin failed to load: {type(err).__name__}: {' '.join(str(err).split())}")


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"weavek: {message}", file=sys.stderr)
    raise SystemExit(code)

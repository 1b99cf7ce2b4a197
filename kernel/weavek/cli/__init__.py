"""The ``weavek`` command line: one typer app, one module per noun.

Plugins add their own commands through the ``weavek_add_commands`` hook.
Errors are one clear line and a non-zero exit, never a traceback. A kernel
command is listed in :data:`COMMANDS`; its module is imported only when it
runs (or for ``--help``), so that each command starts with only what it needs.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Final, NoReturn

import pluggy
import typer

from weavek.plugins import PluginError, make_plugin_manager

from ._client import CommandError

__all__ = ["app", "main", "make_app"]

COMMANDS: Final[dict[str, str]] = {
    "launch": "launch",
    "stop": "stop",
    "prime": "prime",
    "status": "status",
    "report": "report",
    "rmpeer": "rmpeer",
    "reset": "reset",
    "ip": "ip",
    "attach": "attach",
    "detach": "attach",
    "expose": "attach",
    "hide": "attach",
    "plugins": "plugins",
    "simulate": "simulate",
}
"""Every kernel command, in the order ``--help`` lists them, and the module of this
package that defines it: a function of the command's name, or a typer ``app`` (``ip``)."""


def make_app(only: str | None = None) -> typer.Typer:
    """The ``weavek`` typer app: every kernel command, or only the command ``only``.

    :func:`main` builds only the command it runs, so that each command imports
    just what it needs: ``weavek launch`` starts every peer, and the HTTP client
    stack and the other commands' modules would add a tenth to its start-up.
    """
    app = typer.Typer(
        name="weavek",
        help="A distributed IP address manager for containers.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    if only is not None:
        # typer runs a lone command as the whole program; a callback keeps the group.
        app.callback()(_group)
    for name, module_name in COMMANDS.items():
        if only is None or name == only:
            module = importlib.import_module(f"{__name__}.{module_name}")
            if name == "ip":
                app.add_typer(module.app, name="ip")
            else:
                app.command(name)(getattr(module, name))
    return app


def _group() -> None:
    """A distributed IP address manager for containers."""


def _command(args: list[str]) -> str | None:
    """The kernel command ``args`` run, if they name one first; None for help or others."""
    return args[0] if args and args[0] in COMMANDS else None


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, for whoever wants to inspect it
        return make_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``weavek`` script: errors become one line on stderr.

    Bad usage exits 2; a command that ran and failed (:class:`CommandError`) exits 1.
    """
    try:
        pm = _plugin_manager()
        app = make_app(_command(sys.argv[1:]))
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

# Hookspecs are never called, only read for their signatures, so their bodies stay empty.
# mypy: disable-error-code="empty-body"
"""Every hook weavek calls, with its contract.

Hooks are plain synchronous calls made by the peer's shell, never by the pure
core. They come in three groups:

* **registration** hooks return the classes a plugin provides, one hook per
  family (transport, init strategy, store, runtime); the shell builds a
  ``{name: class}`` registry per family from them and picks one by the name
  the user typed (``--init seed=::1,::2``);
* the **CLI** hook lets a plugin add commands to ``weavek``;
* **notification** hooks tell observers what a running peer did.

Rules that hold for every hook:

* The shell calls hooks with keyword arguments only. An implementation may
  accept any subset of a hook's arguments, so a hook can gain arguments
  without breaking plugins written against an older kernel.
* No hook is ``firstresult`` or ``historic``: every implementation is called,
  and a plugin registered after a call does not see it.
* Hooks run on the peer's event loop and must return quickly; anything that
  waits (network, disk, subprocesses) belongs in the objects that
  registration hooks return (async context managers, see
  :mod:`weavek.interfaces`), or in a task the plugin owns.

``docs/reference/hooks.md`` documents the same hooks for plugin authors, and
``tests/plugins/test_hookspecs_documented.py`` fails when the two disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from .plugin import PROJECT

if TYPE_CHECKING:
    import typer

    from .core.address import CIDR, Range
    from .interfaces import InitStrategy, Runtime, Store, Transport

__all__ = [
    "weavek_add_commands",
    "weavek_address_allocated",
    "weavek_address_released",
    "weavek_init_strategies",
    "weavek_peer_started",
    "weavek_peer_stopping",
    "weavek_ring_changed",
    "weavek_runtimes",
    "weavek_stores",
    "weavek_transports",
]

_hookspec = pluggy.HookspecMarker(PROJECT)


# -------------------------------------------------------------------------
# Registration hooks: each returns classes with a unique ``name``.
# -------------------------------------------------------------------------


@_hookspec
def weavek_transports() -> list[type[Transport]]:
    """Return the transport classes this plugin provides.

    Called whenever the shell needs the transport registry: at ``weavek
    launch`` to resolve ``--transport NAME[=ARG]``, and by ``weavek plugins``.
    Results of all plugins are merged into one ``{name: class}`` map.

    :returns: :class:`~weavek.interfaces.Transport` subclasses, each with a
        non-empty ``name`` that no other installed transport uses.

    .. note:: Return the classes, do not instantiate them; the shell
       constructs the one the user picked. A duplicate ``name`` is an error
       naming both distributions.
    """


@_hookspec
def weavek_init_strategies() -> list[type[InitStrategy]]:
    """Return the init strategy classes this plugin provides.

    Called whenever the shell needs the init strategy registry: at ``weavek
    launch`` to resolve ``--init NAME[=ARG]``, and by ``weavek plugins``.

    :returns: :class:`~weavek.interfaces.InitStrategy` subclasses, each with a
        non-empty ``name`` that no other installed init strategy uses.

    .. note:: Strategies are pure policy objects the allocator drives (see
       :mod:`weavek.core.strategy`); they must not do I/O.
    """


@_hookspec
def weavek_stores() -> list[type[Store]]:
    """Return the store (persistence) classes this plugin provides.

    Called whenever the shell needs the store registry: at ``weavek launch``
    to resolve ``--persist NAME[=ARG]``, and by ``weavek plugins``.

    :returns: :class:`~weavek.interfaces.Store` subclasses, each with a
        non-empty ``name`` that no other installed store uses.
    """


@_hookspec
def weavek_runtimes() -> list[type[Runtime]]:
    """Return the container runtime classes this plugin provides.

    Called whenever the shell needs the runtime registry: at ``weavek
    launch`` to resolve ``--runtime NAME[=ARG]``, and by ``weavek plugins``.

    :returns: :class:`~weavek.interfaces.Runtime` subclasses, each with a
        non-empty ``name`` that no other installed runtime uses.
    """


# -------------------------------------------------------------------------
# CLI hook
# -------------------------------------------------------------------------


@_hookspec
def weavek_add_commands(app: typer.Typer) -> None:
    """Add commands to the ``weavek`` command line.

    Called once, when the CLI builds its app, after the built-in commands are
    added and before the command line is parsed.

    :param app: the root ``typer.Typer`` app. Add a group with
        ``app.add_typer(sub, name="...", rich_help_panel="Plugins")`` or a
        single command with ``app.command()``.

    .. note:: Do not import heavy dependencies here: the hook runs for every
       ``weavek`` invocation, ``--help`` included.
    """


# -------------------------------------------------------------------------
# Notification hooks: synchronous, cheap, must not block.
# -------------------------------------------------------------------------


@_hookspec
def weavek_peer_started(peer: object) -> None:
    """The peer is up: its transport, store and runtime are entered and it answers requests.

    Called once per peer, on the peer's event loop.

    :param peer: the running peer object (its name, ring and status).

    .. note:: Must not block. An exception raised here is logged by the peer
       and does not stop it.
    """


@_hookspec
def weavek_peer_stopping(peer: object) -> None:
    """The peer is about to stop: it no longer accepts requests.

    Called once per peer, before its transport, store and runtime are
    closed, so the peer object is still readable.

    :param peer: the running peer object.

    .. note:: Must not block. An exception raised here is logged by the peer
       and does not stop the shutdown.
    """


@_hookspec
def weavek_ring_changed(peer: object, before: tuple[Range, ...], after: tuple[Range, ...]) -> None:
    """The ranges this peer owns changed (Weave's local range tracker).

    Called after the change is persisted, whenever the ring changes what this
    peer owns: the ring's creation, a grant to or from another peer, a merge,
    an ``rmpeer`` takeover, a ``reset`` handover. Not called when only other
    peers' ownership changed.

    :param peer: the running peer object.
    :param before: the ranges this peer owned before, as sorted half-open
        ``(start, end)`` int pairs (:data:`weavek.core.address.Range`).
    :param after: the ranges it owns now, in the same form.

    .. note:: Must not block. A route or firewall updater should hand the
       new ranges to a task of its own and return.
    """


@_hookspec
def weavek_address_allocated(peer: object, ident: str, cidr: CIDR) -> None:
    """``ident`` now holds ``cidr``: an allocation or a claim succeeded.

    Called after the allocation is persisted and before the requester gets
    its reply. Asking again for an address an ident already holds does not
    call it again.

    :param peer: the running peer object.
    :param ident: who holds the address (a container id, or any string an
        API client chose).
    :param cidr: the address with the subnet's prefix length
        (:class:`weavek.core.address.CIDR`).

    .. note:: Must not block.
    """


@_hookspec
def weavek_address_released(peer: object, ident: str, cidr: CIDR) -> None:
    """``ident`` no longer holds ``cidr``: freed, deleted, or released after its container died.

    Called after the release is persisted.

    :param peer: the running peer object.
    :param ident: who held the address.
    :param cidr: the address it held (:class:`weavek.core.address.CIDR`).

    .. note:: Must not block.
    """

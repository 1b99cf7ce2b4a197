"""``weavek reset``: hand this peer's ranges to another, stop it, and forget its data.

Weave's order, and no prompt, as ``weave reset`` had none: ``DELETE /peer``
(the peer gives its ranges to its heir and tells everyone), a pause for that
news to leave, ``stop``, then the persisted data goes. The data is cleared
through the store plugin the peer was launched with (recorded beside its pid
file; ``--persist`` when there is no record): a store with a file (``path``,
as ``weavedb`` has) has the file deleted, as Weave deleted its DB; any other
(``etcd``, a third party's) is opened and told to clear everything, as a peer
does when its name or range changed.

A peer that does not answer (already stopped, crashed) cannot hand its
ranges over; its data is still cleared, with a warning that other peers need
``weavek rmpeer`` to take the ranges it owned.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import anyio
import typer

from weavek.core.effects import ClearStore
from weavek.interfaces import Store
from weavek.plugins import UnknownPluginError, make_plugin_manager, parse_plugin_arg, resolve

from ._client import CommandError, PeerClient
from ._options import DEFAULT_HTTP_ADDR, HttpAddr, parse_hostport
from ._rundir import peer_files
from .stop import stop_peer

__all__ = ["reset"]

HANDOVER_PAUSE = 0.5
"""Seconds between the handover and the stop, for the handover's broadcast to leave."""


def reset(
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    persist: Annotated[
        str | None,
        typer.Option(
            help="The peer's persistence plugin, NAME[=ARG], to clear "
            "(default: as the peer was launched, else weavedb).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 10.0,
) -> None:
    """Hand the peer's ranges to another peer, stop it and delete its persisted data."""
    files = peer_files(parse_hostport(http_addr)[1])
    record = files.read_record()
    store_text = persist or (record.persist if record is not None else "weavedb")
    store = _store(store_text)
    pid = files.running_pid()
    with PeerClient(http_addr) as client:
        answering = client.answers()
        if answering and pid is None:
            raise CommandError(
                f"the peer on {http_addr} was not launched by weavek (no pid file), so reset "
                "cannot stop it: stop it the way it was started, then run reset again"
            )
        if answering:
            client.call("DELETE", "/peer")
            time.sleep(HANDOVER_PAUSE)
        else:
            typer.echo(
                f"weavek: warning: no peer answering at {http_addr}: its ranges were not "
                "handed over (run 'weavek rmpeer' for it on another peer)",
                err=True,
            )
    stopped = stop_peer(http_addr, timeout=timeout)
    cleared = _clear(store)
    done = ["ranges handed over"] if answering else []
    if stopped is not None:
        done.append(f"peer stopped (pid {stopped})")
    typer.echo(f"peer reset: {', '.join([*done, cleared])}")


def _store(text: str) -> Store:
    try:
        name, arg = parse_plugin_arg(text)
        cls = resolve(make_plugin_manager(), "store", name)
    except (UnknownPluginError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--persist") from None
    return cls(arg)


def _clear(store: Store) -> str:
    """Forget everything ``store`` holds; what was cleared, for the user."""
    where = getattr(store, "path", None)
    if isinstance(where, Path):
        # A file store (weavedb): delete the file, as weave reset did, so even a
        # damaged one goes; SQLite's journal files go with it.
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                where.with_name(where.name + suffix).unlink(missing_ok=True)
        except OSError as err:
            raise CommandError(f"could not delete the peer's data: {err}") from None
        return f"deleted {where}"
    try:
        anyio.run(_clear_store, store)
    except Exception as err:  # a plugin's own error: one line, whatever its class
        raise CommandError(f"could not clear the peer's data ({store.name}): {err}") from None
    return f"cleared the {store.name} store"


async def _clear_store(store: Store) -> None:
    async with store:
        await store.load()
        await store.apply([ClearStore("weavek reset")])

"""``weavek stop``: SIGTERM the peer on ``--http-addr``, wait, and SIGKILL it if it will not go.

The peer is found by the pid file it (or ``weavek launch``) wrote, named by
the HTTP port. Stopping keeps the peer's ranges and data, as ``weave stop``
did: a peer started again comes back with its addresses. ``weavek reset``
is the one that gives them away.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Annotated

import typer

from ._client import CommandError, PeerClient
from ._options import DEFAULT_HTTP_ADDR, HttpAddr, parse_hostport
from ._rundir import peer_files, run_dir, wait_gone

__all__ = ["stop", "stop_peer"]


def stop(
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 10.0,
) -> None:
    """Stop the peer whose HTTP API is on --http-addr (its data stays)."""
    pid = stop_peer(http_addr, timeout=timeout)
    if pid is None:
        with PeerClient(http_addr) as client:
            if client.answers():
                raise CommandError(
                    f"no peer launched by weavek on {http_addr} (no pid file in {run_dir()}), "
                    "but something answers there: stop it the way it was started"
                )
        raise CommandError(f"no peer running on {http_addr}")
    typer.echo(f"peer stopped (pid {pid})")


def stop_peer(http_addr: str, *, timeout: float) -> int | None:
    """Stop the peer on ``http_addr``; its pid, or None when no peer ran there."""
    files = peer_files(parse_hostport(http_addr)[1])
    pid = files.running_pid()
    if pid is None:
        files.remove()  # stale, if anything
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout):
        typer.echo(
            f"weavek: warning: the peer (pid {pid}) did not stop within {timeout:g} s; killing it",
            err=True,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)
    files.remove(only_pid=pid)
    return pid

"""Running a launched peer: in this process until a signal, or as a detached background process.

The foreground peer is :func:`weavek.node.peer.run_peer` under anyio. It
writes its pid file and launch record (see :mod:`weavek.cli._rundir`) so that
``weavek stop`` and ``weavek reset`` find it however it was started -- by
``weavek launch``, by systemd, by hand -- and removes them when it exits.
SIGTERM and SIGINT cancel the peer's task group; the peer's own cleanup runs
and the process exits 0.

The background launcher starts ``python -m weavek launch --foreground`` in a
new session, stdin from /dev/null and output appended to the log beside the
pid file, then polls the HTTP API until it answers. The password travels in
the child's environment, never on its command line, where ``ps`` would show it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
import pluggy
import typer

from weavek.node.config import PeerConfig

from ._client import CommandError, PeerClient
from ._options import parse_hostport
from ._rundir import LaunchRecord, PeerFiles, peer_files

__all__ = ["ENV_LAUNCH_TIMEOUT", "LOG_TAIL_LINES", "run_foreground", "start_background"]

ENV_LAUNCH_TIMEOUT: Final = "WEAVEK_LAUNCH_TIMEOUT"
"""Seconds a background launch waits for the peer to answer (default 20)."""
LOG_TAIL_LINES: Final = 20

log = logging.getLogger("weavek.cli")


def run_foreground(
    config: PeerConfig, pm: pluggy.PluginManager, *, http_addr: str, persist: str
) -> None:
    """Run the peer until SIGTERM or SIGINT, or until it stops by itself.

    :raises CommandError: when the peer cannot start or fails.
    """
    logging.basicConfig(
        level=os.environ.get("WEAVEK_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    files = peer_files(config.http[1])
    me = os.getpid()
    files.write_pid(me)
    files.write_record(LaunchRecord(me, http_addr, persist))
    try:
        anyio.run(_serve, config, pm)
    except CommandError:
        raise
    except Exception as err:  # one line for the user, the details in the log when asked
        cause = _leaf(err)
        log.debug("the peer failed", exc_info=cause)
        if isinstance(cause, OSError):
            raise CommandError(f"the peer could not start: {cause}") from None
        raise CommandError(f"the peer failed: {type(cause).__name__}: {cause}") from None
    finally:
        files.remove(only_pid=me)
    log.info("peer stopped")


async def _serve(config: PeerConfig, pm: pluggy.PluginManager) -> None:
    from weavek.node.peer import run_peer

    peer: Callable[..., Awaitable[Any]] = partial(run_peer, config, pm=pm)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await tg.start(_run_then_cancel, peer, tg.cancel_scope)


async def _run_then_cancel(
    peer: Callable[..., Awaitable[Any]],
    scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await peer(task_status=task_status)
    log.info("the peer stopped by itself")
    scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


def _leaf(err: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def start_background(args: list[str], *, http_addr: str, password: str | None) -> None:
    """Start ``weavek <args>`` detached and return once it answers on ``http_addr``.

    :raises CommandError: when it exits first, or does not answer in time
        (it is then stopped); the end of its log goes to stderr first.
    """
    files = peer_files(parse_hostport(http_addr)[1])
    env = dict(os.environ)
    if password is not None:
        env["WEAVEK_PASSWORD"] = password
    with open(files.log, "ab") as output:
        start = output.tell()
        child = subprocess.Popen(
            [sys.executable, "-m", "weavek", *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    files.write_pid(child.pid)
    timeout = float(os.environ.get(ENV_LAUNCH_TIMEOUT, "20"))
    deadline = time.monotonic() + timeout
    with PeerClient(http_addr) as client:
        while True:
            code = child.poll()
            if code is not None:
                files.remove(only_pid=child.pid)
                _show_tail(files.log, start)
                raise CommandError(
                    f"the peer exited (code {code}) before answering on {http_addr}; "
                    f"its log is {files.log}"
                )
            if client.answers():
                break
            if time.monotonic() >= deadline:
                _give_up(child, files)
                _show_tail(files.log, start)
                raise CommandError(
                    f"the peer did not answer on {http_addr} within {timeout:g} s, "
                    f"so it was stopped; its log is {files.log}"
                )
            # A poll while nothing listens is one refused TCP connect: poll often, so
            # that launch returns within a few milliseconds of the peer answering.
            time.sleep(0.02)
    typer.echo(f"peer launched (pid {child.pid}); HTTP API on {http_addr}; log: {files.log}")


def _give_up(child: subprocess.Popen[bytes], files: PeerFiles) -> None:
    child.terminate()
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    files.remove(only_pid=child.pid)


def _show_tail(path: Path, start: int) -> None:
    try:
        with open(path, "rb") as file:
            file.seek(start)
            text = file.read().decode(errors="replace")
    except OSError:
        return
    for line in text.splitlines()[-LOG_TAIL_LINES:]:
        typer.echo(f"  | {line}", err=True)

"""``weavek prime``: wait until the peer can allocate, showing why it waits.

``GET /ring`` answers once the ring exists (Weave's ``weave prime``); asking
also starts consensus if it was deferred. While it waits, the status line
from ``GET /status`` -- ``awaiting consensus (quorum: 2, known: 1)``,
``priming``, ... -- is shown on stderr with the time elapsed, refreshed every
half second: a spinner on a terminal, a new line whenever it changes
otherwise (logs, CI).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Final

import httpx
import typer

from ._client import CommandError, PeerClient, error_text
from ._options import DEFAULT_HTTP_ADDR, HttpAddr

if TYPE_CHECKING:
    from rich.status import Status

__all__ = ["prime"]

REFRESH: Final = 0.5


def prime(
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the ring; 0 waits forever.")
    ] = 60.0,
) -> None:
    """Wait until the peer has a ring and can allocate; exit 1 if not ready in time."""
    with PeerClient(http_addr) as client:
        status_line(client)  # fails at once, with the usual line, when no peer answers
        waiter = _Prime(client, timeout)
        waiter.start()
        started = time.monotonic()
        with _Display() as display:
            while not waiter.done.wait(REFRESH):
                elapsed = time.monotonic() - started
                line = status_line(client)
                if timeout and elapsed >= timeout:
                    raise CommandError(f"not ready after {timeout:g} s: {line}")
                display.update(f"waiting for the ring ({elapsed:.0f} s): {line}")
        if waiter.error is not None:
            raise waiter.error
        typer.echo(status_line(client), err=True)


def status_line(client: PeerClient) -> str:
    """The ``Status:`` line of ``GET /status``, without its label."""
    body = client.request("GET", "/status", timeout=2.0).text
    for line in body.splitlines():
        label, sep, value = line.strip().partition(":")
        if sep and label == "Status":
            return value.strip()
    return " ".join(body.split()) or "no status"


class _Prime(threading.Thread):
    """``GET /ring`` on its own thread, so the display can refresh meanwhile."""

    def __init__(self, client: PeerClient, timeout: float) -> None:
        super().__init__(daemon=True, name="weavek-prime")
        self.client = client
        self.timeout = timeout
        self.done = threading.Event()
        self.error: CommandError | None = None

    def run(self) -> None:
        try:
            # The display enforces --timeout; this only has to outlast it.
            wait = self.timeout + 5 if self.timeout else 365 * 24 * 3600.0
            response = self.client.request("GET", "/ring", timeout=wait)
            if response.status_code >= 400:
                self.error = CommandError(error_text(response))
        except CommandError as err:
            self.error = err
        except httpx.HTTPError as err:  # the client closed under us at exit
            self.error = CommandError(str(err))
        finally:
            self.done.set()


class _Display:
    """A spinner line on a terminal (rich, if installed), else a line whenever the text changes."""

    def __init__(self) -> None:
        self._last = ""
        self._status: Status | None = None
        if sys.stderr.isatty():
            try:
                from rich.console import Console
            except ImportError:  # typer-slim: no rich
                return
            self._status = Console(stderr=True).status("waiting for the ring")

    def __enter__(self) -> _Display:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)
            return
        shown = text.partition(": ")[2]
        if shown != self._last:
            self._last = shown
            typer.echo(text, err=True)

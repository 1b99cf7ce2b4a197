"""Talking to etcd: one aetcd client per endpoint, failing over between them.

Every call goes to the endpoint that answered last; when it cannot be
reached (refused, timed out, no leader) the next one is tried, and when none
answers the call raises :class:`~weavek.interfaces.StoreUnavailable` with one
line naming the endpoints and the last error. The caller retries later; gRPC
reconnects by itself (with a short backoff, set below, so a restarted etcd is
noticed within half a second).

Errors that retrying cannot cure (a request etcd calls invalid, a refused
login) raise :class:`~weavek_etcd.errors.EtcdStoreError` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import anyio

from weavek.interfaces import StoreUnavailable

from .endpoints import EtcdTarget
from .errors import EtcdStoreError

__all__ = ["Connection"]

T = TypeVar("T")

_OPTIONS: dict[str, Any] = {
    # Reconnect quickly after etcd comes back (gRPC's defaults back off up to two minutes).
    "grpc.initial_reconnect_backoff_ms": 50,
    "grpc.min_reconnect_backoff_ms": 50,
    "grpc.max_reconnect_backoff_ms": 500,
    # A restore reads every key of a peer in one response.
    "grpc.max_receive_message_length": 1 << 30,
    "grpc.max_send_message_length": 16 << 20,
}
_FATAL = (
    aetcd.exceptions.InvalidArgumentError,
    aetcd.exceptions.UnauthenticatedError,
    aetcd.exceptions.PreconditionFailedError,
)


class Connection:
    """Clients for every endpoint of ``target``; :meth:`call` runs an operation on one that answers.

    :param timeout: seconds each attempt may take on one endpoint.
    """

    def __init__(self, target: EtcdTarget, where: str, timeout: float = 5.0) -> None:
        self.target = target
        self.where = where
        self.timeout = timeout
        self._clients = [
            aetcd.Client(host, port, timeout=timeout, options=_OPTIONS)
            for host, port in target.endpoints
        ]
        self._urls = [f"http://{h}:{p}" for h, p in target.endpoints]
        self._current = 0
        self.problem: str | None = None
        """One line while etcd cannot be reached (the last call failed), else None."""

    async def call(self, what: str, operation: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """``operation(client)`` on the first endpoint that answers, the last good one first.

        An operation may run on more than one endpoint when the first fails
        midway (its outcome unknown), so it must be safe to repeat.
        """
        n = len(self._clients)
        errors: list[str] = []
        for step in range(n):
            index = (self._current + step) % n
            try:
                # gRPC has its own deadline; this bounds what happens around it (connecting).
                with anyio.fail_after(2 * self.timeout):
                    result = await operation(self._clients[index])
            except _FATAL as exc:
                raise EtcdStoreError(self.where, f"{what} refused by etcd: {exc}") from exc
            except (TimeoutError, aetcd.exceptions.ClientError, OSError) as exc:
                errors.append(f"{self._urls[index]}: {_one_line(exc)}")
                continue
            self._current = index
            self.problem = None
            return result
        self.problem = f"etcd unreachable ({'; '.join(errors)}); {what} will be retried"
        raise StoreUnavailable(self.problem)

    async def close(self) -> None:
        for client in self._clients:
            # Going away: a broken channel may fail to close, or take long; neither may block.
            with contextlib.suppress(Exception), anyio.move_on_after(self.timeout):
                await client.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    # gRPC says "failed to connect to all addresses; last error: UNKNOWN: ipv4:...: Failed
    # to connect to remote host: Connection refused"; the end is what an operator needs.
    _, found, cause = text.rpartition("Failed to connect to remote host: ")
    return (cause if found else text)[:160]

"""The ``docker`` runtime: Docker containers, through the Docker Engine API.

``--runtime docker[=ADDRESS]``: ADDRESS is the daemon's address as Docker
writes it (``unix:///var/run/docker.sock``, ``tcp://host:2375``); without one,
``$DOCKER_HOST``, else ``unix:///var/run/docker.sock``.

The client is the Docker SDK for Python (``docker``), Docker's own, which is
synchronous: every call runs in a worker thread (:func:`anyio.to_thread.run_sync`),
so the runtime works under any anyio backend. A container's network namespace
is ``/proc/PID/ns/net`` of its init process, so the peer must see dockerd's
process IDs (run it in the host's PID namespace, as Weave did); the veth,
addresses and route are :mod:`weavek_netns.plumbing`'s.

One background task follows the daemon's container events (``start``,
``die``, ``destroy``) and hands them to the peer. When the daemon cannot be
reached it says so in :meth:`DockerRuntime.health` and reconnects with
backoff; on every (re)connection it compares what it saw last with what
exists now (:class:`weavek_netns.daemon.DaemonRuntime`, shared with the
containerd runtime), so containers that died or were removed meanwhile are
reported too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import anyio
import docker  # type: ignore[import-untyped,unused-ignore]  # typed only with types-docker
import docker.errors  # type: ignore[import-untyped,unused-ignore]
import requests
import urllib3.exceptions

from weavek.core.address import CIDR
from weavek.interfaces import ContainerNotFound, RuntimeEvent
from weavek_netns.daemon import DaemonRuntime, Seen, first_line

__all__ = ["DEFAULT_ADDRESS", "DockerRuntime", "DockerUnavailable", "event_of"]

T = TypeVar("T")

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
# Paused containers keep their processes and namespace: still attached, not dead.
_LIVE_STATES = frozenset({"running", "paused"})
_ACTIONS: dict[str, Seen] = {
    "create": "created",
    "start": "started",
    "die": "died",
    "destroy": "destroyed",
}
# What "the daemon is not there" looks like through the SDK and requests.
# A stream cut by a daemon that stops mid-chunk raises ChunkedEncodingError or urllib3's errors.
_UNREACHABLE = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


class DockerUnavailable(Exception):
    """The Docker daemon cannot be reached; the message says where, in one line."""


class DockerRuntime(DaemonRuntime):
    """Attaches Docker containers to the bridge; reports their deaths to the peer."""

    name = "docker"
    daemon = "docker daemon"
    unreachable = (DockerUnavailable, docker.errors.DockerException, *_UNREACHABLE)

    def __init__(
        self,
        arg: str | None,
        *,
        deliver: Callable[[RuntimeEvent], Any],
        bridge: str = "weavek",
        universe: CIDR | None = None,
        **kwargs: Any,
    ) -> None:
        # Keywords a newer shell may pass are accepted and ignored (see weavek.interfaces).
        super().__init__(arg, deliver=deliver, bridge=bridge, universe=universe)
        self.address = arg or os.environ.get("DOCKER_HOST") or DEFAULT_ADDRESS
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- runtime -------------------------------------------------------------

    async def resolve(self, container: str) -> str | None:
        """The full ID of the container named ``container`` (a name, or a full or short ID)."""
        wanted = container.removeprefix("/")  # Docker shows names as "/web"
        if not wanted or "/" in wanted:
            return None  # not a name or ID; the API would take it for a path
        try:
            info = await self._call(lambda api: api.inspect_container(wanted))
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code is not None and 400 <= error.status_code < 500:
                return None  # "invalid container name", ambiguous short ID ...
            raise DockerUnavailable(f"docker daemon at {self.address}: {error}") from None
        ident: str = info["Id"]
        return ident

    async def running(self) -> frozenset[str]:
        """Every container that exists, running or stopped (a stopped one may start again)."""
        return frozenset(await self._call(_all_containers))

    # -- the daemon ----------------------------------------------------------

    def _api(self) -> docker.APIClient:
        """The client, made on first use: ``version="auto"`` asks the daemon which API it speaks."""
        with self._client_lock:
            if self._client is None:
                self._client = docker.APIClient(
                    base_url=self.address, version="auto", timeout=30, max_pool_size=64
                )
            return self._client

    async def _call(self, call: Callable[[docker.APIClient], T]) -> T:
        """``call(client)`` in a worker thread; unreachable daemon -> :class:`DockerUnavailable`."""

        def work() -> T:
            return call(self._api())

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except docker.errors.APIError:
            raise
        except (docker.errors.DockerException, *_UNREACHABLE) as error:
            raise DockerUnavailable(
                f"docker daemon unreachable at {self.address}: {first_line(error)}"
            ) from None

    async def _pid(self, ident: str) -> int:
        """The host pid of the container's init; ContainerNotFound if absent or not running."""
        try:
            info = await self._call(lambda api: api.inspect_container(ident))
        except docker.errors.NotFound:
            raise ContainerNotFound(f"no docker container {ident}") from None
        state = info.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            raise ContainerNotFound(f"docker container {ident[:12]} is not running")
        return pid

    def _vanished(self, ident: str) -> str:
        return f"container {ident[:12]} stopped while being attached"

    # -- events --------------------------------------------------------------

    async def _follow(self) -> None:
        """Subscribe, reconcile with what exists now, then deliver events until the stream ends."""
        stream = await self._call(
            lambda api: api.events(decode=True, filters={"type": ["container"]})
        )
        try:
            await self._reconcile(await self._call(_all_containers))
            self._connected()
            events: Iterator[dict[str, Any]] = iter(stream)
            while True:
                event = await anyio.to_thread.run_sync(_next, events, abandon_on_cancel=True)
                if event is None:
                    raise DockerUnavailable("the event stream ended")
                await self._handle(event)
        finally:
            # Closing the response also wakes a worker thread still blocked reading it.
            stream.close()

    async def _handle(self, event: Mapping[str, Any]) -> None:
        decoded = event_of(event)
        if decoded is not None:
            action, ident = decoded
            await self._seen(_ACTIONS[action], ident)


def event_of(event: object) -> tuple[str, str] | None:
    """``(action, container ID)`` of a decoded Docker event we act on, else None.

    Docker 1.22+ sends ``Action`` and ``Actor.ID``; older daemons ``status`` and ``id``.
    Anything else (other actions, other shapes) is ignored, never an error.
    """
    if not isinstance(event, Mapping):
        return None
    action = event.get("Action") or event.get("status")
    actor = event.get("Actor")
    ident = (actor.get("ID") if isinstance(actor, Mapping) else None) or event.get("id")
    if not isinstance(action, str) or action not in _ACTIONS:
        return None
    if not isinstance(ident, str) or not ident:
        return None
    return action, ident


def _all_containers(api: docker.APIClient) -> dict[str, bool]:
    """Every container the daemon has: ID -> whether it runs."""
    listed = api.containers(all=True)
    return {row["Id"]: str(row.get("State", "")) in _LIVE_STATES for row in listed}


def _next(events: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The next decoded event, or None at the end of the stream."""
    return next(events, None)

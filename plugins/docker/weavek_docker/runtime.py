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
exists now (:func:`~weavek_docker.lifecycle.changes`), so containers that
died or were removed meanwhile are reported too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import docker  # type: ignore[import-untyped,unused-ignore]  # typed only with types-docker
import docker.errors  # type: ignore[import-untyped,unused-ignore]
import requests
import urllib3.exceptions

from weavek.core.address import CIDR
from weavek.core.events import ContainerDestroyed, ContainerDied, ContainerStarted
from weavek.interfaces import ContainerNotFound, Runtime, RuntimeEvent
from weavek_netns import plumbing

from .lifecycle import changes

__all__ = ["DEFAULT_ADDRESS", "DockerRuntime", "DockerUnavailable", "event_of"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
# Paused containers keep their processes and namespace: still attached, not dead.
_LIVE_STATES = frozenset({"running", "paused"})
_ACTIONS = frozenset({"create", "start", "die", "destroy"})
# What "the daemon is not there" looks like through the SDK and requests.
# A stream cut by a daemon that stops mid-chunk raises ChunkedEncodingError or urllib3's errors.
_UNREACHABLE = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


class DockerUnavailable(Exception):
    """The Docker daemon cannot be reached; the message says where, in one line."""


class DockerRuntime(Runtime):
    """Attaches Docker containers to the bridge; reports their deaths to the peer."""

    name = "docker"

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
        self._problem: str | None = None
        self._view: dict[str, bool] | None = None  # ident -> running, as last seen
        self._tasks: anyio.abc.TaskGroup | None = None
        self.connected = anyio.Event()
        """Set once the watcher has subscribed and reconciled (tests and benchmarks wait on it)."""

    # -- service -------------------------------------------------------------

    def health(self) -> str | None:
        return self._problem

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._watch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
            await self._tasks.__aexit__(exc_type, exc, tb)
            self._tasks = None
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

    async def attach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        pid = await self._pid(ident)
        await plumbing.attach_netns(
            f"/proc/{pid}/ns/net",
            ident=ident,
            cidrs=cidrs,
            bridge=self.bridge,
            universe=self.universe,
        )
        # The pid could have died and been reused between inspect and attach:
        # if the container is no longer the same process, undo and say it is gone.
        try:
            same = await self._pid(ident) == pid
        except ContainerNotFound:
            same = False
        if not same:
            await plumbing.detach_netns(f"/proc/{pid}/ns/net", ident=ident, cidrs=cidrs)
            raise ContainerNotFound(f"container {ident[:12]} stopped while being attached")

    async def detach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        try:
            netns = f"/proc/{await self._pid(ident)}/ns/net"
        except ContainerNotFound:
            netns = "/nonexistent"  # its namespace is gone: only the host end may remain
        await plumbing.detach_netns(netns, ident=ident, cidrs=cidrs)

    async def running(self) -> frozenset[str]:
        """Every container that exists, running or stopped (a stopped one may start again)."""
        return frozenset(await self._call(_all_containers))

    async def attached(self) -> frozenset[str]:
        """This daemon's containers with a veth pair on the bridge (other runtimes share it)."""
        return frozenset(await plumbing.attached(self.bridge)) & await self.running()

    async def expose(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.expose(self.bridge, cidrs)

    async def hide(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.hide(self.bridge, cidrs)

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
                f"docker daemon unreachable at {self.address}: {_first_line(error)}"
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

    # -- events --------------------------------------------------------------

    async def _watch(self) -> None:
        """Follow the daemon's container events for ever, reconnecting with backoff."""
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._follow()
            except (DockerUnavailable, docker.errors.DockerException, *_UNREACHABLE) as error:
                problem = f"docker daemon unreachable at {self.address}, reconnecting"
                if self._problem is None:
                    log.warning("%s: %s", problem, _first_line(error))
                self._problem = problem
                if self.connected.is_set():
                    self.connected = anyio.Event()
            await anyio.sleep(delay)
            delay = BACKOFF_FIRST if self._problem is None else min(delay * 2, BACKOFF_MAX)

    async def _follow(self) -> None:
        """Subscribe, reconcile with what exists now, then deliver events until the stream ends."""
        stream = await self._call(
            lambda api: api.events(decode=True, filters={"type": ["container"]})
        )
        try:
            now = await self._call(_all_containers)
            for change in changes(self._view, now):
                await self.deliver(change)
            self._view = dict(now)
            if self._problem is not None:
                log.warning("docker daemon at %s reachable again", self.address)
            self._problem = None
            self.connected.set()
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
        if decoded is None or self._view is None:
            return
        action, ident = decoded
        if action == "create":
            self._view[ident] = False
        elif action == "start":
            self._view[ident] = True
            await self.deliver(ContainerStarted(ident))
        elif action == "die":
            self._view[ident] = False
            await self.deliver(ContainerDied(ident))
        elif action == "destroy":
            self._view.pop(ident, None)
            await self.deliver(ContainerDestroyed(ident))


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

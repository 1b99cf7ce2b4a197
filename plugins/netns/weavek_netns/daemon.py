"""What the runtimes of container daemons (docker, containerd) share.

A daemon's container lives in ``/proc/PID/ns/net`` of its init process, so
attach and detach are :mod:`weavek_netns.plumbing` on that path, given the
pid. The daemon's events keep a view of its containers (ID -> running); one
background task follows them, says in :meth:`DaemonRuntime.health` when the
daemon cannot be reached, and reconnects with backoff. On every
(re)connection the view is compared with what exists now (:func:`changes`),
so containers that died or were removed meanwhile are reported too.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Literal, Self

import anyio
import anyio.abc

from weavek.core.address import CIDR
from weavek.core.events import ContainerDestroyed, ContainerDied, ContainerStarted
from weavek.interfaces import ContainerNotFound, Runtime, RuntimeEvent

from . import plumbing

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "DaemonRuntime", "Seen", "changes", "first_line"]

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0

Seen = Literal["created", "started", "died", "destroyed"]
"""What an event of the daemon says happened to a container."""


def changes(before: Mapping[str, bool] | None, now: Mapping[str, bool]) -> list[RuntimeEvent]:
    """Events turning view ``before`` into ``now`` (ident -> running).

    With no earlier view (the first connection), every container that exists
    but does not run is reported dead: an allocation made for it while it
    was running, or with the check-alive flag after it died, is then released
    after the grace period instead of leaking.
    """
    if before is None:
        return [ContainerDied(ident) for ident, running in sorted(now.items()) if not running]
    events: list[RuntimeEvent] = [
        ContainerDestroyed(ident) for ident in sorted(before.keys() - now.keys())
    ]
    for ident, running in sorted(now.items()):
        was = before.get(ident)
        if running and was is False:
            events.append(ContainerStarted(ident))
        elif not running and was is not False:
            events.append(ContainerDied(ident))
    return events


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


class DaemonRuntime(Runtime):
    """A runtime whose containers a daemon runs, attached through the pid of their init.

    A subclass sets :attr:`daemon` and :attr:`unreachable`, and provides
    :meth:`_pid`, :meth:`_vanished`, :meth:`running` and :meth:`_follow`.
    """

    daemon: ClassVar[str]
    """How messages name the daemon (``docker daemon``, ``containerd``)."""
    unreachable: ClassVar[tuple[type[BaseException], ...]]
    """What :meth:`_follow` raises when the daemon cannot be reached."""

    def __init__(
        self,
        arg: str | None,
        *,
        deliver: Callable[[RuntimeEvent], Awaitable[None]],
        bridge: str = "weavek",
        universe: CIDR | None = None,
    ) -> None:
        super().__init__(arg, deliver=deliver, bridge=bridge, universe=universe)
        self.address = ""
        """The daemon's address, for messages (set by the subclass)."""
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
        self._close()

    def _close(self) -> None:
        """Close the connection to the daemon, if any."""

    # -- runtime -------------------------------------------------------------

    async def attach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        pid = await self._pid(ident)
        netns = f"/proc/{pid}/ns/net"
        await plumbing.attach_netns(
            netns, ident=ident, cidrs=cidrs, bridge=self.bridge, universe=self.universe
        )
        # The container could have stopped and its pid been reused between the
        # lookup and the attach: if it is no longer the same process, undo.
        try:
            same = await self._pid(ident) == pid
        except ContainerNotFound:
            same = False
        if not same:
            await plumbing.detach_netns(netns, ident=ident, cidrs=cidrs)
            raise ContainerNotFound(self._vanished(ident))

    async def detach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        try:
            netns = f"/proc/{await self._pid(ident)}/ns/net"
        except ContainerNotFound:
            netns = "/nonexistent"  # its namespace is gone: only the host end may remain
        await plumbing.detach_netns(netns, ident=ident, cidrs=cidrs)

    async def attached(self) -> frozenset[str]:
        """This daemon's containers with a veth pair on the bridge (other runtimes share it)."""
        return frozenset(await plumbing.attached(self.bridge)) & await self.running()

    async def expose(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.expose(self.bridge, cidrs)

    async def hide(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.hide(self.bridge, cidrs)

    @abstractmethod
    async def _pid(self, ident: str) -> int:
        """The host pid of the container's init; ContainerNotFound if absent or not running."""

    @abstractmethod
    def _vanished(self, ident: str) -> str:
        """The error of an attach whose container stopped meanwhile."""

    # -- events --------------------------------------------------------------

    async def _watch(self) -> None:
        """Follow the daemon's events for ever, reconnecting with backoff."""
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._follow()
            except* self.unreachable as group:  # a reader's task group may wrap it
                self._lost(group.exceptions[0])
            await anyio.sleep(delay)
            delay = BACKOFF_FIRST if self._problem is None else min(delay * 2, BACKOFF_MAX)

    @abstractmethod
    async def _follow(self) -> None:
        """Subscribe, :meth:`_reconcile`, then :meth:`_seen` each event until the stream ends."""

    def _lost(self, error: BaseException) -> None:
        problem = f"{self.daemon} unreachable at {self.address}, reconnecting"
        if self._problem is None:
            log.warning("%s: %s", problem, first_line(error))
        self._problem = problem
        if self.connected.is_set():
            self.connected = anyio.Event()

    async def _reconcile(self, now: Mapping[str, bool]) -> None:
        """Report what changed since the last view, then keep ``now`` as the view."""
        for change in changes(self._view, now):
            await self.deliver(change)
        self._view = dict(now)

    def _connected(self) -> None:
        """The subscription is up and reconciled: healthy again."""
        if self._problem is not None:
            log.warning("%s at %s reachable again", self.daemon, self.address)
        self._problem = None
        self.connected.set()

    async def _seen(self, what: Seen, ident: str) -> None:
        """Update the view with one event and hand the peer what it means."""
        view = self._view
        if view is None:
            return
        if what == "created":
            view[ident] = False
        elif what == "started":
            view[ident] = True
            await self.deliver(ContainerStarted(ident))
        elif what == "died":
            view[ident] = False
            await self.deliver(ContainerDied(ident))
        else:
            view.pop(ident, None)
            await self.deliver(ContainerDestroyed(ident))

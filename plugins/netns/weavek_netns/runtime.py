"""The ``netns`` runtime: a container is a named network namespace or a process.

What a user may type, and the ident the peer files addresses under:

* ``NAME``, ``netns:NAME`` or ``/run/netns/NAME`` (``ip netns add NAME``):
  ident ``netns:NAME``, namespace ``/run/netns/NAME``;
* ``1234`` or ``pid:1234``: ident ``pid:1234``, namespace ``/proc/1234/ns/net``.

The prefixes keep these idents apart from each other and from other
runtimes' (Docker's hex IDs, ``weave:expose``). A named namespace lives
until it is deleted: deletion is :class:`~weavek.core.events.ContainerDestroyed`
(addresses released at once). A process dies: that is
:class:`~weavek.core.events.ContainerDied`, released after the grace period.
Either way the host end of its veth pair is removed at once, so the pair goes
even when some other process keeps the namespace alive.

Deaths are seen through a pidfd per attached process (readable when it
exits; no polling) and a cheap poll of the attached named namespaces.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import ClassVar, Final, Self

import anyio
from anyio.abc import TaskGroup

from weavek.core.address import CIDR
from weavek.core.events import ContainerDestroyed, ContainerDied
from weavek.interfaces import ContainerNotFound, Runtime, RuntimeEvent

from . import plumbing

__all__ = ["NETNS_DIR", "NetnsRuntime"]

NETNS_DIR: Final = "/run/netns"
"""Where ``ip netns add`` mounts named namespaces (``/var/run`` links here on Debian)."""

POLL_INTERVAL: Final = 0.25
"""Seconds between checks that attached named namespaces still exist."""

log = logging.getLogger("weavek.netns")

_NOT_CONTAINERS = (
    ("/proc/thread-self/ns/net", "the host's own"),
    ("/proc/1/ns/net", "the machine's own (PID 1's)"),
)


class NetnsRuntime(Runtime):
    """Attaches named network namespaces and processes to the host's bridge.

    ``--runtime netns`` uses ``/run/netns``; ``--runtime netns=DIR`` looks
    for named namespaces in DIR instead.
    """

    name: ClassVar[str] = "netns"

    def __init__(
        self,
        arg: str | None,
        *,
        deliver: Callable[[RuntimeEvent], Awaitable[None]],
        bridge: str = "weavek",
        universe: CIDR | None = None,
    ) -> None:
        super().__init__(arg, deliver=deliver, bridge=bridge, universe=universe)
        self.netns_dir = os.path.abspath(arg) if arg else NETNS_DIR
        # ident -> (st_dev, st_ino) of the named namespace we attached, to notice a replacement.
        self._named: dict[str, tuple[int, int]] = {}
        self._pids: set[str] = set()  # the processes a task waits on
        self._tasks: TaskGroup | None = None
        self._problem: str | None = None

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = await anyio.create_task_group().__aenter__()
        self._tasks.start_soon(self._poll_named)
        # After a restart: watch again the containers still on the bridge.
        for ident in await plumbing.attached(self.bridge):
            with contextlib.suppress(ContainerNotFound):
                self._watch(ident, self.path_of(ident))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.cancel_scope.cancel()
            await tasks.__aexit__(None, None, None)

    def health(self) -> str | None:
        return self._problem

    # -- the Runtime interface ---------------------------------------------

    async def resolve(self, container: str) -> str | None:
        """``netns:NAME`` or ``pid:N`` for what the user typed, or None if no such thing exists.

        :raises ContainerNotFound: the process shares the peer's own namespace
            or PID 1's (attaching it would wire the host itself).
        """
        pid = _pid_of(container)
        if pid is not None:
            if not os.path.exists(f"/proc/{pid}"):
                return None
            # Wiring the host itself would put a container interface and a range
            # address beside the host's own: refuse the peer's namespace and PID 1's.
            for other, whose in _NOT_CONTAINERS:
                if _same_file(f"/proc/{pid}/ns/net", other):
                    raise ContainerNotFound(
                        f"process {pid} is in {whose} network namespace, not a container"
                    )
            return f"pid:{pid}"
        name = self._name_of(container)
        if name is None or not os.path.exists(os.path.join(self.netns_dir, name)):
            return None
        return f"netns:{name}"

    async def attach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        path = self.path_of(ident)
        await plumbing.attach_netns(
            path, ident=ident, cidrs=cidrs, bridge=self.bridge, universe=self.universe
        )
        self._watch(ident, path)

    async def detach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        await plumbing.detach_netns(self.path_of(ident), ident=ident, cidrs=cidrs)

    async def running(self) -> frozenset[str]:
        """Every named namespace and every live process: what may still hold addresses."""
        found = {f"pid:{entry}" for entry in os.listdir("/proc") if entry.isdigit()}
        with contextlib.suppress(FileNotFoundError):
            found |= {f"netns:{entry}" for entry in os.listdir(self.netns_dir)}
        return frozenset(found)

    async def attached(self) -> frozenset[str]:
        """Namespaces and processes with a veth pair on the bridge (other runtimes share it)."""
        found = await plumbing.attached(self.bridge)
        return frozenset(ident for ident in found if ident.startswith(("netns:", "pid:")))

    async def expose(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.expose(self.bridge, cidrs)

    async def hide(self, cidrs: Sequence[CIDR]) -> None:
        await plumbing.hide(self.bridge, cidrs)

    # -- idents ------------------------------------------------------------

    def path_of(self, ident: str) -> str:
        """The namespace file of an ident this runtime made."""
        kind, _, rest = ident.partition(":")
        if kind == "pid" and rest.isdigit():
            return f"/proc/{rest}/ns/net"
        if kind == "netns" and _valid_name(rest):
            return os.path.join(self.netns_dir, rest)
        raise ContainerNotFound(f"{ident!r} is not a netns runtime ident (pid:N or netns:NAME)")

    def _name_of(self, container: str) -> str | None:
        if container.startswith("netns:"):
            name = container.removeprefix("netns:")
        elif "/" in container:
            parent, name = os.path.split(os.path.abspath(container))
            if os.path.realpath(parent) != os.path.realpath(self.netns_dir):
                return None
        else:
            name = container
        return name if _valid_name(name) else None

    # -- watching for deaths -----------------------------------------------

    def _watch(self, ident: str, path: str) -> None:
        if self._tasks is None:
            return
        if ident.startswith("netns:"):
            with contextlib.suppress(OSError):
                info = os.stat(path)
                self._named[ident] = (info.st_dev, info.st_ino)
            return
        if ident in self._pids:
            return
        pid = int(ident.removeprefix("pid:"))
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._tasks.start_soon(self._gone, ident, False)
            return
        self._pids.add(ident)
        self._tasks.start_soon(self._wait_exit, ident, pidfd)

    async def _wait_exit(self, ident: str, pidfd: int) -> None:
        try:
            await anyio.wait_readable(pidfd)  # a pidfd becomes readable when its process exits
            await self._gone(ident, False)
        finally:
            self._pids.discard(ident)
            os.close(pidfd)

    async def _poll_named(self) -> None:
        while True:
            await anyio.sleep(POLL_INTERVAL)
            for ident, seen in list(self._named.items()):
                try:
                    info = os.stat(self.path_of(ident))
                    if (info.st_dev, info.st_ino) == seen:
                        continue
                except OSError as error:
                    if error.errno not in (errno.ENOENT, errno.ENOTDIR):
                        self._problem = f"cannot watch {ident}: {error}"
                        continue
                del self._named[ident]
                await self._gone(ident, True)

    async def _gone(self, ident: str, destroyed: bool) -> None:
        log.info("container %s %s", ident, "deleted" if destroyed else "exited")
        try:
            await plumbing.remove_veth(ident)
        except OSError as error:  # the host end stays; the addresses are still released
            log.warning("removing the veth of %s: %s", ident, error)
        await self.deliver(ContainerDestroyed(ident) if destroyed else ContainerDied(ident))


def _pid_of(container: str) -> int | None:
    text = container.removeprefix("pid:")
    if text.isascii() and text.isdigit() and 0 < len(text) <= 10:
        pid = int(text)
        return pid if pid > 0 else None
    return None


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and "\0" not in name


def _same_file(one: str, other: str) -> bool:
    try:
        a, b = os.stat(one), os.stat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

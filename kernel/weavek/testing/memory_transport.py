"""Real peers in one process: an in-memory transport, and a plugin that offers it.

:class:`MemoryNetwork` stands for the mesh. Every
:class:`MemoryTransport` attached to it (one per running
:class:`~weavek.node.peer.Peer`) can reach the others in its part of the
network; :meth:`MemoryNetwork.partition` splits it and
:meth:`MemoryNetwork.heal` joins it again. Each change of who is reachable
reaches every peer as :class:`~weavek.core.events.PeersChanged`, and each
message as :class:`~weavek.core.events.GossipReceived`, through the peer's
``deliver`` callback -- exactly what a real transport does, with no sockets.

Messages are queued per receiver without bound and handed over by the
receiver's own task, so two actors sending to each other never wait on one
another.

:class:`MemoryPlugin` registers the transport (``--transport memory``) and an
in-memory store (``--persist memory=KEY``, kept across restarts of a peer
under the same key, counting its :meth:`~weavek.interfaces.Store.apply`
calls) with a plugin manager::

    net = MemoryNetwork()
    plugin = MemoryPlugin(net)
    pm = make_plugin_manager(plugins=[plugin])
    config = PeerConfig(name=1, transport="memory", persist="memory=a", ...)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import ClassVar, Self

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from weavek.core.effects import Effect
from weavek.core.events import GossipReceived, PeersChanged, Via
from weavek.core.peer import format_peer_name
from weavek.interfaces import Store, Transport, TransportEvent
from weavek.plugin import hookimpl

from .store import AsyncMemoryStore, MemoryStore

__all__ = ["MemoryNetwork", "MemoryPlugin", "MemoryTransport"]

log = logging.getLogger("weavek.testing")


class MemoryNetwork:
    """The peers' shared medium: who is attached, and which of them can reach which."""

    def __init__(self) -> None:
        self._inboxes: dict[int, MemoryObjectSendStream[TransportEvent]] = {}
        self._groups: dict[int, int] = {}
        self.refusals: list[tuple[int, int, str]] = []
        """``(refuser, refused, reason)`` for every refused connection."""
        self.sent = 0

    def attach(self, me: int, inbox: MemoryObjectSendStream[TransportEvent]) -> None:
        self._inboxes[me] = inbox
        self._announce()

    def detach(self, me: int) -> None:
        if self._inboxes.pop(me, None) is not None:
            self._announce()

    def reachable(self, me: int) -> frozenset[int]:
        """The attached peers ``me`` can reach: those in its part of the network."""
        if me not in self._inboxes:
            return frozenset()
        group = self._groups.get(me, 0)
        return frozenset(p for p in self._inboxes if p != me and self._groups.get(p, 0) == group)

    def partition(self, *parts: Iterable[int]) -> None:
        """Split the network: each of ``parts`` can reach only itself (the rest form one more)."""
        self._groups = {peer: i + 1 for i, part in enumerate(parts) for peer in part}
        self._announce()

    def heal(self) -> None:
        """Join every part again."""
        self._groups = {}
        self._announce()

    def send(self, sender: int, dst: int, payload: bytes, via: Via) -> None:
        if dst in self.reachable(sender):
            self.sent += 1
            self._inboxes[dst].send_nowait(GossipReceived(sender, payload, via))

    def _announce(self) -> None:
        for peer, inbox in self._inboxes.items():
            inbox.send_nowait(PeersChanged(self.reachable(peer)))


class MemoryTransport(Transport):
    """A transport over a :class:`MemoryNetwork` (bound by :class:`MemoryPlugin`)."""

    name = "memory"
    network: ClassVar[MemoryNetwork]

    _tasks: TaskGroup

    async def __aenter__(self) -> Self:
        send, receive = anyio.create_memory_object_stream[TransportEvent](math.inf)

        async def hand_over() -> None:
            async with receive:
                async for event in receive:
                    await self.deliver(event)

        self._tasks = await anyio.create_task_group().__aenter__()
        self._tasks.start_soon(hand_over)
        self.network.attach(self.me, send)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.network.detach(self.me)
        self._tasks.cancel_scope.cancel()
        await self._tasks.__aexit__(None, None, None)

    async def send(self, peer: int, payload: bytes) -> None:
        self.network.send(self.me, peer, payload, Via.UNICAST)

    async def broadcast(self, payload: bytes) -> None:
        for peer in self.network.reachable(self.me):
            self.network.send(self.me, peer, payload, Via.BROADCAST)

    async def gossip(self, payload: bytes) -> None:
        for peer in self.network.reachable(self.me):
            self.network.send(self.me, peer, payload, Via.GOSSIP)

    async def refuse(self, peer: int, reason: str) -> None:
        log.warning("%s refuses %s: %s", format_peer_name(self.me), format_peer_name(peer), reason)
        self.network.refusals.append((self.me, peer, reason))


class CountingMemoryStore(AsyncMemoryStore):
    """An in-memory store kept in its plugin under ``--persist memory=KEY``."""

    plugin: ClassVar[MemoryPlugin]

    def __init__(self, arg: str | None = None, **_keywords: object) -> None:
        key = arg or ""
        backing = self.plugin.disks.setdefault(key, MemoryStore(0))
        super().__init__(arg, backing=backing)
        self.key = key

    async def apply(self, effects: Sequence[Effect]) -> None:
        self.plugin.applies[self.key] = self.plugin.applies.get(self.key, 0) + 1
        await super().apply(effects)


class MemoryPlugin:
    """A plugin object offering transport ``memory`` on ``network`` and store ``memory``.

    :attr:`disks` keeps each store's data by key across peer restarts;
    :attr:`applies` counts :meth:`Store.apply` calls by key.
    """

    def __init__(self, network: MemoryNetwork | None = None) -> None:
        self.network = network if network is not None else MemoryNetwork()
        self.disks: dict[str, MemoryStore] = {}
        self.applies: dict[str, int] = {}
        self.transport_class: type[Transport] = type(
            "MemoryTransport", (MemoryTransport,), {"network": self.network}
        )
        self.store_class: type[Store] = type(
            "CountingMemoryStore", (CountingMemoryStore,), {"plugin": self}
        )

    @hookimpl
    def weavek_transports(self) -> list[type[Transport]]:
        return [self.transport_class]

    @hookimpl
    def weavek_stores(self) -> list[type[Store]]:
        return [self.store_class]

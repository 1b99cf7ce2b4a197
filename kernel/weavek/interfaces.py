"""The base classes plugins subclass, one per family.

A registration hook (:mod:`weavek.hookspecs`) returns subclasses of these;
the user picks one per family by its :attr:`name` (``--transport tcp``,
``--init seed=::1,::2``, ``--persist weavedb``, ``--runtime docker``) and the
shell constructs it as ``cls(arg, **keywords)``, where ``arg`` is the text
after ``=`` or None.

:class:`InitStrategy` is a pure policy object the allocator drives (see
:mod:`weavek.core.strategy`). The other three touch the world, so they are
async context managers run under anyio: the shell enters each one in its task
group before the peer starts, calls its methods from the peer's tasks, and
leaves it when the peer stops. Start background tasks (listeners, event
watchers) in ``__aenter__`` and stop them in ``__aexit__``; the default
implementations do nothing.

The constructor keywords are the minimum each family needs today; the shell
may pass more as it grows, always as new keywords.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import ClassVar, Self

from .core.address import CIDR
from .core.effects import Effect
from .core.events import (
    ContainerDestroyed,
    ContainerDied,
    ContainerStarted,
    GossipReceived,
    PeersChanged,
)
from .core.snapshot import Snapshot
from .core.strategy import InitStrategy

__all__ = [
    "ContainerNotFound",
    "InitStrategy",
    "Runtime",
    "RuntimeEvent",
    "RuntimeUnsupported",
    "Service",
    "Store",
    "StoreUnavailable",
    "Transport",
    "TransportEvent",
]

TransportEvent = GossipReceived | PeersChanged
"""What a transport hands the peer: a message arrived, or who is reachable changed."""

RuntimeEvent = ContainerStarted | ContainerDied | ContainerDestroyed
"""What a runtime hands the peer about the containers it watches."""


class StoreUnavailable(Exception):
    """Raised by a :class:`Store` when its backing service cannot be reached (etcd or Docker down).

    The message says what is wrong in one line. The peer then acknowledges
    nothing that needed the write, keeps the writes and retries them until
    they succeed, and shows the message in status and API errors.
    Any other exception from a store is a bug or corrupt data and stops the peer.
    """


class ContainerNotFound(Exception):
    """Raised by a :class:`Runtime` for a container it does not know, or one that vanished."""


class RuntimeUnsupported(Exception):
    """Raised by a :class:`Runtime` for an operation it does not offer.

    ``expose`` without a bridge is the usual case.
    """


class Service:
    """An async context manager the shell enters before the peer starts and leaves when it stops."""

    name: ClassVar[str] = ""
    """What a user types to pick this plugin; unique within its family."""

    def __init__(self, arg: str | None) -> None:
        self.arg = arg
        """The text after ``=`` in ``NAME=ARG``, or None."""

    def health(self) -> str | None:
        """None while this service works; else one line saying what is wrong.

        Shown in ``weavek status`` and ``/report`` (e.g. ``docker daemon
        unreachable at unix:///run/docker.sock, reconnecting``). Cheap and
        synchronous: return what the service's own tasks last observed.
        """
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class Transport(Service, ABC):
    """Carries the peer's messages to other peers (Weave's gossip mesh).

    :param arg: the text after ``--transport NAME=``, or None.
    :param me: this peer's name.
    :param deliver: awaited for every message that arrives
        (:class:`~weavek.core.events.GossipReceived`) and whenever the set of
        reachable peers changes (:class:`~weavek.core.events.PeersChanged`).
        It may wait while the peer is busy; that is the transport's
        backpressure.

    Payloads are opaque bytes the allocator encoded; the transport frames
    them and never looks inside. Sends are best effort: the allocator retries
    what matters, so a send to an unreachable peer returns without error.
    """

    def __init__(
        self,
        arg: str | None,
        *,
        me: int,
        deliver: Callable[[TransportEvent], Awaitable[None]],
        nickname: str = "",
        listen: tuple[str, int] = ("0.0.0.0", 6783),
        peers: Sequence[str] = (),
        password: bytes | None = None,
    ) -> None:
        super().__init__(arg)
        self.me = me
        self.deliver = deliver
        self.nickname = nickname
        self.listen = listen
        """Where to accept connections from peers (port 0: any free port)."""
        self.peers = tuple(peers)
        """Addresses (``host[:port]``) to dial at start and re-dial when lost."""
        self.password = password
        """With a password, every connection is authenticated and encrypted."""

    @abstractmethod
    async def send(self, peer: int, payload: bytes) -> None:
        """Send to one peer, relayed through others when it is not a neighbour."""

    @abstractmethod
    async def broadcast(self, payload: bytes) -> None:
        """Send to every reachable peer."""

    @abstractmethod
    async def gossip(self, payload: bytes) -> None:
        """Send our current state to some neighbours; they pass it on in their own gossip."""

    @abstractmethod
    async def refuse(self, peer: int, reason: str) -> None:
        """Drop the connection ``peer``'s message came on and log ``reason`` (a foreign ring)."""


class Store(Service, ABC):
    """Keeps the peer's name, ring and allocations across restarts.

    :param arg: the text after ``--persist NAME=``, or None.
    :param peer: the peer name the operator gave (``--name``), or None when
        the peer will take the persisted one. A store shared by many peers
        (etcd) files each peer's data under its name; a local store ignores it.

    Every write must be durable when :meth:`apply` returns: the peer replies
    to a request or tells other peers about a change only after that.
    """

    def __init__(self, arg: str | None, *, peer: int | None = None) -> None:
        super().__init__(arg)
        self.peer = peer

    @abstractmethod
    async def load(self) -> Snapshot | None:
        """What was persisted, or None on first start. Called once, right after ``__aenter__``."""

    @abstractmethod
    async def apply(self, effects: Sequence[Effect]) -> None:
        """Persist, atomically and in order, the effects that change state.

        The shell passes the effects of one allocator step; a store acts on
        :class:`~weavek.core.effects.SaveRing` (the ring and our peer name),
        :class:`~weavek.core.effects.Allocated`,
        :class:`~weavek.core.effects.Released` and
        :class:`~weavek.core.effects.ClearStore` (forget everything), and
        ignores the rest.
        """


class Runtime(Service, ABC):
    """Connects containers to the network and reports their lifecycle.

    :param arg: the text after ``--runtime NAME=``, or None.
    :param deliver: awaited for each container event the runtime observes;
        a container's death releases its addresses after a grace period.
    :param bridge: the host bridge containers are attached to.
    :param universe: the allocation range; attached containers get a route to it.

    Idents are what the runtime calls a container canonically (Docker's
    full container ID, a namespace name); :meth:`resolve` turns what a
    user typed (a name, a short ID, a PID) into one.
    """

    def __init__(
        self,
        arg: str | None,
        *,
        deliver: Callable[[RuntimeEvent], Awaitable[None]],
        bridge: str = "weavek",
        universe: CIDR | None = None,
    ) -> None:
        super().__init__(arg)
        self.deliver = deliver
        self.bridge = bridge
        self.universe = universe

    @abstractmethod
    async def resolve(self, container: str) -> str | None:
        """The ident of the container a user named, or None if this runtime does not know it."""

    @abstractmethod
    async def attach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        """Give container ``ident`` an interface with these addresses and a route to the range.

        :raises ContainerNotFound: the container (or its namespace) is gone.
        """

    @abstractmethod
    async def detach(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        """Remove these addresses from container ``ident`` (its interface once none are left)."""

    @abstractmethod
    async def running(self) -> frozenset[str]:
        """The idents of the containers that exist now, for reconciliation at start-up."""

    async def attached(self) -> frozenset[str]:
        """The idents of this runtime's containers that have an interface on the bridge now.

        Asked once at start-up, after :meth:`running`: a container that a
        previous run of the peer attached is then re-attached when it restarts,
        as one attached by this run is. The default knows of none.
        """
        return frozenset()

    async def expose(self, cidrs: Sequence[CIDR]) -> None:
        """Give the host's bridge these addresses (``weavek expose``)."""
        raise RuntimeUnsupported(f"the {self.name} runtime cannot expose the host")

    async def hide(self, cidrs: Sequence[CIDR]) -> None:
        """Take these addresses off the host's bridge (``weavek hide``)."""
        raise RuntimeUnsupported(f"the {self.name} runtime cannot hide the host")

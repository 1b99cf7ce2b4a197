"""A running peer: the plugins a :class:`PeerConfig` names, wired around one allocator.

``async with Peer(config) as peer:`` starts, in this order (and stops in the
reverse order, so the store closes last):

1. the store, entered and loaded -- the persisted snapshot decides the peer
   name when the operator gave none (see :mod:`weavek.node.naming`);
2. the init strategy and the allocator;
3. the transport and the runtimes, which from then on feed the mailbox;
4. a task group with the actor (first carrying out ``allocator.start``), the
   clock ticker, and the HTTP API on ``config.http``.

Every plugin name is resolved before anything starts, so a typo fails fast
with the list of what is installed. Stopping calls ``weavek_peer_stopping``,
then cancels the task group (API, ticker, actor: requests still waiting get
:class:`~weavek.node.mailbox.PeerStoppedError`), then leaves the runtimes,
the transport and the store.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self, TypeVar

import anyio
import pluggy
from anyio.abc import TaskStatus

from weavek.core.allocator import Allocator
from weavek.core.events import ContainerDestroyed, ContainerStarted, Event, PruneRequested, Tick
from weavek.interfaces import Runtime, RuntimeEvent
from weavek.plugins import make_plugin_manager, parse_plugin_arg, resolve

from .actor import Actor, ActorStats, notify
from .config import PeerConfig
from .containers import Containers
from .mailbox import Mailbox
from .naming import choose_name, default_nickname
from .status import PeerStatus, peer_status

__all__ = ["DEFAULT_INIT", "Peer", "run_peer"]

DEFAULT_INIT = "consensus"

T = TypeVar("T")
log = logging.getLogger("weavek")


class Peer:
    """One weavek peer, running while the ``async with`` block lasts.

    :param config: the launch settings.
    :param pm: the plugin manager to resolve plugins and call hooks with
        (default: a new one loading the installed entry points).
    """

    def __init__(self, config: PeerConfig, pm: pluggy.PluginManager | None = None) -> None:
        self.config = config
        self.pm = pm if pm is not None else make_plugin_manager()
        self.name = 0
        """Our peer name, known once started."""
        self.nickname = config.nickname or default_nickname()
        self.http_address: tuple[str, int] | None = None
        """Where the HTTP API listens (the real port when ``config.http`` asked for port 0)."""
        self.mailbox = Mailbox()
        self.runtimes: tuple[Runtime, ...] = ()
        """The active container runtimes, in ``--runtime`` order (:mod:`weavek.node.containers`)."""
        self.containers = Containers(self)
        """Attach, detach, expose and hide (the API's and the runtimes' events' way in)."""
        self._actor: Actor | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None

    # -- what other tasks call ---------------------------------------------

    async def request(
        self,
        make_event: Callable[[object], Event],
        abandon: Callable[[], Awaitable[object]] | None = None,
    ) -> object:
        """Send the request ``make_event(token)`` to the allocator and wait for its reply.

        :param abandon: watched only while the allocator keeps the request
            pending; when it returns, the request is cancelled (an HTTP
            client that disconnected).
        :returns: a CIDR, a tuple of them, an int, None or
            :class:`~weavek.core.effects.Failed` (see :class:`~weavek.core.effects.Reply`).
        :raises PeerStoppedError: when the peer stops before answering.

        Cancelling the caller cancels the request in the allocator too.
        """
        return await self.mailbox.request(make_event, abandon)

    async def query(self, read: Callable[[Allocator], T]) -> T:
        """``read(allocator)`` run by the actor between batches, on durable state only."""
        return await self.mailbox.query(read)

    async def status(self) -> PeerStatus:
        """A consistent snapshot of this peer's IPAM state, with its services' health."""
        status = await self.query(peer_status)
        return status if self._actor is None else self._actor.with_health(status)

    async def deliver(self, event: Event) -> None:
        """Hand the allocator an event that needs no answer (a tick, a container event)."""
        await self.mailbox.deliver(event)

    @property
    def stats(self) -> ActorStats:
        """The actor's counters (batches, store applies, ...)."""
        return self._actor.stats if self._actor is not None else ActorStats()

    @property
    def allocator(self) -> Allocator:
        """The allocator; read it only from the actor's task (in a hook, or via :meth:`query`)."""
        if self._actor is None:
            raise RuntimeError("the peer has not started")
        return self._actor.allocator

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    async def _start(self, stack: AsyncExitStack) -> None:
        config, pm = self.config, self.pm
        store_name, store_arg = parse_plugin_arg(config.persist)
        init_name, init_arg = parse_plugin_arg(config.init or DEFAULT_INIT)
        transport_name, transport_arg = parse_plugin_arg(config.transport)
        runtime_args = [parse_plugin_arg(text) for text in config.runtimes]
        store_cls = resolve(pm, "store", store_name)
        strategy_cls = resolve(pm, "init", init_name)
        transport_cls = resolve(pm, "transport", transport_name)
        runtime_classes = [(resolve(pm, "runtime", name), arg) for name, arg in runtime_args]

        store = await stack.enter_async_context(store_cls(store_arg, peer=config.name))
        snapshot = await store.load()
        self.name = me = choose_name(config.name, snapshot)
        strategy = strategy_cls(init_arg, me=me, peers_named=len(config.peers))
        allocator = Allocator(
            me=me,
            nickname=self.nickname,
            universe=config.universe,
            default_subnet=config.default_subnet,
            strategy=strategy,
            rng=random.Random().random,
            snapshot=snapshot,
            grace_period=config.grace_period,
            retry_interval=config.retry_interval,
            gossip_interval=config.gossip_interval,
        )
        transport = transport_cls(
            transport_arg,
            me=me,
            deliver=self.mailbox.deliver,
            nickname=self.nickname,
            listen=config.listen,
            peers=config.peers,
            password=config.password,
        )
        self._actor = actor = Actor(
            allocator=allocator,
            mailbox=self.mailbox,
            store=store,
            transport=transport,
            hooks=pm.hook,
            peer=self,
        )
        await stack.enter_async_context(transport)
        runtimes = []
        for cls, arg in runtime_classes:
            events = _RuntimeEvents(self)
            runtime = cls(
                arg, deliver=events.deliver, bridge=config.bridge, universe=config.universe
            )
            events.runtime = runtime
            runtimes.append(await stack.enter_async_context(runtime))
        self.runtimes = actor.runtimes = tuple(runtimes)  # their health() shows in status
        self._tasks = tasks = await stack.enter_async_context(anyio.create_task_group())
        stack.push_async_callback(self._stop, tasks)
        await tasks.start(actor.run, allocator.start(anyio.current_time()))
        if runtimes:
            running: set[str] = set()
            for runtime in runtimes:
                running |= await runtime.running()
                self.containers.adopt(await runtime.attached())
            await self.deliver(PruneRequested(frozenset(running)))
        tasks.start_soon(self._tick)
        from weavek.api.server import serve  # the API imports the node; import it late

        self.http_address = await tasks.start(serve, self, config.http)
        notify(pm.hook, "weavek_peer_started", peer=self)

    async def _stop(self, tasks: anyio.abc.TaskGroup) -> None:
        notify(self.pm.hook, "weavek_peer_stopping", peer=self)
        self._tasks = None
        tasks.cancel_scope.cancel()

    def _restarted(self, runtime: Runtime, ident: str) -> None:
        if self._tasks is not None:  # not before the peer runs: start-up reconciles instead
            self._tasks.start_soon(self.containers.reattach, runtime, ident)

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(self.config.tick)
            await self.mailbox.deliver(Tick(anyio.current_time()))


class _RuntimeEvents:
    """A runtime's ``deliver``: its events go to the allocator, and a container
    that starts again gets its interface back (its addresses outlived its
    network namespace)."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.runtime: Runtime | None = None

    async def deliver(self, event: RuntimeEvent) -> None:
        await self.peer.mailbox.deliver(event)
        if type(event) is ContainerStarted and self.runtime is not None:
            self.peer._restarted(self.runtime, event.ident)
        elif type(event) is ContainerDestroyed:
            self.peer.containers.forget(event.ident)


async def run_peer(
    config: PeerConfig,
    *,
    pm: pluggy.PluginManager | None = None,
    task_status: TaskStatus[Peer] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a peer until cancelled (``weavek launch --foreground``); ``task_status`` gets it."""
    async with Peer(config, pm) as peer:
        task_status.started(peer)
        await anyio.sleep_forever()

"""The actor: the one task that owns a peer's allocator, and group commit.

The allocator is a plain object mutated by :meth:`Allocator.handle`; only
this task calls it, so it needs no locks. The loop is:

1. wait for one item, then take whatever else is already queued (up to
   :data:`MAX_BATCH`) -- under load, many requests arrive while one batch
   is being written, and they all share the next write;
2. feed every event of the batch to the allocator, collecting the effects;
3. hand *all* storage effects of the batch to the store in **one**
   :meth:`Store.apply` call -- one transaction, one fsync for the batch;
4. only then carry out the rest, in order: answer requests, send to peers,
   call notification hooks, log; then answer status queries, which so only
   ever see durable state.

Step 3 before step 4 is the safety rule of the whole shell: nothing is
acknowledged to a client, or told to another peer, before it is on disk.
Step 1 is where the throughput comes from: the cost of a durable write is
paid per batch, not per allocation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
import pluggy

from weavek.core import effects as fx
from weavek.core.allocator import Allocator
from weavek.core.effects import Effect
from weavek.core.peer import format_peer_name
from weavek.interfaces import Store, Transport

from .mailbox import Mailbox, Query

__all__ = ["MAX_BATCH", "STORAGE_EFFECTS", "Actor", "ActorStats"]

MAX_BATCH: Final = 256
"""Most items one batch takes: bounds the latency a batch adds to its first request."""

STORAGE_EFFECTS: Final = (fx.SaveRing, fx.Allocated, fx.Released, fx.ClearStore)
"""The effects a store carries out; they go to the store before anything else happens."""

log = logging.getLogger("weavek")

_LEVELS: Final = {
    name: getattr(logging, name.upper()) for name in ("debug", "info", "warning", "error")
}


@dataclass(slots=True)
class ActorStats:
    """Counters for ``/metrics``: how the actor has been spending its time."""

    batches: int = 0
    events: int = 0
    store_applies: int = 0
    allocations: int = 0
    releases: int = 0
    largest_batch: int = 0


class Actor:
    """Feeds a mailbox's items to an allocator and carries out the effects.

    :param peer: what notification hooks receive as ``peer``.
    """

    def __init__(
        self,
        *,
        allocator: Allocator,
        mailbox: Mailbox,
        store: Store,
        transport: Transport,
        hooks: pluggy.HookRelay,
        peer: object,
    ) -> None:
        self.allocator = allocator
        self.mailbox = mailbox
        self.store = store
        self.transport = transport
        self.hooks = hooks
        self.peer = peer
        self.stats = ActorStats()
        self._dispatch: dict[type, Callable[[Any], Any]] = {
            fx.Reply: self._reply,
            fx.Allocated: self._allocated,
            fx.Released: self._released,
            fx.RingChanged: self._ring_changed,
            fx.Log: self._log,
        }

    async def run(
        self,
        start: Sequence[Effect],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Carry out the allocator's start-up effects, then serve the mailbox until cancelled."""
        receive = self.mailbox.receive
        try:
            async with receive:
                await self._carry_out(start)
                task_status.started()
                while True:
                    batch = [await receive.receive()]
                    while len(batch) < MAX_BATCH:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    await self._run_batch(batch)
        finally:
            self.mailbox.stop()

    async def _run_batch(self, batch: list[Any]) -> None:
        handle = self.allocator.handle
        effects: list[Effect] = []
        queries: list[Query] = []
        for item in batch:
            if type(item) is Query:
                queries.append(item)
            else:
                effects.extend(handle(item))
        stats = self.stats
        stats.batches += 1
        stats.events += len(batch) - len(queries)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        await self._carry_out(effects)
        settle = self.mailbox.settle
        for item in batch:
            request = getattr(item, "request", None)
            if request is not None:
                settle(request)
        for query in queries:
            query.answer(self.allocator)

    async def _carry_out(self, effects: Sequence[Effect]) -> None:
        storage = [e for e in effects if isinstance(e, STORAGE_EFFECTS)]
        if storage:
            # One call per batch: the store makes it one transaction (group commit).
            await self.store.apply(storage)
            self.stats.store_applies += 1
        dispatch = self._dispatch
        for effect in effects:
            handler = dispatch.get(type(effect))
            if handler is not None:
                handler(effect)
            elif not isinstance(effect, STORAGE_EFFECTS):
                await self._send(effect)

    async def _send(self, effect: Effect) -> None:
        # Sends are best effort (the allocator retries what matters); a transport bug
        # must not take the allocator down with it.
        try:
            if isinstance(effect, fx.Broadcast):
                await self.transport.broadcast(effect.payload)
            elif isinstance(effect, fx.SendTo):
                await self.transport.send(effect.peer, effect.payload)
            elif isinstance(effect, fx.Gossip):
                await self.transport.gossip(effect.payload)
            elif isinstance(effect, fx.Refuse):
                log.warning("refusing peer %s: %s", format_peer_name(effect.peer), effect.reason)
                await self.transport.refuse(effect.peer, effect.reason)
        except Exception:
            log.exception("transport failed to carry out %s", type(effect).__name__)

    def _reply(self, effect: fx.Reply) -> None:
        self.mailbox.resolve(effect.request, effect.result)

    def _allocated(self, effect: fx.Allocated) -> None:
        self.stats.allocations += 1
        self._notify("weavek_address_allocated", ident=effect.ident, cidr=effect.cidr)

    def _released(self, effect: fx.Released) -> None:
        self.stats.releases += 1
        self._notify("weavek_address_released", ident=effect.ident, cidr=effect.cidr)

    def _ring_changed(self, effect: fx.RingChanged) -> None:
        self._notify("weavek_ring_changed", before=effect.before, after=effect.after)

    @staticmethod
    def _log(effect: fx.Log) -> None:
        log.log(_LEVELS.get(effect.level, logging.INFO), "%s", effect.message)

    def _notify(self, hook: str, **kwargs: object) -> None:
        notify(self.hooks, hook, peer=self.peer, **kwargs)


def notify(hooks: pluggy.HookRelay, hook: str, **kwargs: object) -> None:
    """Call a notification hook; a plugin's exception is logged and never stops the peer.

    Each implementation is called on its own (in pluggy's order), so one
    failing observer does not keep the others from hearing of the event.
    """
    caller: pluggy.HookCaller = getattr(hooks, hook)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception:
            log.exception("%s of plugin %r failed", hook, impl.plugin_name)

"""The actor: the one task that owns a peer's allocator, and pipelined group commit.

The allocator is a plain object mutated by :meth:`Allocator.handle`; only
the actor task calls it, so it needs no locks. Durable writes are the slow
part of an allocation, so they are batched (group commit) and overlapped
with the work on the next batch (pipelining). Two tasks share the job:

**The actor** loops:

1. wait for one item, then take whatever else is already queued (up to
   :data:`MAX_BATCH`) -- under load, many requests arrive while a batch is
   being written, and they all share the next write;
2. feed every event of the batch to the allocator, collecting its effects
   into one :class:`_Commit`, which joins the commit queue;
3. go on with the next batch at once -- unless :data:`MAX_QUEUED` items
   already wait behind the write in progress: then wait for the committer to
   take them, so the mailbox's bound still makes senders wait when the disk
   is slow.

**The committer** loops: take every queued commit, hand all their storage
effects to the store in **one** :meth:`Store.apply` call -- one
transaction, one fsync -- and only then carry out the rest of each commit
in order: answer requests, send to peers, call notification hooks, log.
So while batch N is being written, the batches after it are already going
through the allocator; their replies and sends wait for their own write,
which carries all of them. At most one write is in progress: the store sees
one apply at a time, in the order the allocator produced the effects.

With N busy clients, back-to-back writes would split them into two groups
that alternate (one group's requests arrive while the other's are being
written), each write carrying N/2. So a write that follows one with several
requests first lets the event loop turn :data:`GATHER_TURNS` times (a few
tenths of a millisecond): the requests of the clients just answered, already
in the socket buffers, join it -- the idea of PostgreSQL's ``commit_delay``.
A lone client pays nothing for it: its writes carry one request.

The safety rule of the whole shell holds for every effect: nothing is
acknowledged to a client, or told to another peer, before it is durable, and
effects are carried out in the order the allocator returned them. Two
things are answered without waiting for the queue, because their answer
cannot change with what is still unwritten:

* a request whose only effect is its reply, about an ident with no
  unwritten change (a lookup, an allocation the ident already holds) and no
  unwritten "forget everything" -- its answer is durable state already;
* status queries wait until every commit before them is durable, then run
  on the allocator, so ``/status`` never shows what a crash could lose.

**When the store is unavailable** (:class:`~weavek.interfaces.StoreUnavailable`),
the committer keeps the storage effects, merges every later commit's
storage effects after them, and retries the lot with backoff until it is
written; then it releases the held replies and sends in order. Meanwhile the
actor keeps handling (lookups of written idents keep being answered, status
queries are answered at once from the allocator and say that the store is
unavailable), and a request held for longer than :attr:`Actor.store_wait`
is failed with :class:`~weavek.node.mailbox.StoreUnavailableError` (HTTP
503). Its change stays made in the allocator and is written when the store
returns, so a retry of the same request gets the same answer. Any other
exception from the store stops the peer: it is a bug or corrupt data.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import anyio
import anyio.lowlevel
import pluggy

from weavek.core import effects as fx
from weavek.core.allocator import Allocator
from weavek.core.effects import Effect
from weavek.core.events import ContainerDied, Tick
from weavek.core.peer import format_peer_name
from weavek.interfaces import Runtime, Store, StoreUnavailable, Transport

from .mailbox import Mailbox, Query, StoreUnavailableError
from .status import PeerStatus, ServiceHealth

__all__ = ["MAX_BATCH", "STORAGE_EFFECTS", "Actor", "ActorStats"]

MAX_BATCH: Final = 256
"""Most items one batch takes: bounds the latency a batch adds to its first request."""

MAX_QUEUED: Final = 4 * MAX_BATCH
"""Most handled items that may wait behind the write in progress before the actor waits too."""

STORAGE_EFFECTS: Final = (fx.SaveRing, fx.Allocated, fx.Released, fx.ClearStore)
"""The effects a store carries out; they go to the store before anything else happens."""

GATHER_TURNS: Final = 8
"""Event-loop turns a write waits, after one that carried several requests, for more to join."""

RETRY_FIRST: Final = 0.05
"""Seconds before the first retry of a write the store could not take."""
RETRY_MOST: Final = 1.0
"""Longest pause between retries: how soon a returning store is noticed."""

log = logging.getLogger("weavek")

_LEVELS: Final = {
    name: getattr(logging, name.upper()) for name in ("debug", "info", "warning", "error")
}
_STORAGE_TYPES: Final = frozenset(STORAGE_EFFECTS)


@dataclass(slots=True)
class ActorStats:
    """Counters for ``/metrics``: how the actor has been spending its time."""

    batches: int = 0
    events: int = 0
    store_applies: int = 0
    allocations: int = 0
    releases: int = 0
    largest_batch: int = 0
    store_retries: int = 0


@dataclass(eq=False, slots=True)
class _Commit:
    """One batch's effects, waiting to be written and then carried out."""

    effects: list[Effect]
    """Every effect to carry out after the write, storage effects included, in order."""
    storage: list[Effect]
    """The storage effects among them, for the store."""
    requests: list[object]
    """The tokens of the batch's requests, settled once the commit is carried out."""
    handled_at: float
    size: int = 0
    """How many mailbox items the batch had."""
    expired: bool = field(default=False)


class Actor:
    """Feeds a mailbox's items to an allocator and carries out the effects.

    :param peer: what notification hooks receive as ``peer``.
    """

    store_wait: ClassVar[float] = 10.0
    """Seconds a request waits for an unavailable store before it fails (HTTP 503)."""

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
        self.runtimes: Sequence[Runtime] = ()
        """The peer's runtimes, whose health status shows (set by the peer once entered)."""
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
        self._queued: deque[_Commit] = deque()
        """Commits handled by the actor that the committer has not taken yet."""
        self._queued_size = 0
        """Mailbox items in those commits."""
        self._writing = 0
        """Storage effects the committer is writing (or retrying) now."""
        self._busy = False
        """True while the committer has commits in hand."""
        self._gather = False
        """Whether the last write carried several requests (then the next one gathers)."""
        self._wake = anyio.Event()
        """Set when a commit is queued: the committer waits on it."""
        self._progress = anyio.Event()
        """Set (and replaced) whenever the committer takes, finishes or fails: the actor waits."""
        self._unavailable: str | None = None
        """The store's StoreUnavailable message while its writes fail, else None."""
        self._dirty: dict[str, int] = {}
        """Ident -> its storage effects not yet written (its lookups must wait for them)."""
        self._clearing = 0
        """ClearStore effects not yet written (every lookup must wait for them)."""

    # -- what the peer reads -----------------------------------------------

    @property
    def unwritten(self) -> int:
        """Storage effects handled by the allocator and not yet durable."""
        return self._writing + sum(len(c.storage) for c in self._queued)

    def health(self) -> tuple[ServiceHealth, ...]:
        """The store's, the transport's and every runtime's health, for status and report."""
        store_problem = (
            f"unavailable: {self._unavailable}"
            if self._unavailable is not None
            else _health(self.store)
        )
        return (
            ServiceHealth("store", self.store.name, store_problem, self.unwritten),
            ServiceHealth("transport", self.transport.name, _health(self.transport)),
            *(ServiceHealth("runtime", r.name, _health(r)) for r in self.runtimes),
        )

    def with_health(self, status: PeerStatus) -> PeerStatus:
        """``status`` with the services' health of this instant."""
        return status.with_services(self.health())

    # -- the actor task ----------------------------------------------------

    async def run(
        self,
        start: Sequence[Effect],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Carry out the allocator's start-up effects, then serve the mailbox until cancelled."""
        receive = self.mailbox.receive
        try:
            async with receive, anyio.create_task_group() as tasks:
                tasks.start_soon(self._commit_loop)
                storage = _storage(start)
                self._track(storage)
                self._queue(_Commit(list(start), storage, [], anyio.current_time()))
                await self._drained()
                task_status.started()
                while True:
                    batch = [await receive.receive()]
                    while len(batch) < MAX_BATCH:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    queries = self._handle(batch)
                    if queries:
                        await self._drained()
                        for query in queries:
                            query.answer(self.allocator)
                    await self._room()
        finally:
            self.mailbox.stop()

    def _handle(self, batch: list[Any]) -> list[Query]:
        """Feed the batch to the allocator and queue its commit; returns its status queries."""
        handle = self.allocator.handle
        dirty = self._dirty
        effects: list[Effect] = []
        storage: list[Effect] = []
        requests: list[object] = []
        queries: list[Query] = []
        for item in batch:
            if type(item) is Query:
                queries.append(item)
                continue
            if type(item) is ContainerDied:
                # The allocator stamps a death with its clock, the last tick's time: move
                # the clock to now first, or the grace period would end up to a tick early.
                out = [*handle(Tick(anyio.current_time())), *handle(item)]
            else:
                out = handle(item)
            request = getattr(item, "request", None)
            if request is not None:
                ident = getattr(item, "ident", None)
                if (
                    ident is not None
                    and len(out) == 1
                    and type(out[0]) is fx.Reply
                    and ident not in dirty
                    and not self._clearing
                ):
                    # Only a reply, about an ident whose state is all written: durable already.
                    self.mailbox.resolve(request, out[0].result)
                    continue
                requests.append(request)
            for effect in out:
                if type(effect) in _STORAGE_TYPES:
                    storage.append(effect)
                    if isinstance(effect, fx.Allocated | fx.Released):
                        dirty[effect.ident] = dirty.get(effect.ident, 0) + 1
                    else:
                        self._track((effect,))
            effects.extend(out)
        stats = self.stats
        stats.batches += 1
        stats.events += len(batch) - len(queries)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        if effects or requests:
            self._queue(_Commit(effects, storage, requests, anyio.current_time(), len(batch)))
        return queries

    def _track(self, storage: Sequence[Effect]) -> None:
        """Note storage effects as unwritten (undone by :meth:`_written`)."""
        dirty = self._dirty
        for effect in storage:
            if isinstance(effect, fx.Allocated | fx.Released):
                dirty[effect.ident] = dirty.get(effect.ident, 0) + 1
            elif isinstance(effect, fx.ClearStore):
                self._clearing += 1

    def _queue(self, commit: _Commit) -> None:
        self._queued.append(commit)
        self._queued_size += commit.size
        self._wake.set()

    async def _room(self) -> None:
        """Wait while too much is queued behind the write in progress (not in an outage)."""
        while self._queued_size >= MAX_QUEUED and self._unavailable is None:
            await self._progress.wait()

    async def _drained(self) -> None:
        """Wait until everything handled so far is durable, or the store is unavailable."""
        while (self._queued or self._busy) and self._unavailable is None:
            await self._progress.wait()

    def _signal(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    # -- the committer task ------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            while not self._queued:
                self._wake = anyio.Event()
                await self._wake.wait()
            if self._gather:
                # The last write carried several requests: others are likely on their way
                # (their clients were just answered). A few turns of the event loop let the
                # ones already in the socket buffers join this write instead of the next.
                for _ in range(GATHER_TURNS):
                    await anyio.lowlevel.checkpoint()
            commits = self._take()
            self._gather = sum(len(c.requests) for c in commits) > 1
            storage = [effect for commit in commits for effect in commit.storage]
            if storage:
                await self._write(storage, commits)
            for commit in commits:
                await self._carry_out(commit)
            self._busy = False
            self._signal()

    def _take(self) -> list[_Commit]:
        """Every queued commit, now the committer's."""
        commits = list(self._queued)
        self._queued.clear()
        self._queued_size = 0
        self._busy = True
        self._writing += sum(len(c.storage) for c in commits)
        self._signal()
        return commits

    async def _write(self, storage: list[Effect], commits: list[_Commit]) -> None:
        """One durable apply of ``storage``; retried with backoff while the store is unavailable.

        Commits queued during the retries join ``commits`` and their storage
        effects join ``storage``, after the ones already there.
        """
        delay = RETRY_FIRST
        while True:
            try:
                # One call for every batch taken: the store makes it one transaction.
                await self.store.apply(storage)
                break
            except StoreUnavailable as exc:
                message = str(exc) or type(exc).__name__
                if self._unavailable is None:
                    log.warning(
                        "store %s unavailable: %s; holding %d changes and retrying",
                        self.store.name,
                        message,
                        len(storage),
                    )
                self._unavailable = message
                self.stats.store_retries += 1
                self._signal()
                pause = self._expire(commits, message, delay)
                await anyio.sleep(pause)
                delay = min(delay * 2, RETRY_MOST)
                for commit in self._take():
                    commits.append(commit)
                    storage.extend(commit.storage)
        if self._unavailable is not None:
            log.warning(
                "store %s available again: %d changes written", self.store.name, len(storage)
            )
            self._unavailable = None
        self.stats.store_applies += 1
        self._writing -= len(storage)
        self._written(storage)

    def _expire(self, commits: list[_Commit], message: str, delay: float) -> float:
        """Fail the held requests that waited too long; returns how long to pause next."""
        now = anyio.current_time()
        pause = delay
        for commit in commits:
            if commit.expired:
                continue
            due = commit.handled_at + self.store_wait
            if now >= due:
                commit.expired = True
                error = StoreUnavailableError(message)
                for effect in commit.effects:
                    if type(effect) is fx.Reply:
                        self.mailbox.fail(effect.request, error)
            else:
                pause = min(pause, due - now)
        return max(pause, 0.001)

    def _written(self, storage: list[Effect]) -> None:
        dirty = self._dirty
        for effect in storage:
            if isinstance(effect, fx.Allocated | fx.Released):
                left = dirty[effect.ident] - 1
                if left:
                    dirty[effect.ident] = left
                else:
                    del dirty[effect.ident]
            elif isinstance(effect, fx.ClearStore):
                self._clearing -= 1

    async def _carry_out(self, commit: _Commit) -> None:
        dispatch = self._dispatch
        for effect in commit.effects:
            handler = dispatch.get(type(effect))
            if handler is not None:
                handler(effect)
            elif type(effect) not in _STORAGE_TYPES:
                await self._send(effect)
        settle = self.mailbox.settle
        for request in commit.requests:
            settle(request)

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


def _storage(effects: Sequence[Effect]) -> list[Effect]:
    return [e for e in effects if type(e) in _STORAGE_TYPES]


def _health(service: Store | Transport | Runtime) -> str | None:
    # health() is a plugin's code: a bug in it must not break status.
    try:
        return service.health()
    except Exception as exc:
        return f"health() failed: {type(exc).__name__}: {exc}"


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

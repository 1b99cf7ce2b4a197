"""The actor's mailbox: how other tasks reach the one task that owns the allocator.

Everything a peer is asked or told -- API requests, transport deliveries,
runtime events, clock ticks, status queries -- becomes one item on a bounded
anyio memory stream. A bounded stream is the peer's backpressure: when the
actor falls behind, senders wait instead of piling up memory.

Requests that expect an answer carry an int token; the actor resolves the
:class:`Ticket` filed under it when the allocator's
:class:`~weavek.core.effects.Reply` comes out. A requester that is cancelled
while waiting (its HTTP client went away) sends
:class:`~weavek.core.events.Cancelled`, so the allocator drops the pending
operation instead of completing it for nobody.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from weavek.core.allocator import Allocator
from weavek.core.events import Cancelled, Event

__all__ = ["Mailbox", "PeerStoppedError", "Query", "StoreUnavailableError", "Ticket"]

T = TypeVar("T")

QUEUE_SIZE: Final = 4096
"""Items that may wait for the actor before senders are made to wait too."""


class PeerStoppedError(RuntimeError):
    """The peer stopped before it could answer."""

    def __init__(self) -> None:
        super().__init__("the peer is stopping")


class StoreUnavailableError(RuntimeError):
    """The store could not make the answer durable in time; the message says why.

    The request's change stays made in the allocator and is written once the
    store is back, so asking again gets the same answer then.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"store unavailable: {problem}")
        self.problem = problem


class _Stopped:
    """The result of a ticket the actor never answered because it stopped."""


STOPPED: Final = _Stopped()


@dataclass(eq=False, slots=True)
class _Raised:
    error: BaseException


@dataclass(eq=False, slots=True)
class Ticket:
    """A request waiting for its answer.

    The actor sets :attr:`done` when the answer comes, and :attr:`settled`
    either then or when a batch ends with the request still pending in the
    allocator -- the moment a requester may start watching for its client
    going away, without paying for that watch on requests answered at once.
    """

    request: int
    done: anyio.Event = field(default_factory=anyio.Event)
    settled: anyio.Event = field(default_factory=anyio.Event)
    result: object = None

    def resolve(self, result: object) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()
            self.settled.set()


@dataclass(eq=False, slots=True)
class Query:
    """Run ``read`` on the allocator inside the actor, after its batch is durable."""

    read: Callable[[Allocator], Any]
    ticket: Ticket

    def answer(self, allocator: Allocator) -> None:
        try:
            self.ticket.resolve(self.read(allocator))
        except Exception as exc:  # the caller's bug: hand it back, the actor lives on
            self.ticket.resolve(_Raised(exc))


Item = Event | Query


class Mailbox:
    """The bounded queue into the actor, and the tickets of the requests awaiting answers."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Item](size)
        self._tickets: dict[int, Ticket] = {}
        self._ids = itertools.count(1)

    @property
    def receive(self) -> MemoryObjectReceiveStream[Item]:
        """The actor's end of the queue."""
        return self._receive

    async def deliver(self, event: Event) -> None:
        """Hand the actor an event (the ``deliver`` callback of transports and runtimes).

        Waits while the queue is full. After the peer stopped, the event is dropped.
        """
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._send.send(event)

    async def request(
        self,
        make_event: Callable[[object], Event],
        abandon: Callable[[], Awaitable[object]] | None = None,
    ) -> object:
        """Send the event ``make_event(token)`` and wait for the allocator's answer.

        :param abandon: for a request the allocator keeps pending, an awaitable
            that returns when nobody wants the answer any more (the HTTP client
            disconnected); the request is then cancelled in the allocator, and
            its answer is the allocator's "cancelled" failure.
        :returns: what the :class:`~weavek.core.effects.Reply` carried: a CIDR, a
            tuple of them, an int, None or :class:`~weavek.core.effects.Failed`.
        :raises PeerStoppedError: when the peer stops first.
        """
        ticket = Ticket(next(self._ids))
        self._tickets[ticket.request] = ticket
        sent = False
        try:
            await self._send.send(make_event(ticket.request))
            sent = True
            await ticket.settled.wait()
            if abandon is not None and not ticket.done.is_set():
                await self._wait_unless_abandoned(ticket, abandon)
            await ticket.done.wait()
        except anyio.get_cancelled_exc_class():
            if sent and not ticket.done.is_set():
                # Shielded: the caller is being cancelled, but the allocator must still
                # hear of it, or the operation would complete later for nobody.
                with anyio.CancelScope(shield=True):
                    await self.deliver(Cancelled(ticket.request))
            raise
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise PeerStoppedError from None
        finally:
            del self._tickets[ticket.request]
        return _unwrap(ticket.result)

    async def _wait_unless_abandoned(
        self, ticket: Ticket, abandon: Callable[[], Awaitable[object]]
    ) -> None:
        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                await abandon()
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch)
            await ticket.done.wait()
            tasks.cancel_scope.cancel()
        if not ticket.done.is_set():
            # The answer to this is the allocator's own "... cancelled" reply.
            await self.deliver(Cancelled(ticket.request))

    async def query(self, read: Callable[[Allocator], T]) -> T:
        """``read(allocator)``, run by the actor between batches; its result or its exception."""
        ticket = Ticket(next(self._ids))
        self._tickets[ticket.request] = ticket
        try:
            await self._send.send(Query(read, ticket))
            await ticket.done.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise PeerStoppedError from None
        finally:
            del self._tickets[ticket.request]
        return cast(T, _unwrap(ticket.result))

    def resolve(self, request: object, result: object) -> None:
        """Answer the request with token ``request``, if anyone still waits for it."""
        ticket = self._tickets.get(request)  # type: ignore[call-overload]
        if ticket is not None:
            ticket.resolve(result)

    def fail(self, request: object, error: BaseException) -> None:
        """Make the request with token ``request`` raise ``error``, if anyone still waits for it."""
        ticket = self._tickets.get(request)  # type: ignore[call-overload]
        if ticket is not None:
            ticket.resolve(_Raised(error))

    def settle(self, request: object) -> None:
        """The batch that carried ``request`` is done; the request may still be pending."""
        ticket = self._tickets.get(request)  # type: ignore[call-overload]
        if ticket is not None:
            ticket.settled.set()

    def stop(self) -> None:
        """Fail every request still waiting; called once the actor has stopped."""
        for ticket in self._tickets.values():
            ticket.resolve(STOPPED)


def _unwrap(result: object) -> object:
    if result is STOPPED:
        raise PeerStoppedError
    if isinstance(result, _Raised):
        raise result.error
    return result

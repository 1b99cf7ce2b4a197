"""Dialling: the configured addresses for ever, and the peers topology reports name.

A mixin of :class:`~weavek_tcp.transport.TcpTransport`. Each address in
``peers`` has a loop that dials it, runs the connection until it ends, and
dials again after an exponential back-off with jitter (reset by a connection
that got through the handshake); once it knows which peer answers there, it
waits instead while that peer is connected some other way, and while the
peer is refused. A peer we only heard of through topology reports gets a loop
of its own while it is reachable and not connected, dialling the addresses
its neighbours report for it. A connection to ourselves ends the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream, TaskGroup

from .mesh import Backoff
from .routing import Router

__all__ = ["DEFAULT_PORT", "Dialer", "Outcome", "parse_address"]

log = logging.getLogger("weavek.tcp")
DEFAULT_PORT = 6783
Address = tuple[str, int]


def parse_address(text: str) -> Address:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection attempt ended, for the loop that dialled it."""

    peer: int | None = None
    established: bool = False
    itself: bool = False


class Dialer(Router):
    """The dialling part of the transport."""

    connect_filter: Callable[[int], bool] | None
    handshake_timeout: float
    backoff_initial: float
    backoff_cap: float
    max_connections: int
    _names: dict[Address, int]
    _dialling: set[int]
    _changed: anyio.Event
    _tg: TaskGroup | None

    async def _connection(self, stream: ByteStream, addr: Address, *, initiator: bool) -> Outcome:
        """Run one connection to its end (the transport implements it)."""
        raise NotImplementedError

    async def _dial(self, addr: Address) -> Outcome:
        try:
            with anyio.fail_after(self.handshake_timeout):
                stream = await anyio.connect_tcp(*addr)
        except (OSError, TimeoutError) as e:
            log.info("cannot connect to %s:%d: %s", addr[0], addr[1], e or type(e).__name__)
            return Outcome()
        return await self._connection(stream, addr, initiator=True)

    async def _dial_configured(self, addr: Address) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_cap)
        while True:
            name = self._names.get(addr)
            if name is not None:
                changed = self._changed
                if name in self.links:
                    await changed.wait()
                    continue
                await anyio.sleep(self._refused_for(name))
            outcome = await self._dial(addr)
            if outcome.itself:
                return  # Weave does not retry a connection to itself either
            if outcome.peer is not None:
                self._names[addr] = outcome.peer
            if outcome.established:
                backoff.reset()
            await anyio.sleep(backoff.next(self._rng))

    def _dial_learned_peers(self) -> None:
        if self._tg is None:
            return
        configured = set(self._names.values())
        for peer in self.routes:
            if (
                peer in self.links
                or peer in self._dialling
                or peer in configured
                or (self.connect_filter is not None and not self.connect_filter(peer))
                or len(self.links) + len(self._dialling) >= self.max_connections
                or not self.table.addresses(peer)
            ):
                continue
            self._dialling.add(peer)
            self._tg.start_soon(self._dial_learned, peer)

    async def _dial_learned(self, peer: int) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_cap)
        try:
            while peer in self.routes and peer not in self.links:
                await anyio.sleep(self._refused_for(peer))
                for addr in self.table.addresses(peer)[:3]:
                    outcome = await self._dial(addr)
                    if outcome.established:
                        backoff.reset()
                        break
                await anyio.sleep(backoff.next(self._rng))
        finally:
            self._dialling.discard(peer)

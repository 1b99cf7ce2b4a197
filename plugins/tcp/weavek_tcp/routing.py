"""Messages in and out: send, broadcast, gossip, refuse, and what arrives.

A mixin of :class:`~weavek_tcp.transport.TcpTransport`, kept apart so that
the routing rules read in one place:

* **unicast** goes to the next hop of a shortest path (:attr:`routes`); every
  hop does the same until the frame reaches ``dst``; no route, no send (the
  kernel retries what matters);
* **broadcast** is flooded with a fresh ``(origin, id)``; receivers relay it
  once (see :mod:`weavek_tcp.transport`);
* **gossip** goes to ``2*log2(n)+1`` random direct neighbours and is not
  relayed;
* **refuse** closes the peer's connection with the reason and stops talking
  to it for a back-off that doubles at each refusal: the conflict that made
  the kernel refuse it lasts, so would-be reconnections do too. Meanwhile
  its messages, relayed by others, are not delivered either;
* **received**: a topology report that is news is merged and flooded on; a
  broadcast not seen before is relayed to every neighbour but the one it
  came from, then delivered; a unicast is delivered if it is for us, else
  forwarded; gossip is delivered with its neighbour as the sender.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable

from weavek.core.events import GossipReceived, Via
from weavek.core.peer import format_peer_name
from weavek.interfaces import TransportEvent

from .connection import Link
from .mesh import Backoff, SeenCache, TopologyTable, gossip_fanout
from .messages import MAX_HOPS, Broadcast, Gossip, Message, Topology, Unicast

__all__ = ["Router"]

log = logging.getLogger("weavek.tcp")


class Router:
    """The sending half of the transport."""

    me: int
    links: dict[int, Link]
    routes: dict[int, int]
    table: TopologyTable
    backoff_initial: float
    backoff_cap: float
    _seen: SeenCache
    _rng: random.Random
    _refused: dict[int, tuple[float, Backoff]]
    deliver: Callable[[TransportEvent], Awaitable[None]]

    def _recompute(self) -> None:
        """Routes and reachability changed (the transport implements it)."""
        raise NotImplementedError

    def _refused_for(self, peer: int) -> float:
        """Seconds until we talk to ``peer`` again after refusing it (0: now)."""
        refused = self._refused.get(peer)
        return max(0.0, refused[0] - time.monotonic()) if refused else 0.0

    async def send(self, peer: int, payload: bytes) -> None:
        """Send ``payload`` to ``peer``, through others if it is not a neighbour."""
        self._forward(Unicast(self.me, peer, 0, payload))

    def _forward(self, msg: Unicast) -> None:
        hop = self.routes.get(msg.dst)
        link = self.links.get(hop) if hop is not None else None
        if link is None:
            log.debug("no route to %s; dropping a unicast", format_peer_name(msg.dst))
            return
        link.send(msg)

    async def broadcast(self, payload: bytes) -> None:
        """Send ``payload`` to every reachable peer."""
        msg_id = secrets.randbits(64)
        self._seen.add((self.me, msg_id))
        for link in list(self.links.values()):
            link.send(Broadcast(self.me, msg_id, 0, payload))

    async def gossip(self, payload: bytes) -> None:
        """Send ``payload`` to a few random neighbours, who do not pass it on."""
        links = list(self.links.values())
        for link in self._rng.sample(links, gossip_fanout(len(links))):
            link.send(Gossip(payload))

    async def refuse(self, peer: int, reason: str) -> None:
        """Drop ``peer``'s connection, log ``reason``, and leave it alone for a while."""
        nick = self.table.nickname(peer)
        link = self.links.get(peer)
        if link is not None:
            nick = link.nickname
        log.warning("refusing connection to %s(%s): %s", format_peer_name(peer), nick, reason)
        # The back-off is kept across refusals, so a lasting conflict is retried less and less.
        refused = self._refused.get(peer)
        backoff = refused[1] if refused else Backoff(self.backoff_initial, self.backoff_cap)
        self._refused[peer] = (time.monotonic() + backoff.next(self._rng), backoff)
        if link is not None:
            link.close(reason)

    def _flood(self, msg: Message, exclude: int | None) -> None:
        for peer, link in list(self.links.items()):
            if peer != exclude:
                link.send(msg)

    async def _on_message(self, link: Link, msg: Message) -> None:
        match msg:
            case Topology():
                if self.table.merge(msg):
                    self._flood(msg, link.peer)
                    self._recompute()
            case Broadcast(origin, msg_id, hops, payload):
                if origin == self.me or hops >= MAX_HOPS or not self._seen.add((origin, msg_id)):
                    return
                self._flood(Broadcast(origin, msg_id, hops + 1, payload), link.peer)
                await self._deliver(origin, payload, Via.BROADCAST)
            case Unicast(src, dst, hops, payload):
                if dst == self.me:
                    await self._deliver(src, payload, Via.UNICAST)
                elif hops < MAX_HOPS:
                    self._forward(Unicast(src, dst, hops + 1, payload))
            case Gossip(payload):
                await self._deliver(link.peer, payload, Via.GOSSIP)

    async def _deliver(self, sender: int, payload: bytes, via: Via) -> None:
        if self._refused_for(sender) > 0:
            log.debug("ignoring a message from refused peer %s", format_peer_name(sender))
            return
        await self.deliver(GossipReceived(sender, payload, via))

"""A deterministic simulated network with a virtual clock, for cluster simulations.

Peers are identified by their peer names. Every message an allocator sends
(:class:`~weavek.core.effects.Broadcast`, :class:`~weavek.core.effects.SendTo`,
:class:`~weavek.core.effects.Gossip`) becomes one :class:`Delivery` per
recipient, due after a random delay drawn from the shared seeded
:class:`random.Random`, so a run is fully reproducible from its seed. Random
delays reorder messages (unless ``fifo``); ``drop`` and ``duplicate`` lose or
repeat individual deliveries.

Topology is a full mesh cut by a partition (:meth:`SimNetwork.partition`) and
by single-link cuts (:meth:`SimNetwork.cut`). What a peer can reach is its
connected component among live peers, as with Weave's mesh routing, so:

* a broadcast reaches every peer in the sender's component (relaying through
  intermediate peers is modelled as direct delivery);
* a unicast reaches its destination if it is in that component, else it is
  dropped at once (mesh fails such a send immediately);
* gossip goes to up to ``fanout`` random direct neighbours.

A delivery is also dropped when, at its due time, its destination has
crashed or restarted since the send, or is no longer reachable from a live
sender: connections carry nothing across a partition or a crash.

The network also keeps virtual time: :meth:`SimNetwork.run` hands out due
deliveries and periodic clock ticks in time order until a deadline or a
condition, so nothing in a simulation ever waits on a real clock.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from weavek.core.effects import Broadcast, Gossip, SendTo
from weavek.core.events import Via

__all__ = ["Delivery", "NetworkStats", "SimNetwork"]


@dataclass(order=True, slots=True)
class Delivery:
    """One message on its way to one peer, ordered by due time then send order."""

    due: float
    seq: int
    sender: int = field(compare=False)
    dst: int = field(compare=False)
    payload: bytes = field(compare=False, repr=False)
    via: Via = field(compare=False)
    epoch: int = field(compare=False)


@dataclass(slots=True)
class NetworkStats:
    """Counters for a run: what was sent, delivered, and lost to which cause."""

    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    unreachable: int = 0
    stale: int = 0


class SimNetwork:
    """Message transport and clock for a simulated cluster.

    :param peers: the peer names taking part (all start live and connected).
    :param rng: the run's random source; the network draws delays and faults from it.
    :param min_delay: shortest delivery delay, in virtual seconds.
    :param max_delay: longest delivery delay.
    :param drop: probability that any one delivery is lost.
    :param duplicate: probability that a delivery is made twice.
    :param fanout: neighbours per gossip; default about 2*log2(n), as in mesh.
    :param fifo: keep per-link order (like TCP) instead of letting delays reorder.
    :param tick: virtual seconds between the clock ticks :meth:`run` hands out.
    """

    def __init__(
        self,
        peers: Iterable[int],
        rng: random.Random,
        *,
        min_delay: float = 0.005,
        max_delay: float = 0.1,
        drop: float = 0.0,
        duplicate: float = 0.0,
        fanout: int | None = None,
        fifo: bool = False,
        tick: float = 0.5,
    ) -> None:
        self.peers = list(peers)
        self.rng = rng
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.drop = drop
        self.duplicate = duplicate
        n = len(self.peers)
        self.fanout = fanout if fanout is not None else max(1, round(2 * math.log2(max(n, 2))))
        self.fifo = fifo
        self.now = 0.0
        self.tick = tick
        self.next_tick = 0.0
        self.stats = NetworkStats()
        self.live: set[int] = set(self.peers)
        self.epochs: dict[int, int] = dict.fromkeys(self.peers, 0)
        self._group: dict[int, int] = {}
        self._cuts: set[frozenset[int]] = set()
        # (due, seq, delivery): tuples compare in C, a dataclass's order in Python
        self._queue: list[tuple[float, int, Delivery]] = []
        self.urgent = 0
        """Broadcast and unicast deliveries in flight (see :attr:`quiet`)."""
        self._seq = 0
        self._last_due: dict[tuple[int, int], float] = {}
        self._components: dict[int, frozenset[int]] | None = None

    # -- topology -----------------------------------------------------------

    def set_live(self, peer: int, live: bool) -> None:
        """Mark a peer crashed or (re)started; a restart is a new incarnation."""
        if live and peer not in self.live:
            self.epochs[peer] += 1
        (self.live.add if live else self.live.discard)(peer)
        self._components = None

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the mesh: links only inside each group; unlisted peers form one more group."""
        self._group = {p: g for g, members in enumerate(groups) for p in members}
        self._components = None

    def cut(self, a: int, b: int) -> None:
        """Break the direct link between two peers (they may still reach each other via others)."""
        self._cuts.add(frozenset((a, b)))
        self._components = None

    def mend(self, a: int, b: int) -> None:
        self._cuts.discard(frozenset((a, b)))
        self._components = None

    def heal(self) -> None:
        """Undo every partition and link cut."""
        self._group.clear()
        self._cuts.clear()
        self._components = None

    def linked(self, a: int, b: int) -> bool:
        """Whether live peers ``a`` and ``b`` have a direct link."""
        return (
            a != b
            and self._group.get(a, -1) == self._group.get(b, -1)
            and frozenset((a, b)) not in self._cuts
        )

    def components(self) -> dict[int, frozenset[int]]:
        """Each live peer's connected component (including itself)."""
        if self._components is None:
            comps: dict[int, frozenset[int]] = {}
            live = [p for p in self.peers if p in self.live]
            for start in live:
                if start in comps:
                    continue
                seen, todo = {start}, [start]
                while todo:
                    a = todo.pop()
                    for b in live:
                        if b not in seen and self.linked(a, b):
                            seen.add(b)
                            todo.append(b)
                comp = frozenset(seen)
                for p in comp:
                    comps[p] = comp
            self._components = comps
        return self._components

    def reachable(self, peer: int) -> frozenset[int]:
        """The live peers ``peer`` can reach, not counting itself."""
        return self.components().get(peer, frozenset()) - {peer}

    # -- messages -----------------------------------------------------------

    def send(self, sender: int, effect: Broadcast | SendTo | Gossip) -> None:
        """Schedule the deliveries for one outgoing message effect of ``sender``."""
        if isinstance(effect, Broadcast):
            targets, via = sorted(self.reachable(sender)), Via.BROADCAST
        elif isinstance(effect, SendTo):
            via = Via.UNICAST
            targets = [effect.peer] if effect.peer in self.reachable(sender) else []
            if not targets:
                self.stats.unreachable += 1
        else:
            neighbours = [p for p in self.peers if p in self.live and self.linked(sender, p)]
            k = min(self.fanout, len(neighbours))
            targets, via = self.rng.sample(neighbours, k), Via.GOSSIP
        for dst in targets:
            self.stats.sent += 1
            if self.drop and self.rng.random() < self.drop:
                self.stats.dropped += 1
                continue
            self._schedule(sender, dst, effect.payload, via)
            if self.duplicate and self.rng.random() < self.duplicate:
                self.stats.duplicated += 1
                self._schedule(sender, dst, effect.payload, via)

    def _schedule(self, sender: int, dst: int, payload: bytes, via: Via) -> None:
        due = self.now + self.rng.uniform(self.min_delay, self.max_delay)
        if self.fifo:
            link = (sender, dst)
            due = max(due, self._last_due.get(link, 0.0))
            self._last_due[link] = due
        self._seq += 1
        self.urgent += via is not Via.GOSSIP
        d = Delivery(due, self._seq, sender, dst, payload, via, self.epochs[dst])
        heapq.heappush(self._queue, (due, self._seq, d))

    @property
    def in_flight(self) -> int:
        """Deliveries scheduled and not yet due (some may turn out stale)."""
        return len(self._queue)

    @property
    def quiet(self) -> bool:
        """Nothing but periodic gossip in flight: no broadcast or unicast still on its way.

        Gossip only repeats state its sender already had, so with gossip
        delays near the gossip interval the network may never be empty, yet
        nothing new is travelling.
        """
        return not self.urgent

    def next_due(self) -> float:
        """When the next delivery is due; infinity when nothing is in flight."""
        return self._queue[0][0] if self._queue else math.inf

    def pop(self) -> Delivery | None:
        """Take the next delivery, advancing the clock to it; None if it cannot be made."""
        d = heapq.heappop(self._queue)[2]
        self.now = max(self.now, d.due)
        self.urgent -= d.via is not Via.GOSSIP
        if d.dst not in self.live or self.epochs[d.dst] != d.epoch:
            self.stats.stale += 1
            return None
        if d.sender in self.live and d.dst not in self.components().get(d.sender, ()):
            self.stats.unreachable += 1
            return None
        self.stats.delivered += 1
        return d

    # -- the clock ----------------------------------------------------------

    def run(
        self,
        end: float,
        deliver: Callable[[Delivery], None],
        tick: Callable[[float], None],
        pred: Callable[[], bool] | None = None,
    ) -> bool:
        """Advance virtual time to ``end``, handing out deliveries and ticks in time order.

        Stops early, returning True, once ``pred()`` holds (checked after every
        step); returns False if ``end`` comes first (True when there is no ``pred``).
        """
        while pred is None or not pred():
            due = self.next_due()
            if min(due, self.next_tick) > end:
                self.now = max(self.now, end)
                return pred is None
            if self.next_tick <= due:
                self.now = now = self.next_tick
                self.next_tick += self.tick
                tick(now)
            elif (d := self.pop()) is not None:
                deliver(d)
        return True

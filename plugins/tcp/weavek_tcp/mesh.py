"""Who is connected to whom, how to reach them, and what we have seen (sans-IO).

Every peer floods a :class:`~weavek_tcp.messages.Topology` report of its
direct connections whenever they change, every topology interval, and in
full to each new neighbour. :class:`TopologyTable` keeps the newest report
per origin (a report's ``seq`` starts at the wall clock in microseconds, so a
restarted peer's reports replace its old ones) and answers:

* the graph: an edge between two other peers counts only when *both* report
  it, so a stale one-sided report cannot route traffic into a void; our own
  edges are our live connections;
* reachability and next hops: a breadth-first search from us over that graph,
  visiting neighbours in name order so that routes are stable;
* addresses to dial: a report's neighbour entries carry the address the
  reporter sees the neighbour at and the port the neighbour listens on.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from .messages import Neighbour, Topology

__all__ = ["Backoff", "SeenCache", "TopologyTable", "gossip_fanout"]


class TopologyTable:
    """The newest topology report of every peer we heard of, and our own."""

    def __init__(self, me: int, nickname: str, seq: int) -> None:
        self.me = me
        self._own = Topology(me, seq, nickname, ())
        self.reports: dict[int, Topology] = {}

    @property
    def own(self) -> Topology:
        """Our current report."""
        return self._own

    def set_own(self, neighbours: Iterable[Neighbour]) -> Topology:
        """Replace our report with a newer one listing ``neighbours``."""
        own = self._own
        ordered = tuple(sorted(neighbours, key=lambda n: n.name))
        self._own = Topology(self.me, own.seq + 1, own.nickname, ordered)
        return self._own

    def merge(self, report: Topology) -> bool:
        """Keep ``report`` if it is news; True when it is (and should be passed on)."""
        if report.origin == self.me:
            if report.seq >= self._own.seq:
                # Someone holds a report of ours newer than our own (our clock went
                # back across a restart): jump past it so our next report wins.
                self._own = Topology(
                    self.me, report.seq + 1, self._own.nickname, self._own.neighbours
                )
            return False
        known = self.reports.get(report.origin)
        if known is not None and known.seq >= report.seq:
            return False
        self.reports[report.origin] = report
        return True

    def graph(self, direct: Iterable[int]) -> dict[int, set[int]]:
        """Adjacency over us, our live connections, and the edges both ends report."""
        adj: dict[int, set[int]] = {self.me: set(direct)}
        for peer in adj[self.me]:
            adj.setdefault(peer, set()).add(self.me)
        said = {o: {n.name for n in r.neighbours} for o, r in self.reports.items()}
        for origin, names in said.items():
            if origin == self.me:
                continue
            for other in names:
                if other != self.me and origin in said.get(other, ()):
                    adj.setdefault(origin, set()).add(other)
        return adj

    def routes(self, direct: Iterable[int]) -> dict[int, int]:
        """For every reachable peer, the direct neighbour to send through."""
        adj = self.graph(direct)
        hops: dict[int, int] = {}
        queue: deque[int] = deque()
        for n in sorted(adj[self.me]):
            hops[n] = n
            queue.append(n)
        while queue:
            at = queue.popleft()
            for n in sorted(adj.get(at, ())):
                if n != self.me and n not in hops:
                    hops[n] = hops[at]
                    queue.append(n)
        return hops

    def addresses(self, name: int) -> list[tuple[str, int]]:
        """Where others see ``name`` listening, most recently reported first."""
        seen: dict[tuple[str, int], int] = {}
        for report in self.reports.values():
            for n in report.neighbours:
                if n.name == name and n.port:
                    seen[(n.host, n.port)] = max(seen.get((n.host, n.port), 0), report.seq)
        return sorted(seen, key=lambda a: -seen[a])

    def nickname(self, name: int) -> str:
        """The nickname ``name`` reported, or empty."""
        report = self.reports.get(name)
        return report.nickname if report is not None else ""

    def forget(self, keep: Iterable[int]) -> None:
        """Drop the reports of peers not in ``keep`` (unreachable ones)."""
        keep = set(keep)
        for origin in [o for o in self.reports if o not in keep]:
            del self.reports[origin]


class SeenCache:
    """The ids of recent broadcasts, so each is delivered and relayed once."""

    def __init__(self, capacity: int = 16384) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Record ``key``; True if it was not seen before."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def gossip_fanout(neighbours: int) -> int:
    """How many neighbours to gossip to: 2*log2(n)+1, at least 1, at most all of them."""
    if neighbours <= 0:
        return 0
    return min(neighbours, 2 * int(math.log2(neighbours)) + 1)


@dataclass
class Backoff:
    """Exponential back-off with jitter between attempts."""

    initial: float
    cap: float
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def next(self, rng: random.Random) -> float:
        """The delay before the next attempt; each call doubles the next one, up to the cap."""
        delay = self.current
        self.current = min(self.cap, self.current * 2)
        # Jitter keeps peers that lost each other at the same moment from re-dialling in step.
        return delay * rng.uniform(0.75, 1.25)

    def reset(self) -> None:
        """Back to the first delay (after a connection that worked)."""
        self.current = self.initial

"""Weave's random Paxos model (``ipam/paxos/paxos_test.go``), ported: nodes on random links.

Gossip crosses one random *ready* link at a time (a link is ready when its
sending node changed since it last gossiped along it). Now and then a node
re-proposes, or is isolated (another node then re-proposes, and links are
added around it so the rest stays connected). If everything goes quiet
without consensus, a random node proposes. Restarts are off, as in Weave.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from weavek_consensus.paxos import Node, Value

Consensus = Callable[[Node], Value | None]


@dataclass(eq=False, slots=True)
class Link:
    src: ModelNode
    dst: ModelNode
    converse: Link | None = None
    ready: int = -1


@dataclass(eq=False, slots=True)
class ModelNode:
    node: Node
    links: list[Link] = field(default_factory=list)
    isolated: bool = False
    first: Value | None = None
    """The first consensus this node observed."""


class Model:
    """One random network of Paxos nodes; :meth:`simulate` runs it to consensus."""

    def __init__(
        self,
        rng: random.Random,
        *,
        nodes: int = 10,
        connected: float = 0.5,
        repropose: float = 0.01,
        isolate: float = 0.01,
        consensus: Consensus = Node.consensus,
    ) -> None:
        self.rng, self.repropose, self.isolate = rng, repropose, isolate
        self.consensus = consensus
        self.quorum = nodes // 2 + 1
        self.ready: list[Link] = []
        # Pairs of nodes share a peer name and differ in uid, as in Weave's model.
        self.nodes = [
            ModelNode(Node(i // 2 + 1, rng.getrandbits(63) | 1, self.quorum)) for i in range(nodes)
        ]
        for m in self.nodes:
            m.node.propose()
        for i in range(1, nodes):
            linked = False
            for j in range(i):
                if rng.random() < connected:
                    linked = True
                    self.add_link(self.nodes[i], self.nodes[j])
            if not linked:
                self.add_link(self.nodes[i], self.nodes[rng.randrange(i)])

    def add_link(self, a: ModelNode, b: ModelNode) -> None:
        if a is b:
            return
        ab, ba = Link(a, b), Link(b, a)
        ab.converse, ba.converse = ba, ab
        a.links.append(ab)
        b.links.append(ba)
        self.mark_ready(ab)
        self.mark_ready(ba)

    def mark_ready(self, link: Link) -> None:
        if link.ready < 0:
            link.ready = len(self.ready)
            self.ready.append(link)

    def mark_unready(self, link: Link) -> None:
        i = link.ready
        if i >= 0:
            last = self.ready.pop()
            if last is not link:
                self.ready[i] = last
                last.ready = i
            link.ready = -1

    def changed(self, m: ModelNode) -> None:
        for link in m.links:
            self.mark_ready(link)

    def pick(self) -> ModelNode:
        while True:
            m = self.nodes[self.rng.randrange(len(self.nodes))]
            if not m.isolated:
                return m

    def propose(self, m: ModelNode) -> None:
        m.node.propose()
        self.changed(m)

    def isolate_node(self, m: ModelNode) -> None:
        m.isolated = True
        for link in m.links:
            if link.ready >= 0:
                self.mark_unready(link)
                assert link.converse is not None
                self.mark_unready(link.converse)
        for prev, nxt in zip(m.links, m.links[1:], strict=False):
            self.add_link(prev.dst, nxt.dst)

    def simulate(self, max_steps: int = 1_000_000) -> bool:
        """Run until quiet with a consensus somewhere; False if it never came."""
        rng, left = self.rng, len(self.nodes)
        for _ in range(max_steps):
            if not self.ready:
                if any(self.consensus(m.node) is not None for m in self.nodes):
                    return True
                self.propose(self.pick())
            link = self.ready[rng.randrange(len(self.ready))]
            dst = link.dst
            if dst.node.update(link.src.node.knows):
                dst.node.think()
                if dst.first is None:
                    dst.first = self.consensus(dst.node)
                self.changed(dst)
            self.mark_unready(link)
            if rng.random() < self.repropose:
                self.propose(self.pick())
            if left > self.quorum and rng.random() < self.isolate:
                self.isolate_node(self.pick())
                left -= 1
                self.propose(self.pick())
        return False

    def problems(self) -> list[str]:
        """What :meth:`simulate` left wrong: nodes without consensus, or disagreeing."""
        out, origin = [], None
        for i, m in enumerate(self.nodes):
            value = self.consensus(m.node)
            if value is None:
                out.append(f"node {i} knows no consensus")
                continue
            if m.first is not None and m.first.origin != value.origin:
                out.append(f"node {i} first saw {m.first.origin}, finally {value.origin}")
            if origin is None:
                origin = value.origin
            elif value.origin != origin:
                out.append(f"node {i} agrees on {value.origin}, node 0 on {origin}")
        return out

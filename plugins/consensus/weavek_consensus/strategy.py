"""The ``consensus`` init strategy: electors agree on the ring's first owners with Paxos.

Weave's ``--ipalloc-init consensus[=N]``, the default there. Nothing happens
until the ring is first needed anywhere (an allocation, a claim inside the
range, a prime, or a ring request from a peer): consensus is *deferred*.
Then this peer proposes, and proposes again whenever a retry tick finds that
no vote arrived since the last one, while it *waits* for a quorum of
floor(N/2)+1 electors to answer. The proposer that
sees a quorum accept its ballot divides the ring among every peer it had
heard of by then, and broadcasts the ring: consensus is *achieved*, and
everyone else merges that ring.

N is the argument (``consensus=5``), or, without one or with 0, the number of
peers named at launch plus one, as in Weave. Over-estimating N only makes
the election wait for more peers; under-estimating it lets two separate
groups each reach a quorum and build two rings, which then refuse each other.

The allocator only drives this while it has no ring; a peer restarted with
a persisted ring never runs an election again.
"""

from __future__ import annotations

import random
from typing import Any

from weavek.core.strategy import NO_DECISION, Decision, InitArgumentError, InitStrategy

from .paxos import MAX_NODES, Node
from .payload import decode as decode_payload
from .payload import encode as encode_payload

__all__ = ["ConsensusStrategy", "parse_count"]

_MAX_UID = (1 << 64) - 1


def parse_count(arg: str | None) -> int:
    """The N of ``--init consensus=N``: 0 when absent or 0 (meaning: peers named plus one).

    :raises InitArgumentError: when ``arg`` is not a whole number up to the limit.
    """
    if arg is None:
        return 0
    text = arg.strip()
    if not text.isascii() or not text.isdigit():
        raise InitArgumentError(
            f"--init consensus={arg}: the number of peers must be a whole number, e.g. consensus=3"
        )
    count = int(text)
    if count > MAX_NODES:
        raise InitArgumentError(
            f"--init consensus={arg}: at most {MAX_NODES} peers can take part in the election"
        )
    return count


class ConsensusStrategy(InitStrategy):
    """An elector: votes in, and can start, the one-off election of the ring's first owners.

    :param arg: N, the number of peers expected, as text; None or "0" to use
        ``peers_named + 1``.
    :param uid: this process's Paxos identity; drawn from the system's random
        source when not given (tests and simulations pass their own).
    :raises InitArgumentError: when ``arg`` is not a valid peer count.
    """

    name = "consensus"
    elector = True

    def __init__(
        self, arg: str | None, *, me: int, peers_named: int = 0, uid: int | None = None
    ) -> None:
        super().__init__(arg, me=me, peers_named=peers_named)
        self.count = parse_count(arg)
        if uid is None:
            uid = random.SystemRandom().getrandbits(64) or 1
        if not 0 < uid <= _MAX_UID:
            raise ValueError(f"uid must be a non-zero 64-bit number, not {uid}")
        self.uid = uid
        self.node: Node | None = None
        """Our Paxos state: None until we first propose or hear a vote, and once a ring exists."""
        self.awaiting = False
        self.finished = False
        self._moved = False  # the election moved since the last tick
        self._own_only = False  # the next payload is a vote: our own record is enough

    @property
    def peers(self) -> int:
        """N: how many peers the election assumes there are."""
        return self.count or self.peers_named + 1

    @property
    def quorum(self) -> int:
        return self.peers // 2 + 1

    def _paxos(self) -> Node:
        if self.node is None:
            self.node = Node(self.me, self.uid)
        return self.node

    def establish(self, now: float) -> Decision:
        if self.finished:
            return NO_DECISION
        node = self._paxos()
        node.quorum = self.quorum  # evaluated when consensus starts, as in Weave
        self.awaiting = True
        self._moved = False
        self._own_only = False
        node.propose()
        return self._outcome(changed=True)

    def receive(self, sender: int, payload: Any) -> Decision:
        if self.finished:
            return NO_DECISION
        claims = decode_payload(payload)
        if claims is None:
            return NO_DECISION
        node = self._paxos()
        if not node.update(claims):
            return NO_DECISION
        self._moved = True
        decision = self._outcome(changed=node.think())
        # A vote (a promise or an acceptance) reached us by broadcast or gossip, and
        # every elector broadcasts its own vote, so ours is the only news worth
        # sending: the whole map from all N would make an election cost N^2 records
        # per vote. Ticks and periodic gossip still carry the whole map, which
        # repairs what was lost (see the module docstring of paxos).
        self._own_only = decision.broadcast
        return decision

    def tick(self, now: float) -> Decision:
        if not self.awaiting or self.node is None:
            return NO_DECISION
        self._own_only = False  # a repeat: the whole map
        if self._moved:
            # Votes are still coming in: a new ballot now would outbid the one
            # under way (Weave proposes on every tick, and peers that tick
            # together can outbid each other for ever when a round trip takes
            # most of a tick). Repeat our state, in case some of it was lost.
            self._moved = False
            return Decision(broadcast=True)
        # Nothing moved for a whole tick: the ballot under way is stuck (its
        # proposer is gone, or its messages were lost). Start a higher one.
        self.node.propose()
        return self._outcome(changed=True)

    def _outcome(self, *, changed: bool) -> Decision:
        assert self.node is not None
        value = self.node.consensus()
        if value is not None:
            return Decision(seeds=value.names)
        return Decision(broadcast=changed)

    def payload(self) -> Any:
        # None while we have no Paxos state: we then look like a ring request,
        # which makes an elector that has a ring send it, or one without start voting.
        if self.node is None or not self.node.knows:
            return None
        knows = self.node.knows
        if self._own_only:  # one-shot: the broadcast the allocator sends right after receive()
            self._own_only = False
            if self.node.id in knows:
                knows = {self.node.id: knows[self.node.id]}
        return encode_payload(knows)

    def ring_formed(self) -> None:
        self.node = None
        self.awaiting = False
        self.finished = True

    def status(self, waiting: bool) -> str:
        if waiting and self.node is not None:
            return f"awaiting consensus (quorum: {self.node.quorum}, known: {len(self.node.knows)})"
        return "idle"

    def report(self) -> dict[str, Any] | None:
        if not self.awaiting or self.node is None:
            return None
        return {"Elector": True, "KnownNodes": len(self.node.knows), "Quorum": self.node.quorum}

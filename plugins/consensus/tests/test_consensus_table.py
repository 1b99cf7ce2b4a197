"""The state table, checked with Hypothesis over every (phase, event) pair, and Paxos safety.

For each pair a node is built in that phase with a random view of three to
five other nodes, and the event is fired: a pair outside the table must
leave the node's record alone; a pair in it either does not apply (its
condition does not hold) or lands in the phase the table names, doing
exactly what the module docstring says the event does.
"""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from weavek_consensus.paxos import (
    MAX_ROUND,
    NO_BALLOT,
    TRANSITIONS,
    Ballot,
    Claims,
    Event,
    Node,
    NodeID,
    Phase,
    Value,
    phase_of,
)

ME: NodeID = (1, 11)
OTHERS: list[NodeID] = [(2, 22), (3, 33), (4, 44), (5, 55), (5, 56)]


@st.composite
def ballots(draw: st.DrawFn, proposers: list[NodeID] = [ME, *OTHERS]) -> Ballot:  # noqa: B006
    name, uid = draw(st.sampled_from(proposers))
    return (draw(st.integers(1, 4) | st.just(MAX_ROUND)), name, uid)


@st.composite
def records(draw: st.DrawFn) -> Claims:
    """Any record an honest node could hold: accepted at or below its promise."""
    if draw(st.booleans()):
        return Claims(draw(ballots()))
    accepted = draw(ballots())
    promise = max(accepted, draw(ballots()))
    origin = min(accepted, draw(ballots()))
    names = draw(st.lists(st.integers(1, 6), min_size=1, unique=True).map(sorted))
    return Claims(promise, accepted, Value(origin, tuple(names)))


@st.composite
def own_record(draw: st.DrawFn, phase: Phase) -> Claims | None:
    """A record for ME in ``phase`` (None: no record at all, the usual IDLE)."""
    if phase is Phase.IDLE:
        return None
    ours = phase in (Phase.PREPARING, Phase.PROPOSED)
    promise = draw(ballots([ME] if ours else OTHERS))
    if phase in (Phase.ACCEPTED, Phase.PROPOSED):
        origin = min(promise, draw(ballots()))
        return Claims(promise, promise, Value(origin, (1, 2)))
    if draw(st.booleans()):
        return Claims(promise)
    accepted = draw(ballots().filter(lambda b: b < promise))
    return Claims(promise, accepted, Value(accepted, (2,)))


PAIRS = list(product(Phase, Event))


@pytest.mark.parametrize(("phase", "event"), PAIRS, ids=[f"{p.name}-{e.name}" for p, e in PAIRS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_phase_and_event(phase: Phase, event: Event, data: st.DataObject) -> None:
    node = Node(*ME, quorum=data.draw(st.integers(0, 4)))
    for nid in data.draw(st.lists(st.sampled_from(OTHERS), min_size=0, max_size=5, unique=True)):
        node.knows[nid] = data.draw(records())
    own = data.draw(own_record(phase))
    if own is not None:
        node.knows[ME] = own
    assert node.phase is phase
    before, knows_before = node.claims, dict(node.knows)

    if event is Event.PROPOSE and node.quorum == 0:
        with pytest.raises(ValueError):
            node.propose()
        return
    fired = node.fire(event)
    after = node.claims
    others = {k: v for k, v in node.knows.items() if k != ME}
    assert others == {k: v for k, v in knows_before.items() if k != ME}  # only our record moves

    if (phase, event) not in TRANSITIONS:
        assert not fired and after == before
        return
    if not fired:
        assert after == before
        assert not _should_fire(event, before, knows_before, node.quorum)
        return
    assert _should_fire(event, before, knows_before, node.quorum)
    assert phase_of(after, ME) is TRANSITIONS[(phase, event)]
    # Paxos' acceptor rules, whatever the event: the promise never falls, and
    # an acceptance is only ever of the ballot promised right now.
    assert after.promise >= before.promise
    assert after.accepted == before.accepted or after.accepted == after.promise
    assert after.accepted <= after.promise
    _check_effect(event, before, after, knows_before, node.quorum)


def _should_fire(event: Event, ours: Claims, knows: dict[NodeID, Claims], quorum: int) -> bool:
    if event is Event.PROPOSE:
        return _ballot_after(knows) > ours.promise
    if event is Event.PREPARE:
        return any(c.promise > ours.promise and c.promise[1:] != ME for c in knows.values())
    if event is Event.PROMISES:
        promised = sum(1 for c in knows.values() if c.promise == ours.promise)
        return quorum > 0 and promised >= quorum
    return any(c.accepted == ours.promise for c in knows.values())


def _ballot_after(knows: dict[NodeID, Claims]) -> Ballot:
    """The ballot a proposal makes: one round above all seen, if rounds are left."""
    top = max((max(c.promise[0], c.accepted[0]) for c in knows.values()), default=0)
    return (min(top + 1, MAX_ROUND), *ME)


def _check_effect(
    event: Event, ours: Claims, after: Claims, knows: dict[NodeID, Claims], quorum: int
) -> None:
    if event is Event.PROPOSE:
        assert after == Claims(_ballot_after(knows), ours.accepted, ours.value)
    elif event is Event.PREPARE:
        assert after.promise == max(c.promise for c in knows.values() if c.promise[1:] != ME)
        assert (after.accepted, after.value) == (ours.accepted, ours.value)
    elif event is Event.PROMISES:
        promisers = [c for c in knows.values() if c.promise == ours.promise]
        best = max(promisers, key=lambda c: c.accepted)
        if best.accepted == NO_BALLOT:
            names = tuple(sorted({name for name, _ in knows}))
            assert after.value == Value(ours.promise, names)
        else:
            assert after.value == best.value
        assert after.accepted == ours.promise
    else:
        source = [c for c in knows.values() if c.accepted == ours.promise]
        assert (after.accepted, after.value) == (source[0].accepted, source[0].value)


class Gossip(RuleBasedStateMachine):
    """Nodes that propose at will and hear each other's maps, now or as they were.

    Hearing an old snapshot models delay, reordering and duplication. However
    it goes, no two nodes may ever see two different values agreed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.sent: list[dict[NodeID, Claims]] = []
        self.decided: set[Value] = set()

    @rule(n=st.sampled_from([3, 3, 4, 5]))
    @precondition(lambda self: not self.nodes)
    def start(self, n: int) -> None:
        self.nodes = [Node(i + 1, 100 + i, quorum=n // 2 + 1) for i in range(n)]

    def _node(self, i: int) -> Node:
        return self.nodes[i % len(self.nodes)]

    @rule(i=st.integers(0, 4))
    @precondition(lambda self: self.nodes)
    def propose(self, i: int) -> None:
        node = self._node(i)
        node.propose()
        self.sent.append(dict(node.knows))

    def _hear(self, node: Node, knows: dict[NodeID, Claims]) -> None:
        if node.update(knows) and node.think():
            self.sent.append(dict(node.knows))

    @rule(dst=st.integers(0, 4), src=st.integers(0, 4))
    @precondition(lambda self: self.nodes)
    def hear(self, dst: int, src: int) -> None:
        self._hear(self._node(dst), dict(self._node(src).knows))

    @rule(dst=st.integers(0, 4), pick=st.integers(0, 1 << 16))
    @precondition(lambda self: self.sent)
    def hear_late(self, dst: int, pick: int) -> None:
        self._hear(self._node(dst), self.sent[pick % len(self.sent)])

    @invariant()
    def one_value_at_most(self) -> None:
        for node in self.nodes:
            value = node.consensus()
            if value is not None:
                self.decided.add(value)
        assert len(self.decided) <= 1, self.decided


TestGossip = Gossip.TestCase
TestGossip.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)

"""Paxos on its own: Weave's tests, the trace that breaks Weave's consensus rule, and the bounds."""

from __future__ import annotations

import os
import random

import pytest
from paxos_model import Model

from weavek_consensus.paxos import MAX_NODES, MAX_VALUES, Claims, Node, Phase, Value, phase_of

MODELS = int(os.environ.get("WEAVEK_PAXOS_MODELS", "1000"))
CHUNK = 100


def hear(dst: Node, src: Node) -> bool:
    """``dst`` receives ``src``'s map, as the strategy handles a payload."""
    return dst.update(src.knows) and dst.think()


def weave_consensus(node: Node) -> Value | None:
    """Weave's ``Consensus()``: a quorum of acceptances of values with one *origin*."""
    counts: dict[tuple[int, int, int], int] = {}
    for claims in node.knows.values():
        if claims.accepted[0] > 0 and claims.value is not None:
            origin = claims.value.origin
            counts[origin] = counts.get(origin, 0) + 1
            if counts[origin] >= node.quorum:
                return claims.value
    return None


def test_single_node() -> None:
    """Weave's TestSingleNode: with a quorum of one, proposing is deciding."""
    node = Node(7, 70, quorum=1)
    node.propose()
    assert node.consensus() == Value((1, 7, 70), (7,))
    assert node.phase is Phase.PROPOSED


@pytest.mark.parametrize("chunk", range(0, MODELS, CHUNK))
def test_random_models_agree(chunk: int) -> None:
    """Weave's TestPaxos: 10 nodes, quorum 6, random links, re-proposals, isolation."""
    for seed in range(chunk, min(chunk + CHUNK, MODELS)):
        model = Model(random.Random(seed))
        assert model.simulate(), f"model {seed} never reached consensus"
        assert model.problems() == [], f"model {seed}"


def test_the_two_node_bootstrap() -> None:
    """reference §3.8 at the Paxos level: A2 is passive (quorum 0) and never decides."""
    a1, a2 = Node(1, 11, quorum=2), Node(2, 22)
    a1.propose()
    assert a1.claims == Claims((1, 1, 11))
    assert hear(a2, a1)  # A2 promises (1, A1) ...
    assert a2.claims == Claims((1, 1, 11)) and a2.phase is Phase.PROMISED
    assert hear(a1, a2)  # ... so A1 has two promises and accepts [A1, A2]
    assert a1.phase is Phase.PROPOSED and a1.consensus() is None
    assert hear(a2, a1)  # A2 copies the acceptance
    assert phase_of(a2.claims, a2.id) is Phase.ACCEPTED
    assert a2.consensus() is None  # passive: never decides
    assert a1.update(a2.knows) and not a1.think()  # A1's own record stays as it is
    assert a1.consensus() == Value((1, 1, 11), (1, 2))


def test_origin_counting_agrees_twice_where_ballot_counting_does_not() -> None:
    """The trace behind our one departure from Weave's Consensus().

    s2 counts s1's acceptance of ballot (1, s1) and its own of (2, s2), both
    carrying the value chosen at (1, s1): Weave's rule calls that a decision.
    But s1 went on to promise (2, s3), whose proposer found a higher
    acceptance, (1, s3), and s1 and s3 then agree on s3's value.
    """
    s1, s2, s3 = (Node(n, 10 + n, quorum=2) for n in (1, 2, 3))
    s1.propose()
    hear(s2, s1)
    hear(s1, s2)  # s1 accepts (1, s1) = [1, 2]; nobody hears of it yet
    s3.propose()
    hear(s2, s3)
    hear(s3, s2)  # s3 accepts (1, s3) = [1, 2, 3]; nobody hears of it yet
    s2.propose()
    hear(s1, s2)
    hear(s2, s1)  # s2 accepts (2, s2) with s1's value
    x = Value((1, 1, 11), (1, 2))
    assert weave_consensus(s2) == x
    assert s2.consensus() is None  # two acceptances, of two ballots
    s3.propose()
    hear(s1, s3)
    hear(s3, s1)
    hear(s1, s3)
    y = Value((1, 3, 13), (1, 2, 3))
    assert weave_consensus(s1) == y != x  # Weave: two rings
    assert s1.consensus() == y  # ours: the first and only decision


@pytest.mark.parametrize("seed", [1083, 5667, 9863])
def test_the_random_model_finds_the_origin_rule_out(seed: int) -> None:
    """3 nodes re-proposing often: these models make Weave's rule decide twice, not ours."""
    weave = Model(random.Random(seed), nodes=3, repropose=0.3, consensus=weave_consensus)
    weave.simulate()
    assert any("first saw" in p for p in weave.problems())
    ours = Model(random.Random(seed), nodes=3, repropose=0.3)
    assert ours.simulate()
    assert ours.problems() == []


def test_update_keeps_the_later_promise_and_acceptance() -> None:
    node = Node(1, 11)
    v = Value((2, 3, 33), (1, 3))
    assert node.update({(3, 33): Claims((2, 3, 33), (2, 3, 33), v)})
    assert node.update({(3, 33): Claims((5, 4, 44), (1, 2, 22), Value((1, 2, 22), (2,)))})
    assert node.knows[(3, 33)] == Claims((5, 4, 44), (2, 3, 33), v)
    assert not node.update({(3, 33): Claims((1, 2, 22))})  # nothing later: no change


def test_update_never_writes_our_own_record() -> None:
    node = Node(1, 11, quorum=2)
    node.propose()
    forged = Claims((9, 1, 11), (9, 1, 11), Value((9, 1, 11), (5,)))
    assert not node.update({(1, 11): forged})
    assert node.claims == Claims((1, 1, 11))


def test_passive_nodes_never_propose_or_decide() -> None:
    node = Node(1, 11)
    with pytest.raises(ValueError, match="quorum"):
        node.propose()
    v = Value((1, 2, 22), (1, 2))
    node.update({(2, 22): Claims((1, 2, 22), (1, 2, 22), v), (3, 33): Claims((1, 2, 22))})
    node.think()
    assert node.claims == Claims((1, 2, 22), (1, 2, 22), v)
    assert node.consensus() is None


def test_the_map_is_bounded_and_our_own_record_always_fits() -> None:
    node = Node(1, 11, quorum=2)
    many = {(n, 1): Claims((1, n, 1)) for n in range(2, MAX_NODES + 10)}
    assert node.update(many)
    assert len(node.knows) == MAX_NODES - 1
    node.propose()
    assert len(node.knows) == MAX_NODES and node.claims.promise[1:] == (1, 11)


def test_records_with_too_many_distinct_values_are_set_aside() -> None:
    node = Node(1, 11)
    received = {
        (n, 1): Claims((n, n, 1), (n, n, 1), Value((n, n, 1), (n,)))
        for n in range(2, MAX_VALUES + 5)
    }
    assert node.update(received)
    origins = {c.value.origin for c in node.knows.values() if c.value is not None}
    assert len(origins) == MAX_VALUES
    # A record whose value is already known is still taken in.
    known = next(iter(origins))
    assert node.update({(99, 9): Claims(known, known, Value(known, (known[1],)))})


def test_a_proposal_outbids_every_round_seen() -> None:
    node = Node(1, 11, quorum=3)
    node.update({(2, 22): Claims((4, 2, 22), (3, 5, 55), Value((3, 5, 55), (5,)))})
    node.propose()
    assert node.claims.promise == (5, 1, 11)
    node.propose()
    assert node.claims.promise == (6, 1, 11)

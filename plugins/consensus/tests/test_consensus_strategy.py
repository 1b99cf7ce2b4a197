"""The strategy: its argument, its decisions, its status and report; and the entry point."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

import pytest

from weavek.core import codec
from weavek.core.address import parse_cidr
from weavek.core.allocator import Allocator
from weavek.core.effects import Broadcast, Reply, SendTo
from weavek.core.events import AllocateRequested, GossipReceived, Via
from weavek.core.messages import PeerState
from weavek.core.strategy import NO_DECISION, Decision, InitArgumentError
from weavek.plugins import installed_plugins, make_plugin_manager, registry, resolve
from weavek_consensus import ConsensusStrategy
from weavek_consensus.payload import decode, encode

A1, A2 = 0x01 << 40, 0x02 << 40


@pytest.fixture(autouse=True)
def _no_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)


@pytest.mark.parametrize(
    ("arg", "peers_named", "n", "quorum"),
    [
        (None, 0, 1, 1),
        (None, 2, 3, 2),
        ("0", 3, 4, 3),
        ("1", 5, 1, 1),
        ("3", 0, 3, 2),
        (" 5 ", 0, 5, 3),
        ("6", 9, 6, 4),
        ("1024", 0, 1024, 513),
    ],
)
def test_the_peer_count_and_quorum(arg: str | None, peers_named: int, n: int, quorum: int) -> None:
    strategy = ConsensusStrategy(arg, me=A1, peers_named=peers_named, uid=1)
    assert (strategy.peers, strategy.quorum) == (n, quorum)


@pytest.mark.parametrize("arg", ["", "x", "-1", "1.5", "3 peers", "٣", "0x3"])
def test_a_bad_count_is_refused_clearly(arg: str) -> None:
    with pytest.raises(InitArgumentError) as info:
        ConsensusStrategy(arg, me=A1)
    assert str(info.value) == (
        f"--init consensus={arg}: the number of peers must be a whole number, e.g. consensus=3"
    )


def test_a_count_beyond_the_limit_is_refused() -> None:
    with pytest.raises(InitArgumentError, match="at most 1024 peers can take part"):
        ConsensusStrategy("1025", me=A1)


def test_the_uid_is_drawn_at_every_start_and_never_zero() -> None:
    uids = {ConsensusStrategy(None, me=A1).uid for _ in range(20)}
    assert len(uids) == 20 and 0 not in uids
    assert all(0 < uid < 1 << 64 for uid in uids)
    for bad in (0, -1, 1 << 64):
        with pytest.raises(ValueError, match="non-zero 64-bit"):
            ConsensusStrategy(None, me=A1, uid=bad)


def test_deferred_until_needed() -> None:
    strategy = ConsensusStrategy("3", me=A1, uid=1)
    assert strategy.seeds_at_start() is None
    assert strategy.payload() is None  # looks like a ring request, as a fresh Weave elector
    assert strategy.status(waiting=False) == "idle"
    assert strategy.report() is None


def test_a_lone_peer_decides_at_once() -> None:
    strategy = ConsensusStrategy(None, me=A1, uid=1)
    assert strategy.establish(now=0.0) == Decision(seeds=(A1,))


def test_waiting_for_a_quorum() -> None:
    strategy = ConsensusStrategy("3", me=A1, uid=7)
    assert strategy.establish(now=0.0) == Decision(broadcast=True)
    assert strategy.status(waiting=True) == "awaiting consensus (quorum: 2, known: 1)"
    assert strategy.report() == {"Elector": True, "KnownNodes": 1, "Quorum": 2}
    sent = decode(strategy.payload())
    assert sent is not None and sent[(A1, 7)].promise == (1, A1, 7)
    assert strategy.tick(now=5.0) == Decision(broadcast=True)
    sent = decode(strategy.payload())
    assert sent is not None and sent[(A1, 7)].promise == (2, A1, 7)  # a higher ballot each tick


def test_the_two_peer_bootstrap_between_strategies() -> None:
    """reference §3.8, as the allocator sees it: who broadcasts, and who decides."""
    a1 = ConsensusStrategy("2", me=A1, uid=11)
    a2 = ConsensusStrategy("2", me=A2, uid=22)
    assert a1.establish(0.0) == Decision(broadcast=True)  # 1: A1 proposes
    assert a2.receive(A1, a1.payload()) == Decision(broadcast=True)  # 3: A2 promises
    assert a2.status(waiting=False) == "idle" and a2.report() is None  # passive
    assert a1.receive(A2, a2.payload()) == Decision(broadcast=True)  # 4: A1 accepts
    assert a2.receive(A1, a1.payload()) == Decision(broadcast=True)  # 5: A2 accepts
    assert a1.receive(A2, a2.payload()) == Decision(seeds=(A1, A2))  # 6: consensus
    assert a2.receive(A1, a1.payload()) == NO_DECISION  # nothing new; A2 waits for the ring
    a1.ring_formed()
    a2.ring_formed()
    for done in (a1, a2):
        assert done.payload() is None and done.report() is None and done.node is None
        assert done.status(waiting=False) == "idle"
        assert done.receive(A1, ConsensusStrategy("2", me=A1, uid=5).payload()) == NO_DECISION
        assert done.establish(1.0) == NO_DECISION


def test_a_tick_outbids_only_a_stalled_ballot() -> None:
    a1 = ConsensusStrategy("5", me=A1, uid=11)
    a2 = ConsensusStrategy("5", me=A2, uid=22)
    a1.establish(0.0)
    a2.receive(A1, a1.payload())
    assert a1.receive(A2, a2.payload()) == Decision(broadcast=False)  # one promise of three

    def ballot() -> tuple[int, int, int]:
        sent = decode(a1.payload())
        assert sent is not None
        return sent[(A1, 11)].promise

    assert a1.tick(1.0) == Decision(broadcast=True)  # votes came in: keep this ballot
    assert ballot() == (1, A1, 11)
    assert a1.tick(2.0) == Decision(broadcast=True)  # a whole tick without news: outbid it
    assert ballot() == (2, A1, 11)


def test_tick_before_establish_does_nothing() -> None:
    assert ConsensusStrategy("3", me=A1, uid=1).tick(now=5.0) == NO_DECISION


def _state(alloc_me: int, election: object = None) -> bytes:
    return codec.encode(PeerState(((alloc_me, ""),), None, election))


def test_the_two_peer_bootstrap_between_allocators() -> None:
    """reference §3.8 with two real allocators, message by message."""
    universe = parse_cidr("10.32.0.0/12")

    def make(me: int, uid: int) -> Allocator:
        strategy = ConsensusStrategy("2", me=me, uid=uid)
        return Allocator(me=me, universe=universe, strategy=strategy, rng=lambda: 0.5)

    a1, a2 = make(A1, 11), make(A2, 22)
    a1.start()
    a2.start()

    def broadcast_from(effects: Sequence[object]) -> bytes:
        [payload] = [e.payload for e in effects if isinstance(e, Broadcast)]
        return payload

    # 1. A1 hears A2's state without election data: a ring request; A1 proposes.
    out = a1.handle(GossipReceived(A2, _state(A2), Via.BROADCAST))
    step1 = broadcast_from(out)
    # 2. An allocation on A1 waits.
    assert a1.handle(AllocateRequested("r1", "c1", None, True)) == []
    # 3.-6. Promise, accept, accepted, consensus.
    step3 = broadcast_from(a2.handle(GossipReceived(A1, step1, Via.BROADCAST)))
    step4 = broadcast_from(a1.handle(GossipReceived(A2, step3, Via.BROADCAST)))
    assert a1.ring.empty
    step5 = broadcast_from(a2.handle(GossipReceived(A1, step4, Via.BROADCAST)))
    out = a1.handle(GossipReceived(A2, step5, Via.BROADCAST))
    ring = broadcast_from(out)
    assert a1.ring.seeds == (A1, A2)
    assert next(e for e in out if isinstance(e, Reply)).result == parse_cidr("10.32.0.1/12")
    # 7. A2 merges the ring and does not answer.
    out = a2.handle(GossipReceived(A1, ring, Via.BROADCAST))
    assert not [e for e in out if isinstance(e, Broadcast | SendTo)]
    assert a2.ring.seeds == (A1, A2) and not a2.awaiting
    assert a1.strategy.payload() is None and a2.strategy.payload() is None


def test_the_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="weavek", name="consensus")
    assert [ep.value for ep in eps] == ["weavek_consensus.hooks"]
    assert eps["consensus"].dist is not None
    assert eps["consensus"].dist.metadata["Name"] == "weavek-consensus"


def test_resolve_finds_consensus() -> None:
    pm = make_plugin_manager()
    assert resolve(pm, "init", "consensus") is ConsensusStrategy
    assert registry(pm, "init")["consensus"] is ConsensusStrategy


def test_it_is_listed_with_its_distribution() -> None:
    pm = make_plugin_manager(allow=["consensus"])
    assert list(registry(pm, "init")) == ["consensus"]
    [info] = [i for i in installed_plugins(pm) if i.name == "consensus"]
    assert (info.family, info.distribution) == ("init", "weavek-consensus")
    assert info.version == importlib.metadata.version("weavek-consensus")


def test_a_vote_broadcasts_our_own_record_and_repeats_the_whole_map() -> None:
    """A vote travels alone from its voter; ticks and gossip carry the whole map."""
    a1 = ConsensusStrategy("3", me=A1, uid=11)
    a2 = ConsensusStrategy("3", me=A2, uid=22)
    a3 = ConsensusStrategy("3", me=0x03 << 40, uid=33)
    a1.establish(0.0)
    proposal = a1.payload()
    assert a2.receive(A1, proposal) == Decision(broadcast=True)  # A2 promises
    vote = decode(a2.payload())  # what the allocator broadcasts right after
    assert vote is not None and list(vote) == [(A2, 22)]
    assert vote[(A2, 22)].promise == (1, A1, 11)
    whole = decode(a2.payload())  # periodic gossip: every record A2 knows
    assert whole is not None and set(whole) == {(A1, 11), (A2, 22)}
    # The vote alone moves the election on: A1 counts A2's promise and accepts.
    assert a1.receive(A2, encode(vote)) == Decision(broadcast=True)
    accept = decode(a1.payload())
    assert accept is not None and list(accept) == [(A1, 11)]
    assert accept[(A1, 11)].accepted == (1, A1, 11)
    # A record A1 learns without voting is not news worth a broadcast of its own.
    a3.receive(A1, proposal)
    assert a1.receive(0x03 << 40, a3.payload()) == Decision(broadcast=False)
    assert a1.tick(1.0) == Decision(broadcast=True)  # votes came in: repeat the whole map
    repeat = decode(a1.payload())
    assert repeat is not None and set(repeat) == {(A1, 11), (A2, 22), (0x03 << 40, 33)}

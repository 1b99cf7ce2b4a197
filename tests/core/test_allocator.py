"""Allocator: one peer's IPAM state machine (reference §2.4-2.6, §3.4, §4, §6, §9.4).

Every scenario of Weave's ``allocator_test.go`` (§9.4) is here in our own
words, driving real :class:`Allocator` objects, plus what weavek adds:
refused gossip, restarts from a snapshot, dead-container reclaim, subnets,
IPv6 and the merge that takes a range away (Weave crashed there).

Multi-peer tests use :class:`Net`, a tiny in-test router: it carries every
Broadcast / SendTo / Gossip effect to the other peers as a
:class:`GossipReceived`, in FIFO order, until nothing is left to deliver. It
also collects replies (and fails on a second reply to one request), folds
storage effects into a per-peer store, and -- unless told otherwise -- fails
the moment an address inside the universe is handed to a second holder.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from weavek.core import codec
from weavek.core.address import CIDR, parse_address, parse_cidr
from weavek.core.allocator import MAX_CLAIM_TRIES, Allocator
from weavek.core.effects import (
    Allocated,
    Broadcast,
    ClearStore,
    Effect,
    Failed,
    Gossip,
    Log,
    Refuse,
    Released,
    Reply,
    RingChanged,
    SaveRing,
    SendTo,
)
from weavek.core.events import (
    AllocateRequested,
    Cancelled,
    ClaimRequested,
    ContainerDestroyed,
    ContainerDied,
    ContainerStarted,
    DeleteRequested,
    Event,
    FreeRequested,
    GossipReceived,
    LookupRequested,
    PeersChanged,
    PrimeRequested,
    PruneRequested,
    RmPeerRequested,
    ShutdownRequested,
    Tick,
    Via,
)
from weavek.core.messages import PeerState, RingData, SpaceDenied, SpaceRequest
from weavek.core.peer import format_peer_name, parse_peer_name
from weavek.core.snapshot import Holding, Snapshot
from weavek.core.strategy import NO_DECISION, Decision, InitStrategy
from weavek.testing.strategies import FixedSeeds

# -- helpers -----------------------------------------------------------------------------


def ip(text: str) -> int:
    return parse_address(text)[0]


def cidr(text: str) -> CIDR:
    return parse_cidr(text)


def peer(n: int) -> int:
    """Weave's test peer names: ``NN:00:00:02:00:00``."""
    return parse_peer_name(f"{n:02x}:00:00:02:00:00")


def nick(name: int) -> str:
    return f"host{name >> 40}"


def who(name: int) -> str:
    """How the allocator names a peer in messages."""
    return f"{format_peer_name(name)}({nick(name)})"


P0, P1, P2, P3, P4 = (peer(i) for i in range(5))
CONTAINER = "0123456789abcdef" * 4  # a Docker container ID: stored compactly by the ledger


class _Pending:
    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()
"""What :meth:`Net.request` returns while a request has had no reply."""


class Pair(InitStrategy):
    """A two-peer stand-in for a quorum-2 election: the ring needs both votes.

    The election payload is the set of peers we have heard from. A peer that
    sees the other has heard from it too builds the ring for the two of them.
    """

    name = "pair"

    def __init__(self, *, me: int, other: int) -> None:
        super().__init__(None, me=me)
        self.other = other
        self.heard: set[int] = set()
        self.establishes = 0

    def establish(self, now: float) -> Decision:
        self.establishes += 1
        self.heard.add(self.me)
        return Decision(broadcast=True)

    def receive(self, sender: int, payload: Any) -> Decision:
        if sender != self.other:
            return NO_DECISION
        self.heard |= {self.me, sender}
        if self.me in payload:
            return Decision(seeds=(self.me, self.other))
        return Decision(broadcast=True)

    def tick(self, now: float) -> Decision:
        return Decision(broadcast=True)

    def payload(self) -> Any:
        return sorted(self.heard) if self.heard else None


class Observer(InitStrategy):
    """Never votes: waits to be handed the ring (its establish is a ring request)."""

    name = "observer"
    elector = False


@dataclass
class Store:
    """What a peer persisted, folded from its storage effects."""

    ring: RingData | None = None
    owned: dict[str, tuple[list[CIDR], bool]] = field(default_factory=dict)

    def apply(self, effect: Effect) -> None:
        if isinstance(effect, SaveRing):
            self.ring = effect.ring
        elif isinstance(effect, Allocated):
            cidrs, _ = self.owned.get(effect.ident, ([], False))
            cidrs.append(effect.cidr)
            self.owned[effect.ident] = (cidrs, effect.is_container)
        elif isinstance(effect, Released):
            cidrs, is_container = self.owned.get(effect.ident, ([], False))
            rest = [c for c in cidrs if c.addr != effect.cidr.addr]
            if rest:
                self.owned[effect.ident] = (rest, is_container)
            else:
                self.owned.pop(effect.ident, None)
        elif isinstance(effect, ClearStore):
            self.ring = None
            self.owned.clear()

    def snapshot(self, me: int) -> Snapshot:
        owned = {ident: Holding(tuple(c), is_c) for ident, (c, is_c) in self.owned.items()}
        return Snapshot(me, self.ring, owned)


def kind_of(payload: bytes) -> str:
    message = codec.decode(payload)
    if isinstance(message, SpaceRequest):
        return "space-request"
    if isinstance(message, SpaceDenied):
        return "denied"
    if message.ring is not None:
        return "ring"
    return "election" if message.election is not None else "ring-request"


class Net:
    """Real allocators wired together by a FIFO, loss-free in-test router.

    Peers in the same *group* reach each other; :meth:`partition` and
    :meth:`heal` move them, :meth:`kill` removes one. A paused peer's
    messages wait until :meth:`resume`.
    """

    def __init__(self, universe: str = "10.0.0.0/22", *, seed: int = 0, unique: bool = True):
        self.universe = cidr(universe)
        self.rand = random.Random(seed)
        self.unique = unique
        self.nodes: dict[int, Allocator] = {}
        self.group: dict[int, int] = {}
        self.stores: dict[int, Store] = {}
        self.queue: deque[tuple[int, GossipReceived]] = deque()
        self.held_back: deque[tuple[int, GossipReceived]] = deque()
        self.paused: set[int] = set()
        self.replies: dict[object, object] = {}
        self.refusals: list[tuple[int, int, str]] = []
        self.logs: list[tuple[int, Log]] = []
        self.sent: list[tuple[int, int | None, Via, bytes]] = []
        self.holders: dict[int, tuple[int, str]] = {}
        self.now = 0.0
        self.last: object = None
        self._requests = itertools.count(1)

    # -- peers -----------------------------------------------------------

    def add(
        self,
        me: int,
        strategy: InitStrategy | None = None,
        *,
        universe: str | None = None,
        default_subnet: str | None = None,
        snapshot: Snapshot | None = None,
        group: int = 0,
        connect: bool = True,
    ) -> Allocator:
        alloc = Allocator(
            me=me,
            nickname=nick(me),
            universe=cidr(universe) if universe else self.universe,
            default_subnet=cidr(default_subnet) if default_subnet else None,
            strategy=strategy or FixedSeeds([me], me=me),
            rng=self.rand.random,
            snapshot=snapshot,
        )
        self.nodes[me] = alloc
        self.group[me] = group
        self.stores.setdefault(me, Store())
        self.route(me, alloc.start(self.now))
        if connect:
            self.connect()
        return alloc

    def __getitem__(self, me: int) -> Allocator:
        return self.nodes[me]

    def reach(self, src: int) -> list[int]:
        group = self.group[src]
        return [n for n in self.nodes if n != src and self.group[n] == group]

    def connect(self) -> None:
        """Tell every peer who it can reach now, and deliver what that sets off."""
        for name in list(self.nodes):
            self.feed(name, PeersChanged(frozenset(self.reach(name))))
        self.settle()

    def partition(self, *groups: Iterable[int]) -> None:
        for number, members in enumerate(groups):
            for name in members:
                self.group[name] = number
        self.connect()

    def heal(self) -> None:
        self.partition(self.nodes)

    def kill(self, me: int) -> None:
        del self.nodes[me]
        self.connect()

    def pause(self, me: int) -> None:
        self.paused.add(me)

    def resume(self, me: int) -> None:
        self.paused.discard(me)
        self.queue.extend(item for item in self.held_back if item[0] == me)
        self.held_back = deque(item for item in self.held_back if item[0] != me)
        self.settle()

    # -- carrying effects -------------------------------------------------

    def feed(self, me: int, event: Event) -> list[Effect]:
        effects = self.nodes[me].handle(event)
        self.route(me, effects)
        return effects

    def route(self, src: int, effects: list[Effect]) -> None:
        store = self.stores[src]
        for effect in effects:
            store.apply(effect)
            if isinstance(effect, Broadcast | Gossip):
                via = Via.BROADCAST if isinstance(effect, Broadcast) else Via.GOSSIP
                self.sent.append((src, None, via, effect.payload))
                for dst in self.reach(src):
                    self.queue.append((dst, GossipReceived(src, effect.payload, via)))
            elif isinstance(effect, SendTo):
                self.sent.append((src, effect.peer, Via.UNICAST, effect.payload))
                if effect.peer in self.reach(src):
                    self.queue.append(
                        (effect.peer, GossipReceived(src, effect.payload, Via.UNICAST))
                    )
            elif isinstance(effect, Reply):
                assert effect.request not in self.replies, f"second reply to {effect.request}"
                self.replies[effect.request] = effect.result
            elif isinstance(effect, Refuse):
                self.refusals.append((src, effect.peer, effect.reason))
            elif isinstance(effect, Log):
                self.logs.append((src, effect))
            elif isinstance(effect, Allocated):
                self._note_allocated(src, effect)
            elif isinstance(effect, Released):
                addr = effect.cidr.addr
                if self.holders.get(addr) == (src, effect.ident):
                    del self.holders[addr]

    def _note_allocated(self, src: int, effect: Allocated) -> None:
        addr = effect.cidr.addr
        if not self.unique or not self.universe.contains(addr):
            return
        holder = self.holders.get(addr)
        assert holder in (None, (src, effect.ident)), (
            f"{effect.cidr} handed to {effect.ident} on {format_peer_name(src)} "
            f"but already held by {holder}"
        )
        self.holders[addr] = (src, effect.ident)

    def settle(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            dst, ev = self.queue.popleft()
            if dst not in self.nodes or ev.sender not in self.nodes:
                continue  # a dead peer's connections carry nothing
            if self.group[dst] != self.group[ev.sender]:
                continue  # nor do connections across a partition
            if dst in self.paused:
                self.held_back.append((dst, ev))
                continue
            self.feed(dst, ev)
        raise AssertionError("the network did not settle")

    def tick(self, seconds: float = 5.0) -> None:
        self.now += seconds
        for name in list(self.nodes):
            self.feed(name, Tick(self.now))
        self.settle()

    # -- requests ----------------------------------------------------------

    def request(self, me: int, make: Callable[[object], Event], *, settle: bool = True) -> Any:
        """Feed a request, deliver what follows, and return its reply (or PENDING)."""
        req = self.last = next(self._requests)
        self.feed(me, make(req))
        if settle:
            self.settle()
        return self.replies.get(req, PENDING)

    def result(self, req: object) -> Any:
        return self.replies.get(req, PENDING)

    def allocate(self, me: int, ident: str, subnet: str | None = None, **kw: Any) -> Any:
        sub = cidr(subnet) if subnet else None
        return self.request(me, lambda r: AllocateRequested(r, ident, sub, **kw))

    def claim(self, me: int, ident: str, address: str, **kw: Any) -> Any:
        return self.request(me, lambda r: ClaimRequested(r, ident, cidr(address), **kw))

    def lookup(self, me: int, ident: str, subnet: str | None = None) -> Any:
        sub = cidr(subnet) if subnet else None
        return self.request(me, lambda r: LookupRequested(r, ident, sub))

    def free(self, me: int, ident: str, address: str | int) -> Any:
        addr = ip(address) if isinstance(address, str) else address
        return self.request(me, lambda r: FreeRequested(r, ident, addr))

    def delete(self, me: int, ident: str) -> Any:
        return self.request(me, lambda r: DeleteRequested(r, ident))

    def prime(self, me: int) -> Any:
        return self.request(me, PrimeRequested)

    def shutdown(self, me: int) -> Any:
        return self.request(me, ShutdownRequested)

    def rmpeer(self, me: int, name: str) -> Any:
        return self.request(me, lambda r: RmPeerRequested(r, name))

    def cancel(self, me: int, req: object) -> Any:
        self.feed(me, Cancelled(req))
        self.settle()
        return self.result(req)

    def event(self, me: int, event: Event) -> list[Effect]:
        effects = self.feed(me, event)
        self.settle()
        return effects

    # -- checks ------------------------------------------------------------

    def audit(self) -> None:
        for alloc in self.nodes.values():
            alloc.audit()

    def messages(self) -> list[tuple[int, int | None, str, str]]:
        """``(sender, receiver or None, how, what)`` for everything sent so far."""
        return [(src, dst, via.value, kind_of(p)) for src, dst, via, p in self.sent]


def state_of(alloc: Allocator) -> tuple[object, ...]:
    """Everything a refused message must leave untouched."""
    return (
        alloc.ring.to_data(),
        alloc.space.free_ranges(),
        alloc.space.allocated_ranges(),
        sorted(alloc.ledger.items()),
        alloc.pending_allocates,
        alloc.pending_claims,
    )


def owned(alloc: Allocator, of: int | None = None) -> list[tuple[str, str]]:
    """Coalesced ranges the ring gives ``of`` (default: the allocator's own peer)."""
    out: list[list[int]] = []
    for lo, hi in alloc.ring.owned_ranges(of):
        if out and out[-1][1] == lo:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
    fmt = CIDR(0, 32, alloc.universe.version).with_addr
    return [(fmt(lo).address_text(), fmt(hi - 1).address_text()) for lo, hi in out]


def failed(result: object, text: str = "", *, cancelled: bool = False) -> bool:
    return isinstance(result, Failed) and text in result.message and result.cancelled == cancelled


def solo(universe: str = "10.0.3.0/26", **kw: Any) -> Net:
    """One peer, P1, owning the whole universe."""
    net = Net(universe)
    net.add(P1, **kw)
    return net


# -- TestAllocFree -----------------------------------------------------------------------


def test_alloc_free() -> None:
    net = solo("10.0.3.0/26")
    sub1, sub2 = "10.0.3.0/28", "10.0.3.32/28"
    assert net.allocate(P1, "c1", sub1) == cidr("10.0.3.1/28")
    assert net.allocate(P1, "c1", sub2) == cidr("10.0.3.33/28")
    # Lookup keeps stored order, and each address the prefix it was allocated with.
    assert net.lookup(P1, "c1", "10.0.3.0/26") == (cidr("10.0.3.1/28"), cidr("10.0.3.33/28"))
    assert net.lookup(P1, "c1", sub2) == (cidr("10.0.3.33/28"),)
    c2 = net.allocate(P1, "c2", sub1, is_container=True)
    assert c2 == cidr("10.0.3.2/28")
    # Asking again is idempotent, per subnet.
    assert net.allocate(P1, "c1", sub1) == cidr("10.0.3.1/28")
    assert net.allocate(P1, "c1", sub2) == cidr("10.0.3.33/28")
    assert net.delete(P1, "c1") is None
    assert net.lookup(P1, "c1") == ()
    assert net.allocate(P1, "c3", sub1, is_container=True) == cidr("10.0.3.1/28")
    assert net.allocate(P1, "c3", sub2, is_container=True) == cidr("10.0.3.33/28")
    # A dead container asking again gets its address back and is alive again.
    net.event(P1, ContainerDied("c2"))
    assert net[P1].ledger.is_dead("c2")
    assert net.allocate(P1, "c2", sub1, is_container=True) == c2
    assert not net[P1].ledger.is_dead("c2")
    net.event(P1, ContainerDied("c3"))
    net.tick(60)
    assert net.lookup(P1, "c3", "10.0.3.0/26") == ()
    assert net[P1].space.num_free_in(ip("10.0.3.0"), ip("10.0.4.0")) == 63
    net.audit()


def test_free_and_delete_errors() -> None:
    net = solo("10.0.3.0/26")
    addr = net.allocate(P1, "c1")
    assert failed(net.free(P1, "c2", addr.addr), "Free: address 10.0.3.1 not found for ID c2")
    assert failed(net.free(P1, "c1", "10.0.3.9"), "not found for ID c1")
    assert failed(net.delete(P1, "nobody"), "Delete: no addresses for nobody")
    assert net.free(P1, "c1", addr.addr) is None
    assert failed(net.free(P1, "c1", addr.addr), "not found")
    assert net[P1].space.num_free() == 64
    net.audit()


def test_anonymous_allocation_is_filed_under_its_address() -> None:
    net = solo("10.0.3.0/26")
    first = net.allocate(P1, "_")
    second = net.allocate(P1, "_")
    assert (first, second) == (cidr("10.0.3.1/26"), cidr("10.0.3.2/26"))
    assert net.lookup(P1, "10.0.3.1") == (first,)
    assert net.stores[P1].owned["10.0.3.2"] == ([second], False)
    assert net.free(P1, "10.0.3.1", "10.0.3.1") is None
    net.audit()


# -- TestBootstrap -----------------------------------------------------------------------


def pair_net(universe: str = "10.0.0.0/22") -> Net:
    net = Net(universe)
    net.add(P1, Pair(me=P1, other=P2))
    net.add(P2, Pair(me=P2, other=P1))
    return net


def test_bootstrap_allocate_waits_for_the_ring_then_completes() -> None:
    net = pair_net()
    assert net.sent == []  # nobody has voted, so joining sends nothing
    net.feed(P1, AllocateRequested("a1", "c1"))
    assert net.result("a1") is PENDING
    assert net[P1].awaiting
    net.settle()
    assert net.messages() == [
        (P1, None, "broadcast", "election"),  # P1 votes
        (P2, None, "broadcast", "election"),  # P2 has heard P1, says so
        (P1, None, "broadcast", "ring"),  # P1 sees both votes: the ring
    ]  # P2 merges the ring and does not answer
    assert net.result("a1") == cidr("10.0.0.1/22")
    assert net[P1].ring.seeds == net[P2].ring.seeds == (P1, P2)
    assert owned(net[P1]) == [("10.0.0.0", "10.0.1.255")]
    assert owned(net[P2]) == [("10.0.2.0", "10.0.3.255")]
    assert not net[P1].awaiting and not net[P2].awaiting
    assert net.allocate(P2, "c2") == cidr("10.0.2.0/22")
    net.audit()


def test_bootstrap_vote_is_repeated_on_tick_until_heard() -> None:
    net = pair_net()
    net.pause(P2)
    assert net.allocate(P1, "c1") is PENDING
    first = net.last
    net.tick()  # awaiting: the strategy re-broadcasts
    assert [m for m in net.messages() if m[0] == P1] == [(P1, None, "broadcast", "election")] * 2
    assert net.result(first) is PENDING
    net.resume(P2)
    assert net.result(first) == cidr("10.0.0.1/22")
    net.audit()


def test_prime_waits_for_the_ring() -> None:
    net = pair_net()
    net.pause(P1)
    assert net.prime(P2) is PENDING
    prime = net.last
    assert net[P2].pending_primes == 1
    net.resume(P1)
    assert net.result(prime) is None
    assert net[P2].pending_primes == 0
    assert net.prime(P1) is None  # with a ring, at once


def test_observer_ring_request_makes_an_elector_build_the_ring() -> None:
    net = Net("10.0.0.0/24")
    net.add(P1, FixedSeeds([P1], me=P1, at_start=False))
    net.add(P2, Observer(None, me=P2))
    assert net[P1].ring.empty and net[P2].ring.empty
    assert net.allocate(P2, "c1") == cidr("10.0.0.128/24")
    kinds = net.messages()
    assert kinds[0] == (P2, None, "broadcast", "ring-request")
    assert (P2, P1, "unicast", "space-request") in kinds
    assert owned(net[P1]) == [("10.0.0.0", "10.0.0.127")]
    assert owned(net[P2]) == [("10.0.0.128", "10.0.0.255")]
    net.audit()


def test_ring_request_from_periodic_gossip_is_not_answered() -> None:
    net = Net("10.0.0.0/24")
    net.add(P1, FixedSeeds([P1], me=P1, at_start=False))
    state = codec.encode(PeerState(((P2, "host2"),)))
    assert net.feed(P1, GossipReceived(P2, state, Via.GOSSIP)) == []
    assert net[P1].ring.empty
    effects = net.feed(P1, GossipReceived(P2, state, Via.BROADCAST))
    assert not net[P1].ring.empty
    assert any(isinstance(e, Broadcast) for e in effects)


def test_fake_router_simple() -> None:
    net = pair_net()
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/22")
    net.audit()


# -- TestAllocatorClaim ------------------------------------------------------------------


def test_allocator_claim() -> None:
    net = Net("10.0.3.0/24")
    net.add(P0, Pair(me=P0, other=P1))
    net.add(P1, Pair(me=P1, other=P0))
    # Pre-claims before any ring exist answer OK at once (no_error_on_unknown), and wait.
    net.pause(P1)
    assert net.claim(P0, "c1", "10.0.3.1/24", no_error_on_unknown=True) is None
    assert net[P0].pending_claims == [("c1", cidr("10.0.3.1/24"))]
    assert net.claim(P1, "c2", "10.0.3.200/24", no_error_on_unknown=True) is None
    net.resume(P1)
    assert net.prime(P1) is None
    assert net[P0].pending_claims == [] and net[P1].pending_claims == []
    assert net[P0].ledger.addresses("c1") == (ip("10.0.3.1"),)
    assert net[P1].ledger.addresses("c2") == (ip("10.0.3.200"),)
    # An address P0 owns, claimed on P1: P0 donates that one address.
    assert net.claim(P1, "c3", "10.0.3.5/24") is None
    assert net[P1].ring.owner(ip("10.0.3.5")) == P1
    assert net[P0].ring.owner(ip("10.0.3.5")) == P1
    assert net[P0].ring.owner(ip("10.0.3.4")) == net[P0].ring.owner(ip("10.0.3.6")) == P0
    assert net.allocate(P1, "c3", "10.0.3.0/24") == cidr("10.0.3.5/24")
    assert net.claim(P1, "c3", "10.0.3.5/24") is None  # re-claim
    assert failed(net.claim(P1, "c1", "10.0.3.5/24"), "address 10.0.3.5 is already owned by c3")
    assert net.claim(P1, "_", "10.0.3.5/24") is None  # anonymous: assumed the same container
    # Held on the other peer: denied.
    assert failed(
        net.claim(P1, "c4", "10.0.3.1/24"), f"address 10.0.3.1 is owned by other peer {who(P0)}"
    )
    assert failed(net.claim(P0, "c4", "10.0.3.1/24"), "already owned by c1")
    assert failed(net.claim(P0, "c4", "10.0.3.5/24"), f"is owned by other peer {who(P1)}")
    # Outside the universe: checked against this peer's ledger only.
    assert net.claim(P1, "c1", "10.0.4.2/24") is None
    assert failed(net.claim(P1, "c3", "10.0.4.2/24"), "address 10.0.4.2 already in use by c1")
    assert net.claim(P1, "c1", "10.0.4.2/24") is None
    assert net.claim(P1, "_", "10.0.4.2/24") is None
    assert net.claim(P0, "c3", "10.0.4.2/24") is None  # other peers are not asked
    assert net.claim(P1, "_", "10.0.2.3/23") is None
    assert net.lookup(P1, "10.0.2.3", "10.0.2.0/23") == (cidr("10.0.2.3/23"),)
    got = net.allocate(P1, "_", "10.0.2.0/23")
    assert isinstance(got, CIDR) and got.prefix == 23 and got.addr != ip("10.0.2.3")
    assert net[P1].universe.contains(got.addr)
    # Claims never waited on anything but their owner: nothing is left pending.
    assert net[P0].pending_claims == net[P1].pending_claims == []
    net.audit()


def test_claim_in_own_range_and_errors() -> None:
    net = solo("10.0.3.0/24")
    assert net.claim(P1, "c1", "10.0.3.0/24") is None  # claims may take network addresses
    assert net.allocate(P1, "c2") == cidr("10.0.3.1/24")
    assert failed(net.claim(P1, "c3", "10.0.3.1/24"), "address 10.0.3.1 is already owned by c2")
    assert net.allocate(P1, "_") == cidr("10.0.3.2/24")
    assert failed(net.claim(P1, "c3", "10.0.3.2/24"), "address 10.0.3.2 already in use")
    assert net.claim(P1, "_", "10.0.3.1/24") is None
    assert net[P1].ledger.addresses("c2") == (ip("10.0.3.1"),)
    net.audit()


def test_anonymous_claim_is_filed_under_its_address() -> None:
    net = solo("10.0.3.0/24")
    assert net.claim(P1, "_", "10.0.3.7/24") is None
    assert net.claim(P1, "_", "10.0.3.8/24") is None
    assert sorted(net.stores[P1].owned) == ["10.0.3.7", "10.0.3.8"]
    assert net.lookup(P1, "10.0.3.7") == (cidr("10.0.3.7/24"),)
    assert net.lookup(P1, "_") == ()
    assert failed(net.claim(P1, "c1", "10.0.3.7/24"), "address 10.0.3.7 already in use")
    assert net.claim(P1, "_", "10.0.3.7/24") is None
    assert net.free(P1, "10.0.3.8", "10.0.3.8") is None
    net.audit()


def test_anonymous_claim_of_another_peers_address() -> None:
    net = Net("10.0.3.0/24")
    net.add(P0, FixedSeeds([P0, P1], me=P0))
    net.add(P1, FixedSeeds([P0, P1], me=P1))
    assert net.claim(P1, "_", "10.0.3.9/24") is None
    assert net.lookup(P1, "10.0.3.9") == (cidr("10.0.3.9/24"),)
    net.audit()


def test_start_log_lines() -> None:
    def start(strategy: InitStrategy) -> list[Effect]:
        alloc = Allocator(me=P1, universe=cidr("10.0.0.0/24"), strategy=strategy, rng=random.random)
        return alloc.start()

    assert Log("info", "Initialising with supplied IPAM seed") in start(FixedSeeds([P1], me=P1))
    deferred = start(FixedSeeds([P1], me=P1, at_start=False))
    assert deferred == [Log("info", "Initialising via deferred consensus")]
    assert start(Observer(None, me=P1)) == [
        Log("info", "Initialising as observer - awaiting IPAM data from another peer")
    ]


def test_claim_of_unreachable_owners_address_fails_after_retries() -> None:
    net = Net("10.0.3.0/24")
    net.add(P0, FixedSeeds([P0, P1], me=P0))
    net.add(P1, FixedSeeds([P0, P1], me=P1))
    net.kill(P0)
    assert net.claim(P1, "c1", "10.0.3.5/24") is PENDING
    req = net.last
    for _ in range(MAX_CLAIM_TRIES - 1):
        net.tick()
        assert net.result(req) is PENDING
    net.tick()
    assert failed(net.result(req), f"address 10.0.3.5 is owned by other peer {who(P0)}")
    # With no_error_on_unknown the answer is OK at once, and the claim keeps waiting.
    assert net.claim(P1, "c2", "10.0.3.6/24", no_error_on_unknown=True) is None
    assert net[P1].pending_claims == [("c2", cidr("10.0.3.6/24"))]


def test_outside_claim_takes_over_from_dead_holder() -> None:
    net = solo("10.0.3.0/24")
    assert net.claim(P1, "c1", "192.168.0.5/24", is_container=True) is None
    net.event(P1, ContainerDied("c1"))
    effects = net.feed(P1, ClaimRequested("r", "c2", cidr("192.168.0.5/24")))
    assert effects == [
        Released("c1", cidr("192.168.0.5/24")),
        Allocated("c2", cidr("192.168.0.5/24"), False),
        Reply("r", None),
    ]
    assert net.lookup(P1, "c1", "192.168.0.0/24") == ()
    assert net.lookup(P1, "c2", "192.168.0.0/24") == (cidr("192.168.0.5/24"),)
    assert net.stores[P1].owned == {"c2": ([cidr("192.168.0.5/24")], False)}
    assert net.free(P1, "c2", "192.168.0.5") is None
    net.audit()


# -- TestCancel / TestCancelOnDied ----------------------------------------------------


def test_cancel_pending_allocate() -> None:
    net = Net("10.0.3.0/28")
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    for n in range(7):  # P1 owns .0-.7; .0 is the subnet's network address
        assert net.allocate(P1, f"c{n}") == cidr(f"10.0.3.{n + 1}/28")
    net.pause(P2)
    assert net.allocate(P1, "late") is PENDING
    req = net.last
    assert net.messages()[-1] == (P1, P2, "unicast", "space-request")
    assert net.cancel(P1, req) == Failed("Allocate request for late cancelled", cancelled=True)
    assert net[P1].pending_allocates == []
    net.resume(P2)  # the donation still arrives; the cancelled request gets no second reply
    assert net.allocate(P1, "next") == cidr("10.0.3.12/28")
    # Cancelling something unknown, or already answered, says nothing.
    assert net.event(P1, Cancelled(req)) == []
    assert net.event(P1, Cancelled("nonsense")) == []
    net.audit()


def test_cancel_pending_claim_and_prime() -> None:
    net = Net("10.0.3.0/24")
    net.add(P1, Pair(me=P1, other=P2))
    assert net.claim(P1, "c1", "10.0.3.5/24") is PENDING
    claim = net.last
    assert net.prime(P1) is PENDING
    prime = net.last
    assert net.cancel(P1, claim) == Failed("Claim request for c1 cancelled", cancelled=True)
    assert failed(net.cancel(P1, prime), "Prime request cancelled", cancelled=True)
    assert net[P1].pending_claims == [] and net[P1].pending_primes == 0


def test_cancel_on_died() -> None:
    net = Net("10.0.3.0/24")
    net.add(P1, Pair(me=P1, other=P2))  # P2 never comes: no ring, ever
    assert net.allocate(P1, "c1", is_container=True) is PENDING
    first = net.last
    assert net.allocate(P1, "c1", is_container=True) is PENDING
    second = net.last
    assert net.claim(P1, "c1", "10.0.3.9/24") is PENDING
    claim = net.last
    assert net.allocate(P1, "other") is PENDING
    net.event(P1, ContainerDied("c1"))
    for req in (first, second):
        assert net.result(req) == Failed("Allocate request for c1 cancelled", cancelled=True)
    assert net.result(claim) == Failed("Claim request for c1 cancelled", cancelled=True)
    assert net[P1].pending_allocates == [("other", cidr("10.0.3.0/24"))]


# -- TestGossipShutdown, shutdown with an heir ------------------------------------------


def test_gossip_shutdown_without_heir() -> None:
    net = solo("10.0.3.0/30")
    assert net.allocate(P1, "c1") == cidr("10.0.3.1/30")
    sent = len(net.sent)
    assert net.shutdown(P1) is None
    assert failed(net.allocate(P1, "c2"), "Allocate request for c2 cancelled", cancelled=True)
    assert failed(net.claim(P1, "c2", "10.0.3.2/30"), "cancelled", cancelled=True)
    assert failed(net.prime(P1), "Prime request cancelled", cancelled=True)
    net.tick(60)
    # A peer turning up, and its ring request, get nothing either: the ring we hold
    # now (every range owned by the unknown peer) was never persisted.
    net.add(P2, Observer(None, me=P2))
    net.event(P1, GossipReceived(P2, codec.encode(PeerState(())), Via.BROADCAST))
    assert len(net.sent) == sent  # no heir: nothing was broadcast, sent or gossiped
    assert net[P2].ring.empty
    assert (P1, Log("warning", "No peer to hand our ranges to")) in net.logs
    stored = net.stores[P1].ring
    assert stored is not None and stored.peers == (P1,)  # the heirless ring was not saved
    # Lookup and free still answer.
    assert net.lookup(P1, "c1") == (cidr("10.0.3.1/30"),)
    assert net.free(P1, "c1", "10.0.3.1") is None


def test_shutdown_hands_ranges_to_a_reachable_heir() -> None:
    net = Net("10.0.0.0/24", unique=False)  # P1's ledger outlives its ranges, as in Weave
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    assert net.shutdown(P1) is None
    assert [m[2:] for m in net.messages()[-1:]] == [("broadcast", "ring")]
    assert owned(net[P1]) == []
    assert owned(net[P2]) == [("10.0.0.0", "10.0.0.255")]
    assert net[P1].space.owned_ranges() == []
    stored = net.stores[P1].ring
    assert stored is not None and set(stored.peers) == {P2}  # the handover was persisted
    net.audit()
    # The heir gets the ranges as free: a reset peer's containers are gone (Weave too).
    assert net.allocate(P2, "c2") == cidr("10.0.0.1/24")
    net.tick(30)  # gossip after a handover is fine: the heir's ring says the same
    assert not net.refusals


def test_shutdown_cancels_pending_work() -> None:
    net = Net("10.0.3.0/24")
    net.add(P1, Pair(me=P1, other=P2))
    assert net.allocate(P1, "c1") is PENDING
    alloc = net.last
    assert net.prime(P1) is PENDING
    prime = net.last
    assert net.shutdown(P1) is None
    assert net.result(alloc) == Failed("Allocate request for c1 cancelled", cancelled=True)
    assert failed(net.result(prime), "Prime request cancelled", cancelled=True)


# -- TestNoFrag --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_no_frag(seed: int) -> None:
    net = Net("10.0.0.0/22", seed=seed)
    net.add(P0, FixedSeeds([P0], me=P0))
    net.add(P1, Observer(None, me=P1))
    net.add(P2, Observer(None, me=P2))
    for name in (P1, P2):
        result = net.allocate(name, f"c{name}")
        assert isinstance(result, CIDR)
    assert len(net[P2].ring) < 6
    assert sum(1 for m in net.messages() if m[3] == "space-request") == 2
    net.audit()


# -- TestTransfer ------------------------------------------------------------------------


def test_transfer_ranges_of_dead_peers() -> None:
    net = Net("10.0.0.0/22")
    names = [P0, P1, P2]
    for name in names:
        net.add(name, FixedSeeds(names, me=name))
    assert net.allocate(P1, "c1") == cidr("10.0.2.0/22")
    assert net.allocate(P2, "c2") == cidr("10.0.3.0/22")
    net.tick(30)  # gossip: everyone sees the free counts
    net.kill(P1)
    net.kill(P2)
    size1 = sum(hi - lo for lo, hi in net[P0].ring.owned_ranges(P1))
    assert size1 == 256
    assert net.rmpeer(P0, format_peer_name(P1)) == size1
    assert net.rmpeer(P0, nick(P2)) == 256  # by nickname
    assert net.rmpeer(P0, format_peer_name(P1)) == 0  # nothing left to take
    assert net.rmpeer(P0, "no-such-peer") == 0
    assert net.rmpeer(P0, format_peer_name(P0)) == 0
    assert net[P0].space.num_free_in(ip("10.0.0.0"), ip("10.0.4.0")) == 1024
    assert owned(net[P0]) == [("10.0.0.0", "10.0.3.255")]
    assert net.allocate(P0, "c3") == cidr("10.0.0.1/22")
    net.audit()


def test_rmpeer_takeover_is_broadcast() -> None:
    net = Net("10.0.0.0/22")
    names = [P0, P1, P2]
    for name in names:
        net.add(name, FixedSeeds(names, me=name))
    net.partition([P0, P2], [P1])
    assert net.rmpeer(P0, format_peer_name(P1)) == 256
    assert net[P2].ring.owner(ip("10.0.2.0")) == P0
    net.audit()


# -- TestAllocatorFuzz -------------------------------------------------------------------


def test_allocator_fuzz() -> None:
    rnd = random.Random(42)
    names = [peer(i) for i in range(5)]
    net = Net("10.0.0.0/22", seed=7)
    for name in names:
        net.add(name, FixedSeeds(names, me=name))
    held: dict[str, tuple[int, int]] = {}  # ident -> (peer, address)
    counter = itertools.count()
    stats = {"claimed": 0, "refused": 0}

    def wait(req: object) -> Any:
        for _ in range(40):
            if net.result(req) is not PENDING:
                break
            net.tick()
        return net.result(req)

    def allocate() -> None:
        ident, name = f"c{next(counter)}", rnd.choice(names)
        net.allocate(name, ident)
        result = wait(net.last)
        assert isinstance(result, CIDR), result
        held[ident] = (name, result.addr)

    for _ in range(1000):
        allocate()
    for _ in range(10_000):
        r = rnd.random()
        if r < 0.4 and len(held) < 1000:
            allocate()
        elif r < 0.8 and held:
            ident = rnd.choice(list(held))
            name, addr = held.pop(ident)
            assert net.free(name, ident, addr) is None
        elif r < 0.95 and held:
            ident = rnd.choice(list(held))
            name, addr = held[ident]
            assert net.allocate(name, ident) == CIDR(addr, 22)
        else:
            ident, name = f"k{next(counter)}", rnd.choice(names)
            addr = ip("10.0.0.0") + rnd.randrange(1024)
            net.claim(name, ident, str(CIDR(addr, 22)))
            result = wait(net.last)
            if result is None:
                held[ident] = (name, addr)
                stats["claimed"] += 1
            else:
                assert isinstance(result, Failed), result
                stats["refused"] += 1
    assert stats["claimed"] and stats["refused"]
    # The ledgers agree with what the clients were told, and nothing is held twice.
    seen: dict[int, str] = {}
    for name, alloc in net.nodes.items():
        for ident, addrs, _ in alloc.ledger.items():
            for addr in addrs:
                assert addr not in seen, f"{addr} held by {seen[addr]} and {ident}"
                seen[addr] = ident
                assert held[ident] == (name, addr)
    assert len(seen) == len(held)
    net.audit()
    # Once gossip has gone round, every replica is the same ring.
    net.tick(30)
    net.tick(30)
    rings = {(tuple(a.ring.tokens), tuple(a.ring.peers)) for a in net.nodes.values()}
    assert len(rings) == 1


def test_fuzz_with_subnets_deaths_partitions_and_restarts() -> None:
    """Weave's fuzz, rougher: subnets, dead containers, partitions and crash-restarts."""
    rnd = random.Random(5)
    names = [peer(i) for i in range(4)]
    net = Net("10.0.0.0/24", seed=3)
    for name in names:
        net.add(name, FixedSeeds(names, me=name))
    subnets = [None, "10.0.0.0/26", "10.0.0.192/26", "10.0.0.96/27"]
    counter = itertools.count()
    answered = 0

    def held_on(name: int) -> list[tuple[str, int]]:
        return [(i, a) for i, addrs, _ in net[name].ledger.items() for a in addrs]

    for _ in range(3000):
        r = rnd.random()
        name = rnd.choice(names)
        if r < 0.35:
            ident = f"c{next(counter)}"
            net.allocate(name, ident, rnd.choice(subnets), is_container=rnd.random() < 0.5)
            req = net.last
            if net.result(req) is PENDING:
                net.tick()
            if net.result(req) is PENDING:
                assert failed(net.cancel(name, req), "cancelled", cancelled=True)
            answered += isinstance(net.result(req), CIDR)
        elif r < 0.55:
            if held := held_on(name):
                ident, addr = rnd.choice(held)
                assert net.free(name, ident, addr) is None
        elif r < 0.62:
            address = str(CIDR(ip("10.0.0.0") + rnd.randrange(256), 24))
            net.claim(name, f"k{next(counter)}", address, is_container=True)
            if net.result(net.last) is PENDING:
                net.cancel(name, net.last)
        elif r < 0.68:
            if held := held_on(name):
                net.event(name, ContainerDied(rnd.choice(held)[0]))
        elif r < 0.74:
            net.tick(rnd.choice([5.0, 30.0]))
        elif r < 0.77:
            cut = rnd.randrange(1, len(names))
            shuffled = rnd.sample(names, len(names))
            net.partition(shuffled[:cut], shuffled[cut:])
        elif r < 0.80:
            net.heal()
        elif r < 0.82:
            group = net.group[name]
            net.kill(name)
            snap = net.stores[name].snapshot(name)
            net.add(name, FixedSeeds(names, me=name), snapshot=snap, group=group)
        if rnd.random() < 0.05:
            net.audit()
    assert answered > 500
    net.heal()
    for _ in range(4):
        net.tick(30)
    net.audit()
    seen: dict[int, str] = {}
    for alloc in net.nodes.values():
        for ident, addrs, _ in alloc.ledger.items():
            for addr in addrs:
                assert addr not in seen, f"{addr} held by {seen[addr]} and {ident}"
                seen[addr] = ident
    assert not net.refusals
    rings = {(tuple(a.ring.tokens), tuple(a.ring.peers)) for a in net.nodes.values()}
    assert len(rings) == 1


# -- TestSpaceRequest --------------------------------------------------------------------


def test_space_request_donates_half_as_a_cidr() -> None:
    net = Net("10.32.0.0/12")
    net.add(P1)
    got = net.allocate(P1, "c1")
    assert got == cidr("10.32.0.1/12")
    assert net.free(P1, "c1", got.addr) is None
    net.add(P2, Observer(None, me=P2))
    assert net.allocate(P2, "c2") == cidr("10.40.0.0/12")
    assert owned(net[P1]) == [("10.32.0.0", "10.39.255.255")]
    assert owned(net[P2]) == [("10.40.0.0", "10.47.255.255")]
    assert owned(net[P1], P2) == owned(net[P2])
    net.audit()


def test_space_request_with_one_allocation_donates_a_quarter() -> None:
    net = Net("10.32.0.0/12")
    net.add(P1)
    assert net.allocate(P1, "c1") == cidr("10.32.0.1/12")
    net.add(P2, Observer(None, me=P2))
    assert net.allocate(P2, "c2") == cidr("10.44.0.0/12")
    assert owned(net[P2]) == [("10.44.0.0", "10.47.255.255")]
    net.audit()


def test_space_request_to_a_donor_with_nothing_left_is_denied() -> None:
    net = Net("10.0.0.0/29")
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    for n in range(3):  # .1 .2 .3 (.0 is the network address)
        assert isinstance(net.allocate(P1, f"a{n}"), CIDR)
    for n in range(3):  # .4 .5 .6 (.7 is the broadcast address)
        assert isinstance(net.allocate(P2, f"b{n}"), CIDR)
    # P1 still believes P2 has free space.
    assert net.allocate(P1, "late") is PENDING
    late = net.last
    assert [m[3] for m in net.messages()].count("space-request") == 1
    assert net[P1].ring.owner(ip("10.0.0.7")) == P1  # P2 gave what it had: .7, useless here
    assert net[P1].pending_allocates == [("late", cidr("10.0.0.0/29"))]
    assert net.free(P2, "b0", "10.0.0.4") is None
    for _ in range(20):
        net.tick()
        if net.result(late) is not PENDING:
            break
    assert net.result(late) == cidr("10.0.0.4/29")
    net.audit()


# -- refused gossip ----------------------------------------------------------------------


def test_malformed_gossip_is_refused_and_changes_nothing() -> None:
    net = solo("10.0.3.0/24")
    net.allocate(P1, "c1")
    before = state_of(net[P1])
    for junk in (b"", b"\xff\x00junk", codec.encode(SpaceRequest(1, 2))[:-1]):
        effects = net.feed(P1, GossipReceived(P2, junk, Via.BROADCAST))
        [refuse] = effects
        assert isinstance(refuse, Refuse) and refuse.peer == P2
        assert refuse.reason.startswith(f"malformed message from {format_peer_name(P2)}")
    assert state_of(net[P1]) == before


def test_invalid_ring_is_refused_and_changes_nothing() -> None:
    net = solo("10.0.3.0/24")
    net.allocate(P1, "c1")
    before = state_of(net[P1])
    bad = RingData(ip("10.0.3.0"), ip("10.0.4.0"), 4, (P1,), (ip("10.0.3.0"),), (P2,), (9,), (999,))
    effects = net.feed(P1, GossipReceived(P2, codec.encode(PeerState((), bad)), Via.BROADCAST))
    [refuse] = effects
    assert isinstance(refuse, Refuse) and "reporting too much free space" in refuse.reason
    assert state_of(net[P1]) == before


def test_different_seeds_are_refused_and_both_keep_working() -> None:
    net = Net("10.0.0.0/24", unique=False)  # two clusters: each may hand out the same address
    net.add(P1)
    net.add(P2)
    reasons = {(me, sender): reason for me, sender, reason in net.refusals}
    assert reasons[P1, P2] == (
        f"IP allocation was seeded by different peers (received: [{who(P2)}], ours: [{who(P1)}])"
    )
    assert reasons[P2, P1].startswith("IP allocation was seeded by different peers")
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    assert net.allocate(P2, "c1") == cidr("10.0.0.1/24")
    assert owned(net[P1]) == owned(net[P2]) == [("10.0.0.0", "10.0.0.255")]
    assert net[P1].ring.seeds == (P1,) and net[P2].ring.seeds == (P2,)
    net.audit()


def test_different_ranges_are_refused() -> None:
    net = Net("10.0.0.0/24", unique=False)
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2), universe="10.0.1.0/24")
    reasons = {(me, sender): reason for me, sender, reason in net.refusals}
    assert reasons[P1, P2] == (
        "Incompatible IP allocation ranges (received: 10.0.1.0/24, ours: 10.0.0.0/24)"
    )
    assert reasons[P2, P1] == (
        "Incompatible IP allocation ranges (received: 10.0.0.0/24, ours: 10.0.1.0/24)"
    )
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    assert net.allocate(P2, "c1") == cidr("10.0.1.128/24")


def test_different_ranges_and_seeds_report_the_seeds() -> None:
    net = Net("10.0.0.0/24", unique=False)
    net.add(P1)
    net.add(P2, universe="10.0.1.0/24")
    assert {reason.split(" (")[0] for _, _, reason in net.refusals} == {
        "IP allocation was seeded by different peers"
    }


def test_merge_conflict_with_allocations_is_refused() -> None:
    net = Net("10.0.0.0/24", unique=False)
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    net.partition([P1], [P2])
    assert net.rmpeer(P2, format_peer_name(P1)) == 128  # P1 is alive: an operator error
    before = state_of(net[P1])
    net.heal()
    mine = [r for me, _, r in net.refusals if me == P1]
    assert mine and mine[0].startswith("Received update for IP range I own at 10.0.0.0 v")
    assert f"incoming message says owner {format_peer_name(P2)} v10" in mine[0]
    assert state_of(net[P1])[1:] == before[1:]
    assert net[P1].ring.owner(ip("10.0.0.1")) == P1
    net[P1].audit()


# -- a merge that takes a range away (Weave crashed here) -------------------------------


def test_repair_merge_removes_lost_range_from_space() -> None:
    net = Net("10.0.0.0/24")
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    net.partition([P1], [P2])
    assert net.rmpeer(P2, format_peer_name(P1)) == 128  # P1 holds nothing there
    net.heal()
    assert owned(net[P1]) == []
    assert net[P1].space.owned_ranges() == []
    assert net[P1].space.num_free() == 0
    assert not net.refusals
    net.audit()
    # P1 has nothing of its own now, but can still get space.
    assert net.allocate(P1, "c1") == cidr("10.0.0.128/24")
    assert owned(net[P1]) == [("10.0.0.128", "10.0.0.255")]
    net.audit()


def test_split_merge_takes_an_allocation_free_part_of_our_range() -> None:
    net = Net("10.0.0.0/24")
    alloc = net.add(P1, FixedSeeds([P1, P2], me=P1))
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    theirs = RingData(
        ip("10.0.0.0"),
        ip("10.0.1.0"),
        4,
        (P1, P2),
        (ip("10.0.0.0"), ip("10.0.0.64"), ip("10.0.0.128")),
        (P1, P2, P2),
        (0, 0, 0),
        (64, 64, 128),
    )
    state = codec.encode(PeerState(((P2, nick(P2)),), theirs))
    effects = net.feed(P1, GossipReceived(P2, state, Via.BROADCAST))
    changed = [e for e in effects if isinstance(e, RingChanged)]
    assert changed == [
        RingChanged(((ip("10.0.0.0"), ip("10.0.0.128")),), ((ip("10.0.0.0"), ip("10.0.0.64")),))
    ]
    assert any(isinstance(e, SaveRing) for e in effects)
    assert not any(isinstance(e, Refuse) for e in effects)
    assert alloc.space.owned_ranges() == [(ip("10.0.0.0"), ip("10.0.0.64"))]
    assert not alloc.space.owns(ip("10.0.0.100"))
    alloc.audit()
    # Allocation carries on in what is left.
    assert net.allocate(P1, "c2") == cidr("10.0.0.2/24")
    alloc.audit()


# -- restart from a snapshot -------------------------------------------------------------


def test_restart_restores_ring_and_ledger() -> None:
    net = solo("10.0.0.0/24")
    assert net.allocate(P1, "c1") == cidr("10.0.0.1/24")
    assert net.allocate(P1, "c2", "10.0.0.0/28", is_container=True) == cidr("10.0.0.2/28")
    assert net.allocate(P1, "c3") == cidr("10.0.0.3/24")
    assert net.allocate(P1, CONTAINER, is_container=True) == cidr("10.0.0.4/24")
    assert net.delete(P1, "c1") is None
    assert net.claim(P1, "c4", "192.168.1.1/24") is None
    ring_before = net[P1].ring.to_data()
    snap = net.stores[P1].snapshot(P1)
    net.kill(P1)
    alloc = net.add(P1, FixedSeeds([P1], me=P1), snapshot=snap)
    messages = [log.message for me, log in net.logs if me == P1][-2:]
    assert messages == [
        "Initialising with persisted data",
        "Found persisted IPAM data, ignoring supplied IPAM seed",
    ]
    assert alloc.ring.to_data() == ring_before
    assert net.lookup(P1, "c2") == (cidr("10.0.0.2/28"),)  # the prefix it was allocated with
    assert net.allocate(P1, "c2", "10.0.0.0/28") == cidr("10.0.0.2/28")
    assert net.allocate(P1, "c3") == cidr("10.0.0.3/24")
    assert net.lookup(P1, "c4", "192.168.1.0/24") == (cidr("192.168.1.1/24"),)
    assert alloc.ledger.is_container("c2") and not alloc.ledger.is_container("c3")
    assert net.allocate(P1, "c5") == cidr("10.0.0.1/24")  # c1's, freed before the crash
    assert net.allocate(P1, CONTAINER) == cidr("10.0.0.4/24")
    assert alloc.ledger.is_container(bytes.fromhex(CONTAINER))
    assert net.allocate(P1, "c6") == cidr("10.0.0.5/24")
    alloc.audit()


def test_restart_drops_persisted_addresses_no_longer_ours() -> None:
    net = Net("10.0.0.0/24")
    names = [P1, P2]
    ring = Allocator(
        me=P1, universe=cidr("10.0.0.0/24"), strategy=FixedSeeds(names, me=P1), rng=random.random
    )
    ring.start()
    snap = Snapshot(
        P1,
        ring.ring.to_data(),
        {"mine": Holding((cidr("10.0.0.5/24"),)), "stale": Holding((cidr("10.0.0.200/24"),))},
    )
    alloc = net.add(P1, FixedSeeds(names, me=P1), snapshot=snap)
    assert alloc.ledger.addresses("mine") == (ip("10.0.0.5"),)
    assert alloc.ledger.addresses("stale") == ()
    assert net.stores[P1].owned == {}  # the store only saw the Released (nothing to drop)
    assert any("Dropping persisted 10.0.0.200/24 of stale" in log.message for _, log in net.logs)
    alloc.audit()


def test_restart_gives_an_address_held_twice_to_one_ident_only() -> None:
    # A damaged or hand-edited store: two idents hold 10.0.0.7, one ident holds
    # an address inside the range and one outside it, held by nobody else.
    net = Net("10.0.0.0/24")
    ring = Allocator(
        me=P1, universe=cidr("10.0.0.0/24"), strategy=FixedSeeds([P1], me=P1), rng=random.random
    )
    ring.start()
    owned = {
        "a": Holding((cidr("10.0.0.7/24"),)),
        "b": Holding((cidr("10.0.0.7/24"), cidr("10.0.0.9/24"))),
        "c": Holding((cidr("10.0.0.8/24"), cidr("192.168.1.1/24")), is_container=True),
    }
    alloc = net.add(P1, FixedSeeds([P1], me=P1), snapshot=Snapshot(P1, ring.ring.to_data(), owned))
    holders = [i for i in "ab" if ip("10.0.0.7") in alloc.ledger.addresses(i)]
    assert len(holders) == 1, holders
    assert ip("10.0.0.9") in alloc.ledger.addresses("b")
    assert set(alloc.ledger.addresses("c")) == {ip("10.0.0.8"), ip("192.168.1.1")}
    assert alloc.ledger.is_container("c")
    assert any("Dropping persisted 10.0.0.7/24" in log.message for _, log in net.logs)
    assert net.allocate(P1, "d") == cidr("10.0.0.1/24")  # the lowest address nobody holds
    alloc.audit()


@pytest.mark.parametrize(
    ("snap_peer", "universe", "reason"),
    [
        (P2, "10.0.0.0/24", f"Deleting persisted data for peername {format_peer_name(P2)}"),
        (
            P1,
            "10.0.1.0/24",
            "Deleting persisted data for IPAM range 10.0.0.0/24; our range is 10.0.1.0/24",
        ),
    ],
)
def test_restart_with_foreign_snapshot_clears_the_store(
    snap_peer: int, universe: str, reason: str
) -> None:
    old = solo("10.0.0.0/24")
    old.allocate(P1, "c1")
    old.allocate(P1, "c2")
    data = old.stores[P1].snapshot(P1)
    snap = Snapshot(snap_peer, data.ring, data.owned)
    alloc = Allocator(
        me=P1,
        universe=cidr(universe),
        strategy=FixedSeeds([P1], me=P1),
        rng=random.random,
        snapshot=snap,
    )
    effects = alloc.start()
    assert ClearStore(reason) in effects
    assert Log("info", reason) in effects
    assert Log("info", "Initialising with supplied IPAM seed") in effects
    assert list(alloc.ledger.items()) == []
    assert alloc.ring.seeds == (P1,)
    # The ClearStore comes before the new ring is saved.
    kinds = [type(e) for e in effects]
    assert kinds.index(ClearStore) < kinds.index(SaveRing)
    alloc.audit()


def test_restart_with_empty_snapshot_ring() -> None:
    alloc = Allocator(
        me=P1,
        universe=cidr("10.0.0.0/24"),
        strategy=FixedSeeds([P1], me=P1),
        rng=random.random,
        snapshot=Snapshot(P1, None, {}),
    )
    effects = alloc.start()
    assert ClearStore("No valid persisted data") in effects
    assert not alloc.ring.empty


def test_restarted_peer_rejoins_and_keeps_its_addresses() -> None:
    net = Net("10.0.0.0/24")
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    assert net.allocate(P2, "c1") == cidr("10.0.0.128/24")
    snap = net.stores[P2].snapshot(P2)
    net.kill(P2)
    net.add(P2, FixedSeeds([P1, P2], me=P2), snapshot=snap)
    assert net.allocate(P2, "c1") == cidr("10.0.0.128/24")
    assert net.allocate(P2, "c2") == cidr("10.0.0.129/24")
    assert not net.refusals
    net.audit()


# -- dead containers ---------------------------------------------------------------------


def test_dead_container_is_released_after_the_grace_period() -> None:
    net = solo("10.0.0.0/24")
    assert net.allocate(P1, "c1", is_container=True) == cidr("10.0.0.1/24")
    assert net.allocate(P1, "plain") == cidr("10.0.0.2/24")
    net.tick(10)
    net.event(P1, ContainerDied("c1"))
    net.event(P1, ContainerDied("plain"))  # not a container: never marked
    assert net[P1].ledger.is_dead("c1") and not net[P1].ledger.is_dead("plain")
    net.tick(25)
    assert net.lookup(P1, "c1") == (cidr("10.0.0.1/24"),)
    net.tick(10)
    assert net.lookup(P1, "c1") == ()
    assert net.stores[P1].owned.keys() == {"plain"}
    assert net.allocate(P1, "c2") == cidr("10.0.0.1/24")
    net.tick(100)
    assert net.lookup(P1, "plain") == (cidr("10.0.0.2/24"),)
    net.audit()


def test_container_restarted_within_grace_keeps_its_address() -> None:
    net = solo("10.0.0.0/24")
    assert net.allocate(P1, "c1", is_container=True) == cidr("10.0.0.1/24")
    net.event(P1, ContainerDied("c1"))
    net.tick(20)
    net.event(P1, ContainerStarted("c1"))
    net.tick(100)
    assert net.lookup(P1, "c1") == (cidr("10.0.0.1/24"),)
    net.audit()


def test_container_destroyed_is_released_at_once() -> None:
    net = solo("10.0.0.0/24")
    net.allocate(P1, "c1", is_container=True)
    effects = net.event(P1, ContainerDestroyed("c1"))
    assert Released("c1", cidr("10.0.0.1/24")) in effects
    assert net.lookup(P1, "c1") == ()
    net.audit()


def test_prune_frees_containers_not_running() -> None:
    net = solo("10.0.0.0/24")
    hexid = "ab" * 32
    net.allocate(P1, "c1", is_container=True)
    net.allocate(P1, hexid, is_container=True)
    net.allocate(P1, "c3", is_container=True)
    net.allocate(P1, "plain")
    effects = net.event(P1, PruneRequested(frozenset({hexid})))
    released = sorted(e.ident for e in effects if isinstance(e, Released))
    assert released == ["c1", "c3"]
    assert sorted(ident for ident, _, _ in net[P1].ledger.items()) == [hexid, "plain"]
    net.audit()


# -- subnets -----------------------------------------------------------------------------


def test_subnet_allocation_uses_the_subnets_host_range_and_prefix() -> None:
    net = solo("10.0.0.0/22")
    assert net.allocate(P1, "a", "10.0.1.0/30") == cidr("10.0.1.1/30")
    assert net.allocate(P1, "b", "10.0.1.0/30") == cidr("10.0.1.2/30")
    assert net.allocate(P1, "c", "10.0.1.0/30") is PENDING  # .0 and .3 are never handed out
    waiting = net.last
    assert net.allocate(P1, "d", "10.0.1.4/30") == cidr("10.0.1.5/30")
    assert net.free(P1, "a", "10.0.1.1") is None
    net.tick()
    assert net.result(waiting) == cidr("10.0.1.1/30")
    # A subnet written with host bits is the same subnet.
    assert net.allocate(P1, "c", "10.0.1.2/30") == cidr("10.0.1.1/30")
    net.audit()


def test_subnet_out_of_bounds() -> None:
    net = solo("10.2.0.0/16")
    assert net.allocate(P1, "c1", "10.3.0.0/24") == Failed(
        "range 10.3.0.0/24 out of bounds: 10.2.0.0/16"
    )
    assert net[P1].pending_allocates == []


def test_idempotency_is_per_ident_and_subnet() -> None:
    net = solo("10.2.0.0/16")
    a = net.allocate(P1, "c1", "10.2.1.0/24")
    b = net.allocate(P1, "c1", "10.2.2.0/24")
    assert (a, b) == (cidr("10.2.1.1/24"), cidr("10.2.2.1/24"))
    assert net.allocate(P1, "c1", "10.2.1.0/24") == a
    assert net.allocate(P1, "c1", "10.2.2.0/24") == b
    # The whole universe already holds one of c1's addresses: the first, as allocated.
    assert net.allocate(P1, "c1") == cidr("10.2.1.1/24")
    assert net.lookup(P1, "c1", "10.2.2.0/24") == (b,)
    assert len(net[P1].ledger) == 2


def test_big_subnet_hands_out_dot_zero_and_dot_255() -> None:
    net = solo("10.2.0.0/23")
    results = [net.allocate(P1, f"c{n}") for n in range(256)]
    assert results[254] == cidr("10.2.0.255/23")
    assert results[255] == cidr("10.2.1.0/23")


def test_subnet_larger_than_universe_may_use_the_universes_last_address() -> None:
    net = solo("10.0.2.0/24")
    results = [net.allocate(P1, "_", "10.0.2.0/23") for _ in range(255)]
    assert results[-1] == cidr("10.0.2.255/23")
    assert net.allocate(P1, "_", "10.0.2.0/23") is PENDING  # 10.0.2.0 is the subnet's network


def test_default_subnet_smaller_than_universe() -> None:
    net = Net("10.0.0.0/22")
    net.add(P1, default_subnet="10.0.1.0/24")
    assert net.allocate(P1, "c1") == cidr("10.0.1.1/24")
    assert net.allocate(P1, "c2", "10.0.0.0/22") == cidr("10.0.0.1/22")
    assert net.lookup(P1, "c1") == (cidr("10.0.1.1/24"),)
    assert net.lookup(P1, "c2") == ()


def test_subnet_space_request_names_the_subnet() -> None:
    net = Net("10.0.0.0/22")
    net.add(P1, FixedSeeds([P1, P2], me=P1))
    net.add(P2, FixedSeeds([P1, P2], me=P2))
    # 10.0.3.0/24 belongs to P2; P1 asks for space inside it.
    got = net.allocate(P1, "c1", "10.0.3.0/24")
    assert isinstance(got, CIDR) and got.prefix == 24
    assert ip("10.0.3.1") <= got.addr < ip("10.0.3.255")
    request = next(codec.decode(p) for src, _, _, p in net.sent if kind_of(p) == "space-request")
    assert request == SpaceRequest(ip("10.0.3.0"), ip("10.0.4.0"))
    net.audit()


# -- IPv6 --------------------------------------------------------------------------------


def test_ipv6_allocate_claim_free() -> None:
    net = solo("fd00::/64")
    assert net.allocate(P1, "c1") == cidr("fd00::1/64")
    assert net.claim(P1, "c2", "fd00::abcd/64") is None
    assert net.allocate(P1, "c3", "fd00::100/120") == cidr("fd00::101/120")
    assert net.lookup(P1, "c2") == (cidr("fd00::abcd/64"),)
    assert net.free(P1, "c1", "fd00::1") is None
    assert net.allocate(P1, "c4") == cidr("fd00::1/64")
    assert net[P1].space.num_free() == 2**64 - 3
    net.audit()


def test_ipv6_space_request_between_two_peers() -> None:
    net = Net("fd00::/64")
    net.add(P1)
    net.add(P2, Observer(None, me=P2))
    assert net.allocate(P2, "c1") == cidr("fd00::8000:0:0:0/64")
    assert net.claim(P2, "c2", "fd00::5/64") is None  # one address donated by P1
    assert net[P1].ring.owner(ip("fd00::5")) == P2
    assert net.allocate(P1, "c3") == cidr("fd00::1/64")
    net.audit()
    # And through a restart: the IPv6 ring and ledger survive the store.
    snap = net.stores[P2].snapshot(P2)
    net.kill(P2)
    net.add(P2, Observer(None, me=P2), snapshot=snap)
    assert net.allocate(P2, "c2") == cidr("fd00::5/64")
    net.audit()


# -- nicknames, peers and ticks ----------------------------------------------------------


def test_new_peer_gets_our_state_by_gossip() -> None:
    net = Net("10.0.0.0/24")
    net.add(P1)
    net.add(P2, Observer(None, me=P2))
    assert net.messages() == [(P1, None, "broadcast", "ring"), (P1, None, "gossip", "ring")]
    assert net[P2].ring.to_data() == net[P1].ring.to_data()
    assert net[P2].nicknames[P1] == nick(P1)
    assert net[P1].nicknames.get(P2) is None  # the observer has said nothing yet


def test_periodic_gossip_every_30_seconds() -> None:
    net = solo("10.0.0.0/24")
    count = len(net.sent)
    net.tick(29)
    assert len(net.sent) == count
    net.tick(1)
    assert [m[2] for m in net.messages()[count:]] == ["gossip"]


def test_ring_request_gets_a_unicast_ring_reply() -> None:
    net = solo("10.0.0.0/24")
    request = codec.encode(PeerState(((P2, "x"),)))
    effects = net.feed(P1, GossipReceived(P2, request, Via.UNICAST))
    sends = [e for e in effects if isinstance(e, SendTo)]
    assert len(sends) == 1 and sends[0].peer == P2 and kind_of(sends[0].payload) == "ring"
    assert net[P1].nicknames[P2] == "x"


def test_events_run_without_invariant_checks() -> None:
    alloc = Allocator(
        me=P1,
        universe=cidr("10.0.0.0/24"),
        strategy=FixedSeeds([P1], me=P1),
        rng=random.random,
        check_invariants=False,
    )
    alloc.start()
    effects = alloc.handle(AllocateRequested("r", "c1"))
    assert Reply("r", cidr("10.0.0.1/24")) in effects
    assert Allocated("c1", cidr("10.0.0.1/24"), False) in effects
    kinds = [type(e) for e in effects]
    assert kinds.index(Allocated) < kinds.index(Reply)  # durable before acknowledged
    alloc.audit()

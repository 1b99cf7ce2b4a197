"""A whole simulated weavek cluster in one process, on virtual time.

:class:`Cluster` runs N real :class:`~weavek.core.allocator.Allocator`
objects, each with a :class:`~weavek.testing.store.MemoryStore`, over a
:class:`~weavek.testing.network.SimNetwork`. It plays the shell: it feeds
each allocator its events (requests, deliveries, reachability changes,
ticks) and carries out the effects that come back, in order. Everything
random is drawn from one ``random.Random(seed)``, so a run replays exactly.

Peers are named by index (0..n-1), peer name or nickname ("peer-0").
Requests return an int request id; :attr:`Cluster.replies` maps it to the
result once the reply arrives (a CIDR, a tuple, an int, None or
:class:`~weavek.core.effects.Failed`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from weavek.core import codec
from weavek.core import effects as fx
from weavek.core import events as ev
from weavek.core.address import CIDR, parse_address, parse_cidr
from weavek.core.allocator import Allocator
from weavek.core.effects import Effect
from weavek.core.strategy import InitStrategy

from .invariants import Holdings, Request, is_converged
from .network import Delivery, SimNetwork
from .store import MemoryStore
from .strategies import FixedSeeds

__all__ = ["Cluster", "SimPeer", "StrategyFactory", "peer_name"]

StrategyFactory = Callable[[int, tuple[int, ...]], InitStrategy]
"""Builds a peer's init strategy from its own name and the names of all peers."""
PeerRef = int | str
"""A peer's index, peer name or nickname."""


def peer_name(index: int) -> int:
    """The peer name of peer ``index``: 01:00:00:00:00:00, 02:00:..., and so on."""
    return (index + 1) << 40


@dataclass(eq=False)
class SimPeer:
    """One simulated peer: its store always, its allocator while it runs."""

    index: int
    name: int
    nickname: str
    store: MemoryStore
    allocator: Allocator | None = None
    removed: bool = False
    """Gone for good (shut down, or taken over with rmpeer): never restarted."""
    reachable: frozenset[int] = frozenset()
    """What it was last told it can reach."""


class Cluster:
    """N allocators, their stores, a simulated network and a virtual clock.

    :param n: number of peers; all start at once, at time 0.
    :param universe: the shared range (``--ipalloc-range``).
    :param seed: seeds the one random source of the run.
    :param seeds: indices of the peers the ring is divided among (default: all);
        with a subset, the others must ask for space.
    :param strategy: an init strategy factory to use instead of :class:`FixedSeeds`.
    :param tick: virtual seconds between ticks to every peer.
    :param keep_log: record every effect in :attr:`log` as ``(time, peer index, effect)``.
    :param allocator: more keyword arguments for every :class:`Allocator`.
    :param net: keyword arguments for :class:`SimNetwork` (drop, duplicate, delays...).
    """

    def __init__(
        self,
        n: int = 3,
        *,
        universe: CIDR | str = "10.32.0.0/12",
        seed: int = 0,
        seeds: Iterable[int] | None = None,
        strategy: StrategyFactory | None = None,
        tick: float = 0.5,
        retry_interval: float = 1.0,
        gossip_interval: float = 3.0,
        keep_log: bool = True,
        allocator: dict[str, Any] | None = None,
        **net: Any,
    ) -> None:
        self.n, self.seed, self.keep_log = n, seed, keep_log
        self.universe = (parse_cidr(universe) if isinstance(universe, str) else universe).network()
        self.options: dict[str, Any] = {
            "retry_interval": retry_interval,
            "gossip_interval": gossip_interval,
            "check_invariants": True,
            **(allocator or {}),
        }
        self.rng = random.Random(seed)
        names = tuple(peer_name(i) for i in range(n))
        self.peers = [SimPeer(i, nm, f"peer-{i}", MemoryStore(nm)) for i, nm in enumerate(names)]
        self._by_ref: dict[PeerRef, SimPeer] = {p.name: p for p in self.peers}
        self._by_ref.update({p.nickname: p for p in self.peers})
        chosen = tuple(names[i] for i in (seeds if seeds is not None else range(n)))
        self._strategy = strategy or (lambda me, _all: FixedSeeds(chosen, me=me))
        self.network = SimNetwork(names, self.rng, tick=tick, **net)
        self.holdings = Holdings()
        self.requests: dict[int, Request] = {}
        self.replies: dict[object, object] = {}
        self.refusals: list[tuple[float, str, int, str]] = []
        self.log: list[tuple[float, int, Effect]] = []
        self._doomed: dict[int, int] = {}
        for peer in self.peers:
            self._boot(peer)
        self._topology_changed()

    # -- peers --------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual time, in seconds since the cluster started."""
        return self.network.now

    def peer(self, ref: PeerRef) -> SimPeer:
        """A peer by index, peer name or nickname."""
        if isinstance(ref, int) and 0 <= ref < self.n:
            return self.peers[ref]
        return self._by_ref[ref]

    def allocator(self, ref: PeerRef) -> Allocator:
        """A running peer's allocator (ValueError if it is down)."""
        alloc = self.peer(ref).allocator
        if alloc is None:
            raise ValueError(f"{self.peer(ref).nickname} is not running")
        return alloc

    def live(self) -> list[SimPeer]:
        """The peers running now."""
        return [p for p in self.peers if p.allocator is not None]

    def _boot(self, peer: SimPeer) -> None:
        peer.allocator = Allocator(
            me=peer.name,
            nickname=peer.nickname,
            universe=self.universe,
            strategy=self._strategy(peer.name, tuple(p.name for p in self.peers)),
            rng=self.rng.random,
            snapshot=peer.store.snapshot(),
            **self.options,
        )
        peer.reachable = frozenset()
        self.network.set_live(peer.name, True)
        self._carry_out(peer, peer.allocator.start(self.now))

    def crash(self, ref: PeerRef, *, midway: int | None = None) -> None:
        """Stop a peer dead: its allocator and pending requests are lost, its store stays.

        With ``midway=k`` the peer instead dies inside the next event whose
        effect list is longer than ``k``, after carrying out only the first ``k``.
        """
        peer = self.peer(ref)
        if midway is not None:
            self._doomed[peer.index] = midway
            return
        self._doomed.pop(peer.index, None)
        peer.allocator = None
        self.network.set_live(peer.name, False)
        for rid, req in self.requests.items():
            if req.peer == peer.index and rid not in self.replies:
                req.lost = True
        self._topology_changed()

    def restart(self, ref: PeerRef) -> None:
        """Start a crashed peer again from what its store persisted."""
        peer = self.peer(ref)
        if peer.allocator is not None or peer.removed:
            raise ValueError(f"{peer.nickname} is running or gone for good")
        self._boot(peer)
        self._topology_changed()

    def _retire(self, peer: SimPeer) -> None:
        if peer.allocator is not None:
            self.crash(peer.index)
        peer.removed = True
        self.holdings.forget_peer(peer.nickname)

    # -- the network --------------------------------------------------------

    def partition(self, *groups: Iterable[PeerRef]) -> None:
        """Split the network into groups (peers not named form one more group)."""
        self.network.partition(*[[self.peer(r).name for r in g] for g in groups])
        self._topology_changed()

    def cut(self, a: PeerRef, b: PeerRef) -> None:
        """Break the direct link between two peers."""
        self.network.cut(self.peer(a).name, self.peer(b).name)
        self._topology_changed()

    def heal(self) -> None:
        """Undo every partition and cut."""
        self.network.heal()
        self._topology_changed()

    def _topology_changed(self) -> None:
        for peer in self.peers:
            if peer.allocator is not None:
                reach = self.network.reachable(peer.name)
                if reach != peer.reachable:
                    peer.reachable = reach
                    self.feed(peer.index, ev.PeersChanged(reach))

    # -- requests -----------------------------------------------------------

    def _ask(
        self, ref: PeerRef, kind: str, make: Callable[[int], ev.Event], ident: str = "", **kw: Any
    ) -> int:
        rid = len(self.requests) + 1
        self.requests[rid] = req = Request(self.peer(ref).index, kind, ident, **kw)
        self.feed(req.peer, make(rid))
        return rid

    def allocate(
        self, ref: PeerRef, ident: str, subnet: CIDR | str | None = None, *, container: bool = False
    ) -> int:
        """Ask for an address for ``ident`` (in ``subnet``, default the universe)."""
        net = parse_cidr(subnet) if isinstance(subnet, str) else subnet
        make = lambda r: ev.AllocateRequested(r, ident, net, container)  # noqa: E731
        return self._ask(ref, "allocate", make, ident)

    def claim(self, ref: PeerRef, ident: str, cidr: CIDR | str, *, no_error: bool = False) -> int:
        """Ask to record ``cidr`` for ``ident``; ``no_error`` is ``no_error_on_unknown``."""
        c = parse_cidr(cidr) if isinstance(cidr, str) else cidr
        make = lambda r: ev.ClaimRequested(r, ident, c, False, no_error)  # noqa: E731
        # An early "OK" (no_error) does not mean the address is held yet.
        return self._ask(ref, "claim", make, ident, addr=c.addr, track=not no_error)

    def free(self, ref: PeerRef, ident: str, addr: int | CIDR | str) -> int:
        """Release one address of ``ident``."""
        a = addr.addr if isinstance(addr, CIDR) else addr
        a = parse_address(a.split("/")[0])[0] if isinstance(a, str) else a
        return self._ask(ref, "free", lambda r: ev.FreeRequested(r, ident, a), ident, addr=a)

    def delete(self, ref: PeerRef, ident: str) -> int:
        """Release every address of ``ident``."""
        return self._ask(ref, "delete", lambda r: ev.DeleteRequested(r, ident), ident)

    def lookup(self, ref: PeerRef, ident: str, subnet: CIDR | None = None) -> int:
        """The addresses ``ident`` holds (a tuple of CIDRs)."""
        return self._ask(ref, "lookup", lambda r: ev.LookupRequested(r, ident, subnet), ident)

    def prime(self, ref: PeerRef) -> int:
        """Answered once the peer has a ring."""
        return self._ask(ref, "prime", ev.PrimeRequested)

    def cancel(self, request: int) -> None:
        """The client behind ``request`` went away."""
        if not self.requests[request].lost:
            self.feed(self.requests[request].peer, ev.Cancelled(request))

    def rmpeer(self, ref: PeerRef, target: PeerRef) -> int:
        """Have ``ref`` take over the ranges of ``target``, which must be down; it never returns."""
        gone = self.peer(target)
        if gone.allocator is not None:
            raise ValueError(f"{gone.nickname} is running: crash it before rmpeer")
        self._retire(gone)
        return self._ask(ref, "rmpeer", lambda r: ev.RmPeerRequested(r, gone.nickname))

    def shutdown(self, ref: PeerRef) -> int:
        """``weavek reset``: hand our ranges to an heir, then stop for good."""
        rid = self._ask(ref, "shutdown", ev.ShutdownRequested)
        self._retire(self.peer(ref))
        return rid

    def pending(self) -> int:
        """Requests the live allocators still hold (allocates, claims, primes)."""
        return sum(
            len(a.pending_allocates) + len(a.pending_claims) + a.pending_primes
            for a in (p.allocator for p in self.peers)
            if a is not None
        )

    # -- the shell ----------------------------------------------------------

    def feed(self, ref: PeerRef, event: ev.Event) -> list[Effect]:
        """Hand one event to a running peer and carry out its effects; returns them."""
        peer = self.peer(ref)
        effects = self.allocator(peer.index).handle(event)
        self._carry_out(peer, effects)
        return effects

    def _carry_out(self, peer: SimPeer, effects: list[Effect]) -> None:
        limit = self._doomed.get(peer.index)
        dying = limit is not None and limit < len(effects)
        for effect in effects[:limit] if dying else effects:
            if self.keep_log:
                self.log.append((self.now, peer.index, effect))
            if peer.store.apply(effect):
                if isinstance(effect, fx.Released):
                    self.holdings.released(peer.nickname, effect.ident, effect.cidr.addr)
                elif isinstance(effect, fx.ClearStore):
                    self.holdings.forget_peer(peer.nickname)
            elif isinstance(effect, fx.Reply):
                self.holdings.replied(self, peer.nickname, effect)
            elif isinstance(effect, fx.Broadcast | fx.SendTo | fx.Gossip):
                self.network.send(peer.name, effect)
            elif isinstance(effect, fx.Refuse):
                self.refusals.append((self.now, peer.nickname, effect.peer, effect.reason))
        if dying:
            self.crash(peer.index)

    # -- time ---------------------------------------------------------------

    def run(self, duration: float) -> None:
        """Advance virtual time by ``duration``, delivering messages and ticks as they fall due."""
        self._run(self.now + duration, None)

    def run_until(self, pred: Callable[[], bool], timeout: float = 120.0) -> bool:
        """Run until ``pred()`` holds (checked after every step); False on timeout."""
        return self._run(self.now + timeout, pred)

    def settle(self, timeout: float = 120.0) -> bool:
        """Run until no request is pending and only gossip is in flight; False on timeout."""
        return self.run_until(lambda: self.network.quiet and not self.pending(), timeout)

    def converge(self, timeout: float = 300.0) -> bool:
        """Run until only gossip is in flight and every live peer has the same ring."""
        return self.run_until(lambda: self.network.quiet and is_converged(self), timeout)

    def _run(self, end: float, pred: Callable[[], bool] | None) -> bool:
        # Every recipient of a broadcast gets the same bytes object: decode it once.
        with codec.shared_decoding():
            return self.network.run(end, self._deliver, self._tick, pred)

    def _deliver(self, d: Delivery) -> None:
        self.feed(d.dst, ev.GossipReceived(d.sender, d.payload, d.via))

    def _tick(self, now: float) -> None:
        for peer in self.peers:
            if peer.allocator is not None:
                self.feed(peer.index, ev.Tick(now))

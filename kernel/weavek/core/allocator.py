"""The allocator: one peer's IPAM as a state machine (Weave's ``ipam/allocator.go``).

Events go in through :meth:`Allocator.handle`; a list of effects comes out.
Nothing here does I/O, reads a clock or draws random numbers of its own, so a
whole cluster of allocators runs deterministically inside one test.

How a request moves:

* **Allocate** returns the ident's existing address in the subnet if it has
  one (idempotent), else the lowest free address of the subnet's host range in
  our space. With nothing free it asks a donor -- a peer with gossiped free
  space there, weighted by that space times a random draw -- for some, and
  stays *pending* until a ring update gives us room.
* **Claim** of an address inside the universe needs its owner's consent: our
  own space, or a single-address donation from the peer that owns it. Claims
  outside the universe are checked against this peer's ledger only.
* **Pending** operations (primes, then claims, then allocates, oldest first)
  are retried whenever the ring changes under us and on the retry tick; they
  end with a reply, an error, or a cancellation.

The ring itself is created once, by the init strategy (see
:mod:`weavek.core.strategy`), deferred until something needs it. After that
a peer only ever merges rings. A merge that takes a range from us -- legal
only where we hold no allocations -- removes it from our space (Weave
crashed there). Free counts are reported into the ring, and the ring
persisted, just before our state is sent anywhere, so what others see of us
is always on disk first.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from operator import itemgetter

from . import codec
from .address import CIDR, Range, format_address
from .effects import (
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
from .events import (
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
from .ledger import Key, Ledger, ident_of, key_of
from .messages import PeerState, SpaceDenied, SpaceRequest
from .peer import UNKNOWN_PEER, PeerNameError, format_peer_name, parse_peer_name
from .ring import DifferentRangeError, DifferentSeedsError, Ring, RingError
from .snapshot import AddressRow, Snapshot
from .space import Space, SpaceError
from .strategy import Decision, InitStrategy

__all__ = ["ANONYMOUS", "Allocator", "InvariantError"]

ANONYMOUS = "_"
"""The ident meaning "no container": the address is filed under its own text."""
MAX_CLAIM_TRIES = 5
MAX_NICKNAMES = 4096


class InvariantError(AssertionError):
    """The allocator's own state is inconsistent: a bug, never a user error."""


@dataclass(slots=True)
class _Allocate:
    request: object
    ident: str
    subnet: CIDR
    is_container: bool


@dataclass(slots=True)
class _Claim:
    request: object
    ident: str
    cidr: CIDR
    is_container: bool
    no_error_on_unknown: bool
    tries: int = 0
    replied: bool = False


class Allocator:
    """IPAM for one peer.

    :param me: this peer's name.
    :param nickname: a human name for status output.
    :param universe: the range all peers share (``--ipalloc-range``).
    :param default_subnet: where plain allocations go (default: the universe).
    :param strategy: how the ring is first divided.
    :param rng: a uniform ``[0, 1)`` source, used only to spread space requests.
    :param snapshot: what the store loaded, if anything.
    :param check_invariants: verify ring/space agreement after every change.
    :param grace_period: seconds a dead container keeps its addresses.
    :param retry_interval: seconds between retries of pending work.
    :param gossip_interval: seconds between periodic gossip of our state.
    """

    def __init__(
        self,
        *,
        me: int,
        universe: CIDR,
        strategy: InitStrategy,
        rng: Callable[[], float],
        nickname: str = "",
        default_subnet: CIDR | None = None,
        snapshot: Snapshot | None = None,
        check_invariants: bool = True,
        grace_period: float = 30.0,
        retry_interval: float = 5.0,
        gossip_interval: float = 30.0,
    ) -> None:
        self.me = me
        self.nickname = nickname
        self.universe = universe.network()
        self.default_subnet = (default_subnet or universe).network()
        self.strategy = strategy
        self.rng = rng
        self.check_invariants = check_invariants
        self.grace_period = grace_period
        self.retry_interval = retry_interval
        self.gossip_interval = gossip_interval
        self._ustart, self._uend = self.universe.range
        self.ring = Ring(self._ustart, self._uend, me, universe.version)
        self.space = Space(universe.version)
        self.ledger = Ledger()
        self.nicknames: dict[int, str] = {me: nickname}
        self.reachable: frozenset[int] = frozenset()
        self.awaiting = False
        self.shutting_down = False
        # Set by a shutdown that found no heir: our ranges now belong to the unknown peer
        # in a ring that was never persisted, so it must never be sent (gossip included).
        self._heirless = False
        self.now = 0.0
        self._snapshot = snapshot
        self._allocates: dict[object, _Allocate] = {}
        self._claims: dict[object, _Claim] = {}
        self._primes: dict[object, None] = {}
        self._last_retry = 0.0
        self._last_gossip = 0.0
        self._owned: tuple[Range, ...] = ()
        self._touched = False
        self._asked: set[Range] = set()
        # Subnet bounds (start, end, first host, end of hosts), computed once per subnet.
        self._bounds: dict[CIDR, tuple[int, int, int, int]] = {}
        self._handlers: dict[type, Callable[[object, list[Effect]], None]] = {
            AllocateRequested: self._on_allocate,  # type: ignore[dict-item]
            ClaimRequested: self._on_claim,  # type: ignore[dict-item]
            LookupRequested: self._on_lookup,  # type: ignore[dict-item]
            FreeRequested: self._on_free,  # type: ignore[dict-item]
            DeleteRequested: self._on_delete,  # type: ignore[dict-item]
            PrimeRequested: self._on_prime,  # type: ignore[dict-item]
            Cancelled: self._on_cancelled,  # type: ignore[dict-item]
            ShutdownRequested: self._on_shutdown,  # type: ignore[dict-item]
            RmPeerRequested: self._on_rmpeer,  # type: ignore[dict-item]
            ContainerDied: self._on_died,  # type: ignore[dict-item]
            ContainerStarted: self._on_started,  # type: ignore[dict-item]
            ContainerDestroyed: self._on_destroyed,  # type: ignore[dict-item]
            PruneRequested: self._on_prune,  # type: ignore[dict-item]
            GossipReceived: self._on_gossip,  # type: ignore[dict-item]
            PeersChanged: self._on_peers,  # type: ignore[dict-item]
            Tick: self._on_tick,  # type: ignore[dict-item]
        }

    # -- entry points ------------------------------------------------------

    def start(self, now: float = 0.0) -> list[Effect]:
        """Restore persisted state or build the seeded ring; call once before :meth:`handle`."""
        self.now = self._last_retry = self._last_gossip = now
        effects: list[Effect] = []
        snap = self._snapshot
        self._snapshot = None
        restored = snap is not None and self._restore(snap, effects)
        seeds = self.strategy.seeds_at_start()
        if restored:
            effects.append(Log("info", "Initialising with persisted data"))
            if seeds is not None:
                effects.append(
                    Log("info", "Found persisted IPAM data, ignoring supplied IPAM seed")
                )
        elif seeds is not None:
            effects.append(Log("info", "Initialising with supplied IPAM seed"))
            self._create_ring(seeds, effects)
        elif self.strategy.elector:
            effects.append(Log("info", "Initialising via deferred consensus"))
        else:
            effects.append(
                Log("info", "Initialising as observer - awaiting IPAM data from another peer")
            )
        self._after(effects)
        return effects

    def handle(self, event: Event) -> list[Effect]:
        """Feed one event; returns the effects to carry out, in order."""
        effects: list[Effect] = []
        self._handlers[type(event)](event, effects)
        if self._touched:
            self._after(effects)
        return effects

    def _after(self, effects: list[Effect]) -> None:
        # Ownership only moves where the ring does, so that is where the check runs.
        self._touched = False
        if self.check_invariants:
            self._check()

    # -- restore -----------------------------------------------------------

    def _restore(self, snap: Snapshot, effects: list[Effect]) -> bool:
        if snap.peer != self.me:
            reason = f"Deleting persisted data for peername {format_peer_name(snap.peer)}"
        elif snap.ring is None or not snap.ring.tokens:
            reason = "No valid persisted data"
        elif (snap.ring.start, snap.ring.end) != self.universe.range:
            old = _range_text(snap.ring.start, snap.ring.end, snap.ring.version)
            reason = f"Deleting persisted data for IPAM range {old}; our range is {self.universe}"
        else:
            try:
                self.ring = Ring.from_data(snap.ring, self.me)
            except RingError as err:
                reason = f"Deleting persisted data: stored ring is invalid ({err})"
            else:
                self.space.update_ranges(self.ring.owned_ranges())
                self._owned = self._coalesced_owned()
                self._restore_holdings(snap.address_rows(), effects)
                return True
        effects.append(Log("info", reason))
        effects.append(ClearStore(reason))
        return False

    def _restore_holdings(self, rows: list[AddressRow], effects: list[Effect]) -> None:
        """Put the persisted addresses (ascending) back in the space and the ledger.

        In bulk, because a restart with a million allocations must serve again
        within seconds. An address the ring no longer gives us is dropped:
        keeping it would risk a duplicate.
        """
        first = itemgetter(0)
        lo = bisect_left(rows, self._ustart, key=first)
        hi = bisect_left(rows, self._uend, lo, key=first)
        inside = rows if lo == 0 and hi == len(rows) else rows[lo:hi]
        if len(inside) < len(rows):
            for addr, prefix, version, ident, is_container in rows[:lo] + rows[hi:]:
                cidr = CIDR(addr, prefix, version)
                if self.ledger.outside_holder(addr) is not None:
                    effects.append(Released(ident, cidr))
                else:
                    self.ledger.add(key_of(ident), addr, is_container, True, self._unusual(cidr))
        refused = self.space.claim_many(list(map(first, inside)))
        for k in refused:
            addr, prefix, version, ident, _ = inside[k]
            cidr = CIDR(addr, prefix, version)
            effects.append(Log("warning", f"Dropping persisted {cidr} of {ident}: not ours"))
            effects.append(Released(ident, cidr))
        if refused:
            dropped = set(refused)
            inside = [row for k, row in enumerate(inside) if k not in dropped]
        default = self.default_subnet
        self.ledger.add_many(inside, (default.prefix, default.version))

    # -- requests ----------------------------------------------------------

    def _on_allocate(self, ev: AllocateRequested, effects: list[Effect]) -> None:
        subnet = self.default_subnet if ev.subnet is None else ev.subnet.network()
        op = _Allocate(ev.request, ev.ident, subnet, ev.is_container)
        result = self._try_allocate(op, effects)
        if result is None:
            self._allocates[ev.request] = op
        else:
            effects.append(Reply(ev.request, result))

    def _try_allocate(self, op: _Allocate, effects: list[Effect]) -> CIDR | Failed | None:
        subnet = op.subnet
        bounds = self._bounds.get(subnet)
        if bounds is None:
            bounds = self._bounds[subnet] = (subnet.start, subnet.end, *subnet.host_range)
        lo, hi, hlo, hhi = bounds
        key = key_of(op.ident)
        existing = self.ledger.find(key, lo, hi)
        if existing is not None:
            self.ledger.revive(key)
            return self.cidr_of(existing)
        if self.shutting_down:
            return Failed(f"Allocate request for {op.ident} cancelled", cancelled=True)
        if not (lo < self._uend and self._ustart < hi):
            return Failed(f"range {subnet} out of bounds: {self.universe}")
        if self.ring.empty:
            self._establish_ring(effects)
            if self.ring.empty:
                return None
        addr = self.space.allocate(hlo, hhi)
        if addr is not None:
            ident = op.ident
            if ident == ANONYMOUS:
                ident = format_address(addr, subnet.version)
                key = ident
            cidr = subnet.with_addr(addr)
            unusual = None if subnet is self.default_subnet else self._unusual(cidr)
            self.ledger.add(key, addr, op.is_container, cidr=unusual)
            effects.append(Allocated(ident, cidr, op.is_container))
            return cidr
        self._ask_for_space(lo, hi, effects)
        return None

    def _ask_for_space(self, lo: int, hi: int, effects: list[Effect]) -> None:
        # One request per range until the ring changes or the retry tick: every
        # pending allocation asking separately would fragment the ring (Weave #2181).
        if (lo, hi) in self._asked:
            return
        self._asked.add((lo, hi))
        for donor in self.ring.donors_for(lo, hi, self.rng):
            if donor in self.reachable:
                effects.append(SendTo(donor, codec.encode(SpaceRequest(lo, hi))))
                return

    def _on_claim(self, ev: ClaimRequested, effects: list[Effect]) -> None:
        op = _Claim(ev.request, ev.ident, ev.cidr, ev.is_container, ev.no_error_on_unknown)
        result = self._try_claim(op, effects)
        if result is None:
            self._claims[ev.request] = op
        elif result is not False:
            effects.append(Reply(ev.request, None if result is True else result))

    def _try_claim(self, op: _Claim, effects: list[Effect]) -> bool | Failed | None:
        """True: claimed; Failed: refused; None: still pending; False: done, already answered."""
        addr, ident = op.cidr.addr, op.ident
        key = key_of(ident)
        text = format_address(addr, op.cidr.version)
        op.tries += 1
        if not self.universe.contains(addr):
            return self._claim_outside(op, key, text, effects)
        if self.shutting_down:
            return Failed(f"Claim request for {ident} cancelled", cancelled=True)
        self._establish_ring(effects)
        self.ledger.revive(key)
        owner = self.ring.owner(addr)
        if owner == UNKNOWN_PEER:
            effects.append(
                Log("info", f"Claim {text} for {ident}: not initialized yet; will try later")
            )
            self._pending_ok(op, effects)
            return None
        if owner != self.me:
            if owner in self.reachable:
                effects.append(SendTo(owner, codec.encode(SpaceRequest(addr, addr + 1))))
                self._pending_ok(op, effects)
                return None
            if op.no_error_on_unknown:
                self._pending_ok(op, effects)
                return None
            if op.tries > MAX_CLAIM_TRIES:
                return Failed(f"address {text} is owned by other peer {self._describe(owner)}")
            return None
        if self.space.is_free(addr):
            self.space.claim(addr)
            if ident == ANONYMOUS:
                # Filed under the address itself, like anonymous allocations and outside
                # claims (it was filed under "_", so a later free by address failed).
                ident = key = text
            self._record(ident, key, addr, op.cidr, op.is_container, False, effects)
            return self._done(op)
        if self.ledger.find(key, addr, addr + 1) is not None or ident == ANONYMOUS:
            return self._done(op)
        if self.ledger.find(text, addr, addr + 1) is not None:
            return self._fail(op, f"address {text} already in use")
        holder = self.ledger.holder(addr)
        return self._fail(op, f"address {text} is already owned by {holder}")

    def _claim_outside(
        self, op: _Claim, key: Key, text: str, effects: list[Effect]
    ) -> bool | Failed:
        addr, ident = op.cidr.addr, op.ident
        holder = self.ledger.outside_holder(addr)
        if holder is None:
            record_key = text if ident == ANONYMOUS else key
            self._record(
                ident_of(record_key), record_key, addr, op.cidr, op.is_container, True, effects
            )
        elif holder == key or ident == ANONYMOUS:
            pass
        elif self.ledger.is_dead(holder):
            self.ledger.remove(holder, addr)
            effects.append(Released(ident_of(holder), op.cidr))
            self._record(ident, key, addr, op.cidr, op.is_container, True, effects)
        else:
            return Failed(f"address {text} already in use by {ident_of(holder)}")
        return True

    def _record(
        self,
        ident: str,
        key: Key,
        addr: int,
        cidr: CIDR,
        is_container: bool,
        outside: bool,
        effects: list[Effect],
    ) -> None:
        cidr = cidr.with_addr(addr)
        self.ledger.add(key, addr, is_container, outside, self._unusual(cidr))
        effects.append(Allocated(ident, cidr, is_container))

    def _unusual(self, cidr: CIDR) -> CIDR | None:
        """``cidr`` if the ledger must keep its prefix: not the default subnet's shape."""
        default = self.default_subnet
        return None if cidr[1] == default[1] and cidr[2] == default[2] else cidr

    def cidr_of(self, addr: int) -> CIDR:
        """A held ``addr`` with the prefix it was allocated or claimed with (as Weave kept it)."""
        cidr = self.ledger.cidr_of(addr)
        return cidr if cidr is not None else self.default_subnet.with_addr(addr)

    def _pending_ok(self, op: _Claim, effects: list[Effect]) -> None:
        """Stay pending; a claim that may not wait for the ring is answered OK now."""
        if op.no_error_on_unknown and not op.replied:
            op.replied = True
            effects.append(Reply(op.request, None))

    def _done(self, op: _Claim) -> bool:
        return not op.replied

    def _fail(self, op: _Claim, message: str) -> Failed | bool:
        return False if op.replied else Failed(message)

    def _on_lookup(self, ev: LookupRequested, effects: list[Effect]) -> None:
        subnet = ev.subnet.network() if ev.subnet is not None else self.default_subnet
        lo, hi = subnet.host_range
        found = tuple(self.cidr_of(a) for a in self.ledger.addresses(ev.ident) if lo <= a < hi)
        effects.append(Reply(ev.request, found))

    def _on_free(self, ev: FreeRequested, effects: list[Effect]) -> None:
        key = key_of(ev.ident)
        if not self.ledger.remove(key, ev.addr):
            text = format_address(ev.addr, self.universe.version)
            effects.append(
                Reply(ev.request, Failed(f"Free: address {text} not found for ID {ev.ident}"))
            )
            return
        self._release(ev.ident, ev.addr, effects)
        effects.append(Reply(ev.request, None))

    def _on_delete(self, ev: DeleteRequested, effects: list[Effect]) -> None:
        addrs = self.ledger.pop(key_of(ev.ident))
        if not addrs:
            effects.append(Reply(ev.request, Failed(f"Delete: no addresses for {ev.ident}")))
            return
        for addr in addrs:
            self._release(ev.ident, addr, effects)
        effects.append(Reply(ev.request, None))

    def _release(self, ident: str, addr: int, effects: list[Effect]) -> None:
        """Give an address the ledger has dropped back to the space."""
        if self._ustart <= addr < self._uend:
            # After a shutdown the space is gone but the ledger still answers.
            with suppress(SpaceError):
                self.space.free(addr)
            effects.append(Released(ident, self.universe.with_addr(addr)))
        else:
            effects.append(Released(ident, CIDR(addr, self.universe.bits, self.universe.version)))

    def _on_prime(self, ev: PrimeRequested, effects: list[Effect]) -> None:
        if self.shutting_down:
            effects.append(Reply(ev.request, Failed("Prime request cancelled", cancelled=True)))
            return
        self._establish_ring(effects)
        if self.ring.empty:
            self._primes[ev.request] = None
        else:
            effects.append(Reply(ev.request, None))

    def _on_cancelled(self, ev: Cancelled, effects: list[Effect]) -> None:
        request = ev.request
        if (op := self._allocates.pop(request, None)) is not None:
            effects.append(Reply(request, self._cancelled("Allocate", op.ident)))
        elif (claim := self._claims.pop(request, None)) is not None:
            if not claim.replied:
                effects.append(Reply(request, self._cancelled("Claim", claim.ident)))
        elif request in self._primes:
            del self._primes[request]
            effects.append(Reply(request, Failed("Prime request cancelled", cancelled=True)))

    @staticmethod
    def _cancelled(kind: str, ident: str) -> Failed:
        return Failed(f"{kind} request for {ident} cancelled", cancelled=True)

    def _cancel_all(self, effects: list[Effect], ident: str | None = None) -> None:
        for request, op in list(self._allocates.items()):
            if ident is None or op.ident == ident:
                del self._allocates[request]
                effects.append(Reply(request, self._cancelled("Allocate", op.ident)))
        for request, claim in list(self._claims.items()):
            if ident is None or claim.ident == ident:
                del self._claims[request]
                if not claim.replied:
                    effects.append(Reply(request, self._cancelled("Claim", claim.ident)))
        if ident is None:
            cancelled = Failed("Prime request cancelled", cancelled=True)
            effects.extend(Reply(request, cancelled) for request in self._primes)
            self._primes.clear()

    # -- containers --------------------------------------------------------

    def _on_died(self, ev: ContainerDied, effects: list[Effect]) -> None:
        key = key_of(ev.ident)
        if self.ledger.holds(key) and self.ledger.is_container(key):
            self.ledger.mark_dead(key, self.now)
        self._cancel_all(effects, ev.ident)

    def _on_started(self, ev: ContainerStarted, effects: list[Effect]) -> None:
        self.ledger.revive(key_of(ev.ident))

    def _on_destroyed(self, ev: ContainerDestroyed, effects: list[Effect]) -> None:
        self._drop(key_of(ev.ident), effects)

    def _on_prune(self, ev: PruneRequested, effects: list[Effect]) -> None:
        running = {key_of(ident) for ident in ev.running}
        for key in self.ledger.container_keys():
            if key not in running:
                effects.append(Log("info", f"Releasing addresses of {ident_of(key)}: not running"))
                self._drop(key, effects)

    def _drop(self, key: Key, effects: list[Effect]) -> None:
        ident = ident_of(key)
        for addr in self.ledger.pop(key):
            self._release(ident, addr, effects)

    # -- admin -------------------------------------------------------------

    def _on_shutdown(self, ev: ShutdownRequested, effects: list[Effect]) -> None:
        self.shutting_down = True
        self._cancel_all(effects)
        heir = self._heir()
        before = self._owned
        self.ring.transfer(self.me, heir)
        self.space.clear()
        self._owned = ()
        self._touched = True
        effects.append(RingChanged(before, ()))
        if heir != UNKNOWN_PEER:
            effects.append(Log("info", f"Handing our ranges to {self._describe(heir)}"))
            effects.append(SaveRing(self.ring.to_data(), self.me))
            effects.append(Broadcast(self._state(effects)))
        else:
            self._heirless = True
            effects.append(Log("warning", "No peer to hand our ranges to"))
        effects.append(Reply(ev.request, None))

    def _heir(self) -> int:
        known = self.reachable.__contains__
        heir = self.ring.heir(known)
        if heir != UNKNOWN_PEER:
            return heir
        for peer in sorted(self.nicknames):
            if peer != self.me and known(peer):
                return peer
        heir = self.ring.heir(lambda _peer: True)
        if heir != UNKNOWN_PEER:
            return heir
        others = sorted(p for p in self.nicknames if p != self.me)
        return others[0] if others else UNKNOWN_PEER

    def _on_rmpeer(self, ev: RmPeerRequested, effects: list[Effect]) -> None:
        peer = self._resolve(ev.peer)
        if peer is None or peer == self.me:
            what = "our own name" if peer == self.me else "unknown peer"
            effects.append(Log("warning", f"attempt to take over range from {what} '{ev.peer}'"))
            effects.append(Reply(ev.request, 0))
            return
        moved = self.ring.transfer(peer, self.me)
        if not moved:
            effects.append(Reply(ev.request, 0))
            return
        self._ring_updated(effects)
        effects.append(Broadcast(self._state(effects)))
        effects.append(Reply(ev.request, sum(hi - lo for lo, hi in moved)))

    def _resolve(self, text: str) -> int | None:
        for peer, nick in sorted(self.nicknames.items()):
            if nick and nick == text:
                return peer
        try:
            return parse_peer_name(text)
        except PeerNameError:
            return None

    # -- the ring ----------------------------------------------------------

    def _establish_ring(self, effects: list[Effect]) -> None:
        if not self.ring.empty or self.awaiting:
            return
        self.awaiting = True
        self._apply(self.strategy.establish(self.now), effects)

    def _apply(self, decision: Decision, effects: list[Effect]) -> None:
        if decision.seeds is not None and self.ring.empty:
            self._create_ring(decision.seeds, effects)
        elif decision.broadcast:
            effects.append(Broadcast(self._state(effects)))

    def _create_ring(self, seeds: tuple[int, ...], effects: list[Effect]) -> None:
        self.ring.claim_for_peers(seeds)
        self._ring_updated(effects)
        effects.append(Broadcast(self._state(effects)))

    def _ring_updated(self, effects: list[Effect]) -> None:
        """The ring changed under us: sync the space, persist, and retry what waits."""
        self.awaiting = False
        self.strategy.ring_formed()
        self._touched = True
        self._asked.clear()
        before = self._owned
        after = self._coalesced_owned()
        if after != before:
            lost = _subtract(before, after)
            for lo, hi in lost:
                if self.space.has_allocations_in(lo, hi):
                    raise InvariantError(f"lost a range with allocations: {lo}-{hi}")
                self.space.remove(lo, hi)
            self.space.update_ranges(after)
            self._owned = after
            effects.append(RingChanged(before, after))
        effects.append(SaveRing(self.ring.to_data(), self.me))
        self._retry(effects)

    def _coalesced_owned(self) -> tuple[Range, ...]:
        out: list[Range] = []
        for lo, hi in self.ring.owned_ranges():
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return tuple(out)

    def _report_free(self, effects: list[Effect]) -> None:
        """Put our real free counts in the ring; persist it if that changed anything."""
        ring, space, changed = self.ring, self.space, False
        for i, owner in enumerate(ring.peers):
            if owner == self.me:
                free = sum(space.num_free_in(lo, hi) for lo, hi in ring.entry_ranges(i))
                changed |= ring.set_free(i, free)
        if changed:
            effects.append(SaveRing(ring.to_data(), self.me))

    def _state(self, effects: list[Effect]) -> bytes:
        """Our encoded state, with fresh free counts (persisted first if they changed)."""
        if self.ring.empty:
            return codec.encode(PeerState(self._nick_pairs(), None, self.strategy.payload()))
        self._report_free(effects)
        return codec.encode(PeerState(self._nick_pairs(), self.ring.to_data(), None))

    def _nick_pairs(self) -> tuple[tuple[int, str], ...]:
        return tuple(sorted(self.nicknames.items()))

    # -- messages from peers -----------------------------------------------

    def _on_gossip(self, ev: GossipReceived, effects: list[Effect]) -> None:
        try:
            message = codec.decode(ev.payload)
        except codec.DecodeError as err:
            effects.append(
                Refuse(ev.sender, f"malformed message from {self._describe(ev.sender)}: {err}")
            )
            return
        if isinstance(message, PeerState):
            self._on_state(ev.sender, message, ev.via, effects)
        elif isinstance(message, SpaceRequest):
            self._on_space_request(ev.sender, message, effects)
        else:
            self._on_denied(ev.sender, message, effects)

    def _on_state(self, sender: int, state: PeerState, via: Via, effects: list[Effect]) -> None:
        learned = False
        for peer, nick in state.nicknames:
            if peer == self.me or self.nicknames.get(peer) == nick:
                continue
            if peer in self.nicknames or len(self.nicknames) < MAX_NICKNAMES:
                self.nicknames[peer] = nick
                learned = True
        if learned and not self._heirless and not self.ring.empty:
            # Pass news of peers on (Weave re-gossiped what changed): otherwise a peer that
            # became reachable through another shows without a nickname until periodic gossip.
            effects.append(Gossip(self._state(effects)))
        known = via is not Via.GOSSIP
        if state.ring is not None:
            try:
                updated = self.ring.merge(state.ring, self._has_allocations)
            except RingError as err:
                effects.append(Refuse(sender, self._explain(err)))
                return
            if updated:
                self._ring_updated(effects)
        elif not self.ring.empty:
            if known and not self._heirless:
                effects.append(SendTo(sender, self._state(effects)))
        elif state.election is not None:
            self._apply(self.strategy.receive(sender, state.election), effects)
        elif known and self.strategy.elector:
            self._establish_ring(effects)

    def _has_allocations(self, ranges: list[Range]) -> bool:
        return any(self.space.has_allocations_in(lo, hi) for lo, hi in ranges)

    def _explain(self, err: RingError) -> str:
        if isinstance(err, DifferentSeedsError):
            theirs = ", ".join(self._describe(p) for p in err.theirs)
            ours = ", ".join(self._describe(p) for p in err.ours)
            return (
                "IP allocation was seeded by different peers "
                f"(received: [{theirs}], ours: [{ours}])"
            )
        if isinstance(err, DifferentRangeError):
            theirs = _range_text(*err.theirs, self.universe.version)
            return f"Incompatible IP allocation ranges (received: {theirs}, ours: {self.universe})"
        return str(err)

    def _on_space_request(self, sender: int, req: SpaceRequest, effects: list[Effect]) -> None:
        if self.ring.empty or self.shutting_down:
            return
        lo = max(req.start, self.universe.start)
        hi = min(req.end, self.universe.end)
        chunk = self.space.donate(lo, hi) if lo < hi else None
        if chunk is None:
            effects.append(SendTo(sender, codec.encode(SpaceDenied(req.start, req.end))))
            effects.append(SendTo(sender, self._state(effects)))
            return
        self.ring.grant(chunk[0], chunk[1], sender)
        self._touched = True
        before, self._owned = self._owned, self._coalesced_owned()
        effects.append(RingChanged(before, self._owned))
        effects.append(SaveRing(self.ring.to_data(), self.me))
        state = self._state(effects)
        effects.append(Broadcast(state))
        effects.append(SendTo(sender, state))

    def _on_denied(self, sender: int, denied: SpaceDenied, effects: list[Effect]) -> None:
        self._asked.discard((denied.start, denied.end))
        for request, op in list(self._claims.items()):
            if denied.start <= op.cidr.addr < denied.end:
                del self._claims[request]
                if not op.replied:
                    text = format_address(op.cidr.addr, op.cidr.version)
                    message = f"address {text} is owned by other peer {self._describe(sender)}"
                    effects.append(Reply(request, Failed(message)))

    def _on_peers(self, ev: PeersChanged, effects: list[Effect]) -> None:
        new = ev.reachable - self.reachable
        self.reachable = ev.reachable
        if self._heirless:
            return  # see __init__
        if new and (not self.ring.empty or self.strategy.payload() is not None):
            effects.append(Gossip(self._state(effects)))

    # -- time --------------------------------------------------------------

    def _on_tick(self, ev: Tick, effects: list[Effect]) -> None:
        self.now = now = ev.now
        if now - self._last_retry >= self.retry_interval:
            self._last_retry = now
            self._asked.clear()
            if self.awaiting:
                self._apply(self.strategy.tick(now), effects)
            elif self._allocates or self._claims or self._primes:
                if self.ring.empty:
                    self._establish_ring(effects)
                else:
                    self._retry(effects)
        for key in self.ledger.dead_since(now - self.grace_period):
            effects.append(Log("info", f"Releasing addresses of dead container {ident_of(key)}"))
            self._drop(key, effects)
        if now - self._last_gossip >= self.gossip_interval and not self._heirless:
            self._last_gossip = now
            if not self.ring.empty or self.strategy.payload() is not None:
                effects.append(Gossip(self._state(effects)))

    def _retry(self, effects: list[Effect]) -> None:
        """Try pending work again: primes, then claims, then allocations."""
        if self._primes and not self.ring.empty:
            effects.extend(Reply(request, None) for request in self._primes)
            self._primes.clear()
        for request, claim in list(self._claims.items()):
            result = self._try_claim(claim, effects)
            if result is not None:
                del self._claims[request]
                if result is not False:
                    effects.append(Reply(request, None if result is True else result))
        for request, op in list(self._allocates.items()):
            outcome = self._try_allocate(op, effects)
            if outcome is not None:
                del self._allocates[request]
                effects.append(Reply(request, outcome))

    # -- status helpers ----------------------------------------------------

    def _describe(self, peer: int) -> str:
        nick = self.nicknames.get(peer, "")
        return f"{format_peer_name(peer)}({nick})"

    @property
    def pending_allocates(self) -> list[tuple[str, CIDR]]:
        return [(op.ident, op.subnet) for op in self._allocates.values()]

    @property
    def pending_claims(self) -> list[tuple[str, CIDR]]:
        return [(op.ident, op.cidr) for op in self._claims.values()]

    @property
    def pending_primes(self) -> int:
        return len(self._primes)

    # -- invariants --------------------------------------------------------

    def _check(self) -> None:
        """Ring and space agree on what we own, and the ledger matches the space."""
        ring_owned = self._coalesced_owned()
        if ring_owned != self._owned or list(ring_owned) != self.space.owned_ranges():
            raise InvariantError(
                f"ring owns {ring_owned} but space holds {self.space.owned_ranges()}"
            )

    def audit(self) -> None:
        """A full consistency check, for tests and simulations (slow on big ledgers)."""
        self.ring.check()
        self._check()
        if self.shutting_down:
            return  # the space was handed on, but the ledger still answers lookups and frees
        inside = sum(
            1 for _, addrs, _ in self.ledger.items() for a in addrs if self.universe.contains(a)
        )
        if inside != self.space.num_allocated():
            raise InvariantError(
                f"ledger holds {inside} addresses in range but space has "
                f"{self.space.num_allocated()} allocated"
            )
        for ident, addrs, _ in self.ledger.items():
            for addr in addrs:
                if self.universe.contains(addr) and not self.space.is_allocated(addr):
                    raise InvariantError(f"{ident} holds {addr} which the space has not allocated")


def _subtract(before: tuple[Range, ...], after: tuple[Range, ...]) -> list[Range]:
    """Parts of the ranges ``before`` not covered by ``after`` (both sorted, coalesced)."""
    out: list[Range] = []
    for lo, hi in before:
        cur = lo
        for alo, ahi in after:
            if ahi <= cur or alo >= hi:
                continue
            if alo > cur:
                out.append((cur, alo))
            cur = max(cur, ahi)
            if cur >= hi:
                break
        if cur < hi:
            out.append((cur, hi))
    return out


def _range_text(lo: int, hi: int, version: int) -> str:
    """A range as a CIDR when it is one, else as first-last."""
    size = hi - lo
    bits = 32 if version == 4 else 128
    if size & (size - 1) == 0 and lo % size == 0:
        return str(CIDR(lo, bits - size.bit_length() + 1, version))
    return f"{format_address(lo, version)}-{format_address(hi - 1, version)}"

"""Safety and convergence checks for a simulated :class:`~weavek.testing.cluster.Cluster`.

* :func:`check_safety` may be called at any moment, faults and all: no two
  peers own the same address, no address is held twice, every allocator's
  own audit passes, and no two clients were ever told they hold the same
  address at the same time (:class:`Holdings` watches the replies).
* :func:`check_converged` is for the end of a run, after ``heal()`` and
  ``converge()``: every live peer has the same ring, and the peers' spaces
  split the universe between them exactly.

Both raise :class:`AssertionError` naming the run's seed, the peers and the
ranges involved, so a failing seed can be replayed and read.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from weavek.core.address import CIDR, Range, format_address
from weavek.core.allocator import ANONYMOUS, Allocator
from weavek.core.effects import Reply
from weavek.core.peer import format_peer_name
from weavek.core.ring import Ring

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["Holdings", "Request", "check_converged", "check_safety", "is_converged"]

Holder = tuple[str, str]
"""(peer nickname, ident)."""


@dataclass(slots=True)
class Request:
    """What a request id was for: which peer (index), what kind, which ident and address."""

    peer: int
    kind: str
    ident: str = ""
    addr: int | None = None
    track: bool = True
    """Count a success as the ident holding the address (see :class:`Holdings`)."""
    lost: bool = False
    """Its peer crashed before answering: no reply will ever come."""


class Holdings:
    """Who the replies say holds each address, and every time two held one at once.

    The cluster passes every reply to :meth:`replied` and calls
    :meth:`released` on each :class:`~weavek.core.effects.Released` effect; a
    peer that leaves for good (shut down, or removed with rmpeer) is
    :meth:`forgotten <forget_peer>`.
    """

    def __init__(self) -> None:
        self.by_addr: dict[int, set[Holder]] = {}
        self.violations: list[str] = []
        self.double_replies: list[object] = []
        self.grants = 0

    def replied(self, cluster: Cluster, peer: str, reply: Reply) -> None:
        """Record a reply in ``cluster.replies``, and a successful allocate or claim as a grant."""
        rid, result = reply.request, reply.result
        if rid in cluster.replies:
            self.double_replies.append(rid)
            return
        cluster.replies[rid] = result
        req = cluster.requests.get(rid) if isinstance(rid, int) else None
        if req is None or not req.track:
            return
        if req.kind == "allocate" and isinstance(result, CIDR):
            addr = result.addr
            ident = result.address_text() if req.ident == ANONYMOUS else req.ident
        elif req.kind == "claim" and result is None and req.addr is not None:
            addr, ident = req.addr, req.ident
        else:
            return
        if cluster.universe.contains(addr):
            self.granted(peer, ident, addr, cluster.universe.version, cluster.now)

    def granted(self, peer: str, ident: str, addr: int, version: int, now: float) -> None:
        """``peer`` told ``ident`` it holds ``addr``; a second live holder is a violation."""
        holders = self.by_addr.setdefault(addr, set())
        holders.add((peer, ident))
        self.grants += 1
        if len(holders) > 1:
            who = ", ".join(f"{p}/{i}" for p, i in sorted(holders))
            text = format_address(addr, version)
            self.violations.append(f"t={now:.3f}: {text} handed to more than one holder: {who}")

    def released(self, peer: str, ident: str, addr: int) -> None:
        """``ident`` on ``peer`` no longer holds ``addr``."""
        holders = self.by_addr.get(addr)
        if holders is not None:
            holders.discard((peer, ident))
            if not holders:
                del self.by_addr[addr]

    def forget_peer(self, peer: str) -> None:
        """``peer`` is gone for good, and with it everything its idents held."""
        for addr in [a for a, hs in self.by_addr.items() if any(h[0] == peer for h in hs)]:
            self.by_addr[addr] = {h for h in self.by_addr[addr] if h[0] != peer}
            if not self.by_addr[addr]:
                del self.by_addr[addr]


def _fmt(ranges: list[Range], version: int) -> str:
    parts = [
        f"{format_address(lo, version)}-{format_address(hi - 1, version)}" for lo, hi in ranges
    ]
    return "[" + ", ".join(parts) + "]"


def _fail(cluster: Cluster, what: str) -> None:
    raise AssertionError(f"seed={cluster.seed} t={cluster.now:.3f}: {what}")


def owned_by_peer(cluster: Cluster) -> dict[str, list[Range]]:
    """What each peer would allocate from: a live peer's space, a crashed peer's persisted ring."""
    out: dict[str, list[Range]] = {}
    for peer in cluster.peers:
        if peer.removed:
            continue
        if peer.allocator is not None:
            out[peer.nickname] = peer.allocator.space.owned_ranges()
        else:
            snap = peer.store.snapshot()
            if snap is not None and snap.ring is not None and snap.ring.tokens:
                out[peer.nickname] = Ring.from_data(snap.ring, peer.name).owned_ranges()
    return out


def _overlaps(owned: dict[str, list[Range]]) -> list[tuple[str, Range, str, Range]]:
    flat = sorted((lo, hi, who) for who, ranges in owned.items() for lo, hi in ranges)
    clashes = []
    for (alo, ahi, a), (blo, bhi, b) in pairwise(flat):
        if blo < ahi:
            clashes.append((a, (alo, ahi), b, (blo, bhi)))
    return clashes


def check_safety(cluster: Cluster) -> None:
    """Assert that nothing is, or ever was, owned or handed out twice."""
    version = cluster.universe.version
    owned = owned_by_peer(cluster)
    for a, ra, b, rb in _overlaps(owned):
        _fail(cluster, f"{a} owns {_fmt([ra], version)} and {b} owns {_fmt([rb], version)}")
    held: dict[int, tuple[str, str]] = {}
    for peer in cluster.peers:
        if peer.removed:
            continue
        if peer.allocator is not None:
            try:
                peer.allocator.audit()
            except Exception as err:  # InvariantError, or a RingError from ring.check()
                _fail(cluster, f"{peer.nickname} failed its audit: {err}")
            idents = [(i, addrs) for i, addrs, _ in peer.allocator.ledger.items()]
        else:
            idents = [(i, tuple(c.addr for c in cs)) for i, (cs, _) in peer.store.owned.items()]
        for ident, addrs in idents:
            for addr in addrs:
                if not cluster.universe.contains(addr):
                    continue
                other = held.setdefault(addr, (peer.nickname, ident))
                if other != (peer.nickname, ident):
                    text = format_address(addr, version)
                    _fail(
                        cluster, f"{text} held by {other[0]}/{other[1]} and {peer.nickname}/{ident}"
                    )
    if cluster.holdings.violations:
        _fail(
            cluster,
            "replies handed out an address twice:\n" + "\n".join(cluster.holdings.violations),
        )
    if cluster.holdings.double_replies:
        _fail(cluster, f"requests answered more than once: {cluster.holdings.double_replies[:5]}")


def _running(cluster: Cluster) -> list[tuple[str, int, Allocator]]:
    return [(p.nickname, p.name, p.allocator) for p in cluster.peers if p.allocator is not None]


def _ring_key(alloc: Allocator) -> tuple[object, ...]:
    ring = alloc.ring
    return (ring.tokens, ring.peers, ring.versions, ring.seeds)


def is_converged(cluster: Cluster) -> bool:
    """True when every live peer has the same ring (tokens, owners, versions, seeds)."""
    keys = [_ring_key(alloc) for _, _, alloc in _running(cluster)]
    return all(k == keys[0] for k in keys[1:])


def check_converged(cluster: Cluster, *, absent_ok: bool = False) -> None:
    """Assert every live peer agrees on the ring and their spaces tile the universe.

    :param absent_ok: allow ranges owned by peers that are not running (crashed
        and not restarted); by default every range must belong to a live peer.
    """
    live = _running(cluster)
    if not live:
        return
    version = cluster.universe.version
    nick0, _, first = live[0]
    for nick, _, alloc in live[1:]:
        if _ring_key(alloc) != _ring_key(first):
            _fail(cluster, f"rings differ:\n  {nick}: {alloc.ring!r}\n  {nick0}: {first.ring!r}")
    ring = first.ring
    if ring.empty:
        _fail(cluster, "no ring was ever built")
    owned = {nick: alloc.space.owned_ranges() for nick, _, alloc in live}
    for a, ra, b, rb in _overlaps(owned):
        _fail(cluster, f"{a} owns {_fmt([ra], version)} and {b} owns {_fmt([rb], version)}")
    names = {name for _, name, _ in live}
    absent = sorted({o for o in ring.peers if o not in names})
    if absent and not absent_ok:
        gone = {format_peer_name(o): _fmt(ring.owned_ranges(o), version) for o in absent}
        _fail(cluster, f"ranges owned by peers that are not running: {gone}")
    pieces = [r for ranges in owned.values() for r in ranges]
    pieces += [r for o in absent for r in ring.owned_ranges(o)]
    cur = cluster.universe.start
    for lo, hi in sorted(pieces):
        if lo != cur:
            _fail(cluster, f"nobody owns {_fmt([(cur, lo)], version)}; owned: {owned}")
        cur = hi
    if cur != cluster.universe.end:
        _fail(cluster, f"nobody owns {_fmt([(cur, cluster.universe.end)], version)}")

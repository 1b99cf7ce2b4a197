"""The ring: who owns which part of the address range, as a CRDT (Weave's ``ipam/ring``).

The universe ``[start, end)`` is a ring of addresses divided into ranges, each
starting at a *token*. An entry records the token, its owning peer, a version
and an advisory free count; the range of an entry runs to the next token and
the last one wraps round to the first. Only a range's owner changes its entry
(apart from the ``rmpeer`` takeover, which jumps the version by 100), so
merging two copies entry by entry -- the higher version wins -- converges.

A ring is identified by its universe and its *seeds*, the peers it was first
divided among; rings with other seeds or another universe never merge.

Entries are kept as four parallel lists (tokens, peers, versions, frees): the
tokens list is what :mod:`bisect` searches, and a snapshot is four tuples
(:class:`~weavek.core.messages.RingData`) that the codec writes as columns.

Differences from Weave, on purpose:

* When a merge takes a range away from us, the allocator removes it from its
  space instead of crashing (Weave's "merge only adds" quirk).
* Entries of an incoming ring that split our last range, which wraps round
  (trailing entries, and entries below our first token), are checked for
  allocations like every other split. Weave refuses trailing ones outright and
  never checks ones below the first token.
"""

from __future__ import annotations

import itertools
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable

from .address import Range, format_address
from .messages import RingData
from .peer import UNKNOWN_PEER, format_peer_name

__all__ = [
    "DifferentRangeError",
    "DifferentSeedsError",
    "InvalidRingError",
    "MergeConflictError",
    "Ring",
    "RingError",
]

TRANSFER_VERSION_JUMP = 100
"""A takeover raises versions this far, so it beats small concurrent bumps (free reports)."""


class RingError(Exception):
    """A ring cannot be accepted; the message says why."""


class InvalidRingError(RingError):
    """A ring breaks one of the structural invariants."""


class DifferentSeedsError(RingError):
    """The other ring was divided among other peers: it is another cluster's ring."""

    def __init__(self, theirs: tuple[int, ...], ours: tuple[int, ...]) -> None:
        super().__init__("IP allocation was seeded by different peers")
        self.theirs = theirs
        self.ours = ours


class DifferentRangeError(RingError):
    """The other ring covers another universe."""

    def __init__(self, theirs: Range, ours: Range) -> None:
        super().__init__("Incompatible IP allocation ranges")
        self.theirs = theirs
        self.ours = ours


class MergeConflictError(RingError):
    """The other ring contradicts ownership of a range where we hold allocations."""


HasAllocations = Callable[[list[Range]], bool]


class Ring:
    """One peer's replica of the ring.

    :param start: first address of the universe.
    :param end: one past its last address.
    :param me: this peer's name; merge rules protect ranges it owns.
    :param version: IP version, used only to print addresses.
    """

    __slots__ = ("end", "frees", "me", "peers", "seeds", "start", "tokens", "version", "versions")

    def __init__(self, start: int, end: int, me: int, version: int = 4) -> None:
        if not start < end:
            raise ValueError("a ring needs start < end")
        self.start = start
        self.end = end
        self.me = me
        self.version = version
        self.tokens: list[int] = []
        self.peers: list[int] = []
        self.versions: list[int] = []
        self.frees: list[int] = []
        self.seeds: tuple[int, ...] = ()

    # -- snapshots -------------------------------------------------------

    @classmethod
    def from_data(cls, data: RingData, me: int) -> Ring:
        """Rebuild a replica from a snapshot; raises :class:`InvalidRingError` if it is broken."""
        ring = cls(data.start, data.end, me, data.version)
        ring.tokens = list(data.tokens)
        ring.peers = list(data.peers)
        ring.versions = list(data.versions)
        ring.frees = list(data.frees)
        ring.seeds = tuple(data.seeds)
        ring.check()
        return ring

    def to_data(self) -> RingData:
        return RingData(
            self.start,
            self.end,
            self.version,
            self.seeds,
            tuple(self.tokens),
            tuple(self.peers),
            tuple(self.versions),
            tuple(self.frees),
        )

    def copy(self) -> Ring:
        return Ring.from_data(self.to_data(), self.me)

    # -- geometry --------------------------------------------------------

    @property
    def empty(self) -> bool:
        """True until the ring has been divided among its seeds."""
        return not self.tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def distance(self, a: int, b: int) -> int:
        """Addresses from ``a`` up to ``b``, going round the ring; a whole ring when a == b."""
        if b > a:
            return b - a
        return self.end - a + b - self.start

    def index_of(self, addr: int) -> int:
        """Index of the entry whose range holds ``addr`` (wrapping below the first token)."""
        if not self.start <= addr < self.end:
            raise ValueError(f"address {self._fmt(addr)} is outside the ring")
        return bisect_right(self.tokens, addr) - 1  # -1 is the last entry: the wrap

    def owner(self, addr: int) -> int:
        """The peer owning ``addr``; the unknown peer (0) while the ring is empty."""
        if not self.tokens:
            if not self.start <= addr < self.end:
                raise ValueError(f"address {self._fmt(addr)} is outside the ring")
            return UNKNOWN_PEER
        return self.peers[self.index_of(addr)]

    def entry_ranges(self, i: int) -> list[Range]:
        """The range of entry ``i``, split in two where it wraps past the universe's end."""
        token = self.tokens[i]
        nxt = self.tokens[(i + 1) % len(self.tokens)]
        if nxt > token:
            return [(token, nxt)]
        ranges = [(token, self.end)]
        if nxt > self.start:
            ranges.insert(0, (self.start, nxt))
        return ranges

    def owned_ranges(self, peer: int | None = None) -> list[Range]:
        """Ranges owned by ``peer`` (default: us), in address order, not coalesced."""
        who = self.me if peer is None else peer
        out: list[Range] = []
        for i, owner in enumerate(self.peers):
            if owner == who:
                out.extend(self.entry_ranges(i))
        out.sort()
        return out

    def range_info(self) -> list[tuple[int, Range, int]]:
        """``(peer, range, version)`` for every entry, wrap split, in address order (for status)."""
        rows = [
            (self.peers[i], r, self.versions[i])
            for i in range(len(self.tokens))
            for r in self.entry_ranges(i)
        ]
        rows.sort(key=lambda row: row[1])
        return rows

    def peer_names(self) -> set[int]:
        return set(self.peers)

    # -- invariants ------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`InvalidRingError` unless entries are sorted, unique, in range and sane."""
        tokens, n = self.tokens, len(self.tokens)
        if not (len(self.peers) == len(self.versions) == len(self.frees) == n):
            raise InvalidRingError("Ring columns have different lengths")
        if n == 0:
            return
        if not all(map(operator.lt, tokens, tokens[1:])):
            for a, b in itertools.pairwise(tokens):
                if a == b:
                    raise InvalidRingError("Token appears twice in ring")
            raise InvalidRingError("Ring not sorted")
        if tokens[0] < self.start or tokens[-1] >= self.end:
            raise InvalidRingError("Token is out of range")
        # Free never exceeds the range size; the last entry wraps round.
        sizes = list(map(operator.sub, tokens[1:], tokens[:-1]))
        sizes.append(self.end - tokens[-1] + tokens[0] - self.start)
        if not all(map(operator.le, self.frees, sizes)):
            for i, (free, size) in enumerate(zip(self.frees, sizes, strict=True)):
                if free > size:
                    lo, hi = tokens[i], tokens[(i + 1) % n]
                    raise InvalidRingError(
                        f"Entry {self._fmt(lo)}-{self._fmt(hi)} reporting too much free space: "
                        f"{free} > {size}"
                    )
        if min(self.frees) < 0 or min(self.versions) < 0:
            raise InvalidRingError("Negative free count or version in ring")

    # -- mutations by the owner -------------------------------------------

    def _insert(self, i: int, token: int, peer: int, version: int, free: int) -> None:
        self.tokens.insert(i, token)
        self.peers.insert(i, peer)
        self.versions.insert(i, version)
        self.frees.insert(i, free)

    def _update(self, i: int, peer: int, free: int) -> None:
        self.peers[i] = peer
        self.versions[i] += 1
        self.frees[i] = free

    def claim_for_peers(self, peers: Iterable[int]) -> None:
        """Divide an empty ring among ``peers`` by recursive halving (CIDR-aligned shares)."""
        if self.tokens:
            raise ValueError("the ring has already been divided")
        names = sorted(set(peers))
        if not names:
            raise ValueError("cannot divide the ring among no peers")

        def subdivide(lo: int, hi: int, share: list[int]) -> None:
            size = hi - lo
            if size == 0 or not share:
                return
            if size == 1 or len(share) == 1:
                self._insert(len(self.tokens), lo, share[0], 0, size)
                return
            mid = lo + size // 2
            half = len(share) // 2
            subdivide(lo, mid, share[:half])
            subdivide(mid + size % 2, hi, share[half:])

        subdivide(self.start, self.end, names)
        self.seeds = tuple(names)

    def claim_it_all(self) -> None:
        self.claim_for_peers([self.me])

    def grant(self, start: int, end: int, peer: int) -> None:
        """Give ``[start, end)``, which we own, to ``peer``; adds at most two tokens."""
        if not (start < end and self.start <= start and end <= self.end):
            raise ValueError("grant range must be non-empty and inside the ring")
        if not self.tokens:
            raise ValueError("cannot grant from an empty ring")
        tokens = self.tokens
        n = len(tokens)
        i = bisect_right(tokens, start) - 1  # -1: start lies in the last entry's wrapped range
        covered = [i % n]
        k = i + 1
        while k < n and tokens[k] < end:
            covered.append(k)
            k += 1
        if any(self.peers[c] != self.me for c in covered):
            raise ValueError(f"cannot grant {self._fmt(start)}: range not owned by us")
        start_free = min(self.distance(start, tokens[(i + 1) % n]), end - start)
        if i >= 0 and tokens[i] == start:
            self._update(i, peer, start_free)
            k = i + 1
        else:
            self._insert(i + 1, start, peer, 0, start_free)
            prev = i % (n + 1)  # after the insert, -1 still means the last entry
            self._update(prev, self.me, self.distance(tokens[prev], start))
            k = i + 2
        while k < len(tokens) and tokens[k] < end:
            self._update(k, peer, min(self.frees[k], end - tokens[k]))
            k += 1
        if end == self.end:
            end = self.start
        pos = bisect_left(tokens, end)
        if pos < len(tokens) and tokens[pos] == end:
            return
        nxt = tokens[pos % len(tokens)]
        self._insert(pos, end, self.me, 0, self.distance(end, nxt))

    def transfer(self, src: int, dst: int) -> list[Range]:
        """Re-own every entry of ``src`` to ``dst`` (+100 versions); returns the ranges moved."""
        moved: list[Range] = []
        for i, owner in enumerate(self.peers):
            if owner == src:
                self.peers[i] = dst
                self.versions[i] += TRANSFER_VERSION_JUMP
                moved.extend(self.entry_ranges(i))
        moved.sort()
        return moved

    def set_free(self, i: int, free: int) -> bool:
        """Record our real free count for entry ``i``; bumps the version when it changed."""
        if self.frees[i] == free:
            return False
        self.frees[i] = free
        self.versions[i] += 1
        return True

    # -- merge -----------------------------------------------------------

    def merge(self, theirs: RingData, has_allocations: HasAllocations) -> bool:
        """Merge a peer's copy into ours; True when any of their entries was taken.

        ``has_allocations(ranges)`` tells whether we hold any allocated (or
        unknown) address in those ranges. Raises a :class:`RingError` when the
        rings cannot be merged; ours is then unchanged.
        """
        other = Ring(theirs.start, theirs.end, self.me, theirs.version)
        other.tokens, other.peers = list(theirs.tokens), list(theirs.peers)
        other.versions, other.frees = list(theirs.versions), list(theirs.frees)
        other.seeds = tuple(theirs.seeds)
        other.check()
        if self.seeds and other.seeds and self.seeds != other.seeds:
            raise DifferentSeedsError(other.seeds, self.seeds)
        if (self.start, self.end) != (other.start, other.end):
            raise DifferentRangeError((other.start, other.end), (self.start, self.end))
        if (
            self.tokens == other.tokens
            and self.peers == other.peers
            and self.versions == other.versions
        ):
            if not self.seeds:
                self.seeds = other.seeds
            return False  # nothing newer; free counts alone never win
        if self.tokens == other.tokens:
            updated = self._merge_aligned(other, has_allocations)
            if not self.seeds:
                self.seeds = other.seeds
            return updated
        result, updated = self._merge_entries(other, has_allocations)
        merged = Ring(self.start, self.end, self.me, self.version)
        merged.tokens, merged.peers, merged.versions, merged.frees = (list(c) for c in result)
        # One of our ranges may have been split while it had no allocations.
        for i, owner in enumerate(merged.peers):
            if owner == self.me:
                size = merged.distance(merged.tokens[i], merged.tokens[(i + 1) % len(merged)])
                if merged.frees[i] > size:
                    merged.frees[i] = size
        try:
            merged.check()
        except InvalidRingError as err:
            raise InvalidRingError(f"Merge of incoming data causes: {err}") from None
        if not self.seeds:
            self.seeds = other.seeds
        self.tokens, self.peers = merged.tokens, merged.peers
        self.versions, self.frees = merged.versions, merged.frees
        return updated

    def _merge_entries(
        self, other: Ring, has_allocations: HasAllocations
    ) -> tuple[tuple[list[int], list[int], list[int], list[int]], bool]:
        me = self.me
        mt, mp, mv, mf = self.tokens, self.peers, self.versions, self.frees
        tt, tp, tv, tf = other.tokens, other.peers, other.versions, other.frees
        rt: list[int] = []
        rp: list[int] = []
        rv: list[int] = []
        rf: list[int] = []

        def take(token: int, peer: int, version: int, free: int) -> None:
            rt.append(token)
            rp.append(peer)
            rv.append(version)
            rf.append(free)

        updated = False
        # Below our first token we are in our last entry, which wraps round: a token of
        # theirs there splits that entry's range and is checked like any other split.
        prev_owner: int | None = mp[-1] if mp else None
        i = j = 0
        nm, nt = len(mt), len(tt)
        while j < nt:
            if i < nm and mt[i] < tt[j]:
                take(mt[i], mp[i], mv[i], mf[i])
                prev_owner = mp[i]
                i += 1
                continue
            if i >= nm or tt[j] < mt[i]:
                # A token we do not have: it must not split a range we hold allocations in.
                if prev_owner == me and tp[j] != me:
                    upto = mt[i] if i < nm else (mt[0] if mt else self.end)
                    if has_allocations(self._span(tt[j], upto)):
                        raise MergeConflictError(
                            f"Peer {format_peer_name(tp[j])} says it owns the IP range from "
                            f"{self._fmt(tt[j])}, which I think I own"
                        )
                take(tt[j], tp[j], tv[j], tf[j])
                updated, prev_owner = True, None
                j += 1
                continue
            # The same token on both sides.
            token = mt[i]
            take_theirs, version = self._same_token(i, tp[j], tv[j], tf[j], has_allocations)
            if take_theirs:
                take(tt[j], tp[j], tv[j], tf[j])
                updated, prev_owner = True, None
            else:
                take(token, mp[i], version, mf[i])
                if version == mv[i]:
                    prev_owner = mp[i]
            i += 1
            j += 1
        rt.extend(mt[i:])
        rp.extend(mp[i:])
        rv.extend(mv[i:])
        rf.extend(mf[i:])
        return (rt, rp, rv, rf), updated

    def _same_token(
        self, i: int, peer: int, version: int, free: int, has_allocations: HasAllocations
    ) -> tuple[bool, int]:
        """Their entry at our entry ``i``'s token: (take theirs?, our version if we keep ours)."""
        me, mine_peer, mine_version = self.me, self.peers[i], self.versions[i]
        if mine_version > version or (mine_version == version and mine_peer == peer):
            return False, mine_version
        if mine_version == version:
            if mine_peer == me and has_allocations(self.entry_ranges(i)):
                raise MergeConflictError(
                    f"Inconsistent entries for {self._fmt(self.tokens[i])}: owned by "
                    f"{format_peer_name(mine_peer)} but incoming message says "
                    f"{format_peer_name(peer)}"
                )
            return free > self.frees[i], mine_version  # tie-break on free; ties keep ours
        if mine_peer != me:
            return True, mine_version
        if peer == me:
            return False, version + 1  # a stale echo of our own entry: assert ours
        if not has_allocations(self.entry_ranges(i)):
            return True, mine_version  # repair: we hold nothing there, accept their owner
        raise MergeConflictError(
            f"Received update for IP range I own at {self._fmt(self.tokens[i])} "
            f"v{mine_version}: incoming message says owner {format_peer_name(peer)} v{version}"
        )

    def _merge_aligned(self, other: Ring, has_allocations: HasAllocations) -> bool:
        """Merge a ring with exactly our tokens: only entries that differ need a decision.

        Both rings are valid and have the same ranges, so no split, clamp or
        re-check is needed; this is the common case of gossip (free reports,
        transfers) and it runs mostly in C.
        """
        peers, versions, frees = list(self.peers), list(self.versions), list(self.frees)
        tp, tv, tf = other.peers, other.versions, other.frees
        differ = map(
            operator.or_,
            map(operator.ne, self.versions, tv),
            map(operator.ne, self.peers, tp),
        )
        updated = False
        for i in itertools.compress(range(len(peers)), differ):
            take_theirs, version = self._same_token(i, tp[i], tv[i], tf[i], has_allocations)
            if take_theirs:
                peers[i], versions[i], frees[i] = tp[i], tv[i], tf[i]
                updated = True
            else:
                versions[i] = version
        self.peers, self.versions, self.frees = peers, versions, frees
        return updated

    def _span(self, lo: int, hi: int) -> list[Range]:
        """``[lo, hi)`` going round the ring, split where it wraps."""
        if hi > lo:
            return [(lo, hi)]
        out = [(lo, self.end)]
        if hi > self.start:
            out.append((self.start, hi))
        return out

    # -- choosing peers --------------------------------------------------

    def donors_for(self, start: int, end: int, rng: Callable[[], float]) -> list[int]:
        """Peers to ask for space in ``[start, end)``, most promising first.

        Each peer with gossiped free space overlapping the range is weighted by
        its total free count times a uniform random draw, as Weave did.
        """
        totals: dict[int, int] = {}
        tokens, n = self.tokens, len(self.tokens)
        for i in range(n):
            if i + 1 < n and tokens[i + 1] - 1 < start:
                continue
            if tokens[i] >= end:
                break
            free, peer = self.frees[i], self.peers[i]
            if free == 0 or peer == self.me:
                continue
            totals[peer] = totals.get(peer, 0) + free
        weighted = sorted(((total * rng(), peer) for peer, total in totals.items()), reverse=True)
        return [peer for _, peer in weighted]

    def heir(self, is_known: Callable[[int], bool]) -> int:
        """First peer in token order, not us, that ``is_known``; unknown (0) if none."""
        for peer in self.peers:
            if peer != self.me and is_known(peer):
                return peer
        return UNKNOWN_PEER

    # -- printing --------------------------------------------------------

    def _fmt(self, addr: int) -> str:
        return format_address(addr, self.version)

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{self._fmt(t)} {format_peer_name(p)} free={f} v{v}"
            for t, p, v, f in zip(self.tokens, self.peers, self.versions, self.frees, strict=True)
        )
        return f"Ring({self._fmt(self.start)}-{self._fmt(self.end)}: {rows})"

"""What ``weavek status`` says about IPAM, in Weave's words and layout.

Pure functions of an allocator's state, so the HTTP API, the CLI and the
simulator print the same thing an operator of Weave would recognise.
"""

from __future__ import annotations

from .allocator import Allocator
from .peer import format_peer_name

__all__ = ["ipam_lines", "shares", "state_text"]

UNREACHABLE = "all IP ranges owned by unreachable peers - use 'rmpeer' if they are dead"


def shares(alloc: Allocator) -> dict[int, int]:
    """How many addresses of the universe each peer in the ring owns."""
    out: dict[int, int] = {}
    for peer, (lo, hi), _version in alloc.ring.range_info():
        out[peer] = out.get(peer, 0) + hi - lo
    return out


def _reachable(alloc: Allocator, peer: int) -> bool:
    return peer == alloc.me or peer in alloc.reachable


def state_text(alloc: Allocator) -> str:
    """The ``Status:`` line: why this peer can or cannot allocate right now."""
    ring = alloc.ring
    if not ring.empty:
        owned = [peer for peer, size in shares(alloc).items() if size > 0]
        if owned and not any(_reachable(alloc, peer) for peer in owned):
            return UNREACHABLE
        if alloc.pending_allocates:
            return "waiting for IP(s) to become available"
        return "ready"
    return alloc.strategy.status(alloc.awaiting)


def ipam_lines(alloc: Allocator) -> list[str]:
    """One line per peer in the ring, ours first; empty while there is no ring."""
    total = alloc.universe.size
    owned = shares(alloc)
    order = sorted(owned, key=lambda peer: (peer != alloc.me, peer))
    lines = []
    for peer in order:
        label = f"{format_peer_name(peer)}({alloc.nicknames.get(peer, '')})"
        pct = 100.0 * owned[peer] / total
        if peer == alloc.me:
            suffix = f"({len(alloc.ledger)} active)"
        elif not _reachable(alloc, peer):
            suffix = "- unreachable!"
        else:
            suffix = ""
        lines.append(f"{label:<37} {owned[peer]:>8} IPs ({pct:04.1f}% of total) {suffix}".rstrip())
    return lines

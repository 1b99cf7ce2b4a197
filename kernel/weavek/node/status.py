"""A running peer's status as one immutable record, for ``/status``, ``/report`` and ``/metrics``.

:func:`peer_status` reads the allocator, so it runs inside the actor (see
:meth:`weavek.node.peer.Peer.status`): the record is taken between two
batches, after the first one is durable, and can then be read and formatted
by any task at leisure. Status is asked for rarely, so computing it on
request costs less than publishing a fresh one after every batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from weavek.core.address import CIDR, format_address
from weavek.core.allocator import Allocator
from weavek.core.peer import format_peer_name
from weavek.core.status import ipam_lines, shares, state_text

__all__ = ["PeerStatus", "RingEntry", "ServiceHealth", "owned_map", "peer_status"]


@dataclass(frozen=True, slots=True)
class RingEntry:
    """One range of the ring, as ``/report`` lists it (wrapping entries split at zero)."""

    token: str
    size: int
    peer: str
    nickname: str
    is_known_peer: bool
    version: int


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """How one of the peer's plugins that touch the world is doing (its ``health()``)."""

    family: str
    """``store``, ``transport`` or ``runtime``."""
    name: str
    """The plugin's name (``weavedb``, ``tcp``, ``docker``)."""
    problem: str | None
    """None while it works; else one line saying what is wrong."""
    waiting: int = 0
    """For the store: changes the allocator made that are not durable yet."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """Everything the status routes show, taken at one instant."""

    name: str
    nickname: str
    state: str
    universe: CIDR
    default_subnet: CIDR
    ipam_lines: tuple[str, ...]
    active: int
    owned: int
    paxos: dict[str, Any] | None
    entries: tuple[RingEntry, ...]
    pending_claims: tuple[tuple[str, CIDR], ...]
    pending_allocates: tuple[tuple[str, CIDR], ...]
    unreachable_peers: int
    unreachable_ips: int
    services: tuple[ServiceHealth, ...] = ()
    """The store's, the transport's and the runtimes' health (filled in by the peer)."""

    @property
    def unreachable_percentage(self) -> float:
        return 100.0 * self.unreachable_ips / self.universe.size

    def with_services(self, services: tuple[ServiceHealth, ...]) -> PeerStatus:
        """This status with the services' health filled in."""
        return replace(self, services=services)


def peer_status(alloc: Allocator) -> PeerStatus:
    """The status of the peer that owns ``alloc``; call only from the actor's task."""
    me, reachable, nicknames = alloc.me, alloc.reachable, alloc.nicknames
    version = alloc.universe.version
    entries = tuple(
        RingEntry(
            token=format_address(lo, version),
            size=hi - lo,
            peer=format_peer_name(peer),
            nickname=nicknames.get(peer, ""),
            is_known_peer=peer == me or peer in reachable,
            version=entry_version,
        )
        for peer, (lo, hi), entry_version in alloc.ring.range_info()
    )
    owned = shares(alloc)
    unreachable = {p: n for p, n in owned.items() if p != me and p not in reachable and n > 0}
    return PeerStatus(
        name=format_peer_name(me),
        nickname=alloc.nickname,
        state=state_text(alloc),
        universe=alloc.universe,
        default_subnet=alloc.default_subnet,
        ipam_lines=tuple(ipam_lines(alloc)),
        active=len(alloc.ledger),
        owned=owned.get(me, 0),
        paxos=alloc.strategy.report() if alloc.ring.empty else None,
        entries=entries,
        pending_claims=tuple(alloc.pending_claims),
        pending_allocates=tuple(alloc.pending_allocates),
        unreachable_peers=len(unreachable),
        unreachable_ips=sum(unreachable.values()),
    )


def owned_map(alloc: Allocator) -> dict[str, list[str]]:
    """Ident -> its addresses as CIDR strings, each as allocated (``GET /ip``: the owned map)."""
    return {
        ident: [str(alloc.cidr_of(a)) for a in addrs] for ident, addrs, _ in alloc.ledger.items()
    }

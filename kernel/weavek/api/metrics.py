"""``/metrics``: Weave's IPAM metrics under their old names, plus weavek's own.

Each peer's API has its own :class:`CollectorRegistry` (never the process-wide
one: a test runs several peers in one process). The gauges are read from a
:class:`~weavek.node.status.PeerStatus` taken by the actor just before the
registry is rendered, so one scrape shows one consistent instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from weavek import __version__
from weavek.node.status import PeerStatus

if TYPE_CHECKING:
    from weavek.node.peer import Peer

__all__ = ["CONTENT_TYPE", "PeerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PeerMetrics(Collector):
    """The metrics of one peer, rendered on demand in the Prometheus text format."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._status: PeerStatus | None = None

    async def render(self) -> bytes:
        status = await self.peer.status()
        # Set and rendered with no await in between, so concurrent scrapes cannot mix.
        self._status = status
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        status = self._status
        if status is None:
            return
        yield _gauge("weave_ips", "Number of IPs by state.", status.active, state="local-used")
        yield _gauge("weave_max_ips", "Size of the IP range.", status.universe.size)
        yield _gauge(
            "weave_ipam_unreachable_count",
            "Number of peers in the ring that are unreachable.",
            status.unreachable_peers,
        )
        yield _gauge(
            "weave_ipam_unreachable_percentage",
            "Percentage of the IP range owned by unreachable peers.",
            status.unreachable_percentage,
        )
        yield _gauge(
            "weave_ipam_pending_allocates",
            "Allocations waiting for space.",
            len(status.pending_allocates),
        )
        yield _gauge(
            "weave_ipam_pending_claims", "Claims waiting for the ring.", len(status.pending_claims)
        )
        yield _gauge("weavek_owned_ips", "Addresses of the range this peer owns.", status.owned)
        yield _gauge(
            "weavek_info",
            "This peer's identity.",
            1,
            name=status.name,
            nickname=status.nickname,
            version=__version__,
        )
        stats = self.peer.stats
        yield _counter("weavek_actor_batches", "Batches the actor has run.", stats.batches)
        yield _counter("weavek_actor_events", "Events fed to the allocator.", stats.events)
        yield _counter(
            "weavek_store_applies",
            "Store writes (one per batch with storage effects: group commit).",
            stats.store_applies,
        )
        yield _counter("weavek_allocations", "Addresses allocated or claimed.", stats.allocations)
        yield _counter("weavek_releases", "Addresses released.", stats.releases)
        yield _gauge(
            "weavek_actor_largest_batch", "Most items one batch took.", stats.largest_batch
        )
        up = GaugeMetricFamily(
            "weavek_service_up",
            "1 while the store, the transport or a runtime works; 0 while it has a problem.",
            labels=["family", "name"],
        )
        waiting = GaugeMetricFamily(
            "weavek_store_unwritten",
            "Changes the allocator made that the store has not made durable yet.",
        )
        for service in status.services:
            up.add_metric([service.family, service.name], 0 if service.problem else 1)
            if service.family == "store":
                waiting.add_metric([], service.waiting)
        yield up
        yield waiting


def _gauge(metric: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(metric, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _counter(metric: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(metric, doc, value=value)

"""What a running peer is told at launch: every ``weavek launch`` flag, validated.

The CLI builds a :class:`PeerConfig` from flags and environment; tests build
one directly. Plugin choices stay as the text the user typed (``seed=::1``,
``weavedb=/tmp/x.db``); the node resolves them through the plugin manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from weavek.core.address import CIDR, parse_cidr

__all__ = ["DEFAULT_BRIDGE", "DEFAULT_HTTP", "DEFAULT_LISTEN", "DEFAULT_RANGE", "PeerConfig"]

DEFAULT_RANGE = "10.32.0.0/12"
DEFAULT_LISTEN = ("0.0.0.0", 6783)
DEFAULT_HTTP = ("127.0.0.1", 6784)
DEFAULT_BRIDGE = "weavek"


@dataclass(frozen=True)
class PeerConfig:
    """A peer's launch settings.

    :param name: our peer name; None picks the persisted one, else one derived
        from the machine (see the node).
    :param nickname: a human name for status output (default: the host name).
    :param peers: addresses (``host[:port]``) of peers to dial and re-dial.
    :param universe: ``--ipalloc-range``.
    :param default_subnet: ``--ipalloc-default-subnet`` (default: the universe).
    :param init: ``--init`` as typed, e.g. ``consensus=3``; None: ``consensus``.
    :param persist: ``--persist`` as typed, e.g. ``weavedb=/var/lib/weavek/w.db``.
    :param transport: ``--transport`` as typed.
    :param runtimes: ``--runtime`` values as typed (several may be active).
    :param listen: where the transport listens for peers.
    :param http: where the HTTP API listens.
    :param password: shared secret for authenticated, encrypted connections.
    :param tick: seconds between the allocator's clock ticks.
    :param retry_interval: seconds between retries of pending requests.
    :param gossip_interval: seconds between periodic gossip.
    :param grace_period: seconds a dead container keeps its addresses.
    :param bridge: the host bridge runtimes attach containers to.
    """

    name: int | None = None
    nickname: str = ""
    peers: tuple[str, ...] = ()
    universe: CIDR = field(default_factory=lambda: parse_cidr(DEFAULT_RANGE))
    default_subnet: CIDR | None = None
    init: str | None = None
    persist: str = "weavedb"
    transport: str = "tcp"
    runtimes: tuple[str, ...] = ()
    listen: tuple[str, int] = DEFAULT_LISTEN
    http: tuple[str, int] = DEFAULT_HTTP
    password: bytes | None = field(default=None, repr=False)
    tick: float = 0.5
    retry_interval: float = 5.0
    gossip_interval: float = 30.0
    grace_period: float = 30.0
    bridge: str = DEFAULT_BRIDGE

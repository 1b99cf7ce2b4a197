"""The anyio shell around the pure allocator: one actor task, plugins, timers, the HTTP API.

``async with Peer(config) as peer:`` runs a peer; :func:`run_peer` runs one
until cancelled (``weavek launch --foreground``). See
``docs/explanation/running-peer.md`` for how requests flow and why.
"""

from __future__ import annotations

from .config import PeerConfig
from .mailbox import PeerStoppedError
from .peer import Peer, run_peer
from .status import PeerStatus

__all__ = ["Peer", "PeerConfig", "PeerStatus", "PeerStoppedError", "run_peer"]

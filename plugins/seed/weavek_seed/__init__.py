"""weavek init strategy ``seed``: the ring is divided among a fixed list of peers.

``weavek launch --init seed=::1,::2,::3`` on every peer: each one builds the
same ring at start-up, with no network and no election, so the first
allocation never waits.
"""

from __future__ import annotations

from .strategy import SeedStrategy

__all__ = ["SeedStrategy"]

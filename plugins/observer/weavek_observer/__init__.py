"""weavek init strategy ``observer``: never vote, and receive the ring from peers that have it.

``weavek launch --init observer host3``: useful to add peers to a cluster
without adjusting anyone's peer count.
"""

from __future__ import annotations

from .strategy import ObserverStrategy

__all__ = ["ObserverStrategy"]

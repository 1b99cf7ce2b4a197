"""weavek: a distributed IP address manager for containers.

The kernel is :mod:`weavek.core` (pure: ring CRDT, space, allocator, codec);
everything that touches the world is a plugin found through the ``weavek``
entry-point group and called through the hooks in :mod:`weavek.hookspecs`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

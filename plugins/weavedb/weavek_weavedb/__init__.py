"""weavek store ``weavedb``: the peer's name, ring and allocations in a local SQLite file.

``weavek launch --persist weavedb[=PATH]``. Every batch of changes is one
SQLite transaction in WAL mode with ``synchronous=FULL``: once a write is
acknowledged it survives a ``kill -9`` and a power cut, and a file that
cannot be loaded stops the peer with :class:`WeavedbError` instead of being
overwritten.
"""

from __future__ import annotations

from .errors import WeavedbError
from .paths import default_path
from .store import WeavedbStore

__all__ = ["WeavedbError", "WeavedbStore", "default_path"]

"""weavek store ``volume``: weavedb's database kept in a Docker volume, as Weave kept its own.

``weavek launch --persist volume[=NAME][@DOCKER_HOST]``. The data lives in
``weavedb.sqlite`` inside the named volume ``NAME`` (default ``weavedb``),
held by a data-only container of the same name that is created if missing,
so it outlives the peer's own container. Reads and writes are
:mod:`weavek_weavedb`'s, with its crash safety.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import VolumeError
from .store import VolumeStore
from .target import DEFAULT_DOCKER_HOST, DEFAULT_NAME, Target, parse_target

if TYPE_CHECKING:
    from .engine import IMAGE, LABEL, MOUNT_PATH

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "DEFAULT_NAME",
    "IMAGE",
    "LABEL",
    "MOUNT_PATH",
    "Target",
    "VolumeError",
    "VolumeStore",
    "parse_target",
]


def __getattr__(name: str) -> Any:
    # The engine brings the Docker SDK, which weavek would otherwise import at every
    # start just to list this store.
    if name in ("IMAGE", "LABEL", "MOUNT_PATH"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

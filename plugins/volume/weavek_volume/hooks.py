"""The hooks weavek calls in this plugin (the ``weavek`` entry point)."""

from __future__ import annotations

from weavek.interfaces import Store
from weavek.plugin import hookimpl

from .store import VolumeStore


@hookimpl
def weavek_stores() -> list[type[Store]]:
    return [VolumeStore]

"""The hooks weavek calls in this plugin (the ``weavek`` entry point)."""

from __future__ import annotations

from weavek.interfaces import InitStrategy
from weavek.plugin import hookimpl

from .strategy import ConsensusStrategy


@hookimpl
def weavek_init_strategies() -> list[type[InitStrategy]]:
    return [ConsensusStrategy]

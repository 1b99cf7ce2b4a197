"""What a weavek plugin imports: the ``hookimpl`` marker.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose
names are hooks from :mod:`weavek.hookspecs`. A distribution makes it known
through the ``weavek`` entry-point group::

    [project.entry-points.weavek]
    seed = "weavek_seed.hooks"

and the module returns its classes from a registration hook::

    from weavek.interfaces import InitStrategy
    from weavek.plugin import hookimpl

    from .strategy import SeedStrategy


    @hookimpl
    def weavek_init_strategies() -> list[type[InitStrategy]]:
        return [SeedStrategy]

The base classes a plugin subclasses are in :mod:`weavek.interfaces`;
``docs/howto/write-a-plugin.md`` walks through a whole package.
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl"]

PROJECT = "weavek"
"""pluggy's project name and the entry-point group plugins are found in."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a function as the implementation of the weavek hook of the same name."""

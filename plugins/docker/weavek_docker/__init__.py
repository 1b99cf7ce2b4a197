"""weavek runtime ``docker``: attach Docker containers and release their addresses when they die."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime import DockerRuntime

__all__ = ["DockerRuntime"]


def __getattr__(name: str) -> Any:
    # Lazily: weavek imports this package to find its hooks at every start, and the
    # runtime brings the Docker SDK and pyroute2, which only a peer using it should pay for.
    if name == "DockerRuntime":
        from .runtime import DockerRuntime

        return DockerRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

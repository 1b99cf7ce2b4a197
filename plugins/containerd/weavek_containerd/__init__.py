"""weavek runtime ``containerd``: attach containerd containers and release their addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime import ContainerdRuntime

__all__ = ["ContainerdRuntime"]


def __getattr__(name: str) -> Any:
    # Lazily: weavek imports this package to find its hooks at every start, and the
    # runtime brings grpc, protobuf and pyroute2, which only a peer using it should pay for.
    if name == "ContainerdRuntime":
        from .runtime import ContainerdRuntime

        return ContainerdRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

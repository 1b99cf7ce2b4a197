"""weavek runtime ``containerd``: attach containerd containers and release their addresses."""

from .runtime import ContainerdRuntime

__all__ = ["ContainerdRuntime"]

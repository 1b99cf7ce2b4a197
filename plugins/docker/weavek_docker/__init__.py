"""weavek runtime ``docker``: attach Docker containers and release their addresses when they die."""

from .runtime import DockerRuntime

__all__ = ["DockerRuntime"]

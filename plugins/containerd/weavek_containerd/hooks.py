"""The hooks weavek calls in this plugin (the ``weavek`` entry point)."""

from __future__ import annotations

from weavek.interfaces import Runtime
from weavek.plugin import hookimpl


@hookimpl
def weavek_runtimes() -> list[type[Runtime]]:
    from .runtime import ContainerdRuntime  # grpc and protobuf are imported only when used

    return [ContainerdRuntime]

"""The hooks weavek calls in this plugin (the ``weavek`` entry point)."""

from __future__ import annotations

from weavek.interfaces import Transport
from weavek.plugin import hookimpl

from .transport import TcpTransport


@hookimpl
def weavek_transports() -> list[type[Transport]]:
    return [TcpTransport]

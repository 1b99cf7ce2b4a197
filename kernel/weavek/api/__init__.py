"""The HTTP API of a running peer: Weave's routes, JSON variants and ``/metrics``.

:func:`~weavek.api.app.build_app` makes the ASGI app for one
:class:`~weavek.node.peer.Peer`; :func:`~weavek.api.server.serve` runs it with
uvicorn inside the peer's task group. The peer starts it; nothing else needs to.
"""

from __future__ import annotations

from .app import build_app
from .server import serve

__all__ = ["build_app", "serve"]

"""weavek's ``tcp`` transport: Weave's gossip mesh over TCP, optionally encrypted."""

from __future__ import annotations

from .transport import TcpTransport

__all__ = ["TcpTransport"]

"""weavek store ``etcd``: the peer's name, ring and allocations in etcd, under the peer's name.

``weavek launch --name NAME --persist etcd=http://HOST:PORT[,http://HOST:PORT...]``.
Every batch of changes is one etcd transaction, guarded so that only the
latest process to claim the peer name can write; a peer started on another
machine with the same name loads what this one stored. See
docs/howto/persist-etcd.md.
"""

from __future__ import annotations

from .endpoints import EtcdTarget, parse_target
from .errors import EtcdDataError, EtcdStoreError, EtcdTakenOver
from .store import EtcdStore

__all__ = [
    "EtcdDataError",
    "EtcdStore",
    "EtcdStoreError",
    "EtcdTakenOver",
    "EtcdTarget",
    "parse_target",
]

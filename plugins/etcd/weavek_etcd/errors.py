"""The errors the store raises besides :class:`~weavek.interfaces.StoreUnavailable`."""

from __future__ import annotations

__all__ = ["EtcdDataError", "EtcdStoreError", "EtcdTakenOver"]


class EtcdStoreError(Exception):
    """The etcd store cannot go on; says where (the key prefix) and why. Stops the peer."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"etcd {where}: {reason}")
        self.where = where
        self.reason = reason


class EtcdDataError(EtcdStoreError, ValueError):
    """The keys under the peer's prefix are not this store's, are corrupt, or are newer.

    Raised instead of writing: a peer that cannot load its state must stop
    rather than start afresh over addresses it may still hold.
    """


class EtcdTakenOver(EtcdStoreError):
    """Another process claimed this peer's data (a peer launched elsewhere with the same name).

    This process's writes are refused from then on, so two processes never
    both write; it must stop.
    """

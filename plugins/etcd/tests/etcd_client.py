"""A plain etcd client for tests, to look at and spoil keys behind the store's back."""

from __future__ import annotations

import aetcd

from weavek.testing.etcd import EtcdCluster

__all__ = ["client"]


def client(cluster: EtcdCluster) -> aetcd.Client:
    """A plain aetcd client on the first running member, to look at keys behind the store."""
    member = next(m for m in cluster.members if m.running)
    return aetcd.Client("127.0.0.1", member.client_port, timeout=5)

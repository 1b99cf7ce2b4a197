"""The etcd store passes the whole shared store contract, against a real etcd."""

from __future__ import annotations

import random

import anyio.to_thread
import pytest
from etcd_client import client

from weavek.interfaces import Store
from weavek.testing.etcd import EtcdCluster
from weavek.testing.store_contract import ServiceStoreContract, StoreFactory, StoreSpec
from weavek_etcd import EtcdStore

PEER = 0x02_00_00_00_00_07
PREFIX = b"/weavek/02:00:00:00:00:07/"


class EtcdDamage:
    """Spoils the keys under the peer's prefix behind the store's back."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster

    async def foreign(self) -> None:
        async with client(self.cluster) as c:
            await c.put(PREFIX + b"config", b'{"owner": "another program"}')
            await c.put(PREFIX + b"meta", b"not ours")

    async def corrupt(self) -> None:
        async with client(self.cluster) as c:
            kvs = (await c.get_prefix(PREFIX)).kvs
            logs = [kv.key for kv in kvs if kv.key.startswith(PREFIX + b"log/")]
            pieces = [kv.key for kv in kvs if kv.key.startswith(PREFIX + b"ledger/")]
            target = (logs or pieces)[-1]
            await c.put(target, b"\x01" + random.Random(5).randbytes(300))

    async def raw(self) -> object:
        # The owner key is not data: claiming the prefix records who opened it.
        async with client(self.cluster) as c:
            kvs = (await c.get_prefix(PREFIX)).kvs
            return sorted((kv.key, kv.value) for kv in kvs if kv.key != PREFIX + b"owner")


class EtcdOutage:
    """The whole cluster stopped, then started again with its data."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster

    async def begin(self) -> None:
        await anyio.to_thread.run_sync(self.cluster.stop)

    async def end(self) -> None:
        await anyio.to_thread.run_sync(self.cluster.start)


class TestEtcd(ServiceStoreContract):
    compact_every = EtcdStore.compact_every

    @pytest.fixture
    def store_factory(self, etcd: EtcdCluster) -> StoreFactory:
        compact_every = self.compact_every

        class Store_(EtcdStore):
            pass

        Store_.compact_every = compact_every
        Store_.load_timeout = 1.0  # the contract's load during an outage must give up soon

        async def make() -> Store:
            return Store_(etcd.endpoints, peer=PEER)

        return make

    @pytest.fixture
    def store_spec(self, etcd: EtcdCluster) -> StoreSpec:
        settings = {"compact_every": 5}
        return StoreSpec("weavek_etcd:EtcdStore", etcd.endpoints, {"peer": PEER}, settings)

    @pytest.fixture
    def damage(self, etcd: EtcdCluster) -> EtcdDamage:
        return EtcdDamage(etcd)

    @pytest.fixture
    def outage(self, etcd: EtcdCluster) -> EtcdOutage:
        return EtcdOutage(etcd)


class TestEtcdCompactingOften(TestEtcd):
    """The same contract with a ledger written every third batch, so every test crosses one."""

    compact_every = 3

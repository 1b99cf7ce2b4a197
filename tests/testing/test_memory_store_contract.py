"""The in-memory reference store passes the shared store contract."""

from __future__ import annotations

import pytest

from weavek.interfaces import Store
from weavek.testing.store import AsyncMemoryStore, MemoryStore
from weavek.testing.store_contract import StoreContract, StoreFactory


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        backing = MemoryStore(0)

        async def make() -> Store:
            return AsyncMemoryStore(backing=backing)

        return make

"""weavedb passes every test of the shared store contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from weavek.interfaces import Store
from weavek.testing.store_contract import StoreContract, StoreFactory
from weavek_weavedb import WeavedbStore


class TestWeavedb(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        path = tmp_path / "state" / "weavedb.sqlite"

        async def make() -> Store:
            return WeavedbStore(str(path))

        return make

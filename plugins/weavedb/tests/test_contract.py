"""weavedb passes every test of the shared store contract, a real kill -9 and bad files included."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from weavek.interfaces import Store
from weavek.testing.store_contract import PersistentStoreContract, StoreFactory, StoreSpec
from weavek_weavedb import WeavedbStore


class FileDamage:
    """Spoils the database file the way another program or a bad disk would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _sql(self, *statements: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        for statement in statements:
            conn.execute(statement)
        conn.close()

    async def foreign(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sql("CREATE TABLE songs (title TEXT)", "INSERT INTO songs VALUES ('weave')")

    async def corrupt(self) -> None:
        self._sql(f"UPDATE ring SET blob = x'{random.Random(3).randbytes(64).hex()}'")

    async def raw(self) -> object:
        return self.path.read_bytes()


class TestWeavedb(PersistentStoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "state" / "weavedb.sqlite"

    @pytest.fixture
    def store_factory(self, path: Path) -> StoreFactory:
        async def make() -> Store:
            return WeavedbStore(str(path))

        return make

    @pytest.fixture
    def store_spec(self, path: Path) -> StoreSpec:
        return StoreSpec("weavek_weavedb:WeavedbStore", str(path))

    @pytest.fixture
    def damage(self, path: Path) -> FileDamage:
        return FileDamage(path)

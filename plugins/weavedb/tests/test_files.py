"""The file itself: where it goes, what is refused, and that a refused file is left untouched."""

from __future__ import annotations

import importlib.metadata
import os
import random
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from weavek.core.effects import Allocated, SaveRing
from weavek.interfaces import Store
from weavek.plugins import make_plugin_manager, registry, resolve
from weavek.testing.store_contract import PEER_A, make_ring, v4
from weavek_weavedb import WeavedbError, WeavedbStore, default_path
from weavek_weavedb.database import APPLICATION_ID, SCHEMA_VERSION
from weavek_weavedb.paths import ROOT_PATH, prepare, resolve_path

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "weavedb.sqlite"


async def fill(path: Path, n: int = 50) -> None:
    """A valid file holding a ring and ``n`` allocations."""
    async with WeavedbStore(str(path)) as store:
        assert await store.load() is None
        await store.apply(
            [
                SaveRing(make_ring(), PEER_A),
                *(Allocated(f"c{i}", v4(i + 1), True) for i in range(n)),
            ]
        )


def sql(path: Path, *statements: str) -> None:
    """Change a file behind the store's back, the way another program would."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


async def assert_refused(path: Path, match: str) -> None:
    """Opening and loading raises WeavedbError, writing is refused, and no byte changes."""
    before = path.read_bytes()
    with pytest.raises(WeavedbError, match=match) as caught:
        async with WeavedbStore(str(path)) as store:
            try:
                await store.load()
            finally:
                with pytest.raises(WeavedbError):
                    await store.apply([SaveRing(make_ring(), PEER_A)])
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before


# -- refused files -----------------------------------------------------------------


async def test_random_bytes_are_refused(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(16384))
    await assert_refused(path, "not a database")


async def test_a_sqlite_header_over_garbage_is_refused(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(2).randbytes(8192))
    await assert_refused(path, "weavedb")


async def test_a_truncated_file_is_refused(path: Path) -> None:
    await fill(path, 3000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    await assert_refused(path, "corrupt|malformed|unreadable")


async def test_another_programs_sqlite_file_is_refused(path: Path) -> None:
    sql(path, "CREATE TABLE songs (title TEXT)", "INSERT INTO songs VALUES ('weave')")
    await assert_refused(path, "not a weavedb file")


async def test_a_newer_schema_is_refused(path: Path) -> None:
    await fill(path)
    sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    await assert_refused(path, "newer weavek-weavedb")


async def test_a_ring_that_does_not_decode_is_refused(path: Path) -> None:
    await fill(path)
    sql(path, f"UPDATE ring SET blob = x'{random.Random(3).randbytes(64).hex()}'")
    await assert_refused(path, "stored ring does not decode")


async def test_a_holding_that_does_not_parse_is_refused(path: Path) -> None:
    await fill(path)
    sql(path, "INSERT INTO holdings VALUES ('c', '10.32.0.300', 12, 4, 1)")
    await assert_refused(path, "holding row")


async def test_a_holding_with_the_wrong_version_is_refused(path: Path) -> None:
    await fill(path)
    sql(path, "INSERT INTO holdings VALUES ('c', 'fd00::1', 12, 4, 1)")
    await assert_refused(path, "holding row")


async def test_a_peer_name_out_of_range_is_refused(path: Path) -> None:
    await fill(path)
    sql(path, f"UPDATE meta SET value = {1 << 48} WHERE key = 'peer'")
    await assert_refused(path, "not a peer name")


# -- accepted files ----------------------------------------------------------------


async def test_an_empty_file_is_set_up(path: Path) -> None:
    path.touch()
    async with WeavedbStore(str(path)) as store:
        assert await store.load() is None
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"


async def test_a_blank_sqlite_file_is_set_up(path: Path) -> None:
    # What a kill during the very first start can leave: WAL mode set, no schema yet.
    sql(path, "PRAGMA journal_mode = WAL")
    async with WeavedbStore(str(path)) as store:
        assert await store.load() is None
        await store.apply([Allocated("c", v4(1), True)])
    async with WeavedbStore(str(path)) as store:
        snap = await store.load()
        assert snap is not None and set(snap.owned) == {"c"}


async def test_the_file_is_wal_synchronous_full_and_identified(path: Path) -> None:
    async with WeavedbStore(str(path)) as store:
        assert await store.load() is None
        conn = store._db._conn  # type: ignore[union-attr]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    header = path.read_bytes()[:100]
    assert header[18:20] == b"\x02\x02"  # WAL read and write versions
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert int.from_bytes(header[60:64], "big") == SCHEMA_VERSION


HOLD_OPEN = """
import sys, anyio
from weavek_weavedb import WeavedbStore

async def main():
    async with WeavedbStore(sys.argv[1]) as store:
        await store.load()
        print("open", flush=True)
        sys.stdin.readline()  # until the test says so, or kills us

anyio.run(main)
"""


async def test_a_file_another_process_uses_is_refused_until_it_is_gone(path: Path) -> None:
    await fill(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(WeavedbError, match="in use by another process"):
            async with WeavedbStore(str(path)):
                pass
        holder.kill()  # a crash drops the lock with the process
        holder.wait(10)
        async with WeavedbStore(str(path)) as store:
            snap = await store.load()
            assert snap is not None and len(snap.owned) == 50
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


async def test_using_it_outside_async_with_is_an_error(path: Path) -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await WeavedbStore(str(path)).load()


# -- where the file goes ---------------------------------------------------------


def test_root_uses_var_lib() -> None:
    assert default_path({"XDG_STATE_HOME": "/x"}, euid=0) == ROOT_PATH
    assert str(ROOT_PATH) == "/var/lib/weavek/weavedb.sqlite"


def test_a_user_uses_xdg_state_home() -> None:
    expected = Path("/home/u/state/weavek/weavedb.sqlite")
    assert default_path({"XDG_STATE_HOME": "/home/u/state"}, euid=1000) == expected


def test_without_xdg_state_home_a_user_uses_local_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "state" / "weavek" / "weavedb.sqlite"
    assert default_path({}, euid=1000) == expected
    # The XDG spec: a relative XDG_STATE_HOME is invalid and ignored.
    assert default_path({"XDG_STATE_HOME": "rel/state"}, euid=1000) == expected


def test_the_argument_and_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert resolve_path(None) == tmp_path / "weavek" / "weavedb.sqlite"
    assert WeavedbStore(None).path == tmp_path / "weavek" / "weavedb.sqlite"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert WeavedbStore(None).path == ROOT_PATH
    assert WeavedbStore("/srv/w.db").path == Path("/srv/w.db")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert WeavedbStore("~/w.db").path == tmp_path / "w.db"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_missing_directories_are_private(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir(mode=0o755)
    target = tmp_path / "exists" / "a" / "b" / "weavedb.sqlite"
    prepare(target)
    for directory in (tmp_path / "exists" / "a", tmp_path / "exists" / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "exists").stat().st_mode) == 0o755  # not ours to change
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


async def test_a_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(WeavedbError, match="cannot create"):
        async with WeavedbStore(str(tmp_path / "file" / "weavedb.sqlite")):
            pass


# -- the plugin --------------------------------------------------------------------


def test_the_entry_point_finds_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)
    eps = importlib.metadata.entry_points(group="weavek", name="weavedb")
    assert [ep.value for ep in eps] == ["weavek_weavedb.hooks"]
    pm = make_plugin_manager()
    cls: type[Store] = resolve(pm, "store", "weavedb")
    assert cls is WeavedbStore
    assert registry(pm, "store")["weavedb"] is WeavedbStore

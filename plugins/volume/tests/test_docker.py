"""The Docker side, on a real dockerd: the data-only container, the volume, what they survive."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from weavek.core.effects import Allocated, SaveRing
from weavek.interfaces import Store, StoreUnavailable
from weavek.plugins import make_plugin_manager, resolve
from weavek.testing.daemons import BUSYBOX_IMAGE, DaemonError, Dockerd
from weavek.testing.store_contract import PEER_A, make_ring, state_of, v4
from weavek_volume import IMAGE, LABEL, VolumeError, VolumeStore, parse_target
from weavek_volume.engine import connect, find_volume, make_container
from weavek_weavedb import WeavedbError

pytestmark = pytest.mark.anyio

RING = make_ring()


def inspect(daemon: Dockerd, *args: str) -> Any:
    """What ``docker ... inspect`` says about one object (JSON, as Docker shapes it)."""
    return json.loads(daemon.docker(*args))[0]


def exists(daemon: Dockerd, kind: str, name: str) -> bool:
    try:
        daemon.docker(kind, "inspect", name)
    except DaemonError:
        return False
    return True


async def fill(arg: str, n: int = 20) -> None:
    async with VolumeStore(arg) as store:
        await store.load()
        await store.apply(
            [SaveRing(RING, PEER_A), *(Allocated(f"c{i}", v4(i), True) for i in range(n))]
        )


async def holdings(arg: str) -> set[str]:
    async with VolumeStore(arg) as store:
        snap = await store.load()
    state = state_of(snap)
    assert state is not None and state[:2] == (PEER_A, RING)
    return set(state[2])


async def test_first_start_makes_the_container_and_the_volume(
    dockerd: Dockerd, volume_name: str
) -> None:
    arg = f"{volume_name}@{dockerd.host}"
    async with VolumeStore(arg) as store:
        assert await store.load() is None
        await store.apply([SaveRing(RING, PEER_A), Allocated("c", v4(1), True)])
        database = store.database
    container = inspect(dockerd, "container", "inspect", volume_name)
    volume = inspect(dockerd, "volume", "inspect", volume_name)
    assert container["Config"]["Image"] == IMAGE
    assert container["Config"]["Labels"] == LABEL
    assert container["State"]["Status"] == "created"  # never started
    [mount] = container["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"]) == (
        "volume",
        volume_name,
        "/weavedb",
    )
    assert volume["Labels"] == LABEL and volume["Driver"] == "local"
    assert database == Path(volume["Mountpoint"]) / "weavedb.sqlite"
    assert database.read_bytes()[:16] == b"SQLite format 3\x00"
    assert await holdings(arg) == {"c"}


async def test_the_data_survives_the_peers_container(dockerd: Dockerd, volume_name: str) -> None:
    """A stand-in peer container with --volumes-from, removed with -v and made again."""
    arg = f"{volume_name}@{dockerd.host}"
    await fill(arg)
    peer = f"{volume_name}-peer"
    ls = ("sh", "-c", "ls /weavedb && sleep 3600")
    for _ in range(2):
        dockerd.run(peer, *ls, extra=("--volumes-from", volume_name))
        assert "weavedb.sqlite" in dockerd.docker("logs", peer)
        dockerd.docker("rm", "-f", "-v", peer)  # -v: the peer's own volumes go too
        assert await holdings(arg) == {f"c{i}" for i in range(20)}


async def test_the_data_survives_the_data_only_container(
    dockerd: Dockerd, volume_name: str
) -> None:
    """`docker rm -v weavedb` (or `docker container prune`) keeps the named volume."""
    arg = f"{volume_name}@{dockerd.host}"
    await fill(arg)
    dockerd.docker("rm", "-v", volume_name)
    assert exists(dockerd, "volume", volume_name)
    assert await holdings(arg) == {f"c{i}" for i in range(20)}
    assert exists(dockerd, "container", volume_name)  # made again over the same volume


async def test_docker_will_not_delete_the_volume_while_the_container_exists(
    dockerd: Dockerd, volume_name: str
) -> None:
    arg = f"{volume_name}@{dockerd.host}"
    await fill(arg)
    with pytest.raises(DaemonError, match="in use"):
        dockerd.docker("volume", "rm", volume_name)
    dockerd.docker("volume", "prune", "-f")
    assert await holdings(arg) == {f"c{i}" for i in range(20)}


async def test_a_container_that_is_not_ours_is_refused(dockerd: Dockerd, volume_name: str) -> None:
    # Weave Net's own weavedb container, say: nothing of it is used or changed.
    dockerd.docker("create", "--name", volume_name, "-v", "/weavedb", BUSYBOX_IMAGE, "true")
    before = inspect(dockerd, "container", "inspect", volume_name)
    with pytest.raises(VolumeError, match=f"volume {volume_name}: a container named .* not made"):
        async with VolumeStore(f"{volume_name}@{dockerd.host}"):
            pass
    assert inspect(dockerd, "container", "inspect", volume_name) == before
    assert not exists(dockerd, "volume", volume_name)


async def test_a_refused_database_leaves_no_container(dockerd: Dockerd, volume_name: str) -> None:
    dockerd.docker("volume", "create", volume_name)
    path = Path(inspect(dockerd, "volume", "inspect", volume_name)["Mountpoint"]) / "weavedb.sqlite"
    path.write_bytes(b"not a database, but someone's file" * 100)
    with pytest.raises(WeavedbError, match="not a database"):
        async with VolumeStore(f"{volume_name}@{dockerd.host}"):
            pass
    assert path.read_bytes() == b"not a database, but someone's file" * 100
    assert not exists(dockerd, "container", volume_name)


async def test_a_volume_with_mount_options_is_refused(dockerd: Dockerd, volume_name: str) -> None:
    # Mounted only while a container using it runs; ours never runs.
    dockerd.docker(
        "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", volume_name
    )  # fmt: skip
    with pytest.raises(VolumeError, match="plain local volume"):
        async with VolumeStore(f"{volume_name}@{dockerd.host}"):
            pass
    assert not exists(dockerd, "container", volume_name)


async def test_a_volume_made_by_the_user_is_used(dockerd: Dockerd, volume_name: str) -> None:
    dockerd.docker("volume", "create", volume_name)
    arg = f"{volume_name}@{dockerd.host}"
    await fill(arg)
    assert await holdings(arg) == {f"c{i}" for i in range(20)}
    assert exists(dockerd, "container", volume_name)


async def test_two_peers_starting_at_once_share_one_container(
    dockerd: Dockerd, volume_name: str
) -> None:
    # Both race to create the container; the loser (409 Conflict) uses the winner's. (Two
    # peers must not share one database, so this races the Docker calls alone.)
    target = parse_target(f"{volume_name}@{dockerd.host}")

    def start() -> None:
        client = connect(target)
        try:
            make_container(client, target, find_volume(client, target))
        finally:
            client.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, start)
        tg.start_soon(anyio.to_thread.run_sync, start)
    names = dockerd.docker("ps", "-a", "--filter", f"name=^{volume_name}$", "--format", "{{.ID}}")
    assert len(names.split()) == 1


async def test_a_volume_removed_under_a_running_peer_stops_it(
    dockerd: Dockerd, volume_name: str
) -> None:
    async with VolumeStore(f"{volume_name}@{dockerd.host}") as store:
        await store.load()
        await store.apply([Allocated("c", v4(1), True)])
        assert store.health() is None
        dockerd.docker("rm", volume_name)
        dockerd.docker("volume", "rm", volume_name)
        with pytest.raises(VolumeError, match="removed or replaced"):
            await store.apply([Allocated("d", v4(2), True)])
        health = store.health()
        assert health is not None and "removed" in health


# -- Docker down -------------------------------------------------------------------


async def test_no_daemon_at_start_is_store_unavailable(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(StoreUnavailable) as caught:
        async with VolumeStore(f"weavedb@{address}"):
            pass
    message = str(caught.value)
    assert message == (
        f"docker daemon unreachable at {address} (No such file or directory): "
        "the volume store needs it at start to find volume weavedb"
    )


async def test_docker_stopping_later_does_not_stop_the_store(
    dockerd_factory: Callable[..., Dockerd], volume_name: str
) -> None:
    """After start the database is a file on the host: writes stay durable without Docker."""
    daemon = dockerd_factory()
    arg = f"{volume_name}@{daemon.host}"
    async with VolumeStore(arg) as store:
        await store.load()
        daemon.stop()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            async with VolumeStore(arg):
                pass
        await store.apply([SaveRing(RING, PEER_A), Allocated("while-down", v4(7), True)])
        assert store.health() is None
    daemon.start()
    assert await holdings(arg) == {"while-down"}


# -- the plugin ----------------------------------------------------------------------


def test_the_entry_point_finds_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)
    eps = importlib.metadata.entry_points(group="weavek", name="volume")
    assert [ep.value for ep in eps] == ["weavek_volume.hooks"]
    cls: type[Store] = resolve(make_plugin_manager(), "store", "volume")
    assert cls is VolumeStore


async def test_using_it_outside_async_with_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await VolumeStore().load()


def test_reset_does_not_mistake_it_for_a_file_store() -> None:
    # `weavek reset` deletes `store.path` when it is a Path; ours is unknown until entered.
    assert not isinstance(getattr(VolumeStore(), "path", None), Path)
    assert VolumeStore().database is None

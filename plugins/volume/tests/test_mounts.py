"""Finding the volume's directory: on the host, or mounted into the peer's own container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek.testing.daemons import Dockerd
from weavek_volume import VolumeError
from weavek_volume.mounts import Mount, find_in_mountinfo, parse_mountinfo, visible_directory

# From a container run with `--volumes-from weavedb` on a host whose /var/lib/docker is its
# own filesystem (root /volumes/...), and one where it is on / (root is the whole path).
MOUNTINFO = r"""
1234 1000 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x
1235 1234 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1240 1234 8:17 /volumes/weavedb/_data /weavedb rw,relatime - ext4 /dev/sdb1 rw
1241 1234 8:1 /var/lib/docker/volumes/other/_data /data\040dir rw shared:7 - ext4 /dev/sda1 rw
1242 1234 8:1 /srv/_data /srv rw - ext4 /dev/sda1 rw
not a mount line
"""


def test_parse_mountinfo() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert Mount("/volumes/weavedb/_data", "/weavedb") in mounts
    assert Mount("/var/lib/docker/volumes/other/_data", "/data dir") in mounts  # \040 unescaped
    assert len(mounts) == 5


@pytest.mark.parametrize(
    ("host_path", "expected"),
    [
        ("/var/lib/docker/volumes/weavedb/_data", "/weavedb"),
        ("/mnt/docker/volumes/weavedb/_data", "/weavedb"),
        ("/var/lib/docker/volumes/other/_data", "/data dir"),
        ("/var/lib/docker/volumes/weavedb2/_data", None),
        ("/var/lib/docker/volumes/xweavedb/_data", None),
        ("/somewhere/else/_data", None),  # /srv/_data: same last name, other directory
        ("/_data", None),
    ],
)
def test_find_in_mountinfo(host_path: str, expected: str | None) -> None:
    found = find_in_mountinfo(parse_mountinfo(MOUNTINFO), host_path)
    assert found == (None if expected is None else Path(expected))


@given(st.text())
def test_any_mountinfo_text_parses(text: str) -> None:
    for mount in parse_mountinfo(text):
        assert mount.root.startswith("/") and mount.mount_point.startswith("/")
    find_in_mountinfo(parse_mountinfo(text), "/var/lib/docker/volumes/weavedb/_data")


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1))
def test_escaped_paths_come_back(name: str) -> None:
    escaped = "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in name)
    line = f"1 2 0:1 /v/{escaped}/_data /m/{escaped} rw - ext4 /dev/x rw"
    assert parse_mountinfo(line) == [Mount(f"/v/{name}/_data", f"/m/{name}")]


def test_a_directory_that_is_nowhere_is_a_clear_error(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    with pytest.raises(VolumeError, match="--volumes-from weavedb") as caught:
        visible_directory("weavedb", str(tmp_path / "volumes/weavedb/_data"), mountinfo)
    assert "\n" not in str(caught.value)


def test_the_host_path_is_used_when_it_is_there(tmp_path: Path) -> None:
    assert visible_directory("weavedb", str(tmp_path), tmp_path / "none") == tmp_path


# A peer in a container of its own: the volume mounted elsewhere (as `--volumes-from` does),
# and Docker's directory hidden, in a private mount namespace made with unshare(1).
PEER_IN_CONTAINER = """
import json, sys, anyio
from weavek.core.effects import Allocated
from weavek.testing.store_contract import v4
from weavek_volume import VolumeStore

async def main() -> None:
    async with VolumeStore(sys.argv[1]) as store:
        snap = await store.load()
        await store.apply([Allocated("from-inside", v4(2), True)])
        print(json.dumps([str(store.database), sorted(snap.owned) if snap else []]))

anyio.run(main)
"""


@pytest.mark.anyio
async def test_a_peer_in_a_container_finds_its_mount(
    dockerd: Dockerd, volume_name: str, tmp_path: Path
) -> None:
    from weavek.core.effects import Allocated
    from weavek.testing.store_contract import v4
    from weavek_volume import VolumeStore

    arg = f"{volume_name}@{dockerd.host}"
    async with VolumeStore(arg) as store:
        await store.load()
        await store.apply([Allocated("from-host", v4(1), True)])
        assert store.database is not None
        volumes = store.database.parent.parent.parent  # DATA_ROOT/volumes
    inside = tmp_path / "weavedb"
    inside.mkdir()
    script = tmp_path / "peer.py"
    script.write_text(PEER_IN_CONTAINER)
    shell = (
        f'mount --bind "{volumes}/{volume_name}/_data" "{inside}" && '
        f'mount -t tmpfs -o size=1m hidden "{volumes}" && '
        f'exec "{sys.executable}" "{script}" "{arg}"'
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    assert done.returncode == 0, done.stderr
    database, seen = json.loads(done.stdout)
    assert database == f"{inside}/weavedb.sqlite"
    assert seen == ["from-host"]
    async with VolumeStore(arg) as store:
        snap = await store.load()
    assert snap is not None and sorted(snap.owned) == ["from-host", "from-inside"]

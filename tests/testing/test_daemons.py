"""The daemon fixtures clean up after themselves, also when the test body fails.

Real daemons (root, Debian's containerd, runc and busybox-static): a failure
to start one fails these tests, as it fails every test that needs one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from weavek.testing import daemons


class Boom(Exception):
    pass


def _left_behind(base: Path) -> list[str]:
    found = [f"dir {base}"] if base.exists() else []
    found += [f"mount {point}" for point in daemons._mounts_under(base)]
    found += [f"process {pid}" for pid in daemons._pids_mentioning(f"{base}/")]
    return found


def test_containerd_and_its_tasks_are_gone_after_a_failing_body() -> None:
    with pytest.raises(Boom), daemons.containerd_daemon() as ctrd:
        base = ctrd.base
        pid = ctrd.run("left-running")
        assert Path(f"/proc/{pid}").exists()
        assert "hello" in ctrd.exec("left-running", "echo", "hello")
        raise Boom
    assert _left_behind(base) == []
    assert not Path(f"/proc/{pid}").exists(), "the container's process survived"


def test_dockerd_with_a_running_container_is_gone_after_a_failing_body() -> None:
    with pytest.raises(Boom), daemons.docker_daemon() as dockerd:
        base = dockerd.base
        dockerd.run("wkleft")
        pid = dockerd.pid("wkleft")
        raise Boom
    assert _left_behind(base) == []
    assert not Path(f"/proc/{pid}").exists(), "the container's process survived"


def test_the_oci_archive_is_reproducible(tmp_path: Path) -> None:
    rootfs = daemons.build_busybox_rootfs(tmp_path / "rootfs")
    first = daemons.write_oci_archive(rootfs, tmp_path / "a.tar").read_bytes()
    second = daemons.write_oci_archive(rootfs, tmp_path / "b.tar").read_bytes()
    assert first == second

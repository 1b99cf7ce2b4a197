"""``weavek launch --persist volume=NAME`` end to end: real peer processes and a real dockerd.

The peer finds the daemon through ``DOCKER_HOST``, as a user's would. Every
peer process is killed at the end of its test, passed or failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from weavek.testing.daemons import Dockerd
from weavek_volume import IMAGE

IDENTS = [f"{i:064x}" for i in range(1, 31)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Peer:
    """``python -m weavek launch --foreground --persist ARG``, in its own process group."""

    def __init__(self, workdir: Path, persist: str, docker_host: str) -> None:
        self.http = f"127.0.0.1:{free_port()}"
        self.argv = [sys.executable, "-m", "weavek", "launch", "--foreground"]
        self.argv += ["--name", "::a1", "--init", "seed=::a1", "--persist", persist]
        self.argv += ["--listen", f"127.0.0.1:{free_port()}", "--http-addr", self.http]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
        self.env |= {"WEAVEK_RUN_DIR": str(workdir), "DOCKER_HOST": docker_host}
        self.log = workdir / "peer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Peer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"peer exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{self.http}/status", timeout=2).status_code == 200:
                    return self
            assert time.monotonic() < deadline, f"peer did not answer:\n{self.tail()}"
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def call(self, method: str, path: str) -> str:
        answer = httpx.request(method, f"http://{self.http}{path}", timeout=30)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        return answer.text.strip()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(30)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    started: list[Peer] = []
    try:
        yield started
    finally:
        for peer in started:
            if peer.proc is not None and peer.proc.poll() is None:
                peer.stop(signal.SIGKILL)


def test_launch_keeps_allocations_in_the_volume(
    dockerd: Dockerd, volume_name: str, tmp_path: Path, peers: list[Peer]
) -> None:
    peer = Peer(tmp_path, f"volume={volume_name}", dockerd.host)
    peers.append(peer)
    peer.start()
    given = {ident: peer.call("POST", f"/ip/{ident}") for ident in IDENTS}
    assert len(set(given.values())) == len(IDENTS)
    assert peer.stop() == 0
    # The data-only container Weave users know, and the database in its volume.
    assert dockerd.docker("inspect", "-f", "{{.Config.Image}} {{.State.Status}}", volume_name) == (
        f"{IMAGE} created"
    )
    listing = dockerd.docker(
        "run", "--rm", "--volumes-from", volume_name, "wkbusybox", "ls", "/weavedb"
    )  # fmt: skip
    assert "weavedb.sqlite" in listing.split()
    # Restarted cleanly, then killed with -9 and started again: the same addresses each time.
    for how in (signal.SIGTERM, signal.SIGKILL):
        peer.start()
        assert {ident: peer.call("GET", f"/ip/{ident}") for ident in IDENTS} == given
        peer.call("POST", f"/ip/extra-{how}")  # acknowledged, so durable even under kill -9
        peer.stop(how)
    peer.start()
    assert peer.call("GET", f"/ip/extra-{signal.SIGKILL}")
    # `weavek reset` hands the ranges over, stops the peer and clears the database.
    reset = [sys.executable, "-m", "weavek", "reset", "--http-addr", peer.http]
    done = subprocess.run(reset, env=peer.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cleared the volume store" in done.stdout
    assert peer.proc is not None and peer.proc.wait(30) == 0
    peer.start()
    assert peer.call("GET", f"/ip/{IDENTS[0]}") == ""  # no addresses: forgotten
    assert peer.stop() == 0


def test_launch_without_docker_is_a_clear_error(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/no-docker.sock"
    peer = Peer(tmp_path, f"volume=weavedb@{address}", "unix:///unused")
    done = subprocess.run(
        peer.argv, env=peer.env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert f"docker daemon unreachable at {address} (No such file or directory)" in last, last

"""Real etcd servers for tests and benchmarks: one member or a cluster, on loopback.

Each member is a real ``etcd`` process (Debian's ``etcd-server``) listening on
free ports of 127.0.0.1, with its data directory in ``/dev/shm`` (tmpfs: fast,
and nothing left on disk), started with the short raft timings of
reference/test-environment.md §3 (``--heartbeat-interval 10
--election-timeout 50``) so a cluster is healthy in tens of milliseconds::

    with EtcdCluster(3) as etcd:
        store = EtcdStore(etcd.endpoints, peer=1)
        etcd.members[0].stop()      # a member down: the others keep quorum
        etcd.stop()                 # the whole cluster down
        etcd.start()                # back, same data

Leaving the ``with`` block kills every member and removes every data
directory, whatever happened. An etcd that cannot start raises
:class:`EtcdError` with the tail of its log: tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["EtcdCluster", "EtcdError", "EtcdMember", "etcd_binary", "free_port"]

START_TIMEOUT = 30.0
SHM = Path("/dev/shm")


class EtcdError(RuntimeError):
    """An etcd member could not be started, or did not become healthy."""


def etcd_binary() -> str:
    """The ``etcd`` executable; :class:`EtcdError` naming the package when it is missing."""
    found = shutil.which("etcd")
    if found is None:
        raise EtcdError("etcd is not installed (apt-get install etcd-server etcd-client)")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdMember:
    """One etcd process of a cluster; :meth:`stop`, :meth:`kill` and :meth:`start` it at will."""

    def __init__(self, name: str, data_dir: Path, initial_cluster: str, token: str) -> None:
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        self.initial_cluster = initial_cluster
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process (again: same ports, same data); does not wait for health."""
        if self.running:
            return
        argv = [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "10",
            "--election-timeout", "50",
            "--log-level", "warn",
            "--logger", "zap",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            log.write(f"---- starting {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self) -> bool:
        """True when ``/health`` says this member serves (it has a leader)."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as answer:
                return b'"true"' in answer.read()
        except (OSError, urllib.error.URLError):
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc is not None and self.proc.poll() is not None:
                raise EtcdError(f"etcd {self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise EtcdError(f"etcd {self.name} not healthy after {timeout:g} s:\n{self.tail()}")
            time.sleep(0.01)

    def stop(self) -> None:
        """A clean stop (SIGTERM), as an operator would; waits for the process to exit."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL)."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class EtcdCluster:
    """``size`` etcd members forming one cluster on loopback, started on ``with``.

    :param size: 1 for a single member, 3 for a cluster that survives one member down.
    :param base: where data directories go (``/dev/shm`` when it exists).
    """

    def __init__(self, size: int = 1, base: Path | None = None) -> None:
        if base is None:
            base = SHM if SHM.is_dir() else Path(tempfile.gettempdir())
        self.root = Path(tempfile.mkdtemp(prefix="weavek-etcd-", dir=base))
        token = self.root.name
        names = [f"m{i}" for i in range(size)]
        # Ports are chosen before the cluster string can be written; then every member gets it.
        self.members = [EtcdMember(n, self.root / n, "", token) for n in names]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated: the etcd store's ``--persist`` argument."""
        return ",".join(m.client_url for m in self.members)

    def start(self) -> None:
        """Start every member that is not running and wait until each one is healthy."""
        for member in self.members:
            member.start()
        for member in self.members:
            member.wait_healthy()

    def stop(self) -> None:
        """Stop every member (cleanly); the data stays for :meth:`start`."""
        for member in self.members:
            member.stop()

    def close(self) -> None:
        """Kill every member and remove every data directory."""
        for member in self.members:
            member.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

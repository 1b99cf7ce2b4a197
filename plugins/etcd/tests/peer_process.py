"""A real peer process with the etcd store: ``python -m weavek launch --foreground``.

Each :class:`PeerProcess` has its own run directory (a "machine": nothing of
it is shared with the next one but the peer name and etcd), loopback ports,
and a log file shown when it fails. :meth:`close` kills it, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from weavek.testing.etcd import free_port

__all__ = ["PeerProcess"]


class PeerProcess:
    """One peer named ``name`` persisting to ``endpoints``, in ``workdir/<machine>``."""

    def __init__(self, workdir: Path, machine: str, name: str, endpoints: str, *extra: str) -> None:
        self.dir = workdir / machine
        self.dir.mkdir(parents=True)
        self.log_path = self.dir / "peer.log"
        self.http_port = free_port()
        self.argv = [
            sys.executable, "-m", "weavek", "launch", "--foreground",
            "--name", name,
            "--nickname", machine,
            "--init", f"seed={name}",
            "--persist", f"etcd={endpoints}",
            "--listen", f"127.0.0.1:{free_port()}",
            "--http-addr", f"127.0.0.1:{self.http_port}",
            *extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
        env["WEAVEK_RUN_DIR"] = str(self.dir / "run")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}", limits=limits, timeout=60
        )

    def wait_ready(self, timeout: float = 60) -> PeerProcess:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the peer exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get("/status", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise AssertionError(f"the peer did not answer in {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def allocate(self, ident: str) -> httpx.Response:
        return self.client.post(f"/ip/{ident}")

    def lookup(self, ident: str) -> httpx.Response:
        return self.client.get(f"/ip/{ident}")

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """SIGKILL the process group (a machine that died) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(15)
        self.client.close()

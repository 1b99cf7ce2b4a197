"""Real peers as separate processes: ``python -m weavek launch --foreground``.

A :class:`PeerProcess` runs one peer in its own session (so the whole process
group can be killed), on loopback ports of the root namespace or inside a
test :class:`~hosts.Host`. Its output goes to a log file that survives
restarts (appended to), its HTTP API is reached with httpx directly on
loopback or through the host's Unix-socket relay, and :meth:`close` kills
whatever is still running. Restarting reuses the same arguments, so the peer
comes back from the same weavedb file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hosts import Host, die_with_parent

__all__ = [
    "PeerProcess",
    "Peers",
    "free_port",
    "owned_addresses",
    "ring_of",
    "wait_for_same_ring",
    "wait_until",
]

T = TypeVar("T")
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and its last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


RING_FIELDS = ("Token", "Size", "Peer", "Version")


def ring_of(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The ring itself in report entries: who owns what, at which version.

    Nicknames are left out: they are not part of the ring and travel separately.
    """
    return sorted(tuple(entry[f] for f in RING_FIELDS) for entry in entries)


def wait_for_same_ring(cluster: list[PeerProcess], timeout: float) -> list[dict[str, Any]]:
    """Wait until every peer reports the same ring entries; fail showing each peer's ring."""
    last: dict[str, list[dict[str, Any]]] = {}

    def same() -> bool:
        for peer in cluster:
            last[peer.nickname] = peer.entries()
        rings = [ring_of(ring) for ring in last.values()]
        return bool(rings[0]) and all(ring == rings[0] for ring in rings)

    try:
        wait_until(same, timeout, "the rings to converge")
    except AssertionError as exc:
        shown = "\n".join(f"  {nick}: {ring}" for nick, ring in last.items())
        raise AssertionError(f"{exc}\n{shown}") from None
    return cluster[0].entries()


class PeerProcess:
    """One ``weavek launch --foreground`` process and a client for its HTTP API."""

    def __init__(
        self,
        nickname: str,
        *,
        name: str,
        init: str,
        workdir: Path,
        peers: Iterable[str] = (),
        ipalloc_range: str | None = None,
        password: str | None = None,
        host: Host | None = None,
        extra: Iterable[str] = (),
    ) -> None:
        self.nickname = nickname
        self.name = name
        self.host = host
        self.workdir = workdir
        self.password = password
        if host is None:
            self.http_port = free_port()
            self.listen = f"127.0.0.1:{free_port()}"
        else:  # a namespace of its own: the usual ports, the host's address
            self.http_port = 6784
            self.listen = f"{host.address}:6783"
        self.db = workdir / f"{nickname}.db"
        self.log_path = workdir / f"{nickname}.log"
        self.run_dir = workdir / f"run-{nickname}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.args = [
            "--name", name,
            "--nickname", nickname,
            "--init", init,
            "--persist", f"weavedb={self.db}",
            "--listen", self.listen,
            "--http-addr", f"127.0.0.1:{self.http_port}",
        ]  # fmt: skip
        if ipalloc_range is not None:
            self.args += ["--ipalloc-range", ipalloc_range]
        self.args += [*extra, *peers]
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        where = self.host.ns if self.host else "loopback"
        return f"PeerProcess({self.nickname}, {self.name}, {where}, {self.listen})"

    # -- life cycle ----------------------------------------------------------

    def start(self) -> PeerProcess:
        argv = [sys.executable, "-m", "weavek", "launch", "--foreground", *self.args]
        if self.host is not None:
            argv = self.host.argv(*argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
        env["WEAVEK_RUN_DIR"] = str(self.run_dir)
        if self.password is not None:
            env["WEAVEK_PASSWORD"] = self.password
        with open(self.log_path, "ab") as log:
            log.write(f"---- test: starting {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> PeerProcess:
        """Wait until ``GET /status`` answers; fail at once (with the log) if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None, "not started"
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"{self} exited ({code}) before answering:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.get("/status", timeout=2).status_code == 200:
                    return self
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self} did not answer in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the peer's whole process group (no clean shutdown) and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(15)
        self._close_client()

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, as an operator would; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close_client()

    def restart(self) -> PeerProcess:
        """Start again with the same arguments (the same weavedb file) once it has exited."""
        if self.alive:
            self.kill()
        return self.start().wait_ready()

    def close(self) -> None:
        """Kill whatever is still running; safe to call twice."""
        if self.alive:
            self.kill()
        self._close_client()

    # -- HTTP ----------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=64)
            if self.host is None:
                base = f"http://127.0.0.1:{self.http_port}"
                self._client = httpx.Client(base_url=base, limits=limits, timeout=10)
            else:
                sock = self.host.relay(self.http_port)
                transport = httpx.HTTPTransport(uds=str(sock), limits=limits)
                self._client = httpx.Client(base_url="http://peer", transport=transport, timeout=10)
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(path, **kw)

    def json(self, path: str, **kw: Any) -> Any:
        response = self.get(path, headers={"Accept": "application/json"}, **kw)
        response.raise_for_status()
        return response.json()

    def status(self) -> str:
        """The ``Status:`` line of ``GET /status``."""
        text = self.get("/status", timeout=5).text
        for line in text.splitlines():
            label, _, value = line.partition(":")
            if label.strip() == "Status":
                return value.strip()
        raise AssertionError(f"no Status line in {text!r}")

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json("/report", timeout=5)
        return data

    def entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.report()["IPAM"]["Entries"]
        return entries

    def metrics(self) -> dict[str, float]:
        """Every sample of ``GET /metrics``, keyed by its name with labels."""
        out = {}
        for line in self.get("/metrics", timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def allocate(self, ident: str, timeout: float = 30) -> str:
        """``POST /ip/{ident}``: the address (``a.b.c.d/len``), failing on anything else."""
        response = self.post(f"/ip/{ident}", timeout=timeout)
        assert response.status_code == 200, (self, ident, response.status_code, response.text)
        assert response.text not in ("", "cancelled"), (self, ident, response.text)
        return response.text.strip()

    def allocate_many(
        self, idents: Iterable[str], *, workers: int = 16, timeout: float = 30
    ) -> dict[str, str]:
        """Allocate for every ident concurrently; ident -> address."""
        idents = list(idents)
        with ThreadPoolExecutor(workers) as pool:
            got = list(pool.map(lambda i: self.allocate(i, timeout), idents))
        return dict(zip(idents, got, strict=True))

    def owned(self) -> dict[str, list[str]]:
        """``GET /ip``: ident -> addresses allocated on this peer."""
        listed = self.get("/ip", timeout=5).json()["owned"] or []
        return {row["containerid"]: row["addrs"] for row in listed}

    # -- log -----------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"  | {line}" for line in self.log_text().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float = 20) -> str:
        """The first log line containing ``text``, waiting for it to appear."""

        def find() -> str:
            return next((line for line in self.log_text().splitlines() if text in line), "")

        try:
            return wait_until(find, timeout, f"{text!r} in the log of {self}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None


def owned_addresses(entries: list[dict[str, Any]], peer: str, universe: str) -> set[str]:
    """The allocatable addresses ``peer`` owns according to a report's ring entries.

    The universe's first and last addresses are never handed out (as in Weave).
    """
    net = ipaddress.ip_network(universe)
    base, size = int(net.network_address), net.num_addresses
    reserved = {base, base + size - 1}
    out = set()
    for entry in entries:
        if entry["Peer"] != peer:
            continue
        start = int(ipaddress.ip_address(entry["Token"]))
        for offset in range(entry["Size"]):
            addr = base + (start - base + offset) % size
            if addr not in reserved:
                out.add(str(ipaddress.ip_address(addr)))
    return out


class Peers:
    """Starts peer processes for one test and kills them all at its end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[PeerProcess] = []

    def start(
        self,
        nickname: str,
        *,
        name: str,
        init: str,
        peers: Iterable[str] = (),
        ipalloc_range: str | None = None,
        password: str | None = None,
        host: Host | None = None,
        extra: Iterable[str] = (),
        wait: bool = True,
    ) -> PeerProcess:
        peer = PeerProcess(
            nickname,
            name=name,
            init=init,
            workdir=self.workdir,
            peers=peers,
            ipalloc_range=ipalloc_range,
            password=password,
            host=host,
            extra=extra,
        )
        self.started.append(peer)
        peer.start()
        return peer.wait_ready() if wait else peer

    def close(self) -> None:
        for peer in self.started:
            peer.close()

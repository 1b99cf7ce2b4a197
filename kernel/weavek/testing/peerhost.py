"""A weavek peer on a test "host": a network namespace made for the test, for runtime tests.

:class:`PeerHost` runs ``python -m weavek launch --foreground`` with some
``--runtime`` inside a namespace of its own, so the peer's bridge, the veth
ends of the containers it attaches and its HTTP API (on that namespace's
``127.0.0.1``) never touch the root namespace; the daemons
(:mod:`weavek.testing.daemons`) stay in the root namespace, and the peer sees
their containers' pids because ``ip netns exec`` keeps the PID namespace.
This process reaches the API over TCP connections made inside the
namespace, so no packet leaves its loopback. :func:`link_hosts` joins two
hosts with a veth pair for multi-peer tests.

Namespaces are named like the daemons' directories (``wkd<pid>x<n>-host``), so
:func:`weavek.testing.daemons.remove_stale` deletes those of dead test runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from .daemons import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    DaemonError,
    _delete_netns,
    _new_workdir,
    _run,
    _tail,
)

__all__ = ["PeerHost", "PeerHosts", "link_hosts"]

_CLONE_NEWNET = 0x40000000


def _socket_in_netns(netns: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection made from inside namespace ``netns`` (by a thread that enters it).

    Only that short-lived thread changes namespace; the socket keeps the
    namespace it was made in, so this process talks to a peer's loopback API
    in a test host without any packet leaving that host's loopback.
    """
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def enter_and_connect() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            finally:
                os.close(fd)
            made.append(socket.create_connection(address, timeout=timeout))
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=enter_and_connect, name=f"connect-in-{netns}")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return made[0]


class _NetnsHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a connection made inside a network namespace."""

    def __init__(self, netns: str, port: int, timeout: float) -> None:
        super().__init__("127.0.0.1", port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        self.sock = _socket_in_netns(self.netns, (self.host, self.port), self.timeout or 30)


class PeerHost:
    """A network namespace ("host") running one ``weavek launch --foreground`` peer.

    The peer's bridge, the containers' host veth ends and its HTTP API (on
    the namespace's ``127.0.0.1``) live in the namespace; the daemons stay in
    the root namespace (the peer sees their container pids: ``ip netns exec``
    keeps the PID namespace). ``runtimes`` are ``--runtime`` values
    (``docker=unix:///...``). :meth:`close` kills the peer and deletes the
    namespace with everything in it. Container addresses default to
    ``10.99.8.0/22``; the host's own ``eth0`` has ``address``/24. Both exist
    only inside test namespaces. :func:`link_hosts` joins two hosts.
    """

    def __init__(
        self,
        *runtimes: str,
        name: str = "::1",
        seeds: str | None = None,
        ipalloc_range: str = "10.99.8.0/22",
        grace_period: float = 1.0,
        address: str = "10.99.0.1",
        listen: str = "127.0.0.1:6783",
        peers: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = _new_workdir()
        self.netns = f"{self.workdir.name}-host"
        self.name = name
        self.log_path = self.workdir / "peer.log"
        self.http_port = 6784
        self.argv = [
            sys.executable, "-m", "weavek", "launch", "--foreground",
            "--name", name,
            "--init", f"seed={seeds or name}",
            "--persist", f"weavedb={self.workdir / 'peer.db'}",
            "--ipalloc-range", ipalloc_range,
            "--listen", listen,
            "--http-addr", f"127.0.0.1:{self.http_port}",
            "--grace-period", str(grace_period),
            *(arg for runtime in runtimes for arg in ("--runtime", runtime)),
            *extra,
            *peers,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            _run(["ip", "netns", "add", self.netns], what="make the test host")
            self.ip("link", "set", "lo", "up")
            # A host has an IPv4 address besides loopback: without one, getaddrinfo's
            # AI_ADDRCONFIG refuses IPv4 as soon as the bridge brings IPv6 link-local
            # addresses (the peer then cannot listen on 127.0.0.1 after a restart). Both
            # ends of the veth stay in the namespace; the address exists only there.
            self.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
            self.ip("addr", "add", f"{address}/24", "dev", "eth0")
            self.ip("link", "set", "eth0", "up")
            self.ip("link", "set", "eth0p", "up")
        except BaseException:
            self.close()
            raise

    def ip(self, *args: str) -> str:
        """``ip ARGS`` inside the host namespace."""
        return _run(["ip", "-n", self.netns, *args], what=f"ip in {self.netns}")

    def run(self, *cmd: str, timeout: float = 60) -> str:
        """Run ``cmd`` inside the host namespace; its output."""
        return _run(["ip", "netns", "exec", self.netns, *cmd], what=self.netns, timeout=timeout)

    def start(self, timeout: float = START_TIMEOUT) -> PeerHost:
        """Start the peer and wait until ``GET /status`` answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
        env["WEAVEK_RUN_DIR"] = str(self.workdir / "run")
        with open(self.log_path, "ab") as log:
            log.write(f"---- test: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise DaemonError(f"the peer exited ({code}) at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.request("GET", "/status", timeout=2)[0] == 200:
                    return self
            if time.monotonic() > deadline:
                raise DaemonError(f"the peer did not answer in {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the peer (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def restart(self) -> PeerHost:
        self.kill()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def request(self, method: str, path: str, *, timeout: float = 30) -> tuple[int, str]:
        """One HTTP request to the peer's API: ``(status, body)``."""
        conn = _NetnsHTTPConnection(self.netns, self.http_port, timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace").strip()
        finally:
            conn.close()

    def attach(self, container: str, *targets: str) -> list[str]:
        """``POST /attach/{container}``: the CIDRs given; fails with the peer's answer."""
        query = "&".join(f"addr={target}" for target in targets)
        status, body = self.request("POST", f"/attach/{container}" + (f"?{query}" if query else ""))
        if status != 200:
            raise DaemonError(f"attach {container}: {status} {body}")
        return body.split()

    def lookup(self, ident: str) -> list[str]:
        """``GET /ip/{ident}``: its addresses, none when it has none."""
        status, body = self.request("GET", f"/ip/{ident}")
        return body.split() if status == 200 else []

    def status_text(self) -> str:
        return self.request("GET", "/status")[1]

    def close(self) -> None:
        """Kill the peer, delete the namespace (bridge, veth ends) and the directory."""
        with contextlib.suppress(Exception):
            self.kill()
        _delete_netns(self.netns)
        shutil.rmtree(self.workdir, ignore_errors=True)


class PeerHosts:
    """Starts :class:`PeerHost` s for one test (the ``peer_host`` fixture); :meth:`close`
    deletes them all."""

    def __init__(self) -> None:
        self.made: list[PeerHost] = []

    def __call__(self, *runtimes: str, start: bool = True, **options: Any) -> PeerHost:
        host = PeerHost(*runtimes, **options)
        self.made.append(host)
        return host.start() if start else host

    def close(self) -> None:
        for host in self.made:
            host.close()


def link_hosts(first: PeerHost, second: PeerHost, subnet: str = "10.99.1") -> tuple[str, str]:
    """A veth pair between two hosts with ``SUBNET.1/24`` and ``SUBNET.2/24``: those addresses.

    Created straight inside the two namespaces (the root namespace never sees it).
    """
    name = f"wk{second.workdir.name[-6:]}"
    _run(
        ["ip", "-n", first.netns, "link", "add", name, "type", "veth",
         "peer", "name", name, "netns", second.netns],
        what="link two test hosts",
    )  # fmt: skip
    addresses = (f"{subnet}.1", f"{subnet}.2")
    for host, address in zip((first, second), addresses, strict=True):
        host.ip("addr", "add", f"{address}/24", "dev", name)
        host.ip("link", "set", name, "up")
    return addresses

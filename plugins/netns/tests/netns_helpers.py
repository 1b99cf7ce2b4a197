"""Helpers for the netns tests: real network namespaces, and code run "on" a test host.

The plumbing makes its bridge and the host ends of veth pairs in the
namespace of the calling thread, so the tests never call it from the root
namespace: :func:`on_host` runs a coroutine in a thread that first entered a
test-made "host" namespace (threads it starts inherit that namespace).
Namespaces are named ``wknt<pid>x<n>-<tag>``; every one a test makes is
deleted when it ends, with whatever runs inside, and those of dead test
runs are removed at session start (``/run/netns`` survives reboots here).
Missing root or iproute2 fails the tests; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

PREFIX = "wknt"
_CLONE_NEWNET = 0x40000000
_counter = itertools.count()
T = TypeVar("T")


def ip(*args: str, check: bool = True) -> str:
    """``ip ARGS``; a failure raises with ip's own message."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def delete_netns(name: str) -> None:
    """Kill what runs inside ``name`` (it would keep the namespace alive), then delete it."""
    for pid in ip("netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)


def on_host(host: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` to completion in a new thread that lives in namespace ``host``."""
    out: list[T] = []
    failed: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{host}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {host} failed")
            finally:
                os.close(fd)
            out.append(anyio.run(make))
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=body, name=f"on-{host}")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return out[0]


def links(ns: str) -> list[str]:
    """Interface names in ``ns`` (``ip -br link``), without the ``@peer`` suffix."""
    return [line.split()[0].split("@")[0] for line in ip("-n", ns, "-br", "link").splitlines()]


def addresses(ns: str, ifname: str) -> list[str]:
    """Global addresses on ``ifname`` in ``ns``, as ``a.b.c.d/len``."""
    out = ip("-n", ns, "-o", "addr", "show", "dev", ifname, "scope", "global", check=False)
    return [line.split()[3] for line in out.splitlines()]


class Namespaces:
    """Named network namespaces for one test; :meth:`close` deletes all of them."""

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}x{next(_counter)}"
        self.made: list[str] = []

    def add(self, tag: str) -> str:
        name = f"{self.prefix}-{tag}"
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in reversed(self.made):
            delete_netns(name)
        self.made.clear()


class Processes:
    """Processes a test starts; :meth:`close` kills and reaps every one."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.started.append(proc)
        return proc

    def in_own_netns(self) -> subprocess.Popen[bytes]:
        """A process with a network namespace of its own (a container, as far as we care)."""
        return self.start("unshare", "--net", sys.executable, "-c", "import time; time.sleep(600)")

    def close(self) -> None:
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def wait_netns_of(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``unshare`` has moved ``pid`` into its own namespace (it unshares, then execs)."""
    import time

    deadline = time.monotonic() + timeout
    mine = os.stat("/proc/self/ns/net").st_ino
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino != mine:
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never got a network namespace of its own")


TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); print("ready", flush=True)
c, peer = s.accept(); data = c.recv(100); c.sendall(b"echo:" + data + b" from " + peer[0].encode())
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"hello"); print(c.recv(200).decode())
"""


def tcp_exchange(server_ns: str, server_addr: str, client_ns: str, port: int = 7100) -> str:
    """Start a one-shot TCP echo server in ``server_ns``, connect from ``client_ns``; the reply."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", TCP_SERVER, str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                client_ns,
                sys.executable,
                "-c",
                TCP_CLIENT,
                server_addr,
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert client.returncode == 0, client.stderr
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()

"""Test "hosts": network namespaces on a bridge, made with iproute2 and always torn down.

A :class:`Network` is one bridge in a namespace of its own and a few hosts,
each a namespace joined to the bridge by a veth pair, with ``eth0`` at
``10.99.0.1N/24``. Nothing is added to the root namespace: the veth ends are
created directly inside the namespaces, there is no default route anywhere,
and the test addresses exist only inside the namespaces. The test process
reaches a host's loopback services through :meth:`Host.relay` (a Unix socket
relayed to ``127.0.0.1`` inside the namespace), never by sending packets to
a test address from the root namespace.

Names carry the pytest process id and a counter (``wkit<pid>x<n>-h1``), so
parallel workers never collide; :func:`remove_stale` deletes namespaces left
by processes that are gone (``/run/netns`` survives reboots on these machines).

A partition is a bridge port set down (:meth:`Network.set_port`); a cut
between two hosts is an nft drop rule inside one of them (:meth:`Host.cut_from`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PREFIX",
    "Host",
    "Network",
    "check_netns_usable",
    "die_with_parent",
    "ip",
    "remove_stale",
]

PREFIX = "wkit"
SUBNET = "10.99.0"
RELAY = Path(__file__).with_name("relay.py")
PR_SET_PDEATHSIG = 1
_counter = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; on failure raise with its stderr (so a broken setup says why)."""
    done = subprocess.run(
        ["ip", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL if the test process dies without cleaning up."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def check_netns_usable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespace tests must run as root (they create netns, veths, a bridge)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install iproute2 nftables)"
    probe = f"{PREFIX}{os.getpid()}probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def remove_stale() -> None:
    """Delete test namespaces (and socket directories) whose creating process is gone."""
    listed = ip("netns", "list", check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        found = re.match(rf"{PREFIX}(\d+)", name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            _delete_netns(name)
    for path in Path("/tmp").glob(f"{PREFIX}*"):
        found = re.match(rf"{PREFIX}(\d+)x", path.name)
        if found and path.is_dir() and not Path(f"/proc/{found.group(1)}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _delete_netns(name: str) -> None:
    """Kill what runs inside ``name`` (it would keep the namespace alive), then delete it."""
    for pid in ip("netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)


@dataclass
class Host:
    """One network namespace on the bridge, with ``eth0`` at :attr:`address`."""

    ns: str
    index: int
    address: str
    port: str  # its veth end in the bridge namespace
    workdir: Path
    _relays: dict[int, tuple[subprocess.Popen[str], Path]] = field(default_factory=dict)
    _cut: bool = False

    def argv(self, *cmd: str) -> list[str]:
        """``cmd`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        done = subprocess.run(
            self.argv(*cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"[{self.ns}] {' '.join(cmd)} failed: {done.stderr.strip()}")
        return done.stdout

    def relay(self, port: int) -> Path:
        """A Unix socket whose connections reach ``127.0.0.1:port`` inside this namespace."""
        if port in self._relays:
            return self._relays[port][1]
        path = self.workdir / f"h{self.index}-{port}.sock"
        proc = subprocess.Popen(
            self.argv(sys.executable, str(RELAY), str(path), "127.0.0.1", str(port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._relays[port] = (proc, path)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the relay in {self.ns} did not start (exit {proc.poll()})")
        return path

    def cut_from(self, other: Host) -> None:
        """Drop every packet between this host and ``other`` (an nft table in our namespace)."""
        table = "inet wkitcut"
        if not self._cut:
            self.run("nft", "add", "table", *table.split())
            for chain, hook in (("out", "output"), ("in", "input")):
                spec = f"{{ type filter hook {hook} priority 0; }}"
                self.run("nft", "add", "chain", *table.split(), chain, spec)
            self._cut = True
        self.run("nft", "add", "rule", *table.split(), "out", "ip", "daddr", other.address, "drop")
        self.run("nft", "add", "rule", *table.split(), "in", "ip", "saddr", other.address, "drop")

    def close(self) -> None:
        for proc, path in self._relays.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
            path.unlink(missing_ok=True)
        self._relays.clear()


class Network:
    """A bridge namespace and ``size`` hosts on it; :meth:`close` deletes all of it."""

    def __init__(self, size: int) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}x{next(_counter)}"
        self.bridge_ns = f"{self.prefix}-br"
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix, dir="/tmp"))  # short socket paths
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        try:
            self._build(size)
        except BaseException:
            self.close()
            raise

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _build(self, size: int) -> None:
        self._add_ns(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for i in range(1, size + 1):
            ns, port = f"{self.prefix}-h{i}", f"port{i}"
            self._add_ns(ns)
            # Both ends are created in place: the root namespace never sees them.
            veth = ["type", "veth", "peer", "name", port, "netns", self.bridge_ns]
            ip("link", "add", "eth0", "netns", ns, *veth)
            ip("-n", self.bridge_ns, "link", "set", port, "master", "br0")
            ip("-n", self.bridge_ns, "link", "set", port, "up")
            address = f"{SUBNET}.{10 + i}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            self.hosts.append(Host(ns, i, address, port, self.workdir))

    def set_port(self, host: Host, *, up: bool) -> None:
        """Connect ``host`` to the bridge, or cut it off (its bridge port down)."""
        ip("-n", self.bridge_ns, "link", "set", host.port, "up" if up else "down")

    def close(self) -> None:
        """Stop the relays, delete every namespace (their veths and nft tables go with them)."""
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.close()
        for name in reversed(self._namespaces):
            _delete_netns(name)
        self._namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

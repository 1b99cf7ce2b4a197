"""weavek's running-peer benchmarks: real peer processes, each issue target beside the measure.

Run with ``tox -e bench`` (after ``benchmarks/run.py``) or ``python benchmarks/peer.py``.
Every peer is a real ``python -m weavek launch --foreground`` process with the
``weavedb`` store on disk and the ``tcp`` transport; clients speak raw HTTP/1.1
over keep-alive connections from one asyncio process, so that the load
generator is not what is measured. Nothing is pinned: the clients and the
peers share the machine's CPUs, which the output says. Each section cleans up
the processes (and network namespaces) it started.

``--quick`` shrinks the sizes (a smoke run of about a minute); ``--json FILE``
writes the figures for the record in ``benchmarks/results/``; ``--only a,b``
runs some sections (throughput, latency, donor, restart, netns, consensus).
``--baseline DIR`` measures each section twice in the same run: first with
peers importing ``weavek`` and ``weavek_weavedb`` from ``DIR`` (an export of
an older commit, put first on ``PYTHONPATH``), then with the working tree --
before and after a change, under the same load.
The netns section needs root (``ip netns``) and is skipped, said so, without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import ipaddress
import itertools
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Row, table  # benchmarks/run.py: the same rows and table as the kernel's

T = TypeVar("T")
PY = sys.executable
UNIVERSE = "10.32.0.0/12"
SECTIONS = ("throughput", "latency", "donor", "restart", "netns", "consensus")
NETNS_PREFIX = "wkbench-"
ENTRIES_PATH = "/report?format=" + quote("{{json .IPAM.Entries}}")
BASELINE: str | None = None
"""When set, peer processes import weavek from this directory first (``--baseline``)."""
_FIXTURES: dict[int, tuple[Path, str, str]] = {}
"""Restart fixtures already built in this run, by allocation count: (file, ident, address)."""


def peer_env(**extra: str) -> dict[str, str]:
    """The environment of a peer process: ours, plus the baseline's PYTHONPATH if measuring it."""
    env = dict(os.environ, **extra)
    if BASELINE is not None:
        env["PYTHONPATH"] = BASELINE
    return env


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- a lean HTTP/1.1 client ---------------------------------------------------------------


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection; requests are hand-written, replies barely parsed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, method: str, path: str) -> tuple[int, bytes]:
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"content-length:")
        size = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
        body = await self.reader.readexactly(size) if size else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


async def connect_when_up(port: int, deadline: float, host: str = "127.0.0.1") -> Conn:
    """A connection to ``port``, retrying every 5 ms while nothing listens there yet."""
    while True:
        try:
            return await Conn.open(port, host)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.005)


async def get_ok(port: int, path: str, timeout: float = 30.0) -> bytes:
    """GET ``path`` once the peer answers 200 (retrying connection failures and non-200s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await connect_when_up(port, deadline)
            try:
                status, body = await conn.request("GET", path)
            finally:
                conn.close()
            if status == 200:
                return body
        except (OSError, asyncio.IncompleteReadError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"GET {path} on port {port}: no 200 in {timeout} s")
        await asyncio.sleep(0.005)


def http_get(port: int, path: str, timeout: float = 30.0) -> bytes:
    return asyncio.run(get_ok(port, path, timeout))


# -- peer processes ---------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class PeerProcess:
    """``python -m weavek launch --foreground`` with its own directory, store and log."""

    name: str
    workdir: Path
    init: str
    listen: str
    http: int
    peers: Sequence[str] = ()
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def db(self) -> Path:
        return self.workdir / "weavedb.sqlite"

    def command(self) -> list[str]:
        cmd = [PY, "-m", "weavek", "launch", "--foreground", "--name", self.name]
        cmd += ["--nickname", f"bench{self.name.replace(':', '')}", "--init", self.init]
        cmd += ["--persist", f"weavedb={self.db}", "--listen", self.listen]
        cmd += ["--http-addr", f"127.0.0.1:{self.http}", *self.peers]
        if self.netns is not None:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return cmd

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = peer_env(WEAVEK_RUN_DIR=str(self.workdir), WEAVEK_LOG_LEVEL="WARNING")
        logfile = open(self.workdir / "peer.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile, env=env
        )
        logfile.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.workdir / "peer.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"peer {self.name} exited ({self.proc.returncode}):\n{tail}")

    def proc_status(self) -> dict[str, float]:
        """VmRSS and VmHWM of the peer process, in bytes, and its CPU seconds so far."""
        assert self.proc is not None
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        # utime and stime: a figure that depends less on what else the machine is running.
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out


@contextlib.contextmanager
def running(peers: Sequence[PeerProcess]) -> Iterator[Sequence[PeerProcess]]:
    try:
        for peer in peers:
            peer.start()
        yield peers
    finally:
        for peer in peers:
            peer.stop()


def loopback_peer(workdir: Path, name: str, init: str, peers: Sequence[str] = ()) -> PeerProcess:
    listen, http = free_ports(2)
    return PeerProcess(name, workdir, init, f"127.0.0.1:{listen}", http, peers)


def wait_ready(peer: PeerProcess, timeout: float = 30.0) -> None:
    try:
        http_get(peer.http, "/status", timeout)
    except TimeoutError:
        peer.check_alive()
        raise


def idents(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"{rnd.getrandbits(256):064x}" for _ in range(n)]


def metrics(port: int) -> dict[str, float]:
    out = {}
    for line in http_get(port, "/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


# -- 1. durable throughput --------------------------------------------------------------


async def allocate_many(port: int, names: Sequence[str], clients: int) -> dict[int, float]:
    """Allocate ``names`` over ``clients`` connections; perf_counter at every 1,000 done."""
    counter = itertools.count()
    done = 0
    stamps: dict[int, float] = {}

    async def client() -> None:
        nonlocal done
        conn = await Conn.open(port)
        try:
            while (i := next(counter)) < len(names):
                status, body = await conn.request("POST", f"/ip/{names[i]}")
                if status != 200 or not body.startswith(b"10."):
                    raise HttpError(f"allocation {i}: {status} {body!r}")
                done += 1
                if done % 1000 == 0:
                    stamps[done] = time.perf_counter()
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return stamps


def throughput(tmp: Path, total: int, clients: int, rounds: int) -> dict[str, Any]:
    """Rates of durable allocations on a fresh peer, by windows of live allocations."""
    first, last = (1000, 5000), (total - 5000, total)
    results: list[dict[str, Any]] = []
    for r in range(rounds):
        peer = loopback_peer(tmp / f"tput{r}", "::a1", "seed=::a1")
        with running([peer]):
            wait_ready(peer)
            names = idents(total, r)
            stamps = asyncio.run(allocate_many(peer.http, names, clients))
            m = metrics(peer.http)

        def rate(a: int, b: int, stamps: dict[int, float] = stamps) -> float:
            return (b - a) / (stamps[b] - stamps[a])

        windows = {
            f"{a // 1000}k-{b // 1000}k": rate(max(a, 1000), b)
            for a, b in zip(range(0, total, 10_000), range(10_000, total + 1, 10_000), strict=True)
        }
        assert m['weave_ips{state="local-used"}'] == total, m
        results.append(
            {
                "overall": rate(1000, total),
                "first": rate(*first),
                "last": rate(*last),
                "windows": windows,
                "allocations_per_store_apply": m["weavek_allocations_total"]
                / m["weavek_store_applies_total"],
            }
        )
        log(f"    round {r}: {results[-1]['overall']:.0f}/s; windows {windows}")
    return {
        "overall": statistics.median(x["overall"] for x in results),
        "first": statistics.median(x["first"] for x in results),
        "last": statistics.median(x["last"] for x in results),
        "first_window": f"{first[0] // 1000}k-{first[1] // 1000}k",
        "last_window": f"{last[0] // 1000}k-{last[1] // 1000}k",
        "rounds": results,
    }


# -- 2. latency, one client ---------------------------------------------------------------


async def sequential(port: int, paths: Sequence[str], warmup: int) -> list[float]:
    conn = await Conn.open(port)
    times = []
    try:
        for k, path in enumerate(paths):
            t0 = time.perf_counter()
            status, body = await conn.request("POST", path)
            t1 = time.perf_counter()
            if status != 200 or not body.startswith(b"10."):
                raise HttpError(f"{path}: {status} {body!r}")
            if k >= warmup:
                times.append(t1 - t0)
    finally:
        conn.close()
    return times


def percentile(data: Sequence[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(tmp: Path, n: int, warmup: int) -> dict[str, Any]:
    peer = loopback_peer(tmp / "latency", "::a2", "seed=::a2")
    with running([peer]):
        wait_ready(peer)
        paths = [f"/ip/{name}" for name in idents(n + warmup, 7)]
        times = asyncio.run(sequential(peer.http, paths, warmup))
    return {
        "p50": statistics.median(times),
        "p99": percentile(times, 0.99),
        "max": max(times),
        "samples": len(times),
    }


# -- 3. latency when the space comes from a donor ---------------------------------------


def donor_subnets(n: int) -> list[str]:
    """Distinct /24s spread over the /12, so every one needs a donation of its own."""
    base = int(ipaddress.ip_address("10.32.0.0"))
    stride = 4096 // n
    return [str(ipaddress.ip_address(base + 256 * stride * k)) + "/24" for k in range(n)]


def donor(tmp: Path, n: int) -> dict[str, Any]:
    a = loopback_peer(tmp / "donor-a", "::d1", "seed=::d1")
    b = loopback_peer(tmp / "donor-b", "::d2", "seed=::d1", peers=[a.listen])
    subnets = donor_subnets(n + 1)

    async def measure() -> tuple[list[float], list[float], int]:
        conn = await Conn.open(b.http)
        needed, later, granted = [], [], 0
        try:
            for k, net in enumerate(subnets):
                before = await get_ok(b.http, "/metrics")
                t0 = time.perf_counter()
                status, body = await conn.request("POST", f"/ip/d{k}/{net}")
                t1 = time.perf_counter()
                if status != 200 or not body.startswith(b"10."):
                    raise HttpError(f"donor {net}: {status} {body!r}")
                # A second allocation in the same subnet: the space is local by now.
                t2 = time.perf_counter()
                status, body = await conn.request("POST", f"/ip/e{k}/{net}")
                t3 = time.perf_counter()
                if status != 200:
                    raise HttpError(f"donor {net}: {status} {body!r}")
                after = await get_ok(b.http, "/metrics")
                if k == 0:
                    continue  # the first also waits for B to connect to A
                owned_before = _metric(before, "weavek_owned_ips")
                if _metric(after, "weavek_owned_ips") > owned_before:
                    granted += 1
                needed.append(t1 - t0)
                later.append(t3 - t2)
        finally:
            conn.close()
        return needed, later, granted

    with running([a, b]):
        wait_ready(a)
        wait_ready(b)
        needed, later, granted = asyncio.run(measure())
    return {
        "p50": statistics.median(needed),
        "p90": percentile(needed, 0.9),
        "samples": len(needed),
        "granted": granted,
        "local_p50": statistics.median(later),
    }


def _metric(text: bytes, name: str) -> float:
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


# -- 4. restart with 1M allocations ----------------------------------------------------


def build_fixture(path: Path, name: str, count: int) -> tuple[str, str]:
    """A weavedb file holding ``count`` allocations, written by the real allocator and store.

    The real ``Allocator`` (seed strategy from the ``seed`` plugin, invariant
    checks on, as in the peer) takes ``count`` allocation requests in this
    process; every storage effect it produces goes, in order, to the real
    ``weavedb`` store in batches of 50,000 (one transaction each). Returns
    the first ident and its address, for the lookup after the restart.
    """
    import anyio

    from weavek.core.address import parse_cidr
    from weavek.core.allocator import Allocator
    from weavek.core.events import AllocateRequested
    from weavek.core.peer import parse_peer_name
    from weavek.node.actor import STORAGE_EFFECTS
    from weavek.plugins import make_plugin_manager, resolve

    pm = make_plugin_manager()
    me = parse_peer_name(name)
    alloc = Allocator(
        me=me,
        nickname="fixture",
        universe=parse_cidr(UNIVERSE),
        strategy=resolve(pm, "init", "seed")(name, me=me, peers_named=0),
        rng=random.Random(1).random,
    )
    storage = [e for e in alloc.start(0.0) if isinstance(e, STORAGE_EFFECTS)]
    names = idents(count, 42)
    first = ""
    for i, ident in enumerate(names):
        for effect in alloc.handle(AllocateRequested(i, ident)):
            if isinstance(effect, STORAGE_EFFECTS):
                storage.append(effect)
                if i == 0:
                    first = str(getattr(effect, "cidr", ""))
    assert len(alloc.ledger) == count, "the fixture did not get every allocation"
    store_cls = resolve(pm, "store", "weavedb")

    async def write() -> None:
        async with store_cls(str(path)) as store:
            await store.load()
            for k in range(0, len(storage), 50_000):
                await store.apply(storage[k : k + 50_000])

    anyio.run(write)
    return names[0], first


def restart(tmp: Path, count: int, rounds: int, keep: Path) -> dict[str, Any]:
    """Launch a peer on a file of ``count`` allocations (built once per run, under ``keep``)."""
    name = "::f1"
    peer = loopback_peer(tmp / "restart", name, f"seed={name}")
    peer.workdir.mkdir(parents=True)
    built = 0.0
    if count not in _FIXTURES:
        t0 = time.perf_counter()
        path = keep / f"fixture-{count}.sqlite"
        ident, address = build_fixture(path, name, count)
        gc.collect()
        built = time.perf_counter() - t0
        _FIXTURES[count] = (path, ident, address)
    path, ident, address = _FIXTURES[count]
    shutil.copyfile(path, peer.db)
    size = peer.db.stat().st_size
    log(f"    fixture: {count:,} allocations, {size / 1e6:.0f} MB, built in {built:.1f} s")

    async def until_serving() -> float:
        await get_ok(peer.http, "/status", 600)
        body = await get_ok(peer.http, f"/ip/{ident}", 600)
        if body.decode().split() != [address]:
            raise HttpError(f"lookup after restart: {body!r}, expected {address}")
        return time.perf_counter()

    times, rss, hwm, cpu = [], [], [], []
    for _ in range(rounds):
        with running([peer]):
            ready = asyncio.run(until_serving())
            times.append(ready - peer.started_at)
            status = peer.proc_status()
            rss.append(status["VmRSS"])
            hwm.append(status["VmHWM"])
            cpu.append(status["cpu_s"])
        log(
            f"    restart: {times[-1]:.2f} s, RSS {rss[-1] / 1e6:.0f} MB, "
            f"peak {hwm[-1] / 1e6:.0f} MB, CPU {cpu[-1]:.2f} s"
        )
        if times[-1] > 10:
            break  # far below the floor: more rounds would only make the run long
    after_gc = inproc_rss(peer, name)
    log(f"    in-process Peer on the same file: {after_gc}")
    return {
        "allocations": count,
        "file_mb": size / 1e6,
        "fixture_build_s": built,
        "ready_s": statistics.median(times),
        "ready_rounds_s": times,
        "rss_mb": statistics.median(rss) / 1e6,
        "hwm_mb": statistics.median(hwm) / 1e6,
        "cpu_s": statistics.median(cpu),
        "inproc": after_gc,
    }


def inproc_rss(peer: PeerProcess, name: str) -> dict[str, float]:
    """The same file loaded by ``Peer`` in a fresh process: RSS when serving, and after a GC."""
    out = subprocess.run(
        [PY, __file__, "_inproc", str(peer.db), name],
        check=True,
        capture_output=True,
        text=True,
        env=peer_env(WEAVEK_RUN_DIR=str(peer.workdir)),
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def _inproc_main(db: str, name: str) -> None:
    import anyio

    from weavek.core.peer import parse_peer_name
    from weavek.node import Peer, PeerConfig

    def rss() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
        return 0.0

    async def main() -> None:
        config = PeerConfig(
            name=parse_peer_name(name),
            nickname="inproc",
            init=f"seed={name}",
            persist=f"weavedb={db}",
            listen=("127.0.0.1", 0),
            http=("127.0.0.1", 0),
        )
        t0 = time.perf_counter()
        async with Peer(config) as peer:
            status = await peer.status()
            ready = time.perf_counter() - t0
            before = rss()
            gc.collect()
            after = rss()
            print(json.dumps({"start_s": ready, "rss_mb": before, "rss_after_gc_mb": after}))
            del status

    anyio.run(main)


# -- 5. a grant seen by 5 peers in network namespaces -----------------------------------


def _agent_main(port: int) -> None:
    """Inside a netns: poll the peer's ring entries, and allocate on command.

    stdout lines: ``READY t``, ``E t entries-json`` whenever the entries change,
    ``S t`` and ``R t status body`` around an allocation; stdin: ``A path``.
    Every ``t`` is ``time.monotonic()``, one clock for all namespaces.
    """

    def say(*parts: object) -> None:
        sys.stdout.write(" ".join(map(str, parts)) + "\n")
        sys.stdout.flush()

    async def main() -> None:
        await get_ok(port, "/status", 60)
        say("READY", time.monotonic())
        poll = await Conn.open(port)
        act = await Conn.open(port)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def commands() -> None:
            while line := await reader.readline():
                cmd, _, path = line.decode().strip().partition(" ")
                if cmd == "A":
                    say("S", time.monotonic())
                    status, body = await act.request("POST", path)
                    say("R", time.monotonic(), status, body.decode().strip() or "-")

        async def watch() -> None:
            seen = b""
            while True:
                status, body = await poll.request("GET", ENTRIES_PATH)
                now = time.monotonic()
                if status == 200 and body != seen:
                    seen = body
                    say("E", now, body.decode().replace("\n", ""))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await commands()
        watcher.cancel()

    asyncio.run(main())


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


def netns_cleanup(count: int) -> None:
    for name in [f"{NETNS_PREFIX}br"] + [f"{NETNS_PREFIX}h{i}" for i in range(1, count + 1)]:
        if Path("/run/netns", name).exists():
            _ip("netns", "del", name, check=False)


def netns_setup(count: int) -> None:
    """A bridge in its own netns and ``count`` hosts, 10.99.0.11.. on it (test-env §2a)."""
    br = f"{NETNS_PREFIX}br"
    _ip("netns", "add", br)
    _ip("-n", br, "link", "add", "br0", "type", "bridge")
    _ip("-n", br, "link", "set", "br0", "up")
    for i in range(1, count + 1):
        host = f"{NETNS_PREFIX}h{i}"
        _ip("netns", "add", host)
        _ip("link", "add", "veth-wkb", "netns", host, "type", "veth", "peer", "name", f"port{i}")
        _ip("link", "set", f"port{i}", "netns", br)
        _ip("-n", br, "link", "set", f"port{i}", "master", "br0")
        _ip("-n", br, "link", "set", f"port{i}", "up")
        _ip("-n", host, "link", "set", "lo", "up")
        _ip("-n", host, "link", "set", "veth-wkb", "name", "eth0")
        _ip("-n", host, "addr", "add", f"10.99.0.{10 + i}/24", "dev", "eth0")
        _ip("-n", host, "link", "set", "eth0", "up")


@dataclass
class Agent:
    proc: asyncio.subprocess.Process
    lines: list[tuple[str, float, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            kind, t, *rest = line.decode().rstrip("\n").split(" ", 2)
            self.lines.append((kind, float(t), " ".join(rest)))
            self.changed.set()

    async def wait_for(
        self, pred: Callable[[tuple[str, float, str]], bool], timeout: float, start: int = 0
    ) -> tuple[str, float, str]:
        """The first line from index ``start`` on that satisfies ``pred``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[start:]:
                if pred(line):
                    return line
            start = len(self.lines)
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("agent: no such line")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")


def owns_in(entries_json: str, owner: str, net: ipaddress.IPv4Network) -> bool:
    """Whether ``owner`` holds a range overlapping ``net`` in these ring entries."""
    lo, hi = int(net.network_address), int(net.broadcast_address)
    for entry in json.loads(entries_json):
        start = int(ipaddress.ip_address(entry["Token"]))
        if entry["Peer"] == owner and start <= hi and start + entry["Size"] > lo:
            return True
    return False


def netns_grants(tmp: Path, grants: int, count: int = 5) -> dict[str, Any]:
    """Grants from peer 1 (the only seed) to peers 2..5; when does every peer's ring show it."""
    names = [f"00:00:00:00:00:{i:02x}" for i in range(1, count + 1)]
    addrs = [f"10.99.0.{10 + i}:6783" for i in range(1, count + 1)]
    peers = [
        PeerProcess(
            f"::{i}",
            tmp / f"ns{i}",
            "seed=::1",
            addrs[i - 1],
            6784,
            [a for a in addrs if a != addrs[i - 1]],
            netns=f"{NETNS_PREFIX}h{i}",
        )
        for i in range(1, count + 1)
    ]

    async def measure() -> dict[str, Any]:
        agents = []
        for i in range(1, count + 1):
            cmd = ["ip", "netns", "exec", f"{NETNS_PREFIX}h{i}", PY, __file__, "_agent", "6784"]
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            agents.append(Agent(proc))
        pumps = [asyncio.create_task(agent.pump()) for agent in agents]
        try:
            for agent in agents:
                await agent.wait_for(lambda line: line[0] == "READY", 60)

            async def grant(k: int, net: ipaddress.IPv4Network, tag: str) -> dict[str, float]:
                requester = agents[k]
                marks = [len(agent.lines) for agent in agents]
                for agent in agents:
                    if any(e[0] == "E" and owns_in(e[2], names[k], net) for e in agent.lines):
                        raise RuntimeError(f"{net} was granted to peer {k + 1} before the request")
                requester.send(f"A /ip/{tag}/{net}")
                sent = await requester.wait_for(lambda line: line[0] == "S", 10, marks[k])
                reply = await requester.wait_for(lambda line: line[0] == "R", 30, marks[k])
                if not reply[2].startswith("200 10."):
                    raise HttpError(f"grant on peer {k + 1}: {reply[2]}")
                seen = []
                for agent, mark in zip(agents, marks, strict=True):
                    line = await agent.wait_for(
                        lambda line: line[0] == "E" and owns_in(line[2], names[k], net), 10, mark
                    )
                    seen.append(line[1])
                return {
                    "all": max(seen) - sent[1],
                    "reply": reply[1] - sent[1],
                    "donor": seen[0] - sent[1],
                    "after_donor": max(seen) - seen[0],
                    "others": [t - sent[1] for j, t in enumerate(seen) if j != 0],
                }

            # Warm-up: one grant to each peer, which also waits until the mesh is up.
            for k in range(1, count):
                await grant(k, ipaddress.ip_network(f"10.40.{k}.0/24"), f"w{k}")
            results = []
            for g in range(grants):
                k = 1 + g % (count - 1)
                net = ipaddress.ip_network(f"10.41.{g}.0/24")
                results.append(await grant(k, net, f"g{g}"))
            return {
                "p50_all": statistics.median(r["all"] for r in results),
                "max_all": max(r["all"] for r in results),
                "p50_reply": statistics.median(r["reply"] for r in results),
                "p50_donor": statistics.median(r["donor"] for r in results),
                "p50_after_donor": statistics.median(r["after_donor"] for r in results),
                "grants": len(results),
                "rounds": results,
            }
        finally:
            for agent in agents:
                if agent.proc.returncode is None:
                    agent.proc.kill()
                    await agent.proc.wait()
            for pump in pumps:
                pump.cancel()

    netns_cleanup(count)
    try:
        netns_setup(count)
        with running(peers):
            return asyncio.run(measure())
    finally:
        netns_cleanup(count)


# -- 6. consensus launch ------------------------------------------------------------------


def consensus_launch(tmp: Path, rounds: int, count: int = 5) -> dict[str, Any]:
    """5 peers with consensus=5 launched at once; last launch until every prime returns."""
    results = []
    for r in range(rounds):
        ports = free_ports(2 * count)
        listens = [f"127.0.0.1:{p}" for p in ports[:count]]
        peers = [
            PeerProcess(
                f"::c{i}",
                tmp / f"cons{r}-{i}",
                f"consensus={count}",
                listens[i],
                ports[count + i],
                [a for a in listens if a != listens[i]],
            )
            for i in range(count)
        ]
        for peer in peers:
            peer.workdir.mkdir(parents=True)

        async def prime(peer: PeerProcess) -> tuple[float, float]:
            deadline = time.monotonic() + 60
            conn = await connect_when_up(peer.http, deadline)
            up = time.perf_counter()
            try:
                status, body = await conn.request("GET", "/ring")
            finally:
                conn.close()
            if status != 200:
                raise HttpError(f"prime: {status} {body!r}")
            return up, time.perf_counter()

        async def prime_all(peers: list[PeerProcess] = peers) -> list[tuple[float, float]]:
            return await asyncio.gather(*(prime(p) for p in peers))

        with running(peers):
            last = time.perf_counter()
            times = asyncio.run(prime_all())
        results.append(
            {
                "all_primed": max(t for _, t in times) - last,
                "all_http_up": max(u for u, _ in times) - last,
                "launch_spread": last - peers[0].started_at,
            }
        )
        log(f"    round {r}: {results[-1]}")
    return {
        "all_primed": statistics.median(x["all_primed"] for x in results),
        "all_http_up": statistics.median(x["all_http_up"] for x in results),
        "rounds": results,
    }


def commit_probe(tmp: Path, n: int = 200) -> dict[str, float]:
    """p50 / p90 of one-row SQLite commits in WAL mode with synchronous=FULL, as weavedb does."""
    import sqlite3

    conn = sqlite3.connect(tmp / "probe.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"{i:064x}", i))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return {"p50_ms": statistics.median(times) * 1e3, "p90_ms": percentile(times, 0.9) * 1e3}


# -- the table ---------------------------------------------------------------------------


def missing_plugins() -> list[str]:
    """The plugins these benchmarks launch peers with that are not installed."""
    from weavek.plugins import make_plugin_manager, registry

    pm = make_plugin_manager()
    wanted = {"store": "weavedb", "transport": "tcp", "init": "seed"}
    missing = [name for family, name in wanted.items() if name not in registry(pm, family)]
    if "consensus" not in registry(pm, "init"):
        missing.append("consensus")
    return missing


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    result = fn()
    log(f"  {label}: {time.perf_counter() - t0:.1f} s")
    return result


def rows_for(res: dict[str, Any], quick: bool) -> list[Row]:
    rows = []
    if "throughput" in res:
        t = res["throughput"]
        total = t["rounds"][0]["windows"]
        label = list(total)[-1].split("-")[1]
        rows.append(
            Row(
                f"durable allocations, HTTP, weavedb, 8 clients, 1k to {label} live",
                "Weave 289/s",
                ">= 5,800/s",
                ">= 2,900/s",
                f"{t['overall']:,.0f}/s",
                t["overall"] >= 5800,
                t["overall"] >= 2900,
            )
        )
        ratio = t["last"] / t["first"]
        rows.append(
            Row(
                f"rate at {t['last_window']} live / rate at {t['first_window']} live",
                "",
                ">= 0.9",
                ">= 0.8",
                f"{ratio:.2f} ({t['last']:,.0f} / {t['first']:,.0f})",
                ratio >= 0.9,
                ratio >= 0.8,
            )
        )
    if "latency" in res:
        p50, p99 = res["latency"]["p50"] * 1000, res["latency"]["p99"] * 1000
        rows.append(
            Row(
                "allocation latency, free space, one client: p50 / p99",
                "",
                "<= 1 / 5 ms",
                "<= 2 / 10 ms",
                f"{p50:.2f} / {p99:.2f} ms",
                p50 <= 1 and p99 <= 5,
                p50 <= 2 and p99 <= 10,
            )
        )
    if "donor" in res:
        d = res["donor"]
        p50 = d["p50"] * 1000
        rows.append(
            Row(
                f"allocation latency, space from a donor (loopback), p50 of {d['samples']}",
                "",
                "<= 5 ms",
                "<= 20 ms",
                f"{p50:.1f} ms",
                p50 <= 5,
                p50 <= 20,
            )
        )
    if "restart" in res:
        s = res["restart"]
        rows.append(
            Row(
                f"restart with {s['allocations']:,} allocations: serving again; RSS",
                "",
                "<= 2 s; <= 400 MB",
                "<= 5 s; <= 800 MB",
                f"{s['ready_s']:.2f} s; {s['rss_mb']:.0f} MB",
                s["ready_s"] <= 2 and s["rss_mb"] <= 400,
                s["ready_s"] <= 5 and s["rss_mb"] <= 800,
            )
        )
    if "netns" in res:
        g = res["netns"]
        p50 = g["p50_all"] * 1000
        rows.append(
            Row(
                f"a grant seen by all 5 peers in netns, p50 of {g['grants']}",
                "",
                "<= 100 ms",
                "<= 500 ms",
                f"{p50:.0f} ms",
                p50 <= 100,
                p50 <= 500,
            )
        )
    if "consensus" in res:
        c = res["consensus"]["all_primed"]
        rows.append(
            Row(
                "5 processes, consensus=5, loopback: last launch to all primed",
                "Weave ~5-30 s",
                "<= 0.5 s",
                "<= 2 s",
                f"{c:.2f} s",
                c <= 0.5,
                c <= 2,
            )
        )
    del quick
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_agent":
        _agent_main(int(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_inproc":
        _inproc_main(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also measure each section with weavek imported from DIR first (before/after)",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    q = args.quick
    if missing := missing_plugins():
        log(
            f"weavek peer benchmarks need the {', '.join(missing)} plugin(s): "
            "pip install -e plugins/seed -e plugins/consensus -e plugins/tcp -e plugins/weavedb"
        )
        return 2
    if "netns" in only and (os.geteuid() != 0 or shutil.which("ip") is None):
        log("  netns: skipped (needs root and iproute2)")
        only.discard("netns")

    fs = (
        subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True)
        .stdout.splitlines()[-1]
        .split()[1]
    )
    log(
        f"weavek peer benchmarks ({PY}); peers and clients share {os.cpu_count()} CPUs, "
        f"nothing pinned; weavedb under {tempfile.gettempdir()} ({fs})"
    )
    res: dict[str, Any] = {"filesystem": fs, "cpus": os.cpu_count(), "quick": q}
    steps: dict[str, Callable[[Path], Any]] = {
        "throughput": lambda d: throughput(d, 10_000 if q else 50_000, 8, 1 if q else 3),
        "latency": lambda d: latency(d, 500 if q else 2000, 100 if q else 300),
        "donor": lambda d: donor(d, 30 if q else 200),
        "restart": lambda d: restart(d, 100_000 if q else 1_048_570, 2 if q else 3, keep),
        "netns": lambda d: netns_grants(d, 4 if q else 12),
        "consensus": lambda d: consensus_launch(d, 2 if q else 5),
    }
    with tempfile.TemporaryDirectory(prefix="wkbench-probe-") as tmp:
        res["commit_probe"] = commit_probe(Path(tmp))
    log(f"  SQLite WAL+FULL one-row commit here: {res['commit_probe']}")
    res["loadavg"] = {"start": os.getloadavg()}
    global BASELINE
    variants = [(args.baseline, "_baseline"), (None, "")] if args.baseline else [(None, "")]
    if args.baseline:
        res["baseline"] = args.baseline
    with tempfile.TemporaryDirectory(prefix="wkbench-keep-") as kept:
        keep = Path(kept)
        for section in SECTIONS:
            if section not in only:
                continue
            for variant, suffix in variants:
                BASELINE = variant  # peer_env reads it
                label = section + suffix
                with tempfile.TemporaryDirectory(prefix=f"wkbench-{section}-") as tmp:
                    res[label] = timed(label, functools.partial(steps[section], Path(tmp)))
                res["loadavg"][label] = os.getloadavg()
                log(f"    load average after {label}: {os.getloadavg()}")
    BASELINE = None
    if args.baseline:
        before = {k.removesuffix("_baseline"): v for k, v in res.items() if k.endswith("_baseline")}
        print(f"Before (peers importing weavek from {args.baseline}):", flush=True)
        print(table(rows_for(before, q)), flush=True)
        print("After (the working tree):", flush=True)
    rows = rows_for(res, q)
    probe = res["commit_probe"]
    print(table(rows), flush=True)
    print(
        f"(peers and clients share {os.cpu_count()} CPUs, nothing pinned; weavedb on {fs} "
        f"under {tempfile.gettempdir()}; a one-row SQLite WAL+FULL commit took "
        f"{probe['p50_ms']:.2f} ms p50 / {probe['p90_ms']:.2f} ms p90; load average at start "
        f"{res['loadavg']['start'][0]:.1f})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [row.__dict__ for row in rows], "raw": res}, f, indent=2)
    return 0 if all(row.ok_floor for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

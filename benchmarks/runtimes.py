"""weavek's container runtime benchmarks: attach through the HTTP API, one section per runtime.

Run with ``python benchmarks/runtimes.py`` (root: it makes network
namespaces). Each section is one function, ``<runtime>(tmp, quick)``,
returning its figures; :data:`SECTIONS` lists them in order and
:func:`rows_for` turns them into table rows (docker and containerd add theirs
beside ``netns``). ``--only a,b`` runs some sections, ``--quick`` is a smoke
run, ``--json FILE`` records the figures.

Every section runs a real peer (``python -m weavek launch --foreground``,
weavedb on disk, ``--runtime NAME``) inside a network namespace made for the
run, so its bridge and veths never touch the root namespace, and a client
inside the same namespace (``runtimes.py _client``) that times sequential
``POST /attach/{container}`` requests on one keep-alive connection: resolve,
allocate (durable), veth pair, address, route, answer. The same client also
times ``POST /ip/{id}`` (allocation alone) in the same run, so the cost of
the plumbing is the difference of two medians taken under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer import PY, Conn, PeerProcess, get_ok, log, percentile, running, timed
from run import Row, table

SECTIONS = ("netns", "docker", "containerd")
PREFIX = "wkbench-rt-"
RANGE = "10.96.0.0/12"


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


def _remove_namespaces() -> None:
    """Delete this benchmark's namespaces (and whatever still runs in them)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in pids.stdout.split():
                subprocess.run(["kill", "-9", pid], capture_output=True)
            _ip("netns", "del", name, check=False)


class RuntimePeer(PeerProcess):
    """A benchmark peer launched with ``--runtime`` (and anything else in ``extra``)."""

    extra: Sequence[str] = ()

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--foreground") + 1
        return [*cmd[:at], *self.extra, *cmd[at:]]


# -- the client, inside the host namespace ----------------------------------------------------


def _client_main(port: int, containers: list[str], allocations: int, warmup: int) -> None:
    """Time ``POST /attach/C`` for each container, then ``POST /ip/ID``; print JSON seconds."""

    async def main() -> dict[str, Any]:
        await get_ok(port, "/status", 60)
        conn = await Conn.open(port)
        attach: list[float] = []
        for i, container in enumerate(containers):
            t0 = time.perf_counter()
            status, body = await conn.request("POST", f"/attach/{container}")
            took = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"attach {container}: {status} {body!r}")
            if i >= warmup:
                attach.append(took)
        alone: list[float] = []
        for i in range(allocations + warmup):
            t0 = time.perf_counter()
            status, body = await conn.request("POST", f"/ip/bench{i}")
            took = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"allocate: {status} {body!r}")
            if i >= warmup:
                alone.append(took)
        conn.close()
        return {"attach": attach, "allocate": alone}

    print(json.dumps(asyncio.run(main())))


def _in_host(host: str, containers: list[str], allocations: int, warmup: int) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", host, PY, __file__, "_client", "6784", str(allocations)]
    argv += [str(warmup), *containers]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark client failed: {done.stderr.strip()[-2000:]}")
    times: dict[str, Any] = json.loads(done.stdout)
    return times


def _summary(times: dict[str, list[float]]) -> dict[str, Any]:
    attach, alone = times["attach"], times["allocate"]
    return {
        "samples": len(attach),
        "p50": statistics.median(attach),
        "p90": percentile(attach, 0.9),
        "p99": percentile(attach, 0.99),
        "allocate_p50": statistics.median(alone),
        "plumbing_p50": statistics.median(attach) - statistics.median(alone),
    }


# -- sections: one function per runtime -------------------------------------------------------


def netns(tmp: Path, quick: bool) -> dict[str, Any]:
    """Named namespaces as containers, attached one after another to a peer in a host netns."""
    count, warmup = (20, 5) if quick else (200, 20)
    host = f"{PREFIX}host"
    containers = [f"{PREFIX}c{i}" for i in range(count + warmup)]
    peer = RuntimePeer("::1", tmp / "peer", "seed=::1", "127.0.0.1:6783", 6784, netns=host)
    peer.extra = ("--runtime", "netns", "--ipalloc-range", RANGE)
    _remove_namespaces()
    try:
        _ip("netns", "add", host)
        _ip("-n", host, "link", "set", "lo", "up")
        for name in containers:
            _ip("netns", "add", name)
        with running([peer]):
            times = _in_host(host, containers, count, warmup)
            peer.check_alive()
        return _summary(times)
    finally:
        _remove_namespaces()


# -- docker and containerd (their daemons from weavek.testing.daemons) -----------------------
#
# A private dockerd or containerd (busybox imported; weavek.testing.daemons) and a
# peer with the runtime in a PeerHost: a test namespace of its own, 10.99.8.0/22,
# the daemon in the root namespace. Attach latency uses the client above, inside the
# host namespace; the burst and release figures call the API from this process over
# connections made inside that namespace (PeerHost.request).

GRACE = 1.0


def _lifecycle_attach(host: Any, containers: list[str], quick: bool) -> dict[str, Any]:
    count, warmup = (10, 3) if quick else (50, 10)
    return _summary(_in_host(host.netns, containers[: count + warmup], count, warmup))


def _release_after_death(
    host: Any, start: Callable[[str], str], kill: Callable[[str], object], rounds: int
) -> dict[str, Any]:
    """From a container's death (its kill returned) until ``GET /ip/{id}`` is empty.

    The kernel expires dead containers on its clock tick, with the time of the
    last tick, so a release can come up to one tick before the grace period ends:
    the figure beyond the grace period is then negative.
    """
    total = []
    for i in range(rounds):
        ident = start(f"wkdeath{i}")
        status, body = host.request("POST", f"/attach/{ident}")
        if status != 200:
            raise RuntimeError(f"attach {ident}: {status} {body}")
        kill(ident)
        died = time.perf_counter()
        while host.lookup(ident):
            time.sleep(0.01)
        total.append(time.perf_counter() - died)
    return {
        "rounds": rounds,
        "grace": GRACE,
        "death_to_free_p50": statistics.median(total),
        "beyond_grace_p50": statistics.median(total) - GRACE,
        "beyond_grace_max": max(total) - GRACE,
    }


def _burst(host: Any, daemon: Any, count: int) -> dict[str, Any]:
    """``count`` containers started at once (16 threads), each attached (16 more) once started.

    The figure is from the last start returning until the last attach has answered.
    """
    import concurrent.futures
    import threading

    last_start = [0.0]
    lock = threading.Lock()

    def start(i: int) -> str:
        ident = daemon.run(f"wkburst{i}")
        with lock:
            last_start[0] = max(last_start[0], time.perf_counter())
        return str(ident)

    def attach(ident: str) -> str:
        status, body = host.request("POST", f"/attach/{ident}")
        if status != 200:
            raise RuntimeError(f"attach {ident}: {status} {body}")
        return str(body)

    begun = time.perf_counter()
    with (
        concurrent.futures.ThreadPoolExecutor(16) as starters,
        concurrent.futures.ThreadPoolExecutor(16) as attachers,
    ):
        started = [starters.submit(start, i) for i in range(count)]
        attached = [
            attachers.submit(attach, future.result())
            for future in concurrent.futures.as_completed(started)
        ]
        addresses = [future.result() for future in attached]
    done = time.perf_counter()
    if len(set(addresses)) != count:
        raise RuntimeError(f"duplicate addresses among {count} containers: {sorted(addresses)}")
    return {
        "containers": count,
        "starts": last_start[0] - begun,
        "last_start_to_all_attached": done - last_start[0],
    }


def docker(tmp: Path, quick: bool) -> dict[str, Any]:
    """Docker containers (``--network none``) on a private dockerd: attach, burst, release."""
    from weavek.testing.daemons import docker_daemon
    from weavek.testing.peerhost import PeerHost

    with docker_daemon() as dockerd:
        host = PeerHost(f"docker={dockerd.host}", grace_period=GRACE)
        try:
            host.start()
            containers = [dockerd.run(f"wkattach{i}") for i in range(13 if quick else 60)]
            res = _lifecycle_attach(host, containers, quick)
            res["release"] = _release_after_death(
                host, dockerd.run, lambda c: dockerd.docker("kill", c), 3 if quick else 7
            )
            dockerd.clear()
            res["burst"] = _burst(host, dockerd, 20 if quick else 100)
            return res
        finally:
            host.close()


def containerd(tmp: Path, quick: bool) -> dict[str, Any]:
    """containerd tasks (``ctr run``, own netns) on a private containerd: attach, release."""
    from weavek.testing.daemons import containerd_daemon
    from weavek.testing.peerhost import PeerHost

    with containerd_daemon() as ctrd:
        host = PeerHost(f"containerd={ctrd.address}?namespace={ctrd.namespace}", grace_period=GRACE)
        try:
            host.start()
            containers = [f"wkattach{i}" for i in range(13 if quick else 60)]
            for container in containers:
                ctrd.run(container)
            res = _lifecycle_attach(host, containers, quick)

            def start(container: str) -> str:
                ctrd.run(container)
                return container

            res["release"] = _release_after_death(host, start, ctrd.kill, 3 if quick else 7)
            return res
        finally:
            host.close()


def lifecycle_rows(res: dict[str, Any]) -> list[Row]:
    """The burst and release rows of the docker and containerd sections."""
    rows = []
    burst = res.get("docker", {}).get("burst")
    if burst:
        took = burst["last_start_to_all_attached"]
        rows.append(
            Row(
                f"{burst['containers']} containers started at once on one dockerd, each attached: "
                "last start until all attached (addresses unique)",
                "",
                "<= 5 s",
                "<= 15 s",
                f"{took:.2f} s (starts took {burst['starts']:.1f} s)",
                took <= 5,
                took <= 15,
            )
        )
    for section in ("docker", "containerd"):
        release = res.get(section, {}).get("release")
        if release:
            beyond = release["beyond_grace_p50"] * 1000
            rows.append(
                Row(
                    f"{section}: a container's death until its address is free, beyond the "
                    f"{release['grace']:g} s grace period, p50 of {release['rounds']}",
                    "",
                    "<= 1 s",
                    "<= 3 s",
                    f"{beyond:.0f} ms (max {release['beyond_grace_max'] * 1000:.0f} ms)",
                    beyond <= 1000,
                    beyond <= 3000,
                )
            )
    return rows


STEPS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "netns": netns,
    "docker": docker,
    "containerd": containerd,
}


def rows_for(res: dict[str, Any]) -> list[Row]:
    rows = []
    for section in SECTIONS:
        if section not in res:
            continue
        r = res[section]
        p50 = r["p50"] * 1000
        rows.append(
            Row(
                f"attach a running container through the API, {section}, p50 of {r['samples']} "
                f"(allocation alone {r['allocate_p50'] * 1000:.1f} ms)",
                "",
                "<= 50 ms",
                "<= 150 ms",
                f"{p50:.1f} ms (p90 {r['p90'] * 1000:.1f})",
                p50 <= 50,
                p50 <= 150,
            )
        )
    return rows + lifecycle_rows(res)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        port, allocations, warmup = map(int, sys.argv[2:5])
        _client_main(port, sys.argv[5:], allocations, warmup)
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        log("runtime benchmarks need root and iproute2 (they make network namespaces)")
        return 2
    res: dict[str, Any] = {"quick": args.quick, "cpus": os.cpu_count()}
    res["loadavg"] = {"start": os.getloadavg()}
    for section in SECTIONS:
        if section not in only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"wkbench-{section}-") as tmp:
            res[section] = timed(section, lambda d=Path(tmp), s=section: STEPS[s](d, args.quick))
        res["loadavg"][section] = os.getloadavg()
        log(f"    load average after {section}: {os.getloadavg()}")
    print(table(rows_for(res)))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

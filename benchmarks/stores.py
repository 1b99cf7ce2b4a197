"""weavek's store benchmarks: durable allocations and restores with the etcd store, real processes.

Run with ``python benchmarks/stores.py`` (``--quick`` for a smoke run,
``--json FILE`` for the record, ``--only a,b`` for some sections). Every
peer is a real ``python -m weavek launch --foreground`` process; every etcd
is a real single-member etcd (Debian's ``etcd-server``) on loopback with its
data in ``/dev/shm``, started by :mod:`weavek.testing.etcd` and removed after
each round. Clients are the lean HTTP/1.1 clients of ``benchmarks/peer.py``;
nothing is pinned, so clients, peer and etcd share the machine's CPUs.

Sections:

* ``etcd-throughput``: durable allocations through the HTTP API with
  ``--persist etcd=...``, 8 concurrent clients on a fresh peer; the same run
  measures weavedb (on the disk under ``/tmp``) for a same-run ratio.
* ``etcd-restore``: 100k allocations in etcd (written by the real allocator
  and the real store: a ledger plus 999 records after it, the most a restore
  replays), then a peer started on a "new machine" (a fresh directory, the
  same ``--name``) until it serves a lookup of the first allocation.
* ``volume``: durable allocations with ``--persist volume`` (a private
  dockerd from :mod:`weavek.testing.daemons`, its volumes on the same disk as
  the weavedb files) relative to weavedb, the peers taking turns in one run,
  with a weavedb-against-weavedb control; and the same for the stores alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer import (  # benchmarks/peer.py: the same clients, peers and figures
    PeerProcess,
    allocate_many,
    free_ports,
    get_ok,
    idents,
    log,
    metrics,
    running,
    throughput,
    timed,
    wait_ready,
)
from run import Row, table

from weavek.testing.etcd import EtcdCluster

SECTIONS = ("etcd-throughput", "etcd-restore", "volume")


@dataclass
class StorePeer(PeerProcess):
    """A benchmark peer launched with another ``--persist`` than weavedb."""

    persist: str = ""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--persist") + 1] = self.persist
        return cmd


def etcd_peer(workdir: Path, name: str, endpoints: str) -> StorePeer:
    listen, http = free_ports(2)
    return StorePeer(
        name, workdir, f"seed={name}", f"127.0.0.1:{listen}", http, persist=f"etcd={endpoints}"
    )


@contextlib.contextmanager
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster(1) as cluster:
        yield cluster


# -- 1. durable allocations ------------------------------------------------------------


def etcd_throughput(tmp: Path, total: int, clients: int, rounds: int) -> dict[str, Any]:
    results = []
    for r in range(rounds):
        with etcd() as cluster:
            peer = etcd_peer(tmp / f"etcd{r}", "::e1", cluster.endpoints)
            with running([peer]):
                wait_ready(peer)
                names = idents(total, r)
                t0 = time.perf_counter()
                stamps = asyncio.run(allocate_many(peer.http, names, clients))
                elapsed = time.perf_counter() - t0
                m = metrics(peer.http)
        assert m['weave_ips{state="local-used"}'] == total, m
        rate = (total - 1000) / (stamps[total] - stamps[1000])
        per_apply = m["weavek_allocations_total"] / m["weavek_store_applies_total"]
        results.append({"rate": rate, "elapsed_s": elapsed, "allocations_per_apply": per_apply})
        log(f"    round {r}: {rate:,.0f}/s, {per_apply:.1f} allocations per transaction")
    # weavedb in the same run, for a ratio that the machine's noise does not move much.
    weavedb = throughput(tmp / "weavedb", total, clients, rounds)
    rate = statistics.median(x["rate"] for x in results)
    return {
        "rate": rate,
        "weavedb_rate": weavedb["overall"],
        "ratio_to_weavedb": rate / weavedb["overall"],
        "allocations": total,
        "rounds": results,
    }


# -- 2. restore on a new machine ------------------------------------------------------


def build_in_etcd(endpoints: str, name: str, count: int, tail: int) -> tuple[str, str]:
    """``count`` allocations of the real allocator, stored by the real etcd store.

    All but the last ``tail`` go in batches of 50,000 (each written as a
    ledger: too big for one request); the last ``tail`` one per batch, as
    records after the ledger. Returns the first ident and its address.
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
        universe=parse_cidr("10.32.0.0/12"),
        strategy=resolve(pm, "init", "seed")(name, me=me, peers_named=0),
        rng=random.Random(1).random,
    )
    batches: list[list[Any]] = [[e for e in alloc.start(0.0) if isinstance(e, STORAGE_EFFECTS)]]
    names = idents(count, 42)
    first = ""
    for i, ident in enumerate(names):
        effects = [
            e for e in alloc.handle(AllocateRequested(i, ident)) if isinstance(e, STORAGE_EFFECTS)
        ]
        if i == 0:
            first = str(getattr(effects[-1], "cidr", ""))
        if i < count - tail and len(batches[-1]) < 50_000:
            batches[-1] += effects
        else:
            batches.append(effects)
    store_cls = resolve(pm, "store", "etcd")

    async def write() -> None:
        async with store_cls(endpoints, peer=me) as store:
            await store.load()
            for batch in batches:
                await store.apply(batch)

    anyio.run(write)
    return names[0], first


def etcd_restore(tmp: Path, count: int, rounds: int) -> dict[str, Any]:
    name = "::e2"
    times = []
    with etcd() as cluster:
        t0 = time.perf_counter()
        ident, address = build_in_etcd(cluster.endpoints, name, count, tail=999)
        log(
            f"    fixture: {count:,} allocations in etcd, built in {time.perf_counter() - t0:.1f} s"
        )

        async def until_serving(peer: StorePeer) -> float:
            await get_ok(peer.http, "/status", 120)
            body = await get_ok(peer.http, f"/ip/{ident}", 120)
            if body.decode().split() != [address]:
                raise RuntimeError(f"lookup after restore: {body!r}, expected {address}")
            return time.perf_counter()

        for r in range(rounds):
            peer = etcd_peer(tmp / f"machine{r}", name, cluster.endpoints)  # a new machine
            with running([peer]):
                ready = asyncio.run(until_serving(peer))
                times.append(ready - peer.started_at)
            log(f"    new machine {r}: serving after {times[-1]:.2f} s")
    return {"allocations": count, "ready_s": statistics.median(times), "rounds_s": times}


# -- 3. the volume store against weavedb ----------------------------------------------
#
# The figure is a ratio, so the stores are measured side by side rather than one after the
# other: their peers run at once, on the same disk, and take turns -- a chunk of allocations
# on one, then on the next -- so that the machine's load (other processes' fsyncs share the
# disk) drifts under all of them alike; an idle peer costs nothing. The third, "control", is
# weavedb again on another file: its ratio to weavedb is what noise alone makes of two
# identical stores in the same run.


def _take_turns(runs: dict[str, Callable[[int], float]], chunks: int) -> dict[str, Any]:
    """Call each ``run(k)`` (seconds for chunk ``k``) in turn, ``chunks`` times.

    The order rotates at every chunk, so no store always follows the same other one.
    Returns the seconds summed per name, and per chunk the first name's time over each
    other's (a rate ratio: above 1, that one was faster).
    """
    names = list(runs)
    seconds = dict.fromkeys(names, 0.0)
    ratios: dict[str, list[float]] = {name: [] for name in names[1:]}
    for k in range(chunks):
        order = names[k % len(names) :] + names[: k % len(names)]
        took = {name: runs[name](k) for name in order}
        for name, t in took.items():
            seconds[name] += t
        for name in names[1:]:
            ratios[name].append(took[names[0]] / took[name])
    return {"seconds": seconds, "chunk_ratios": ratios}


def _ratios(turns: dict[str, Any], allocations: int) -> dict[str, Any]:
    """The ratio to weavedb as the median over chunks, and over the whole run.

    The median is the figure: a burst of other processes' fsyncs can slow one
    chunk several times over, and the whole run's rate carries it.
    """
    rates = {name: allocations / s for name, s in turns["seconds"].items()}
    medians = {name: statistics.median(r) for name, r in turns["chunk_ratios"].items()}
    return {
        **rates,
        "ratio": medians["volume"],
        "control_ratio": medians["control"],
        "overall_ratio": rates["volume"] / rates["weavedb"],
        "control_overall_ratio": rates["control"] / rates["weavedb"],
        "chunk_ratios": turns["chunk_ratios"],
    }


def _filesystem(path: Path) -> str:
    """``df -T``'s type and device for the filesystem holding ``path``."""
    import subprocess

    out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True)
    fields = out.stdout.splitlines()[-1].split()
    return f"{fields[1]} {fields[0]}"


def volume_throughput(tmp: Path, total: int, clients: int, chunks: int) -> dict[str, Any]:
    """Durable allocations/s through the HTTP API: the volume store relative to weavedb.

    The weavedb files are under ``tmp`` and the volume in a private dockerd
    (weavek.testing.daemons) whose data root is under ``/tmp`` too: the same
    disk, which the result records. Each peer first takes 1,000 allocations
    unmeasured, then ``total`` in ``chunks`` turns of ``clients`` connections.
    """
    from weavek.testing.daemons import docker_daemon

    per_chunk = total // chunks
    with docker_daemon() as dockerd:
        peers = {}
        for name in ("weavedb", "volume", "control"):
            listen, http = free_ports(2)
            persist = (
                f"volume=wkbench@{dockerd.host}"
                if name == "volume"
                else f"weavedb={tmp / name / 'weavedb.sqlite'}"
            )
            where = f"127.0.0.1:{listen}"
            peers[name] = StorePeer("::a1", tmp / name, "seed=::a1", where, http, persist=persist)
        names = {name: idents(1000 + total, seed) for seed, name in enumerate(peers)}
        with running(list(peers.values())):
            for name, p in peers.items():
                wait_ready(p)
                asyncio.run(allocate_many(p.http, names[name][:1000], clients))

            def run(name: str, k: int) -> float:
                chunk = names[name][1000 + k * per_chunk : 1000 + (k + 1) * per_chunk]
                t0 = time.perf_counter()
                asyncio.run(allocate_many(peers[name].http, chunk, clients))
                return time.perf_counter() - t0

            turns = _take_turns({name: functools.partial(run, name) for name in peers}, chunks)
            used = {n: metrics(p.http)['weave_ips{state="local-used"}'] for n, p in peers.items()}
        disks = {"weavedb": _filesystem(tmp), "volume": _filesystem(dockerd.base / "data")}
    assert set(used.values()) == {1000 + per_chunk * chunks}, used
    result = {**_ratios(turns, per_chunk * chunks), "filesystems": disks, "clients": clients}
    log(
        f"    volume {result['volume']:,.0f}/s, weavedb {result['weavedb']:,.0f}/s, "
        f"control {result['control']:,.0f}/s; disks {disks}"
    )
    return result


def volume_store_alone(tmp: Path, size: int, applies: int, chunks: int) -> dict[str, Any]:
    """The same comparison without HTTP or peers: batches of ``size`` into each store.

    Isolates what the volume store adds per batch (one ``stat`` of the file).
    """
    import anyio

    from weavek.core.effects import Allocated
    from weavek.interfaces import Store
    from weavek.plugins import make_plugin_manager, resolve
    from weavek.testing.daemons import docker_daemon
    from weavek.testing.store_contract import v4
    from weavek_weavedb import WeavedbStore

    volume_store = resolve(make_plugin_manager(), "store", "volume")

    async def measure(host: str) -> dict[tuple[str, int], float]:
        stores: dict[str, Store] = {
            "weavedb": WeavedbStore(str(tmp / "alone" / "weavedb.sqlite")),
            "volume": volume_store(f"wkbenchalone@{host}"),
            "control": WeavedbStore(str(tmp / "alone" / "control.sqlite")),
        }
        times: dict[tuple[str, int], float] = {}
        async with contextlib.AsyncExitStack() as stack:
            for store in stores.values():
                await stack.enter_async_context(store)
                await store.load()
            names = list(stores)
            for k in range(chunks):
                for name in names[k % 3 :] + names[: k % 3]:  # as _take_turns rotates
                    t0 = time.perf_counter()
                    for i in range(applies):
                        n = (k * applies + i) * size
                        batch = [Allocated(f"c{n + j}", v4(n + j), True) for j in range(size)]
                        await stores[name].apply(batch)
                    times[name, k] = time.perf_counter() - t0
        return times

    with docker_daemon() as dockerd:
        times = anyio.run(measure, dockerd.host)

    def measured(name: str) -> Callable[[int], float]:
        return lambda k: times[name, k]

    turns = _take_turns({name: measured(name) for name in ("weavedb", "volume", "control")}, chunks)
    return {**_ratios(turns, chunks * applies * size), "batch": size}


def volume_figures(tmp: Path, quick: bool) -> dict[str, Any]:
    """Both volume figures: through the HTTP API, and the store alone."""
    alone = volume_store_alone(tmp / "alone", 8, 10, 12 if quick else 30)
    log(f"    store alone: {alone['ratio']:.2f}x (control {alone['control_ratio']:.2f}x)")
    http = volume_throughput(tmp / "http", 6_000 if quick else 21_000, 8, 12 if quick else 30)
    return {"http": http, "alone": alone}


def volume_rows(res: dict[str, Any]) -> list[Row]:
    rows = []
    for key, figure in (
        ("http", "durable allocations, HTTP, 8 clients: volume store / weavedb, same disk"),
        ("alone", "the same, the stores alone (apply, batches of 8)"),
    ):
        r = res[key]
        rows.append(
            Row(
                figure,
                "",
                ">= 0.9x",
                ">= 0.7x",
                f"{r['ratio']:.2f}x, overall {r['overall_ratio']:.2f}x (control "
                f"{r['control_ratio']:.2f}x, {r['control_overall_ratio']:.2f}x)",
                r["ratio"] >= 0.9,
                r["ratio"] >= 0.7,
            )
        )
    return rows


# -- the table --------------------------------------------------------------------------


def rows_for(res: dict[str, Any]) -> list[Row]:
    rows = []
    if "etcd-throughput" in res:
        t = res["etcd-throughput"]
        rows.append(
            Row(
                f"durable allocations, HTTP, etcd on /dev/shm, 8 clients, to {t['allocations']:,}",
                "etcd CAS 1,611/s",
                ">= 1,600/s",
                ">= 800/s",
                f"{t['rate']:,.0f}/s ({t['ratio_to_weavedb']:.2f}x weavedb's "
                f"{t['weavedb_rate']:,.0f}/s)",
                t["rate"] >= 1600,
                t["rate"] >= 800,
            )
        )
    if "etcd-restore" in res:
        s = res["etcd-restore"]
        rows.append(
            Row(
                f"restore of {s['allocations']:,} allocations from etcd on a new machine",
                "",
                "<= 3 s",
                "<= 10 s",
                f"{s['ready_s']:.2f} s",
                s["ready_s"] <= 3,
                s["ready_s"] <= 10,
            )
        )
    if "volume" in res:
        rows += volume_rows(res["volume"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    q = args.quick
    steps: dict[str, Callable[[Path], Any]] = {
        "etcd-throughput": lambda d: etcd_throughput(d, 10_000 if q else 50_000, 8, 1 if q else 3),
        "etcd-restore": lambda d: etcd_restore(d, 20_000 if q else 100_000, 1 if q else 3),
        "volume": lambda d: volume_figures(d, q),
    }
    log(f"weavek store benchmarks ({sys.executable}); {os.cpu_count()} CPUs, nothing pinned")
    res: dict[str, Any] = {"cpus": os.cpu_count(), "quick": q, "loadavg": os.getloadavg()}
    for section in SECTIONS:
        if section in only:
            with tempfile.TemporaryDirectory(prefix=f"wkbench-{section}-") as tmp:
                res[section] = timed(section, functools.partial(steps[section], Path(tmp)))
    rows = rows_for(res)
    print(table(rows), flush=True)
    print(f"(clients, peer and etcd share {os.cpu_count()} CPUs; load average at start "
          f"{res['loadavg'][0]:.1f})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [row.__dict__ for row in rows], "raw": res}, f, indent=2)
    return 0 if all(row.ok_floor for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

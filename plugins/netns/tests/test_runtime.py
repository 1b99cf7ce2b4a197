"""The netns runtime against real namespaces and processes: idents, attach, deaths, expose."""

from __future__ import annotations

import os
import subprocess

import anyio
import pytest
from netns_helpers import Namespaces, Processes, addresses, ip, links, on_host, wait_netns_of

from weavek.core.address import parse_cidr
from weavek.core.events import ContainerDestroyed, ContainerDied
from weavek.interfaces import ContainerNotFound, RuntimeEvent
from weavek_netns import plumbing
from weavek_netns.runtime import NetnsRuntime

UNIVERSE = parse_cidr("10.99.0.0/16")


class Events:
    """What the runtime delivered, and a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[RuntimeEvent] = []

    async def deliver(self, event: RuntimeEvent) -> None:
        self.seen.append(event)

    async def wait_for(self, event: RuntimeEvent, timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while event not in self.seen:
                await anyio.sleep(0.02)


def _runtime(events: Events, arg: str | None = None) -> NetnsRuntime:
    return NetnsRuntime(arg, deliver=events.deliver, bridge="wkbr", universe=UNIVERSE)


def test_resolve_names_and_pids(namespaces: Namespaces, host: str, processes: Processes) -> None:
    c1 = namespaces.add("c1")
    proc = processes.in_own_netns()
    wait_netns_of(proc.pid)
    in_host = subprocess.Popen(["ip", "netns", "exec", host, "sleep", "600"])
    processes.started.append(in_host)  # killed and reaped at the end

    async def scenario() -> list[str | None]:
        async with _runtime(Events()) as runtime:
            found = [
                await runtime.resolve(text)
                for text in (
                    c1,
                    f"netns:{c1}",
                    f"/run/netns/{c1}",
                    f"/var/run/netns/{c1}",
                    str(proc.pid),
                    f"pid:{proc.pid}",
                    "wknt-never-made",
                    "/etc/passwd",
                    "../netns",
                    "pid:0",
                    "pid:99999999",
                )
            ]
            with pytest.raises(ContainerNotFound, match="host's own network namespace"):
                await _eventually_in_host(runtime, in_host.pid)
            return found

    found = on_host(host, scenario)
    assert found == [
        *[f"netns:{c1}"] * 4,
        *[f"pid:{proc.pid}"] * 2,
        None,
        None,
        None,
        None,
        None,
    ]


async def _eventually_in_host(runtime: NetnsRuntime, pid: int) -> None:
    # `ip netns exec` enters the namespace, then execs sleep: wait for the switch.
    mine = os.stat("/proc/thread-self/ns/net").st_ino
    with anyio.fail_after(10):
        while os.stat(f"/proc/{pid}/ns/net").st_ino != mine:
            await anyio.sleep(0.01)
    await runtime.resolve(str(pid))


def test_attach_detach_and_running(namespaces: Namespaces, host: str) -> None:
    c1 = namespaces.add("c1")

    async def scenario() -> frozenset[str]:
        async with _runtime(Events()) as runtime:
            ident = await runtime.resolve(c1)
            assert ident is not None
            await runtime.attach(ident, [parse_cidr("10.99.0.9/16")])
            assert addresses(c1, "ethwe") == ["10.99.0.9/16"]
            assert plumbing.host_ifname(ident) in links(host)
            await runtime.detach(ident, [parse_cidr("10.99.0.9/16")])
            assert "ethwe" not in links(c1)
            return await runtime.running()

    running = on_host(host, scenario)
    assert f"netns:{c1}" in running
    assert f"pid:{os.getpid()}" in running


def test_a_killed_process_is_reported_dead(host: str, processes: Processes) -> None:
    proc = processes.in_own_netns()
    wait_netns_of(proc.pid)
    events = Events()

    async def scenario() -> None:
        async with _runtime(events) as runtime:
            ident = await runtime.resolve(str(proc.pid))
            assert ident == f"pid:{proc.pid}"
            await runtime.attach(ident, [parse_cidr("10.99.0.9/16")])
            assert events.seen == []
            proc.kill()
            await events.wait_for(ContainerDied(ident))

    on_host(host, scenario)
    assert events.seen == [ContainerDied(f"pid:{proc.pid}")]


def test_a_restarted_runtime_watches_what_is_still_attached(
    namespaces: Namespaces, host: str, processes: Processes
) -> None:
    proc = processes.in_own_netns()
    wait_netns_of(proc.pid)
    c1 = namespaces.add("c1")
    events = Events()

    async def scenario() -> None:
        async with _runtime(Events()) as before:
            await before.attach(f"pid:{proc.pid}", [parse_cidr("10.99.0.9/16")])
            await before.attach(f"netns:{c1}", [parse_cidr("10.99.0.10/16")])
        assert sorted(await plumbing.attached("wkbr")) == sorted([f"pid:{proc.pid}", f"netns:{c1}"])
        async with _runtime(events):  # a new peer process would start like this
            proc.kill()
            await events.wait_for(ContainerDied(f"pid:{proc.pid}"))
            ip("netns", "del", c1)
            await events.wait_for(ContainerDestroyed(f"netns:{c1}"))

    on_host(host, scenario)


def test_a_deleted_namespace_is_reported_destroyed(namespaces: Namespaces, host: str) -> None:
    c1 = namespaces.add("c1")
    events = Events()

    async def scenario() -> None:
        async with _runtime(events) as runtime:
            await runtime.attach(f"netns:{c1}", [parse_cidr("10.99.0.9/16")])
            ip("netns", "del", c1)
            await events.wait_for(ContainerDestroyed(f"netns:{c1}"))

    on_host(host, scenario)
    assert events.seen == [ContainerDestroyed(f"netns:{c1}")]


def test_a_namespace_kept_alive_by_a_process_loses_its_veth(
    namespaces: Namespaces, host: str, processes: Processes
) -> None:
    c1 = namespaces.add("c1")
    inside = processes.start("ip", "netns", "exec", c1, "sleep", "600")
    events = Events()

    async def scenario() -> None:
        async with _runtime(events) as runtime:
            await runtime.attach(f"netns:{c1}", [parse_cidr("10.99.0.9/16")])
            ip("netns", "del", c1)  # the sleep keeps the namespace, and so the veth, alive
            await events.wait_for(ContainerDestroyed(f"netns:{c1}"))
            assert plumbing.host_ifname(f"netns:{c1}") not in links(host)

    on_host(host, scenario)
    assert inside.poll() is None


def test_expose_and_hide_use_the_runtime_bridge(host: str) -> None:
    async def scenario() -> None:
        async with _runtime(Events()) as runtime:
            await runtime.expose([parse_cidr("10.99.0.1/16")])
            assert addresses(host, "wkbr") == ["10.99.0.1/16"]
            await runtime.hide([parse_cidr("10.99.0.1/16")])
            assert addresses(host, "wkbr") == []
            assert runtime.health() is None

    on_host(host, scenario)


def test_a_private_directory_of_named_namespaces(tmp_path, host: str) -> None:
    async def scenario() -> None:
        async with _runtime(Events(), str(tmp_path)) as runtime:
            assert await runtime.resolve("x") is None
            (tmp_path / "x").touch()
            assert await runtime.resolve("x") == "netns:x"
            assert runtime.path_of("netns:x") == str(tmp_path / "x")
            # A plain file is not a namespace: attaching it fails cleanly.
            with pytest.raises(ContainerNotFound):
                await runtime.attach("netns:x", [parse_cidr("10.99.0.9/16")])
            assert links(host) == ["lo"]

    on_host(host, scenario)

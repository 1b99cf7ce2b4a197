"""The plumbing against real namespaces: bridge, veth pairs, addresses, routes, TCP through it."""

from __future__ import annotations

import os
import signal
import time

import pytest
from netns_helpers import (
    Namespaces,
    Processes,
    addresses,
    ip,
    links,
    on_host,
    tcp_exchange,
    wait_netns_of,
)

from weavek.core.address import parse_cidr
from weavek.interfaces import ContainerNotFound
from weavek_netns import plumbing

UNIVERSE = parse_cidr("10.99.0.0/16")
BRIDGE = "weavek"


def _cidrs(*texts: str) -> list:
    return [parse_cidr(t) for t in texts]


def _attach(host: str, netns: str, ident: str, *cidrs: str, universe=UNIVERSE) -> None:
    on_host(
        host,
        lambda: plumbing.attach_netns(
            netns, ident=ident, cidrs=_cidrs(*cidrs), bridge=BRIDGE, universe=universe
        ),
    )


def _detach(host: str, netns: str, ident: str, *cidrs: str) -> None:
    on_host(host, lambda: plumbing.detach_netns(netns, ident=ident, cidrs=_cidrs(*cidrs)))


def _root_links() -> list[str]:
    return [line.split()[0] for line in ip("-br", "link").splitlines()]


def test_host_ifname_is_short_and_stable() -> None:
    name = plumbing.host_ifname("netns:some-container")
    assert name == plumbing.host_ifname("netns:some-container")
    assert name.startswith("vwk") and len(name) == 13
    assert name != plumbing.host_ifname("netns:other")


def test_two_containers_reach_each_other_through_the_bridge(
    namespaces: Namespaces, host: str
) -> None:
    root_before = _root_links()
    c1, c2 = namespaces.add("c1"), namespaces.add("c2")
    _attach(host, f"/run/netns/{c1}", "netns:c1", "10.99.3.1/24")
    _attach(host, f"/run/netns/{c2}", "netns:c2", "10.99.3.2/24")

    assert addresses(c1, "ethwe") == ["10.99.3.1/24"]
    assert addresses(c2, "ethwe") == ["10.99.3.2/24"]
    assert "10.99.0.0/16 dev ethwe" in ip("-n", c1, "route")
    ports = ip("-n", host, "-br", "link", "show", "master", BRIDGE)
    assert plumbing.host_ifname("netns:c1") in ports
    assert plumbing.host_ifname("netns:c2") in ports
    assert tcp_exchange(c1, "10.99.3.1", c2) == "echo:hello from 10.99.3.2"
    # Nothing of this reached the root namespace.
    assert _root_links() == root_before


def test_route_to_the_range_reaches_another_subnet(namespaces: Namespaces, host: str) -> None:
    c1, c2 = namespaces.add("c1"), namespaces.add("c2")
    _attach(host, f"/run/netns/{c1}", "netns:c1", "10.99.1.5/24")
    _attach(host, f"/run/netns/{c2}", "netns:c2", "10.99.2.5/24")
    # Different /24s: only the route to the whole range connects them.
    assert tcp_exchange(c1, "10.99.1.5", c2) == "echo:hello from 10.99.2.5"


def test_second_attach_adds_addresses_to_the_same_interface(
    namespaces: Namespaces, host: str
) -> None:
    c1 = namespaces.add("c1")
    _attach(host, f"/run/netns/{c1}", "netns:c1", "10.99.3.1/24")
    _attach(host, f"/run/netns/{c1}", "netns:c1", "10.99.3.7/24", "10.99.4.1/24")
    assert sorted(addresses(c1, "ethwe")) == ["10.99.3.1/24", "10.99.3.7/24", "10.99.4.1/24"]
    assert links(host).count(plumbing.host_ifname("netns:c1")) == 1


def test_pid_container(namespaces: Namespaces, host: str, processes: Processes) -> None:
    proc = processes.in_own_netns()
    wait_netns_of(proc.pid)
    path = f"/proc/{proc.pid}/ns/net"
    _attach(host, path, f"pid:{proc.pid}", "10.99.5.5/24")
    out = ip(
        "netns", "exec", host, "nsenter", f"--net={path}", "ip", "-br", "addr", "show", "ethwe"
    )
    assert "10.99.5.5/24" in out
    proc.kill()
    proc.wait(10)
    # The namespace dies with its process (the kernel cleans up a moment later), the pair too.
    wait_until(lambda: plumbing.host_ifname(f"pid:{proc.pid}") not in links(host))


def test_missing_namespace_is_container_not_found_and_leaves_nothing(host: str) -> None:
    with pytest.raises(ContainerNotFound, match="no such network namespace"):
        _attach(host, "/run/netns/wknt-never-made", "netns:x", "10.99.3.1/24")
    assert links(host) == ["lo"]


def test_dead_process_is_container_not_found_and_leaves_nothing(
    host: str, processes: Processes
) -> None:
    proc = processes.in_own_netns()
    wait_netns_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    # Not reaped: /proc/PID is still there, its namespace is not.
    wait_until(lambda: _is_zombie(proc.pid))
    with pytest.raises(ContainerNotFound):
        _attach(host, f"/proc/{proc.pid}/ns/net", f"pid:{proc.pid}", "10.99.3.1/24")
    assert links(host) == ["lo"]


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_detach_keeps_the_other_addresses_then_removes_the_pair(
    namespaces: Namespaces, host: str
) -> None:
    c1 = namespaces.add("c1")
    path = f"/run/netns/{c1}"
    _attach(host, path, "netns:c1", "10.99.3.1/24", "10.99.3.2/24", "10.99.4.1/24")
    # 10.99.3.1 is the primary of its subnet: removing it must not take .2 with it.
    on_host(
        host, lambda: plumbing.detach_netns(path, ident="netns:c1", cidrs=_cidrs("10.99.3.1/24"))
    )
    assert sorted(addresses(c1, "ethwe")) == ["10.99.3.2/24", "10.99.4.1/24"]
    _detach(host, path, "netns:c1", "10.99.3.2/24", "10.99.4.1/24")
    assert "ethwe" not in links(c1)
    assert plumbing.host_ifname("netns:c1") not in links(host)


def test_detach_matches_addresses_whatever_the_prefix(namespaces: Namespaces, host: str) -> None:
    c1 = namespaces.add("c1")
    path = f"/run/netns/{c1}"
    _attach(host, path, "netns:c1", "10.99.3.1/24")
    on_host(
        host, lambda: plumbing.detach_netns(path, ident="netns:c1", cidrs=_cidrs("10.99.3.1/16"))
    )
    assert "ethwe" not in links(c1)


def test_detach_of_a_gone_namespace_is_fine(host: str) -> None:
    on_host(
        host,
        lambda: plumbing.detach_netns(
            "/run/netns/wknt-never-made", ident="netns:x", cidrs=_cidrs("10.99.3.1/24")
        ),
    )


def test_expose_and_hide(host: str) -> None:
    on_host(host, lambda: plumbing.expose(BRIDGE, _cidrs("10.99.0.1/16", "10.99.0.2/16")))
    assert sorted(addresses(host, BRIDGE)) == ["10.99.0.1/16", "10.99.0.2/16"]
    on_host(host, lambda: plumbing.expose(BRIDGE, _cidrs("10.99.0.1/16")))  # idempotent
    on_host(host, lambda: plumbing.hide(BRIDGE, _cidrs("10.99.0.1/16")))
    assert addresses(host, BRIDGE) == ["10.99.0.2/16"]
    on_host(host, lambda: plumbing.hide(BRIDGE, _cidrs("10.99.0.2/16", "10.99.0.9/16")))
    assert addresses(host, BRIDGE) == []
    on_host(host, lambda: plumbing.hide("nobridge", _cidrs("10.99.0.2/16")))


def test_exposed_host_reaches_a_container(namespaces: Namespaces, host: str) -> None:
    c1 = namespaces.add("c1")
    on_host(host, lambda: plumbing.expose(BRIDGE, _cidrs("10.99.0.1/16")))
    _attach(host, f"/run/netns/{c1}", "netns:c1", "10.99.0.5/16")
    assert tcp_exchange(c1, "10.99.0.5", host) == "echo:hello from 10.99.0.1"


def test_ensure_bridge_is_idempotent(host: str) -> None:
    on_host(host, lambda: plumbing.ensure_bridge(BRIDGE))
    on_host(host, lambda: plumbing.ensure_bridge(BRIDGE))
    assert links(host).count(BRIDGE) == 1
    assert "UP" in ip("-n", host, "-br", "link", "show", BRIDGE)


def test_ipv6(namespaces: Namespaces, host: str) -> None:
    c1 = namespaces.add("c1")
    universe = parse_cidr("fd00:99::/48")
    _attach(host, f"/run/netns/{c1}", "netns:c1", "fd00:99:0:1::5/64", universe=universe)
    assert addresses(c1, "ethwe") == ["fd00:99:0:1::5/64"]
    assert "fd00:99::/48 dev ethwe" in ip("-n", c1, "-6", "route")

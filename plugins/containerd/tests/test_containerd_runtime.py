"""The containerd runtime end to end: a real containerd, a peer in a test namespace, busybox tasks.

``ctr run`` gives a container a network namespace with ``lo`` only: its only
way to reach another is the ``ethwe`` interface the peer gave it, so a TCP
exchange between two containers proves the whole attach.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from weavek.testing.daemons import BUSYBOX_IMAGE, Containerd, DaemonError
from weavek.testing.peerhost import PeerHosts, link_hosts
from weavek_containerd.runtime import parse_target

T = TypeVar("T")
SERVER = ("nc", "-ll", "-p", "7000", "-e", "/bin/hostname")  # answers with its hostname


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last {value!r}")
        time.sleep(0.1)


def has_address(containerd: Containerd, container: str, cidr: str) -> bool:
    """Whether ``container``'s ethwe has ``cidr`` (False while it has no ethwe)."""
    try:
        return f"inet {cidr} " in containerd.exec(container, "ip", "addr", "show", "ethwe")
    except DaemonError:
        return False


def runtime(containerd: Containerd) -> str:
    return f"containerd=unix://{containerd.address}?namespace={containerd.namespace}"


def test_two_containers_get_distinct_addresses_and_talk_over_tcp(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(containerd))
    server, client = name(), name()
    containerd.run(server, *SERVER)
    containerd.run(client)

    (server_cidr,) = host.attach(server)
    cli = host.run(
        sys.executable, "-m", "weavek", "attach", client, "--http-addr", "127.0.0.1:6784"
    )
    (client_cidr,) = cli.split()

    assert server_cidr != client_cidr
    assert host.lookup(server) == [server_cidr]
    assert host.lookup(client) == [client_cidr]
    assert client_cidr in containerd.exec(client, "ip", "-4", "-o", "addr", "show", "ethwe")
    answer = containerd.exec(client, "nc", "-w", "5", server_cidr.split("/")[0], "7000")
    assert answer.strip() == containerd.exec(server, "hostname").strip()


def test_unknown_container_is_a_clear_error_and_allocates_nothing(
    containerd: Containerd, peer_host: PeerHosts
) -> None:
    host = peer_host(runtime(containerd))
    status, body = host.request("POST", "/attach/no-such-container")
    assert status == 404, body
    assert "no-such-container" in body and "\n" not in body
    assert host.request("GET", "/ip")[1] in ('{"owned":null}', '{"owned":[]}'), "nothing allocated"


def test_container_of_another_namespace_is_unknown(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    elsewhere = name()
    containerd.import_busybox(namespace="weavek-other")
    containerd.run(elsewhere, namespace="weavek-other")
    try:
        host = peer_host(runtime(containerd))
        status, body = host.request("POST", f"/attach/{elsewhere}")
        assert status == 404, body
    finally:
        containerd.remove(elsewhere, namespace="weavek-other")


def test_killed_container_is_released_after_the_grace_period_and_its_address_reused(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(containerd), ipalloc_range="10.99.8.0/30", grace_period=3.0)
    first, second, third = name(), name(), name()
    containerd.run(first)
    containerd.run(second)
    (first_cidr,) = host.attach(first)
    host.attach(second)

    containerd.kill(first)
    # The peer stamps a death with its last clock tick (every 0.5 s), so a release may
    # come up to a tick early: check well inside the grace period.
    time.sleep(1.0)
    assert host.lookup(first) == [first_cidr], "released before the grace period ended"
    wait_until(lambda: not host.lookup(first), 10, "the dead container's release")

    containerd.run(third)
    assert host.attach(third) == [first_cidr]


def test_container_restarted_within_the_grace_period_keeps_its_address(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(containerd), grace_period=5.0)
    container = name()
    containerd.run(container, *SERVER)
    (cidr,) = host.attach(container)

    containerd.restart_task(container)
    # The new task has a new network namespace: the peer plumbs the address it
    # kept into it by itself.
    wait_until(lambda: has_address(containerd, container, cidr), 10, f"{cidr} back on ethwe")
    time.sleep(6.0)  # past the grace period: a release would have happened by now
    assert host.lookup(container) == [cidr]
    assert host.attach(container) == [cidr]  # attaching again changes nothing
    peer = name()
    containerd.run(peer)
    host.attach(peer)
    answer = containerd.exec(peer, "nc", "-w", "5", cidr.split("/")[0], "7000")
    assert answer.strip() == containerd.exec(container, "hostname").strip()


def test_peer_restart_frees_containers_that_vanished_and_keeps_the_others(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(containerd), grace_period=1.0)
    kept, removed, stopped = name(), name(), name()
    for container in (kept, removed, stopped):
        containerd.run(container)
    (kept_cidr,) = host.attach(kept)
    host.attach(removed)
    host.attach(stopped)

    host.kill()
    containerd.remove(removed)
    containerd.kill(stopped)  # exits while nobody watches; the container stays
    host.start()

    assert not host.lookup(removed), "a deleted container's address survived the restart"
    wait_until(lambda: not host.lookup(stopped), 10, "the stopped container's release")
    time.sleep(1.5)
    assert host.lookup(kept) == [kept_cidr]


def test_daemon_down_and_back_is_shown_and_nothing_is_lost_or_leaked(
    containerd_factory: Callable[..., Containerd], peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    own = containerd_factory()
    host = peer_host(runtime(own), grace_period=1.0)
    survivor, victim = name(), name()
    own.run(survivor)
    victim_pid = own.run(victim)
    (survivor_cidr,) = host.attach(survivor)
    host.attach(victim)

    own.stop()  # the shims and their tasks keep running
    down = "containerd unreachable"
    wait_until(lambda: down in host.status_text(), 15, "status to say containerd is down")
    status, body = host.request("POST", f"/attach/{survivor}")
    assert status == 503 and down in body, (status, body)
    os.kill(victim_pid, signal.SIGKILL)  # exits while nobody can tell us
    time.sleep(2.0)  # twice the grace period: nothing may be released without the daemon
    assert host.lookup(survivor) == [survivor_cidr]
    assert host.lookup(victim)

    own.start()
    wait_until(lambda: down not in host.status_text(), 30, "the reconnection")
    wait_until(lambda: not host.lookup(victim), 15, "the release of the container that died")
    time.sleep(1.5)
    assert host.lookup(survivor) == [survivor_cidr]


def test_a_container_without_a_task_gets_nothing_and_keeps_nothing(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(containerd))
    created = name()
    containerd.ctr("containers", "create", BUSYBOX_IMAGE, created)
    try:
        status, body = host.request("POST", f"/attach/{created}")
        assert status == 404 and created in body, (status, body)
        assert not host.lookup(created), "the address allocated for the attach was not released"
    finally:
        containerd.ctr("containers", "delete", created)


def test_two_hosts_sharing_a_daemon_never_hand_out_the_same_address(
    containerd: Containerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    # Two test hosts joined by a veth pair, one peer each, seeded together, one containerd.
    first = peer_host(runtime(containerd), name="::1", seeds="::1,::2", start=False,
                      listen="10.99.1.1:6783", peers=("10.99.1.2:6783",))  # fmt: skip
    second = peer_host(runtime(containerd), name="::2", seeds="::1,::2", start=False,
                       listen="10.99.1.2:6783", peers=("10.99.1.1:6783",))  # fmt: skip
    link_hosts(first, second)
    first.start()
    second.start()

    got: dict[str, list[str]] = {}
    for host in (first, second) * 4:
        container = name()
        containerd.run(container)
        got[container] = host.attach(container)
    addresses = [cidr for cidrs in got.values() for cidr in cidrs]
    assert len(addresses) == len(set(addresses)) == 8, got


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("/run/c.sock", ("/run/c.sock", "default")),
        ("unix:///run/c.sock?namespace=k8s.io", ("/run/c.sock", "k8s.io")),
        ("?namespace=moby", ("/run/containerd/containerd.sock", "moby")),
    ],
)
def test_target_syntax(
    arg: str, expected: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTAINERD_ADDRESS", raising=False)
    monkeypatch.delenv("CONTAINERD_NAMESPACE", raising=False)
    assert parse_target(arg) == expected


@pytest.mark.parametrize(
    "arg", ["relative.sock", "/run/c.sock?ns=x", "/run/c.sock?namespace=bad/name", "/r?namespace="]
)
def test_bad_target_is_one_clear_line(arg: str) -> None:
    with pytest.raises(ValueError, match="containerd runtime: ") as raised:
        parse_target(arg)
    assert "\n" not in str(raised.value)

"""The docker runtime end to end: a real dockerd, a peer in a test namespace, busybox containers.

Every container runs with ``--network none``: its only way to reach another
is the ``ethwe`` interface the peer gave it, so a TCP exchange between two
containers proves the whole attach (address, veth, bridge, route).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from weavek.testing.daemons import BUSYBOX_IMAGE, DaemonError, Dockerd
from weavek.testing.peerhost import PeerHosts, link_hosts

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


def has_address(run: Callable[..., str], container: str, cidr: str) -> bool:
    """Whether ``container``'s ethwe has ``cidr`` (False while it has no ethwe)."""
    try:
        return f"inet {cidr} " in run("exec", container, "ip", "addr", "show", "ethwe")
    except DaemonError:
        return False


def runtime(dockerd: Dockerd) -> str:
    return f"docker={dockerd.host}"


def test_two_containers_get_distinct_addresses_and_talk_over_tcp(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(dockerd))
    server, client = name(), name()
    server_id = dockerd.run(server, *SERVER)
    client_id = dockerd.run(client)

    (server_cidr,) = host.attach(server)  # by name
    # ... and through the CLI, by short ID, as a user would.
    cli = host.run(
        sys.executable, "-m", "weavek", "attach", client_id[:12], "--http-addr", "127.0.0.1:6784"
    )
    (client_cidr,) = cli.split()

    assert server_cidr != client_cidr
    assert server_cidr.startswith("10.99.") and client_cidr.startswith("10.99.")
    assert host.lookup(server_id) == [server_cidr]
    assert host.lookup(client_id) == [client_cidr]
    shown = dockerd.docker("exec", client, "ip", "-4", "-o", "addr", "show", "ethwe")
    assert client_cidr in shown
    server_addr = server_cidr.split("/")[0]
    answer = dockerd.docker("exec", client, "nc", "-w", "5", server_addr, "7000")
    assert answer == server_id[:12]  # docker's hostname: the short ID


def test_unknown_container_is_a_clear_error_and_allocates_nothing(
    dockerd: Dockerd, peer_host: PeerHosts
) -> None:
    host = peer_host(runtime(dockerd))
    status, body = host.request("POST", "/attach/no-such-container")
    assert status == 404, body
    assert "no-such-container" in body and "\n" not in body
    assert host.request("GET", "/ip")[1] in ('{"owned":null}', '{"owned":[]}'), "nothing allocated"


def test_killed_container_is_released_after_the_grace_period_and_its_address_reused(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    # A /30 has two usable addresses: the third container can only get the freed one.
    host = peer_host(runtime(dockerd), ipalloc_range="10.99.8.0/30", grace_period=3.0)
    first, second, third = name(), name(), name()
    first_id = dockerd.run(first)
    dockerd.run(second)
    (first_cidr,) = host.attach(first)
    host.attach(second)

    dockerd.docker("kill", first)
    # The peer stamps a death with its last clock tick (every 0.5 s), so a release may
    # come up to a tick early: check well inside the grace period.
    time.sleep(1.0)
    assert host.lookup(first_id) == [first_cidr], "released before the grace period ended"
    wait_until(lambda: not host.lookup(first_id), 10, "the dead container's release")

    dockerd.run(third)
    assert host.attach(third) == [first_cidr]


def test_container_restarted_within_the_grace_period_keeps_its_address(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(dockerd), grace_period=5.0)
    container = name()
    ident = dockerd.run(container, *SERVER)
    (cidr,) = host.attach(container)

    dockerd.docker("restart", "-t", "0", container)
    # The restarted container has a new network namespace: the peer plumbs the
    # address it kept into it by itself.
    wait_until(lambda: has_address(dockerd.docker, container, cidr), 10, f"{cidr} back on ethwe")
    time.sleep(6.0)  # past the grace period: a release would have happened by now
    assert host.lookup(ident) == [cidr]
    assert host.attach(container) == [cidr]  # attaching again changes nothing
    peer = name()
    dockerd.run(peer)
    host.attach(peer)
    answer = dockerd.docker("exec", peer, "nc", "-w", "5", cidr.split("/")[0], "7000")
    assert answer == ident[:12]


def test_a_container_attached_before_a_peer_restart_is_re_attached_when_it_restarts(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(dockerd), grace_period=5.0)
    container = name()
    ident = dockerd.run(container, *SERVER)
    (cidr,) = host.attach(container)
    host.restart()  # the new peer process only finds the container's veth on the bridge
    dockerd.docker("restart", "-t", "0", container)
    wait_until(lambda: has_address(dockerd.docker, container, cidr), 10, f"{cidr} back on ethwe")
    assert host.lookup(ident) == [cidr]


def test_a_container_given_an_address_through_ip_alone_gets_no_interface_on_restart(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    # Its networking is someone else's: weavek only handed out the address.
    host = peer_host(runtime(dockerd), grace_period=5.0)
    container = name()
    ident = dockerd.run(container, *SERVER)
    status, cidr = host.request("POST", f"/ip/{ident}?check-alive=true")
    assert status == 200, cidr
    dockerd.docker("restart", "-t", "0", container)
    wait_until(
        lambda: dockerd.docker("inspect", "-f", "{{.State.Running}}", container) == "true",
        10,
        "the restart",
    )
    time.sleep(1.0)  # a re-attach would have happened by now (it takes milliseconds)
    assert not has_address(dockerd.docker, container, cidr)
    assert "ethwe" not in dockerd.docker("exec", container, "ip", "link")
    assert host.lookup(ident) == [cidr]  # the address itself is kept, as for any container


def test_peer_restart_frees_containers_that_vanished_and_keeps_the_others(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(dockerd), grace_period=1.0)
    kept, removed, stopped = name(), name(), name()
    kept_id, removed_id, stopped_id = dockerd.run(kept), dockerd.run(removed), dockerd.run(stopped)
    (kept_cidr,) = host.attach(kept)
    host.attach(removed)
    host.attach(stopped)

    host.kill()
    dockerd.docker("rm", "-f", removed)
    dockerd.docker("kill", stopped)  # dies while nobody watches, but still exists
    host.start()

    assert not host.lookup(removed_id), "a removed container's address survived the restart"
    wait_until(lambda: not host.lookup(stopped_id), 10, "the stopped container's release")
    time.sleep(1.5)
    assert host.lookup(kept_id) == [kept_cidr]


def test_daemon_down_and_back_is_shown_and_nothing_is_lost_or_leaked(
    dockerd_factory: Callable[..., Dockerd], peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    own = dockerd_factory(live_restore=True)  # containers outlive the daemon
    host = peer_host(runtime(own), grace_period=1.0)
    survivor, victim = name(), name()
    survivor_id, victim_id = own.run(survivor), own.run(victim)
    (survivor_cidr,) = host.attach(survivor)
    host.attach(victim)
    victim_pid = own.pid(victim)

    own.stop()
    down = "docker daemon unreachable"
    wait_until(lambda: down in host.status_text(), 15, "status to say docker is down")
    status, body = host.request("POST", f"/attach/{survivor}")
    assert status == 503 and down in body, (status, body)
    os.kill(victim_pid, signal.SIGKILL)  # dies while nobody can tell us
    time.sleep(2.0)  # twice the grace period: nothing may be released without the daemon
    assert host.lookup(survivor_id) == [survivor_cidr]
    assert host.lookup(victim_id)

    own.start()
    wait_until(lambda: down not in host.status_text(), 30, "the reconnection")
    wait_until(lambda: not host.lookup(victim_id), 10, "the release of the container that died")
    time.sleep(1.5)
    assert host.lookup(survivor_id) == [survivor_cidr]
    again = name()
    own.run(again)
    assert host.attach(again)


def test_a_daemon_that_cannot_start_fails_loudly(dockerd_factory: Callable[..., Dockerd]) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        dockerd_factory(containerd="/nonexistent/containerd.sock")
    assert "dockerd" in str(failed.value) and "|" in str(failed.value), "no log tail in the error"
    leftover = subprocess.run(["pgrep", "-f", "/nonexistent/containerd.sock"], check=False)
    assert leftover.returncode == 1, "the daemon that failed to start is still running"


def test_two_hosts_sharing_a_daemon_never_hand_out_the_same_address(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    # Two test hosts joined by a veth pair, one peer each, seeded together; one dockerd
    # serves both (a second one would only cost time: the peers never share state through it).
    first = peer_host(runtime(dockerd), name="::1", seeds="::1,::2", start=False,
                      listen="10.99.1.1:6783", peers=("10.99.1.2:6783",))  # fmt: skip
    second = peer_host(runtime(dockerd), name="::2", seeds="::1,::2", start=False,
                       listen="10.99.1.2:6783", peers=("10.99.1.1:6783",))  # fmt: skip
    link_hosts(first, second)
    first.start()
    second.start()

    got: dict[str, list[str]] = {}
    for host in (first, second, first, second, first, second, first, second):
        container = name()
        dockerd.run(container)
        got[container] = host.attach(container)
    addresses = [cidr for cidrs in got.values() for cidr in cidrs]
    assert len(addresses) == len(set(addresses)) == 8, got


def test_a_container_that_does_not_run_gets_nothing_and_keeps_nothing(
    dockerd: Dockerd, peer_host: PeerHosts, name: Callable[[], str]
) -> None:
    host = peer_host(runtime(dockerd))
    created = name()
    ident = dockerd.docker(
        "create", "--name", created, "--network", "none", BUSYBOX_IMAGE, "sleep", "3600"
    )
    status, body = host.request("POST", f"/attach/{created}")
    assert status == 404 and "not running" in body, (status, body)
    assert not host.lookup(ident), "the address allocated for the attach was not released"

"""attach, detach, expose and hide end to end: a real peer with the netns runtime in a test host.

The peer runs inside a test host's namespace (``--runtime netns``), so its
bridge and veth host ends live there; the CLI runs there too (the API is on
that namespace's loopback). Containers are named namespaces the test makes,
or processes with a namespace of their own (``unshare --net``). Traffic goes
only between those namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hosts import Host, Network, die_with_parent, ip
from hosts import _delete_netns as delete_netns
from peers import PeerProcess, Peers, wait_until

RANGE = "10.98.0.0/22"
GRACE = 2.0


@pytest.fixture(scope="module")
def netns_runtime_installed() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "weavek", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    have = {(row["family"], row["name"]) for row in json.loads(listed.stdout or "[]")}
    if ("runtime", "netns") not in have:
        pytest.fail("these tests need weavek-netns installed (pip install -e plugins/netns)")


class Rig:
    """One host with a peer on ``--runtime netns``, and the containers a test makes there."""

    def __init__(self, net: Network, peer: PeerProcess) -> None:
        self.net = net
        self.host: Host = peer.host or net.hosts[0]
        self.peer = peer
        self.named: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def netns(self, tag: str) -> str:
        name = f"{self.net.prefix}-{tag}"
        ip("netns", "add", name)
        self.named.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def process(self) -> subprocess.Popen[bytes]:
        """A process with a network namespace of its own, in our PID namespace."""
        proc = subprocess.Popen(
            ["unshare", "--net", "sleep", "600"],
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self.procs.append(proc)
        mine = os.stat("/proc/self/ns/net").st_ino
        wait_until(lambda: os.stat(f"/proc/{proc.pid}/ns/net").st_ino != mine, 10, "unshare --net")
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``weavek ARGS`` inside the host, against its peer."""
        argv = [sys.executable, "-m", "weavek", *args, "--http-addr", "127.0.0.1:6784"]
        return subprocess.run(
            self.host.argv(*argv), capture_output=True, text=True, timeout=60, check=False
        )

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout.strip()

    def fails(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode != 0, (args, done.stdout)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]

    def api(
        self, method: str, url: str, *targets: str, json_: bool = False, timeout: float = 30
    ) -> httpx.Response:
        """The HTTP API straight (cheaper than a CLI process per call)."""
        params = [("addr", target) for target in targets]
        headers = {"Accept": "application/json"} if json_ else {}
        return self.peer.client.request(
            method, url, params=params, headers=headers, timeout=timeout
        )

    def attach(self, container: str, *targets: str) -> str:
        response = self.api("POST", f"/attach/{container}", *targets)
        assert response.status_code == 200, response.text
        return response.text

    def lookup(self, ident: str) -> str:
        return self.peer.get(f"/ip/{ident}").text.strip()

    def owned(self) -> dict[str, list[str]]:
        return self.peer.owned()

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
        for name in self.named:
            delete_netns(name)


@pytest.fixture
def rig(
    network: Callable[[int], Network], peers: Peers, netns_runtime_installed: None
) -> Iterator[Rig]:
    net = network(1)
    peer = peers.start(
        "h1",
        name="::1",
        init="seed=::1",
        ipalloc_range=RANGE,
        host=net.hosts[0],
        extra=["--runtime", "netns", "--grace-period", str(GRACE)],
    )
    made = Rig(net, peer)
    try:
        yield made
    finally:
        made.close()


def _in_range(cidr: str) -> bool:
    return ipaddress.ip_interface(cidr).ip in ipaddress.ip_network(RANGE)


SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7100)); s.listen(); print("ready", flush=True)
c, peer = s.accept(); c.recv(100); c.sendall(b"hello " + peer[0].encode())
"""
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7100), timeout=5); c.sendall(b"hi")
print(c.recv(100).decode())
"""


def tcp(server_ns: str, address: str, client_ns: str) -> str:
    """One TCP exchange from ``client_ns`` to ``address`` served in ``server_ns``: the reply."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            ["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT, address],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()


def test_two_containers_get_distinct_addresses_and_talk(rig: Rig) -> None:
    c1, c2 = rig.netns("c1"), rig.netns("c2")
    a1 = rig.ok("attach", c1)
    a2 = rig.ok("attach", "net:default", c2)
    assert a1 != a2 and _in_range(a1) and _in_range(a2), (a1, a2)
    assert rig.lookup(f"netns:{c1}") == a1
    assert rig.lookup(f"netns:{c2}") == a2
    ip1 = a1.split("/")[0]
    assert tcp(c1, ip1, c2) == f"hello {a2.split('/')[0]}"
    # The host ends are ports of the peer's bridge, in the host namespace only.
    assert "vwk" in ip("-n", rig.host.ns, "-br", "link", "show", "master", "weavek").stdout
    assert "weavek" not in ip("-br", "link").stdout


def test_attach_several_targets_json(rig: Rig) -> None:
    c1 = rig.netns("c1")
    response = rig.api("POST", f"/attach/{c1}", "net:10.98.2.0/24", "ip:10.98.3.7/22", json_=True)
    assert response.json() == {
        "container": c1,
        "ident": f"netns:{c1}",
        "runtime": "netns",
        "addresses": ["10.98.2.1/24", "10.98.3.7/22"],
    }
    shown = ip("-n", c1, "-o", "addr", "show", "dev", "ethwe").stdout
    assert "10.98.2.1/24" in shown and "10.98.3.7/22" in shown
    # Attaching again is idempotent for net: targets.
    assert rig.attach(c1, "net:10.98.2.0/24") == "10.98.2.1/24"


def test_detach_removes_the_interface_and_frees(rig: Rig) -> None:
    c1, c2 = rig.netns("c1"), rig.netns("c2")
    a1 = rig.attach(c1)
    response = rig.api("DELETE", f"/attach/{c1}")
    assert (response.status_code, response.text) == (200, a1)
    assert "ethwe" not in ip("-n", c1, "-br", "link").stdout
    assert rig.lookup(f"netns:{c1}") == ""
    assert f"netns:{c1}" not in rig.owned()
    assert rig.attach(c2) == a1  # lowest free again


def test_expose_and_hide(rig: Rig) -> None:
    c1 = rig.netns("c1")
    exposed = rig.ok("expose")
    assert _in_range(exposed)
    on_bridge = ip("-n", rig.host.ns, "-o", "addr", "show", "dev", "weavek").stdout
    assert exposed in on_bridge
    assert rig.lookup("weave:expose") == exposed
    a1 = rig.ok("attach", c1)
    # The host itself now reaches the container over the bridge.
    assert tcp(c1, a1.split("/")[0], rig.host.ns) == f"hello {exposed.split('/')[0]}"
    assert rig.ok("hide") == exposed
    assert exposed not in ip("-n", rig.host.ns, "-o", "addr", "show", "dev", "weavek").stdout
    assert rig.lookup("weave:expose") == ""


def test_a_killed_process_is_released_after_the_grace_period(rig: Rig) -> None:
    proc = rig.process()
    ident = f"pid:{proc.pid}"
    address = rig.attach(str(proc.pid))
    assert rig.lookup(ident) == address
    proc.kill()
    proc.wait(10)
    killed = time.monotonic()
    assert rig.lookup(ident) == address  # within the grace period
    wait_until(lambda: rig.lookup(ident) == "", 15, f"{ident} to be released")
    assert time.monotonic() - killed >= GRACE - 0.5
    c1 = rig.netns("c1")
    assert rig.attach(c1) == address  # reused


def test_unknown_container_allocates_nothing(rig: Rig) -> None:
    line = rig.fails("attach", "no-such-container")
    assert line == "weavek: no container 'no-such-container' known to runtime netns"
    assert rig.fails("attach", "pid:99999999").startswith("weavek: no container 'pid:99999999'")
    assert rig.owned() == {}


def test_namespace_gone_mid_attach_releases(rig: Rig) -> None:
    proc = rig.process()
    os.kill(proc.pid, signal.SIGKILL)
    # Not reaped yet: the process (so /proc/PID) exists, its namespace does not any more.
    wait_until(lambda: _zombie(proc.pid), 10, "a zombie")
    response = rig.api("POST", f"/attach/pid:{proc.pid}")
    line = response.text.strip()
    assert response.status_code == 404, line
    assert line.startswith(f"container pid:{proc.pid} vanished during attach"), line
    assert line.endswith("released 10.98.0.1/22"), line
    assert rig.owned() == {}
    c1 = rig.netns("c1")
    assert rig.attach(c1) == "10.98.0.1/22"


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_bad_arguments_change_nothing(rig: Rig) -> None:
    c1 = rig.netns("c1")
    assert rig.fails("attach", "net:garbage", c1) == (
        "weavek: invalid target 'net:garbage': 'garbage' has no prefix length"
    )
    for target, says in [
        ("net:10.98.0.1/24", "is not aligned"),
        ("bogus:1", "expected net:default"),
        ("ip:10.98.0.1", "has no prefix length"),
        ("net:10.98.0.0/31", "fewer than 4 addresses"),
    ]:
        response = rig.api("POST", f"/attach/{c1}", target)
        assert response.status_code == 400 and says in response.text, (target, response.text)
    assert rig.fails("attach", "--runtime", "docker", c1) == (
        "weavek: runtime 'docker' is not active on this peer (active: netns)"
    )
    response = rig.api("POST", f"/attach/{c1}", "net:10.1.0.0/24")
    assert response.status_code == 400 and "out of bounds" in response.text, response.text
    assert rig.owned() == {}
    assert "ethwe" not in ip("-n", c1, "-br", "link").stdout


def test_an_attach_that_waits_is_cancelled_when_its_client_goes(
    network: Callable[[int], Network], peers: Peers, netns_runtime_installed: None
) -> None:
    net = network(2)
    h1, h2 = net.hosts
    common: dict[str, Any] = {
        "init": "consensus=2",
        "ipalloc_range": RANGE,
        "extra": ["--runtime", "netns"],
    }
    p1 = peers.start("h1", name="::1", host=h1, **common)
    rig = Rig(net, p1)
    try:
        c1 = rig.netns("c1")
        # No ring yet (consensus needs two peers): the allocation waits; the client gives up.
        with pytest.raises(httpx.ReadTimeout):
            rig.api("POST", f"/attach/{c1}", timeout=1.0)
        peers.start("h2", name="::2", host=h2, peers=[f"{h1.address}:6783"], **common)
        assert rig.attach(rig.netns("c2")) == "10.98.0.1/22"  # the ring exists now
        # The abandoned attach was cancelled, not completed for nobody.
        assert f"netns:{c1}" not in rig.owned()
        assert "ethwe" not in ip("-n", c1, "-br", "link").stdout
    finally:
        rig.close()


def test_after_a_restart_vanished_containers_are_freed_and_the_others_kept(rig: Rig) -> None:
    stays, goes = rig.netns("stays"), rig.netns("goes")
    proc = rig.process()
    kept = rig.attach(stays)
    rig.attach(goes)
    rig.attach(str(proc.pid))
    rig.peer.kill()  # no clean shutdown
    ip("netns", "del", goes)
    proc.kill()
    proc.wait(10)
    rig.peer.restart()
    assert rig.owned() == {f"netns:{stays}": [kept]}
    assert rig.lookup(f"netns:{stays}") == kept
    # ... and the survivor is still watched: deleting it now releases it.
    ip("netns", "del", stays)
    wait_until(lambda: rig.owned() == {}, 10, f"netns:{stays} to be released")


def test_containers_on_two_hosts_never_collide(
    network: Callable[[int], Network], peers: Peers, netns_runtime_installed: None
) -> None:
    net = network(2)
    h1, h2 = net.hosts
    common: dict[str, Any] = {"init": "seed=::1,::2", "ipalloc_range": RANGE}
    common["extra"] = ["--runtime", "netns"]
    p1 = peers.start("h1", name="::1", host=h1, peers=[f"{h2.address}:6783"], **common)
    p2 = peers.start("h2", name="::2", host=h2, peers=[f"{h1.address}:6783"], **common)
    rigs = [Rig(net, p1), Rig(net, p2)]
    try:
        got: list[str] = []
        for k in range(6):
            rig = rigs[k % 2]
            got.append(rig.attach(rig.netns(f"c{k}")))
        assert len(set(got)) == len(got) and all(_in_range(a) for a in got), got
    finally:
        for rig in rigs:
            rig.close()

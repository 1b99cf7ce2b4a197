"""The commands that launch, drive and stop a peer, run as a user runs them: real processes.

The first half needs no peer: bad flags, and commands aimed at a port where
nothing listens, must each give one ``weavek: ...`` line and the right exit
code. The second half launches real peers (the ``tcp`` transport, the
``weavedb`` store) on free loopback ports, each test with its own run
directory, and stops every process it started, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NEEDED_PLUGINS = {
    ("transport", "tcp"): "weavek-tcp (pip install -e plugins/tcp)",
    ("store", "weavedb"): "weavek-weavedb (pip install -e plugins/weavedb)",
    ("init", "seed"): "weavek-seed (pip install -e plugins/seed)",
    ("init", "consensus"): "weavek-consensus (pip install -e plugins/consensus)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_for(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
    env.update(WEAVEK_RUN_DIR=str(run_dir), COLUMNS="200", NO_COLOR="1", TERM="dumb")
    env.update(extra)
    return env


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    where = tmp_path / "run"
    where.mkdir()
    return where


@pytest.fixture
def weavek(run_dir: Path) -> Iterator[Weavek]:
    runner = Weavek(run_dir)
    try:
        yield runner
    finally:
        runner.cleanup()


@dataclass
class Weavek:
    """Runs ``python -m weavek`` with a private run directory, and kills what it launched."""

    run_dir: Path
    foreground: list[subprocess.Popen[str]] = field(default_factory=list)

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "weavek", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            env=env_for(self.run_dir, **env),
        )

    def ok(self, *args: str, **env: str) -> str:
        run = self(*args, **env)
        assert run.returncode == 0, f"weavek {' '.join(args)}: {run.stderr}"
        return run.stdout

    def start_foreground(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "weavek", "launch", "--foreground", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(self.run_dir),
        )
        self.foreground.append(proc)
        return proc

    def pid(self, http_port: int) -> int | None:
        try:
            return int((self.run_dir / f"weavek-{http_port}.pid").read_text())
        except (OSError, ValueError):
            return None

    def cleanup(self) -> None:
        for proc in self.foreground:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        for pid_file in self.run_dir.glob("weavek-*.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def assert_one_line_error(run: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("weavek: "), lines[0]
    assert says in lines[0], lines[0]
    assert "Traceback" not in run.stderr


# -------------------------------------------------------------------------
# No peer needed
# -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ipalloc-range", "10.32.0.1/12"], "not aligned (did you mean 10.32.0.0/12?)"),
        (["--ipalloc-range", "10.32.0.0/31"], "fewer than 4 addresses"),
        (["--ipalloc-range", "10.32.0.0/40"], "prefix length /40 out of range"),
        (["--ipalloc-range", "nonsense"], "--ipalloc-range"),
        (["--ipalloc-range", "10.32.0.0"], "no prefix length"),
        (["--ipalloc-default-subnet", "10.64.0.0/16"], "does not overlap the range 10.32.0.0/12"),
        (["--ipalloc-default-subnet", "10.32.0.1/16"], "not aligned"),
        (["--ipalloc-default-subnet", "10.32.0.0/31"], "fewer than 4 addresses"),
        (["--ipalloc-default-subnet", "fd00::/64"], "does not overlap"),
        (["--name", "zz"], "invalid peer name 'zz'"),
        (["--name", "::"], "--name"),
        (["--name", "0:0:0:0:0:0"], "peer name 0"),
        (["--listen", "host:99999"], "port must be 1-65535"),
        (["--listen", "bad host:1"], "bad host"),
        (["--http-addr", "127.0.0.1"], "expected HOST:PORT"),
        (["--http-addr", "[::1:6784"], "--http-addr"),
        (["host:0"], "port must be 1-65535"),
        (["--init", "nosuch"], "unknown init strategy 'nosuch' (installed:"),
        (["--init", "seed=zz::"], "--init"),
        (["--persist", "nosuch=/x"], "unknown store 'nosuch' (installed:"),
        (["--runtime", "nosuch"], "unknown runtime 'nosuch'"),
        (["--transport", "nosuch"], "unknown transport 'nosuch' (installed:"),
    ],
)
def test_launch_rejects_bad_flags_before_starting(
    weavek: Weavek, args: list[str], says: str
) -> None:
    run = weavek("launch", "--persist", f"weavedb={weavek.run_dir}/never.db", *args)
    assert_one_line_error(run, 2, says)
    assert not (weavek.run_dir / "never.db").exists()
    assert list(weavek.run_dir.iterdir()) == []  # nothing started, nothing written


def test_launch_accepts_an_ipv6_range_up_to_the_plugins(weavek: Weavek) -> None:
    # Every flag is valid; only the made-up transport stops it, and it is checked last.
    run = weavek(
        "launch",
        "--ipalloc-range",
        "fd00::/64",
        "--ipalloc-default-subnet",
        "fd00::/80",
        "--listen",
        "[::1]:6783",
        "--name",
        "::1",
        "--init",
        "seed=::1,::2",
        "--transport",
        "nosuch",
        "--persist",
        f"weavedb={weavek.run_dir}/x.db",
        "[fd00::2]:6783",
        "fd00::3",
        "host4",
    )
    assert_one_line_error(run, 2, "unknown transport 'nosuch'")


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "ipam"],
        ["status", "peers"],
        ["status", "--json"],
        ["report"],
        ["report", "--json"],
        ["prime", "--timeout", "1"],
        ["rmpeer", "::5"],
        ["ip", "allocate"],
        ["ip", "allocate", "c1", "--subnet", "10.40.0.0/16", "--check-alive"],
        ["ip", "claim", "c1", "10.32.0.9/12"],
        ["ip", "release", "c1"],
        ["ip", "release", "c1", "10.32.0.9"],
        ["ip", "lookup", "c1"],
    ],
)
def test_no_peer_answering_is_one_line_and_exit_1(weavek: Weavek, args: list[str]) -> None:
    addr = f"127.0.0.1:{free_port()}"
    run = weavek(*args, "--http-addr", addr)
    assert_one_line_error(run, 1, f"no peer answering at {addr} (is it launched?)")


def test_http_addr_comes_from_the_environment(weavek: Weavek) -> None:
    addr = f"127.0.0.1:{free_port()}"
    run = weavek("status", WEAVEK_HTTP_ADDR=addr)
    assert_one_line_error(run, 1, f"no peer answering at {addr}")


def test_stop_without_a_peer(weavek: Weavek) -> None:
    addr = f"127.0.0.1:{free_port()}"
    assert_one_line_error(weavek("stop", "--http-addr", addr), 1, f"no peer running on {addr}")


def test_stop_ignores_a_stale_pid_file(weavek: Weavek) -> None:
    port = free_port()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (weavek.run_dir / f"weavek-{port}.pid").write_text(f"{dead.pid}\n")
    run = weavek("stop", "--http-addr", f"127.0.0.1:{port}")
    assert_one_line_error(run, 1, "no peer running on")
    assert not (weavek.run_dir / f"weavek-{port}.pid").exists()


def test_reset_without_a_peer_still_deletes_the_data(weavek: Weavek, tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    db.write_bytes(b"")
    (tmp_path / "data.db-wal").write_bytes(b"")
    addr = f"127.0.0.1:{free_port()}"
    run = weavek("reset", "--http-addr", addr, "--persist", f"weavedb={db}")
    assert run.returncode == 0, run.stderr
    assert "its ranges were not handed over" in run.stderr
    assert f"deleted {db}" in run.stdout
    assert not db.exists()
    assert not (tmp_path / "data.db-wal").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ip", "allocate", "--subnet", "bad"], "--subnet"),
        (["ip", "allocate", "--subnet", "10.0.0.1"], "no prefix length"),
        (["ip", "claim", "c1", "10.32.0.9"], "no prefix length"),
        (["ip", "claim", "c1"], "Missing argument"),
        (["ip", "release", "c1", "nope"], "ADDRESS"),
        (["status", "everything"], "everything"),
        (["rmpeer"], "Missing argument"),
        (["prime", "--timeout", "-1"], "--timeout"),
        (["status", "--http-addr", "nohost:"], "--http-addr"),
    ],
)
def test_client_usage_errors_exit_2(weavek: Weavek, args: list[str], says: str) -> None:
    assert_one_line_error(weavek(*args), 2, says)


def test_help_shows_every_default(weavek: Weavek) -> None:
    text = weavek.ok("launch", "--help")
    for default in (
        "10.32.0.0/12",
        "consensus",
        "weavedb",
        "tcp",
        "0.0.0.0:6783",
        "127.0.0.1:6784",
        "WEAVEK_HTTP_ADDR",
        "WEAVEK_PASSWORD",
        "default: the host name",
        "default: the whole range",
        "default: none",
        "default: in the background",
    ):
        assert default in text, default
    for command in ("stop", "prime", "status", "report", "rmpeer", "reset"):
        assert "127.0.0.1:6784" in weavek.ok(command, "--help"), command
    for sub in ("allocate", "claim", "release", "lookup"):
        assert "127.0.0.1:6784" in weavek.ok("ip", sub, "--help"), sub
    assert "60" in weavek.ok("prime", "--help")
    listed = weavek.ok("--help")
    for command in ("launch", "stop", "prime", "status", "report", "rmpeer", "reset", "ip"):
        assert command in listed


# -------------------------------------------------------------------------
# Real peers
# -------------------------------------------------------------------------


@pytest.fixture
def plugins_present(weavek: Weavek) -> None:
    """Fail (never skip) when a plugin these tests launch peers with is not installed."""
    rows = json.loads(weavek.ok("plugins", "--json"))
    have = {(row["family"], row["name"]) for row in rows}
    missing = [dist for key, dist in NEEDED_PLUGINS.items() if key not in have]
    if missing:
        pytest.fail("end-to-end CLI tests need these plugins installed: " + "; ".join(missing))


@dataclass
class Launched:
    http: str
    port: int
    listen: str
    db: Path
    args: list[str] = field(default_factory=list)


def launch_args(tmp_path: Path, name: str, *extra: str) -> tuple[Launched, list[str]]:
    port = free_port()
    peer = Launched(
        http=f"127.0.0.1:{port}",
        port=port,
        listen=f"127.0.0.1:{free_port()}",
        db=tmp_path / f"{name}.db",
    )
    args = [
        "--http-addr",
        peer.http,
        "--listen",
        peer.listen,
        "--persist",
        f"weavedb={peer.db}",
        "--nickname",
        name,
        *extra,
    ]
    peer.args = args
    return peer, args


def launch(weavek: Weavek, tmp_path: Path, name: str, *extra: str) -> Launched:
    peer, args = launch_args(tmp_path, name, *extra)
    weavek.ok("launch", *args)
    return peer


@pytest.mark.usefixtures("plugins_present")
def test_one_peer_from_launch_to_stop(weavek: Weavek, tmp_path: Path) -> None:
    peer = launch(weavek, tmp_path, "solo", "--name", "::1", "--init", "seed=::1")
    at = ("--http-addr", peer.http)
    pid = weavek.pid(peer.port)
    assert pid is not None

    other_db = f"weavedb={tmp_path}/other.db"
    again = weavek("launch", "--init", "seed=::1", "--persist", other_db, "--http-addr", peer.http)
    assert_one_line_error(again, 1, f"a peer is already running on {peer.http}")

    weavek.ok("prime", "--timeout", "20", *at)
    status = weavek.ok("status", *at)
    assert "Status: ready" in status
    assert "Range: 10.32.0.0/12" in status
    assert "00:00:00:00:00:01(solo)" in weavek.ok("status", "ipam", *at)
    assert "00:00:00:00:00:01(solo)" in weavek.ok("status", "peers", *at)

    first = weavek.ok("ip", "allocate", "c1", "--check-alive", *at).strip()
    assert first.startswith("10.") and first.endswith("/12")
    assert weavek.ok("ip", "allocate", "c1", *at).strip() == first  # idempotent per ident
    other = weavek.ok("ip", "allocate", *at).strip()
    assert other != first
    in_subnet = weavek.ok("ip", "allocate", "c2", "--subnet", "10.40.0.0/16", *at).strip()
    assert in_subnet == "10.40.0.1/16"
    weavek.ok("ip", "claim", "c3", "10.32.9.9/12", *at)
    assert weavek.ok("ip", "lookup", "c3", *at).split() == ["10.32.9.9/12"]
    assert first in weavek.ok("ip", "lookup", "c1", *at)

    weavek.ok("ip", "release", "c3", "10.32.9.9", *at)
    assert weavek.ok("ip", "lookup", "c3", *at).strip() == ""
    gone = weavek("ip", "release", "c3", *at)
    assert_one_line_error(gone, 1, "no addresses for c3")

    report = json.loads(weavek.ok("report", "--json", *at))
    assert report["IPAM"]["Range"] == "10.32.0.0/12"
    assert report["IPAM"]["ActiveIPs"] == 3
    status_json = json.loads(weavek.ok("status", "--json", *at))
    assert isinstance(status_json, dict)

    stopped = weavek.ok("stop", *at)
    assert f"pid {pid}" in stopped
    assert weavek.pid(peer.port) is None
    assert_one_line_error(weavek("status", *at), 1, "no peer answering")
    assert_one_line_error(weavek("stop", *at), 1, "no peer running")

    # The data survived: the same ident gets the same address after a restart.
    weavek.ok("launch", *peer.args)
    relaunched = weavek.ok("ip", "lookup", "c1", *at)
    assert first.split("/")[0] in relaunched
    weavek.ok("stop", *at)


@pytest.mark.usefixtures("plugins_present")
def test_two_peers_agree_by_consensus_and_rmpeer_takes_over(weavek: Weavek, tmp_path: Path) -> None:
    a = launch(weavek, tmp_path, "a", "--name", "::a", "--init", "consensus=2")
    b = launch(weavek, tmp_path, "b", "--name", "::b", "--init", "consensus=2", a.listen)
    for peer in (a, b):
        weavek.ok("prime", "--timeout", "30", "--http-addr", peer.http)
    on_a = weavek.ok("ip", "allocate", "x", "--http-addr", a.http).strip()
    on_b = weavek.ok("ip", "allocate", "y", "--http-addr", b.http).strip()
    assert on_a != on_b
    ipam = weavek.ok("status", "ipam", "--http-addr", a.http)
    assert "(a)" in ipam and "(b)" in ipam

    weavek.ok("stop", "--http-addr", b.http)
    taken = weavek.ok("rmpeer", "00:00:00:00:00:0b", "--http-addr", a.http)
    assert "IPs taken over from 00:00:00:00:00:0b" in taken
    assert int(taken.split()[0]) > 0
    weavek.ok("stop", "--http-addr", a.http)


@pytest.mark.usefixtures("plugins_present")
def test_prime_times_out_with_the_reason(weavek: Weavek, tmp_path: Path) -> None:
    peer = launch(weavek, tmp_path, "lonely", "--init", "consensus=3")
    run = weavek("prime", "--timeout", "1.5", "--http-addr", peer.http)
    assert run.returncode == 1
    # Not a terminal: the progress is a line each time the status changes, then the verdict.
    *progress, verdict = run.stderr.strip().splitlines()
    assert verdict == "weavek: not ready after 1.5 s: awaiting consensus (quorum: 2, known: 1)"
    assert progress, run.stderr
    assert all(line.startswith("waiting for the ring (") for line in progress), progress
    assert "awaiting consensus (quorum: 2, known: 1)" in progress[-1]
    weavek.ok("stop", "--http-addr", peer.http)


@pytest.mark.usefixtures("plugins_present")
def test_reset_hands_over_stops_and_deletes_the_data(weavek: Weavek, tmp_path: Path) -> None:
    peer = launch(weavek, tmp_path, "doomed", "--name", "::1", "--init", "seed=::1")
    weavek.ok("ip", "allocate", "c1", "--http-addr", peer.http)
    assert peer.db.exists()
    pid = weavek.pid(peer.port)
    out = weavek.ok("reset", "--http-addr", peer.http)
    assert f"peer stopped (pid {pid})" in out
    assert f"deleted {peer.db}" in out
    assert not peer.db.exists()
    assert weavek.pid(peer.port) is None
    assert_one_line_error(weavek("status", "--http-addr", peer.http), 1, "no peer answering")


@pytest.mark.usefixtures("plugins_present")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_foreground_peer_stops_cleanly_on_a_signal(
    weavek: Weavek, tmp_path: Path, signum: signal.Signals
) -> None:
    peer, args = launch_args(tmp_path, "fg", "--name", "::1", "--init", "seed=::1")
    proc = weavek.start_foreground(*args)
    deadline = time.monotonic() + 20
    while weavek("status", "--http-addr", peer.http).returncode != 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the foreground peer never answered"
        time.sleep(0.2)
    assert weavek.pid(peer.port) == proc.pid
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert weavek.pid(peer.port) is None


@pytest.mark.usefixtures("plugins_present")
def test_stop_works_on_a_foreground_peer(weavek: Weavek, tmp_path: Path) -> None:
    peer, args = launch_args(tmp_path, "fg", "--name", "::1", "--init", "seed=::1")
    proc = weavek.start_foreground(*args)
    deadline = time.monotonic() + 20
    while weavek.pid(peer.port) is None or weavek("status", "--http-addr", peer.http).returncode:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    weavek.ok("stop", "--http-addr", peer.http)
    assert proc.wait(10) == 0


@pytest.mark.usefixtures("plugins_present")
def test_a_peer_that_cannot_start_shows_its_log(weavek: Weavek, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The transport cannot listen; the HTTP port itself is free.
        _, args = launch_args(tmp_path, "broken", "--init", "seed=::1", "--name", "::1")
        args[args.index("--listen") + 1] = f"127.0.0.1:{port}"
        run = weavek("launch", *args)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr.splitlines()[-1]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("weavek: the peer exited (code 1) before answering"), run.stderr
    assert "  | " in run.stderr  # the end of its log came first
    assert not list(weavek.run_dir.glob("*.pid"))


@pytest.mark.usefixtures("plugins_present")
def test_the_password_is_never_on_a_command_line(weavek: Weavek, tmp_path: Path) -> None:
    peer = launch(
        weavek, tmp_path, "secret", "--init", "seed=::1", "--name", "::1", "--password", "s3cr3t"
    )
    pid = weavek.pid(peer.port)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"s3cr3t" not in cmdline
    assert b"--foreground" in cmdline
    weavek.ok("stop", "--http-addr", peer.http)

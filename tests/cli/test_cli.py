"""The ``weavek`` command as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def weavek(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weavek", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_simulate_allocates_unique_addresses_and_prints_status() -> None:
    run = weavek("simulate", "--peers", "4", "--seeds", "2", "--allocations", "12", "--seed", "3")
    assert run.returncode == 0, run.stderr
    allocations = [line.split()[-1] for line in run.stdout.splitlines() if "container-" in line]
    assert len(allocations) == 12
    assert len(set(allocations)) == 12
    assert all(cidr.startswith("10.") and cidr.endswith("/12") for cidr in allocations)
    assert "Status: ready" in run.stdout
    assert "(3 active)" in run.stdout  # peer-0 got every fourth of the 12
    assert "12 allocations on 4 peers, 12 distinct addresses" in run.stdout


def test_simulate_is_reproducible_from_its_seed() -> None:
    first = weavek("simulate", "--seed", "11", "--allocations", "6")
    again = weavek("simulate", "--seed", "11", "--allocations", "6")
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout


def test_simulate_ipv6() -> None:
    run = weavek("simulate", "--ipalloc-range", "fd00::/64", "--allocations", "3")
    assert run.returncode == 0, run.stderr
    assert "fd00::" in run.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["simulate", "--init", "nosuch"], "unknown init strategy 'nosuch' (installed:"),
        (["simulate", "--ipalloc-range", "10.0.0.0/40"], "prefix length /40 out of range"),
        (["simulate", "--init", "seed=zz::"], "--init"),
        (["simulate", "--peers", "0"], "--peers"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    run = weavek(*args)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("weavek: ")
    assert says in lines[0]
    assert "Traceback" not in run.stderr


def test_plugins_lists_the_seed_strategy() -> None:
    run = weavek("plugins", "--json")
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert {"family": "init", "name": "seed", "distribution": "weavek-seed"}.items() <= next(
        row for row in rows if row["name"] == "seed"
    ).items()
    table = weavek("plugins")
    assert table.stdout.splitlines()[0].split() == ["FAMILY", "NAME", "DISTRIBUTION", "VERSION"]

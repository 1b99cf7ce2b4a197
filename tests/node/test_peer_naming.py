"""Choosing a peer name: operator's, persisted, machine's, random."""

from __future__ import annotations

from pathlib import Path

from weavek.core.snapshot import Snapshot
from weavek.node.naming import choose_name, machine_name, random_name


def _is_local_unicast(name: int) -> bool:
    first = name >> 40
    return bool(first & 0x02) and not first & 0x01


def test_machine_name_is_stable_local_and_unicast(tmp_path: Path) -> None:
    path = tmp_path / "machine-id"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    name = machine_name(path)
    assert name is not None
    assert name == machine_name(path)
    assert _is_local_unicast(name)
    assert 0 < name < 1 << 48


def test_machine_name_missing_or_empty(tmp_path: Path) -> None:
    assert machine_name(tmp_path / "absent") is None
    (tmp_path / "empty").write_text("\n")
    assert machine_name(tmp_path / "empty") is None


def test_random_names_are_local_unicast_and_differ() -> None:
    names = {random_name() for _ in range(20)}
    assert len(names) == 20
    assert all(_is_local_unicast(n) for n in names)


def test_preference_order(tmp_path: Path) -> None:
    path = tmp_path / "machine-id"
    path.write_text("abc")
    persisted = Snapshot(peer=0x42, ring=None)
    assert choose_name(7, persisted, path) == 7
    assert choose_name(None, persisted, path) == 0x42
    assert choose_name(None, None, path) == machine_name(path)
    assert _is_local_unicast(choose_name(None, None, tmp_path / "absent"))

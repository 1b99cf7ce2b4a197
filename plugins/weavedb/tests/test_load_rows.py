"""Holding rows as the load path decodes them: fuzzed, since a file may hold anything."""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weavek.core.address import CIDR
from weavek.core.snapshot import Snapshot
from weavek_weavedb import WeavedbError
from weavek_weavedb.database import Database
from weavek_weavedb.holdings import Holdings

Row = tuple[object, object, object, object, object]

addresses = st.ip_addresses().map(lambda ip: (str(ip), ip.version, int(ip)))
values = st.one_of(
    st.text(max_size=45), st.integers(), st.none(), st.binary(max_size=8), st.floats()
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return Database(Path(tmp_path_factory.mktemp("rows")) / "weavedb.sqlite")


def decode(db: Database, rows: list[Row]) -> Holdings:
    return db._holdings(rows)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(addresses, st.booleans()), min_size=1, max_size=5))
def test_valid_rows_come_back_exactly(
    db: Database, held: list[tuple[tuple[str, int, int], bool]]
) -> None:
    rows: list[Row] = []
    for k, ((text, version, value), flag) in enumerate(held):
        assert int(ipaddress.ip_address(text)) == value
        ident = "multi" if k % 2 else f"one{k}"
        rows.append((ident, text, 32 if version == 4 else 64, version, int(flag)))
    rows.sort(key=lambda row: str(row[0]))  # as the primary key orders them
    out = decode(db, rows)
    expected: dict[str, list[CIDR]] = {}
    for ident, text, prefix, version, _ in rows:
        value = int(ipaddress.ip_address(str(text)))
        expected.setdefault(str(ident), []).append(CIDR(value, int(str(prefix)), int(str(version))))
    assert {i: list(h.cidrs) for i, h in out.items()} == expected
    for ident in expected:
        flags = [bool(r[4]) for r in rows if r[0] == ident]
        assert out[ident].is_container == any(flags)
    assert len(out) == len(expected) and set(out) == set(expected)
    # The restore's fast path gives the rows the Holding objects would.
    generic = Snapshot(1, None, dict(out.items())).address_rows()
    assert sorted(out.address_rows()) == sorted(generic)
    assert [row[0] for row in out.address_rows()] == sorted(row[0] for row in generic)


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=45), values, values, values)
def test_any_row_loads_right_or_is_refused_clearly(
    db: Database, address: str, prefix: object, version: object, flag: object
) -> None:
    try:
        out = decode(db, [("x", address, prefix, version, flag)])
    except WeavedbError as err:
        assert "does not parse" in str(err)
        return
    (cidr,) = out["x"].cidrs
    ip = ipaddress.ip_address(address)  # what was accepted is an address, strictly written
    assert (cidr.addr, cidr.version, cidr.prefix) == (int(ip), ip.version, prefix)
    assert ip.version == version and flag in (0, 1)


def test_a_row_with_leading_zeros_or_a_zone_is_refused(db: Database) -> None:
    for text, version in (("010.32.0.1", 4), ("10.32.0.1 ", 4), ("fe80::1%eth0", 6)):
        with pytest.raises(WeavedbError, match="does not parse"):
            decode(db, [("x", text, 12, version, 0)])


def test_rows_stream_from_the_cursor(tmp_path: Path) -> None:
    db = Database(tmp_path / "weavedb.sqlite")
    conn = sqlite3.connect(tmp_path / "weavedb.sqlite")
    conn.executemany(
        "INSERT INTO holdings VALUES (?, ?, ?, ?, ?)",
        [(f"c{i:03}", f"10.32.0.{i}", 12, 4, i % 2) for i in range(1, 200)],
    )
    conn.commit()
    conn.close()
    rows = db._conn.execute("SELECT ident, address, prefix, version, is_container FROM holdings")
    out = decode(db, rows)
    assert len(out) == 199
    assert out["c007"].cidrs == (CIDR(0x0A200007, 12, 4),) and out["c007"].is_container
    db.close()

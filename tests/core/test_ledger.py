"""Ledger: which ident holds which addresses on one peer (Weave's ``owned`` map).

Lower-case hex idents of 16+ characters (container IDs) are stored as the
bytes they spell; every other ident is kept as given. Either way an ident
goes in and comes out as exactly the same string.
"""

from __future__ import annotations

import pytest

from weavek.core.ledger import Ledger, ident_of, key_of

CONTAINER = "0123456789abcdef" * 4  # a Docker container ID: 64 lower-case hex digits


# -- compact keys ------------------------------------------------------------------------


def test_container_id_is_stored_as_bytes() -> None:
    key = key_of(CONTAINER)
    assert key == bytes.fromhex(CONTAINER)
    assert len(key) == 32
    assert ident_of(key) == CONTAINER


@pytest.mark.parametrize(
    "ident",
    [
        "c1",
        "_",
        "10.0.3.5",
        "fd00::1",
        "",
        "0123456789abcde",  # hex but shorter than 16
        "0123456789abcdef0",  # odd length
        CONTAINER.upper(),  # upper case would come back lower case
        "0123456789ABcdef",
        "01 23 45 67 89 ab cd ef",  # fromhex skips spaces
        "0123456789abcdeg",  # not hex
        "weave:expose",
        "ünïcödé-ident",
    ],
)
def test_other_idents_round_trip_exactly(ident: str) -> None:
    key = key_of(ident)
    assert key == ident and type(key) is str
    assert ident_of(key) == ident
    ledger = Ledger()
    ledger.add(key, 7, False)
    assert [name for name, _, _ in ledger.items()] == [ident]
    assert ledger.addresses(ident) == (7,)


def test_case_makes_distinct_idents() -> None:
    ledger = Ledger()
    ledger.add(key_of(CONTAINER), 1, True)
    ledger.add(key_of(CONTAINER.upper()), 2, True)
    assert ledger.addresses(CONTAINER) == (1,)
    assert ledger.addresses(CONTAINER.upper()) == (2,)
    assert sorted(name for name, _, _ in ledger.items()) == sorted([CONTAINER, CONTAINER.upper()])


def test_sixteen_hex_digits_is_compact() -> None:
    ident = "00ff" * 4
    assert key_of(ident) == b"\x00\xff" * 4
    assert ident_of(key_of(ident)) == ident


# -- holding addresses -------------------------------------------------------------------


def test_single_address() -> None:
    ledger = Ledger()
    key = key_of(CONTAINER)
    assert len(ledger) == 0 and not ledger.holds(key)
    ledger.add(key, 100, True)
    assert ledger.holds(key) and ledger.is_container(key)
    assert len(ledger) == 1
    assert ledger.addresses(CONTAINER) == (100,)
    assert ledger.find(key, 100, 101) == 100
    assert ledger.find(key, 0, 100) is None
    assert ledger.find(key_of("other"), 0, 1000) is None
    assert list(ledger.items()) == [(CONTAINER, (100,), True)]
    assert ledger.holder(100) == CONTAINER
    assert ledger.holder(101) is None


def test_multi_address_ident() -> None:
    ledger = Ledger()
    ledger.add("c1", 10, False)
    ledger.add("c1", 30, False)
    ledger.add("c1", 20, False)
    assert ledger.addresses("c1") == (10, 30, 20)  # stored order, as Weave looks them up
    assert len(ledger) == 3
    assert ledger.find("c1", 15, 40) == 30  # the first held inside the range
    assert ledger.find("c1", 20, 21) == 20
    assert ledger.find("c1", 31, 40) is None
    assert ledger.holder(20) == "c1"
    assert not ledger.is_container("c1")
    assert ledger.remove("c1", 30)
    assert ledger.addresses("c1") == (10, 20)
    assert ledger.remove("c1", 10)
    assert ledger.addresses("c1") == (20,)
    assert ledger.find("c1", 0, 100) == 20
    assert len(ledger) == 1


def test_remove() -> None:
    ledger = Ledger()
    ledger.add("c1", 5, True)
    assert not ledger.remove("c1", 6)
    assert not ledger.remove("nobody", 5)
    ledger.add("c1", 7, True)
    assert not ledger.remove("c1", 8)
    assert len(ledger) == 2
    assert ledger.remove("c1", 5) and ledger.remove("c1", 7)
    assert not ledger.holds("c1")
    assert not ledger.is_container("c1")  # forgetting the ident forgets its flags
    assert ledger.addresses("c1") == ()
    assert len(ledger) == 0
    assert list(ledger.items()) == []


def test_pop() -> None:
    ledger = Ledger()
    key = key_of(CONTAINER)
    ledger.add(key, 1, True)
    ledger.add(key, 2, True)
    ledger.add("other", 3, False)
    ledger.mark_dead(key, 5.0)
    assert ledger.pop(key) == (1, 2)
    assert not ledger.holds(key) and not ledger.is_dead(key) and not ledger.is_container(key)
    assert ledger.pop(key) == ()
    assert len(ledger) == 1
    assert ledger.pop("other") == (3,)
    assert len(ledger) == 0


def test_outside_addresses_are_indexed() -> None:
    ledger = Ledger()
    ledger.add("c1", 1000, False, outside=True)
    ledger.add("c1", 5, False)
    assert ledger.outside_holder(1000) == "c1"
    assert ledger.outside_holder(5) is None  # inside the universe: the space knows
    assert ledger.holder(1000) == "c1"
    ledger.remove("c1", 1000)
    assert ledger.outside_holder(1000) is None
    ledger.add(key_of(CONTAINER), 2000, True, outside=True)
    assert ledger.outside_holder(2000) == key_of(CONTAINER)
    assert ledger.holder(2000) == CONTAINER
    ledger.pop(key_of(CONTAINER))
    assert ledger.outside_holder(2000) is None


# -- dead containers ---------------------------------------------------------------------


def test_dead_marks() -> None:
    ledger = Ledger()
    ledger.add("a", 1, True)
    ledger.add("b", 2, True)
    ledger.mark_dead("a", 10.0)
    ledger.mark_dead("b", 20.0)
    assert ledger.is_dead("a") and ledger.is_dead("b")
    assert ledger.dead_since(9.9) == []
    assert ledger.dead_since(10.0) == ["a"]  # at or before
    assert sorted(map(ident_of, ledger.dead_since(30.0))) == ["a", "b"]
    ledger.revive("a")
    assert not ledger.is_dead("a")
    assert ledger.dead_since(30.0) == ["b"]
    ledger.revive("nobody")  # harmless
    ledger.remove("b", 2)
    assert ledger.dead_since(30.0) == []


def test_container_keys() -> None:
    ledger = Ledger()
    ledger.add(key_of(CONTAINER), 1, True)
    ledger.add("plain", 2, False)
    ledger.add("c2", 3, True)
    assert sorted(map(ident_of, ledger.container_keys())) == sorted([CONTAINER, "c2"])
    # A later non-container add does not clear the flag of a container.
    ledger.add("c2", 4, False)
    assert ledger.is_container("c2")

"""What the store writes and reads: its values, its keys, the fencing, and the plugin's wiring.

The decoders are fuzzed with Hypothesis (they take bytes anyone with access
to etcd may have written: only RecordError may come out); the rest runs
against a real etcd.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json

import cbor2
import pytest
from etcd_client import client
from hypothesis import given, settings
from hypothesis import strategies as st

from weavek.core import codec
from weavek.core.address import CIDR
from weavek.core.effects import Allocated, ClearStore, Released, SaveRing
from weavek.interfaces import Store
from weavek.plugins import make_plugin_manager, resolve
from weavek.testing.etcd import EtcdCluster
from weavek.testing.store_contract import PEER_A, PEER_B, make_ring, state_of, v4, v6
from weavek_etcd import EtcdDataError, EtcdStore, EtcdTakenOver, parse_target
from weavek_etcd.records import (
    FORMAT,
    Ledger,
    RecordError,
    decode_ledger,
    decode_record,
    encode_ledger,
    encode_record,
    ops_of,
)
from weavek_etcd.store import PIECE, _head

PEER = 0x02_00_00_00_00_09
PREFIX = b"/weavek/02:00:00:00:00:09/"

# -- the decoders (no etcd) ----------------------------------------------------------

cidrs = st.one_of(
    st.builds(CIDR, st.integers(0, (1 << 32) - 1), st.integers(0, 32), st.just(4)),
    st.builds(CIDR, st.integers(0, (1 << 128) - 1), st.integers(0, 128), st.just(6)),
)
idents = st.text(max_size=40)
effects = st.one_of(
    st.builds(Allocated, idents, cidrs, st.booleans()),
    st.builds(Released, idents, cidrs),
    st.builds(SaveRing, st.just(make_ring()), st.sampled_from([PEER_A, PEER_B])),
    st.builds(ClearStore, st.just("x")),
)
cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_record_error(data: bytes) -> None:
    for decode in (decode_record, decode_ledger):
        for value in (data, bytes([FORMAT]) + data):
            try:
                decode(value)
            except RecordError as exc:
                assert str(exc) and "\n" not in str(exc)


@settings(max_examples=400, deadline=None)
@given(cbor_values)
def test_well_formed_cbor_of_the_wrong_shape_raises_only_record_error(value: object) -> None:
    body = cbor2.dumps(value)
    for decode, data in (
        (decode_record, bytes([FORMAT]) + body),
        (decode_ledger, encode_ledger(Ledger())[:1] + _zstd(body)),
    ):
        with contextlib.suppress(RecordError):
            decode(data)


def _zstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(body)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(effects, max_size=12), max_size=8))
def test_records_and_ledgers_round_trip(batches: list[list[object]]) -> None:
    direct, replayed = Ledger(), Ledger()
    for batch in batches:
        ops = ops_of(batch)  # type: ignore[arg-type]
        direct.apply(ops)
        replayed.apply(decode_record(encode_record(ops)))
    again = decode_ledger(encode_ledger(direct))
    for ledger in (replayed, again):
        assert (ledger.peer, ledger.ring, ledger.owned) == (direct.peer, direct.ring, direct.owned)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["gen", "seq", "pieces", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.builds(lambda v: json.dumps(v).encode(), json_values)))
def test_head_values_raise_only_record_error(data: bytes) -> None:
    with contextlib.suppress(RecordError):
        head = _head(data)
        assert set(head) == {"gen", "seq", "pieces"} and head["pieces"] >= 1


def test_a_ledger_declaring_a_huge_size_is_refused_before_decompressing() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(bytes(8 << 20))
    frame = bytearray(bomb)
    with pytest.raises(RecordError):
        decode_ledger(bytes([FORMAT]) + bytes(frame[:-4]))  # truncated
    unknown = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 100)
    with pytest.raises(RecordError, match="size"):
        decode_ledger(bytes([FORMAT]) + unknown)


def test_a_record_holding_a_bad_ring_is_refused() -> None:
    with pytest.raises(RecordError, match="ring does not decode"):
        decode_record(bytes([FORMAT]) + cbor2.dumps([[0, PEER_A, b"\x10garbage"]]))
    good = codec.encode_ring(make_ring())
    with pytest.raises(RecordError, match="not a peer name"):
        decode_record(bytes([FORMAT]) + cbor2.dumps([[0, 1 << 48, good]]))


# -- the argument -------------------------------------------------------------------


def test_the_argument() -> None:
    target = parse_target("http://127.0.0.1:2379,http://[::1]:2380")
    assert target.endpoints == (("127.0.0.1", 2379), ("::1", 2380))
    assert target.root == "/weavek"
    assert parse_target("http://a:1/net-a,http://b:2").root == "/net-a"
    for bad in (None, "", "127.0.0.1:2379", "https://a:1", "http://a", "http://u:p@a:1"):
        with pytest.raises(ValueError, match="etcd"):
            parse_target(bad)
    with pytest.raises(ValueError, match="different key roots"):
        parse_target("http://a:1/x,http://b:2/y")


def test_the_entry_point_finds_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVEK_PLUGINS", raising=False)
    monkeypatch.delenv("WEAVEK_DISABLE_PLUGINS", raising=False)
    eps = importlib.metadata.entry_points(group="weavek", name="etcd")
    assert [ep.value for ep in eps] == ["weavek_etcd.hooks"]
    cls: type[Store] = resolve(make_plugin_manager(), "store", "etcd")
    assert cls is EtcdStore


# -- against etcd -------------------------------------------------------------------


async def fill(etcd: EtcdCluster, n: int = 20) -> None:
    async with EtcdStore(etcd.endpoints, peer=PEER) as store:
        await store.load()
        await store.apply([SaveRing(make_ring(), PEER_A)])
        for i in range(n):
            await store.apply([Allocated(f"c{i}", v4(i + 1), True)])


async def keys(etcd: EtcdCluster) -> list[tuple[bytes, bytes]]:
    async with client(etcd) as c:
        kvs = (await c.get_prefix(PREFIX)).kvs
    return sorted((kv.key, kv.value) for kv in kvs if kv.key != PREFIX + b"owner")


async def assert_refused(etcd: EtcdCluster, match: str) -> None:
    before = await keys(etcd)
    with pytest.raises(EtcdDataError, match=match) as caught:
        async with EtcdStore(etcd.endpoints, peer=PEER) as store:
            try:
                await store.load()
            finally:
                with pytest.raises(EtcdDataError):
                    await store.apply([Allocated("x", v4(999), True)])
    assert "\n" not in str(caught.value) and "02:00:00:00:00:09" in str(caught.value)
    assert await keys(etcd) == before


@pytest.mark.anyio
async def test_a_newer_schema_is_refused(etcd: EtcdCluster) -> None:
    await fill(etcd)
    async with client(etcd) as c:
        await c.put(PREFIX + b"meta", json.dumps({"format": "weavek-etcd", "schema": 2}).encode())
    await assert_refused(etcd, "newer weavek-etcd")


@pytest.mark.anyio
async def test_keys_without_the_marker_are_refused(etcd: EtcdCluster) -> None:
    async with client(etcd) as c:
        await c.put(PREFIX + b"ring", b"someone else's")
    await assert_refused(etcd, "no weavek-etcd marker")


@pytest.mark.anyio
async def test_an_unknown_key_is_refused(etcd: EtcdCluster) -> None:
    await fill(etcd)
    async with client(etcd) as c:
        await c.put(PREFIX + b"log/zz", b"?")
    await assert_refused(etcd, "log/zz")


@pytest.mark.anyio
async def test_a_missing_record_is_refused(etcd: EtcdCluster) -> None:
    await fill(etcd)
    async with client(etcd) as c:
        await c.delete(PREFIX + b"log/%016x" % 5)
    await assert_refused(etcd, "not contiguous")


@pytest.mark.anyio
async def test_a_missing_ledger_piece_is_refused(etcd: EtcdCluster) -> None:
    class Often(EtcdStore):
        compact_every = 4

    async with Often(etcd.endpoints, peer=PEER) as store:
        await store.load()
        for i in range(10):
            await store.apply([Allocated(f"c{i}", v4(i + 1), True)])
    async with client(etcd) as c:
        await c.delete_prefix(PREFIX + b"ledger/")
    await assert_refused(etcd, "missing pieces")


@pytest.mark.anyio
async def test_a_batch_larger_than_a_request_lands_whole(etcd: EtcdCluster) -> None:
    n = 70_000
    batch = [Allocated(f"container-{i:08d}", v4(i + 1), True) for i in range(n)]
    assert len(encode_record(ops_of(batch))) > PIECE  # so it goes as a ledger in pieces
    async with EtcdStore(etcd.endpoints, peer=PEER) as store:
        await store.load()
        await store.apply([SaveRing(make_ring(), PEER_A)])
        await store.apply(batch)
        await store.apply([Released("container-00000000", v4(1))])
    async with EtcdStore(etcd.endpoints, peer=PEER) as store:
        snap = await store.load()
    assert snap is not None and len(snap.owned) == n - 1
    assert state_of(snap)[1] == make_ring()  # type: ignore[index]


@pytest.mark.anyio
async def test_a_second_process_with_the_same_name_fences_the_first(etcd: EtcdCluster) -> None:
    async with EtcdStore(etcd.endpoints, peer=PEER) as old:
        await old.load()
        await old.apply([SaveRing(make_ring(), PEER_A), Allocated("old", v4(1), True)])
        async with EtcdStore(etcd.endpoints, peer=PEER) as new:
            snap = await new.load()  # the same name elsewhere: it claims the data
            assert snap is not None and set(snap.owned) == {"old"}
            with pytest.raises(EtcdTakenOver, match="another process claimed"):
                await old.apply([Allocated("lost", v4(2), True)])
            assert old.health() is not None and "claimed" in old.health()  # type: ignore[operator]
            with pytest.raises(EtcdTakenOver):  # and it stays refused
                await old.apply([Allocated("lost", v4(3), True)])
            await new.apply([Allocated("new", v6(4), False)])
    async with EtcdStore(etcd.endpoints, peer=PEER) as store:
        snap = await store.load()
    assert snap is not None and set(snap.owned) == {"old", "new"}


@pytest.mark.anyio
async def test_peers_have_separate_prefixes(etcd: EtcdCluster) -> None:
    for peer, ident in ((PEER, "a"), (PEER + 1, "b")):
        async with EtcdStore(etcd.endpoints, peer=peer) as store:
            await store.load()
            await store.apply([Allocated(ident, v4(1), True)])
    for peer, ident in ((PEER, "a"), (PEER + 1, "b")):
        async with EtcdStore(etcd.endpoints, peer=peer) as store:
            snap = await store.load()
            assert snap is not None and set(snap.owned) == {ident}
    async with EtcdStore(etcd.endpoints + "/other-net", peer=PEER) as store:
        assert await store.load() is None


@pytest.mark.anyio
async def test_health_notices_an_idle_outage(etcd: EtcdCluster) -> None:
    import anyio

    class Quick(EtcdStore):
        probe_interval = 0.05

    async with Quick(etcd.endpoints, peer=PEER) as store:
        await store.load()
        assert store.health() is None
        await anyio.to_thread.run_sync(etcd.stop)
        with anyio.fail_after(10):
            while store.health() is None:
                await anyio.sleep(0.05)
        assert "etcd unreachable" in store.health()  # type: ignore[operator]
        await anyio.to_thread.run_sync(etcd.start)
        with anyio.fail_after(10):
            while store.health() is not None:
                await anyio.sleep(0.05)

"""Attach targets as users type them, and the container routes of a peer without runtimes.

The attach/detach/expose/hide paths with a real runtime run end to end in
tests/integration/test_containers_netns.py (real namespaces).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pluggy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek.core.address import parse_cidr
from weavek.node import Peer, PeerConfig
from weavek.node.containers import ContainerError, Target, parse_targets


def test_targets_as_weave_wrote_them() -> None:
    assert parse_targets([]) == [Target("net")]
    assert parse_targets(["net:default"]) == [Target("net")]
    assert parse_targets(["net:10.32.0.0/16", "ip:10.40.0.9/12", "10.40.0.10/12"]) == [
        Target("net", parse_cidr("10.32.0.0/16")),
        Target("ip", parse_cidr("10.40.0.9/12")),
        Target("ip", parse_cidr("10.40.0.10/12")),
    ]
    assert parse_targets(["ip:fd00::5/64", "fd00::6/64", "net:fd00::/64"]) == [
        Target("ip", parse_cidr("fd00::5/64")),
        Target("ip", parse_cidr("fd00::6/64")),
        Target("net", parse_cidr("fd00::/64")),
    ]
    assert str(Target("net")) == "net:default"
    assert str(Target("ip", parse_cidr("10.40.0.9/12"))) == "ip:10.40.0.9/12"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("net:garbage", "invalid target 'net:garbage': 'garbage' has no prefix length"),
        ("net:10.32.0.1/16", "10.32.0.1/16 is not aligned (did you mean 10.32.0.0/16?)"),
        ("net:10.32.0.0/31", "fewer than 4 addresses"),
        ("net:10.32.0.0/33", "out of range"),
        ("ip:10.40.0.9", "'10.40.0.9' has no prefix length"),
        ("ip:banana/12", "bad address 'banana'"),
        ("10.40.0.9", "expected net:default, net:CIDR, ip:CIDR or CIDR"),
        ("bogus:10.0.0.0/8", "expected net:default"),
        ("", "expected net:default"),
        ("net:", "has no prefix length"),
    ],
)
def test_bad_targets_are_one_clear_line(text: str, says: str) -> None:
    with pytest.raises(ContainerError) as caught:
        parse_targets(["net:default", text])
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert caught.value.status == 400


@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_text_is_a_target_or_a_container_error(texts: list[str]) -> None:
    try:
        targets = parse_targets(texts)
    except ContainerError as exc:
        assert "\n" not in str(exc)
        assert exc.status == 400
        return
    assert len(targets) == max(1, len(texts))
    for target in targets:
        assert target.kind in ("net", "ip")
        if target.kind == "ip":
            assert target.cidr is not None


# -- a peer without runtimes -------------------------------------------------


@pytest.fixture
async def client(
    make_pm: Callable[..., pluggy.PluginManager],
    peer_config: Callable[..., PeerConfig],
    no_leaks: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    with anyio.fail_after(20):
        async with no_leaks(), Peer(peer_config(1, nickname="one"), make_pm()) as peer:
            host, port = peer.http_address or ("", 0)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                yield http


@pytest.mark.anyio
async def test_without_a_runtime_every_route_says_so(client: httpx.AsyncClient) -> None:
    expected = "no container runtime is active: launch the peer with --runtime NAME"
    for method, url in [
        ("POST", "/attach/c1"),
        ("DELETE", "/attach/c1"),
        ("POST", "/expose"),
        ("DELETE", "/expose"),
    ]:
        r = await client.request(method, url)
        assert (r.status_code, r.text) == (400, expected + "\n"), (method, url)
        r = await client.request(method, url, headers={"Accept": "application/json"})
        assert r.json() == {"error": expected}
    r = await client.post("/attach/c1", params={"addr": "net:garbage"})
    assert r.status_code == 400 and "invalid target 'net:garbage'" in r.text
    assert (await client.get("/ip")).json() == {"owned": None}

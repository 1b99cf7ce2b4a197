"""``--persist volume[=NAME][@DOCKER_HOST]``: what each form means; clear errors for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek_volume import DEFAULT_DOCKER_HOST, Target, VolumeError, VolumeStore, parse_target


@pytest.mark.parametrize(
    ("arg", "environ", "expected"),
    [
        (None, {}, Target("weavedb", DEFAULT_DOCKER_HOST)),
        ("", {}, Target("weavedb", DEFAULT_DOCKER_HOST)),
        (None, {"DOCKER_HOST": "unix:///run/d.sock"}, Target("weavedb", "unix:///run/d.sock")),
        ("mydb", {"DOCKER_HOST": "tcp://127.0.0.1:2375"}, Target("mydb", "tcp://127.0.0.1:2375")),
        ("mydb@unix:///x/d.sock", {"DOCKER_HOST": "tcp://h:1"}, Target("mydb", "unix:///x/d.sock")),
        ("@unix:///x/d.sock", {}, Target("weavedb", "unix:///x/d.sock")),
        (" a.b_c-1 @ tcp://[::1]:2375 ", {}, Target("a.b_c-1", "tcp://[::1]:2375")),
        ("x1", {"DOCKER_HOST": ""}, Target("x1", DEFAULT_DOCKER_HOST)),
    ],
)
def test_forms(arg: str | None, environ: dict[str, str], expected: Target) -> None:
    assert parse_target(arg, environ) == expected


@pytest.mark.parametrize(
    ("arg", "environ", "match"),
    [
        ("-db", {}, "volume -db: not a Docker container name"),
        ("a", {}, "not a Docker container name"),
        ("we/avedb", {}, "not a Docker container name"),
        ("weavedb@", {}, "nothing after '@'"),
        ("weavedb@/var/run/docker.sock", {}, "is not unix:///PATH"),
        ("weavedb@unix://", {}, "is not unix:///PATH"),
        (None, {"DOCKER_HOST": "ssh://me@host"}, "'ssh://me@host' is not unix:///PATH"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    arg: str | None, environ: dict[str, str], match: str
) -> None:
    with pytest.raises(VolumeError, match=match) as caught:
        parse_target(arg, environ)
    assert "\n" not in str(caught.value)


def test_the_store_reads_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere.sock")
    assert VolumeStore(None).target == Target("weavedb", "unix:///elsewhere.sock")
    assert VolumeStore("v2").target == Target("v2", "unix:///elsewhere.sock")


@given(st.one_of(st.none(), st.text()), st.dictionaries(st.just("DOCKER_HOST"), st.text()))
def test_any_text_parses_or_is_a_volume_error(arg: str | None, environ: dict[str, str]) -> None:
    try:
        target = parse_target(arg, environ)
    except VolumeError as err:
        assert str(err).startswith("volume ")
    else:
        assert "@" not in target.name and target.docker_host.startswith(("unix:", "tcp:", "http"))

"""Docker events and views turned into runtime events: pure functions, fuzzed with Hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weavek.core.events import ContainerDestroyed, ContainerDied, ContainerStarted
from weavek_docker.runtime import event_of
from weavek_netns.daemon import changes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def test_current_and_old_event_shapes() -> None:
    assert event_of({"Type": "container", "Action": "die", "Actor": {"ID": "abc"}}) == (
        "die",
        "abc",
    )
    assert event_of({"status": "start", "id": "abc"}) == ("start", "abc")
    assert event_of({"Action": "exec_start: sh", "Actor": {"ID": "abc"}}) is None
    assert event_of({"Action": "die", "Actor": {}}) is None


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["Action", "status", "Actor", "id", "Type"]), json_values))
def test_any_event_shape_is_decoded_or_ignored_never_an_error(event: dict[str, Any]) -> None:
    decoded = event_of(event)
    if decoded is not None:
        action, ident = decoded
        assert action in {"create", "start", "die", "destroy"} and ident


def test_first_view_reports_stopped_containers_dead() -> None:
    assert changes(None, {"a": True, "b": False}) == [ContainerDied("b")]


def test_changes_while_away() -> None:
    before = {"gone": True, "died": True, "back": False, "same": True, "new": True}
    now = {"died": False, "back": True, "same": True, "new": True, "fresh-stopped": False}
    assert changes(before, now) == [
        ContainerDestroyed("gone"),
        ContainerStarted("back"),
        ContainerDied("died"),
        ContainerDied("fresh-stopped"),
    ]


views = st.dictionaries(st.sampled_from("abcdef"), st.booleans())


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(views, views)
def test_changes_lead_from_one_view_to_the_other(
    before: dict[str, bool], now: dict[str, bool]
) -> None:
    events = changes(before, now)
    assert {
        e.ident for e in events if isinstance(e, ContainerDestroyed)
    } == before.keys() - now.keys()
    for event in events:
        if isinstance(event, ContainerStarted):
            assert now[event.ident] and before[event.ident] is False
        if isinstance(event, ContainerDied):
            assert now[event.ident] is False and before.get(event.ident) is not False
    assert changes(now, now) == []

"""containerd event payloads decoded with the runtime-built messages, fuzzed with Hypothesis."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weavek_containerd.api import MESSAGES, decode_event

TOPICS = ["/tasks/start", "/tasks/exit", "/containers/create", "/containers/delete", "/x"]


def test_payloads_as_containerd_encodes_them() -> None:
    start = MESSAGES["TaskStart"](container_id="web", pid=42).SerializeToString()
    assert decode_event("/tasks/start", start) == ("started", "web")
    exit_ = MESSAGES["TaskExit"](container_id="web", id="web", pid=42, exit_status=137)
    assert decode_event("/tasks/exit", exit_.SerializeToString()) == ("exited", "web")
    exec_exit = MESSAGES["TaskExit"](container_id="web", id="exec1", pid=43)
    assert decode_event("/tasks/exit", exec_exit.SerializeToString()) is None
    delete = MESSAGES["ContainerDelete"](id="web").SerializeToString()
    assert decode_event("/containers/delete", delete) == ("deleted", "web")
    assert decode_event("/images/delete", delete) is None


def test_unknown_fields_are_skipped() -> None:
    # TaskExit with an exited_at timestamp (field 5), which we do not declare.
    payload = bytes.fromhex("0a037765621203776562182a2089012a0408011002")
    assert decode_event("/tasks/exit", payload) == ("exited", "web")


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(TOPICS), st.binary(max_size=64))
def test_any_payload_is_decoded_or_ignored_never_an_error(topic: str, payload: bytes) -> None:
    decoded = decode_event(topic, payload)
    if decoded is not None:
        assert decoded[0] in {"started", "exited", "created", "deleted"} and decoded[1]

"""The sans-IO codec: frames, messages, hellos and the handshake, with Hypothesis.

Whatever bytes arrive, the decoders either succeed or raise ProtocolError
(the one error the transport catches to drop a connection).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek_tcp.crypto import Session, derive_psk
from weavek_tcp.framing import (
    MAX_HANDSHAKE_FRAME,
    AuthenticationError,
    FrameDecoder,
    ProtocolError,
    encode_frame,
)
from weavek_tcp.handshake import Handshake, Hello, State, decode_hello
from weavek_tcp.messages import (
    Broadcast,
    Close,
    Gossip,
    Heartbeat,
    Message,
    Neighbour,
    Topology,
    Unicast,
    decode_message,
    encode_message,
)

names = st.integers(0, (1 << 48) - 1)
short_text = st.text(max_size=20).filter(lambda t: len(t.encode()) <= 255)
messages = st.one_of(
    st.just(Heartbeat()),
    st.builds(
        Topology,
        names,
        st.integers(0, (1 << 64) - 1),
        short_text,
        st.lists(st.builds(Neighbour, names, short_text, st.integers(0, 65535)), max_size=5).map(
            tuple
        ),
    ),
    st.builds(Broadcast, names, st.integers(0, (1 << 64) - 1), st.integers(0, 255), st.binary()),
    st.builds(Unicast, names, names, st.integers(0, 255), st.binary()),
    st.builds(Gossip, st.binary()),
    st.builds(Close, st.text(max_size=50)),
)
PSK = derive_psk(b"right")
OTHER_PSK = derive_psk(b"wrong")


# -- frames ---------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 50))
def test_frames_survive_any_chunking(bodies: list[bytes], chunk: int) -> None:
    wire = b"".join(encode_frame(b) for b in bodies)
    decoder, out = FrameDecoder(), []
    for i in range(0, len(wire), chunk):
        decoder.feed(wire[i : i + chunk])
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert out == bodies
    assert decoder.buffered == 0


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_protocol_error_in_the_frame_decoder(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    try:
        while decoder.next_frame() is not None:
            pass
    except ProtocolError:
        pass


def test_an_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder()
    decoder.feed((MAX_HANDSHAKE_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decoder.next_frame()
    with pytest.raises(ValueError):
        encode_frame(bytes(MAX_HANDSHAKE_FRAME + 1), MAX_HANDSHAKE_FRAME)


# -- messages -------------------------------------------------------------------------


@given(messages)
def test_messages_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


@given(st.binary(max_size=500))
def test_arbitrary_bytes_only_raise_protocol_error_in_the_message_decoder(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(data)


def test_unknown_tags_and_topology_versions_are_ignored() -> None:
    assert decode_message(b"\x63whatever") is None
    assert decode_message(b"\x01\x02" + bytes(20)) is None
    with pytest.raises(ProtocolError):
        decode_message(b"")


# -- hello ------------------------------------------------------------------------------


@given(
    names,
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 65535),
    short_text,
    st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
)
def test_hellos_round_trip(
    name: int, uid: int, conn: int, port: int, nick: str, key: bytes | None
) -> None:
    hello = Hello(name, uid, conn, port, nick, key)
    assert decode_hello(hello.encode()) == hello


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_protocol_error_in_the_hello_decoder(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_hello(data)


def test_strangers_and_incompatible_versions_are_refused_with_a_reason() -> None:
    with pytest.raises(ProtocolError, match="bad magic"):
        decode_hello(b"GET / HTTP/1.1\r\n")
    future = Hello(1, 2, 3, 4, "x", vmin=7, vmax=9).encode()
    with pytest.raises(ProtocolError, match=r"incompatible protocol versions: peer speaks 7\.\.9"):
        decode_hello(future)


# -- handshake ----------------------------------------------------------------------------


def pair(psk_a: bytes | None, psk_b: bytes | None) -> tuple[Handshake, Handshake]:
    a = Handshake(Hello(1, 11, 111, 6783, "a"), initiator=True, psk=psk_a)
    b = Handshake(Hello(2, 22, 222, 6783, "b"), initiator=False, psk=psk_b)
    return a, b


def shake(a: Handshake, b: Handshake) -> None:
    """Both hellos cross on the wire, then both confirmations."""
    ca, cb = a.receive(b.hello()), b.receive(a.hello())
    if ca is not None and cb is not None:
        a.receive(cb)
        b.receive(ca)


def test_without_passwords_the_hellos_are_the_whole_handshake() -> None:
    a, b = pair(None, None)
    shake(a, b)
    assert a.state is b.state is State.DONE
    assert (a.peer and a.peer.name, b.peer and b.peer.name) == (2, 1)
    assert a.link_id == b.link_id == 111 ^ 222
    assert a.session is None and b.session is None


def test_with_the_same_password_both_sides_get_matching_sessions() -> None:
    a, b = pair(PSK, PSK)
    shake(a, b)
    assert a.state is b.state is State.DONE
    assert a.session is not None and b.session is not None
    for i in range(3):
        assert b.session.open(a.session.seal(b"to b %d" % i)) == b"to b %d" % i
        assert a.session.open(b.session.seal(b"to a")) == b"to a"


def test_a_wrong_password_fails_at_key_confirmation() -> None:
    a, b = pair(PSK, OTHER_PSK)
    ca, cb = a.receive(b.hello()), b.receive(a.hello())
    assert ca is not None and cb is not None
    with pytest.raises(AuthenticationError, match="key confirmation failed"):
        a.receive(cb)
    with pytest.raises(AuthenticationError):
        b.receive(ca)


@pytest.mark.parametrize(
    ("psk_a", "psk_b", "message"),
    [
        (PSK, None, "peer has no password and we require one"),
        (None, PSK, "peer requires a password and we have none"),
    ],
)
def test_a_password_on_one_side_only_is_refused(
    psk_a: bytes | None, psk_b: bytes | None, message: str
) -> None:
    a, b = pair(psk_a, psk_b)
    with pytest.raises(ProtocolError, match=message):
        a.receive(b.hello())


def test_frames_replayed_reordered_or_forged_do_not_open() -> None:
    a, b = pair(PSK, PSK)
    shake(a, b)
    assert a.session is not None and b.session is not None
    first, second = a.session.seal(b"1"), a.session.seal(b"2")
    with pytest.raises(AuthenticationError):
        b.session.open(second)  # out of order
    assert b.session.open(first) == b"1"
    with pytest.raises(AuthenticationError):
        b.session.open(first)  # replayed
    forged = bytearray(second)
    forged[0] ^= 1
    with pytest.raises(AuthenticationError):
        b.session.open(bytes(forged))


@given(st.binary(max_size=200), st.binary(max_size=100))
def test_arbitrary_handshake_frames_only_raise_protocol_error(first: bytes, second: bytes) -> None:
    for psk in (None, PSK):
        hs = Handshake(Hello(1, 2, 3, 4, "a"), initiator=False, psk=psk)
        try:
            hs.receive(first)
            hs.receive(second)
            hs.receive(second)
        except ProtocolError:
            pass


@given(st.binary(max_size=100))
def test_arbitrary_ciphertext_only_raises_authentication_error(data: bytes) -> None:
    with pytest.raises(AuthenticationError):
        Session(bytes(32), bytes(32)).open(data)

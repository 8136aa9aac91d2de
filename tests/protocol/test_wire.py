"""Peer-link frames and message codecs: round trips, refusals, fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.errors import DecodeError, LocalUsageError
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.wire import (
    Auth,
    Bye,
    Clock,
    Entries,
    ForkProofMessage,
    FrameDecoder,
    Hello,
    Message,
    Push,
    Want,
    WireLimits,
    decode_message_untrusted,
    encode_frame,
    encode_message,
    hello_signed_bytes,
)

b32 = st.binary(min_size=32, max_size=32)
# A hello's key must pass the key rules (about half of all 32-byte strings are
# not curve points); tests/protocol/test_public_keys.py covers the refusals.
node_key = b32.map(lambda s: SigningKey.from_seed(s).public_key)
seq = st.integers(1, 2**53 - 1)
item = st.tuples(st.binary(min_size=1, max_size=576), st.one_of(st.none(), st.binary(max_size=300)))


@st.composite
def entries_msg(draw: st.DrawFn) -> Entries:
    items = tuple(draw(st.lists(item, max_size=5)))
    start = draw(st.integers(1, 10**6)) if items else draw(st.integers(0, 10**6))
    return Entries(draw(b32), start, draw(st.integers(0, 2**53 - 1)), items)


@st.composite
def clock_msg(draw: st.DrawFn) -> Clock:
    authors = draw(st.lists(b32, max_size=6, unique=True))
    feeds = []
    for a in authors:
        s = draw(st.integers(-1, 2**53 - 1))
        hid = draw(st.one_of(st.none(), b32)) if s >= 1 else None
        feeds.append((a, s, hid))
    return Clock(tuple(feeds))


messages = st.one_of(
    st.builds(Hello, node_key, b32, st.integers(0, 65535)),
    st.builds(Auth, st.binary(min_size=64, max_size=64)),
    clock_msg(),
    st.builds(Want, b32, seq, st.none()),
    st.builds(Want, b32, st.integers(0, 100), st.integers(1, 500)),
    entries_msg(),
    st.builds(Push, b32, seq, item),
    st.builds(ForkProofMessage, st.binary(max_size=1168)),
    st.builds(Bye, st.text(max_size=64)),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(msg: Message) -> None:
    body = encode_message(msg)
    assert decode_message_untrusted(body) == msg
    framed = encode_frame(body)
    assert FrameDecoder().feed(framed) == [body]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"t": "nope"}, "unknown_message"),
        ({"x": 1}, "bad_message"),
        ([1, 2], "bad_message"),
        ({"t": "want", "author": b"a" * 32}, "bad_message"),
        ({"t": "want", "author": b"a" * 32, "from_seq": 0}, "bad_message"),
        ({"t": "want", "author": b"a" * 32, "from_seq": 1, "extra": 1}, "bad_message"),
        ({"t": "want", "author": b"a" * 31, "from_seq": 1}, "bad_message"),
        ({"t": "want", "author": b"a" * 32, "from_seq": 0, "limit": 501}, "bad_message"),
        (
            {"t": "entries", "author": b"a" * 32, "start": 0, "head": 1, "items": [[b"e"]]},
            "bad_message",
        ),
        (
            {"t": "entries", "author": b"a" * 32, "start": 1, "head": 1, "items": [[]]},
            "bad_message",
        ),
        (
            {"t": "entries", "author": b"a" * 32, "start": 1, "head": 1, "items": [[b"e" * 577]]},
            "too_large",
        ),
        (
            {
                "t": "entries",
                "author": b"a" * 32,
                "start": 1,
                "head": 1,
                "items": [[b"e", b"p" * 16385]],
            },
            "malformed",
        ),
        (
            {"t": "entries", "author": b"a" * 32, "start": 1, "head": 1, "items": [[b"e"]] * 1001},
            "batch_too_large",
        ),
        ({"t": "push", "author": b"a" * 32, "seq": 0, "item": [b"e"]}, "bad_message"),
        ({"t": "clock", "feeds": [[b"a" * 32, -2]]}, "bad_message"),
        ({"t": "clock", "feeds": [[b"a" * 32, 0, b"i" * 32]]}, "bad_message"),
        ({"t": "clock", "feeds": [[b"a" * 32, 1], [b"a" * 32, 2]]}, "bad_message"),
        ({"t": "clock", "feeds": [[b"a" * 32, 1]] * 4097}, "malformed"),
        ({"t": "hello", "v": 2, "key": b"k" * 32, "nonce": b"n" * 32, "port": 1}, "bad_version"),
        (
            {"t": "hello", "v": 1, "key": b"k" * 32, "nonce": b"n" * 32, "port": 70000},
            "bad_message",
        ),
        ({"t": "auth", "sig": b"s" * 63}, "bad_message"),
        ({"t": "bye", "reason": "x" * 65}, "bad_message"),
        ({"t": "fork_proof", "proof": b"p" * 2000}, "too_large"),
    ],
)
def test_invalid_messages_are_refused(value: object, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_message_untrusted(encode(value))
    assert exc.value.reason == reason


def test_non_canonical_body_is_refused() -> None:
    # Keys out of order: valid msgpack, not canonical.
    body = b"\x82\xa1t\xa3bye\xa6reason\xa0"
    with pytest.raises(DecodeError) as exc:
        decode_message_untrusted(body)
    assert exc.value.reason == "non_canonical"


def test_oversize_frame_is_refused_from_its_length_prefix() -> None:
    dec = FrameDecoder(WireLimits(max_frame=100))
    with pytest.raises(DecodeError) as exc:
        dec.feed(struct.pack(">I", 101))
    assert exc.value.reason == "frame_too_large"
    with pytest.raises(LocalUsageError):
        encode_frame(b"x" * 101, WireLimits(max_frame=100))


def test_frames_reassemble_across_arbitrary_splits() -> None:
    bodies = [encode_message(Bye("a")), encode_message(Want(b"a" * 32, 3)), b""]
    stream = b"".join(encode_frame(b) for b in bodies)
    for cut in range(len(stream) + 1):
        dec = FrameDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert got == bodies
        assert dec.buffered == 0


def test_hello_signed_bytes_are_tagged() -> None:
    data = hello_signed_bytes(b"n" * 32, b"k" * 32)
    assert data.startswith(b"p2psocial/hello/v1\x00")
    assert data.endswith(b"n" * 32 + b"k" * 32)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_random_bodies_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message_untrusted(data)


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_fuzz_mutated_messages_raise_only_decode_error(msg: Message, data: st.DataObject) -> None:
    body = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    for candidate in (bytes(body), bytes(body[:cut])):
        with contextlib.suppress(DecodeError):
            decode_message_untrusted(candidate)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 7))
def test_fuzz_frame_decoder_fed_in_pieces(data: bytes, step: int) -> None:
    dec = FrameDecoder(WireLimits(max_frame=64))
    try:
        for i in range(0, len(data), step):
            for body in dec.feed(data[i : i + step]):
                assert len(body) <= 64
    except DecodeError as exc:
        assert exc.reason == "frame_too_large"

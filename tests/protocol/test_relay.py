"""The relay's control bytes (spec/sync.md §11): sizes, round trips, refusals, fuzz."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.errors import DecodeError, InvalidSignature
from p2psocial.protocol.identity import SigningKey, node_id_from_public_key
from p2psocial.protocol.relay import (
    ACCEPT_SIZE,
    CHALLENGE_SIZE,
    CONNECT_ANSWER_SIZE,
    CONNECT_SIZE,
    RELAY_FEED,
    RESERVE_TAG,
    ControlDecoder,
    Incoming,
    Keepalive,
    decode_accept_untrusted,
    decode_challenge_untrusted,
    decode_connect_answer_untrusted,
    decode_connect_untrusted,
    decode_preamble_untrusted,
    encode_accept,
    encode_challenge,
    encode_connect,
    encode_connect_answer,
    encode_incoming,
    encode_keepalive,
    encode_preamble,
    encode_proof,
    reserve_signed_bytes,
    verify_proof_untrusted,
)

HOME = SigningKey.from_seed(b"\x11" * 32)
RELAY_ID = b"R" * 20
NONCE = b"N" * 32
TOKEN = b"T" * 16


def test_sizes_and_constants_are_the_specs() -> None:
    assert encode_preamble(3) == bytes.fromhex("703270730003")
    assert (CHALLENGE_SIZE, CONNECT_SIZE, CONNECT_ANSWER_SIZE, ACCEPT_SIZE) == (58, 26, 7, 22)
    assert RESERVE_TAG == b"p2psocial/relay-reserve/v1\x00" and len(RESERVE_TAG) == 27
    assert hashlib.sha256(b"p2psocial/relay-swarm/v1").digest() == RELAY_FEED
    assert reserve_signed_bytes(NONCE, RELAY_ID) == RESERVE_TAG + NONCE + RELAY_ID


def test_round_trips() -> None:
    assert decode_challenge_untrusted(encode_challenge(RELAY_ID, NONCE)) == (RELAY_ID, NONCE)
    assert decode_connect_untrusted(encode_connect(RELAY_ID)) == RELAY_ID
    assert decode_accept_untrusted(encode_accept(TOKEN)) == TOKEN
    for status, reason in (
        (0, "ok"),
        (1, "no_reservation"),
        (2, "relay_full"),
        (3, "target_silent"),
    ):
        assert decode_connect_answer_untrusted(encode_connect_answer(status)) == reason


def test_a_proof_proves_the_node_and_nothing_else() -> None:
    sig = HOME.sign(reserve_signed_bytes(NONCE, RELAY_ID))
    proof = encode_proof(HOME.public_key, sig)
    assert verify_proof_untrusted(proof, NONCE, RELAY_ID) == node_id_from_public_key(
        HOME.public_key
    )
    with pytest.raises(InvalidSignature):
        verify_proof_untrusted(proof, b"M" * 32, RELAY_ID)  # another challenge
    with pytest.raises(InvalidSignature):
        verify_proof_untrusted(proof, NONCE, b"S" * 20)  # made for another relay
    with pytest.raises(DecodeError) as info:
        verify_proof_untrusted(proof[:-1], NONCE, RELAY_ID)
    assert info.value.reason == "relay_bad_message"


BAD = [
    (decode_preamble_untrusted, b"p2pz\x00\x01", "link_bad_preamble"),
    (decode_preamble_untrusted, b"p2ps\x00", "link_bad_preamble"),
    (decode_challenge_untrusted, encode_challenge(RELAY_ID, NONCE)[:-1], "relay_bad_message"),
    (decode_challenge_untrusted, encode_preamble(0) + RELAY_ID + NONCE, "link_unsupported"),
    (decode_connect_untrusted, encode_preamble(4) + RELAY_ID, "link_unsupported"),
    (decode_connect_untrusted, encode_connect(RELAY_ID) + b"x", "relay_bad_message"),
    (decode_accept_untrusted, b"GET / HTTP/1.1\r\n\r\n....", "link_bad_preamble"),
    (decode_connect_answer_untrusted, encode_connect_answer(9), "relay_bad_status"),
]


@pytest.mark.parametrize(("decode", "data", "reason"), BAD)
def test_bad_messages_are_refused_with_their_reason(
    decode: object, data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)  # type: ignore[operator]
    assert info.value.reason == reason


def test_control_messages_in_any_cut() -> None:
    stream = encode_keepalive() + encode_incoming(TOKEN) + encode_keepalive()
    want = [Keepalive(), Incoming(TOKEN), Keepalive()]
    whole = ControlDecoder().feed_untrusted(stream)
    assert whole == want
    decoder = ControlDecoder()
    bytewise = [m for b in stream for m in decoder.feed_untrusted(bytes([b]))]
    assert bytewise == want
    with pytest.raises(DecodeError) as info:
        ControlDecoder().feed_untrusted(b"\x07")
    assert info.value.reason == "relay_bad_control"


DECODERS = [
    decode_preamble_untrusted,
    decode_challenge_untrusted,
    decode_connect_untrusted,
    decode_connect_answer_untrusted,
    decode_accept_untrusted,
]


@seed(1511)
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.lists(st.binary(max_size=20), max_size=8))
def test_decoders_raise_only_decode_error(data: bytes, chunks: list[bytes]) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(data)
    decoder = ControlDecoder()
    with contextlib.suppress(DecodeError):
        for chunk in chunks:
            decoder.feed_untrusted(chunk)
    with contextlib.suppress(DecodeError, InvalidSignature):
        verify_proof_untrusted(data, NONCE, RELAY_ID)

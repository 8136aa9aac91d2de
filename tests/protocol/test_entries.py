"""Entries: payload schemas, limits, envelope decoding, signatures and timestamps."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    MAX_ENTRY_SIZE,
    MAX_FUTURE_MS,
    MAX_PAYLOAD_SIZE,
    Entry,
    check_timestamp,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
    encode_payload,
)
from p2psocial.protocol.errors import DecodeError, InvalidSignature, LocalUsageError, SchemaError
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.kinds import KINDS, MAX_TEXT_CHARS, validate_payload

KEY = SigningKey.from_seed(b"\x11" * 32)
OTHER = SigningKey.from_seed(b"\x22" * 32).public_key
ID = hashlib.sha256(b"some entry").digest()
ID2 = hashlib.sha256(b"another entry").digest()
T0 = 1_700_000_000_000
# An encoding of the identity point: 32 bytes, but small order, so unusable.
SMALL_ORDER_KEY = bytes([1]) + bytes(31)


# ------------------------------------------------------------ payload schemas

# (id, kind, payload) that must be accepted.
VALID_PAYLOADS: list[tuple[str, str, dict[str, Any]]] = [
    ("post_min", "post", {"text": "hi"}),
    (
        "post_full",
        "post",
        {
            "text": "hello #p2p @friend",
            "reply": {"root": ID, "parent": ID2},
            "mentions": [OTHER],
            "tags": ["p2p"],
            "lang": "en",
        },
    ),
    ("post_max_text", "post", {"text": "x" * MAX_TEXT_CHARS}),
    # The limit counts characters, not bytes: 2000 four-byte emoji fit.
    ("post_max_text_emoji", "post", {"text": "\U0001f600" * MAX_TEXT_CHARS}),
    ("post_16_tags", "post", {"text": "t", "tags": [f"t{i}" for i in range(16)]}),
    ("profile_empty", "profile", {}),
    ("profile_full", "profile", {"name": "Ann", "bio": "b" * 500}),
    ("follow", "follow", {"target": OTHER}),
    ("unfollow", "unfollow", {"target": OTHER}),
    ("react", "react", {"target": ID, "emoji": "👍"}),
    ("repost", "repost", {"target": ID}),
    ("delete", "delete", {"target": ID}),
    ("block", "block", {"target": OTHER}),
    ("block_reason", "block", {"target": OTHER, "reason": "spam"}),
    ("unblock", "unblock", {"target": OTHER}),
    ("unknown_kind_opaque", "poll", {"question": "?", "options": [1, 2], "x": {"y": b""}}),
    ("unknown_kind_empty", "x.y-z_1", {}),
]

# (id, kind, payload, SchemaError reason, text the message must contain)
INVALID_PAYLOADS: list[tuple[str, str, Any, str, str]] = [
    ("post_no_text", "post", {}, "missing_field", "text"),
    ("post_empty_text", "post", {"text": ""}, "too_short", "text"),
    ("post_text_too_long", "post", {"text": "x" * 2001}, "too_long", "2000"),
    ("post_text_bytes", "post", {"text": b"hi"}, "bad_field", "text"),
    ("post_unknown_field", "post", {"text": "a", "title": "b"}, "unknown_field", "title"),
    ("post_reply_missing_root", "post", {"text": "a", "reply": {"parent": ID}}, "missing_field", "root"),
    ("post_reply_short_id", "post", {"text": "a", "reply": {"root": ID[:31], "parent": ID}}, "bad_field", "root"),
    ("post_reply_extra", "post", {"text": "a", "reply": {"root": ID, "parent": ID, "x": 1}}, "unknown_field", "x"),
    ("post_reply_not_map", "post", {"text": "a", "reply": [ID, ID]}, "bad_field", "reply"),
    ("post_mentions_empty", "post", {"text": "a", "mentions": []}, "bad_field", "mentions"),
    ("post_mentions_dup", "post", {"text": "a", "mentions": [OTHER, OTHER]}, "bad_field", "repeats"),
    ("post_mentions_17", "post", {"text": "a", "mentions": [OTHER] * 17}, "bad_field", "1..16"),
    ("post_mention_small_order", "post", {"text": "a", "mentions": [SMALL_ORDER_KEY]}, "bad_field", "identity"),
    ("post_mention_text", "post", {"text": "a", "mentions": ["p2ps1..."]}, "bad_field", "mentions[0]"),
    ("post_tags_17", "post", {"text": "a", "tags": [f"t{i}" for i in range(17)]}, "bad_field", "tags"),
    ("post_tag_empty", "post", {"text": "a", "tags": [""]}, "too_short", "tags[0]"),
    ("post_tag_long", "post", {"text": "a", "tags": ["t" * 65]}, "too_long", "64"),
    ("post_lang_long", "post", {"text": "a", "lang": "l" * 17}, "too_long", "lang"),
    ("profile_name_long", "profile", {"name": "n" * 65}, "too_long", "64"),
    ("profile_bio_long", "profile", {"bio": "b" * 501}, "too_long", "500"),
    ("profile_unknown", "profile", {"avatar": b""}, "unknown_field", "avatar"),
    ("follow_missing", "follow", {}, "missing_field", "target"),
    ("follow_short", "follow", {"target": OTHER[:31]}, "bad_field", "32-byte"),
    ("follow_small_order", "follow", {"target": SMALL_ORDER_KEY}, "bad_field", "identity"),
    ("unfollow_entry_id_int", "unfollow", {"target": 5}, "bad_field", "target"),
    ("react_no_emoji", "react", {"target": ID}, "missing_field", "emoji"),
    ("react_empty_emoji", "react", {"target": ID, "emoji": ""}, "too_short", "emoji"),
    ("react_long_emoji", "react", {"target": ID, "emoji": "x" * 17}, "too_long", "16"),
    ("react_word", "react", {"target": ID, "emoji": "hello"}, "not_emoji", "one emoji"),
    ("repost_author_not_id", "repost", {"target": "abc"}, "bad_field", "entry id"),
    ("delete_missing", "delete", {}, "missing_field", "target"),
    ("delete_extra", "delete", {"target": ID, "why": "oops"}, "unknown_field", "why"),
    ("block_reason_long", "block", {"target": OTHER, "reason": "r" * 281}, "too_long", "280"),
    ("unblock_extra", "unblock", {"target": OTHER, "reason": "x"}, "unknown_field", "reason"),
    ("known_not_map", "post", ["text"], "bad_field", "map"),
    ("unknown_not_map", "poll", [1, 2], "bad_field", "map"),
]  # fmt: skip


def test_tables_cover_every_kind() -> None:
    assert {k for _, k, _ in VALID_PAYLOADS} >= set(KINDS)
    assert {k for _, k, _, _, _ in INVALID_PAYLOADS} >= set(KINDS)


@pytest.mark.parametrize(
    "kind,payload", [c[1:] for c in VALID_PAYLOADS], ids=[c[0] for c in VALID_PAYLOADS]
)
def test_valid_payloads(kind: str, payload: dict[str, Any]) -> None:
    entry, data = create_entry(KEY, seq=1, prev=None, timestamp=T0, kind=kind, payload=payload)
    entry.verify()
    back = decode_payload_untrusted(decode_entry_untrusted(entry.to_bytes()), data)
    assert back == payload
    assert data == encode(payload)


@pytest.mark.parametrize(
    "kind,payload,reason,needle",
    [c[1:] for c in INVALID_PAYLOADS],
    ids=[c[0] for c in INVALID_PAYLOADS],
)
def test_invalid_payloads(kind: str, payload: Any, reason: str, needle: str) -> None:
    # From the network: SchemaError naming the rule.
    with pytest.raises(SchemaError) as info:
        validate_payload(kind, payload)
    assert info.value.reason == reason
    assert needle in info.value.message
    # Received as bytes against an envelope that commits to them: same verdict.
    data = encode(payload)
    entry = _entry_for_payload(kind, data)
    with pytest.raises(SchemaError) as info2:
        decode_payload_untrusted(entry, data)
    assert info2.value.reason == reason
    # Locally: the node refuses to publish it, as a caller error.
    with pytest.raises(LocalUsageError) as info3:
        create_entry(KEY, seq=1, prev=None, timestamp=T0, kind=kind, payload=payload)
    assert needle in info3.value.message


def _entry_for_payload(kind: str, data: bytes, **over: Any) -> Entry:
    """A validly signed entry whose envelope commits to arbitrary payload bytes."""
    env = {
        "author": KEY.public_key,
        "kind": kind,
        "payload_hash": hashlib.sha256(data).digest(),
        "payload_size": len(data),
        "seq": 1,
        "timestamp": T0,
        "v": 1,
    }
    env.update(over)
    envelope = encode(env)
    return decode_entry_untrusted(KEY.sign(ENTRY_TAG + envelope) + envelope)


# ------------------------------------------------------------ size limits


def test_payload_size_limit_names_the_limit() -> None:
    # Unknown kinds have no per-field limits, only the 16 KiB payload limit.
    at_limit = {"b": b"x" * (MAX_PAYLOAD_SIZE - 6)}
    assert len(encode(at_limit)) == MAX_PAYLOAD_SIZE
    entry, data = create_entry(KEY, seq=1, prev=None, timestamp=T0, kind="blob", payload=at_limit)
    assert decode_payload_untrusted(entry, data) == at_limit
    over = {"b": b"x" * (MAX_PAYLOAD_SIZE - 5)}
    with pytest.raises(LocalUsageError, match=str(MAX_PAYLOAD_SIZE)) as info:
        encode_payload("blob", over)
    assert info.value.reason == "too_large"


def test_envelope_refuses_payload_size_over_limit() -> None:
    data = b"\x80"
    with pytest.raises(DecodeError, match=str(MAX_PAYLOAD_SIZE)) as info:
        _entry_for_payload("blob", data, payload_size=MAX_PAYLOAD_SIZE + 1)
    assert info.value.reason == "bad_envelope"


def test_oversized_payload_bytes_are_refused() -> None:
    big = encode({"b": b"x" * MAX_PAYLOAD_SIZE})
    entry = _entry_for_payload("blob", b"\x80")
    with pytest.raises(DecodeError) as info:
        decode_payload_untrusted(entry, big)
    assert info.value.reason == "payload_size"


def test_text_limit_message_names_2000() -> None:
    with pytest.raises(LocalUsageError, match="2000") as info:
        encode_payload("post", {"text": "y" * 2001})
    assert info.value.reason == "too_long"


@pytest.mark.parametrize(
    "data,entry_data,reason",
    [
        (b"\x81\xa1a\x01", b"\x81\xa1a\x02", "payload_hash"),
        (b"\x81\xa1a\x01", b"\x80", "payload_size"),
    ],
    ids=["hash_mismatch", "size_mismatch"],
)
def test_payload_binding(data: bytes, entry_data: bytes, reason: str) -> None:
    entry = _entry_for_payload("blob", entry_data)
    with pytest.raises(DecodeError) as info:
        decode_payload_untrusted(entry, data)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "payload_hex,reason",
    [("82a16201a16102", "non_canonical"), ("c0", "nil"), ("91c3", "bad_field"), ("", "truncated")],
    ids=["unsorted", "nil", "not_map", "empty"],
)
def test_payload_must_be_canonical(payload_hex: str, reason: str) -> None:
    data = bytes.fromhex(payload_hex)
    entry = _entry_for_payload("blob", data)
    with pytest.raises((DecodeError, SchemaError)) as info:
        decode_payload_untrusted(entry, data)
    assert info.value.reason == reason


# ------------------------------------------------------------ envelope decoding

GOOD_ENV: dict[str, Any] = {
    "author": KEY.public_key,
    "kind": "post",
    "payload_hash": ID,
    "payload_size": 10,
    "prev": ID2,
    "seq": 2,
    "timestamp": T0,
    "v": 1,
}


def _signed(env_bytes: bytes) -> bytes:
    return KEY.sign(ENTRY_TAG + env_bytes) + env_bytes


def _env(**over: Any) -> bytes:
    env = dict(GOOD_ENV)
    for k, v in over.items():
        if v is _DROP:
            del env[k]
        else:
            env[k] = v
    return encode(env)


_DROP = object()
# A map with a bin key next to the text keys (msgpack itself allows that).
_BIN_KEY_ENV: dict[Any, Any] = {k: v for k, v in GOOD_ENV.items() if k != "prev"}
_BIN_KEY_ENV[b"x"] = 1

# (id, entry bytes, reason, message needle)
BAD_ENVELOPES: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "truncated", "shorter"),
    ("signature_only", bytes(64), "truncated", "shorter"),
    ("too_large", bytes(MAX_ENTRY_SIZE + 1), "too_large", str(MAX_ENTRY_SIZE)),
    ("not_a_map", _signed(encode([1, 2])), "bad_envelope", "not a map"),
    ("not_msgpack", _signed(b"\xc1"), "malformed", "0xc1"),
    ("trailing", _signed(_env() + b"\x00"), "malformed", "trailing"),
    ("missing_author", _signed(_env(author=_DROP)), "bad_envelope", "author"),
    ("unknown_field", _signed(_env(v=_DROP, zzz=1)), "bad_envelope", "zzz"),
    # Field counts and lengths are shape rules, not msgpack limits (issue 11).
    ("nine_fields", _signed(_env(zzz=1)), "bad_envelope", "zzz"),
    ("version_2", _signed(_env(v=2)), "bad_version", "2"),
    ("version_bool", _signed(_env(v=True)), "bad_version", "True"),
    ("author_short", _signed(_env(author=bytes(31))), "bad_envelope", "author"),
    ("author_text", _signed(_env(author="p2ps1...")), "bad_envelope", "author"),
    ("seq_zero", _signed(_env(seq=0)), "bad_envelope", "seq"),
    ("seq_negative", _signed(_env(seq=-1)), "bad_envelope", "seq"),
    ("seq_huge", _signed(_env(seq=2**53)), "bad_envelope", "seq"),
    ("seq_bool", _signed(_env(seq=True, prev=_DROP)), "bad_envelope", "seq"),
    ("seq1_with_prev", _signed(_env(seq=1)), "bad_envelope", "seq 1"),
    ("seq2_without_prev", _signed(_env(prev=_DROP)), "bad_envelope", "prev"),
    ("prev_short", _signed(_env(prev=bytes(31))), "bad_envelope", "prev"),
    ("timestamp_negative", _signed(_env(timestamp=-1)), "bad_envelope", "timestamp"),
    ("timestamp_text", _signed(_env(timestamp="now")), "bad_envelope", "timestamp"),
    ("kind_upper", _signed(_env(kind="Post")), "bad_envelope", "kind"),
    ("kind_empty", _signed(_env(kind="")), "bad_envelope", "kind"),
    ("kind_bytes", _signed(_env(kind=b"post")), "bad_envelope", "kind"),
    # Depth 1: a container with anything in it is too deep; an empty one is a
    # field of the wrong type.
    ("kind_list", _signed(msgpack.packb({**GOOD_ENV, "kind": [1]})), "too_deep", "deeper than 1"),
    ("kind_empty_list", _signed(msgpack.packb({**GOOD_ENV, "kind": []})), "bad_envelope", "kind"),
    ("kind_map", _signed(msgpack.packb({**GOOD_ENV, "kind": {"a": 1}})), "too_deep", "deeper"),
    ("author_list", _signed(msgpack.packb({**GOOD_ENV, "author": [1]})), "too_deep", "deeper"),
    ("kind_33_chars", _signed(_env(kind="k" * 33)), "bad_envelope", "kind"),
    ("author_33_bytes", _signed(_env(author=bytes(33))), "bad_envelope", "author"),
    ("payload_hash_short", _signed(_env(payload_hash=bytes(16))), "bad_envelope", "payload_hash"),
    ("payload_size_negative", _signed(_env(payload_size=-1)), "bad_envelope", "payload_size"),
    # The msgpack rules come first, with the same reasons as everywhere.
    ("float_timestamp", _signed(msgpack.packb({**GOOD_ENV, "timestamp": 1.5})), "float", "float"),
    ("ext_timestamp", _signed(msgpack.packb({**GOOD_ENV, "timestamp": msgpack.ExtType(1, b"x")})), "bad_type", "ext"),
    ("int_key", _signed(msgpack.packb({**{k: v for k, v in GOOD_ENV.items() if k != "v"}, 1: 1})), "bad_type", "not text"),
    ("duplicate_key", _signed(b"\x89" + _env()[1:] + b"\xa1v\x01"), "non_canonical", "repeats"),
    ("invalid_utf8_kind", _signed(_env(kind="post").replace(b"\xa4post", b"\xa4pos\xff")), "malformed", "UTF-8"),
    # Unsorted keys with a missing one: canonical form is checked first.
    ("unsorted_and_missing", _signed(msgpack.packb(dict(reversed([(k, v) for k, v in GOOD_ENV.items() if k != "author"])))), "non_canonical", "order"),
    # Field errors are checked only once the bytes are canonical.
    ("seq_zero_and_not_shortest", _signed(_env(seq=0).replace(b"\xa3seq\x00", b"\xa3seq\xcc\x00")), "non_canonical", "shortest"),
    # A valid map whose keys are not in canonical order.
    (
        "keys_unsorted",
        _signed(msgpack.packb(dict(reversed(list(GOOD_ENV.items()))))),
        "non_canonical",
        "order",
    ),
    # seq 2 as uint16 instead of a fixint.
    ("seq_not_shortest", _signed(_env().replace(b"\xa3seq\x02", b"\xa3seq\xcd\x00\x02")), "non_canonical", "canonical"),
    ("bin_key", _signed(msgpack.packb(_BIN_KEY_ENV, use_bin_type=True)), "bad_type", "key"),
    ("nil_prev_at_seq1", _signed(msgpack.packb({**GOOD_ENV, "prev": None, "seq": 1})), "nil", "nil"),
]  # fmt: skip


@pytest.mark.parametrize(
    "data,reason,needle", [c[1:] for c in BAD_ENVELOPES], ids=[c[0] for c in BAD_ENVELOPES]
)
def test_bad_envelopes(data: bytes, reason: str, needle: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_entry_untrusted(data)
    assert info.value.reason == reason
    assert needle in info.value.message


def test_good_envelope_decodes() -> None:
    entry = decode_entry_untrusted(_signed(_env()))
    assert (entry.seq, entry.prev, entry.kind, entry.timestamp) == (2, ID2, "post", T0)
    entry.verify()


# ------------------------------------------------------------ ids and round trip


def test_id_hashes_signature_and_envelope() -> None:
    entry, _ = create_entry(KEY, seq=1, prev=None, timestamp=T0, kind="post", payload={"text": "a"})
    assert entry.id == hashlib.sha256(entry.signature + entry.envelope).digest()
    assert entry.to_bytes() == entry.signature + entry.envelope
    assert len(entry.signature) == 64


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    seq=st.integers(1, 2**53 - 1),
    ts=st.integers(0, 2**53 - 1),
    prev=st.binary(min_size=32, max_size=32),
    text=st.text(min_size=1, max_size=50),
)
def test_entry_round_trip(seed: bytes, seq: int, ts: int, prev: bytes, text: str) -> None:
    key = SigningKey.from_seed(seed)
    entry, data = create_entry(
        key,
        seq=seq,
        prev=None if seq == 1 else prev,
        timestamp=ts,
        kind="post",
        payload={"text": text},
    )
    back = decode_entry_untrusted(entry.to_bytes())
    assert back == entry
    back.verify()
    assert decode_payload_untrusted(back, data) == {"text": text}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": 0, "prev": None},
        {"seq": 1, "prev": ID},
        {"seq": 2, "prev": None},
        {"seq": 1, "prev": None, "timestamp": -5},
        {"seq": 1, "prev": None, "kind": "Bad Kind"},
    ],
    ids=["seq0", "seq1_prev", "seq2_no_prev", "negative_ts", "bad_kind"],
)
def test_create_entry_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"timestamp": T0, "kind": "post", "payload": {"text": "a"}}
    args.update(kwargs)
    with pytest.raises(LocalUsageError):
        create_entry(KEY, **args)


# ------------------------------------------------------------ signatures


def test_domain_separation() -> None:
    envelope = _env()
    good = decode_entry_untrusted(_signed(envelope))
    good.verify()
    # The same key signing the bare envelope, or the envelope under another
    # record type's tag, does not produce a valid entry signature.
    for signed in (
        envelope,
        b"p2psocial/dht-record/v1\x00" + envelope,
        b"p2psocial/entry/v2\x00" + envelope,
    ):
        forged = decode_entry_untrusted(KEY.sign(signed) + envelope)
        with pytest.raises(InvalidSignature) as info:
            forged.verify()
        assert info.value.reason == "mismatch"


def test_tag_value_is_pinned() -> None:
    # Changing the tag silently would fork the network; it is part of the spec.
    assert ENTRY_TAG == b"p2psocial/entry/v1\x00"


def test_signature_by_another_key_fails() -> None:
    envelope = _env()
    other = SigningKey.from_seed(b"\x33" * 32)
    entry = decode_entry_untrusted(other.sign(ENTRY_TAG + envelope) + envelope)
    with pytest.raises(InvalidSignature):
        entry.verify()


@pytest.mark.parametrize(
    "mangle,reason",
    [
        (lambda s: s[:32] + (int.from_bytes(s[32:], "little") + 2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little"), "s_out_of_range"),
        (lambda s: bytes([1]) + bytes(31) + s[32:], "small_order_r"),
        (lambda s: b"\xff" * 31 + b"\x7f" + s[32:], "non_canonical_r"),
        (lambda s: bytes([s[0] ^ 1]) + s[1:], "mismatch"),
    ],
    ids=["s_plus_l", "small_order_r", "non_canonical_r", "flipped_bit"],
)  # fmt: skip
def test_malformed_signatures(mangle: Any, reason: str) -> None:
    envelope = _env()
    sig = KEY.sign(ENTRY_TAG + envelope)
    entry = decode_entry_untrusted(mangle(sig) + envelope)
    with pytest.raises(InvalidSignature) as info:
        entry.verify()
    assert info.value.reason == reason


def test_small_order_author_is_refused() -> None:
    # The key rules now apply when decoding (issue 11): before, this entry
    # decoded and only verify() refused it, with the same reason.
    envelope = _env(author=SMALL_ORDER_KEY)
    with pytest.raises(DecodeError) as info:
        decode_entry_untrusted(bytes(64) + envelope)
    assert info.value.reason == "small_order_key"


# ------------------------------------------------------------ timestamps


def test_timestamp_from_the_future() -> None:
    entry, _ = create_entry(KEY, seq=1, prev=None, timestamp=T0, kind="post", payload={"text": "a"})
    check_timestamp(entry, now_ms=T0)  # now
    check_timestamp(entry, now_ms=T0 + 10**9)  # the past is fine
    check_timestamp(entry, now_ms=T0 - MAX_FUTURE_MS)  # exactly 10 minutes ahead
    with pytest.raises(SchemaError) as info:
        check_timestamp(entry, now_ms=T0 - MAX_FUTURE_MS - 1)
    assert info.value.reason == "from_future"
    assert "600 s" in info.value.message
    # Refused at ingest now, accepted once the local clock catches up.
    check_timestamp(entry, now_ms=T0 - MAX_FUTURE_MS + 1)


def test_future_limit_is_ten_minutes() -> None:
    assert MAX_FUTURE_MS == 10 * 60 * 1000


# ------------------------------------------------------------ one validation path

# (id, kind, payload, reason): payloads the strict decoder refuses, which the
# publisher therefore refuses too, before signing and with the same reason.
UNPUBLISHABLE: list[tuple[str, str, Any, str]] = [
    ("unknown_kind_5_deep", "x-opaque", {"a": {"b": {"c": {"d": {"e": 1}}}}}, "too_deep"),
    ("unknown_kind_65_elements", "x-opaque", {"a": list(range(65))}, "malformed"),
    ("unknown_kind_65_fields", "x-opaque", {f"f{i:02}": 0 for i in range(65)}, "malformed"),
    ("unknown_kind_too_large", "x-opaque", {"b": b"x" * MAX_PAYLOAD_SIZE}, "too_large"),
    ("known_kind_too_deep", "post", {"text": "a", "reply": {"root": [[[[ID]]]], "parent": ID}}, "too_deep"),
    ("unknown_kind_not_a_map", "x-opaque", [1], "bad_field"),
    ("bad_kind_name", "Post", {"text": "a"}, "bad_envelope"),
]  # fmt: skip


@pytest.mark.parametrize(
    "kind,payload,reason", [c[1:] for c in UNPUBLISHABLE], ids=[c[0] for c in UNPUBLISHABLE]
)
def test_publisher_refuses_what_the_decoder_refuses(kind: str, payload: Any, reason: str) -> None:
    with pytest.raises(LocalUsageError) as info:
        create_entry(KEY, seq=1, prev=None, timestamp=T0, kind=kind, payload=payload)
    assert info.value.reason == reason
    if reason == "bad_envelope":
        return
    data = encode(payload)
    if len(data) <= MAX_PAYLOAD_SIZE:
        with pytest.raises((DecodeError, SchemaError)) as refused:
            decode_payload_untrusted(_entry_for_payload(kind, data), data)
        assert refused.value.reason == reason


def test_publisher_accepts_exactly_at_the_limits() -> None:
    for payload in ({"a": {"b": {"c": {"d": 1}}}}, {"a": list(range(64))}):
        entry, data = create_entry(
            KEY, seq=1, prev=None, timestamp=T0, kind="x-opaque", payload=payload
        )
        assert decode_payload_untrusted(decode_entry_untrusted(entry.to_bytes()), data) == payload

"""The key rules (spec/protocol.md §3, rules 2-4) and every place a key enters.

A table of encodings (valid, off the curve, each of the eight small-order
points, non-canonical), each checked against the independent decoder in
ed25519_ref.py and then pushed through every entry point: the check itself,
the text form, verify_strict, entry authors, payload identities, the
peer-link hello and the DHT. A seeded property compares our verdict with the
reference on arbitrary 32-byte strings.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.dht import HEAD, RecordRejected, head_key, validate_record
from p2psocial.protocol.dht.wire import hello_message, verify_hello
from p2psocial.protocol.encoding import encode
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    create_entry,
    decode_entry_untrusted,
    encode_payload,
)
from p2psocial.protocol.errors import DecodeError, InvalidSignature, LocalUsageError, SchemaError
from p2psocial.protocol.identity import (
    KEY_REASONS,
    SigningKey,
    check_public_key,
    identity_from_text,
    identity_to_text,
    node_id_from_public_key,
    public_key_problem,
    verify_strict,
)
from p2psocial.protocol.kinds import validate_payload
from p2psocial.protocol.wire import Hello, decode_message_untrusted, encode_message
from tests.protocol import ed25519_ref as ref

P = ref.P
# y of one point of order 8 (the other order-8 y is P - Y8); with both sign
# bits that is the four points of order 8.
Y8 = int.from_bytes(
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"
)
KEY = SigningKey.from_seed(b"\x33" * 32)
T0 = 1_700_000_000_000

# (name, encoding, reason or None for a usable key)
KEY_CASES: list[tuple[str, bytes, str | None]] = [
    # valid
    ("valid_seed_33", KEY.public_key, None),
    ("valid_rfc8032_test1", bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), None),
    ("valid_y3", ref.encode(3), None),
    ("valid_y3_sign", ref.encode(3, 1), None),
    # not on the curve: (y^2 - 1) / (d y^2 + 1) is not a square
    ("off_curve_y2", ref.encode(2), "invalid_key"),
    ("off_curve_y2_sign", ref.encode(2, 1), "invalid_key"),
    ("off_curve_y_minus_2", ref.encode(P - 2), "invalid_key"),
    ("off_curve_y7", ref.encode(7), "invalid_key"),
    # the eight points of small order
    ("small_order_1_neutral", ref.encode(1), "small_order_key"),
    ("small_order_2", ref.encode(P - 1), "small_order_key"),
    ("small_order_4_a", ref.encode(0), "small_order_key"),
    ("small_order_4_b", ref.encode(0, 1), "small_order_key"),
    ("small_order_8_a", ref.encode(Y8), "small_order_key"),
    ("small_order_8_b", ref.encode(Y8, 1), "small_order_key"),
    ("small_order_8_c", ref.encode(P - Y8), "small_order_key"),
    ("small_order_8_d", ref.encode(P - Y8, 1), "small_order_key"),
    # non-canonical: y >= p (19 such y, each with either sign bit) ...
    ("non_canonical_y_p", ref.encode(P), "non_canonical_key"),
    ("non_canonical_y_p_sign", ref.encode(P, 1), "non_canonical_key"),
    ("non_canonical_y_p_plus_1", ref.encode(P + 1), "non_canonical_key"),
    ("non_canonical_y_p_plus_2", ref.encode(P + 2), "non_canonical_key"),  # 2 is also off-curve
    ("non_canonical_y_p_plus_3", ref.encode(P + 3), "non_canonical_key"),  # 3 would be valid
    ("non_canonical_y_max", ref.encode(2**255 - 1, 1), "non_canonical_key"),
    # ... and x = 0 with the sign bit set
    ("non_canonical_neutral_sign", ref.encode(1, 1), "non_canonical_key"),
    ("non_canonical_order2_sign", ref.encode(P - 1, 1), "non_canonical_key"),
]  # fmt: skip
NAMES = [c[0] for c in KEY_CASES]
BAD_CASES = [c for c in KEY_CASES if c[2] is not None]
BAD_NAMES = [c[0] for c in BAD_CASES]


def _case(name: str) -> tuple[bytes, str | None]:
    _, enc, reason = next(c for c in KEY_CASES if c[0] == name)
    return enc, reason


def test_table_agrees_with_the_reference_decoder() -> None:
    for name, enc, reason in KEY_CASES:
        assert len(enc) == 32, name
        assert ref.expected_reason(enc) == reason, name
    small = {enc for _, enc, reason in KEY_CASES if reason == "small_order_key"}
    points = {ref.decode(enc) for enc in small}
    assert len(points) == 8  # every small-order point, each once


@pytest.mark.parametrize("name", NAMES)
def test_check_public_key(name: str) -> None:
    enc, reason = _case(name)
    if reason is None:
        check_public_key(enc)
        return
    with pytest.raises(InvalidSignature) as info:
        check_public_key(enc)
    assert info.value.reason == reason
    # Cached verdicts are still raised, every time.
    with pytest.raises(InvalidSignature):
        check_public_key(enc)


@pytest.mark.parametrize("pk", [b"\x01" * 31, b"\x01" * 33, bytearray(32), "x" * 32])
def test_check_public_key_wrong_length_or_type(pk: Any) -> None:
    with pytest.raises(InvalidSignature) as info:
        check_public_key(pk)
    assert info.value.reason == "bad_length"


def test_verdict_cache_is_bounded() -> None:
    assert public_key_problem.cache_info().maxsize is not None


@pytest.mark.parametrize("name", NAMES)
def test_identity_text(name: str) -> None:
    enc, reason = _case(name)
    text = identity_to_text(enc)
    if reason is None:
        assert identity_from_text(text) == enc
        return
    with pytest.raises(DecodeError) as info:
        identity_from_text(text)
    assert info.value.reason == reason
    assert str(info.value).startswith("not a valid identity")


@pytest.mark.parametrize("name", NAMES)
def test_verify_strict_reports_the_key_rule_first(name: str) -> None:
    # A well-formed signature by another key: the key rule must decide before
    # the R checks or the equation would ("mismatch", "small_order_r").
    enc, reason = _case(name)
    msg = b"issue 11"
    sig = KEY.sign(msg) if enc != KEY.public_key else SigningKey.from_seed(bytes(32)).sign(msg)
    small_r = ref.encode(1) + sig[32:]
    for signature in (sig, small_r):
        with pytest.raises(InvalidSignature) as info:
            verify_strict(enc, signature, msg)
        assert info.value.reason == (
            reason or ("small_order_r" if signature is small_r else "mismatch")
        )


def _envelope(author: bytes, kind: str = "post", payload: bytes = b"\x80") -> bytes:
    return encode(
        {
            "author": author,
            "kind": kind,
            "payload_hash": hashlib.sha256(payload).digest(),
            "payload_size": len(payload),
            "seq": 1,
            "timestamp": T0,
            "v": 1,
        }
    )


@pytest.mark.parametrize("name", BAD_NAMES)
def test_entry_author_is_refused_at_decode(name: str) -> None:
    enc, reason = _case(name)
    with pytest.raises(DecodeError) as info:
        decode_entry_untrusted(bytes(64) + _envelope(enc))
    assert info.value.reason == reason
    assert "author" in str(info.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_dht_head_record_with_bad_author(name: str) -> None:
    # Same verdict as a failed strict verification (spec/dht.md §5.4).
    enc, _ = _case(name)
    with pytest.raises(RecordRejected) as info:
        validate_record(HEAD, head_key(enc), bytes(64) + _envelope(enc), T0)
    assert info.value.reason == "bad_signature"


def _payloads(identity: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("follow", {"target": identity}),
        ("unfollow", {"target": identity}),
        ("block", {"target": identity, "reason": "spam"}),
        ("unblock", {"target": identity}),
        ("post", {"text": "hi", "mentions": [identity]}),
        ("post", {"text": "hi", "mentions": [ref.encode(5), identity]}),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_payload_identities(name: str) -> None:
    enc, reason = _case(name)
    for kind, payload in _payloads(enc):
        if reason is None:
            validate_payload(kind, payload)
            continue
        with pytest.raises(SchemaError) as info:
            validate_payload(kind, payload)
        assert info.value.reason == "bad_field", (kind, payload)
        assert "not a usable identity" in str(info.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_nothing_is_signed_naming_a_bad_key(name: str) -> None:
    enc, _ = _case(name)
    for kind, payload in _payloads(enc):
        with pytest.raises(LocalUsageError):
            encode_payload(kind, payload)
        with pytest.raises(LocalUsageError):
            create_entry(KEY, seq=1, prev=None, timestamp=T0, kind=kind, payload=payload)


@pytest.mark.parametrize("name", NAMES)
def test_peer_link_hello_key(name: str) -> None:
    enc, reason = _case(name)
    body = encode_message(Hello(enc, b"n" * 32, 4000))
    if reason is None:
        assert decode_message_untrusted(body) == Hello(enc, b"n" * 32, 4000)
        return
    with pytest.raises(DecodeError) as info:
        decode_message_untrusted(body)
    assert info.value.reason == "bad_key"  # spec/sync.md §3
    assert reason in str(info.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_dht_hello_key(name: str) -> None:
    enc, reason = _case(name)
    nonce, requester = b"n" * 32, b"r" * 20
    sig = KEY.sign(hello_message(nonce, requester))
    for expected_id in (node_id_from_public_key(enc), b"\x00" * 20):
        with pytest.raises(InvalidSignature) as info:
            verify_hello(expected_id, nonce, requester, enc, sig)
        assert info.value.reason == reason


def test_valid_dht_hello_still_verifies() -> None:
    nonce, requester = b"n" * 32, b"r" * 20
    sig = KEY.sign(hello_message(nonce, requester))
    verify_hello(node_id_from_public_key(KEY.public_key), nonce, requester, KEY.public_key, sig)


def test_valid_author_entry_still_decodes_and_verifies() -> None:
    entry, _ = create_entry(
        KEY, seq=1, prev=None, timestamp=T0, kind="follow", payload={"target": ref.encode(3)}
    )
    again = decode_entry_untrusted(entry.to_bytes())
    again.verify()
    verify_strict(KEY.public_key, entry.signature, ENTRY_TAG + entry.envelope)


# --- properties --------------------------------------------------------------

_Y_NEAR = st.sampled_from([0, 1, 2, 3, P - 2, P - 1, Y8, P - Y8])
keys = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.builds(ref.encode, st.integers(0, 2**255 - 1), st.integers(0, 1)),
    st.builds(ref.encode, st.integers(P - 3, 2**255 - 1), st.integers(0, 1)),
    st.builds(ref.encode, _Y_NEAR, st.integers(0, 1)),
)


@seed(20241111)
@settings(max_examples=300, deadline=None)
@given(keys)
def test_check_agrees_with_reference_decoding(enc: bytes) -> None:
    expected = ref.expected_reason(enc)
    try:
        check_public_key(enc)
        got = None
    except InvalidSignature as exc:
        got = exc.reason
    assert got == expected
    assert got is None or got in KEY_REASONS


@seed(20241112)
@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_generated_keys_are_always_accepted(secret: bytes) -> None:
    pk = SigningKey.from_seed(secret).public_key
    check_public_key(pk)
    assert ref.expected_reason(pk) is None
    assert identity_from_text(identity_to_text(pk)) == pk


def test_fresh_random_keys_are_accepted() -> None:
    for _ in range(50):
        check_public_key(SigningKey.generate().public_key)


def _public_vector_keys() -> list[tuple[str, bytes]]:
    from tests.conftest import load_shared_vector

    out = []
    for i, case in enumerate(load_shared_vector("ed25519-speccheck/cases.json")):
        out.append((f"speccheck {i}", bytes.fromhex(case["pub_key"])))
    for g in load_shared_vector("wycheproof/ed25519_test.json")["testGroups"]:
        out.append(
            (f"wycheproof group {g['publicKey']['pk'][:8]}", bytes.fromhex(g["publicKey"]["pk"]))
        )
    return out


def test_public_vector_keys_agree_with_the_reference() -> None:
    # Every key in the public Ed25519 vectors is on the curve; speccheck's
    # small-order and non-canonical keys get the same reason from both.
    keys = _public_vector_keys()
    assert len(keys) > 12
    for where, pk in keys:
        try:
            check_public_key(pk)
            got = None
        except InvalidSignature as exc:
            got = exc.reason
        assert got == ref.expected_reason(pk), where
        assert got != "invalid_key", where

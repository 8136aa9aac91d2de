"""Bad input: every decoder raises only its documented typed errors, never anything else.

The contract (STYLE §6, spec/protocol.md §3): a function that reads bytes from
outside may raise only the errors its docstring lists:

=============================  ==================================================
decoder                        may raise
=============================  ==================================================
decode_untrusted               DecodeError
decode_entry_untrusted         DecodeError
decode_payload_untrusted       DecodeError, SchemaError
decode_fork_proof_untrusted    DecodeError, InvalidSignature, ChainError
identity_from_text             DecodeError
=============================  ==================================================

Inputs are random bytes and mutations of valid encodings (bit flips, byte
substitutions, truncations, insertions, deletions), each fed whole and as every
prefix, the way h11's fuzzer feeds data. Whatever a decoder accepts must also be
canonical: re-encoding it gives back the exact input.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import Limits, decode_untrusted, encode
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    Entry,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
)
from p2psocial.protocol.errors import (
    ChainError,
    DecodeError,
    InvalidSignature,
    ProtocolError,
    SchemaError,
)
from p2psocial.protocol.feeds import decode_fork_proof_untrusted, detect_fork
from p2psocial.protocol.identity import SigningKey, identity_from_text, identity_to_text

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = SigningKey.from_seed(b"\x66" * 32)
OTHER = SigningKey.from_seed(b"\x77" * 32).public_key
ID = hashlib.sha256(b"target").digest()
T0 = 1_700_000_000_000

SAMPLE_PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("post", {"text": "hello", "reply": {"root": ID, "parent": ID}, "mentions": [OTHER],
              "tags": ["a", "b"], "lang": "en"}),
    ("profile", {"name": "Ann", "bio": "hi"}),
    ("follow", {"target": OTHER}),
    ("unfollow", {"target": OTHER}),
    ("react", {"target": ID, "emoji": "👍"}),
    ("repost", {"target": ID}),
    ("delete", {"target": ID}),
    ("block", {"target": OTHER, "reason": "spam"}),
    ("unblock", {"target": OTHER}),
    ("poll", {"q": "?", "opts": ["a", "b"], "n": 3}),
]  # fmt: skip


def _entries() -> list[tuple[Entry, bytes]]:
    out: list[tuple[Entry, bytes]] = []
    prev = None
    for seq, (kind, payload) in enumerate(SAMPLE_PAYLOADS, start=1):
        e, data = create_entry(
            KEY, seq=seq, prev=prev, timestamp=T0 + seq, kind=kind, payload=payload
        )
        out.append((e, data))
        prev = e.id
    return out


ENTRIES = _entries()


def _fork_proof_bytes() -> bytes:
    first = ENTRIES[0][0]
    sibling, _ = create_entry(
        KEY, seq=2, prev=first.id, timestamp=T0, kind="post", payload={"text": "other"}
    )
    proof = detect_fork(ENTRIES[1][0], sibling)
    assert proof is not None
    return proof.to_bytes()


FORK_PROOF = _fork_proof_bytes()
VALUE_SAMPLES = [encode(p) for _, p in SAMPLE_PAYLOADS] + [
    encode([1, -1, 2**64 - 1, -(2**63), True, b"", "", {}, []]),
    encode({"a": {"b": {"c": [b"x" * 40]}}}),
]


# ------------------------------------------------------------ mutations


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A valid sample with 1..4 random edits."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "dup"]))
        n = len(data)
        if n == 0:
            data.extend(draw(st.binary(min_size=1, max_size=4)))
            continue
        i = draw(st.integers(0, n - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            # Interesting bytes: msgpack type markers and length extremes.
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xCC, 0xD9, 0xDC,
                                            0xDE, 0xDF, 0xFF, draw(st.integers(0, 255))]))  # fmt: skip
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


def every_prefix(data: bytes) -> list[bytes]:
    return [data[:k] for k in range(len(data) + 1)]


def feed(
    decode: Callable[[bytes], Any],
    data: bytes,
    allowed: tuple[type[ProtocolError], ...],
    check_ok: Callable[[bytes, Any], None] | None = None,
) -> None:
    """Decode ``data`` and all its prefixes; only ``allowed`` errors may escape."""
    for chunk in [data, *every_prefix(data)[:-1]]:
        try:
            result = decode(chunk)
        except allowed:
            continue
        # Anything else propagates and fails the test, with the input shown.
        if check_ok is not None:
            check_ok(chunk, result)


# ------------------------------------------------------------ decode_untrusted

SMALL = Limits(max_size=4096, max_depth=8, max_container_len=64, max_str_len=512, max_bin_len=512)


def _canonical_value(data: bytes, value: Any) -> None:
    assert encode(value) == data


@FUZZ
@given(st.binary(max_size=200))
def test_decode_untrusted_random(data: bytes) -> None:
    feed(lambda d: decode_untrusted(d, SMALL), data, (DecodeError,), _canonical_value)


@FUZZ
@given(mutated(VALUE_SAMPLES))
def test_decode_untrusted_mutated(data: bytes) -> None:
    feed(lambda d: decode_untrusted(d, SMALL), data, (DecodeError,), _canonical_value)


# ------------------------------------------------------------ entries

ENTRY_SAMPLES = [e.to_bytes() for e, _ in ENTRIES]


def _entry_ok(data: bytes, entry: Entry) -> None:
    assert entry.to_bytes() == data
    assert entry.id == hashlib.sha256(data).digest()


@FUZZ
@given(st.binary(max_size=400))
def test_decode_entry_random(data: bytes) -> None:
    feed(decode_entry_untrusted, data, (DecodeError,), _entry_ok)


@FUZZ
@given(mutated(ENTRY_SAMPLES))
def test_decode_entry_mutated(data: bytes) -> None:
    feed(decode_entry_untrusted, data, (DecodeError,), _entry_ok)


@FUZZ
@given(st.sampled_from(ENTRY_SAMPLES), st.integers(0, 255), st.data())
def test_decode_entry_envelope_byte_substitution(
    sample: bytes, byte: int, data: st.DataObject
) -> None:
    # Edits inside the envelope only, where the structure is.
    i = data.draw(st.integers(64, len(sample) - 1))
    mangled = sample[:i] + bytes([byte]) + sample[i + 1 :]
    feed(decode_entry_untrusted, mangled, (DecodeError,), _entry_ok)


_ENV_FIELDS = ["author", "kind", "payload_hash", "payload_size", "prev", "seq", "timestamp", "v"]
# Any msgpack value at all, including types outside the profile, to hit
# every type-confusion path of the field checks.
_any_msgpack = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@FUZZ
@given(st.sampled_from(ENTRIES), st.sampled_from(_ENV_FIELDS), _any_msgpack, st.booleans())
def test_decode_entry_field_type_confusion(
    pair: tuple[Entry, bytes], field: str, value: Any, drop: bool
) -> None:
    import msgpack

    env = msgpack.unpackb(pair[0].envelope)
    if drop:
        env.pop(field, None)
    else:
        env[field] = value
    envelope = msgpack.packb(dict(sorted(env.items())), use_bin_type=True)
    feed(decode_entry_untrusted, bytes(64) + envelope, (DecodeError,), _entry_ok)


# ------------------------------------------------------------ payloads

PAYLOAD_SAMPLES = [data for _, data in ENTRIES]


def _committing_entry(kind: str, payload: bytes) -> Entry:
    """An (unsigned) entry whose envelope commits to ``payload``, so the schema is reached."""
    env = encode(
        {
            "author": KEY.public_key,
            "kind": kind,
            "payload_hash": hashlib.sha256(payload).digest(),
            "payload_size": min(len(payload), 16 * 1024),
            "seq": 1,
            "timestamp": T0,
            "v": 1,
        }
    )
    return decode_entry_untrusted(bytes(64) + env)


def _payload_ok(data: bytes, value: Any) -> None:
    assert encode(value) == data


@FUZZ
@given(st.sampled_from([k for k, _ in SAMPLE_PAYLOADS]), mutated(PAYLOAD_SAMPLES))
def test_decode_payload_mutated(kind: str, data: bytes) -> None:
    def decode(chunk: bytes) -> Any:
        return decode_payload_untrusted(_committing_entry(kind, chunk), chunk)

    feed(decode, data, (DecodeError, SchemaError), _payload_ok)


@FUZZ
@given(st.sampled_from(ENTRIES), st.binary(max_size=100))
def test_decode_payload_random_against_real_entry(pair: tuple[Entry, bytes], data: bytes) -> None:
    entry, _ = pair
    feed(lambda d: decode_payload_untrusted(entry, d), data, (DecodeError, SchemaError))


@FUZZ
@given(st.sampled_from([k for k, _ in SAMPLE_PAYLOADS]), st.binary(max_size=100))
def test_decode_payload_random_committed(kind: str, data: bytes) -> None:
    feed(
        lambda d: decode_payload_untrusted(_committing_entry(kind, d), d),
        data,
        (DecodeError, SchemaError),
        _payload_ok,
    )


# ------------------------------------------------------------ fork proofs

FORK_ERRORS = (DecodeError, InvalidSignature, ChainError)


@FUZZ
@given(st.binary(max_size=300))
def test_decode_fork_proof_random(data: bytes) -> None:
    feed(decode_fork_proof_untrusted, data, FORK_ERRORS)


@settings(max_examples=80, deadline=None)
@given(mutated([FORK_PROOF]))
def test_decode_fork_proof_mutated(data: bytes) -> None:
    def ok(chunk: bytes, proof: Any) -> None:
        assert proof.to_bytes() == chunk

    feed(decode_fork_proof_untrusted, data, FORK_ERRORS, ok)


# ------------------------------------------------------------ identity text

IDENTITIES = [identity_to_text(SigningKey.from_seed(bytes([i]) * 32).public_key) for i in range(4)]
_BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _identity_prefixes(text: str) -> list[str]:
    return [text, *(text[:k] for k in range(len(text)))]


@FUZZ
@given(st.text(max_size=100))
def test_identity_from_random_text(text: str) -> None:
    for chunk in _identity_prefixes(text):
        with contextlib.suppress(DecodeError):
            identity_from_text(chunk)


@FUZZ
@given(st.sampled_from(IDENTITIES), st.data())
def test_identity_from_mutated_text(text: str, data: st.DataObject) -> None:
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "swap", "case"]))
        i = data.draw(st.integers(0, len(chars) - 1))
        if op == "set":
            chars[i] = data.draw(st.sampled_from(_BECH + "1bioBIO -é\x00"))
        elif op == "insert":
            chars.insert(i, data.draw(st.characters()))
        elif op == "delete" and len(chars) > 1:
            del chars[i]
        elif op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "case":
            chars[i] = chars[i].upper()
    for chunk in _identity_prefixes("".join(chars)):
        try:
            raw = identity_from_text(chunk)
        except DecodeError:
            continue
        assert identity_to_text(raw) == chunk.strip().lower()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(IDENTITIES), st.data())
def test_identity_single_substitution_always_detected(text: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(len("p2ps1"), len(text) - 1))
    c = data.draw(st.sampled_from(_BECH).filter(lambda c: c != text[i]))
    with pytest.raises(DecodeError) as info:
        identity_from_text(text[:i] + c + text[i + 1 :])
    assert info.value.reason == "bad_checksum"


def test_non_str_identity_input() -> None:
    for bad in (b"p2ps1", None, 5):
        with pytest.raises(DecodeError):
            identity_from_text(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------ round trips per record type


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_identity_round_trip(seed: bytes) -> None:
    pk = SigningKey.from_seed(seed).public_key
    text = identity_to_text(pk)
    assert text.startswith("p2ps1")
    assert identity_from_text(text) == pk
    assert identity_from_text(text.upper()) == pk


_text = st.text(min_size=1, max_size=30)
_ids = st.binary(min_size=32, max_size=32)
_EMOJI = ["👍", "❤️", "✌🏽", "🇫🇷", "1️⃣", "👨‍👩‍👧", "🏴‍☠️"]
_authors = st.sampled_from([OTHER, KEY.public_key])
PAYLOAD_STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "post": st.fixed_dictionaries(
        {"text": _text},
        optional={
            "reply": st.fixed_dictionaries({"root": _ids, "parent": _ids}),
            "mentions": st.lists(_authors, min_size=1, max_size=2, unique=True),
            "tags": st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4, unique=True),
            "lang": st.text(min_size=1, max_size=5),
        },
    ),
    "profile": st.fixed_dictionaries({}, optional={"name": _text, "bio": _text}),
    "follow": st.fixed_dictionaries({"target": _authors}),
    "unfollow": st.fixed_dictionaries({"target": _authors}),
    "react": st.fixed_dictionaries({"target": _ids, "emoji": st.sampled_from(_EMOJI)}),
    "repost": st.fixed_dictionaries({"target": _ids}),
    "delete": st.fixed_dictionaries({"target": _ids}),
    "block": st.fixed_dictionaries({"target": _authors}, optional={"reason": _text}),
    "unblock": st.fixed_dictionaries({"target": _authors}),
    "custom.kind": st.dictionaries(
        st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=5)
    ),
}


@pytest.mark.parametrize("kind", sorted(PAYLOAD_STRATEGIES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_entry_and_payload_round_trip(kind: str, data: st.DataObject) -> None:
    payload = data.draw(PAYLOAD_STRATEGIES[kind], label="payload")
    seq = data.draw(st.integers(1, 2**53 - 1), label="seq")
    prev = None if seq == 1 else data.draw(_ids, label="prev")
    ts = data.draw(st.integers(0, 2**53 - 1), label="timestamp")
    entry, pbytes = create_entry(KEY, seq=seq, prev=prev, timestamp=ts, kind=kind, payload=payload)
    back = decode_entry_untrusted(entry.to_bytes())
    assert back == entry
    back.verify()
    assert decode_payload_untrusted(back, pbytes) == payload
    assert (back.seq, back.prev, back.timestamp, back.kind) == (seq, prev, ts, kind)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), _text, _text, st.integers(1, 1000))
def test_fork_proof_round_trip(seed: bytes, t1: str, t2: str, seq: int) -> None:
    key = SigningKey.from_seed(seed)
    prev = None if seq == 1 else ID
    a, _ = create_entry(key, seq=seq, prev=prev, timestamp=T0, kind="post", payload={"text": t1})
    b, _ = create_entry(
        key, seq=seq, prev=prev, timestamp=T0 + 1, kind="post", payload={"text": t2}
    )
    proof = detect_fork(a, b)
    assert proof is not None
    back = decode_fork_proof_untrusted(proof.to_bytes())
    assert back == proof
    assert back.to_bytes() == proof.to_bytes()


def test_entry_tag_is_used_for_samples() -> None:
    """The samples really are validly signed over the tagged envelope, so the
    mutations start from valid input (a constant used to stand in for this)."""
    assert ENTRIES
    for e, _ in ENTRIES:
        e.verify()
        # The signature covers tag || envelope: the same signature over the
        # bare envelope must not verify.
        pub = Ed25519PublicKey.from_public_bytes(e.author)
        pub.verify(e.signature, ENTRY_TAG + e.envelope)
        with pytest.raises(CryptoInvalidSignature):
            pub.verify(e.signature, e.envelope)

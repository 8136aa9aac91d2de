"""One validation path (issue 11 item 2): seeded properties over publisher and decoders.

* Whatever the library creates, the strict decoders accept; whatever it
  refuses to create, a receiver refuses with the same reason.
* Whatever the strict decoders accept re-encodes to the exact input bytes, and
  the library would publish it unchanged.
* The fast paths (msgpack's C parser plus a re-encoding) and the byte walk
  that names every refusal (``encoding.check_canonical``) accept exactly the
  same inputs.

The CI profile in tests/conftest.py derandomizes every property.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2psocial.protocol import encoding, entries, feeds
from p2psocial.protocol.encoding import Limits, check_canonical, encode
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    Entry,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
    encode_payload,
)
from p2psocial.protocol.errors import DecodeError, InvalidSignature, LocalUsageError, ProtocolError
from p2psocial.protocol.identity import SigningKey, check_signature_encoding
from p2psocial.protocol.kinds import KINDS

KEY = SigningKey.from_seed(b"\x5a" * 32)
FRIEND = SigningKey.from_seed(b"\x5b" * 32).public_key
ID = hashlib.sha256(b"property target").digest()
T0 = 1_700_000_000_000
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------ strategies

ints = st.one_of(
    st.integers(-40, 300),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
scalars = st.one_of(
    ints,
    st.booleans(),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.just(ID),
    st.just(FRIEND),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=70),
        st.dictionaries(st.text(max_size=5), inner, max_size=6),
    ),
    max_leaves=150,
)


def _nest(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = {f"k{i}": leaf} if i % 2 else [leaf]
    return leaf


deep = st.builds(_nest, st.integers(0, 7), scalars)
kind_names = st.one_of(
    st.sampled_from(sorted(KINDS)),
    st.from_regex(r"[a-z][a-z0-9_.-]{0,31}", fullmatch=True),
    st.sampled_from(["", "Post", "k" * 33, "1post", "pö"]),
)
SAMPLES: dict[str, dict[str, Any]] = {
    "post": {"text": "hi", "reply": {"root": ID, "parent": ID}, "mentions": [FRIEND],
             "tags": ["a"], "lang": "en"},
    "profile": {"name": "n", "bio": "b"},
    "follow": {"target": FRIEND},
    "unfollow": {"target": FRIEND},
    "react": {"target": ID, "emoji": "👍"},
    "repost": {"target": ID},
    "delete": {"target": ID},
    "block": {"target": FRIEND, "reason": "r"},
    "unblock": {"target": FRIEND},
}  # fmt: skip


@st.composite
def payloads(draw: st.DrawFn, kind: str) -> Any:
    """A payload near the schema of ``kind``: a valid sample with fields replaced,
    dropped or added, or an arbitrary (possibly deep or wide) map."""
    if kind in SAMPLES and draw(st.booleans()):
        p = dict(SAMPLES[kind])
        for _ in range(draw(st.integers(0, 2))):
            op = draw(st.sampled_from(["replace", "drop", "add"]))
            field = draw(st.sampled_from(sorted(p) or ["text"]))
            if op == "replace":
                p[field] = draw(st.one_of(values, deep))
            elif op == "drop":
                p.pop(field, None)
            else:
                p[draw(st.text(max_size=5))] = draw(values)
        return p
    if draw(st.booleans()):
        return {"x": draw(deep)}
    return draw(st.one_of(st.dictionaries(st.text(max_size=5), values, max_size=8), values))


@st.composite
def kind_and_payload(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(kind_names)
    return kind, draw(payloads(kind))


MARKERS = [0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC4, 0xC5,
           0xC7, 0xCA, 0xCB, 0xCC, 0xCD, 0xCF, 0xD0, 0xD3, 0xD4, 0xD6, 0xD9, 0xDA, 0xDC,
           0xDD, 0xDE, 0xDF, 0xE0, 0xFF]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A valid sample with 0..3 byte-level edits, msgpack markers favoured."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            data.extend(draw(st.binary(min_size=1, max_size=3)))
            continue
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "flip", "insert", "delete", "truncate"]))
        if op == "set":
            data[i] = draw(st.one_of(st.sampled_from(MARKERS), st.integers(0, 255)))
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[i:i] = bytes([draw(st.sampled_from(MARKERS))]) + draw(st.binary(max_size=2))
        elif op == "delete":
            del data[i]
        else:
            del data[i:]
    return bytes(data)


# Values outside the profile, written by a lenient packer: every msgpack type,
# non-text and unsorted keys, every integer width.
lenient_scalars = st.one_of(
    scalars,
    st.none(),
    st.floats(allow_nan=False),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=5)),
)
lenient_values = st.recursive(
    lenient_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3), st.binary(max_size=2)),
                        inner, max_size=5),
    ),
    max_leaves=20,
)  # fmt: skip


def _entry_committing_to(kind: str, data: bytes) -> Entry:
    """An entry (zero signature: decoding does not check it) bound to ``data``."""
    env = encode(
        {
            "author": KEY.public_key,
            "kind": kind,
            "payload_hash": hashlib.sha256(data).digest(),
            "payload_size": len(data),
            "seq": 1,
            "timestamp": T0,
            "v": 1,
        }
    )
    return decode_entry_untrusted(bytes(64) + env)


def _valid_kind(kind: str) -> bool:
    try:
        encode_payload(kind, SAMPLES.get(kind, {}))
    except LocalUsageError:
        return False
    return True


# ------------------------------------------------------------ create => decode


@PROPS
@given(kind_and_payload(), st.integers(1, 3), st.integers(0, 2**53 - 1))
def test_what_the_library_creates_the_strict_decoder_accepts(
    kp: tuple[str, Any], seq: int, ts: int
) -> None:
    kind, payload = kp
    prev = None if seq == 1 else ID
    try:
        entry, data = create_entry(
            KEY, seq=seq, prev=prev, timestamp=ts, kind=kind, payload=payload
        )
    except LocalUsageError as exc:
        # Refused locally: a receiver refuses the same bytes for the same reason.
        if not _valid_kind(kind):
            assert exc.reason == "bad_envelope"
            return
        try:
            data = encode(payload)
        except LocalUsageError:
            return  # not expressible in the profile at all (never produced)
        if len(data) > entries.MAX_PAYLOAD_SIZE:
            assert exc.reason == "too_large"
            return
        try:
            decode_payload_untrusted(_entry_committing_to(kind, data), data)
        except ProtocolError as refused:
            assert refused.reason == exc.reason
        else:
            raise AssertionError(f"create refused ({exc.reason}) what a receiver accepts")
        return
    back = decode_entry_untrusted(entry.to_bytes())
    assert back == entry
    back.verify()
    value = decode_payload_untrusted(back, data)
    assert encode(value) == data == encode(payload)


@PROPS
@given(st.integers(0, 9), st.integers(0, 80))
def test_publisher_enforces_depth_and_container_limits(depth: int, width: int) -> None:
    """The two gaps of issue 11: an unknown kind nested 5 deep, 65 elements."""
    payload = {"a": _nest(depth, [0] * width)}
    # In {"a": v} the array of zeros sits at depth depth + 1 and its elements
    # one deeper. The walk goes in byte order: the array's header (and its
    # length limit) comes before its elements.
    if depth + 1 > 4:
        expected = "too_deep"
    elif width > 64:
        expected = "malformed"
    elif width and depth + 2 > 4:
        expected = "too_deep"
    else:
        expected = None
    try:
        data = encode_payload("x-opaque", payload)
    except LocalUsageError as exc:
        assert exc.reason == expected
        return
    assert expected is None
    decode_payload_untrusted(_entry_committing_to("x-opaque", data), data)


# ------------------------------------------------------------ decode => re-encode

PAYLOAD_SAMPLES = [encode(p) for p in SAMPLES.values()] + [
    encode({"x": _nest(3, [1, -1, 2**64 - 1, -(2**63), True, b"", "é"])}),
    encode({"b": b"x" * 300, "s": "y" * 40, "l": list(range(20))}),
]


@PROPS
@given(mutated(PAYLOAD_SAMPLES), st.sampled_from([*sorted(KINDS), "x-opaque"]))
def test_an_accepted_payload_re_encodes_byte_identically(data: bytes, kind: str) -> None:
    if len(data) > entries.MAX_PAYLOAD_SIZE:
        return
    entry = _entry_committing_to(kind, data)
    try:
        value = decode_payload_untrusted(entry, data)
    except ProtocolError:
        return
    assert encode(value) == data
    # ... and the publisher would sign exactly these bytes.
    assert encode_payload(kind, value) == data


def _entry_samples() -> list[bytes]:
    out = []
    prev = None
    for seq, (kind, payload) in enumerate(SAMPLES.items(), start=1):
        e, _ = create_entry(KEY, seq=seq, prev=prev, timestamp=T0 + seq, kind=kind, payload=payload)
        out.append(e.to_bytes())
        prev = e.id
    return out


ENTRY_SAMPLES = _entry_samples()


@PROPS
@given(mutated(ENTRY_SAMPLES))
def test_an_accepted_entry_re_encodes_byte_identically(data: bytes) -> None:
    try:
        entry = decode_entry_untrusted(data)
    except DecodeError:
        return
    env: dict[str, Any] = {
        "author": entry.author,
        "kind": entry.kind,
        "payload_hash": entry.payload_hash,
        "payload_size": entry.payload_size,
        "seq": entry.seq,
        "timestamp": entry.timestamp,
        "v": 1,
    }
    if entry.prev is not None:
        env["prev"] = entry.prev
    assert encode(env) == entry.envelope
    assert entry.to_bytes() == data
    assert entry.id == hashlib.sha256(data).digest()
    # The envelope is one the publisher would build and sign.
    assert ENTRY_TAG + entry.envelope == ENTRY_TAG + encode(env)


# ------------------------------------------------------------ fast path == byte walk

LIMITS = [
    encoding.DEFAULT_LIMITS,
    entries._PAYLOAD_LIMITS,
    entries._ENVELOPE_LIMITS,
    feeds._FORK_LIMITS,
    Limits(max_size=64, max_depth=2, max_container_len=3, max_str_len=4, max_bin_len=4),
]


def _walk_accepts(data: bytes, limits: Limits) -> bool:
    try:
        check_canonical(data, limits)
    except DecodeError:
        return False
    return True


def _agree(data: bytes) -> None:
    for limits in LIMITS:
        fast = encoding._fast_decode(data, limits) is not encoding._REFUSED
        assert fast == _walk_accepts(data, limits), (data.hex(), limits)


@PROPS
@given(mutated(PAYLOAD_SAMPLES + [e[64:] for e in ENTRY_SAMPLES]))
def test_fast_path_and_byte_walk_agree_on_mutations(data: bytes) -> None:
    _agree(data)


@PROPS
@given(lenient_values, st.booleans())
def test_fast_path_and_byte_walk_agree_on_any_msgpack(value: Any, bin_type: bool) -> None:
    _agree(msgpack.packb(value, use_bin_type=bin_type))


@PROPS
@given(mutated([e[64:] for e in ENTRY_SAMPLES]))
def test_envelope_fast_path_and_full_check_agree(envelope: bytes) -> None:
    fast = entries._envelope_fast(envelope)
    try:
        full = entries._envelope_full(envelope)
    except DecodeError:
        assert fast is None
        return
    assert fast == full


# ------------------------------------------------------------ new decoders == old ones
#
# Issue 21.4 put the canonical check of envelopes into one byte pattern and
# let msgpack's C parser and packer carry the payload check. The pure-Python
# byte walk below (``check_canonical``, then a plain parse) is the decoder
# they replaced on the hot path, kept here as the reference: on seeded random
# inputs the new decoders must accept exactly what it accepts, with equal
# values, and refuse the rest with the reason it names.


def _reference_decode(data: bytes, limits: Limits) -> Any:
    """The old decoder: walk the bytes in Python, then parse what passed."""
    check_canonical(data, limits)
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except DecodeError as exc:
        return "refused", exc.reason


def _same_as_reference_envelope(envelope: bytes) -> None:
    try:
        old: Any = entries._envelope_full(envelope)
    except DecodeError:
        old = None
    assert entries._envelope_fast(envelope) == old, envelope.hex()


uints = st.one_of(
    st.integers(0, 2**8),
    st.sampled_from([2**k + d for k in (7, 8, 15, 16, 31, 32, 53, 63) for d in (-1, 0, 1)]),
    st.integers(0, 2**64 - 1),
)


@PROPS
@given(
    st.one_of(st.integers(0, 3), uints),
    st.one_of(st.integers(0, 2**53 + 1), uints),
    st.one_of(st.integers(0, 16385), uints),
    kind_names,
    st.booleans(),
)
def test_envelope_pattern_matches_the_byte_walk_on_any_field_values(
    seq: int, ts: int, psize: int, kind: str, with_prev: bool
) -> None:
    # Every width of every integer, kind names of every length (valid or
    # not), prev present or absent at any seq: valid envelopes and envelopes
    # that only break a range or shape rule.
    env: dict[str, Any] = {
        "author": KEY.public_key,
        "kind": kind,
        "payload_hash": ID,
        "payload_size": psize,
        "seq": seq,
        "timestamp": ts,
        "v": 1,
    }
    if with_prev:
        env["prev"] = ID
    _same_as_reference_envelope(encode(env))


def _fuzz_inputs(target: str, n: int) -> list[bytes]:
    """``n`` inputs of one bench/fuzz.py target, from its seeded generator."""
    import random

    from tests.test_fuzz_runner import fuzz

    spec = fuzz.targets()[target]
    gen = fuzz.generator(spec, random.Random(f"issue-21.4:{target}"))
    return [bytes(gen()) for _ in range(n)]


def test_envelope_pattern_matches_the_byte_walk_on_fuzzed_entries() -> None:
    for data in _fuzz_inputs("entry", 5000):
        _same_as_reference_envelope(data[64:])
        if 64 < len(data) <= entries.MAX_ENTRY_SIZE:
            continue
        assert _outcome(decode_entry_untrusted, data)[0] == "refused"


def test_decode_untrusted_matches_the_byte_walk_on_fuzzed_values() -> None:
    inputs = _fuzz_inputs("msgpack", 3000) + [
        data
        for kind in ("post", "react", "unknown")
        for data in _fuzz_inputs(f"payload.{kind}", 1500)
    ]
    accepted = 0
    for data in inputs:
        for limits in LIMITS:
            new = _outcome(encoding.decode_untrusted, data, limits)
            assert new == _outcome(_reference_decode, data, limits), (data.hex(), limits)
            accepted += new[0] == "ok"
    assert accepted > 1000  # the inputs reach acceptance, not only refusals


@PROPS
@given(lenient_values, st.booleans(), st.sampled_from(LIMITS))
def test_decode_untrusted_matches_the_byte_walk_on_any_msgpack(
    value: Any, bin_type: bool, limits: Limits
) -> None:
    data = msgpack.packb(value, use_bin_type=bin_type)
    assert _outcome(encoding.decode_untrusted, data, limits) == _outcome(
        _reference_decode, data, limits
    )


# ------------------------------------------------------------ verify_run's signature screen

_R_EDGES = [
    (y | sign << 255).to_bytes(32, "little")
    for y in (0, 1, 2, 2**255 - 20, 2**255 - 19, 2**255 - 1, *range(2**255 - 40, 2**255))
    for sign in (0, 1)
]


def _encoding_refused(signature: bytes) -> bool:
    try:
        check_signature_encoding(signature)
    except InvalidSignature:
        return True
    return False


@PROPS
@given(
    st.one_of(
        st.binary(min_size=32, max_size=32), st.sampled_from(_R_EDGES + sorted(feeds._BAD_R))
    ),
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.integers(2**252 - 2, 2**253).map(lambda s: s.to_bytes(32, "little")),
        st.just(b"\xff" * 32),
    ),
)
def test_verify_run_screen_refuses_exactly_the_malformed_signatures(r: bytes, s: bytes) -> None:
    # verify_run asks check_signature_encoding only when its screen (R in
    # _BAD_R, or S's top byte at least L's) cannot vouch for the signature.
    sig = r + s
    screened_ok = sig[63] < 0x10 and r not in feeds._BAD_R
    if screened_ok:
        assert not _encoding_refused(sig), sig.hex()
    assert (r in feeds._BAD_R) == _encoding_refused(r + bytes(32)), r.hex()


def test_verify_run_refuses_a_malformed_inner_signature() -> None:
    run = []
    prev = None
    for seq in (1, 2, 3):
        e, _ = create_entry(
            KEY, seq=seq, prev=prev, timestamp=T0, kind="post", payload={"text": "x"}
        )
        run.append(e)
        prev = e.id
    for bad_r in sorted(feeds._BAD_R)[:3]:
        forged = dataclasses.replace(run[1], signature=bad_r + run[1].signature[32:])
        with pytest.raises(InvalidSignature):
            feeds.verify_run([run[0], forged, run[2]])

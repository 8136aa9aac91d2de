"""Canonical msgpack: tables, limits, a round-trip property and the msgpack-test-suite."""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import Limits, decode_untrusted, encode
from p2psocial.protocol.errors import DecodeError, LocalUsageError
from tests.conftest import load_shared_vector


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (True == 1 in Python, not in msgpack)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# (id, value, canonical encoding as hex). Every row is checked both ways:
# encode(value) gives exactly these bytes and decode_untrusted gives value back.
CANONICAL = [
    ("int_0", 0, "00"),
    ("int_fixint_max", 127, "7f"),
    ("int_uint8_min", 128, "cc80"),
    ("int_uint8_max", 255, "ccff"),
    ("int_uint16", 256, "cd0100"),
    ("int_uint32", 65536, "ce00010000"),
    ("int_uint64", 2**32, "cf0000000100000000"),
    ("int_max", 2**64 - 1, "cfffffffffffffffff"),
    ("int_2pow63_minus_1_unsigned", 2**63 - 1, "cf7fffffffffffffff"),
    ("int_neg1", -1, "ff"),
    ("int_neg_fixint_min", -32, "e0"),
    ("int_int8", -33, "d0df"),
    ("int_int8_min", -128, "d080"),
    ("int_int16", -129, "d1ff7f"),
    ("int_int32", -32769, "d2ffff7fff"),
    ("int_min", -(2**63), "d38000000000000000"),
    ("false", False, "c2"),
    ("true", True, "c3"),
    ("bin_empty", b"", "c400"),
    ("bin_2", b"\x00\xff", "c40200ff"),
    ("bin_256", b"\x01" * 256, "c50100" + "01" * 256),
    ("str_empty", "", "a0"),
    ("str_fix_max", "a" * 31, "bf" + "61" * 31),
    ("str8", "a" * 32, "d920" + "61" * 32),
    ("str16", "a" * 256, "da0100" + "61" * 256),
    ("str_utf8", "é", "a2c3a9"),
    ("array_empty", [], "90"),
    ("array_fix_max", list(range(15)), "9f" + "".join(f"{i:02x}" for i in range(15))),
    ("array16", [0] * 16, "dc0010" + "00" * 16),
    ("map_empty", {}, "80"),
    ("map_sorted", {"a": 1, "b": 2}, "82a16101a16202"),
    # Encoding sorts keys; the decoded map keeps that order.
    ("map_sorted_on_encode", {"b": 2, "a": 1}, "82a16101a16202"),
    # Byte order, not length-first: "aa" < "b".
    ("map_bytewise_order", {"b": 1, "aa": 2}, "82a2616102a16201"),
    # U+FFFF (ef bf bf) sorts before U+10000 (f0 90 80 80) in UTF-8 byte order,
    # though not in UTF-16 code unit order: implementations sorting UTF-16 differ.
    ("map_utf8_order", {"\U00010000": 2, "\uffff": 1}, "82a3efbfbf01a4f090808002"),
    ("nested", {"x": [True, {"y": b"z"}]}, "81a17892c381a179c4017a"),
]


@pytest.mark.parametrize("value,hexed", [c[1:] for c in CANONICAL], ids=[c[0] for c in CANONICAL])
def test_canonical_table(value: Any, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert encode(value).hex() == hexed
    back = decode_untrusted(data, Limits(max_container_len=4096))
    assert encode(back) == data
    if type(value) is dict:
        assert list(back) == sorted(value)
        assert back == value
    else:
        assert same(back, value)


# (id, encoding as hex, expected DecodeError reason)
NON_CANONICAL = [
    ("uint8_for_fixint", "cc7f", "non_canonical"),
    ("uint16_for_uint8", "cd00ff", "non_canonical"),
    ("uint64_for_uint32", "cf00000000ffffffff", "non_canonical"),
    ("int8_for_zero", "d000", "non_canonical"),
    ("int8_for_positive", "d07f", "non_canonical"),
    ("int8_for_neg_fixint", "d0ff", "non_canonical"),
    ("int64_for_int8", "d3ffffffffffffff80", "non_canonical"),
    ("int64_for_positive_big", "d37fffffffffffffff", "non_canonical"),
    ("str8_for_fixstr", "d90161", "non_canonical"),
    ("str16_for_fixstr", "da000161", "non_canonical"),
    ("bin16_for_bin8", "c50000", "non_canonical"),
    ("array16_for_fixarray", "dc0000", "non_canonical"),
    ("map16_for_fixmap", "de0000", "non_canonical"),
    ("map_unsorted", "82a16201a16102", "non_canonical"),
    ("map_duplicate_key", "82a16101a16102", "non_canonical"),
    ("map_nested_unsorted", "9182a16201a16102", "non_canonical"),
    ("map_duplicate_key_nested", "9182a16101a16101", "non_canonical"),
    ("nil", "c0", "nil"),
    ("nil_in_map", "81a161c0", "nil"),
    ("float32", "ca00000000", "float"),
    ("float64", "cb3ff0000000000000", "float"),
    # Every ext type is bad_type, whatever follows it (issue 11: fixext and
    # the timestamp extension used to give malformed, ext8 bad_type).
    ("fixext1", "d40110", "bad_type"),
    ("ext8_empty", "c70006", "bad_type"),
    ("timestamp32", "d6ff5a4af6a5", "bad_type"),
    ("ext_truncated", "d4", "bad_type"),
    ("trailing_byte", "0000", "malformed"),
    ("truncated_uint16", "cd01", "truncated"),
    ("truncated_array", "92", "truncated"),
    ("truncated_str", "a3616263"[:6], "truncated"),
    ("array_claims_more_than_input", "9300", "truncated"),
    ("never_used_c1", "c1", "malformed"),
    ("invalid_utf8", "a1ff", "malformed"),
    ("utf8_encoded_surrogate", "a3eda080", "malformed"),
    ("overlong_utf8", "a2c0af", "malformed"),
    # Any non-text key is bad_type (an int key used to give malformed).
    ("bin_map_key", "81c4016101", "bad_type"),
    ("bin_and_str_keys", "82a16101c4016202", "bad_type"),
    ("int_map_key", "810101", "bad_type"),
    ("nil_map_key", "81c001", "bad_type"),
    ("array_map_key", "819001", "bad_type"),
    ("empty_input", "", "truncated"),
    # Precedence: the first hard failure in byte order wins; non_canonical
    # only when nothing else is wrong.
    ("unsorted_then_nil", "82a16201a161c0", "nil"),
    ("non_shortest_then_trailing", "cc0100", "malformed"),
    ("nil_before_float", "92c0ca00000000", "nil"),
]


@pytest.mark.parametrize(
    "hexed,reason", [c[1:] for c in NON_CANONICAL], ids=[c[0] for c in NON_CANONICAL]
)
def test_non_canonical_table(hexed: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_untrusted(bytes.fromhex(hexed))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "value",
    [None, 1.5, {1: 2}, {b"k": 1}, 2**64, -(2**63) - 1, "\ud800", {"a": None}, object(), {"a"}],
    ids=["none", "float", "int_key", "bytes_key", "too_big", "too_small", "surrogate",
         "nested_none", "object", "set"],
)  # fmt: skip
def test_encode_refuses_values_outside_profile(value: Any) -> None:
    with pytest.raises(LocalUsageError):
        encode(value)


def test_encode_accepts_tuples_as_arrays() -> None:
    assert encode((1, 2)) == encode([1, 2]) == bytes.fromhex("920102")


# ---------------------------------------------------------------- limits


def nest(depth: int) -> bytes:
    """An array nested ``depth`` levels deep around 0 (depth 0 is a bare int)."""
    return b"\x91" * depth + b"\x00"


LIMIT_CASES = [
    ("size", Limits(max_size=10), encode(b"x" * 8), encode(b"x" * 9), "too_large"),
    ("depth", Limits(max_depth=3), nest(3), nest(4), "too_deep"),
    ("depth_in_map", Limits(max_depth=2), encode({"a": [1]}), encode({"a": [[1]]}), "too_deep"),
    ("array_len", Limits(max_container_len=4), encode([0] * 4), encode([0] * 5), "malformed"),
    ("empty_deep", Limits(max_depth=2), encode([[[]]]), encode([[[[]]]]), "too_deep"),
    (
        "map_len",
        Limits(max_container_len=2),
        encode({"a": 1, "b": 2}),
        encode({"a": 1, "b": 2, "c": 3}),
        "malformed",
    ),
    ("str_len", Limits(max_str_len=5), encode("abcde"), encode("abcdef"), "malformed"),
    ("bin_len", Limits(max_bin_len=5), encode(b"abcde"), encode(b"abcdef"), "malformed"),
]


@pytest.mark.parametrize(
    "limits,ok,bad,reason", [c[1:] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES]
)
def test_limits(limits: Limits, ok: bytes, bad: bytes, reason: str) -> None:
    decode_untrusted(ok, limits)  # exactly at the limit: accepted
    with pytest.raises(DecodeError) as info:
        decode_untrusted(bad, limits)
    assert info.value.reason == reason


def test_default_depth_limit() -> None:
    decode_untrusted(nest(8))
    with pytest.raises(DecodeError, match="deeper than 8"):
        decode_untrusted(nest(9))


def test_very_deep_nesting_is_refused_not_a_crash() -> None:
    # Deeper than msgpack's own parser stack and than Python's recursion limit.
    for depth in (100, 5000, 60000):
        with pytest.raises(DecodeError):
            decode_untrusted(nest(depth))


@pytest.mark.parametrize(
    "header",
    ["dd ffffffff", "df ffffffff", "db ffffffff", "c6 ffffffff", "dc ffff", "de ffff"],
    ids=["array32", "map32", "str32", "bin32", "array16", "map16"],
)
def test_huge_length_headers_do_not_allocate(header: str) -> None:
    # A few bytes claim gigabytes; the decoder must refuse without trying to
    # allocate (msgpack would otherwise preallocate) and quickly.
    data = bytes.fromhex(header.replace(" ", "")) + b"\x00" * 16
    start = time.perf_counter()
    with pytest.raises(DecodeError):
        decode_untrusted(
            data, Limits(max_container_len=2**32, max_str_len=2**32, max_bin_len=2**32)
        )
    assert time.perf_counter() - start < 0.5


def test_accepts_bytearray_and_memoryview() -> None:
    data = encode({"a": [1, b"x"]})
    assert decode_untrusted(bytearray(data)) == {"a": [1, b"x"]}  # type: ignore[arg-type]
    assert decode_untrusted(memoryview(data)) == {"a": [1, b"x"]}  # type: ignore[arg-type]


# ---------------------------------------------------------------- round trip

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.one_of(ints, st.booleans(), st.binary(max_size=40), st.text(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=25,
)
ROUND_TRIP_LIMITS = Limits(max_depth=64)


@settings(max_examples=400, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    back = decode_untrusted(data, ROUND_TRIP_LIMITS)
    assert encode(back) == data
    # Equal value, same types; maps come back key-sorted.
    assert same(back, _sorted_maps(value))


def _sorted_maps(v: Any) -> Any:
    if type(v) is dict:
        return {k: _sorted_maps(v[k]) for k in sorted(v)}
    if type(v) in (list, tuple):
        return [_sorted_maps(x) for x in v]
    return v


@settings(max_examples=300, deadline=None)
@given(values)
def test_lenient_reencoding_with_other_forms_is_refused(value: Any) -> None:
    """Any other encoding of the same value that differs in bytes is refused."""
    data = encode(value)
    # msgpack's packer without bin type (legacy raw strings) is a different
    # byte form whenever bytes are present; it must never be accepted as
    # a different value silently.
    other = msgpack.packb(_sorted_maps(value), use_bin_type=False)
    if other != data:
        try:
            back = decode_untrusted(other, ROUND_TRIP_LIMITS)
        except DecodeError:
            return
        # Accepted only if it is itself canonical for what it decodes to.
        assert encode(back) == other


# ---------------------------------------------------------------- msgpack-test-suite


def _suite_cases() -> list[Any]:
    """(id, group, entry) for every value of the public msgpack-test-suite.

    Loading is done lazily in the test so that a missing ../shared skips
    (or fails under P2PSOCIAL_REQUIRE_VECTORS=1) instead of erroring at collection.
    """
    # The suite's shape is fixed by its commit; ids are group-index.
    groups = {
        "10.nil.yaml": 1,
        "11.bool.yaml": 2,
        "12.binary.yaml": 3,
        "20.number-positive.yaml": 11,
        "21.number-negative.yaml": 8,
        "22.number-float.yaml": 2,
        "23.number-bignum.yaml": 9,
        "30.string-ascii.yaml": 4,
        "31.string-utf8.yaml": 5,
        "32.string-emoji.yaml": 2,
        "40.array.yaml": 5,
        "41.map.yaml": 3,
        "42.nested.yaml": 4,
        "50.timestamp.yaml": 19,
        "60.ext.yaml": 7,
    }
    return [
        pytest.param(g, i, id=f"{g.removesuffix('.yaml')}-{i}")
        for g, n in groups.items()
        for i in range(n)
    ]


IN_PROFILE_KEYS = ("bool", "binary", "number", "bignum", "string", "array", "map")


def _suite_value(entry: dict[str, Any]) -> tuple[bool, Any]:
    """(in profile?, Python value) of one suite entry."""
    if "bignum" in entry:
        return True, int(entry["bignum"])
    if "number" in entry:
        n = entry["number"]
        return type(n) is int, n
    if "binary" in entry:
        return True, bytes.fromhex(entry["binary"].replace("-", ""))
    for key in ("bool", "string", "array", "map"):
        if key in entry:
            return True, entry[key]
    # nil, timestamp, ext
    return False, None


def _lenient_decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=0)


@pytest.mark.parametrize("group,index", _suite_cases())
def test_msgpack_test_suite(group: str, index: int) -> None:
    suite = load_shared_vector("msgpack-test-suite/msgpack-test-suite.json")
    entry = suite[group][index]
    encodings = [bytes.fromhex(h.replace("-", "")) for h in entry["msgpack"]]
    in_profile, value = _suite_value(entry)
    if not in_profile:
        for data in encodings:
            with pytest.raises(DecodeError):
                decode_untrusted(data)
        return
    ours = encode(value)
    assert ours in encodings, f"our encoding {ours.hex()} is not listed"
    # Candidates are the listed encodings of the same msgpack type: the suite
    # also lists float forms of integers, which are outside the profile.
    same_type = [d for d in encodings if same(_lenient_decode(d), _lenient_decode(ours))]
    shortest = min(len(d) for d in same_type)
    assert len(ours) == shortest
    if type(value) is int and value >= 0:
        # Ties (uint64 vs int64 for 2**63-1, uint8 vs int8, ...): unsigned family.
        assert ours[0] < 0x80 or ours[0] in (0xCC, 0xCD, 0xCE, 0xCF)
    assert same(decode_untrusted(ours), value)
    for data in encodings:
        if data != ours:
            with pytest.raises(DecodeError):
                decode_untrusted(data)


def test_msgpack_test_suite_is_fully_covered() -> None:
    """The parametrization above names every value of the suite, no more, no less."""
    suite = load_shared_vector("msgpack-test-suite/msgpack-test-suite.json")
    listed = {(p.values[0], p.values[1]) for p in _suite_cases()}
    assert listed == {(g, i) for g, entries in suite.items() for i in range(len(entries))}

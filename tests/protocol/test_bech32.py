"""The generic bech32m codec against BIP 350's published test vectors, and its helpers.

The vector strings below are copied from BIP 350, "Bech32m format for v1+
witness addresses" (bitcoin/bips, bip-0350.mediawiki, section "Test vectors
for Bech32m"): seven valid strings and fourteen invalid ones, each invalid one
with the reason the BIP gives. BIP 350 also notes that no string is valid as
both bech32 and bech32m, so BIP 173's valid bech32 strings (bip-0173.mediawiki,
"Test vectors") must fail here as a bad checksum. BIP 350's segwit-address
vectors are about witness programs, not the string format, and are not run.
"""

from __future__ import annotations

import functools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol import bech32
from p2psocial.protocol.errors import DecodeError, LocalUsageError
from p2psocial.protocol.identity import SigningKey, identity_from_text, identity_to_text

# --- BIP 350 vectors -----------------------------------------------------------

BIP350_VALID = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

# (string, the BIP's reason, our reason code)
BIP350_INVALID = [
    ("\x20" + "1xj0phk", "HRP character out of range", "bad_prefix_character"),
    ("\x7f" + "1g6xzxy", "HRP character out of range", "bad_prefix_character"),
    ("\x80" + "1vctc34", "HRP character out of range", "bad_prefix_character"),
    (
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "overall max length exceeded",
        "bad_length",
    ),
    ("qyrz8wqd2c9m", "No separator character", "no_separator"),
    ("1qyrz8wqd2c9m", "Empty HRP", "empty_prefix"),
    ("y1b0jsk6g", "Invalid data character", "bad_character"),
    ("lt1igcx5c0", "Invalid data character", "bad_character"),
    ("in1muywd", "Too short checksum", "bad_length"),
    ("mm1crxm3i", "Invalid character in checksum", "bad_character"),
    ("au1s5cgom", "Invalid character in checksum", "bad_character"),
    ("M1VUXWEZ", "checksum calculated with uppercase form of HRP", "bad_checksum"),
    ("16plkw9", "empty HRP", "empty_prefix"),
    ("1p2gdwpf", "empty HRP", "empty_prefix"),
]

# Valid bech32 (BIP 173), hence invalid bech32m: a checksum with the wrong constant.
BIP173_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]


def test_vector_counts() -> None:
    # A table that lost a row would still pass one test per remaining row.
    assert (len(BIP350_VALID), len(BIP350_INVALID), len(BIP173_VALID)) == (7, 14, 7)


@pytest.mark.parametrize("text", BIP350_VALID)
def test_bip350_valid(text: str) -> None:
    bech32.verify_checksum(text)
    hrp, data = bech32.decode(text)
    assert hrp == text[: text.rfind("1")].lower()
    assert all(0 <= v < 32 for v in data)
    # Lower-case writers give back the string, so data and checksum were read right.
    assert bech32.encode(hrp, data) == text.lower()
    assert bech32.decode(text, hrp=hrp) == (hrp, data)


def test_bip350_valid_data_need_not_be_bytes() -> None:
    # 82 values of 31 leave two set padding bits: valid bech32m, but not bytes.
    hrp, data = bech32.decode(BIP350_VALID[4])
    assert (hrp, data) == ("1", [31] * 82)
    with pytest.raises(DecodeError) as info:
        bech32.from_5bit(data)
    assert info.value.reason == "bad_padding"
    # The data part of this one is the charset backwards.
    assert bech32.decode(BIP350_VALID[3]) == ("abcdef", list(range(31, -1, -1)))


@pytest.mark.parametrize(
    "text,why,reason", BIP350_INVALID, ids=[f"{i}-{c[1]}" for i, c in enumerate(BIP350_INVALID)]
)
def test_bip350_invalid(text: str, why: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        bech32.decode(text)
    assert info.value.reason == reason, why
    assert info.value.message
    with pytest.raises(DecodeError) as again:
        bech32.verify_checksum(text)
    assert again.value.reason == reason


@pytest.mark.parametrize("text", BIP173_VALID)
def test_bip173_bech32_is_not_bech32m(text: str) -> None:
    with pytest.raises(DecodeError) as info:
        bech32.decode(text)
    assert info.value.reason == "bad_checksum"
    assert "BIP 173" in info.value.message


# --- rules beyond the vectors --------------------------------------------------


@pytest.mark.parametrize(
    "text,reason,words",
    [
        (None, "bad_type", "expected text"),
        ("a" * 84 + "1" + "qqqqq", "bad_length", "prefix is 84"),
        ("aB1lqfn3a", "mixed_case", "mixes"),
        ("\u00c9" + "a1lqfn3a", "mixed_case", "mixes"),  # any cased letter counts
        ("A1LQFN3A\u212a", "bad_character", "position 9"),  # KELVIN SIGN lowers to "k"
        (" a1lqfn3a", "bad_prefix_character", "' '"),  # white space is not stripped
        ("a1lqfn3b", "bad_character", "b, i, o and 1 are never used"),
        ("a1lqfn3q", "bad_checksum", "mistyped"),
    ],
)
def test_decode_errors_say_what_is_wrong(text: str, reason: str, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        bech32.decode(text)
    assert info.value.reason == reason
    assert words in info.value.message


@pytest.mark.parametrize(
    "text,reason",
    [
        ("A1LQFN3A", "ok"),
        ("b1lqfn3a", "wrong_prefix"),  # the prefix is named before the checksum fails
        ("lqfn3a", "wrong_prefix"),  # no separator: it does not start with "a1"
        ("1lqfn3a", "wrong_prefix"),
        ("\x7f1g6xzxy", "wrong_prefix"),
    ],
)
def test_decode_with_an_expected_prefix(text: str, reason: str) -> None:
    try:
        bech32.decode(text, hrp="a")
        got = "ok"
    except DecodeError as exc:
        got = exc.reason
    assert got == reason


@pytest.mark.parametrize("hrp", ["", "A", "a" * 84, "a b", "\x80"])
def test_bad_prefix_is_a_local_error(hrp: str) -> None:
    with pytest.raises(LocalUsageError):
        bech32.encode(hrp, [])
    with pytest.raises(LocalUsageError):
        bech32.decode("a1lqfn3a", hrp=hrp)


@pytest.mark.parametrize("data", [[32], [-1], [0] * 84])
def test_bad_data_is_a_local_error(data: list[int]) -> None:
    with pytest.raises(LocalUsageError):
        bech32.encode("a", data)


_HRP = st.text(
    st.characters(min_codepoint=33, max_codepoint=126).filter(lambda c: not c.isupper()),
    min_size=1,
    max_size=20,
)


@given(_HRP, st.lists(st.integers(0, 31), max_size=63))
def test_encode_decode_round_trip(hrp: str, data: list[int]) -> None:
    text = bech32.encode(hrp, data)
    assert len(text) <= bech32.MAX_LENGTH
    assert bech32.decode(text) == (hrp, data)
    assert bech32.decode(text.upper()) == (hrp, data)


@given(st.text(max_size=100))
def test_decode_raises_only_decode_error(text: str) -> None:
    try:
        bech32.decode(text)
    except DecodeError as exc:
        assert exc.reason in bech32.DECODE_REASONS


# --- bit regrouping --------------------------------------------------------------


@given(st.binary(max_size=50))
def test_bytes_round_trip_through_5bit(payload: bytes) -> None:
    data = bech32.to_5bit(payload)
    assert len(data) == (len(payload) * 8 + 4) // 5
    assert bech32.from_5bit(data) == payload


@pytest.mark.parametrize(
    "data,words",
    [
        ([0], "extra character"),  # 5 leftover bits: a whole extra value
        ([0, 0, 0], "extra character"),  # 15 bits: one byte and 7 more
        ([0, 1], "not zero"),  # one byte, then padding bits 01
        ([31, 31, 31, 31, 31, 31, 31, 31, 1], "extra character"),
    ],
)
def test_strict_padding(data: list[int], words: str) -> None:
    with pytest.raises(DecodeError) as info:
        bech32.from_5bit(data)
    assert info.value.reason == "bad_padding"
    assert words in info.value.message


def test_convertbits_general_sizes() -> None:
    assert bech32.convertbits([0b101], 3, 1, pad=False) == [1, 0, 1]
    assert bech32.convertbits([1, 1], 1, 3, pad=True) == [0b110]
    with pytest.raises(LocalUsageError):
        bech32.convertbits([8], 3, 1, pad=False)
    with pytest.raises(LocalUsageError):
        bech32.convertbits([], 0, 8, pad=True)


# --- the identity text form on top ---------------------------------------------


def test_identity_text_is_generic_bech32m() -> None:
    pk = SigningKey.from_seed(bytes(range(32))).public_key
    text = identity_to_text(pk)
    hrp, data = bech32.decode(text)
    assert hrp == "p2ps" and bech32.from_5bit(data) == pk
    assert text == bech32.bech32m_encode("p2ps", pk)
    assert bech32.bech32m_decode(" " + text + "\n", "p2ps") == pk


@pytest.mark.parametrize(
    "text,reason",
    [
        # Generic reasons the identity text form reports as a wrong prefix, as before.
        ("qqqqqqqqqqqq", "wrong_prefix"),  # no separator
        ("1qyrz8wqd2c9m", "wrong_prefix"),  # empty prefix
        ("p2p\x7f1qqqqqqqq", "wrong_prefix"),  # prefix character out of range
        # Valid bech32m under p2ps, but not a 32-byte key with strict padding.
        (bech32.encode("p2ps", [31] * 52), "bad_padding"),
        (bech32.encode("p2ps", [0] * 57), "bad_padding"),  # an extra character
        (bech32.bech32m_encode("p2ps", bytes(31)), "bad_length"),
    ],
)
def test_identity_reasons_on_top_of_the_generic_codec(text: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        identity_from_text(text)
    assert info.value.reason == reason
    assert info.value.message.startswith("not a valid identity")


def test_identity_text_refuses_a_non_ascii_letter() -> None:
    # str.lower() turns KELVIN SIGN into "k", so an upper-case identity with one
    # in place of a "K" used to be read as the identity itself.
    text = identity_to_text(SigningKey.from_seed(bytes(32)).public_key).upper()
    pos = text.index("K", 5)
    with pytest.raises(DecodeError) as info:
        identity_from_text(text[:pos] + "\u212a" + text[pos + 1 :])
    assert info.value.reason == "bad_character"
    assert f"position {pos + 1}" in info.value.message


# --- fast paths against the reference algorithms -----------------------------------


_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _reference_polymod(values: list[int]) -> int:
    """BIP 173's checksum: each step XORs in the generators that the top five bits pick."""
    state = 1
    for value in values:
        picked = [g for bit, g in enumerate(_GENERATORS) if state >> (25 + bit) & 1]
        state = functools.reduce(operator.xor, picked, (state & 0x1FFFFFF) << 5 ^ value)
    return state


def _reference_encode(hrp: str, data: list[int]) -> str:
    high, low = [ord(c) >> 5 for c in hrp], [ord(c) & 31 for c in hrp]
    residue = _reference_polymod([*high, 0, *low, *data, *[0] * 6]) ^ 0x2BC830A3
    tail = [residue >> shift & 31 for shift in (25, 20, 15, 10, 5, 0)]
    return f"{hrp}1" + "".join(map(bech32.CHARSET.__getitem__, data + tail))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.integers(min_value=0, max_value=31), max_size=80))
def test_table_polymod_equals_the_bitwise_loop(values: list[int]) -> None:
    assert bech32._polymod(values) == _reference_polymod(values)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=50), st.sampled_from(["p2ps", "a", "bc", "?"]))
def test_byte_encoding_equals_the_reference(payload: bytes, hrp: str) -> None:
    data = bech32.convertbits(payload, 8, 5, pad=True)
    assert bech32.to_5bit(payload) == data
    assert bech32.to_5bit(bytearray(payload)) == data
    if len(hrp) + 7 + len(data) <= bech32.MAX_LENGTH:
        assert bech32.bech32m_encode(hrp, payload) == _reference_encode(hrp, data)
        assert bech32.encode(hrp, data) == _reference_encode(hrp, data)

"""Bech32m (BIP 350) strings, with errors that say which rule a string breaks.

Two layers live here, and the identity text form (``p2ps1...``, in
:mod:`.identity`) sits on top of them:

* the **generic codec**: :func:`encode` and :func:`decode` turn a
  human-readable prefix (HRP) and a list of 5-bit values into a bech32m string
  and back, applying every rule of BIP 173 as amended by BIP 350 and nothing
  more, so that any BIP-350-valid string decodes; :func:`verify_checksum` is
  the same check without the data;
* **bit regrouping**: :func:`convertbits`, and :func:`to_5bit` /
  :func:`from_5bit` for bytes, with BIP 173's padding rules; whether 5-bit data
  means bytes is the caller's decision, not the string's.

Library implementations return ``None`` on failure; users need to be told
*which* rule failed, so every refusal is a :class:`DecodeError` whose
``reason`` is one of :data:`DECODE_REASONS`. The BCH checksum detects every
substitution of up to four characters, which is why identities use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from .errors import DecodeError, LocalUsageError

__all__ = [
    "CHARSET",
    "DECODE_REASONS",
    "MAX_HRP_LENGTH",
    "MAX_LENGTH",
    "bech32m_decode",
    "bech32m_encode",
    "convertbits",
    "decode",
    "encode",
    "from_5bit",
    "to_5bit",
    "verify_checksum",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(CHARSET)}
_BECH32M_CONST = 0x2BC830A3
_BECH32_CONST = 1  # BIP 173's constant: only used to explain a refusal
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LENGTH = 6
# BIP 173's ceiling: the code guarantees detection of four errors only up to
# 89 characters besides the separator, and it bounds the work on hostile input.
MAX_LENGTH = 90
# 90 minus the separator and the checksum.
MAX_HRP_LENGTH = 83
_HRP_MIN_CHAR, _HRP_MAX_CHAR = 33, 126
# ASCII-only lowering: str.lower() maps some non-ASCII letters onto ASCII ones
# (KELVIN SIGN to "k"), which would let a non-ASCII string decode.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

#: Every ``reason`` :func:`decode` gives, roughly in the order it checks.
DECODE_REASONS = (
    "bad_type",  # not a str
    "bad_length",  # over MAX_LENGTH, HRP over MAX_HRP_LENGTH, or shorter than a checksum
    "mixed_case",
    "no_separator",  # no "1" at all
    "empty_prefix",  # the last "1" is the first character
    "wrong_prefix",  # not the HRP the caller asked for
    "bad_prefix_character",  # an HRP character outside 33..126
    "bad_character",  # a data-part character outside the charset
    "bad_checksum",
)


def _gen_table() -> tuple[int, ...]:
    """For each 5-bit ``top``, the XOR of the generators its set bits select."""
    table = []
    for top in range(32):
        x = 0
        for i in range(5):
            if (top >> i) & 1:
                x ^= _GEN[i]
        table.append(x)
    return tuple(table)


# BIP 173's reference loop tests the five bits of ``top`` one by one; one
# lookup in this table does the same work (a fifth of the interpreter steps).
_GEN_TABLE = _gen_table()


def _polymod(values: Iterable[int], chk: int = 1) -> int:
    """The BCH checksum state after ``values``, starting from state ``chk``."""
    table = _GEN_TABLE
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _hrp_problem(hrp: str) -> str | None:
    """Why ``hrp`` cannot be a (lowercase) HRP, or None."""
    if not 1 <= len(hrp) <= MAX_HRP_LENGTH:
        return f"must be 1 to {MAX_HRP_LENGTH} characters"
    for c in hrp:
        if not _HRP_MIN_CHAR <= ord(c) <= _HRP_MAX_CHAR:
            return f"character {c!r} is outside ASCII {_HRP_MIN_CHAR}..{_HRP_MAX_CHAR}"
    if hrp.translate(_ASCII_LOWER) != hrp:
        return "must be lower case"
    return None


def encode(hrp: str, data: Sequence[int]) -> str:
    """Encode 5-bit values under a human-readable prefix, with a bech32m checksum.

    Args:
        hrp: 1 to 83 characters, each in ASCII 33..126, in lower case (BIP 173
            writers emit lower case only).
        data: values in 0..31, not yet checksummed.

    Returns:
        ``hrp + "1" + data characters + 6 checksum characters``, lower case.

    Raises:
        LocalUsageError: a bad ``hrp``, a value outside 0..31, or a result
            longer than :data:`MAX_LENGTH`.
    """
    _hrp_state(hrp)  # the prefix is checked first
    values = list(data)
    if any(type(v) is not int or not 0 <= v < 32 for v in values):
        raise LocalUsageError("bech32m data values must be integers in 0..31")
    return _encode_values(hrp, values)


@lru_cache(maxsize=16)
def _hrp_state(hrp: str) -> int:
    """The checksum state after ``hrp``'s expansion, for a valid HRP.

    Prefixes come from our own callers (a handful of constants), so the cache
    is small, and it saves re-checking and re-expanding the prefix per string.

    Raises:
        LocalUsageError: ``hrp`` is not a lower-case HRP.
    """
    problem = _hrp_problem(hrp)
    if problem is not None:
        raise LocalUsageError(f"bech32m prefix {hrp!r}: {problem}")
    return _polymod(_hrp_expand(hrp))


def _encode_values(hrp: str, values: list[int]) -> str:
    """:func:`encode` for values already known to be in 0..31."""
    length = len(hrp) + 1 + len(values) + _CHECKSUM_LENGTH
    state = _hrp_state(hrp)
    if length > MAX_LENGTH:
        raise LocalUsageError(f"a bech32m string is at most {MAX_LENGTH} characters, not {length}")
    poly = _polymod([*values, 0, 0, 0, 0, 0, 0], state) ^ _BECH32M_CONST
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LENGTH)]
    return hrp + "1" + "".join([CHARSET[v] for v in values + checksum])


def _parse(text: str, hrp: str | None) -> tuple[str, list[int]]:
    """The shared decoder: (lowercase HRP, data values including the checksum)."""
    if not isinstance(text, str):
        raise DecodeError("expected text", reason="bad_type")
    if len(text) > MAX_LENGTH:
        raise DecodeError(
            f"too long ({len(text)} characters, at most {MAX_LENGTH})", reason="bad_length"
        )
    # Any cased character counts, not only ASCII ones, so that a non-ASCII
    # letter among ASCII ones of the other case is named as mixed case.
    if text.lower() != text and text.upper() != text:
        raise DecodeError("mixes upper and lower case", reason="mixed_case")
    s = text.translate(_ASCII_LOWER)
    sep = s.rfind("1")
    if sep < 0 or (sep == 0 and hrp is not None):
        # With an expected prefix, "where is it?" is the useful answer.
        if hrp is not None:
            raise DecodeError(f"does not start with '{hrp}1'", reason="wrong_prefix")
        raise DecodeError("has no separator '1'", reason="no_separator")
    if sep == 0:
        raise DecodeError("has an empty prefix before the separator '1'", reason="empty_prefix")
    got_hrp, rest = s[:sep], s[sep + 1 :]
    if hrp is not None and got_hrp != hrp:
        # Before the HRP's own rules: an HRP that is not the expected one is
        # reported as such, whatever else is wrong with it.
        raise DecodeError(f"has prefix '{got_hrp}', expected '{hrp}'", reason="wrong_prefix")
    if len(got_hrp) > MAX_HRP_LENGTH:
        raise DecodeError(
            f"prefix is {len(got_hrp)} characters, at most {MAX_HRP_LENGTH}", reason="bad_length"
        )
    for i, c in enumerate(got_hrp):
        if not _HRP_MIN_CHAR <= ord(c) <= _HRP_MAX_CHAR:
            raise DecodeError(
                f"prefix character {c!r} at position {i + 1} is outside ASCII "
                f"{_HRP_MIN_CHAR}..{_HRP_MAX_CHAR}",
                reason="bad_prefix_character",
            )
    if len(rest) < _CHECKSUM_LENGTH:
        raise DecodeError("too short to hold a checksum", reason="bad_length")
    values = []
    for i, c in enumerate(rest):
        v = _CHAR_VALUE.get(c)
        if v is None:
            pos = sep + 2 + i  # 1-based, counted in the whole string
            raise DecodeError(
                f"character {c!r} at position {pos} is not a bech32 character"
                + (" (b, i, o and 1 are never used)" if c in "bio1" else ""),
                reason="bad_character",
            )
        values.append(v)
    check = _polymod(_hrp_expand(got_hrp) + values)
    if check != _BECH32M_CONST:
        hint = (
            "it is a bech32 (BIP 173) checksum, not bech32m"
            if check == _BECH32_CONST
            else "a character is mistyped or missing"
        )
        raise DecodeError(f"checksum does not match: {hint}", reason="bad_checksum")
    return got_hrp, values


def decode(text: str, *, hrp: str | None = None) -> tuple[str, list[int]]:
    """Decode a bech32m string into its HRP and 5-bit data (BIP 173 as amended by BIP 350).

    The rules, in the order they are checked: at most :data:`MAX_LENGTH`
    characters; not mixed case; a separator ``1`` (the last one counts) with a
    non-empty HRP before it; the HRP is ``hrp`` when one is asked for; the HRP
    is at most :data:`MAX_HRP_LENGTH` characters, each in ASCII 33..126; at
    least six data characters, all in :data:`CHARSET`; the bech32m checksum.
    Nothing is assumed about what the data means: see :func:`from_5bit`.
    White space is not stripped (it is not valid bech32m).

    Args:
        text: the string as received.
        hrp: if given (lower case), the only HRP accepted. A missing
            separator or an empty prefix is then ``wrong_prefix`` too.

    Returns:
        ``(hrp, data)``: the HRP in lower case, and the data part's values
        (0..31) without the six checksum values.

    Raises:
        DecodeError: with ``reason`` one of :data:`DECODE_REASONS` and a
            message naming the rule; any other exception is a bug.
        LocalUsageError: ``hrp`` itself is not a lower-case HRP.
    """
    if hrp is not None:
        problem = _hrp_problem(hrp)
        if problem is not None:
            raise LocalUsageError(f"bech32m prefix {hrp!r}: {problem}")
    got_hrp, values = _parse(text, hrp)
    return got_hrp, values[:-_CHECKSUM_LENGTH]


def verify_checksum(text: str) -> None:
    """Check that ``text`` is a valid bech32m string, without decoding its data.

    The checksum-only decode: the rules and reasons of :func:`decode` with no
    HRP expected, for callers that only need to know whether a string is
    well formed (say, before asking which kind of thing it names).

    Raises:
        DecodeError: as :func:`decode`.
    """
    _parse(text, None)


def convertbits(data: Iterable[int], frombits: int, tobits: int, *, pad: bool) -> list[int]:
    """Regroup ``frombits``-bit values into ``tobits``-bit ones, most significant bit first.

    Args:
        data: values each below ``2 ** frombits``.
        frombits: the input group size, 1..8.
        tobits: the output group size, 1..8.
        pad: True when encoding: a last partial group is filled with zero
            bits. False when decoding: leftover bits must be fewer than
            ``frombits`` (else the input had a whole extra value) and all zero
            (BIP 173: "MUST be 4 bits or less, MUST be all zeroes").

    Returns:
        The regrouped values.

    Raises:
        DecodeError: ``bad_padding``, only when ``pad`` is False.
        LocalUsageError: a group size outside 1..8 or a value out of range.
    """
    if not (1 <= frombits <= 8 and 1 <= tobits <= 8):
        raise LocalUsageError("bit group sizes must be 1 to 8")
    acc = 0
    bits = 0
    out: list[int] = []
    mask = (1 << tobits) - 1
    limit = 1 << frombits
    # Bits that can still be read out; the rest are dropped to keep acc small.
    keep = (1 << (frombits + tobits - 1)) - 1
    for v in data:
        if not 0 <= v < limit:
            raise LocalUsageError(f"value {v} does not fit in {frombits} bits")
        acc = ((acc << frombits) | v) & keep
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & mask)
    elif bits >= frombits:
        raise DecodeError("the data part has an extra character", reason="bad_padding")
    elif (acc << (tobits - bits)) & mask:
        raise DecodeError("the data part's padding bits are not zero", reason="bad_padding")
    return out


def to_5bit(payload: bytes) -> list[int]:
    """Bytes as 5-bit values for :func:`encode`, zero-padded at the end.

    The same values as ``convertbits(payload, 8, 5, pad=True)``, computed on
    one integer rather than bit by bit when ``payload`` is ``bytes``.
    """
    if type(payload) is not bytes:
        return convertbits(payload, 8, 5, pad=True)
    groups = -(-len(payload) * 8 // 5)
    n = int.from_bytes(payload, "big") << (groups * 5 - len(payload) * 8)
    return [(n >> shift) & 31 for shift in range(5 * (groups - 1), -1, -5)]


def from_5bit(data: Sequence[int]) -> bytes:
    """The bytes that :func:`to_5bit` turned into ``data``, refusing any other padding.

    Raises:
        DecodeError: ``bad_padding``: more than 4 padding bits, or padding
            bits that are not zero, so each byte string has one text form.
    """
    return bytes(convertbits(data, 5, 8, pad=False))


# --- the byte-payload API of earlier releases ---------------------------------


def bech32m_encode(hrp: str, payload: bytes) -> str:
    """Encode ``payload`` under the human-readable prefix ``hrp`` (lowercase).

    Raises:
        LocalUsageError: as :func:`encode`.
    """
    return _encode_values(hrp, to_5bit(payload))


def bech32m_decode(text: str, hrp: str) -> bytes:
    """Decode a bech32m string that must carry the prefix ``hrp`` and hold bytes.

    Leading and trailing white space is ignored, then :func:`decode` and
    :func:`from_5bit` apply.

    Raises:
        DecodeError: with a message naming the problem (wrong prefix, invalid
            character and its position, mixed case, bad length, bad checksum,
            bad padding).
    """
    if not isinstance(text, str):
        raise DecodeError("expected text", reason="bad_type")
    _, data = decode(text.strip(), hrp=hrp)
    return from_5bit(data)

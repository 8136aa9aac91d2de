"""Bech32m (BIP 350) text encoding with errors that say what is wrong.

Used for identities (``p2ps1...``) so that a mistyped or truncated identity is
refused instead of silently naming somebody else: the BCH checksum detects every
error of up to four substituted characters. Library implementations return
``None`` on failure; users need to be told *which* rule failed, hence this small
module.
"""

from __future__ import annotations

from .errors import DecodeError

__all__ = ["bech32m_decode", "bech32m_encode"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(_CHARSET)}
_BECH32M_CONST = 0x2BC830A3
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# Our strings are short; BIP 173's 90-character ceiling keeps the checksum's
# guarantees and bounds the work done on hostile input.
MAX_LENGTH = 90


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], src: int, dst: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    mask = (1 << dst) - 1
    for v in data:
        acc = (acc << src) | v
        bits += src
        while bits >= dst:
            bits -= dst
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (dst - bits)) & mask)
    elif bits >= src:
        raise DecodeError("the data part has an extra character", reason="bad_padding")
    elif (acc << (dst - bits)) & mask:
        raise DecodeError("the data part's padding bits are not zero", reason="bad_padding")
    return out


def bech32m_encode(hrp: str, payload: bytes) -> str:
    """Encode ``payload`` under the human-readable prefix ``hrp`` (lowercase)."""
    data = _regroup(payload, 8, 5, pad=True)
    poly = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def bech32m_decode(text: str, hrp: str) -> bytes:
    """Decode a bech32m string that must carry the prefix ``hrp``.

    Raises:
        DecodeError: with a message naming the problem (wrong prefix, invalid
            character and its position, mixed case, bad length, bad checksum).
    """
    if not isinstance(text, str):
        raise DecodeError("expected text", reason="bad_type")
    s = text.strip()
    if len(s) > MAX_LENGTH:
        raise DecodeError(
            f"too long ({len(s)} characters, at most {MAX_LENGTH})", reason="bad_length"
        )
    if s.lower() != s and s.upper() != s:
        raise DecodeError("mixes upper and lower case", reason="mixed_case")
    s = s.lower()
    sep = s.rfind("1")
    if sep < 1:
        raise DecodeError(f"does not start with '{hrp}1'", reason="wrong_prefix")
    got_hrp, rest = s[:sep], s[sep + 1 :]
    if got_hrp != hrp:
        raise DecodeError(f"has prefix '{got_hrp}', expected '{hrp}'", reason="wrong_prefix")
    if len(rest) < 6:
        raise DecodeError("too short to hold a checksum", reason="bad_length")
    data = []
    for i, c in enumerate(rest):
        v = _CHAR_VALUE.get(c)
        if v is None:
            pos = sep + 2 + i
            raise DecodeError(
                f"character {c!r} at position {pos} is not a bech32 character"
                + (" (b, i, o and 1 are never used)" if c in "bio1" else ""),
                reason="bad_character",
            )
        data.append(v)
    check = _polymod(_hrp_expand(hrp) + data)
    if check != _BECH32M_CONST:
        raise DecodeError(
            "checksum does not match: a character is mistyped or missing", reason="bad_checksum"
        )
    return bytes(_regroup(data[:-6], 5, 8, pad=False))

"""Canonical msgpack: the one byte form of every signed or hashed value.

Theory: a value has exactly one encoding, so signatures and ids computed by any
two implementations agree, and a decoder can *prove* that what it received is
canonical by re-encoding it and comparing bytes. The profile (spec/protocol.md
§2) allows only:

* ``int`` in [-2**63, 2**64 - 1], in the shortest form; non-negative values use
  the unsigned family (positive fixint, uint8..uint64) and negative values the
  signed family (negative fixint, int8..int64);
* ``bool``;
* ``bytes`` as msgpack ``bin``, ``str`` as msgpack ``str`` (valid UTF-8);
* arrays (Python ``list``; ``tuple`` is accepted on encode);
* maps whose keys are ``str``, sorted by their UTF-8 bytes, without duplicates.

There is no nil, no float and no ext type: an optional field is absent, not nil.

The untrusted decoder enforces the total size first, then per-container and
per-string limits inside msgpack's parser *before* it allocates, then the
nesting depth and the type profile, and finally byte-for-byte canonicity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import DecodeError, LocalUsageError

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "decode_untrusted",
    "encode",
    "require_canonical",
    "unpack_limited",
]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied by :func:`decode_untrusted` before it builds values.

    The defaults fit the largest legitimate record (a 16 KiB payload or a DHT
    datagram); callers decoding smaller things should pass tighter limits.
    """

    max_size: int = 64 * 1024
    max_depth: int = 8
    max_container_len: int = 1024
    max_str_len: int = 16 * 1024
    max_bin_len: int = 64 * 1024


DEFAULT_LIMITS = Limits()


def _normalize(value: Any, depth: int) -> Any:
    """Return ``value`` with maps key-sorted; raise on anything outside the profile.

    Keys are sorted as Python strs: code point order is exactly the order of
    their UTF-8 bytes, which is what the profile specifies.
    """
    if depth > 64:
        raise LocalUsageError("value nests deeper than 64 levels")
    t = type(value)
    if t is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise LocalUsageError(f"integer {value} is outside the 64-bit range")
        return value
    if t is str or t is bytes or t is bool:
        return value
    if t is dict:
        for k in value:
            if type(k) is not str:
                raise LocalUsageError(f"map key {k!r} is not a str")
        return {k: _normalize(value[k], depth + 1) for k in sorted(value)}
    if t is list or t is tuple:
        return [_normalize(v, depth + 1) for v in value]
    raise LocalUsageError(f"type {t.__name__} is not allowed in canonical msgpack")


def encode(value: Any) -> bytes:
    """Encode ``value`` in the canonical msgpack profile.

    Args:
        value: an int, bool, str, bytes, list/tuple or str-keyed dict, nested.

    Returns:
        The unique canonical encoding.

    Raises:
        LocalUsageError: the value uses a type or range outside the profile
            (None, float, non-str keys, ints beyond 64 bits, ...).
    """
    try:
        return msgpack.packb(_normalize(value, 0), use_bin_type=True)  # type: ignore[no-any-return]
    except UnicodeEncodeError:
        raise LocalUsageError("text is not valid Unicode (lone surrogate)") from None


def _check_profile(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise DecodeError(f"nesting deeper than {max_depth}", reason="too_deep")
    t = type(value)
    if t is int or t is str or t is bytes or t is bool:
        return
    if t is list:
        for v in value:
            _check_profile(v, depth + 1, max_depth)
        return
    if t is dict:
        prev = None
        for k, v in value.items():
            # msgpack's strict_map_key still lets bin keys through; the profile
            # allows only str keys (and comparing bytes with str would raise).
            if type(k) is not str:
                raise DecodeError("map keys must be strings", reason="bad_type")
            # Strictly increasing keys: sorted and without duplicates. (A
            # duplicate collapses in the dict and is caught by re-encoding.)
            if prev is not None and k <= prev:
                raise DecodeError("map keys are not in canonical order", reason="non_canonical")
            prev = k
            _check_profile(v, depth + 1, max_depth)
        return
    if value is None:
        raise DecodeError("nil is not allowed; optional fields are omitted", reason="nil")
    if t is float:
        raise DecodeError("floats are not allowed", reason="float")
    raise DecodeError(f"msgpack type {t.__name__} is not allowed", reason="bad_type")


# What msgpack's parser may raise on hostile input. Everything is turned into
# DecodeError; anything else escaping decode_untrusted is a bug (fuzzed in tests).
UNPACK_ERRORS = (
    ValueError,  # includes ExtraData, FormatError, StackError, UnicodeDecodeError
    TypeError,  # unhashable or non-str map keys under strict_map_key
    OverflowError,
    msgpack.UnpackException,
)


def unpack_limited(data: bytes, limits: Limits) -> Any:
    """Parse msgpack under ``limits`` without the profile or canonicity checks.

    The building block of :func:`decode_untrusted` and of specialised decoders
    (envelopes, datagrams) that check their own shape and then call
    :func:`require_canonical`.

    Raises:
        DecodeError: too large, truncated, malformed, or over a length limit.
    """
    n = len(data)
    if n > limits.max_size:
        raise DecodeError(f"{n} bytes exceeds the limit of {limits.max_size}", reason="too_large")
    if n == 0:
        raise DecodeError("empty input", reason="truncated")
    # Every element takes at least one byte, so no honest container is longer
    # than the input: bounding by n stops a 5-byte header from asking the parser
    # to preallocate a list of four billion slots.
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=min(limits.max_str_len, n),
            max_bin_len=min(limits.max_bin_len, n),
            max_array_len=min(limits.max_container_len, n),
            max_map_len=min(limits.max_container_len, n // 2),
            max_ext_len=0,
        )
    except UNPACK_ERRORS as exc:
        raise DecodeError(f"malformed msgpack: {exc}", reason="malformed") from None


def require_canonical(value: Any, data: bytes) -> None:
    """Raise DecodeError unless re-encoding ``value`` as parsed gives back ``data``.

    ``value`` must already be known to hold only profile types with sorted map
    keys; this then catches non-shortest integers, lengths and duplicate keys.
    """
    try:
        again = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:
        raise DecodeError(f"cannot re-encode: {exc}", reason="bad_type") from None
    if again != data:
        raise DecodeError("msgpack is valid but not canonical", reason="non_canonical")


def decode_untrusted(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode bytes from outside the process, accepting only canonical encodings.

    Args:
        data: the exact received bytes.
        limits: size, length and depth bounds, enforced before allocation.

    Returns:
        The decoded value (dicts, lists, ints, bools, strs, bytes).

    Raises:
        DecodeError: for every invalid input, including non-canonical but
            otherwise valid msgpack. Any other exception is a bug.
    """
    if type(data) is not bytes:
        data = bytes(data)
    value = unpack_limited(data, limits)
    _check_profile(value, 0, limits.max_depth)
    require_canonical(value, data)
    return value

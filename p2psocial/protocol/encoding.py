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

The untrusted decoder proves valid input canonical the cheap way: msgpack's C
parser under the record's limits, a check of the types, key order and depth
of the result, and the C re-encoding compared byte for byte with the input
(:func:`_fast_decode`). It never asks msgpack *why* input is bad: anything the
fast path refuses is walked by :func:`check_canonical`, which checks types,
lengths, depth, UTF-8 and shortest forms against the limits before anything
is allocated, and reports the reason of the first rule broken (spec/protocol.md
§9, rows M1-M13). The two accept exactly the same inputs
(tests/protocol/test_properties.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import DecodeError, LocalUsageError

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_canonical",
    "decode_untrusted",
    "encode",
    "unpack_limited",
]

_unpackb = msgpack.unpackb
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
    #: The ``max_*_len`` arguments of msgpack's parser that are tighter than
    #: ``max_size`` (derived, not a limit of its own; see :func:`_parser_limits`).
    _parser_kw: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parser_kw", _parser_limits(self))


def _parser_limits(limits: Limits) -> dict[str, int]:
    """The keyword arguments that make msgpack's ``unpackb`` enforce ``limits``.

    ``unpackb`` already bounds every length by the size of its input (each
    element takes at least one byte), so a 5-byte header cannot make it
    preallocate four billion list slots. A limit is passed only where it is
    tighter than that bound can ever be (inputs are at most ``max_size``):
    every keyword costs the parser call time, and the payload decoder runs
    once per ingested entry. Ext types are not in the profile: none may
    carry data.
    """
    kw = {"max_ext_len": 0}
    size = limits.max_size
    if limits.max_str_len < size:
        kw["max_str_len"] = limits.max_str_len
    if limits.max_bin_len < size:
        kw["max_bin_len"] = limits.max_bin_len
    if limits.max_container_len < size:
        kw["max_array_len"] = limits.max_container_len
    if limits.max_container_len < size // 2:
        kw["max_map_len"] = limits.max_container_len
    return kw


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


# Reasons of the profile's rules (spec/protocol.md §9, rows M1-M13). Every
# msgpack-level refusal of the canonical decoder comes from :func:`check_canonical`,
# which reads the bytes itself; no reason is ever derived from what the msgpack
# library says when it fails.
_STR_MARKERS = frozenset({0xD9, 0xDA, 0xDB}) | frozenset(range(0xA0, 0xC0))
_EXT_MARKERS = frozenset({0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})
#: Fixed-width headers: marker -> (header bytes after the marker, kind).
#: kind: "u"/"i" integer, "s" str, "b" bin, "a" array, "m" map.
_WIDE = {
    0xCC: (1, "u"), 0xCD: (2, "u"), 0xCE: (4, "u"), 0xCF: (8, "u"),
    0xD0: (1, "i"), 0xD1: (2, "i"), 0xD2: (4, "i"), 0xD3: (8, "i"),
    0xD9: (1, "s"), 0xDA: (2, "s"), 0xDB: (4, "s"),
    0xC4: (1, "b"), 0xC5: (2, "b"), 0xC6: (4, "b"),
    0xDC: (2, "a"), 0xDD: (4, "a"),
    0xDE: (2, "m"), 0xDF: (4, "m"),
}  # fmt: skip
#: The smallest value (or length) each wide form may carry in canonical form;
#: anything below has a shorter encoding. For the signed family it is the
#: largest allowed value instead (see _SIGNED_MAX).
_WIDE_MIN = {
    0xCC: 0x80, 0xCD: 0x100, 0xCE: 0x10000, 0xCF: 0x100000000,
    0xD9: 32, 0xDA: 0x100, 0xDB: 0x10000,
    0xC4: 0, 0xC5: 0x100, 0xC6: 0x10000,
    0xDC: 16, 0xDD: 0x10000,
    0xDE: 16, 0xDF: 0x10000,
}  # fmt: skip
#: A signed-family integer is canonical only if negative and below the range
#: of every shorter form: int8 < -32, int16 < -128, int32 < -2**15, int64 < -2**31.
_SIGNED_MAX = {0xD0: -33, 0xD1: -129, 0xD2: -(2**15) - 1, 0xD3: -(2**31) - 1}


def check_canonical(data: bytes, limits: Limits) -> None:
    """Check that ``data`` is one canonical msgpack value within ``limits``.

    This is the single definition of the profile's rules (spec/protocol.md
    §2.2 and the reason-code table of §9): it walks the bytes once, without
    recursion and without building any value, and reports the first rule
    broken in byte order. Forms that are valid but not canonical (non-shortest
    integers and lengths, the signed family for a non-negative integer, map
    keys not strictly increasing) do not stop the walk: they are reported as
    ``non_canonical`` only if the input breaks no other rule. A value that
    passes can be handed to any msgpack parser, which cannot fail on it.

    Args:
        data: the exact received bytes (size already checked by the caller or
            not; this checks it too).
        limits: the record's size, depth, container and string bounds.

    Raises:
        DecodeError: reasons ``too_large``, ``truncated``, ``too_deep``,
            ``malformed``, ``bad_type``, ``nil``, ``float`` or
            ``non_canonical``. Nothing else.
    """
    n = len(data)
    if n > limits.max_size:
        raise DecodeError(f"{n} bytes exceeds the limit of {limits.max_size}", reason="too_large")
    if n == 0:
        raise DecodeError("empty input", reason="truncated")
    max_depth = limits.max_depth
    max_container = limits.max_container_len
    max_str = limits.max_str_len
    max_bin = limits.max_bin_len
    wide = _WIDE
    # One slot per open container: elements still due (a map counts keys and
    # values, so a key is due whenever the count is even), whether it is a
    # map, and the previous key's UTF-8 bytes.
    due: list[int] = []
    is_map: list[bool] = []
    last_key: list[bytes | None] = []
    soft: str | None = None
    pos = 0
    while True:
        depth = len(due)
        if depth > max_depth:
            raise DecodeError(f"nesting deeper than {max_depth}", reason="too_deep")
        if pos >= n:
            raise DecodeError("input ends inside a value", reason="truncated")
        b = data[pos]
        pos += 1
        at_key = depth > 0 and is_map[-1] and due[-1] % 2 == 0
        if b == 0xC1:
            raise DecodeError(f"byte 0xc1 at offset {pos - 1} is never used", reason="malformed")
        if at_key and b not in _STR_MARKERS:
            raise DecodeError(
                f"map key at offset {pos - 1} is not text (type byte {b:#04x})", reason="bad_type"
            )
        count = -1  # elements of a container header, else -1
        if b <= 0x7F or b >= 0xE0 or b == 0xC2 or b == 0xC3:
            pass  # fixint or bool: always canonical
        elif b <= 0x8F:
            count, b = (b & 0x0F) * 2, 0xDE
        elif b <= 0x9F:
            count, b = b & 0x0F, 0xDC
        elif b <= 0xBF:
            length = b & 0x1F
            if length > max_str:
                raise DecodeError(
                    f"text of {length} bytes exceeds the limit of {max_str}", reason="malformed"
                )
            if length > n - pos:
                raise DecodeError("input ends inside a text", reason="truncated")
            end = pos + length
            _check_text(data, pos, end)
            if at_key:
                soft = _key_order(data[pos:end], last_key, soft)
            pos = end
        elif b == 0xC0:
            raise DecodeError(
                "nil is not allowed; an optional field is omitted, not nil", reason="nil"
            )
        elif b == 0xCA or b == 0xCB:
            raise DecodeError("floats are not allowed", reason="float")
        elif b in _EXT_MARKERS:
            raise DecodeError(f"ext type {b:#04x} is not allowed", reason="bad_type")
        else:
            width, form = wide[b]
            if width > n - pos:
                raise DecodeError("input ends inside a header", reason="truncated")
            value = int.from_bytes(data[pos : pos + width], "big", signed=form == "i")
            pos += width
            if form == "i":
                if value > _SIGNED_MAX[b] and soft is None:
                    soft = (
                        f"integer {value} at offset {pos - width - 1} is not in its shortest form"
                    )
            elif value < _WIDE_MIN[b] and soft is None:
                soft = f"{value} at offset {pos - width - 1} is not in its shortest form"
            if form == "s" or form == "b":
                limit = max_str if form == "s" else max_bin
                what = "text" if form == "s" else "byte string"
                if value > limit:
                    raise DecodeError(
                        f"{what} of {value} bytes exceeds the limit of {limit}", reason="malformed"
                    )
                if value > n - pos:
                    raise DecodeError(f"input ends inside a {what}", reason="truncated")
                end = pos + value
                if form == "s":
                    _check_text(data, pos, end)
                    if at_key:
                        soft = _key_order(data[pos:end], last_key, soft)
                pos = end
            elif form == "a":
                count = value
            elif form == "m":
                count = value * 2
        if count >= 0:
            # b is now 0xDC for arrays, 0xDE for maps (fix forms included).
            elements = count if b == 0xDC or b == 0xDD else count // 2
            if elements > max_container:
                raise DecodeError(
                    f"container of {elements} elements exceeds the limit of {max_container}",
                    reason="malformed",
                )
            # Every element takes at least one byte: a header promising more
            # than the input holds is cut short (and never allocates).
            if count > n - pos:
                raise DecodeError("input ends inside a container", reason="truncated")
            if count:
                due.append(count)
                is_map.append(b == 0xDE or b == 0xDF)
                last_key.append(None)
                continue
        # An element is complete: close every container it completes.
        while due:
            due[-1] -= 1
            if due[-1]:
                break
            due.pop()
            is_map.pop()
            last_key.pop()
        else:
            break
    if pos != n:
        raise DecodeError(f"{n - pos} trailing bytes after the value", reason="malformed")
    if soft is not None:
        raise DecodeError(f"msgpack is valid but not canonical: {soft}", reason="non_canonical")


def _check_text(data: bytes, start: int, end: int) -> None:
    try:
        data[start:end].decode("utf-8")  # strict: no surrogates, no overlong forms
    except UnicodeDecodeError:
        raise DecodeError(
            f"text at offset {start} is not valid UTF-8", reason="malformed"
        ) from None


def _key_order(key: bytes, last_key: list[bytes | None], soft: str | None) -> str | None:
    """Record ``key`` as its map's latest; note a key not above the previous one."""
    prev = last_key[-1]
    last_key[-1] = key
    if soft is None and prev is not None and key <= prev:
        what = "repeats a key" if key == prev else "keys are not in canonical order"
        return f"map {what} ({key.decode()!r})"
    return soft


# What msgpack's parser may raise on hostile input. unpack_limited (the lenient
# parser of DHT datagrams, which interoperate with other msgpack writers) turns
# them into DecodeError; the canonical decoders never see one, because
# check_canonical has accepted the bytes before they are parsed.
UNPACK_ERRORS = (
    ValueError,  # includes ExtraData, FormatError, StackError, UnicodeDecodeError
    TypeError,  # unhashable or non-str map keys under strict_map_key
    OverflowError,
    msgpack.UnpackException,
)


def unpack_limited(data: bytes, limits: Limits) -> Any:
    """Parse msgpack under ``limits`` without the profile or canonicity checks.

    Lenient on purpose: for formats that are not canonical msgpack (DHT
    datagrams, which other Kademlia implementations write, floats and all).
    Canonical records use :func:`decode_untrusted` instead.

    Raises:
        DecodeError: too large, truncated, malformed, or over a length limit.
    """
    n = len(data)
    if n > limits.max_size:
        raise DecodeError(f"{n} bytes exceeds the limit of {limits.max_size}", reason="too_large")
    if n == 0:
        raise DecodeError("empty input", reason="truncated")
    try:
        return _bounded_unpack(data, limits)
    except UNPACK_ERRORS as exc:
        raise DecodeError(f"malformed msgpack: {exc}", reason="malformed") from None


def _bounded_unpack(data: bytes, limits: Limits) -> Any:
    """msgpack's C parser under ``limits``, every length also bounded by the input's size.

    The caller has checked ``len(data) <= limits.max_size``. msgpack (>= 1.0)
    defaults to ``raw=False``, ``use_list=True`` and ``strict_map_key=True``
    and bounds each length by ``len(data)`` (a map's by half of it); the
    limits' own bounds come from :func:`_parser_limits`. Raises what msgpack
    raises.
    """
    return _unpackb(data, **limits._parser_kw)


#: Returned by _fast_decode when it cannot prove the bytes valid.
_REFUSED: Any = object()


_SCALAR_TYPES = frozenset({int, str, bytes, bool})


def _in_profile(value: Any, depth: int, max_depth: int) -> bool:
    """Whether a parsed value uses only profile types, str keys in strictly
    increasing order, and nests at most ``max_depth`` deep.

    Depth counts as in :func:`check_canonical`: a value at depth ``d`` is
    inside ``d`` containers, so a container may hold anything only if its
    elements' depth ``d + 1`` is within the limit.
    """
    if depth > max_depth:
        return False
    t = type(value)
    if t in _SCALAR_TYPES:
        return True
    scalars = _SCALAR_TYPES
    if t is dict:
        if value and depth >= max_depth:
            return False
        prev = None
        for k, v in value.items():
            # Python orders str by code point, which is UTF-8 byte order.
            if type(k) is not str or (prev is not None and k <= prev):
                return False
            prev = k
            if type(v) not in scalars and not _in_profile(v, depth + 1, max_depth):
                return False
        return True
    if t is list:
        if value and depth >= max_depth:
            return False
        for v in value:
            if type(v) not in scalars and not _in_profile(v, depth + 1, max_depth):
                return False
        return True
    return False


_local = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's msgpack packer (msgpack's packers are not thread-safe).

    Reusing one saves building a packer per ``packb`` call: a third of the
    cost of re-encoding a payload.
    """
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        _local.packer = packer = msgpack.Packer()
    return packer


def _fast_decode(data: bytes, limits: Limits) -> Any:
    """The decoded value if ``data`` is provably canonical, else ``_REFUSED``.

    msgpack's C parser under the same limits, the profile test on the result,
    and re-encoding compared byte for byte. Anything this accepts also passes
    :func:`check_canonical` (and the reverse; tests/protocol/test_properties.py
    checks both on mutated inputs); it only ever accepts. Why it refused is not
    asked: a refusal is named by :func:`check_canonical` alone.
    """
    if not 0 < len(data) <= limits.max_size:
        return _REFUSED
    try:
        value = _unpackb(data, **limits._parser_kw)
    except UNPACK_ERRORS:
        return _REFUSED
    if not _in_profile(value, 0, limits.max_depth) or _packer().pack(value) != data:
        return _REFUSED
    return value


def decode_untrusted(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode bytes from outside the process, accepting only canonical encodings.

    Valid input is parsed by msgpack's C parser and proven canonical by
    re-encoding (the fast path); input that fails there is walked by
    :func:`check_canonical`, which names the rule it breaks. Every reason
    therefore comes from the byte walk and the table of spec/protocol.md §9,
    never from the msgpack library.

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
    value = _fast_decode(data, limits)
    if value is _REFUSED:
        check_canonical(data, limits)
        # Not reached for any input seen so far: the walk refuses whatever the
        # fast path does. Were they ever to disagree, the walk is the rule.
        value = _unpackb(data, raw=False, use_list=True, strict_map_key=True)
    return value

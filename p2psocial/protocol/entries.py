"""Entries: signed envelopes that form an author's append-only feed.

Byte layout (spec/protocol.md §4)::

    entry bytes = signature (64) || envelope bytes
    envelope    = canonical msgpack map
                  {author, kind, payload_hash, payload_size, [prev], seq, timestamp, v}
    signature   = Ed25519(author, ENTRY_TAG || envelope bytes)
    id          = SHA-256(entry bytes)

The id covers the signature too, so a hash link to an entry authenticates its
signature bytes as well; that is what lets batch verification (feeds.py) keep
every stored signature trustworthy while checking only one.

The payload travels beside the envelope and is bound to it by ``payload_hash``
and ``payload_size``. It can be dropped or deleted without breaking the chain.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgpack

from . import encoding
from .encoding import Limits
from .errors import DecodeError, LocalUsageError, ProtocolError, SchemaError
from .identity import (
    KEY_MESSAGES,
    SIGNATURE_SIZE,
    SigningKey,
    check_signature_encoding,
    public_key_problem,
    verify_strict,
)
from .kinds import KINDS, validate_kind_name, validate_payload

__all__ = [
    "ENTRY_TAG",
    "ENVELOPE_VERSION",
    "MAX_ENTRY_SIZE",
    "MAX_FUTURE_MS",
    "MAX_PAYLOAD_SIZE",
    "Entry",
    "check_timestamp",
    "create_entry",
    "decode_entry_untrusted",
    "decode_payload_untrusted",
    "encode_payload",
]

#: Domain tag prefixed to the envelope bytes before signing.
ENTRY_TAG = b"p2psocial/entry/v1\x00"
ENVELOPE_VERSION = 1
#: Largest envelope; real ones are about 180 bytes (kind names are short).
MAX_ENVELOPE_SIZE = 512
MAX_ENTRY_SIZE = SIGNATURE_SIZE + MAX_ENVELOPE_SIZE
MAX_PAYLOAD_SIZE = 16 * 1024
#: An entry stamped further in the future than this is refused at ingest.
MAX_FUTURE_MS = 10 * 60 * 1000
MAX_SEQ = 2**53 - 1
MAX_TIMESTAMP = 2**53 - 1

#: The msgpack-level limits of an envelope (spec/protocol.md §4.1): its size
#: and depth. Field counts and lengths are shape rules (``bad_envelope``), so
#: the per-container and per-string limits are only the size itself.
_ENVELOPE_LIMITS = Limits(
    max_size=MAX_ENVELOPE_SIZE,
    max_depth=1,
    max_container_len=MAX_ENVELOPE_SIZE,
    max_str_len=MAX_ENVELOPE_SIZE,
    max_bin_len=MAX_ENVELOPE_SIZE,
)
_PAYLOAD_LIMITS = Limits(
    max_size=MAX_PAYLOAD_SIZE,
    max_depth=4,
    max_container_len=64,
    max_str_len=MAX_PAYLOAD_SIZE,
    max_bin_len=MAX_PAYLOAD_SIZE,
)
_unpackb = msgpack.unpackb
_packb = msgpack.packb
_sha256 = hashlib.sha256
#: Kind names already known to be well-formed (the v1 kinds), to skip the regex.
_GOOD_KIND_NAMES = frozenset(KINDS)
_REQUIRED = frozenset({"author", "kind", "payload_hash", "payload_size", "seq", "timestamp", "v"})
_ALL = _REQUIRED | {"prev"}
_ORDER_WITH_PREV = sorted(_ALL)
_ORDER_WITHOUT_PREV = sorted(_REQUIRED)


@dataclass(slots=True)
class Entry:
    """A decoded entry. Its fields are read from ``envelope``; ``id`` hashes both.

    Treat it as immutable. (It is not a frozen dataclass only because frozen
    construction costs more than the rest of decoding, on the ingest hot path.)

    An ``Entry`` says nothing about authenticity by itself: see
    :meth:`verify` and ``feeds.verify_run``.
    """

    author: bytes
    seq: int
    prev: bytes | None
    timestamp: int
    kind: str
    payload_hash: bytes
    payload_size: int
    signature: bytes
    envelope: bytes
    id: bytes

    def to_bytes(self) -> bytes:
        """The entry's wire form: signature followed by envelope bytes."""
        return self.signature + self.envelope

    def verify(self) -> None:
        """Strictly verify this entry's own signature; raises InvalidSignature."""
        verify_strict(self.author, self.signature, ENTRY_TAG + self.envelope)

    def __repr__(self) -> str:
        return f"Entry(author={self.author.hex()[:12]}, seq={self.seq}, kind={self.kind!r}, id={self.id.hex()[:12]})"


def _field_error(msg: str) -> DecodeError:
    return DecodeError(f"envelope {msg}", reason="bad_envelope")


_Fields = tuple[bytes, str, bytes, int, bytes | None, int, int]


def _envelope_fields(env: Any) -> _Fields:
    """The envelope's shape rules (spec/protocol.md §9, rows E4-E7), in order.

    ``env`` is a parsed envelope that may or may not have passed the msgpack
    rules; the caller decides what a refusal here means (see
    :func:`_envelope_full`).

    Returns:
        (author, kind, payload_hash, payload_size, prev, seq, timestamp).

    Raises:
        DecodeError: ``bad_envelope`` or ``bad_version``.
    """
    if type(env) is not dict:
        raise _field_error("is not a map")
    keys = list(env)
    # Unpacking values() in the known key order replaces eight dict lookups.
    if keys == _ORDER_WITH_PREV:
        author, kind, phash, psize, prev, seq, ts, v = env.values()
    elif keys == _ORDER_WITHOUT_PREV:
        author, kind, phash, psize, seq, ts, v = env.values()
        prev = None
    else:
        # (Keys in the wrong order never get here from _envelope_full: the msgpack rules refuse them first, as non_canonical.)
        names = set(keys)
        missing = sorted(_REQUIRED - names)
        extra = sorted(repr(k) for k in names - _ALL)
        raise _field_error(f"fields wrong (missing {missing}, unknown {extra})")
    if type(v) is not int or v != ENVELOPE_VERSION:
        raise DecodeError(f"envelope version {v!r} is not supported", reason="bad_version")
    if type(author) is not bytes or len(author) != 32:
        raise _field_error("author must be 32 bytes")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise _field_error(f"seq must be an integer in 1..{MAX_SEQ}")
    if seq == 1:
        # Test the key, not the value: any prev at seq 1 is a field too many.
        if len(keys) == 8:
            raise _field_error("seq 1 must not have prev")
    elif type(prev) is not bytes or len(prev) != 32:
        raise _field_error("prev must be a 32-byte id when seq > 1")
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP:
        raise _field_error(f"timestamp must be an integer in 0..{MAX_TIMESTAMP} (ms)")
    if type(kind) is not str or kind not in _GOOD_KIND_NAMES:
        try:
            validate_kind_name(kind)
        except SchemaError as exc:
            raise _field_error(exc.message) from None
    if type(phash) is not bytes or len(phash) != 32:
        raise _field_error("payload_hash must be 32 bytes")
    if type(psize) is not int or not 0 <= psize <= MAX_PAYLOAD_SIZE:
        raise _field_error(f"payload_size must be in 0..{MAX_PAYLOAD_SIZE}")
    return author, kind, phash, psize, prev, seq, ts


# The canonical byte form of a valid envelope, as one pattern (spec/protocol.md
# §4.1): a fixmap of 7 or 8 entries, the keys in their sorted order, each value
# in the shortest form of its type. A bin of 32 bytes is always bin8 (c4 20); a
# kind name of 1-31 characters is a fixstr and one of 32 a str8. An unsigned
# integer in its shortest form: a positive fixint, or a uint whose next shorter
# form cannot hold it (uint8 >= 0x80, uint16 >= 2**8, uint32 >= 2**16,
# uint64 >= 2**32, i.e. leading bytes not all zero). Only the unsigned family
# appears, because no envelope integer may be negative. The kind grammar is the
# one of kinds.validate_kind_name; the ranges and the seq/prev/map-size
# agreement are checked after the match.
_UINT = (
    rb"([\x00-\x7f]|\xcc[\x80-\xff]|\xcd[\x01-\xff].|\xce(?:[\x01-\xff].|\x00[\x01-\xff])..|"
    rb"\xcf(?:[\x01-\xff]...|\x00[\x01-\xff]..|\x00\x00[\x01-\xff].|\x00\x00\x00[\x01-\xff])....)"
)
_ENVELOPE_RE = re.compile(
    rb"([\x87\x88])\xa6author\xc4\x20(.{32})"
    rb"\xa4kind([\xa1-\xbf]|\xd9\x20)([a-z][a-z0-9_.\-]{0,31})"
    rb"\xacpayload_hash\xc4\x20(.{32})\xacpayload_size" + _UINT + rb"(?:\xa4prev\xc4\x20(.{32}))?"
    rb"\xa3seq" + _UINT + rb"\xa9timestamp" + _UINT + rb"\xa1v\x01",
    re.DOTALL,
)
_match_envelope = _ENVELOPE_RE.fullmatch
_from_bytes = int.from_bytes


def _envelope_fast(envelope: bytes) -> _Fields | None:
    """The fields of a valid envelope by the cheapest route, or None.

    One match of :data:`_ENVELOPE_RE` (in C: the regular expression engine)
    proves the bytes canonical and of the envelope's shape; Python then only
    converts three integers and checks their ranges. Every valid envelope
    matches, and nothing this accepts is refused by :func:`_envelope_full`,
    which names the reason of everything else
    (tests/protocol/test_properties.py checks both on mutated and on random
    envelopes). It never names a reason.
    """
    m = _match_envelope(envelope)
    if m is None:
        return None
    header, author, kind_header, kind, phash, psize_b, prev, seq_b, ts_b = m.groups()
    # A uint is its marker (0xcc-0xcf) and big-endian bytes, or one fixint byte.
    seq = seq_b[0]
    if seq >= 0xCC:
        seq = _from_bytes(seq_b[1:], "big")
    ts = ts_b[0]
    if ts >= 0xCC:
        ts = _from_bytes(ts_b[1:], "big")
    psize = psize_b[0]
    if psize >= 0xCC:
        psize = _from_bytes(psize_b[1:], "big")
    if prev is None:
        if header != b"\x87" or seq != 1:
            return None
    elif header != b"\x88" or not 2 <= seq <= MAX_SEQ:
        return None
    # A fixstr header carries the length; str8 (d9 20) only ever says 32.
    kind_len = 32 if len(kind_header) == 2 else kind_header[0] - 0xA0
    if ts > MAX_TIMESTAMP or psize > MAX_PAYLOAD_SIZE or kind_len != len(kind):
        return None
    return author, kind.decode("ascii"), phash, psize, prev, seq, ts


def _envelope_full(envelope: bytes) -> _Fields:
    """Check envelope bytes in the order of the reason table (rows E3-E7).

    The msgpack rules by reading the bytes (:func:`encoding.check_canonical`),
    then the shape rules; no reason comes from the msgpack library.
    """
    encoding.check_canonical(envelope, _ENVELOPE_LIMITS)
    # Canonical msgpack of depth <= 1: this parse cannot fail.
    return _envelope_fields(_unpackb(envelope, raw=False, strict_map_key=True))


def decode_entry_untrusted(data: bytes) -> Entry:
    """Parse entry bytes from the network or disk, without verifying the signature.

    Applies the rules of spec/protocol.md §4.4 in the order of the reason
    table (§9, rows E1-E8): size; the canonical msgpack rules under the
    envelope's limits (512 bytes, depth 1); the field set, version, types and
    ranges, and kind name; then that the author is a usable public key (the
    key rules of §3; the verdict is cached per key, so only an author's first
    entry pays for the curve arithmetic). Computes the id.

    This is the ingest hot path (spec/protocol.md §6.2: batch verification
    makes decoding, not Ed25519, the per-entry cost), so a valid entry is
    accepted by the cheapest route; the full check names the reason of
    anything else.

    Raises:
        DecodeError: for any malformed input, with the key rule's reason
            (``non_canonical_key``, ``small_order_key``, ``invalid_key``) for
            an unusable author; nothing else (fuzzed).
    """
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n > MAX_ENTRY_SIZE:
        raise DecodeError(f"entry of {n} bytes exceeds {MAX_ENTRY_SIZE}", reason="too_large")
    if n <= SIGNATURE_SIZE:
        raise DecodeError("entry is shorter than a signature", reason="truncated")
    envelope = data[SIGNATURE_SIZE:]
    fields = _envelope_fast(envelope) or _envelope_full(envelope)
    author, kind, phash, psize, prev, seq, ts = fields
    # The author is 32 bytes (checked above); the verdict is cached per key.
    problem = public_key_problem(author)
    if problem is not None:
        raise DecodeError(f"envelope author: {KEY_MESSAGES[problem]}", reason=problem)
    return Entry(
        author,
        seq,
        prev,
        ts,
        kind,
        phash,
        psize,
        data[:SIGNATURE_SIZE],
        envelope,
        _sha256(data).digest(),
    )


def _payload_value(kind: str, data: bytes) -> dict[str, Any]:
    """The payload rules after the binding (spec/protocol.md §9, rows P3-P8).

    The one definition used both for received payloads and, before signing,
    for payloads this node publishes.
    """
    value = encoding.decode_untrusted(data, _PAYLOAD_LIMITS)
    validate_payload(kind, value)
    return value  # type: ignore[no-any-return]


def decode_payload_untrusted(entry: Entry, payload: bytes) -> dict[str, Any]:
    """Check ``payload`` against ``entry`` and its kind's schema, and decode it.

    The rules of spec/protocol.md §5.3 in the order of the reason table (§9):
    the binding (size, then hash), the canonical msgpack rules under the
    payload limits (16384 bytes, depth 4, 64 elements per container), then
    the kind's schema.

    Raises:
        DecodeError: size or hash mismatch, or not canonical msgpack.
        SchemaError: the payload breaks its kind's schema.
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    if len(payload) != entry.payload_size:
        raise DecodeError(
            f"payload is {len(payload)} bytes, envelope says {entry.payload_size}",
            reason="payload_size",
        )
    if _sha256(payload).digest() != entry.payload_hash:
        raise DecodeError("payload does not match the envelope's hash", reason="payload_hash")
    return _payload_value(entry.kind, payload)


def encode_payload(kind: str, payload: dict[str, Any]) -> bytes:
    """Canonically encode a payload this node is about to publish.

    The bytes are then put through the same checks as a received payload
    (:func:`decode_payload_untrusted` after the binding), so that nothing this
    node signs is refused by a strict decoder: limits of size, depth and
    container length included, for unknown kinds too.

    Raises:
        LocalUsageError: the kind name or payload breaks a rule; ``reason`` is
            the one a receiver would report (``bad_envelope`` for the kind
            name, ``too_large``, ``too_deep``, ``malformed``, a schema reason,
            ...) and the message names the limit.
    """
    try:
        validate_kind_name(kind)
    except SchemaError as exc:
        raise LocalUsageError(exc.message, reason="bad_envelope") from None
    data = encoding.encode(payload)
    try:
        _payload_value(kind, data)
    except ProtocolError as exc:
        raise LocalUsageError(f"payload: {exc.message}", reason=exc.reason) from None
    return data


def create_entry(
    key: SigningKey,
    *,
    seq: int,
    prev: bytes | None,
    timestamp: int,
    kind: str,
    payload: dict[str, Any],
) -> tuple[Entry, bytes]:
    """Build and sign a new entry.

    Nothing is signed unless the payload passes :func:`encode_payload` and the
    envelope passes :func:`decode_entry_untrusted`: the same code that
    receivers run.

    Args:
        key: the author's identity key.
        seq: 1 for the first entry, then the previous seq + 1.
        prev: the previous entry's id; None exactly when seq is 1.
        timestamp: milliseconds since the Unix epoch (the caller's clock).
        kind: the entry kind; payload: its fields.

    Returns:
        (entry, payload bytes).

    Raises:
        LocalUsageError: any argument breaks a protocol rule, with the reason
            a receiver would report.
    """
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise LocalUsageError(f"seq must be an integer in 1..{MAX_SEQ}", reason="bad_envelope")
    if (seq == 1) != (prev is None):
        raise LocalUsageError("prev must be given exactly when seq > 1", reason="bad_envelope")
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise LocalUsageError(
            f"timestamp must be an integer in 0..{MAX_TIMESTAMP}", reason="bad_envelope"
        )
    if prev is not None and (type(prev) is not bytes or len(prev) != 32):
        raise LocalUsageError("prev must be a 32-byte id", reason="bad_envelope")
    data = encode_payload(kind, payload)
    # Every value is of a checked type and the keys go in in sorted order, so
    # msgpack's own encoding of this map is the canonical one (the decode
    # below proves it) and needs no normalising pass.
    env: dict[str, Any] = {
        "author": key.public_key,
        "kind": kind,
        "payload_hash": _sha256(data).digest(),
        "payload_size": len(data),
    }
    if prev is not None:
        env["prev"] = prev
    env["seq"] = seq
    env["timestamp"] = timestamp
    env["v"] = ENVELOPE_VERSION
    envelope: bytes = _packb(env, use_bin_type=True)
    # Decoding needs no signature, so the envelope is checked before signing;
    # the signature changes no field, so the checked entry only needs it and
    # the id it gives (decoding the signed bytes again would find the same).
    try:
        entry = decode_entry_untrusted(bytes(SIGNATURE_SIZE) + envelope)
    except ProtocolError as exc:
        raise LocalUsageError(f"cannot build entry: {exc.message}", reason=exc.reason) from None
    signature = key.sign(ENTRY_TAG + envelope)
    entry.signature = signature
    entry.id = _sha256(signature + envelope).digest()
    return entry, data


def check_timestamp(entry: Entry, now_ms: int, max_future_ms: int = MAX_FUTURE_MS) -> None:
    """Refuse an entry stamped more than ``max_future_ms`` after ``now_ms``.

    Raises:
        SchemaError: with reason ``from_future``. The entry is not invalid
            forever; a node may accept it once its clock catches up.
    """
    if entry.timestamp > now_ms + max_future_ms:
        raise SchemaError(
            f"timestamp is {(entry.timestamp - now_ms) // 1000} s in the future "
            f"(at most {max_future_ms // 1000} s allowed)",
            reason="from_future",
        )


def check_entry_signature_encoding(entry: Entry) -> None:
    """The cheap strict checks on an entry's signature (no curve arithmetic)."""
    check_signature_encoding(entry.signature)

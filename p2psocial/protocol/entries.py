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

_ENVELOPE_LIMITS = Limits(
    max_size=MAX_ENVELOPE_SIZE, max_depth=1, max_container_len=8, max_str_len=32, max_bin_len=32
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


def _unpack_envelope(envelope: bytes) -> Any:
    """msgpack-parse an envelope under ``_ENVELOPE_LIMITS``.

    The same as ``encoding.unpack_limited(envelope, _ENVELOPE_LIMITS)``, inlined
    because this runs once per ingested entry and the generic helper's
    min()/keyword plumbing cost about a sixth of decoding. The caller has
    already bounded the size (1..MAX_ENVELOPE_SIZE bytes), and every length
    limit here is below that size, so no ``min(limit, len)`` is needed.
    """
    try:
        return _unpackb(
            envelope,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=_ENVELOPE_LIMITS.max_str_len,
            max_bin_len=_ENVELOPE_LIMITS.max_bin_len,
            max_array_len=_ENVELOPE_LIMITS.max_container_len,
            max_map_len=_ENVELOPE_LIMITS.max_container_len,
            max_ext_len=0,
        )
    except encoding.UNPACK_ERRORS as exc:
        raise DecodeError(f"malformed msgpack: {exc}", reason="malformed") from None


def _envelope_problem(env: Any) -> DecodeError:
    """The precise error for an envelope whose key list is not one of the two valid ones."""
    if type(env) is not dict:
        return _field_error("is not a map")
    keys = list(env)
    if any(type(k) is not str for k in keys):
        # msgpack lets bin keys through; sorting them with str keys below
        # would raise TypeError.
        return _field_error("has a non-text key")
    if _ALL >= set(keys) >= _REQUIRED:
        return DecodeError("envelope keys are not in canonical order", reason="non_canonical")
    missing = sorted(_REQUIRED - set(keys))
    extra = sorted(set(keys) - _ALL)
    return _field_error(f"fields wrong (missing {missing}, unknown {extra})")


def decode_entry_untrusted(data: bytes) -> Entry:
    """Parse entry bytes from the network or disk, without verifying the signature.

    Checks the envelope's canonical encoding, field set, types and ranges, the
    kind name, and that the author is a usable public key (the key rules of
    spec/protocol.md §3, checked last: the verdict is cached per key, so only
    an author's first entry pays for the curve arithmetic), and computes the id.

    This is the ingest hot path (spec/protocol.md §6.2: batch verification
    makes decoding, not Ed25519, the per-entry cost), so it is written for
    speed: every check is still made, in the cheapest order.

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
    env = _unpack_envelope(envelope)
    # The field set fixes the canonical key order, so comparing the key list
    # with the two possible sorted lists proves order and absence of extras;
    # the re-encode at the end proves shortest forms.
    if type(env) is not dict:
        raise _envelope_problem(env)
    keys = list(env)
    # Unpacking values() in the known key order replaces eight dict lookups.
    if keys == _ORDER_WITH_PREV:
        author, kind, phash, psize, prev, seq, ts, v = env.values()
    elif keys == _ORDER_WITHOUT_PREV:
        author, kind, phash, psize, seq, ts, v = env.values()
        prev = None
    else:
        raise _envelope_problem(env)
    if type(v) is not int or v != ENVELOPE_VERSION:
        raise DecodeError(f"envelope version {v!r} is not supported", reason="bad_version")
    if type(author) is not bytes or len(author) != 32:
        raise _field_error("author must be 32 bytes")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise _field_error("seq must be an integer from 1")
    if seq == 1:
        # Test the key, not the value: an explicit nil prev is still a field.
        if len(keys) == 8:
            raise _field_error("seq 1 must not have prev")
    elif type(prev) is not bytes or len(prev) != 32:
        raise _field_error("prev must be a 32-byte id when seq > 1")
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP:
        raise _field_error("timestamp must be a non-negative integer (ms)")
    if type(kind) is not str or kind not in _GOOD_KIND_NAMES:
        try:
            validate_kind_name(kind)
        except SchemaError as exc:
            raise _field_error(exc.message) from None
    if type(phash) is not bytes or len(phash) != 32:
        raise _field_error("payload_hash must be 32 bytes")
    if type(psize) is not int or not 0 <= psize <= MAX_PAYLOAD_SIZE:
        raise _field_error(f"payload_size must be in 0..{MAX_PAYLOAD_SIZE}")
    # Every value is now known to be a profile type (int, str or bytes) and
    # keys are sorted, so re-encoding is exactly the canonicity test.
    if _packb(env) != envelope:
        raise DecodeError("msgpack is valid but not canonical", reason="non_canonical")
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


def decode_payload_untrusted(entry: Entry, payload: bytes) -> dict[str, Any]:
    """Check ``payload`` against ``entry`` and its kind's schema, and decode it.

    Raises:
        DecodeError: size or hash mismatch, or not canonical msgpack.
        SchemaError: the payload breaks its kind's schema.
    """
    if len(payload) != entry.payload_size:
        raise DecodeError(
            f"payload is {len(payload)} bytes, envelope says {entry.payload_size}",
            reason="payload_size",
        )
    if hashlib.sha256(payload).digest() != entry.payload_hash:
        raise DecodeError("payload does not match the envelope's hash", reason="payload_hash")
    value = encoding.decode_untrusted(payload, _PAYLOAD_LIMITS)
    validate_payload(entry.kind, value)
    return value  # type: ignore[no-any-return]


def encode_payload(kind: str, payload: dict[str, Any]) -> bytes:
    """Canonically encode a payload this node is about to publish.

    Raises:
        LocalUsageError: the payload breaks its kind's schema or the size limit;
            the message names the rule (e.g. the text length limit).
    """
    try:
        validate_kind_name(kind)
        validate_payload(kind, payload)
    except SchemaError as exc:
        raise LocalUsageError(exc.message, reason=exc.reason) from None
    data = encoding.encode(payload)
    if len(data) > MAX_PAYLOAD_SIZE:
        raise LocalUsageError(
            f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_SIZE}", reason="too_large"
        )
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

    Args:
        key: the author's identity key.
        seq: 1 for the first entry, then the previous seq + 1.
        prev: the previous entry's id; None exactly when seq is 1.
        timestamp: milliseconds since the Unix epoch (the caller's clock).
        kind: the entry kind; payload: its fields.

    Returns:
        (entry, payload bytes).

    Raises:
        LocalUsageError: any argument breaks a protocol rule.
    """
    if not 1 <= seq <= MAX_SEQ:
        raise LocalUsageError("seq must be at least 1")
    if (seq == 1) != (prev is None):
        raise LocalUsageError("prev must be given exactly when seq > 1")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise LocalUsageError("timestamp out of range")
    data = encode_payload(kind, payload)
    env: dict[str, Any] = {
        "author": key.public_key,
        "kind": kind,
        "payload_hash": hashlib.sha256(data).digest(),
        "payload_size": len(data),
        "seq": seq,
        "timestamp": timestamp,
        "v": ENVELOPE_VERSION,
    }
    if prev is not None:
        env["prev"] = prev
    envelope = encoding.encode(env)
    signature = key.sign(ENTRY_TAG + envelope)
    try:
        entry = decode_entry_untrusted(signature + envelope)
    except ProtocolError as exc:  # pragma: no cover - would be a bug above
        raise LocalUsageError(f"cannot build entry: {exc.message}") from None
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

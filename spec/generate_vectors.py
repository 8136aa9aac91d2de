#!/usr/bin/env python3
"""Generate spec/vectors/*.json: test vectors for spec/protocol.md.

Everything is derived from fixed seeds and fixed timestamps, and Ed25519
signing is deterministic (RFC 8032), so running this twice gives identical
files. tests/protocol/test_vectors.py re-derives every vector and fails on
drift, and checks each one with the decoders.

Usage::

    python spec/generate_vectors.py           # (re)write spec/vectors/*.json
    python spec/generate_vectors.py --check   # exit 1 if the files are stale

JSON conventions: byte strings are lowercase hex. Inside the ``payload`` field
(a decoded msgpack value), a byte string is written as ``{"$bytes": "<hex>"}``
so that it cannot be confused with text; every other value is plain JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from p2psocial.protocol.encoding import encode  # noqa: E402
from p2psocial.protocol.entries import ENTRY_TAG, Entry, create_entry  # noqa: E402
from p2psocial.protocol.feeds import detect_fork  # noqa: E402
from p2psocial.protocol.identity import (  # noqa: E402
    SigningKey,
    identity_to_text,
    node_id_from_public_key,
)

VECTORS_DIR = REPO / "spec" / "vectors"
#: 2023-11-14T22:13:20Z, the fixed clock of every vector.
T0 = 1_700_000_000_000
_L = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def seed(n: int) -> bytes:
    """The fixed 32-byte seed number ``n``."""
    return hashlib.sha256(f"p2psocial test vector seed {n}".encode()).digest()


def key(n: int) -> SigningKey:
    return SigningKey.from_seed(seed(n))


def to_json(value: Any) -> Any:
    """A decoded msgpack value as JSON, bytes tagged as {"$bytes": hex}."""
    if type(value) is bytes:
        return {"$bytes": value.hex()}
    if type(value) is list:
        return [to_json(v) for v in value]
    if type(value) is dict:
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`."""
    if type(value) is dict:
        if list(value) == ["$bytes"]:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if type(value) is list:
        return [from_json(v) for v in value]
    return value


def entry_record(e: Entry, payload: bytes, *, key_index: int, note: str = "") -> dict[str, Any]:
    rec: dict[str, Any] = {}
    if note:
        rec["note"] = note
    rec.update(
        {
            "key": key_index,
            "author": e.author.hex(),
            "seq": e.seq,
            "prev": e.prev.hex() if e.prev is not None else None,
            "timestamp": e.timestamp,
            "kind": e.kind,
            "payload": to_json(_decode_plain(payload)),
            "payload_hex": payload.hex(),
            "payload_hash": e.payload_hash.hex(),
            "payload_size": e.payload_size,
            "envelope_hex": e.envelope.hex(),
            "signing_input_hex": (ENTRY_TAG + e.envelope).hex(),
            "signature": e.signature.hex(),
            "entry_hex": e.to_bytes().hex(),
            "id": e.id.hex(),
        }
    )
    return rec


def _decode_plain(payload: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(payload, raw=False)


# ------------------------------------------------------------------ keys


def build_keys() -> dict[str, Any]:
    out = []
    for n in range(4):
        k = key(n)
        out.append(
            {
                "index": n,
                "seed": seed(n).hex(),
                "public_key": k.public_key.hex(),
                "text": identity_to_text(k.public_key),
                "node_id": node_id_from_public_key(k.public_key).hex(),
            }
        )
    message = b"p2psocial invalid key vector"
    return {
        "description": "Ed25519 keys from fixed seeds (seed n = SHA-256('p2psocial test vector "
        "seed <n>')), their identity text form (bech32m, prefix p2ps) and node id "
        "(first 20 bytes of SHA-256(public key)). invalid_keys are 32-byte strings that "
        "break the key rules of spec/protocol.md §3 (rules 2-4), by class, with the reason "
        "a reader of the text form, and verify(public_key, verify_signature, verify_message), "
        "must report. verify_signature is key 0's valid signature of verify_message, so "
        "only the key rule can decide.",
        "keys": out,
        "verify_message": message.hex(),
        "verify_signature": key(0).sign(message).hex(),
        "invalid_keys": [
            {
                "name": name,
                "class": cls,
                "reason": reason,
                "public_key": pk.hex(),
                "text": identity_to_text(pk),
            }
            for name, cls, reason, pk in invalid_keys()
        ],
    }


def _point(y: int, sign: int = 0) -> bytes:
    """The 32-byte string with low 255 bits y and top bit sign (not necessarily a point)."""
    return (y | (sign << 255)).to_bytes(32, "little")


def _has_x(y: int) -> bool:
    """Whether y < p is the y of some curve point: (y^2 - 1) / (d y^2 + 1) is a square."""
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    return pow(u * pow(v, _P - 2, _P), (_P - 1) // 2, _P) in (0, 1)


def _order8_y() -> int:
    """The smaller y of the points of order 8: y^2 = (-1 + s) / d with s^2 = 1 + d.

    (A point of order 8 doubles to one of order 4, whose y is 0, which on the
    curve means y^2 = -x^2; substituting gives d y^4 + 2 y^2 - 1 = 0.)
    """

    def sqrt(a: int) -> int | None:
        r = pow(a, (_P + 3) // 8, _P)
        if r * r % _P != a % _P:
            r = r * pow(2, (_P - 1) // 4, _P) % _P
        return r if r * r % _P == a % _P else None

    s = sqrt(1 + _D)
    assert s is not None
    # Exactly one of the two roots y^2 of the quadratic is itself a square.
    ys = [sqrt((-1 + t) * pow(_D, _P - 2, _P)) for t in (s, _P - s)]
    (y,) = [y for y in ys if y is not None]
    return min(y, _P - y)


def invalid_keys() -> list[tuple[str, str, str, bytes]]:
    """(name, class, reason, 32 bytes) for each invalid-key vector."""
    off = [
        ("off_curve_y2", _point(2)),
        ("off_curve_y2_sign", _point(2, 1)),
        ("off_curve_y_minus_2", _point(_P - 2)),
    ]
    n = 0
    while len(off) < 5:
        h = hashlib.sha256(f"p2psocial test vector off-curve key {n}".encode()).digest()
        y = int.from_bytes(h, "little") & ((1 << 255) - 1)
        if y < _P and not _has_x(y):
            off.append((f"off_curve_hash_{n}", h))
        n += 1
    y8 = _order8_y()
    small = [
        ("small_order_1_neutral", _point(1)),
        ("small_order_2", _point(_P - 1)),
        ("small_order_4", _point(0)),
        ("small_order_4_sign", _point(0, 1)),
        ("small_order_8_a", _point(y8)),
        ("small_order_8_a_sign", _point(y8, 1)),
        ("small_order_8_b", _point(_P - y8)),
        ("small_order_8_b_sign", _point(_P - y8, 1)),
    ]
    non_canonical = [
        ("non_canonical_y_p", _point(_P)),
        ("non_canonical_y_p_sign", _point(_P, 1)),
        ("non_canonical_y_p_plus_1", _point(_P + 1)),
        ("non_canonical_y_p_plus_1_sign", _point(_P + 1, 1)),
        ("non_canonical_y_p_plus_2", _point(_P + 2)),
        ("non_canonical_y_max", _point(2**255 - 1)),
        ("non_canonical_y_max_sign", _point(2**255 - 1, 1)),
        ("non_canonical_neutral_sign", _point(1, 1)),
        ("non_canonical_order2_sign", _point(_P - 1, 1)),
    ]
    return (
        [(name, "off_curve", "invalid_key", pk) for name, pk in off]
        + [(name, "small_order", "small_order_key", pk) for name, pk in small]
        + [(name, "non_canonical", "non_canonical_key", pk) for name, pk in non_canonical]
    )


# ------------------------------------------------------------------ entries


def kind_payloads() -> list[tuple[str, dict[str, Any]]]:
    friend = key(1).public_key
    target = hashlib.sha256(b"p2psocial vector target entry").digest()
    root = hashlib.sha256(b"p2psocial vector thread root").digest()
    return [
        ("post", {"text": "hello, p2psocial"}),
        (
            "post",
            {
                "text": "a reply with everything: héllo 🌍 #vectors",
                "reply": {"root": root, "parent": target},
                "mentions": [friend],
                "tags": ["vectors", "p2p"],
                "lang": "en",
            },
        ),
        ("profile", {"name": "Vector Vera", "bio": "I exist to be tested."}),
        ("follow", {"target": friend}),
        ("unfollow", {"target": friend}),
        ("react", {"target": target, "emoji": "👍"}),
        ("repost", {"target": target}),
        ("delete", {"target": target}),
        ("block", {"target": key(2).public_key, "reason": "spam"}),
        ("unblock", {"target": key(2).public_key}),
        ("x-poll", {"question": "unknown kinds are opaque", "options": ["a", "b"], "n": 2}),
    ]


def build_entries() -> dict[str, Any]:
    k = key(0)
    out = []
    # Seq 1 for the first, then a fixed chain so both envelope shapes appear.
    prev: bytes | None = None
    for i, (kind, payload) in enumerate(kind_payloads()):
        e, data = create_entry(
            k, seq=i + 1, prev=prev, timestamp=T0 + i * 1000, kind=kind, payload=payload
        )
        out.append(entry_record(e, data, key_index=0))
        prev = e.id
    return {
        "description": "One valid entry per kind (plus an unknown kind), authored by key 0. "
        "They also form a chain (seq 1..n). Each must decode, verify strictly, and its "
        "payload must validate.",
        "entries": out,
    }


# ------------------------------------------------------------------ feed


def build_feed() -> dict[str, Any]:
    k = key(3)
    out = []
    prev: bytes | None = None
    for seq in range(1, 6):
        e, data = create_entry(
            k,
            seq=seq,
            prev=prev,
            timestamp=T0 + seq * 60_000,
            kind="post",
            payload={"text": f"feed entry {seq}"},
        )
        out.append(entry_record(e, data, key_index=3))
        prev = e.id
    return {
        "description": "A feed of 5 entries by key 3. verify_run over all five (no anchor) "
        "succeeds with one signature check (the top, seq 5); so does every suffix "
        "anchored on the entry below it.",
        "entries": out,
    }


# ------------------------------------------------------------------ fork


def build_fork() -> dict[str, Any]:
    k = key(3)
    base, _ = create_entry(
        k, seq=1, prev=None, timestamp=T0 + 60_000, kind="post", payload={"text": "feed entry 1"}
    )
    a, da = create_entry(
        k,
        seq=2,
        prev=base.id,
        timestamp=T0 + 120_000,
        kind="post",
        payload={"text": "feed entry 2"},
    )
    b, db = create_entry(
        k,
        seq=2,
        prev=base.id,
        timestamp=T0 + 121_000,
        kind="post",
        payload={"text": "a second history"},
    )
    proof = detect_fork(a, b)
    assert proof is not None
    return {
        "description": "Key 3 signed two different entries with seq 2. The fork proof is the "
        "canonical msgpack array [first, second] of the two entries' bytes, ordered by id.",
        "author": k.public_key.hex(),
        "seq": 2,
        "first": entry_record(proof.first, da if proof.first is a else db, key_index=3),
        "second": entry_record(proof.second, db if proof.second is b else da, key_index=3),
        "proof_hex": proof.to_bytes().hex(),
    }


# ------------------------------------------------------------------ invalid


def _envelope(k: SigningKey, payload: bytes, **over: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "author": k.public_key,
        "kind": "post",
        "payload_hash": hashlib.sha256(payload).digest(),
        "payload_size": len(payload),
        "seq": 1,
        "timestamp": T0,
        "v": 1,
    }
    env.update(over)
    return env


def _signed(k: SigningKey, envelope: bytes, tag: bytes = ENTRY_TAG) -> bytes:
    return k.sign(tag + envelope) + envelope


def build_invalid() -> dict[str, Any]:
    import msgpack

    k = key(0)
    good_payload = encode({"text": "valid payload"})
    good_env = encode(_envelope(k, good_payload))
    good = _signed(k, good_env)
    sig = good[:64]
    cases: list[dict[str, Any]] = []

    def add(name: str, stage: str, error: str, reason: str, entry: bytes, **extra: Any) -> None:
        rec: dict[str, Any] = {
            "name": name,
            "stage": stage,
            "error": error,
            "reason": reason,
            "entry_hex": entry.hex(),
        }
        for kk, vv in extra.items():
            rec[kk] = vv.hex() if isinstance(vv, bytes) else vv
        cases.append(rec)

    # --- decode stage: decode_entry_untrusted must refuse
    add("truncated", "decode", "DecodeError", "truncated", good[:64])
    add(
        "seq_not_shortest_form",
        "decode",
        "DecodeError",
        "non_canonical",
        _signed(k, good_env.replace(b"\xa3seq\x01", b"\xa3seq\xcc\x01")),
    )
    unsorted = msgpack.packb(dict(reversed(list(_envelope(k, good_payload).items()))))
    add("keys_not_sorted", "decode", "DecodeError", "non_canonical", _signed(k, unsorted))
    add(
        "version_2",
        "decode",
        "DecodeError",
        "bad_version",
        _signed(k, encode(_envelope(k, good_payload, v=2))),
    )
    add(
        "seq1_with_prev",
        "decode",
        "DecodeError",
        "bad_envelope",
        _signed(k, encode(_envelope(k, good_payload, prev=bytes(32)))),
    )
    add(
        "seq2_without_prev",
        "decode",
        "DecodeError",
        "bad_envelope",
        _signed(k, encode(_envelope(k, good_payload, seq=2))),
    )
    add(
        "bad_kind_name",
        "decode",
        "DecodeError",
        "bad_envelope",
        _signed(k, encode(_envelope(k, good_payload, kind="Post!"))),
    )
    add(
        "nil_prev",
        "decode",
        "DecodeError",
        "bad_envelope",
        _signed(k, msgpack.packb(dict(sorted(_envelope(k, good_payload, prev=None).items())))),
    )
    add(
        "trailing_byte",
        "decode",
        "DecodeError",
        "malformed",
        _signed(k, good_env + b"\x00"),
    )
    # An author that breaks the key rules of §3 is refused when decoding. The
    # signature is a real one by key 0 over the envelope; it must not matter.
    by_name = {name: pk for name, _, _, pk in invalid_keys()}
    for name, author, reason in (
        ("off_curve_author", by_name["off_curve_y2"], "invalid_key"),
        ("off_curve_author_hash", by_name["off_curve_hash_0"], "invalid_key"),
        ("small_order_author", by_name["small_order_1_neutral"], "small_order_key"),
        ("small_order_8_author", by_name["small_order_8_a"], "small_order_key"),
        ("non_canonical_author", by_name["non_canonical_y_p_plus_1"], "non_canonical_key"),
        ("non_canonical_sign_author", by_name["non_canonical_neutral_sign"], "non_canonical_key"),
    ):
        env = encode({**_envelope(k, good_payload), "author": author})
        add(name, "decode", "DecodeError", reason, _signed(k, env))
    # --- verify stage: decodes, but the strict signature check refuses
    add("flipped_signature_bit", "verify", "InvalidSignature", "mismatch",
        bytes([sig[0] ^ 1]) + sig[1:] + good_env)  # fmt: skip
    add("signed_without_tag", "verify", "InvalidSignature", "mismatch", _signed(k, good_env, b""))
    add(
        "signed_with_other_tag",
        "verify",
        "InvalidSignature",
        "mismatch",
        _signed(k, good_env, b"p2psocial/entry/v2\x00"),
    )
    s_big = (int.from_bytes(sig[32:], "little") + _L).to_bytes(32, "little")
    add(
        "s_not_below_l", "verify", "InvalidSignature", "s_out_of_range", sig[:32] + s_big + good_env
    )
    add(
        "small_order_r",
        "verify",
        "InvalidSignature",
        "small_order_r",
        bytes([1]) + bytes(31) + sig[32:] + good_env,
    )
    other = key(1)
    add(
        "signed_by_another_key",
        "verify",
        "InvalidSignature",
        "mismatch",
        _signed(other, good_env),
    )
    # --- payload stage: the entry is valid, the payload is not
    add(
        "payload_hash_mismatch",
        "payload",
        "DecodeError",
        "payload_hash",
        good,
        payload_hex=encode({"text": "valid payloaD"}),
    )
    add(
        "payload_size_mismatch",
        "payload",
        "DecodeError",
        "payload_size",
        good,
        payload_hex=good_payload + b"\x00",
    )
    for name, reason, payload in (
        ("text_too_long", "too_long", encode({"text": "x" * 2001})),
        ("unknown_post_field", "unknown_field", encode({"text": "a", "title": "b"})),
        ("follow_without_target", "missing_field", encode({})),
    ):
        kind = "follow" if name.startswith("follow") else "post"
        env = encode(_envelope(k, payload, kind=kind))
        add(name, "payload", "SchemaError", reason, _signed(k, env), payload_hex=payload)
    # Payload identities must pass the key rules too (bad_field).
    for name, kind, payload in (
        ("follow_off_curve_target", "follow", {"target": by_name["off_curve_y2"]}),
        ("follow_off_curve_target_hash", "follow", {"target": by_name["off_curve_hash_0"]}),
        ("unfollow_off_curve_target", "unfollow", {"target": by_name["off_curve_y_minus_2"]}),
        ("follow_small_order_target", "follow", {"target": by_name["small_order_8_b"]}),
        ("block_small_order_target", "block", {"target": by_name["small_order_4"]}),
        ("follow_non_canonical_target", "follow", {"target": by_name["non_canonical_y_p"]}),
        (
            "mention_off_curve",
            "post",
            {"text": "hi", "mentions": [key(1).public_key, by_name["off_curve_y2"]]},
        ),
        (
            "mention_non_canonical",
            "post",
            {"text": "hi", "mentions": [by_name["non_canonical_order2_sign"]]},
        ),
    ):
        data = encode(payload)
        env = encode(_envelope(k, data, kind=kind))
        add(name, "payload", "SchemaError", "bad_field", _signed(k, env), payload_hex=data)
    nil_payload = bytes.fromhex("81a474657874c0")  # {"text": nil}
    add(
        "payload_with_nil",
        "payload",
        "DecodeError",
        "nil",
        _signed(k, encode(_envelope(k, nil_payload))),
        payload_hex=nil_payload,
    )
    # --- timestamp stage: valid, but stamped more than 10 minutes ahead of now
    future = _signed(k, encode(_envelope(k, good_payload, timestamp=T0 + 600_001)))
    add("from_future", "timestamp", "SchemaError", "from_future", future, now_ms=T0)
    # --- link stage: two valid entries that do not chain
    first, _ = create_entry(
        k, seq=1, prev=None, timestamp=T0, kind="post", payload={"text": "valid payload"}
    )
    wrong_prev, _ = create_entry(
        k, seq=2, prev=bytes(32), timestamp=T0 + 1, kind="post", payload={"text": "next"}
    )
    add(
        "prev_mismatch",
        "link",
        "ChainError",
        "prev_mismatch",
        wrong_prev.to_bytes(),
        prev_entry_hex=first.to_bytes(),
    )
    gap, _ = create_entry(
        k, seq=3, prev=first.id, timestamp=T0 + 1, kind="post", payload={"text": "next"}
    )
    add("seq_gap", "link", "ChainError", "seq_gap", gap.to_bytes(), prev_entry_hex=first.to_bytes())
    return {
        "description": "Invalid entries with the error class and reason a conforming "
        "implementation reports. stage says where the refusal happens: decode "
        "(envelope bytes), verify (strict signature), payload (payload_hex against the "
        "entry), timestamp (with now_ms), link (entry after prev_entry_hex). Earlier "
        "stages pass for each case.",
        "cases": cases,
    }


def build_all() -> dict[str, Any]:
    """Every vector file's content, by file name."""
    return {
        "keys.json": build_keys(),
        "entries.json": build_entries(),
        "feed.json": build_feed(),
        "fork.json": build_fork(),
        "invalid.json": build_invalid(),
    }


def render(content: Any) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Generate spec/vectors/*.json")
    parser.add_argument("--check", action="store_true", help="fail if the files differ")
    args = parser.parse_args()
    stale = []
    for name, content in build_all().items():
        path = VECTORS_DIR / name
        text = render(content)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            VECTORS_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale vectors: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

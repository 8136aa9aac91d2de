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
from p2psocial.protocol.noise import PROTOCOL_NAME, public_key  # noqa: E402
from p2psocial.protocol.securelink import (  # noqa: E402
    LINK_PROLOGUE_TAG,
    NOISE_STATIC_TAG,
    PREAMBLE,
    REKEY_INTERVAL,
    SecureLink,
    encode_link_payload,
    static_signed_bytes,
)
from p2psocial.protocol.wire import Bye, Hello, encode_message  # noqa: E402

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
                "rules": ["T10", _KEY_RULE[reason], "E8"],
                "public_key": pk.hex(),
                "text": identity_to_text(pk),
            }
            for name, cls, reason, pk in invalid_keys()
        ],
        "invalid_texts": invalid_texts(),
        "invalid_signatures": invalid_signatures(),
    }


#: The rule of spec/protocol.md §9 that refuses a key for each key reason.
_KEY_RULE = {"non_canonical_key": "S2", "small_order_key": "S3", "invalid_key": "S4"}

_BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32m(hrp: str, data: list[int]) -> str:
    """A bech32m text (BIP 350), written here independently of the library."""

    def polymod(values: list[int]) -> int:
        gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
        chk = 1
        for v in values:
            top = chk >> 25
            chk = (chk & 0x1FFFFFF) << 5 ^ v
            for i in range(5):
                chk ^= gen[i] if (top >> i) & 1 else 0
        return chk

    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = polymod(expanded + data + [0] * 6) ^ 0x2BC830A3
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_ALPHABET[d] for d in data + checksum)


def _groups(raw: bytes) -> list[int]:
    """8-bit to 5-bit groups, most significant first, zero-padded at the end."""
    bits = "".join(f"{b:08b}" for b in raw)
    bits += "0" * (-len(bits) % 5)
    return [int(bits[i : i + 5], 2) for i in range(0, len(bits), 5)]


def invalid_texts() -> list[dict[str, Any]]:
    """Identity texts that break a text-form rule of §1.2 other than the key rules."""
    pk = key(0).public_key
    good = identity_to_text(pk)
    assert good == _bech32m("p2ps", _groups(pk))
    flip = "p" if good[20] == "q" else "q"
    padded = _groups(pk)
    padded[-1] |= 1  # one of the 4 padding bits set
    cases: list[tuple[str, str, str | None, str]] = [
        ("T1", "not_text", None, "bad_type"),
        ("T2", "too_long", good + "q" * 28, "bad_length"),
        ("T3", "mixed_case", good[:10].upper() + good[10:], "mixed_case"),
        ("T4", "wrong_prefix", _bech32m("p2px", _groups(pk)), "wrong_prefix"),
        ("T4", "prefix_of_node_key", _bech32m("p2p", _groups(pk)), "wrong_prefix"),
        ("T5", "character_b", good[:20] + "b" + good[21:], "bad_character"),
        ("T5", "character_o", good[:20] + "o" + good[21:], "bad_character"),
        # A "1" in the data part makes it the last "1": the prefix is then wrong.
        ("T4", "character_1_in_data", good[:20] + "1" + good[21:], "wrong_prefix"),
        ("T6", "shorter_than_checksum", "p2ps1qqqqq", "bad_length"),
        ("T7", "one_typo", good[:20] + flip + good[21:], "bad_checksum"),
        ("T7", "last_character_dropped", good[:-1], "bad_checksum"),
        ("T8", "padding_bit_set", _bech32m("p2ps", padded), "bad_padding"),
        ("T8", "padding_longer_than_4_bits", _bech32m("p2ps", [*_groups(pk), 0, 0]), "bad_padding"),
        ("T9", "31_bytes", _bech32m("p2ps", _groups(pk[:31])), "bad_length"),
        ("T9", "33_bytes", _bech32m("p2ps", _groups(pk + b"\x00")), "bad_length"),
    ]
    return [
        {"name": name, "rules": [rule], "text": text, "error": "DecodeError", "reason": reason}
        for rule, name, text, reason in cases
    ]


def invalid_signatures() -> list[dict[str, Any]]:
    """verify(public_key, signature, message) cases refused before the key rules."""
    message = b"p2psocial invalid key vector"
    pk = key(0).public_key
    sig = key(0).sign(message)
    cases = [
        ("S1", "key_31_bytes", pk[:31], sig, "bad_length"),
        ("S1", "signature_63_bytes", pk, sig[:63], "bad_length"),
        ("S1", "signature_65_bytes", pk, sig + b"\x00", "bad_length"),
        ("S5", "r_not_canonical", pk, b"\xff" * 31 + b"\x7f" + sig[32:], "non_canonical_r"),
        ("S6", "r_small_order", pk, bytes([1]) + bytes(31) + sig[32:], "small_order_r"),
        ("S7", "s_plus_l", pk, sig[:32] + (int.from_bytes(sig[32:], "little") + _L).to_bytes(32, "little"), "s_out_of_range"),
        ("S8", "other_message", pk, sig, "mismatch"),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "rules": [rule],
            "public_key": k.hex(),
            "signature": sg.hex(),
            "message": (message + b"!" if name == "other_message" else message).hex(),
            "error": "InvalidSignature",
            "reason": reason,
        }
        for rule, name, k, sg, reason in cases
    ]


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
        "anchored on the entry below it. runs: runs given as entry bytes (and an optional "
        "anchor) with the verdict of batch verification (spec/protocol.md §6.2): "
        "'authentic', or the error class and reason of the first rule broken.",
        "entries": out,
        "runs": build_runs(k, [bytes.fromhex(r["entry_hex"]) for r in out]),
    }


def _mangle_s(entry: bytes) -> bytes:
    """The same entry with S replaced by S + L (well-formed otherwise)."""
    s = (int.from_bytes(entry[32:64], "little") + _L).to_bytes(32, "little")
    return entry[:32] + s + entry[64:]


def build_runs(k: SigningKey, feed: list[bytes]) -> list[dict[str, Any]]:
    e1, e2, e3, e4, e5 = feed
    top_bad = e5[:1] + bytes([e5[1] ^ 1]) + e5[2:]  # the top's own signature fails
    other, _ = create_entry(
        key(0), seq=1, prev=None, timestamp=T0, kind="post", payload={"text": "feed entry 1"}
    )
    rival, _ = create_entry(
        k,
        seq=2,
        prev=hashlib.sha256(e1).digest(),
        timestamp=T0,
        kind="post",
        payload={"text": "rival"},
    )
    cases: list[tuple[str, list[str], list[bytes], bytes | None, str, str]] = [
        ("whole_feed", ["R2", "R3"], feed, None, "", "authentic"),
        ("suffix_anchored", ["R2", "R3"], [e3, e4, e5], e2, "", "authentic"),
        ("detached_segment", ["R2", "R3"], [e3, e4, e5], None, "", "authentic"),
        # An empty run is authentic and establishes nothing, with or without anchor.
        ("empty_run", ["R1"], [], None, "", "authentic"),
        ("empty_run_anchored", ["R1"], [], e5, "", "authentic"),
        ("gap_inside", ["R2", "C3"], [e1, e2, e4, e5], None, "ChainError", "seq_gap"),
        ("wrong_anchor", ["R2", "C3"], [e3, e4, e5], e1, "ChainError", "seq_gap"),
        ("other_author_anchor", ["R2", "C1"], [e2, e3], other.to_bytes(), "ChainError", "wrong_author"),
        ("inner_s_out_of_range", ["R2", "S7"], [e1, _mangle_s(e2), e3], None,
         "InvalidSignature", "s_out_of_range"),
        # Per entry, its link then its signature encoding: e2's S fails before
        # the link from e3 (whose prev no longer names e2's changed bytes).
        ("inner_s_out_of_range_anchored", ["R2", "S7"], [_mangle_s(e2), e3], e1,
         "InvalidSignature", "s_out_of_range"),
        ("inner_entry_replaced", ["R2", "C4"], [e1, rival.to_bytes(), e3], None,
         "ChainError", "prev_mismatch"),
        ("top_signature_fails", ["R3", "S8"], [e3, e4, top_bad], e2, "InvalidSignature", "mismatch"),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "rules": rules,
            "entries_hex": [e.hex() for e in run],
            "anchor_hex": anchor.hex() if anchor is not None else None,
            "verdict": verdict if not error else "refused",
            **({"error": error, "reason": verdict} if error else {}),
        }
        for name, rules, run, anchor, error, verdict in cases
    ]


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
        "invalid_proofs": invalid_proofs(k, base, proof.first, proof.second),
    }


def invalid_proofs(k: SigningKey, base: Entry, x: Entry, y: Entry) -> list[dict[str, Any]]:
    """Fork proofs refused by spec/protocol.md §6.5, one or more per rule (F1-F7)."""
    xb, yb = x.to_bytes(), y.to_bytes()
    third, _ = create_entry(
        k, seq=3, prev=x.id, timestamp=T0 + 180_000, kind="post", payload={"text": "feed entry 3"}
    )
    other, _ = create_entry(
        key(0), seq=2, prev=bytes(32), timestamp=T0, kind="post", payload={"text": "x"}
    )
    bad_sig = _signed(k, y.envelope, b"")  # signed without the tag

    def ordered(a: bytes, b: bytes) -> list[bytes]:
        return sorted([a, b], key=lambda e: hashlib.sha256(e).digest())

    cases: list[tuple[str, list[str], bytes, str, str]] = [
        ("empty", ["F1", "M2"], b"", "DecodeError", "truncated"),
        ("too_large", ["F1", "M1"], encode([xb, yb + bytes(600)]), "DecodeError", "too_large"),
        ("trailing_byte", ["F1", "M12"], encode([xb, yb]) + b"\x00", "DecodeError", "malformed"),
        ("nested", ["F1", "M3"], encode([[xb], yb]), "DecodeError", "too_deep"),
        ("nil_element", ["F1", "M7"], b"\x92\xc0" + encode(yb), "DecodeError", "nil"),
        ("bin16_for_bin8", ["F1", "M13"],
         b"\x92\xc5\x00" + encode(xb)[1:] + encode(yb), "DecodeError", "non_canonical"),
        ("one_entry", ["F2"], encode([xb]), "DecodeError", "bad_fork_proof"),
        ("three_entries", ["F2"], encode([xb, yb, yb]), "DecodeError", "bad_fork_proof"),
        ("no_entries", ["F2"], encode([]), "DecodeError", "bad_fork_proof"),
        ("a_map", ["F2"], encode({"first": xb, "second": yb}), "DecodeError", "bad_fork_proof"),
        ("text_element", ["F2"], encode(["x", yb]), "DecodeError", "bad_fork_proof"),
        ("first_does_not_decode", ["F3", "E3"], encode([b"\x00" * 70, yb]), "DecodeError", "malformed"),
        ("second_too_large", ["F3", "E1"], encode([xb, bytes(577)]), "DecodeError", "too_large"),
        ("same_entry_twice", ["F4"], encode([xb, xb]), "ChainError", "not_a_fork"),
        ("ids_decreasing", ["F5"], encode([yb, xb]), "DecodeError", "non_canonical"),
        ("different_seq", ["F6"], encode(ordered(xb, third.to_bytes())), "ChainError", "not_a_fork"),
        ("different_author", ["F6"], encode(ordered(xb, other.to_bytes())), "ChainError", "not_a_fork"),
        ("signature_fails", ["F7", "S8"], encode(ordered(xb, bad_sig)), "InvalidSignature", "mismatch"),
        ("signature_s_out_of_range", ["F7", "S7"], encode(ordered(xb, _mangle_s(yb))),
         "InvalidSignature", "s_out_of_range"),
        ("signature_small_order_r", ["F7", "S6"],
         encode(ordered(xb, bytes([1]) + bytes(31) + yb[32:])), "InvalidSignature", "small_order_r"),
    ]  # fmt: skip
    return [
        {"name": name, "rules": rules, "proof_hex": data.hex(), "error": error, "reason": reason}
        for name, rules, data, error, reason in cases
    ]


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


_INVALID_RULES: dict[str, list[str]] = {
    "truncated": ["E2"],
    "seq_not_shortest_form": ["E3", "M13"],
    "keys_not_sorted": ["E3", "M13"],
    "version_2": ["E6"],
    "seq1_with_prev": ["E7"],
    "seq2_without_prev": ["E7"],
    "bad_kind_name": ["E7"],
    "nil_prev": ["E3", "M7"],
    "trailing_byte": ["E3", "M12"],
    "off_curve_author": ["E8", "S4"],
    "off_curve_author_hash": ["E8", "S4"],
    "small_order_author": ["E8", "S3"],
    "small_order_8_author": ["E8", "S3"],
    "non_canonical_author": ["E8", "S2"],
    "non_canonical_sign_author": ["E8", "S2"],
    "flipped_signature_bit": ["S8"],
    "signed_without_tag": ["S8"],
    "signed_with_other_tag": ["S8"],
    "s_not_below_l": ["S7"],
    "small_order_r": ["S6"],
    "signed_by_another_key": ["S8"],
    "payload_hash_mismatch": ["P2"],
    "payload_size_mismatch": ["P1"],
    "text_too_long": ["P7"],
    "unknown_post_field": ["P5"],
    "follow_without_target": ["P6"],
    "payload_with_nil": ["P3", "M7"],
    "from_future": ["D1"],
    "prev_mismatch": ["C4"],
    "seq_gap": ["C3"],
} | {
    name: ["P8"]
    for name in (
        "follow_off_curve_target",
        "follow_off_curve_target_hash",
        "unfollow_off_curve_target",
        "follow_small_order_target",
        "block_small_order_target",
        "follow_non_canonical_target",
        "mention_off_curve",
        "mention_non_canonical",
    )
}


def _sorted_packb(value: dict[Any, Any]) -> bytes:
    """Plain msgpack of a map with its str keys sorted (other keys last)."""
    import msgpack

    items = sorted(value.items(), key=lambda kv: (type(kv[0]) is not str, str(kv[0])))
    return msgpack.packb(dict(items), use_bin_type=True)  # type: ignore[no-any-return]


def add_msgpack_cases(add: Any, k: SigningKey, good_payload: bytes) -> None:
    """Every msgpack rule (M3-M13) inside an envelope and inside a payload, and the
    envelope and payload shape rules not covered above."""
    import msgpack

    base = _envelope(k, good_payload)
    good_env = encode(base)

    def env_case(name: str, rules: list[str], reason: str, envelope: bytes) -> None:
        add(name, "decode", "DecodeError", reason, _signed(k, envelope), rules=rules)

    env_case(
        "envelope_ext_value",
        ["E3", "M9"],
        "bad_type",
        _sorted_packb({**base, "timestamp": msgpack.ExtType(1, b"x")}),
    )
    env_case(
        "envelope_timestamp_ext",
        ["E3", "M9"],
        "bad_type",
        _sorted_packb({**base, "timestamp": msgpack.Timestamp(0)}),
    )
    env_case(
        "envelope_float_value", ["E3", "M8"], "float", _sorted_packb({**base, "timestamp": 1.5})
    )
    no_v = {kk: vv for kk, vv in base.items() if kk != "v"}
    env_case("envelope_int_key", ["E3", "M6"], "bad_type", _sorted_packb({**no_v, 1: 1}))
    env_case("envelope_bin_key", ["E3", "M6"], "bad_type", _sorted_packb({**no_v, b"v": 1}))
    env_case(
        "envelope_duplicate_key",
        ["E3", "M13"],
        "non_canonical",
        b"\x88" + good_env[1:] + b"\xa1v\x01",
    )
    env_case(
        "envelope_kind_str8",
        ["E3", "M13"],
        "non_canonical",
        good_env.replace(b"\xa4post", b"\xd9\x04post"),
    )
    env_case(
        "envelope_seq_int8",
        ["E3", "M13"],
        "non_canonical",
        good_env.replace(b"\xa3seq\x01", b"\xa3seq\xd0\x01"),
    )
    env_case(
        "envelope_invalid_utf8",
        ["E3", "M11"],
        "malformed",
        good_env.replace(b"\xa4post", b"\xa4pos\xff"),
    )
    env_case("envelope_byte_c1", ["E3", "M5"], "malformed", b"\xc1")
    env_case("envelope_cut_short", ["E3", "M4"], "truncated", good_env[:-1])
    env_case(
        "envelope_length_beyond_input",
        ["E3", "M4"],
        "truncated",
        good_env[:-1] + b"\xa5\x01",
    )
    env_case(
        "envelope_too_deep", ["E3", "M3"], "too_deep", _sorted_packb({**base, "kind": ["post"]})
    )
    env_case("envelope_length_over_limit", ["E3", "M10"], "malformed", b"\x81\xa1a\xda\x02\x01")
    env_case("envelope_not_a_map", ["E4"], "bad_envelope", encode([1, 2]))
    env_case(
        "envelope_empty_container_value",
        ["E7"],
        "bad_envelope",
        _sorted_packb({**base, "kind": []}),
    )
    env_case("envelope_unknown_key", ["E5"], "bad_envelope", encode({**base, "zzz": 1}))
    env_case("envelope_missing_key", ["E5"], "bad_envelope", encode(no_v))
    env_case(
        "envelope_kind_33_characters", ["E7"], "bad_envelope", encode({**base, "kind": "k" * 33})
    )
    env_case("envelope_version_true", ["E6"], "bad_version", encode({**base, "v": True}))
    # Precedence: the msgpack rules before the shape rules.
    env_case(
        "envelope_seq_0_not_shortest",
        ["E3", "M13"],
        "non_canonical",
        encode({**base, "seq": 0}).replace(b"\xa3seq\x00", b"\xa3seq\xcc\x00"),
    )
    add(
        "entry_too_large",
        "decode",
        "DecodeError",
        "too_large",
        _signed(k, good_env) + bytes(577 - 64 - len(good_env)),
        rules=["E1"],
    )

    def payload_case(
        name: str, rules: list[str], error: str, reason: str, payload: bytes, kind: str = "post"
    ) -> None:
        entry = _signed(k, encode(_envelope(k, payload, kind=kind)))
        add(name, "payload", error, reason, entry, payload_hex=payload, rules=rules)

    text = encode({"text": "valid payload"})
    payload_case(
        "payload_ext",
        ["P3", "M9"],
        "DecodeError",
        "bad_type",
        msgpack.packb({"text": msgpack.ExtType(5, b"")}),
    )
    payload_case(
        "payload_float", ["P3", "M8"], "DecodeError", "float", msgpack.packb({"text": 0.5})
    )
    payload_case(
        "payload_int_key", ["P3", "M6"], "DecodeError", "bad_type", msgpack.packb({7: "x"})
    )
    payload_case(
        "payload_duplicate_key",
        ["P3", "M13"],
        "DecodeError",
        "non_canonical",
        b"\x82" + text[1:] + text[1:],
    )
    payload_case(
        "payload_unsorted_keys",
        ["P3", "M13"],
        "DecodeError",
        "non_canonical",
        msgpack.packb({"text": "a", "lang": "en"}),
    )
    payload_case(
        "payload_uint16_for_fixint",
        ["P3", "M13"],
        "DecodeError",
        "non_canonical",
        msgpack.packb({"n": 1})[:-1] + b"\xcd\x00\x01",
        kind="x-poll",
    )
    payload_case(
        "payload_str16_for_fixstr",
        ["P3", "M13"],
        "DecodeError",
        "non_canonical",
        b"\x81\xa4text\xda\x00\x01a",
    )
    payload_case(
        "payload_invalid_utf8",
        ["P3", "M11"],
        "DecodeError",
        "malformed",
        b"\x81\xa4text\xa3\xed\xa0\x80",
    )
    payload_case("payload_trailing_byte", ["P3", "M12"], "DecodeError", "malformed", text + b"\x00")
    payload_case(
        "payload_too_deep",
        ["P3", "M3"],
        "DecodeError",
        "too_deep",
        encode({"a": {"b": {"c": {"d": {"e": 1}}}}}),
        kind="x-poll",
    )
    payload_case(
        "payload_65_elements",
        ["P3", "M10"],
        "DecodeError",
        "malformed",
        encode({"a": list(range(65))}),
        kind="x-poll",
    )
    payload_case("payload_cut_short", ["P3", "M4"], "DecodeError", "truncated", text[:-1])
    payload_case("payload_empty", ["P3", "M2"], "DecodeError", "truncated", b"")
    payload_case("payload_not_a_map", ["P4"], "SchemaError", "bad_field", encode(["text"]))
    payload_case(
        "unknown_kind_not_a_map", ["P4"], "SchemaError", "bad_field", encode(1), kind="x-poll"
    )
    payload_case("text_empty", ["P7"], "SchemaError", "too_short", encode({"text": ""}))
    payload_case("text_not_text", ["P8"], "SchemaError", "bad_field", encode({"text": b"hi"}))
    # A nested map (post.reply) follows the same rules as the payload itself.
    rid = hashlib.sha256(b"p2psocial vector thread root").digest()
    payload_case(
        "reply_missing_root",
        ["P6"],
        "SchemaError",
        "missing_field",
        encode({"text": "a", "reply": {"parent": rid}}),
    )
    payload_case(
        "reply_unknown_field",
        ["P5"],
        "SchemaError",
        "unknown_field",
        encode({"text": "a", "reply": {"parent": rid, "root": rid, "x": 1}}),
    )
    payload_case(
        "reply_short_root",
        ["P8"],
        "SchemaError",
        "bad_field",
        encode({"text": "a", "reply": {"parent": rid, "root": rid[:31]}}),
    )
    payload_case(
        "reply_not_a_map",
        ["P8"],
        "SchemaError",
        "bad_field",
        encode({"text": "a", "reply": [rid, rid]}),
    )
    # Precedence inside a map: an unknown field before a missing one.
    payload_case("unknown_before_missing", ["P5"], "SchemaError", "unknown_field",
                 encode({"title": "no text"}))  # fmt: skip


def build_invalid() -> dict[str, Any]:
    import msgpack

    k = key(0)
    good_payload = encode({"text": "valid payload"})
    good_env = encode(_envelope(k, good_payload))
    good = _signed(k, good_env)
    sig = good[:64]
    cases: list[dict[str, Any]] = []

    def add(name: str, stage: str, error: str, reason: str, entry: bytes, **extra: Any) -> None:
        rules = extra.pop("rules", None) or _INVALID_RULES[name]
        rec: dict[str, Any] = {
            "name": name,
            "rules": rules,
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
        "nil",
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
    # A reaction is exactly one emoji (§5.4), checked after its length.
    for name, text in (("react_with_a_word", "hello"), ("react_with_two_emoji", "👍👍")):
        payload = encode({"target": hashlib.sha256(b"p2psocial vector target entry").digest(),
                          "emoji": text})  # fmt: skip
        env = encode(_envelope(k, payload, kind="react"))
        add(name, "payload", "SchemaError", "not_emoji", _signed(k, env), payload_hex=payload,
            rules=["P9"])  # fmt: skip
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
    add_msgpack_cases(add, k, good_payload)
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
    # An entry does not follow itself: the same entry twice is a seq_gap, not a fork.
    add(
        "same_entry_twice",
        "link",
        "ChainError",
        "seq_gap",
        first.to_bytes(),
        prev_entry_hex=first.to_bytes(),
        rules=["C3"],
    )
    rival, _ = create_entry(
        k, seq=1, prev=None, timestamp=T0 + 5, kind="post", payload={"text": "rival"}
    )
    add(
        "same_seq_other_id",
        "link",
        "ForkError",
        "fork",
        rival.to_bytes(),
        prev_entry_hex=first.to_bytes(),
        rules=["C2"],
    )
    stranger, _ = create_entry(
        key(1), seq=2, prev=first.id, timestamp=T0 + 1, kind="post", payload={"text": "next"}
    )
    add(
        "other_author",
        "link",
        "ChainError",
        "wrong_author",
        stranger.to_bytes(),
        prev_entry_hex=first.to_bytes(),
        rules=["C1"],
    )
    return {
        "description": "Invalid entries with the error class and reason a conforming "
        "implementation reports. stage says where the refusal happens: decode "
        "(envelope bytes), verify (strict signature), payload (payload_hex against the "
        "entry), timestamp (with now_ms), link (entry after prev_entry_hex). Earlier "
        "stages pass for each case.",
        "cases": cases,
    }


# ------------------------------------------------------------------ msgpack

#: Limits named in msgpack.json: the generic default and each record's own.
MSGPACK_LIMITS: dict[str, dict[str, int]] = {
    "default": {"max_size": 65536, "max_depth": 8, "max_container_len": 1024,
                "max_str_len": 16384, "max_bin_len": 65536},
    "payload": {"max_size": 16384, "max_depth": 4, "max_container_len": 64,
                "max_str_len": 16384, "max_bin_len": 16384},
    "envelope": {"max_size": 512, "max_depth": 1, "max_container_len": 512,
                 "max_str_len": 512, "max_bin_len": 512},
    "fork_proof": {"max_size": 1168, "max_depth": 1, "max_container_len": 1168,
                   "max_str_len": 1168, "max_bin_len": 1168},
    "small": {"max_size": 16, "max_depth": 2, "max_container_len": 3,
              "max_str_len": 4, "max_bin_len": 4},
}  # fmt: skip


def build_msgpack() -> dict[str, Any]:
    valid = [
        ("int_0", "00"), ("uint8", "cc80"), ("uint64_max", "cfffffffffffffffff"),
        ("uint64_for_2pow63_minus_1", "cf7fffffffffffffff"), ("neg_fixint_min", "e0"),
        ("int8", "d0df"), ("int64_min", "d38000000000000000"), ("true", "c3"),
        ("bin8_empty", "c400"), ("str8", "d920" + "61" * 32), ("array16", "dc0010" + "00" * 16),
        ("map_bytewise_order", "82a2616102a16201"), ("map_utf8_order", "82a3efbfbf01a4f090808002"),
        ("depth_8", "91" * 8 + "00"),
    ]  # fmt: skip
    invalid = [
        # (rule, name, hex, limits, reason)
        ("M1", "over_size_limit", "c40f" + "00" * 15, "small", "too_large"),
        ("M2", "empty", "", "default", "truncated"),
        ("M3", "depth_9", "91" * 9 + "00", "default", "too_deep"),
        ("M3", "empty_array_too_deep", "91919190", "small", "too_deep"),
        ("M4", "uint16_cut_short", "cd01", "default", "truncated"),
        ("M4", "array_cut_short", "92", "default", "truncated"),
        ("M4", "str_longer_than_input", "a3616263"[:6], "default", "truncated"),
        ("M4", "array_longer_than_input", "dc040000", "default", "truncated"),
        ("M5", "byte_c1", "c1", "default", "malformed"),
        ("M6", "int_key", "810101", "default", "bad_type"),
        ("M6", "bin_key", "81c4016101", "default", "bad_type"),
        ("M6", "nil_key", "81c001", "default", "bad_type"),
        ("M6", "array_key", "819001", "default", "bad_type"),
        ("M7", "nil", "c0", "default", "nil"),
        ("M7", "nil_value", "81a161c0", "default", "nil"),
        ("M8", "float32", "ca00000000", "default", "float"),
        ("M8", "float64", "cb3ff0000000000000", "default", "float"),
        ("M9", "fixext1", "d40110", "default", "bad_type"),
        ("M9", "ext8", "c70006", "default", "bad_type"),
        ("M9", "timestamp32", "d6ff5a4af6a5", "default", "bad_type"),
        ("M9", "ext_cut_short", "d4", "default", "bad_type"),
        ("M10", "array_over_limit", "9400000000", "small", "malformed"),
        ("M10", "map_over_limit", "84a16100a16200a16300a16400", "small", "malformed"),
        ("M10", "str_over_limit", "a56162636465", "small", "malformed"),
        ("M10", "bin_over_limit", "c4050102030405", "small", "malformed"),
        ("M10", "array32_of_4_billion", "ddffffffff00", "fork_proof", "malformed"),
        ("M11", "invalid_utf8", "a1ff", "default", "malformed"),
        ("M11", "utf8_surrogate", "a3eda080", "default", "malformed"),
        ("M11", "overlong_utf8", "a2c0af", "default", "malformed"),
        ("M11", "invalid_utf8_key", "81a1ff00", "default", "malformed"),
        ("M12", "trailing_byte", "0000", "default", "malformed"),
        ("M13", "uint8_for_fixint", "cc7f", "default", "non_canonical"),
        ("M13", "uint64_for_uint32", "cf00000000ffffffff", "default", "non_canonical"),
        ("M13", "int8_for_positive", "d07f", "default", "non_canonical"),
        ("M13", "int64_for_2pow63_minus_1", "d37fffffffffffffff", "default", "non_canonical"),
        ("M13", "int16_for_int8", "d1ff80", "default", "non_canonical"),
        ("M13", "str8_for_fixstr", "d90161", "default", "non_canonical"),
        ("M13", "bin16_for_bin8", "c50000", "default", "non_canonical"),
        ("M13", "array16_for_fixarray", "dc0000", "default", "non_canonical"),
        ("M13", "map16_for_fixmap", "de0000", "default", "non_canonical"),
        ("M13", "keys_unsorted", "82a16201a16102", "default", "non_canonical"),
        ("M13", "keys_utf16_order", "82a4f090808002a3efbfbf01", "default", "non_canonical"),
        ("M13", "duplicate_key", "82a16101a16102", "default", "non_canonical"),
        ("M13", "duplicate_key_same_value", "82a16101a16101", "default", "non_canonical"),
        # Precedence: the first rule broken in byte order; M13 only if nothing else.
        ("M7", "unsorted_then_nil", "82a16201a161c0", "default", "nil"),
        ("M12", "not_shortest_then_trailing", "cc0100", "default", "malformed"),
        ("M7", "nil_before_float", "92c0ca00000000", "default", "nil"),
        ("M3", "too_deep_before_nil", "919191c0", "small", "too_deep"),
        ("M10", "length_limit_before_depth", "91949191919100000000", "small", "malformed"),
    ]  # fmt: skip
    return {
        "description": "The canonical msgpack profile (spec/protocol.md §2) on its own: "
        "valid encodings (each the only encoding of its value), and invalid ones with the "
        "limits they are decoded under (by name, from 'limits') and the reason of the "
        "rule of §9 that refuses them. Every invalid case is a DecodeError.",
        "limits": MSGPACK_LIMITS,
        "valid": [
            {"name": name, "hex": hexed, "value": to_json(_decode_plain(bytes.fromhex(hexed)))}
            for name, hexed in valid
        ],
        "invalid": [
            {"name": name, "rules": [rule], "hex": hexed, "limits": limits, "reason": reason}
            for rule, name, hexed, limits, reason in invalid
        ],
    }


# ------------------------------------------------------------------ emoji

#: The rule of spec/protocol.md §5.4, case by case: (name, code points).
EMOJI_ACCEPTED: list[tuple[str, list[int]]] = [
    ("thumbs_up", [0x1F44D]),
    ("heart_vs16", [0x2764, 0xFE0F]),
    ("heart_text_style", [0x2764]),
    ("copyright_sign", [0xA9]),
    ("skin_tone", [0x270C, 0x1F3FD]),
    ("vs16_then_skin_tone", [0x1F44D, 0xFE0F, 0x1F3FB]),
    ("zwj_family", [0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F467, 0x200D, 0x1F466]),
    ("zwj_rainbow_flag", [0x1F3F3, 0xFE0F, 0x200D, 0x1F308]),
    ("zwj_pirate_flag", [0x1F3F4, 0x200D, 0x2620, 0xFE0F]),
    ("zwj_kiss_two_tones",
     [0x1F9D1, 0x1F3FB, 0x200D, 0x2764, 0xFE0F, 0x200D, 0x1F48B, 0x200D, 0x1F9D1, 0x1F3FC]),
    ("flag_fr", [0x1F1EB, 0x1F1F7]),
    ("flag_any_two_indicators", [0x1F1E6, 0x1F1E6]),
    ("keycap_1", [0x31, 0xFE0F, 0x20E3]),
    ("keycap_hash_no_vs16", [0x23, 0x20E3]),
    ("keycap_star", [0x2A, 0xFE0F, 0x20E3]),
    ("tag_flag_england", [0x1F3F4, 0xE0067, 0xE0062, 0xE0065, 0xE006E, 0xE0067, 0xE007F]),
    ("reserved_pictographic", [0x1FC00]),
    ("sixteen_code_points", [0x1F600] + [0x200D, 0x1F600] * 7 + [0xFE0F]),
    ("tag_sequence_of_sixteen", [0x1F3F4] + [0xE0061] * 14 + [0xE007F]),
]  # fmt: skip

#: (name, code points, rule, reason) of texts that are not one emoji.
EMOJI_REFUSED: list[tuple[str, list[int], str, str]] = [
    ("empty", [], "P7", "too_short"),
    ("seventeen_code_points", [0x1F600] + [0x200D, 0x1F600] * 8, "P7", "too_long"),
    ("seventeen_letters", [0x78] * 17, "P7", "too_long"),
    ("word", [ord(c) for c in "hello"], "P9", "not_emoji"),
    ("plus_one", [0x2B, 0x31], "P9", "not_emoji"),
    ("letter", [0x78], "P9", "not_emoji"),
    ("digit_alone", [0x31], "P9", "not_emoji"),
    ("digit_vs16_no_keycap", [0x31, 0xFE0F], "P9", "not_emoji"),
    ("keycap_two_vs16", [0x31, 0xFE0F, 0xFE0F, 0x20E3], "P9", "not_emoji"),
    ("keycap_alone", [0x20E3], "P9", "not_emoji"),
    ("two_emoji", [0x1F44D, 0x1F44D], "P9", "not_emoji"),
    ("emoji_then_text", [0x1F44D, 0x21], "P9", "not_emoji"),
    ("text_then_emoji", [0x21, 0x1F44D], "P9", "not_emoji"),
    ("lone_skin_tone", [0x1F3FB], "P9", "not_emoji"),
    ("two_skin_tones", [0x1F44D, 0x1F3FB, 0x1F3FC], "P9", "not_emoji"),
    ("skin_tone_then_vs16", [0x1F44D, 0x1F3FB, 0xFE0F], "P9", "not_emoji"),
    ("lone_zwj", [0x200D], "P9", "not_emoji"),
    ("leading_zwj", [0x200D, 0x1F44D], "P9", "not_emoji"),
    ("trailing_zwj", [0x1F44D, 0x200D], "P9", "not_emoji"),
    ("double_zwj", [0x1F44D, 0x200D, 0x200D, 0x1F44D], "P9", "not_emoji"),
    ("zwj_to_text", [0x1F44D, 0x200D, 0x61], "P9", "not_emoji"),
    ("lone_vs16", [0xFE0F], "P9", "not_emoji"),
    ("double_vs16", [0x2764, 0xFE0F, 0xFE0F], "P9", "not_emoji"),
    ("vs15_text_style", [0x2764, 0xFE0E], "P9", "not_emoji"),
    ("lone_regional_indicator", [0x1F1EB], "P9", "not_emoji"),
    ("three_regional_indicators", [0x1F1EB, 0x1F1F7, 0x1F1EA], "P9", "not_emoji"),
    ("two_flags", [0x1F1EB, 0x1F1F7, 0x1F1E9, 0x1F1EA], "P9", "not_emoji"),
    ("combining_mark", [0x1F44D, 0x301], "P9", "not_emoji"),
    ("combining_enclosing_circle", [0x1F44D, 0x20DD], "P9", "not_emoji"),
    ("tag_flag_without_cancel", [0x1F3F4, 0xE0067, 0xE0062], "P9", "not_emoji"),
    ("tag_flag_cancel_only", [0x1F3F4, 0xE007F], "P9", "not_emoji"),
    ("tags_on_other_base", [0x1F600, 0xE0067, 0xE007F], "P9", "not_emoji"),
    ("lone_cancel_tag", [0xE007F], "P9", "not_emoji"),
    ("space_after_emoji", [0x1F44D, 0x20], "P9", "not_emoji"),
    ("regional_indicator_then_emoji", [0x1F1EB, 0x1F44D], "P9", "not_emoji"),
]  # fmt: skip

#: The ``target`` of every emoji vector's payload.
EMOJI_TARGET = bytes([1]) * 32


def build_emoji() -> dict[str, Any]:
    from p2psocial.protocol.errors import SchemaError
    from p2psocial.protocol.kinds import validate_payload

    def record(name: str, cps: list[int]) -> dict[str, Any]:
        text = "".join(map(chr, cps))
        payload = encode({"target": EMOJI_TARGET, "emoji": text})
        return {
            "name": name,
            "code_points": [f"{c:04X}" for c in cps],
            "emoji": text,
            "payload_hex": payload.hex(),
        }

    accepted = []
    for name, cps in EMOJI_ACCEPTED:
        validate_payload("react", {"target": EMOJI_TARGET, "emoji": "".join(map(chr, cps))})
        accepted.append(record(name, cps))
    refused = []
    for name, cps, rule, reason in EMOJI_REFUSED:
        try:
            validate_payload("react", {"target": EMOJI_TARGET, "emoji": "".join(map(chr, cps))})
        except SchemaError as exc:
            # The generator states the verdict; this implementation must agree.
            assert exc.reason == reason, (name, exc.reason, reason)
        else:
            raise AssertionError(f"emoji vector {name} is accepted")
        refused.append(
            {**record(name, cps), "rules": [rule], "error": "SchemaError", "reason": reason}
        )
    return {
        "description": "The reaction rule of spec/protocol.md §5.4 on its own. Each case "
        "gives the emoji text, its code points (hex) and the canonical payload of a react "
        "entry carrying it (target: 32 bytes of 0x01). 'accepted' payloads validate; "
        "'refused' ones are refused with the stated error, rule of §9 and reason.",
        "accepted": accepted,
        "refused": refused,
    }


def _noise_key(role: str, what: str) -> bytes:
    """A fixed X25519 private key for the link vector."""
    return hashlib.sha256(f"p2psocial noise link vector {role} {what}".encode()).digest()


def build_noise_link() -> dict[str, Any]:
    """spec/sync.md §10: a full link from fixed keys, byte for byte on the wire."""
    sides: dict[str, dict[str, Any]] = {}
    links: dict[str, SecureLink] = {}
    for index, role in ((0, "dialler"), (1, "responder")):
        node = key(index)
        static, ephemeral = _noise_key(role, "static"), _noise_key(role, "ephemeral")
        static_public = public_key(static)
        links[role] = SecureLink(
            initiator=role == "dialler",
            node_key=node,
            static_private=static,
            ephemeral_private=ephemeral,
        )
        sides[role] = {
            "node_seed": seed(index).hex(),
            "node_public_key": node.public_key.hex(),
            "node_id": node_id_from_public_key(node.public_key).hex(),
            "static_private": static.hex(),
            "static_public": static_public.hex(),
            "ephemeral_private": ephemeral.hex(),
            "ephemeral_public": public_key(ephemeral).hex(),
            "signed_bytes": static_signed_bytes(static_public).hex(),
            "payload": encode_link_payload(node, static_public).hex(),
        }
    dialler, responder = links["dialler"], links["responder"]
    transcript = []

    def move(sender: str, data: bytes, note: str) -> None:
        transcript.append({"from": sender, "bytes": data.hex(), "note": note})
        receiver = responder if sender == "dialler" else dialler
        assert receiver.receive_data(data) == [] or receiver.established

    move("dialler", dialler.data_to_send(), "preamble, then u16 length || message 1 (-> e)")
    move(
        "responder",
        responder.data_to_send(),
        "preamble, then u16 length || message 2 (<- e, ee, s, es; payload)",
    )
    move("dialler", dialler.data_to_send(), "u16 length || message 3 (-> s, se; payload)")
    assert dialler.established and responder.established
    assert dialler.handshake_hash == responder.handshake_hash
    bodies = [
        ("dialler", encode_message(Hello(key(0).public_key, bytes(range(32)), 7000))),
        ("responder", encode_message(Hello(key(1).public_key, bytes(range(32, 64)), 0))),
        ("dialler", encode_message(Bye("vector"))),
    ]
    transport = []
    for sender, body in bodies:
        send, recv = (dialler, responder) if sender == "dialler" else (responder, dialler)
        wire = send.send_frame(body)
        assert recv.receive_data(wire) == [body]
        transport.append({"from": sender, "frame_body": body.hex(), "bytes": wire.hex()})
    return {
        "description": "spec/sync.md §10: one encrypted link between fixed keys. Node keys "
        "are keys.json's seeds 0 (dialler) and 1 (responder); static and ephemeral X25519 "
        "keys are fixed. 'transcript' is every byte of the handshake on the TCP stream, in "
        "order; 'transport' gives frame bodies (§2) and the bytes that carry them. A "
        "compatible implementation given the same keys produces exactly these bytes.",
        "protocol_name": PROTOCOL_NAME.decode(),
        "preamble": PREAMBLE.hex(),
        "prologue": (LINK_PROLOGUE_TAG + PREAMBLE).hex(),
        "static_tag": NOISE_STATIC_TAG.hex(),
        "rekey_interval": REKEY_INTERVAL,
        "dialler": sides["dialler"],
        "responder": sides["responder"],
        "transcript": transcript,
        "handshake_hash": (dialler.handshake_hash or b"").hex(),
        "transport": transport,
    }


_INVITE_TAG = b"p2psocial/invite/v1\x00"
_INVITE_CHECK_TAG = b"p2psocial/invite-checksum/v1\x00"


def _invite_text(body: bytes) -> str:
    """spec/invite.md §2, written here from the spec rather than with the library."""
    data = body + hashlib.sha256(_INVITE_CHECK_TAG + body).digest()[:5]
    return "p2psinv1" + "".join(_BECH32_ALPHABET[g] for g in _groups(data))


def _inv_rec(typ: int, value: bytes) -> bytes:
    return bytes([typ, len(value)]) + value


def _inv_addr(ip: bytes, port: int) -> bytes:
    return ip + port.to_bytes(2, "big")


def _inv_signed(k: SigningKey, records: bytes, *, version: int = 1) -> bytes:
    unsigned = bytes([version]) + k.public_key + records
    return unsigned + k.sign(_INVITE_TAG + unsigned)


def build_invite() -> dict[str, Any]:
    """spec/invite.md: invites that decode (with their fields) and invites refused (with why)."""
    from p2psocial.protocol.invite import make_invite

    alice = key(0)
    lo, lan = bytes([127, 0, 0, 1]), bytes([192, 168, 1, 20])
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    recs = [key(1).public_key, key(2).public_key]
    expires = T0 + 7 * 86_400_000
    cases = [
        ("minimal", _inv_rec(1, _inv_addr(lo, 4001)) + _inv_rec(2, _inv_addr(lo, 4001)), None),
        (
            "full",
            _inv_rec(1, _inv_addr(lan, 4001))
            + _inv_rec(1, _inv_addr(v6, 4001))
            + _inv_rec(2, _inv_addr(lan, 4002))
            + _inv_rec(3, expires.to_bytes(8, "big"))
            + b"".join(_inv_rec(4, r) for r in recs),
            expires,
        ),
        (
            "relay_record_skipped",
            _inv_rec(1, _inv_addr(lo, 4001)) + _inv_rec(0x80, b"\x01relay format 1, unknown here"),
            None,
        ),
        ("no_address", b"", None),
    ]
    valid = []
    for name, records, exp in cases:
        body = _inv_signed(alice, records)
        text = _invite_text(body)
        peers = [(lan, 4001), (v6, 4001)] if name == "full" else [(lo, 4001)]
        peers = [] if name == "no_address" else peers
        dhts = {"full": [(lan, 4002)], "minimal": [(lo, 4001)]}.get(name, [])
        if name != "relay_record_skipped":  # the library writes no relay records yet
            made = make_invite(
                alice,
                peer_addrs=[(_ip_text(ip), p) for ip, p in peers],
                dht_addrs=[(_ip_text(ip), p) for ip, p in dhts],
                expires_ms=exp,
                recommended=recs if name == "full" else [],
            )
            assert made == text, name
        valid.append(
            {
                "name": name,
                "text": text,
                "now_ms": T0,
                "identity": identity_to_text(alice.public_key),
                "peer": [_addr_text(ip, p) for ip, p in peers],
                "dht": [_addr_text(ip, p) for ip, p in dhts],
                "expires_ms": exp,
                "recommended": [identity_to_text(r) for r in recs] if name == "full" else [],
                "body": body.hex(),
                "signed": (_INVITE_TAG + body[:-64]).hex(),
            }
        )
    one = _inv_rec(1, _inv_addr(lo, 4001))
    good = _invite_text(_inv_signed(alice, one))
    forged = bytearray(_inv_signed(alice, one))
    forged[40] ^= 1  # the port: a fresh checksum does not help a forger
    invalid = [
        (
            "expired",
            _invite_text(_inv_signed(alice, one + _inv_rec(3, T0.to_bytes(8, "big")))),
            "expired",
        ),
        ("cut_off", good[:-4], "bad_checksum"),
        ("mistyped", good[:20] + ("q" if good[20] != "q" else "p") + good[21:], "bad_checksum"),
        ("forged_port", _invite_text(bytes(forged)), "bad_signature"),
        (
            "signed_by_another",
            _invite_text(
                _inv_signed(key(1), b"")[:1] + alice.public_key + _inv_signed(key(1), b"")[33:]
            ),
            "bad_signature",
        ),
        ("version_2", _invite_text(_inv_signed(alice, one, version=2)), "unsupported_version"),
        (
            "unknown_critical_record",
            _invite_text(_inv_signed(alice, one + _inv_rec(0x7F, b""))),
            "bad_invite",
        ),
        (
            "records_out_of_order",
            _invite_text(_inv_signed(alice, _inv_rec(2, _inv_addr(lo, 1)) + one)),
            "bad_invite",
        ),
        ("wrong_prefix", "p2ps1" + good[8:], "bad_invite"),
    ]
    return {
        "description": "spec/invite.md: 'valid' invites decode to the fields given (checked at "
        "now_ms); 'invalid' ones are refused with the reason given. Alice is keys.json's seed "
        "0; the recommended identities are seeds 1 and 2. 'body' is version || identity || "
        "records || signature; 'signed' is the message the signature covers.",
        "prefix": "p2psinv1",
        "signature_tag": _INVITE_TAG.hex(),
        "checksum_tag": _INVITE_CHECK_TAG.hex(),
        "valid": valid,
        "invalid": [{"name": n, "text": t, "now_ms": T0, "reason": r} for n, t, r in invalid],
    }


def _ip_text(ip: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(ip))


def _addr_text(ip: bytes, port: int) -> str:
    return f"[{_ip_text(ip)}]:{port}" if len(ip) == 16 else f"{_ip_text(ip)}:{port}"


_LAN_TAG = b"p2ps-lan"


def _lan_datagram(node_id: bytes, dht_port: int, link_port: int, *, version: int = 1) -> bytes:
    """spec/dht.md §12.2, written here from the spec rather than with the library."""
    return (
        _LAN_TAG
        + bytes((version, 0))
        + node_id
        + dht_port.to_bytes(2, "big")
        + (link_port.to_bytes(2, "big"))
    )


def build_lan() -> dict[str, Any]:
    """spec/dht.md §12: LAN announcements that decode (with their fields) and ones refused."""
    from p2psocial.protocol.lan import LanAnnounce, encode_lan_announce

    valid = []
    for name, n, dht_port, link_port in [
        ("typical", 1, 51_413, 51_414),
        ("no_link_listener", 2, 7_000, 0),
        ("largest_ports", 3, 65_535, 65_535),
    ]:
        node_id = node_id_from_public_key(key(n).public_key)
        datagram = _lan_datagram(node_id, dht_port, link_port)
        assert encode_lan_announce(LanAnnounce(node_id, dht_port, link_port)) == datagram
        valid.append(
            {
                "name": name,
                "datagram": datagram.hex(),
                "node_id": node_id.hex(),
                "dht_port": dht_port,
                "link_port": link_port,
            }
        )
    good = bytes.fromhex(valid[0]["datagram"])
    invalid = [
        ("empty", b"", "truncated"),
        ("tag_only", _LAN_TAG, "truncated"),
        ("over_64_bytes", good + bytes(31), "too_large"),
        ("wrong_tag", b"p2ps-dht" + good[8:], "bad_tag"),
        ("version_2", good[:8] + b"\x02" + good[9:], "unsupported_version"),
        ("trailing_byte", good + b"\x00", "bad_length"),
        ("short", good[:33], "bad_length"),
        ("dht_port_0", good[:30] + b"\x00\x00" + good[32:], "bad_port"),
    ]
    return {
        "description": "spec/dht.md §12: 'valid' datagrams decode to the fields given; "
        "'invalid' ones are refused with the reason given (the first check of §12.2 that fails).",
        "valid": valid,
        "invalid": [
            {"name": name, "datagram": data.hex(), "reason": reason}
            for name, data, reason in invalid
        ],
    }


def build_all() -> dict[str, Any]:
    """Every vector file's content, by file name."""
    return {
        "keys.json": build_keys(),
        "entries.json": build_entries(),
        "feed.json": build_feed(),
        "fork.json": build_fork(),
        "invalid.json": build_invalid(),
        "msgpack.json": build_msgpack(),
        "emoji.json": build_emoji(),
        "noise_link.json": build_noise_link(),
        "invite.json": build_invite(),
        "lan.json": build_lan(),
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

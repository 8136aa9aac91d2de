"""spec/vectors: no drift from the generator, and every vector checked by the decoders.

The drift test re-runs spec/generate_vectors.py in memory and compares with the
committed files. The other tests read only the JSON (as another implementation
would) and check it with our decoders plus independent recomputations (plain
msgpack and cryptography, not our encoder or verifier) where that is possible.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from p2psocial.protocol import errors
from p2psocial.protocol.encoding import Limits, decode_untrusted
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    Entry,
    check_timestamp,
    decode_entry_untrusted,
    decode_payload_untrusted,
)
from p2psocial.protocol.feeds import check_link, decode_fork_proof_untrusted, verify_run
from p2psocial.protocol.identity import (
    SigningKey,
    check_public_key,
    identity_from_text,
    identity_to_text,
    node_id_from_public_key,
    verify_strict,
)
from tests.protocol import ed25519_ref

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "spec" / "vectors"
FILES = [
    "keys.json",
    "entries.json",
    "feed.json",
    "fork.json",
    "invalid.json",
    "msgpack.json",
    "emoji.json",
    "noise_link.json",
    "invite.json",
    "lan.json",
]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_vectors", REPO / "spec" / "generate_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------ drift


def test_vector_files_are_exactly_the_generated_ones() -> None:
    assert sorted(p.name for p in VECTORS.glob("*.json")) == sorted(FILES)
    assert sorted(GEN.build_all()) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_no_drift(name: str) -> None:
    regenerated = GEN.render(GEN.build_all()[name])
    committed = (VECTORS / name).read_text(encoding="utf-8")
    assert committed == regenerated, (
        f"spec/vectors/{name} differs from what spec/generate_vectors.py produces: a protocol "
        "change broke compatibility, or the vectors need regenerating deliberately"
    )


def test_generation_is_deterministic() -> None:
    assert GEN.render(GEN.build_all()) == GEN.render(GEN.build_all())


# ------------------------------------------------------------ keys


@pytest.mark.parametrize("index", range(4))
def test_keys(index: int) -> None:
    rec = load("keys.json")["keys"][index]
    seed = bytes.fromhex(rec["seed"])
    assert seed == hashlib.sha256(f"p2psocial test vector seed {index}".encode()).digest()
    pk = bytes.fromhex(rec["public_key"])
    assert SigningKey.from_seed(seed).public_key == pk
    assert identity_to_text(pk) == rec["text"]
    assert identity_from_text(rec["text"]) == pk
    assert rec["text"].startswith("p2ps1")
    assert node_id_from_public_key(pk).hex() == rec["node_id"]
    assert hashlib.sha256(pk).digest()[:20].hex() == rec["node_id"]


def _invalid_key_names() -> list[str]:
    return [k["name"] for k in load("keys.json")["invalid_keys"]]


def test_invalid_keys_cover_every_class() -> None:
    recs = load("keys.json")["invalid_keys"]
    classes = {"off_curve": "invalid_key", "small_order": "small_order_key"}
    classes["non_canonical"] = "non_canonical_key"
    assert {r["class"] for r in recs} == set(classes)
    assert all(classes[r["class"]] == r["reason"] for r in recs)
    small = {r["public_key"] for r in recs if r["class"] == "small_order"}
    assert len(small) == 8  # each point of small order


@pytest.mark.parametrize("name", _invalid_key_names())
def test_invalid_key_vectors(name: str) -> None:
    data = load("keys.json")
    rec = next(r for r in data["invalid_keys"] if r["name"] == name)
    pk = bytes.fromhex(rec["public_key"])
    # Independent: RFC 8032 decoding and [8]P by curve arithmetic.
    assert ed25519_ref.expected_reason(pk) == rec["reason"]
    # Ours: the check, the text form and strict verification all refuse it.
    assert identity_to_text(pk) == rec["text"]
    with pytest.raises(errors.DecodeError) as text_info:
        identity_from_text(rec["text"])
    assert text_info.value.reason == rec["reason"]
    with pytest.raises(errors.InvalidSignature) as info:
        check_public_key(pk)
    assert info.value.reason == rec["reason"]
    sig, msg = bytes.fromhex(data["verify_signature"]), bytes.fromhex(data["verify_message"])
    # The signature is valid for key 0, so only the key rule can refuse it.
    key0 = bytes.fromhex(data["keys"][0]["public_key"])
    Ed25519PublicKey.from_public_bytes(key0).verify(sig, msg)
    with pytest.raises(errors.InvalidSignature) as info:
        verify_strict(pk, sig, msg)
    assert info.value.reason == rec["reason"]


# ------------------------------------------------------------ valid entries


def check_entry_record(rec: dict[str, Any]) -> Entry:
    """Check one valid entry record every way we can; return the decoded entry."""
    data = bytes.fromhex(rec["entry_hex"])
    envelope = bytes.fromhex(rec["envelope_hex"])
    signature = bytes.fromhex(rec["signature"])
    payload = bytes.fromhex(rec["payload_hex"])
    author = bytes.fromhex(rec["author"])
    # Byte layout: signature || envelope; id = SHA-256 of both.
    assert data == signature + envelope
    assert hashlib.sha256(data).hexdigest() == rec["id"]
    assert bytes.fromhex(rec["signing_input_hex"]) == ENTRY_TAG + envelope
    # Independent: plain msgpack of the sorted envelope map gives the same bytes.
    env: dict[str, Any] = {
        "author": author,
        "kind": rec["kind"],
        "payload_hash": bytes.fromhex(rec["payload_hash"]),
        "payload_size": rec["payload_size"],
        "seq": rec["seq"],
        "timestamp": rec["timestamp"],
        "v": 1,
    }
    if rec["prev"] is not None:
        env["prev"] = bytes.fromhex(rec["prev"])
    assert msgpack.packb(dict(sorted(env.items())), use_bin_type=True) == envelope
    # Independent: cryptography verifies the signature over tag || envelope.
    Ed25519PublicKey.from_public_bytes(author).verify(signature, ENTRY_TAG + envelope)
    assert hashlib.sha256(payload).hexdigest() == rec["payload_hash"]
    assert len(payload) == rec["payload_size"]
    value = GEN.from_json(rec["payload"])
    assert msgpack.packb(_sorted(value), use_bin_type=True) == payload
    # Ours.
    entry = decode_entry_untrusted(data)
    entry.verify()
    assert (entry.author, entry.seq, entry.timestamp, entry.kind) == (
        author,
        rec["seq"],
        rec["timestamp"],
        rec["kind"],
    )
    assert entry.id.hex() == rec["id"]
    assert decode_payload_untrusted(entry, payload) == value
    return entry


def _sorted(v: Any) -> Any:
    if type(v) is dict:
        return {k: _sorted(v[k]) for k in sorted(v)}
    if type(v) is list:
        return [_sorted(x) for x in v]
    return v


def test_entries_cover_every_kind() -> None:
    from p2psocial.protocol.kinds import KINDS

    kinds = {rec["kind"] for rec in load("entries.json")["entries"]}
    assert kinds >= set(KINDS)
    assert kinds - set(KINDS), "an unknown kind is included too"


@pytest.mark.parametrize("index", range(11))
def test_entry_vectors(index: int) -> None:
    recs = load("entries.json")["entries"]
    assert len(recs) == 11
    entry = check_entry_record(recs[index])
    if index:
        check_link(decode_entry_untrusted(bytes.fromhex(recs[index - 1]["entry_hex"])), entry)


def test_feed_vector() -> None:
    recs = load("feed.json")["entries"]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    run = [check_entry_record(r) for r in recs]
    for a, b in itertools.pairwise(run):
        assert b.prev == a.id
    verify_run(run)
    for i in range(1, 5):
        verify_run(run[i:], anchor=run[i - 1])


def test_fork_vector() -> None:
    rec = load("fork.json")
    first = check_entry_record(rec["first"])
    second = check_entry_record(rec["second"])
    assert first.id < second.id
    assert first.seq == second.seq == rec["seq"]
    assert first.author.hex() == second.author.hex() == rec["author"]
    proof_bytes = bytes.fromhex(rec["proof_hex"])
    assert proof_bytes == msgpack.packb([first.to_bytes(), second.to_bytes()], use_bin_type=True)
    proof = decode_fork_proof_untrusted(proof_bytes)
    assert (proof.first, proof.second) == (first, second)


# ------------------------------------------------------------ invalid entries


def _invalid_names() -> list[str]:
    return [c["name"] for c in load("invalid.json")["cases"]]


@pytest.mark.parametrize("name", _invalid_names())
def test_invalid_vectors(name: str) -> None:
    case = next(c for c in load("invalid.json")["cases"] if c["name"] == name)
    expected: type[Exception] = getattr(errors, case["error"])
    data = bytes.fromhex(case["entry_hex"])
    stage = case["stage"]
    stages = ["decode", "verify", "payload", "timestamp", "link"]
    assert stage in stages
    entry: Any = None

    def run(step: str) -> None:
        nonlocal entry
        if step == "decode":
            entry = decode_entry_untrusted(data)
        elif step == "verify":
            entry.verify()
        elif step == "payload":
            if "payload_hex" in case:
                decode_payload_untrusted(entry, bytes.fromhex(case["payload_hex"]))
        elif step == "timestamp":
            check_timestamp(entry, case.get("now_ms", entry.timestamp))
        elif step == "link" and "prev_entry_hex" in case:
            prev = decode_entry_untrusted(bytes.fromhex(case["prev_entry_hex"]))
            prev.verify()
            check_link(prev, entry)

    # Every stage before the stated one passes ...
    for step in stages[: stages.index(stage)]:
        run(step)
    # ... and the stated one refuses with the stated class and reason.
    with pytest.raises(expected) as info:
        run(stage)
    assert info.value.reason == case["reason"]  # type: ignore[attr-defined]


# ------------------------------------------------------------ the other refusals


def test_empty_run_and_runs() -> None:
    names = [r["name"] for r in load("feed.json")["runs"]]
    assert "empty_run" in names and "empty_run_anchored" in names


@pytest.mark.parametrize("name", [r["name"] for r in load("feed.json")["runs"]])
def test_run_vectors(name: str) -> None:
    case = next(r for r in load("feed.json")["runs"] if r["name"] == name)
    run = [decode_entry_untrusted(bytes.fromhex(h)) for h in case["entries_hex"]]
    anchor = None
    if case["anchor_hex"] is not None:
        anchor = decode_entry_untrusted(bytes.fromhex(case["anchor_hex"]))
        anchor.verify()
    if case["verdict"] == "authentic":
        verify_run(run, anchor=anchor)
        return
    with pytest.raises(getattr(errors, case["error"])) as info:
        verify_run(run, anchor=anchor)
    assert info.value.reason == case["reason"]


@pytest.mark.parametrize("name", [c["name"] for c in load("fork.json")["invalid_proofs"]])
def test_invalid_fork_proof_vectors(name: str) -> None:
    case = next(c for c in load("fork.json")["invalid_proofs"] if c["name"] == name)
    expected: type[Exception] = getattr(errors, case["error"])
    with pytest.raises(expected) as info:
        decode_fork_proof_untrusted(bytes.fromhex(case["proof_hex"]))
    assert info.value.reason == case["reason"]  # type: ignore[attr-defined]
    assert type(info.value) is expected


@pytest.mark.parametrize("name", [c["name"] for c in load("keys.json")["invalid_texts"]])
def test_invalid_text_vectors(name: str) -> None:
    case = next(c for c in load("keys.json")["invalid_texts"] if c["name"] == name)
    with pytest.raises(errors.DecodeError) as info:
        identity_from_text(case["text"])
    assert info.value.reason == case["reason"]


@pytest.mark.parametrize("name", [c["name"] for c in load("keys.json")["invalid_signatures"]])
def test_invalid_signature_vectors(name: str) -> None:
    case = next(c for c in load("keys.json")["invalid_signatures"] if c["name"] == name)
    with pytest.raises(errors.InvalidSignature) as info:
        verify_strict(
            bytes.fromhex(case["public_key"]),
            bytes.fromhex(case["signature"]),
            bytes.fromhex(case["message"]),
        )
    assert info.value.reason == case["reason"]


def _limits(name: str) -> Limits:
    return Limits(**load("msgpack.json")["limits"][name])


@pytest.mark.parametrize("name", [c["name"] for c in load("msgpack.json")["valid"]])
def test_valid_msgpack_vectors(name: str) -> None:
    case = next(c for c in load("msgpack.json")["valid"] if c["name"] == name)
    data = bytes.fromhex(case["hex"])
    value = decode_untrusted(data)
    assert value == GEN.from_json(case["value"])
    # Independent: plain msgpack packs the value to the same bytes.
    assert msgpack.packb(value, use_bin_type=True) == data


@pytest.mark.parametrize("name", [c["name"] for c in load("msgpack.json")["invalid"]])
def test_invalid_msgpack_vectors(name: str) -> None:
    case = next(c for c in load("msgpack.json")["invalid"] if c["name"] == name)
    with pytest.raises(errors.DecodeError) as info:
        decode_untrusted(bytes.fromhex(case["hex"]), _limits(case["limits"]))
    assert info.value.reason == case["reason"]


# ------------------------------------------------------------ the emoji rule (§5.4)


def _emoji_case(section: str, name: str) -> dict[str, Any]:
    return next(c for c in load("emoji.json")[section] if c["name"] == name)


def _react_entry(payload: bytes) -> Entry:
    # An unsigned entry that commits to the payload: decode_payload_untrusted
    # checks the binding and the schema, not the signature.
    digest = hashlib.sha256(payload).digest()
    author = SigningKey.from_seed(bytes(32)).public_key
    return Entry(author, 1, None, 0, "react", digest, len(payload), bytes(64), b"", digest)


def _check_emoji_record(case: dict[str, Any]) -> bytes:
    text = "".join(chr(int(c, 16)) for c in case["code_points"])
    assert case["emoji"] == text
    payload = bytes.fromhex(case["payload_hex"])
    # The payload is independently re-encoded with plain msgpack.
    assert payload == msgpack.packb({"emoji": text, "target": bytes([1]) * 32}, use_bin_type=True)
    return payload


@pytest.mark.parametrize("name", [c["name"] for c in load("emoji.json")["accepted"]])
def test_accepted_emoji_vectors(name: str) -> None:
    payload = _check_emoji_record(_emoji_case("accepted", name))
    value = decode_payload_untrusted(_react_entry(payload), payload)
    assert value["emoji"] == _emoji_case("accepted", name)["emoji"]


@pytest.mark.parametrize("name", [c["name"] for c in load("emoji.json")["refused"]])
def test_refused_emoji_vectors(name: str) -> None:
    case = _emoji_case("refused", name)
    payload = _check_emoji_record(case)
    with pytest.raises(errors.SchemaError) as info:
        decode_payload_untrusted(_react_entry(payload), payload)
    assert info.value.reason == case["reason"]


# ------------------------------------------------------------ the reason table


def spec_rules() -> dict[str, tuple[str, set[str]]]:
    """Rule id -> (error class, reasons) from the table in spec/protocol.md §9."""
    text = (REPO / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("## 9. Reason codes") :]
    rules: dict[str, tuple[str, set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"[A-Z]\d+", cells[0]):
            reasons = set(re.findall(r"`([a-z_]+)`", cells[3]))
            rules[cells[0]] = (cells[2], reasons)
    return rules


def vector_rules() -> dict[str, list[tuple[str, str]]]:
    """Rule id -> [(vector name, reason)] over every published refusal vector."""
    found: dict[str, list[tuple[str, str]]] = {}
    keys = load("keys.json")
    sections = [
        keys["invalid_keys"],
        keys["invalid_texts"],
        keys["invalid_signatures"],
        load("invalid.json")["cases"],
        load("fork.json")["invalid_proofs"],
        load("feed.json")["runs"],
        load("msgpack.json")["invalid"],
        load("emoji.json")["refused"],
    ]
    for section in sections:
        for case in section:
            for rule in case["rules"]:
                found.setdefault(rule, []).append((case["name"], case.get("reason", "")))
    return found


def test_every_rule_of_the_table_has_a_vector() -> None:
    rules = spec_rules()
    assert len(rules) > 50
    found = vector_rules()
    assert sorted(set(rules) - set(found)) == [], "rules without a vector"
    assert sorted(set(found) - set(rules)) == [], "vectors naming no rule of the table"


def test_vector_reasons_are_those_of_their_rules() -> None:
    rules = spec_rules()
    for rule, cases in vector_rules().items():
        _, reasons = rules[rule]
        if "*" in reasons or not reasons:
            continue
        for name, reason in cases:
            # A vector names every rule it exercises (E3 and M7, say); its
            # reason must be that of one of them.
            assert reason in reasons or any(
                reason in rules[r][1] or not rules[r][1]
                for r in next(c for c in _all_cases() if c["name"] == name)["rules"]
            ), (rule, name, reason)


def _all_cases() -> list[dict[str, Any]]:
    keys = load("keys.json")
    return [
        *keys["invalid_keys"],
        *keys["invalid_texts"],
        *keys["invalid_signatures"],
        *load("invalid.json")["cases"],
        *load("fork.json")["invalid_proofs"],
        *load("feed.json")["runs"],
        *load("msgpack.json")["invalid"],
        *load("emoji.json")["refused"],
    ]

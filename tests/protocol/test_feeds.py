"""Feeds: links, batch verification of runs, forks and fork proofs."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.entries import ENTRY_TAG, Entry, decode_entry_untrusted
from p2psocial.protocol.errors import ChainError, DecodeError, ForkError, InvalidSignature
from p2psocial.protocol.feeds import (
    ForkProof,
    check_link,
    decode_fork_proof_untrusted,
    detect_fork,
    verify_run,
)
from p2psocial.protocol.identity import SigningKey

KEY = SigningKey.from_seed(b"\x44" * 32)
MALLORY = SigningKey.from_seed(b"\x55" * 32)
T0 = 1_700_000_000_000
_L = 2**252 + 27742317777372353535851937790883648493

SigMangle = Callable[[bytes], bytes]


def raw_entry(
    key: SigningKey,
    seq: int,
    prev: bytes | None,
    *,
    text: str = "",
    author: bytes | None = None,
    mangle: SigMangle | None = None,
) -> Entry:
    """Build an entry by hand, optionally with a mangled (but committed-to) signature."""
    payload = encode({"text": text or f"entry {seq}"})
    env: dict[str, Any] = {
        "author": author or key.public_key,
        "kind": "post",
        "payload_hash": hashlib.sha256(payload).digest(),
        "payload_size": len(payload),
        "seq": seq,
        "timestamp": T0 + seq,
        "v": 1,
    }
    if prev is not None:
        env["prev"] = prev
    envelope = encode(env)
    sig = key.sign(ENTRY_TAG + envelope)
    if mangle is not None:
        sig = mangle(sig)
    return decode_entry_untrusted(sig + envelope)


def chain(
    n: int,
    *,
    start: int = 1,
    key: SigningKey = KEY,
    anchor: Entry | None = None,
    mangles: dict[int, SigMangle] | None = None,
) -> list[Entry]:
    """n linked entries from seq ``start``; ``mangles`` maps a run index to a signature change."""
    out: list[Entry] = []
    prev = (
        anchor.id if anchor is not None else (None if start == 1 else hashlib.sha256(b"x").digest())
    )
    for i in range(n):
        e = raw_entry(key, start + i, prev, mangle=(mangles or {}).get(i))
        out.append(e)
        prev = e.id
    return out


def s_plus_l(sig: bytes) -> bytes:
    return sig[:32] + (int.from_bytes(sig[32:], "little") + _L).to_bytes(32, "little")


def small_order_r(sig: bytes) -> bytes:
    return bytes([1]) + bytes(31) + sig[32:]


def non_canonical_r(sig: bytes) -> bytes:
    return b"\xee" + b"\xff" * 30 + b"\x7f" + sig[32:]  # y = 2**255 - 18 >= p


def wrong_sig(sig: bytes) -> bytes:
    return bytes([sig[0] ^ 0x01]) + sig[1:]


MALFORMED = {
    "s_out_of_range": s_plus_l,
    "small_order_r": small_order_r,
    "non_canonical_r": non_canonical_r,
}


# ------------------------------------------------------------ check_link


def test_check_link_ok() -> None:
    a, b = chain(2)
    check_link(a, b)


def test_check_link_errors() -> None:
    a, b, c = chain(3)
    other = chain(2, key=MALLORY)
    cases: list[tuple[str, Entry, Entry, str, type[Exception]]] = [
        ("wrong_author", a, other[1], "wrong_author", ChainError),
        ("seq_gap", a, c, "seq_gap", ChainError),
        ("backwards", b, a, "seq_gap", ChainError),
        ("same_entry", a, a, "seq_gap", ChainError),
        ("prev_mismatch", b, raw_entry(KEY, 3, a.id), "prev_mismatch", ChainError),
        ("fork", b, raw_entry(KEY, 2, a.id, text="other"), "fork", ForkError),
    ]
    for name, p, e, reason, cls in cases:
        with pytest.raises(cls) as info:
            check_link(p, e)
        assert info.value.reason == reason, name  # type: ignore[attr-defined]


# ------------------------------------------------------------ verify_run


@pytest.mark.parametrize("n", [1, 2, 10])
def test_verify_run_from_seq1(n: int) -> None:
    verify_run(chain(n))


def test_verify_run_empty_is_a_no_op() -> None:
    verify_run([])


def test_verify_run_with_anchor() -> None:
    run = chain(8)
    verify_run(run[3:], anchor=run[2])
    with pytest.raises(ChainError):
        verify_run(run[4:], anchor=run[2])


def test_detached_segment_is_authenticated_by_its_top() -> None:
    # A run that does not reach seq 1 and has no anchor: authentic on its own.
    run = chain(5, start=100)
    verify_run(run)
    # And it is attached later by checking the link to its anchor.
    with pytest.raises(ChainError, match="previous"):
        verify_run(run, anchor=raw_entry(KEY, 99, b"\x01" * 32))


def test_verify_run_refuses_another_authors_top() -> None:
    run = chain(3)
    forged_top = raw_entry(MALLORY, 4, run[-1].id, author=KEY.public_key)
    with pytest.raises(InvalidSignature) as info:
        verify_run([*run, forged_top])
    assert info.value.reason == "mismatch"


def test_bad_top_signature() -> None:
    run = chain(6, mangles={5: wrong_sig})
    with pytest.raises(InvalidSignature) as info:
        verify_run(run)
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize("reason", sorted(MALFORMED))
@pytest.mark.parametrize("position", [0, 3, 7])
def test_malformed_signature_anywhere(reason: str, position: int) -> None:
    # The author committed to these bytes (the next entry's prev hashes them),
    # so the links hold; only the per-entry encoding check can catch them.
    run = chain(8, mangles={position: MALFORMED[reason]})
    for a, b in itertools.pairwise(run):
        check_link(a, b)
    with pytest.raises(InvalidSignature) as info:
        verify_run(run)
    assert info.value.reason == reason


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), data=st.data(), reason=st.sampled_from(sorted(MALFORMED)))
def test_malformed_signature_at_any_position(n: int, data: st.DataObject, reason: str) -> None:
    position = data.draw(st.integers(0, n - 1), label="position")
    run = chain(n, mangles={position: MALFORMED[reason]})
    with pytest.raises(InvalidSignature) as info:
        verify_run(run)
    assert info.value.reason == reason


def test_invalid_but_well_formed_inner_signature_is_covered_by_the_top() -> None:
    # Documented property (spec §6.2): an inner signature is checked for strict
    # encoding only; its author is accountable for it through the signed top.
    run = chain(4, mangles={1: wrong_sig})
    verify_run(run)
    with pytest.raises(InvalidSignature):
        run[1].verify()


CORRUPTIONS = ("prev", "skip", "author", "swap", "fork")


def corrupt(
    run: list[Entry], i: int, how: str, anchor: Entry | None
) -> tuple[list[Entry], Entry | None]:
    """Break exactly the link into position i (from run[i-1], or from the anchor when i == 0)."""
    run = list(run)
    below = run[i - 1] if i > 0 else anchor
    assert below is not None
    e = run[i]
    if how == "prev":
        # Validly signed by the author, but naming a different predecessor.
        run[i] = raw_entry(KEY, e.seq, hashlib.sha256(b"elsewhere").digest())
    elif how == "skip":
        # The seq jumps by one: same prev, seq + 1.
        run[i] = raw_entry(KEY, e.seq + 1, below.id)
    elif how == "author":
        run[i] = raw_entry(MALLORY, e.seq, below.id)
    elif how == "swap":
        # Replace the predecessor-side entry by a differently signed sibling:
        # the link from it into e no longer holds.
        if i > 0:
            run[i - 1] = raw_entry(KEY, below.seq, below.prev, text="sibling")
        else:
            anchor = raw_entry(KEY, below.seq, below.prev, text="sibling")
    elif how == "fork":
        run[i] = raw_entry(KEY, below.seq, below.prev, text="fork sibling")
    return run, anchor


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(2, 24),
    data=st.data(),
    how=st.sampled_from(CORRUPTIONS),
    anchored=st.booleans(),
)
def test_one_bad_link_anywhere_is_caught(
    n: int, data: st.DataObject, how: str, anchored: bool
) -> None:
    full = chain(n + 1)
    anchor, run = (full[0], full[1:]) if anchored else (None, full[:n])
    lowest = 0 if anchored else 1
    i = data.draw(st.integers(lowest, len(run) - 1), label="position")
    bad, bad_anchor = corrupt(run, i, how, anchor)
    with pytest.raises((ChainError, InvalidSignature)) as info:
        verify_run(bad, anchor=bad_anchor)
    # Link problems are ChainErrors; only a forged top is caught by the signature.
    if i < len(run) - 1 or how != "author":
        assert isinstance(info.value, ChainError)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), data=st.data())
def test_any_suffix_of_a_good_run_verifies(n: int, data: st.DataObject) -> None:
    run = chain(n)
    i = data.draw(st.integers(0, n - 1))
    verify_run(run[i:], anchor=run[i - 1] if i else None)


# ------------------------------------------------------------ forks


def fork_pair() -> tuple[Entry, Entry]:
    a, b = chain(2)
    b2 = raw_entry(KEY, 2, a.id, text="the other history")
    return b, b2


def test_detect_fork_and_round_trip() -> None:
    x, y = fork_pair()
    proof = detect_fork(x, y)
    assert proof is not None
    assert proof == detect_fork(y, x)  # order-independent
    assert proof.first.id < proof.second.id
    assert (proof.author, proof.seq) == (KEY.public_key, 2)
    back = decode_fork_proof_untrusted(proof.to_bytes())
    assert back == proof
    assert back.to_bytes() == proof.to_bytes()


def test_detect_fork_returns_none_for_non_forks() -> None:
    _, b, c = chain(3)
    assert detect_fork(b, b) is None
    assert detect_fork(b, c) is None
    assert detect_fork(b, chain(2, key=MALLORY)[1]) is None


def _proof_bytes(first: Entry, second: Entry) -> bytes:
    return encode([first.to_bytes(), second.to_bytes()])


def _ordered(a: Entry, b: Entry) -> tuple[Entry, Entry]:
    return (a, b) if a.id < b.id else (b, a)


def test_fork_proof_refusals() -> None:
    x, y = _ordered(*fork_pair())
    a, b, c = chain(3)
    other_b = chain(2, key=MALLORY)[1]
    bad_sig = raw_entry(KEY, 2, a.id, text="forged", mangle=wrong_sig)
    small_r = raw_entry(KEY, 2, a.id, text="weird", mangle=small_order_r)
    cases: list[tuple[str, bytes, type[Exception], str]] = [
        ("reversed_order", _proof_bytes(y, x), DecodeError, "non_canonical"),
        ("same_entry_twice", _proof_bytes(x, x), ChainError, "not_a_fork"),
        ("different_seq", _proof_bytes(*_ordered(b, c)), ChainError, "not_a_fork"),
        ("different_author", _proof_bytes(*_ordered(b, other_b)), ChainError, "not_a_fork"),
        ("bad_signature", _proof_bytes(*_ordered(b, bad_sig)), InvalidSignature, "mismatch"),
        ("small_order_r", _proof_bytes(*_ordered(b, small_r)), InvalidSignature, "small_order_r"),
        ("one_entry", encode([x.to_bytes()]), DecodeError, "bad_fork_proof"),
        # One element and three are the same shape error (issue 11: three
        # used to be malformed, as over a msgpack container limit).
        (
            "three_entries",
            encode([x.to_bytes(), y.to_bytes(), y.to_bytes()]),
            DecodeError,
            "bad_fork_proof",
        ),
        ("empty_array", encode([]), DecodeError, "bad_fork_proof"),
        ("not_bytes", encode([1, 2]), DecodeError, "bad_fork_proof"),
        ("text_element", encode(["x", y.to_bytes()]), DecodeError, "bad_fork_proof"),
        ("map", encode({"a": x.to_bytes()}), DecodeError, "bad_fork_proof"),
        ("nested", encode([[x.to_bytes()], y.to_bytes()]), DecodeError, "too_deep"),
        ("entry_too_large", encode([bytes(577), y.to_bytes()]), DecodeError, "too_large"),
        ("nil_element", bytes.fromhex("92c0") + encode(y.to_bytes()), DecodeError, "nil"),
        ("garbage_entry", encode([b"\x00" * 70, y.to_bytes()]), DecodeError, "malformed"),
        ("trailing", _proof_bytes(x, y) + b"\x00", DecodeError, "malformed"),
        ("empty", b"", DecodeError, "truncated"),
    ]
    for name, data, cls, reason in cases:
        with pytest.raises(cls) as info:
            decode_fork_proof_untrusted(data)
        assert info.value.reason == reason, name  # type: ignore[attr-defined]


def test_fork_proof_is_a_value() -> None:
    x, y = _ordered(*fork_pair())
    assert ForkProof(x, y) == decode_fork_proof_untrusted(_proof_bytes(x, y))

"""Ingest outcomes: stored, duplicate, rejected with each reason, nothing partial."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

import p2psocial.storage.ingest
from p2psocial.errors import LocalUsageError
from p2psocial.protocol import encoding
from p2psocial.protocol.entries import (
    ENTRY_TAG,
    MAX_FUTURE_MS,
    Entry,
    create_entry,
    decode_entry_untrusted,
)
from p2psocial.protocol.errors import InvalidSignature
from p2psocial.protocol.feeds import ForkProof, decode_fork_proof_untrusted
from p2psocial.storage import Store

from .helpers import NOW, FeedBuilder, key


def rows(store: Store) -> dict[str, int]:
    conn = store.connection
    return {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("entries", "notify", "tags", "follows", "profiles", "deletions", "fork_proofs")
    }


def test_run_is_stored_and_idempotent(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(20):
        a.post(f"post {i}")
    out = store.ingest(a.items(), now_ms=NOW)
    assert [o.status for o in out] == ["stored"] * 20
    assert [o.seq for o in out] == list(range(1, 21))
    assert store.head(a.author) == (20, a.id(20))
    before = rows(store)
    again = store.ingest(a.items(), now_ms=NOW)
    assert {o.status for o in again} == {"duplicate"}
    assert rows(store) == before
    assert store.statistics()["entries"] == 20


def test_duplicate_within_one_batch(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("x")
    out = store.ingest([a.item(1), a.item(1)], now_ms=NOW)
    assert [o.status for o in out] == ["stored", "duplicate"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda raw, pl: (b"\x00" * 10, pl), "truncated"),
        (lambda raw, pl: (raw[:64] + b"\x81\xa1x\x01", pl), "bad_envelope"),
    ],
)
def test_rejections_leave_nothing(store: Store, mutate, reason: str) -> None:
    a = FeedBuilder(key(1))
    raw, pl = a.post("hello there")
    out = store.ingest([mutate(raw, pl)], now_ms=NOW)
    assert out[0].status == "rejected"
    assert out[0].reason == reason
    assert rows(store)["entries"] == 0
    assert store.feed_status(a.author) == "unknown"


@pytest.mark.parametrize(
    ("mutate", "fault"),
    [
        (lambda raw, pl: (raw, pl + b"\x00"), "payload_size"),
        (lambda raw, pl: (raw, pl[:-1] + bytes([pl[-1] ^ 1])), "payload_hash"),
    ],
)
def test_payload_bytes_not_signed_are_set_aside_and_the_envelope_kept(
    store: Store, mutate, fault: str
) -> None:
    """The sender's fault (spec/protocol.md 5.3): the entry is valid, the bytes
    are not the author's payload. The envelope is stored without them, the
    outcome names the fault (the replicator counts it against the peer), and
    the real payload still fills in later."""
    a = FeedBuilder(key(1))
    raw, pl = a.post("hello there")
    [out] = store.ingest([mutate(raw, pl)], now_ms=NOW)
    assert (out.status, out.reason) == ("stored", fault)
    assert store.head(a.author) == (1, a.id(1))
    assert store.entries_after(a.author, 0, 1)[0][1] is None
    [again] = store.ingest([(raw, pl)], now_ms=NOW)
    assert again.status == "stored"  # the payload, now from an honest peer
    assert store.entries_after(a.author, 0, 1)[0][1] == pl


def test_a_payload_the_author_signed_but_breaks_its_schema_keeps_the_chain(store: Store) -> None:
    """The author's fault: the entry stays a valid link, the payload is
    dropped, and the entries above it are stored as the feed's contiguous run
    (the whole item used to be rejected, the entries above became a detached
    segment, and the replicator dropped the honest peer that relayed it)."""
    k = key(1)
    # A post whose text is over its limit, as another implementation might
    # sign it (ours refuses to): take a valid envelope and re-sign it with
    # this payload's hash and size.
    bad = encoding.encode({"text": "x" * 3000})
    good, _ = create_entry(
        k, seq=1, prev=None, timestamp=NOW - 10, kind="post", payload={"text": "stand-in"}
    )
    env = encoding.decode_untrusted(good.envelope)
    env["payload_hash"], env["payload_size"] = hashlib.sha256(bad).digest(), len(bad)
    envelope = encoding.encode(env)
    raw1 = k.sign(ENTRY_TAG + envelope) + envelope
    first = decode_entry_untrusted(raw1)
    e2, p2 = create_entry(
        k, seq=2, prev=first.id, timestamp=NOW - 5, kind="post", payload={"text": "ok"}
    )
    out = store.ingest([(raw1, bad), (e2.to_bytes(), p2)], now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("stored", "invalid_payload"), ("stored", None)]
    assert store.head(k.public_key) == (2, e2.id)
    assert store.entries_after(k.public_key, 0, 2)[0][1] is None


def test_bad_signature_single_and_in_run(store: Store) -> None:
    a = FeedBuilder(key(1))
    other = key(2)
    for i in range(5):
        a.post(f"p{i}")
    # Re-sign seq 3's envelope with another key: well-formed, does not verify.
    e3 = a.entries[2]
    forged = other.sign(ENTRY_TAG + e3.envelope) + e3.envelope
    items = a.items()
    items[2] = (forged, a.payloads[2])
    out = store.ingest(items, now_ms=NOW)
    assert [o.status for o in out] == ["stored", "stored", "rejected", "rejected", "rejected"]
    assert out[2].reason == "mismatch"
    # Entries above a rejected one cannot be authenticated by this batch.
    assert out[3].reason == out[4].reason == "no_prev"
    assert store.head(a.author) == (2, a.id(2))
    assert rows(store)["entries"] == 2
    # The genuine entries still go in afterwards.
    out = store.ingest(a.items(3, 5), now_ms=NOW)
    assert [o.status for o in out] == ["stored"] * 3
    assert store.head(a.author) == (5, a.id(5))


def test_single_forged_entry(store: Store) -> None:
    a = FeedBuilder(key(1))
    raw, pl = a.post("x")
    forged = key(3).sign(ENTRY_TAG + raw[64:]) + raw[64:]
    out = store.ingest([(forged, pl)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "mismatch")
    assert rows(store)["entries"] == 0


def test_from_future(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("late", ts=NOW + MAX_FUTURE_MS + 1)
    out = store.ingest(a.items(), now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "from_future")
    out = store.ingest(a.items(), now_ms=NOW + 2 * MAX_FUTURE_MS)
    assert out[0].status == "stored"


def test_schema_violation_in_payload(store: Store) -> None:
    a = FeedBuilder(key(1))
    raw, _ = a.post("ok")
    # A payload matching a different envelope: the sender's fault. The valid
    # envelope is kept without the bytes (spec/protocol.md 5.3).
    bad = encoding.encode({"text": "x" * 3000})
    out = store.ingest([(raw, bad)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("stored", "payload_size")
    assert rows(store)["entries"] == 1
    assert store.entries_after(a.author, 0, 1)[0][1] is None


def test_segments_fill_in_later(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(30):
        a.post(f"p{i}")
    out = store.ingest(a.items(21, 30), now_ms=NOW)  # detached segment
    assert {o.status for o in out} == {"stored"}
    assert store.head(a.author) is None
    assert store.heads([a.author]) == {a.author: 0}
    out = store.ingest(a.items(11, 15), now_ms=NOW)  # another segment
    assert {o.status for o in out} == {"stored"}
    assert store.entries_after(a.author, 0, 100) == []
    out = store.ingest(a.items(1, 10) + a.items(16, 20), now_ms=NOW)
    assert {o.status for o in out} == {"stored"}
    assert store.head(a.author) == (30, a.id(30))
    assert [r[0] for r in store.entries_after(a.author, 0, 100)] == [
        e.to_bytes() for e in a.entries
    ]


def test_a_run_from_seq_1_over_a_detached_top_joins_it(store: Store) -> None:
    """A catch-up that ends after its recent part (spec/sync.md 5.6 rule 5) is
    served classically from seq 1, through the detached run it already holds."""
    a = FeedBuilder(key(1))
    for i in range(30):
        a.post(f"p{i}")
    assert {o.status for o in store.ingest(a.items(21, 30), now_ms=NOW)} == {"stored"}
    out = store.ingest(a.items(1, 30), now_ms=NOW)
    assert [o.status for o in out] == ["stored"] * 20 + ["duplicate"] * 10
    assert store.head(a.author) == (30, a.id(30))
    assert [r[0] for r in store.entries_after(a.author, 0, 100)] == [
        e.to_bytes() for e in a.entries
    ]


def test_segment_that_conflicts_above(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(4):
        a.post(f"p{i}")
    store.ingest(a.items(3, 4), now_ms=NOW)
    # A validly signed seq 2 that seq 3 does not name as prev.
    e1 = a.entries[0]
    alt, alt_pl = create_entry(
        a.key, seq=2, prev=e1.id, timestamp=NOW, kind="post", payload={"text": "alt"}
    )
    out = store.ingest([(alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "prev_mismatch")


def test_no_segments_policy(tmp_path) -> None:
    s = Store.open(tmp_path / "n.db", allow_segments=False)
    try:
        a = FeedBuilder(key(1))
        for i in range(5):
            a.post(f"p{i}")
        out = s.ingest(a.items(3, 5), now_ms=NOW)
        assert {(o.status, o.reason) for o in out} == {("rejected", "no_prev")}
        assert {o.status for o in s.ingest(a.items(), now_ms=NOW)} == {"stored"}
    finally:
        s.close()


def test_fork_proof_and_frozen_feed(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(5):
        a.post(f"p{i}")
    store.ingest(a.items(1, 3), now_ms=NOW)
    alt, alt_pl = create_entry(
        a.key, seq=3, prev=a.id(2), timestamp=NOW, kind="post", payload={"text": "other history"}
    )
    out = store.ingest([(alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "fork")
    assert store.feed_status(a.author) == "forked"
    proofs = store.fork_proofs(a.author)
    assert len(proofs) == 1
    proof = decode_fork_proof_untrusted(proofs[0])
    assert {proof.first.id, proof.second.id} == {alt.id, a.id(3)}
    # Frozen: nothing beyond the fork is accepted.
    out = store.ingest(a.items(4, 5), now_ms=NOW)
    assert {(o.status, o.reason) for o in out} == {("rejected", "forked")}
    # Idempotent: the same fork again adds no second proof.
    store.ingest([(alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert len(store.fork_proofs(a.author)) == 1
    with pytest.raises(LocalUsageError, match="forked") as info:
        store.append_local(a.key, "post", {"text": "more"}, now_ms=NOW)
    assert info.value.reason == "forked"


def test_fork_within_one_batch(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("one")
    alt, alt_pl = create_entry(
        a.key, seq=1, prev=None, timestamp=NOW, kind="post", payload={"text": "two"}
    )
    out = store.ingest([a.item(1), (alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert [o.status for o in out] == ["stored", "rejected"]
    assert out[1].reason == "fork"
    assert store.feed_status(a.author) == "forked"


def _rival(a: FeedBuilder, seq: int, prev: bytes | None, text: str) -> tuple[Entry, bytes]:
    """A validly signed entry of ``a`` at ``seq`` that differs from the one ``a`` holds."""
    return create_entry(
        a.key, seq=seq, prev=prev, timestamp=NOW, kind="post", payload={"text": text}
    )


def _badly_signed(e: Entry) -> Entry:
    """``e`` under a well-formed signature that does not verify (another key signed it).

    It passes the encoding checks every entry of a batch run gets, so it is
    stored when a validly signed entry above it names it (spec/protocol.md §6.2).
    """
    return decode_entry_untrusted(key(99).sign(ENTRY_TAG + e.envelope) + e.envelope)


def _forged_run(
    a: FeedBuilder, prev: bytes | None, seq: int, n: int, text: str
) -> list[tuple[bytes, bytes | None]]:
    """n entries of ``a`` from ``seq`` whose lowest signature is garbage, linked by hash.

    Only the top entry's signature verifies in full, which is all batch
    verification checks; the hash links vouch for the others.
    """
    items: list[tuple[bytes, bytes | None]] = []
    for s in range(seq, seq + n):
        e, pl = _rival(a, s, prev, f"{text} {s}")
        if s == seq:
            e = _badly_signed(e)
        items.append((e.to_bytes(), pl))
        prev = e.id
    return items


def _assert_proofs_verify(store: Store, author: bytes) -> list[ForkProof]:
    proofs = [decode_fork_proof_untrusted(p) for p in store.fork_proofs(author)]
    for p in proofs:
        p.first.verify()
        p.second.verify()
    return proofs


@pytest.mark.parametrize("with_payload", [True, False])
def test_fork_at_seq_1_of_a_one_entry_feed(store: Store, with_payload: bool) -> None:
    # Issue 12, bug 2: the store holds only seq 1, so the feed row alone names
    # the held entry; a rival seq 1 used to crash the transaction.
    a = FeedBuilder(key(1))
    a.post("one")
    assert store.ingest(a.items(), now_ms=NOW)[0].status == "stored"
    alt, alt_pl = _rival(a, 1, None, "rival")
    out = store.ingest([(alt.to_bytes(), alt_pl if with_payload else None)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "fork")
    assert store.feed_status(a.author) == "forked"
    (proof,) = _assert_proofs_verify(store, a.author)
    assert {proof.first.id, proof.second.id} == {alt.id, a.id(1)}
    assert store.head(a.author) == (1, a.id(1))
    # Frozen from seq 1: the honest seq 2 is refused, not an error.
    a.post("two")
    assert [(o.status, o.reason) for o in store.ingest([a.item(2)], now_ms=NOW)] == [
        ("rejected", "forked")
    ]


def test_fork_at_seq_1_under_python_O(tmp_path: Path) -> None:
    # The same path with asserts stripped: it used to end in IntegrityError.
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
print(__debug__)
from p2psocial.protocol.entries import create_entry
from p2psocial.storage import Store
from tests.storage.helpers import NOW, FeedBuilder, key
a = FeedBuilder(key(1))
a.post("one")
with Store.open({str(tmp_path / "n.db")!r}) as s:
    s.ingest(a.items(), now_ms=NOW)
    alt, pl = create_entry(a.key, seq=1, prev=None, timestamp=NOW, kind="post",
                           payload={{"text": "rival"}})
    out = s.ingest([(alt.to_bytes(), pl)], now_ms=NOW)
    print(out[0].status, out[0].reason, s.feed_status(a.author), len(s.fork_proofs(a.author)))
"""
    res = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "rejected", "fork", "forked", "1"]


def test_storage_ingest_has_no_asserts() -> None:
    # Under ``python -O`` an assert is gone; data conditions need explicit checks.
    # The ingest transaction is split over these modules.
    here = Path(p2psocial.storage.ingest.__file__).parent
    lines = [
        (name, n.lineno)
        for name in ("ingest.py", "batch.py", "plan.py", "forks.py")
        for n in ast.walk(ast.parse((here / name).read_text()))
        if isinstance(n, ast.Assert)
    ]
    assert lines == []


def test_fork_with_a_held_entry_whose_own_signature_fails(store: Store) -> None:
    # Issue 12, bug 3: seq 2 is held only through batch verification (seq 3
    # vouches for it), and its own signature does not verify. A validly signed
    # rival at seq 2 cannot make a fork proof with it: no proof, no freeze.
    a = FeedBuilder(key(1))
    a.post("one")
    items = [a.item(1), *_forged_run(a, a.id(1), 2, 2, "held")]
    assert [o.status for o in store.ingest(items, now_ms=NOW)] == ["stored"] * 3
    held2 = decode_entry_untrusted(items[1][0])
    with pytest.raises(InvalidSignature):
        held2.verify()
    alt, alt_pl = _rival(a, 2, a.id(1), "rival")
    out = store.ingest([(alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("rejected", "unprovable_fork")
    assert store.fork_proofs(a.author) == []
    assert store.feed_status(a.author) == "ok"
    assert store.head(a.author) == (3, decode_entry_untrusted(items[2][0]).id)
    assert store.statistics()["rejected_by_reason"] == {"unprovable_fork": 1}


def test_fork_with_a_rival_whose_own_signature_fails(store: Store) -> None:
    # The rival is the lowest entry of a batch (the overlap entry of a
    # catch-up): authentic through the run, but its own signature fails.
    a = FeedBuilder(key(1))
    a.post("one")
    a.post("two")
    store.ingest(a.items(), now_ms=NOW)
    out = store.ingest(_forged_run(a, a.id(1), 2, 3, "other"), now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [
        ("rejected", "unprovable_fork"),
        ("rejected", "prev_mismatch"),
        ("rejected", "no_prev"),
    ]
    assert store.fork_proofs(a.author) == []
    assert store.feed_status(a.author) == "ok"
    assert store.head(a.author) == (2, a.id(2))


def test_fork_within_one_batch_with_an_unverified_first(store: Store) -> None:
    # The rival's counterpart is stored by the same batch, inside a run.
    a = FeedBuilder(key(1))
    a.post("one")
    run = [a.item(1), *_forged_run(a, a.id(1), 2, 2, "held")]
    alt, alt_pl = _rival(a, 2, a.id(1), "rival")
    out = store.ingest([*run, (alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("stored", None)] * 3 + [
        ("rejected", "unprovable_fork")
    ]
    assert store.fork_proofs(a.author) == []
    assert store.feed_status(a.author) == "ok"


def test_two_rivals_prove_a_fork_without_the_held_entry(store: Store) -> None:
    # Both halves of a gossiped proof arrive while the entry held at their seq
    # cannot verify alone: the two of them still prove the fork.
    a = FeedBuilder(key(1))
    a.post("one")
    store.ingest([a.item(1), *_forged_run(a, a.id(1), 2, 2, "held")], now_ms=NOW)
    x, x_pl = _rival(a, 2, a.id(1), "x")
    y, _ = _rival(a, 2, a.id(1), "y")
    out = store.ingest([(x.to_bytes(), x_pl), (y.to_bytes(), None)], now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("rejected", "fork")] * 2
    assert store.feed_status(a.author) == "forked"
    (proof,) = _assert_proofs_verify(store, a.author)
    assert {proof.first.id, proof.second.id} == {x.id, y.id}


def test_honest_fork_against_batch_verified_entries(store: Store) -> None:
    # Both histories validly signed; ours held as inner entries of a run and
    # theirs arriving as a run whose lowest entry is the overlap: proofs are
    # recorded, and every one passes the protocol's own decoder.
    a = FeedBuilder(key(1))
    for i in range(4):
        a.post(f"p{i}")
    store.ingest(a.items(), now_ms=NOW)
    other: list[tuple[bytes, bytes]] = []
    prev = a.id(1)
    for s in (2, 3):
        e, pl = _rival(a, s, prev, f"other {s}")
        other.append((e.to_bytes(), pl))
        prev = e.id
    out = store.ingest(other, now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("rejected", "fork")] * 2
    assert store.feed_status(a.author) == "forked"
    proofs = _assert_proofs_verify(store, a.author)
    assert [(p.seq, {p.first.id, p.second.id}) for p in proofs] == [
        (2, {a.id(2), decode_entry_untrusted(other[0][0]).id}),
        (3, {a.id(3), decode_entry_untrusted(other[1][0]).id}),
    ]


def test_payload_fill_in(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("later #tag", tags=["tag"])
    out = store.ingest([a.item(1, with_payload=False)], now_ms=NOW)
    assert out[0].status == "stored"
    view = store.get_entry(a.id(1))
    assert view is not None and view.payload_state == "absent" and view.text is None
    assert store.search("later").items == []
    out = store.ingest([a.item(1)], now_ms=NOW)
    assert out[0].status == "stored"
    view = store.get_entry(a.id(1))
    assert view is not None and view.text == "later #tag"
    assert [v.id for v in store.search("later").items] == [a.id(1)]
    assert store.ingest([a.item(1)], now_ms=NOW)[0].status == "duplicate"


def test_many_single_entries_use_the_pool(store: Store) -> None:
    feeds = [FeedBuilder(key(100 + i)) for i in range(40)]
    items = [f.post("hi") for f in feeds]
    # One bad entry among them.
    bad_raw = key(999).sign(ENTRY_TAG + items[7][0][64:]) + items[7][0][64:]
    items[7] = (bad_raw, items[7][1])
    out = store.ingest(items, now_ms=NOW)
    assert [o.status for o in out].count("stored") == 39
    assert (out[7].status, out[7].reason) == ("rejected", "mismatch")
    assert store.statistics()["rejected_by_reason"] == {"mismatch": 1}


def test_local_append_chain(store: Store) -> None:
    k = key(5)
    e1 = store.append_local(k, "post", {"text": "first"}, now_ms=NOW)
    e2 = store.append_local(k, "post", {"text": "second"}, now_ms=NOW + 1)
    assert (e1.seq, e2.seq, e2.prev) == (1, 2, e1.id)
    assert store.head(k.public_key) == (2, e2.id)
    with pytest.raises(LocalUsageError, match="2000"):
        store.append_local(k, "post", {"text": "x" * 2001}, now_ms=NOW)
    assert store.head(k.public_key) == (2, e2.id)
    # A peer relaying our own entries back changes nothing.
    again = store.ingest(store.entries_after(k.public_key, 0, 10), now_ms=NOW)
    assert {o.status for o in again} == {"duplicate"}


def test_integrity_after_mixed_batches(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    for i in range(10):
        a.post(f"a{i}")
        b.post(f"b{i}")
    store.ingest(a.items()[::2] + b.items()[1::2], now_ms=NOW)
    store.ingest(a.items()[1::2] + b.items()[::2], now_ms=NOW)
    assert store.head(a.author) == (10, a.id(10))
    assert store.head(b.author) == (10, b.id(10))
    assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.connection.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')")


def test_resumed_sync_overlap(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(50):
        a.post(f"p{i}")
    store.ingest(a.items(1, 20), now_ms=NOW)
    # A peer resends from seq 11: the held part is duplicate, the rest extends the head.
    out = store.ingest(a.items(11, 50), now_ms=NOW)
    assert [o.status for o in out] == ["duplicate"] * 10 + ["stored"] * 30
    assert store.head(a.author) == (50, a.id(50))


def test_bad_entry_above_held_prefix(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(8):
        a.post(f"p{i}")
    store.ingest(a.items(1, 3), now_ms=NOW)
    items = a.items(1, 8)
    e6 = a.entries[5]
    items[5] = (key(4).sign(ENTRY_TAG + e6.envelope) + e6.envelope, a.payloads[5])
    out = store.ingest(items, now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("duplicate", None)] * 3 + [
        ("stored", None),
        ("stored", None),
        ("rejected", "mismatch"),
        ("rejected", "no_prev"),
        ("rejected", "no_prev"),
    ]
    assert store.head(a.author) == (5, a.id(5))


def test_prepared_batches_commit_in_any_order(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    for i in range(5):
        a.post(f"a{i}")
        b.post(f"b{i}")
    first = store.prepare_ingest(a.items(), now_ms=NOW)
    second = store.prepare_ingest(b.items() + a.items(1, 2), now_ms=NOW)
    second.wait_verified()
    out2 = store.ingest_prepared(second)
    out1 = store.ingest_prepared(first)
    assert [o.status for o in out2] == ["stored"] * 7
    assert [o.status for o in out1] == ["duplicate"] * 2 + ["stored"] * 3
    assert store.heads() == {a.author: 5, b.author: 5}


def test_verify_threads_zero(tmp_path) -> None:
    with Store.open(tmp_path / "n.db", verify_threads=0) as s:
        feeds = [FeedBuilder(key(300 + i)) for i in range(5)]
        out = s.ingest([f.post("x") for f in feeds], now_ms=NOW)
        assert {o.status for o in out} == {"stored"}


def test_unknown_kind_is_stored_opaquely(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.add("poll.v2", {"question": "tea?", "options": ["yes", "no"]})
    out = store.ingest(a.items(), now_ms=NOW)
    assert out[0].status == "stored"
    v = store.get_entry(a.id(1))
    assert (
        v is not None
        and v.kind == "poll.v2"
        and v.payload == {"question": "tea?", "options": ["yes", "no"]}
    )
    assert v.text is None


def test_bad_payload_inside_a_run(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(5):
        a.post(f"p{i}")
    items = a.items()
    items[2] = (items[2][0], encoding.encode({"text": "swapped"}))
    out = store.ingest(items, now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [
        ("stored", None),
        ("stored", None),
        ("stored", "payload_size"),
        ("stored", None),
        ("stored", None),
    ]
    # The run is authentic: its envelopes are all kept, contiguous, and only
    # the swapped bytes are set aside; the real payload fills in later.
    assert store.head(a.author) == (5, a.id(5))
    assert store.entries_after(a.author, 2, 1)[0][1] is None
    assert store.ingest([a.item(3)], now_ms=NOW)[0].status == "stored"
    assert store.head(a.author) == (5, a.id(5))


def test_accepts_lists_and_memoryviews(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("x")
    raw, pl = a.item(1)
    out = store.ingest([[memoryview(raw), memoryview(pl)]], now_ms=NOW)  # type: ignore[list-item]
    assert out[0].status == "stored"
    assert store.get_entry(a.id(1)).text == "x"  # type: ignore[union-attr]

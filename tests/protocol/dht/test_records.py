"""Record rules: every rejection has its reason, and a rejection stores nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from p2psocial.protocol import encoding
from p2psocial.protocol.dht import (
    HEAD,
    PROFILE,
    RecordRejected,
    RecordStore,
    SwarmStore,
    TokenIssuer,
    ValueStore,
    encode_profile_record,
    head_key,
    profile_key,
    swarm_key,
)
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey

NOW_MS = 1_700_000_000_000
ALICE = SigningKey.from_seed(b"a" * 32)
BOB = SigningKey.from_seed(b"b" * 32)


def chain(key: SigningKey, n: int, kind: str = "post") -> list[bytes]:
    out, prev = [], None
    for seq in range(1, n + 1):
        payload = {"text": f"#{seq}"} if kind == "post" else {"name": f"n{seq}"}
        e, _ = create_entry(key, seq=seq, prev=prev, timestamp=NOW_MS, kind=kind, payload=payload)
        out.append(e.to_bytes())
        prev = e.id
    return out


A = chain(ALICE, 3)
HK = head_key(ALICE.public_key)


def _flip_sig(b: bytes) -> bytes:
    return b[:10] + bytes([b[10] ^ 1]) + b[11:]


def _future() -> bytes:
    e, _ = create_entry(
        ALICE,
        seq=4,
        prev=b"\x01" * 32,
        timestamp=NOW_MS + 3_600_000,
        kind="post",
        payload={"text": "x"},
    )
    return e.to_bytes()


# (name, stored first, then offered (kind, key, data), expected reason)
CASES: list[tuple[str, list[bytes], Callable[[], tuple[str, bytes, bytes]], str]] = [
    ("stale seq", [A[2]], lambda: (HEAD, HK, A[1]), "stale"),
    ("replayed record", [A[1]], lambda: (HEAD, HK, A[1]), "replayed"),
    ("bad signature", [A[0]], lambda: (HEAD, HK, _flip_sig(A[1])), "bad_signature"),
    ("wrong key for the slot", [], lambda: (HEAD, head_key(BOB.public_key), A[0]), "wrong_key"),
    (
        "head under profile key",
        [],
        lambda: (HEAD, profile_key(ALICE.public_key), A[0]),
        "wrong_key",
    ),
    ("oversize", [A[0]], lambda: (HEAD, HK, A[1] + b"\x00" * 2000), "too_large"),
    ("garbage", [A[0]], lambda: (HEAD, HK, b"\x00" * 100), "malformed"),
    ("from the future", [A[0]], lambda: (HEAD, HK, _future()), "from_future"),
    ("unknown kind", [], lambda: ("nope", HK, A[0]), "wrong_kind"),
]


@pytest.mark.parametrize(("name", "first", "offer", "reason"), CASES, ids=[c[0] for c in CASES])
def test_head_rejections(
    name: str, first: list[bytes], offer: Callable[[], tuple[str, bytes, bytes]], reason: str
) -> None:
    store = RecordStore()
    for data in first:
        store.put(HEAD, HK, data, now=0.0, now_ms=NOW_MS)
    before = [(r.kind, r.key, r.data, r.seq) for r in store.records()]
    kind, key, data = offer()
    with pytest.raises(RecordRejected) as info:
        store.put(kind, key, data, now=1.0, now_ms=NOW_MS)
    assert info.value.reason == reason
    assert [(r.kind, r.key, r.data, r.seq) for r in store.records()] == before


def test_higher_seq_replaces_and_conflict_is_refused() -> None:
    store = RecordStore()
    store.put(HEAD, HK, A[0], now=0.0, now_ms=NOW_MS)
    store.put(HEAD, HK, A[2], now=0.0, now_ms=NOW_MS)
    rec = store.get(HEAD, HK, 1.0)
    assert rec is not None and rec.data == A[2] and rec.seq == 3
    fork, _ = create_entry(
        ALICE, seq=3, prev=b"\x02" * 32, timestamp=NOW_MS, kind="post", payload={"text": "fork"}
    )
    with pytest.raises(RecordRejected) as info:
        store.put(HEAD, HK, fork.to_bytes(), now=1.0, now_ms=NOW_MS)
    assert info.value.reason == "conflict"
    assert store.get(HEAD, HK, 1.0).data == A[2]  # type: ignore[union-attr]


def test_records_expire_and_count_is_bounded() -> None:
    store = RecordStore(max_records=2, ttl=10.0)
    keys = [SigningKey.from_seed(bytes([i]) * 32) for i in range(3)]
    for i, k in enumerate(keys):
        store.put(HEAD, head_key(k.public_key), chain(k, 1)[0], now=float(i), now_ms=NOW_MS)
    assert len(store) == 2
    assert store.get(HEAD, head_key(keys[0].public_key), 3.0) is None
    assert store.get(HEAD, head_key(keys[2].public_key), 11.5) is not None
    assert store.get(HEAD, head_key(keys[2].public_key), 12.0) is None


def test_profile_record() -> None:
    e, payload = create_entry(
        ALICE, seq=1, prev=None, timestamp=NOW_MS, kind="profile", payload={"name": "alice"}
    )
    pk = profile_key(ALICE.public_key)
    store = RecordStore()
    store.put(PROFILE, pk, encode_profile_record(e.to_bytes(), payload), now=0.0, now_ms=NOW_MS)
    cases = {
        "wrong_kind": encode_profile_record(A[0], encoding.encode({"text": "#1"})),
        "bad_payload": encode_profile_record(e.to_bytes(), encoding.encode({"name": "mallory"})),
        "malformed": encoding.encode({"entry": e.to_bytes()}),
        "too_large": encode_profile_record(e.to_bytes(), b"x" * 500),
    }
    for reason, data in cases.items():
        fresh = RecordStore()
        with pytest.raises(RecordRejected) as info:
            fresh.put(PROFILE, pk, data, now=0.0, now_ms=NOW_MS)
        assert info.value.reason == reason, reason
        assert len(fresh) == 0
    with pytest.raises(RecordRejected) as info:
        store.put(
            PROFILE,
            head_key(ALICE.public_key),
            encode_profile_record(e.to_bytes(), payload),
            now=0.0,
            now_ms=NOW_MS,
        )
    assert info.value.reason == "wrong_key"


def test_tokens_bound_to_address_and_expire_after_two_rotations() -> None:
    t = TokenIssuer(b"s1" * 16, 0.0, rotation_s=300)
    tok = t.issue("10.0.0.1", 4000)
    t.check(tok, "10.0.0.1", 4000)
    for host, port in (("10.0.0.2", 4000), ("10.0.0.1", 4001)):
        with pytest.raises(RecordRejected) as info:
            t.check(tok, host, port)
        assert info.value.reason == "bad_token"
    assert t.needs_rotation(300.0)
    t.rotate(b"s2" * 16, 300.0)
    t.check(tok, "10.0.0.1", 4000)  # previous secret still accepted
    t.rotate(b"s3" * 16, 600.0)
    with pytest.raises(RecordRejected) as info:
        t.check(tok, "10.0.0.1", 4000)
    assert info.value.reason == "bad_token"
    for junk in (b"", b"x" * 16, "str", None):
        with pytest.raises(RecordRejected):
            t.check(junk, "10.0.0.1", 4000)


def test_swarm_bounded_and_expiring() -> None:
    s = SwarmStore(max_keys=2, max_peers=3, ttl=100.0)
    key = swarm_key(ALICE.public_key)
    for i in range(3):
        s.announce(key, bytes([i]) * 20, f"10.0.0.{i}", 4000 + i, float(i))
    # Full, one entry per address: a newcomer waits for an entry to expire.
    with pytest.raises(RecordRejected) as info:
        s.announce(key, bytes([4]) * 20, "10.0.0.4", 4004, 4.0)
    assert info.value.reason == "swarm_full"
    # Re-announcing a listed entry refreshes it (most recent first).
    s.announce(key, bytes([1]) * 20, "10.0.0.1", 4001, 5.0)
    peers = s.peers(key, 10.0)
    assert len(peers) == 3 and peers[0] == (bytes([1]) * 20, "10.0.0.1", 4001)
    assert s.peers(key, 200.0) == []
    for i in range(3):
        s.announce(bytes([i]) * 20, b"\x09" * 20, "h", 1, 0.0)
    s.expire(0.0)
    assert len(s._swarms) <= 2
    with pytest.raises(RecordRejected):
        s.announce(key, b"\x01" * 20, "h", 0, 0.0)


def test_plain_values_bounded() -> None:
    v = ValueStore(max_items=2, max_value_size=8, ttl=5.0)
    v.put(b"\x01" * 20, 1.5, 0.0)
    v.put(b"\x02" * 20, b"ok", 0.0)
    v.put(b"\x03" * 20, "s", 0.0)
    assert len(v) == 2 and v.get(b"\x01" * 20, 0.0) is None
    assert v.get(b"\x02" * 20, 4.9) == b"ok" and v.get(b"\x02" * 20, 5.0) is None
    with pytest.raises(RecordRejected) as info:
        v.put(b"\x04" * 20, b"x" * 9, 0.0)
    assert info.value.reason == "too_large"
    for bad in (None, [1], {"a": 1}):
        with pytest.raises(RecordRejected) as info:
            v.put(b"\x04" * 20, bad, 0.0)
        assert info.value.reason == "bad_value"


def test_key_derivation() -> None:
    import hashlib

    pk = ALICE.public_key
    assert head_key(pk) == hashlib.sha256(b"head" + pk).digest()[:20]
    assert swarm_key(pk) == hashlib.sha256(b"swarm" + pk).digest()[:20]
    assert profile_key(pk) == hashlib.sha256(b"profile" + pk).digest()[:20]
    _ = time


# -- a flood from one address evicts only its own entries -------------------------


def test_record_flood_from_one_address_keeps_the_victims_head() -> None:
    """5,000 valid heads of new authors from one address evicted a victim's
    head; now a full store makes room from the largest holder first."""
    store = RecordStore(max_records=64)
    store.put(HEAD, HK, A[-1], now=0.0, now_ms=NOW_MS, source="198.51.100.1")
    for i in range(300):
        key = SigningKey.from_seed(i.to_bytes(32, "big"))
        [e] = chain(key, 1)
        store.put(HEAD, head_key(key.public_key), e, now=1.0, now_ms=NOW_MS, source="203.0.113.9")
    assert len(store) == 64
    held = store.get(HEAD, HK, 2.0)
    assert held is not None and held.data == A[-1]


def test_value_flood_from_one_address_keeps_the_victims_value() -> None:
    store = ValueStore(max_items=32)
    store.put(b"v" * 20, b"victim", 0.0, source="198.51.100.1")
    for i in range(500):
        store.put(i.to_bytes(20, "big"), i, 1.0, source="203.0.113.9")
    assert len(store) == 32
    assert store.get(b"v" * 20, 2.0) == b"victim"


def test_swarm_flood_from_one_address_keeps_the_victims_swarm() -> None:
    """3,000 announces with fresh keys evicted a victim's swarm entry."""
    swarms = SwarmStore(max_keys=16)
    victim_key = swarm_key(ALICE.public_key)
    swarms.announce(victim_key, b"\x01" * 20, "198.51.100.1", 4000, 0.0)
    for i in range(3000):
        swarms.announce(i.to_bytes(20, "big"), i.to_bytes(20, "big"), "203.0.113.9", 4001, 1.0)
    assert swarms.peers(victim_key, 2.0) == [(b"\x01" * 20, "198.51.100.1", 4000)]


def test_one_host_cannot_push_others_out_of_a_swarm() -> None:
    swarms = SwarmStore(max_peers=8, max_per_host=2)
    key = swarm_key(ALICE.public_key)
    honest = [(bytes([i]) * 20, f"198.51.100.{i}", 4000) for i in range(1, 6)]
    for nid, host, port in honest:
        swarms.announce(key, nid, host, port, 0.0)
    for i in range(200):
        swarms.announce(key, (1000 + i).to_bytes(20, "big"), "203.0.113.9", 5000 + i, 1.0)
    peers = swarms.peers(key, 2.0)
    assert set(honest) <= set(peers)
    assert sum(1 for p in peers if p[1] == "203.0.113.9") == 2


def test_an_announce_naming_a_listed_node_id_from_elsewhere_does_not_replace_it() -> None:
    """The node id in an announce is unproven: one datagram from another
    address used to move a listed node's entry there."""
    swarms = SwarmStore()
    key = swarm_key(ALICE.public_key)
    swarms.announce(key, b"\x01" * 20, "198.51.100.1", 4000, 0.0)
    swarms.announce(key, b"\x01" * 20, "203.0.113.9", 6666, 1.0)
    assert (b"\x01" * 20, "198.51.100.1", 4000) in swarms.peers(key, 2.0)


def test_many_addresses_cannot_empty_a_full_swarm() -> None:
    """40 addresses with one entry each used to push all 5 honest entries out."""
    swarms = SwarmStore(max_peers=8)
    key = swarm_key(ALICE.public_key)
    honest = [(bytes([i]) * 20, f"198.51.100.{i}", 4000) for i in range(1, 6)]
    for nid, host, port in honest:
        swarms.announce(key, nid, host, port, 0.0)
    refused = 0
    for i in range(40):
        try:
            swarms.announce(key, (1000 + i).to_bytes(20, "big"), f"203.0.113.{i}", 5000, 1.0)
        except RecordRejected as exc:
            assert exc.reason == "swarm_full"
            refused += 1
    assert set(honest) <= set(swarms.peers(key, 2.0))
    assert refused == 40 - 3
    # Entries expire and make room again.
    swarms.announce(key, b"\x09" * 20, "192.0.2.9", 4000, 3.0 + swarms.ttl)
    assert swarms.peers(key, 3.0 + swarms.ttl) == [(b"\x09" * 20, "192.0.2.9", 4000)]


def test_the_address_that_started_a_swarm_cannot_flush_it_once_others_joined() -> None:
    """An attacker started a swarm, 5 honest hosts joined, then 1,024 new
    keys from the attacker's address deleted the whole swarm."""
    swarms = SwarmStore(max_keys=32)
    key = swarm_key(ALICE.public_key)
    swarms.announce(key, b"\xee" * 20, "203.0.113.9", 5000, 0.0)
    honest = [(bytes([i]) * 20, f"198.51.100.{i}", 4000) for i in range(1, 6)]
    for nid, host, port in honest:
        swarms.announce(key, nid, host, port, 0.5)
    for i in range(1024):
        swarms.announce(i.to_bytes(20, "big"), b"\xee" * 20, "203.0.113.9", 5000, 1.0)
    assert set(honest) <= set(swarms.peers(key, 2.0))
    assert len(swarms._swarms) <= 32

"""IP-diversity limits of the routing table: groups, limits, and who is never evicted."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.dht import AddResult, Contact, RoutingTable
from p2psocial.protocol.dht.diversity import address_groups

OWN = bytes(20)


def nid(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()[:20]


@pytest.mark.parametrize(
    ("host", "groups"),
    [
        ("198.51.100.7", ("198.51.100.0/24", "198.51.0.0/16")),
        ("203.0.113.250", ("203.0.113.0/24", "203.0.0.0/16")),
        ("127.0.0.1", (None, None)),
        ("::1", (None, None)),
        ("127.9.0.80", ("127.9.0.0/24", "127.9.0.0/16")),
        ("127.10.0.1", ("127.10.0.0/24", "127.10.0.0/16")),
        ("10.1.2.3", (None, None)),
        ("192.168.1.20", (None, None)),
        ("100.64.0.9", (None, None)),
        ("fd00::5", (None, None)),
        ("fe80::1", (None, None)),
        ("2001:db8:aa:bb::1", ("2001:db8:aa::/48", "2001:db8::/32")),
        ("::ffff:198.51.100.7", ("198.51.100.0/24", "198.51.0.0/16")),
        ("not-an-ip", (None, None)),
    ],
)
def test_address_groups_table(host: str, groups: tuple[str | None, str | None]) -> None:
    assert address_groups(host) == groups


def test_two_per_slash24_per_bucket() -> None:
    t = RoutingTable(OWN, k=20)
    # All ids in the far half: one bucket (it never splits: it does not hold OWN
    # and its depth 1 is not a multiple of 5 -- it may split, so check per bucket).
    results = [t.add(Contact(nid(i), f"198.51.100.{i + 1}", 1), 0).result for i in range(10)]
    assert results.count(AddResult.ADDED) >= 2
    for b in t.buckets:
        per24 = Counter(t.groups_of(c.host)[0] for c in b.contacts.values())
        assert max(per24.values(), default=0) <= 2
    assert AddResult.LIMITED in results


def test_ten_per_slash16_in_the_table() -> None:
    t = RoutingTable(OWN, k=20)
    for i in range(400):
        t.add(Contact(nid(i), f"127.9.{i % 200}.{1 + i // 200}", 4000), 0)
    assert t.group_counts() == {"127.9.0.0/16": 10}
    assert len(t) == 10


def test_loopback_host_is_not_limited() -> None:
    t = RoutingTable(OWN, k=20)
    for i in range(100):
        t.add(Contact(nid(i), "127.0.0.1", 1000 + i), 0)
    assert len(t) > 20  # bounded by k per bucket only


def test_limited_newcomer_causes_no_ping_and_no_replacement() -> None:
    t = RoutingTable(OWN, k=2, split_mod=1)
    # Fill one far bucket with two contacts of one /24 and nothing else.
    far = [c for c in (Contact(nid(i), f"198.51.100.{i}", 1) for i in range(1, 200)) if c.n >> 159]
    assert t.add(far[0], 0).result is AddResult.ADDED
    assert t.add(far[1], 0).result is AddResult.ADDED
    out = t.add(far[2], 1)
    assert out.result is AddResult.LIMITED and out.ping is None
    assert all(far[2].node_id not in b.replacements for b in t.buckets)


def test_removal_frees_the_group_slot_and_promotion_respects_limits() -> None:
    t = RoutingTable(OWN, k=20, table_group_limit=3)
    sybils = [Contact(nid(i), f"127.9.0.{i}", 1) for i in range(1, 6)]
    added = [c for c in sybils if t.add(c, 0).result is AddResult.ADDED]
    assert len(added) <= 3
    assert t.group_counts()["127.9.0.0/16"] == len(added)
    t.remove(added[0].node_id)
    assert t.group_counts().get("127.9.0.0/16", 0) == len(added) - 1
    assert t.add(sybils[-1], 1).result in (AddResult.ADDED, AddResult.LIMITED)
    assert t.group_counts()["127.9.0.0/16"] <= 3


def test_limits_off_is_the_old_table() -> None:
    t = RoutingTable(OWN, k=20, groups=None)
    for i in range(50):
        t.add(Contact(nid(i), f"127.9.0.{i + 1}", 1), 0)
    assert len(t) > 10


def _honest(i: int) -> Contact:
    # Each honest contact in its own /16 of 127/8 (as in the real-socket test).
    return Contact(nid(10_000 + i), f"127.{10 + i}.0.1", 5000)


def _sybil(i: int) -> Contact:
    return Contact(nid(i), f"127.9.{i // 250}.{1 + i % 250}", 6000)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 4),
    st.integers(1, 12),
    st.lists(st.tuples(st.sampled_from(["sybil", "honest", "remove"]), st.integers(0, 300))),
)
def test_limits_hold_and_honest_contacts_are_never_displaced(
    seed: int, per_bucket: int, per_table: int, ops: list[tuple[str, int]]
) -> None:
    rng = random.Random(seed)
    t = RoutingTable(
        rng.randbytes(20), k=8, bucket_group_limit=per_bucket, table_group_limit=per_table
    )
    honest_in: set[bytes] = set()
    for op, i in ops:
        if op == "remove":
            victim = rng.choice([_honest(i % 40), _sybil(i)])
            t.remove(victim.node_id)
            honest_in.discard(victim.node_id)
            continue
        c = _sybil(i) if op == "sybil" else _honest(i % 40)
        before = {x.node_id for x in t.contacts()}
        full_group = t.group_counts().get(t.groups_of(c.host)[1] or "", 0) >= per_table
        out = t.add(c, 0)
        after = {x.node_id for x in t.contacts()}
        # An add never takes anyone out of the table (eviction is remove's job).
        assert before <= after
        if op == "sybil" and full_group and c.node_id not in before:
            # A newcomer of a full group is refused outright: no ping, so no
            # honest contact is ever put to the test on its behalf.
            assert out.result is AddResult.LIMITED and out.ping is None
            assert after == before
        if c.node_id in after and op == "honest":
            honest_in.add(c.node_id)
        assert honest_in <= after
        for b in t.buckets:
            narrow = Counter(t.groups_of(x.host)[0] for x in b.contacts.values())
            assert max(narrow.values(), default=0) <= per_bucket
        wide = Counter(t.groups_of(x.host)[1] for x in t.contacts())
        assert max(wide.values(), default=0) <= per_table
        assert dict(wide) == t.group_counts()

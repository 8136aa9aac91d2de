"""The policy gate: per-author quotas are charged only for payloads actually stored."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from p2psocial.node.config import Policy
from p2psocial.node.moderation import PolicyGate
from p2psocial.protocol.entries import ENTRY_TAG, create_entry, decode_entry_untrusted
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage import AsyncStore, open_async_store

Item = tuple[bytes, bytes | None]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def feed(key: SigningKey, n: int) -> list[tuple[bytes, bytes]]:
    """Posts 1..n of ``key``, as (entry bytes, payload bytes)."""
    items: list[tuple[bytes, bytes]] = []
    prev: bytes | None = None
    ts = now_ms() - 60_000
    for seq in range(1, n + 1):
        entry, payload = create_entry(
            key, seq=seq, prev=prev, timestamp=ts + seq, kind="post", payload={"text": f"p {seq}"}
        )
        items.append((entry.to_bytes(), payload))
        prev = entry.id
    return items


def forged(item: tuple[bytes, bytes], text: str) -> Item:
    """Another post at the same (author, seq), signed by a stranger: it does not verify."""
    entry = decode_entry_untrusted(item[0])
    rival, payload = create_entry(
        SigningKey.generate(),
        seq=entry.seq,
        prev=entry.prev,
        timestamp=entry.timestamp,
        kind="post",
        payload={"text": text},
    )
    # The stranger's envelope with the author's public key put back: the
    # envelope claims the author, and the signature is not theirs.
    envelope = rival.envelope.replace(rival.author, entry.author)
    assert envelope != rival.envelope
    return SigningKey.generate().sign(ENTRY_TAG + envelope) + envelope, payload


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with open_async_store(tmp_path / "node.db") as s:
        yield s


async def payload_state(store: AsyncStore, item: Item) -> str:
    view = await store.get_entry(decode_entry_untrusted(item[0]).id)
    assert view is not None
    return view.payload_state


@pytest.mark.parametrize("quota", ["entries", "bytes"])
async def test_forgeries_and_redeliveries_do_not_use_up_the_quota(
    store: AsyncStore, quota: str
) -> None:
    a = SigningKey.generate()
    posts = feed(a, 4)
    size = len(posts[0][1])
    assert all(len(p) == size for _, p in posts)
    # Room for two of A's posts a day, counted in entries or in bytes.
    policy = (
        Policy(quota_entries_per_day=2)
        if quota == "entries"
        else Policy(quota_bytes_per_day=2 * size)
    )
    # Seq 1 was held before this run (the quota counts only this run's arrivals).
    await store.ingest([posts[0]], now_ms=now_ms())
    gate = PolicyGate(store, policy, SigningKey.generate().public_key)

    # Two forged envelopes claiming A, each in its own batch as peers send them.
    for item in (forged(posts[1], "forged one"), forged(posts[2], "forged two")):
        (out,) = await gate.ingest([item], now_ms=now_ms())
        assert out.status == "rejected"
    # An honest peer re-delivers seq 1, which is held already.
    (out,) = await gate.ingest([posts[0]], now_ms=now_ms())
    assert out.status == "duplicate"

    # A's genuine new posts keep their payloads up to the quota...
    outs = await gate.ingest(posts[1:3], now_ms=now_ms())
    assert [o.status for o in outs] == ["stored", "stored"]
    assert [await payload_state(store, p) for p in posts[1:3]] == ["present", "present"]
    # ... and the next one is over it.
    (out,) = await gate.ingest([posts[3]], now_ms=now_ms())
    assert out.status == "stored"
    assert await payload_state(store, posts[3]) == "absent"
    reason = f"quota_{quota}"
    assert gate.refused == {decode_entry_untrusted(posts[3][0]).id: reason}
    assert dict(gate.stats) == {reason: 1}


async def test_redelivery_in_the_same_batch_is_not_charged(store: AsyncStore) -> None:
    a = SigningKey.generate()
    posts = feed(a, 5)
    await store.ingest(posts[:3], now_ms=now_ms())
    gate = PolicyGate(store, Policy(quota_entries_per_day=2), SigningKey.generate().public_key)
    # A peer that sends the whole feed again: seqs 1-3 are duplicates.
    outs = await gate.ingest(posts, now_ms=now_ms())
    assert [o.status for o in outs] == ["duplicate"] * 3 + ["stored"] * 2
    assert [await payload_state(store, p) for p in posts[3:]] == ["present", "present"]
    assert gate.refused == {}


async def test_a_forgery_in_the_batch_does_not_take_a_genuine_entrys_place(
    store: AsyncStore,
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    a_posts, b_posts = feed(a, 1), feed(b, 3)
    gate = PolicyGate(store, Policy(quota_entries_per_day=1), SigningKey.generate().public_key)
    # A forged seq 3 of B comes first in the batch, B's genuine seq 1 and 2
    # after it. B's quota of 1 goes to the genuine seq 1; A is not affected.
    batch = [forged(b_posts[2], "forged"), *b_posts[:2], *a_posts]
    outs = await gate.ingest(batch, now_ms=now_ms())
    assert outs[0].status == "rejected"
    assert [o.status for o in outs[1:]] == ["stored"] * 3
    states = [await payload_state(store, p) for p in (*b_posts[:2], *a_posts)]
    assert states == ["present", "absent", "present"]
    assert gate.refused == {decode_entry_untrusted(b_posts[1][0]).id: "quota_entries"}


async def test_own_entries_and_envelopes_are_never_charged(store: AsyncStore) -> None:
    own = SigningKey.generate()
    a = SigningKey.generate()
    a_posts = feed(a, 2)
    gate = PolicyGate(store, Policy(quota_entries_per_day=1), own.public_key)
    await gate.ingest(feed(own, 3), now_ms=now_ms())
    # Envelopes alone carry no payload to charge for.
    await gate.ingest([(raw, None) for raw, _ in a_posts], now_ms=now_ms())
    # The payloads arrive later: the first fills in, the second is over quota.
    outs = await gate.ingest(a_posts, now_ms=now_ms())
    assert [o.status for o in outs] == ["stored", "duplicate"]
    assert [await payload_state(store, p) for p in a_posts] == ["present", "absent"]
    assert list(gate.refused.values()) == ["quota_entries"]

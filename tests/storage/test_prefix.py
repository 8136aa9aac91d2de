"""Entry ids by hex prefix: an indexed range over the id blobs, even or odd digits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2psocial.errors import LocalUsageError
from p2psocial.storage import Store, open_async_store

from .helpers import NOW, FeedBuilder, key


def _id(hex_prefix: str, fill: str = "0") -> bytes:
    return bytes.fromhex(hex_prefix + fill * (64 - len(hex_prefix)))


IDS = [
    _id("00000000"),
    _id("12345678", "0"),
    _id("12345678", "f"),
    _id("12345679"),
    _id("1234567f", "f"),
    _id("12345680"),
    _id("fffffff0"),
    _id("ffffffff", "f"),
]


def _insert_ids(conn: sqlite3.Connection, ids: list[bytes]) -> None:
    """Bare envelope rows with chosen ids (real ids cannot be chosen)."""
    with conn:
        conn.executemany(
            "INSERT INTO entries(fid, seq, id, ts, kind, raw, pstate) "
            "VALUES (9999, ?, ?, 0, 'post', x'00', 0)",
            [(i + 1, id_) for i, id_ in enumerate(ids)],
        )


@pytest.fixture
def ids_store(store: Store) -> Store:
    _insert_ids(store.connection, IDS)
    return store


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("12345678", [IDS[1], IDS[2]]),
        ("1234567", [IDS[1], IDS[2], IDS[3], IDS[4]]),  # odd: a nibble range
        ("123456", IDS[1:6]),
        ("123456780", [IDS[1]]),
        ("12345678f", [IDS[2]]),
        ("1234567f", [IDS[4]]),  # the carry into the next byte stops before 12345680
        ("ffffffff", [IDS[7]]),  # all ff: no upper bound
        ("fffffff", [IDS[6], IDS[7]]),
        ("f", [IDS[6], IDS[7]]),
        ("0", [IDS[0]]),
        ("ABCDEF01", []),
        (IDS[2].hex(), [IDS[2]]),
        (IDS[2].hex()[:63], [IDS[2]]),
    ],
)
def test_prefix_table(ids_store: Store, prefix: str, expected: list[bytes]) -> None:
    assert ids_store.ids_with_prefix(prefix, limit=10) == expected


def test_limit_bounds_the_answer(ids_store: Store) -> None:
    assert ids_store.ids_with_prefix("1", limit=2) == IDS[1:3]


@pytest.mark.parametrize("prefix", ["", "12g45678", "1234 678", "0x123456", "é1234567", "1" * 65])
def test_not_hex_is_refused(ids_store: Store, prefix: str) -> None:
    with pytest.raises(LocalUsageError) as info:
        ids_store.ids_with_prefix(prefix, limit=10)
    assert info.value.reason == "bad_id"


def test_lookup_is_an_index_range_not_a_scan(ids_store: Store) -> None:
    from p2psocial.storage.queries import PREFIX_SQL

    plan = " ".join(
        str(row[-1])
        for row in ids_store.connection.execute(
            "EXPLAIN QUERY PLAN " + PREFIX_SQL, (b"\x12", b"\x13", 5)
        )
    )
    assert "SEARCH" in plan and "entries_id" in plan, plan
    assert "SCAN" not in plan, plan


# The store is reset at the start of each example, so sharing it is safe.
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ids=st.lists(st.binary(min_size=32, max_size=32), max_size=20, unique=True),
    pick=st.integers(min_value=0, max_value=19),
    cut=st.integers(min_value=1, max_value=64),
)
def test_prefix_matches_a_plain_filter(store: Store, ids: list[bytes], pick: int, cut: int) -> None:
    probe = (ids[pick % len(ids)] if ids else b"\xab" * 32).hex()[:cut]
    with store.connection:
        store.connection.execute("DELETE FROM entries")
    _insert_ids(store.connection, ids)
    got = store.ids_with_prefix(probe, limit=50)
    assert got == sorted(i for i in ids if i.hex().startswith(probe))


async def test_async_store_finds_a_real_entry(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            feed = FeedBuilder(key(7))
            feed.post("hello")
            feed.post("again")
            await store.ingest(feed.items(), now_ms=NOW)
            entry_id = feed.entries[1].id
            assert await store.ids_with_prefix(entry_id.hex()[:8], limit=5) == [entry_id]
            assert await store.ids_with_prefix(entry_id.hex()[:12].upper(), limit=5) == [entry_id]

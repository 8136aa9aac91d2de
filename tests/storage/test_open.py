"""Opening: new files, foreign files, newer schemas, and the public names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import p2psocial.storage as storage
from p2psocial.errors import P2PSocialError, StorageError
from p2psocial.storage import SCHEMA_VERSION, Store, schema
from p2psocial.storage.derived import decode_stored_payload

from .helpers import NOW, FeedBuilder, key


def test_exports() -> None:
    assert sorted(storage.__all__) == sorted(
        [
            "SCHEMA_VERSION",
            "AsyncStore",
            "EntryView",
            "Outcome",
            "Page",
            "PreparedBatch",
            "StorageError",
            "Store",
            "open_async_store",
            "open_store",
        ]
    )
    assert issubclass(StorageError, P2PSocialError)


def test_reopen_keeps_data_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with Store.open(path) as s:
        a = FeedBuilder(key(1))
        a.post("persist")
        s.ingest(a.items(), now_ms=NOW)
        assert s.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Store.open(path) as s:
        assert s.head(a.author) == (1, a.id(1))
        assert s.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StorageError, match="not an SQLite database") as info:
        Store.open(path)
    assert info.value.reason == "not_sqlite"


def test_foreign_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="not a p2psocial one") as info:
        Store.open(path)
    assert info.value.reason == "not_ours"


def test_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer") as info:
        Store.open(path)
    assert info.value.reason == "newer_schema"


def post_texts(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(eid, text) of every post whose payload is held."""
    return [
        (eid, decode_stored_payload(p)["text"])
        for eid, p in conn.execute(
            "SELECT eid, payload FROM entries WHERE kind = 'post' AND pstate = 1"
        )
    ]


def as_version_1(path: Path) -> None:
    """Turn a database into what version 1 wrote: v2 objects gone, post_fts keyed by eid."""
    v1 = sqlite3.connect(":memory:")
    schema.MIGRATIONS[0](v1)
    keep = {r[0] for r in v1.execute("SELECT name FROM sqlite_master")}
    v1.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO post_fts(post_fts) VALUES ('delete-all')")
        conn.executemany("INSERT INTO post_fts(rowid, text) VALUES (?, ?)", post_texts(conn))
        for kind, name in conn.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'post_fts%'"
        ).fetchall():
            if name not in keep:
                conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()


def test_version_1_database_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    a = FeedBuilder(key(1))
    for i in range(40):
        a.post(f"word{i % 4} shared", ts=NOW - 1_000_000 + (i // 3))
    a.add("delete", {"target": a.id(7)})
    with Store.open(path) as s:
        s.ingest(a.items(), now_ms=NOW)
    as_version_1(path)
    with Store.open(path) as s:
        conn = s.connection
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')")
        # Every present post under a key of its own millisecond, nothing else.
        keys = conn.execute(
            "SELECT k.sk >> 10, e.ts FROM search_keys k JOIN entries e ON e.eid = k.eid"
        ).fetchall()
        assert len(keys) == 39 and all(k == ts for k, ts in keys)
        assert (
            conn.execute("SELECT count(*) FROM post_fts WHERE post_fts MATCH 'shared'").fetchone()[
                0
            ]
            == 39
        )
        # Search no longer needs the covering index a development schema 2 had.
        assert (
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'entries_search'"
            ).fetchone()[0]
            == 0
        )
        page = s.search("word1", limit=50)
        want = sorted(
            ((e.timestamp, e.id) for e in a.entries[:40] if e.seq % 4 == 2 and e.seq != 7),
            reverse=True,
        )
        assert [(v.timestamp, v.id) for v in page.items] == want


def test_closed_store_raises(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "n.db")
    s.close()
    s.close()
    with pytest.raises(StorageError):
        s.set_setting("a", 1)


def test_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        Store.open(tmp_path / "missing" / "dir" / "n.db")
    assert info.value.reason == "open_failed"

"""Opening: new files, foreign files, newer schemas, and the public names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import p2psocial.storage as storage
from p2psocial.errors import P2PSocialError, StorageError
from p2psocial.storage import SCHEMA_VERSION, Store

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

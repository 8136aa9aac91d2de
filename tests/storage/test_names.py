"""The petnames table: one name per identity, one identity per name, kept on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from p2psocial.storage import Store
from p2psocial.storage.names import load_petnames, remove_petname, set_petname

A, B = b"\x01" * 32, b"\x02" * 32


def test_set_rename_remove_and_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "node.db")
    conn = store.connection
    assert load_petnames(conn) == []
    assert set_petname(conn, "alice", A) is None
    assert set_petname(conn, "alice", A) is None  # the same name again: nothing was renamed
    assert set_petname(conn, "ally", A) == "alice"
    assert set_petname(conn, "bob", B) is None
    assert load_petnames(conn) == [("ally", A), ("bob", B)]
    assert remove_petname(conn, "bob") == B
    assert remove_petname(conn, "bob") is None
    store.close()
    store = Store.open(tmp_path / "node.db")
    try:
        assert load_petnames(store.connection) == [("ally", A)]
    finally:
        store.close()


def test_a_name_cannot_name_two_identities(store: Store) -> None:
    conn = store.connection
    set_petname(conn, "alice", A)
    with pytest.raises(sqlite3.IntegrityError):
        set_petname(conn, "alice", B)
    # The failed write left the table as it was.
    assert load_petnames(conn) == [("alice", A)]

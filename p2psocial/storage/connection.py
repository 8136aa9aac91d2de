"""The store's SQLite connections: opening them, write transactions, closing.

A node has one writing connection and, for page queries, one read-only
connection to the same file (WAL mode lets it read the last commit while
the writer writes). Each write is one ``BEGIN IMMEDIATE`` ... ``COMMIT``; a
durable one runs at ``synchronous=FULL`` (see :mod:`.store` for why).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from ..errors import StorageError
from .schema import prepare_database

__all__ = ["close_connection", "connect_reader", "connect_writer", "write_transaction"]


def connect_writer(path: str) -> sqlite3.Connection:
    """Open (or create) the database at ``path`` for writing.

    Raises:
        StorageError: not an SQLite file, not a p2psocial database, a newer
            schema, or the file cannot be opened.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}", reason="open_failed") from None
    try:
        prepare_database(conn, path)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
        conn.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StorageError(f"cannot use {path}: {exc}", reason="not_sqlite") from None
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the database at ``path``, for queries.

    Raises:
        StorageError: the file cannot be opened.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB page cache
        conn.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}", reason="open_failed") from None
    return conn


def close_connection(conn: sqlite3.Connection) -> None:
    """Let SQLite refresh its planner statistics, then close ``conn``."""
    with suppress(sqlite3.Error):
        conn.execute("PRAGMA optimize")
    conn.close()


@contextmanager
def write_transaction(
    conn: sqlite3.Connection | None, *, durable: bool = False
) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``conn``: all of it is committed, or none.

    Args:
        conn: the writing connection; None if the store is closed.
        durable: commit at ``synchronous=FULL`` (and return to NORMAL after).

    Raises:
        StorageError: the store is closed (``closed``), or the database
            failed to start or to finish the write (``io``); the transaction
            is rolled back.
    """
    if conn is None:
        raise StorageError("the store is closed", reason="closed")
    try:
        if durable:
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot start a write: {exc}", reason="io") from None
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise StorageError(f"write failed: {exc}", reason="io") from exc
        raise
    finally:
        if durable:
            conn.execute("PRAGMA synchronous = NORMAL")

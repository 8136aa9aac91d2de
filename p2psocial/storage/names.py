"""Petnames in the database.

A petname is the owner's own name for an identity. The ``petnames`` table
(schema v2) holds one row per name, with at most one name per identity; it is
local data, never published or sent to peers. The rules on what a name may
be are the node's (:mod:`p2psocial.node.names`); this module stores and reads.
"""

from __future__ import annotations

import sqlite3

from .connection import write_transaction

__all__ = ["load_petnames", "remove_petname", "set_petname"]


def set_petname(conn: sqlite3.Connection, name: str, identity: bytes) -> str | None:
    """Make ``name`` the one petname of ``identity``, durably (FULL).

    A name ``identity`` had before is replaced; ``name`` must not name
    another identity (the caller checks: the UNIQUE keys would refuse it).

    Returns:
        The identity's previous petname, or None.
    """
    with write_transaction(conn, durable=True):
        row = conn.execute("SELECT name FROM petnames WHERE identity = ?", (identity,)).fetchone()
        conn.execute("DELETE FROM petnames WHERE identity = ?", (identity,))
        conn.execute("INSERT INTO petnames(name, identity) VALUES (?, ?)", (name, identity))
    return None if row is None or row[0] == name else str(row[0])


def remove_petname(conn: sqlite3.Connection, name: str) -> bytes | None:
    """Forget the petname ``name``, durably; returns the identity it named, or None."""
    with write_transaction(conn, durable=True):
        row = conn.execute("SELECT identity FROM petnames WHERE name = ?", (name,)).fetchone()
        if row is not None:
            conn.execute("DELETE FROM petnames WHERE name = ?", (name,))
    return None if row is None else bytes(row[0])


def load_petnames(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
    """Every petname and the identity it names, by name."""
    rows = conn.execute("SELECT name, identity FROM petnames ORDER BY name").fetchall()
    return [(str(r[0]), bytes(r[1])) for r in rows]

"""The SQLite schema of a node's database, its migrations, and opening checks.

Theory. One file holds everything a node knows. The file is marked as ours
with ``PRAGMA application_id`` and carries its schema version in
``PRAGMA user_version``; both live in the database header, so checking them
costs no table lookups and works on any SQLite file.

* ``entries`` holds every stored envelope (the signed bytes, ``raw``) with the
  columns queries need, and the payload inline. ``pstate`` says whether the
  payload is present, not yet received, deleted by its author, or dropped by
  local policy. Derived columns (``target``, ``root``, ``aux``, ``tl``) are
  NULL whenever the payload is not present, so a purge is one UPDATE.
* ``feeds`` interns authors as small integers (``fid``) so that indexes over
  1M entries do not repeat 32-byte keys, and keeps each feed's contiguous head,
  status (``ok`` / ``forked``) and local block flag.
* The derived tables (``follows``, ``blocks``, ``profiles``, ``notify``,
  ``tags``, ``deletions``) and the contentless FTS5 table ``post_fts`` are
  maintained at ingest and on purge.

Durability (see :class:`~p2psocial.storage.store.Store`): WAL journal,
``synchronous=NORMAL`` for remote entries and ``FULL`` for the node's own acts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..errors import StorageError

__all__ = ["APPLICATION_ID", "PSTATE", "SCHEMA_VERSION", "prepare_database"]

#: "P2PS" as a big-endian 32-bit integer; SQLite stores it in the file header.
APPLICATION_ID = 0x50325053
SCHEMA_VERSION = 2

#: Payload states stored in ``entries.pstate``.
PSTATE = {"absent": 0, "present": 1, "deleted": 2, "dropped": 3}

_SCHEMA_V1 = """
CREATE TABLE feeds (
    fid INTEGER PRIMARY KEY,
    author BLOB NOT NULL UNIQUE,
    head_seq INTEGER NOT NULL DEFAULT 0,   -- highest seq contiguous from 1
    head_id BLOB,
    max_seq INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok',     -- ok | forked
    fork_seq INTEGER,                      -- lowest forked seq, the feed is frozen from here
    blocked INTEGER NOT NULL DEFAULT 0,    -- local block: payloads refused and purged
    n_entries INTEGER NOT NULL DEFAULT 0,
    payload_bytes INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE entries (
    eid INTEGER PRIMARY KEY,
    fid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    raw BLOB NOT NULL,                     -- signature || envelope, exactly as signed
    pstate INTEGER NOT NULL,
    payload BLOB,
    target BLOB,   -- react/repost/delete: entry id, follow/block...: author, reply: parent id
    root BLOB,     -- reply root
    aux TEXT,      -- react: emoji
    tl INTEGER     -- 1 when the entry shows in timelines (post, repost)
);
CREATE UNIQUE INDEX entries_id ON entries(id);
CREATE UNIQUE INDEX entries_feed ON entries(fid, seq);
CREATE INDEX entries_tl_time ON entries(ts, id, fid) WHERE tl = 1;
CREATE INDEX entries_tl_author ON entries(fid, ts, id) WHERE tl = 1;
CREATE INDEX entries_target ON entries(target, kind, fid, aux) WHERE target IS NOT NULL;
CREATE INDEX entries_root ON entries(root) WHERE root IS NOT NULL;

CREATE TABLE fork_proofs (
    fid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    proof BLOB NOT NULL,
    PRIMARY KEY (fid, seq, proof)
) WITHOUT ROWID;

CREATE TABLE interests (
    author BLOB NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (author, reason)
) WITHOUT ROWID;

-- Latest follow/unfollow (and block/unblock) per (src, dst) by the src feed's seq.
CREATE TABLE follows (
    src BLOB NOT NULL, dst BLOB NOT NULL, seq INTEGER NOT NULL, active INTEGER NOT NULL,
    PRIMARY KEY (src, dst)
) WITHOUT ROWID;
CREATE INDEX follows_dst ON follows(dst) WHERE active = 1;
CREATE TABLE blocks (
    src BLOB NOT NULL, dst BLOB NOT NULL, seq INTEGER NOT NULL, active INTEGER NOT NULL,
    PRIMARY KEY (src, dst)
) WITHOUT ROWID;
CREATE INDEX blocks_dst ON blocks(dst) WHERE active = 1;

CREATE TABLE profiles (
    author BLOB PRIMARY KEY, seq INTEGER NOT NULL, eid INTEGER NOT NULL
) WITHOUT ROWID;

-- Notifications: replies to an author's entries and posts mentioning them.
CREATE TABLE notify (
    author BLOB NOT NULL, ts INTEGER NOT NULL, id BLOB NOT NULL, eid INTEGER NOT NULL,
    why TEXT NOT NULL,
    PRIMARY KEY (author, ts, id)
) WITHOUT ROWID;
CREATE INDEX notify_eid ON notify(eid);

CREATE TABLE tags (
    tag TEXT NOT NULL, ts INTEGER NOT NULL, id BLOB NOT NULL, eid INTEGER NOT NULL,
    PRIMARY KEY (tag, ts, id)
) WITHOUT ROWID;
CREATE INDEX tags_eid ON tags(eid);

-- Every valid-looking delete seen, so a delete that arrives first still wins.
CREATE TABLE deletions (
    target BLOB NOT NULL, author BLOB NOT NULL,
    PRIMARY KEY (target, author)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE post_fts USING fts5(
    text, content='', tokenize='unicode61 remove_diacritics 2'
);

CREATE TABLE dht_contacts (
    node_id BLOB PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


# Version 2. Each part belongs to one feature; a part may be empty.
# Search ordering (indexes the search query pages through).
_V2_SEARCH = """
-- post_fts rows are keyed by a time-ordered search key, not by eid, so that
-- a search reads its matches newest first and stops after a page
-- (derived.search_key, queries.search). This maps each key to its post.
CREATE TABLE search_keys (sk INTEGER PRIMARY KEY, eid INTEGER NOT NULL UNIQUE);
"""
# Petnames: local names for identities.
_V2_NAMES = """
-- One petname per identity, one identity per petname, never published.
CREATE TABLE petnames (
    name TEXT PRIMARY KEY, identity BLOB NOT NULL UNIQUE
) WITHOUT ROWID;
"""
# Notifications: reactions, reposts and new followers, and the unread mark.
# notify_acts is apart from notify so that mentions (which lists notify) stays
# as it was. The (author, eid) indexes count unread rows (eid above the read
# mark, kept in settings) without walking all of an author's rows.
_V2_NOTIFY = """
CREATE TABLE notify_acts (
    author BLOB NOT NULL, ts INTEGER NOT NULL, id BLOB NOT NULL, eid INTEGER NOT NULL,
    why TEXT NOT NULL,
    PRIMARY KEY (author, ts, id)
) WITHOUT ROWID;
CREATE INDEX notify_acts_eid ON notify_acts(eid);
CREATE INDEX notify_acts_unread ON notify_acts(author, eid);
CREATE INDEX notify_unread ON notify(author, eid);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and migrations must run inside
    # the transaction that also bumps user_version.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _rekey_search(conn: sqlite3.Connection) -> None:
    """Write post_fts again, every present post under its search key."""
    # Imported here: derived imports this module.
    from .derived import assign_search_keys, decode_stored_payload

    # Version 1 keyed rows by eid; a contentless table can drop them all at once.
    conn.execute("INSERT INTO post_fts(post_fts) VALUES ('delete-all')")
    cur = conn.execute(
        "SELECT eid, ts, id, payload FROM entries WHERE kind = 'post' AND pstate = ? ORDER BY eid",
        (PSTATE["present"],),
    )
    while batch := cur.fetchmany(2000):
        posts = [(eid, ts, id_, decode_stored_payload(p)["text"]) for eid, ts, id_, p in batch]
        keyed = assign_search_keys(conn, posts)
        conn.executemany(
            "INSERT INTO post_fts(rowid, text) VALUES (?, ?)", [(k[0], k[2]) for k in keyed]
        )


def _migrate_to_v2(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V2_SEARCH + _V2_NAMES + _V2_NOTIFY)
    _rekey_search(conn)
    # Reactions, reposts and follows stored under version 1 notify too.
    # Imported here: notifications imports queries, which imports this module.
    from .notifications import backfill

    backfill(conn)


#: MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: lambda conn: _run_script(conn, _SCHEMA_V1),
    1: _migrate_to_v2,
}


def prepare_database(conn: sqlite3.Connection, path: str) -> None:
    """Check that ``conn`` is a p2psocial database and bring its schema up to date.

    A brand-new (empty) file becomes a p2psocial database.

    Raises:
        StorageError: not an SQLite file (reason ``not_sqlite``), another
            application's database (``not_ours``), or a schema newer than this
            code (``newer_schema``).
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{path} is not an SQLite database ({exc})", reason="not_sqlite"
        ) from None
    if app_id == 0 and version == 0 and n_tables == 0:
        app_id = APPLICATION_ID
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    if app_id != APPLICATION_ID:
        raise StorageError(
            f"{path} is an SQLite database but not a p2psocial one "
            f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x})",
            reason="not_ours",
        )
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path} has schema version {version}, newer than this p2psocial "
            f"understands ({SCHEMA_VERSION}); upgrade p2psocial",
            reason="newer_schema",
        )
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StorageError(f"{path}: cannot switch to WAL mode (got {mode})", reason="no_wal")
    while version < SCHEMA_VERSION:
        # Each step commits with its version bump, so an interrupted upgrade
        # resumes from the last completed step.
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

"""Social state derived from entries: maintained on store, undone on purge.

Theory. Every derived row can be recomputed from the entries whose payload
is present, and each rule is order-independent, because entries arrive in
any order (sync, gossip, a delete before its target):

* follows/blocks/profiles keep, per (author, target), the state of the
  entry with the highest seq; a purge recomputes that one row from the
  remaining entries;
* reactions, reposts and reply counts are not stored at all: they are counts
  over ``entries.target`` (cleared on purge);
* a delete is remembered in ``deletions`` whatever arrives first, and a
  target arriving later from the same author is stored without its payload;
* a post's words are in the FTS table under a time-ordered *search key*
  (``search_keys`` maps it to the entry, see :func:`search_key`);
* notifications are rows keyed by the notified author: replies and mentions
  in ``notify``, reactions, reposts and follows in ``notify_acts``. A reply,
  reaction or repost notifies its target's author whichever of the two
  arrives second; nobody is notified of their own acts. A purge of the
  notifying entry removes its row.

All functions run inside the caller's write transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .batch import insert_rows
from .schema import PSTATE

__all__ = [
    "SLOT_BITS",
    "Pending",
    "apply_payload",
    "assign_search_keys",
    "derived_columns",
    "flush",
    "purge_payload",
    "search_key",
]

TIMELINE_KINDS = ("post", "repost")
_ENTRY_TARGET = frozenset({"react", "repost", "delete"})
_AUTHOR_TARGET = frozenset({"follow", "unfollow", "block", "unblock"})
_RELATION = {
    "follow": ("follows", 1),
    "unfollow": ("follows", 0),
    "block": ("blocks", 1),
    "unblock": ("blocks", 0),
}
_RELATION_KINDS = {"follows": ("follow", "unfollow"), "blocks": ("block", "unblock")}
#: Kinds whose entries notify their target entry's author (``notify_acts``).
_ACT_KINDS = ("react", "repost")

#: Bits of a search key below the timestamp: up to 1,024 posts per millisecond
#: keep their place in time; 53 + 10 bits fit SQLite's signed 64-bit rowid.
SLOT_BITS = 10
_SLOTS = 1 << SLOT_BITS


def search_key(ts: int, id_: bytes) -> int:
    """The FTS rowid a post of timestamp ``ts`` and id ``id_`` first asks for.

    Keys sort as (ts, the id's top 10 bits), so FTS5, which walks a match's
    rows in rowid order, meets them newest first and a search page reads only
    about a page of rows (queries.search). Two posts of one millisecond may
    want the same key: :func:`assign_search_keys` moves the later one to a
    free slot of the same millisecond, so the order within a millisecond is
    not exact and search sorts by id there.
    """
    return (ts << SLOT_BITS) | (int.from_bytes(id_[:2], "big") >> (16 - SLOT_BITS))


def assign_search_keys(
    conn: sqlite3.Connection, posts: list[tuple[int, int, bytes, str]]
) -> list[tuple[int, int, str]]:
    """Give the new posts (eid, ts, id, text) their search keys, in ``search_keys``.

    A key taken (by a stored post or an earlier one of ``posts``) moves to a
    free slot of its millisecond; when all 1,024 are taken (only an author
    flooding one millisecond does that) the post gets a negative key, which
    search reads apart from the time-ordered ones.

    Returns:
        (key, eid, text) of each post, for its FTS row.
    """
    wanted = [(search_key(ts, id_), eid) for eid, ts, id_, _ in posts]
    changes = conn.total_changes
    insert_rows(conn, "search_keys", ("sk", "eid"), wanted, verb="INSERT OR IGNORE")
    if conn.total_changes - changes == len(posts):  # no key was taken: the usual case
        return [(sk, eid, p[3]) for (sk, eid), p in zip(wanted, posts, strict=True)]
    placed: dict[int, int] = {}
    eids = [eid for _, eid in wanted]
    for i in range(0, len(eids), 500):
        chunk = eids[i : i + 500]
        placed.update(
            conn.execute(
                f"SELECT eid, sk FROM search_keys WHERE eid IN ({_in(len(chunk))})", chunk
            ).fetchall()
        )
    out: list[tuple[int, int, str]] = []
    full: set[int] = set()  # milliseconds found full in this call
    spill: int | None = None  # the lowest negative key handed out in this call
    for eid, ts, _id, text in posts:
        sk = placed.get(eid)
        if sk is None:
            sk = -1 if ts in full else _free_slot(conn, ts)
            if sk < 0:
                full.add(ts)
                if spill is None:
                    low = conn.execute("SELECT min(sk) FROM search_keys").fetchone()[0]
                    spill = min(0, low if low is not None else 0)
                spill -= 1
                sk = spill
            conn.execute("INSERT INTO search_keys(sk, eid) VALUES (?, ?)", (sk, eid))
        out.append((sk, eid, text))
    return out


def _free_slot(conn: sqlite3.Connection, ts: int) -> int:
    """A free key of millisecond ``ts``, or -1 when there is none."""
    lo = ts << SLOT_BITS
    used = {
        r[0]
        for r in conn.execute(
            "SELECT sk FROM search_keys WHERE sk >= ? AND sk < ?", (lo, lo + _SLOTS)
        )
    }
    return next((k for k in range(lo, lo + _SLOTS) if k not in used), -1)


def decode_stored_payload(data: bytes) -> dict[str, Any]:
    """Decode a payload from our own database (validated when it was stored)."""
    value = msgpack.unpackb(data, raw=False)
    assert isinstance(value, dict)
    return value


def derived_columns(
    kind: str, value: dict[str, Any] | None
) -> tuple[bytes | None, bytes | None, str | None]:
    """(target, root, aux) columns of an entry with decoded payload ``value``."""
    if value is None:
        return None, None, None
    if kind == "post":
        reply = value.get("reply")
        if reply is not None:
            return reply["parent"], reply["root"], None
        return None, None, None
    if kind in _ENTRY_TARGET or kind in _AUTHOR_TARGET:
        return value["target"], None, value.get("emoji") if kind == "react" else None
    return None, None, None


def _in(n: int) -> str:
    return ",".join("?" * n)


@dataclass(slots=True)
class Pending:
    """Rows of one ingest transaction, written in bulk by :func:`flush`.

    Inserting row by row costs one Python-to-SQLite round trip per row; the
    store instead collects the rows of a whole batch and writes each table
    with one ``executemany``. Work that must see the batch's entries (reply
    notifications, deletes) runs in :func:`flush` after they are written.
    """

    entries: list[tuple[Any, ...]] = field(default_factory=list)
    #: (eid, ts, id, text) of new posts: their FTS rows.
    fts: list[tuple[int, int, bytes, str]] = field(default_factory=list)
    tags: list[tuple[str, int, bytes, int]] = field(default_factory=list)
    notify: list[tuple[bytes, int, bytes, int, str]] = field(default_factory=list)
    #: (eid, ts, id, author, target id, why) of new replies (``reply``), reactions
    #: (``react``) and reposts (``repost``): notify the target's author.
    replies: list[tuple[int, int, bytes, bytes, bytes, str]] = field(default_factory=list)
    #: (id, author, fid) of new timeline entries: replies may be waiting for them.
    parents: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    #: Rows for ``notify_acts``: (author, ts, id, eid, why).
    acts: list[tuple[bytes, int, bytes, int, str]] = field(default_factory=list)
    #: (eid, fid, author, target) of delete entries whose payload is present.
    deletes: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.entries or self.fts or self.replies or self.parents or self.deletes or self.acts
        )


def apply_payload(
    conn: sqlite3.Connection,
    pending: Pending,
    *,
    eid: int,
    fid: int,
    author: bytes,
    seq: int,
    id_: bytes,
    ts: int,
    kind: str,
    value: dict[str, Any],
) -> None:
    """Record what a newly present payload means (buffered in ``pending``)."""
    if kind == "post":
        pending.fts.append((eid, ts, id_, value["text"]))
        for tag in value.get("tags", ()):
            pending.tags.append((tag.casefold(), ts, id_, eid))
        for mentioned in value.get("mentions", ()):
            if mentioned != author:
                pending.notify.append((mentioned, ts, id_, eid, "mention"))
        reply = value.get("reply")
        if reply is not None:
            pending.replies.append((eid, ts, id_, author, reply["parent"], "reply"))
    elif kind == "profile":
        conn.execute(
            "INSERT INTO profiles(author, seq, eid) VALUES (?, ?, ?) "
            "ON CONFLICT(author) DO UPDATE SET seq = excluded.seq, eid = excluded.eid "
            "WHERE excluded.seq > profiles.seq",
            (author, seq, eid),
        )
    elif kind in _RELATION:
        table, active = _RELATION[kind]
        conn.execute(
            f"INSERT INTO {table}(src, dst, seq, active) VALUES (?, ?, ?, ?) "
            f"ON CONFLICT(src, dst) DO UPDATE SET seq = excluded.seq, active = excluded.active "
            f"WHERE excluded.seq > {table}.seq",
            (author, value["target"], seq, active),
        )
        if kind == "follow" and value["target"] != author:
            pending.acts.append((value["target"], ts, id_, eid, "follow"))
    elif kind in _ACT_KINDS:
        pending.replies.append((eid, ts, id_, author, value["target"], kind))
    elif kind == "delete":
        pending.deletes.append((eid, fid, author, value["target"]))


def flush(conn: sqlite3.Connection, pending: Pending) -> list[int]:
    """Write the buffered rows, then resolve reply notifications and deletes.

    Returns:
        eids of entries deleted by their authors; the caller purges them
        (a purge also updates the store's counters).
    """
    if pending.entries:
        conn.executemany(
            "INSERT INTO entries(eid, fid, seq, id, ts, kind, raw, pstate, payload, target, "
            "root, aux, tl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            pending.entries,
        )
    if pending.fts:
        keyed = assign_search_keys(conn, pending.fts)
        conn.executemany(
            "INSERT INTO post_fts(rowid, text) VALUES (?, ?)", [(sk, t) for sk, _, t in keyed]
        )
    if pending.tags:
        conn.executemany(
            "INSERT OR IGNORE INTO tags(tag, ts, id, eid) VALUES (?, ?, ?, ?)", pending.tags
        )
    notify, acts = pending.notify, pending.acts
    # Replies, reactions and reposts whose target is held (old or new):
    # notify the target's author.
    for i in range(0, len(pending.replies), 500):
        chunk = pending.replies[i : i + 500]
        parents = list({r[4] for r in chunk})
        authors = dict(
            conn.execute(
                "SELECT e.id, f.author FROM entries e JOIN feeds f ON f.fid = e.fid "
                f"WHERE e.id IN ({_in(len(parents))})",
                parents,
            ).fetchall()
        )
        for eid, ts, id_, author, parent, why in chunk:
            parent_author = authors.get(parent)
            if parent_author is not None and parent_author != author:
                (notify if why == "reply" else acts).append((parent_author, ts, id_, eid, why))
    # New entries that replies, reactions and reposts held from before were waiting for.
    for i in range(0, len(pending.parents), 500):
        chunk2 = pending.parents[i : i + 500]
        by_id = {p[0]: p for p in chunk2}
        for r_eid, r_ts, r_id, r_fid, target, r_kind in conn.execute(
            "SELECT eid, ts, id, fid, target, kind FROM entries "
            f"WHERE target IN ({_in(len(by_id))}) AND kind IN ('post', 'react', 'repost')",
            list(by_id),
        ).fetchall():
            _, parent_author, parent_fid = by_id[target]
            if r_fid != parent_fid:
                if r_kind == "post":
                    notify.append((parent_author, r_ts, r_id, r_eid, "reply"))
                else:
                    acts.append((parent_author, r_ts, r_id, r_eid, r_kind))
    if notify:
        conn.executemany(
            # A reply to my post that also mentions me (every reply Node.post
            # makes does) is a reply: that says more than "mentioned you".
            "INSERT INTO notify(author, ts, id, eid, why) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(author, ts, id) DO UPDATE SET why = excluded.why "
            "WHERE excluded.why = 'reply'",
            notify,
        )
    if acts:
        conn.executemany(
            "INSERT OR IGNORE INTO notify_acts(author, ts, id, eid, why) VALUES (?, ?, ?, ?, ?)",
            acts,
        )
    victims: list[int] = []
    for eid, fid, author, target in pending.deletes:
        conn.execute(
            "INSERT OR IGNORE INTO deletions(target, author) VALUES (?, ?)", (target, author)
        )
        row = conn.execute("SELECT eid, fid FROM entries WHERE id = ?", (target,)).fetchone()
        if row is not None and row[1] == fid and row[0] != eid:
            victims.append(row[0])
    pending.entries, pending.fts, pending.tags, pending.notify = [], [], [], []
    pending.replies, pending.parents, pending.deletes = [], [], []
    pending.acts = []
    return victims


def _recompute_relation(
    conn: sqlite3.Connection, table: str, fid: int, src: bytes, dst: bytes
) -> None:
    on, off = _RELATION_KINDS[table]
    row = conn.execute(
        "SELECT seq, kind FROM entries WHERE target = ? AND kind IN (?, ?) AND fid = ? "
        "AND pstate = 1 ORDER BY seq DESC LIMIT 1",
        (dst, on, off, fid),
    ).fetchone()
    if row is None:
        conn.execute(f"DELETE FROM {table} WHERE src = ? AND dst = ?", (src, dst))
    else:
        conn.execute(
            f"UPDATE {table} SET seq = ?, active = ? WHERE src = ? AND dst = ?",
            (row[0], 1 if row[1] == on else 0, src, dst),
        )


def purge_payload(conn: sqlite3.Connection, eid: int, new_state: str) -> int:
    """Remove an entry's payload and everything derived from it; keep the envelope.

    Args:
        eid: the entry's row id.
        new_state: ``deleted`` or ``dropped``.

    Returns:
        The number of payload bytes removed (0 if there was no payload).
    """
    row = conn.execute(
        "SELECT e.fid, e.seq, e.kind, e.pstate, e.payload, f.author "
        "FROM entries e JOIN feeds f ON f.fid = e.fid WHERE e.eid = ?",
        (eid,),
    ).fetchone()
    if row is None:
        return 0
    fid, _seq, kind, pstate, payload, author = row
    state = PSTATE[new_state]
    if pstate != PSTATE["present"]:
        if pstate != state and pstate != PSTATE["deleted"]:
            conn.execute("UPDATE entries SET pstate = ? WHERE eid = ?", (state, eid))
        return 0
    value = decode_stored_payload(payload)
    if kind == "post" and new_state == "deleted":
        # A deleted reply keeps its place in the thread (shown as deleted);
        # only its content and what was derived from the content go.
        conn.execute(
            "UPDATE entries SET pstate = ?, payload = NULL, aux = NULL WHERE eid = ?", (state, eid)
        )
    else:
        conn.execute(
            "UPDATE entries SET pstate = ?, payload = NULL, target = NULL, root = NULL, "
            "aux = NULL WHERE eid = ?",
            (state, eid),
        )
    if kind == "post":
        key = conn.execute("SELECT sk FROM search_keys WHERE eid = ?", (eid,)).fetchone()
        if key is not None:
            # A contentless FTS5 table forgets a row only when given its text again.
            conn.execute(
                "INSERT INTO post_fts(post_fts, rowid, text) VALUES ('delete', ?, ?)",
                (key[0], value["text"]),
            )
            conn.execute("DELETE FROM search_keys WHERE sk = ?", (key[0],))
        conn.execute("DELETE FROM tags WHERE eid = ?", (eid,))
        conn.execute("DELETE FROM notify WHERE eid = ?", (eid,))
    elif kind == "profile":
        current = conn.execute("SELECT eid FROM profiles WHERE author = ?", (author,)).fetchone()
        if current is not None and current[0] == eid:
            nxt = conn.execute(
                "SELECT eid, seq FROM entries WHERE fid = ? AND kind = 'profile' AND pstate = 1 "
                "ORDER BY seq DESC LIMIT 1",
                (fid,),
            ).fetchone()
            if nxt is None:
                conn.execute("DELETE FROM profiles WHERE author = ?", (author,))
            else:
                conn.execute(
                    "UPDATE profiles SET eid = ?, seq = ? WHERE author = ?",
                    (nxt[0], nxt[1], author),
                )
    elif kind in _RELATION:
        table, _ = _RELATION[kind]
        _recompute_relation(conn, table, fid, author, value["target"])
    if kind in _ACT_KINDS or kind == "follow":
        conn.execute("DELETE FROM notify_acts WHERE eid = ?", (eid,))
    return len(payload)

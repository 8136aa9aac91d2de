"""Notification queries: one author's notifications, newest first, and the unread mark.

Theory. Two derived tables hold notifications, both keyed by the notified
author and maintained by :mod:`.derived`:

* ``notify``: replies to the author's entries and posts mentioning the author
  (what ``mentions`` lists);
* ``notify_acts``: reactions to and reposts of the author's entries, and
  follows of the author.

A page is the merge of both by (timestamp, id), newest first, paged with the
same cursors as every other list. *Unread* is not a timestamp comparison:
timestamps are the authors' claims, and a reply written last week may reach
this node today. It is the local arrival order instead: a notification is
unread when its entry's row id (``eid``, assigned in storage order) is above
the read mark, the highest ``eid`` the owner has seen. The mark lives in the
settings table (key :data:`READ_MARK_KEY`) and only moves forward.

These functions take a connection and run inside whatever transaction the
caller has (reads need none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LocalUsageError
from .model import EntryView, decode_cursor, encode_cursor
from .queries import _views as views_of

__all__ = [
    "NOTIFICATION_KINDS",
    "READ_MARK_KEY",
    "Notification",
    "NotificationPage",
    "backfill",
    "newest_mark",
    "notification_kind",
    "notifications",
    "parse_mark",
    "unread_count",
]

#: What a notification says happened, as ``notification`` in the API.
NOTIFICATION_KINDS = ("reply", "mention", "react", "repost", "follow")
#: The settings key of the read mark (an ``eid``; 0 when nothing was read).
READ_MARK_KEY = "notifications_read"
_MAX_LIMIT = 500
_TOP = (1 << 62, b"")
_IN_CHUNK = 500  # bound on SQL parameters per IN (...) list


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification: the entry that caused it, what it is, and its arrival order."""

    view: EntryView
    kind: str
    eid: int


@dataclass(frozen=True, slots=True)
class NotificationPage:
    """A page of notifications; ``next_cursor`` is the ``before`` of the next page."""

    items: list[Notification]
    next_cursor: str | None


def parse_mark(value: object) -> int:
    """A read mark from its API text form (decimal digits) or the settings value.

    Raises:
        LocalUsageError: not a mark this node gave out (reason ``bad_mark``).
    """
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 19:
        return int(value)
    raise LocalUsageError(
        "not a notification mark: pass the 'mark' a notifications call returned",
        reason="bad_mark",
    )


def notifications(
    conn: sqlite3.Connection,
    me: bytes,
    *,
    limit: int = 50,
    before: str | None = None,
    after_mark: int | None = None,
) -> NotificationPage:
    """``me``'s notifications, newest first by (timestamp, id).

    Args:
        before: a cursor from the previous page.
        after_mark: only notifications that arrived after this read mark (unread).

    Raises:
        LocalUsageError: ``limit`` out of 1..500 or a malformed cursor.
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise LocalUsageError(f"limit must be in 1..{_MAX_LIMIT}", reason="bad_limit")
    ts0, id0 = _TOP if before is None else decode_cursor(before)
    floor = -1 if after_mark is None else after_mark
    part = "SELECT ts, id, eid, why FROM {table} WHERE author = ? AND (ts, id) < (?, ?) AND eid > ?"
    sql = (
        f"SELECT ts, id, eid, why FROM ({part.format(table='notify')} UNION ALL "
        f"{part.format(table='notify_acts')}) ORDER BY ts DESC, id DESC LIMIT ?"
    )
    args = (me, ts0, id0, floor)
    rows = conn.execute(sql, (*args, *args, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    views = {v.id: v for v in views_of(conn, [r[2] for r in rows])}
    items = [Notification(views[r[1]], r[3], r[2]) for r in rows if r[1] in views]
    nxt = encode_cursor(rows[-1][0], rows[-1][1]) if more and rows else None
    return NotificationPage(items, nxt)


def unread_count(
    conn: sqlite3.Connection, me: bytes, mark: int, excluded: Iterable[bytes] = ()
) -> int:
    """How many of ``me``'s notifications arrived after ``mark``, not counting ``excluded`` authors'."""
    shut = list(dict.fromkeys(excluded))
    total = 0
    for table in ("notify", "notify_acts"):
        total += conn.execute(
            f"SELECT count(*) FROM {table} WHERE author = ? AND eid > ?", (me, mark)
        ).fetchone()[0]
        # Less the excluded authors' rows, a bounded list of them at a time.
        for i in range(0, len(shut), _IN_CHUNK):
            chunk = shut[i : i + _IN_CHUNK]
            total -= conn.execute(
                f"SELECT count(*) FROM {table} n JOIN entries e ON e.eid = n.eid "
                "JOIN feeds f ON f.fid = e.fid WHERE n.author = ? AND n.eid > ? "
                f"AND f.author IN ({','.join('?' * len(chunk))})",
                (me, mark, *chunk),
            ).fetchone()[0]
    return int(total)


def newest_mark(conn: sqlite3.Connection, me: bytes) -> int:
    """The read mark that covers every notification ``me`` has now (0 if none)."""
    row = conn.execute(
        "SELECT max(m) FROM (SELECT max(eid) AS m FROM notify WHERE author = ? "
        "UNION ALL SELECT max(eid) FROM notify_acts WHERE author = ?)",
        (me, me),
    ).fetchone()
    return int(row[0] or 0)


def notification_kind(conn: sqlite3.Connection, me: bytes, id_: bytes) -> str | None:
    """What entry ``id_`` notifies ``me`` of (``reply``, ``react``, ...), or None."""
    for table in ("notify", "notify_acts"):
        row = conn.execute(
            f"SELECT n.why FROM {table} n JOIN entries e ON e.eid = n.eid "
            "WHERE e.id = ? AND n.author = ?",
            (id_, me),
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None


# Notifications for the reactions, reposts and follows a version-1 database
# already holds (version 1 kept only replies and mentions). The same rules as
# derived.py: a payload present, and the actor is not the notified author.
_BACKFILL = (
    "INSERT OR IGNORE INTO notify_acts(author, ts, id, eid, why) "
    "SELECT tf.author, e.ts, e.id, e.eid, e.kind FROM entries e "
    "JOIN entries t ON t.id = e.target JOIN feeds tf ON tf.fid = t.fid "
    "WHERE e.kind IN ('react', 'repost') AND e.pstate = 1 AND t.fid != e.fid",
    "INSERT OR IGNORE INTO notify_acts(author, ts, id, eid, why) "
    "SELECT e.target, e.ts, e.id, e.eid, 'follow' FROM entries e "
    "JOIN feeds f ON f.fid = e.fid "
    "WHERE e.kind = 'follow' AND e.pstate = 1 AND e.target != f.author",
)


def backfill(conn: sqlite3.Connection) -> None:
    """Add the ``notify_acts`` rows of the entries already stored (the v1 -> v2 upgrade)."""
    for statement in _BACKFILL:
        conn.execute(statement)

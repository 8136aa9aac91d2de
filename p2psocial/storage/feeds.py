"""Feed-level reads for sync: heads, entry ranges, fork state, held payloads.

These answer a peer's "what do you have" and "send me what follows": they
read the ``feeds`` row counters kept by the ingest transaction and the
entries table, never the derived social tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .batch import chunks
from .schema import PSTATE

__all__ = ["entries_after", "forked_feeds", "heads", "payloads_held", "sync_progress"]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def heads(conn: sqlite3.Connection, authors: Iterable[bytes] | None) -> dict[bytes, int]:
    """Contiguous head seq per author with entries (all of them if ``authors`` is None)."""
    if authors is None:
        return {
            a: s for a, s in conn.execute("SELECT author, head_seq FROM feeds WHERE n_entries > 0")
        }
    out: dict[bytes, int] = {}
    for chunk in chunks(list(dict.fromkeys(authors))):
        q = f"SELECT author, head_seq FROM feeds WHERE n_entries > 0 AND author IN ({_marks(len(chunk))})"
        out.update(conn.execute(q, chunk).fetchall())
    return out


def entries_after(
    conn: sqlite3.Connection, author: bytes, seq: int, limit: int
) -> list[tuple[bytes, bytes | None]]:
    """(raw, payload) of ``author``'s entries seq+1, seq+2, ..., up to the first gap."""
    rows = conn.execute(
        "SELECT e.seq, e.raw, e.payload FROM entries e JOIN feeds f ON f.fid = e.fid "
        "WHERE f.author = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
        (author, seq, max(0, limit)),
    ).fetchall()
    out: list[tuple[bytes, bytes | None]] = []
    expect = seq + 1
    for s, raw, payload in rows:
        if s != expect:
            break
        out.append((raw, payload))
        expect += 1
    return out


def forked_feeds(conn: sqlite3.Connection, authors: Iterable[bytes] | None) -> dict[bytes, int]:
    """author -> fork seq of every forked feed (of those in ``authors``, if given)."""
    q = "SELECT author, fork_seq FROM feeds WHERE status = 'forked'"
    if authors is None:
        return {a: int(s) for a, s in conn.execute(q)}
    out: dict[bytes, int] = {}
    for chunk in chunks(list(dict.fromkeys(authors))):
        rows = conn.execute(q + f" AND author IN ({_marks(len(chunk))})", chunk)
        out.update((a, int(s)) for a, s in rows)
    return out


def payloads_held(conn: sqlite3.Connection, ids: Iterable[bytes]) -> set[bytes]:
    """Those of ``ids`` held with their payload, or deleted."""
    out: set[bytes] = set()
    for chunk in chunks(list(dict.fromkeys(ids))):
        rows = conn.execute(
            f"SELECT id FROM entries WHERE pstate IN (?, ?) AND id IN ({_marks(len(chunk))})",
            (PSTATE["present"], PSTATE["deleted"], *chunk),
        )
        out.update(r[0] for r in rows)
    return out


def sync_progress(
    conn: sqlite3.Connection, tops: dict[bytes, int], recent: int
) -> dict[bytes, tuple[int, int, int, int]]:
    """How far each feed has caught up (spec/sync.md 5.6).

    Args:
        tops: author -> the highest seq known to exist (peers' heads; 0 if none
            known). The highest seq held counts too.
        recent: the size of the recent part (the newest entries).

    Returns:
        author -> (entries held, contiguous head, best known head, entries
        held among the newest ``recent`` seqs up to that head).
    """
    out: dict[bytes, tuple[int, int, int, int]] = {}
    for author, top in tops.items():
        row = conn.execute(
            "SELECT fid, n_entries, head_seq, max_seq FROM feeds WHERE author = ?", (author,)
        ).fetchone()
        if row is None:
            out[author] = (0, 0, top, 0)
            continue
        fid, n, head, max_seq = row
        best = max(top, max_seq, head)
        got = 0
        if best > 0:
            got = conn.execute(
                "SELECT count(*) FROM entries WHERE fid = ? AND seq BETWEEN ? AND ?",
                (fid, max(1, best - recent + 1), best),
            ).fetchone()[0]
        out[author] = (int(n), int(head), int(best), int(got))
    return out

"""Step 1 of an ingest transaction: sort a batch out into verification jobs.

New items are grouped by author and cut into contiguous runs. A run is
anchored on the held entry just below it, if any, and must link to the held
entry just above it. An item at a seq already held under another id, or
taken by an earlier item of the batch, becomes a fork candidate of its own
(:mod:`.forks`). Each feed's row is read once and cached for the whole
transaction as a :class:`Feed`, which also gathers what the batch changes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..errors import StorageError
from ..protocol.entries import Entry, decode_entry_untrusted
from .batch import Item, chunks

__all__ = ["Feed", "Job", "held_around", "plan_author"]


@dataclass(slots=True)
class Feed:
    """A feed's row, cached for the transaction, plus what the batch changes."""

    author: bytes
    fid: int | None
    head_seq: int
    max_seq: int
    fork_seq: int | None
    blocked: bool
    head_id: bytes | None = None
    n_delta: int = 0
    bytes_delta: int = 0
    lowest_new: int | None = None
    top_new: tuple[int, bytes] | None = None
    old_max: int = 0


@dataclass(slots=True)
class Job:
    """One verification unit: a contiguous run, or one fork candidate."""

    feed: Feed
    items: list[Item]
    anchor: Entry | None
    fork_with: bytes | Item | None = None  # held raw entry, or the batch's first at that seq
    reject: str | None = None


def _anchor(author: bytes, seq: int, id_: bytes) -> Entry:
    """A stand-in for a held entry, enough for ``check_link`` (author, seq, id).

    Held entries were authenticated when stored, so the link check needs only
    these three fields; decoding the whole envelope would cost more.
    """
    return Entry(author, seq, None, 0, "", b"", 0, b"", b"", id_)


def held_around(
    conn: sqlite3.Connection, feeds: dict[bytes, Feed], by_author: dict[bytes, list[Item]]
) -> dict[bytes, dict[int, tuple[bytes, bytes | None]]]:
    """Held (id, raw) at the seqs around each author's items: anchors, forks, links above.

    Only seqs up to the feed's max_seq can be held. When all a batch needs
    is the anchor at the contiguous head (a live entry extending its feed),
    the feed row already names it and no query is made; that shortcut
    knows only the id, so the raw bytes are left None (see ``_held_raw``).
    """
    held: dict[bytes, dict[int, tuple[bytes, bytes | None]]] = {}
    pairs: list[tuple[int, int]] = []
    by_fid: dict[int, bytes] = {}
    for author, group in by_author.items():
        feed = feeds[author]
        held[author] = {}
        if feed.fid is None:
            continue
        seqs = {it.entry.seq for it in group}
        wanted = {x for s in seqs for x in (s - 1, s, s + 1) if 1 <= x <= feed.max_seq}
        if wanted == {feed.head_seq} and feed.head_seq not in seqs and feed.head_id is not None:
            # No item at the head itself: a rival there needs its bytes.
            held[author][feed.head_seq] = (feed.head_id, None)
            continue
        by_fid[feed.fid] = author
        pairs.extend((feed.fid, x) for x in wanted)
    for chunk in chunks(pairs):
        values = ",".join("(?, ?)" for _ in chunk)
        params = [v for pair in chunk for v in pair]
        for fid, seq, id_, raw in conn.execute(
            f"WITH w(fid, seq) AS (VALUES {values}) SELECT e.fid, e.seq, e.id, e.raw "
            "FROM w JOIN entries e ON e.fid = w.fid AND e.seq = w.seq",
            params,
        ):
            held[by_fid[fid]][seq] = (id_, raw)
    return held


def _held_raw(
    conn: sqlite3.Connection, seq: int, held: dict[int, tuple[bytes, bytes | None]]
) -> bytes:
    """The bytes of the held entry at ``seq``, read now if ``held_around`` had only its id.

    Raises:
        StorageError: the feed row names an entry the table lacks.
    """
    id_, raw = held[seq]
    if raw is None:
        row = conn.execute("SELECT raw FROM entries WHERE id = ?", (id_,)).fetchone()
        if row is None:
            raise StorageError(
                f"the feed row names entry {id_.hex()[:12]}, which is not held",
                reason="corrupt",
            )
        raw = bytes(row[0])
        held[seq] = (id_, raw)
    return raw


def plan_author(
    conn: sqlite3.Connection,
    feed: Feed,
    group: list[Item],
    held: dict[int, tuple[bytes, bytes | None]],
    allow_segments: bool,
    jobs: list[Job],
    late: list[Job],
) -> None:
    """Cut one author's new items into jobs: fork candidates and anchored runs.

    A rival of a held entry goes to ``jobs`` first, so that a proven fork
    freezes the feed before the runs above it are stored; a rival of an
    earlier item of the batch goes to ``late``, after that item is stored.
    A run is refused up front (``job.reject``) when it cannot connect.
    """
    author = feed.author
    if len(group) > 1:
        group.sort(key=lambda it: it.entry.seq)
    runs: list[list[Item]] = []
    first_at: dict[int, Item] = {}
    last_seq = -1
    for it in group:
        s = it.entry.seq
        if s in held:
            # Same seq, another id (equal ids were duplicates): a fork if it verifies.
            # Checked first, so a proven fork freezes the feed before runs above it.
            jobs.append(Job(feed, [it], None, fork_with=_held_raw(conn, s, held)))
            continue
        if s in first_at:
            late.append(Job(feed, [it], None, fork_with=first_at[s]))
            continue
        first_at[s] = it
        if s == last_seq + 1 and runs:
            runs[-1].append(it)
        else:
            runs.append([it])
        last_seq = s
    for run in runs:
        first, top = run[0].entry, run[-1].entry
        below = held.get(first.seq - 1)
        job = Job(feed, run, _anchor(author, first.seq - 1, below[0]) if below else None)
        if below is None and first.seq > 1 and not allow_segments:
            job.reject = "no_prev"
        if top.seq + 1 in held:
            above = decode_entry_untrusted(_held_raw(conn, top.seq + 1, held))
            if above.prev != top.id:
                job.reject = "prev_mismatch"
        jobs.append(job)

"""The owner's own writes: appending to an own feed, blocking, forgetting a feed.

Each function runs inside a write transaction that the :class:`~.store.Store`
has opened, and uses an :class:`~.ingest.IngestTxn` for the row bookkeeping
that ingest also does (feed counters, heads, purging payloads).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ..errors import LocalUsageError
from ..protocol.entries import Entry, create_entry
from ..protocol.identity import SigningKey
from . import derived
from .ingest import IngestTxn
from .schema import PSTATE

__all__ = ["append_own", "block_feed", "forget_feed"]


def append_own(
    txn: IngestTxn, key: SigningKey, kind: str, payload: dict[str, Any], now_ms: int
) -> Entry:
    """Sign the next entry of ``key``'s feed and write it in ``txn``.

    Raises:
        LocalUsageError: the payload breaks its kind's schema or a size
            limit, or the feed is forked.
    """
    feed = txn.feed(key.public_key)
    if feed.fork_seq is not None:
        raise LocalUsageError(
            "this identity's feed is forked; it cannot be extended", reason="forked"
        )
    prev: bytes | None = None
    seq = 1
    if feed.fid is not None:
        row = txn.conn.execute(
            "SELECT seq, id FROM entries WHERE fid = ? ORDER BY seq DESC LIMIT 1",
            (feed.fid,),
        ).fetchone()
        if row is not None:
            seq, prev = row[0] + 1, row[1]
    entry, data = create_entry(
        key, seq=seq, prev=prev, timestamp=now_ms, kind=kind, payload=payload
    )
    value = derived.decode_stored_payload(data)
    txn.insert(feed, entry, data, value)
    txn.finish()
    return entry


def _purge_present(txn: IngestTxn, fid: int) -> None:
    """Drop every payload held of feed ``fid``; the envelopes stay."""
    for (eid,) in txn.conn.execute(
        "SELECT eid FROM entries WHERE fid = ? AND pstate = ?", (fid, PSTATE["present"])
    ).fetchall():
        txn.purge(eid, "dropped")


def block_feed(txn: IngestTxn, author: bytes) -> None:
    """Mark ``author``'s feed blocked and drop the payloads held of it."""
    fid = txn.ensure_fid(txn.feed(author))
    txn.conn.execute("UPDATE feeds SET blocked = 1 WHERE fid = ?", (fid,))
    _purge_present(txn, fid)


def forget_feed(
    conn: sqlite3.Connection, author: bytes, new_txn: Callable[[sqlite3.Connection], IngestTxn]
) -> int:
    """Remove the entries, payloads and fork proofs held of ``author``'s feed.

    Args:
        new_txn: makes the transaction's bookkeeping, once there is a feed.

    Returns:
        The number of entries removed.
    """
    row = conn.execute("SELECT fid FROM feeds WHERE author = ?", (author,)).fetchone()
    if row is None:
        return 0
    fid = row[0]
    _purge_present(new_txn(conn), fid)
    # Deleted replies keep their thread links; and other authors'
    # notifications may name these entries.
    conn.execute("DELETE FROM notify WHERE eid IN (SELECT eid FROM entries WHERE fid = ?)", (fid,))
    n = conn.execute("DELETE FROM entries WHERE fid = ?", (fid,)).rowcount
    conn.execute("DELETE FROM fork_proofs WHERE fid = ?", (fid,))
    conn.execute(
        "UPDATE feeds SET head_seq = 0, head_id = NULL, max_seq = 0, status = 'ok', "
        "fork_seq = NULL, n_entries = 0, payload_bytes = 0 WHERE fid = ?",
        (fid,),
    )
    return int(n)

"""The synchronous store: one SQLite connection, ingest, local appends, state.

Durability. The database runs in WAL mode. Each write transaction is one
``BEGIN IMMEDIATE`` ... ``COMMIT``, so a crash at any moment leaves either all
or nothing of a batch. Two synchronous levels are used on purpose:

* ``synchronous=NORMAL`` for entries ingested from peers. In WAL mode a
  NORMAL commit is durable against the *process* dying (``kill -9``): the
  frames are in the OS page cache and the next open replays them. Only an OS
  crash or power cut can lose the last commits, and those entries are
  re-fetched from peers on the next sync.
* ``synchronous=FULL`` for the node's own acts: :meth:`Store.append_local`,
  blocks, settings. An own entry that was acknowledged to the user and pushed
  to peers must not vanish even on power loss: the node would then sign a
  different entry with the same seq, and fork its own feed. A FULL commit
  fsyncs the WAL, which also hardens every NORMAL commit before it.

Threads. The connection is opened with ``check_same_thread=False`` and must be
used by one thread at a time (the trio façade guarantees that with one
``CapacityLimiter``). Signature checks of an ingest batch run on a small
thread pool: ``cryptography`` releases the GIL while it verifies.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from ..errors import LocalUsageError, StorageError
from ..protocol.entries import (
    Entry,
    check_timestamp,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
)
from ..protocol.errors import DecodeError, ProtocolError
from ..protocol.feeds import detect_fork, verify_run
from ..protocol.identity import SigningKey
from . import derived, queries
from .model import EntryView, Outcome, Page
from .schema import PSTATE, prepare_database

__all__ = ["Store"]

_CHUNK = 500  # bound on the number of SQL parameters per IN (...) query
_PRESENT, _ABSENT, _DELETED, _DROPPED = (
    PSTATE["present"],
    PSTATE["absent"],
    PSTATE["deleted"],
    PSTATE["dropped"],
)
_TL_KINDS = frozenset(derived.TIMELINE_KINDS)


@dataclass(slots=True)
class _Item:
    index: int
    entry: Entry
    payload: bytes | None
    value: dict[str, Any] | None


@dataclass(slots=True)
class _Feed:
    author: bytes
    fid: int | None
    head_seq: int
    max_seq: int
    fork_seq: int | None
    blocked: bool
    n_delta: int = 0
    bytes_delta: int = 0
    lowest_new: int | None = None


@dataclass(slots=True)
class _Job:
    """One verification unit: a contiguous run, or one fork candidate."""

    feed: _Feed
    items: list[_Item]
    anchor: Entry | None
    fork_with: Entry | _Item | None = None
    reject: str | None = None
    future: Future[BaseException | None] | None = None
    extra: list[_Job] = field(default_factory=list)


def _verify_job(run: list[Entry], anchor: Entry | None) -> BaseException | None:
    try:
        verify_run(run, anchor)
    except ProtocolError as exc:
        return exc
    return None


def _verify_chunk(jobs: list[tuple[list[Entry], Entry | None]]) -> list[BaseException | None]:
    return [_verify_job(run, anchor) for run, anchor in jobs]


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class Store:
    """Everything a node knows, in one SQLite file.

    Use :meth:`open`; call :meth:`close` when done. Not thread-safe: use it
    from one thread at a time (see :mod:`p2psocial.storage.aio`).
    """

    def __init__(
        self, conn: sqlite3.Connection, path: str, *, verify_threads: int, allow_segments: bool
    ) -> None:
        self._conn = conn
        self._path = path
        self._verify_threads = verify_threads
        self._pool: ThreadPoolExecutor | None = None
        self._allow_segments = allow_segments
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()

    # ------------------------------------------------------------------ open/close

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        verify_threads: int = 2,
        allow_segments: bool = True,
    ) -> Store:
        """Open (or create) the database at ``path``.

        Args:
            path: the SQLite file; created if missing.
            verify_threads: size of the signature-verification pool (0: verify
                on the calling thread).
            allow_segments: accept verified runs that do not connect to the
                feed's contiguous head (filled in later). When False such
                entries are rejected with reason ``no_prev``.

        Raises:
            StorageError: not an SQLite file, not a p2psocial database, a
                newer schema, or the file cannot be opened.
        """
        spath = os.fspath(path)
        try:
            conn = sqlite3.connect(
                spath, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {spath}: {exc}", reason="open_failed") from None
        try:
            prepare_database(conn, spath)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(f"cannot use {spath}: {exc}", reason="not_sqlite") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, spath, verify_threads=verify_threads, allow_segments=allow_segments)

    def close(self) -> None:
        """Close the connection and the verify pool. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self._path

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection (tests and benches only)."""
        return self._conn

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._conn
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

    # ------------------------------------------------------------------ ingest

    def ingest(self, items: Sequence[tuple[bytes, bytes | None]], *, now_ms: int) -> list[Outcome]:
        """Validate and store a batch of entries from peers, in one transaction.

        Contiguous runs of one author are authenticated with one signature
        (``verify_run``); other entries are verified one by one on the verify
        pool. The same entry twice changes nothing. A rejected entry leaves no
        row behind. An entry already held without its payload gets the payload
        if this item carries it.

        Args:
            items: (entry bytes, payload bytes or None), in any order.
            now_ms: the local clock, for the future-timestamp check.

        Returns:
            One :class:`Outcome` per item, in order.

        Raises:
            StorageError: the database failed; nothing of the batch is kept.
        """
        outcomes: list[Outcome | None] = [None] * len(items)
        decoded: list[_Item] = []
        for i, (raw, payload) in enumerate(items):
            try:
                entry = decode_entry_untrusted(raw)
            except DecodeError as exc:
                outcomes[i] = Outcome("rejected", exc.reason)
                continue
            try:
                check_timestamp(entry, now_ms)
                value = decode_payload_untrusted(entry, payload) if payload is not None else None
            except ProtocolError as exc:
                outcomes[i] = Outcome("rejected", exc.reason, entry.id, entry.author, entry.seq)
                continue
            decoded.append(_Item(i, entry, payload, value))
        if decoded:
            with self._write():
                self._ingest_locked(decoded, outcomes)
        result: list[Outcome] = []
        for out in outcomes:
            assert out is not None
            self._counts[out.status] += 1
            if out.status == "rejected":
                self._rejected[out.reason or "unknown"] += 1
            result.append(out)
        return result

    def _ingest_locked(self, decoded: list[_Item], outcomes: list[Outcome | None]) -> None:
        conn = self._conn
        existing: dict[bytes, tuple[int, int, int]] = {}
        for chunk in _chunks([it.entry.id for it in decoded]):
            q = "SELECT id, eid, pstate, fid FROM entries WHERE id IN ({})".format(
                ",".join("?" * len(chunk))
            )
            for id_, eid, pstate, fid in conn.execute(q, chunk):
                existing[id_] = (eid, pstate, fid)
        by_author: dict[bytes, list[_Item]] = {}
        first_in_batch: dict[bytes, _Item] = {}
        for it in decoded:
            e = it.entry
            if e.id in existing:
                eid, pstate, fid = existing[e.id]
                outcomes[it.index] = self._fill_payload(it, eid, pstate, fid)
                if outcomes[it.index].status == "stored":  # type: ignore[union-attr]
                    existing[e.id] = (eid, _PRESENT, fid)
                continue
            if e.id in first_in_batch:
                first = first_in_batch[e.id]
                if first.payload is None and it.payload is not None:
                    first.payload, first.value = it.payload, it.value
                outcomes[it.index] = Outcome("duplicate", None, e.id, e.author, e.seq)
                continue
            first_in_batch[e.id] = it
            by_author.setdefault(e.author, []).append(it)

        jobs: list[_Job] = []
        late_forks: list[_Job] = []
        for author, group in by_author.items():
            a_jobs, a_late = self._plan_author(author, group, outcomes)
            jobs.extend(a_jobs)
            late_forks.extend(a_late)
        self._run_jobs(jobs, outcomes)
        self._run_jobs(late_forks, outcomes)
        feeds = {job.feed.author: job.feed for job in jobs + late_forks}
        for feed in feeds.values():
            self._finish_feed(feed)

    def _load_feed(self, author: bytes) -> _Feed:
        row = self._conn.execute(
            "SELECT fid, head_seq, max_seq, fork_seq, blocked FROM feeds WHERE author = ?",
            (author,),
        ).fetchone()
        if row is None:
            return _Feed(author, None, 0, 0, None, False)
        return _Feed(author, row[0], row[1], row[2], row[3], bool(row[4]))

    def _held(self, feed: _Feed, seqs: Iterable[int]) -> dict[int, Entry]:
        if feed.fid is None:
            return {}
        wanted = sorted(set(seqs))
        held: dict[int, Entry] = {}
        for chunk in _chunks(wanted):
            q = "SELECT seq, raw FROM entries WHERE fid = ? AND seq IN ({})".format(
                ",".join("?" * len(chunk))
            )
            for seq, raw in self._conn.execute(q, (feed.fid, *chunk)):
                held[seq] = decode_entry_untrusted(raw)
        return held

    def _plan_author(
        self, author: bytes, group: list[_Item], outcomes: list[Outcome | None]
    ) -> tuple[list[_Job], list[_Job]]:
        feed = self._load_feed(author)
        group.sort(key=lambda it: it.entry.seq)
        seqs = {it.entry.seq for it in group}
        held = self._held(feed, seqs | {s - 1 for s in seqs} | {s + 1 for s in seqs})
        jobs: list[_Job] = []
        late: list[_Job] = []
        runs: list[list[_Item]] = []
        last_seq: int | None = None
        first_at: dict[int, _Item] = {}
        for it in group:
            s = it.entry.seq
            if s in held:
                # Same seq, different id (identical ids were duplicates): fork?
                jobs.append(_Job(feed, [it], None, fork_with=held[s]))
                continue
            if s in first_at:
                late.append(_Job(feed, [it], None, fork_with=first_at[s]))
                continue
            first_at[s] = it
            if last_seq is not None and s == last_seq + 1 and runs:
                runs[-1].append(it)
            else:
                runs.append([it])
            last_seq = s
        # Fork candidates against held entries go first: a proven fork freezes
        # the feed before any run above it is stored.
        for run in runs:
            first, top = run[0].entry, run[-1].entry
            anchor = held.get(first.seq - 1)
            job = _Job(feed, run, anchor)
            if anchor is None and first.seq > 1 and not self._allow_segments:
                job.reject = "no_prev"
            above = held.get(top.seq + 1)
            if above is not None and above.prev != top.id:
                job.reject = "prev_mismatch"
            jobs.append(job)
        return jobs, late

    def _get_pool(self) -> ThreadPoolExecutor | None:
        if self._verify_threads <= 0:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._verify_threads, thread_name_prefix="p2ps-verify")
        return self._pool

    def _run_jobs(self, jobs: list[_Job], outcomes: list[Outcome | None]) -> None:
        """Verify jobs (on the pool when there are several) and store them in order.

        The main thread stores job k while the pool verifies the following
        ones, so SQLite work and signature checks overlap.
        """
        if not jobs:
            return
        work = [j for j in jobs if j.reject is None]
        pool = self._get_pool() if len(work) > 1 else None
        results: dict[int, BaseException | None] = {}
        pending: list[tuple[list[_Job], Future[list[BaseException | None]]]] = []
        if pool is not None:
            # Small chunks amortize the executor's per-task cost while keeping
            # both workers busy and the pipeline short.
            step = max(1, min(32, len(work) // (4 * self._verify_threads) or 1))
            for i in range(0, len(work), step):
                chunk = work[i : i + step]
                args = [self._verify_args(j) for j in chunk]
                pending.append((chunk, pool.submit(_verify_chunk, args)))
        pending_iter = iter(pending)
        for job in jobs:
            if job.reject is not None:
                self._reject_all(job, job.reject, outcomes)
                continue
            if id(job) not in results:
                if pool is not None:
                    chunk, fut = next(pending_iter)
                    for j, r in zip(chunk, fut.result(), strict=True):
                        results[id(j)] = r
                else:
                    run, anchor = self._verify_args(job)
                    results[id(job)] = _verify_job(run, anchor)
            self._store_job(job, results[id(job)], outcomes)

    @staticmethod
    def _verify_args(job: _Job) -> tuple[list[Entry], Entry | None]:
        if job.fork_with is not None:
            return [job.items[0].entry], None
        return [it.entry for it in job.items], job.anchor

    def _reject_all(self, job: _Job, reason: str, outcomes: list[Outcome | None]) -> None:
        for it in job.items:
            e = it.entry
            outcomes[it.index] = Outcome("rejected", reason, e.id, e.author, e.seq)

    def _store_job(
        self, job: _Job, error: BaseException | None, outcomes: list[Outcome | None]
    ) -> None:
        feed = job.feed
        if job.fork_with is not None:
            it = job.items[0]
            e = it.entry
            if error is not None:
                outcomes[it.index] = Outcome(
                    "rejected", getattr(error, "reason", "invalid"), e.id, e.author, e.seq
                )
                return
            other = job.fork_with
            if isinstance(other, _Item):
                out = outcomes[other.index]
                if out is None or out.status != "stored":
                    outcomes[it.index] = Outcome("rejected", "seq_conflict", e.id, e.author, e.seq)
                    return
                other = other.entry
            proof = detect_fork(other, e)
            assert proof is not None
            self._record_fork(feed, e.seq, proof.to_bytes())
            outcomes[it.index] = Outcome("rejected", "fork", e.id, e.author, e.seq)
            return
        if error is None:
            for it in job.items:
                self._store_checked(feed, it, outcomes)
            return
        # The run as a whole failed: find out entry by entry what is valid.
        prev = job.anchor
        prev_rejected = False
        for it in job.items:
            e = it.entry
            if prev_rejected:
                outcomes[it.index] = Outcome("rejected", "no_prev", e.id, e.author, e.seq)
                continue
            err = _verify_job([e], prev)
            if err is not None:
                outcomes[it.index] = Outcome(
                    "rejected", getattr(err, "reason", "invalid"), e.id, e.author, e.seq
                )
                prev_rejected = True
                continue
            self._store_checked(feed, it, outcomes)
            prev = e

    def _store_checked(self, feed: _Feed, it: _Item, outcomes: list[Outcome | None]) -> None:
        e = it.entry
        if feed.fork_seq is not None and e.seq >= feed.fork_seq:
            outcomes[it.index] = Outcome("rejected", "forked", e.id, e.author, e.seq)
            return
        reason = self._insert(feed, e, it.payload, it.value)
        outcomes[it.index] = Outcome("stored", reason, e.id, e.author, e.seq)

    def _ensure_fid(self, feed: _Feed) -> int:
        if feed.fid is None:
            cur = self._conn.execute(
                "INSERT INTO feeds(author) VALUES (?) ON CONFLICT(author) DO UPDATE SET author = author "
                "RETURNING fid",
                (feed.author,),
            )
            feed.fid = cur.fetchone()[0]
        return feed.fid

    def _insert(
        self, feed: _Feed, e: Entry, payload: bytes | None, value: dict[str, Any] | None
    ) -> str | None:
        """Insert a verified entry; return a note (``blocked``/``deleted``) or None."""
        conn = self._conn
        fid = self._ensure_fid(feed)
        note: str | None = None
        pstate = _PRESENT if payload is not None else _ABSENT
        if payload is not None and feed.blocked:
            pstate, payload, value, note = _DROPPED, None, None, "blocked"
        if conn.execute(
            "SELECT 1 FROM deletions WHERE target = ? AND author = ?", (e.id, e.author)
        ).fetchone():
            pstate, payload, value, note = _DELETED, None, None, "deleted"
        target, root, aux = derived.derived_columns(e.kind, value)
        cur = conn.execute(
            "INSERT INTO entries(fid, seq, id, ts, kind, raw, pstate, payload, target, root, aux, tl) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                e.seq,
                e.id,
                e.timestamp,
                e.kind,
                e.signature + e.envelope,
                pstate,
                payload,
                target,
                root,
                aux,
                1 if e.kind in _TL_KINDS else None,
            ),
        )
        eid = cur.lastrowid
        assert eid is not None
        feed.n_delta += 1
        if feed.lowest_new is None or e.seq < feed.lowest_new:
            feed.lowest_new = e.seq
        feed.max_seq = max(feed.max_seq, e.seq)
        if e.kind in _TL_KINDS:
            derived.notify_waiting_replies(conn, author=e.author, fid=fid, id_=e.id)
        if value is not None and payload is not None:
            feed.bytes_delta += len(payload)
            self._apply(fid, e, eid, value)
        return note

    def _apply(self, fid: int, e: Entry, eid: int, value: dict[str, Any]) -> None:
        victims = derived.apply_payload(
            self._conn,
            eid=eid,
            fid=fid,
            author=e.author,
            seq=e.seq,
            id_=e.id,
            ts=e.timestamp,
            kind=e.kind,
            value=value,
        )
        for victim in victims:
            self._purge(victim, "deleted")

    def _purge(self, eid: int, state: str) -> None:
        removed = derived.purge_payload(self._conn, eid, state)
        if removed:
            self._conn.execute(
                "UPDATE feeds SET payload_bytes = payload_bytes - ? "
                "WHERE fid = (SELECT fid FROM entries WHERE eid = ?)",
                (removed, eid),
            )

    def _fill_payload(self, it: _Item, eid: int, pstate: int, fid: int) -> Outcome:
        e = it.entry
        if it.payload is None or it.value is None or pstate == _PRESENT:
            return Outcome("duplicate", None, e.id, e.author, e.seq)
        if pstate == _DELETED:
            return Outcome("duplicate", "deleted", e.id, e.author, e.seq)
        blocked = self._conn.execute("SELECT blocked FROM feeds WHERE fid = ?", (fid,)).fetchone()[
            0
        ]
        if blocked:
            return Outcome("duplicate", "blocked", e.id, e.author, e.seq)
        target, root, aux = derived.derived_columns(e.kind, it.value)
        self._conn.execute(
            "UPDATE entries SET pstate = ?, payload = ?, target = ?, root = ?, aux = ? WHERE eid = ?",
            (_PRESENT, it.payload, target, root, aux, eid),
        )
        self._conn.execute(
            "UPDATE feeds SET payload_bytes = payload_bytes + ? WHERE fid = ?",
            (len(it.payload), fid),
        )
        self._apply(fid, e, eid, it.value)
        return Outcome("stored", None, e.id, e.author, e.seq)

    def _record_fork(self, feed: _Feed, seq: int, proof: bytes) -> None:
        fid = self._ensure_fid(feed)
        self._conn.execute(
            "INSERT OR IGNORE INTO fork_proofs(fid, seq, proof) VALUES (?, ?, ?)", (fid, seq, proof)
        )
        feed.fork_seq = seq if feed.fork_seq is None else min(feed.fork_seq, seq)
        self._conn.execute(
            "UPDATE feeds SET status = 'forked', fork_seq = ? WHERE fid = ?", (feed.fork_seq, fid)
        )

    def _finish_feed(self, feed: _Feed) -> None:
        """Write back counters and advance the contiguous head."""
        if feed.fid is None:
            return
        conn = self._conn
        head_seq = feed.head_seq
        head_id: bytes | None = None
        if feed.lowest_new is not None and feed.lowest_new <= head_seq + 1:
            while True:
                rows = conn.execute(
                    "SELECT seq, id FROM entries WHERE fid = ? AND seq > ? ORDER BY seq LIMIT 1000",
                    (feed.fid, head_seq),
                ).fetchall()
                advanced = False
                for seq, id_ in rows:
                    if seq != head_seq + 1:
                        break
                    head_seq, head_id, advanced = seq, id_, True
                else:
                    if advanced and len(rows) == 1000:
                        continue
                break
        conn.execute(
            "UPDATE feeds SET n_entries = n_entries + ?, payload_bytes = payload_bytes + ?, "
            "max_seq = max(max_seq, ?), head_seq = ?, head_id = coalesce(?, head_id) WHERE fid = ?",
            (feed.n_delta, feed.bytes_delta, feed.max_seq, head_seq, head_id, feed.fid),
        )
        feed.head_seq = head_seq
        feed.n_delta = feed.bytes_delta = 0
        feed.lowest_new = None

    # ------------------------------------------------------------------ local writes

    def append_local(
        self, key: SigningKey, kind: str, payload: dict[str, Any], *, now_ms: int
    ) -> Entry:
        """Create, sign and durably store the next entry of ``key``'s own feed.

        The commit uses ``synchronous=FULL`` (see the module docstring).

        Args:
            key: the identity key of the feed.
            kind: entry kind (``post``, ``follow``, ...); payload: its fields.
            now_ms: the entry's timestamp.

        Returns:
            The new :class:`Entry`.

        Raises:
            LocalUsageError: the payload breaks its kind's schema or a size
                limit (the message names the limit), or the feed is forked.
        """
        author = key.public_key
        with self._write(durable=True) as conn:
            feed = self._load_feed(author)
            if feed.fork_seq is not None:
                raise LocalUsageError(
                    "this identity's feed is forked; it cannot be extended", reason="forked"
                )
            prev: bytes | None = None
            seq = 1
            if feed.fid is not None:
                row = conn.execute(
                    "SELECT seq, id FROM entries WHERE fid = ? ORDER BY seq DESC LIMIT 1",
                    (feed.fid,),
                ).fetchone()
                if row is not None:
                    seq, prev = row[0] + 1, row[1]
            entry, data = create_entry(
                key, seq=seq, prev=prev, timestamp=now_ms, kind=kind, payload=payload
            )
            value = derived.decode_stored_payload(data)
            self._insert(feed, entry, data, value)
            self._finish_feed(feed)
        return entry

    def block_local(self, author: bytes) -> None:
        """Block ``author`` on this node: purge and refuse their payloads.

        Envelopes stay, so their feed remains verifiable and servable.
        """
        with self._write(durable=True) as conn:
            feed = self._load_feed(author)
            fid = self._ensure_fid(feed)
            conn.execute("UPDATE feeds SET blocked = 1 WHERE fid = ?", (fid,))
            for (eid,) in conn.execute(
                "SELECT eid FROM entries WHERE fid = ? AND pstate = ?", (fid, _PRESENT)
            ).fetchall():
                self._purge(eid, "dropped")

    def unblock_local(self, author: bytes) -> None:
        """Lift a local block. Purged payloads come back only if re-ingested."""
        with self._write(durable=True) as conn:
            conn.execute("UPDATE feeds SET blocked = 0 WHERE author = ?", (author,))

    def blocked(self) -> set[bytes]:
        """Authors blocked locally."""
        return {r[0] for r in self._conn.execute("SELECT author FROM feeds WHERE blocked = 1")}

    def drop_payload(self, id_: bytes) -> bool:
        """Drop one entry's payload by local policy; the envelope stays.

        Returns:
            True if a payload was removed.
        """
        with self._write() as conn:
            row = conn.execute("SELECT eid, pstate FROM entries WHERE id = ?", (id_,)).fetchone()
            if row is None or row[1] != _PRESENT:
                return False
            self._purge(row[0], "dropped")
            return True

    # ------------------------------------------------------------------ feeds and sync

    def head(self, author: bytes) -> tuple[int, bytes] | None:
        """(seq, id) of the highest entry contiguous from seq 1, or None."""
        row = self._conn.execute(
            "SELECT head_seq, head_id FROM feeds WHERE author = ? AND head_seq > 0", (author,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def heads(self, authors: Iterable[bytes] | None = None) -> dict[bytes, int]:
        """Contiguous head seq per author (0 if only detached segments are held).

        Args:
            authors: restrict to these; None means every feed with entries.
        """
        if authors is None:
            return {
                a: s
                for a, s in self._conn.execute(
                    "SELECT author, head_seq FROM feeds WHERE n_entries > 0"
                )
            }
        wanted = list(dict.fromkeys(authors))
        out: dict[bytes, int] = {}
        for chunk in _chunks(wanted):
            q = "SELECT author, head_seq FROM feeds WHERE n_entries > 0 AND author IN ({})".format(
                ",".join("?" * len(chunk))
            )
            out.update(self._conn.execute(q, chunk).fetchall())
        return out

    def entries_after(
        self, author: bytes, seq: int, limit: int
    ) -> list[tuple[bytes, bytes | None]]:
        """Entries seq+1, seq+2, ... of ``author`` (stopping at the first gap), oldest first.

        Returns:
            (entry bytes, payload bytes or None when absent, deleted or dropped).
        """
        rows = self._conn.execute(
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

    def get_entry(self, id_: bytes) -> EntryView | None:
        """One entry by id, or None."""
        return queries.get_entry(self._conn, id_)

    def get_raw(self, id_: bytes) -> tuple[bytes, bytes | None] | None:
        """(entry bytes, payload or None) by id, for serving one entry."""
        row = self._conn.execute("SELECT raw, payload FROM entries WHERE id = ?", (id_,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_interest(self, author: bytes, reason: str) -> None:
        """Mark ``author``'s feed as wanted for ``reason`` (self, follow, hops2, peek, inbound...)."""
        with self._write():
            self._conn.execute(
                "INSERT OR IGNORE INTO interests(author, reason) VALUES (?, ?)", (author, reason)
            )

    def clear_interest(self, author: bytes, reason: str) -> None:
        """Remove one reason for wanting ``author``'s feed."""
        with self._write():
            self._conn.execute(
                "DELETE FROM interests WHERE author = ? AND reason = ?", (author, reason)
            )

    def interests(self) -> dict[bytes, set[str]]:
        """Every wanted feed and why."""
        out: dict[bytes, set[str]] = {}
        for author, reason in self._conn.execute("SELECT author, reason FROM interests"):
            out.setdefault(author, set()).add(reason)
        return out

    def feed_status(self, author: bytes) -> str:
        """``ok``, ``forked`` (frozen, proofs held) or ``unknown`` (nothing held)."""
        row = self._conn.execute(
            "SELECT status, n_entries FROM feeds WHERE author = ?", (author,)
        ).fetchone()
        if row is None or (row[1] == 0 and row[0] == "ok"):
            return "unknown"
        return str(row[0])

    def fork_proofs(self, author: bytes) -> list[bytes]:
        """Fork proofs held for ``author`` (``ForkProof.to_bytes()``)."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT p.proof FROM fork_proofs p JOIN feeds f ON f.fid = p.fid "
                "WHERE f.author = ? ORDER BY p.seq",
                (author,),
            )
        ]

    # ------------------------------------------------------------------ derived state

    def following(self, author: bytes) -> list[bytes]:
        """Authors ``author`` follows, by their latest follow/unfollow entries."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT dst FROM follows WHERE src = ? AND active = 1 ORDER BY dst", (author,)
            )
        ]

    def followers(self, author: bytes) -> list[bytes]:
        """Authors known to follow ``author``."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT src FROM follows WHERE dst = ? AND active = 1 ORDER BY src", (author,)
            )
        ]

    def blocks_of(self, author: bytes) -> list[bytes]:
        """Authors ``author`` blocks publicly (``block`` entries)."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT dst FROM blocks WHERE src = ? AND active = 1 ORDER BY dst", (author,)
            )
        ]

    def blocked_by(self, author: bytes) -> list[bytes]:
        """Authors whose public block entries name ``author``."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT src FROM blocks WHERE dst = ? AND active = 1 ORDER BY src", (author,)
            )
        ]

    def profile(self, author: bytes) -> dict[str, Any] | None:
        """The latest profile payload of ``author`` plus its ``seq``, or None."""
        row = self._conn.execute(
            "SELECT p.seq, e.payload FROM profiles p JOIN entries e ON e.eid = p.eid WHERE p.author = ?",
            (author,),
        ).fetchone()
        if row is None or row[1] is None:
            return None
        out = derived.decode_stored_payload(row[1])
        out["seq"] = row[0]
        return out

    def reaction_counts(self, id_: bytes) -> dict[str, int]:
        """emoji -> number of distinct authors who reacted with it to entry ``id_``."""
        return queries.reaction_counts(self._conn, id_)

    # ------------------------------------------------------------------ queries

    def timeline(self, me: bytes, *, limit: int = 50, before: str | None = None) -> Page:
        """Posts and reposts of ``me`` and the authors ``me`` follows, newest first."""
        return queries.timeline(self._conn, me, limit=limit, before=before)

    def feed(
        self,
        author: bytes,
        *,
        limit: int = 50,
        before: str | None = None,
        kinds: Iterable[str] | None = derived.TIMELINE_KINDS,
    ) -> Page:
        """One author's entries by descending seq (posts and reposts unless ``kinds``; None = all)."""
        return queries.feed(self._conn, author, limit=limit, before=before, kinds=kinds)

    def thread(self, id_: bytes) -> list[EntryView]:
        """The thread holding ``id_``: root first, then replies depth-first, oldest first."""
        return queries.thread(self._conn, id_)

    def mentions(self, me: bytes, *, limit: int = 50, before: str | None = None) -> Page:
        """Replies to ``me``'s entries and posts mentioning ``me``, newest first."""
        return queries.mentions(self._conn, me, limit=limit, before=before)

    def tagged(self, tag: str, *, limit: int = 50, before: str | None = None) -> Page:
        """Posts carrying ``tag`` (case-insensitive), newest first."""
        return queries.tagged(self._conn, tag, limit=limit, before=before)

    def search(
        self, query: str, *, author: bytes | None = None, limit: int = 50, before: str | None = None
    ) -> Page:
        """Full-text search over post text: words and "quoted phrases", all must match.

        Raises:
            LocalUsageError: an empty query or unbalanced quotes.
        """
        return queries.search(self._conn, query, author=author, limit=limit, before=before)

    # ------------------------------------------------------------------ DHT and settings

    def save_dht_contacts(self, contacts: Iterable[tuple[bytes, str, int]]) -> None:
        """Replace the saved DHT routing-table snapshot."""
        rows = list(contacts)
        with self._write() as conn:
            conn.execute("DELETE FROM dht_contacts")
            conn.executemany(
                "INSERT OR REPLACE INTO dht_contacts(node_id, host, port) VALUES (?, ?, ?)", rows
            )

    def load_dht_contacts(self) -> list[tuple[bytes, str, int]]:
        """The saved DHT contacts: (node id, host, port)."""
        return [
            tuple(r) for r in self._conn.execute("SELECT node_id, host, port FROM dht_contacts")
        ]  # type: ignore[misc]

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A local setting (JSON value), or ``default``."""
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a local setting; ``value`` must be JSON-serialisable. Durable (FULL)."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise LocalUsageError(f"setting {key!r} is not JSON-serialisable: {exc}") from None
        with self._write(durable=True) as conn:
            conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, text))

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> dict[str, Any]:
        """Counts for status pages and benches."""
        conn = self._conn
        n_entries, n_feeds, pbytes = conn.execute(
            "SELECT coalesce(sum(n_entries), 0), count(*), coalesce(sum(payload_bytes), 0) "
            "FROM feeds WHERE n_entries > 0"
        ).fetchone()
        forked = conn.execute("SELECT count(*) FROM feeds WHERE status = 'forked'").fetchone()[0]
        blocked = conn.execute("SELECT count(*) FROM feeds WHERE blocked = 1").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return {
            "entries": n_entries,
            "feeds": n_feeds,
            "forked_feeds": forked,
            "blocked_feeds": blocked,
            "payload_bytes": pbytes,
            "db_bytes": page_count * page_size,
            "ingested": dict(self._counts),
            "rejected_by_reason": dict(self._rejected),
        }

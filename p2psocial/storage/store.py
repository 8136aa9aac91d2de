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
  Concurrent own acts share one such commit (:meth:`Store.commit_local`,
  grouped by :class:`~.local.LocalActs`); each is answered after it.

Threads. The connection is opened with ``check_same_thread=False`` and must be
used by one thread at a time (the trio façade guarantees that with one
``CapacityLimiter``). Signature checks of an ingest batch run on a small
thread pool: ``cryptography`` releases the GIL while it verifies.

Layout. :class:`Store` is the one public face; the work sits in modules
that own one concern each: :mod:`.connection` (opening, write
transactions), :mod:`.ingest` with :mod:`.batch`, :mod:`.plan` and
:mod:`.forks` (the ingest transaction), :mod:`.local` (the owner's own
writes), :mod:`.feeds` (sync reads) and :mod:`.queries` (page queries).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ..errors import LocalUsageError
from ..protocol.entries import Entry, check_timestamp, decode_entry_untrusted
from ..protocol.errors import DecodeError, ProtocolError
from ..protocol.identity import SigningKey
from . import derived, feeds, local, queries
from .connection import close_connection, connect_reader, connect_writer, write_transaction
from .ingest import IngestTxn, Item, PreparedBatch, check_payload
from .model import EntryView, MapPage, Outcome, Page
from .schema import PSTATE
from .verify import Preverifier

__all__ = ["Store"]


class Store:
    """Everything a node knows, in one SQLite file.

    Use :meth:`open`; call :meth:`close` when done. Not thread-safe: use it
    from one thread at a time (see :mod:`p2psocial.storage.aio`).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        *,
        verify_threads: int,
        allow_segments: bool,
        local_group: int = local.DEFAULT_GROUP,
    ) -> None:
        self._conn = conn
        #: Most own acts per commit (1: each commits alone); see :mod:`.local`.
        self.local_group = local_group
        self._local = Counter[str]()
        self._local_s: dict[str, float] = {"acts": 0.0, "commit": 0.0}
        self._path = path
        self._verify_threads = verify_threads
        # Threads start on first use; created here so that concurrent
        # prepare_ingest calls share one pool.
        self._pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(verify_threads, thread_name_prefix="p2ps-verify")
            if verify_threads > 0
            else None
        )
        self._allow_segments = allow_segments
        self._counts: Counter[str] = Counter()
        self._txns: list[IngestTxn] = []
        self._audiences: dict[bytes, tuple[tuple[dict[int, int], int], int]] = {}
        # Bumped after every commit that changes follows or feeds. A reader
        # connection shares its writer's counter, so its cached audiences
        # are dropped when the writer's data changes (see open_reader).
        self._social: list[int] = [0]
        self._rejected: Counter[str] = Counter()

    # ------------------------------------------------------------------ open/close

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        verify_threads: int = 2,
        allow_segments: bool = True,
        local_group: int | None = None,
    ) -> Store:
        """Open (or create) the database at ``path``.

        Args:
            path: the SQLite file; created if missing.
            verify_threads: size of the signature-verification pool (0: verify
                on the calling thread).
            allow_segments: accept verified runs that do not connect to the
                feed's contiguous head (filled in later). When False such
                entries are rejected with reason ``no_prev``.
            local_group: most own acts that share one commit (1: none share;
                default :data:`.local.DEFAULT_GROUP`).

        Raises:
            StorageError: not an SQLite file, not a p2psocial database, a
                newer schema, or the file cannot be opened.
        """
        spath = os.fspath(path)
        conn = connect_writer(spath)
        group = local.DEFAULT_GROUP if local_group is None else local_group
        return cls(
            conn,
            spath,
            verify_threads=verify_threads,
            allow_segments=allow_segments,
            local_group=group,
        )

    @classmethod
    def open_reader(cls, path: str | os.PathLike[str], writer: Store | None = None) -> Store:
        """A second, read-only connection to an open database, for queries.

        In WAL mode it reads the last committed state while the main
        connection writes. Only query methods may be called on it. With
        ``writer`` (the store that writes this file), caches derived from
        the data are dropped whenever the writer changes it.
        """
        spath = os.fspath(path)
        conn = connect_reader(spath)
        reader = cls(conn, spath, verify_threads=0, allow_segments=True)
        if writer is not None:
            reader._social = writer._social
        return reader

    def close(self) -> None:
        """Close the connection and the verify pool. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._conn is not None:
            close_connection(self._conn)
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection (tests and benches only)."""
        return self._conn

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            with write_transaction(self._conn, durable=durable) as conn:
                yield conn
        finally:
            if any(txn.social_changed for txn in self._txns):
                self._audiences.clear()
                self._social[0] += 1
            self._txns.clear()

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
        return self.ingest_prepared(self.prepare_ingest(items, now_ms=now_ms))

    def prepare_ingest(
        self,
        items: Sequence[tuple[bytes, bytes | None]],
        *,
        now_ms: int,
        author: bytes | None = None,
    ) -> PreparedBatch:
        """First half of :meth:`ingest`: decode, start signature checks, check payloads.

        It does not touch the database, so it may run on any thread while
        another thread uses the connection: the trio façade runs it outside
        its database limiter, so one batch is verified while the previous one
        is written. Finish with :meth:`ingest_prepared`.

        ``author``, if given, is the feed the batch claims to be of: an entry
        of any other author is rejected as ``mislabeled`` and nothing of it is
        stored (a peer may send only the feed it names).
        """
        outcomes: list[Outcome | None] = [None] * len(items)
        decoded: list[Item] = []
        for i, (raw, payload) in enumerate(items):
            try:
                entry = decode_entry_untrusted(raw)
            except DecodeError as exc:
                outcomes[i] = Outcome("rejected", exc.reason)
                continue
            if author is not None and entry.author != author:
                outcomes[i] = Outcome("rejected", "mislabeled", entry.id, entry.author, entry.seq)
                continue
            try:
                check_timestamp(entry, now_ms)
            except ProtocolError as exc:
                outcomes[i] = Outcome("rejected", exc.reason, entry.id, entry.author, entry.seq)
                continue
            if payload is not None and type(payload) is not bytes:
                payload = bytes(payload)  # e.g. a memoryview from a frame buffer
            decoded.append(Item(i, entry, payload))
        if not decoded:
            return PreparedBatch([], outcomes, None)
        # Signature checks start first, on the pool; payload checks (pure
        # Python) run here meanwhile.
        pre = Preverifier(decoded, self._pool, self._verify_threads)
        good: list[Item] = []
        for it in decoded:
            reason = check_payload(it)
            if reason is None:
                good.append(it)
            else:
                e = it.entry
                outcomes[it.index] = Outcome("rejected", reason, e.id, e.author, e.seq)
        return PreparedBatch(good, outcomes, pre)

    def ingest_prepared(self, batch: PreparedBatch) -> list[Outcome]:
        """Second half of :meth:`ingest`: the write transaction. Same contract."""
        try:
            if batch.items:
                with self._write() as conn:
                    self._txn(conn).run(batch.items, batch.outcomes, batch.pre)
        finally:
            if batch.pre is not None:
                batch.pre.cancel()
        result: list[Outcome] = []
        for out in batch.outcomes:
            assert out is not None
            self._counts[out.status] += 1
            if out.status == "rejected":
                self._rejected[out.reason or "unknown"] += 1
            result.append(out)
        return result

    def _txn(self, conn: sqlite3.Connection) -> IngestTxn:
        txn = IngestTxn(conn, allow_segments=self._allow_segments)
        self._txns.append(txn)
        return txn

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
        act = functools.partial(
            local.append_own, key=key, kind=kind, payload=payload, now_ms=now_ms
        )
        return local.outcome(self.commit_local([act])[0])  # type: ignore[no-any-return]

    def commit_local(self, acts: Sequence[local.LocalAct]) -> list[local.ActResult]:
        """Run own acts in order in one ``synchronous=FULL`` commit.

        Each act runs in a savepoint of its own: one that raises is rolled
        back alone and the others commit (see :mod:`.local`).

        Returns:
            Per act, ``(True, result)`` or ``(False, exception)``.

        Raises:
            StorageError: the database failed; none of the acts is kept.
        """
        t0 = time.perf_counter()
        with self._write(durable=True) as conn:
            results = local.run_acts(conn, acts, lambda: self._txn(conn))
            t1 = time.perf_counter()
        # Where a group's time goes: its acts, then the commit (the fsync).
        self._local_s["acts"] += t1 - t0
        self._local_s["commit"] += time.perf_counter() - t1
        self._local["local_commits"] += 1
        failed = sum(1 for ok, _ in results if not ok)
        self._local["local_acts"] += len(results) - failed
        self._local["local_failed"] += failed
        return results

    def block_local(self, author: bytes) -> None:
        """Block ``author`` on this node: purge and refuse their payloads.

        Envelopes stay, so their feed remains verifiable and servable.
        """
        local.outcome(self.commit_local([functools.partial(local.block_feed, author=author)])[0])

    def unblock_local(self, author: bytes) -> None:
        """Lift a local block. Purged payloads come back only if re-ingested."""
        local.outcome(self.commit_local([functools.partial(local.unblock_feed, author=author)])[0])

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
            if row is None or row[1] != PSTATE["present"]:
                return False
            self._txn(conn).purge(row[0], "dropped")
            return True

    def forget_feed(self, author: bytes) -> int:
        """Remove everything held of ``author``'s feed (e.g. evicting a peeked feed).

        Entries, payloads, their search/notification rows and what their
        follows and profiles implied all go, and so do fork proofs; local
        blocks and interests stay (they are the owner's settings, not the
        feed's). Deletes the author published are remembered, so re-fetching
        the feed later cannot bring deleted payloads back.

        Returns:
            The number of entries removed.
        """
        with self._write() as conn:
            return local.forget_feed(conn, author, self._txn)

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
        return feeds.heads(self._conn, authors)

    def entries_after(
        self, author: bytes, seq: int, limit: int
    ) -> list[tuple[bytes, bytes | None]]:
        """Entries seq+1, seq+2, ... of ``author`` (stopping at the first gap), oldest first.

        Returns:
            (entry bytes, payload bytes or None when absent, deleted or dropped).
        """
        return feeds.entries_after(self._conn, author, seq, limit)

    def get_entry(self, id_: bytes) -> EntryView | None:
        """One entry by id, or None."""
        return queries.get_entry(self._conn, id_)

    def ids_with_prefix(self, prefix: str, *, limit: int) -> list[bytes]:
        """Held entry ids whose hex starts with ``prefix`` (1 to 64 digits), in id order.

        Raises:
            LocalUsageError: ``prefix`` is not hex (reason ``bad_id``).
        """
        return queries.ids_with_prefix(self._conn, prefix, limit)

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

    def forked_feeds(self, authors: Iterable[bytes] | None = None) -> dict[bytes, int]:
        """author -> fork seq (frozen from there) of every forked feed, or of those in ``authors``."""
        return feeds.forked_feeds(self._conn, authors)

    def payloads_held(self, ids: Iterable[bytes]) -> set[bytes]:
        """Those of ``ids`` held with their payload or deleted: ingesting them stores nothing new."""
        return feeds.payloads_held(self._conn, ids)

    # ------------------------------------------------------------------ derived state

    def following(self, author: bytes) -> list[bytes]:
        """Authors ``author`` follows, by their latest follow/unfollow entries."""
        return queries.related(self._conn, "follows", author, outgoing=True)

    def followers(self, author: bytes) -> list[bytes]:
        """Authors known to follow ``author``."""
        return queries.related(self._conn, "follows", author, outgoing=False)

    def blocks_of(self, author: bytes) -> list[bytes]:
        """Authors ``author`` blocks publicly (``block`` entries)."""
        return queries.related(self._conn, "blocks", author, outgoing=True)

    def blocked_by(self, author: bytes) -> list[bytes]:
        """Authors whose public block entries name ``author``."""
        return queries.related(self._conn, "blocks", author, outgoing=False)

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
        return queries.timeline(
            self._conn, me, limit=limit, before=before, audience=self._audience(me)
        )

    def timeline_maps(self, me: bytes, *, limit: int = 50, before: str | None = None) -> MapPage:
        """:meth:`timeline` with its entries as the local API's maps (:class:`MapPage`)."""
        return queries.timeline_maps(
            self._conn, me, limit=limit, before=before, audience=self._audience(me)
        )

    def _audience(self, me: bytes) -> tuple[dict[int, int], int]:
        """fid -> entries of the feeds in ``me``'s timeline, and all entries: cached."""
        # Who is in ``me``'s timeline changes only with follows and new feeds,
        # so that set is cached until a write touches either.
        # The generation is read before the query: a commit bumps it only
        # after it is visible, so an entry tagged with the current generation
        # was computed from data at least that new.
        generation = self._social[0]
        cached = self._audiences.get(me)
        if cached is not None and cached[1] == generation:
            return cached[0]
        if len(self._audiences) >= 64:
            self._audiences.clear()
        audience = queries.timeline_audience(self._conn, me)
        self._audiences[me] = (audience, generation)
        return audience

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
        rows = self._conn.execute("SELECT node_id, host, port FROM dht_contacts").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

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
        act = functools.partial(local.put_setting, key=key, text=text)
        local.outcome(self.commit_local([act])[0])

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
            "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
            "entries": n_entries,
            "feeds": n_feeds,
            "forked_feeds": forked,
            "blocked_feeds": blocked,
            "payload_bytes": pbytes,
            "db_bytes": page_count * page_size,
            "ingested": dict(self._counts),
            "rejected_by_reason": dict(self._rejected),
            # Own acts committed, failed alone, and the FULL commits they took.
            **{k: self._local[k] for k in ("local_acts", "local_failed", "local_commits")},
            # Seconds spent in those commits: running the acts, and committing.
            "local_acts_s": round(self._local_s["acts"], 6),
            "local_commit_s": round(self._local_s["commit"], 6),
        }

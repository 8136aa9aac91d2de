"""One ingest transaction: sort out, verify, store.

Theory. :meth:`Store.prepare_ingest` decodes a batch of (entry, payload)
items, starts their signature checks on the verify pool (:mod:`.verify`) and
checks the payloads meanwhile. Then, inside one write transaction:

1. *Sort out* (:mod:`.plan`). Already-held ids are duplicates (or fill in
   a missing payload). The rest are grouped by author and cut into contiguous runs,
   each anchored on the held entry just below it, if any. An item whose seq
   is held under another id is a fork candidate.
2. *Verify.* A run that lies inside one verified batch run needs only its
   anchor link checked; anything else is checked here with ``verify_run``.
   Waiting for the pool, the thread first writes the rows it has buffered,
   or checks a not-yet-started chunk itself.
3. *Store in order.* A good run is stored; a failed one is re-checked entry
   by entry, so the valid entries below the fault still go in and those
   above it are refused (``no_prev``). Rows are buffered and written with
   ``executemany`` (:class:`~.derived.Pending`); then deletes are applied and
   feed heads advanced.

Forks. A second entry at a held seq is judged by :class:`~.forks.ForkJudge`:
both halves of a proof need the full signature check of their own.

A rejected item never produces a row: rows are only buffered for entries that
passed every check, and any unexpected error rolls back the whole batch.
Nothing here relies on ``assert``: the checks hold under ``python -O``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..protocol.entries import Entry, decode_payload_untrusted
from ..protocol.errors import ProtocolError
from ..protocol.feeds import check_link
from . import derived
from .batch import (
    Item,
    PreparedBatch,
    check_payload,
    chunks,
    insert_rows,
    payload_fault,
    rejected,
)
from .forks import ForkJudge
from .model import Outcome
from .plan import Feed, Job, held_around, plan_author
from .schema import PSTATE
from .verify import Preverifier, verify_one_run

# Item, PreparedBatch and check_payload live in .batch, Feed in .plan; they
# are re-exported here, where the store and its callers have always found them.
__all__ = ["Feed", "IngestTxn", "Item", "PreparedBatch", "check_payload"]

_PRESENT, _ABSENT, _DELETED, _DROPPED = (
    PSTATE["present"],
    PSTATE["absent"],
    PSTATE["deleted"],
    PSTATE["dropped"],
)
_TL_KINDS = frozenset(derived.TIMELINE_KINDS)
_SOCIAL_KINDS = frozenset({"follow", "unfollow"})


def _in(n: int) -> str:
    return ",".join("?" * n)


_ENTRY_COLUMNS = (
    "eid",
    "fid",
    "seq",
    "id",
    "ts",
    "kind",
    "raw",
    "pstate",
    "payload",
    "target",
    "root",
    "aux",
    "tl",
)


class IngestTxn:
    """The work of one write transaction on ``conn`` (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, *, allow_segments: bool) -> None:
        self.conn = conn
        self.allow_segments = allow_segments
        self.pending = derived.Pending()
        self.pre: Preverifier | None = None
        #: Set when follows or the set of feeds changed (timeline caches).
        self.social_changed = False
        self.feeds: dict[bytes, Feed] = {}
        self.deleted: set[tuple[bytes, bytes]] = set()
        self.forks = ForkJudge()
        row = conn.execute("SELECT coalesce(max(eid), 0) FROM entries").fetchone()
        # Row ids are assigned here so that rows can be buffered and written
        # in bulk; nobody else writes while this transaction holds the lock.
        self.next_eid = int(row[0]) + 1

    # -------------------------------------------------------------- feeds

    def feed(self, author: bytes) -> Feed:
        feed = self.feeds.get(author)
        if feed is None:
            row = self.conn.execute(
                "SELECT fid, head_seq, max_seq, fork_seq, blocked, head_id FROM feeds "
                "WHERE author = ?",
                (author,),
            ).fetchone()
            if row is None:
                feed = Feed(author, None, 0, 0, None, False)
            else:
                feed = Feed(
                    author, row[0], row[1], row[2], row[3], bool(row[4]), row[5], old_max=row[2]
                )
            self.feeds[author] = feed
        return feed

    def _load_feeds(self, authors: set[bytes]) -> None:
        wanted = [a for a in authors if a not in self.feeds]
        for chunk in chunks(wanted):
            q = (
                "SELECT author, fid, head_seq, max_seq, fork_seq, blocked, head_id FROM feeds "
                f"WHERE author IN ({_in(len(chunk))})"
            )
            for author, fid, head, max_seq, fork_seq, blocked, head_id in self.conn.execute(
                q, chunk
            ):
                self.feeds[author] = Feed(
                    author, fid, head, max_seq, fork_seq, bool(blocked), head_id, old_max=max_seq
                )
        for author in wanted:
            if author not in self.feeds:
                self.feeds[author] = Feed(author, None, 0, 0, None, False)

    def ensure_fid(self, feed: Feed) -> int:
        if feed.fid is None:
            cur = self.conn.execute(
                "INSERT INTO feeds(author) VALUES (?) ON CONFLICT(author) DO UPDATE "
                "SET author = author RETURNING fid",
                (feed.author,),
            )
            feed.fid = int(cur.fetchone()[0])
            self.social_changed = True
        return feed.fid

    # -------------------------------------------------------------- batch ingest

    def run(
        self, items: list[Item], outcomes: list[Outcome | None], pre: Preverifier | None = None
    ) -> None:
        """Ingest decoded items; fill ``outcomes`` for each of them.

        Args:
            pre: signature checks of these items already under way, if any.
        """
        self.pre = pre
        conn = self.conn
        self._load_feeds({it.entry.author for it in items})
        # An entry we hold has a seq no higher than its feed's max_seq, so
        # only those items need looking up (none when a batch extends heads).
        maybe_held = [
            it.entry.id for it in items if it.entry.seq <= self.feeds[it.entry.author].max_seq
        ]
        existing: dict[bytes, tuple[int, int, int]] = {}
        for chunk in chunks(maybe_held):
            q = f"SELECT id, eid, pstate, fid FROM entries WHERE id IN ({_in(len(chunk))})"
            for id_, eid, pstate, fid in conn.execute(q, chunk):
                existing[id_] = (eid, pstate, fid)
        by_author: dict[bytes, list[Item]] = {}
        first_of: dict[bytes, Item] = {}
        for it in items:
            e = it.entry
            if e.id in existing:
                eid, pstate, fid = existing[e.id]
                outcomes[it.index] = out = self.fill_payload(it, eid, pstate, fid)
                if out.status == "stored":
                    existing[e.id] = (eid, _PRESENT, fid)
                continue
            first = first_of.get(e.id)
            if first is not None:
                if first.payload is None and it.payload is not None:
                    first.payload, first.value, first.checked = it.payload, it.value, it.checked
                outcomes[it.index] = Outcome("duplicate", None, e.id, e.author, e.seq)
                continue
            first_of[e.id] = it
            by_author.setdefault(e.author, []).append(it)
        if not by_author:
            self.finish()
            return
        new_ids = list(first_of)
        any_deletions = conn.execute("SELECT 1 FROM deletions LIMIT 1").fetchone()
        for chunk in chunks(new_ids if any_deletions else []):
            q = f"SELECT target, author FROM deletions WHERE target IN ({_in(len(chunk))})"
            self.deleted.update(conn.execute(q, chunk).fetchall())

        jobs: list[Job] = []
        late: list[Job] = []
        held = held_around(conn, self.feeds, by_author)
        for author, group in by_author.items():
            plan_author(
                conn, self.feeds[author], group, held[author], self.allow_segments, jobs, late
            )
        # Overlap: check payloads while the pool verifies signatures (a no-op
        # for items that prepare_ingest already checked).
        for group in by_author.values():
            for it in group:
                self._check_payload(it, outcomes)
        self._store_jobs(jobs, outcomes)
        self._store_jobs(late, outcomes)
        self.finish()

    def _check_payload(self, it: Item, outcomes: list[Outcome | None]) -> bool:
        if it.checked:
            return outcomes[it.index] is None
        reason = check_payload(it)
        if reason is not None:
            outcomes[it.index] = rejected(it, reason)
            return False
        return True

    @staticmethod
    def _work(job: Job) -> tuple[list[Entry], Entry | None]:
        if job.fork_with is not None:
            return [job.items[0].entry], None
        return [it.entry for it in job.items], job.anchor

    def _check_job(self, job: Job) -> ProtocolError | None:
        entries, anchor = self._work(job)
        pre = self.pre
        verdict = None
        if pre is not None:
            if self.pending and not pre.ready(entries):
                # Write what is buffered while the pool keeps verifying.
                self._write_pending()
            verdict = pre.verdict(entries)
        if verdict is True:
            if anchor is not None:
                try:
                    check_link(anchor, entries[0])
                except ProtocolError as exc:
                    return exc
            return None
        error = verify_one_run(entries, anchor)
        if error is None and len(entries) == 1 and anchor is None:
            # A lone entry had the full check of its own signature.
            self.forks.vouch(entries[0].id)
        return error

    def _store_jobs(self, jobs: list[Job], outcomes: list[Outcome | None]) -> None:
        for job in jobs:
            if job.reject is not None:
                for it in job.items:
                    outcomes[it.index] = rejected(it, job.reject)
                continue
            self._store_job(job, self._check_job(job), outcomes)

    def _store_job(
        self, job: Job, error: ProtocolError | None, outcomes: list[Outcome | None]
    ) -> None:
        feed = job.feed
        if job.fork_with is not None:
            self._store_fork(job, job.fork_with, error, outcomes)
            return
        if error is None:
            # The whole run is authentic; an item whose payload failed is left
            # out, and the entries above it become a segment.
            for it in job.items:
                if self._check_payload(it, outcomes):
                    self._store_checked(feed, it, outcomes)
            return
        # The run failed as a whole: find out entry by entry what is valid.
        prev = job.anchor
        broken = False
        for it in job.items:
            if broken:
                if outcomes[it.index] is None:
                    outcomes[it.index] = rejected(it, "no_prev")
                continue
            err = verify_one_run([it.entry], prev)
            if err is not None:
                if outcomes[it.index] is None:
                    outcomes[it.index] = rejected(it, err.reason)
                broken = True
                continue
            if not self._check_payload(it, outcomes):
                broken = True
                continue
            self._store_checked(feed, it, outcomes)
            prev = it.entry

    def _store_fork(
        self,
        job: Job,
        other: bytes | Item,
        error: ProtocolError | None,
        outcomes: list[Outcome | None],
    ) -> None:
        """A second entry at a seq: record the fork if the judge finds it proven."""
        it = job.items[0]
        if error is not None:
            outcomes[it.index] = rejected(it, error.reason)
            return
        proof = self.forks.judge(it, other, outcomes)
        if proof is not None:
            self._record_fork(job.feed, it.entry.seq, proof)

    def _store_checked(self, feed: Feed, it: Item, outcomes: list[Outcome | None]) -> None:
        e = it.entry
        if feed.fork_seq is not None and e.seq >= feed.fork_seq:
            outcomes[it.index] = rejected(it, "forked")
            return
        note = self.insert(feed, e, it.payload, it.value)
        outcomes[it.index] = Outcome("stored", note or it.fault, e.id, e.author, e.seq, e)

    # -------------------------------------------------------------- rows

    def insert(
        self, feed: Feed, e: Entry, payload: bytes | None, value: dict[str, Any] | None
    ) -> str | None:
        """Buffer a verified entry's rows; return a note (``blocked``/``deleted``) or None."""
        fid = self.ensure_fid(feed)
        note: str | None = None
        pstate = _ABSENT
        if payload is not None:
            pstate = _PRESENT
            if feed.blocked:
                pstate, payload, value, note = _DROPPED, None, None, "blocked"
        if self.deleted and (e.id, e.author) in self.deleted:
            pstate, payload, value, note = _DELETED, None, None, "deleted"
        target, root, aux = derived.derived_columns(e.kind, value)
        eid = self.next_eid
        self.next_eid += 1
        tl = e.kind in _TL_KINDS
        self.pending.entries.append(
            (
                eid,
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
                1 if tl else None,
            )
        )
        feed.n_delta += 1
        if feed.lowest_new is None or e.seq < feed.lowest_new:
            feed.lowest_new = e.seq
        if feed.top_new is None or e.seq > feed.top_new[0]:
            feed.top_new = (e.seq, e.id)
        if e.seq > feed.max_seq:
            feed.max_seq = e.seq
        if tl:
            self.pending.parents.append((e.id, e.author, fid))
        if value is not None and payload is not None:
            self._payload_present(feed, e, eid, fid, value, len(payload))
        return note

    def _payload_present(
        self, feed: Feed, e: Entry, eid: int, fid: int, value: dict[str, Any], size: int
    ) -> None:
        """Bookkeeping and derived rows for a payload now held (new entry or refill)."""
        feed.bytes_delta += size
        if e.kind in _SOCIAL_KINDS:
            self.social_changed = True
        if e.kind == "delete":
            # Later entries of this transaction must see it at once.
            self.deleted.add((value["target"], e.author))
        derived.apply_payload(
            self.conn,
            self.pending,
            eid=eid,
            fid=fid,
            author=e.author,
            seq=e.seq,
            id_=e.id,
            ts=e.timestamp,
            kind=e.kind,
            value=value,
        )

    def fill_payload(self, it: Item, eid: int, pstate: int, fid: int) -> Outcome:
        """An entry we hold arrives again, maybe with the payload we lack."""
        e = it.entry
        if it.payload is None or pstate == _PRESENT:
            return Outcome("duplicate", it.fault, e.id, e.author, e.seq)
        if pstate == _DELETED:
            return Outcome("duplicate", "deleted", e.id, e.author, e.seq)
        if self.feed(e.author).blocked:
            return Outcome("duplicate", "blocked", e.id, e.author, e.seq)
        # prepare_ingest checked the payload already (a bad one never gets here);
        # an item from elsewhere is checked now.
        value = it.value
        if value is None:
            try:
                value = decode_payload_untrusted(e, it.payload)
            except ProtocolError as exc:
                return Outcome("duplicate", payload_fault(exc), e.id, e.author, e.seq)
        target, root, aux = derived.derived_columns(e.kind, value)
        self.conn.execute(
            "UPDATE entries SET pstate = ?, payload = ?, target = ?, root = ?, aux = ? WHERE eid = ?",
            (_PRESENT, it.payload, target, root, aux, eid),
        )
        self._payload_present(self.feed(e.author), e, eid, fid, value, len(it.payload))
        if e.kind in _TL_KINDS:
            self.pending.parents.append((e.id, e.author, fid))
        return Outcome("stored", None, e.id, e.author, e.seq, e)

    def purge(self, eid: int, state: str) -> None:
        """Remove one entry's payload and derived rows (``deleted``/``dropped``)."""
        self.social_changed = True
        removed = derived.purge_payload(self.conn, eid, state)
        if removed:
            self.conn.execute(
                "UPDATE feeds SET payload_bytes = payload_bytes - ? "
                "WHERE fid = (SELECT fid FROM entries WHERE eid = ?)",
                (removed, eid),
            )

    def _record_fork(self, feed: Feed, seq: int, proof: bytes) -> None:
        fid = self.ensure_fid(feed)
        self.conn.execute(
            "INSERT OR IGNORE INTO fork_proofs(fid, seq, proof) VALUES (?, ?, ?)", (fid, seq, proof)
        )
        feed.fork_seq = seq if feed.fork_seq is None else min(feed.fork_seq, seq)
        self.conn.execute(
            "UPDATE feeds SET status = 'forked', fork_seq = ? WHERE fid = ?", (feed.fork_seq, fid)
        )

    def _write_pending(self) -> None:
        if self.pending.entries:
            # The entries rows first (derived.flush reads them back), then
            # the derived rows and lookups.
            insert_rows(self.conn, "entries", _ENTRY_COLUMNS, self.pending.entries)
            self.pending.entries = []
        for victim in derived.flush(self.conn, self.pending):
            self.purge(victim, "deleted")

    def finish(self) -> None:
        """Write buffered rows, apply deletes, write back feed counters and heads."""
        self._write_pending()
        updates = [u for feed in self.feeds.values() if (u := self._finish_feed(feed))]
        if updates:
            self.conn.executemany(
                "UPDATE feeds SET n_entries = n_entries + ?, payload_bytes = payload_bytes + ?, "
                "max_seq = max(max_seq, ?), head_seq = ?, head_id = coalesce(?, head_id) "
                "WHERE fid = ?",
                updates,
            )

    def _finish_feed(self, feed: Feed) -> tuple[Any, ...] | None:
        if feed.fid is None or (feed.n_delta == 0 and feed.bytes_delta == 0):
            return None
        head_seq, head_id = feed.head_seq, None
        top = feed.top_new  # set together with lowest_new by ``insert``
        if feed.lowest_new is not None and top is not None and feed.lowest_new <= head_seq + 1:
            if feed.old_max <= head_seq and feed.n_delta == top[0] - head_seq:
                # The common case: the batch extended the head contiguously.
                head_seq, head_id = top
            else:
                head_seq, head_id = self._walk_head(feed.fid, head_seq)
        update = (feed.n_delta, feed.bytes_delta, feed.max_seq, head_seq, head_id, feed.fid)
        feed.head_seq, feed.old_max = head_seq, max(feed.old_max, feed.max_seq)
        if head_id is not None:
            feed.head_id = head_id
        feed.n_delta = feed.bytes_delta = 0
        feed.lowest_new = feed.top_new = None
        return update

    def _walk_head(self, fid: int, head_seq: int) -> tuple[int, bytes | None]:
        head_id: bytes | None = None
        while True:
            rows = self.conn.execute(
                "SELECT seq, id FROM entries WHERE fid = ? AND seq > ? ORDER BY seq LIMIT 1000",
                (fid, head_seq),
            ).fetchall()
            for seq, id_ in rows:
                if seq != head_seq + 1:
                    return head_seq, head_id
                head_seq, head_id = seq, id_
            if len(rows) < 1000:
                return head_seq, head_id

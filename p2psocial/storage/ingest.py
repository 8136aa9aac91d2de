"""One ingest transaction: sort out, verify, store.

Theory. :meth:`Store.prepare_ingest` decodes a batch of (entry, payload)
items, starts their signature checks on the verify pool (:mod:`.verify`) and
checks the payloads meanwhile. Then, inside one write transaction:

1. *Sort out.* Already-held ids are duplicates (or fill in a missing
   payload). The rest are grouped by author and cut into contiguous runs,
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

A rejected item never produces a row: rows are only buffered for entries that
passed every check, and any unexpected error rolls back the whole batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.entries import Entry, decode_entry_untrusted, decode_payload_untrusted
from ..protocol.errors import ProtocolError
from ..protocol.feeds import check_link, detect_fork
from . import derived
from .model import Outcome
from .schema import PSTATE
from .verify import Preverifier, verify_one_run

__all__ = ["Feed", "IngestTxn", "Item", "PreparedBatch", "check_payload"]

CHUNK = 500  # bound on SQL parameters per IN (...) list
_PRESENT, _ABSENT, _DELETED, _DROPPED = (
    PSTATE["present"],
    PSTATE["absent"],
    PSTATE["deleted"],
    PSTATE["dropped"],
)
_TL_KINDS = frozenset(derived.TIMELINE_KINDS)
_SOCIAL_KINDS = frozenset({"follow", "unfollow"})


def chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _in(n: int) -> str:
    return ",".join("?" * n)


@dataclass(slots=True)
class Item:
    """One decoded item of a batch; ``value`` is set once the payload is checked."""

    index: int
    entry: Entry
    payload: bytes | None
    value: dict[str, Any] | None = None
    checked: bool = False


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


def check_payload(it: Item) -> str | None:
    """Decode and check ``it.payload`` against its entry; return a rejection reason or None."""
    it.checked = True
    if it.payload is None:
        return None
    try:
        it.value = decode_payload_untrusted(it.entry, it.payload)
    except ProtocolError as exc:
        return exc.reason
    return None


def _rejected(it: Item, reason: str) -> Outcome:
    e = it.entry
    return Outcome("rejected", reason, e.id, e.author, e.seq)


@dataclass(slots=True)
class PreparedBatch:
    """A decoded batch whose signature checks are under way (``Store.prepare_ingest``)."""

    items: list[Item]
    outcomes: list[Outcome | None]
    pre: Preverifier | None

    def wait_verified(self) -> None:
        """Block until the batch's signature checks are done (no database use)."""
        if self.pre is not None:
            self.pre.wait()


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
        held = self._held(by_author)
        for author, group in by_author.items():
            self._plan_author(author, group, held[author], jobs, late)
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
            outcomes[it.index] = _rejected(it, reason)
            return False
        return True

    def _held(
        self, by_author: dict[bytes, list[Item]]
    ) -> dict[bytes, dict[int, tuple[bytes, bytes | None]]]:
        """Held (id, raw) at the seqs around each author's items: anchors, forks, links above.

        Only seqs up to the feed's max_seq can be held. When all a batch needs
        is the entry at the contiguous head (a live entry extending its feed),
        the feed row already names it and no query is made.
        """
        held: dict[bytes, dict[int, tuple[bytes, bytes | None]]] = {}
        pairs: list[tuple[int, int]] = []
        by_fid: dict[int, bytes] = {}
        for author, group in by_author.items():
            feed = self.feeds[author]
            held[author] = {}
            if feed.fid is None:
                continue
            seqs = {it.entry.seq for it in group}
            wanted = {x for s in seqs for x in (s - 1, s, s + 1) if 1 <= x <= feed.max_seq}
            if wanted == {feed.head_seq} and feed.head_id is not None:
                held[author][feed.head_seq] = (feed.head_id, None)
                continue
            by_fid[feed.fid] = author
            pairs.extend((feed.fid, x) for x in wanted)
        for chunk in chunks(pairs):
            values = ",".join("(?, ?)" for _ in chunk)
            params = [v for pair in chunk for v in pair]
            for fid, seq, id_, raw in self.conn.execute(
                f"WITH w(fid, seq) AS (VALUES {values}) SELECT e.fid, e.seq, e.id, e.raw "
                "FROM w JOIN entries e ON e.fid = w.fid AND e.seq = w.seq",
                params,
            ):
                held[by_fid[fid]][seq] = (id_, raw)
        return held

    def _plan_author(
        self,
        author: bytes,
        group: list[Item],
        held: dict[int, tuple[bytes, bytes | None]],
        jobs: list[Job],
        late: list[Job],
    ) -> None:
        feed = self.feeds[author]
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
                raw = held[s][1]
                assert raw is not None
                jobs.append(Job(feed, [it], None, fork_with=raw))
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
            if below is None and first.seq > 1 and not self.allow_segments:
                job.reject = "no_prev"
            above = held.get(top.seq + 1)
            if above is not None:
                assert above[1] is not None
                if decode_entry_untrusted(above[1]).prev != top.id:
                    job.reject = "prev_mismatch"
            jobs.append(job)

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
        return verify_one_run(entries, anchor)

    def _store_jobs(self, jobs: list[Job], outcomes: list[Outcome | None]) -> None:
        for job in jobs:
            if job.reject is not None:
                for it in job.items:
                    outcomes[it.index] = _rejected(it, job.reject)
                continue
            self._store_job(job, self._check_job(job), outcomes)

    def _store_job(
        self, job: Job, error: ProtocolError | None, outcomes: list[Outcome | None]
    ) -> None:
        feed = job.feed
        if job.fork_with is not None:
            it = job.items[0]
            if error is not None:
                outcomes[it.index] = _rejected(it, error.reason)
                return
            other = job.fork_with
            if isinstance(other, Item):
                out = outcomes[other.index]
                if out is None or out.status != "stored":
                    outcomes[it.index] = _rejected(it, "seq_conflict")
                    return
                held = other.entry
            else:
                held = decode_entry_untrusted(other)
            proof = detect_fork(held, it.entry)
            assert proof is not None
            self._record_fork(feed, it.entry.seq, proof.to_bytes())
            outcomes[it.index] = _rejected(it, "fork")
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
                    outcomes[it.index] = _rejected(it, "no_prev")
                continue
            err = verify_one_run([it.entry], prev)
            if err is not None:
                if outcomes[it.index] is None:
                    outcomes[it.index] = _rejected(it, err.reason)
                broken = True
                continue
            if not self._check_payload(it, outcomes):
                broken = True
                continue
            self._store_checked(feed, it, outcomes)
            prev = it.entry

    def _store_checked(self, feed: Feed, it: Item, outcomes: list[Outcome | None]) -> None:
        e = it.entry
        if feed.fork_seq is not None and e.seq >= feed.fork_seq:
            outcomes[it.index] = _rejected(it, "forked")
            return
        note = self.insert(feed, e, it.payload, it.value)
        outcomes[it.index] = Outcome("stored", note, e.id, e.author, e.seq)

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
            return Outcome("duplicate", None, e.id, e.author, e.seq)
        if pstate == _DELETED:
            return Outcome("duplicate", "deleted", e.id, e.author, e.seq)
        if self.feed(e.author).blocked:
            return Outcome("duplicate", "blocked", e.id, e.author, e.seq)
        outs: list[Outcome | None] = [None]
        probe = Item(0, e, it.payload)
        if not self._check_payload(probe, outs):
            assert outs[0] is not None
            return Outcome("rejected", outs[0].reason, e.id, e.author, e.seq)
        assert probe.value is not None
        target, root, aux = derived.derived_columns(e.kind, probe.value)
        self.conn.execute(
            "UPDATE entries SET pstate = ?, payload = ?, target = ?, root = ?, aux = ? WHERE eid = ?",
            (_PRESENT, it.payload, target, root, aux, eid),
        )
        self._payload_present(self.feed(e.author), e, eid, fid, probe.value, len(it.payload))
        if e.kind in _TL_KINDS:
            self.pending.parents.append((e.id, e.author, fid))
        return Outcome("stored", None, e.id, e.author, e.seq)

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
        if feed.lowest_new is not None and feed.lowest_new <= head_seq + 1:
            assert feed.top_new is not None
            top_seq = feed.top_new[0]
            if feed.old_max <= head_seq and feed.n_delta == top_seq - head_seq:
                # The common case: the batch extended the head contiguously.
                head_seq, head_id = feed.top_new
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

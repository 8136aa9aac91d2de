"""The owner's own writes, and the group commit that lets concurrent ones share an fsync.

Each act (an append to an own feed, a block, a setting) runs inside a write
transaction that the :class:`~.store.Store` has opened, and uses an
:class:`~.ingest.IngestTxn` for the row bookkeeping that ingest also does
(feed counters, heads, purging payloads).

Group commit. An own act is committed at ``synchronous=FULL``: an fsync,
which costs far more than the act's rows. :func:`run_acts` runs several acts
in one transaction, each inside its own ``SAVEPOINT``, so an act that fails
(a schema error, a forked feed) is rolled back alone and the others still
commit. :class:`LocalActs` (the trio side) forms the groups:

* An act that arrives when no group is in flight *leads*: it waits for the
  database, takes every act queued by then (at most ``max_group``), commits
  them and wakes their callers. Uncontended, that is one act per commit, as
  soon as it arrives.
* A leader lingers only after contention: if the last group committed less
  than ``LINGER_AFTER`` ago with several writers active (its acts and those
  queued behind it), the leader first waits up to ``LINGER`` for as many acts
  to queue. Without it, writers that each keep one act in flight split into
  two halves committing in turns (each acknowledged half comes back while
  the other commits), so each commit held half of them (bench/post.py).
* An act that arrives while a group is in flight queues; when that group has
  committed, the first queued act is handed the lead.
* A caller is answered only after the commit that holds its act. A caller
  cancelled while queued leaves the queue and its act never runs; once its
  act is taken into a group, the group commits regardless (the commit is
  shielded: the others' acts ride on it).
* The queue holds at most ``max_waiting`` acts; beyond that an act is refused
  with ``StorageError`` (reason ``busy``), never queued without bound.
"""

from __future__ import annotations

import math
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from ..errors import LocalUsageError, StorageError
from ..protocol.entries import Entry, create_entry
from ..protocol.identity import SigningKey
from . import derived
from .ingest import IngestTxn
from .schema import PSTATE

#: One own act: given the group's transaction bookkeeper, does its writes and
#: returns its result (or raises; only that act is then rolled back).
LocalAct = Callable[[IngestTxn], Any]
#: What :func:`run_acts` returns per act: (True, result) or (False, exception).
ActResult = tuple[bool, Any]


class GroupStore(Protocol):
    """What :class:`LocalActs` needs of the store (:class:`~.store.Store`)."""

    #: Most acts per commit; 1 turns group commit off.
    local_group: int

    def commit_local(self, acts: Sequence[LocalAct]) -> list[ActResult]:
        """Run ``acts`` in one FULL commit, each in a savepoint of its own."""
        ...


#: Acts per commit by default (1: every act commits alone). A group of 64
#: posts is about 64 signatures and a few hundred row writes: a few
#: milliseconds, small beside the latency of the fsync it saves.
DEFAULT_GROUP = 64
#: Acts that may wait for a group by default.
DEFAULT_WAITING = 1024
#: Seconds a leader waits at most for the writers of the last group to queue
#: their next acts, when that group held more than one act.
LINGER = 0.001
#: Only a group that committed this recently (seconds) makes a leader linger.
LINGER_AFTER = 0.05

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_WAITING",
    "ActResult",
    "GroupStore",
    "LocalAct",
    "LocalActs",
    "append_own",
    "append_own_raw",
    "block_feed",
    "forget_feed",
    "outcome",
    "put_setting",
    "run_acts",
    "unblock_feed",
]


def append_own(
    txn: IngestTxn, key: SigningKey, kind: str, payload: dict[str, Any], now_ms: int
) -> Entry:
    """Sign the next entry of ``key``'s feed and write it in ``txn``.

    Raises:
        LocalUsageError: the payload breaks its kind's schema or a size
            limit, or the feed is forked.
    """
    return append_own_raw(txn, key, kind, payload, now_ms)[0]


def append_own_raw(
    txn: IngestTxn, key: SigningKey, kind: str, payload: dict[str, Any], now_ms: int
) -> tuple[Entry, bytes]:
    """:func:`append_own`, returning the entry and its payload bytes as stored.

    The bytes are what replication pushes; returned so that the caller need
    not encode (and check) the payload a second time.
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
    return entry, data


def unblock_feed(txn: IngestTxn, author: bytes) -> None:
    """Lift the local block of ``author``'s feed."""
    txn.conn.execute("UPDATE feeds SET blocked = 0 WHERE author = ?", (author,))
    cached = txn.feeds.get(author)
    if cached is not None:  # later acts of the group share this bookkeeper
        cached.blocked = False


def put_setting(txn: IngestTxn, key: str, text: str) -> None:
    """Store one local setting (``text``: its JSON form)."""
    txn.conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, text))


def _purge_present(txn: IngestTxn, fid: int) -> None:
    """Drop every payload held of feed ``fid``; the envelopes stay."""
    for (eid,) in txn.conn.execute(
        "SELECT eid FROM entries WHERE fid = ? AND pstate = ?", (fid, PSTATE["present"])
    ).fetchall():
        txn.purge(eid, "dropped")


def block_feed(txn: IngestTxn, author: bytes) -> None:
    """Mark ``author``'s feed blocked and drop the payloads held of it."""
    feed = txn.feed(author)
    fid = txn.ensure_fid(feed)
    txn.conn.execute("UPDATE feeds SET blocked = 1 WHERE fid = ?", (fid,))
    feed.blocked = True  # later acts of the group share this bookkeeper
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


# ---------------------------------------------------------------------- groups


def run_acts(
    conn: sqlite3.Connection, acts: Sequence[LocalAct], new_txn: Callable[[], IngestTxn]
) -> list[ActResult]:
    """Run ``acts`` in order inside the open write transaction on ``conn``.

    Each act runs in its own savepoint; one that raises is rolled back alone
    and its exception is returned in its place. The acts share one
    :class:`IngestTxn` from ``new_txn`` until one fails; the next act gets a
    fresh one. An act that writes feed state behind the bookkeeper's back
    must update its cached :class:`~.plan.Feed` too (see :func:`block_feed`).

    Raises:
        sqlite3.OperationalError: the database itself failed (I/O, disk
            full): the whole transaction must be rolled back.
    """
    results: list[ActResult] = []
    # One bookkeeper serves the acts in turn (its feed cache and row counter
    # save two queries per act); each act leaves it consistent with the
    # database, via ``finish``. A failed act may leave it anywhere, so it is
    # replaced, along with whatever the act had cached or buffered.
    txn = new_txn()
    for act in acts:
        conn.execute("SAVEPOINT own_act")
        try:
            value = act(txn)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            conn.execute("ROLLBACK TO own_act")
            conn.execute("RELEASE own_act")
            results.append((False, exc))
            txn = new_txn()
        else:
            conn.execute("RELEASE own_act")
            results.append((True, value))
    return results


def outcome(result: ActResult) -> Any:
    """The value of one act's result, or raise its exception."""
    ok, value = result
    if not ok:
        raise value
    return value


class _Waiter:
    __slots__ = ("act", "event", "lead", "result", "taken")

    def __init__(self, act: LocalAct) -> None:
        self.act = act
        self.event = trio.Event()
        #: Set when this waiter is handed the lead instead of a result.
        self.lead = False
        #: Set when a leader has taken this act into its group.
        self.taken = False
        self.result: ActResult | None = None


class LocalActs:
    """Group commit of own acts for the trio façade (see the module docstring).

    Args:
        store: the synchronous store; its ``local_group`` caps a group.
        limiter: the limiter that guards the store's connection.
        max_waiting: acts that may queue for a group.
    """

    def __init__(
        self,
        store: GroupStore,
        limiter: trio.CapacityLimiter,
        *,
        max_waiting: int = DEFAULT_WAITING,
    ) -> None:
        self._store = store
        self._limiter = limiter
        self._max_waiting = max_waiting
        self._queue: deque[_Waiter] = deque()
        self._busy = False
        self.refused = 0
        # Group sizes seen: the last group's, when it committed, and an event
        # set whenever an act queues (a lingering leader waits on it).
        self._last = 0
        self._last_end = -math.inf
        self._grown = trio.Event()

    @property
    def waiting(self) -> int:
        """Acts queued for a group right now."""
        return len(self._queue)

    async def run(self, act: LocalAct) -> Any:
        """Run ``act`` in the next group commit; return its result once committed.

        Raises:
            StorageError: too many acts waiting (reason ``busy``), or the
                database failed (the whole group failed).
            Exception: whatever ``act`` raised; only this act was rolled back.
        """
        if self._store.local_group <= 1:
            # Group commit off: each act commits alone behind the limiter,
            # the path every act took before groups (benches compare to it).
            results = await trio.to_thread.run_sync(
                self._store.commit_local, [act], limiter=self._limiter
            )
            return outcome(results[0])
        if len(self._queue) >= self._max_waiting:
            self.refused += 1
            raise StorageError(
                f"{len(self._queue)} local writes are already waiting for the disk; try again",
                reason="busy",
            )
        waiter = _Waiter(act)
        self._queue.append(waiter)
        self._grown.set()
        if self._busy:
            try:
                await waiter.event.wait()
            except BaseException:
                if not waiter.taken:
                    # Still queued (or just handed the lead): leave, pass it on.
                    # Taken acts stay in their group, which commits anyway.
                    self._queue.remove(waiter)
                    if waiter.lead:
                        self._hand_off()
                raise
            if waiter.result is not None:
                return outcome(waiter.result)
        else:
            self._busy = True
        return await self._lead(waiter)

    async def _linger(self) -> None:
        """Wait briefly for the writers the last group saw to queue again.

        ``_last`` counts the writers active when the last group committed:
        its own acts and those queued behind it. When several were active
        and that was recent, the acts just acknowledged are likely on their
        way back (a client's round trip), and waiting up to ``LINGER`` for
        them puts every writer in one commit; otherwise writers split into
        two halves that commit in turns, each half idle for a whole commit.
        A single writer never waits.
        """
        if self._last <= 1 or trio.current_time() - self._last_end > LINGER_AFTER:
            return
        target = min(self._store.local_group, self._last)
        with trio.move_on_after(LINGER):
            while len(self._queue) < target:
                self._grown = trio.Event()
                await self._grown.wait()

    async def _lead(self, me: _Waiter) -> Any:
        try:
            await self._linger()
            await self._limiter.acquire()
        except BaseException:
            self._queue.remove(me)
            self._hand_off()
            raise
        group: list[_Waiter] = []
        try:
            # The leader is the head of the queue, so the first of its group.
            n = min(max(1, self._store.local_group), len(self._queue))
            group = [self._queue.popleft() for _ in range(n)]
            for w in group:
                w.taken = True
            # The group is taken: it commits even if this task is cancelled,
            # since the others' acts are in it.
            with trio.CancelScope(shield=True):
                try:
                    results = await trio.to_thread.run_sync(
                        self._store.commit_local, [w.act for w in group]
                    )
                except Exception as exc:
                    results = [(False, exc)] * len(group)
            for w, result in zip(group, results, strict=True):
                w.result = result
            self._last, self._last_end = len(group) + len(self._queue), trio.current_time()
        finally:
            self._limiter.release()
            for w in group:
                if w.result is None:  # the thread died of a BaseException
                    w.result = (False, StorageError("the write was interrupted", reason="io"))
                w.event.set()
            self._hand_off()
        assert me.result is not None
        return outcome(me.result)

    def _hand_off(self) -> None:
        """Give the lead to the first queued act, or mark the committer idle."""
        if self._queue:
            head = self._queue[0]
            head.lead = True
            head.event.set()
        else:
            self._busy = False

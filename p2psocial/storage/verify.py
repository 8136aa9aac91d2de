"""Signature checks of an ingest batch on the verify thread pool.

Theory. ``cryptography`` releases the GIL while it verifies an Ed25519
signature, so checks run on a small thread pool while the calling thread
decodes payloads and works the database. A batch is cut into *batch runs*
(per author, consecutive seqs), each checked with ``feeds.verify_run`` as a
detached segment: its links, every signature's encoding, and its top
signature. A valid batch run proves every entry in it authentic (each entry
is committed to by the hash link of the next), so any piece of it that the
transaction stores needs only the link to its anchor checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from ..protocol.entries import Entry
from ..protocol.errors import ProtocolError
from ..protocol.feeds import verify_run

__all__ = ["Preverifier", "verify_one_run"]


class _HasEntry(Protocol):
    @property
    def entry(self) -> Entry: ...


def verify_one_run(run: list[Entry], anchor: Entry | None) -> ProtocolError | None:
    """``verify_run(run, anchor)``, returning the error instead of raising it."""
    try:
        if len(run) == 1 and anchor is None:
            # A lone entry: its own strict signature check, which already
            # includes the encoding checks verify_run would repeat.
            run[0].verify()
        else:
            verify_run(run, anchor)
    except ProtocolError as exc:
        return exc
    return None


def _verify_chunk(work: list[tuple[list[Entry], Entry | None]]) -> list[ProtocolError | None]:
    return [verify_one_run(run, anchor) for run, anchor in work]


class Preverifier:
    """Signature checks of a batch, started on the pool before the write transaction.

    Batch runs are per author, consecutive seqs; an id seen twice counts
    once, and a second id at the same seq is checked alone (a fork candidate).
    """

    def __init__(
        self, items: Sequence[_HasEntry], pool: ThreadPoolExecutor | None, threads: int
    ) -> None:
        self._runs: list[list[Entry]] = []
        self._run_of: dict[bytes, int] = {}
        by_author: dict[bytes, list[Entry]] = {}
        for it in items:
            by_author.setdefault(it.entry.author, []).append(it.entry)
        for entries in by_author.values():
            if len(entries) > 1:
                entries.sort(key=lambda e: e.seq)
            cur = -1  # index of the run being extended
            for e in entries:
                if e.id in self._run_of:
                    continue
                run = self._runs[cur] if cur >= 0 else None
                if run is not None and e.seq == run[-1].seq + 1:
                    run.append(e)
                    self._run_of[e.id] = cur
                elif run is not None and e.seq == run[-1].seq:
                    self._new_run(e)  # a rival at the same seq is checked alone
                else:
                    cur = self._new_run(e)
        self._results: dict[int, ProtocolError | None] = {}
        self._tasks: list[tuple[list[int], Future[list[ProtocolError | None]]]] = []
        self._task_of: dict[int, int] = {}
        if pool is None:
            return
        # Big runs alone, small ones (live entries) in chunks: amortises the
        # executor's per-task cost and keeps every worker busy.
        step = max(1, min(16, len(self._runs) // (4 * max(1, threads))))
        batch: list[int] = []
        size = 0
        for i, run in enumerate(self._runs):
            batch.append(i)
            size += len(run)
            if len(batch) >= step or size >= 64:
                self._submit(pool, batch)
                batch, size = [], 0
        if batch:
            self._submit(pool, batch)

    def _new_run(self, e: Entry) -> int:
        self._runs.append([e])
        self._run_of[e.id] = len(self._runs) - 1
        return len(self._runs) - 1

    def _submit(self, pool: ThreadPoolExecutor, indexes: list[int]) -> None:
        work: list[tuple[list[Entry], Entry | None]] = [(self._runs[i], None) for i in indexes]
        for i in indexes:
            self._task_of[i] = len(self._tasks)
        self._tasks.append((indexes, pool.submit(_verify_chunk, work)))

    def ready(self, entries: list[Entry]) -> bool:
        """True if asking about ``entries`` will not wait for the pool."""
        i = self._run_of.get(entries[0].id)
        if i is None or i in self._results or i not in self._task_of:
            return True
        return self._tasks[self._task_of[i]][1].done()

    def verdict(self, entries: list[Entry]) -> bool | None:
        """Whether one verified batch run holds all of ``entries``.

        Returns:
            True (it does, and it verified), False (its batch run failed), or
            None (they are not all in one batch run).
        """
        i = self._run_of.get(entries[0].id)
        if i is None or any(self._run_of.get(e.id) != i for e in entries):
            return None
        if i not in self._results:
            t = self._task_of.get(i)
            if t is None:
                self._results[i] = verify_one_run(self._runs[i], None)
            else:
                indexes, fut = self._tasks[t]
                if not fut.done() and fut.cancel():
                    # Not started yet: check it here rather than wait idle.
                    res = _verify_chunk([(self._runs[j], None) for j in indexes])
                else:
                    res = fut.result()
                self._results.update(zip(indexes, res, strict=True))
        return self._results[i] is None

    def wait(self) -> None:
        """Block until every submitted check has finished (results are kept)."""
        for _, fut in self._tasks:
            if not fut.cancelled():
                fut.result()

    def cancel(self) -> None:
        """Drop checks nobody will ask for (the batch failed early)."""
        for _, fut in self._tasks:
            fut.cancel()

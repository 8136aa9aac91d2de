"""What an ingest batch is made of: decoded items and their payload checks.

An :class:`Item` is one (entry, payload) of a batch after its envelope has
been decoded. Its payload is checked on its own (:func:`check_payload`)
before any database work; a payload that fails is set aside and the
envelope kept (spec/protocol.md 5.3). :class:`PreparedBatch` carries the
items, the outcomes decided so far and the signature checks under way from
:meth:`Store.prepare_ingest` to the write transaction.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.entries import Entry, decode_payload_untrusted
from ..protocol.errors import ProtocolError
from .model import Outcome
from .verify import Preverifier

__all__ = [
    "CHUNK",
    "ROWS_PER_INSERT",
    "SENDER_FAULTS",
    "Item",
    "PreparedBatch",
    "check_payload",
    "chunks",
    "insert_rows",
    "payload_fault",
    "rejected",
]

CHUNK = 500  # bound on SQL parameters per IN (...) list

#: Payload failures that are the sender's fault: the bytes are not what the
#: author signed. Every other payload failure is the author's (protocol.md 5.3).
SENDER_FAULTS = frozenset({"payload_size", "payload_hash"})


def chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``seq`` in slices of at most ``n``, e.g. to bound an ``IN (...)`` list."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


#: Rows per INSERT statement, largest first (see :func:`insert_rows`).
ROWS_PER_INSERT = (100, 10)


@functools.lru_cache(maxsize=64)
def _insert_sql(verb: str, table: str, columns: tuple[str, ...], n: int) -> str:
    row = "(" + ",".join("?" * len(columns)) + ")"
    return f"{verb} INTO {table}({', '.join(columns)}) VALUES " + ",".join([row] * n)


def insert_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    verb: str = "INSERT",
) -> None:
    """``INSERT INTO table(columns)`` every row of ``rows``, many rows per statement.

    Why not ``executemany``: it steps SQLite once per row and takes the GIL
    back after every step, so while another thread runs Python (the next
    batch being decoded) each step waits for its turn. One statement of many
    rows is one step: SQLite works through the whole chunk without the GIL.
    Chunks have a few fixed sizes (:data:`ROWS_PER_INSERT`, the rest row by
    row), so each statement text is compiled once and cached; 100 rows of up
    to 300 columns stay below SQLite's 32,766 parameters.

    ``verb`` is ``INSERT`` or a form of it such as ``INSERT OR IGNORE``;
    ``verb``, ``table`` and ``columns`` are SQL text: constants of the
    caller, never data.
    """
    start, n = 0, len(rows)
    for size in ROWS_PER_INSERT:
        if n - start < size:
            continue
        sql = _insert_sql(verb, table, columns, size)
        while n - start >= size:
            conn.execute(sql, [v for row in rows[start : start + size] for v in row])
            start += size
    if start < n:
        conn.executemany(_insert_sql(verb, table, columns, 1), rows[start:])


@dataclass(slots=True)
class Item:
    """One decoded item of a batch; ``value`` is set once the payload is checked."""

    index: int
    entry: Entry
    payload: bytes | None
    value: dict[str, Any] | None = None
    checked: bool = False
    #: Why the payload that came with it was set aside (spec/protocol.md
    #: 5.3): ``invalid_payload`` (the author's fault), or ``payload_size`` /
    #: ``payload_hash`` (the sender's). The envelope is kept either way.
    fault: str | None = None


def payload_fault(exc: ProtocolError) -> str:
    """Whose fault a failed payload is: its sender's reason, or ``invalid_payload``."""
    return exc.reason if exc.reason in SENDER_FAULTS else "invalid_payload"


def check_payload(it: Item) -> str | None:
    """Decode and check ``it.payload`` against its entry.

    A payload that fails is set aside and the envelope kept (spec/protocol.md
    5.3): ``it.payload`` becomes None and ``it.fault`` says whose fault it
    was. Returns None: a payload never makes its entry invalid.
    """
    it.checked = True
    if it.payload is None:
        return None
    try:
        it.value = decode_payload_untrusted(it.entry, it.payload)
    except ProtocolError as exc:
        it.payload = None
        it.value = None
        it.fault = payload_fault(exc)
    return None


def rejected(it: Item, reason: str) -> Outcome:
    """The outcome refusing ``it`` for ``reason``."""
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

"""Two batches of one feed in flight at once: written in call order, stored as one chain."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import trio
import trio.testing

from p2psocial.storage import open_async_store
from p2psocial.storage.batch import ROWS_PER_INSERT, insert_rows
from p2psocial.storage.model import Outcome

from .helpers import NOW, FeedBuilder, key


async def test_batches_of_one_feed_write_in_call_order(tmp_path: Path) -> None:
    # Without segments, a batch written before the one below it is refused
    # (no_prev). The first call's preparation is held until the second's has
    # finished, so the second is ready first and only the order of calls
    # can put the first one's write ahead of it.
    a = FeedBuilder(key(1))
    for i in range(30):
        a.post(f"post {i}")
    first, second = a.items(1, 20), a.items(21, 30)
    second_prepared = threading.Event()
    results: dict[str, list[Outcome]] = {}
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db", allow_segments=False) as store:
            prepare = store.store.prepare_ingest

            def held_prepare(items: Any, **kw: Any) -> Any:
                if len(items) == 20:
                    if not second_prepared.wait(10):
                        raise RuntimeError("the second batch was never prepared")
                    return prepare(items, **kw)
                batch = prepare(items, **kw)
                second_prepared.set()
                return batch

            store.store.prepare_ingest = held_prepare  # type: ignore[method-assign]

            async def one(name: str, items: list[tuple[bytes, bytes | None]]) -> None:
                results[name] = await store.ingest(items, now_ms=NOW, author=a.author)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, "first", first)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(one, "second", second)
            assert [o.status for o in results["first"]] == ["stored"] * 20
            assert [o.status for o in results["second"]] == ["stored"] * 10
            assert await store.head(a.author) == (30, a.id(30))
            assert not store._ingest_calls  # nothing left behind per feed


async def test_a_cancelled_call_does_not_let_the_next_jump_the_queue(tmp_path: Path) -> None:
    # Calls a, b, c for one feed; b is cancelled while it waits for a. c must
    # still wait for a: written first, c's entries (21..30) would find no
    # entry 20 below them and be refused (no segments here).
    a = FeedBuilder(key(3))
    for i in range(30):
        a.post(f"post {i}")
    release, c_prepared = threading.Event(), threading.Event()
    results: dict[str, list[Outcome]] = {}
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db", allow_segments=False) as store:
            prepare = store.store.prepare_ingest

            def held_prepare(items: Any, **kw: Any) -> Any:
                if len(items) == 20 and not release.wait(10):
                    raise RuntimeError("never released")
                batch = prepare(items, **kw)
                if len(items) == 10:
                    c_prepared.set()
                return batch

            store.store.prepare_ingest = held_prepare  # type: ignore[method-assign]

            async def one(name: str, items: list[tuple[bytes, bytes | None]]) -> None:
                results[name] = await store.ingest(items, now_ms=NOW, author=a.author)

            b_scope = trio.CancelScope()

            async def b() -> None:
                with b_scope:
                    await one("b", a.items(21, 25))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, "a", a.items(1, 20))
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(b)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(one, "c", a.items(21, 30))
                assert await trio.to_thread.run_sync(c_prepared.wait, 10)
                calls = store._ingest_calls[a.author]
                # Until b and c both wait for an earlier call (b for a; c for b or a).
                while sum(ev.statistics().tasks_waiting for ev in calls[:2]) < 2:
                    await trio.testing.wait_all_tasks_blocked(0.005)
                b_scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                release.set()
            assert "b" not in results
            assert [o.status for o in results["a"]] == ["stored"] * 20
            assert [o.status for o in results["c"]] == ["stored"] * 10
            assert await store.head(a.author) == (30, a.id(30))
            assert not store._ingest_calls


async def test_a_failed_call_does_not_hold_up_the_next(tmp_path: Path) -> None:
    a = FeedBuilder(key(2))
    for i in range(5):
        a.post(f"post {i}")
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db") as store:
            prepare = store.store.prepare_ingest
            calls = [0]

            def failing_once(items: Any, **kw: Any) -> Any:
                calls[0] += 1
                if calls[0] == 1:
                    raise OSError("disk on fire")
                return prepare(items, **kw)

            store.store.prepare_ingest = failing_once  # type: ignore[method-assign]
            try:
                await store.ingest(a.items(1, 3), now_ms=NOW, author=a.author)
            except OSError as exc:
                assert str(exc) == "disk on fire"
            else:
                raise AssertionError("the first call should have failed")
            out = await store.ingest(a.items(1, 5), now_ms=NOW, author=a.author)
            assert [o.status for o in out] == ["stored"] * 5
            assert not store._ingest_calls


def test_entry_rows_in_every_statement_size(tmp_path: Path) -> None:
    # Full chunks of each size and a remainder row by row: every row lands once.
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute(
        "CREATE TABLE entries (eid INTEGER PRIMARY KEY, fid, seq, id, ts, kind, raw, pstate, "
        "payload, target, root, aux, tl)"
    )
    big, small = ROWS_PER_INSERT
    n = big + 2 * small + 3
    rows = [
        (i, 1, i, bytes([i % 256]), i, "post", b"r", 1, None, None, None, None, 1)
        for i in range(1, n + 1)
    ]
    columns = ("eid", "fid", "seq", "id", "ts", "kind", "raw", "pstate", "payload", "target")
    columns += ("root", "aux", "tl")
    insert_rows(conn, "entries", columns, rows)
    got = conn.execute("SELECT eid, seq, kind FROM entries ORDER BY eid").fetchall()
    assert got == [(i, i, "post") for i in range(1, n + 1)]

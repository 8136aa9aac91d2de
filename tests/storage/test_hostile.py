"""Hostile input: garbage and mutated entries only ever produce rejections."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2psocial.storage import Outcome, PreparedBatch, Store, open_async_store

from .helpers import NOW, FeedBuilder, key

_FEED = FeedBuilder(key(1))
for _i in range(6):
    _FEED.post(f"p{_i} words")
_ITEMS = _FEED.items()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_ITEMS) - 1),
            st.integers(0, 400),
            st.integers(0, 255),
            st.booleans(),
            st.binary(max_size=40),
        ),
        max_size=8,
    )
)
def test_mutations_never_raise_or_leave_rows(tmp_path_factory, muts) -> None:
    path = tmp_path_factory.mktemp("h") / "n.db"
    with Store.open(path) as store:
        batch = []
        for idx, pos, byte, in_payload, junk in muts:
            raw, pl = _ITEMS[idx]
            if in_payload:
                pl = pl[: pos % (len(pl) + 1)] + bytes([byte]) + pl[pos % (len(pl) + 1) + 1 :]
            else:
                raw = raw[: pos % (len(raw) + 1)] + bytes([byte]) + raw[pos % (len(raw) + 1) + 1 :]
            batch.append((raw + junk if junk and not in_payload else raw, pl))
        outs = store.ingest(batch, now_ms=NOW)
        assert len(outs) == len(batch)
        stored = {o.id for o in outs if o.status == "stored"}
        held = {r[0] for r in store.connection.execute("SELECT id FROM entries")}
        assert held == stored
        # Whatever was stored is genuine.
        assert held <= {e.id for e in _FEED.entries}
        assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_random_garbage(tmp_path: Path) -> None:
    rng = random.Random(5)
    with Store.open(tmp_path / "n.db") as store:
        batch = [
            (rng.randbytes(rng.randint(0, 700)), rng.randbytes(rng.randint(0, 50)))
            for _ in range(300)
        ]
        outs = store.ingest(batch, now_ms=NOW)
        assert {o.status for o in outs} == {"rejected"}
        assert store.statistics()["entries"] == 0


def _batch() -> list[tuple[bytes, bytes | None]]:
    feeds = [FeedBuilder(key(400 + i)) for i in range(20)]
    return [f.post(f"n{i}") for f in feeds for i in range(50)]


async def test_ingest_cancelled_before_its_transaction_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cancel lands while the batch is decoded and its checks start, that
    # is before the write transaction: nothing of the batch is kept.
    items = _batch()
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db") as store:
            prepare = store.store.prepare_ingest
            with trio.CancelScope() as scope:

                def cancel_then_prepare(*args: Any, **kwargs: Any) -> PreparedBatch:
                    trio.from_thread.run_sync(scope.cancel)
                    return prepare(*args, **kwargs)

                monkeypatch.setattr(store.store, "prepare_ingest", cancel_then_prepare)
                await store.ingest(items, now_ms=NOW)
            assert scope.cancelled_caught
            monkeypatch.undo()
            stats = await store.statistics()
            assert (stats["entries"], stats["ingested"]) == (0, {})
            outs = await store.ingest(items, now_ms=NOW)
            assert {o.status for o in outs} == {"stored"}
            assert (await store.statistics())["entries"] == len(items)


async def test_ingest_cancelled_inside_its_transaction_commits_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write transaction is never abandoned half-done: a cancel that arrives
    # once it runs waits for it, and the whole batch is kept.
    items = _batch()
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db") as store:
            write = store.store.ingest_prepared
            with trio.CancelScope() as scope:

                def cancel_then_write(batch: PreparedBatch) -> list[Outcome]:
                    trio.from_thread.run_sync(scope.cancel)
                    return write(batch)

                monkeypatch.setattr(store.store, "ingest_prepared", cancel_then_write)
                outs = await store.ingest(items, now_ms=NOW)
            # trio lets a thread that cannot be abandoned finish and returns
            # its result; the cancel takes effect at the caller's next checkpoint.
            assert {o.status for o in outs} == {"stored"}
            monkeypatch.undo()
            assert (await store.statistics())["entries"] == len(items)
            outs = await store.ingest(items, now_ms=NOW)
            assert {o.status for o in outs} == {"duplicate"}

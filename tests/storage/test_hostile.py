"""Hostile input: garbage and mutated entries only ever produce rejections."""

from __future__ import annotations

import random
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2psocial.storage import Store, open_async_store

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


async def test_cancelled_ingest_is_all_or_nothing(tmp_path: Path) -> None:
    feeds = [FeedBuilder(key(400 + i)) for i in range(20)]
    items = []
    for f in feeds:
        for i in range(50):
            items.append(f.post(f"n{i}"))
    with trio.fail_after(30):
        async with open_async_store(tmp_path / "n.db") as store:
            with trio.move_on_after(0.001):
                await store.ingest(items, now_ms=NOW)
            n = (await store.statistics())["entries"]
            assert n in (0, len(items))
            outs = await store.ingest(items, now_ms=NOW)
            assert len(outs) == len(items)
            assert (await store.statistics())["entries"] == len(items)

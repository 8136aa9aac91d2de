"""Newest-first catch-up between real nodes (spec/sync.md 5.6): real TCP on
127.0.0.1, real SQLite stores. A newly followed long feed shows its latest
50 entries before its oldest arrive, and then completes: contiguous, with the
author's head (its id, so the whole chain links up to a signed top)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio

from p2psocial.node.replication.progress import progress_rows
from p2psocial.protocol.entries import Entry, decode_entry_untrusted
from p2psocial.protocol.sync import SyncLimits

from .test_replication_helpers import TNode, load_feed, make_feed, open_testnet

N = 3_000


def record_arrivals(node: TNode, into: list[int], author: bytes) -> None:
    """Log the seqs of ``author``'s entries in the order ``node`` stores them."""
    inner = node.rep.ingest.on_stored

    def stored(entries: list[Entry]) -> None:
        into.extend(e.seq for e in entries if e.author == author)
        if inner is not None:
            inner(entries)

    node.rep.ingest.on_stored = stored


async def whole_chain(node: TNode, author: bytes) -> list[bytes]:
    """The ids of ``author``'s feed as ``node`` holds it from seq 1, checking each link."""
    ids: list[bytes] = []
    prev: bytes | None = None
    while True:
        rows = await node.store.entries_after(author, len(ids), 1000)
        if not rows:
            return ids
        for raw, _payload in rows:
            e = decode_entry_untrusted(raw)
            assert e.seq == len(ids) + 1 and e.prev == prev, "a broken link"
            ids.append(e.id)
            prev = e.id


async def follow_long_feed(tmp_path: Path, limits: SyncLimits) -> tuple[list[int], dict]:
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 2, limits=limits) as net:
            a, b = net.nodes
            await load_feed(a.store, make_feed(a.key, N))
            await a.rep.refresh()
            arrivals: list[int] = []
            record_arrivals(b, arrivals, a.identity)
            await b.follow(a)
            await b.connect(a)
            await net.wait_for(lambda: _complete(b, a))
            assert await b.store.head(a.identity) == await a.store.head(a.identity)
            assert await whole_chain(b, a.identity) == await whole_chain(a, a.identity)
            rows = await progress_rows(
                b.store, [a.identity], b.rep.known_heads([a.identity]), b.rep.recent
            )
            for lk in b.rep.pool.open_links():
                assert not lk.session.catching()
            assert "internal_error" not in b.rep.statistics()["links_dropped"]
            return arrivals, rows[0]


async def _complete(node: TNode, author: TNode) -> bool:
    return await node.seq_of(author) == N


async def test_latest_fifty_arrive_before_the_oldest_then_the_whole_feed(
    tmp_path: Path,
) -> None:
    arrivals, row = await follow_long_feed(tmp_path, SyncLimits())
    assert sorted(set(arrivals)) == list(range(1, N + 1))
    assert set(arrivals[:50]) == set(range(N - 49, N + 1)), "the recent part first"
    assert arrivals.index(1) > 50, "the oldest entries come after it"
    # Filled in downwards: each new run starts below the one before.
    starts = [arrivals[0]] + [s for p, s in itertools.pairwise(arrivals) if s != p + 1]
    assert starts == sorted(starts, reverse=True)
    assert row["held"] == row["contiguous"] == row["head"] == N
    assert row["recent_complete"] and row["complete"] and not row["catching"]


async def test_a_feed_longer_than_catch_up_below_takes_the_classic_path_after_its_recent_part(
    tmp_path: Path,
) -> None:
    """Downward wants are paced (one token per 1,000 entries); the classic serve
    from seq 1 is not. Past ``catch_up_below`` missing seqs the catch-up ends
    after the recent part and the rest comes upwards from seq 1 (spec 5.6 rule 5)."""
    arrivals, row = await follow_long_feed(tmp_path, SyncLimits(catch_up_below=1_000))
    assert sorted(set(arrivals)) == list(range(1, N + 1))
    assert set(arrivals[:50]) == set(range(N - 49, N + 1)), "the recent part first"
    rest = [s for s in arrivals[50:] if s <= N - 50]
    assert rest == list(range(1, N - 49)), "then upwards from seq 1, once each"
    assert row["complete"] and not row["catching"]


async def test_classic_catch_up_still_works_with_newest_first_off(tmp_path: Path) -> None:
    arrivals, row = await follow_long_feed(tmp_path, SyncLimits(newest_first=False))
    assert arrivals[0] == 1 and sorted(set(arrivals)) == list(range(1, N + 1))
    assert row["complete"]


async def test_progress_of_a_feed_nobody_serves(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            (a,) = net.nodes
            other = bytes(range(32))  # an identity nothing is known of
            rows = await progress_rows(a.store, [other], a.rep.known_heads([other]), 50)
            assert rows[0]["head"] == 0 and rows[0]["held"] == 0
            assert not rows[0]["recent_complete"] and not rows[0]["complete"]


@pytest.mark.parametrize("held", [0, 10])
async def test_progress_counts_the_recent_part(tmp_path: Path, held: int) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            (a,) = net.nodes
            feed = make_feed(a.key, 100)
            # The newest ``held`` entries only: a detached run, as a catch-up leaves it.
            if held:
                await load_feed(a.store, feed[-held:])
            rows = await progress_rows(a.store, [a.identity], {a.identity: (100, True)}, 50)
            assert rows[0]["head"] == 100 and rows[0]["recent"] == 50
            assert rows[0]["recent_held"] == held and rows[0]["held"] == held
            assert rows[0]["contiguous"] == 0 and not rows[0]["recent_complete"]
            assert rows[0]["catching"]


# --- the CLI's progress helper (p2psocial/cli/progress.py) ------------------------


class FakeDaemon:
    """Answers ``sync_progress`` from a script of rows; time moves 0.2 s a poll."""

    def __init__(self, rows: list[dict[str, object] | None]) -> None:
        self.rows, self.t, self.calls = rows, 0.0, 0

    def call(self, method: str, **params: object) -> dict[str, object]:
        assert method == "sync_progress" and params == {"identity": "p2ps1x"}
        row = self.rows[min(self.calls, len(self.rows) - 1)]
        self.calls += 1
        return {"items": [row] if row else []}

    def sleep(self, s: float) -> None:
        self.t += s


def prow(held: int, recent_held: int, head: int = 10_000) -> dict[str, object]:
    recent = min(50, head)
    return {
        "identity": "p2ps1x",
        "held": held,
        "contiguous": 0,
        "head": head,
        "recent": recent,
        "recent_held": recent_held,
        "recent_complete": head > 0 and recent_held >= recent,
        "complete": False,
        "catching": True,
    }


def test_progress_helper_prints_one_json_line_per_change_and_stops_at_the_recent_part() -> None:
    import io
    import json

    from p2psocial.cli.progress import wait_for_recent

    d = FakeDaemon([None, prow(0, 0, 0), prow(0, 0, 0), prow(20, 20), prow(50, 50), prow(60, 50)])
    out, err = io.StringIO(), io.StringIO()
    row = wait_for_recent(
        d.call, "p2ps1x", json_mode=True, clock=lambda: d.t, sleep=d.sleep, stdout=out, stderr=err
    )
    assert row is not None and row["recent_complete"] and d.calls == 5
    lines = [json.loads(x)["sync_progress"] for x in out.getvalue().splitlines()]
    assert [(x["held"], x["recent_held"]) for x in lines] == [(0, 0), (20, 20), (50, 50)]
    assert err.getvalue() == ""


def test_progress_helper_gives_up_at_its_time_limit_with_a_hint() -> None:
    import io

    from p2psocial.cli.progress import wait_for_recent

    d = FakeDaemon([prow(0, 0, 0)])
    err = io.StringIO()
    row = wait_for_recent(
        d.call,
        "p2ps1x",
        json_mode=False,
        timeout=3.0,
        clock=lambda: d.t,
        sleep=d.sleep,
        stdout=io.StringIO(),
        stderr=err,
    )
    assert row is not None and not row["recent_complete"]
    assert 15 <= d.calls <= 17, "polled about every 0.2 s for 3 s, then stopped"
    assert "no peer has sent this feed yet" in err.getvalue()
    # Nothing known of the feed: it gives up sooner, at unknown_timeout.
    d = FakeDaemon([prow(0, 0, 0)])
    wait_for_recent(
        d.call,
        "p2ps1x",
        json_mode=True,
        timeout=30.0,
        unknown_timeout=1.0,
        clock=lambda: d.t,
        sleep=d.sleep,
        stdout=io.StringIO(),
    )
    assert 5 <= d.calls <= 7
    # Something is known: it waits on for the recent part, up to the timeout.
    d = FakeDaemon([prow(10, 10)])
    wait_for_recent(
        d.call,
        "p2ps1x",
        json_mode=True,
        timeout=3.0,
        unknown_timeout=1.0,
        clock=lambda: d.t,
        sleep=d.sleep,
        stdout=io.StringIO(),
    )
    assert d.calls >= 15


async def test_node_sync_progress_after_a_follow(tmp_path: Path) -> None:
    """The Node's ``sync_progress`` (the API method): a followed feed of 120
    posts reports its recent part, then the whole feed, by identity and in all."""
    from p2psocial import LocalUsageError, NodeConfig, SigningKey, open_node

    def cfg(name: str) -> NodeConfig:
        return NodeConfig(data_dir=tmp_path / name, listen="127.0.0.1", serve_api=False)

    with trio.fail_after(30):
        async with (
            open_node(
                cfg("a"), identity_key=SigningKey.generate(), node_key=SigningKey.generate()
            ) as a,
            open_node(
                cfg("b"), identity_key=SigningKey.generate(), node_key=SigningKey.generate()
            ) as b,
        ):
            for i in range(120):
                await a.post(f"post {i}")
            assert b.peer_addr is not None and a.peer_addr is not None
            await b.connect(*a.peer_addr)
            await b.follow(a.identity_text)
            while True:
                (row,) = (await b.sync_progress(a.identity_text))["items"]
                if row["complete"]:
                    break
                await trio.sleep(0.05)
            assert row["identity"] == a.identity_text
            assert row["held"] == row["contiguous"] == row["head"] == 120
            assert row["recent"] == row["recent_held"] == 50 and row["recent_complete"]
            every = {r["identity"]: r for r in (await b.sync_progress())["items"]}
            assert set(every) == {a.identity_text, b.identity_text}
            own = every[b.identity_text]  # b's own feed: its one follow
            assert own["head"] == own["held"] == 1 and own["complete"]
            with pytest.raises(LocalUsageError):
                await b.sync_progress("p2ps1notanidentity")

"""Search order and paging at a few thousand entries, and the plan behind them.

The reference is computed here from the stored posts themselves, and the page
walk is also compared with the query search ran before its rows were keyed
by time (every match joined to its entry and sorted), run on an FTS table
keyed the old way by eid, so a faster plan cannot quietly change what a page
holds: not with many posts in one millisecond, purges, deletes, blocks, or
a version 1 database upgraded.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial.storage import Page, Store
from p2psocial.storage.model import encode_cursor
from p2psocial.storage.queries import SEARCH_SQL, fts_query

from .helpers import NOW, FeedBuilder, key
from .test_open import as_version_1, post_texts

N_AUTHORS = 30
PER_AUTHOR = 100  # 3,000 entries, about 2,700 of them posts
WORDS = [f"w{i:02d}" for i in range(40)]

# Search as it ran before its time-ordered keys, on ref_fts (post_fts as it
# was: rows keyed by eid): the page every plan must give.
_OLD_SQL = (
    "SELECT e.ts, e.id, e.eid FROM ref_fts JOIN entries e ON e.eid = ref_fts.rowid "
    "WHERE ref_fts MATCH ? AND (e.ts, e.id) < (?, ?){} ORDER BY e.ts DESC, e.id DESC LIMIT ?"
)


def _build_ref(conn: sqlite3.Connection) -> None:
    """(Re)write ref_fts: every present post's text under its eid, as version 1 did."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS ref_fts USING fts5("
        "text, content='', tokenize='unicode61 remove_diacritics 2')"
    )
    conn.execute("INSERT INTO ref_fts(ref_fts) VALUES ('delete-all')")
    conn.executemany("INSERT INTO ref_fts(rowid, text) VALUES (?, ?)", post_texts(conn))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[FeedBuilder]]]:
    rng = random.Random(21)
    store = Store.open(tmp_path_factory.mktemp("search") / "node.db")
    feeds = [FeedBuilder(key(100 + i)) for i in range(N_AUTHORS)]
    items = []
    for k in range(PER_AUTHOR):
        for f in feeds:
            # Every author posts at the same instants: ties in ts, ordered by id.
            ts = NOW - 10_000_000 + k * 1000
            if rng.random() < 0.1 and f.entries:
                items.append(f.add("react", {"target": f.entries[0].id, "emoji": "👍"}, ts=ts))
            else:
                items.append(f.post(" ".join(rng.choices(WORDS, k=5)), ts=ts))
    for i in range(0, len(items), 500):
        assert all(o.status == "stored" for o in store.ingest(items[i : i + 500], now_ms=NOW))
    _build_ref(store.connection)
    try:
        yield store, feeds
    finally:
        store.close()


def _posts(store: Store, author: bytes | None = None) -> list[tuple[int, bytes, list[str]]]:
    """(ts, id, words) of every post whose text is held, newest first, off the store's views."""
    out = []
    for row in store.connection.execute(
        "SELECT e.id FROM entries e JOIN feeds f ON f.fid = e.fid WHERE e.kind = 'post'"
        + (" AND f.author = ?" if author is not None else ""),
        (author,) if author is not None else (),
    ):
        view = store.get_entry(row[0])
        assert view is not None
        if view.text is None:  # deleted, dropped or blocked: never found
            assert view.payload_state != "present"
            continue
        out.append((view.timestamp, view.id, view.text.split()))
    out.sort(reverse=True)
    return out


def _reference(store: Store, query: str, author: bytes | None) -> list[bytes]:
    """The ids a search must return, in order, matched in Python."""
    if query.startswith('"'):
        phrase = query.strip('"').split()
        n = len(phrase)
        hit = lambda ws: any(ws[i : i + n] == phrase for i in range(len(ws)))  # noqa: E731
    elif query.endswith("*"):
        hit = lambda ws: any(w.startswith(query[:-1]) for w in ws)  # noqa: E731
    else:
        terms = query.split()
        hit = lambda ws: all(t in ws for t in terms)  # noqa: E731
    return [id_ for _, id_, ws in _posts(store, author) if hit(ws)]


def _walk(store: Store, query: str, author: bytes | None, limit: int) -> list[Page]:
    pages = []
    cursor = None
    while True:
        page = store.search(query, author=author, limit=limit, before=cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 10_000


def _old_walk(
    conn: sqlite3.Connection, query: str, fid: int | None, limit: int
) -> list[list[bytes]]:
    pages = []
    bound = (1 << 62, b"")
    while True:
        params: list[object] = [fts_query(query), *bound]
        if fid is not None:
            params.append(fid)
        rows = conn.execute(
            _OLD_SQL.format(" AND e.fid = ?" if fid is not None else ""), [*params, limit + 1]
        ).fetchall()
        pages.append([r[1] for r in rows[:limit]])
        if len(rows) <= limit:
            return pages
        bound = (rows[limit - 1][0], rows[limit - 1][1])


def _check(store: Store, query: str, author: bytes | None, limit: int) -> int:
    """Walk ``query``'s pages; assert them equal to the reference and the old walk.

    Returns:
        How many posts the walk held.
    """
    expected = _reference(store, query, author)
    pages = _walk(store, query, author, limit)
    got = [v.id for p in pages for v in p.items]
    assert got == expected
    assert all(len(p.items) == limit for p in pages[:-1])
    assert 0 < len(pages[-1].items) <= limit or expected == []
    for page in pages[:-1]:
        last = page.items[-1]
        assert page.next_cursor == encode_cursor(last.timestamp, last.id)
    fid = None
    if author is not None:
        fid = store.connection.execute(
            "SELECT fid FROM feeds WHERE author = ?", (author,)
        ).fetchone()[0]
    _build_ref(store.connection)
    old = _old_walk(store.connection, query, fid, limit)
    assert [[v.id for v in p.items] for p in pages] == old
    return len(got)


@pytest.mark.parametrize(
    "query,with_author,limit",
    [
        ("w07", False, 50),
        ("w07", False, 7),
        ("w07", True, 3),
        ("w01 w02", False, 50),
        ('"w03 w04"', False, 11),
        ("w1*", False, 500),
        ("w1*", False, 1),
        ("w39", True, 50),
        ("nothing", False, 50),
    ],
)
def test_search_order_and_paging(
    built: tuple[Store, list[FeedBuilder]], query: str, with_author: bool, limit: int
) -> None:
    store, feeds = built
    _check(store, query, feeds[3].author if with_author else None, limit)


def test_search_order_has_ties_to_break(built: tuple[Store, list[FeedBuilder]]) -> None:
    store, _ = built
    ts = [t for t, _, _ in _posts(store)]
    assert len(set(ts)) < len(ts) / 10  # the order above is decided by id within a ts


def test_search_walks_the_fts_rows_in_key_order_without_a_sort(
    built: tuple[Store, list[FeedBuilder]],
) -> None:
    store, _ = built
    for author_sql, params in (("", ()), (" AND e.fid = ?", (1,))):
        plan = " | ".join(
            str(row[-1])
            for row in store.connection.execute(
                "EXPLAIN QUERY PLAN " + SEARCH_SQL % author_sql, ('"w07"', 0, 1 << 62, *params)
            )
        )
        assert plan.startswith("SCAN post_fts VIRTUAL TABLE"), plan
        assert "TEMP B-TREE" not in plan, plan


def _flood(store: Store, n_authors: int, per_author: int, ts: int) -> list[FeedBuilder]:
    """Posts by ``n_authors`` authors all at one millisecond ``ts``, plus a few around it."""
    rng = random.Random(ts)
    feeds = [FeedBuilder(key(300 + i)) for i in range(n_authors)]
    for f in feeds:
        f.post("flood early", ts=ts - 1)
        for _ in range(per_author):
            f.post("flood " + " ".join(rng.choices(WORDS[:4], k=2)), ts=ts)
        f.post("flood late", ts=ts + 1)
    # Round robin over the feeds, in batches that do not line up with them:
    # keys are taken both by stored posts and by earlier posts of the batch.
    items = [f.item(seq) for seq in range(1, per_author + 3) for f in feeds]
    for i in range(0, len(items), 97):
        assert all(o.status == "stored" for o in store.ingest(items[i : i + 97], now_ms=NOW))
    return feeds


def _integrity(store: Store) -> None:
    conn = store.connection
    conn.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')")
    n_keys, n_posts = conn.execute(
        "SELECT (SELECT count(*) FROM search_keys), "
        "(SELECT count(*) FROM entries WHERE kind = 'post' AND pstate = 1)"
    ).fetchone()
    assert n_keys == n_posts
    stray = conn.execute(
        "SELECT count(*) FROM search_keys k JOIN entries e ON e.eid = k.eid "
        "WHERE e.pstate != 1 OR (k.sk >= 0 AND k.sk >> 10 != e.ts)"
    ).fetchone()[0]
    assert stray == 0


def test_search_with_more_posts_in_one_millisecond_than_slots(tmp_path: Path) -> None:
    # 1,200 posts at one millisecond: their keys collide in the id bits and
    # outnumber the 1,024 slots, so some are keyed apart (negative).
    store = Store.open(tmp_path / "node.db")
    try:
        feeds = _flood(store, 30, 40, NOW - 5_000_000)
        _integrity(store)
        spilled = store.connection.execute("SELECT count(*) FROM search_keys WHERE sk < 0")
        assert spilled.fetchone()[0] == 30 * 40 - 1024
        for query, author, limit in (
            ("flood", None, 50),
            ("flood", None, 3),
            ("flood", None, 500),
            ("w01", None, 37),
            ("w02 w03", feeds[7].author, 4),
            ("early", None, 7),
        ):
            assert _check(store, query, author, limit) > 0
    finally:
        store.close()


def test_search_after_deletes_drops_blocks_and_forgets(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "node.db")
    try:
        feeds = _flood(store, 30, 40, NOW - 5_000_000)
        a, b, c, d = feeds[:4]
        # The author deletes two posts, one of them keyed among the flood.
        for f, seq in ((a, 2), (a, 30)):
            f.add("delete", {"target": f.id(seq)})
        store.ingest(a.items(), now_ms=NOW)
        assert store.drop_payload(b.id(5))
        store.block_local(c.author)
        assert store.forget_feed(d.author) == 42
        _integrity(store)
        assert _check(store, "flood", None, 50) == 28 * 42 - 2 - 1
        assert _check(store, "flood", c.author, 5) == 0
        assert _check(store, "w00", None, 9) > 0
        # Keys freed by the purges are handed out again, in time order.
        store.unblock_local(c.author)
        store.ingest(c.items(), now_ms=NOW)
        store.ingest(d.items(), now_ms=NOW)
        _integrity(store)
        assert _check(store, "flood", None, 64) == 30 * 42 - 2 - 1
        assert _check(store, "flood", c.author, 5) == 42
    finally:
        store.close()


def test_search_on_a_version_1_database_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        feeds = _flood(store, 12, 100, NOW - 5_000_000)
        feeds[0].add("delete", {"target": feeds[0].id(3)})
        store.ingest(feeds[0].items(), now_ms=NOW)
        store.block_local(feeds[1].author)
        before = [[v.id for v in p.items] for p in _walk(store, "flood", None, 50)]
    as_version_1(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'search_keys'").fetchone()[0]
        == 0
    )
    conn.close()
    with Store.open(path) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == 2
        _integrity(store)
        assert [[v.id for v in p.items] for p in _walk(store, "flood", None, 50)] == before
        assert _check(store, "flood", None, 50) == 10 * 102 + 101
        assert _check(store, "w03", feeds[5].author, 6) > 0
        # New posts after the upgrade take their place among the old.
        f = feeds[5]
        f.post("flood after the upgrade", ts=NOW - 5_000_000)
        store.ingest(f.items(), now_ms=NOW)
        _integrity(store)
        assert _check(store, "flood", None, 50) == 10 * 102 + 102


def test_pages_say_which_authors_are_forked(tmp_path: Path) -> None:
    from tests.cli.forks import make_fork, posts

    fork = make_fork()
    honest = key(9)
    honest_items, _ = posts(honest, ["an honest post"])
    store = Store.open(tmp_path / "node.db")
    try:
        now = time.time_ns() // 1_000_000  # the fork's entries are dated now
        store.ingest(fork.common + fork.x + honest_items, now_ms=now)
        (out,) = store.ingest(fork.y[:1], now_ms=now)
        assert (out.status, out.reason) == ("rejected", "fork")
        # The fork seq comes with the page, the same as forked_feeds says.
        assert store.forked_feeds() == {fork.key.public_key: fork.fork_seq}
        page = store.search("honest")
        assert len(page.items) == 1 and page.forks == {}
        page = store.search("fork")
        assert {v.author for v in page.items} == {fork.key.public_key}
        assert page.forks == {fork.key.public_key: fork.fork_seq}
        assert store.feed(fork.key.public_key).forks == {fork.key.public_key: fork.fork_seq}
        assert store.feed(honest.public_key).forks == {}
        assert store.feed(key(77).public_key).forks == {}
    finally:
        store.close()

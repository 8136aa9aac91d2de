"""Search order and paging at a few thousand entries, and the plan behind them.

The reference is computed here from the stored posts themselves, and the page
walk is also compared with the query search ran before it had its covering
index, so a faster plan cannot quietly change what a page holds.
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

N_AUTHORS = 30
PER_AUTHOR = 100  # 3,000 entries, about 2,700 of them posts
WORDS = [f"w{i:02d}" for i in range(40)]

# Search as it ran before its covering index: the page every plan must give.
_OLD_SQL = (
    "SELECT e.ts, e.id, e.eid FROM post_fts JOIN entries e ON e.eid = post_fts.rowid "
    "WHERE post_fts MATCH ? AND (e.ts, e.id) < (?, ?){} ORDER BY e.ts DESC, e.id DESC LIMIT ?"
)


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
    try:
        yield store, feeds
    finally:
        store.close()


def _posts(store: Store, author: bytes | None = None) -> list[tuple[int, bytes, list[str]]]:
    """(ts, id, words) of every held post, newest first, read off the store's views."""
    out = []
    for row in store.connection.execute(
        "SELECT e.id FROM entries e JOIN feeds f ON f.fid = e.fid WHERE e.kind = 'post'"
        + (" AND f.author = ?" if author is not None else ""),
        (author,) if author is not None else (),
    ):
        view = store.get_entry(row[0])
        assert view is not None and view.text is not None
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
    author = feeds[3].author if with_author else None
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
    old = _old_walk(store.connection, query, fid, limit)
    assert [[v.id for v in p.items] for p in pages] == old


def test_search_order_has_ties_to_break(built: tuple[Store, list[FeedBuilder]]) -> None:
    store, _ = built
    ts = [t for t, _, _ in _posts(store)]
    assert len(set(ts)) < len(ts) / 10  # the order above is decided by id within a ts


def test_search_reads_the_covering_index_not_the_entries_rows(
    built: tuple[Store, list[FeedBuilder]],
) -> None:
    store, _ = built
    for author_sql, params in (("", ()), (" AND e.fid = ?", (1,))):
        plan = " | ".join(
            str(row[-1])
            for row in store.connection.execute(
                "EXPLAIN QUERY PLAN " + SEARCH_SQL % author_sql,
                ('"w07"', 1 << 62, b"", *params, 51),
            )
        )
        assert "USING COVERING INDEX entries_search" in plan, plan
        assert "PRIMARY KEY" not in plan, plan


def test_search_without_the_index_gives_the_same_pages(tmp_path: Path) -> None:
    # A schema-2 database made before the index existed still searches alike.
    store = Store.open(tmp_path / "node.db")
    try:
        f = FeedBuilder(key(5))
        for i in range(30):
            f.post(f"w{i % 3:02d} common", ts=NOW - 1_000_000 + (i // 2) * 10)
        store.ingest(f.items(), now_ms=NOW)
        before = [[v.id for v in p.items] for p in _walk(store, "common", None, 4)]
        store.connection.execute("DROP INDEX entries_search")
        after = [[v.id for v in p.items] for p in _walk(store, "common", None, 4)]
        assert after == before and sum(map(len, after)) == 30
    finally:
        store.close()


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

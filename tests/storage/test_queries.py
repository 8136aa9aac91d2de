"""Timeline, feed, thread, mentions, tags and search, with pagination."""

from __future__ import annotations

import json

import pytest

from p2psocial.errors import LocalUsageError
from p2psocial.storage import Page, Store
from p2psocial.storage.model import encode_cursor

from .helpers import NOW, FeedBuilder, key


def all_pages(fetch, limit: int) -> list[list[bytes]]:
    pages: list[list[bytes]] = []
    cursor = None
    while True:
        page: Page = fetch(limit=limit, before=cursor)
        pages.append([v.id for v in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize("n_authors", [3, 40])  # merge plan and scan plan
def test_timeline_order_and_pagination(store: Store, n_authors: int) -> None:
    me = FeedBuilder(key(1))
    others = [FeedBuilder(key(10 + i)) for i in range(n_authors)]
    stranger = FeedBuilder(key(2))
    for i, f in enumerate(others):
        if i != 0:
            me.add("follow", {"target": f.author})
    me.post("my own")
    ts = NOW - 1_000_000
    for round_ in range(5):
        for f in [*others, stranger]:
            ts += 7
            f.post(f"r{round_}", ts=ts)
        # Same timestamp on two authors: the id breaks the tie.
        others[1].post("tie", ts=ts)
        others[2].post("tie", ts=ts)
    items = me.items() + stranger.items()
    for f in others:
        items += f.items()
    store.ingest(items, now_ms=NOW)
    expected = []
    rows = store.connection.execute(
        "SELECT ts, id, f.author FROM entries e JOIN feeds f USING (fid) WHERE kind='post'"
    ).fetchall()
    wanted = {me.author} | {f.author for f in others[1:]}
    expected = [id_ for ts_, id_, a in sorted(rows, reverse=True) if a in wanted]
    pages = all_pages(lambda **kw: store.timeline(me.author, **kw), 7)
    assert [i for p in pages for i in p] == expected
    assert all(len(p) == 7 for p in pages[:-1])
    first = store.timeline(me.author, limit=500)
    assert first.next_cursor is None and len(first.items) == len(expected)


def test_timeline_empty_and_bad_cursor(store: Store) -> None:
    assert store.timeline(key(1).public_key).items == []
    with pytest.raises(LocalUsageError):
        store.timeline(key(1).public_key, before="not-a-cursor!")
    with pytest.raises(LocalUsageError):
        store.timeline(key(1).public_key, limit=0)


def test_feed_pagination_and_kinds(store: Store) -> None:
    a = FeedBuilder(key(1))
    for i in range(12):
        a.post(f"p{i}")
        a.add("react", {"target": a.id(len(a.entries)), "emoji": "👀"})
    store.ingest(a.items(), now_ms=NOW)
    pages = all_pages(lambda **kw: store.feed(a.author, **kw), 5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [i for p in pages for i in p] == [a.id(s) for s in range(23, 0, -2)]
    everything = store.feed(a.author, limit=100, kinds=None)
    assert [v.seq for v in everything.items] == list(range(24, 0, -1))
    assert store.feed(key(5).public_key).items == []


def test_thread_tree_order(store: Store) -> None:
    a, b, c = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    a.post("root")
    r = a.id(1)
    b.post("b1", reply={"root": r, "parent": r})
    c.post("c1", reply={"root": r, "parent": b.id(1)})
    a.post("a2", reply={"root": r, "parent": c.id(1)})
    c.post("c2", reply={"root": r, "parent": r})
    b.post("unrelated")
    store.ingest(c.items() + b.items() + a.items(), now_ms=NOW)
    thread = store.thread(r)
    assert [(v.text, v.depth) for v in thread] == [
        ("root", 0),
        ("b1", 1),
        ("c1", 2),
        ("a2", 3),
        ("c2", 1),
    ]
    # Asking from inside the thread gives the whole thread.
    assert [v.text for v in store.thread(c.id(1))] == [v.text for v in thread]
    assert thread[0].replies == 2
    # A deleted reply stays as a placeholder with its children under it.
    c.add("delete", {"target": c.id(1)})
    store.ingest(c.items(3, 3), now_ms=NOW)
    thread = store.thread(r)
    assert [(v.text, v.depth, v.deleted) for v in thread] == [
        ("root", 0, False),
        ("b1", 1, False),
        (None, 2, True),
        ("a2", 3, False),
        ("c2", 1, False),
    ]
    assert store.thread(b"\x00" * 32) == []


def test_mentions_and_replies_notify_in_any_order(store: Store) -> None:
    me, b, c = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    me.post("my post")
    b.post("reply to you", reply={"root": me.id(1), "parent": me.id(1)})
    c.post("hey you", mentions=[me.author])
    me.post("self reply", reply={"root": me.id(1), "parent": me.id(1)})
    # The reply arrives before the post it answers.
    store.ingest(b.items(), now_ms=NOW)
    store.ingest(me.items() + c.items(), now_ms=NOW)
    page = store.mentions(me.author, limit=1)
    got = [v.text for v in page.items]
    page2 = store.mentions(me.author, limit=1, before=page.next_cursor)
    got += [v.text for v in page2.items]
    assert page2.next_cursor is None
    assert sorted(got) == ["hey you", "reply to you"]


def test_tags(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("tagged", tags=["Python"])
    a.post("other", tags=["rust"])
    store.ingest(a.items(), now_ms=NOW)
    assert [v.text for v in store.tagged("python").items] == ["tagged"]


def test_search_words_phrases_author(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.post("the quick brown fox")
    a.post("brown quick dogs")
    b.post("a quick brown fox jumps")
    b.post("Café au lait")
    store.ingest(a.items() + b.items(), now_ms=NOW)

    def texts(q: str, **kw) -> list[str]:
        return sorted(v.text or "" for v in store.search(q, **kw).items)

    assert texts("quick brown") == [
        "a quick brown fox jumps",
        "brown quick dogs",
        "the quick brown fox",
    ]
    assert texts('"quick brown"') == ["a quick brown fox jumps", "the quick brown fox"]
    assert texts('"quick brown"', author=a.author) == ["the quick brown fox"]
    assert texts("cafe") == ["Café au lait"]
    assert texts("jum*") == ["a quick brown fox jumps"]
    assert texts("fox AND OR NOT (") == []  # operators are just words here
    assert store.search("quick", author=key(7).public_key).items == []
    pages = all_pages(lambda **kw: store.search("quick", **kw), 2)
    assert [len(p) for p in pages] == [2, 1]
    for bad in ['"unbalanced', "   ", ""]:
        with pytest.raises(LocalUsageError):
            store.search(bad)


@pytest.mark.parametrize(
    "ts0,id0,want",
    [
        (2**64 - 1, b"\xff" * 32, [2, 1, 0]),  # beyond every timestamp a post can carry
        (2**53 - 1, b"\xff" * 32, [2, 1, 0]),
        (NOW - 1_000_000, b"\xff" * 32, [2, 1, 0]),  # the newest post's own millisecond
        (NOW - 1_000_000, b"\x00" * 32, [0]),
        (NOW - 1_000_001, b"\xff" * 32, [0]),
        (NOW - 1_000_001, b"\x00" * 32, []),
        (0, b"\xff" * 32, []),
    ],
)
def test_search_cursor_bounds(store: Store, ts0: int, id0: bytes, want: list[int]) -> None:
    # Any 40-byte cursor a client sends is a bound, never an overflow or an error.
    a = FeedBuilder(key(1))
    for ts in (NOW - 1_000_001, NOW - 1_000_000, NOW - 1_000_000):
        a.post("bound", ts=ts)
    store.ingest(a.items(), now_ms=NOW)
    ranked = sorted(a.entries, key=lambda e: (e.timestamp, e.id))
    page = store.search("bound", before=encode_cursor(ts0, id0))
    assert [v.id for v in page.items] == [ranked[i].id for i in want]


def test_entry_view_to_json(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.post("hi", mentions=[b.author], tags=["t"])
    b.add("follow", {"target": a.author})
    b.add("react", {"target": a.id(1), "emoji": "👍"})
    store.ingest(a.items() + b.items(), now_ms=NOW)
    v = store.get_entry(a.id(1))
    assert v is not None
    j = v.to_json()
    json.dumps(j)
    assert j["id"] == a.id(1).hex() and j["author"].startswith("p2ps1")
    assert j["mentions"][0].startswith("p2ps1") and j["reactions"] == {"👍": 1}
    f = store.get_entry(b.id(1))
    assert f is not None and f.to_json()["target"].startswith("p2ps1")
    json.dumps(f.to_json())


def test_timeline_follows_changes_at_once(store: Store) -> None:
    me, a, b = key(1), FeedBuilder(key(2)), FeedBuilder(key(3))
    store.append_local(me, "post", {"text": "mine"}, now_ms=NOW)
    a.post("from a")
    store.ingest(a.items(), now_ms=NOW)

    def texts() -> list[str | None]:
        return sorted(v.text for v in store.timeline(me.public_key).items)

    assert texts() == ["mine"]
    store.append_local(me, "follow", {"target": a.author}, now_ms=NOW)
    assert texts() == ["from a", "mine"]
    # Following an author whose feed we do not hold yet; it arrives later.
    store.append_local(me, "follow", {"target": b.author}, now_ms=NOW)
    assert texts() == ["from a", "mine"]
    b.post("from b")
    store.ingest(b.items(), now_ms=NOW)
    assert texts() == ["from a", "from b", "mine"]
    store.append_local(me, "unfollow", {"target": a.author}, now_ms=NOW)
    assert texts() == ["from b", "mine"]


def test_big_thread(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.post("root")
    r = a.id(1)
    for i in range(620):
        b.post(f"r{i}", reply={"root": r, "parent": r if i % 2 == 0 else b.id(len(b.entries))})
    store.ingest(a.items() + b.items(), now_ms=NOW)
    thread = store.thread(r)
    assert len(thread) == 621
    assert thread[0].replies == 310
    assert max(v.depth for v in thread) == 2

"""view_json: an entry as the API shows it, held to EntryView.to_json (spec/client-api.md §5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial.node.render import view_json
from p2psocial.protocol.entries import create_entry
from p2psocial.storage import Store, queries
from p2psocial.storage.model import EntryView
from tests.storage.helpers import NOW, FeedBuilder, key
from tests.storage.test_view_json import CASES, E2


@pytest.mark.parametrize("fork_seq", [None, 7])
@pytest.mark.parametrize("view", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_view_json_is_to_json_and_the_api_fields(view: EntryView, fork_seq: int | None) -> None:
    got = view_json(view, fork_seq=fork_seq)
    base = view.to_json()
    want = {
        **base,
        "reply_to": base["reply_parent"],
        "author_forked": fork_seq is not None,
        "author_fork_seq": fork_seq,
    }
    assert got == want
    assert list(got) == list(want)


def test_view_json_copies_what_it_shows() -> None:
    view = EntryView(
        id=E2,
        author=E2,
        seq=1,
        kind="post",
        timestamp=1,
        tags=["a"],
        reactions={"+": 1},
        payload={"text": "x", "tags": ["a"]},
    )
    js = view_json(view, fork_seq=None)
    js["tags"].append("b")
    js["reactions"]["-"] = 1
    js["payload"]["text"] = "y"
    assert view.tags == ["a"] and view.reactions == {"+": 1} and view.payload["text"] == "x"


def _varied_store(store: Store) -> bytes:
    """A store holding every shape of entry a page shows; returns the owner's identity."""
    me, a, b, c = key(9), FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    a.post("hello #t", mentions=[b.author], tags=["t", "u"])
    a.post("plain")
    a.post("to be deleted")
    b.post("a reply", reply={"root": a.id(1), "parent": a.id(1)}, mentions=[a.author])
    b.add("react", {"target": a.id(1), "emoji": "👍"})
    b.add("repost", {"target": a.id(2)})
    b.add("follow", {"target": a.author})
    a.add("delete", {"target": a.id(3)})
    c.post("one")
    c.post("two")
    store.ingest(a.items() + b.items() + c.items(1, 1), now_ms=NOW)
    store.ingest([c.item(2, with_payload=False)], now_ms=NOW)  # envelope only
    rival, rival_payload = create_entry(
        c.key, seq=2, prev=c.id(1), timestamp=NOW, kind="post", payload={"text": "rival"}
    )
    store.ingest([(rival.to_bytes(), rival_payload)], now_ms=NOW)  # c's feed forks
    assert store.feed_status(c.author) == "forked"
    for who in (a, b, c):
        store.append_local(me, "follow", {"target": who.author}, now_ms=NOW)
    store.append_local(me, "post", {"text": "mine"}, now_ms=NOW)
    return me.public_key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "node.db")
    try:
        yield s
    finally:
        s.close()


def test_the_stores_maps_are_view_json_of_its_views(store: Store) -> None:
    me = _varied_store(store)
    # Every entry, whatever its kind: the two row paths agree field by field.
    conn = store.connection
    eids = [r[0] for r in conn.execute("SELECT eid FROM entries ORDER BY eid")]
    forks: dict[bytes, int] = {}
    views = queries._views(conn, eids, forks)
    assert len(views) == len(eids) > 10
    want = [view_json(v, fork_seq=forks.get(v.author)) for v in views]
    got = queries._maps(conn, eids)
    assert got == want
    assert [list(m) for m in got] == [list(w) for w in want]
    assert any(m["author_forked"] for m in got) and any(m["deleted"] for m in got)
    # The timeline page by page, cursors included.
    before: str | None = None
    while True:
        page = store.timeline(me, limit=3, before=before)
        maps = store.timeline_maps(me, limit=3, before=before)
        assert page.forks is not None
        assert maps.items == [view_json(v, fork_seq=page.forks.get(v.author)) for v in page.items]
        assert maps.next_cursor == page.next_cursor
        if page.next_cursor is None:
            break
        before = page.next_cursor


def test_each_map_owns_its_lists_and_payload(store: Store) -> None:
    me = _varied_store(store)
    first = store.timeline_maps(me, limit=50).items
    assert len(first) > 3
    # A caller changing one page's maps changes nothing another page shows.
    for m in first:
        m["mentions"].append("x")
        m["tags"].append("x")
        m["reactions"]["x"] = 1
        if m["payload"] is not None:
            m["payload"]["x"] = 1
    again = store.timeline_maps(me, limit=50).items
    assert [m["id"] for m in again] == [m["id"] for m in first]
    for m in again:
        assert "x" not in m["mentions"] and "x" not in m["tags"] and "x" not in m["reactions"]
        assert m["payload"] is None or "x" not in m["payload"]
    assert len({id(m["reactions"]) for m in again}) == len(again)

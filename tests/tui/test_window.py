"""The paging window: bounded rows, pages asked for near either end, live entries on top."""

from __future__ import annotations

from typing import Any

from p2psocial.tui.window import NEAR, Window


def timeline(n: int) -> list[dict[str, Any]]:
    """n entries, newest first."""
    return [{"id": f"e{i}"} for i in range(n, 0, -1)]


def page(items: list[dict[str, Any]], start: int, size: int) -> dict[str, Any]:
    """The page at offset ``start``; its cursor is the next offset, as a string."""
    chunk = items[start : start + size]
    end = start + len(chunk)
    return {"items": chunk, "next": str(end) if end < len(items) else None}


def ids(w: Window) -> list[str]:
    return [e["id"] for e in w.rows()]


def test_asks_for_older_pages_near_the_end_and_stops_at_the_last() -> None:
    items = timeline(120)
    w = Window(cap=1000)
    assert w.want(0) is None  # nothing loaded yet
    w.reset(page(items, 0, 50))
    assert w.want(0) is None
    assert w.want(50 - NEAR - 1) is None
    assert w.want(50 - NEAR) == ("older", "50")
    assert w.add_older("50", page(items, 50, 50)) == 0
    assert w.want(99) == ("older", "100")
    w.add_older("100", page(items, 100, 50))
    assert ids(w) == [e["id"] for e in items]
    assert w.older is None
    assert w.want(119) is None


def test_a_stale_page_changes_nothing() -> None:
    items = timeline(200)
    w = Window(cap=1000)
    w.reset(page(items, 0, 50))
    assert w.add_older("150", page(items, 150, 50)) == 0
    assert w.add_newer("0", page(items, 0, 50)) == 0
    assert ids(w) == [e["id"] for e in items[:50]]


def test_scrolling_10000_keeps_at_most_cap_rows_and_scrolls_back() -> None:
    items = timeline(10_000)
    w = Window(cap=200)
    w.reset(page(items, 0, 50))
    cursor = 0
    while (want := w.want(len(w) - 1)) is not None and want[0] == "older":
        dropped = w.add_older(want[1] or "", page(items, int(want[1] or 0), 50))
        cursor += dropped
        assert len(w) <= 200
    assert w.older is None
    assert ids(w) == [e["id"] for e in items[-200:]]
    assert len(w.above) == (10_000 - 200) // 50
    # Back up: the dropped pages come back in order, the oldest kept ones go.
    want = w.want(0)
    assert want == ("newer", str(10_000 - 250))
    assert w.add_newer(want[1], page(items, 10_000 - 250, 50)) == 50
    assert ids(w) == [e["id"] for e in items[-250:-50]]
    assert w.older == str(10_000 - 50)
    while (want := w.want(0)) is not None:
        before = want[1]
        w.add_newer(before, page(items, int(before or 0), 50))
        assert len(w) <= 200
    assert w.at_top
    assert ids(w) == [e["id"] for e in items[:200]]


def test_live_entries_go_on_top_once_and_are_unread_until_seen() -> None:
    w = Window(cap=100)
    w.reset({"items": timeline(3), "next": None})
    assert w.add_live([{"id": "new1"}, {"id": "new2"}, {"id": "e3"}]) == 2
    assert ids(w)[:3] == ["new2", "new1", "e3"]
    assert w.unread == {"new1", "new2"}
    assert w.seen(0) is True
    assert w.seen(0) is False
    assert w.unread == {"new1"}


def test_live_entries_away_from_the_top_are_counted_not_shown() -> None:
    items = timeline(300)
    w = Window(cap=100)
    w.reset(page(items, 0, 50))
    w.add_older("50", page(items, 50, 50))
    w.add_older("100", page(items, 100, 50))
    assert not w.at_top
    before = ids(w)
    assert w.add_live([{"id": "late"}]) == 0
    assert ids(w) == before
    assert w.new_count == 1
    w.reset(page([{"id": "late"}, *items], 0, 50))
    assert w.new_count == 0
    assert ids(w)[0] == "late"


def test_a_flood_of_live_entries_over_the_cap_asks_for_a_reset() -> None:
    w = Window(cap=10)
    w.reset({"items": timeline(5), "next": "5"})
    w.add_live([{"id": f"live{i}"} for i in range(20)])
    assert len(w) == 10
    assert w.stale is True
    w.reset({"items": timeline(5), "next": "5"})
    assert w.stale is False


def test_replace_swaps_in_a_fresher_view() -> None:
    w = Window()
    w.reset({"items": [{"id": "a", "reactions": {}}], "next": None})
    assert w.replace({"id": "a", "reactions": {"👍": 1}}) is True
    assert w.rows()[0]["reactions"] == {"👍": 1}
    assert w.replace({"id": "zz"}) is False

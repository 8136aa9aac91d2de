"""Finding people among what the node holds: suggestions from follows of follows, profile search."""

from __future__ import annotations

import pytest

from p2psocial.errors import LocalUsageError
from p2psocial.storage import Store, people

from .helpers import NOW, FeedBuilder, key


def _graph(store: Store) -> dict[str, FeedBuilder]:
    """me follows a, b, c. a follows x, y, z; b follows x, y; c follows x, me, b.

    x is followed by 3 of my follows, y by 2, z by 1; b is already followed; me is me.
    """
    f = {n: FeedBuilder(key(i)) for i, n in enumerate(["me", "a", "b", "c", "x", "y", "z"], 1)}
    for src, dsts in {
        "me": "abc",
        "a": "xyz",
        "b": "xy",
        "c": ["x", "me", "b"],
    }.items():
        for d in dsts:
            f[src].add("follow", {"target": f[d].author})
    f["x"].add("profile", {"name": "Xena", "bio": "warrior"})
    f["y"].add("profile", {"name": "Yusuf", "bio": "Runs a node in Xian"})
    f["a"].add("unfollow", {"target": f["z"].author})
    f["a"].add("follow", {"target": f["z"].author})
    for b in f.values():
        store.ingest(b.items(), now_ms=NOW)
    return f


def test_suggest_ranks_by_follows_of_follows(store: Store) -> None:
    f = _graph(store)
    got = people.suggest(store.connection, f["me"].author)
    assert [(p.author, p.followed_by) for p in got] == [
        (f["x"].author, 3),
        (f["y"].author, 2),
        (f["z"].author, 1),
    ]
    assert got[0].name == "Xena" and got[2].name is None
    assert set(got[0].via) == {f["a"].author, f["b"].author, f["c"].author}
    assert got[1].via == tuple(sorted([f["a"].author, f["b"].author]))


def test_suggest_leaves_out_excluded_and_unfollowed(store: Store) -> None:
    f = _graph(store)
    got = people.suggest(store.connection, f["me"].author, exclude=[f["x"].author], limit=1)
    assert [p.author for p in got] == [f["y"].author]
    f["a"].add("unfollow", {"target": f["z"].author})
    store.ingest(f["a"].items(), now_ms=NOW)
    got = people.suggest(store.connection, f["me"].author)
    assert [p.author for p in got] == [f["x"].author, f["y"].author]
    # Following x removes it from the suggestions.
    f["me"].add("follow", {"target": f["x"].author})
    store.ingest(f["me"].items(), now_ms=NOW)
    assert [p.author for p in people.suggest(store.connection, f["me"].author)] == [f["y"].author]


@pytest.mark.parametrize(
    "query, names",
    [
        ("xena", ["Xena"]),
        ("XIAN", ["Yusuf"]),
        ("x", ["Xena", "Yusuf"]),
        ("  warrior ", ["Xena"]),
        ("nobody", []),
    ],
)
def test_search_people_by_name_and_bio(store: Store, query: str, names: list[str]) -> None:
    _graph(store)
    page = people.search_people(store.connection, query)
    assert sorted(p.name or "" for p in page.items) == names
    assert page.next_cursor is None


def test_search_people_pages(store: Store) -> None:
    builders = [FeedBuilder(key(100 + i)) for i in range(7)]
    for i, b in enumerate(builders):
        b.add("profile", {"name": f"Sam {i}"})
        store.ingest(b.items(), now_ms=NOW)
    seen: list[bytes] = []
    cursor = None
    for _ in range(10):
        page = people.search_people(store.connection, "sam", limit=3, before=cursor)
        seen.extend(p.author for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(b.author for b in builders)


@pytest.mark.parametrize(
    "query, kw, reason",
    [
        ("", {}, "bad_query"),
        ("   ", {}, "bad_query"),
        ("x" * 201, {}, "bad_query"),
        ("x", {"limit": 0}, "bad_limit"),
        ("x", {"before": "zz"}, "bad_cursor"),
        ("x", {"before": "ab" * 31}, "bad_cursor"),
    ],
)
def test_search_people_refuses_bad_input(
    store: Store, query: str, kw: dict[str, object], reason: str
) -> None:
    with pytest.raises(LocalUsageError) as info:
        people.search_people(store.connection, query, **kw)  # type: ignore[arg-type]
    assert info.value.reason == reason

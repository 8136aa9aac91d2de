"""Notifications of every kind: derived at ingest in any order, removed on delete and purge,
backfilled by the version-2 upgrade, and the unread mark."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from p2psocial.errors import LocalUsageError
from p2psocial.storage import Store, schema
from p2psocial.storage import notifications as notes

from .helpers import NOW, FeedBuilder, key


def _kinds(store: Store, me: bytes, **kw: object) -> list[tuple[str, bytes]]:
    page = notes.notifications(store.connection, me, **kw)  # type: ignore[arg-type]
    return [(n.kind, n.view.author) for n in page.items]


def _acts(alice: FeedBuilder, bob: FeedBuilder) -> None:
    """Alice posts; Bob replies, mentions her, reacts, reposts and follows her."""
    alice.post("hello")
    root = alice.id(1)
    bob.post("a reply", reply={"root": root, "parent": root})
    bob.post("hi @alice", mentions=[alice.author])
    bob.add("react", {"target": root, "emoji": "🎉"})
    bob.add("repost", {"target": root})
    bob.add("follow", {"target": alice.author})


ALL = ["follow", "repost", "react", "mention", "reply"]


@pytest.mark.parametrize("order", ["target_first", "acts_first", "one_batch"])
def test_each_kind_notifies_in_any_order(store: Store, order: str) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    _acts(alice, bob)
    if order == "target_first":
        store.ingest(alice.items(), now_ms=NOW)
        store.ingest(bob.items(), now_ms=NOW)
    elif order == "acts_first":
        store.ingest(bob.items(), now_ms=NOW)
        store.ingest(alice.items(), now_ms=NOW)
    else:
        store.ingest(bob.items() + alice.items(), now_ms=NOW)
    assert _kinds(store, alice.author) == [(k, bob.author) for k in ALL]
    # Bob is notified of nothing: his acts are his own, Alice did nothing to him.
    assert _kinds(store, bob.author) == []
    # mentions is unchanged: replies and mentions only.
    assert [v.id for v in store.mentions(alice.author).items] == [bob.id(2), bob.id(1)]


@pytest.mark.parametrize("split", [False, True])
def test_reply_that_mentions_the_parent_author_is_a_reply(store: Store, split: bool) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    alice.post("hello")
    root = alice.id(1)
    bob.post("a reply", reply={"root": root, "parent": root}, mentions=[alice.author])
    if split:
        store.ingest(bob.items(), now_ms=NOW)
        store.ingest(alice.items(), now_ms=NOW)
    else:
        store.ingest(alice.items() + bob.items(), now_ms=NOW)
    assert _kinds(store, alice.author) == [("reply", bob.author)]


def test_own_acts_do_not_notify(store: Store) -> None:
    alice = FeedBuilder(key(1))
    alice.post("hello")
    alice.add("react", {"target": alice.id(1), "emoji": "🎉"})
    alice.add("repost", {"target": alice.id(1)})
    alice.add("follow", {"target": alice.author})
    store.ingest(alice.items(), now_ms=NOW)
    assert _kinds(store, alice.author) == []


@pytest.mark.parametrize("seq, kind", [(3, "react"), (4, "repost"), (5, "follow")])
def test_deleted_act_loses_its_notification(store: Store, seq: int, kind: str) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    _acts(alice, bob)
    store.ingest(alice.items() + bob.items(), now_ms=NOW)
    bob.add("delete", {"target": bob.id(seq)})
    store.ingest(bob.items(6, 6), now_ms=NOW)
    assert _kinds(store, alice.author) == [(k, bob.author) for k in ALL if k != kind]
    assert store.connection.execute("SELECT count(*) FROM notify_acts").fetchone()[0] == 2


def test_delete_before_act_never_notifies(store: Store) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    alice.post("hello")
    bob.add("react", {"target": alice.id(1), "emoji": "🎉"})
    bob.add("delete", {"target": bob.id(1)})
    store.ingest(bob.items(2, 2) + alice.items(), now_ms=NOW)
    store.ingest(bob.items(1, 1), now_ms=NOW)
    assert _kinds(store, alice.author) == []


def test_block_and_drop_purge_notifications(store: Store) -> None:
    alice, bob, carol = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    _acts(alice, bob)
    carol.add("react", {"target": alice.id(1), "emoji": "👍"})
    store.ingest(alice.items() + bob.items() + carol.items(), now_ms=NOW)
    assert store.drop_payload(carol.id(1))
    assert _kinds(store, alice.author) == [(k, bob.author) for k in ALL]
    store.block_local(bob.author)
    assert _kinds(store, alice.author) == []


def test_forget_feed_removes_its_notifications(store: Store) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    _acts(alice, bob)
    store.ingest(alice.items() + bob.items(), now_ms=NOW)
    store.forget_feed(bob.author)
    assert _kinds(store, alice.author) == []


def test_paging_and_unread_mark(store: Store) -> None:
    alice, bob = FeedBuilder(key(1)), FeedBuilder(key(2))
    _acts(alice, bob)
    store.ingest(alice.items() + bob.items(), now_ms=NOW)
    conn, me = store.connection, alice.author
    first = notes.notifications(conn, me, limit=2)
    assert [n.kind for n in first.items] == ["follow", "repost"]
    assert first.next_cursor is not None
    rest = notes.notifications(conn, me, limit=10, before=first.next_cursor)
    assert [n.kind for n in rest.items] == ["react", "mention", "reply"]
    assert rest.next_cursor is None
    assert notes.unread_count(conn, me, 0) == 5
    mark = notes.newest_mark(conn, me)
    assert notes.unread_count(conn, me, mark) == 0
    assert notes.notifications(conn, me, after_mark=mark).items == []
    # A notification arriving later is unread, even with an older timestamp.
    carol = FeedBuilder(key(3), start_ts=NOW - 50_000_000)
    carol.add("follow", {"target": me})
    store.ingest(carol.items(), now_ms=NOW)
    assert notes.unread_count(conn, me, mark) == 1
    assert [
        (n.kind, n.view.author) for n in notes.notifications(conn, me, after_mark=mark).items
    ] == [("follow", carol.author)]
    assert notes.unread_count(conn, me, mark, excluded=[carol.author]) == 0
    # Long excluded lists go in bounded chunks.
    others = [bytes([i % 256, i // 256]) * 16 for i in range(1200)]
    assert notes.unread_count(conn, me, mark, excluded=others) == 1
    assert notes.unread_count(conn, me, mark, excluded=[*others, carol.author]) == 0
    assert notes.unread_count(conn, me, 0, excluded=[*others, carol.author, bob.author]) == 0
    assert notes.notification_kind(conn, me, carol.id(1)) == "follow"
    assert notes.notification_kind(conn, me, alice.id(1)) is None


@pytest.mark.parametrize("bad", ["", "x", "-1", "1" * 20, 1.5, None, True])
def test_bad_marks_are_refused(bad: object) -> None:
    with pytest.raises(LocalUsageError) as info:
        notes.parse_mark(bad)
    assert info.value.reason == "bad_mark"


def test_limit_is_checked(store: Store) -> None:
    with pytest.raises(LocalUsageError) as info:
        notes.notifications(store.connection, key(1).public_key, limit=0)
    assert info.value.reason == "bad_limit"


def _make_v1(v2_path: Path, v1_path: Path) -> None:
    """A version-1 database holding the entries (and v1 derived rows) of a v2 one."""
    conn = sqlite3.connect(v1_path, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("BEGIN")
    schema._run_script(conn, schema._SCHEMA_V1)
    conn.execute("ATTACH DATABASE ? AS old", (str(v2_path),))
    for table in ("feeds", "entries", "follows", "profiles", "notify", "deletions"):
        conn.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE old")
    conn.close()


def test_upgrade_from_v1_backfills_notifications(tmp_path: Path) -> None:
    alice, bob, carol = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    _acts(alice, bob)
    carol.add("react", {"target": alice.id(1), "emoji": "👍"})
    carol.add("delete", {"target": carol.id(1)})
    with Store.open(tmp_path / "v2.db") as s:
        s.ingest(alice.items() + bob.items() + carol.items(), now_ms=NOW)
    _make_v1(tmp_path / "v2.db", tmp_path / "v1.db")
    raw = sqlite3.connect(tmp_path / "v1.db")
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert (
        raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notify_acts'").fetchone()[0]
        == 0
    )
    raw.close()
    with Store.open(tmp_path / "v1.db") as s:
        assert s.statistics()["schema_version"] == schema.SCHEMA_VERSION
        # Carol's deleted reaction notifies nobody; Bob's acts all do.
        assert _kinds(s, alice.author) == [(k, bob.author) for k in ALL]

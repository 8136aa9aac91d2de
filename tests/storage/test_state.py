"""Derived social state, deletion, blocks and dropped payloads."""

from __future__ import annotations

from p2psocial.storage import Store

from .helpers import NOW, FeedBuilder, key


def test_follow_unfollow_latest_wins_in_any_order(store: Store) -> None:
    a, b, c = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    a.add("follow", {"target": b.author})
    a.add("follow", {"target": c.author})
    a.add("unfollow", {"target": b.author})
    # Newest first: order must not matter.
    store.ingest(list(reversed(a.items())), now_ms=NOW)
    assert store.following(a.author) == [c.author]
    assert store.followers(c.author) == [a.author]
    assert store.followers(b.author) == []


def test_profile_latest_and_recomputed_after_delete(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.add("profile", {"name": "old"})
    a.add("profile", {"name": "new", "bio": "hi"})
    store.ingest(a.items(), now_ms=NOW)
    assert store.profile(a.author) == {"name": "new", "bio": "hi", "seq": 2}
    a.add("delete", {"target": a.id(2)})
    store.ingest(a.items(3, 3), now_ms=NOW)
    assert store.profile(a.author) == {"name": "old", "seq": 1}
    assert store.profile(key(9).public_key) is None


def test_public_blocks(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.add("block", {"target": b.author, "reason": "spam"})
    store.ingest(a.items(), now_ms=NOW)
    assert store.blocks_of(a.author) == [b.author]
    assert store.blocked_by(b.author) == [a.author]
    a.add("unblock", {"target": b.author})
    store.ingest(a.items(2, 2), now_ms=NOW)
    assert store.blocks_of(a.author) == []


def test_reactions_reposts_replies(store: Store) -> None:
    a, b, c = FeedBuilder(key(1)), FeedBuilder(key(2)), FeedBuilder(key(3))
    a.post("root")
    root = a.id(1)
    b.add("react", {"target": root, "emoji": "👍"})
    b.add("react", {"target": root, "emoji": "👍"})  # same author twice counts once
    c.add("react", {"target": root, "emoji": "👍"})
    c.add("react", {"target": root, "emoji": "❤️"})
    b.add("repost", {"target": root})
    c.post("reply", reply={"root": root, "parent": root})
    store.ingest(a.items() + b.items() + c.items(), now_ms=NOW)
    assert store.reaction_counts(root) == {"👍": 2, "❤️": 1}
    v = store.get_entry(root)
    assert v is not None
    assert (v.reactions, v.reposts, v.replies) == ({"👍": 2, "❤️": 1}, 1, 1)
    # Un-react by deleting the reaction entry.
    c.add("delete", {"target": c.id(2)})
    store.ingest(c.items(4, 4), now_ms=NOW)
    assert store.reaction_counts(root) == {"👍": 2}


def test_delete_after_target(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("secret words #t", tags=["t"])
    a.add("delete", {"target": a.id(1)})
    store.ingest(a.items(1, 1), now_ms=NOW)
    assert [v.id for v in store.search("secret").items] == [a.id(1)]
    out = store.ingest(a.items(2, 2), now_ms=NOW)
    assert out[0].status == "stored"
    v = store.get_entry(a.id(1))
    assert v is not None and v.deleted and v.text is None and v.payload is None
    assert store.search("secret").items == []
    assert store.tagged("t").items == []
    # Envelope still served, payload not.
    assert store.entries_after(a.author, 0, 10)[0] == (a.entries[0].to_bytes(), None)
    # Re-sending the payload does not bring it back.
    out = store.ingest(a.items(1, 1), now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("duplicate", "deleted")
    assert store.search("secret").items == []
    conn = store.connection
    assert conn.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')") is not None


def test_delete_before_target(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("regret this")
    a.add("delete", {"target": a.id(1)})
    store.ingest(a.items(2, 2), now_ms=NOW)  # the delete arrives first
    out = store.ingest(a.items(1, 1), now_ms=NOW)
    assert (out[0].status, out[0].reason) == ("stored", "deleted")
    v = store.get_entry(a.id(1))
    assert v is not None and v.deleted
    assert store.search("regret").items == []
    assert store.head(a.author) == (2, a.id(2))


def test_delete_of_someone_elses_entry_is_ignored(store: Store) -> None:
    a, b = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.post("mine")
    b.add("delete", {"target": a.id(1)})
    store.ingest(b.items() + a.items(), now_ms=NOW)
    v = store.get_entry(a.id(1))
    assert v is not None and not v.deleted and v.text == "mine"


def test_local_block_purges_and_refuses(store: Store) -> None:
    a, me = FeedBuilder(key(1)), FeedBuilder(key(2))
    a.post("spam spam", mentions=[me.author])
    me.add("follow", {"target": a.author})
    store.ingest(a.items() + me.items(), now_ms=NOW)
    assert len(store.mentions(me.author).items) == 1
    store.block_local(a.author)
    assert store.blocked() == {a.author}
    assert store.search("spam").items == []
    assert store.mentions(me.author).items == []
    tl = store.timeline(me.author).items
    assert [(v.id, v.payload_state) for v in tl] == [(a.id(1), "dropped")]
    a.post("more spam")
    out = store.ingest(a.items(), now_ms=NOW)
    assert [(o.status, o.reason) for o in out] == [("duplicate", "blocked"), ("stored", "blocked")]
    assert store.head(a.author) == (2, a.id(2))
    # The feed stays verifiable and servable as envelopes.
    served = store.entries_after(a.author, 0, 10)
    assert served == [(e.to_bytes(), None) for e in a.entries]
    other = Store.open(store.path + ".2")
    try:
        assert {o.status for o in other.ingest(served, now_ms=NOW)} == {"stored"}
    finally:
        other.close()
    store.unblock_local(a.author)
    assert store.blocked() == set()
    assert store.ingest(a.items(1, 1), now_ms=NOW)[0].status == "stored"
    assert [v.id for v in store.search("spam").items] == [a.id(1)]


def test_drop_payload(store: Store) -> None:
    a = FeedBuilder(key(1))
    a.post("policy drop")
    store.ingest(a.items(), now_ms=NOW)
    assert store.drop_payload(a.id(1)) is True
    assert store.drop_payload(a.id(1)) is False
    v = store.get_entry(a.id(1))
    assert v is not None and v.payload_state == "dropped" and not v.deleted
    assert store.entries_after(a.author, 0, 5) == [(a.entries[0].to_bytes(), None)]
    assert store.statistics()["payload_bytes"] == 0


def test_interests_settings_contacts(store: Store) -> None:
    a = key(1).public_key
    store.set_interest(a, "follow")
    store.set_interest(a, "self")
    store.set_interest(a, "follow")
    assert store.interests() == {a: {"follow", "self"}}
    store.clear_interest(a, "follow")
    assert store.interests() == {a: {"self"}}
    assert store.get_setting("x") is None
    store.set_setting("x", {"hops": 2})
    assert store.get_setting("x") == {"hops": 2}
    contacts = [(b"\x01" * 20, "127.0.0.1", 4000), (b"\x02" * 20, "::1", 4001)]
    store.save_dht_contacts(contacts)
    assert sorted(store.load_dht_contacts()) == contacts
    store.save_dht_contacts(contacts[:1])
    assert store.load_dht_contacts() == contacts[:1]


def test_forget_feed(store: Store) -> None:
    a, me = FeedBuilder(key(1)), FeedBuilder(key(2))
    me.post("mine")
    a.post("peeked words", mentions=[me.author], reply={"root": me.id(1), "parent": me.id(1)})
    a.add("follow", {"target": me.author})
    a.add("profile", {"name": "A"})
    a.post("to delete")
    a.add("delete", {"target": a.id(4)})
    store.ingest(me.items() + a.items(), now_ms=NOW)
    store.set_interest(a.author, "peek")
    assert store.forget_feed(a.author) == 5
    assert store.forget_feed(key(9).public_key) == 0
    assert store.feed_status(a.author) == "unknown"
    assert store.head(a.author) is None and a.author not in store.heads()
    assert store.search("peeked").items == []
    assert store.mentions(me.author).items == []
    assert store.followers(me.author) == []
    assert store.profile(a.author) is None
    assert store.get_entry(me.id(1)).replies == 0  # type: ignore[union-attr]
    assert store.interests() == {a.author: {"peek"}}
    assert store.statistics()["entries"] == 1
    # Fetching it again restores it, except what its author deleted.
    out = store.ingest(a.items(), now_ms=NOW)
    assert [(o.status, o.reason) for o in out][3] == ("stored", "deleted")
    assert store.head(a.author) == (5, a.id(5))
    assert store.profile(a.author) == {"name": "A", "seq": 3}
    assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.connection.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')")

"""Petnames: set, list, remove, kept across restarts, resolved wherever an identity
is taken; inline mentions and tags; the names entry views carry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, NodeConfig, SigningKey, open_node
from p2psocial.node.names import Names
from p2psocial.protocol.entries import decode_entry_untrusted
from p2psocial.protocol.identity import identity_to_text
from tests.node.test_guarded_actions import refused
from tests.storage.helpers import NOW, FeedBuilder, key

ALICE = key(1)
ALICE_TEXT = identity_to_text(ALICE.public_key)


@asynccontextmanager
async def node_at(path: Path, identity: SigningKey) -> AsyncIterator[p2psocial.Node]:
    """A node with a fixed identity on a data dir that outlives it."""
    cfg = NodeConfig(data_dir=path, listen="127.0.0.1", serve_api=False)
    async with open_node(cfg, identity_key=identity, node_key=SigningKey.generate()) as n:
        yield n


async def deliver(node: p2psocial.Node, feed: FeedBuilder, lo: int = 1) -> None:
    """Store another author's entries as replication would, telling the node."""
    outcomes = await node.store.ingest(feed.items(lo), now_ms=NOW)
    assert all(o.status == "stored" for o in outcomes), outcomes
    node._on_stored([decode_entry_untrusted(e) for e, _ in feed.items(lo)])


async def test_set_list_remove_and_restart(tmp_path: Path) -> None:
    me = SigningKey.generate()
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", me) as node:
            assert (await node.petnames())["items"] == []
            done = await node.set_petname("alice", ALICE_TEXT)
            assert done == {"name": "alice", "identity": ALICE_TEXT, "previous": None}
            # One name per identity: naming it again renames it.
            done = await node.set_petname("Ally", ALICE_TEXT)
            assert done == {"name": "ally", "identity": ALICE_TEXT, "previous": "alice"}
            bob = identity_to_text(key(2).public_key)
            await node.set_petname("bob", bob)
            await node.set_petname("me", node.identity_text)
        async with node_at(tmp_path / "n", me) as node:
            listed = (await node.petnames())["items"]
            assert [(i["name"], i["identity"]) for i in listed] == [
                ("ally", ALICE_TEXT),
                ("bob", bob),
                ("me", node.identity_text),
            ]
            assert await node.remove_petname("bob") == {"removed": "bob", "identity": bob}
            with pytest.raises(LocalUsageError) as info:
                await node.remove_petname("bob")
            assert info.value.reason == "unknown_name"
        async with node_at(tmp_path / "n", me) as node:
            assert [i["name"] for i in (await node.petnames())["items"]] == ["ally", "me"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "bad_name"),
        ("a" * 33, "bad_name"),
        ("al ice", "bad_name"),
        ("alice.", "bad_name"),
        ("ålice", "bad_name"),
        ("p2ps1alice", "bad_name"),
        ("~alice", "bad_name"),
    ],
)
async def test_bad_names_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", SigningKey.generate()) as node:
            with pytest.raises(LocalUsageError) as info:
                await node.set_petname(name, ALICE_TEXT)
            assert info.value.reason == reason
            assert (await node.petnames())["items"] == []


async def test_a_name_names_one_identity(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", SigningKey.generate()) as node:
            await node.set_petname("alice", ALICE_TEXT)
            other = identity_to_text(key(2).public_key)
            with pytest.raises(LocalUsageError) as info:
                await node.set_petname("alice", other)
            assert info.value.reason == "name_taken"
            with pytest.raises(LocalUsageError) as info:
                await node.set_petname("carol", "p2ps1garbage")
            assert info.value.reason == "bad_identity"
            listed = (await node.petnames())["items"]
            assert [(i["name"], i["identity"]) for i in listed] == [("alice", ALICE_TEXT)]


async def test_petnames_resolve_wherever_an_identity_is_taken(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", SigningKey.generate()) as node:
            await node.set_petname("alice", ALICE_TEXT)
            carol = key(3)
            await node.set_petname("carol", identity_to_text(carol.public_key))
            assert (await node.follow("alice"))["seq"] == 1
            assert ALICE_TEXT in (await node.following())["items"]
            await refused(node, lambda: node.follow("@Alice"), "already_following")
            await refused(node, lambda: node.follow("nobody"), "unknown_name")
            await refused(node, lambda: node.follow("not a name!"), "bad_identity")
            await node.mute("carol")
            assert identity_to_text(carol.public_key) in node.config.policy.muted
            await node.unmute("carol")
            await node.block("carol", public=False)
            assert carol.public_key in await node.store.blocked()
            await node.unblock("carol")
            feed = FeedBuilder(ALICE)
            feed.post("hello from alice")
            await deliver(node, feed)
            assert [e["text"] for e in (await node.feed("alice"))["items"]] == ["hello from alice"]
            found = await node.search("hello", author="alice")
            assert [e["author"] for e in found["items"]] == [ALICE_TEXT]
            assert (await node.profile("alice"))["petname"] == "alice"
            posted = await node.post("hi", mentions=["alice", ALICE_TEXT])
            assert set(posted) == {"id", "seq"}
            [mine] = [e for e in (await node.feed())["items"] if e["id"] == posted["id"]]
            assert mine["mentions"] == [ALICE_TEXT]
            await refused(node, lambda: node.post("hi", mentions=["nobody"]), "unknown_name")
            await node.unfollow("alice")
            assert (await node.following())["items"] == []


async def test_mentions_and_tags_in_text(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", SigningKey.generate()) as node:
            await node.set_petname("alice", ALICE_TEXT)
            bob = identity_to_text(key(2).public_key)
            posted = await node.post(
                f"hi @Alice and @{bob}, not @nobody (mail: x@y.org) #Rust #rust #1",
                mentions=[bob],
                tags=["#intro", "RUST"],
            )
            assert posted["unresolved"] == ["@nobody"]
            [entry] = (await node.feed())["items"]
            assert (entry["mentions"], entry["tags"]) == ([bob, ALICE_TEXT], ["intro", "RUST"])
            assert entry["names"][ALICE_TEXT] == {"petname": "alice", "profile": None}
            many = " ".join(f"#t{i}" for i in range(17))
            await refused(node, lambda: node.post(many), "too_many_tags")
            people = " ".join(f"@{identity_to_text(key(10 + i).public_key)}" for i in range(17))
            await refused(node, lambda: node.post(people), "too_many_mentions")


async def test_entry_views_carry_petname_and_profile_names(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n", SigningKey.generate()) as node:
            mallory, carol = FeedBuilder(key(4)), FeedBuilder(key(5))
            mallory_text = identity_to_text(mallory.author)
            carol_text = identity_to_text(carol.author)
            await node.set_petname("alice", ALICE_TEXT)
            await node.follow(mallory_text)
            await node.follow(carol_text)
            # Mallory calls herself "alice"; carol chose no name.
            mallory.add("profile", {"name": "alice"})
            mallory.post("it's me, alice", mentions=[ALICE.public_key])
            carol.post("plain carol")
            await deliver(node, mallory)
            await deliver(node, carol)
            items = {e["text"]: e for e in (await node.timeline())["items"]}
            fake = items["it's me, alice"]
            assert fake["author_name"] == {"petname": None, "profile": "alice"}
            assert fake["names"][ALICE_TEXT] == {"petname": "alice", "profile": None}
            assert items["plain carol"]["author_name"] == {"petname": None, "profile": None}
            # A new profile is seen at once (the cached name is dropped).
            mallory.add("profile", {"name": "Mallory"})
            await deliver(node, mallory, lo=3)
            [again] = [e for e in (await node.timeline())["items"] if e["author"] == mallory_text]
            assert again["author_name"] == {"petname": None, "profile": "Mallory"}
            # A petname wins over the profile name.
            await node.set_petname("mal", mallory_text)
            [named] = [e for e in (await node.timeline())["items"] if e["author"] == mallory_text]
            assert named["author_name"] == {"petname": "mal", "profile": "Mallory"}
            followed = await node.following()
            assert followed["names"][mallory_text]["petname"] == "mal"
            listed = {i["name"]: i for i in (await node.petnames())["items"]}
            assert listed["mal"]["profile"] == "Mallory"


class _ProfileStore:
    """The two store calls Names makes, over fixed profile names."""

    def __init__(self, profiles: dict[bytes, str]) -> None:
        self.profiles = profiles
        self.asked: list[list[bytes]] = []

    async def load_petnames(self) -> list[tuple[str, bytes]]:
        return []

    async def profile_names(self, authors: Any) -> dict[bytes, tuple[str | None, str | None]]:
        wanted = list(authors)
        self.asked.append(wanted)
        return {k: (self.profiles[k], None) for k in wanted if k in self.profiles}


async def test_a_full_profile_cache_does_not_lose_the_names_of_a_page() -> None:
    # The cache is emptied when a page's new authors would overflow it: the
    # page's authors that were cached before must keep their names.
    a, b, c = (key(i).public_key for i in (11, 12, 13))
    store = _ProfileStore({a: "ann", b: "ben", c: "cy"})
    names = Names(store, profile_cache=2)  # type: ignore[arg-type]
    first = [{"author": identity_to_text(a), "kind": "post", "mentions": []}]
    await names.annotate(first)
    assert first[0]["author_name"] == {"petname": None, "profile": "ann"}
    page = [{"author": identity_to_text(x), "kind": "post", "mentions": []} for x in (a, b, c)]
    await names.annotate(page)
    assert [i["author_name"]["profile"] for i in page] == ["ann", "ben", "cy"]
    assert [i["names"] for i in page] == [
        {identity_to_text(x): {"petname": None, "profile": n}}
        for x, n in ((a, "ann"), (b, "ben"), (c, "cy"))
    ]


async def test_names_of_mentions_and_targets_in_order() -> None:
    a, b, c = (key(i).public_key for i in (11, 12, 13))
    ta, tb, tc = (identity_to_text(x) for x in (a, b, c))
    names = Names(_ProfileStore({b: "ben"}))  # type: ignore[arg-type]
    items: list[dict[str, Any]] = [
        {"author": ta, "kind": "post", "mentions": [tc, tb, ta, tc]},
        {"author": ta, "kind": "follow", "mentions": [], "target": tb},
        {"author": ta, "kind": "react", "mentions": [], "target": "00" * 32},
        {"author": None, "kind": "post", "mentions": None},
    ]
    await names.annotate(items)
    none = {"petname": None, "profile": None}
    ben = {"petname": None, "profile": "ben"}
    assert [list(i["names"].items()) for i in items] == [
        [(ta, none), (tc, none), (tb, ben)],
        [(ta, none), (tb, ben)],
        [(ta, none)],
        [],
    ]
    assert [i["author_name"] for i in items] == [none, none, none, None]

"""The node's notifications: the read mark, muted authors, watching, suggestions (real nodes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, SigningKey, WatchFilter
from p2psocial.node.node import now_ms
from p2psocial.protocol.identity import identity_to_text
from tests.node.test_guarded_actions import one_node
from tests.node.test_node import two_nodes, until
from tests.storage.helpers import FeedBuilder


def stranger(n: int, me: bytes, post_id: bytes) -> FeedBuilder:
    """Someone who follows ``me`` and reacts to ``post_id``."""
    f = FeedBuilder(SigningKey.from_seed(bytes([n]) * 32), start_ts=now_ms() - 100_000)
    f.add("follow", {"target": me})
    f.add("react", {"target": post_id, "emoji": "🎉"})
    return f


async def test_mark_moves_forward_only_and_muted_do_not_count(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            post = await node.post("hello")
            pid = bytes.fromhex(post["id"])
            bob, carol = stranger(1, node.identity, pid), stranger(2, node.identity, pid)
            await node.store.ingest(bob.items(), now_ms=now_ms())
            page = await node.notifications()
            assert [(e["notification"], e["unread"]) for e in page["items"]] == [
                ("react", True),
                ("follow", True),
            ]
            assert page["unread"] == 2 and (await node.status())["unread_notifications"] == 2
            # Mark up to the older one only: the newer stays unread.
            older = min(page["items"], key=lambda e: int(e["mark"]))
            assert (await node.mark_notifications_read(upto=older["mark"]))["unread"] == 1
            assert [
                e["notification"] for e in (await node.notifications(unread=True))["items"]
            ] == ["react"]
            # An older mark changes nothing; a made-up future one stops at what is held.
            assert (await node.mark_notifications_read(upto="0"))["unread"] == 1
            done = await node.mark_notifications_read(upto=str(10**18))
            assert done == {"mark": page["mark"], "unread": 0}
            await node.store.ingest(carol.items(), now_ms=now_ms())
            assert (await node.notifications())["unread"] == 2
            await node.mute(identity_to_text(carol.author))
            after = await node.notifications()
            assert after["unread"] == 0 and {e["author"] for e in after["items"]} == {
                identity_to_text(bob.author)
            }


@pytest.mark.parametrize("upto", ["", "x", "-1", "1e3", "9" * 20])
async def test_bad_mark_is_refused(tmp_path: Path, upto: str) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            with pytest.raises(LocalUsageError) as info:
                await node.mark_notifications_read(upto=upto)
            assert info.value.reason == "bad_mark"


async def test_suggest_leaves_out_blocked(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            friend = FeedBuilder(SigningKey.from_seed(b"\x07" * 32), start_ts=now_ms() - 100_000)
            x, y = SigningKey.from_seed(b"\x08" * 32), SigningKey.from_seed(b"\x09" * 32)
            friend.add("follow", {"target": x.public_key})
            friend.add("follow", {"target": y.public_key})
            await node.store.ingest(friend.items(), now_ms=now_ms())
            await node.follow(identity_to_text(friend.author))
            got = (await node.suggest())["items"]
            both = sorted([x.public_key, y.public_key])
            assert [p["identity"] for p in got] == [identity_to_text(k) for k in both]
            assert got[0]["via"] == [identity_to_text(friend.author)]
            await node.block(identity_to_text(x.public_key), public=False)
            assert [p["identity"] for p in (await node.suggest())["items"]] == [
                identity_to_text(y.public_key)
            ]


async def test_watch_notifications_across_nodes(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with two_nodes(tmp_path) as (a, b):
            got = []

            async def watcher(
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                async with a.subscribe(WatchFilter(kinds={"notification"})) as recv:
                    task_status.started()
                    async for event in recv:
                        got.append(event)
                        return

            await a.follow(b.identity_text)
            async with trio.open_nursery() as nursery:
                await nursery.start(watcher)
                # a's own post is in no notification watch; b's follow of a is.
                await a.post("not a notification")
                followed = await b.follow(a.identity_text)
            assert got[0]["id"] == followed["id"]
            assert got[0]["notification"] == "follow" and got[0]["author"] == b.identity_text
            await until(lambda: _has_follow(a, followed["id"]))


async def _has_follow(node: p2psocial.Node, entry_id: str) -> bool:
    page = await node.notifications()
    return any(e["id"] == entry_id and e["notification"] == "follow" for e in page["items"])

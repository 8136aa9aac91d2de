"""Actions that would publish nothing useful are refused, and publish nothing.

Each refusal is a LocalUsageError with a stable reason; the owner's feed head
does not move.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, NodeConfig, SigningKey, open_node
from p2psocial.api.methods import check_params
from p2psocial.protocol.identity import identity_to_text


@asynccontextmanager
async def one_node(tmp_path: Path) -> AsyncIterator[p2psocial.Node]:
    """One node on 127.0.0.1 with fresh keys, no API socket (shared with test_short_ids)."""
    cfg = NodeConfig(data_dir=tmp_path / "n", listen="127.0.0.1", serve_api=False)
    async with open_node(
        cfg, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
    ) as n:
        yield n


async def head_seq(node: p2psocial.Node) -> int:
    head = await node.store.head(node.identity)
    return 0 if head is None else head[0]


async def refused(
    node: p2psocial.Node, action: Callable[[], Awaitable[Any]], reason: str
) -> LocalUsageError:
    """Run ``action``, which must be refused with ``reason`` and leave the feed as it was."""
    before = await head_seq(node)
    with pytest.raises(LocalUsageError) as info:
        await action()
    assert info.value.reason == reason, info.value
    assert "\n" not in info.value.message
    assert await head_seq(node) == before
    return info.value


def someone() -> str:
    return identity_to_text(SigningKey.generate().public_key)


async def test_follow_twice_and_unfollow_a_stranger_are_refused(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            friend = someone()
            await refused(node, lambda: node.unfollow(friend), "not_following")
            await node.follow(friend)
            err = await refused(node, lambda: node.follow(friend), "already_following")
            assert friend in err.message
            await node.unfollow(friend)
            await refused(node, lambda: node.unfollow(friend), "not_following")
            await node.follow(friend)  # following again after an unfollow is fine
            assert friend in (await node.following())["items"]


async def test_concurrent_follows_publish_one(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            friend = someone()
            before = await head_seq(node)
            outcomes: list[str] = []

            async def follow() -> None:
                try:
                    await node.follow(friend)
                    outcomes.append("published")
                except LocalUsageError as exc:
                    outcomes.append(exc.reason)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(follow)
            assert sorted(outcomes) == ["already_following", "already_following", "published"]
            assert await head_seq(node) == before + 1


async def test_delete_twice_or_unknown_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            post = await node.post("soon gone")
            await node.delete(post["id"])
            err = await refused(node, lambda: node.delete(post["id"]), "already_deleted")
            assert post["id"] in err.message
            await refused(node, lambda: node.delete(secrets.token_hex(32)), "not_found")


async def test_reaction_to_an_unseen_id_needs_force(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            elsewhere = secrets.token_hex(32)
            err = await refused(node, lambda: node.react(elsewhere, "👍"), "unknown_id")
            assert "force" in err.message
            forced = await node.react(elsewhere, "👍", force=True)
            assert forced["seq"] == await head_seq(node)
            # An id this node holds needs no force.
            post = await node.post("react to me")
            await node.react(post["id"], "🎉")
            # force does not make an unmatched prefix mean anything.
            await refused(node, lambda: node.react("00000000", "👍", force=True), "unknown_id")


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n", "\u3000"])
async def test_empty_or_blank_post_and_reply_are_refused(tmp_path: Path, text: str) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            await refused(node, lambda: node.post(text), "empty_text")
            parent = await node.post("a parent")
            await refused(node, lambda: node.post(text, reply_to=parent["id"]), "empty_text")


async def test_thread_and_explain_of_an_unknown_id_are_errors(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            unknown = secrets.token_hex(32)
            for read in (node.thread, node.explain):
                with pytest.raises(LocalUsageError) as info:
                    await read(unknown)
                assert info.value.reason == "unknown_id" and unknown in info.value.message
            post = await node.post("known")
            assert [e["id"] for e in (await node.thread(post["id"]))["items"]] == [post["id"]]
            assert (await node.explain(post["id"]))["held"] is True


def test_force_is_an_optional_bool_of_react() -> None:
    target = "ab" * 32
    assert check_params("react", {"target": target, "emoji": "👍"}) is None
    assert check_params("react", {"target": target, "emoji": "👍", "force": True}) is None
    assert check_params("react", {"target": target, "emoji": "👍", "force": 1}) is not None

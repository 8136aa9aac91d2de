"""The embeddable library: nodes run in-process with open_node, on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, NodeConfig, SigningKey, WatchFilter, open_node


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[p2psocial.Node, p2psocial.Node]]:
    cfg_a = NodeConfig(data_dir=tmp_path / "a", listen="127.0.0.1", serve_api=False)
    async with open_node(
        cfg_a, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
    ) as a:
        assert a.dht_addr is not None
        cfg_b = NodeConfig(
            data_dir=tmp_path / "b",
            listen="127.0.0.1",
            serve_api=False,
            bootstrap=[f"127.0.0.1:{a.dht_addr[1]}"],
        )
        async with open_node(
            cfg_b, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
        ) as b:
            yield a, b


async def until(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Poll the public API until ``predicate`` holds (callers bound the time)."""
    # The public API has no change event for these conditions, so poll it.
    while not await predicate():  # noqa: ASYNC110
        await trio.sleep(0.02)


async def test_follow_post_and_watch(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with two_nodes(tmp_path) as (a, b):
            events = []

            async def watcher(
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                async with b._subscribe(WatchFilter(kinds={"post"})) as recv:
                    task_status.started()
                    async for event in recv:
                        events.append(event)
                        return

            async with trio.open_nursery() as nursery:
                await nursery.start(watcher)
                await b.follow(a.identity_text)
                posted = await a.post("hello, embedded world", tags=["#intro"])
            assert events[0]["id"] == posted["id"] and events[0]["tags"] == ["intro"]
            timeline = await b.timeline()
            assert timeline["items"][0]["text"] == "hello, embedded world"
            st = await b.status()
            assert st["peers"] >= 1 and st["feeds"] >= 2


async def test_local_misuse_is_refused_clearly(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with two_nodes(tmp_path) as (a, b):
            with pytest.raises(LocalUsageError, match="2000"):
                await a.post("x" * 2001)
            with pytest.raises(LocalUsageError, match="not a valid identity"):
                await a.follow("p2ps1garbage")
            with pytest.raises(LocalUsageError, match="yourself"):
                await a.follow(a.identity_text)
            theirs = await b.post("b's post")
            await until(lambda: _holds(a, b, theirs["id"]))
            with pytest.raises(LocalUsageError, match="only the author"):
                await a.delete(theirs["id"])
            with pytest.raises(LocalUsageError, match="hops"):
                await a.set_policy("hops", 3)


async def _holds(viewer: p2psocial.Node, author: p2psocial.Node, entry_id: str) -> bool:
    feed = await viewer.feed(author.identity_text, kinds=["*"])
    return any(e["id"] == entry_id for e in feed["items"])


async def test_inbound_mentions_follow_the_owners_policy(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with two_nodes(tmp_path) as (a, b):
            # a does not follow b; b mentions a, so the post is delivered to a's swarm.
            await a.post("a exists")
            first = await b.post("hey a", mentions=[a.identity_text])

            async def a_has_first() -> bool:
                return any(e["id"] == first["id"] for e in (await a.mentions())["items"])

            await until(a_has_first)
            await a.set_policy("accept_inbound", False)
            second = await b.post("hey again", mentions=[a.identity_text])
            await trio.sleep(2)  # several push and refresh rounds
            ids = {e["id"] for e in (await a.mentions())["items"]}
            assert second["id"] not in ids
            assert (await a.statistics())["replication"]["inbound_refused"] >= 1

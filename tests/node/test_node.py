"""The embeddable library: nodes run in-process with open_node, on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, NodeConfig, SigningKey, WatchFilter, open_node
from p2psocial.node.node import now_ms
from p2psocial.protocol.entries import decode_entry_untrusted
from p2psocial.protocol.identity import identity_to_text
from tests.cli.forks import make_fork, posts


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
                async with b.subscribe(WatchFilter(kinds={"post"})) as recv:
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
            refused_before = (await a.statistics())["replication"]["inbound_refused"]
            second = await b.post("hey again", mentions=[a.identity_text])

            async def a_refused_it() -> bool:
                stats = await a.statistics()
                return bool(stats["replication"]["inbound_refused"] > refused_before)

            # The push arrived and was refused: only then is its absence news.
            await until(a_refused_it)
            ids = {e["id"] for e in (await a.mentions())["items"]}
            assert second["id"] not in ids


async def test_a_forked_feed_is_shown_wherever_it_appears(tmp_path: Path) -> None:
    fork = make_fork()
    honest = SigningKey.generate()
    honest_items, _ = posts(honest, ["an honest post"])
    cfg = NodeConfig(data_dir=tmp_path / "n", listen="127.0.0.1", serve_api=False)
    with trio.fail_after(30):
        async with open_node(
            cfg, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
        ) as node:
            await node.store.ingest(fork.common + fork.x + honest_items, now_ms=now_ms())
            (out,) = await node.store.ingest(fork.y[:1], now_ms=now_ms())
            assert (out.status, out.reason) == ("rejected", "fork")

            st = await node.status()
            assert st["forked_feeds"] == 1
            assert st["forks"] == [{"identity": fork.identity, "fork_seq": 3}]

            page = await node.feed(fork.identity)
            assert (page["forked"], page["fork_seq"]) == (True, 3)
            assert [e["id"] for e in page["items"]] == [*fork.common_ids, *fork.x_ids][::-1]
            for e in page["items"]:
                assert (e["author_forked"], e["author_fork_seq"]) == (True, 3)
            other = await node.feed(identity_to_text(honest.public_key))
            assert (other["forked"], other["fork_seq"]) == (False, None)
            assert [(e["author_forked"], e["author_fork_seq"]) for e in other["items"]] == [
                (False, None)
            ]
            [root] = (await node.thread(fork.common_ids[0]))["items"]
            assert root["author_forked"] is True

            before = await node.explain(fork.common_ids[1])
            assert (before["author_forked"], before["author_fork_seq"]) == (True, 3)
            text = "\n".join(before["why"])
            assert "forked" in text and "frozen at seq 3" in text and "before the fork" in text
            at = "\n".join((await node.explain(fork.x_ids[0]))["why"])
            assert "one of two" in at
            clean = await node.explain(await _first_id(node, honest))
            assert (clean["author_forked"], clean["author_fork_seq"]) == (False, None)
            assert not any("fork" in w for w in clean["why"])

            prof = await node.profile(fork.identity)
            assert (prof["forked"], prof["fork_seq"]) == (True, 3)


async def _first_id(node: p2psocial.Node, key: SigningKey) -> str:
    page = await node.feed(identity_to_text(key.public_key))
    return str(page["items"][-1]["id"])


async def test_policy_changes_keep_the_users_node_settings(tmp_path: Path) -> None:
    """A policy change saved the whole run-time config, so options given for
    one run (say --listen, --port 0) were written over config.toml's."""
    data = tmp_path / "n"
    data.mkdir()
    (data / "config.toml").write_text(
        '[node]\nlisten = "127.0.0.1"\nport = 4123\nbootstrap = ["127.0.0.1:9"]\n',
        encoding="utf-8",
    )
    cfg = NodeConfig.load(data)
    cfg.port = 0  # as `daemon --port 0` does, for this run only
    cfg.bootstrap = [*cfg.bootstrap, "127.0.0.2:9"]  # loopback only: nothing leaves
    cfg.serve_api = False
    with trio.fail_after(30):
        async with open_node(
            cfg, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
        ) as node:
            await node.set_policy("hops", 2)
            await node.mute(SigningKey.generate().public_key)
    saved = NodeConfig.load(data)
    assert (saved.listen, saved.port, saved.bootstrap) == ("127.0.0.1", 4123, ["127.0.0.1:9"])
    assert saved.policy.hops == 2 and len(saved.policy.muted) == 1


async def test_a_burst_of_posts_puts_only_the_latest_head(tmp_path: Path) -> None:
    # 40 posts at once: every one is stored and acknowledged, the DHT ends up
    # with the newest head, and far fewer than 40 head puts were made.
    with trio.fail_after(60):
        async with two_nodes(tmp_path) as (a, b):
            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(a.post, f"burst {i}")
            [newest] = (await a.feed(limit=1))["items"]
            assert newest["seq"] == 40

            async def b_sees_newest() -> bool:
                assert b.dht is not None
                got = await b.dht.get_head(a.identity)
                return got is not None and decode_entry_untrusted(got).seq == 40

            await until(b_sees_newest)
            rep = (await a.statistics())["replication"]
            assert 1 <= rep["head_puts"] < 40
            # Each own entry was either put or overtaken by a newer one.
            assert rep["head_puts"] + rep["head_puts_coalesced"] == 40

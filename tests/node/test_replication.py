"""Replication between real nodes: real TCP on 127.0.0.1, real SQLite stores."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from p2psocial.protocol.entries import decode_entry_untrusted
from p2psocial.protocol.identity import SigningKey

from .test_replication_helpers import TNode, load_feed, make_feed, open_testnet


async def test_two_nodes_push_and_handshake(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            # The node's way: publish the follow, then interest_changed().
            await b.publish("follow", {"target": a.identity})
            b.rep.interest_changed()
            await b.connect(a)
            assert [p["direction"] for p in b.rep.peers()] == ["outbound"]
            await net.wait_for(lambda: _has_peer(a))
            assert a.rep.peers()[0]["node_id"] == b.rep.node_id.hex()
            for i in range(5):
                await a.post(f"hello {i}")
            await net.wait_for(lambda: _seq_is(b, a, 5))
            stats = b.rep.statistics()
            assert stats["entries_stored"] >= 5
            assert stats["bytes_in"] > 0 and stats["frames_in"] > 0
            # a does not follow b: b's own feed is not replicated to a.
            await b.post("not for a")
            assert await a.seq_of(b) == 0


async def _has_peer(node: TNode) -> bool:
    return bool(node.rep.peers())


async def _seq_is(node: TNode, author: TNode, seq: int) -> bool:
    return await node.seq_of(author) == seq


async def test_twelve_nodes_random_follow_graph(tmp_path: Path) -> None:
    rnd = random.Random(1205)
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 12) as net:
            nodes = net.nodes
            follows: dict[TNode, list[TNode]] = {}
            for n in nodes:
                follows[n] = rnd.sample([m for m in nodes if m is not n], 3)
                await n.follow(*follows[n])
            # Links: each follower dials one author it follows; the rest of the
            # graph is reached through other followers (mesh of 2-3 links).
            edges: set[frozenset[int]] = set()
            for i, n in enumerate(nodes):
                for j in (nodes.index(follows[n][0]), (i + 1) % len(nodes)):
                    edges.add(frozenset((i, j)))
            for e in sorted(edges, key=sorted):
                i, j = sorted(e)
                await nodes[i].connect(nodes[j])
            for n in nodes:
                # Follows only travel between nodes that want each other's feed:
                # connect every follower directly to each followed author too.
                for a in follows[n]:
                    await n.rep.connect(*a.addr)
            for round_ in range(3):
                for n in nodes:
                    await n.post(f"{n.name} says {round_}")
            await net.wait_for(lambda: net.converged(follows))
            for n, authors in follows.items():
                for a in authors:
                    assert await n.seq_of(a) == await a.seq_of(a) == 6  # 3 follows + 3 posts
            for n in nodes:
                assert "internal_error" not in n.rep.statistics()["links_dropped"]


async def test_late_joiner_catches_up_ten_thousand_entries(tmp_path: Path) -> None:
    author_key = SigningKey.generate()
    items = make_feed(author_key, 10_000)
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 2) as net:
            holder, joiner = net.nodes
            await holder.follow(author_key.public_key)
            await load_feed(holder.store, items)
            await holder.rep.refresh()
            await joiner.follow(author_key.public_key)
            start = trio.current_time()
            await joiner.connect(holder)
            await net.wait_for(lambda: _seq_of_is(joiner, author_key.public_key, 10_000))
            elapsed = trio.current_time() - start
            assert elapsed < 30
            assert (await joiner.store.entries_after(author_key.public_key, 9_999, 1))[0] == items[
                -1
            ]
            stats = joiner.rep.statistics()
            assert stats["entries_stored"] == 10_000
            assert not stats["entries_rejected"]


async def _seq_of_is(node: TNode, author: bytes, seq: int) -> bool:
    return await node.seq_of(author) == seq


async def test_author_offline_followers_complete_from_each_other(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 4) as net:
            author, f1, f2, f3 = net.nodes
            for f in (f1, f2, f3):
                await f.follow(author)
            await f1.connect(author)
            await f2.connect(author)
            for i in range(4):
                await author.post(f"early {i}")
            await net.wait_for(lambda: _all_seq(author, [f1, f2], 4))
            # f2 leaves before the later posts; only f1 gets them.
            f2.stop()
            for i in range(6):
                await author.post(f"late {i}")
            await net.wait_for(lambda: _seq_is(f1, author, 10))
            author.stop()
            # The author is gone. f3 (knows nothing) and f1 (has all) meet.
            await f3.connect(f1)
            await net.wait_for(lambda: _seq_is(f3, author, 10))
            assert await f3.seq_of(author) == 10


async def _all_seq(author: TNode, followers: list[TNode], seq: int) -> bool:
    for f in followers:
        if await f.seq_of(author) != seq:
            return False
    return True


async def test_partition_then_heal_converges(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with open_testnet(tmp_path, 6) as net:
            nodes = net.nodes
            for n in nodes:
                await n.follow(*[m for m in nodes if m is not n])
            left, right = nodes[:3], nodes[3:]
            for group in (left, right):
                await group[0].connect(group[1])
                await group[1].connect(group[2])
                await group[0].connect(group[2])
            for n in nodes:
                await n.post(f"{n.name} in the partition")
                await n.post(f"{n.name} again")
            everyone = {n: [m for m in nodes if m is not n] for n in nodes}
            inside = {n: [m for m in g if m is not n] for g in (left, right) for n in g}
            await net.wait_for(lambda: net.converged(inside))
            for n in left:
                assert await n.seq_of(right[0]) == 0, "no link crosses the partition"
            await left[2].connect(right[0])  # heal
            await net.wait_for(lambda: net.converged(everyone))
            for n in nodes:
                for m in nodes:
                    assert await n.seq_of(m) == 7  # 5 follows + 2 posts


async def test_equivocation_is_detected_proved_and_frozen(tmp_path: Path) -> None:
    liar = SigningKey.generate()
    common = make_feed(liar, 3, text="common")
    prev = decode_entry_untrusted(common[-1][0]).id
    branch_x = make_feed(liar, 2, start=4, prev=prev, text="x")
    branch_y = make_feed(liar, 3, start=4, prev=prev, text="y")
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 5) as net:
            px, py, f1, f2, f3 = net.nodes
            for n in net.nodes:
                await n.follow(liar.public_key)
            await load_feed(px.store, common + branch_x)
            await load_feed(py.store, common + branch_y)
            for n in (px, py):
                await n.rep.refresh()
            await f1.connect(px)
            await f2.connect(py)
            await net.wait_for(lambda: _seq_of_is(f1, liar.public_key, 5))
            await net.wait_for(lambda: _seq_of_is(f2, liar.public_key, 6))
            # One link between the two histories: both sides see the fork in
            # this round and gossip the proof to everyone following the feed.
            await f3.connect(f1)
            await f3.connect(f2)
            followers = [px, py, f1, f2, f3]

            async def all_frozen() -> bool:
                for n in followers:
                    if await n.store.feed_status(liar.public_key) != "forked":
                        return False
                return True

            with trio.fail_after(10):
                await net.wait_for(all_frozen, poll=0.05)
            for n in followers:
                proofs = await n.store.fork_proofs(liar.public_key)
                assert proofs, n.name
            # Frozen: a further entry on either branch is not accepted.
            more = make_feed(
                liar, 1, start=6, prev=decode_entry_untrusted(branch_x[-1][0]).id, text="x"
            )
            outs = await f1.store.ingest(more, now_ms=0 + 2**50)
            assert outs[0].status == "rejected"
            assert f1.rep.statistics()["forks_detected"] >= 1

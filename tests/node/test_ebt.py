"""EBT-style sender selection between real nodes (spec/sync.md §13): each
follower takes a feed live from one link, the others stand by, and a standby
link takes over when the sender goes. Real Replicators, SQLite stores and TCP
links on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from p2psocial.node.replication import Link

from .test_replication_helpers import TestNet, TNode, open_testnet


def _delivered(node: TNode) -> int:
    """Entries of wanted feeds that peers sent this node, duplicates included."""
    return int(node.rep.statistics()["entries_delivered"])


async def _mesh(net: TestNet) -> tuple[TNode, list[TNode]]:
    author, *followers = net.nodes
    for i, f in enumerate(followers):
        await f.follow(author)
        await f.connect(author)
        for other in followers[:i]:
            await f.connect(other)
    return author, followers


async def _post_and_wait(net: TestNet, author: TNode, followers: list[TNode], n: int) -> None:
    for i in range(n):
        e = await author.post(f"post {i}")

        async def everywhere(seq: int = e.seq) -> bool:
            return all([await f.seq_of(author) == seq for f in followers])

        await net.wait_for(everywhere)


async def _two_relays(net: TestNet) -> list[Link]:
    """Nodes author, r1, r2, reader: the relays follow and link to the author,
    the reader follows it and links to both relays only. Returns the
    reader's standby links for the author, once it has put one on standby."""
    author, r1, r2, reader = net.nodes
    for relay in (r1, r2):
        await relay.follow(author)
        await relay.connect(author)
    await reader.follow(author)
    await reader.connect(r1)
    await reader.connect(r2)
    await _post_and_wait(net, author, [r1, r2, reader], 3)

    async def one_standing_by() -> bool:
        return reader.rep.statistics()["ebt"]["standby_links"] == 1

    await net.wait_for(one_standing_by, poll=0.05)
    return [lk for lk in reader.rep.pool.open_links() if lk.session.standing_by(author.identity)]


@pytest.mark.parametrize("ebt", [True, False])
async def test_a_full_mesh_delivers_each_post_about_once_per_follower(
    tmp_path: Path, ebt: bool
) -> None:
    """Three followers of one author, all linked to it and to each other.
    Without ebt every follower gets each post from every link that holds it
    (the author and the two others: 3 copies); with it, after the first
    posts have set who sends what, one copy."""
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 4, ebt=ebt) as net:
            author, followers = await _mesh(net)
            await _post_and_wait(net, author, followers, 5)
            # Let modes in flight land before counting.
            await trio.sleep(0.5)
            before = sum(_delivered(f) for f in followers)
            await _post_and_wait(net, author, followers, 10)
            await trio.sleep(0.5)
            per_post = (sum(_delivered(f) for f in followers) - before) / (10 * len(followers))
            stats: list[Any] = [f.rep.statistics()["ebt"] for f in followers]
            if ebt:
                assert per_post <= 1.2, (per_post, stats)
                assert sum(s["mode_standby_sent"] for s in stats) >= len(followers)
            else:
                assert per_post >= 2.0, per_post
                assert all(s["mode_standby_sent"] == 0 for s in stats)


async def test_a_standby_link_takes_over_when_the_sender_goes(tmp_path: Path) -> None:
    """A reader linked to two relays of an author, not to the author: it
    takes the feed from one relay; when that relay stops, the other one,
    on standby until then, is made the sender at once and the posts go on."""
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 4) as net:
            author, r1, r2, reader = net.nodes
            standby = await _two_relays(net)
            assert len(standby) == 1
            sender = r1 if standby[0].peer.node_id == r2.rep.node_id else r2
            sender.stop()
            await _post_and_wait(net, author, [reader], 1)
            ebt = reader.rep.statistics()["ebt"]
            assert ebt["senders_replaced"] == 1, ebt
            assert ebt["standby_links"] == 0


async def test_a_standby_peer_ahead_of_a_silent_sender_becomes_the_sender(
    tmp_path: Path,
) -> None:
    """The sender stops relaying the feed (its owner unfollows the author)
    while its link stays up: the standby relay's haves show it ahead, and
    after switch_after it is made the sender."""
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 4) as net:
            author, r1, r2, reader = net.nodes
            standby = await _two_relays(net)
            sender = r1 if standby[0].peer.node_id == r2.rep.node_id else r2
            # The sender's owner unfollows the author; its link to the reader stays up.
            await sender.publish("unfollow", {"target": author.identity})
            await sender.rep.refresh()
            await _post_and_wait(net, author, [reader], 1)
            ebt = reader.rep.statistics()["ebt"]
            assert ebt["senders_switched"] >= 1, ebt

"""Replication features beyond plain sync: peeks, mentions and replies to
non-followers, hops = 2, reconnection, and peers found through the DHT."""

from __future__ import annotations

from pathlib import Path

import trio

from p2psocial.node.replication import Replicator
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.wire import Push, encode_message

from .test_replication_helpers import TNode, load_feed, make_feed, open_testnet


async def _seq_is(node: TNode, author: TNode | bytes, seq: int) -> bool:
    return await node.seq_of(author) == seq


async def _holds(node: TNode, entry_id: bytes) -> bool:
    return await node.store.get_raw(entry_id) is not None


async def test_peek_reads_recent_entries_of_a_feed_not_followed(tmp_path: Path) -> None:
    author = SigningKey.generate()
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            holder, reader = net.nodes
            await holder.follow(author.public_key)
            await load_feed(holder.store, make_feed(author, 80))
            await holder.rep.refresh()
            await reader.connect(holder)
            got = await reader.rep.peek(author.public_key, limit=20)
            assert got == 20
            assert "peek" in (await reader.store.interests())[author.public_key]
            rows = await reader.store.entries_after(author.public_key, 60, 100)
            assert len(rows) == 20  # seqs 61..80: the newest, as a detached run
            # A peek is one-shot: later posts are not replicated to the reader.
            assert author.public_key not in reader.rep.heads


async def test_mention_reaches_a_node_that_does_not_follow_the_author(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            await a.connect(b)
            entry = await a.post("hey @b", mentions=[b.identity])
            with trio.move_on_after(20):
                await net.wait_for(lambda: _holds(b, entry.id))
            assert await _holds(b, entry.id), (a.rep.statistics(), b.rep.statistics())
            assert "inbound" in (await b.store.interests())[a.identity]
            mentions = await b.store.mentions(b.identity)
            assert [v.id for v in mentions.items] == [entry.id]
            # Nothing else of a's feed comes along.
            plain = await a.post("no mention")
            # A barrier: a's next mention of b travels the same way after the
            # plain post; once it has arrived, the plain one would have too.
            marker = await a.post("hey again @b", mentions=[b.identity])
            await net.wait_for(lambda: _holds(b, marker.id))
            assert not await _holds(b, plain.id)


async def test_reply_reaches_the_parent_author(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            await a.follow(b)
            await a.connect(b)
            parent = await b.post("original")
            await net.wait_for(lambda: _holds(a, parent.id))
            reply = await a.post("a reply", reply={"root": parent.id, "parent": parent.id})
            await net.wait_for(lambda: _holds(b, reply.id))
            thread = await b.store.thread(parent.id)
            assert [v.id for v in thread] == [parent.id, reply.id]


async def test_unsolicited_push_that_does_not_concern_us_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 1) as net:
            (victim,) = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            link, _ = await open_secure_link(sock, SigningKey.generate(), 0)
            stranger = SigningKey.generate()
            raw, payload = make_feed(stranger, 1)[0]
            await link.send_frame(encode_message(Push(stranger.public_key, 1, (raw, payload))))

            async def refused() -> bool:
                return victim.rep.statistics()["inbound_refused"] == 1

            await net.wait_for(refused, poll=0.05)
            assert await victim.seq_of(stranger.public_key) == 0
            assert victim.rep.peers(), "a stray push is refused, not a reason to drop"
            await link.aclose()


async def test_hops_two_replicates_follows_of_follows(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 3, hops=2) as net:
            a, b, c = net.nodes
            await a.follow(b)
            await b.follow(c)
            await c.post("from c")
            await b.connect(c)
            await a.connect(b)
            await net.wait_for(lambda: _seq_is(a, c, 1))


async def test_explicit_peer_is_redialled_after_it_restarts(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            await a.follow(b)
            await a.connect(b)
            await b.post("one")
            await net.wait_for(lambda: _seq_is(a, b, 1))
            b.stop()

            async def gone() -> bool:
                return not a.rep.peers()

            await net.wait_for(gone, poll=0.05)
            await b.post("two, while the link is down")
            restarted = Replicator(
                b.store, b.node_key, identity=b.identity, port=b.addr[1], refresh_interval=0.5
            )
            assert net.nursery is not None
            await net.nursery.start(restarted.run)
            await net.wait_for(lambda: _seq_is(a, b, 2))
            assert a.rep.statistics()["links_opened"] >= 2


async def test_peers_are_found_through_the_dht(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 3, with_dht=True, swarm_interval=1.0) as net:
            a, b, c = net.nodes
            first = await a.post("findable")
            await b.follow(a)
            # No connect(): b announces a's swarm, finds a there and dials it.
            await net.wait_for(lambda: _seq_is(b, a, 1), poll=0.5)
            # The head of a's feed is published in the DHT on every post.
            second = await a.post("newer")
            await net.wait_for(lambda: _seq_is(b, a, 2), poll=0.5)
            dht = b.rep.dht
            assert dht is not None

            async def head_published() -> bool:
                raw = await dht.get_head(a.identity)
                return raw == second.to_bytes()

            await net.wait_for(head_published, poll=0.5)
            # A mention of c (not linked, not following a) goes to c's swarm.
            m = await a.post("hello c", mentions=[c.identity])
            await net.wait_for(lambda: _holds(c, m.id), poll=0.5)
            assert first.seq == 1


async def test_a_deleted_payload_is_not_served_from_the_recent_cache(tmp_path: Path) -> None:
    """The replicator keeps recent items in memory to serve them fast; a
    delete purged the payload from the store but the cache still served it
    (found through a blocked author's post served on a peek: see
    tests/e2e/test_moderation.py)."""
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            await b.follow(a)
            await b.connect(a)
            post = await a.post("soon deleted")
            await net.wait_for(lambda: _holds(b, post.id))
            # b now has the post in its recent cache, with its payload.
            assert (a.identity, post.seq) in b.rep.cache
            delete = await a.publish("delete", {"target": post.id})
            await net.wait_for(lambda: _holds(b, delete.id))
            # What b's writer would serve from memory for that seq: no payload.
            cached = b.rep.cache.get((a.identity, post.seq))
            assert cached is None or cached[1] is None, "the deleted payload is still served"
            rows = await b.store.entries_after(a.identity, post.seq - 1, 1)
            assert rows[0][1] is None  # and the store purged it

"""200 DHTNodes on a seeded lossy in-memory network under MockClock (STYLE.md §15).

The same DHTNode code runs with its socket swapped for ``dht.memnet``: 10 %
of datagrams are lost, some duplicated, all delayed 1-10 ms of virtual time.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.dht.memnet import MemoryNetwork
from p2psocial.protocol.dht import distance
from p2psocial.protocol.entries import Entry, create_entry
from p2psocial.protocol.identity import SigningKey


@asynccontextmanager
async def memnet(
    n: int, *, seed: int, loss: float, duplicate: float = 0.01
) -> AsyncIterator[tuple[MemoryNetwork, list[DHTNode]]]:
    """Start n nodes on a lossy memory network and bootstrap them in waves."""
    net = MemoryNetwork(seed, loss=loss, duplicate=duplicate, delay=(0.001, 0.010))
    rng = random.Random(seed)
    # The defaults (virtual time makes their timeouts free), but no address
    # probing: every simulated node sits at 10.0.0.1.
    cfg = DHTConfig(observe_addresses=False)
    nodes = [
        DHTNode(
            SigningKey.from_seed(rng.randbytes(32)),
            "10.0.0.1",
            0,
            config=cfg,
            socket_factory=net.socket_factory,
        )
        for _ in range(n)
    ]
    async with trio.open_nursery() as nursery:
        addrs = [await nursery.start(x.run) for x in nodes]
        await nodes[1].bootstrap([addrs[0]])
        # Join in waves, each from a random already-joined node.
        joined = 2
        while joined < n:
            wave = nodes[joined : joined * 2]
            async with trio.open_nursery() as boot:
                for x in wave:
                    boot.start_soon(x.bootstrap, [addrs[rng.randrange(joined)]])
            joined += len(wave)
        yield net, nodes
        nursery.cancel_scope.cancel()


async def test_lookups_find_true_k_closest_at_10_percent_loss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(3600):  # virtual seconds
        async with memnet(200, seed=4, loss=0.10) as (net, nodes):
            rng = random.Random(99)
            ids = [x.node_id for x in nodes]
            good = 0
            trials = 200
            for _ in range(trials):
                asker = rng.choice(nodes)
                target = rng.randbytes(20)
                found = [c.node_id for c in await asker.find_node(target)]
                truth = sorted(
                    (i for i in ids if i != asker.node_id), key=lambda i: distance(i, target)
                )[:20]
                good += found == truth
            assert net.stats["lost"] > 1000
            dropped: dict[str, int] = {}
            for x in nodes:
                for k, v in x.statistics()["dropped"].items():
                    dropped[k] = dropped.get(k, 0) + v
            assert good / trials >= 0.99, (good, trials, dropped, net.stats)


async def test_records_and_swarms_over_a_lossy_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(3600):
        async with memnet(60, seed=5, loss=0.10) as (_net, nodes):
            rng = random.Random(1)
            authors = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(5)]
            heads = {}
            for a in authors:
                prev = None
                for seq in (1, 2):
                    e, _ = create_entry(
                        a,
                        seq=seq,
                        prev=prev,
                        timestamp=1_700_000_000_000,
                        kind="post",
                        payload={"text": "x"},
                    )
                    assert await rng.choice(nodes).put_head(e.to_bytes()) >= 10
                    prev = e.id
                heads[a.public_key] = e.to_bytes()
                assert await rng.choice(nodes).announce(a.public_key, 7000 + seq) >= 10
            for a in authors:
                for _ in range(5):
                    assert await rng.choice(nodes).get_head(a.public_key) == heads[a.public_key]
                getter = rng.choice(nodes)
                peers = await getter.get_peers(a.public_key)
                assert peers  # the announcer, unless the getter announced it itself


def _first_post(author: SigningKey) -> Entry:
    e, _ = create_entry(
        author, seq=1, prev=None, timestamp=1_700_000_000_000, kind="post", payload={"text": "x"}
    )
    return e


async def test_refresh_republish_and_reannounce_outlive_ttls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A day of virtual time: records (24 h TTL) and announcements (30 min)
    survive because their publishers republish and re-announce."""
    with trio.fail_after(48 * 3600):
        async with memnet(16, seed=8, loss=0.02) as (_net, nodes):
            author = SigningKey.from_seed(b"p" * 32)
            e = _first_post(author)
            assert await nodes[0].put_head(e.to_bytes()) >= 10
            assert await nodes[1].announce(author.public_key, 7001) >= 10
            await trio.sleep(25 * 3600)
            assert await nodes[5].get_head(author.public_key) == e.to_bytes()
            peers = await nodes[6].get_peers(author.public_key)
            assert (nodes[1].node_id, "10.0.0.1", 7001) in peers
            assert nodes[0].statistics()["republish_rounds"] >= 20


async def test_idle_buckets_are_refreshed(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(4 * 3600):
        async with memnet(6, seed=9, loss=0.0) as (_net, nodes):
            await trio.sleep(2.5 * 3600)
            for x in nodes:
                # One lookup per idle hour; it touches the bucket again.
                assert 1 <= x.statistics()["bucket_refreshes"] <= 3


async def test_gets_after_departures_skip_silent_contacts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """30 % of 60 nodes go silent at once, among them holders of a record.
    A get waits on a dead holder for its first attempt's timeout; the gets
    after it give that contact no slot while it stays silent (spec/dht.md 8), and
    every get still finds the record."""
    with trio.fail_after(3600):
        async with memnet(60, seed=11, loss=0.0) as (net, nodes):
            rng = random.Random(3)
            author = SigningKey.from_seed(b"s" * 32)
            e = _first_post(author)
            assert await nodes[0].put_head(e.to_bytes()) >= 10
            dead = {x.address for x in rng.sample(nodes[1:], 18)}
            route = net._route

            def drop_dead(src: tuple[str, int], data: bytes, dst: tuple[str, int]) -> None:
                if src not in dead and dst not in dead:
                    route(src, data, dst)

            net._route = drop_dead  # type: ignore[method-assign]
            alive = [x for x in nodes[1:] if x.address not in dead]
            for getter in rng.sample(alive, 5):
                for _ in range(3):
                    assert await getter.get_head(author.public_key) == e.to_bytes()
            skipped = sum(x.statistics().get("lookup_skipped_silent", 0) for x in alive)
            assert skipped > 0

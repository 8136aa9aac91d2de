"""The swarm loop paces its DHT lookups (replication/swarm.py ``_swarm_loop``).

A node following many feeds looks each one up every ``swarm_interval``, and
sooner while it has no linked holder. Those lookups run on the event loop that
serves the local API, so they are capped per second. Fakes stand in for the DHT and the link pool; the
clock is trio's MockClock, so a minute passes at once.
"""

from __future__ import annotations

from typing import Any, cast

import trio
import trio.testing

from p2psocial.node.replication.heads import Heads, Refresh
from p2psocial.node.replication.store import ReplicationStore
from p2psocial.node.replication.swarm import Dialler, SwarmDHT, SwarmDiscovery
from p2psocial.protocol.sync import Head

FEEDS = 200
ME = b"\x01" * 32


class FakeHeads(dict[bytes, Head]):
    """A fixed wanted set of ``n`` feeds (never changes on refresh)."""

    def __init__(self, n: int) -> None:
        super().__init__({i.to_bytes(32, "big"): (0, None) for i in range(2, n + 2)})

    async def refresh(self) -> Refresh:
        return Refresh()


class FakeTable:
    def __init__(self, contacts: int) -> None:
        self.contacts = contacts

    def __len__(self) -> int:
        return self.contacts


class FakeDHT:
    """Counts lookups; finds no holder, so every feed is retried with backoff."""

    node_id = b"\x02" * 32

    def __init__(self, contacts: int) -> None:
        self.table = FakeTable(contacts)
        self.lookups: list[float] = []
        self.announces = 0

    async def announce(self, author: bytes, peer_port: int) -> int:
        self.announces += 1
        return 0

    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]:
        self.lookups.append(trio.current_time())
        await trio.sleep(0.001)
        return []

    async def put_head(self, entry_bytes: bytes) -> int:
        return 0


class FakePool:
    node_id = b"\x03" * 32
    port = 4000

    def __init__(self) -> None:
        self.links: dict[bytes, Any] = {}

    def has_room(self) -> bool:
        return True

    def dialing(self, host: str, port: int) -> bool:
        return False

    async def dial(self, host: str, port: int, node_id: bytes | None = None) -> bool:
        return False

    def broadcast(self, make: Any) -> None:
        pass

    def open_links(self) -> list[Any]:
        return []


def discovery(dht: FakeDHT, **kw: Any) -> SwarmDiscovery:
    return SwarmDiscovery(
        cast(SwarmDHT, dht),
        cast(Dialler, FakePool()),
        cast(Heads, FakeHeads(FEEDS)),
        cast(ReplicationStore, None),
        identity=ME,
        **kw,
    )


async def run_for(d: SwarmDiscovery, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(d.run)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_lookups_are_capped_per_second(autojump_clock: trio.testing.MockClock) -> None:
    dht = FakeDHT(contacts=8)
    d = discovery(dht, max_lookups_per_s=5.0)
    await run_for(d, 60)
    # 200 feeds due at once, then retried after 1, 2, 4... s: uncapped that
    # is over 1,000 lookups a minute. Capped: 5/s, plus one second's burst.
    assert 250 <= len(dht.lookups) <= 5 * 60 + 5
    for start in range(0, 55):
        in_window = [t for t in dht.lookups if start <= t - dht.lookups[0] < start + 1]
        assert len(in_window) <= 2 * 5, (start, len(in_window))
    stats = d.statistics()
    assert stats["swarm_lookups"] == len(dht.lookups)
    assert stats["swarm_lookups_deferred"] > 0


async def test_a_newly_due_feed_goes_first(autojump_clock: trio.testing.MockClock) -> None:
    dht = FakeDHT(contacts=8)
    d = discovery(dht, max_lookups_per_s=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(d.run)
        await trio.sleep(45)  # all 200 looked up once (5/s), retries queued
        new = b"\xff" * 32
        heads = cast(FakeHeads, d.heads)
        heads[new] = (0, None)
        seen: list[bytes] = []
        real_get_peers = dht.get_peers

        async def watching(author: bytes) -> list[tuple[bytes, str, int]]:
            seen.append(author)
            return await real_get_peers(author)

        dht.get_peers = watching  # type: ignore[method-assign]
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    # At most the rest of the batch in progress came before it.
    assert new in seen[:6], [a[-1] for a in seen]

"""A node whose linked holders of a feed cannot bring its new entries dials others
(replication/swarm.py ``_stranded``; spec/sync.md §6, "Islands").

Links to two holders of a feed satisfy the swarm lookup, but those holders may
link only to each other: an island of the swarm, which the author's posts never
reach. The feed's head record in the DHT tells: when it is ahead of our head
and of every linked holder's clock, two more holders are dialled.

The DHT and the link pool are fakes here (the decision is the unit under test);
the head record they hand over is a real signed entry, and the real DHT's
``get_head`` is crossed by tests/node/test_replication_features.py. The gossip
simulator (tests/sim/test_gossip.py) shows the effect on reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
import trio

from p2psocial.node.replication.heads import Heads
from p2psocial.node.replication.store import ReplicationStore
from p2psocial.node.replication.swarm import Dialler, SwarmDHT, SwarmDiscovery
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.errors import ProtocolError
from p2psocial.protocol.identity import SigningKey

ME = b"\x01" * 32
AUTHOR = SigningKey.from_seed(b"a" * 32)
HOLDERS = [(bytes([0x40 + i]) * 20, "127.0.0.1", 5000 + i) for i in range(6)]


def head_entry(seq: int) -> bytes:
    """A real entry of AUTHOR at ``seq`` (the chain below it does not matter here)."""
    entry, _ = create_entry(
        AUTHOR,
        seq=seq,
        prev=None if seq == 1 else b"\x00" * 32,
        timestamp=1_700_000_000_000 + seq,
        kind="post",
        payload={"text": f"post {seq}"},
    )
    return entry.to_bytes()


@dataclass
class FakeSession:
    head: int  # what the peer holds of AUTHOR's feed

    def peer_wants(self, author: bytes) -> bool:
        return author == AUTHOR.public_key

    def peer_head(self, author: bytes) -> int:
        return self.head if author == AUTHOR.public_key else 0


@dataclass
class FakeLink:
    session: FakeSession


class FakeDHT:
    node_id = b"\x02" * 20

    def __init__(self, head: bytes | None) -> None:
        self.head = head
        self.head_gets = 0

    async def announce(self, author: bytes, peer_port: int) -> int:
        return 0

    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]:
        return list(HOLDERS)

    async def get_head(self, author: bytes) -> bytes | None:
        self.head_gets += 1
        return self.head

    async def put_head(self, entry_bytes: bytes) -> int:
        return 0

    def relay_hint(self, node_id: bytes) -> None:
        return None


class FakePool:
    node_id = b"\x03" * 20
    port = 4000

    def __init__(self, linked: list[int]) -> None:
        # The first len(linked) holders are linked, each with that head.
        self.links: dict[bytes, Any] = {
            HOLDERS[i][0]: FakeLink(FakeSession(h)) for i, h in enumerate(linked)
        }
        self.dialled: list[int] = []

    def has_room(self) -> bool:
        return True

    def dialing(self, host: str, port: int) -> bool:
        return False

    async def dial(self, host: str, port: int, node_id: bytes | None = None) -> bool:
        self.dialled.append(port)
        return True

    def broadcast(self, make: Any) -> None:
        pass

    def open_links(self) -> list[Any]:
        return list(self.links.values())


class FakeHeads(dict[bytes, tuple[int, bytes]]):
    """The wanted feeds with our heads, and which of them are forked."""

    def __init__(self, ours: int, *, forked: bool = False) -> None:
        super().__init__({AUTHOR.public_key: (ours, b"\x00" * 32)})
        self.forked = forked

    def is_forked(self, author: bytes) -> bool:
        return self.forked and author == AUTHOR.public_key


def discovery(dht: FakeDHT, pool: FakePool, heads: FakeHeads) -> SwarmDiscovery:
    return SwarmDiscovery(
        cast(SwarmDHT, dht),
        cast(Dialler, pool),
        cast(Heads, heads),
        cast(ReplicationStore, None),
        identity=ME,
    )


async def run_lookup(d: SwarmDiscovery) -> None:
    async with trio.open_nursery() as nursery:
        d._nursery = nursery  # what run() sets; the lookup starts its announce there
        await d._swarm_lookup(AUTHOR.public_key)
        nursery.cancel_scope.cancel()


async def lookup(dht: FakeDHT, pool: FakePool, ours: int) -> SwarmDiscovery:
    d = discovery(dht, pool, FakeHeads(ours))
    await run_lookup(d)
    return d


@pytest.mark.parametrize(
    ("record", "ours", "linked", "dials", "island"),
    [
        # Two holders linked, both at our head; the DHT names a newer post: an island.
        (5, 3, [3, 3], 2, True),
        # Three linked, none ahead: two more still.
        (5, 3, [3, 2, 3], 2, True),
        # One linked holder is ahead of us: that link is bringing it.
        (5, 3, [3, 5], 0, False),
        # The record is no newer than what we hold.
        (3, 3, [3, 3], 0, False),
        (2, 3, [3, 3], 0, False),
        # No record in the DHT.
        (None, 3, [3, 3], 0, False),
        # Fewer than two linked: dialled up to two as before, whatever the record says.
        (5, 3, [3], 1, False),
        (None, 3, [], 2, False),
    ],
)
async def test_an_island_is_left_by_dialling_two_more_holders(
    record: int | None, ours: int, linked: list[int], dials: int, island: bool
) -> None:
    dht = FakeDHT(head_entry(record) if record is not None else None)
    pool = FakePool(linked)
    with trio.fail_after(5):
        d = await lookup(dht, pool, ours)
    # Only holders not linked already are dialled.
    assert pool.dialled == [h[2] for h in HOLDERS[len(linked) : len(linked) + dials]]
    assert d.statistics()["swarm_islands"] == (1 if island else 0)
    # The record is asked for only when the lookup would otherwise stop at two.
    assert dht.head_gets == (1 if len(linked) >= 2 else 0)


async def test_our_own_feed_never_asks_for_its_head_record() -> None:
    """The author holds its own newest head: it cannot be in an island of its feed."""
    dht = FakeDHT(head_entry(9))
    pool = FakePool([3, 3])
    d = SwarmDiscovery(
        cast(SwarmDHT, dht),
        cast(Dialler, pool),
        cast(Heads, FakeHeads(3)),
        cast(ReplicationStore, None),
        identity=AUTHOR.public_key,
    )
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            d._nursery = nursery
            await d._swarm_lookup(AUTHOR.public_key)
            nursery.cancel_scope.cancel()
    assert dht.head_gets == 0 and pool.dialled == []


async def test_a_forked_feed_never_dials_for_an_island() -> None:
    """A forked feed is frozen here: no holder can bring it past the fork, so
    its head record being ahead is no reason to dial (it would be, every 30 s)."""
    dht = FakeDHT(head_entry(9))
    pool = FakePool([3, 3])
    d = discovery(dht, pool, FakeHeads(3, forked=True))
    with trio.fail_after(5):
        await run_lookup(d)
    assert pool.dialled == [] and d.statistics()["swarm_islands"] == 0


async def test_a_clock_claimed_but_not_served_holds_off_the_check_for_one_lookup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A linked peer whose clock says it holds the newer entry is given until the
    next lookup to bring it; if our head has not moved by then, its claim no
    longer counts (a hostile peer could otherwise keep us in the island for good)."""
    dht = FakeDHT(head_entry(5))
    pool = FakePool([3, 5])  # the second claims seq 5 and never sends it
    heads = FakeHeads(3)
    d = discovery(dht, pool, heads)
    with trio.fail_after(120):
        await run_lookup(d)
        assert pool.dialled == []
        await trio.sleep(30)
        await run_lookup(d)
    assert pool.dialled == [h[2] for h in HOLDERS[2:4]]
    assert d.statistics()["swarm_islands"] == 1


async def test_island_dials_back_off_while_they_bring_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A head record nobody can serve (its author went offline right after the
    put, or signed a seq it never publishes) must not make every follower dial two
    more holders at every lookup: the rounds are spaced 30, 60, 120 s ... apart
    while our head stands still, and start afresh when it moves."""
    dht = FakeDHT(head_entry(1_000_000_000))
    pool = FakePool([3, 3])
    heads = FakeHeads(3)
    d = discovery(dht, pool, heads)
    rounds: list[int] = []
    with trio.fail_after(10_000):
        for t in range(0, 240, 30):  # a lookup every 30 s: at 0, 30, ..., 210
            before = len(pool.dialled)
            await run_lookup(d)
            if len(pool.dialled) > before:
                rounds.append(t)
            await trio.sleep(30 - (trio.current_time() % 30))
        assert rounds == [0, 30, 90, 210]
        # Our head moves (something came in): the next lookup dials at once again.
        heads[AUTHOR.public_key] = (4, b"\x00" * 32)
        before = len(pool.dialled)
        await run_lookup(d)
        assert len(pool.dialled) == before + 2


class SlowDHT(FakeDHT):
    """Each walk takes a second (a NAT'd node's walks can take their full 10 s)."""

    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]:
        await trio.sleep(1)
        return await super().get_peers(author)

    async def get_head(self, author: bytes) -> bytes | None:
        await trio.sleep(1)
        return await super().get_head(author)


async def test_the_head_record_is_read_beside_the_swarm_lookup_not_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The swarm loop runs its lookups one after another: a head-record walk
    after each get_peers would double the time a round of many feeds takes."""
    dht = SlowDHT(head_entry(5))
    pool = FakePool([3, 3])
    d = discovery(dht, pool, FakeHeads(3))
    start = trio.current_time()
    with trio.fail_after(60):
        await run_lookup(d)
    assert trio.current_time() - start < 1.5
    assert pool.dialled == [h[2] for h in HOLDERS[2:4]]


class FailingDHT(FakeDHT):
    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]:
        await trio.sleep(0.01)
        raise ProtocolError("no answer", reason="timeout")

    async def get_head(self, author: bytes) -> bytes | None:
        await trio.sleep(1)
        return await super().get_head(author)


async def test_a_failed_swarm_lookup_beside_a_head_read_counts_as_a_dht_error() -> None:
    """Two walks at once must not turn the network's failure into a "bug"."""
    dht = FailingDHT(head_entry(5))
    pool = FakePool([3, 3])
    d = discovery(dht, pool, FakeHeads(3))
    with trio.fail_after(5):
        await run_lookup(d)
    stats = d.statistics()
    assert (stats["dht_errors"], stats["internal_errors"]) == (1, 0)
    assert pool.dialled == []

"""Unsolicited posts that mention us: the rate holds across reconnects and
fresh node keys, per remote node key and per address."""

from __future__ import annotations

import contextlib
from pathlib import Path

import trio

from p2psocial.node.replication import LinkClosed
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.ratelimit import RateTable
from p2psocial.protocol.wire import Push, encode_message

from .test_replication_helpers import now_ms, open_testnet


def mention_post(victim: bytes) -> tuple[bytes, bytes, bytes]:
    """A new author's first post that mentions ``victim``: (author, entry, payload)."""
    key = SigningKey.generate()
    entry, payload = create_entry(
        key,
        seq=1,
        prev=None,
        timestamp=now_ms(),
        kind="post",
        payload={"text": "look at this", "mentions": [victim]},
    )
    return key.public_key, entry.to_bytes(), payload


async def test_mention_flood_over_reconnects_is_bounded(tmp_path: Path) -> None:
    """1,000 such pushes over 12 reconnects with fresh node keys stored 384
    new feeds in 6 s (the 32-token bucket was per link); now the address
    bucket bounds them, whatever the keys."""
    burst, rate = 16.0, 0.5
    async with open_testnet(tmp_path, 1, inbound_burst=burst, inbound_rate=rate) as net:
        (victim,) = net.nodes
        t0 = trio.current_time()
        for _ in range(12):
            stream = await trio.open_tcp_stream(*victim.addr)
            try:
                link, _ = await open_secure_link(stream, SigningKey.generate(), 1)
                with contextlib.suppress(LinkClosed):
                    for _ in range(84):  # 12 x 84 = 1,008
                        author, entry, payload = mention_post(victim.identity)
                        await link.send_frame(encode_message(Push(author, 1, (entry, payload))))
                    # Let the victim take what it will before we hang up.
                    await trio.sleep(0.05)
            finally:
                await stream.aclose()
        elapsed = trio.current_time() - t0
        with trio.fail_after(10):
            # A link's reader hands each frame to ingest before reading the
            # next, so once every link has ended, every push was decided.
            while True:
                if victim.rep.statistics()["links_opened"] == 12 and not victim.rep.pool.links:
                    break
                await trio.sleep(0.05)
        interests = await victim.store.interests()
        inbound_feeds = sum(1 for r in interests.values() if "inbound" in r)
        # The per-address bucket is twice the per-key one.
        bound = 2 * burst + 2 * rate * (elapsed + 5)
        assert 1 <= inbound_feeds <= bound, (inbound_feeds, bound, elapsed)


def test_rate_table_bounds_and_refills() -> None:
    table = RateTable(2, 1.0, max_keys=3)
    assert [table.take("a", 0.0) for _ in range(3)] == [True, True, False]
    assert table.take("a", 1.0) is True  # one token back after a second
    for k in "bcde":
        table.take(k, 1.0)
    assert len(table) <= 3  # bounded
    # A key idle long enough to refill is forgotten, and starts full again.
    table.take("z", 100.0)
    assert len(table) == 1

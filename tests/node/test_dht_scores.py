"""DHT peer scores with real sockets (spec/dht.md §9): a node that answers a
record get with a forged record is penalized, evicted and graylisted; while
graylisted, its requests go unanswered and lookups pass it by, and the
honest nodes beside it are not charged."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import trio

from p2psocial.node.dht import DHTConfig, DHTError, DHTNode
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey


def _penalties(stats: dict[str, object]) -> int:
    return sum(int(v) for k, v in stats.items() if k.startswith("penalized_protocol_record_"))  # type: ignore[call-overload]


def _liar(rng: random.Random, cfg: DHTConfig, forged: bytes) -> DHTNode:
    node = DHTNode(SigningKey.from_seed(rng.randbytes(32)), "127.20.0.1", 0, config=cfg)
    # It answers every record get with the same forged bytes.
    node.records.get = lambda *a, **k: SimpleNamespace(data=forged)  # type: ignore[method-assign]
    return node


async def test_a_node_handing_out_a_forged_record_is_graylisted_and_passed_by() -> None:
    rng = random.Random(31)
    # Every path at once (no hedge): the getter must ask the liar, wherever it is.
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3, get_hedge=None)
    author = SigningKey.from_seed(rng.randbytes(32))
    e, _ = create_entry(
        author, seq=1, prev=None, timestamp=1_700_000_000_000, kind="post", payload={"text": "x"}
    )
    good = e.to_bytes()
    forged = good[:-1] + bytes([good[-1] ^ 1])  # no longer a valid entry
    honest = [
        DHTNode(SigningKey.from_seed(rng.randbytes(32)), f"127.{21 + i}.0.1", 0, config=cfg)
        for i in range(6)
    ]
    liar = _liar(rng, cfg, forged)
    getter = honest[0]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for x in [*honest, liar]:
                await nursery.start(x.run)
            for x in [*honest[1:], liar]:
                await x.bootstrap([getter.address])
            await honest[1].put_head(good)
            assert await getter.get_head(author.public_key) == good
            stats = getter.statistics()
            assert _penalties(stats) == 1, stats
            # By node id and by its address (spec/sync.md §8 scores both).
            assert stats["peer_scores"]["graylisted_total"] == 1, stats
            assert stats["peer_scores"]["graylisted_now"] == 2, stats
            assert liar.node_id not in {c.node_id for c in getter.table.contacts()}
            # No one honest was charged.
            assert set(stats["peer_scores"]["worst_scores"]) <= {liar.node_id.hex()[:12], liar.host}
            # Graylisted: its requests go unanswered, and it is not re-added.
            with pytest.raises(DHTError) as err:
                await liar.ping(getter.address)
            assert err.value.reason == "timeout"
            assert getter.statistics()["requests_dropped_graylisted"] >= 1
            assert liar.node_id not in {c.node_id for c in getter.table.contacts()}
            # The next get finds the record again, without asking it.
            assert await getter.get_head(author.public_key) == good
            assert _penalties(getter.statistics()) == 1
            nursery.cancel_scope.cancel()

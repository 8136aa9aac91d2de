"""IP-diversity limits with real sockets: 80 sybils in one /16 of 127/8 against
20 honest nodes on distinct /16s (spec/dht.md §7.1)."""

from __future__ import annotations

import random
from typing import Any

import trio

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.protocol.identity import SigningKey

SYBILS = 80
HONEST = 20


def _in_sybil_block(host: str) -> bool:
    return host.startswith("127.9.")


async def test_eighty_sybils_in_one_slash16_hold_at_most_ten_slots() -> None:
    rng = random.Random(17)
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
    victim = DHTNode(SigningKey.from_seed(rng.randbytes(32)), "127.8.0.1", 0, config=cfg)
    sybils = [
        DHTNode(SigningKey.from_seed(rng.randbytes(32)), f"127.9.0.{i + 1}", 0, config=cfg)
        for i in range(SYBILS)
    ]
    honest = [
        DHTNode(SigningKey.from_seed(rng.randbytes(32)), f"127.{10 + i}.0.1", 0, config=cfg)
        for i in range(HONEST)
    ]
    everyone = [victim, *sybils, *honest]

    async def run(x: DHTNode, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await x.run(task_status=task_status)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for x in everyone:
                await nursery.start(run, x)
            # Everybody joins through the victim and then looks itself up:
            # every node pings the victim and asks it, so the victim is offered
            # all 100 of them (the sybils first, as a crowd would arrive).
            async with trio.open_nursery() as boot:
                for x in [*sybils, *honest]:
                    boot.start_soon(x.bootstrap, [victim.address])
            await victim.find_node(victim.node_id)
            for _ in range(3):
                await victim.find_node(rng.randbytes(20))
            table = victim.table.contacts()
            in_block = [c for c in table if _in_sybil_block(c.host)]
            honest_in = [c for c in table if not _in_sybil_block(c.host)]
            assert len(in_block) <= 10, (len(in_block), len(table))
            assert victim.table.group_counts().get("127.9.0.0/16", 0) == len(in_block)
            # The limit keeps the honest: every honest node that pinged the
            # victim has its slot (each is the only one of its /16).
            assert len(honest_in) == HONEST
            # Share of the k-closest sets for random targets.
            shares = []
            for _ in range(50):
                closest = victim.table.closest(rng.randbytes(20))
                shares.append(sum(_in_sybil_block(c.host) for c in closest) / len(closest))
            share = sum(shares) / len(shares)
            # 10 of at most 30 contacts: the sybils cannot fill a k-closest set.
            assert share <= 0.5, share
            print(f"sybil slots {len(in_block)}/{len(table)}, share of k-closest sets {share:.2f}")
            nursery.cancel_scope.cancel()


async def test_without_limits_the_block_takes_the_table() -> None:
    """The baseline the limits are measured against (the same crowd)."""
    rng = random.Random(18)
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
    victim = DHTNode(SigningKey.from_seed(rng.randbytes(32)), "127.8.0.2", 0, config=cfg)
    # Turn the limits off in the victim's table only.
    victim.table._groups = None
    sybils = [
        DHTNode(SigningKey.from_seed(rng.randbytes(32)), f"127.9.1.{i + 1}", 0, config=cfg)
        for i in range(40)
    ]
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for x in [victim, *sybils]:
                await nursery.start(x.run)
            async with trio.open_nursery() as boot:
                for x in sybils:
                    boot.start_soon(x.bootstrap, [victim.address])
            assert sum(_in_sybil_block(c.host) for c in victim.table.contacts()) > 10
            nursery.cancel_scope.cancel()

"""The datagram engine's retransmission schedule, on a memory network under MockClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.dht.memnet import MemoryNetwork
from p2psocial.protocol.identity import SigningKey

Addr = tuple[str, int]


@asynccontextmanager
async def _pair(
    net: MemoryNetwork, cfg: DHTConfig, seeds: tuple[int, int]
) -> AsyncIterator[tuple[DHTNode, Addr, DHTNode, Addr, trio.Nursery]]:
    """Two running nodes on ``net``: (a, a's address, b, b's address, nursery)."""
    a, b = (
        DHTNode(
            SigningKey.from_seed(bytes([i]) * 32),
            "10.0.0.1",
            0,
            config=cfg,
            socket_factory=net.socket_factory,
        )
        for i in seeds
    )
    async with trio.open_nursery() as nursery:
        a_addr = await nursery.start(a.run)
        b_addr = await nursery.start(b.run)
        yield a, a_addr, b, b_addr, nursery
        nursery.cancel_scope.cancel()


async def test_a_slower_answer_is_awaited_not_resent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Round trips of 2 ms make the contact's timeout 30 ms; an answer that
    then takes 120 ms is waited for, not asked for again (spec/dht.md 9): a
    resend helps only against loss, and on a busy node every early resend is
    one more request for both sides to handle."""
    net = MemoryNetwork(7, delay=(0.001, 0.001))
    cfg = DHTConfig(observe_addresses=False)
    with trio.fail_after(60):
        async with _pair(net, cfg, (1, 2)) as (a, _a_addr, b, b_addr, _nursery):
            engine = a._engine
            for _ in range(20):
                await engine.call(b_addr, "ping", [a.node_id])
            assert engine.rtt.rto(b_addr) < 0.05
            retries = engine.statistics().get("rpc_retries", 0)
            net.delay = (0.06, 0.06)
            sent = net.stats["sent"]
            started = trio.current_time()
            assert await engine.call(b_addr, "ping", [a.node_id]) == b.node_id
            assert trio.current_time() - started >= 0.12
            assert net.stats["sent"] - sent == 2  # one request, one answer
            assert engine.statistics().get("rpc_retries", 0) == retries
            # A request that is lost is still sent again, after the floor.
            net.loss = 1.0
            sent = net.stats["sent"]
            with trio.move_on_after(cfg.rpc_retransmit_min + 0.01):
                await engine.call(b_addr, "ping", [a.node_id])
            assert net.stats["sent"] - sent == 2


async def test_a_contact_is_silent_past_its_timeout_until_heard_from(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A contact whose call went unanswered past its first attempt's timeout
    is silent (spec/dht.md 8), so concurrent lookups give it no slot rather
    than each wait on the same dead contact. Any datagram from it ends that."""
    net = MemoryNetwork(8, delay=(0.001, 0.001))
    cfg = DHTConfig(observe_addresses=False)
    with trio.fail_after(60):
        async with _pair(net, cfg, (3, 4)) as (a, a_addr, b, b_addr, nursery):
            engine = a._engine
            for _ in range(10):
                await engine.call(b_addr, "ping", [a.node_id])
            rto = engine.rtt.rto(b_addr)
            assert not engine.is_silent(b_addr, trio.current_time())
            net.loss = 1.0

            async def unanswered() -> None:
                with trio.move_on_after(cfg.rpc_verdict_min / 2):
                    await engine.call(b_addr, "ping", [a.node_id])

            nursery.start_soon(unanswered)
            await trio.sleep(rto / 2)
            assert not engine.is_silent(b_addr, trio.current_time())
            await trio.sleep(rto)
            assert engine.is_silent(b_addr, trio.current_time())
            net.loss = 0.0
            await b._engine.call(a_addr, "ping", [b.node_id])
            assert not engine.is_silent(b_addr, trio.current_time())
            # And the silence ends on its own after silent_ttl.
            net.loss = 1.0
            nursery.start_soon(unanswered)
            await trio.sleep(rto * 1.5)
            assert engine.is_silent(b_addr, trio.current_time())
            await trio.sleep(cfg.silent_ttl)
            assert not engine.is_silent(b_addr, trio.current_time())


async def test_an_unproven_contact_silent_to_a_record_call_is_skipped_until_heard_from(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A record call to a contact not yet proven that goes unanswered makes
    the contact known dead for lookups, as a timed-out call to a proven one
    does (spec/dht.md 8): the gets after a wave of departures then go past
    it instead of each waiting on it again. It stays in the table (a stock
    node ignores record calls but is alive); anything heard from it ends that."""
    from p2psocial.node.dht.common import DHTError
    from p2psocial.protocol.dht import Contact

    net = MemoryNetwork(9, delay=(0.001, 0.001))
    cfg = DHTConfig(observe_addresses=False, eager_proofs=0)
    with trio.fail_after(60):
        async with _pair(net, cfg, (5, 6)) as (a, a_addr, b, b_addr, _nursery):
            contacts = a._contacts
            assert await a.ping(b_addr) == b.node_id
            peer = Contact(b.node_id, b_addr[0], b_addr[1])
            assert not contacts.is_proven(peer)
            net.loss = 1.0
            try:
                await contacts.proving_call(peer, "get_record", [a.node_id, b"\x09" * 20, "head"])
            except DHTError as exc:
                assert exc.reason == "no_answer"
            else:
                raise AssertionError("the call was answered")
            assert contacts.known_dead(peer, trio.current_time())
            assert a.table.get(b.node_id) is not None
            net.loss = 0.0
            await b.ping(a_addr)
            assert not contacts.known_dead(peer, trio.current_time())


async def test_a_contact_a_finished_lookup_went_past_is_silent_for_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A lookup that ends while a contact it asked is still unanswered past
    its patience marks that contact silent (spec/dht.md 8), even when the
    call's own first attempt had not timed out yet: the lookup's end cancels
    the call, and the next lookups would otherwise each wait on it again."""
    net = MemoryNetwork(10, delay=(0.001, 0.04))
    cfg = DHTConfig(observe_addresses=False)
    a, b, c = (
        DHTNode(
            SigningKey.from_seed(bytes([i]) * 32),
            "10.0.0.1",
            0,
            config=cfg,
            socket_factory=net.socket_factory,
        )
        for i in (11, 12, 13)
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            b_scope = trio.CancelScope()

            async def run_b(task_status: trio.TaskStatus[Addr]) -> None:
                with b_scope:
                    await b.run(task_status=task_status)

            await nursery.start(a.run)
            b_addr = await nursery.start(run_b)
            c_addr = await nursery.start(c.run)
            engine = a._engine
            for _ in range(20):  # varied round trips: a timeout well above the patience
                await a.ping(b_addr)
                await a.ping(c_addr)
            assert engine.rtt.rto(b_addr) > 1.5 * engine.rtt.patience(b_addr)
            net.delay = (0.001, 0.001)
            b_scope.cancel()  # b is gone without a word
            started = trio.current_time()
            await a._plain.find_node(b.node_id, 1)
            assert trio.current_time() - started < engine.rtt.rto(b_addr)
            assert engine.is_silent(b_addr, trio.current_time())
            assert not engine.is_silent(c_addr, trio.current_time())
            nursery.cancel_scope.cancel()

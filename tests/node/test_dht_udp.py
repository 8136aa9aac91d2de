"""The DHT's UDP socket (node/dht/udp.py) over real sockets on 127.0.0.1."""

from __future__ import annotations

import pytest
import trio

from p2psocial.errors import NodeError
from p2psocial.node.dht.udp import open_udp_socket
from p2psocial.protocol.dht.wire import MAX_VALUE_REPLY


async def test_datagrams_go_both_ways_with_their_source_address() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("127.0.0.1", 0)
        b = await open_udp_socket("127.0.0.1", 0)
        try:
            await a.sendto(b"one", b.getsockname())
            await a.sendto(b"two", b.getsockname())
            assert await b.recvfrom() == (b"one", a.getsockname())
            assert await b.recvfrom() == (b"two", a.getsockname())
            await b.sendto(b"back", a.getsockname())
            assert await a.recvfrom() == (b"back", b.getsockname())
        finally:
            a.close()
            b.close()


async def test_an_oversized_datagram_arrives_longer_than_any_accepted() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("127.0.0.1", 0)
        b = await open_udp_socket("127.0.0.1", 0)
        try:
            await a.sendto(b"x" * (MAX_VALUE_REPLY + 100), b.getsockname())
            data, _ = await b.recvfrom()
            assert len(data) == MAX_VALUE_REPLY + 1
        finally:
            a.close()
            b.close()


async def test_a_flood_of_datagrams_does_not_starve_other_tasks() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("127.0.0.1", 0)
        b = await open_udp_socket("127.0.0.1", 0)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()

        try:
            for i in range(200):
                await a.sendto(b"%d" % i, b.getsockname())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await trio.lowlevel.checkpoint()
                before = ticks
                for _ in range(200):
                    await b.recvfrom()
                assert ticks - before >= 200 // 16 - 1
                nursery.cancel_scope.cancel()
        finally:
            a.close()
            b.close()


async def test_closing_wakes_a_waiting_receiver() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("127.0.0.1", 0)
        raised: list[BaseException] = []

        async def receive() -> None:
            try:
                await a.recvfrom()
            except trio.ClosedResourceError as exc:
                raised.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            a.close()
        assert len(raised) == 1


async def test_a_host_name_binds_to_its_address() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("localhost", 0)
        try:
            assert a.getsockname()[0] in ("127.0.0.1", "::1")
        finally:
            a.close()


async def test_an_address_in_use_is_a_node_error() -> None:
    with trio.fail_after(5):
        a = await open_udp_socket("127.0.0.1", 0)
        try:
            with pytest.raises(NodeError) as info:
                await open_udp_socket("127.0.0.1", a.getsockname()[1])
            assert info.value.reason == "address_in_use"
        finally:
            a.close()


async def test_a_burst_of_requests_is_answered_in_full_in_arrival_order() -> None:
    """Requests are answered as they are read (spec/dht.md §9): 300 pings,
    in bursts of 50 sent back to back (a burst fits in the sockets' receive
    buffers), all get their answer, in the order they were sent."""
    from p2psocial.node.dht import DHTConfig, DHTNode
    from p2psocial.protocol.dht.wire import decode_datagram_untrusted, encode_request
    from p2psocial.protocol.identity import SigningKey

    node = DHTNode(
        SigningKey.from_seed(b"\x05" * 32),
        "127.0.0.1",
        0,
        config=DHTConfig(observe_addresses=False),
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addr = await nursery.start(node.run)
            client = await open_udp_socket("127.0.0.1", 0)
            try:
                ids = [bytes([i // 256, i % 256]) * 10 for i in range(300)]
                got = []
                for start in range(0, len(ids), 50):
                    burst = ids[start : start + 50]
                    for mid in burst:
                        await client.sendto(encode_request(mid, "ping", [b"\x07" * 20]), addr)
                    for _ in burst:
                        data, src = await client.recvfrom()
                        assert src == addr
                        got.append(decode_datagram_untrusted(data).msg_id)
                assert got == ids
            finally:
                client.close()
            assert "queue_full" not in node.statistics()["dropped"]
            nursery.cancel_scope.cancel()

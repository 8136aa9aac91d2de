"""Relayed links between real nodes on 127.0.0.1 (spec/sync.md §11).

n0 relays, n1 holds a reservation there (it is told it cannot be dialled),
n2 dials n1 through n0. The relay's observer sees every byte it forwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from p2psocial.node.relay import RelayAddress, RelayLimits
from p2psocial.node.relay.client import RelayRefused, open_relayed
from p2psocial.protocol.relay import (
    CHALLENGE_SIZE,
    TRANSPORT_CONNECT,
    TRANSPORT_RESERVE,
    decode_challenge_untrusted,
    encode_accept,
    encode_preamble,
)

from .test_replication_helpers import TestNet, TNode, open_testnet


def _relay_of(node: TNode) -> RelayAddress:
    return RelayAddress(node.rep.node_id, *node.addr)


async def _reserve(net: TestNet, home: TNode, relay: TNode) -> None:
    home.rep.use_relays = "always"
    home.rep.add_relay(_relay_of(relay))

    async def held() -> bool:
        return bool(home.rep.relays()) and home.rep.node_id in relay.rep.relay.reservations

    await net.wait_for(held, poll=0.05)


async def _reservation_refused(net: TestNet, home: TNode, relay: TNode, reason: str) -> None:
    home.rep.use_relays = "always"
    home.rep.add_relay(_relay_of(relay))

    async def refused() -> bool:
        stats = home.rep.statistics()["relay_client"]
        return bool(stats.get(f"reservations_ended_{reason}", 0) >= 1)

    await net.wait_for(refused, poll=0.05)


def _forwarded(chunks: list[bytes]) -> bytes:
    return b"".join(chunks)


async def test_relayed_link_carries_posts_and_the_relay_sees_only_ciphertext(
    tmp_path: Path,
) -> None:
    chunks: list[bytes] = []
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 3, relay_observer=chunks.append) as net:
            relay, home, dialler = net.nodes
            await _reserve(net, home, relay)
            await dialler.follow(home)
            assert await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            secret = "the relay must never read this sentence"
            for i in range(3):
                await home.post(f"{secret} #{i}")

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 3

            await net.wait_for(delivered)
            [d_view] = dialler.rep.peers()
            assert d_view["path"] == "relayed" and d_view["direction"] == "outbound"
            assert d_view["node_id"] == home.rep.node_id.hex()
            [h_view] = home.rep.peers()
            assert h_view["path"] == "relayed" and h_view["direction"] == "inbound"
            assert relay.rep.peers() == []  # the relay holds no link of its own to them
            seen = _forwarded(chunks)
            # The link's handshake, hello and posts all went through the relay...
            assert len(seen) > 1000
            assert seen.startswith(b"p2ps\x00\x01") or b"p2ps\x00\x01" in seen
            # ...as ciphertext: neither the text nor the author's key is in it.
            assert secret.encode() not in seen
            assert b"the relay" not in seen
            assert home.identity not in seen
            stats = relay.rep.statistics()["relay"]
            assert stats["links_spliced"] == 1 and stats["links"] == 1
            assert stats["bytes_forwarded"] == len(seen)
            assert stats["reservations"] == 1


async def test_a_dial_to_a_node_without_reservation_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 3) as net:
            relay, home, dialler = net.nodes
            assert not await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            assert dialler.rep.pool.statistics()["relayed_dials_no_reservation"] == 1
            assert relay.rep.statistics()["relay"]["connect_no_reservation"] == 1


async def test_a_relay_switched_off_refuses_reservations_and_connects(tmp_path: Path) -> None:
    off = RelayLimits(enabled=False)
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 3, relay_limits=lambda: off) as net:
            relay, home, dialler = net.nodes
            await _reservation_refused(net, home, relay, "link_unsupported")
            assert home.rep.relays() == []
            with trio.fail_after(5):
                try:
                    await open_relayed(_relay_of(relay), home.rep.node_id)
                except RelayRefused as exc:
                    assert exc.reason == "link_unsupported"
                else:
                    raise AssertionError("a relay switched off spliced a link")
            # The link port still serves ordinary links.
            await dialler.connect(relay)


async def _relayed_pair(net: TestNet) -> tuple[TNode, TNode, TNode]:
    relay, home, dialler = net.nodes[:3]
    await _reserve(net, home, relay)
    await dialler.follow(home)
    assert await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
    return relay, home, dialler


async def _link_ended(net: TestNet, relay: TNode, reason: str) -> None:
    async def ended() -> bool:
        stats: dict[str, Any] = relay.rep.statistics()["relay"]
        return bool(stats.get(f"links_ended_{reason}", 0) >= 1 and stats["links"] == 0)

    await net.wait_for(ended, poll=0.05)


async def test_a_relayed_link_ends_at_its_byte_limit(tmp_path: Path) -> None:
    small = RelayLimits(link_bytes=20_000)
    chunks: list[bytes] = []
    with trio.fail_after(30):
        async with open_testnet(
            tmp_path, 3, relay_limits=lambda: small, relay_observer=chunks.append
        ) as net:
            relay, home, _ = await _relayed_pair(net)
            for i in range(12):
                await home.post(f"{i:02} " + "x" * 1900)
            await _link_ended(net, relay, "bytes_limit")
            assert len(_forwarded(chunks)) <= small.link_bytes


async def test_a_relayed_link_ends_at_its_time_limit(tmp_path: Path) -> None:
    short = RelayLimits(link_seconds=1.0)
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 3, relay_limits=lambda: short) as net:
            relay, _, dialler = await _relayed_pair(net)
            start = trio.current_time()
            await _link_ended(net, relay, "time_limit")
            assert trio.current_time() - start < 5
            await net.wait_for(_no_peers(dialler), poll=0.05)


def _no_peers(node: TNode) -> Any:
    async def cond() -> bool:
        return node.rep.peers() == []

    return cond


async def test_a_relayed_link_is_held_to_its_rate(tmp_path: Path) -> None:
    rate = RelayLimits(link_bytes_per_s=8_000)
    with trio.fail_after(40):
        async with open_testnet(tmp_path, 3, relay_limits=lambda: rate) as net:
            _, home, dialler = await _relayed_pair(net)
            # An idle link must not save up credit: the burst stays one second's worth.
            await trio.sleep(3.0)
            start = trio.current_time()
            for i in range(20):
                await home.post(f"{i:02} " + "y" * 1900)

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 20

            await net.wait_for(delivered)
            # Over 38 kB at 8 kB/s with one second's burst takes at least 3.8 s.
            assert trio.current_time() - start >= 3.5


async def test_the_relay_holds_at_most_its_reservations_and_links(tmp_path: Path) -> None:
    tight = RelayLimits(max_reservations=1, max_links=1)
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 4, relay_limits=lambda: tight) as net:
            relay, home, dialler, other = net.nodes
            await _reserve(net, home, relay)
            await _reservation_refused(net, other, relay, "relay_full")
            assert list(relay.rep.relay.reservations) == [home.rep.node_id]
            assert await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            assert not await other.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            assert other.rep.pool.statistics()["relayed_dials_relay_full"] == 1


async def test_a_lost_relay_is_replaced_with_one_log_line(tmp_path: Path, caplog: Any) -> None:
    with trio.fail_after(40):
        async with open_testnet(tmp_path, 4) as net:
            first, second, home, dialler = net.nodes
            home.rep.relay_client.want = 1
            await _reserve(net, home, first)
            home.rep.add_relay(_relay_of(second))
            assert [r["node_id"] for r in home.rep.relays()] == [first.rep.node_id.hex()]
            first.stop()

            async def moved() -> bool:
                return [r["node_id"] for r in home.rep.relays()] == [second.rep.node_id.hex()]

            await net.wait_for(moved, poll=0.05)
            lost = [r for r in caplog.records if "lost" in r.getMessage()]
            assert len(lost) == 1 and lost[0].levelname == "WARNING"
            await dialler.follow(home)
            assert await dialler.rep.pool.dial_relayed(_relay_of(second), home.rep.node_id)
            await home.post("still reachable")

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 1

            await net.wait_for(delivered)


async def test_relays_are_found_and_named_through_the_dht(tmp_path: Path) -> None:
    """The relay lists itself in the relay swarm; the home finds it there,
    reserves, and names it in its swarm announce; a follower dials it through it."""
    with trio.fail_after(60):
        async with open_testnet(tmp_path, 3, with_dht=True) as net:
            relay, home, dialler = net.nodes
            relay.rep.announce_relay = "always"
            home.rep.use_relays = "always"
            home.rep.relay_client.check_interval = 0.2

            async def named() -> bool:
                return home.rep.dht.relay == (relay.rep.node_id, *relay.addr)

            await net.wait_for(named, poll=0.1)
            await home.post("found through the relay swarm")
            await dialler.follow(home)

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 1

            await net.wait_for(delivered)
            [link] = [p for p in dialler.rep.peers() if p["node_id"] == home.rep.node_id.hex()]
            assert link["path"] == "relayed"
            assert relay.rep.statistics()["relay"]["links_spliced"] >= 1


async def _exchange(addr: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` to the relay; everything it answers until it closes."""
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        got = b""
        while chunk := await stream.receive_some(4096):
            got += chunk
        return got


async def test_bad_relay_messages_are_refused_counted_and_harmless(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            relay, dialler = net.nodes
            answer = await _exchange(relay.addr, encode_preamble(TRANSPORT_RESERVE) + b"\x01" * 96)
            relay_id, _ = decode_challenge_untrusted(answer[:CHALLENGE_SIZE])
            assert relay_id == relay.rep.node_id and answer[CHALLENGE_SIZE:] == b"\x04"
            assert await _exchange(relay.addr, encode_accept(b"t" * 16)) == b""
            assert await _exchange(relay.addr, encode_preamble(TRANSPORT_CONNECT) + b"abc") == b""
            stats = relay.rep.statistics()["relay"]
            assert stats["accept_bad_token"] == 1 and stats["connect_eof"] == 1
            assert sum(v for k, v in stats.items() if k.startswith("reserve_")) == 1
            assert stats["reservations"] == 0
            await dialler.connect(relay)  # the port still serves links


async def test_a_relayed_peer_at_fault_is_graylisted_by_node_id_not_by_the_relays_address(
    tmp_path: Path,
) -> None:
    """Every relayed link comes from the relay's address: graylisting that
    address for one peer's fault would cut off every node behind the relay."""
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 4) as net:
            relay, home, dialler = await _relayed_pair(net)
            other = net.nodes[3]
            link = home.rep.pool.links[dialler.rep.node_id]
            # Loopback is never scored by address: give the relay a public one.
            public = "198.51.100.18"
            link.host = public
            link.drop("protocol_bad_entry")
            await net.wait_for(_no_peers(dialler), poll=0.05)
            pool = home.rep.pool
            assert pool.scores.graylisted(dialler.rep.node_id, "", trio.current_time())
            assert not pool.scores.graylisted(None, public, trio.current_time())
            await other.follow(home)
            assert await other.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            assert not await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)

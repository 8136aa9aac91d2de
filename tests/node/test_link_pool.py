"""The link pool against one hostile host: idle squatters, silent connections,
keepalives and idle deadlines, and connect() telling the truth.

Every link here is a real TCP connection on 127.0.0.1 with a real hello.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from p2psocial.node.replication import LinkClosed, address_group
from p2psocial.node.replication.transport import NoiseFramedStream, open_secure_link
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.wire import Bye, Caps, Clock, decode_message_untrusted, encode_message

from .test_replication_helpers import open_testnet


@asynccontextmanager
async def squatter(addr: tuple[str, int]) -> AsyncIterator[NoiseFramedStream]:
    """An authenticated link (a fresh node key, a real hello) that then says nothing."""
    stream = await trio.open_tcp_stream(*addr)
    try:
        framed, _ = await open_secure_link(stream, SigningKey.generate(), 1)
        yield framed
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def test_idle_squatters_from_one_host_do_not_keep_an_honest_peer_out(
    tmp_path: Path,
) -> None:
    """100 authenticated idle links from one host (the 32-link pool was full
    after 32 of them, and an honest peer was refused with pool_full); the
    honest peer links and syncs within 10 s."""
    async with open_testnet(tmp_path, 2, eviction_grace=0.5) as net:
        victim, honest = net.nodes
        await victim.follow(honest)
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(100):
                with contextlib.suppress(LinkClosed, OSError):
                    await stack.enter_async_context(squatter(victim.addr))
            live = [lk for lk in victim.rep.pool.links.values() if lk.reason is None]
            assert len(live) == victim.rep.pool.max_inbound()  # a quarter stays for our dials
            await trio.sleep(0.6)  # the squatters are past their grace period
            await honest.post("hello despite the squatters")
            with trio.fail_after(10):
                await honest.connect(victim)
                await net.wait_for(lambda: _seq_is(victim, honest, 1))
            stats = victim.rep.statistics()
            assert stats["links_evicted"] >= 1
            assert honest.rep.node_id in victim.rep.pool.links


async def _seq_is(node: object, author: object, seq: int) -> bool:
    return await node.seq_of(author) >= seq  # type: ignore[attr-defined]


async def test_silent_connections_are_capped_before_the_handshake(tmp_path: Path) -> None:
    """5,000 silent TCP connections were all held until their hello timed out;
    now at most max_handshaking_per_address wait, and the rest are closed at once."""
    async with open_testnet(tmp_path, 2, max_handshaking_per_address=8) as net:
        victim, honest = net.nodes
        streams = []
        try:
            for _ in range(40):
                streams.append(await trio.open_tcp_stream(*victim.addr))
            with trio.fail_after(5):
                while True:  # counters have no event; poll briefly
                    if victim.rep.pool.refused["too_many_handshakes"] >= 32:
                        break
                    await trio.sleep(0.01)
            assert sum(victim.rep.pool.handshaking.values()) <= 8
            # Closed at once: the refused ones read EOF without waiting for the timeout.
            closed = 0
            for s in streams:
                with trio.move_on_after(0.05):
                    try:
                        if await s.receive_some(1) == b"":
                            closed += 1
                    except trio.BrokenResourceError:
                        closed += 1
            assert closed >= 32
        finally:
            for s in streams:
                await s.aclose()
        # An honest peer still gets in once the silent ones are gone.
        with trio.fail_after(10):
            await honest.connect(victim)


async def test_connect_reports_a_refusal(tmp_path: Path) -> None:
    """The far side refuses (its pool is full of links it will not evict):
    connect() returns False, where it used to return True after the hello."""
    async with open_testnet(tmp_path, 3, max_peers=1) as net:
        a, b, c = net.nodes
        await a.follow(b)
        await b.follow(a)
        await a.connect(b)  # b's pool is now full with a link that shares a feed
        with trio.fail_after(10):
            assert await c.rep.connect(*b.addr) is False
        assert b.rep.pool.refused["pool_full"] >= 1


async def test_keepalive_and_idle_timeout(tmp_path: Path) -> None:
    """A quiet link gets an empty clock every keepalive_interval; a peer that
    sends nothing at all is dropped after idle_timeout."""
    async with open_testnet(tmp_path, 1, idle_timeout=0.9, keepalive_interval=0.3) as net:
        (victim,) = net.nodes
        async with squatter(victim.addr) as link:
            got = []
            with trio.fail_after(5):
                while True:
                    try:
                        msg = decode_message_untrusted(await link.receive_frame())
                    except LinkClosed:
                        break
                    got.append(msg)
            # The victim's opening clock, then at least one empty keepalive
            # clock, then a bye naming the idle timeout before it closes.
            assert Clock(()) in got[1:]
            assert got[-1] == Bye("idle_timeout")
        assert victim.rep.statistics()["links_dropped"]["idle_timeout"] == 1


@pytest.mark.parametrize(
    ("host", "group"),
    [
        ("192.0.2.7", "192.0.2.0/24"),
        ("198.51.100.255", "198.51.100.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("::ffff:192.0.2.9", "192.0.2.0/24"),
        ("127.0.0.1", None),
        ("::1", None),
        ("not-an-ip", None),
    ],
)
def test_address_groups(host: str, group: str | None) -> None:
    assert address_group(host) == group


async def test_a_dial_that_raises_ends_that_dial_only(tmp_path: Path) -> None:
    """An address the resolver chokes on (a port beyond a C long) raised from
    the background redial into the replicator's nursery and ended the node."""
    async with open_testnet(tmp_path, 1) as net:
        (node,) = net.nodes
        assert await node.rep.connect("127.0.0.1", 2**63) is False
        with trio.fail_after(10):
            while True:  # the redial (backoff 1 s) fails the same way, harmlessly
                if node.rep.statistics()["dials_failed"] >= 2:
                    break
                await trio.sleep(0.05)
        assert node.rep.statistics()["internal_errors"] >= 2


async def test_inbound_links_claiming_our_feeds_cannot_eclipse_our_own_dials(
    tmp_path: Path,
) -> None:
    """32 inbound links that echo our own clock (so they seem to share every
    feed) filled the pool and made our own dial to a followee fail (pool_full);
    the followee's posts never arrived."""
    async with open_testnet(tmp_path, 2, eviction_grace=0.2) as net:
        victim, followee = net.nodes
        await victim.follow(followee)
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(40):
                with contextlib.suppress(LinkClosed, OSError):
                    link = await stack.enter_async_context(squatter(victim.addr))
                    with trio.fail_after(5):
                        first = decode_message_untrusted(await link.receive_frame())
                        if isinstance(first, Caps):  # spec/sync.md §9: caps comes first
                            first = decode_message_untrusted(await link.receive_frame())
                    if isinstance(first, Bye):  # refused: the inbound share is full
                        continue
                    assert isinstance(first, Clock)
                    await link.send_frame(encode_message(first))  # "we want all you want"
            inbound = [lk for lk in victim.rep.pool.links.values() if lk.reason is None]
            assert len(inbound) <= victim.rep.pool.max_inbound()
            await trio.sleep(0.3)  # past the grace period
            post = await followee.post("can you hear me")
            with trio.fail_after(10):
                assert await victim.rep.connect(*followee.addr) is True
                await net.wait_for(lambda: _seq_is(victim, followee, post.seq))
